//! Every case of google/jwt_verify_lib's vectors (`tests/vectors/jwt_verify_lib/`, see the
//! README there) run through oidc-edge's core.
//!
//! Each case gets a verdict string made of oidc-edge's stable reason codes. When it is
//! the oidc-edge equivalent of the upstream status, the case *agrees*. When oidc-edge is
//! deliberately stricter or different, the case is listed in the file's table with its
//! exact verdict and a one-line reason; a listed case whose verdict changes, an unlisted
//! case that disagrees, or a listed case that now agrees, all fail the test. Run with
//! `cargo test --test vectors_jwt_verify_lib -- --nocapture` to see every verdict.

mod support;

use oidc_edge::error::Reason;
use oidc_edge::flow::MAX_TOKEN_BYTES;
use oidc_edge::jwks::{self, Jwk, KeySet};
use oidc_edge::jwt::{self, claims, Alg, ClaimRules, KeyFamily};
use serde_json::{json, Map, Value};
use support::{as_jwks, b64_loose, cases, code, jwks_error_category, opt_s, payload_of, s, Kind, Known, Tally};

const SKEW: u64 = 60;

// ---------------------------------------------------------------------------------------
// Key sets and the two levels of verification.

/// A key set as oidc-edge would hold it: the parsed set, or nothing when it is refused
/// (a refused JWKS never replaces anything, so the filter has no keys).
struct Keys {
    set: KeySet,
    label: String,
}

fn load_keys(text: &str) -> Keys {
    match jwks::parse_jwks(text.as_bytes()) {
        Ok((set, _)) => Keys { set, label: "ok".into() },
        Err(e) => Keys { set: KeySet::default(), label: format!("refused({})", jwks_error_category(&e)) },
    }
}

/// Key selection and signature only (jwt_verify_lib's `verifyJwt` without claims):
/// `jwt::parse`, `KeySet::candidates`, then `jwt::verify::signature` on each candidate.
fn signature_level(token: &str, keys: &KeySet) -> Result<(), Reason> {
    signature_level_cross_checked(token, keys).0
}

/// `signature_level`, and how many RS256/384/512 verifications it cross-checked: every
/// candidate is tried (not only up to the first that verifies), and each RSASSA-PKCS1-v1_5
/// verdict of the core's own verifier (`jwt::rsa`) must be the one of the `rsa` crate
/// behind jsonwebtoken (`verify::verify_raw`, the backend it replaced).
fn signature_level_cross_checked(token: &str, keys: &KeySet) -> (Result<(), Reason>, usize) {
    let parsed = match jwt::parse(token, MAX_TOKEN_BYTES) {
        Ok(p) => p,
        Err(reason) => return (Err(reason), 0),
    };
    let candidates = match keys.candidates(parsed.header.kid.as_deref(), parsed.header.alg) {
        Ok(c) => c,
        Err(reason) => return (Err(reason), 0),
    };
    let mut verified = false;
    let mut cross_checked = 0;
    for k in &candidates {
        let verdict = jwt::verify::signature(&parsed, k);
        verified |= verdict.is_ok();
        if jwt::verify::pkcs1_hash(parsed.header.alg).is_some() && k.accepts(parsed.header.alg) {
            assert!(k.rsa.is_some(), "an RSA JWK without its `rsa` form");
            let before = jwt::verify::verify_raw(parsed.header.alg, &k.decoding, parsed.signing_input.as_bytes(), parsed.signature_b64);
            assert_eq!(verdict.is_ok(), before.is_ok(), "jwt::rsa and the rsa crate disagree on {token} with key {k:?}: {verdict:?} vs {before:?}");
            cross_checked += 1;
        }
    }
    (if verified { Ok(()) } else { Err(Reason::SignatureInvalid) }, cross_checked)
}

/// The `iss` and `aud` values a case's rules accept: the token's own `iss`, and the
/// case's allowed audiences when it has a list, else the token's own `aud`. So a
/// signature case is not refused for a foreign issuer or audience, only for what the
/// token lacks or what the case asks.
fn accepted(token: &str, allowed: Option<&Value>) -> (Vec<String>, Vec<String>) {
    accepted_claims(&payload_of(token).unwrap_or_default(), allowed)
}

fn accepted_claims(claims: &Map<String, Value>, allowed: Option<&Value>) -> (Vec<String>, Vec<String>) {
    let issuers = claims.get("iss").and_then(Value::as_str).map(|i| vec![i.to_string()]).unwrap_or_default();
    let strings = |v: &Value| match v {
        Value::String(one) => vec![one.clone()],
        Value::Array(list) => list.iter().filter_map(Value::as_str).map(str::to_string).collect(),
        _ => vec![],
    };
    let audiences = match allowed {
        Some(list @ Value::Array(_)) => strings(list),
        _ => claims.get("aud").map(strings).unwrap_or_default(),
    };
    (issuers, audiences)
}

/// The whole check (`jwt::validate`) with every supported algorithm allowed.
fn full_level(token: &str, keys: &KeySet, allowed: Option<&Value>, now: u64) -> Result<(), Reason> {
    let (issuers, audiences) = accepted(token, allowed);
    support::validate_all_algs(token, keys, &issuers, &audiences, now, SKEW)
}

// ---------------------------------------------------------------------------------------
// verify.json

/// Where oidc-edge's verdict on a `verify.json` case is not the upstream one, and why.
/// Verdict: `jwks=` the key set as parsed, `sig=` key selection + signature, `full=`
/// `jwt::validate`; for PEM and X.509 material, `as-jwk:` the same after the test
/// converted the key to a JWK (oidc-edge itself only reads RFC 7517 JWKS).
const VERIFY_DIFFERS: &[Known] = &[
    Known { name: "verify_jwk_rsa_test/VerifyJwkRsaTest.NoKidOK", kind: Kind::Stricter, verdict: "jwks=ok sig=ok full=aud_missing", why: "no `aud` claim: oidc-edge requires one (OIDC Core 3.1.3.7); the signature verifies" },
    Known { name: "verify_jwk_rsa_test/VerifyJwkRsaTest.CorrectKidOK", kind: Kind::Stricter, verdict: "jwks=ok sig=ok full=aud_missing", why: "no `aud` claim; the signature verifies" },
    Known { name: "verify_jwk_rsa_test/VerifyJwkRsaTest.NonExistKidFail", kind: Kind::OtherReason, verdict: "jwks=ok sig=kid_unknown full=aud_missing", why: "refused too: the claim policy (no `aud`) runs before key selection; key selection alone gives kid_unknown" },
    Known { name: "verify_jwk_rsa_test/VerifyJwkRsaTest.OkPublicKeyNotAlg", kind: Kind::Stricter, verdict: "jwks=ok sig=ok full=aud_missing", why: "no `aud` claim; the alg-less keys verify" },
    Known { name: "verify_jwk_rsa_test/VerifyJwkRsaTest.OkPublicKeyNotKid", kind: Kind::Stricter, verdict: "jwks=ok sig=ok full=aud_missing", why: "no `aud` claim; the kid-less keys verify" },
    Known { name: "verify_jwk_rsa_test/VerifyJwkRsaTest.LongClaimsWithCorrectKidOk", kind: Kind::Stricter, verdict: "jwks=ok sig=ok full=aud_missing", why: "no `aud` claim; the 11 KB token is within the 64 KiB limit and verifies" },
    Known { name: "verify_jwk_rsa_test/unused:JwtTextWithIncorrectKid", kind: Kind::OtherReason, verdict: "jwks=ok sig=signature_invalid full=aud_missing", why: "refused too: no `aud` is found before the signature; key selection + signature alone agree (signature_invalid)" },
    Known { name: "verify_jwk_ec_test/VerifyJwkECTest.KidOK", kind: Kind::Stricter, verdict: "jwks=ok sig=ok full=exp_missing", why: "no `exp` claim: oidc-edge requires one; the ES256 signature verifies" },
    Known { name: "verify_jwk_ec_test/VerifyJwkECTest.KidES384OK", kind: Kind::Stricter, verdict: "jwks=ok sig=ok full=exp_missing", why: "no `exp` claim; the ES384 signature verifies" },
    Known { name: "verify_jwk_ec_test/VerifyJwkECTest.KidES512OK", kind: Kind::Stricter, verdict: "jwks=ok sig=alg_not_allowed full=alg_not_allowed", why: "ES512 (P-521) is not supported: the header is refused and the P-521 key is skipped" },
    Known { name: "verify_jwk_ec_test/VerifyJwkECTest.NoKidOK", kind: Kind::Stricter, verdict: "jwks=ok sig=ok full=exp_missing", why: "no `exp` claim; kid-less ES256 verifies with the candidate keys" },
    Known { name: "verify_jwk_ec_test/VerifyJwkECTest.NonExistKidFail", kind: Kind::OtherReason, verdict: "jwks=ok sig=kid_unknown full=exp_missing", why: "refused too: the missing `exp` is found before key selection; key selection alone gives kid_unknown" },
    Known { name: "verify_jwk_ec_test/VerifyJwkECTest.PubkeyNoAlgOK", kind: Kind::Stricter, verdict: "jwks=ok sig=ok full=exp_missing", why: "no `exp` claim; the alg-less EC key verifies" },
    Known { name: "verify_jwk_ec_test/VerifyJwkECTest.PubkeyNoKidOK", kind: Kind::Stricter, verdict: "jwks=ok sig=kid_unknown full=exp_missing", why: "a token kid only matches a key with that kid: kid-less JWKs are not a wildcard for a token that names a kid" },
    Known { name: "verify_jwk_hmac_test/VerifyJwkHmacTest.NoKidOK", kind: Kind::Stricter, verdict: "jwks=refused(not-json) strict:refused(private-members) sig=alg_not_allowed full=alg_not_allowed", why: "HMAC is never accepted; the JWKS has a trailing comma (not JSON) and its strict variant holds `k` (refused as a whole)" },
    Known { name: "verify_jwk_hmac_test/VerifyJwkHmacTest.NoKidLongExpOK", kind: Kind::Stricter, verdict: "jwks=refused(not-json) strict:refused(private-members) sig=alg_not_allowed full=alg_not_allowed", why: "HMAC is never accepted; JWKS not JSON / symmetric keys refused" },
    Known { name: "verify_jwk_hmac_test/VerifyJwkHmacTest.CorrectKidHS256OK", kind: Kind::Stricter, verdict: "jwks=refused(not-json) strict:refused(private-members) sig=alg_not_allowed full=alg_not_allowed", why: "HMAC is never accepted; JWKS not JSON / symmetric keys refused" },
    Known { name: "verify_jwk_hmac_test/VerifyJwkHmacTest.CorrectKidHS384OK", kind: Kind::Stricter, verdict: "jwks=refused(not-json) strict:refused(private-members) sig=alg_not_allowed full=alg_not_allowed", why: "HMAC is never accepted; JWKS not JSON / symmetric keys refused" },
    Known { name: "verify_jwk_hmac_test/VerifyJwkHmacTest.CorrectKidHS512OK", kind: Kind::Stricter, verdict: "jwks=refused(not-json) strict:refused(private-members) sig=alg_not_allowed full=alg_not_allowed", why: "HMAC is never accepted; JWKS not JSON / symmetric keys refused" },
    Known { name: "verify_jwk_hmac_test/VerifyJwkHmacTest.NonExistKidFail", kind: Kind::OtherReason, verdict: "jwks=refused(not-json) strict:refused(private-members) sig=alg_not_allowed full=alg_not_allowed", why: "refused too, earlier: the HS256 header is refused before any key lookup" },
    Known { name: "verify_jwk_hmac_test/VerifyJwkHmacTest.OkSymmetricKeyNotAlg", kind: Kind::Stricter, verdict: "jwks=refused(not-json) strict:refused(private-members) sig=alg_not_allowed full=alg_not_allowed", why: "HMAC is never accepted; JWKS not JSON / symmetric keys refused" },
    Known { name: "verify_jwk_hmac_test/VerifyJwkHmacTest.OkSymmetricKeyNotKid", kind: Kind::Stricter, verdict: "jwks=refused(not-json) strict:refused(private-members) sig=alg_not_allowed full=alg_not_allowed", why: "HMAC is never accepted; JWKS not JSON / symmetric keys refused" },
    Known { name: "verify_jwk_hmac_test/unused:JwtTextWithIncorrectKid", kind: Kind::OtherReason, verdict: "jwks=refused(not-json) strict:refused(private-members) sig=alg_not_allowed full=alg_not_allowed", why: "refused too, earlier: the HS256 header is refused" },
    Known { name: "verify_jwk_okp_test/VerifyJwkOKPTest.KidOK", kind: Kind::Stricter, verdict: "jwks=ok sig=ok full=exp_missing", why: "no `exp` claim; the Ed25519 signature verifies" },
    Known { name: "verify_jwk_okp_test/VerifyJwkOKPTest.NoKidOK", kind: Kind::Stricter, verdict: "jwks=ok sig=ok full=exp_missing", why: "no `exp` claim; kid-less EdDSA verifies with the candidate keys" },
    Known { name: "verify_jwk_okp_test/VerifyJwkOKPTest.NonExistKidFail", kind: Kind::OtherReason, verdict: "jwks=ok sig=kid_unknown full=exp_missing", why: "refused too: the missing `exp` is found first; key selection alone gives kid_unknown" },
    Known { name: "verify_jwk_okp_test/VerifyJwkOKPTest.PubkeyNoAlgOK", kind: Kind::Stricter, verdict: "jwks=ok sig=ok full=exp_missing", why: "no `exp` claim; the alg-less OKP key verifies" },
    Known { name: "verify_jwk_okp_test/VerifyJwkOKPTest.PubkeyNoKidOK", kind: Kind::Stricter, verdict: "jwks=ok sig=ok full=exp_missing", why: "no `exp` claim; the set has no kids at all, so the token's kid is not looked up and the one Ed25519 key verifies" },
    Known { name: "verify_jwk_okp_test/VerifyJwkOKPTest.WrongSignatureFail", kind: Kind::OtherReason, verdict: "jwks=ok sig=signature_invalid full=exp_missing", why: "refused too: the missing `exp` is found before the signature; the signature alone is signature_invalid" },
    Known { name: "verify_jwk_rsa_pss_test/VerifyJwkRsaPssTest.Ps256CorrectKidOK", kind: Kind::Stricter, verdict: "jwks=ok sig=ok full=iat_in_future", why: "Keycloak token: at the vector's now = 1 its `iat` (2020) is in the future, and oidc-edge checks `iat`; the PS256 signature verifies" },
    Known { name: "verify_jwk_rsa_pss_test/VerifyJwkRsaPssTest.Ps384CorrectKidOK", kind: Kind::Stricter, verdict: "jwks=ok sig=ok full=iat_in_future", why: "`iat` is checked (in the future at now = 1); the PS384 signature verifies" },
    Known { name: "verify_jwk_rsa_pss_test/VerifyJwkRsaPssTest.Ps512CorrectKidOK", kind: Kind::Stricter, verdict: "jwks=ok sig=ok full=iat_in_future", why: "`iat` is checked (in the future at now = 1); the PS512 signature verifies" },
    Known { name: "verify_jwk_rsa_pss_test/VerifyKidMatchingTest.JwtTextWithNoKidNoMatchingKey", kind: Kind::OtherReason, verdict: "jwks=ok sig=signature_invalid full=iss_missing", why: "refused too: no `iss` is found first; the signature alone is signature_invalid" },
    Known { name: "verify_jwk_rsa_pss_test/VerifyKidMatchingTest.JwtTextWithNoKidOk", kind: Kind::Stricter, verdict: "jwks=ok sig=ok full=iss_missing", why: "jwt.io sample without `iss`, `aud`, `exp`: oidc-edge requires them; the signature verifies" },
    Known { name: "verify_jwk_rsa_pss_test/VerifyKidMatchingTest.JwtTextWithNonExistentKid", kind: Kind::OtherReason, verdict: "jwks=ok sig=kid_unknown full=iss_missing", why: "refused too: no `iss` is found first; key selection alone gives kid_unknown (no fallback to other keys)" },
    Known { name: "verify_x509_test/VerifyX509Test.NoKidToken", kind: Kind::NotApplicable, verdict: "jwks=refused(no-keys-array) sig=token_bad_base64 full=token_bad_base64 as-jwk: jwks=ok sig=token_bad_base64 full=token_bad_base64", why: "X.509 map key format (only RFC 7517 JWKS), and the signature carries `==` padding, which RFC 7515 forbids" },
    Known { name: "verify_x509_test/VerifyX509Test.RealToken", kind: Kind::NotApplicable, verdict: "jwks=refused(no-keys-array) sig=keys_not_loaded full=iat_in_future as-jwk: jwks=ok sig=ok full=iat_in_future", why: "X.509 map key format; converted to a JWK the signature verifies (`iat` is in the future at now = 1)" },
    Known { name: "verify_audiences_test/VerifyAudTest.MissingAudience", kind: Kind::OtherReason, verdict: "jwks=none sig=keys_not_loaded full=exp_missing", why: "refused too: the missing `exp` is found before the audience (audience_match.json covers the audience rule)" },
    Known { name: "verify_audiences_test/VerifyAudTest.Success#1", kind: Kind::Stricter, verdict: "jwks=ok sig=ok full=exp_missing", why: "no `exp` claim; the signature verifies" },
    Known { name: "verify_audiences_test/VerifyAudTest.Success#2", kind: Kind::Stricter, verdict: "jwks=ok sig=ok full=exp_missing", why: "no `exp` claim (and an empty audience list allows nothing in oidc-edge); the signature verifies" },
    Known { name: "verify_pem_rsa_test/VerifyPKCSTestRs256.OKPem", kind: Kind::NotApplicable, verdict: "jwks=refused(not-json) sig=keys_not_loaded full=exp_missing as-jwk: jwks=ok sig=ok full=exp_missing", why: "PEM key format; as a JWK the RS256 signature verifies, the token has no `exp`" },
    Known { name: "verify_pem_rsa_test/VerifyPKCSTestRs384.OKPem", kind: Kind::NotApplicable, verdict: "jwks=refused(not-json) sig=keys_not_loaded full=exp_missing as-jwk: jwks=ok sig=ok full=exp_missing", why: "PEM key format; as a JWK the RS384 signature verifies, the token has no `exp`" },
    Known { name: "verify_pem_rsa_test/VerifyPKCSTestRs512.OKPem", kind: Kind::NotApplicable, verdict: "jwks=refused(not-json) sig=keys_not_loaded full=exp_missing as-jwk: jwks=ok sig=ok full=exp_missing", why: "PEM key format; as a JWK the RS512 signature verifies, the token has no `exp`" },
    Known { name: "verify_pem_ec_test/VerifyPKCSTestRs256.OKPem", kind: Kind::NotApplicable, verdict: "jwks=refused(not-json) sig=keys_not_loaded full=exp_missing as-jwk: jwks=ok sig=ok full=exp_missing", why: "PEM key format; as a JWK the ES256 signature verifies, the token has no `exp`" },
    Known { name: "verify_pem_ec_test/VerifyPKCSTestES384.OKPem", kind: Kind::NotApplicable, verdict: "jwks=refused(not-json) sig=keys_not_loaded full=exp_missing as-jwk: jwks=ok sig=ok full=exp_missing", why: "PEM key format; as a JWK the ES384 signature verifies, the token has no `exp`" },
    Known { name: "verify_pem_ec_test/VerifyPKCSTestES512.OKPem", kind: Kind::NotApplicable, verdict: "jwks=refused(not-json) sig=alg_not_allowed full=alg_not_allowed as-jwk: jwks=refused(no-usable-key) sig=alg_not_allowed full=alg_not_allowed", why: "PEM key format; ES512/P-521 is not supported either way" },
    Known { name: "verify_pem_ec_test/VerifyPKCSTestES384.ES384CurveUnspecifiedOK", kind: Kind::NotApplicable, verdict: "jwks=refused(not-json) sig=keys_not_loaded full=exp_missing as-jwk: jwks=ok sig=ok full=exp_missing", why: "PEM key format; as a JWK (crv from the key) ES384 verifies" },
    Known { name: "verify_pem_ec_test/VerifyPKCSTestRs256.jwksAlgUnspecifiedDoesNotMatchJwtFail", kind: Kind::NotApplicable, verdict: "jwks=refused(not-json) sig=keys_not_loaded full=exp_missing as-jwk: jwks=ok sig=key_alg_mismatch full=exp_missing", why: "PEM key format; as a JWK a P-384 key is never tried for ES256 (the key's curve fixes the algorithm)" },
    Known { name: "verify_pem_ec_test/VerifyPKCSTestRs256.jwksIncorrectAlgSpecifiedFail", kind: Kind::NotApplicable, verdict: "jwks=refused(not-json) sig=keys_not_loaded full=exp_missing as-jwk: jwks=refused(no-usable-key) sig=keys_not_loaded full=exp_missing", why: "PEM key format; with the test's ES512/P-512 override the key itself is unusable" },
    Known { name: "verify_pem_okp_test/VerifyPEMTestOKP.VerifyOK", kind: Kind::NotApplicable, verdict: "jwks=refused(not-json) sig=keys_not_loaded full=exp_missing as-jwk: jwks=ok sig=ok full=exp_missing", why: "PEM key format; as a JWK the Ed25519 signature verifies" },
    Known { name: "verify_pem_okp_test/VerifyPEMTestOKP.jwksIncorrectAlgSpecifiedFail", kind: Kind::NotApplicable, verdict: "jwks=refused(not-json) sig=keys_not_loaded full=exp_missing as-jwk: jwks=refused(no-usable-key) sig=keys_not_loaded full=exp_missing", why: "PEM key format; with the RS256 override on an OKP key the key is unusable (alg does not fit kty)" },
    Known { name: "verify_pem_okp_test/VerifyPEMTestOKP.WrongSignatureFail", kind: Kind::NotApplicable, verdict: "jwks=refused(not-json) sig=keys_not_loaded full=exp_missing as-jwk: jwks=ok sig=signature_invalid full=exp_missing", why: "PEM key format; as a JWK the foreign signature is refused" },
];

/// How many `verify.json` cases get the upstream verdict from key selection and signature
/// alone: every `jwks` case except HMAC (9), ES512 (1) and the EC case where a token kid
/// meets a set that mixes kid-less keys with kids (1: a kid only matches its key; a set
/// with no kids at all ignores the token's kid); the PEM / X.509 / no-key cases (15) have
/// no JWKS to select from.
const SIGNATURE_LEVEL_AGREES: usize = 27;

struct VerifyCase {
    keys: Keys,
    /// PEM / X.509 material converted to a JWKS by the test.
    converted: Option<Keys>,
    now: u64,
}

fn verify_setup(case: &Value) -> VerifyCase {
    let format = s(case, "key_format");
    let material = opt_s(case, "jwks");
    let now = case.get("now").and_then(Value::as_u64).unwrap_or(1);
    let (keys, converted) = match (format, material) {
        ("none", _) | (_, None) => (Keys { set: KeySet::default(), label: "none".into() }, None),
        ("jwks", Some(text)) => {
            let mut keys = load_keys(text);
            if case.get("strict_json") == Some(&Value::Bool(false)) {
                let strict = load_keys(s(case, "jwks_strict"));
                keys.label = format!("{} strict:{}", keys.label, strict.label);
            }
            (keys, None)
        }
        (other, Some(text)) => {
            let converted = as_jwks(other, text, case.get("key_overrides").filter(|v| !v.is_null()))
                .unwrap_or_else(|e| panic!("{}: converting the {other} key: {e}", s(case, "name")));
            (load_keys(text), Some(load_keys(&converted)))
        }
    };
    VerifyCase { keys, converted, now }
}

/// The verdict string, and the key-selection + signature verdict alone (as
/// `jwks=… sig=…`) for the signature-level count.
fn verify_verdict(case: &Value, setup: &VerifyCase) -> (String, String) {
    let token = s(case, "jwt");
    let allowed = case.get("audiences").filter(|v| !v.is_null());
    let level = |keys: &Keys| {
        let sig = signature_level(token, &keys.set);
        let full = full_level(token, &keys.set, allowed, setup.now);
        (format!("jwks={} sig={} full={}", keys.label, code(&sig), code(&full)), format!("jwks={} sig={}", keys.label, code(&sig)))
    };
    let (mut verdict, sig_only) = level(&setup.keys);
    if let Some(converted) = &setup.converted {
        verdict = format!("{verdict} as-jwk: {}", level(converted).0);
    }
    (verdict, sig_only)
}

/// The oidc-edge equivalent of each upstream status of `verify.json`.
fn verify_agrees(expect: &str, verdict: &str) -> bool {
    match expect {
        "ok" => verdict == "jwks=ok sig=ok full=ok",
        "JwksKidAlgMismatch" => ["kid_unknown", "key_alg_mismatch"].iter().any(|c| verdict == format!("jwks=ok sig={c} full={c}")),
        "JwtVerificationFail" => verdict == "jwks=ok sig=signature_invalid full=signature_invalid",
        "JwtAudienceNotAllowed" => verdict.ends_with(" full=aud_mismatch"),
        _ => false,
    }
}

#[test]
fn verify_json_every_case() {
    let mut tally = Tally::new("verify.json", VERIFY_DIFFERS);
    let all = cases("jwt_verify_lib/verify.json");
    assert_eq!(all.len(), 53, "verify.json has 53 cases");
    let mut signature_level_agrees = 0;
    for case in &all {
        let setup = verify_setup(case);
        let (verdict, sig_only) = verify_verdict(case, &setup);
        let expect = s(case, "expect");
        tally.record(s(case, "name"), expect, &verdict, verify_agrees(expect, &verdict));
        // The same comparison on key selection + signature alone (no claim policy).
        let sig = sig_only.rsplit_once("sig=").map(|(_, c)| c).unwrap_or_default();
        if expect != "JwtAudienceNotAllowed" && verify_agrees(expect, &format!("{sig_only} full={sig}")) {
            signature_level_agrees += 1;
        }
    }
    println!("verify.json, key selection + signature alone: {signature_level_agrees} of 53 cases give the upstream verdict");
    assert_eq!(signature_level_agrees, SIGNATURE_LEVEL_AGREES);
    tally.finish();
}

/// Upstream's `fuzz_signature` loops: one-bit flips and every truncation of the token's
/// signature, re-encoded without padding. oidc-edge must reject every one (and not
/// panic). Where the unmodified token verified, the rejection must be the upstream one
/// (signature_invalid, which also covers jwt_verify_lib's Ed25519 wrong-length status)
/// and `jwt::validate` must reject it too when it accepted the original; where the
/// original did not verify, mutating its signature changes nothing.
///
/// The keys are the ones oidc-edge holds for the case; for PEM / X.509 material, which
/// oidc-edge does not read (so it holds none), the converted JWKs when `converted` is set,
/// so the mutations still meet the crypto.
///
/// Returns (cases, mutated signatures, cases that reached the signature check, RS*
/// verifications cross-checked against the `rsa` crate).
fn fuzz_signature_loops(flips: fn(usize) -> std::ops::Range<u8>, converted: bool) -> (usize, usize, usize, usize) {
    let fuzzed: Vec<Value> = cases("jwt_verify_lib/verify.json").into_iter().filter(|c| !c["fuzz_signature"].is_null()).collect();
    // RSA in a debug build costs about a millisecond: two workers share the cases.
    let workers = 2;
    let add = |(m, r, x): (usize, usize, usize), (m2, r2, x2): (usize, usize, usize)| (m + m2, r + r2, x + x2);
    let results: Vec<(usize, usize, usize)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|w| {
                let mine: Vec<&Value> = fuzzed.iter().skip(w).step_by(workers).collect();
                scope.spawn(move || mine.into_iter().map(|case| fuzz_one(case, flips, converted)).fold((0, 0, 0), add))
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("a fuzz worker panicked")).collect()
    });
    let (mutated, reached, cross_checked) = results.into_iter().fold((0, 0, 0), add);
    (fuzzed.len(), mutated, reached, cross_checked)
}

fn fuzz_one(case: &Value, flips: fn(usize) -> std::ops::Range<u8>, converted: bool) -> (usize, usize, usize) {
    let fuzz = &case["fuzz_signature"];
    let name = s(case, "name");
    let setup = verify_setup(case);
    let keys = match &setup.converted {
        Some(c) if converted && setup.keys.set.is_empty() => &c.set,
        _ => &setup.keys.set,
    };
    let token = s(case, "jwt");
    let (signing_input, sig_b64) = token.rsplit_once('.').unwrap();
    let sig = b64_loose(sig_b64).unwrap_or_else(|| panic!("{name}: signature not base64url"));
    // Padding aside (a separate, deliberate refusal), the token as upstream verifies it.
    let canonical = format!("{signing_input}.{}", oidc_edge::b64::url_encode(&sig));
    let baseline = signature_level(&canonical, keys);
    let allowed = case.get("audiences").filter(|v| !v.is_null());
    let full_baseline = full_level(&canonical, keys, allowed, setup.now);
    let wanted = |status: &str| -> Result<(), Reason> {
        baseline?;
        match status {
            "JwtVerificationFail" | "JwtEd25519SignatureWrongLength" => Err(Reason::SignatureInvalid),
            "JwksKidAlgMismatch" => Err(Reason::KeyAlgMismatch),
            other => panic!("{name}: unmapped fuzz status {other}"),
        }
    };
    let cross_checked = std::cell::Cell::new(0usize);
    let check = |bytes: &[u8], status: &str, what: &dyn Fn() -> String| {
        let t = format!("{signing_input}.{}", oidc_edge::b64::url_encode(bytes));
        let (got, rsa_checks) = signature_level_cross_checked(&t, keys);
        cross_checked.set(cross_checked.get() + rsa_checks);
        assert_eq!(got, wanted(status), "{name}: {}", what());
        if full_baseline.is_ok() {
            assert_eq!(full_level(&t, keys, allowed, setup.now), Err(Reason::SignatureInvalid), "{name}: full check, {}", what());
        }
    };
    let (flip, truncate) = (s(fuzz, "bit_flip"), s(fuzz, "truncate"));
    let mut mutated = 0;
    for i in 0..sig.len() {
        for bit in flips(i) {
            let mut m = sig.clone();
            m[i] ^= 1 << bit;
            check(&m, flip, &|| format!("bit {bit} of byte {i} flipped"));
            mutated += 1;
        }
    }
    for n in 1..sig.len() {
        check(&sig[..n], truncate, &|| format!("truncated to {n} bytes"));
        mutated += 1;
    }
    println!("{name}: unmodified sig={} full={}; {mutated} mutations rejected", code(&baseline), code(&full_baseline));
    (mutated, usize::from(baseline.is_ok()), cross_checked.get())
}

/// Every truncation, and one flipped bit per byte (bit `i % 8` of byte `i`, so every byte
/// and every bit position is hit), with the keys oidc-edge holds: the fast loop that
/// `cargo test` runs. (PEM / X.509 cases: no keys, each mutation is refused before any
/// crypto; their converted keys meet the mutations in the exhaustive run.)
#[test]
fn verify_json_fuzz_signature_loops() {
    let one_bit_per_byte = |i: usize| {
        let bit = (i % 8) as u8;
        bit..bit + 1
    };
    let (cases, mutated, reached, rsa) = fuzz_signature_loops(one_bit_per_byte, false);
    println!("fuzz_signature (one bit per byte): {cases} cases, {mutated} mutated signatures rejected, {reached} cases reached the signature check, {rsa} RS* verifications agreed with the rsa crate");
    assert_eq!((cases, mutated, reached, rsa), (29, 8467, 12, 3066));
}

/// Upstream's loops in full: every bit of every byte and every truncation, 38,203
/// mutated signatures as the README counts them. Takes about 40 s in a debug build (RSA
/// and P-384 are slow unoptimised), so it is opt-in:
/// `cargo test --test vectors_jwt_verify_lib -- --ignored` (or `make vectors-exhaustive`).
#[test]
#[ignore = "exhaustive: ~40 s in debug; run with --ignored"]
fn verify_json_fuzz_signature_loops_exhaustive() {
    let (cases, mutated, reached, rsa) = fuzz_signature_loops(|_| 0..8, true);
    println!("fuzz_signature (every bit): {cases} cases, {mutated} mutated signatures rejected, {reached} cases reached the signature check, {rsa} RS* verifications agreed with the rsa crate");
    assert_eq!((cases, mutated, reached, rsa), (29, 38_203, 20, 27_636));
}

// ---------------------------------------------------------------------------------------
// jwks_parse.json

const JWKS_DIFFERS: &[Known] = &[
    Known { name: "jwks_test/JwksParseTest.GoodOKP", kind: Kind::Stricter, verdict: "refused(no-usable-key: Ed25519 key is not a valid curve point)", why: "the test's `x` is the P-256 `x` of GoodEC reused: 32 bytes that do not decode to an Ed25519 point. Upstream checks only the length and would fail at the first verification; oidc-edge refuses the key when the set is read, so a broken set never displaces a good one" },
    Known { name: "jwks_test/JwksParseTest.JwksIgnoreUnsupportedKey", kind: Kind::Stricter, verdict: "refused(no-usable-key: Ed25519 key is not a valid curve point; OKP curve not supported (only Ed25519))", why: "its one Ed25519 key is GoodOKP's invalid point (see there) and X25519 is not a signature curve: no usable key is left" },
    Known { name: "jwks_test/JwksParseTest.JwksIgnoreUnsupportedKeyInMiddle", kind: Kind::Stricter, verdict: "ok keys=[three] skipped=[Ed25519 key is not a valid curve point; OKP curve not supported (only Ed25519)]", why: "the X25519 key is skipped as upstream does, and so is the invalid Ed25519 point (see GoodOKP); the P-256 key is kept" },
    Known { name: "jwks_test/JwksParseTest.GoodEC", kind: Kind::Stricter, verdict: "ok keys=[abc,xyz,es384] skipped=[`alg` is not a supported signature algorithm]", why: "the ES512 / P-521 key is skipped: ES512 is not supported" },
    Known { name: "jwks_test/JwksParseTest.JwksMismatchKty1", kind: Kind::OtherReason, verdict: "refused(no-usable-key: a required key member is missing)", why: "refused too; `n` is read before `alg` is matched against `kty`" },
    Known { name: "jwks_test/JwksParseTest.JwksMismatchKty2", kind: Kind::OtherReason, verdict: "refused(no-usable-key: EC key without `crv`)", why: "refused too; `crv` (required by RFC 7518 6.2.1.1) is checked first" },
    Known { name: "jwks_test/JwksParseTest.JwksECNoXY", kind: Kind::OtherReason, verdict: "refused(no-usable-key: EC key without `crv`)", why: "refused too; the missing `crv` is found before the missing `x`" },
    Known { name: "jwks_test/JwksParseTest.JwksRSAKeyMissingE", kind: Kind::OtherReason, verdict: "refused(no-usable-key: a key member is not base64url)", why: "refused too; `n` = \"NNNNN\" is not base64url and is decoded before `e` is looked for" },
    Known { name: "jwks_test/JwksParseTest.JwksRSAKeyBadE", kind: Kind::OtherReason, verdict: "refused(no-usable-key: a key member is not base64url)", why: "refused too; the bad `n` is found before the numeric `e`" },
    Known { name: "jwks_test/JwksParseTest.JwksECXYBadBase64", kind: Kind::OtherReason, verdict: "refused(no-usable-key: EC key without `crv`)", why: "refused too; no `crv` (oidc-edge does not infer it from `alg`)" },
    Known { name: "jwks_test/JwksParseTest.JwksECWrongXY", kind: Kind::OtherReason, verdict: "refused(no-usable-key: EC key without `crv`)", why: "refused too; no `crv`" },
    Known { name: "jwks_test/JwksParseTest.JwksJwkOctBadAlg", kind: Kind::OtherReason, verdict: "refused(no-usable-key: `alg` is not a supported signature algorithm)", why: "refused too; no HMAC algorithm is supported at all" },
    Known { name: "jwks_test/JwksParseTest.JwksJwkOctBadMissingK", kind: Kind::OtherReason, verdict: "refused(no-usable-key: `alg` is not a supported signature algorithm)", why: "refused too; HS256 is never a verification algorithm for oidc-edge" },
    Known { name: "jwks_test/JwksParseTest.JwksJwkOctBadK", kind: Kind::OtherReason, verdict: "refused(private-members)", why: "refused too; any `k` member makes the whole set refused (symmetric key published)" },
    Known { name: "jwks_test/JwksParseTest.JwksJwkOctBadBase64", kind: Kind::OtherReason, verdict: "refused(private-members)", why: "refused too; `k` present: the whole set is refused" },
    Known { name: "jwks_test/JwksParseTest.JwksECMatchAlgES512CrvP521", kind: Kind::Stricter, verdict: "refused(no-usable-key: `alg` is not a supported signature algorithm)", why: "ES512 / P-521 is not supported" },
    Known { name: "jwks_test/JwksParseTest.JwksECMissingBothAlgCrvES256", kind: Kind::Stricter, verdict: "refused(no-usable-key: EC key without `crv`)", why: "`crv` is required (RFC 7518 6.2.1.1); oidc-edge does not assume P-256" },
    Known { name: "jwks_test/JwksParseTest.JwksECMissingBothAlgES384", kind: Kind::OtherReason, verdict: "refused(no-usable-key: EC key without `crv`)", why: "refused too; no `crv` (upstream assumes P-256 and then fails on the P-384 point)" },
    Known { name: "jwks_test/JwksParseTest.JwksECMismatchAlgCrv1", kind: Kind::OtherReason, verdict: "refused(no-usable-key: a required key member is missing)", why: "refused too; the missing `x` is found before `alg` is matched against `crv`" },
    Known { name: "jwks_test/JwksParseTest.JwkECMissingAlg", kind: Kind::Stricter, verdict: "refused(no-usable-key: EC curve not supported)", why: "P-521 is not supported" },
    Known { name: "jwks_test/JwksParseTest.JwkECMissingCrv", kind: Kind::Stricter, verdict: "refused(no-usable-key: `alg` is not a supported signature algorithm)", why: "ES512 is not supported (and `crv` would be required)" },
    Known { name: "jwks_test/JwksParseTest.JwksECMismatchAlgCrv2", kind: Kind::OtherReason, verdict: "refused(no-usable-key: EC curve not supported)", why: "refused too; P-521 is not supported, so the mismatch is not reached" },
    Known { name: "jwks_test/JwksParseTest.JwksECMismatchAlgCrv3", kind: Kind::OtherReason, verdict: "refused(no-usable-key: `alg` is not a supported signature algorithm)", why: "refused too; ES512 is not supported, so the mismatch is not reached" },
    Known { name: "jwks_test/JwksParseTest.JwksECNotSupportedAlg", kind: Kind::OtherReason, verdict: "refused(not-json) strict:refused(no-usable-key: `alg` is not a supported signature algorithm)", why: "refused too; a trailing comma is not JSON (the strict variant is refused for its alg)" },
    Known { name: "jwks_test/JwksParseTest.JwksECUnspecifiedCrv", kind: Kind::Stricter, verdict: "refused(no-usable-key: EC key without `crv`; EC key without `crv`; `alg` is not a supported signature algorithm)", why: "`crv` is required, not inferred from `alg`; ES512 is not supported" },
    Known { name: "jwks_test/JwksParseTest.JwksOKPKeyBadAlg", kind: Kind::OtherReason, verdict: "refused(no-usable-key: OKP curve not supported (only Ed25519))", why: "refused too; the missing `crv` is found before the foreign `alg`" },
    Known { name: "jwks_test/JwksParseTest.JwksGoodX509", kind: Kind::NotApplicable, verdict: "refused(no-keys-array)", why: "X.509 certificate map: oidc-edge reads only RFC 7517 JWKS (verify.json converts these keys to check their signatures)" },
    Known { name: "jwks_test/JwksParseTest.RealJwksX509", kind: Kind::NotApplicable, verdict: "refused(no-keys-array)", why: "X.509 certificate map: only RFC 7517 JWKS" },
    Known { name: "jwks_test/JwksParseTest.JwksX509WrongTypeArray", kind: Kind::OtherReason, verdict: "refused(not-json) strict:refused(no-keys-array)", why: "refused too; a trailing comma is not JSON (strict variant: no `keys`)" },
    Known { name: "jwks_test/JwksParseTest.JwksX509EmptyKid", kind: Kind::OtherReason, verdict: "refused(not-json) strict:refused(no-keys-array)", why: "refused too; a trailing comma is not JSON (strict variant: no `keys`)" },
    Known { name: "jwks_test/JwksParseTest.JwksX509NotSuffixPrefix", kind: Kind::OtherReason, verdict: "refused(not-json) strict:refused(no-keys-array)", why: "refused too; a trailing comma is not JSON (strict variant: no `keys`)" },
    Known { name: "jwks_test/JwksParseTest.JwksX509NotSuffix", kind: Kind::OtherReason, verdict: "refused(not-json) strict:refused(no-keys-array)", why: "refused too; a trailing comma is not JSON (strict variant: no `keys`)" },
    Known { name: "jwks_test/JwksParseTest.JwksX509NotPrefix", kind: Kind::OtherReason, verdict: "refused(not-json) strict:refused(no-keys-array)", why: "refused too; a trailing comma is not JSON (strict variant: no `keys`)" },
    Known { name: "jwks_test/JwksParseTest.JwksX509WrongPubkey", kind: Kind::OtherReason, verdict: "refused(not-json) strict:refused(no-keys-array)", why: "refused too; not JSON, and X.509 maps are not read at all" },
    Known { name: "jwks_test/JwksParseTest.goodPEMRSA", kind: Kind::NotApplicable, verdict: "refused(not-json)", why: "PEM key: oidc-edge reads only RFC 7517 JWKS" },
    Known { name: "jwks_test/JwksParseTest.goodPEMEC", kind: Kind::NotApplicable, verdict: "refused(not-json)", why: "PEM key: only RFC 7517 JWKS" },
    Known { name: "jwks_test/JwksParseTest.goodPEMEd25519", kind: Kind::NotApplicable, verdict: "refused(not-json)", why: "PEM key: only RFC 7517 JWKS" },
    Known { name: "jwks_test/JwksParseTest.PemWrongHeader", kind: Kind::NotApplicable, verdict: "refused(not-json)", why: "PEM input (refused as not JSON)" },
    Known { name: "jwks_test/JwksParseTest.PemInvalidKey", kind: Kind::NotApplicable, verdict: "refused(not-json)", why: "PEM input (refused as not JSON)" },
    Known { name: "jwks_test/JwksParseTest.PemDsaUnimplimented", kind: Kind::NotApplicable, verdict: "refused(not-json)", why: "PEM input (refused as not JSON)" },
    Known { name: "jwks_test/JwksParseTest.CreateFromPemError", kind: Kind::NotApplicable, verdict: "refused(not-json)", why: "PEM input (refused as not JSON)" },
    Known { name: "verify_jwk_ec_test/fixture:PublicKeyJwkEC", kind: Kind::Stricter, verdict: "ok keys=[abc,xyz,es384] skipped=[`alg` is not a supported signature algorithm]", why: "the ES512 / P-521 key is skipped" },
    Known { name: "verify_jwk_hmac_test/fixture:SymmetricKeyHMAC", kind: Kind::Stricter, verdict: "refused(not-json) strict:refused(private-members)", why: "trailing comma is not JSON; the strict variant publishes symmetric keys (`k`): the whole set is refused" },
    Known { name: "verify_pem_rsa_test/fixture:pubkey", kind: Kind::NotApplicable, verdict: "refused(not-json)", why: "PEM key: only RFC 7517 JWKS" },
    Known { name: "verify_pem_ec_test/fixture:es256pubkey", kind: Kind::NotApplicable, verdict: "refused(not-json)", why: "PEM key: only RFC 7517 JWKS" },
    Known { name: "verify_pem_ec_test/fixture:es384pubkey", kind: Kind::NotApplicable, verdict: "refused(not-json)", why: "PEM key: only RFC 7517 JWKS" },
    Known { name: "verify_pem_ec_test/fixture:es512pubkey", kind: Kind::NotApplicable, verdict: "refused(not-json)", why: "PEM key: only RFC 7517 JWKS (and P-521 is not supported)" },
    Known { name: "verify_pem_okp_test/fixture:ed25519pubkey", kind: Kind::NotApplicable, verdict: "refused(not-json)", why: "PEM key: only RFC 7517 JWKS" },
];

/// A good RSA key set beside a single key lets the set parse, so the key's own skip
/// reason can be read (a set with no usable key is refused as a whole, without details).
fn anchor() -> Value {
    let rfc = support::load("rfc7520/4_1.rsa_v15_signature.json");
    let mut key = support::public_only(&rfc["input"]["key"]);
    key["kid"] = json!("test-anchor");
    key
}

fn family_fields(k: &Jwk) -> (&'static str, Option<&'static str>) {
    match k.family {
        KeyFamily::Rsa => ("RSA", None),
        KeyFamily::P256 => ("EC", Some("P-256")),
        KeyFamily::P384 => ("EC", Some("P-384")),
        KeyFamily::Ed25519 => ("OKP", Some("Ed25519")),
    }
}

enum JwksOutcome {
    Usable { keys: Vec<Jwk>, skipped: Vec<&'static str> },
    Refused { category: &'static str, why: Vec<&'static str> },
}

fn jwks_outcome(text: &str) -> JwksOutcome {
    match jwks::parse_jwks(text.as_bytes()) {
        Ok((set, skipped)) => JwksOutcome::Usable { keys: set.keys().to_vec(), skipped: skipped.iter().map(|s| s.why).collect() },
        Err(e) => {
            let category = jwks_error_category(&e);
            let mut why = Vec::new();
            if category == "no-usable-key" {
                let parsed: Value = serde_json::from_str(text).unwrap();
                for item in parsed["keys"].as_array().unwrap() {
                    let (_, skipped) = jwks::parse_key_list(&[item.clone(), anchor()]).unwrap();
                    why.push(skipped.first().map(|s| s.why).unwrap_or("usable"));
                }
            }
            JwksOutcome::Refused { category, why }
        }
    }
}

fn jwks_verdict_text(o: &JwksOutcome) -> String {
    match o {
        JwksOutcome::Usable { keys, skipped } => {
            let kids: Vec<&str> = keys.iter().map(|k| k.kid.as_deref().unwrap_or("(no kid)")).collect();
            let mut v = format!("ok keys=[{}]", kids.join(","));
            if !skipped.is_empty() {
                v.push_str(&format!(" skipped=[{}]", skipped.join("; ")));
            }
            v
        }
        JwksOutcome::Refused { category, why } if why.is_empty() => format!("refused({category})"),
        JwksOutcome::Refused { category, why } => format!("refused({category}: {})", why.join("; ")),
    }
}

/// The skip reasons (or whole-set refusals) oidc-edge gives for each upstream JWKS status.
fn jwks_equivalents(status: &str) -> &'static [&'static str] {
    match status {
        "JwksParseError" => &["not-json"],
        "JwksNoKeys" | "JwksBadKeys" => &["no-keys-array"],
        "JwksNotImplementedKty" => &["key type not supported"],
        "JwksMissingKty" => &["no `kty`"],
        "JwksRSAKeyMissingN" | "JwksRSAKeyMissingE" | "JwksECKeyMissingX" | "JwksECKeyMissingY" | "JwksOKPKeyMissingX" => {
            &["a required key member is missing"]
        }
        "JwksBadKty" | "JwksRSAKeyBadN" | "JwksRSAKeyBadE" | "JwksECKeyBadX" | "JwksECKeyBadY" | "JwksOKPKeyBadX" | "JwksECKeyBadCrv"
        | "JwksOKPKeyBadCrv" => &["a member has the wrong type"],
        "JwksEcXorYBadBase64" | "JwksOKPXBadBase64" => &["a key member is not base64url"],
        "JwksRsaParseError" => &["a key member is not base64url", "RSA key shorter than 2048 bits", "RSA exponent is not 3 or 65537"],
        "JwksEcParseError" => &["EC coordinate has the wrong length"],
        "JwksOKPXWrongLength" => &["Ed25519 key has the wrong length"],
        "JwksRSAKeyBadAlg" | "JwksECKeyBadAlg" | "JwksOKPKeyBadAlg" | "JwksECKeyAlgNotCompatibleWithCrv" => &["`alg` does not fit the key type"],
        "JwksECKeyAlgOrCrvUnsupported" => &["EC curve not supported", "`alg` is not a supported signature algorithm"],
        "JwksOKPKeyMissingCrv" | "JwksOKPKeyCrvUnsupported" => &["OKP curve not supported (only Ed25519)"],
        _ => &[],
    }
}

fn jwks_agrees(case: &Value, o: &JwksOutcome) -> bool {
    let expect = s(case, "expect");
    if s(case, "format") != "jwks" {
        return false;
    }
    match (expect, o) {
        ("ok", JwksOutcome::Usable { keys, skipped }) => {
            let count_ok = match case.get("expect_key_count").and_then(Value::as_u64) {
                Some(n) => keys.len() as u64 == n,
                // Unasserted upstream: every key of the text loads there, so all must here.
                None => skipped.is_empty(),
            };
            let fields_ok = match case.get("expect_keys").and_then(Value::as_array) {
                None => true,
                Some(want) => {
                    want.len() == keys.len()
                        && want.iter().zip(keys).all(|(w, k)| {
                            let (kty, crv) = family_fields(k);
                            opt_s(w, "kid").is_none_or(|kid| k.kid.as_deref() == Some(kid))
                                && opt_s(w, "alg").is_none_or(|alg| k.alg.map(Alg::name) == Some(alg))
                                && opt_s(w, "kty").is_none_or(|t| t == kty)
                                && opt_s(w, "crv").is_none_or(|c| Some(c) == crv)
                        })
                }
            };
            count_ok && fields_ok
        }
        ("ok", JwksOutcome::Refused { .. }) => false,
        (_, JwksOutcome::Usable { .. }) => false,
        (status, JwksOutcome::Refused { category, why }) => {
            let accepted = jwks_equivalents(status);
            if why.is_empty() {
                accepted.contains(category)
            } else {
                // Upstream reports the first key's error; so does this comparison.
                why.first().is_some_and(|w| accepted.contains(w))
            }
        }
    }
}

#[test]
fn jwks_parse_json_every_case() {
    let mut tally = Tally::new("jwks_parse.json", JWKS_DIFFERS);
    let all = cases("jwt_verify_lib/jwks_parse.json");
    assert_eq!(all.len(), 81, "jwks_parse.json has 81 cases");
    for case in &all {
        let outcome = jwks_outcome(s(case, "jwks"));
        let mut verdict = jwks_verdict_text(&outcome);
        if let Some(strict) = opt_s(case, "jwks_strict").filter(|_| case.get("strict_json") == Some(&Value::Bool(false))) {
            verdict = format!("{verdict} strict:{}", jwks_verdict_text(&jwks_outcome(strict)));
        }
        tally.record(s(case, "name"), s(case, "expect"), &verdict, jwks_agrees(case, &outcome));
    }
    tally.finish();
}

// ---------------------------------------------------------------------------------------
// jwt_parse.json

const PARSE_DIFFERS: &[Known] = &[
    Known { name: "jwt_test/JwtParseTest.GoodJwt", kind: Kind::Stricter, verdict: "parse=ok claims=aud_missing completed:ok", why: "no `aud`: oidc-edge requires one; with an `aud` it passes" },
    Known { name: "jwt_test/JwtParseTest.TestParsePayloadSubNotString", kind: Kind::OtherReason, verdict: "parse=ok claims=aud_missing completed:claim_invalid", why: "refused too; the missing `aud` is found first; with it, the numeric `sub` is claim_invalid" },
    Known { name: "jwt_test/JwtParseTest.TestParsePayloadIatNotInteger", kind: Kind::OtherReason, verdict: "parse=ok claims=exp_missing completed:claim_invalid", why: "refused too; the missing `exp` is found first; with it, the string `iat` is claim_invalid" },
    Known { name: "jwt_test/JwtParseTest.TestParsePayloadIatNotPositive", kind: Kind::OtherReason, verdict: "parse=alg_not_allowed claims=iss_missing completed:claim_invalid", why: "refused too, at the HS256 header; the payload alone: negative `iat` is claim_invalid" },
    Known { name: "jwt_test/JwtParseTest.TestParsePayloadIatTooBig", kind: Kind::OtherReason, verdict: "parse=alg_not_allowed claims=iss_missing completed:claim_invalid", why: "refused too, at the HS256 header; the payload alone: `iat` 2e206 is claim_invalid" },
    Known { name: "jwt_test/JwtParseTest.TestParsePayloadIatDecimalsDrop", kind: Kind::Stricter, verdict: "parse=alg_not_allowed claims=iss_missing completed:ok", why: "HS256 is never accepted; the payload alone passes with the fraction of `iat` truncated (1234)" },
    Known { name: "jwt_test/JwtParseTest.TestParsePayloadNbfNotInteger", kind: Kind::OtherReason, verdict: "parse=ok claims=exp_missing completed:claim_invalid", why: "refused too; the missing `exp` is found first; with it, the string `nbf` is claim_invalid" },
    Known { name: "jwt_test/JwtParseTest.TestParsePayloadNbfNotPositive", kind: Kind::OtherReason, verdict: "parse=alg_not_allowed claims=iss_missing completed:claim_invalid", why: "refused too, at the HS256 header; the payload alone: negative `nbf` is claim_invalid" },
    Known { name: "jwt_test/JwtParseTest.TestParsePayloadNbfTooBig", kind: Kind::OtherReason, verdict: "parse=alg_not_allowed claims=iss_missing completed:claim_invalid", why: "refused too, at the HS256 header; the payload alone: `nbf` 2e206 is claim_invalid" },
    Known { name: "jwt_test/JwtParseTest.TestParsePayloadExpNotPositive", kind: Kind::OtherReason, verdict: "parse=alg_not_allowed claims=iss_missing completed:claim_invalid", why: "refused too, at the HS256 header; the payload alone: negative `exp` is claim_invalid" },
    Known { name: "jwt_test/JwtParseTest.TestParsePayloadExpTooBig", kind: Kind::OtherReason, verdict: "parse=alg_not_allowed claims=iss_missing completed:claim_invalid", why: "refused too, at the HS256 header; the payload alone: `exp` 2e206 is claim_invalid" },
    Known { name: "jwt_test/JwtParseTest.TestParsePayloadJtiNotString", kind: Kind::OtherReason, verdict: "parse=ok claims=exp_missing completed:ok", why: "refused too, for the missing `exp`; oidc-edge does not read `jti`, so a numeric `jti` alone would pass" },
    Known { name: "jwt_test/JwtParseTest.TestParsePayloadAudInteger", kind: Kind::OtherReason, verdict: "parse=ok claims=exp_missing completed:claim_invalid", why: "refused too; the missing `exp` is found first; with it, the numeric `aud` is claim_invalid" },
    Known { name: "jwt_test/JwtParseTest.TestParsePayloadAudIntegerList", kind: Kind::OtherReason, verdict: "parse=ok claims=exp_missing completed:claim_invalid", why: "refused too; the missing `exp` is found first; with it, `aud` [1,2] is claim_invalid" },
];

/// The claim policy that needs no key (`claims::check_before_signature`) on a payload,
/// with rules accepting the payload's own `iss`/`aud`, at its `nbf` (or 1), so that only
/// the presence and types of claims decide. When a registered claim that oidc-edge
/// requires is missing, `completed:` gives the verdict with it filled in, so the type
/// check that upstream's case is about is still shown.
fn claims_probe(claims: &Map<String, Value>) -> (String, Option<claims::Claims>) {
    let number = |name: &str| claims.get(name).and_then(Value::as_f64).filter(|f| *f >= 1.0 && *f < 1e15).map(|f| f as u64);
    // A moment at which the token's own times hold, so only presence and types decide.
    let now = number("nbf").max(number("iat")).unwrap_or(1);
    let run = |claims: &Map<String, Value>| {
        let (issuers, audiences) = accepted_claims(claims, None);
        let rules = ClaimRules {
            issuers: &issuers,
            audiences: &audiences,
            authorized_party: None,
            require_iat: false,
            nonce: None,
            access_token: None,
            now,
            skew: SKEW,
            token_use: oidc_edge::jwt::TokenUse::Bearer,
        };
        claims::check_before_signature(claims, &rules)
    };
    let first = run(claims);
    let first_code = code(&first.as_ref().map(|_| ()).map_err(|r| *r));
    if !["iss_missing", "aud_missing", "exp_missing", "sub_missing"].contains(&first_code) {
        return (first_code.to_string(), first.ok());
    }
    let mut filled = claims.clone();
    for (name, value) in [("iss", json!("https://issuer.example")), ("sub", json!("subject")), ("aud", json!("audience")), ("exp", json!(now + 3600))] {
        filled.entry(name).or_insert(value);
    }
    let completed = run(&filled);
    (format!("{first_code} completed:{}", code(&completed.as_ref().map(|_| ()).map_err(|r| *r))), completed.ok())
}

struct Parsed {
    verdict: String,
    /// The payload's claims, as `jwt::parse` decoded them (or the payload alone when
    /// only the header's `alg` was refused).
    raw: Option<Map<String, Value>>,
    /// oidc-edge's own reading of the registered claims, when the claim policy passed.
    checked: Option<claims::Claims>,
    signature: Option<Vec<u8>>,
    header: Option<jwt::Header>,
}

/// `jwt::parse`; then, when the token parses or only its `alg` is refused, the claim
/// policy on its payload.
fn parse_verdict(token: &str) -> Parsed {
    match jwt::parse(token, MAX_TOKEN_BYTES) {
        Ok(parsed) => {
            let (probe, checked) = claims_probe(&parsed.claims);
            Parsed {
                verdict: format!("parse=ok claims={probe}"),
                raw: Some(parsed.claims.clone()),
                checked,
                signature: Some(parsed.signature.clone()),
                header: Some(parsed.header.clone()),
            }
        }
        Err(r @ (Reason::AlgNotAllowed | Reason::AlgNone)) if payload_of(token).is_some() => {
            let raw = payload_of(token);
            let (probe, checked) = claims_probe(raw.as_ref().unwrap());
            Parsed { verdict: format!("parse={} claims={probe}", r.code()), raw, checked, signature: None, header: None }
        }
        Err(r) => Parsed { verdict: format!("parse={}", r.code()), raw: None, checked: None, signature: None, header: None },
    }
}

fn parse_agrees(expect: &str, verdict: &str) -> bool {
    let want = match expect {
        "ok" => return verdict == "parse=ok claims=ok",
        "JwtBadFormat" => "parse=token_malformed",
        "JwtHeaderParseErrorBadBase64" | "JwtPayloadParseErrorBadBase64" | "JwtSignatureParseErrorBadBase64" => "parse=token_bad_base64",
        "JwtHeaderParseErrorBadJson" | "JwtPayloadParseErrorBadJson" => "parse=token_bad_json",
        "JwtHeaderBadAlg" => "parse=alg_missing",
        "JwtHeaderNotImplementedAlg" => "parse=alg_not_allowed",
        "JwtHeaderBadKid" => "parse=kid_invalid",
        s if s.starts_with("JwtPayloadParseError") => return verdict == "parse=ok claims=claim_invalid",
        _ => return false,
    };
    // A refused header or shape: the claims (if shown) do not matter.
    verdict == want || verdict.starts_with(&format!("{want} "))
}

/// Compares upstream's `expect_claims` with what oidc-edge extracted: its checked claims
/// (`Claims`) for the registered ones when the claim policy passed, else the payload as
/// `jwt::parse` decoded it; header fields from the parsed header.
fn check_claims(name: &str, want: &Map<String, Value>, p: &Parsed) -> Vec<String> {
    let mut bad = Vec::new();
    let Some(raw) = &p.raw else {
        return vec![format!("{name}: upstream asserts claims but the payload was not read")];
    };
    let c = p.checked.as_ref();
    let raw_num = |k: &str| raw.get(k).and_then(Value::as_f64).map(|f| f.trunc() as u64);
    let raw_text = |k: &str| raw.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    for (key, value) in want {
        let got: Value = match key.as_str() {
            "alg" | "kid" | "signature_utf8" if p.header.is_none() => {
                bad.push(format!("{name}: {key} cannot be compared: the header was refused"));
                continue;
            }
            "alg" => json!(p.header.as_ref().map(|h| h.alg.name())),
            "kid" => json!(p.header.as_ref().and_then(|h| h.kid.clone()).unwrap_or_default()),
            "signature_utf8" => json!(String::from_utf8_lossy(p.signature.as_deref().unwrap_or_default())),
            "iss" => json!(c.map(|c| c.iss.clone()).unwrap_or_else(|| raw_text("iss"))),
            "sub" => json!(c.map(|c| c.sub.clone()).unwrap_or_else(|| raw_text("sub"))),
            "jti" => json!(raw_text("jti")),
            "exp" => json!(c.map(|c| c.exp).or_else(|| raw_num("exp")).unwrap_or(0)),
            "iat" => json!(c.and_then(|c| c.iat).or_else(|| raw_num("iat")).unwrap_or(0)),
            "nbf" => json!(c.and_then(|c| c.nbf).or_else(|| raw_num("nbf")).unwrap_or(0)),
            "aud" => match (c, raw.get("aud")) {
                (Some(c), Some(_)) => json!(c.aud),
                (_, Some(Value::String(a))) => json!([a]),
                (_, Some(v @ Value::Array(_))) => v.clone(),
                _ => json!([]),
            },
            path if path.starts_with("payload.") => {
                let mut at = Some(Value::Object(raw.clone()));
                for part in path.trim_start_matches("payload.").split('.') {
                    at = at.and_then(|v| v.get(part).cloned());
                }
                at.unwrap_or(Value::Null)
            }
            // oidc-edge keeps only the header members it acts on (alg, kid, typ).
            path if path.starts_with("header.") => continue,
            other => {
                bad.push(format!("{name}: unknown expect_claims key {other}"));
                continue;
            }
        };
        if &got != value {
            bad.push(format!("{name}: claim {key}: upstream {value}, oidc-edge read {got}"));
        }
    }
    bad
}

#[test]
fn jwt_parse_json_every_case() {
    let mut tally = Tally::new("jwt_parse.json", PARSE_DIFFERS);
    let mut checked_claims = 0;
    let all = cases("jwt_verify_lib/jwt_parse.json");
    assert_eq!(all.len(), 32, "jwt_parse.json has 32 cases");
    for case in &all {
        let name = s(case, "name");
        let parsed = parse_verdict(s(case, "jwt"));
        if let Some(Value::Object(want)) = case.get("expect_claims") {
            for problem in check_claims(name, want, &parsed) {
                tally.fail(problem);
            }
            checked_claims += 1;
        }
        let verdict = parsed.verdict;
        let expect = s(case, "expect");
        tally.record(name, expect, &verdict, parse_agrees(expect, &verdict));
    }
    assert_eq!(checked_claims, 6, "the six cases with expect_claims were compared");
    tally.finish();
}

// ---------------------------------------------------------------------------------------
// time_constraint.json

const TIME_DIFFERS: &[Known] = &[
    Known { name: "jwt_time_test/VerifyExpTest.OnlyNbf#1", kind: Kind::Stricter, verdict: "exp_missing", why: "`exp` is required; upstream treats a missing `exp` as no expiry" },
    Known { name: "jwt_time_test/VerifyExpTest.OnlyNbf#2", kind: Kind::Stricter, verdict: "exp_missing", why: "`exp` is required" },
    Known { name: "jwt_time_test/VerifyExpTest.OnlyNbf#3", kind: Kind::OtherReason, verdict: "exp_missing", why: "refused too; the missing `exp` is found before `nbf`" },
    Known { name: "jwt_time_test/VerifyExpTest.NotTimeConstraint#1", kind: Kind::Stricter, verdict: "exp_missing", why: "`exp` is required" },
    Known { name: "jwt_time_test/VerifyExpTest.NotTimeConstraint#2", kind: Kind::Stricter, verdict: "exp_missing", why: "`exp` is required" },
];

/// The claim policy on the vector's claims (minus `ignore_claims`) at the vector's `now`
/// and skew. These claims carry no `aud` (the vector is about time only); the test adds
/// one that the rules accept, so the policy runs to its end.
fn time_verdict(case: &Value) -> String {
    let mut claims = payload_of(s(case, "jwt")).unwrap();
    for ignored in case["ignore_claims"].as_array().unwrap() {
        claims.remove(ignored.as_str().unwrap());
    }
    claims.insert("aud".into(), json!("time-test"));
    let (issuers, audiences) = (vec![claims["iss"].as_str().unwrap().to_string()], vec!["time-test".to_string()]);
    let rules = ClaimRules {
        issuers: &issuers,
        audiences: &audiences,
        authorized_party: None,
        require_iat: false,
        nonce: None,
        access_token: None,
        now: case["now"].as_u64().expect("now fits u64"),
        skew: case["clock_skew"].as_u64().unwrap(),
        token_use: oidc_edge::jwt::TokenUse::Bearer,
    };
    code(&claims::check_before_signature(&claims, &rules).map(|_| ())).to_string()
}

#[test]
fn time_constraint_json_every_case() {
    let mut tally = Tally::new("time_constraint.json", TIME_DIFFERS);
    let all = cases("jwt_verify_lib/time_constraint.json");
    assert_eq!(all.len(), 16, "time_constraint.json has 16 cases");
    for case in &all {
        let verdict = time_verdict(case);
        let expect = s(case, "expect");
        let want = match expect {
            "ok" => "ok",
            "JwtExpired" => "expired",
            "JwtNotYetValid" => "not_yet_valid",
            other => panic!("unexpected status {other}"),
        };
        tally.record(s(case, "name"), expect, &verdict, verdict == want);
    }
    tally.finish();
}

// ---------------------------------------------------------------------------------------
// audience_match.json

/// Upstream strips a leading `http://`/`https://` and one trailing `/` before comparing.
const NORMALISED: &str = "`aud` is compared exactly (OIDC Core 3.1.3.7), without scheme or trailing-slash normalisation";

const AUDIENCE_DIFFERS: &[Known] = &[
    Known { name: "check_audience_test/CheckAudienceTest.TestConfigNotPrefixNotTailing#1", kind: Kind::Stricter, verdict: "aud_mismatch", why: NORMALISED },
    Known { name: "check_audience_test/CheckAudienceTest.TestConfigNotPrefixNotTailing#2", kind: Kind::Stricter, verdict: "aud_mismatch", why: NORMALISED },
    Known { name: "check_audience_test/CheckAudienceTest.TestConfigNotPrefixNotTailing#3", kind: Kind::Stricter, verdict: "aud_mismatch", why: NORMALISED },
    Known { name: "check_audience_test/CheckAudienceTest.TestConfigNotPrefixNotTailing#4", kind: Kind::Stricter, verdict: "aud_mismatch", why: NORMALISED },
    Known { name: "check_audience_test/CheckAudienceTest.TestConfigNotPrefixNotTailing#5", kind: Kind::Stricter, verdict: "aud_mismatch", why: NORMALISED },
    Known { name: "check_audience_test/CheckAudienceTest.TestConfigHttpPrefixNotTailing#1", kind: Kind::Stricter, verdict: "aud_mismatch", why: NORMALISED },
    Known { name: "check_audience_test/CheckAudienceTest.TestConfigHttpPrefixNotTailing#2", kind: Kind::Stricter, verdict: "aud_mismatch", why: NORMALISED },
    Known { name: "check_audience_test/CheckAudienceTest.TestConfigHttpPrefixNotTailing#3", kind: Kind::Stricter, verdict: "aud_mismatch", why: NORMALISED },
    Known { name: "check_audience_test/CheckAudienceTest.TestConfigHttpPrefixNotTailing#4", kind: Kind::Stricter, verdict: "aud_mismatch", why: NORMALISED },
    Known { name: "check_audience_test/CheckAudienceTest.TestConfigHttpPrefixNotTailing#5", kind: Kind::Stricter, verdict: "aud_mismatch", why: NORMALISED },
    Known { name: "check_audience_test/CheckAudienceTest.TestConfigHttpsPrefixNotTailing#1", kind: Kind::Stricter, verdict: "aud_mismatch", why: NORMALISED },
    Known { name: "check_audience_test/CheckAudienceTest.TestConfigHttpsPrefixNotTailing#2", kind: Kind::Stricter, verdict: "aud_mismatch", why: NORMALISED },
    Known { name: "check_audience_test/CheckAudienceTest.TestConfigHttpsPrefixNotTailing#3", kind: Kind::Stricter, verdict: "aud_mismatch", why: NORMALISED },
    Known { name: "check_audience_test/CheckAudienceTest.TestConfigHttpsPrefixNotTailing#4", kind: Kind::Stricter, verdict: "aud_mismatch", why: NORMALISED },
    Known { name: "check_audience_test/CheckAudienceTest.TestConfigHttpsPrefixNotTailing#5", kind: Kind::Stricter, verdict: "aud_mismatch", why: NORMALISED },
    Known { name: "check_audience_test/CheckAudienceTest.TestConfigNotPrefixWithTailing#1", kind: Kind::Stricter, verdict: "aud_mismatch", why: NORMALISED },
    Known { name: "check_audience_test/CheckAudienceTest.TestConfigNotPrefixWithTailing#2", kind: Kind::Stricter, verdict: "aud_mismatch", why: NORMALISED },
    Known { name: "check_audience_test/CheckAudienceTest.TestConfigNotPrefixWithTailing#3", kind: Kind::Stricter, verdict: "aud_mismatch", why: NORMALISED },
    Known { name: "check_audience_test/CheckAudienceTest.TestConfigNotPrefixWithTailing#4", kind: Kind::Stricter, verdict: "aud_mismatch", why: NORMALISED },
    Known { name: "check_audience_test/CheckAudienceTest.TestConfigNotPrefixWithTailing#5", kind: Kind::Stricter, verdict: "aud_mismatch", why: NORMALISED },
    Known { name: "check_audience_test/CheckAudienceTest.TestConfigHttpPrefixWithTailing#1", kind: Kind::Stricter, verdict: "aud_mismatch", why: NORMALISED },
    Known { name: "check_audience_test/CheckAudienceTest.TestConfigHttpPrefixWithTailing#2", kind: Kind::Stricter, verdict: "aud_mismatch", why: NORMALISED },
    Known { name: "check_audience_test/CheckAudienceTest.TestConfigHttpPrefixWithTailing#3", kind: Kind::Stricter, verdict: "aud_mismatch", why: NORMALISED },
    Known { name: "check_audience_test/CheckAudienceTest.TestConfigHttpPrefixWithTailing#4", kind: Kind::Stricter, verdict: "aud_mismatch", why: NORMALISED },
    Known { name: "check_audience_test/CheckAudienceTest.TestConfigHttpPrefixWithTailing#5", kind: Kind::Stricter, verdict: "aud_mismatch", why: NORMALISED },
    Known { name: "check_audience_test/CheckAudienceTest.TestConfigHttpsPrefixWithTailing#1", kind: Kind::Stricter, verdict: "aud_mismatch", why: NORMALISED },
    Known { name: "check_audience_test/CheckAudienceTest.TestConfigHttpsPrefixWithTailing#2", kind: Kind::Stricter, verdict: "aud_mismatch", why: NORMALISED },
    Known { name: "check_audience_test/CheckAudienceTest.TestConfigHttpsPrefixWithTailing#3", kind: Kind::Stricter, verdict: "aud_mismatch", why: NORMALISED },
    Known { name: "check_audience_test/CheckAudienceTest.TestConfigHttpsPrefixWithTailing#4", kind: Kind::Stricter, verdict: "aud_mismatch", why: NORMALISED },
    Known { name: "check_audience_test/CheckAudienceTest.TestConfigHttpsPrefixWithTailing#5", kind: Kind::Stricter, verdict: "aud_mismatch", why: NORMALISED },
    Known { name: "check_audience_test/CheckAudienceTest.TestAudiencesAllowedWhenNoAudiencesConfigured", kind: Kind::Stricter, verdict: "aud_mismatch", why: "an empty audience list accepts nothing (and the configuration refuses one): never allow-all" },
];

/// The audience rule of the claim policy alone: a token with good `iss`, `sub`, `exp`
/// and the vector's audiences, against the vector's allowed list. `azp` is not asked for
/// (the claims unit tests cover it), so only the matching itself decides.
fn audience_verdict(case: &Value) -> String {
    let now = 1_700_000_000u64;
    let claims = json!({"iss": "https://issuer.example", "sub": "subject", "exp": now + 300, "aud": case["jwt_audiences"]});
    let issuers = vec!["https://issuer.example".to_string()];
    let audiences: Vec<String> = case["allowed"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_string()).collect();
    let rules = ClaimRules {
        issuers: &issuers,
        audiences: &audiences,
        authorized_party: None,
        require_iat: false,
        nonce: None,
        access_token: None,
        now,
        skew: SKEW,
        token_use: oidc_edge::jwt::TokenUse::Bearer,
    };
    code(&claims::check_before_signature(claims.as_object().unwrap(), &rules).map(|_| ())).to_string()
}

#[test]
fn audience_match_json_every_case() {
    let mut tally = Tally::new("audience_match.json", AUDIENCE_DIFFERS);
    let all = cases("jwt_verify_lib/audience_match.json");
    assert_eq!(all.len(), 35, "audience_match.json has 35 cases");
    for case in &all {
        let verdict = audience_verdict(case);
        let expect = case["expect"].as_bool().unwrap();
        let agrees = if expect { verdict == "ok" } else { verdict == "aud_mismatch" };
        tally.record(s(case, "name"), &expect.to_string(), &verdict, agrees);
    }
    tally.finish();
}

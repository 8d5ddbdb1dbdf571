//! The JOSE Cookbook (RFC 7520 section 4) and RFC 8037 Ed25519 JWS examples run through
//! oidc-edge's core (`tests/vectors/rfc7520/`, see the README there): all 25 signatures.
//!
//! For each signature, the given key is loaded as oidc-edge would load a JWKS: as
//! published (with its private members, which refuses the whole set) and with its
//! public members only. With the public key, the core's key selection and
//! `jwt::verify::signature` check the signature over `protected.payload`. These payloads
//! are text, not JWT claims, so `jwt::validate` must refuse every token, with
//! `token_bad_json` once the header passes. oidc-edge reads only the compact form:
//! signatures from the JSON serializations are reassembled as `protected.payload.sig`
//! and listed as not applicable, with their verdict asserted all the same.

mod support;

use oidc_edge::error::Reason;
use oidc_edge::flow::MAX_TOKEN_BYTES;
use oidc_edge::jwks::{self, KeySet};
use oidc_edge::jwt::{self, UnverifiedJwt};
use serde_json::{json, Map, Value};
use support::{b64_loose, code, jwks_error_category, public_only, Kind, Known, Tally};

const FILES: [&str; 9] = [
    "rfc7520/4_1.rsa_v15_signature.json",
    "rfc7520/4_2.rsa-pss_signature.json",
    "rfc7520/4_3.ecdsa_signature.json",
    "rfc7520/4_4.hmac-sha2_integrity_protection.json",
    "rfc7520/4_5.signature_with_detached_content.json",
    "rfc7520/4_6.protecting_specific_header_fields.json",
    "rfc7520/4_7.protecting_content_only.json",
    "rfc7520/4_8.multiple_signatures.json",
    "rfc7520/curve25519/jws.json",
];

const JSON_FORM: &str = "JWS JSON serialization: oidc-edge reads only compact JWTs; reassembled as protected.payload.signature";

/// Every signature that is not a compact serialization, or where oidc-edge differs.
const DIFFERS: &[Known] = &[
    Known { name: "4_1.rsa_v15_signature#json_flat", kind: Kind::NotApplicable, verdict: "keys=ok sig=ok full=token_bad_json", why: JSON_FORM },
    Known { name: "4_1.rsa_v15_signature#json[0]", kind: Kind::NotApplicable, verdict: "keys=ok sig=ok full=token_bad_json", why: JSON_FORM },
    Known { name: "4_2.rsa-pss_signature#json_flat", kind: Kind::NotApplicable, verdict: "keys=ok sig=ok full=token_bad_json", why: JSON_FORM },
    Known { name: "4_2.rsa-pss_signature#json[0]", kind: Kind::NotApplicable, verdict: "keys=ok sig=ok full=token_bad_json", why: JSON_FORM },
    Known { name: "4_3.ecdsa_signature#compact", kind: Kind::Stricter, verdict: "keys=refused(no-usable-key) sig=alg_not_allowed full=alg_not_allowed", why: "ES512 / P-521 is not supported: the header and the key are refused" },
    Known { name: "4_3.ecdsa_signature#json_flat", kind: Kind::NotApplicable, verdict: "keys=refused(no-usable-key) sig=alg_not_allowed full=alg_not_allowed", why: "JSON serialization, and ES512 is not supported" },
    Known { name: "4_3.ecdsa_signature#json[0]", kind: Kind::NotApplicable, verdict: "keys=refused(no-usable-key) sig=alg_not_allowed full=alg_not_allowed", why: "JSON serialization, and ES512 is not supported" },
    Known { name: "4_4.hmac-sha2_integrity_protection#compact", kind: Kind::Stricter, verdict: "keys=refused(no-usable-key) sig=alg_not_allowed full=alg_not_allowed", why: "HMAC is never accepted: HS256 header refused; the oct key without `k` is unusable (with `k` the set is refused)" },
    Known { name: "4_4.hmac-sha2_integrity_protection#json_flat", kind: Kind::NotApplicable, verdict: "keys=refused(no-usable-key) sig=alg_not_allowed full=alg_not_allowed", why: "JSON serialization, and HMAC is never accepted" },
    Known { name: "4_4.hmac-sha2_integrity_protection#json[0]", kind: Kind::NotApplicable, verdict: "keys=refused(no-usable-key) sig=alg_not_allowed full=alg_not_allowed", why: "JSON serialization, and HMAC is never accepted" },
    Known { name: "4_5.signature_with_detached_content#compact", kind: Kind::Stricter, verdict: "keys=refused(no-usable-key) sig=alg_not_allowed full=alg_not_allowed", why: "HMAC is never accepted; as a token `header..sig` the HS256 header is refused before the empty payload (`jwt::parse` judges the header first), where upstream says malformed" },
    Known { name: "4_5.signature_with_detached_content#json_flat", kind: Kind::NotApplicable, verdict: "keys=refused(no-usable-key) sig=alg_not_allowed full=alg_not_allowed", why: "JSON serialization with detached payload, and HMAC is never accepted" },
    Known { name: "4_5.signature_with_detached_content#json[0]", kind: Kind::NotApplicable, verdict: "keys=refused(no-usable-key) sig=alg_not_allowed full=alg_not_allowed", why: "JSON serialization with detached payload, and HMAC is never accepted" },
    Known { name: "4_6.protecting_specific_header_fields#json_flat", kind: Kind::NotApplicable, verdict: "keys=refused(no-usable-key) sig=alg_not_allowed full=alg_not_allowed", why: "JSON serialization with an unprotected header (kid), and HMAC is never accepted" },
    Known { name: "4_6.protecting_specific_header_fields#json[0]", kind: Kind::NotApplicable, verdict: "keys=refused(no-usable-key) sig=alg_not_allowed full=alg_not_allowed", why: "JSON serialization with an unprotected header (kid), and HMAC is never accepted" },
    Known { name: "4_7.protecting_content_only#json_flat", kind: Kind::NotApplicable, verdict: "keys=refused(no-usable-key) sig=token_malformed full=token_malformed", why: "no protected header at all: no compact form exists (`.payload.sig` is malformed)" },
    Known { name: "4_7.protecting_content_only#json[0]", kind: Kind::NotApplicable, verdict: "keys=refused(no-usable-key) sig=token_malformed full=token_malformed", why: "no protected header at all: no compact form exists (`.payload.sig` is malformed)" },
    Known { name: "4_8.multiple_signatures#json[0]", kind: Kind::NotApplicable, verdict: "keys=ok sig=ok full=token_bad_json", why: "general JSON serialization (kid unprotected); reassembled, RS256 verifies by key selection without kid" },
    Known { name: "4_8.multiple_signatures#json[1]", kind: Kind::NotApplicable, verdict: "keys=refused(no-usable-key) sig=token_malformed full=token_malformed", why: "general JSON serialization; the ES512 signature has no protected header at all" },
    Known { name: "4_8.multiple_signatures#json[2]", kind: Kind::NotApplicable, verdict: "keys=refused(no-usable-key) sig=alg_not_allowed full=alg_not_allowed", why: "general JSON serialization, and HMAC is never accepted" },
    Known { name: "curve25519/jws#json_flat", kind: Kind::NotApplicable, verdict: "keys=ok sig=ok full=token_bad_json", why: JSON_FORM },
    Known { name: "curve25519/jws#json[0]", kind: Kind::NotApplicable, verdict: "keys=ok sig=ok full=token_bad_json", why: JSON_FORM },
];

/// One signature of a cookbook file, with the key that made it.
struct Signature {
    name: String,
    compact: bool,
    protected: Option<String>,
    payload: String,
    signature: String,
    key: Value,
}

fn signatures(rel: &str) -> Vec<Signature> {
    let doc = support::load(rel);
    let stem = rel.trim_start_matches("rfc7520/").trim_end_matches(".json").to_string();
    let keys: Vec<Value> = match &doc["input"]["key"] {
        Value::Array(list) => list.clone(),
        one => vec![one.clone()],
    };
    let out = &doc["output"];
    let mut sigs = Vec::new();
    if let Some(compact) = out["compact"].as_str() {
        let parts: Vec<&str> = compact.split('.').collect();
        assert_eq!(parts.len(), 3, "{rel}: compact form has three parts");
        sigs.push(Signature {
            name: format!("{stem}#compact"),
            compact: true,
            protected: Some(parts[0].to_string()),
            payload: parts[1].to_string(),
            signature: parts[2].to_string(),
            key: keys[0].clone(),
        });
    }
    let from_json = |name: String, payload: &Value, sig: &Value, key: &Value| Signature {
        name,
        compact: false,
        protected: sig["protected"].as_str().map(str::to_string),
        // A detached payload (4.5) has no `payload` member: the compact form is then `h..s`.
        payload: payload.as_str().unwrap_or("").to_string(),
        signature: sig["signature"].as_str().unwrap().to_string(),
        key: key.clone(),
    };
    if let Some(flat) = out.get("json_flat") {
        sigs.push(from_json(format!("{stem}#json_flat"), &flat["payload"], flat, &keys[0]));
    }
    for (i, sig) in out["json"]["signatures"].as_array().unwrap().iter().enumerate() {
        sigs.push(from_json(format!("{stem}#json[{i}]"), &out["json"]["payload"], sig, &keys[i.min(keys.len() - 1)]));
    }
    sigs
}

fn load(key: &Value) -> Result<KeySet, String> {
    jwks::parse_jwks(json!({ "keys": [key] }).to_string().as_bytes()).map(|(set, _)| set).map_err(|e| jwks_error_category(&e).to_string())
}

/// Header rules, key selection and `jwt::verify::signature` on `protected.payload`. The
/// header goes through `jwt::parse` with an empty JSON payload (the real payload is not
/// JSON, which `jwt::parse` would refuse before returning the header).
fn signature_level(sig: &Signature, keys: &KeySet) -> Result<(), Reason> {
    let protected = sig.protected.as_deref().unwrap_or("");
    let header = jwt::parse(&format!("{protected}.e30.{}", sig.signature), MAX_TOKEN_BYTES)?.header;
    let candidates = keys.candidates(header.kid.as_deref(), header.alg)?;
    let signing_input = format!("{protected}.{}", sig.payload);
    let unverified = UnverifiedJwt {
        header,
        claims: Map::new(),
        signing_input: &signing_input,
        signature: b64_loose(&sig.signature).ok_or(Reason::TokenBadBase64)?,
        signature_b64: &sig.signature,
    };
    let mut verified = false;
    for k in &candidates {
        let verdict = jwt::verify::signature(&unverified, k);
        verified |= verdict.is_ok();
        // RS256/384/512 go to the core's own verifier (`jwt::rsa`): its verdict must be
        // the one of the `rsa` crate it replaced (`verify::verify_raw`).
        if jwt::verify::pkcs1_hash(unverified.header.alg).is_some() && k.accepts(unverified.header.alg) {
            let before = jwt::verify::verify_raw(unverified.header.alg, &k.decoding, signing_input.as_bytes(), &sig.signature);
            assert_eq!(verdict.is_ok(), before.is_ok(), "{}: jwt::rsa and the rsa crate disagree", sig.name);
        }
    }
    if verified {
        Ok(())
    } else {
        Err(Reason::SignatureInvalid)
    }
}

fn full_level(token: &str, keys: &KeySet) -> Result<(), Reason> {
    support::validate_all_algs(token, keys, &["https://issuer.example".to_string()], &["audience".to_string()], 1_700_000_000, 60)
}

#[test]
fn rfc7520_every_signature() {
    let mut tally = Tally::new("rfc7520 + rfc8037", DIFFERS);
    let mut count = 0;
    for file in FILES {
        for sig in signatures(file) {
            count += 1;
            // As published, every cookbook key carries private members: the set is refused whole.
            assert_eq!(load(&sig.key).err().as_deref(), Some("private-members"), "{}: the key as published", sig.name);
            let public = load(&public_only(&sig.key));
            let keys = public.clone().unwrap_or_default();
            let token = format!("{}.{}.{}", sig.protected.as_deref().unwrap_or(""), sig.payload, sig.signature);
            let verdict = format!(
                "keys={} sig={} full={}",
                public.as_ref().map(|_| "ok".to_string()).unwrap_or_else(|e| format!("refused({e})")),
                code(&signature_level(&sig, &keys)),
                code(&full_level(&token, &keys))
            );
            // Upstream: every signature verifies; as a JWT the text payload is refused
            // (JwtPayloadParseErrorBadJson), the detached `h..s` is malformed (JwtBadFormat).
            let detached = sig.payload.is_empty();
            let expect = if detached { "verifies; JwtBadFormat" } else { "verifies; JwtPayloadParseErrorBadJson" };
            let equivalent = if detached { "keys=ok sig=ok full=token_malformed" } else { "keys=ok sig=ok full=token_bad_json" };
            tally.record(&sig.name, expect, &verdict, sig.compact && verdict == equivalent);
        }
    }
    assert_eq!(count, 25, "the cookbook files hold 25 signatures");
    tally.finish();
}

/// The supported signatures fail once the signed input changes, and a signature is bound
/// to its algorithm: the RSA key does not verify the PKCS#1 v1.5 signature as PSS, nor
/// the PSS one as PKCS#1 v1.5.
#[test]
fn rfc7520_signatures_are_bound() {
    for (file, other_alg) in [("rfc7520/4_1.rsa_v15_signature.json", Some("PS256")), ("rfc7520/4_2.rsa-pss_signature.json", Some("RS384")), ("rfc7520/curve25519/jws.json", None)] {
        let sig = signatures(file).into_iter().find(|s| s.compact).unwrap();
        let keys = load(&public_only(&sig.key)).unwrap();
        assert_eq!(signature_level(&sig, &keys), Ok(()), "{file}");
        let first = if sig.payload.starts_with('S') { "T" } else { "S" };
        let tampered = Signature { name: sig.name.clone(), payload: format!("{first}{}", &sig.payload[1..]), protected: sig.protected.clone(), signature: sig.signature.clone(), key: sig.key.clone(), compact: true };
        assert_eq!(signature_level(&tampered, &keys), Err(Reason::SignatureInvalid), "{file}: payload changed");
        if let Some(other) = other_alg {
            let header = oidc_edge::b64::url_encode(format!(r#"{{"alg":"{other}","kid":"bilbo.baggins@hobbiton.example"}}"#).as_bytes());
            let swapped = Signature { protected: Some(header), ..sig };
            assert_eq!(signature_level(&swapped, &keys), Err(Reason::SignatureInvalid), "{file}: alg swapped to {other}");
        }
    }
}

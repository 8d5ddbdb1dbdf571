//! RS256 verification: an in-wasm correctness run and a micro-benchmark of each backend.
//!
//! Built for wasm32-wasip1 with the filter's release profile and run under Node's WASI
//! (V8, the engine Envoy uses) by `make bench-verify`:
//!
//!     cargo build --release --target wasm32-wasip1 --example verify_bench
//!     node --no-warnings bench/wasi-run.mjs target/wasm32-wasip1/release/examples/verify_bench.wasm
//!
//! It also runs natively (`cargo run --release --example verify_bench`). The correctness
//! part compares the crate's verifier (`jwt::rsa`, what `verify::signature` uses for RS*)
//! with jsonwebtoken's `rust_crypto` backend (the `rsa` crate) on valid and damaged
//! signatures and on the RS* test vectors; any disagreement exits with status 1.
//! Arguments: `--quick` (fewer rounds), `--no-check`.

use std::time::Instant;

use oidc_edge::b64;
use oidc_edge::jwks::{self, Jwk, KeySet};
use oidc_edge::jwt::rsa::{Hash, RsaPublicKey};
use oidc_edge::jwt::{self, verify, Alg};
use oidc_edge::oidc::client_key::ClientKey;
use rand::rngs::StdRng;
use rand::{Rng, RngCore, SeedableRng};
use rsa::traits::PublicKeyParts;
use rsa::{BigUint, Pkcs1v15Sign, RsaPrivateKey};
use serde_json::{json, Value};
use sha2::{Digest, Sha256, Sha384, Sha512};

const FIXTURE_KEYS: &str = include_str!("../tests/fixtures/idp-keys-both.json");
const CLIENT_KEY_RSA: &str = include_str!("../tests/fixtures/client-key-rsa.pem");
const CLIENT_KEY_EC: &str = include_str!("../tests/fixtures/client-key-ec.pem");
const RFC7520_4_1: &str = include_str!("../tests/vectors/rfc7520/4_1.rsa_v15_signature.json");
const JWT_VERIFY_LIB: &str = include_str!("../tests/vectors/jwt_verify_lib/verify.json");

const RS: [(Alg, Hash); 3] = [(Alg::RS256, Hash::Sha256), (Alg::RS384, Hash::Sha384), (Alg::RS512, Hash::Sha512)];

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--quick");
    let target = if cfg!(target_arch = "wasm32") { "wasm32 (V8 via Node WASI)" } else { "native" };
    println!("verify_bench: {target}");
    let fixture: Value = serde_json::from_str(FIXTURE_KEYS).expect("fixture keys");
    let privates: Vec<(String, RsaPrivateKey)> = fixture["keys"].as_array().expect("keys").iter().map(private_key).collect();

    if !args.iter().any(|a| a == "--no-check") {
        let (checks, mismatches) = correctness(&privates);
        println!("correctness: {checks} checks, {mismatches} mismatches between jwt::rsa and jsonwebtoken/rsa 0.9 or the expected verdict");
        if mismatches > 0 {
            std::process::exit(1);
        }
    }
    bench(&privates, quick);
}

// ------------------------------------------------------------------ keys --

fn part(jwk: &Value, name: &str) -> BigUint {
    BigUint::from_bytes_be(&b64::url_decode(jwk[name].as_str().expect("member")).expect("base64url"))
}

fn private_key(jwk: &Value) -> (String, RsaPrivateKey) {
    let key = RsaPrivateKey::from_components(part(jwk, "n"), part(jwk, "e"), part(jwk, "d"), vec![part(jwk, "p"), part(jwk, "q")]).expect("private key");
    (jwk["kid"].as_str().unwrap_or("").to_string(), key)
}

/// The public JWK as the IdP publishes it, parsed by the filter's own JWKS code.
fn public_jwk(kid: &str, key: &RsaPrivateKey) -> Jwk {
    let set = json!({"keys": [{"kty": "RSA", "kid": kid, "use": "sig",
        "n": b64::url_encode(&key.n().to_bytes_be()), "e": b64::url_encode(&key.e().to_bytes_be())}]});
    let (keys, _) = jwks::parse_jwks(set.to_string().as_bytes()).expect("jwks");
    keys.keys().first().expect("one key").clone()
}

fn sign(key: &RsaPrivateKey, hash: Hash, message: &[u8]) -> Vec<u8> {
    match hash {
        Hash::Sha256 => key.sign(Pkcs1v15Sign::new::<Sha256>(), &Sha256::digest(message)),
        Hash::Sha384 => key.sign(Pkcs1v15Sign::new::<Sha384>(), &Sha384::digest(message)),
        Hash::Sha512 => key.sign(Pkcs1v15Sign::new::<Sha512>(), &Sha512::digest(message)),
    }
    .expect("sign")
}

fn token(kid: &str, alg: Alg, key: &RsaPrivateKey, hash: Hash, claims: &Value) -> String {
    let header = json!({"alg": alg.name(), "typ": "JWT", "kid": kid});
    let input = format!("{}.{}", b64::url_encode(header.to_string().as_bytes()), b64::url_encode(claims.to_string().as_bytes()));
    let sig = sign(key, hash, input.as_bytes());
    format!("{input}.{}", b64::url_encode(&sig))
}

// ----------------------------------------------------------- correctness --

struct Tally {
    checks: usize,
    mismatches: usize,
}

impl Tally {
    /// Both backends on raw bytes; they must agree with each other and with `expected`.
    fn primitive(&mut self, jwk: &Jwk, alg: Alg, message: &[u8], signature: &[u8], expected: bool, what: &str) {
        let hash = verify::pkcs1_hash(alg).expect("an RS algorithm");
        let ours = jwk.rsa.as_ref().is_some_and(|k| verify::verify_pkcs1(hash, k, message, signature).is_ok());
        let theirs = verify::verify_raw(alg, &jwk.decoding, message, &b64::url_encode(signature)).is_ok();
        self.checks += 1;
        if ours != theirs || ours != expected {
            self.mismatches += 1;
            println!("MISMATCH {what}: {} {alg:?}: jwt::rsa {ours}, jsonwebtoken {theirs}, expected {expected}", jwk.label());
        }
    }
}

fn correctness(privates: &[(String, RsaPrivateKey)]) -> (usize, usize) {
    let mut t = Tally { checks: 0, mismatches: 0 };
    let mut rng = StdRng::seed_from_u64(7);
    let jwks: Vec<Jwk> = privates.iter().map(|(kid, k)| public_jwk(kid, k)).collect();
    for ((kid, private), jwk) in privates.iter().zip(&jwks) {
        let n = private.n().clone();
        let k = private.size();
        for (alg, hash) in RS {
            for round in 0..4 {
                let claims = json!({"iss": "https://idp.example", "sub": format!("user{round}"), "n": rng.gen::<u64>()});
                let tok = token(kid, alg, private, hash, &claims);
                // The whole path: compact parsing, key rules, then the primitive.
                let parsed = jwt::parse(&tok, 16 * 1024).expect("parse");
                let ok = verify::signature(&parsed, jwk).is_ok();
                t.checks += 1;
                if !ok {
                    t.mismatches += 1;
                    println!("MISMATCH valid {alg:?} token refused by verify::signature");
                }
                let message = parsed.signing_input.as_bytes();
                let sig = parsed.signature.clone();
                t.primitive(jwk, alg, message, &sig, true, "valid");
                let mut flipped = sig.clone();
                let bit = rng.gen_range(0..k * 8);
                flipped[bit / 8] ^= 1 << (bit % 8);
                t.primitive(jwk, alg, message, &flipped, false, "signature bit flip");
                let mut changed = message.to_vec();
                let at = rng.gen_range(0..changed.len());
                changed[at] ^= 1 << rng.gen_range(0..8);
                t.primitive(jwk, alg, &changed, &sig, false, "message bit flip");
                for (other_alg, _) in RS.iter().filter(|(a, _)| *a != alg) {
                    t.primitive(jwk, *other_alg, message, &sig, false, "other hash");
                }
                let plus_n = BigUint::from_bytes_be(&sig) + &n;
                if plus_n.bits() <= k * 8 {
                    t.primitive(jwk, alg, message, &be(&plus_n, k), false, "s + n");
                }
                t.primitive(jwk, alg, message, &sig[1..], false, "first byte cut");
                t.primitive(jwk, alg, message, &[&sig[..], &[0]].concat(), false, "trailing zero byte");
                t.primitive(jwk, alg, message, &[&[0], &sig[..]].concat(), false, "leading zero byte");
                let mut noise = vec![0u8; k];
                rng.fill_bytes(&mut noise);
                noise[0] &= 0x7f;
                t.primitive(jwk, alg, message, &noise, false, "random");
            }
            let degenerate: [(&str, Vec<u8>); 5] = [
                ("zero", vec![0; k]),
                ("one", be(&BigUint::from(1u32), k)),
                ("n - 1", be(&(&n - 1u32), k)),
                ("n", be(&n, k)),
                ("all 0xff", vec![0xff; k]),
            ];
            for (what, sig) in degenerate {
                t.primitive(jwk, alg, b"message", &sig, false, what);
            }
        }
    }
    vectors(&mut t);
    (t.checks, t.mismatches)
}

fn be(x: &BigUint, k: usize) -> Vec<u8> {
    let bytes = x.to_bytes_be();
    let mut out = vec![0u8; k.saturating_sub(bytes.len())];
    out.extend_from_slice(&bytes);
    out
}

/// RFC 7520 4.1 and the JWKS-keyed RS* cases of jwt_verify_lib, through the filter's
/// own JWKS parser (and compact parser, for the tokens).
fn vectors(t: &mut Tally) {
    let rfc: Value = serde_json::from_str(RFC7520_4_1).expect("rfc7520");
    let mut key = rfc["input"]["key"].as_object().expect("key").clone();
    for private in ["d", "p", "q", "dp", "dq", "qi"] {
        key.remove(private);
    }
    let (keys, _) = jwks::parse_jwks(json!({"keys": [key]}).to_string().as_bytes()).expect("rfc7520 jwks");
    // Its payload is text, not a JSON object, so only the primitive applies.
    let jwk = keys.keys().first().expect("rfc7520 key");
    let input = rfc["signing"]["sig-input"].as_str().expect("sig-input").as_bytes();
    let sig = b64::url_decode(rfc["signing"]["sig"].as_str().expect("sig")).expect("sig");
    t.primitive(jwk, Alg::RS256, input, &sig, true, "RFC 7520 4.1");
    t.primitive(jwk, Alg::RS512, input, &sig, false, "RFC 7520 4.1 as RS512");

    let cases: Value = serde_json::from_str(JWT_VERIFY_LIB).expect("verify.json");
    for case in cases.as_array().expect("cases") {
        if case["key_format"] != "jwks" {
            continue;
        }
        let tok = case["jwt"].as_str().expect("jwt");
        let Ok(parsed) = jwt::parse(tok, 64 * 1024) else { continue };
        if !matches!(parsed.header.alg, Alg::RS256 | Alg::RS384 | Alg::RS512) {
            continue;
        }
        let text = case["jwks_strict"].as_str().or(case["jwks"].as_str()).expect("jwks");
        let Ok((keys, _)) = jwks::parse_jwks(text.as_bytes()) else { continue };
        let expect_ok = case["expect"] == "ok";
        check_token(t, &keys, tok, expect_ok, case["name"].as_str().unwrap_or("?"));
    }
}

/// Every key that fits the token's kid and alg, both backends; `expect_ok`: one verifies.
fn check_token(t: &mut Tally, keys: &KeySet, tok: &str, expect_ok: bool, name: &str) {
    let parsed = jwt::parse(tok, 64 * 1024).expect("parse");
    let alg = parsed.header.alg;
    let Ok(candidates) = keys.candidates(parsed.header.kid.as_deref(), alg) else {
        if expect_ok {
            t.mismatches += 1;
            println!("MISMATCH {name}: no candidate key");
        }
        return;
    };
    let mut any = false;
    for jwk in candidates {
        let ours = verify::signature(&parsed, jwk).is_ok();
        let theirs = verify::verify_raw(alg, &jwk.decoding, parsed.signing_input.as_bytes(), parsed.signature_b64).is_ok();
        t.checks += 1;
        if ours != theirs {
            t.mismatches += 1;
            println!("MISMATCH {name}: jwt::rsa {ours}, jsonwebtoken {theirs}");
        }
        any |= ours;
    }
    if any != expect_ok {
        t.mismatches += 1;
        println!("MISMATCH {name}: verified {any}, expected {expect_ok}");
    }
}

// ------------------------------------------------------------- benchmark --

/// The best over `rounds` of the mean µs of `iterations` calls: on a shared machine the
/// fastest round is the one least disturbed by other work.
fn time_us(rounds: usize, iterations: usize, mut f: impl FnMut() -> bool) -> f64 {
    let mut samples: Vec<f64> = (0..rounds)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..iterations {
                assert!(f());
            }
            start.elapsed().as_secs_f64() * 1e6 / iterations as f64
        })
        .collect();
    samples.sort_by(f64::total_cmp);
    samples[0]
}

fn bench(privates: &[(String, RsaPrivateKey)], quick: bool) {
    let (kid, private) = privates.iter().find(|(kid, _)| kid == "k1").expect("k1");
    let jwk = public_jwk(kid, private);
    let claims = json!({"iss": "http://127.0.0.1:9000", "aud": "oidc-edge-test", "sub": "alice", "email": "alice@example.com",
        "iat": 1_700_000_000u64, "exp": 4_000_000_000u64});
    let tok = token(kid, Alg::RS256, private, Hash::Sha256, &claims);
    let parsed = jwt::parse(&tok, 16 * 1024).expect("parse");
    let message = parsed.signing_input.as_bytes();
    let n = private.n().to_bytes_be();
    let e = private.e().to_bytes_be();
    let (rounds, scale) = if quick { (5, 1) } else { (9, 2) };

    println!("one RS256 verification, 2048-bit key (fixture k1), best of {rounds} rounds:");
    let rows: Vec<(&str, f64)> = vec![
        ("jsonwebtoken 11 rust_crypto (rsa 0.9): crypto::verify", time_us(rounds, 100 * scale, || {
            verify::verify_raw(Alg::RS256, &jwk.decoding, message, parsed.signature_b64).is_ok()
        })),
        ("oidc-edge jwt::rsa (32-bit Montgomery): verify::signature", time_us(rounds, 1000 * scale, || verify::signature(&parsed, &jwk).is_ok())),
        ("  of which SHA-256 of the signing input", time_us(rounds, 1000 * scale, || Sha256::digest(message).len() == 32)),
        ("jwt::rsa key set-up (R^2 mod n; once per key at JWKS parse)", time_us(rounds, 200 * scale, || RsaPublicKey::new(&n, &e).is_some())),
        ("whole JWKS parse of one RSA key (jwks::parse_jwks)", time_us(rounds, 200 * scale, || {
            let set = format!(r#"{{"keys":[{{"kty":"RSA","kid":"k1","n":"{}","e":"AQAB"}}]}}"#, b64::url_encode(&n));
            jwks::parse_jwks(set.as_bytes()).is_ok()
        })),
    ];
    for (name, us) in &rows {
        println!("  {us:>9.1} µs  {name}");
    }
    if let [(_, before), (_, after), ..] = rows.as_slice() {
        println!("  speed-up: {:.1}x", before / after);
    }
    // One line per backend for scripts.
    for (name, us) in &rows {
        println!("BENCH\t{name}\t{us:.1}");
    }

    // What `private_key_jwt` adds to each login and refresh: one signature.
    println!("one private_key_jwt client assertion signature (oidc::client_key), best of {rounds} rounds:");
    for (name, pem) in [("RS256, RSA 2048", CLIENT_KEY_RSA), ("ES256, P-256", CLIENT_KEY_EC)] {
        let key = ClientKey::from_pem(pem).expect("client key");
        let us = time_us(rounds, 5 * scale, || key.sign(message).is_some());
        println!("  {us:>9.1} µs  {name}");
    }
}

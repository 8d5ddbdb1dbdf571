//! Signature verification: the key's type decides the primitive, the token's header never does alone.
//!
//! RS256/384/512 go to `jwt::rsa` (about 5x faster in wasm than the `rsa` crate behind
//! jsonwebtoken); PS*, ES* and EdDSA go to jsonwebtoken's `rust_crypto` provider.

use jsonwebtoken::{Algorithm, DecodingKey};

use crate::error::Reason;
use crate::jwks::Jwk;
use crate::jwt::rsa::{self, RsaPublicKey};
use crate::jwt::{Alg, KeyFamily, UnverifiedJwt};

/// Verifies `jwt`'s signature with `key`. The algorithm must be allowed by the key (its
/// family, and its `alg` when the JWK names one) before any primitive runs.
pub fn signature(jwt: &UnverifiedJwt<'_>, key: &Jwk) -> Result<(), Reason> {
    let alg = jwt.header.alg;
    if !key.accepts(alg) {
        return Err(Reason::KeyAlgMismatch);
    }
    // Length checks are cheap and stop truncated or padded signatures before any maths.
    let expected_len = match key.family {
        KeyFamily::Rsa => key.modulus_len,
        KeyFamily::P256 => 64,
        KeyFamily::P384 => 96,
        KeyFamily::Ed25519 => 64,
    };
    if jwt.signature.len() != expected_len {
        return Err(Reason::SignatureInvalid);
    }
    match (pkcs1_hash(alg), &key.rsa) {
        (Some(hash), Some(rsa_key)) => verify_pkcs1(hash, rsa_key, jwt.signing_input.as_bytes(), &jwt.signature),
        // An RSA JWK always carries its `rsa` form; without one, RS* cannot verify.
        (Some(_), None) => Err(Reason::SignatureInvalid),
        (None, _) => verify_raw(alg, &key.decoding, jwt.signing_input.as_bytes(), jwt.signature_b64),
    }
}

/// RSASSA-PKCS1-v1_5 (RS256/384/512) with the crate's own verifier.
pub fn verify_pkcs1(hash: rsa::Hash, key: &RsaPublicKey, message: &[u8], signature: &[u8]) -> Result<(), Reason> {
    if key.verify(hash, message, signature) {
        Ok(())
    } else {
        Err(Reason::SignatureInvalid)
    }
}

/// The digest of an RSASSA-PKCS1-v1_5 algorithm; `None` for every other algorithm.
pub fn pkcs1_hash(alg: Alg) -> Option<rsa::Hash> {
    match alg {
        Alg::RS256 => Some(rsa::Hash::Sha256),
        Alg::RS384 => Some(rsa::Hash::Sha384),
        Alg::RS512 => Some(rsa::Hash::Sha512),
        _ => None,
    }
}

/// jsonwebtoken's primitive (the `rsa`, `p256`/`p384` and `ed25519-dalek` crates). `signature`
/// uses it for PS*, ES* and EdDSA; for RS* it is the previous backend, kept for comparison.
pub fn verify_raw(alg: Alg, key: &DecodingKey, message: &[u8], signature_b64: &str) -> Result<(), Reason> {
    match jsonwebtoken::crypto::verify(signature_b64, message, key, backend_alg(alg)) {
        Ok(true) => Ok(()),
        _ => Err(Reason::SignatureInvalid),
    }
}

fn backend_alg(alg: Alg) -> Algorithm {
    match alg {
        Alg::RS256 => Algorithm::RS256,
        Alg::RS384 => Algorithm::RS384,
        Alg::RS512 => Algorithm::RS512,
        Alg::PS256 => Algorithm::PS256,
        Alg::PS384 => Algorithm::PS384,
        Alg::PS512 => Algorithm::PS512,
        Alg::ES256 => Algorithm::ES256,
        Alg::ES384 => Algorithm::ES384,
        Alg::EdDSA => Algorithm::EdDSA,
    }
}

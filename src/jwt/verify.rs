//! Signature verification: the key's type decides the primitive, the token's header never does alone.

use jsonwebtoken::{Algorithm, DecodingKey};

use crate::error::Reason;
use crate::jwks::Jwk;
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
    verify_raw(alg, &key.decoding, jwt.signing_input.as_bytes(), jwt.signature_b64)
}

/// The primitive itself, behind one function so the backend can change without touching policy.
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

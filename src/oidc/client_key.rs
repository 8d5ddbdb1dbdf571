//! The client's private key for `private_key_jwt` (RFC 7523 2.2, OIDC Core 9): read from PEM once, signs client assertions.

use std::fmt;

use jsonwebtoken::{Algorithm, EncodingKey};
use rsa::pkcs1::{DecodeRsaPrivateKey, EncodeRsaPrivateKey};
use rsa::pkcs8::DecodePrivateKey;
use rsa::traits::PublicKeyParts;

use crate::b64;

/// RSA keys shorter than this are refused, as for the IdP's keys (RFC 7518 3.3).
const MIN_RSA_BITS: usize = 2048;
/// Longer keys would cost a worker far more per login (signing grows with the cube).
const MAX_RSA_BITS: usize = 4096;

/// A private key, checked by signing once when the configuration is read. The algorithm
/// follows from the key: RS256 for RSA, ES256 / ES384 for P-256 / P-384.
#[derive(Clone, PartialEq, Eq)]
pub struct ClientKey {
    alg: Algorithm,
    /// PKCS#1 DER for RSA, PKCS#8 DER for EC: what `jsonwebtoken` signs with.
    der: Vec<u8>,
}

/// Never prints the key.
impl fmt::Debug for ClientKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ClientKey({:?}, redacted)", self.alg)
    }
}

impl ClientKey {
    /// Reads a PEM private key: PKCS#8 (`BEGIN PRIVATE KEY`, RSA or EC) or PKCS#1
    /// (`BEGIN RSA PRIVATE KEY`). `Err` says what is wrong and how to fix it.
    pub fn from_pem(pem: &str) -> Result<ClientKey, String> {
        let (label, der) = pem_body(pem)?;
        let key = match label.as_str() {
            "RSA PRIVATE KEY" => rsa_key(rsa::RsaPrivateKey::from_pkcs1_der(&der).map_err(|e| format!("not a valid PKCS#1 RSA private key ({e})"))?)?,
            "PRIVATE KEY" => match rsa::RsaPrivateKey::from_pkcs8_der(&der) {
                Ok(private) => rsa_key(private)?,
                Err(_) => ec_key(der)?,
            },
            "EC PRIVATE KEY" => {
                return Err("is a SEC1 EC key; convert it to PKCS#8 with `openssl pkcs8 -topk8 -nocrypt -in key.pem`".into());
            }
            "ENCRYPTED PRIVATE KEY" => return Err("is encrypted; the filter needs it unencrypted (keep it in a secret instead)".into()),
            other => return Err(format!("is a PEM `{other}`, not a private key (`BEGIN PRIVATE KEY` or `BEGIN RSA PRIVATE KEY`)")),
        };
        key.sign(b"oidc-edge configuration check").map(|_| key).ok_or_else(|| "cannot sign with this key".to_string())
    }

    /// The JWS `alg` of the assertions.
    pub fn alg_name(&self) -> &'static str {
        match self.alg {
            Algorithm::ES256 => "ES256",
            Algorithm::ES384 => "ES384",
            _ => "RS256",
        }
    }

    /// The base64url signature over `input`, or `None` if signing failed.
    pub fn sign(&self, input: &[u8]) -> Option<String> {
        let key = match self.alg {
            Algorithm::ES256 | Algorithm::ES384 => EncodingKey::from_ec_der(&self.der),
            _ => EncodingKey::from_rsa_der(&self.der),
        };
        jsonwebtoken::crypto::sign(input, &key, self.alg).ok()
    }
}

fn rsa_key(private: rsa::RsaPrivateKey) -> Result<ClientKey, String> {
    let bits = private.size().saturating_mul(8);
    if !(MIN_RSA_BITS..=MAX_RSA_BITS).contains(&bits) {
        return Err(format!("is a {bits}-bit RSA key; use {MIN_RSA_BITS} to {MAX_RSA_BITS} bits"));
    }
    let der = private.to_pkcs1_der().map_err(|e| format!("cannot be encoded ({e})"))?;
    Ok(ClientKey { alg: Algorithm::RS256, der: der.as_bytes().to_vec() })
}

fn ec_key(der: Vec<u8>) -> Result<ClientKey, String> {
    for alg in [Algorithm::ES256, Algorithm::ES384] {
        let key = ClientKey { alg, der: der.clone() };
        if key.sign(b"probe").is_some() {
            return Ok(key);
        }
    }
    Err("is a PKCS#8 key of neither RSA nor EC P-256/P-384".into())
}

/// The label and the decoded body of the first PEM block.
fn pem_body(pem: &str) -> Result<(String, Vec<u8>), String> {
    let rest = pem.split_once("-----BEGIN ").map(|(_, r)| r).ok_or("is not PEM (no `-----BEGIN` line)")?;
    let (label, rest) = rest.split_once("-----").ok_or("is not PEM (a broken `-----BEGIN` line)")?;
    let end = format!("-----END {label}-----");
    let (body, _) = rest.split_once(end.as_str()).ok_or_else(|| format!("is not PEM (no `{end}` line)"))?;
    let text: String = body.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    let der = b64::std_decode(&text).ok_or("is not PEM (the body is not base64)")?;
    Ok((label.to_string(), der))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> String {
        std::fs::read_to_string(format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
    }

    #[test]
    fn reads_the_usual_pem_forms_and_signs() {
        for (file, alg) in [("client-key-rsa.pem", "RS256"), ("client-key-rsa-pkcs1.pem", "RS256"), ("client-key-ec.pem", "ES256")] {
            let key = ClientKey::from_pem(&fixture(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
            assert_eq!(key.alg_name(), alg, "{file}");
            assert!(key.sign(b"x").is_some_and(|s| !s.is_empty()), "{file}");
            assert!(!format!("{key:?}").contains(&b64::std_encode(&key.der[..16])), "Debug never shows the key");
        }
    }

    #[test]
    fn refuses_what_is_not_a_usable_private_key_and_says_why() {
        let rsa = fixture("client-key-rsa.pem");
        let cases: [(String, &str); 7] = [
            ("".into(), "no `-----BEGIN`"),
            ("-----BEGIN PRIVATE KEY-----\nAAAA\n".into(), "no `-----END PRIVATE KEY-----`"),
            ("-----BEGIN PRIVATE KEY-----\n!!!!\n-----END PRIVATE KEY-----\n".into(), "not base64"),
            ("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n".into(), "neither RSA nor EC"),
            ("-----BEGIN EC PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY-----\n".into(), "openssl pkcs8"),
            ("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n".into(), "not a private key"),
            (rsa.replace("PRIVATE KEY", "ENCRYPTED PRIVATE KEY"), "encrypted"),
        ];
        for (pem, says) in cases {
            let err = ClientKey::from_pem(&pem).unwrap_err();
            assert!(err.contains(says), "{pem:?}: {err}");
        }
    }
}

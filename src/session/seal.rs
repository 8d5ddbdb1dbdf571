//! Authenticated encryption of cookie values: XChaCha20-Poly1305, key id in the envelope, purpose in the AAD.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::b64;

const VERSION: u8 = 1;
const KEY_ID_LEN: usize = 4;
const NONCE_LEN: usize = 24;
const HEADER_LEN: usize = 1 + KEY_ID_LEN + NONCE_LEN;
/// Larger sealed values are refused before any decoding work.
pub const MAX_SEALED_LEN: usize = 256 * 1024;

struct SealKey {
    id: [u8; KEY_ID_LEN],
    cipher: XChaCha20Poly1305,
}

/// Seals with the first secret, opens with any: secrets rotate by prepending a new one.
pub struct Sealer {
    keys: Vec<SealKey>,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Sealer({} keys)", self.keys.len())
    }
}

fn derive(secret: &[u8; 32], label: &[u8]) -> [u8; 32] {
    // HMAC accepts any key length, so this cannot fail; the fallback only satisfies the type.
    let mut mac = match <Hmac<Sha256> as Mac>::new_from_slice(secret) {
        Ok(m) => m,
        Err(_) => return [0u8; 32],
    };
    mac.update(label);
    mac.finalize().into_bytes().into()
}

impl Sealer {
    pub fn new(secrets: &[[u8; 32]]) -> Sealer {
        let keys = secrets
            .iter()
            .map(|secret| {
                // Separate derived keys: the configured secret is never used directly.
                let enc = derive(secret, b"oidc-edge cookie seal v1");
                let id_full = derive(secret, b"oidc-edge cookie key id v1");
                let mut id = [0u8; KEY_ID_LEN];
                id.copy_from_slice(id_full.get(..KEY_ID_LEN).unwrap_or(&[0u8; KEY_ID_LEN]));
                SealKey { id, cipher: XChaCha20Poly1305::new(&enc.into()) }
            })
            .collect();
        Sealer { keys }
    }

    /// Seals `plaintext` for the purpose `label` (the AAD binds the cookie's name and the
    /// format version, so a value moved to another cookie does not open).
    pub fn seal(&self, label: &str, plaintext: &[u8], nonce: &[u8; NONCE_LEN]) -> Option<String> {
        let key = self.keys.first()?;
        let aad = aad(label);
        let ct = key.cipher.encrypt(XNonce::from_slice(nonce), Payload { msg: plaintext, aad: &aad }).ok()?;
        let mut out = Vec::with_capacity(HEADER_LEN.saturating_add(ct.len()));
        out.push(VERSION);
        out.extend_from_slice(&key.id);
        out.extend_from_slice(nonce);
        out.extend_from_slice(&ct);
        Some(b64::url_encode(&out))
    }

    /// Opens a sealed value; anything tampered, truncated, foreign or malformed gives `None`.
    pub fn open(&self, label: &str, sealed: &str) -> Option<Vec<u8>> {
        if sealed.len() > MAX_SEALED_LEN {
            return None;
        }
        let raw = b64::url_decode(sealed)?;
        let (header, ct) = raw.split_at_checked(HEADER_LEN)?;
        let (version, rest) = header.split_first()?;
        if *version != VERSION {
            return None;
        }
        let (key_id, nonce) = rest.split_at_checked(KEY_ID_LEN)?;
        let aad = aad(label);
        self.keys
            .iter()
            .filter(|k| k.id == key_id)
            .find_map(|k| k.cipher.decrypt(XNonce::from_slice(nonce), Payload { msg: ct, aad: &aad }).ok())
    }
}

fn aad(label: &str) -> Vec<u8> {
    format!("oidc-edge/v{VERSION}/{label}").into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_and_binding() {
        let s = Sealer::new(&[[1u8; 32]]);
        let sealed = s.seal("session:oidc_edge", b"hello", &[9u8; 24]).unwrap();
        assert_eq!(s.open("session:oidc_edge", &sealed).unwrap(), b"hello");
        assert!(s.open("tx:oidc_edge_tx", &sealed).is_none(), "moved to another cookie");
        assert!(Sealer::new(&[[2u8; 32]]).open("session:oidc_edge", &sealed).is_none(), "foreign key");
    }

    #[test]
    fn every_tampering_is_rejected() {
        let s = Sealer::new(&[[1u8; 32]]);
        let sealed = s.seal("l", b"some session payload", &[3u8; 24]).unwrap();
        let bytes = sealed.as_bytes();
        for i in 0..bytes.len() {
            let mut t = bytes.to_vec();
            t[i] = if t[i] == b'A' { b'B' } else { b'A' };
            let t = String::from_utf8(t).unwrap();
            assert!(s.open("l", &t).is_none(), "flip at {i}");
        }
        for cut in 0..sealed.len() {
            assert!(s.open("l", &sealed[..cut]).is_none(), "truncated to {cut}");
        }
        assert!(s.open("l", &format!("{sealed}A")).is_none());
        assert!(s.open("l", "").is_none());
        assert!(s.open("l", "%%%").is_none());
    }

    #[test]
    fn rotation_first_seals_all_open() {
        let old = Sealer::new(&[[1u8; 32]]);
        let sealed_old = old.seal("l", b"x", &[0u8; 24]).unwrap();
        let rotated = Sealer::new(&[[2u8; 32], [1u8; 32]]);
        assert_eq!(rotated.open("l", &sealed_old).unwrap(), b"x");
        let sealed_new = rotated.seal("l", b"y", &[0u8; 24]).unwrap();
        assert!(old.open("l", &sealed_new).is_none());
        assert_eq!(Sealer::new(&[[2u8; 32]]).open("l", &sealed_new).unwrap(), b"y");
    }
}

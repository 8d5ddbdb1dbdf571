//! The authorization request: state, nonce and PKCE S256 (RFC 6749 4.1.1, RFC 7636, OIDC Core 3.1.2.1).

use sha2::{Digest, Sha256};

use crate::b64;
use crate::http::{form_encode, Endpoint};
use crate::session::Transaction;
use crate::time::UnixTime;

/// 32 random bytes each for state, nonce and the PKCE verifier: 256 bits, far beyond
/// guessing, and a 43-character verifier as RFC 7636 4.1 allows.
pub const RANDOM_BYTES: usize = 96;

/// Builds the redirect to the IdP and the transaction that the callback will need.
pub fn start(
    authorization_endpoint: &Endpoint,
    client_id: &str,
    scope: &str,
    redirect_uri: &str,
    return_to: &str,
    now: UnixTime,
    random: &[u8; RANDOM_BYTES],
) -> (String, Transaction) {
    let (state, rest) = random.split_at(32);
    let (nonce, verifier) = rest.split_at(32);
    let state = b64::url_encode(state);
    let nonce = b64::url_encode(nonce);
    let code_verifier = b64::url_encode(verifier);
    let code_challenge = pkce_challenge(&code_verifier);
    let query = form_encode(&[
        ("response_type", "code"),
        ("client_id", client_id),
        ("redirect_uri", redirect_uri),
        ("scope", scope),
        ("state", &state),
        ("nonce", &nonce),
        ("code_challenge", &code_challenge),
        ("code_challenge_method", "S256"),
    ]);
    let location = authorization_endpoint.with_query(&query);
    let tx = Transaction {
        state,
        nonce,
        code_verifier,
        return_to: return_to.to_string(),
        redirect_uri: redirect_uri.to_string(),
        created: now,
        started_here: false,
    };
    (location, tx)
}

/// RFC 7636 4.2: `BASE64URL(SHA256(ASCII(code_verifier)))`.
pub fn pkce_challenge(verifier: &str) -> String {
    b64::url_encode(&Sha256::digest(verifier.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::Query;

    #[test]
    fn rfc7636_appendix_b() {
        assert_eq!(pkce_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"), "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM");
    }

    #[test]
    fn request_carries_every_parameter() {
        let ep = Endpoint::parse("https://idp.example.com/auth?prompt=login").unwrap();
        let mut random = [0u8; RANDOM_BYTES];
        for (i, b) in random.iter_mut().enumerate() {
            *b = i as u8;
        }
        let (loc, tx) = start(&ep, "app", "openid email", "https://app/cb", "/x", 5, &random);
        let (base, query) = loc.split_once('?').unwrap();
        assert_eq!(base, "https://idp.example.com/auth");
        let q = Query::parse(query);
        assert_eq!(q.single("prompt"), Some("login"), "existing query kept");
        assert_eq!(q.single("response_type"), Some("code"));
        assert_eq!(q.single("client_id"), Some("app"));
        assert_eq!(q.single("redirect_uri"), Some("https://app/cb"));
        assert_eq!(q.single("scope"), Some("openid email"));
        assert_eq!(q.single("state"), Some(tx.state.as_str()));
        assert_eq!(q.single("nonce"), Some(tx.nonce.as_str()));
        assert_eq!(q.single("code_challenge_method"), Some("S256"));
        assert_eq!(q.single("code_challenge").map(str::to_string), Some(pkce_challenge(&tx.code_verifier)));
        assert_eq!(tx.code_verifier.len(), 43);
        assert!(tx.state != tx.nonce && tx.nonce != tx.code_verifier);
    }
}

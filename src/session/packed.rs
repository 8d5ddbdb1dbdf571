//! The session's plaintext inside its sealed cookie: claims as JSON, tokens that are JWTs as raw bytes.
//!
//! A session cookie rides on every request the browser makes, and Envoy parses every byte
//! of it before any filter runs (about 40 instructions a byte, measured with callgrind).
//! Tokens are the bulk of a session, and JWTs are base64url already: sealed as text they
//! would be base64url-encoded twice. Here each JWT travels as its three decoded parts, so
//! the cookie is about a quarter smaller and splits into chunks later.
//!
//! Layout (all lengths big-endian u32):
//! `PACKED` · len · JSON of the session without its tokens · id token · access token · refresh token,
//! where each token is a tag byte: `ABSENT`; `TEXT` len bytes; `JWS` then three len-prefixed
//! parts (header, payload, signature). A plaintext starting with `{` is the earlier all-JSON
//! form, still read so that an upgrade logs nobody out.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::Session;
use crate::b64;
use crate::time::UnixTime;

const PACKED: u8 = 0xB2;
const ABSENT: u8 = 0;
const TEXT: u8 = 1;
const JWS: u8 = 2;

/// The session minus its tokens. Spelled out rather than derived through a
/// `serde_json::Value` round trip, which costs the module 17 KB; a field added to
/// `Session` fails to compile in `unpack` until it is added here.
#[derive(Serialize, Deserialize)]
struct Claims {
    sub: String,
    iss: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    email: Option<String>,
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    extra_claims: Map<String, Value>,
    token_exp: UnixTime,
    created: UnixTime,
    expires: UnixTime,
}

pub fn pack(session: &Session) -> Option<Vec<u8>> {
    let claims = Claims {
        sub: session.sub.clone(),
        iss: session.iss.clone(),
        email: session.email.clone(),
        extra_claims: session.extra_claims.clone(),
        token_exp: session.token_exp,
        created: session.created,
        expires: session.expires,
    };
    let json = serde_json::to_vec(&claims).ok()?;
    let mut out = Vec::with_capacity(json.len().saturating_add(session.id_token.len()).saturating_add(64));
    out.push(PACKED);
    put(&mut out, &json)?;
    put_token(&mut out, Some(&session.id_token))?;
    put_token(&mut out, session.access_token.as_deref())?;
    put_token(&mut out, session.refresh_token.as_deref())?;
    Some(out)
}

/// `None` for anything that is not a session in either form.
pub fn unpack(plain: &[u8]) -> Option<Session> {
    if plain.first() == Some(&b'{') {
        return serde_json::from_slice(plain).ok();
    }
    let mut r = Reader(plain);
    if r.byte()? != PACKED {
        return None;
    }
    let claims: Claims = serde_json::from_slice(r.chunk()?).ok()?;
    let id_token = r.token()??;
    let access_token = r.token()?;
    let refresh_token = r.token()?;
    if !r.0.is_empty() {
        return None;
    }
    Some(Session {
        sub: claims.sub,
        iss: claims.iss,
        email: claims.email,
        id_token,
        access_token,
        refresh_token,
        extra_claims: claims.extra_claims,
        token_exp: claims.token_exp,
        created: claims.created,
        expires: claims.expires,
    })
}

fn put(out: &mut Vec<u8>, bytes: &[u8]) -> Option<()> {
    out.extend_from_slice(&u32::try_from(bytes.len()).ok()?.to_be_bytes());
    out.extend_from_slice(bytes);
    Some(())
}

fn put_token(out: &mut Vec<u8>, token: Option<&str>) -> Option<()> {
    let Some(token) = token else {
        out.push(ABSENT);
        return Some(());
    };
    match jws_parts(token) {
        Some(parts) => {
            out.push(JWS);
            parts.iter().try_for_each(|p| put(out, p))
        }
        None => {
            out.push(TEXT);
            put(out, token.as_bytes())
        }
    }
}

/// A compact JWS's three parts decoded, only if encoding them again gives back exactly
/// `token`: the forwarded token must be byte for byte what the IdP signed.
fn jws_parts(token: &str) -> Option<[Vec<u8>; 3]> {
    let mut segments = token.split('.');
    let (h, p, s) = (segments.next()?, segments.next()?, segments.next()?);
    if segments.next().is_some() {
        return None;
    }
    let parts = [b64::url_decode(h)?, b64::url_decode(p)?, b64::url_decode(s)?];
    (join_jws(&parts) == token).then_some(parts)
}

fn join_jws(parts: &[Vec<u8>; 3]) -> String {
    let [h, p, s] = parts;
    format!("{}.{}.{}", b64::url_encode(h), b64::url_encode(p), b64::url_encode(s))
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn byte(&mut self) -> Option<u8> {
        let (first, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(*first)
    }

    fn chunk(&mut self) -> Option<&'a [u8]> {
        let (len, rest) = self.0.split_first_chunk::<4>()?;
        let len = usize::try_from(u32::from_be_bytes(*len)).ok()?;
        let (chunk, rest) = rest.split_at_checked(len)?;
        self.0 = rest;
        Some(chunk)
    }

    /// `None` if malformed, `Some(None)` if absent.
    fn token(&mut self) -> Option<Option<String>> {
        match self.byte()? {
            ABSENT => Some(None),
            TEXT => Some(Some(String::from_utf8(self.chunk()?.to_vec()).ok()?)),
            JWS => {
                let parts = [self.chunk()?.to_vec(), self.chunk()?.to_vec(), self.chunk()?.to_vec()];
                Some(Some(join_jws(&parts)))
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(id_token: &str, access: Option<&str>, refresh: Option<&str>) -> Session {
        let mut extra = Map::new();
        extra.insert("groups".into(), serde_json::json!(["a", "b"]));
        Session {
            sub: "alice".into(),
            iss: "https://idp.example.com".into(),
            email: Some("alice@example.com".into()),
            id_token: id_token.into(),
            access_token: access.map(str::to_string),
            refresh_token: refresh.map(str::to_string),
            extra_claims: extra,
            token_exp: 1_800_000_300,
            created: 1_800_000_000,
            expires: 1_800_028_800,
        }
    }

    const JWT: &str = "eyJhbGciOiJSUzI1NiIsImtpZCI6ImsxIn0.eyJzdWIiOiJhbGljZSIsImF1ZCI6ImFwcCJ9.c2lnbmF0dXJlLWJ5dGVzLWhlcmU";

    #[test]
    fn every_kind_of_token_round_trips_byte_for_byte() {
        let cases = [
            (JWT, Some(JWT), Some("opaque-refresh-token")),
            (JWT, None, None),
            ("not.a.jwt!", Some("opaque"), None),
            // Non-canonical base64url (trailing bits set): kept as text, never re-encoded.
            ("eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In1.AB", Some("a.b"), Some("")),
            ("a.b.c.d.e", Some("eyJ4IjoxfQ..sig"), None),
            ("", None, Some(JWT)),
        ];
        for (id, access, refresh) in cases {
            let s = session(id, access, refresh);
            let packed = pack(&s).expect("packs");
            assert_eq!(unpack(&packed).as_ref(), Some(&s), "{id} {access:?} {refresh:?}");
        }
    }

    #[test]
    fn jwts_are_stored_decoded() {
        let s = session(JWT, Some(JWT), None);
        let packed = pack(&s).expect("packs");
        let json = serde_json::to_vec(&s).expect("json");
        // Two JWTs a quarter smaller each; as text they would save only their key names.
        assert!(packed.len() + JWT.len() / 3 < json.len(), "{} vs {}", packed.len(), json.len());
        assert!(!packed.windows(JWT.len()).any(|w| w == JWT.as_bytes()));
    }

    #[test]
    fn the_earlier_json_form_still_opens() {
        let s = session(JWT, Some("at"), Some("rt"));
        let json = serde_json::to_vec(&s).expect("json");
        assert_eq!(unpack(&json), Some(s));
    }

    #[test]
    fn every_truncation_and_bad_tag_is_refused_without_panicking() {
        let packed = pack(&session(JWT, Some("at"), Some(JWT))).expect("packs");
        for end in 0..packed.len() {
            assert_eq!(unpack(packed.get(..end).unwrap_or_default()), None, "truncated at {end}");
        }
        let mut longer = packed.clone();
        longer.push(0);
        assert_eq!(unpack(&longer), None);
        for (at, byte) in [(0, 0xB3u8), (1, 0xFF)] {
            let mut bad = packed.clone();
            bad[at] = byte;
            assert_eq!(unpack(&bad), None, "byte {at} = {byte:#x}");
        }
        assert_eq!(unpack(&[PACKED, 0xFF, 0xFF, 0xFF, 0xFF]), None);
    }
}

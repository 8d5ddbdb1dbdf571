//! Compact JWS parsing and the header rules of RFC 7515 / RFC 8725; the whole token check in `validate`.

pub mod claims;
pub mod rsa;
pub mod verify;

use serde_json::{Map, Value};

use crate::b64;
use crate::error::Reason;
use crate::jwks::KeySet;

pub use claims::{ClaimRules, Claims, TokenUse};

/// Signature algorithms oidc-edge can verify. HMAC is deliberately absent: a relying party
/// must never verify with a key the token's sender could also hold (RFC 8725 3.1).
#[allow(clippy::upper_case_acronyms)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Alg {
    RS256,
    RS384,
    RS512,
    PS256,
    PS384,
    PS512,
    ES256,
    ES384,
    EdDSA,
}

/// The family of key an algorithm needs; the key's own type must match it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyFamily {
    Rsa,
    P256,
    P384,
    Ed25519,
}

impl Alg {
    pub const ALL: [Alg; 9] = [
        Alg::RS256,
        Alg::RS384,
        Alg::RS512,
        Alg::PS256,
        Alg::PS384,
        Alg::PS512,
        Alg::ES256,
        Alg::ES384,
        Alg::EdDSA,
    ];

    /// Exact, case-sensitive names (RFC 7518 3.1).
    pub fn from_name(name: &str) -> Option<Alg> {
        Alg::ALL.into_iter().find(|a| a.name() == name)
    }

    pub fn name(self) -> &'static str {
        match self {
            Alg::RS256 => "RS256",
            Alg::RS384 => "RS384",
            Alg::RS512 => "RS512",
            Alg::PS256 => "PS256",
            Alg::PS384 => "PS384",
            Alg::PS512 => "PS512",
            Alg::ES256 => "ES256",
            Alg::ES384 => "ES384",
            Alg::EdDSA => "EdDSA",
        }
    }

    pub fn family(self) -> KeyFamily {
        match self {
            Alg::RS256 | Alg::RS384 | Alg::RS512 | Alg::PS256 | Alg::PS384 | Alg::PS512 => KeyFamily::Rsa,
            Alg::ES256 => KeyFamily::P256,
            Alg::ES384 => KeyFamily::P384,
            Alg::EdDSA => KeyFamily::Ed25519,
        }
    }
}

/// The protected header members oidc-edge acts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub alg: Alg,
    pub kid: Option<String>,
    pub typ: Option<String>,
}

/// A parsed, not yet verified, compact JWS whose payload is a JSON object.
#[derive(Debug, Clone)]
pub struct UnverifiedJwt<'a> {
    pub header: Header,
    pub claims: Map<String, Value>,
    /// `base64url(header) . base64url(payload)`: the bytes the signature covers.
    pub signing_input: &'a str,
    pub signature: Vec<u8>,
    pub signature_b64: &'a str,
}

/// Header members that carry or point to a key. Following them lets the sender choose
/// the key that verifies its own token (RFC 8725 3.10), so they are refused outright.
const KEY_BEARING_MEMBERS: [&str; 4] = ["jwk", "jku", "x5u", "x5c"];
const MAX_KID_LEN: usize = 256;

/// Parses the compact serialization and applies the header rules. `max_len` bounds the
/// work an attacker can cause before anything is decoded.
pub fn parse(token: &str, max_len: usize) -> Result<UnverifiedJwt<'_>, Reason> {
    if token.len() > max_len {
        return Err(Reason::TokenTooLarge);
    }
    let mut parts = token.split('.');
    let (Some(h64), Some(p64), Some(s64), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return Err(Reason::TokenMalformed);
    };
    // The header is judged first, so an unsigned token (`alg: none`, empty signature)
    // is reported as what it is.
    if h64.is_empty() {
        return Err(Reason::TokenMalformed);
    }
    if let Some(header) = b64::url_decode(h64) {
        if let Err(reason @ (Reason::AlgNone | Reason::AlgNotAllowed | Reason::AlgMissing)) = parse_header(&header) {
            return Err(reason);
        }
    }
    if p64.is_empty() || s64.is_empty() {
        return Err(Reason::TokenMalformed);
    }
    let signing_input = token
        .get(..h64.len().saturating_add(1).saturating_add(p64.len()))
        .ok_or(Reason::TokenMalformed)?;

    let header_bytes = b64::url_decode(h64).ok_or(Reason::TokenBadBase64)?;
    let header = parse_header(&header_bytes)?;

    let payload_bytes = b64::url_decode(p64).ok_or(Reason::TokenBadBase64)?;
    let claims = json_object(&payload_bytes).ok_or(Reason::TokenBadJson)?;
    let signature = b64::url_decode(s64).ok_or(Reason::TokenBadBase64)?;
    Ok(UnverifiedJwt { header, claims, signing_input, signature, signature_b64: s64 })
}

fn parse_header(bytes: &[u8]) -> Result<Header, Reason> {
    let map = json_object(bytes).ok_or(Reason::TokenBadJson)?;
    let alg = match map.get("alg") {
        Some(Value::String(name)) if name.eq_ignore_ascii_case("none") => return Err(Reason::AlgNone),
        Some(Value::String(name)) => Alg::from_name(name).ok_or(Reason::AlgNotAllowed)?,
        _ => return Err(Reason::AlgMissing),
    };
    // We implement no JWS extension, so any `crit` entry names one we do not understand
    // (RFC 7515 4.1.11); an empty or malformed `crit` is invalid on its own.
    if map.contains_key("crit") {
        return Err(Reason::CritUnsupported);
    }
    if KEY_BEARING_MEMBERS.iter().any(|m| map.contains_key(*m)) {
        return Err(Reason::EmbeddedKeyRefused);
    }
    let kid = match map.get("kid") {
        None => None,
        Some(Value::String(k)) if k.len() <= MAX_KID_LEN => Some(k.clone()),
        Some(_) => return Err(Reason::KidInvalid),
    };
    let typ = match map.get("typ") {
        Some(Value::String(t)) => Some(t.clone()),
        _ => None,
    };
    Ok(Header { alg, kid, typ })
}

/// A JSON object whose objects, at every depth, name each member once. RFC 7515 4 lets
/// a parser keep the last of duplicate names, but the application behind the filter gets
/// the same token and may keep the first: `{"sub":"alice","sub":"admin"}` would be two
/// users. Such a token is refused (I-JSON, RFC 7493 2.3).
fn json_object(bytes: &[u8]) -> Option<Map<String, Value>> {
    match serde_json::from_slice::<UniqueNames>(bytes) {
        Ok(UniqueNames(Value::Object(map))) => Some(map),
        _ => None,
    }
}

/// A JSON value read with `UniqueNamesVisitor` (serde_json's own depth limit applies).
struct UniqueNames(Value);

impl<'de> serde::Deserialize<'de> for UniqueNames {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(UniqueNamesVisitor).map(UniqueNames)
    }
}

struct UniqueNamesVisitor;

impl<'de> serde::de::Visitor<'de> for UniqueNamesVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JSON")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(UniqueNames(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut access: A) -> Result<Value, A::Error> {
        let mut map = Map::new();
        while let Some(name) = access.next_key::<String>()? {
            let UniqueNames(value) = access.next_value()?;
            if map.contains_key(&name) {
                return Err(serde::de::Error::custom("a member name appears twice"));
            }
            map.insert(name, value);
        }
        Ok(Value::Object(map))
    }
}

/// A token whose signature and claims passed.
#[derive(Debug, Clone)]
pub struct Validated {
    pub header: Header,
    pub claims: Claims,
}

/// The whole check, in the order that keeps attacks cheap: shape and header, algorithm
/// allowlist, the kind of token (`typ`, `events`), the claims that need no key (issuer, time, audience), then key selection and
/// signature, then the claims bound to this login (nonce). An unknown `kid` is reported as
/// `KidUnknown` only after the cheap checks passed, so only plausible tokens can ask for a
/// JWKS refetch.
pub fn validate(token: &str, keys: &KeySet, rules: &ClaimRules<'_>, allowed: &[Alg], max_len: usize) -> Result<Validated, Reason> {
    let jwt = parse(token, max_len)?;
    if !allowed.contains(&jwt.header.alg) {
        return Err(Reason::AlgNotAllowed);
    }
    claims::check_kind(jwt.header.typ.as_deref(), &jwt.claims, rules.token_use)?;
    let claims = claims::check_before_signature(&jwt.claims, rules)?;
    let candidates = keys.candidates(jwt.header.kid.as_deref(), jwt.header.alg)?;
    let mut verified = false;
    for key in candidates {
        if verify::signature(&jwt, key).is_ok() {
            verified = true;
            break;
        }
    }
    if !verified {
        return Err(Reason::SignatureInvalid);
    }
    claims::check_after_signature(&claims, rules, jwt.header.alg)?;
    Ok(Validated { header: jwt.header, claims })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(v: &str) -> String {
        b64::url_encode(v.as_bytes())
    }

    fn token(header: &str, payload: &str) -> String {
        format!("{}.{}.{}", enc(header), enc(payload), b64::url_encode(b"sig"))
    }

    #[test]
    fn header_rules_table() {
        let p = r#"{"sub":"a"}"#;
        let cases: Vec<(String, Result<(), Reason>)> = vec![
            (token(r#"{"alg":"RS256","kid":"k"}"#, p), Ok(())),
            (token(r#"{"alg":"none"}"#, p), Err(Reason::AlgNone)),
            (token(r#"{"alg":"None"}"#, p), Err(Reason::AlgNone)),
            (token(r#"{"alg":"NONE"}"#, p), Err(Reason::AlgNone)),
            (token(r#"{"alg":"nOnE"}"#, p), Err(Reason::AlgNone)),
            (token(r#"{"alg":"HS256"}"#, p), Err(Reason::AlgNotAllowed)),
            (token(r#"{"alg":"rs256"}"#, p), Err(Reason::AlgNotAllowed)),
            (token(r#"{"alg":"ES512"}"#, p), Err(Reason::AlgNotAllowed)),
            (token(r#"{"typ":"JWT"}"#, p), Err(Reason::AlgMissing)),
            (token(r#"{"alg":256}"#, p), Err(Reason::AlgMissing)),
            (token(r#"{"alg":null}"#, p), Err(Reason::AlgMissing)),
            (token(r#"{"alg":"RS256","crit":["exp"]}"#, p), Err(Reason::CritUnsupported)),
            (token(r#"{"alg":"RS256","crit":[]}"#, p), Err(Reason::CritUnsupported)),
            (token(r#"{"alg":"RS256","jwk":{"kty":"RSA"}}"#, p), Err(Reason::EmbeddedKeyRefused)),
            (token(r#"{"alg":"RS256","jku":"https://evil/jwks"}"#, p), Err(Reason::EmbeddedKeyRefused)),
            (token(r#"{"alg":"RS256","x5u":"https://evil/c"}"#, p), Err(Reason::EmbeddedKeyRefused)),
            (token(r#"{"alg":"RS256","x5c":["MII"]}"#, p), Err(Reason::EmbeddedKeyRefused)),
            (token(r#"{"alg":"RS256","kid":7}"#, p), Err(Reason::KidInvalid)),
            (token(r#"{"alg":"RS256","kid":["a"]}"#, p), Err(Reason::KidInvalid)),
            (token(&format!(r#"{{"alg":"RS256","kid":"{}"}}"#, "k".repeat(300)), p), Err(Reason::KidInvalid)),
            (token(r#"["alg","RS256"]"#, p), Err(Reason::TokenBadJson)),
            (token(r#"{"alg":"RS256""#, p), Err(Reason::TokenBadJson)),
            (token(r#"{"alg":"RS256"}"#, "[1]"), Err(Reason::TokenBadJson)),
            (token(r#"{"alg":"RS256"}"#, "not json"), Err(Reason::TokenBadJson)),
            // A member named twice: the application behind may read the other one.
            (token(r#"{"alg":"RS256"}"#, r#"{"sub":"alice","sub":"admin"}"#), Err(Reason::TokenBadJson)),
            (token(r#"{"alg":"RS256"}"#, r#"{"sub":"a","x":{"role":"u","role":"admin"}}"#), Err(Reason::TokenBadJson)),
            (token(r#"{"alg":"RS256"}"#, r#"{"sub":"a","x":[{"k":1,"k":2}]}"#), Err(Reason::TokenBadJson)),
            (token(r#"{"alg":"RS256","kid":"a","kid":"b"}"#, p), Err(Reason::TokenBadJson)),
            (token(r#"{"alg":"RS256","alg":"none"}"#, p), Err(Reason::TokenBadJson)),
            (token(r#"{"alg":"RS256"}"#, r#"{"sub":"a","n":[1,-2,3.5,18446744073709551615,null,true,"s",{"k":1}],"o":{"k":1}}"#), Ok(())),
        ];
        for (tok, want) in cases {
            let got = parse(&tok, 8192).map(|_| ());
            assert_eq!(got, want, "{tok}");
        }
    }

    #[test]
    fn shape_rules_table() {
        let h = enc(r#"{"alg":"RS256"}"#);
        let p = enc(r#"{"sub":"a"}"#);
        let cases: Vec<(String, Reason)> = vec![
            (String::new(), Reason::TokenMalformed),
            ("a.b".into(), Reason::TokenMalformed),
            ("a.b.c.d".into(), Reason::TokenMalformed),
            (format!("{h}.{p}."), Reason::TokenMalformed),
            (format!("{}.{p}.", enc(r#"{"alg":"none"}"#)), Reason::AlgNone),
            (format!("{h}..c2ln"), Reason::TokenMalformed),
            (format!(".{p}.c2ln"), Reason::TokenMalformed),
            (format!("{h}.{p}.c2ln="), Reason::TokenBadBase64),
            (format!("{h}.{p}.c2l+"), Reason::TokenBadBase64),
            (format!("{h}=.{p}.c2ln"), Reason::TokenBadBase64),
            (format!("{h}.{p}!.c2ln"), Reason::TokenBadBase64),
            (format!("{h}.{p}.A"), Reason::TokenBadBase64),
            ("é.é.é".into(), Reason::TokenBadBase64),
        ];
        for (tok, want) in cases {
            assert_eq!(parse(&tok, 8192).map(|_| ()), Err(want), "{tok:?}");
        }
        let big = format!("{h}.{}.c2ln", "A".repeat(9000));
        assert_eq!(parse(&big, 8192).map(|_| ()), Err(Reason::TokenTooLarge));
    }

    #[test]
    fn signing_input_is_header_dot_payload() {
        let tok = token(r#"{"alg":"ES256","kid":"x","typ":"JWT"}"#, r#"{"sub":"a"}"#);
        let jwt = parse(&tok, 8192).unwrap();
        assert_eq!(jwt.header.alg, Alg::ES256);
        assert_eq!(jwt.header.kid.as_deref(), Some("x"));
        assert_eq!(jwt.header.typ.as_deref(), Some("JWT"));
        assert_eq!(jwt.signature, b"sig");
        let (si, _) = tok.rsplit_once('.').unwrap();
        assert_eq!(jwt.signing_input, si);
    }

    #[test]
    fn deep_json_is_refused_not_a_crash() {
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        let tok = token(r#"{"alg":"RS256"}"#, &deep);
        assert_eq!(parse(&tok, usize::MAX).map(|_| ()), Err(Reason::TokenBadJson));
    }
}

//! JWK sets: parsing with RFC 7517/8725 hygiene, key selection by `kid`, snapshots and rotation strategies.

use jsonwebtoken::DecodingKey;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::b64;
use crate::error::Reason;
use crate::jwt::{Alg, KeyFamily};
use crate::time::UnixTime;

/// A verification key the filter will use, with everything needed precomputed.
#[derive(Clone)]
pub struct Jwk {
    pub kid: Option<String>,
    pub family: KeyFamily,
    /// The JWK's own `alg`, when it names one: then only that algorithm verifies with it.
    pub alg: Option<Alg>,
    /// RSA modulus length in bytes (the exact length of a valid signature); 0 otherwise.
    pub modulus_len: usize,
    pub decoding: DecodingKey,
    /// RSA keys: the modulus with its Montgomery constants, for RS256/384/512.
    pub rsa: Option<crate::jwt::rsa::RsaPublicKey>,
    /// RFC 7638 SHA-256 thumbprint: the key's identity across refreshes.
    pub thumbprint: String,
    /// The public members only, as they go into snapshots.
    pub public: Map<String, Value>,
}

impl std::fmt::Debug for Jwk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Jwk").field("kid", &self.kid).field("family", &self.family).field("alg", &self.alg).finish()
    }
}

impl Jwk {
    pub fn accepts(&self, alg: Alg) -> bool {
        alg.family() == self.family && self.alg.is_none_or(|a| a == alg)
    }

    /// The name used in logs and audit lines: the `kid`, or the thumbprint when there is none.
    pub fn label(&self) -> &str {
        self.kid.as_deref().unwrap_or(&self.thumbprint)
    }
}

/// How many kid-less candidates are tried before the token is refused as ambiguous.
/// One RS256 verification costs about 0.1 ms in wasm (`jwt::rsa`; PS*/ES* more, up to
/// about 1 ms): three bounds the damage of a crafted kid-less token while still covering
/// IdPs that publish a current and a next key.
pub const MAX_KIDLESS_CANDIDATES: usize = 3;
/// More keys than this in one JWKS is not a real IdP; the rest are ignored.
pub const MAX_KEYS: usize = 64;
pub const MAX_JWKS_BYTES: usize = 512 * 1024;

/// The keys in force.
#[derive(Clone, Debug, Default)]
pub struct KeySet {
    keys: Vec<Jwk>,
}

/// Members that only a private or symmetric key has. A JWKS endpoint that publishes them
/// is misconfigured in a way that leaks secrets; oidc-edge refuses the whole set.
const PRIVATE_MEMBERS: [&str; 8] = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

/// Why a key in a set was not taken (logged, never fatal on its own).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    pub key: String,
    pub why: &'static str,
}

impl KeySet {
    pub fn new(keys: Vec<Jwk>) -> KeySet {
        KeySet { keys }
    }

    pub fn keys(&self) -> &[Jwk] {
        &self.keys
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Whether refetching the set could turn this refusal into a pass: the token names a
    /// `kid` the set lacks, or the set names no key at all (an IdP without `kid`s), so a
    /// signature no key verifies may come from a key it rotated in since.
    pub fn refetch_may_help(&self, reason: Reason) -> bool {
        reason == Reason::KidUnknown || (reason == Reason::SignatureInvalid && !self.keys.is_empty() && self.keys.iter().all(|k| k.kid.is_none()))
    }

    /// The keys worth trying for a token with this `kid` and `alg`.
    /// With a `kid`, only keys carrying exactly that `kid` are considered (no fallback to
    /// other keys). Without one, every key that fits the algorithm, up to a small bound.
    pub fn candidates(&self, kid: Option<&str>, alg: Alg) -> Result<Vec<&Jwk>, Reason> {
        if self.keys.is_empty() {
            return Err(Reason::KeysNotLoaded);
        }
        // An IdP that publishes no `kid` at all cannot be matched by one: a token's `kid` is
        // then ignored and the keys are chosen as for a kid-less token.
        let kid = kid.filter(|_| self.keys.iter().any(|k| k.kid.is_some()));
        match kid {
            Some(kid) => {
                let with_kid: Vec<&Jwk> = self.keys.iter().filter(|k| k.kid.as_deref() == Some(kid)).collect();
                if with_kid.is_empty() {
                    return Err(Reason::KidUnknown);
                }
                let fitting: Vec<&Jwk> = with_kid.into_iter().filter(|k| k.accepts(alg)).collect();
                if fitting.is_empty() {
                    Err(Reason::KeyAlgMismatch)
                } else {
                    Ok(fitting)
                }
            }
            None => {
                let fitting: Vec<&Jwk> = self.keys.iter().filter(|k| k.accepts(alg)).collect();
                match fitting.len() {
                    0 => Err(Reason::KeyAlgMismatch),
                    n if n > MAX_KIDLESS_CANDIDATES => Err(Reason::KeyAmbiguous),
                    _ => Ok(fitting),
                }
            }
        }
    }
}

/// Parses a JWKS document as fetched from `jwks_uri`. Unusable keys are skipped and
/// reported; a set with private members, or with no usable key at all, is an error so
/// that it never replaces a good set.
pub fn parse_jwks(bytes: &[u8]) -> Result<(KeySet, Vec<Skipped>), String> {
    if bytes.len() > MAX_JWKS_BYTES {
        return Err(format!("the key set is larger than {MAX_JWKS_BYTES} bytes"));
    }
    let value: Value = serde_json::from_slice(bytes).map_err(|_| "the key set is not JSON".to_string())?;
    let Some(Value::Array(items)) = value.get("keys") else {
        return Err("the key set has no `keys` array".into());
    };
    parse_key_list(items)
}

/// Parses a list of JWK objects (a fetched set or a stored snapshot).
pub fn parse_key_list(items: &[Value]) -> Result<(KeySet, Vec<Skipped>), String> {
    let mut keys = Vec::new();
    let mut skipped = Vec::new();
    for (index, item) in items.iter().enumerate() {
        let Value::Object(map) = item else {
            skipped.push(Skipped { key: format!("#{index}"), why: "not a JSON object" });
            continue;
        };
        let label = match map.get("kid") {
            Some(Value::String(k)) => k.clone(),
            _ => format!("#{index}"),
        };
        if let Some(member) = PRIVATE_MEMBERS.iter().find(|m| map.contains_key(**m)) {
            return Err(format!("key `{label}` holds private or symmetric key material (`{member}`); refusing the whole set"));
        }
        if keys.len() >= MAX_KEYS {
            skipped.push(Skipped { key: label, why: "too many keys in the set" });
            continue;
        }
        match parse_key(map) {
            Ok(jwk) => keys.push(jwk),
            Err(why) => skipped.push(Skipped { key: label, why }),
        }
    }
    if keys.is_empty() {
        return Err(if items.is_empty() {
            "the key set is empty".into()
        } else {
            "the key set has no usable signature verification key".into()
        });
    }
    Ok((KeySet { keys }, skipped))
}

fn str_member<'a>(map: &'a Map<String, Value>, name: &str) -> Result<Option<&'a str>, &'static str> {
    match map.get(name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err("a member has the wrong type"),
    }
}

fn parse_key(map: &Map<String, Value>) -> Result<Jwk, &'static str> {
    let kty = str_member(map, "kty")?.ok_or("no `kty`")?;
    if let Some(usage) = str_member(map, "use")? {
        if usage != "sig" {
            return Err("not a signature key (`use`)");
        }
    }
    if let Some(ops) = map.get("key_ops") {
        let Value::Array(ops) = ops else { return Err("`key_ops` is not a list") };
        if !ops.iter().any(|o| o.as_str() == Some("verify")) {
            return Err("`key_ops` does not allow `verify`");
        }
    }
    let kid = str_member(map, "kid")?.map(str::to_string);
    let alg = match str_member(map, "alg")? {
        None => None,
        Some(name) => Some(Alg::from_name(name).ok_or("`alg` is not a supported signature algorithm")?),
    };

    let mut rsa = None;
    let (family, modulus_len, decoding, thumb_input, public) = match kty {
        "RSA" => {
            let n = strip_leading_zeros(decode_member(map, "n")?);
            let e = strip_leading_zeros(decode_member(map, "e")?);
            let bits = bit_length(&n);
            if bits < 2048 {
                return Err("RSA key shorter than 2048 bits");
            }
            if bits > 4096 {
                return Err("RSA key longer than 4096 bits");
            }
            if e != [0x01, 0x00, 0x01] && e != [0x03] {
                return Err("RSA exponent is not 3 or 65537");
            }
            rsa = Some(crate::jwt::rsa::RsaPublicKey::new(&n, &e).ok_or("RSA modulus is even: not an RSA key")?);
            let (n64, e64) = (b64::url_encode(&n), b64::url_encode(&e));
            let thumb = format!(r#"{{"e":"{e64}","kty":"RSA","n":"{n64}"}}"#);
            let mut public = Map::new();
            public.insert("kty".into(), "RSA".into());
            public.insert("n".into(), n64.into());
            public.insert("e".into(), e64.into());
            (KeyFamily::Rsa, n.len(), DecodingKey::from_rsa_raw_components(&n, &e), thumb, public)
        }
        "EC" => {
            let crv = str_member(map, "crv")?.ok_or("EC key without `crv`")?;
            let (family, len) = match crv {
                "P-256" => (KeyFamily::P256, 32),
                "P-384" => (KeyFamily::P384, 48),
                _ => return Err("EC curve not supported"),
            };
            let x = decode_member(map, "x")?;
            let y = decode_member(map, "y")?;
            if x.len() != len || y.len() != len {
                return Err("EC coordinate has the wrong length");
            }
            let (x64, y64) = (b64::url_encode(&x), b64::url_encode(&y));
            let mut point = Vec::with_capacity(len.saturating_mul(2).saturating_add(1));
            point.push(0x04);
            point.extend_from_slice(&x);
            point.extend_from_slice(&y);
            let on_curve = match family {
                KeyFamily::P256 => p256::PublicKey::from_sec1_bytes(&point).is_ok(),
                _ => p384::PublicKey::from_sec1_bytes(&point).is_ok(),
            };
            if !on_curve {
                return Err("EC point is not on the curve");
            }
            let thumb = format!(r#"{{"crv":"{crv}","kty":"EC","x":"{x64}","y":"{y64}"}}"#);
            let mut public = Map::new();
            public.insert("kty".into(), "EC".into());
            public.insert("crv".into(), crv.into());
            public.insert("x".into(), x64.into());
            public.insert("y".into(), y64.into());
            (family, 0, DecodingKey::from_ec_der(&point), thumb, public)
        }
        "OKP" => {
            if str_member(map, "crv")? != Some("Ed25519") {
                return Err("OKP curve not supported (only Ed25519)");
            }
            let x = decode_member(map, "x")?;
            let Ok(bytes) = <[u8; 32]>::try_from(x.as_slice()) else {
                return Err("Ed25519 key has the wrong length");
            };
            if ed25519_dalek::VerifyingKey::from_bytes(&bytes).is_err() {
                return Err("Ed25519 key is not a valid curve point");
            }
            let x64 = b64::url_encode(&x);
            let thumb = format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{x64}"}}"#);
            let mut public = Map::new();
            public.insert("kty".into(), "OKP".into());
            public.insert("crv".into(), "Ed25519".into());
            public.insert("x".into(), x64.into());
            (KeyFamily::Ed25519, 0, DecodingKey::from_ed_der(&x), thumb, public)
        }
        _ => return Err("key type not supported"),
    };
    if let Some(a) = alg {
        if a.family() != family {
            return Err("`alg` does not fit the key type");
        }
    }
    let mut public = public;
    if let Some(k) = &kid {
        public.insert("kid".into(), k.clone().into());
    }
    if let Some(a) = alg {
        public.insert("alg".into(), a.name().into());
    }
    public.insert("use".into(), "sig".into());
    let thumbprint = b64::url_encode(&Sha256::digest(thumb_input.as_bytes()));
    Ok(Jwk { kid, family, alg, modulus_len, decoding, rsa, thumbprint, public })
}

fn decode_member(map: &Map<String, Value>, name: &str) -> Result<Vec<u8>, &'static str> {
    let s = str_member(map, name)?.ok_or("a required key member is missing")?;
    b64::url_decode(s).ok_or("a key member is not base64url")
}

fn strip_leading_zeros(mut v: Vec<u8>) -> Vec<u8> {
    let zeros = v.iter().take_while(|b| **b == 0).count();
    v.drain(..zeros);
    v
}

fn bit_length(n: &[u8]) -> usize {
    match n.first() {
        None => 0,
        Some(first) => n.len().saturating_sub(1).saturating_mul(8).saturating_add(8usize.saturating_sub(first.leading_zeros() as usize)),
    }
}

/// A key as kept in the shared snapshot, with the times rotation needs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredKey {
    pub jwk: Map<String, Value>,
    pub thumbprint: String,
    pub first_seen: UnixTime,
    /// The last time a successful fetch still listed this key.
    pub last_seen: UnixTime,
}

/// How a freshly fetched set is combined with the keys already known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rotation {
    /// Only the incoming keys remain.
    Replace,
    /// Incoming keys are added; known keys are never dropped.
    Add,
    /// Known keys missing from the incoming set stay valid for the overlap, then are dropped.
    ExpireAfter { overlap: u64 },
}

/// The result of a merge, with what changed for the audit line.
#[derive(Debug, Clone, PartialEq)]
pub struct Merged {
    pub keys: Vec<StoredKey>,
    pub added: Vec<String>,
    pub removed: Vec<String>,
}

fn stored_label(k: &StoredKey) -> String {
    k.jwk.get("kid").and_then(Value::as_str).map(str::to_string).unwrap_or_else(|| k.thumbprint.clone())
}

/// Combines the known keys with a freshly fetched, already validated set.
pub fn merge(known: &[StoredKey], incoming: &KeySet, rotation: Rotation, now: UnixTime) -> Merged {
    let mut keys: Vec<StoredKey> = Vec::new();
    let mut added = Vec::new();
    for jwk in incoming.keys() {
        if keys.iter().any(|k| k.thumbprint == jwk.thumbprint && k.jwk == jwk.public) {
            continue;
        }
        let first_seen = match known.iter().find(|k| k.thumbprint == jwk.thumbprint && k.jwk == jwk.public) {
            Some(k) => k.first_seen,
            None => {
                added.push(jwk.label().to_string());
                now
            }
        };
        keys.push(StoredKey { jwk: jwk.public.clone(), thumbprint: jwk.thumbprint.clone(), first_seen, last_seen: now });
    }
    let mut removed = Vec::new();
    let mut kept_old: Vec<StoredKey> = Vec::new();
    for old in known {
        if keys.iter().any(|k| k.thumbprint == old.thumbprint && k.jwk == old.jwk) {
            continue;
        }
        let keep = match rotation {
            Rotation::Replace => false,
            Rotation::Add => true,
            Rotation::ExpireAfter { overlap } => now < old.last_seen.saturating_add(overlap),
        };
        if keep {
            kept_old.push(old.clone());
        } else {
            removed.push(stored_label(old));
        }
    }
    // Bounded like a fetched set: beyond MAX_KEYS the keys seen longest ago go first.
    kept_old.sort_by_key(|k| std::cmp::Reverse(k.last_seen));
    let room = MAX_KEYS.saturating_sub(keys.len());
    if kept_old.len() > room {
        removed.extend(kept_old.drain(room..).map(|k| stored_label(&k)));
    }
    keys.extend(kept_old);
    Merged { keys, added, removed }
}

/// Drops keys whose overlap ran out between fetches (expire_after). Keys listed by the
/// last successful fetch (`last_seen == fetched_at`) always stay.
pub fn expire(known: &[StoredKey], rotation: Rotation, now: UnixTime, fetched_at: UnixTime) -> Vec<StoredKey> {
    match rotation {
        Rotation::ExpireAfter { overlap } => known
            .iter()
            .filter(|k| k.last_seen >= fetched_at || now < k.last_seen.saturating_add(overlap))
            .cloned()
            .collect(),
        _ => known.to_vec(),
    }
}

/// Rebuilds a usable key set from stored keys (what every worker does with the snapshot).
pub fn from_stored(stored: &[StoredKey]) -> KeySet {
    let items: Vec<Value> = stored.iter().map(|k| Value::Object(k.jwk.clone())).collect();
    parse_key_list(&items).map(|(set, _)| set).unwrap_or_default()
}

#[cfg(test)]
pub(crate) mod tests_support {
    // RFC 7520 3.3 public key (bilbo.baggins@hobbiton.example).
    pub const RSA_N: &str = "n4EPtAOCc9AlkeQHPzHStgAbgs7bTZLwUBZdR8_KuKPEHLd4rHVTeT-O-XV2jRojdNhxJWTDvNd7nqQ0VEiZQHz_AJmSCpMaJMRBSFKrKb2wqVwGU_NsYOYL-QtiWN2lbzcEe6XC0dApr5ydQLrHqkHHig3RBordaZ6Aj-oBHqFEHYpPe7Tpe-OfVfHd1E6cS6M1FZcD1NNLYD5lFHpPI9bTwJlsde3uhGqC0ZCuEHg8lhzwOHrtIQbS0FVbb9k3-tVTU4fg_3L_vniUFAKwuCLqKnS2BYwdq_mzSnbLY7h_qixoR7jig3__kRhuaxwUkRz5iaiQkqgc5gHdrNP5zw";
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    use super::tests_support::RSA_N;
    // RFC 8037 A.2 Ed25519 public key.
    const ED_X: &str = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo";
    // A P-256 public key from jwt_verify_lib's vectors.
    const EC_X: &str = "EB54wykhS7YJFD6RYJNnwbWEz3cI7CF5bCDTXlrwI5k";
    const EC_Y: &str = "92bCBTvMFQ8lKbS2MbgjT3YfmYo6HnPEE2tsAqWUJw8";

    fn not_an_ed25519_point() -> [u8; 32] {
        (0u8..=255).map(|i| [i; 32]).find(|b| ed25519_dalek::VerifyingKey::from_bytes(b).is_err()).unwrap()
    }

    fn rsa(kid: &str) -> Value {
        json!({"kty": "RSA", "kid": kid, "use": "sig", "n": RSA_N, "e": "AQAB"})
    }

    fn set(keys: Vec<Value>) -> Result<(KeySet, Vec<Skipped>), String> {
        parse_jwks(json!({ "keys": keys }).to_string().as_bytes())
    }

    #[test]
    fn jwks_hygiene_table() {
        let short_n = b64::url_encode(&[0xc5u8; 128]);
        let long_n = b64::url_encode(&[0xc5u8; 513]);
        // (key, usable?)
        let cases: Vec<(&str, Value, bool)> = vec![
            ("rsa", rsa("a"), true),
            ("rsa alg RS256", json!({"kty":"RSA","kid":"a","alg":"RS256","n":RSA_N,"e":"AQAB"}), true),
            ("rsa no use", json!({"kty":"RSA","n":RSA_N,"e":"AQAB"}), true),
            ("rsa use enc", json!({"kty":"RSA","use":"enc","n":RSA_N,"e":"AQAB"}), false),
            ("rsa-oaep (keycloak enc key)", json!({"kty":"RSA","alg":"RSA-OAEP","use":"enc","n":RSA_N,"e":"AQAB"}), false),
            ("rsa key_ops verify", json!({"kty":"RSA","key_ops":["verify"],"n":RSA_N,"e":"AQAB"}), true),
            ("rsa key_ops encrypt", json!({"kty":"RSA","key_ops":["encrypt"],"n":RSA_N,"e":"AQAB"}), false),
            ("rsa 1024 bits", json!({"kty":"RSA","n":short_n,"e":"AQAB"}), false),
            ("rsa 4104 bits", json!({"kty":"RSA","n":long_n,"e":"AQAB"}), false),
            ("rsa e=5", json!({"kty":"RSA","n":RSA_N,"e":"BQ"}), false),
            ("rsa alg ES256", json!({"kty":"RSA","alg":"ES256","n":RSA_N,"e":"AQAB"}), false),
            ("rsa alg HS256", json!({"kty":"RSA","alg":"HS256","n":RSA_N,"e":"AQAB"}), false),
            ("rsa n not b64", json!({"kty":"RSA","n":"!!","e":"AQAB"}), false),
            ("rsa n number", json!({"kty":"RSA","n":5,"e":"AQAB"}), false),
            ("rsa no e", json!({"kty":"RSA","n":RSA_N}), false),
            ("ec p256", json!({"kty":"EC","crv":"P-256","x":EC_X,"y":EC_Y}), true),
            ("ec p256 off the curve", json!({"kty":"EC","crv":"P-256","x":b64::url_encode(&[1u8;32]),"y":b64::url_encode(&[2u8;32])}), false),
            ("okp not a point", json!({"kty":"OKP","crv":"Ed25519","x":b64::url_encode(&not_an_ed25519_point())}), false),
            ("ec short x", json!({"kty":"EC","crv":"P-256","x":b64::url_encode(&[1u8;31]),"y":b64::url_encode(&[2u8;32])}), false),
            ("ec p521", json!({"kty":"EC","crv":"P-521","x":b64::url_encode(&[1u8;66]),"y":b64::url_encode(&[2u8;66])}), false),
            ("ec no crv", json!({"kty":"EC","x":b64::url_encode(&[1u8;32]),"y":b64::url_encode(&[2u8;32])}), false),
            ("okp", json!({"kty":"OKP","crv":"Ed25519","x":ED_X}), true),
            ("okp x448", json!({"kty":"OKP","crv":"X448","x":ED_X}), false),
            ("unknown kty", json!({"kty":"XYZ","x":"a"}), false),
            ("no kty", json!({"n":RSA_N,"e":"AQAB"}), false),
            ("not an object", json!("key"), false),
        ];
        for (name, key, usable) in cases {
            // Pair every case with a good key so the set itself parses and only this key is judged.
            let (parsed, skipped) = set(vec![rsa("anchor"), key]).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(parsed.keys().len() == 2, usable, "{name}: skipped {skipped:?}");
        }
    }

    #[test]
    fn whole_set_refused() {
        let cases: Vec<(&str, String)> = vec![
            ("not json", "<html>".into()),
            ("no keys", r#"{"kid":"x"}"#.into()),
            ("keys not array", r#"{"keys":{}}"#.into()),
            ("empty", r#"{"keys":[]}"#.into()),
            ("only unusable", json!({"keys":[{"kty":"oct-ish"}]}).to_string()),
            ("private rsa", json!({"keys":[rsa("a"), {"kty":"RSA","n":RSA_N,"e":"AQAB","d":"AQAB"}]}).to_string()),
            ("symmetric", json!({"keys":[rsa("a"), {"kty":"oct","k":"c2VjcmV0"}]}).to_string()),
        ];
        for (name, body) in cases {
            assert!(parse_jwks(body.as_bytes()).is_err(), "{name} should be refused");
        }
        let huge = format!(r#"{{"keys":[],"pad":"{}"}}"#, "a".repeat(MAX_JWKS_BYTES));
        assert!(parse_jwks(huge.as_bytes()).unwrap_err().contains("larger"));
    }

    #[test]
    fn selection_table() {
        let (keys, _) = set(vec![
            rsa("a"),
            json!({"kty":"RSA","kid":"ps","alg":"PS256","n":RSA_N,"e":"AQAB"}),
            json!({"kty":"OKP","crv":"Ed25519","kid":"ed","x":ED_X}),
        ])
        .unwrap();
        let kids = |r: Result<Vec<&Jwk>, Reason>| r.map(|v| v.iter().map(|k| k.label().to_string()).collect::<Vec<_>>());
        assert_eq!(kids(keys.candidates(Some("a"), Alg::RS256)), Ok(vec!["a".into()]));
        assert_eq!(kids(keys.candidates(Some("a"), Alg::PS256)), Ok(vec!["a".into()]), "alg-less RSA key fits PS too");
        assert_eq!(kids(keys.candidates(Some("ps"), Alg::RS256)), Err(Reason::KeyAlgMismatch), "the key's alg binds");
        assert_eq!(kids(keys.candidates(Some("a"), Alg::ES256)), Err(Reason::KeyAlgMismatch), "RSA key never verifies EC");
        assert_eq!(kids(keys.candidates(Some("ed"), Alg::RS256)), Err(Reason::KeyAlgMismatch));
        assert_eq!(kids(keys.candidates(Some("zz"), Alg::RS256)), Err(Reason::KidUnknown));
        assert_eq!(kids(keys.candidates(None, Alg::EdDSA)), Ok(vec!["ed".into()]));
        assert_eq!(kids(keys.candidates(None, Alg::RS256)), Ok(vec!["a".into()]));
        assert_eq!(kids(keys.candidates(None, Alg::ES384)), Err(Reason::KeyAlgMismatch));
        let many = set((0..4).map(|i| rsa(&format!("k{i}"))).collect()).unwrap().0;
        assert_eq!(kids(many.candidates(None, Alg::RS256)), Err(Reason::KeyAmbiguous));
        assert_eq!(kids(KeySet::default().candidates(Some("a"), Alg::RS256)), Err(Reason::KeysNotLoaded));
    }

    #[test]
    fn a_set_without_kids_ignores_the_tokens_kid() {
        let (keys, _) = set(vec![json!({"kty":"RSA","n":RSA_N,"e":"AQAB"})]).unwrap();
        assert_eq!(keys.candidates(Some("whatever"), Alg::RS256).map(|v| v.len()), Ok(1));
        let (mixed, _) = set(vec![json!({"kty":"RSA","n":RSA_N,"e":"AQAB"}), rsa("a")]).unwrap();
        assert_eq!(mixed.candidates(Some("whatever"), Alg::RS256).map(|v| v.len()), Err(Reason::KidUnknown));
    }

    #[test]
    fn add_rotation_stays_bounded() {
        let mut known: Vec<StoredKey> = (0..MAX_KEYS).map(|i| stored(&format!("old{i}"), 0, i as u64)).collect();
        known.reverse();
        let incoming = set(vec![rsa("new")]).unwrap().0;
        let m = merge(&known, &incoming, Rotation::Add, 1000);
        assert_eq!(m.keys.len(), MAX_KEYS);
        assert_eq!(m.removed, vec!["old0".to_string()], "the key seen longest ago goes");
        assert_eq!(from_stored(&m.keys).keys().len(), MAX_KEYS);
    }

    #[test]
    fn thumbprint_matches_rfc7638() {
        // RFC 7638 3.1 example key and its thumbprint.
        let n = "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw";
        let (k, _) = set(vec![json!({"kty":"RSA","n":n,"e":"AQAB","alg":"RS256","kid":"2011-04-29"})]).unwrap();
        assert_eq!(k.keys()[0].thumbprint, "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs");
    }

    fn stored(kid: &str, first: u64, last: u64) -> StoredKey {
        let (k, _) = set(vec![rsa(kid)]).unwrap();
        let j = &k.keys()[0];
        StoredKey { jwk: j.public.clone(), thumbprint: j.thumbprint.clone(), first_seen: first, last_seen: last }
    }

    fn labels(keys: &[StoredKey]) -> Vec<String> {
        let mut v: Vec<String> = keys.iter().map(stored_label).collect();
        v.sort();
        v
    }

    // The seed documents' example: known A, B, D; incoming B, C, D.
    #[test]
    fn rotation_strategies_seed_example() {
        let known = vec![stored("A", 0, 1000), stored("B", 0, 1000), stored("D", 0, 1000)];
        let incoming = set(vec![rsa("B"), rsa("C"), rsa("D")]).unwrap().0;

        let r = merge(&known, &incoming, Rotation::Replace, 2000);
        assert_eq!(labels(&r.keys), ["B", "C", "D"]);
        assert_eq!((r.added.clone(), r.removed.clone()), (vec!["C".into()], vec!["A".into()]));

        let a = merge(&known, &incoming, Rotation::Add, 2000);
        assert_eq!(labels(&a.keys), ["A", "B", "C", "D"]);
        assert_eq!((a.added.clone(), a.removed.clone()), (vec!["C".into()], vec![]));

        let hour = 3600;
        let e = merge(&known, &incoming, Rotation::ExpireAfter { overlap: hour }, 1000 + hour - 1);
        assert_eq!(labels(&e.keys), ["A", "B", "C", "D"], "A is still inside its overlap");
        let later = merge(&e.keys, &incoming, Rotation::ExpireAfter { overlap: hour }, 1000 + hour);
        assert_eq!(labels(&later.keys), ["B", "C", "D"], "A dropped once the overlap ran out");
        assert_eq!(later.removed, vec!["A".to_string()]);
        let b = later.keys.iter().find(|k| stored_label(k) == "B").unwrap();
        assert_eq!((b.first_seen, b.last_seen), (0, 1000 + hour), "B keeps its first sighting");
    }

    #[test]
    fn expire_between_fetches() {
        let known = vec![stored("A", 0, 100), stored("B", 0, 5000)];
        let kept = expire(&known, Rotation::ExpireAfter { overlap: 3600 }, 4000, 5000);
        assert_eq!(labels(&kept), ["B"]);
        assert_eq!(from_stored(&kept).keys().len(), 1);
    }
}

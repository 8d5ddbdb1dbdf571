//! The fuzz harnesses: one function per parser that a client or an IdP can reach.
//!
//! Each function takes the fuzzer's bytes, drives the core the way the filter does, and
//! asserts what must hold for every input (a panic is a finding). The same functions run
//! natively in `tests/fuzz_regressions.rs` over the seed corpus and every crash input
//! kept in `fuzz/regressions/<target>/`, so a fixed crash stays fixed without the fuzzer.
//! This file depends only on `oidc_edge`, `serde_json`, and for the `rsa` target's
//! reference arithmetic `rsa` (its `BigUint`) and `sha2`: both crates include it.
//!
//! The engine keeps per-worker verdict caches (`RefCell`, `Rc`): it is neither `Sync` nor
//! meant to outlive one input here. Every input gets a fresh engine, store and views (the
//! parsed configuration and the loaded provider state are built once per thread and
//! cloned), so a finding never depends on what earlier inputs left in a cache.

use std::sync::OnceLock;

use oidc_edge::b64;
use oidc_edge::config::{host_rank, Profile, RoutePath, Settings};
use oidc_edge::entropy::SplitMix;
use oidc_edge::error::Reason;
use oidc_edge::flow::{Context, CookieHeader, Decision, Engine, Event, Pending, MAX_TOKEN_BYTES};
use oidc_edge::http::{self, CallResponse, Endpoint, Query};
use oidc_edge::jwks::{self, KeySet, Rotation, StoredKey};
use oidc_edge::jwt::{self, Alg, ClaimRules, KeyFamily};
use oidc_edge::lifecycle::{Refresher, Target};
use oidc_edge::oidc::{callback, discovery, token};
use oidc_edge::provider::{self, View};
use oidc_edge::request::{self, ClientKind, RequestView};
use oidc_edge::session::{cookies, packed};
use oidc_edge::session::seal::Sealer;
use oidc_edge::store::MemoryStore;
use serde_json::{Map, Value};

/// A harness: the fuzzer's bytes in, a panic on a finding.
pub type Harness = fn(&[u8]);

/// Every target, by the name of its fuzz binary and of its corpus folders.
pub const TARGETS: &[(&str, Harness)] = &[
    ("jwt", jwt),
    ("jwks", jwks),
    ("discovery", discovery),
    ("token_response", token_response),
    ("cookies", cookies),
    ("config", config),
    ("callback", callback),
    ("request", request),
    ("flow", flow),
    ("provider", provider),
    ("rsa", rsa_differential),
];

pub fn by_name(name: &str) -> Option<Harness> {
    TARGETS.iter().find(|(n, _)| *n == name).map(|(_, f)| *f)
}

// ---------------------------------------------------------------------------------------
// The fixed world the harnesses run in.

pub const ISSUER: &str = "https://idp.example.com";
/// The issuer of the API route's extra bearer validator (static keys: `ed` only).
pub const OTHER_ISSUER: &str = "https://partner.example.com";
pub const CLIENT_ID: &str = "oidc-edge-fuzz";
pub const NONCE: &str = "n-0S6_WzA2Mj";
pub const ACCESS_TOKEN: &str = "fuzz-access-token";
/// 2023-11-14: the harnesses' "now". Seed tokens are valid for a day around it.
pub const NOW: u64 = 1_700_000_000;
pub const SKEW: u64 = 60;
pub const COOKIE_SECRET: [u8; 32] = [7u8; 32];
pub const SEAL_LABEL: &str = "session:oidc_edge";
/// The host of the second profile (`routes[0]`): userinfo on, the access token forwarded,
/// claim headers and a `require` rule, `SameSite=Strict`, query tokens on WebSockets and a
/// bearer validator for `OTHER_ISSUER`.
pub const API_HOST: &str = "api.example.com";
/// Never authenticated (identity headers still stripped).
pub const PASS_THROUGH: &str = "/healthz";
/// The login callback and logout paths of both profiles.
pub const CALLBACK_PATH: &str = "/oauth2/callback";
/// The verdict-cache key of the engines the harnesses build.
pub const CACHE_SEED: [u8; 16] = [3u8; 16];

/// The test IdP's public keys: `k1` (RSA, tests/fixtures), `ed` (RFC 8037 A.2 Ed25519) and
/// `ec` (a P-256 key of jwt_verify_lib's vectors). The fixture file holds the private
/// members too (the harness signs with them); only the public ones are loaded here.
pub fn jwks_text() -> String {
    let fixture: Value = serde_json::from_str(include_str!("../../tests/fixtures/idp-keys.json")).unwrap_or(Value::Null);
    let mut keys: Vec<Value> = Vec::new();
    if let Some(list) = fixture.get("keys").and_then(Value::as_array) {
        for k in list {
            let public: Map<String, Value> = k
                .as_object()
                .map(|m| m.iter().filter(|(name, _)| ["kty", "kid", "use", "alg", "n", "e"].contains(&name.as_str())).map(|(a, b)| (a.clone(), b.clone())).collect())
                .unwrap_or_default();
            keys.push(Value::Object(public));
        }
    }
    keys.push(ed_jwk());
    keys.push(serde_json::json!({"kty": "EC", "crv": "P-256", "kid": "ec", "alg": "ES256",
        "x": "EB54wykhS7YJFD6RYJNnwbWEz3cI7CF5bCDTXlrwI5k", "y": "92bCBTvMFQ8lKbS2MbgjT3YfmYo6HnPEE2tsAqWUJw8"}));
    serde_json::json!({ "keys": keys }).to_string()
}

fn ed_jwk() -> Value {
    serde_json::json!({"kty": "OKP", "crv": "Ed25519", "kid": "ed", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"})
}

pub fn keys() -> &'static KeySet {
    static KEYS: OnceLock<KeySet> = OnceLock::new();
    KEYS.get_or_init(|| {
        let (set, skipped) = jwks::parse_jwks(jwks_text().as_bytes()).expect("the harness key set parses");
        assert!(skipped.is_empty(), "harness keys skipped: {skipped:?}");
        set
    })
}

pub fn sealer() -> &'static Sealer {
    static SEALER: OnceLock<Sealer> = OnceLock::new();
    SEALER.get_or_init(|| Sealer::new(&[COOKIE_SECRET]))
}

/// The plugin configuration: a default profile (the browser app) and one route
/// (`API_HOST`) that turns on most of what a profile can do.
pub fn config_json() -> String {
    config_with(&[])
}

/// `config_json` with top-level keys replaced (the provider target varies `key_rotation`).
pub fn config_with(extra: &[(&str, Value)]) -> String {
    let mut c = serde_json::json!({
        "issuer": ISSUER,
        "idp_cluster": "idp",
        "client_id": CLIENT_ID,
        "client_secret": "fuzz-secret",
        "cookie_secret": b64::std_encode(&COOKIE_SECRET),
        "allowed_algorithms": ["RS256", "EdDSA", "ES256"],
        "api_paths": ["/api/"],
        "pass_through_paths": [PASS_THROUGH],
        "routes": [{
            "host": API_HOST,
            "userinfo": true,
            "forward_token": "access_token",
            "allow_query_token": true,
            "cookie_same_site": "strict",
            "claim_headers": {"X-Groups": "groups", "X-Tenant": "org.tenant"},
            "claim_map": {"groups": {"g-1": "admins"}},
            "require": [{"claim": "sub", "one_of": ["alice", "bob"]}],
            "bearer_validators": [{"issuer": OTHER_ISSUER, "audiences": ["api"], "jwks": {"keys": [ed_jwk()]}}],
        }],
    });
    for (k, v) in extra {
        c[*k] = v.clone();
    }
    c.to_string()
}

pub fn discovery_json() -> String {
    serde_json::json!({
        "issuer": ISSUER,
        "authorization_endpoint": format!("{ISSUER}/auth"),
        "token_endpoint": format!("{ISSUER}/token"),
        "jwks_uri": format!("{ISSUER}/jwks"),
        "userinfo_endpoint": format!("{ISSUER}/userinfo"),
        "end_session_endpoint": format!("{ISSUER}/logout"),
        "authorization_response_iss_parameter_supported": true,
    })
    .to_string()
}

/// The harness configuration, parsed once per thread.
pub fn settings() -> Settings {
    thread_local! {
        static SETTINGS: Settings = Settings::from_json(config_json().as_bytes()).expect("the harness configuration is valid");
    }
    SETTINGS.with(Settings::clone)
}

/// A fresh engine (empty verdict caches) over the harness configuration.
pub fn engine() -> Engine {
    Engine::new(settings(), CACHE_SEED)
}

/// The shared store as the root contexts leave it once the IdP answered: discovery and
/// the JWKS of `ISSUER` loaded at `NOW` through `lifecycle::Refresher`, as the shell does.
pub fn loaded_store() -> MemoryStore {
    thread_local! {
        static LOADED: MemoryStore = {
            let engine = engine();
            let mut store = MemoryStore::default();
            let cfg = &engine.settings.providers[0];
            let refresher = Refresher { provider: cfg, keys: &engine.provider_keys[0], me: "vm-0" };
            let mut loaded = 0;
            while let Some(plan) = refresher.poll(&mut store, NOW) {
                let body = match plan.target {
                    Target::Discovery => discovery_json(),
                    Target::Jwks => jwks_text(),
                };
                let audit = refresher.complete(&mut store, &plan, Some(&CallResponse { status: 200, headers: vec![], body: body.into_bytes() }), NOW, 0);
                assert!(audit.succeeded(), "the harness provider loads: {audit:?}");
                loaded += 1;
                assert!(loaded <= 2, "the harness provider keeps asking");
            }
            store
        };
    }
    LOADED.with(MemoryStore::clone)
}

/// One VM's state for one input: a fresh engine, the loaded store and every provider's
/// view synced from it (the bearer validator's static keys need no fetch).
pub struct World {
    pub engine: Engine,
    pub store: MemoryStore,
    pub views: Vec<View>,
}

impl World {
    pub fn new() -> World {
        // The views are parsed once per thread (every key of the JWKS rebuilt) and cloned:
        // what a worker holds after its first sync.
        thread_local! {
            static VIEWS: Vec<View> = {
                let engine = engine();
                let store = loaded_store();
                let mut w = World { views: vec![View::default(); engine.settings.providers.len()], engine, store };
                w.sync();
                for (i, (v, cfg)) in w.views.iter().zip(&w.engine.settings.providers).enumerate() {
                    assert!(v.is_ready(cfg, NOW), "provider {i} of the harness is not ready");
                }
                w.views
            };
        }
        World { engine: engine(), store: loaded_store(), views: VIEWS.with(Vec::clone) }
    }

    pub fn sync(&mut self) {
        for ((v, k), c) in self.views.iter_mut().zip(&self.engine.provider_keys).zip(&self.engine.settings.providers) {
            v.sync(&self.store, k, c);
        }
    }

    /// Runs one engine step at `now` with this world's store and views; the events go to `events`.
    pub fn step(&mut self, now: u64, entropy: &mut SplitMix, events: &mut Vec<Event>, f: impl FnOnce(&Engine, &mut Context<'_>) -> Decision) -> Decision {
        let mut cx = Context { now, providers: &self.views, store: &mut self.store, entropy, events: Vec::new() };
        let decision = f(&self.engine, &mut cx);
        events.append(&mut cx.events);
        decision
    }
}

impl Default for World {
    fn default() -> World {
        World::new()
    }
}

/// Header lines `name: value` (a pseudo-header's name keeps its leading `:`). Values are
/// bytes: a client may send any.
///
/// One pseudo-line helps the fuzzer past base64url: `:jwt: <header JSON>\t<payload JSON>\t<signature bytes>`
/// becomes `authorization: Bearer <the compact token>`, so structured tokens reach the
/// claim checks, key selection and the unknown-`kid` wait.
pub fn header_lines(data: &[u8]) -> Vec<(String, Vec<u8>)> {
    data.split(|b| *b == b'\n')
        .filter_map(|line| {
            let from = usize::from(line.first() == Some(&b':'));
            let colon = line.iter().skip(from).position(|b| *b == b':')? + from;
            let name = String::from_utf8_lossy(&line[..colon]).into_owned();
            let value = &line[colon + 1..];
            let value = value.strip_prefix(b" ").unwrap_or(value);
            if name == ":jwt" {
                return Some(("authorization".to_string(), format!("Bearer {}", structured_token(value, b'\t')).into_bytes()));
            }
            Some((name, value.to_vec()))
        })
        .collect()
}

/// `header`, `payload` and `signature` bytes separated by `sep`, as a compact token.
pub fn structured_token(data: &[u8], sep: u8) -> String {
    let mut parts = data.splitn(3, |b| *b == sep);
    let (h, p, s) = (parts.next().unwrap_or_default(), parts.next().unwrap_or_default(), parts.next().unwrap_or_default());
    format!("{}.{}.{}", b64::url_encode(h), b64::url_encode(p), b64::url_encode(s))
}

fn is_safe_path(p: &str, callback_path: &str) -> bool {
    p.starts_with('/')
        && !p.starts_with("//")
        && !p.contains('\\')
        && !p.bytes().any(|b| b <= b' ' || b == 0x7f)
        && p.len() <= 2048
        && p.split('?').next() != Some(callback_path)
}

/// A cookie name of the filter's own form for one of `bases`: `<base>`, `<base>_<n>`
/// (a chunk) or `<base>_tx.<base64url id>` (a login), optionally `__Host-` prefixed.
fn is_own_cookie_name(name: &str, bases: &[&str]) -> bool {
    let name = name.strip_prefix("__Host-").unwrap_or(name);
    bases.iter().any(|base| match name.strip_prefix(base) {
        Some("") => true,
        Some(rest) => {
            rest.strip_prefix("_tx.").is_some_and(|id| !id.is_empty() && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'))
                || rest.strip_prefix('_').is_some_and(|i| !i.is_empty() && i.bytes().all(|b| b.is_ascii_digit()))
        }
        None => false,
    })
}

/// Any name the filter treats as its own on the way upstream (`<base>_tx.` with anything after).
fn is_filter_cookie(name: &str, bases: &[&str]) -> bool {
    let bare = name.strip_prefix("__Host-").unwrap_or(name);
    is_own_cookie_name(name, bases) || bases.iter().any(|b| bare.strip_prefix(b).is_some_and(|r| r.starts_with("_tx.")))
}

// ---------------------------------------------------------------------------------------
// The harnesses.

/// Compact JWS + claims: `jwt::parse`, then `jwt::validate` as the login callback runs it
/// (nonce, at_hash, azp) against the fixed key set. Input: the token text, or `#` then
/// `header JSON \n payload JSON \n signature bytes` (encoded by the harness, so the
/// fuzzer reaches the claim checks without having to learn base64url).
pub fn jwt(data: &[u8]) {
    let token = match data.strip_prefix(b"#") {
        Some(rest) => structured_token(rest, b'\n'),
        None => match std::str::from_utf8(data) {
            Ok(t) => t.to_string(),
            Err(_) => return,
        },
    };
    if let Ok(parsed) = jwt::parse(&token, MAX_TOKEN_BYTES) {
        assert!(token.starts_with(parsed.signing_input), "the signing input is the token's prefix");
        assert_eq!(b64::url_decode(parsed.signature_b64).as_deref(), Some(parsed.signature.as_slice()));
        // Key selection must never panic, whatever the kid and alg.
        if let Ok(candidates) = keys().candidates(parsed.header.kid.as_deref(), parsed.header.alg) {
            for k in candidates {
                let verdict = jwt::verify::signature(&parsed, k);
                // RS256/384/512 run on the core's own verifier (`jwt::rsa`): it must agree
                // with the `rsa` crate behind jsonwebtoken, the backend it replaced.
                if jwt::verify::pkcs1_hash(parsed.header.alg).is_some() && k.accepts(parsed.header.alg) {
                    let before = jwt::verify::verify_raw(parsed.header.alg, &k.decoding, parsed.signing_input.as_bytes(), parsed.signature_b64);
                    assert_eq!(verdict.is_ok(), before.is_ok(), "jwt::rsa and the rsa crate disagree: {verdict:?} vs {before:?}");
                }
            }
        }
    }
    let issuers = [ISSUER.to_string()];
    let audiences = [CLIENT_ID.to_string()];
    let rules = ClaimRules {
        issuers: &issuers,
        audiences: &audiences,
        authorized_party: Some(CLIENT_ID),
        require_iat: true,
        nonce: Some(NONCE),
        access_token: Some(ACCESS_TOKEN),
        now: NOW,
        skew: SKEW,
        token_use: oidc_edge::jwt::TokenUse::Bearer,
    };
    if let Ok(v) = jwt::validate(&token, keys(), &rules, &Alg::ALL, MAX_TOKEN_BYTES) {
        // Whatever passes satisfies the whole policy.
        assert_eq!(v.claims.iss, ISSUER);
        assert!(v.claims.aud.iter().any(|a| a == CLIENT_ID));
        assert!(v.claims.exp.saturating_add(SKEW) > NOW, "an expired token passed");
        assert!(!v.claims.sub.is_empty());
        assert!(v.claims.iat.is_some_and(|iat| iat <= NOW + SKEW));
        assert!(v.claims.nbf.is_none_or(|nbf| nbf <= NOW + SKEW));
        assert_eq!(v.claims.string("nonce"), Some(NONCE));
        assert!(v.claims.aud.len() == 1 || v.claims.string("azp") == Some(CLIENT_ID));
        assert!(token.len() <= MAX_TOKEN_BYTES);
    }
}

/// A fetched JWKS: `jwks::parse_jwks`; what it accepts must survive the snapshot round
/// trip every worker relies on (merge, JSON, `from_stored`) without losing a key.
pub fn jwks(data: &[u8]) {
    let Ok((set, _skipped)) = jwks::parse_jwks(data) else { return };
    assert!(!set.is_empty() && set.keys().len() <= jwks::MAX_KEYS);
    for k in set.keys() {
        for private in ["d", "p", "q", "dp", "dq", "qi", "oth", "k"] {
            assert!(!k.public.contains_key(private), "a private member reached the snapshot");
        }
        assert_eq!(k.thumbprint.len(), 43, "a SHA-256 thumbprint is 43 base64url characters");
        // An RSA key carries its `jwt::rsa` form (RS* verify with it), of the modulus' length.
        match (k.family, &k.rsa) {
            (KeyFamily::Rsa, Some(r)) => assert_eq!(r.len(), k.modulus_len, "the jwt::rsa key has another length"),
            (KeyFamily::Rsa, None) => panic!("an RSA key without its jwt::rsa form"),
            (_, r) => assert!(r.is_none(), "a non-RSA key with an RSA form"),
        }
        for alg in Alg::ALL {
            let _ = set.candidates(k.kid.as_deref(), alg);
        }
    }
    for alg in Alg::ALL {
        let _ = set.candidates(None, alg);
        let _ = set.candidates(Some("no such kid"), alg);
    }
    let merged = jwks::merge(&[], &set, Rotation::ExpireAfter { overlap: 3600 }, NOW);
    let bytes = serde_json::to_vec(&merged.keys).expect("stored keys serialize");
    let back: Vec<StoredKey> = serde_json::from_slice(&bytes).expect("stored keys deserialize");
    assert_eq!(back, merged.keys, "the snapshot round trip changed the keys");
    let rebuilt = jwks::from_stored(&back);
    assert_eq!(rebuilt.keys().len(), merged.keys.len(), "a key accepted from the IdP was lost in the snapshot");
    for (k, stored) in rebuilt.keys().iter().zip(&merged.keys) {
        assert_eq!(k.thumbprint, stored.thumbprint, "the snapshot changed a key");
        assert_eq!(k.rsa.as_ref().map(|r| r.len()), (k.family == KeyFamily::Rsa).then_some(k.modulus_len), "a rebuilt key lost its RSA form");
        assert_eq!(k.public, stored.jwk, "the snapshot changed a key's public members");
    }
    // The same set again changes nothing.
    let again = jwks::merge(&merged.keys, &set, Rotation::ExpireAfter { overlap: 3600 }, NOW + 1);
    assert!(again.added.is_empty() && again.removed.is_empty());
}

/// The discovery document, checked against the configured issuer; what is accepted must
/// survive the snapshot (serde) and give URLs that parse back to the same endpoints.
pub fn discovery(data: &[u8]) {
    let Ok(d) = discovery::parse(data, ISSUER) else { return };
    assert_eq!(d.issuer, ISSUER);
    let endpoints = [Some(&d.authorization_endpoint), Some(&d.token_endpoint), Some(&d.jwks_uri), d.userinfo_endpoint.as_ref(), d.end_session_endpoint.as_ref()];
    for e in endpoints.into_iter().flatten() {
        assert!(e.scheme == "https" || e.scheme == "http");
        assert!(e.path.starts_with('/'));
        assert!(!e.url().bytes().any(|b| b <= b' ' || b == 0x7f), "an endpoint URL carries a control character");
        assert_eq!(Endpoint::parse(&e.url()).as_ref(), Some(e), "an endpoint does not round-trip");
        let _ = e.with_query("a=b");
    }
    let back: discovery::Discovery = serde_json::from_slice(&serde_json::to_vec(&d).expect("serializes")).expect("deserializes");
    assert_eq!(back, d);
}

/// An HTTP answer: an optional `NNN\n` status line, then the body (status 200 without one).
pub fn call_response(data: &[u8]) -> CallResponse {
    let (status, body) = match data.get(..4) {
        Some([a, b, c, b'\n']) if [a, b, c].iter().all(|d| d.is_ascii_digit()) => {
            (u16::from(a - b'0') * 100 + u16::from(b - b'0') * 10 + u16::from(c - b'0'), &data[4..])
        }
        _ => (200, data),
    };
    CallResponse { status, headers: vec![], body: body.to_vec() }
}

/// The token endpoint's answer, as `call_response` reads it.
pub fn token_response(data: &[u8]) {
    let resp = call_response(data);
    let status = resp.status;
    match token::parse_response(&resp) {
        Ok(t) => {
            assert_eq!(status, 200);
            // The ID token is optional here (a refresh response may omit it); login insists.
            assert!(t.id_token.as_deref().is_none_or(|i| !i.is_empty()) && !t.access_token.is_empty());
            assert!(t.refresh_token.as_deref().is_none_or(|r| !r.is_empty()));
        }
        Err(e) => {
            // The detail goes to logs: bounded, printable, and never a token.
            assert!(e.detail.len() <= 128, "detail too long: {}", e.detail.len());
            assert!(e.detail.bytes().all(|b| (b' '..0x7f).contains(&b)), "detail is not printable ASCII");
            if status == 200 {
                assert!(!e.refused);
            }
            assert!(matches!(e.reason, Reason::TokenEndpointFailed | Reason::TokenResponseInvalid | Reason::IdTokenMissing));
        }
    }
}

/// `Cookie` headers (one per line): `cookies::parse`, `join`, `session_cookie_names`, and
/// `Sealer::open` on every value; plus the split/join, seal/open and session pack/unpack round trips.
pub fn cookies(data: &[u8]) {
    let headers: Vec<&[u8]> = data.split(|b| *b == b'\n').collect();
    let parsed = cookies::parse(&headers);
    assert!(parsed.len() <= 256);
    for name in ["oidc_edge", "__Host-oidc_edge", "s"] {
        let names = cookies::session_cookie_names(&parsed, name);
        let joined = cookies::join(&parsed, name);
        // The filter's other cookies share the session's prefix (`<name>_tx.<id>`, a login
        // in flight in another tab): they must not change how the session reads.
        let mut with_tx = parsed.clone();
        with_tx.push((format!("{name}_tx.AAAAAAAAAAAA"), "pending".into()));
        assert_eq!(cookies::join(&with_tx, name), joined, "a login-transaction cookie changed how the session reads");
        if let Some(joined) = joined {
            assert!(!names.is_empty(), "joined a session nobody sent");
            assert!(joined.len() <= data.len(), "the joined value is larger than the header");
            let _ = sealer().open(SEAL_LABEL, &joined);
        }
    }
    for (_, value) in &parsed {
        let _ = sealer().open(SEAL_LABEL, value);
    }
    // Round trips on a value derived from the input.
    let value = b64::url_encode(data);
    if let Some(parts) = cookies::split("oidc_edge", &value) {
        for (n, v) in &parts {
            assert!(n.len() + 1 + v.len() <= cookies::MAX_COOKIE_BYTES);
        }
        assert_eq!(cookies::join(&parts, "oidc_edge").as_deref(), Some(value.as_str()), "split/join lost data");
    }
    let nonce = [data.len() as u8; 24];
    let sealed = sealer().seal(SEAL_LABEL, data, &nonce).expect("sealing never fails");
    assert_eq!(sealer().open(SEAL_LABEL, &sealed).as_deref(), Some(data));
    assert!(sealer().open("tx:other", &sealed).is_none(), "a sealed value opened under another label");
    // The session's plaintext (what an opened cookie holds): whatever unpacks packs again
    // into the same session.
    if let Some(session) = packed::unpack(data) {
        let again = packed::pack(&session).expect("a session that unpacked packs");
        assert_eq!(packed::unpack(&again).as_ref(), Some(&session), "pack/unpack lost data");
    }
}

/// The plugin configuration: `Settings::from_json`. What it accepts must respect every
/// documented bound in every profile and provider, keep its indices consistent, build an
/// engine, and survive a few requests with nothing fetched yet (static keys and explicit
/// endpoints make a provider ready without any fetch): nothing may go upstream
/// unauthenticated except a pass-through path.
pub fn config(data: &[u8]) {
    let Ok(s) = Settings::from_json(data) else { return };
    assert!(!s.profiles.is_empty() && !s.providers.is_empty());
    assert_eq!(s.profiles.len(), s.routes.len() + 1, "one profile per route plus the top level");
    let mut profiles: Vec<usize> = s.routes.iter().map(|r| r.profile).collect();
    profiles.sort_unstable();
    assert!(profiles.iter().copied().eq(1..=s.routes.len()), "each route has its own profile");
    assert!(s.routes.windows(2).all(|w| host_rank(w[0].host.as_deref()) <= host_rank(w[1].host.as_deref())), "routes in Envoy's host order");
    for r in &s.routes {
        let (RoutePath::Prefix(path) | RoutePath::Exact(path)) = &r.path;
        assert!(path.starts_with('/'));
        assert!(r.host.is_some() || r.path != RoutePath::Prefix("/".into()), "a route that shadows everything");
    }
    for p in &s.providers {
        assert!(!p.namespace.is_empty());
        assert_eq!(s.providers.iter().filter(|q| q.namespace == p.namespace).count(), 1, "two providers share a namespace");
        assert!((1000..=60_000).contains(&p.timeout_ms));
        assert!((60..=30 * 86_400).contains(&p.jwks_refresh_interval));
        assert!((60..=30 * 86_400).contains(&p.discovery_refresh_interval));
        assert!((1..=3600).contains(&p.kid_refetch_cooldown));
        assert!((60..=30 * 86_400).contains(&p.max_key_staleness));
        if let Rotation::ExpireAfter { overlap } = p.rotation {
            assert!((3600..=86_400).contains(&overlap));
        }
        // Somewhere to get keys from, and for a login provider, its endpoints.
        assert!(p.static_keys.is_some() || p.endpoints.jwks_uri.is_some() || p.discovery.is_some(), "a provider without keys");
        assert!(!(p.static_keys.is_some() && p.endpoints.jwks_uri.is_some()));
        if !p.keys_only {
            assert!(p.discovery.is_some() || (p.endpoints.authorization.is_some() && p.endpoints.token.is_some()), "a login provider without endpoints");
        }
    }
    for p in &s.profiles {
        assert!(p.provider < s.providers.len());
        assert!(p.bearer.iter().all(|v| v.provider < s.providers.len() && !v.audiences.is_empty()));
        assert!(p.clock_skew <= 600);
        assert!(!p.audiences.is_empty() && p.audiences.iter().all(|a| !a.is_empty()));
        assert!(!p.allowed_algorithms.is_empty());
        assert!(p.scope == "openid" || p.scope.starts_with("openid "));
        assert!(p.redirect_path.starts_with('/') && !p.redirect_path.starts_with("//"));
        assert!(p.logout_path.starts_with('/') && p.logout_path != p.redirect_path);
        assert!(p.login_path.starts_with('/') && p.login_path != p.redirect_path && p.login_path != p.logout_path);
        assert!(!p.cookie.keys.is_empty());
        assert_eq!(p.client_key.is_some(), p.client_auth == oidc_edge::config::ClientAuth::PrivateKeyJwt);
        assert_eq!(p.client_secret.is_empty(), p.client_auth == oidc_edge::config::ClientAuth::PrivateKeyJwt);
        assert!(!p.cookie.name.is_empty() && p.cookie.name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'));
        assert!((300..=30 * 86_400).contains(&p.session_lifetime));
        assert!((60..=3600).contains(&p.login_timeout));
        assert!(p.refresh_before_expiry <= 3600);
        assert!((1..=3600).contains(&p.token_cache_ttl));
        assert!(p.token_cache_size <= 100_000);
        for (h, path) in &p.claim_headers {
            assert!(!h.is_empty() && !h.bytes().any(|b| b.is_ascii_uppercase() || b <= b' '), "claim header name {h:?}");
            assert!(!path.is_empty() && path.iter().all(|part| !part.is_empty()));
        }
    }
    for authority in ["app.example.com", "API.example.com:8443", "", "a.b.example.com"] {
        for path in ["/", "/api/x", "/oauth2/callback"] {
            assert!(s.profile_for(authority, path) < s.profiles.len());
            let candidates = s.profiles_for_host(authority);
            assert!(candidates.contains(&0) && candidates.iter().all(|i| *i < s.profiles.len()));
        }
    }

    // An engine over it, and the requests a proxy gets before the IdP ever answered.
    let engine = Engine::new(s, CACHE_SEED);
    let mut store = MemoryStore::default();
    let mut views = vec![View::default(); engine.settings.providers.len()];
    for ((v, k), c) in views.iter_mut().zip(&engine.provider_keys).zip(&engine.settings.providers) {
        v.sync(&store, k, c);
    }
    let requests: [&[u8]; 4] = [
        b":method: GET\n:scheme: https\n:authority: app.example.com\n:path: /app\naccept: text/html",
        b":method: GET\n:scheme: https\n:authority: app.example.com\n:path: /api/x\nauthorization: Bearer a.b.c",
        b":method: GET\n:scheme: https\n:authority: app.example.com\n:path: /oauth2/callback?code=c&state=s",
        b":method: POST\n:scheme: http\n:authority: app.example.com\n:path: /oauth2/logout\ncookie: oidc_edge=x",
    ];
    for raw in requests {
        let req = RequestView::from_headers(header_lines(raw));
        let mut entropy = SplitMix(1);
        let mut cx = Context { now: NOW, providers: &views, store: &mut store, entropy: &mut entropy, events: Vec::new() };
        let decision = engine.on_request(&req, &mut cx);
        match &decision {
            Decision::Forward(_) => assert!(cx.events.contains(&Event::PassThrough), "forwarded with nothing loaded: {:?}", cx.events),
            Decision::Respond(r) => check_headers(&r.headers),
            Decision::Call(..) | Decision::Wait(_) => panic!("a call or a wait with nothing loaded: {decision:?}"),
        }
    }
}

/// The authorization response's query: `callback::Params::parse` and `http::Query`, with
/// the encode/decode round trips the filter relies on.
pub fn callback(data: &[u8]) {
    let Ok(query) = std::str::from_utf8(data) else { return };
    let p = callback::Params::parse(query);
    for v in [&p.code, &p.state, &p.iss].into_iter().flatten() {
        assert!(!v.is_empty() && v.len() <= 4096);
    }
    if let Some(e) = &p.error {
        assert!(e.len() <= 64 && e.bytes().all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b)), "unsanitized error code");
    }
    if let Some(d) = &p.error_description {
        assert!(d.chars().count() <= 300);
    }
    if let Some(state) = &p.state {
        assert_eq!(callback::state_id(state).len(), 12);
    }
    let q = Query::parse(query);
    assert!(q.pairs().len() <= 64);
    for (k, v) in q.pairs() {
        let count = q.pairs().iter().filter(|(k2, _)| k2 == k).count();
        assert_eq!(q.single(k), (count == 1).then_some(v.as_str()));
        assert!(q.has(k));
    }
    let pairs: Vec<(&str, &str)> = q.pairs().iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    assert_eq!(Query::parse(&http::form_encode(&pairs)).pairs(), q.pairs(), "form encoding does not round-trip");
    assert_eq!(http::percent_decode(&http::percent_encode(query)).as_deref(), Some(query));
}

/// Request headers (`name: value` lines): `RequestView::from_headers`, `client_kind`,
/// credentials, and `safe_return_path`, which must only ever give `/` or a same-origin path.
pub fn request(data: &[u8]) {
    // The shell's path: the host's serialized header map. Any bytes at all must read
    // without a panic, and a map written from the pairs must read like the pairs.
    let _ = RequestView::from_serialized_map(data.to_vec()).client_kind(&[]);
    let pairs = header_lines(data);
    let borrowed: Vec<(&[u8], &[u8])> = pairs.iter().map(|(n, v)| (n.as_bytes(), v.as_slice())).collect();
    let from_map = request::serialize_map(&borrowed).map(RequestView::from_serialized_map);
    let req = RequestView::from_headers(pairs.clone());
    if let Some(from_map) = from_map {
        for (name, _) in &pairs {
            assert_eq!(from_map.header_values(name), req.header_values(name), "header {name:?}");
        }
        assert_eq!((&from_map.method, &from_map.scheme, &from_map.authority, &from_map.path), (&req.method, &req.scheme, &req.authority, &req.path));
    }
    let api_paths = ["/api/".to_string(), "/static*".to_string(), "/healthz".to_string()];
    let kind = req.client_kind(&api_paths);
    if req.is_websocket_upgrade() {
        assert_eq!(kind, ClientKind::WebSocket);
    } else if !matches!(req.method.as_str(), "GET" | "HEAD") {
        assert_eq!(kind, ClientKind::Api);
    }
    if let Some(t) = req.bearer_token() {
        assert!(!t.is_empty() && t.trim() == t);
    }
    // Parsed once and kept: the same as parsing every `cookie` header value now.
    assert_eq!(req.cookies(), cookies::parse(&req.header_values("cookie")).as_slice());
    if !req.is_websocket_upgrade() && request::path_matches(req.path_only(), "/api/") {
        assert_eq!(kind, ClientKind::Api, "an api_paths path answered like a browser");
    }
    if req.header_str("sec-fetch-mode").is_some_and(|m| !m.eq_ignore_ascii_case("navigate")) && !req.is_websocket_upgrade() {
        assert_eq!(kind, ClientKind::Api, "a non-navigation fetch gets a login redirect");
    }
    assert!(req.path.starts_with(req.path_only()));
    let _ = req.query();
    let callback_path = "/oauth2/callback";
    for candidate in [req.path.as_str(), std::str::from_utf8(data).unwrap_or("/")] {
        let r = request::safe_return_path(candidate, callback_path);
        assert!(r == "/" || r == candidate, "safe_return_path rewrote instead of refusing");
        assert!(r == "/" || is_safe_path(&r, callback_path), "unsafe return path accepted: {r:?}");
    }
    // The path rules read: absolute, no empty, `.` or `..` segment left, and a plain path
    // (nothing to decode or resolve) as it is.
    for candidate in [req.path_only(), &String::from_utf8_lossy(data)] {
        if !candidate.starts_with('/') {
            continue;
        }
        let canonical = request::canonical_path(candidate);
        assert!(canonical.starts_with('/'), "{candidate:?} -> {canonical:?}");
        let inner = canonical.strip_suffix('/').unwrap_or(&canonical);
        assert!(inner.split('/').skip(1).all(|seg| !matches!(seg, "" | "." | "..")), "{candidate:?} -> {canonical:?}");
        let plain = !candidate.bytes().any(|b| matches!(b, b'%' | b'\\' | b';') || !b.is_ascii()) && !candidate.contains("//") && !candidate.contains("/.");
        if plain {
            assert_eq!(canonical, candidate);
        }
    }
}

/// At most this many engine steps per input (a request, then call answers and key waits).
const MAX_STEPS: usize = 8;

/// Splits `data` at `sep` into at most `max` parts (the last keeps the rest).
fn split_answers<'a>(data: &'a [u8], sep: &[u8], max: usize) -> Vec<&'a [u8]> {
    let mut out = Vec::new();
    let mut rest = data;
    while out.len() + 1 < max {
        match rest.windows(sep.len()).position(|w| w == sep) {
            Some(i) => {
                out.push(&rest[..i]);
                rest = &rest[i + sep.len()..];
            }
            None => break,
        }
    }
    out.push(rest);
    out
}

/// A whole request through the engine, with the provider loaded, as the shell drives it:
/// `Engine::on_request`; each `Decision::Call` (code exchange, userinfo, refresh) answered
/// by the next of the fuzzer's answers through `on_call_response` (none left: the call
/// could not be dispatched); each `Decision::Wait` (an unknown `kid`) by the root's
/// refresh loop, whose unknown-`kid` JWKS fetch gets the next answer, then `on_keys` once
/// the keys changed or the wait ran out.
///
/// Input: header lines as in `request` (with the `:jwt` shorthand), then optionally `\n\n`
/// and up to 6 answers separated by `\n--\n`, each as in `token_response`.
///
/// Properties: nothing is forwarded without an accepted session or token (or on a
/// pass-through path); the identity headers a client sent never reach the upstream as
/// sent, and the filter's cookies never do; every header written is free of CR, LF and
/// NUL, every `Set-Cookie` names one of the filter's own cookies; redirects go to the IdP
/// or a same-origin path; calls go to the IdP's token or userinfo endpoint; a wait is for
/// a provider whose refetch was asked for (or, polling, for another request's refresh); a
/// released request never calls out, nor waits for keys again (the shell cannot do either
/// then); and the same request again, answered from
/// the verdict cache, is decided the same.
pub fn flow(data: &[u8]) {
    let _ = flow_trace(data);
}

/// One engine step of `flow`: what it decided (`forward`, `respond`, `call`, `wait`), the
/// status of a response, and the events it counted.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    pub kind: &'static str,
    pub status: Option<u16>,
    pub events: Vec<Event>,
}

/// `flow`, returning its steps (the seed tests check which code a seed reaches).
pub fn flow_trace(data: &[u8]) -> Vec<Step> {
    let (head, tail) = match data.windows(2).position(|w| w == b"\n\n") {
        Some(i) => (&data[..i], Some(&data[i + 2..])),
        None => (data, None),
    };
    let mut answers = tail.map(|t| split_answers(t, b"\n--\n", 6)).unwrap_or_default().into_iter();
    let req = RequestView::from_headers(header_lines(head));
    let mut world = World::new();
    let mut entropy = SplitMix(data.len() as u64);
    let mut now = NOW;
    let mut events = Vec::new();
    let first = world.step(now, &mut entropy, &mut events, |e, cx| e.on_request(&req, cx));
    let first_was_direct_forward = matches!(first, Decision::Forward(_)).then(|| format!("{first:?}"));
    let mut decision = first;
    let mut released = false;
    let mut trace = Vec::new();
    for _ in 0..MAX_STEPS {
        check_decision(&world, &req, &decision, &events, now, released);
        let (kind, status) = match &decision {
            Decision::Forward(_) => ("forward", None),
            Decision::Respond(r) => ("respond", Some(r.status)),
            Decision::Call(..) => ("call", None),
            Decision::Wait(_) => ("wait", None),
        };
        trace.push(Step { kind, status, events: events.clone() });
        decision = match decision {
            Decision::Forward(_) | Decision::Respond(_) => break,
            Decision::Call(_, pending) => {
                let answer = answers.next().map(call_response);
                events.clear();
                released = false;
                world.step(now, &mut entropy, &mut events, |e, cx| e.on_call_response(pending, answer.as_ref(), cx))
            }
            Decision::Wait(wait) if wait.poll => {
                // Waiting for another request's refresh: with no other request here, nothing
                // comes; the request is released when its wait runs out.
                now = now.max(wait.deadline);
                events.clear();
                released = true;
                world.step(now, &mut entropy, &mut events, |e, cx| e.on_keys(wait.pending, cx))
            }
            Decision::Wait(wait) => {
                // The root context's tick: the unknown-kid refetch, if this VM gets the lease.
                let cfg = world.engine.settings.providers[wait.provider].clone();
                let keys = world.engine.provider_keys[wait.provider].clone();
                let refresher = Refresher { provider: &cfg, keys: &keys, me: "vm-1" };
                if let Some(plan) = refresher.poll(&mut world.store, now) {
                    let answer = answers.next().map(call_response);
                    let audit = refresher.complete(&mut world.store, &plan, answer.as_ref(), now, 0);
                    assert!(audit.next_attempt_at > now);
                }
                world.sync();
                if world.views[wait.provider].generation == wait.generation {
                    // Nothing new: the request is released when its wait runs out.
                    now = now.max(wait.deadline);
                }
                events.clear();
                released = true;
                world.step(now, &mut entropy, &mut events, |e, cx| e.on_keys(wait.pending, cx))
            }
        };
    }
    // The same request again, on the same worker: a verdict from the cache decides the same.
    if let Some(first) = first_was_direct_forward {
        if now == NOW {
            events.clear();
            let again = world.step(now, &mut entropy, &mut events, |e, cx| e.on_request(&req, cx));
            assert_eq!(format!("{again:?}"), first, "the cached verdict decided otherwise");
        }
    }
    trace
}

/// The profile a request is served by, as far as the harness can tell without cookies:
/// the route by host and path.
fn served_by<'a>(engine: &'a Engine, req: &RequestView) -> &'a Profile {
    let index = engine.settings.profile_for(&req.authority, req.path_only());
    &engine.settings.profiles[index]
}

/// Headers the filter writes: no CR, LF or NUL anywhere, names never empty.
fn check_headers(headers: &[(String, String)]) {
    for (n, v) in headers {
        assert!(!n.is_empty(), "an empty header name");
        assert!(!n.bytes().chain(v.bytes()).any(|b| matches!(b, b'\r' | b'\n' | 0)), "header injection in {n}: {v:?}");
    }
}

/// Every `Set-Cookie` names one of the filter's cookies, is `HttpOnly` for the whole site,
/// and a `__Host-` one is `Secure` without `Domain` (RFC 6265bis 4.1.3.2).
fn check_set_cookies(headers: &[(String, String)], bases: &[&str]) {
    for (n, v) in headers {
        if n == "set-cookie" {
            let name = v.split('=').next().unwrap_or_default();
            assert!(is_own_cookie_name(name, bases), "Set-Cookie for a cookie that is not the filter's: {v:?}");
            assert!(v.contains("; Path=/; HttpOnly"), "a cookie scripts could read: {v:?}");
            if name.starts_with("__Host-") {
                assert!(v.contains("; Secure") && !v.contains("; Domain="), "a __Host- cookie the browser would drop: {v:?}");
            }
        }
    }
}

/// A completed login sets a session cookie (not only clears the login's).
fn sets_a_session(headers: &[(String, String)]) -> bool {
    headers.iter().any(|(n, v)| n == "set-cookie" && !v.contains("_tx.") && !v.contains("Max-Age=0"))
}

fn check_decision(world: &World, req: &RequestView, decision: &Decision, events: &[Event], now: u64, released: bool) {
    let engine = &world.engine;
    let bases: Vec<&str> = engine.settings.profiles.iter().map(|p| p.cookie.name.as_str()).collect();
    match decision {
        Decision::Forward(f) => {
            let authenticated = events.iter().any(|e| matches!(e, Event::SessionAccepted | Event::TokenAccepted | Event::SessionRefreshed));
            let pass_through = events.contains(&Event::PassThrough);
            assert!(authenticated || pass_through, "forwarded without an accepted session or token: {events:?}");
            if pass_through {
                assert!(request::path_matches(req.path_only(), PASS_THROUGH), "pass-through of {:?}", req.path);
            }
            // The identity headers the client sent are removed or replaced; only a client's
            // own single Authorization, the token just accepted, may stay as it is.
            let profile = served_by(engine, req);
            let identity = ["authorization", "x-auth-request-user", "x-auth-request-email", "x-auth-request-access-token"];
            for h in identity.iter().copied().chain(profile.claim_headers.iter().map(|(h, _)| h.as_str())) {
                if req.header(h).is_none() {
                    continue;
                }
                let handled = f.remove_headers.iter().any(|r| r == h) || f.set_headers.iter().any(|(n, _)| n == h);
                let own_token = h == "authorization" && events.contains(&Event::TokenAccepted) && req.header_values(h).len() == 1;
                assert!(handled || own_token, "identity header {h} sent by the client reaches the upstream");
            }
            check_headers(&f.set_headers);
            check_headers(&f.response_headers);
            assert!(f.response_headers.iter().all(|(n, _)| n == "set-cookie"));
            check_set_cookies(&f.response_headers, &bases);
            if events.contains(&Event::SessionRefreshed) {
                assert!(sets_a_session(&f.response_headers), "a refreshed session that is not re-sealed");
            }
            // The filter's cookies (sessions, logins) never reach the upstream; the client's
            // others do, byte for byte and in order: every `;`-separated segment of its
            // `Cookie` headers whose name is not the filter's, trimmed of spaces.
            // Every segment, not only the parse's first 256 cookies.
            let segments: Vec<&[u8]> =
                req.header_values("cookie").into_iter().flat_map(|h| h.split(|b| *b == b';')).map(|seg| seg.trim_ascii()).collect();
            let ours = |seg: &&[u8]| {
                let name = seg.splitn(2, |b| *b == b'=').next().unwrap_or(seg).trim_ascii();
                is_filter_cookie(&String::from_utf8_lossy(name), &bases)
            };
            let sends_ours = segments.iter().any(&ours);
            let theirs: Vec<&[u8]> = segments.iter().filter(|seg| !seg.is_empty() && !ours(seg)).copied().collect();
            match &f.cookie {
                CookieHeader::Keep => assert!(!sends_ours, "the filter's cookies go upstream"),
                CookieHeader::Remove => assert!(sends_ours && theirs.is_empty(), "the client's own cookies are dropped"),
                CookieHeader::Replace(c) => {
                    assert!(sends_ours, "the Cookie header is rewritten without need");
                    assert_eq!(c, &theirs.join(&b"; "[..]), "the client's cookies are not passed on as sent");
                }
            }
            if let Some(path) = &f.path {
                // Rebuilt from the client's path: no CR, LF or NUL it did not send itself.
                assert!(!path.bytes().any(|b| matches!(b, b'\r' | b'\n' | 0) && !req.path.as_bytes().contains(&b)), "a control character in :path {path:?}");
                let query = path.split_once('?').map(|(_, q)| q).unwrap_or_default();
                assert!(!Query::parse(query).has("access_token"), "a query token goes upstream: {path:?}");
            }
        }
        Decision::Respond(r) => {
            check_headers(&r.headers);
            check_set_cookies(&r.headers, &bases);
            if (300..400).contains(&r.status) {
                let location = r.headers.iter().find(|(n, _)| n == "location").map(|(_, v)| v.as_str()).unwrap_or("");
                let to_idp = location.starts_with(&format!("{ISSUER}/auth?")) || location.starts_with(&format!("{ISSUER}/logout?"));
                assert!(to_idp || location == "/" || is_safe_path(location, CALLBACK_PATH), "redirect to {location:?}");
            }
            if events.contains(&Event::LoginCompleted) {
                assert!(sets_a_session(&r.headers), "a completed login without a session cookie");
            }
            if r.status == 200 && events.contains(&Event::LoginCompleted) {
                // `SameSite=Strict`: the page that moves on, by itself or by a click (a login
                // another site started), to a same-origin path.
                assert!(r.body.contains("<a href=\"/"), "a completed login neither redirects nor moves on");
            }
        }
        Decision::Call(call, pending) => {
            assert!(!released, "a request released after a wait calls out: the shell answers it with a 500 ({pending:?})");
            let url = call.endpoint.url();
            match pending {
                Pending::CodeExchange(_) | Pending::Refresh(_) => {
                    assert_eq!(url, format!("{ISSUER}/token"));
                    assert_eq!(call.method, "POST");
                }
                Pending::Userinfo(fin) => {
                    assert_eq!(url, format!("{ISSUER}/userinfo"));
                    assert!(engine.settings.profiles[fin.exchange.profile].userinfo, "userinfo without `userinfo`");
                }
                other => panic!("a call with a key wait's pending state: {other:?}"),
            }
            check_headers(&call.headers);
        }
        Decision::Wait(w) => {
            let view = world.views.get(w.provider).expect("a wait for a provider that does not exist");
            assert_eq!(w.generation, view.generation, "a wait for keys it already has");
            assert!(w.deadline > now, "a wait that is already over");
            if w.poll {
                assert!(matches!(w.pending, Pending::SharedRefresh(_)), "a polling wait for keys: {:?}", w.pending);
            } else {
                assert!(!released, "a request released after a key wait waits again");
                assert!(events.contains(&Event::KidRefetchRequested), "a wait nobody asked a refetch for: {events:?}");
                assert!(matches!(w.pending, Pending::LoginKeys(_) | Pending::RefreshKeys(_) | Pending::Bearer(_)), "a wait for a call: {:?}", w.pending);
            }
        }
    }
}

/// The IdP's answers to the refresh loop (`lifecycle::Refresher`, as the root context runs
/// it: discovery first, then the JWKS, then scheduled refreshes and unknown-`kid`
/// refetches). Input: optionally a first line `#add` or `#expire_after` (the
/// `key_rotation`; default `replace`), then up to 12 answers separated by `\n--\n`, each read
/// by `call_response`; an answer starting `!kid\n` is preceded by a worker asking for an
/// unknown-`kid` refetch.
///
/// Properties: a failed or unusable answer never changes what is in force; a JWKS is only
/// taken with keys; every stored key rebuilds in the workers' view and the view is ready
/// exactly when discovery and fresh keys are there; the audit line serializes; the next
/// attempt is always in the future.
pub fn provider(data: &[u8]) {
    let (rotation, data) = if let Some(rest) = data.strip_prefix(b"#add\n") {
        ("add", rest)
    } else if let Some(rest) = data.strip_prefix(b"#expire_after\n") {
        ("expire_after", rest)
    } else {
        ("replace", data)
    };
    thread_local! {
        static BY_ROTATION: Vec<(&'static str, Settings)> = ["replace", "add", "expire_after"]
            .into_iter()
            .map(|r| (r, Settings::from_json(config_with(&[("key_rotation", Value::from(r))]).as_bytes()).expect("the harness configuration is valid")))
            .collect();
    }
    let settings = BY_ROTATION.with(|all| all.iter().find(|(r, _)| *r == rotation).map(|(_, s)| s.clone())).expect("a known rotation");
    let cfg = &settings.providers[0];
    let keys = provider::Keys::new(&cfg.namespace);
    let refresher = Refresher { provider: cfg, keys: &keys, me: "vm-1" };
    let mut store = MemoryStore::default();
    let mut view = View::default();
    let mut now = NOW;
    for (i, answer) in split_answers(data, b"\n--\n", 12).into_iter().enumerate() {
        let answer = match answer.strip_prefix(b"!kid\n") {
            Some(rest) => {
                // A worker met a token with an unknown kid.
                let _ = refresher.request_kid_refetch(&mut store, now);
                rest
            }
            None => answer,
        };
        let plan = match refresher.poll(&mut store, now) {
            Some(p) => p,
            None => {
                let (snap, _) = provider::read(&store, &keys);
                now = snap.next_discovery_at.min(snap.next_jwks_at).max(now.saturating_add(1));
                match refresher.poll(&mut store, now) {
                    Some(p) => p,
                    None => return,
                }
            }
        };
        let (before, _) = provider::read(&store, &keys);
        let audit = refresher.complete(&mut store, &plan, Some(&call_response(answer)), now, i as u64);
        let (after, _) = provider::read(&store, &keys);
        if audit.succeeded() {
            if plan.target == Target::Jwks {
                assert!(!after.keys.is_empty(), "a JWKS without keys was taken");
                assert_eq!(after.jwks_fetched_at, now);
            }
        } else {
            assert_eq!(after.keys, before.keys, "a failed fetch changed the keys in force");
            assert_eq!(after.discovery, before.discovery, "a failed fetch changed the discovery document");
            assert!(audit.reason.is_some());
        }
        if let Some(d) = &after.discovery {
            assert_eq!(d.issuer, ISSUER);
        }
        let line: Value = serde_json::from_str(&audit.to_json()).expect("the audit line is JSON");
        assert_eq!(line["outcome"], if audit.succeeded() { "success" } else { "failure" });
        view.sync(&store, &keys, cfg);
        assert_eq!(view.keys.keys().len(), after.keys.len(), "a stored key does not rebuild in the workers' view");
        assert_eq!(view.metadata.is_some(), after.discovery.is_some(), "the view's endpoints are not discovery's");
        let fresh = !after.keys.is_empty() && now < after.jwks_fetched_at.saturating_add(cfg.max_key_staleness);
        assert_eq!(view.is_ready(cfg, now), fresh && after.discovery.is_some(), "readiness is not what the snapshot holds");
        assert_eq!(audit.keys_in_force, after.keys.len());
        assert!(audit.next_attempt_at > now, "the next attempt is not in the future");
        now = now.saturating_add(1);
    }
}

/// The DER `DigestInfo` prefixes of RFC 8017 9.2 Note 1 (with the NULL parameters).
const DIGEST_INFO: [(&[u8], Alg); 3] = [
    (&[0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x20], Alg::RS256),
    (&[0x30, 0x41, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x02, 0x05, 0x00, 0x04, 0x30], Alg::RS384),
    (&[0x30, 0x51, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x03, 0x05, 0x00, 0x04, 0x40], Alg::RS512),
];

/// An RSA key as the filter loads it from a JWKS (`jwks::parse_key_list`): both forms,
/// the `jwt::rsa` one and jsonwebtoken's `DecodingKey` (the `rsa` crate).
fn rsa_jwk(n: &[u8], e: &[u8]) -> Option<jwks::Jwk> {
    let jwk = serde_json::json!({"kty": "RSA", "n": b64::url_encode(n), "e": b64::url_encode(e)});
    jwks::parse_key_list(&[jwk]).ok().and_then(|(set, _)| set.keys().first().cloned())
}

/// RS256/384/512 verdicts of the core's own verifier (`jwt::rsa`, via `verify::verify_pkcs1`)
/// and of the `rsa` crate it replaced (`verify::verify_raw`), which must agree.
fn both_verdicts(alg: Alg, key: &jwks::Jwk, message: &[u8], signature: &[u8]) -> (bool, bool) {
    let hash = jwt::verify::pkcs1_hash(alg).expect("an RS* algorithm");
    let own = key.rsa.as_ref().is_some_and(|k| jwt::verify::verify_pkcs1(hash, k, message, signature).is_ok());
    let reference = jwt::verify::verify_raw(alg, &key.decoding, message, &b64::url_encode(signature)).is_ok();
    assert_eq!(own, reference, "jwt::rsa says {own}, the rsa crate {reference} ({alg:?}, {}-byte modulus)", key.modulus_len);
    (own, reference)
}

/// Differential fuzzing of `jwt::rsa`, the core's own RSASSA-PKCS1-v1_5 verifier, against
/// the `rsa` crate, on moduli the fuzzer picks.
///
/// Input: byte 0 picks the mode, byte 1 the modulus size (2048, 3072 or 4096 bits) and
/// the hash, the rest is the material.
/// - mode 0 (a valid signature on a made-up key): with e = 3, the harness takes the
///   fuzzer's bytes as the low bits of the signature integer s (of about a third of the
///   modulus' bits) and the message, and sets n = s^3 - EM, where EM is the message's PKCS#1 v1.5
///   encoding; so s is a valid signature under (n, 3). Both verifiers must accept it,
///   and both refuse it once a bit (chosen by the input) of the signature or message flips.
/// - mode 1 (anything): n, e (3 or 65537) and the signature from the input, over a
///   message: both verifiers give the same verdict (no panic, whatever n and s).
pub fn rsa_differential(data: &[u8]) {
    let (Some(&mode), Some(&shape), Some(rest)) = (data.first(), data.get(1), data.get(2..)) else { return };
    let k = [256usize, 384, 512][usize::from(shape % 3)];
    let (prefix, alg) = DIGEST_INFO[usize::from(shape / 3 % 3)];
    if mode % 2 == 1 {
        let e: &[u8] = if mode & 2 == 0 { &[3] } else { &[1, 0, 1] };
        let (Some(n), Some(tail)) = (rest.get(..k), rest.get(k..)) else { return };
        let (signature, message) = tail.split_at(tail.len().min(k));
        if let Some(key) = rsa_jwk(n, e) {
            both_verdicts(alg, &key, message, signature);
        }
        return;
    }
    // s ~ 0.9 * 2^(8k/3): its top 16 bits are fixed to that, the rest come from the input,
    // so s^3 (about 0.73 * 2^(8k)) and n = s^3 - EM have exactly 8k bits, as a JWKS key must.
    let third = 8 * k / 3;
    let m = 0.9 * 2f64.powf((8 * k) as f64 / 3.0 - third as f64);
    let bits = if m >= 1.0 { third + 1 } else { third };
    let top16 = (m * 2f64.powi(16 - (bits - third) as i32)) as u64;
    let s_len = bits.div_ceil(8);
    let Some(s_bytes) = rest.get(..s_len) else { return };
    let (flip, message) = rest[s_len..].split_first().map(|(f, m)| (*f, m)).unwrap_or((0, &[]));
    let digest: Vec<u8> = match alg {
        Alg::RS384 => <sha2::Sha384 as sha2::Digest>::digest(message).to_vec(),
        Alg::RS512 => <sha2::Sha512 as sha2::Digest>::digest(message).to_vec(),
        _ => <sha2::Sha256 as sha2::Digest>::digest(message).to_vec(),
    };
    let mut em = vec![0u8; k];
    em[1] = 1;
    let t_start = k - prefix.len() - digest.len();
    em[2..t_start - 1].fill(0xff);
    em[t_start..t_start + prefix.len()].copy_from_slice(prefix);
    em[t_start + prefix.len()..].copy_from_slice(&digest);
    // The input's bits below the top 16, then the top 16 set.
    let low = rsa::BigUint::from_bytes_be(s_bytes) % (rsa::BigUint::from(1u8) << (bits - 16));
    let mut s_raw = ((rsa::BigUint::from(top16) << (bits - 16)) + low).to_bytes_be();
    // n = s^3 - EM must be odd: s odd exactly when EM is even.
    let last = s_raw.len() - 1;
    s_raw[last] = (s_raw[last] & !1) | (!em[k - 1] & 1);
    let s = rsa::BigUint::from_bytes_be(&s_raw);
    let n = &s * &s * &s - rsa::BigUint::from_bytes_be(&em);
    let n_bytes = n.to_bytes_be();
    assert_eq!(n_bytes.len(), k, "the made-up modulus has {} bytes", n_bytes.len());
    assert!(n_bytes[0] & 0x80 != 0, "the made-up modulus is shorter than {} bits", 8 * k);
    let key = rsa_jwk(&n_bytes, &[3]).expect("the made-up key loads");
    assert_eq!(key.modulus_len, k);
    let mut signature = vec![0u8; k - s_raw.len()];
    signature.extend_from_slice(&s_raw);
    assert_eq!(both_verdicts(alg, &key, message, &signature), (true, true), "a valid signature was refused");
    // One bit flipped: of the signature (flip < 128) or of the message.
    let bit = usize::from(flip);
    let (mut sig2, mut msg2) = (signature.clone(), message.to_vec());
    if flip < 128 || msg2.is_empty() {
        let i = k - 1 - (bit * 7919) % s_raw.len();
        sig2[i] ^= 1 << (bit % 8);
    } else {
        let i = bit % msg2.len();
        msg2[i] ^= 1 << (bit % 8);
    }
    assert_eq!(both_verdicts(alg, &key, &msg2, &sig2), (false, false), "a changed signature or message was accepted");
}

//! The fuzz harnesses: one function per parser that a client or an IdP can reach.
//!
//! Each function takes the fuzzer's bytes, drives the core the way the filter does, and
//! asserts what must hold for every input (a panic is a finding). The same functions run
//! natively in `tests/fuzz_regressions.rs` over the seed corpus and every crash input
//! kept in `fuzz/regressions/<target>/`, so a fixed crash stays fixed without the fuzzer.
//! This file depends only on `oidc_edge` and `serde_json`: both crates include it.

use std::sync::OnceLock;

use oidc_edge::b64;
use oidc_edge::config::Settings;
use oidc_edge::entropy::SplitMix;
use oidc_edge::error::Reason;
use oidc_edge::flow::{Context, Decision, Engine, Event, MAX_TOKEN_BYTES};
use oidc_edge::http::{self, CallResponse, Endpoint, Query};
use oidc_edge::jwks::{self, KeySet, Rotation, StoredKey};
use oidc_edge::jwt::{self, Alg, ClaimRules};
use oidc_edge::oidc::{callback, discovery, token};
use oidc_edge::lifecycle::{Refresher, Target};
use oidc_edge::provider::{self, View};
use oidc_edge::request::{self, ClientKind, RequestView};
use oidc_edge::session::cookies;
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
];

pub fn by_name(name: &str) -> Option<Harness> {
    TARGETS.iter().find(|(n, _)| *n == name).map(|(_, f)| *f)
}

// ---------------------------------------------------------------------------------------
// The fixed world the harnesses run in.

pub const ISSUER: &str = "https://idp.example.com";
pub const CLIENT_ID: &str = "oidc-edge-fuzz";
pub const NONCE: &str = "n-0S6_WzA2Mj";
pub const ACCESS_TOKEN: &str = "fuzz-access-token";
/// 2023-11-14: the harnesses' "now". Seed tokens are valid for a day around it.
pub const NOW: u64 = 1_700_000_000;
pub const SKEW: u64 = 60;
pub const COOKIE_SECRET: [u8; 32] = [7u8; 32];
pub const SEAL_LABEL: &str = "session:oidc_edge";

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
    keys.push(serde_json::json!({"kty": "OKP", "crv": "Ed25519", "kid": "ed", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}));
    keys.push(serde_json::json!({"kty": "EC", "crv": "P-256", "kid": "ec", "alg": "ES256",
        "x": "EB54wykhS7YJFD6RYJNnwbWEz3cI7CF5bCDTXlrwI5k", "y": "92bCBTvMFQ8lKbS2MbgjT3YfmYo6HnPEE2tsAqWUJw8"}));
    serde_json::json!({ "keys": keys }).to_string()
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

pub fn config_json() -> String {
    serde_json::json!({
        "issuer": ISSUER,
        "idp_cluster": "idp",
        "client_id": CLIENT_ID,
        "client_secret": "fuzz-secret",
        "cookie_secret": b64::std_encode(&COOKIE_SECRET),
        "allowed_algorithms": ["RS256", "EdDSA", "ES256"],
    })
    .to_string()
}

pub fn discovery_json() -> String {
    serde_json::json!({
        "issuer": ISSUER,
        "authorization_endpoint": format!("{ISSUER}/auth"),
        "token_endpoint": format!("{ISSUER}/token"),
        "jwks_uri": format!("{ISSUER}/jwks"),
        "end_session_endpoint": format!("{ISSUER}/logout"),
        "authorization_response_iss_parameter_supported": true,
    })
    .to_string()
}

pub fn engine() -> &'static Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE.get_or_init(|| {
        let settings = Settings::from_json(config_json().as_bytes()).expect("the harness configuration is valid");
        Engine::new(settings, "fuzz")
    })
}

/// A provider view with discovery and keys loaded: the filter ready to serve.
pub fn ready_view() -> &'static View {
    static VIEW: OnceLock<View> = OnceLock::new();
    VIEW.get_or_init(|| View {
        generation: 1,
        discovery: Some(discovery::parse(discovery_json().as_bytes(), ISSUER).expect("the harness discovery document parses")),
        keys: keys().clone(),
        jwks_fetched_at: NOW,
        kid_refetch_started_at: 0,
    })
}

/// Header lines `name: value` (a pseudo-header's name keeps its leading `:`). Values are
/// bytes: a client may send any.
pub fn header_lines(data: &[u8]) -> Vec<(String, Vec<u8>)> {
    data.split(|b| *b == b'\n')
        .filter_map(|line| {
            let from = usize::from(line.first() == Some(&b':'));
            let colon = line.iter().skip(from).position(|b| *b == b':')? + from;
            let name = String::from_utf8_lossy(&line[..colon]).into_owned();
            let value = &line[colon + 1..];
            let value = value.strip_prefix(b" ").unwrap_or(value);
            Some((name, value.to_vec()))
        })
        .collect()
}

fn is_safe_path(p: &str, callback_path: &str) -> bool {
    p.starts_with('/')
        && !p.starts_with("//")
        && !p.contains('\\')
        && !p.bytes().any(|b| b <= b' ' || b == 0x7f)
        && p.len() <= 2048
        && p.split('?').next() != Some(callback_path)
}

// ---------------------------------------------------------------------------------------
// The harnesses.

/// Compact JWS + claims: `jwt::parse`, then `jwt::validate` as the login callback runs it
/// (nonce, at_hash, azp) against the fixed key set. Input: the token text, or `#` then
/// `header JSON \n payload JSON \n signature bytes` (encoded by the harness, so the
/// fuzzer reaches the claim checks without having to learn base64url).
pub fn jwt(data: &[u8]) {
    let token = match data.strip_prefix(b"#") {
        Some(rest) => {
            let mut parts = rest.splitn(3, |b| *b == b'\n');
            let (h, p, s) = (parts.next().unwrap_or_default(), parts.next().unwrap_or_default(), parts.next().unwrap_or_default());
            format!("{}.{}.{}", b64::url_encode(h), b64::url_encode(p), b64::url_encode(s))
        }
        None => match std::str::from_utf8(data) {
            Ok(t) => t.to_string(),
            Err(_) => return,
        },
    };
    if let Ok(parsed) = jwt::parse(&token, MAX_TOKEN_BYTES) {
        assert!(token.starts_with(parsed.signing_input), "the signing input is the token's prefix");
        assert_eq!(b64::url_decode(parsed.signature_b64).as_deref(), Some(parsed.signature.as_slice()));
        // Key selection must never panic, whatever the kid and alg.
        let _ = keys().candidates(parsed.header.kid.as_deref(), parsed.header.alg);
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
            assert!(!t.id_token.is_empty() && !t.access_token.is_empty());
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
/// `Sealer::open` on every value; plus the split/join and seal/open round trips.
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
}

/// The plugin configuration: `Settings::from_json`, and what it accepts must build an engine
/// and respect every documented bound.
pub fn config(data: &[u8]) {
    let Ok(s) = Settings::from_json(data) else { return };
    assert!(s.clock_skew <= 600);
    assert!(!s.audiences.is_empty() && s.audiences.iter().all(|a| !a.is_empty()));
    assert!(!s.allowed_algorithms.is_empty());
    assert!(s.scope == "openid" || s.scope.starts_with("openid "));
    assert!(s.redirect_path.starts_with('/') && !s.redirect_path.starts_with("//"));
    assert!(s.discovery.url().ends_with("/.well-known/openid-configuration"));
    assert_eq!(s.cookie_keys.len(), 1);
    assert!((1000..=60_000).contains(&s.idp_timeout_ms));
    assert!((300..=30 * 86_400).contains(&s.session_lifetime));
    assert!((60..=3600).contains(&s.login_timeout));
    assert!((60..=30 * 86_400).contains(&s.jwks_refresh_interval));
    assert!((60..=30 * 86_400).contains(&s.discovery_refresh_interval));
    let _ = oidc_edge::provider::namespace(&s);
    let _ = Engine::new(s, "fuzz");
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
    let req = RequestView::from_headers(header_lines(data));
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
    let _ = req.cookies();
    assert!(req.path.starts_with(req.path_only()));
    let _ = req.query();
    let callback_path = "/oauth2/callback";
    for candidate in [req.path.as_str(), std::str::from_utf8(data).unwrap_or("/")] {
        let r = request::safe_return_path(candidate, callback_path);
        assert!(r == "/" || r == candidate, "safe_return_path rewrote instead of refusing");
        assert!(r == "/" || is_safe_path(&r, callback_path), "unsafe return path accepted: {r:?}");
    }
}

/// A whole request through `Engine::on_request` with the provider ready (headers as in
/// `request`), and, when it asks for the code exchange, the fuzzer's remaining bytes as
/// the token endpoint's answer. Nothing is forwarded upstream without a session that
/// opened, identity headers are always replaced, and a redirect goes to the IdP only.
pub fn flow(data: &[u8]) {
    // `\n\n` separates the request from a token endpoint answer (as in `token_response`).
    let (head, tail) = match data.windows(2).position(|w| w == b"\n\n") {
        Some(i) => (&data[..i], &data[i + 2..]),
        None => (data, &b""[..]),
    };
    let req = RequestView::from_headers(header_lines(head));
    let mut store = MemoryStore::default();
    let mut entropy = SplitMix(data.len() as u64);
    let mut cx = Context { now: NOW, provider: ready_view(), store: &mut store, entropy: &mut entropy, events: Vec::new() };
    let decision = engine().on_request(&req, &mut cx);
    check_decision(&decision, &cx.events);
    if let Decision::Call(call, pending) = decision {
        assert_eq!(call.endpoint.url(), format!("{ISSUER}/token"));
        let resp = call_response(tail);
        cx.events.clear();
        let answer = (!tail.is_empty()).then_some(&resp);
        let decision = engine().on_call_response(pending, answer, &mut cx);
        check_decision(&decision, &cx.events);
        if let Decision::Respond(r) = &decision {
            if r.status == 302 && cx.events.contains(&Event::LoginCompleted) {
                assert!(r.headers.iter().any(|(n, v)| n == "set-cookie" && v.contains("HttpOnly")));
            }
        }
    }
}

/// The IdP's answers to the refresh loop (`lifecycle::Refresher`, as the shell runs it:
/// discovery first, then the JWKS, then scheduled refreshes): up to 12 answers separated by
/// `\n--\n`, each read by `call_response`. A failed or unusable answer never changes what
/// is in force, every stored key rebuilds in the workers' view, and the next attempt is
/// always in the future.
pub fn provider(data: &[u8]) {
    let engine = engine();
    let refresher = Refresher { settings: &engine.settings, keys: &engine.keys, me: "vm-1", rotation: jwks::Rotation::Replace, kid_refetch_cooldown: 30 };
    let mut store = MemoryStore::default();
    let mut now = NOW;
    let mut answers = Vec::new();
    let mut rest = data;
    while answers.len() < 12 {
        match rest.windows(4).position(|w| w == b"\n--\n") {
            Some(i) => {
                answers.push(&rest[..i]);
                rest = &rest[i + 4..];
            }
            None => {
                answers.push(rest);
                break;
            }
        }
    }
    for (i, answer) in answers.into_iter().enumerate() {
        let plan = match refresher.poll(&mut store, now) {
            Some(p) => p,
            None => {
                let (snap, _) = provider::read(&store, &engine.keys);
                now = snap.next_discovery_at.min(snap.next_jwks_at).max(now.saturating_add(1));
                match refresher.poll(&mut store, now) {
                    Some(p) => p,
                    None => return,
                }
            }
        };
        let (before, _) = provider::read(&store, &engine.keys);
        let audit = refresher.complete(&mut store, &plan, Some(&call_response(answer)), now, i as u64);
        let (after, _) = provider::read(&store, &engine.keys);
        if audit.succeeded() {
            if plan.target == Target::Jwks {
                assert!(!after.keys.is_empty(), "a JWKS without keys was taken");
            }
        } else {
            assert_eq!(after.keys, before.keys, "a failed fetch changed the keys in force");
            assert_eq!(after.discovery, before.discovery, "a failed fetch changed the discovery document");
        }
        if let Some(d) = &after.discovery {
            assert_eq!(d.issuer, ISSUER);
        }
        let view = View::from_snapshot(&after, 1);
        assert_eq!(view.keys.keys().len(), after.keys.len(), "a stored key does not rebuild in the workers' view");
        assert_eq!(audit.keys_in_force, after.keys.len());
        assert!(audit.next_attempt_at > now, "the next attempt is not in the future");
        now = now.saturating_add(1);
    }
}

fn check_decision(decision: &Decision, events: &[Event]) {
    match decision {
        Decision::Forward(f) => {
            assert!(events.contains(&Event::SessionAccepted), "forwarded without an accepted session");
            for h in ["authorization", "x-auth-request-user", "x-auth-request-email"] {
                assert!(f.remove_headers.iter().any(|r| r == h), "identity header {h} not stripped");
            }
        }
        Decision::Respond(r) => {
            if (300..400).contains(&r.status) {
                let location = r.headers.iter().find(|(n, _)| n == "location").map(|(_, v)| v.as_str()).unwrap_or("");
                assert!(location.starts_with(&format!("{ISSUER}/auth?")) || location.starts_with('/'), "redirect to {location:?}");
                if location.starts_with('/') {
                    assert!(is_safe_path(location, "/oauth2/callback") || location == "/", "open redirect to {location:?}");
                }
            }
            for (n, v) in &r.headers {
                assert!(!n.is_empty() && !v.bytes().any(|b| matches!(b, b'\r' | b'\n' | 0)), "header injection in {n}: {v:?}");
            }
        }
        Decision::Call(..) => {}
    }
}

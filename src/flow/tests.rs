//! The whole flow, natively: a scripted IdP (real RSA keys, signed tokens), simulated time,
//! an in-memory shared store, and the engine's decisions checked step by step.

use rsa::pkcs1::EncodeRsaPrivateKey;
use rsa::BigUint;
use serde_json::{json, Value};

use super::*;
use crate::b64;
use crate::entropy::SplitMix;
use crate::http::{CallResponse, Query};
use crate::lifecycle::Refresher;
use crate::provider::View;
use crate::store::MemoryStore;

const ISSUER: &str = "https://idp.example.com";
const T0: u64 = 1_800_000_000;

fn fixture_key(file: &str) -> Value {
    let path = format!("{}/tests/fixtures/{file}", env!("CARGO_MANIFEST_DIR"));
    let set: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    set["keys"][0].clone()
}

/// An IdP that signs with one of the fixture keys.
struct Idp {
    kid: String,
    der: Vec<u8>,
    public: Value,
}

impl Idp {
    fn new(file: &str) -> Idp {
        let k = fixture_key(file);
        let n = |name: &str| BigUint::from_bytes_be(&b64::url_decode(k[name].as_str().unwrap()).unwrap());
        let key = rsa::RsaPrivateKey::from_components(n("n"), n("e"), n("d"), vec![n("p"), n("q")]).unwrap();
        let der = key.to_pkcs1_der().unwrap().as_bytes().to_vec();
        let public = json!({"kty": "RSA", "kid": k["kid"], "use": "sig", "alg": "RS256", "n": k["n"], "e": k["e"]});
        Idp { kid: k["kid"].as_str().unwrap().to_string(), der, public }
    }

    fn sign(&self, claims: &Value) -> String {
        self.sign_with_header(claims, json!({"alg": "RS256", "typ": "JWT", "kid": self.kid}))
    }

    fn sign_with_header(&self, claims: &Value, header: Value) -> String {
        let h = b64::url_encode(header.to_string().as_bytes());
        let p = b64::url_encode(claims.to_string().as_bytes());
        let input = format!("{h}.{p}");
        let key = jsonwebtoken::EncodingKey::from_rsa_der(&self.der);
        let sig = jsonwebtoken::crypto::sign(input.as_bytes(), &key, jsonwebtoken::Algorithm::RS256).unwrap();
        format!("{input}.{sig}")
    }
}

fn discovery() -> Value {
    json!({
        "issuer": ISSUER,
        "authorization_endpoint": "https://idp.example.com/auth",
        "token_endpoint": "https://idp.example.com/token",
        "jwks_uri": "https://idp.example.com/jwks",
        "userinfo_endpoint": "https://idp.example.com/userinfo",
        "end_session_endpoint": "https://idp.example.com/logout",
        "authorization_response_iss_parameter_supported": true,
    })
}

fn config(extra: Value) -> Value {
    let mut c = json!({
        "issuer": ISSUER, "idp_cluster": "idp", "client_id": "app", "client_secret": "secret",
        "cookie_secret": b64::std_encode(&[5u8; 32]),
    });
    for (k, v) in extra.as_object().unwrap() {
        c[k] = v.clone();
    }
    c
}

/// One VM's world: engine, shared store, provider views, clock and entropy.
struct World {
    engine: Engine,
    store: MemoryStore,
    views: Vec<View>,
    now: u64,
    rng: SplitMix,
    idp: Idp,
    events: Vec<Event>,
}

impl World {
    fn new(extra: Value) -> World {
        let settings = Settings::from_json(config(extra).to_string().as_bytes()).unwrap();
        let engine = Engine::new(settings, [9u8; 16]);
        let views = vec![View::default(); engine.settings.providers.len()];
        let mut w = World { engine, store: MemoryStore::default(), views, now: T0, rng: SplitMix(7), idp: Idp::new("idp-keys.json"), events: vec![] };
        let jwks = json!({"keys": [w.idp.public.clone()]});
        w.load_provider(&jwks);
        w
    }

    /// Runs the refresher of provider 0 like the root context does on ticks.
    /// `World::new` whose IdP's discovery document is `discovery()` with `patch` applied.
    fn with_discovery(extra: Value, patch: Value) -> World {
        let mut w = World::new(extra);
        w.store = MemoryStore::default();
        w.views = vec![View::default(); w.engine.settings.providers.len()];
        let jwks = json!({"keys": [w.idp.public.clone()]});
        w.load_provider_with(&jwks, &patch);
        w
    }

    fn load_provider(&mut self, jwks: &Value) {
        self.load_provider_with(jwks, &json!({}));
    }

    fn load_provider_with(&mut self, jwks: &Value, discovery_patch: &Value) {
        for _ in 0..4 {
            let cfg = &self.engine.settings.providers[0];
            let keys = &self.engine.provider_keys[0];
            let r = Refresher { provider: cfg, keys, me: "vm" };
            let Some(plan) = r.poll(&mut self.store, self.now) else { break };
            let body = match plan.target {
                crate::lifecycle::Target::Discovery => {
                    let mut d = discovery();
                    for (k, v) in discovery_patch.as_object().into_iter().flatten() {
                        d[k] = v.clone();
                    }
                    d
                }
                crate::lifecycle::Target::Jwks => jwks.clone(),
            };
            let resp = CallResponse { status: 200, headers: vec![], body: body.to_string().into_bytes() };
            assert!(r.complete(&mut self.store, &plan, Some(&resp), self.now, 0).succeeded());
        }
        self.sync();
    }

    fn sync(&mut self) {
        for ((v, k), c) in self.views.iter_mut().zip(&self.engine.provider_keys).zip(&self.engine.settings.providers) {
            v.sync(&self.store, k, c);
        }
    }

    fn step(&mut self, f: impl FnOnce(&Engine, &mut Context<'_>) -> Decision) -> Decision {
        let mut cx = Context { now: self.now, providers: &self.views, store: &mut self.store, entropy: &mut self.rng, events: vec![] };
        let d = f(&self.engine, &mut cx);
        self.events.extend(cx.events);
        d
    }

    fn request(&mut self, req: &RequestView) -> Decision {
        self.step(|e, cx| e.on_request(req, cx))
    }

    fn respond(&mut self, pending: Pending, resp: &CallResponse) -> Decision {
        self.step(|e, cx| e.on_call_response(pending, Some(resp), cx))
    }

    fn id_token(&self, nonce: &str, patch: Value) -> String {
        let mut claims = json!({
            "iss": ISSUER, "sub": "alice", "aud": "app", "exp": self.now + 300, "iat": self.now,
            "nonce": nonce, "email": "alice@example.com", "groups": ["g-admins", "devs"],
        });
        for (k, v) in patch.as_object().unwrap() {
            if v.is_null() {
                claims.as_object_mut().unwrap().remove(k);
            } else {
                claims[k] = v.clone();
            }
        }
        self.idp.sign(&claims)
    }
}

fn req(method: &str, path: &str, headers: &[(&str, &str)]) -> RequestView {
    let mut h: Vec<(String, Vec<u8>)> = vec![
        (":method".into(), method.as_bytes().to_vec()),
        (":scheme".into(), b"http".to_vec()),
        (":authority".into(), b"app.example.com".to_vec()),
        (":path".into(), path.as_bytes().to_vec()),
    ];
    for (n, v) in headers {
        h.push((n.to_string(), v.as_bytes().to_vec()));
    }
    RequestView::from_headers(h)
}

const HTML: (&str, &str) = ("accept", "text/html");

fn respond(d: Decision) -> LocalResponse {
    match d {
        Decision::Respond(r) => r,
        other => panic!("expected a local response, got {other:?}"),
    }
}

fn forward(d: Decision) -> Forward {
    match d {
        Decision::Forward(f) => f,
        other => panic!("expected forward, got {other:?}"),
    }
}

/// The client's one valid `Authorization` header goes upstream as it came: neither
/// removed nor rewritten.
fn assert_kept_authorization(f: &Forward) {
    assert!(!f.remove_headers.iter().any(|h| h == "authorization"), "{f:?}");
    assert!(!f.add_headers.iter().any(|(h, _)| h == "authorization"), "{f:?}");
}

fn header<'a>(r: &'a LocalResponse, name: &str) -> Option<&'a str> {
    r.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
}

fn set_cookies(r: &[(String, String)]) -> Vec<(String, String)> {
    r.iter()
        .filter(|(n, _)| n == "set-cookie")
        .filter_map(|(_, v)| {
            let first = v.split(';').next()?;
            let (n, val) = first.split_once('=')?;
            Some((n.to_string(), val.to_string()))
        })
        .collect()
}

/// Cookies a browser would now hold (non-empty ones).
fn cookie_header(cookies: &[(String, String)]) -> String {
    cookies.iter().filter(|(_, v)| !v.is_empty()).map(|(n, v)| format!("{n}={v}")).collect::<Vec<_>>().join("; ")
}

struct Started {
    state: String,
    nonce: String,
    challenge: String,
    cookies: Vec<(String, String)>,
}

fn start_login(w: &mut World, path: &str) -> Started {
    let r = respond(w.request(&req("GET", path, &[HTML])));
    assert_eq!(r.status, 302);
    let loc = header(&r, "location").unwrap();
    assert!(loc.starts_with("https://idp.example.com/auth?"), "{loc}");
    let q = Query::parse(loc.split_once('?').unwrap().1);
    assert_eq!(q.single("response_type"), Some("code"));
    assert_eq!(q.single("client_id"), Some("app"));
    assert_eq!(q.single("redirect_uri"), Some("http://app.example.com/oauth2/callback"));
    assert_eq!(q.single("scope"), Some("openid profile email"));
    assert_eq!(q.single("code_challenge_method"), Some("S256"));
    Started {
        state: q.single("state").unwrap().to_string(),
        nonce: q.single("nonce").unwrap().to_string(),
        challenge: q.single("code_challenge").unwrap().to_string(),
        cookies: set_cookies(&r.headers),
    }
}

fn callback(w: &mut World, s: &Started, query: &str) -> Decision {
    let cookie = cookie_header(&s.cookies);
    w.request(&req("GET", &format!("/oauth2/callback?{query}"), &[HTML, ("cookie", &cookie)]))
}

fn token_response(id_token: &str, refresh: Option<&str>) -> CallResponse {
    let mut body = json!({"token_type": "Bearer", "access_token": "at-123", "id_token": id_token, "expires_in": 300});
    if let Some(r) = refresh {
        body["refresh_token"] = json!(r);
    }
    CallResponse { status: 200, headers: vec![], body: body.to_string().into_bytes() }
}

/// A complete login; returns the browser's session cookies.
fn login(w: &mut World, patch: Value, refresh: Option<&str>) -> Vec<(String, String)> {
    login_at(w, "/some/page?x=1", patch, refresh)
}

/// `login`, started from `path` (so by the route that serves it).
fn login_at(w: &mut World, path: &str, patch: Value, refresh: Option<&str>) -> Vec<(String, String)> {
    let s = start_login(w, path);
    let d = callback(w, &s, &format!("code=c0de&state={}&iss=https%3A%2F%2Fidp.example.com", s.state));
    let Decision::Call(call, pending) = d else { panic!("expected the code exchange, got {d:?}") };
    assert_eq!(call.endpoint.url(), "https://idp.example.com/token");
    let body = String::from_utf8(call.body.clone().unwrap()).unwrap();
    let form = Query::parse(&body);
    assert_eq!(form.single("code"), Some("c0de"));
    let verifier = form.single("code_verifier").unwrap();
    assert_eq!(crate::oidc::authorize::pkce_challenge(verifier), s.challenge, "PKCE verifier matches the challenge");
    let id_token = w.id_token(&s.nonce, patch);
    let r = respond(w.respond(pending, &token_response(&id_token, refresh)));
    assert_eq!(r.status, 302, "{}", r.body);
    assert_eq!(header(&r, "location"), Some(path));
    assert_eq!(header(&r, "cache-control"), Some("no-store"));
    assert_eq!(header(&r, "referrer-policy"), Some("no-referrer"));
    set_cookies(&r.headers).into_iter().filter(|(n, v)| n.starts_with("oidc_edge") && !n.contains("_tx.") && !v.is_empty()).collect()
}

fn with_cookies(cookies: &[(String, String)], extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut h = vec![("cookie".to_string(), cookie_header(cookies))];
    h.extend(extra.iter().map(|(a, b)| (a.to_string(), b.to_string())));
    h
}

fn req_owned(method: &str, path: &str, headers: &[(String, String)]) -> RequestView {
    let h: Vec<(&str, &str)> = headers.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
    req(method, path, &h)
}

#[test]
fn not_ready_fails_closed() {
    let settings = Settings::from_json(config(json!({})).to_string().as_bytes()).unwrap();
    let engine = Engine::new(settings, [9u8; 16]);
    let views = vec![View::default()];
    let mut store = MemoryStore::default();
    let mut rng = SplitMix(1);
    let mut cx = Context { now: T0, providers: &views, store: &mut store, entropy: &mut rng, events: vec![] };
    let browser = respond(engine.on_request(&req("GET", "/", &[HTML]), &mut cx));
    assert_eq!(browser.status, 503);
    assert!(header(&browser, "retry-after").is_some());
    let api = respond(engine.on_request(&req("GET", "/", &[("accept", "application/json")]), &mut cx));
    assert_eq!(api.status, 401);
    assert!(header(&api, "retry-after").is_some());
    let bearer = respond(engine.on_request(&req("GET", "/", &[("authorization", "Bearer a.b.c")]), &mut cx));
    assert_eq!(bearer.status, 401);
}

#[test]
fn full_login_then_session_requests() {
    let mut w = World::new(json!({}));
    let session = login(&mut w, json!({}), None);
    assert_eq!(session.len(), 1);
    assert_eq!(session[0].0, "oidc_edge");
    let h = with_cookies(&session, &[("x-auth-request-user", "mallory"), ("authorization", "Bearer junk")]);
    let mut h2 = h.clone();
    h2[0].1 = format!("{}; app=1", h2[0].1);
    let f = forward(w.request(&req_owned("GET", "/x", &h2)));
    let set = |n: &str| f.add_headers.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
    assert!(f.remove_headers.contains(&"x-auth-request-user".to_string()));
    assert!(f.remove_headers.contains(&"authorization".to_string()));
    assert_eq!(set("x-auth-request-user").as_deref(), Some("alice"));
    assert_eq!(set("x-auth-request-email").as_deref(), Some("alice@example.com"));
    assert!(set("authorization").unwrap().starts_with("Bearer eyJ"));
    assert_eq!(f.cookie, CookieHeader::Replace(b"app=1".to_vec()), "the filter's cookies stay out of the upstream");
    assert!(w.events.contains(&Event::LoginCompleted));
    // The session expires with the ID token (no refresh token here).
    w.now += 301;
    let r = respond(w.request(&req_owned("GET", "/x", &with_cookies(&session, &[HTML]))));
    assert_eq!(r.status, 302, "expired session means a new login");
}

#[test]
fn callback_failures_never_make_a_session() {
    type Case = (&'static str, Box<dyn Fn(&mut World, &Started) -> Decision>);
    let q = |s: &Started| format!("code=c&state={}&iss=https%3A%2F%2Fidp.example.com", s.state);
    let cases: Vec<Case> = vec![
        ("no state", Box::new(|w, s| callback(w, s, "code=c&iss=https%3A%2F%2Fidp.example.com"))),
        ("unknown state", Box::new(|w, s| callback(w, s, "code=c&state=forged&iss=https%3A%2F%2Fidp.example.com"))),
        ("no transaction cookie", Box::new(move |w, s| w.request(&req("GET", &format!("/oauth2/callback?{}", q(s)), &[HTML])))),
        ("wrong iss", Box::new(|w, s| callback(w, s, &format!("code=c&state={}&iss=https%3A%2F%2Fevil.example.com", s.state)))),
        ("missing iss although advertised", Box::new(|w, s| callback(w, s, &format!("code=c&state={}", s.state)))),
        ("idp error", Box::new(|w, s| callback(w, s, &format!("error=access_denied&state={}&iss=https%3A%2F%2Fidp.example.com", s.state)))),
        ("no code", Box::new(|w, s| callback(w, s, &format!("state={}&iss=https%3A%2F%2Fidp.example.com", s.state)))),
        (
            "expired transaction",
            Box::new(move |w, s| {
                w.now += 601;
                callback(w, s, &q(s))
            }),
        ),
        (
            "tampered transaction cookie",
            Box::new(move |w, s| {
                let mut t = Started { state: s.state.clone(), nonce: s.nonce.clone(), challenge: s.challenge.clone(), cookies: s.cookies.clone() };
                let v = &mut t.cookies[0].1;
                let mid = v.len() / 2;
                let c = if &v[mid..mid + 1] == "A" { "B" } else { "A" };
                v.replace_range(mid..mid + 1, c);
                callback(w, &t, &q(s))
            }),
        ),
    ];
    for (name, case) in cases {
        let mut w = World::new(json!({}));
        let s = start_login(&mut w, "/");
        let r = respond(case(&mut w, &s));
        assert!((400..500).contains(&r.status), "{name}: {}", r.status);
        assert!(set_cookies(&r.headers).iter().all(|(n, v)| v.is_empty() || n.contains("_tx.")), "{name}: no session cookie");
        assert!(w.events.iter().any(|e| matches!(e, Event::LoginFailed(_))), "{name}");
    }
}

#[test]
fn many_tabs_logging_in_at_once_each_complete_but_the_oldest_beyond_the_cap() {
    let mut w = World::new(json!({}));
    let mut jar: Vec<(String, String)> = vec![];
    let mut states = vec![];
    for tab in 0..10 {
        w.now += 1;
        let cookie = cookie_header(&jar);
        let r = respond(w.request(&req("GET", &format!("/tab/{tab}"), &[HTML, ("cookie", &cookie)])));
        assert_eq!(r.status, 302);
        let loc = header(&r, "location").unwrap();
        states.push(Query::parse(loc.split_once('?').unwrap().1).single("state").unwrap().to_string());
        for (n, v) in set_cookies(&r.headers) {
            jar.retain(|(m, _)| m != &n);
            if !v.is_empty() {
                jar.push((n, v));
            }
        }
        assert!(jar.len() <= 8, "tab {tab}: {} login cookies", jar.len());
    }
    let cookie = cookie_header(&jar);
    for (tab, state) in states.iter().enumerate() {
        let d = w.request(&req("GET", &format!("/oauth2/callback?code=c&state={state}&iss=https%3A%2F%2Fidp.example.com"), &[HTML, ("cookie", &cookie)]));
        if tab < 2 {
            assert!(matches!(d, Decision::Respond(ref r) if r.status == 400), "tab {tab}: the oldest two gave way");
        } else {
            assert!(matches!(d, Decision::Call(..)), "tab {tab}: its login completes, got {d:?}");
        }
    }
}

#[test]
fn back_to_the_callback_once_signed_in_goes_home_without_an_error() {
    let mut w = World::new(json!({}));
    let session = login(&mut w, json!({}), None);
    let cookie = cookie_header(&session);
    let r = respond(w.request(&req("GET", "/oauth2/callback?code=c0de&state=spent&iss=https%3A%2F%2Fidp.example.com", &[HTML, ("cookie", &cookie)])));
    assert_eq!((r.status, header(&r, "location")), (302, Some("/")), "{r:?}");
    assert!(set_cookies(&r.headers).is_empty(), "the session stays");
    // Without a session it is still the failure it is.
    let r = respond(w.request(&req("GET", "/oauth2/callback?code=c0de&state=spent&iss=https%3A%2F%2Fidp.example.com", &[HTML])));
    assert_eq!(r.status, 400);
}

#[test]
fn repeated_response_parameters_are_refused_not_read_as_absent() {
    let iss = "iss=https%3A%2F%2Fidp.example.com";
    for query in [
        |s: &Started, iss: &str| format!("code=c&state={}&{iss}&iss=https%3A%2F%2Fevil.example", s.state),
        |s: &Started, iss: &str| format!("code=c&state={}&{iss}&{iss}", s.state),
        |s: &Started, iss: &str| format!("code=c&code=d&state={}&{iss}", s.state),
        |s: &Started, iss: &str| format!("error=access_denied&error=x&state={}&{iss}", s.state),
    ] {
        let mut w = World::new(json!({}));
        let s = start_login(&mut w, "/");
        let q = query(&s, iss);
        let r = respond(callback(&mut w, &s, &q));
        assert_eq!(r.status, 400, "{q}");
        assert!(w.events.contains(&Event::LoginFailed(Reason::ResponseParamRepeated)), "{q}: {:?}", w.events);
    }
}

#[test]
fn max_age_needs_a_recent_auth_time() {
    for (auth_time, ok) in [(Some(0), true), (Some(-50), true), (None, false), (Some(-3600), false)] {
        let mut w = World::new(json!({"auth_query_params": {"max_age": ["60"]}}));
        let patch = json!({"auth_time": auth_time.map(|d: i64| w.now as i64 + d)});
        assert_login_outcome(&mut w, patch, ok, Reason::AuthTimeInvalid);
    }
    // A NumericDate may carry a fraction (RFC 7519 2); a string is no date.
    for (auth_time, ok) in [(json!(T0 as f64 - 10.25), true), (json!(T0.to_string()), false)] {
        let mut w = World::new(json!({"auth_query_params": {"max_age": ["60"]}}));
        assert_login_outcome(&mut w, json!({ "auth_time": auth_time }), ok, Reason::AuthTimeInvalid);
    }
}

#[test]
fn several_trusted_audiences_need_the_client_as_azp() {
    for (patch, ok) in [(json!({"aud": ["app", "other"], "azp": "app"}), true), (json!({"aud": ["app", "other"]}), false), (json!({"aud": ["app", "other"], "azp": "other"}), false)] {
        let mut w = World::new(json!({"audiences": ["app", "other"]}));
        assert_login_outcome(&mut w, patch, ok, Reason::AzpMismatch);
    }
}

/// A login whose ID token carries `patch` completes (`ok`) or fails for `reason`.
fn assert_login_outcome(w: &mut World, patch: Value, ok: bool, reason: Reason) {
    let s = start_login(w, "/");
    let Decision::Call(_, pending) = callback(w, &s, &format!("code=c&state={}&iss=https%3A%2F%2Fidp.example.com", s.state)) else { panic!() };
    let token = w.id_token(&s.nonce, patch.clone());
    let d = w.respond(pending, &token_response(&token, None));
    if ok {
        assert!(matches!(d, Decision::Respond(ref r) if r.status == 302), "{patch}: {d:?}");
    } else {
        assert!(w.events.contains(&Event::LoginFailed(reason)), "{patch}: {:?}", w.events);
    }
}

#[test]
fn id_token_failures_never_make_a_session() {
    let cases: Vec<(&str, Value, Reason)> = vec![
        ("nonce changed", json!({"nonce": "other"}), Reason::NonceMismatch),
        ("nonce missing", json!({"nonce": null}), Reason::NonceMissing),
        ("other audience", json!({"aud": "someone-else"}), Reason::AudMismatch),
        ("expired", json!({"exp": T0 - 600}), Reason::Expired),
        ("no exp", json!({"exp": null}), Reason::ExpMissing),
        ("no sub", json!({"sub": null}), Reason::SubMissing),
        ("no iat", json!({"iat": null}), Reason::IatMissing),
        ("other issuer", json!({"iss": "https://evil.example.com"}), Reason::IssMismatch),
        ("an untrusted audience without azp", json!({"aud": ["app", "other"]}), Reason::AudMismatch),
        ("an untrusted audience beside azp", json!({"aud": ["app", "other"], "azp": "app"}), Reason::AudMismatch),
    ];
    for (name, patch, reason) in cases {
        let mut w = World::new(json!({}));
        let s = start_login(&mut w, "/");
        let Decision::Call(_, pending) = callback(&mut w, &s, &format!("code=c&state={}&iss=https%3A%2F%2Fidp.example.com", s.state)) else {
            panic!("{name}")
        };
        let token = w.id_token(&s.nonce, patch);
        let r = respond(w.respond(pending, &token_response(&token, None)));
        assert_eq!(r.status, 400, "{name}: a failed login is no HTTP authentication challenge (401 needs WWW-Authenticate)");
        assert!(w.events.contains(&Event::LoginFailed(reason)), "{name}: {:?}", w.events);
        assert!(set_cookies(&r.headers).iter().all(|(_, v)| v.is_empty()), "{name}");
    }
    // Expired only by less than the clock skew: it validates, but a session of it would be
    // dead on the next request and send the browser round to the IdP for another.
    let mut w = World::new(json!({}));
    let s = start_login(&mut w, "/");
    let Decision::Call(_, pending) = callback(&mut w, &s, &format!("code=c&state={}&iss=https%3A%2F%2Fidp.example.com", s.state)) else { panic!() };
    let token = w.id_token(&s.nonce, json!({"exp": T0 - 30}));
    let r = respond(w.respond(pending, &token_response(&token, None)));
    assert_eq!(r.status, 502);
    assert!(w.events.contains(&Event::LoginFailed(Reason::Expired)), "{:?}", w.events);
    assert!(set_cookies(&r.headers).iter().all(|(n, v)| v.is_empty() || n.contains("_tx.")), "no session");
    // Signature attacks: alg none, a token signed by another key, HS256 with the public key.
    let mut w = World::new(json!({}));
    let s = start_login(&mut w, "/");
    let Decision::Call(_, pending) = callback(&mut w, &s, &format!("code=c&state={}&iss=https%3A%2F%2Fidp.example.com", s.state)) else { panic!() };
    let claims = json!({"iss": ISSUER, "sub": "alice", "aud": "app", "exp": T0 + 300, "iat": T0, "nonce": s.nonce});
    let none = format!(
        "{}.{}.",
        b64::url_encode(br#"{"alg":"none"}"#),
        b64::url_encode(claims.to_string().as_bytes())
    );
    let r = respond(w.respond(pending, &token_response(&none, None)));
    assert!(r.status >= 400);

    // An access token (at+jwt) with otherwise valid ID token claims is not an ID token.
    let mut w = World::new(json!({}));
    let s = start_login(&mut w, "/");
    let Decision::Call(_, pending) = callback(&mut w, &s, &format!("code=c&state={}&iss=https%3A%2F%2Fidp.example.com", s.state)) else { panic!() };
    let claims = json!({"iss": ISSUER, "sub": "alice", "aud": "app", "exp": T0 + 300, "iat": T0, "nonce": s.nonce});
    let at = w.idp.sign_with_header(&claims, json!({"alg": "RS256", "kid": "k1", "typ": "at+jwt"}));
    let r = respond(w.respond(pending, &token_response(&at, None)));
    assert_eq!(r.status, 400);
    assert!(w.events.contains(&Event::LoginFailed(Reason::TokenKindRefused)), "{:?}", w.events);
}

#[test]
fn only_a_get_completes_the_callback() {
    let mut w = World::new(json!({}));
    let s = start_login(&mut w, "/p");
    let cookie = cookie_header(&s.cookies);
    let query = format!("code=c&state={}&iss=https%3A%2F%2Fidp.example.com", s.state);
    for method in ["POST", "HEAD", "PUT", "OPTIONS"] {
        let r = respond(w.request(&req(method, &format!("/oauth2/callback?{query}"), &[HTML, ("cookie", &cookie)])));
        assert_eq!((r.status, header(&r, "allow")), (405, Some("GET")), "{method}");
        assert!(set_cookies(&r.headers).is_empty(), "{method}: the login is left as it was");
    }
    assert!(matches!(callback(&mut w, &s, &query), Decision::Call(..)), "the login is not spent");
}

#[test]
fn a_callback_answered_twice_never_exchanges_again_and_sends_the_browser_on() {
    // The browser that started the login reloads while the first answer is on its way.
    let mut w = World::new(json!({}));
    let s = start_login(&mut w, "/deep?x=1");
    let q = format!("code=c&state={}&iss=https%3A%2F%2Fidp.example.com", s.state);
    assert!(matches!(callback(&mut w, &s, &q), Decision::Call(..)));
    let r = respond(callback(&mut w, &s, &q));
    assert!(w.events.contains(&Event::LoginFailed(Reason::StateReplayed)));
    assert_eq!(r.status, 302, "a new login, not an error page");
    let loc = header(&r, "location").unwrap();
    let new_state = Query::parse(loc.split_once('?').unwrap().1).single("state").unwrap().to_string();
    assert!(loc.starts_with("https://idp.example.com/auth?") && new_state != s.state, "{loc}");
    let jar = set_cookies(&r.headers);
    assert!(jar.iter().any(|(n, v)| *n == s.cookies[0].0 && v.is_empty()), "the spent login cookie goes: {jar:?}");
    // The new login returns to the same page.
    let fresh: Vec<(String, String)> = jar.into_iter().filter(|(_, v)| !v.is_empty()).collect();
    let again = Started { state: new_state.clone(), nonce: String::new(), challenge: String::new(), cookies: fresh };
    assert!(matches!(callback(&mut w, &again, &format!("code=c2&state={new_state}&iss=https%3A%2F%2Fidp.example.com")), Decision::Call(..)));

    // Signed in by now (the first answer did arrive): straight to the page.
    let mut w = World::new(json!({}));
    let session = login(&mut w, json!({}), None);
    let s = start_login(&mut w, "/other");
    let q = format!("code=c&state={}&iss=https%3A%2F%2Fidp.example.com", s.state);
    assert!(matches!(callback(&mut w, &s, &q), Decision::Call(..)));
    let both: Vec<(String, String)> = s.cookies.iter().chain(&session).cloned().collect();
    let twice = Started { state: s.state.clone(), nonce: String::new(), challenge: String::new(), cookies: both };
    let r = respond(callback(&mut w, &twice, &q));
    assert_eq!((r.status, header(&r, "location")), (302, Some("/other")));

    // Another browser (no login cookie for the state) gets the refusal page.
    let mut w = World::new(json!({}));
    let s = start_login(&mut w, "/");
    let q = format!("code=c&state={}&iss=https%3A%2F%2Fidp.example.com", s.state);
    assert!(matches!(callback(&mut w, &s, &q), Decision::Call(..)));
    let r = respond(w.request(&req("GET", &format!("/oauth2/callback?{q}"), &[HTML])));
    assert_eq!(r.status, 400);
}

#[test]
fn a_failed_login_offers_to_start_again_to_the_same_page() {
    let mut w = World::new(json!({}));
    let s = start_login(&mut w, "/deep?x=1");
    let r = respond(callback(&mut w, &s, &format!("error=access_denied&state={}&iss=https%3A%2F%2Fidp.example.com", s.state)));
    assert_eq!(r.status, 403);
    assert!(r.body.contains("href=\"/oauth2/login?target_link_uri=%2Fdeep%3Fx%3D1\""), "{}", r.body);
    // Before the login cookie opened, nothing is known of the page: the site's root.
    let r = respond(callback(&mut w, &s, "code=c&state=forged&iss=https%3A%2F%2Fidp.example.com"));
    assert!(r.body.contains("href=\"/\""), "{}", r.body);
}

#[test]
fn return_paths_stay_on_this_origin() {
    for (path, want) in [("//evil.example/x", "/"), ("/ok?a=b", "/ok?a=b")] {
        let mut w = World::new(json!({}));
        let s = start_login(&mut w, path);
        let Decision::Call(_, pending) = callback(&mut w, &s, &format!("code=c&state={}&iss=https%3A%2F%2Fidp.example.com", s.state)) else { panic!() };
        let token = w.id_token(&s.nonce, json!({}));
        let r = respond(w.respond(pending, &token_response(&token, None)));
        assert_eq!(header(&r, "location"), Some(want), "{path}");
    }
}

#[test]
fn tampered_or_foreign_session_reads_as_absent() {
    let mut w = World::new(json!({}));
    let mut session = login(&mut w, json!({}), None);
    let v = &mut session[0].1;
    let mid = v.len() / 2;
    let c = if &v[mid..mid + 1] == "A" { "B" } else { "A" };
    v.replace_range(mid..mid + 1, c);
    let r = respond(w.request(&req_owned("GET", "/", &with_cookies(&session, &[HTML]))));
    assert_eq!(r.status, 302);
    assert!(w.events.contains(&Event::SessionRejected(Reason::SessionInvalid)));
    let api = respond(w.request(&req_owned("GET", "/", &with_cookies(&session, &[("accept", "application/json")]))));
    assert_eq!(api.status, 401);

    // A session of another client (same secret) does not open here.
    let mut other = World::new(json!({"client_id": "other", "audiences": ["app"]}));
    let foreign = login(&mut World::new(json!({})), json!({}), None);
    let r = respond(other.request(&req_owned("GET", "/", &with_cookies(&foreign, &[HTML]))));
    assert_eq!(r.status, 302);
}

#[test]
fn the_upstream_gets_every_cookie_but_the_filters_as_sent() {
    let mut w = World::new(json!({}));
    let session = login(&mut w, json!({}), None);
    let ours = cookie_header(&session);
    let cases: &[(String, CookieHeader)] = &[
        (ours.clone(), CookieHeader::Remove),
        (format!("{ours}; oidc_edge_tx.AAAA=pending"), CookieHeader::Remove),
        // Segments that do not parse as a cookie are the client's: passed on as written.
        (format!("{ours};"), CookieHeader::Remove),
        (format!("{ours}; flag"), CookieHeader::Replace(b"flag".to_vec())),
        (format!("app=\"q 1\"; {ours}; b=2"), CookieHeader::Replace(b"app=\"q 1\"; b=2".to_vec())),
        (format!("{ours}; app=1"), CookieHeader::Replace(b"app=1".to_vec())),
    ];
    for (cookie, expected) in cases {
        let f = forward(w.request(&req_owned("GET", "/x", &[("cookie".to_string(), cookie.clone())])));
        assert_eq!(&f.cookie, expected, "{cookie}");
    }
    let f = forward(w.request(&req_owned("GET", "/x", &[("cookie".to_string(), ours.clone()), ("cookie".to_string(), "b=2".into())])));
    assert_eq!(f.cookie, CookieHeader::Replace(b"b=2".to_vec()), "a second Cookie header");
    // Past the parse's bound of cookies, the filter's own are still found and kept back.
    let theirs = (0..300).map(|i| format!("c{i}=1")).collect::<Vec<_>>().join("; ");
    let token = w.idp.sign(&json!({"iss": ISSUER, "sub": "bob", "aud": "app", "exp": T0 + 300}));
    let bearer = format!("Bearer {token}");
    let f = forward(w.request(&req("GET", "/x", &[("authorization", &bearer), ("cookie", &format!("{theirs}; oidc_edge_tx.AAAA=secret"))])));
    assert_eq!(f.cookie, CookieHeader::Replace(theirs.into_bytes()), "the 301st cookie, ours, stays out");
}

#[test]
fn large_sessions_are_split_and_stale_chunks_expired() {
    let mut w = World::new(json!({}));
    let big = "x".repeat(20_000);
    let session = login(&mut w, json!({"big": big}), None);
    assert!(session.len() >= 6, "a 20 KB token needs several cookies: {}", session.len());
    assert!(session.iter().all(|(n, v)| n.len() + v.len() < 4000));
    let f = forward(w.request(&req_owned("GET", "/", &with_cookies(&session, &[]))));
    assert!(f.add_headers.iter().any(|(n, v)| n == "authorization" && v.len() > 20_000));
    assert_eq!(f.cookie, CookieHeader::Remove);

    // A new, smaller login in the same browser expires the old chunks.
    let s = start_login(&mut w, "/");
    let mut cookies = session.clone();
    cookies.extend(s.cookies.clone());
    let cookie = cookie_header(&cookies);
    let d = w.request(&req("GET", &format!("/oauth2/callback?code=c&state={}&iss=https%3A%2F%2Fidp.example.com", s.state), &[("cookie", &cookie)]));
    let Decision::Call(_, pending) = d else { panic!("{d:?}") };
    let token = w.id_token(&s.nonce, json!({}));
    let r = respond(w.respond(pending, &token_response(&token, None)));
    let sc = set_cookies(&r.headers);
    let cleared: Vec<&String> = sc.iter().filter(|(_, v)| v.is_empty()).map(|(n, _)| n).collect();
    for (old, _) in &session {
        assert!(cleared.contains(&old), "{old} should be expired");
    }
    assert!(sc.iter().any(|(n, v)| n == "oidc_edge" && !v.is_empty()));
}

#[test]
fn bearer_tokens() {
    let mut w = World::new(json!({"claim_headers": {"X-Groups": "groups"}}));
    let good = w.idp.sign(&json!({"iss": ISSUER, "sub": "svc", "aud": "app", "exp": T0 + 300, "groups": ["a", "b"]}));
    let auth = format!("Bearer {good}");
    let f = forward(w.request(&req("GET", "/api", &[("authorization", &auth), ("x-groups", "forged")])));
    assert!(f.remove_headers.contains(&"x-groups".to_string()));
    assert!(f.add_headers.contains(&("x-groups".to_string(), "a,b".to_string())));
    assert_kept_authorization(&f);
    assert!(f.add_headers.contains(&("x-auth-request-user".to_string(), "svc".to_string())));
    // The second time comes from the cache.
    forward(w.request(&req("GET", "/api", &[("authorization", &auth)])));
    assert_eq!(w.engine.cache(0, |c| c.len()), Some(1));

    // Only `Bearer <token>` exactly, in one header, goes on as sent; any other spelling
    // the filter accepts is rewritten to it.
    for sent in [format!("bearer {good}"), format!("Bearer  {good}"), format!(" Bearer {good} "), format!("BEARER {good}")] {
        let f = forward(w.request(&req("GET", "/api", &[("authorization", &sent)])));
        assert!(f.add_headers.contains(&("authorization".to_string(), auth.clone())), "{sent:?}: {f:?}");
    }
    let f = forward(w.request(&req("GET", "/api", &[("authorization", &auth), ("authorization", "Basic eA==")])));
    assert!(f.add_headers.contains(&("authorization".to_string(), auth.clone())), "two Authorization headers: {f:?}");
    assert!(f.remove_headers.contains(&"authorization".to_string()), "{f:?}");

    let table: Vec<(&str, String, Reason)> = vec![
        ("garbage", "junk".into(), Reason::TokenMalformed),
        ("expired", w.idp.sign(&json!({"iss": ISSUER, "sub": "s", "aud": "app", "exp": T0 - 120})), Reason::Expired),
        ("wrong aud", w.idp.sign(&json!({"iss": ISSUER, "sub": "s", "aud": "x", "exp": T0 + 60})), Reason::AudMismatch),
        ("unknown issuer", w.idp.sign(&json!({"iss": "https://evil", "sub": "s", "aud": "app", "exp": T0 + 60})), Reason::IssMismatch),
        (
            "bad signature",
            {
                let t = w.idp.sign(&json!({"iss": ISSUER, "sub": "s", "aud": "app", "exp": T0 + 60}));
                let (rest, sig) = t.rsplit_once('.').unwrap();
                let mut s = sig.to_string();
                let c = if s.starts_with('A') { "B" } else { "A" };
                s.replace_range(0..1, c);
                format!("{rest}.{s}")
            },
            Reason::SignatureInvalid,
        ),
    ];
    for (name, token, reason) in table {
        let r = respond(w.request(&req("GET", "/api", &[("authorization", &format!("Bearer {token}")), HTML])));
        assert_eq!(r.status, 401, "{name}: never a redirect for a bad bearer token");
        let www = header(&r, "www-authenticate").unwrap();
        assert!(www.contains("error=\"invalid_token\""), "{name}: {www}");
        assert!(w.events.contains(&Event::TokenRejected(reason)), "{name}: {:?}", w.events);
    }
}

/// RFC 8725 3.11-3.12: other JWTs the IdP signs for this client never pass as bearer
/// tokens, however good their signature and claims.
#[test]
fn bearer_tokens_of_another_kind_are_refused() {
    let mut w = World::new(json!({}));
    let claims = json!({"iss": ISSUER, "sub": "svc", "aud": "app", "exp": T0 + 300, "iat": T0});
    let typed = |typ: &str| json!({"alg": "RS256", "kid": "k1", "typ": typ});
    for typ in ["JWT", "jwt", "JOSE", "at+jwt", "application/at+jwt", "Application/AT+JWT"] {
        let token = w.idp.sign_with_header(&claims, typed(typ));
        forward(w.request(&req("GET", "/api", &[("authorization", &format!("Bearer {token}"))])));
    }
    let mut logout = claims.clone();
    logout["events"] = json!({"http://schemas.openid.net/event/backchannel-logout": {}});
    logout["jti"] = json!("j1");
    for (name, token) in [
        ("logout token", w.idp.sign_with_header(&logout, typed("logout+jwt"))),
        ("logout token typed JWT", w.idp.sign_with_header(&logout, typed("JWT"))),
        ("untyped security event", w.idp.sign(&logout)),
        ("DPoP proof", w.idp.sign_with_header(&claims, typed("dpop+jwt"))),
        ("another media type", w.idp.sign_with_header(&claims, typed("application/secevent+jwt"))),
    ] {
        let r = respond(w.request(&req("GET", "/api", &[("authorization", &format!("Bearer {token}"))])));
        assert_eq!(r.status, 401, "{name}");
        assert!(w.events.contains(&Event::TokenRejected(Reason::TokenKindRefused)), "{name}: {:?}", w.events);
        assert!(header(&r, "www-authenticate").unwrap().contains("error=\"invalid_token\""), "{name}");
    }
}

#[test]
fn bearer_tokens_with_several_audiences_need_azp() {
    let mut w = World::new(json!({}));
    let claims = |extra: Value| {
        let mut c = json!({"iss": ISSUER, "sub": "svc", "aud": ["app", "other"], "exp": T0 + 300});
        for (k, v) in extra.as_object().unwrap() {
            c[k] = v.clone();
        }
        c
    };
    for (name, extra, reason) in [
        ("no azp", json!({}), Reason::AzpMismatch),
        ("foreign azp", json!({"azp": "other"}), Reason::AzpMismatch),
    ] {
        let token = w.idp.sign(&claims(extra));
        let r = respond(w.request(&req("GET", "/api", &[("authorization", &format!("Bearer {token}"))])));
        assert_eq!(r.status, 401, "{name}");
        assert!(w.events.contains(&Event::TokenRejected(reason)), "{name}: {:?}", w.events);
    }
    let ok = w.idp.sign(&claims(json!({"azp": "app"})));
    forward(w.request(&req("GET", "/api", &[("authorization", &format!("Bearer {ok}"))])));
    // One audience: `azp` names whoever asked for the token, as access tokens do.
    let single = w.idp.sign(&json!({"iss": ISSUER, "sub": "svc", "aud": "app", "azp": "cli", "exp": T0 + 300}));
    forward(w.request(&req("GET", "/api", &[("authorization", &format!("Bearer {single}"))])));
}

#[test]
fn unknown_kid_waits_for_one_refetch_then_passes() {
    let mut w = World::new(json!({}));
    let rotated = Idp::new("idp-keys-rotated.json");
    let token = rotated.sign(&json!({"iss": ISSUER, "sub": "s", "aud": "app", "exp": T0 + 300}));
    let auth = format!("Bearer {token}");
    let Decision::Wait(wait) = w.request(&req("GET", "/api", &[("authorization", &auth)])) else { panic!("expected a wait") };
    assert!(w.events.contains(&Event::KidRefetchRequested));
    // A flood of other unknown kids is coalesced into the same refetch.
    for i in 0..20 {
        let forged = rotated.sign_with_header(&json!({"iss": ISSUER, "sub": "s", "aud": "app", "exp": T0 + 300}), json!({"alg": "RS256", "kid": format!("random-{i}")}));
        let d = w.request(&req("GET", "/api", &[("authorization", &format!("Bearer {forged}"))]));
        assert!(matches!(d, Decision::Wait(_)), "coalesced while the first refetch is pending");
    }
    // The root ticks: one fetch, with both keys.
    let cfg = w.engine.settings.providers[0].clone();
    let keys = w.engine.provider_keys[0].clone();
    let r = Refresher { provider: &cfg, keys: &keys, me: "vm" };
    let plan = r.poll(&mut w.store, w.now).expect("refetch due");
    assert_eq!(plan.trigger, "unknown_kid");
    assert!(Refresher { provider: &cfg, keys: &keys, me: "vm2" }.poll(&mut w.store, w.now).is_none(), "one VM fetches");
    let body = json!({"keys": [w.idp.public.clone(), rotated.public.clone()]});
    r.complete(&mut w.store, &plan, Some(&CallResponse { status: 200, headers: vec![], body: body.to_string().into_bytes() }), w.now, 0);
    w.sync();
    assert_ne!(w.views[0].generation, wait.generation);
    let f = forward(w.step(|e, cx| e.on_keys(wait.pending, cx)));
    assert_kept_authorization(&f);
    // Within the cooldown, another unknown kid is refused at once, without a fetch.
    w.now += 5;
    let forged = rotated.sign_with_header(&json!({"iss": ISSUER, "sub": "s", "aud": "app", "exp": T0 + 300}), json!({"alg": "RS256", "kid": "new"}));
    let r = respond(w.request(&req("GET", "/api", &[("authorization", &format!("Bearer {forged}"))])));
    assert_eq!(r.status, 401);
    assert!(Refresher { provider: &cfg, keys: &keys, me: "vm" }.poll(&mut w.store, w.now).is_none());
}

#[test]
fn an_idp_without_kids_is_refetched_when_no_key_verifies() {
    // The IdP publishes its key without a `kid`; then it rotates to another kid-less key.
    let mut w = World::new(json!({}));
    let mut old = w.idp.public.clone();
    old.as_object_mut().unwrap().remove("kid");
    w.now += 3600;
    refetch_scheduled(&mut w, json!([old]));
    let rotated = Idp::new("idp-keys-rotated.json");
    let claims = json!({"iss": ISSUER, "sub": "s", "aud": "app", "exp": w.now + 300});
    let token = rotated.sign_with_header(&claims, json!({"alg": "RS256"}));
    let auth = format!("Bearer {token}");
    let Decision::Wait(wait) = w.request(&req("GET", "/api", &[("authorization", &auth)])) else { panic!("expected a wait for a refetch") };
    let mut new = rotated.public.clone();
    new.as_object_mut().unwrap().remove("kid");
    refetch(&mut w, json!([new]));
    forward(w.step(|e, cx| e.on_keys(wait.pending, cx)));
    // A bad signature within the cooldown is refused at once, as signature_invalid.
    let forged = w.idp.sign_with_header(&claims, json!({"alg": "RS256"}));
    let r = respond(w.request(&req("GET", "/api", &[("authorization", &format!("Bearer {forged}"))])));
    assert_eq!(r.status, 401);
    assert!(w.events.contains(&Event::TokenRejected(Reason::SignatureInvalid)));
}

/// Runs the scheduled JWKS refresh of provider 0 with `keys`.
fn refetch_scheduled(w: &mut World, keys: Value) {
    let cfg = w.engine.settings.providers[0].clone();
    let provider_keys = w.engine.provider_keys[0].clone();
    let r = Refresher { provider: &cfg, keys: &provider_keys, me: "vm" };
    let plan = r.poll(&mut w.store, w.now).expect("refresh due");
    let body = json!({ "keys": keys });
    assert!(r.complete(&mut w.store, &plan, Some(&CallResponse { status: 200, headers: vec![], body: body.to_string().into_bytes() }), w.now, 0).succeeded());
    w.sync();
}

#[test]
fn a_waiting_request_is_decided_when_the_refetch_answers_not_at_the_next_tick() {
    let mut w = World::new(json!({}));
    let rotated = Idp::new("idp-keys-rotated.json");
    let token = rotated.sign(&json!({"iss": ISSUER, "sub": "s", "aud": "app", "exp": T0 + 300}));
    let auth = format!("Bearer {token}");
    let Decision::Wait(wait) = w.request(&req("GET", "/api", &[("authorization", &auth)])) else { panic!("expected a wait") };
    // The root context ticks while the IdP has not answered yet: it syncs its views,
    // dispatches the refetch, syncs again. The waiting request must not be released
    // (the shell releases it when the generation moves).
    w.sync();
    let cfg = w.engine.settings.providers[0].clone();
    let keys = w.engine.provider_keys[0].clone();
    let r = Refresher { provider: &cfg, keys: &keys, me: "vm" };
    let plan = r.poll(&mut w.store, w.now).expect("refetch due");
    w.sync();
    assert_eq!(w.views[0].generation, wait.generation, "released before the keys arrived");
    // The answer arrives a moment later: now it is released, and passes.
    w.now += 2;
    let body = json!({"keys": [w.idp.public.clone(), rotated.public.clone()]});
    r.complete(&mut w.store, &plan, Some(&CallResponse { status: 200, headers: vec![], body: body.to_string().into_bytes() }), w.now, 0);
    w.sync();
    assert_ne!(w.views[0].generation, wait.generation);
    let f = forward(w.step(|e, cx| e.on_keys(wait.pending, cx)));
    assert_kept_authorization(&f);
}

/// The root's tick after an unknown-kid wait: the refetch, answered with `keys`.
fn refetch(w: &mut World, keys: Value) {
    let cfg = w.engine.settings.providers[0].clone();
    let provider_keys = w.engine.provider_keys[0].clone();
    let r = Refresher { provider: &cfg, keys: &provider_keys, me: "vm" };
    let plan = r.poll(&mut w.store, w.now).expect("refetch due");
    assert_eq!(plan.trigger, "unknown_kid");
    let body = json!({ "keys": keys });
    assert!(r.complete(&mut w.store, &plan, Some(&CallResponse { status: 200, headers: vec![], body: body.to_string().into_bytes() }), w.now, 0).succeeded());
    w.sync();
}

/// Found by the flow fuzz target: with `userinfo` on, a login whose ID token names a key
/// the filter does not know yet (the IdP just rotated) waited for the refetch and then
/// asked for userinfo from `on_keys`, which the shell cannot dispatch for a released
/// request: the user got a 500. Userinfo is now fetched before the wait.
#[test]
fn userinfo_login_during_a_key_rotation_calls_out_only_before_the_wait() {
    let mut w = World::new(json!({"userinfo": true, "claim_headers": {"X-Team": "team"}}));
    let rotated = Idp::new("idp-keys-rotated.json");
    let s = start_login(&mut w, "/p");
    let d = callback(&mut w, &s, &format!("code=c&state={}&iss=https%3A%2F%2Fidp.example.com", s.state));
    let Decision::Call(_, pending) = d else { panic!("expected the code exchange, got {d:?}") };
    let claims = json!({"iss": ISSUER, "sub": "alice", "aud": "app", "exp": T0 + 300, "iat": T0, "nonce": s.nonce});
    let d = w.respond(pending, &token_response(&rotated.sign(&claims), None));
    let Decision::Call(call, pending) = d else { panic!("expected userinfo before the wait, got {d:?}") };
    assert_eq!(call.endpoint.url(), "https://idp.example.com/userinfo");
    assert!(matches!(pending, Pending::Userinfo(_)));
    let info = CallResponse { status: 200, headers: vec![], body: br#"{"sub":"alice","team":"blue"}"#.to_vec() };
    let Decision::Wait(wait) = w.respond(pending, &info) else { panic!("expected the wait for the new key") };
    assert!(w.events.contains(&Event::KidRefetchRequested));
    let keys = json!([w.idp.public.clone(), rotated.public.clone()]);
    refetch(&mut w, keys);
    let r = respond(w.step(|e, cx| e.on_keys(wait.pending, cx)));
    assert_eq!(r.status, 302, "{}", r.body);
    assert!(w.events.contains(&Event::LoginCompleted));
    let session: Vec<(String, String)> = set_cookies(&r.headers).into_iter().filter(|(n, v)| n == "oidc_edge" && !v.is_empty()).collect();
    let f = forward(w.request(&req_owned("GET", "/p", &with_cookies(&session, &[HTML]))));
    assert!(f.add_headers.contains(&("x-team".to_string(), "blue".to_string())), "userinfo's claims are in the session: {f:?}");

    // Userinfo whose `sub` is someone else still fails once the ID token validated.
    let mut w = World::new(json!({"userinfo": true}));
    let s = start_login(&mut w, "/p");
    let Decision::Call(_, pending) = callback(&mut w, &s, &format!("code=c&state={}&iss=https%3A%2F%2Fidp.example.com", s.state)) else { panic!() };
    let claims = json!({"iss": ISSUER, "sub": "alice", "aud": "app", "exp": T0 + 300, "iat": T0, "nonce": s.nonce});
    let Decision::Call(_, pending) = w.respond(pending, &token_response(&rotated.sign(&claims), None)) else { panic!() };
    let info = CallResponse { status: 200, headers: vec![], body: br#"{"sub":"mallory"}"#.to_vec() };
    let Decision::Wait(wait) = w.respond(pending, &info) else { panic!() };
    let keys = json!([w.idp.public.clone(), rotated.public.clone()]);
    refetch(&mut w, keys);
    let r = respond(w.step(|e, cx| e.on_keys(wait.pending, cx)));
    assert_eq!(r.status, 400);
    assert!(w.events.contains(&Event::LoginFailed(Reason::ClaimInvalid)));
}

/// Found by the flow fuzz target: a bearer token with an unknown kid, beside a session
/// due for a refresh. After the wait the token still did not verify, the session was
/// checked, and its refresh grant was started from `on_keys`, which the shell cannot
/// dispatch (a 500). A released request now uses the session as it is while its token
/// is valid, and the next request refreshes it.
#[test]
fn a_request_released_after_a_key_wait_never_starts_a_refresh() {
    let rotated = Idp::new("idp-keys-rotated.json");
    for (elapsed, live) in [(250, true), (400, false)] {
        let mut w = World::new(json!({}));
        let session = login(&mut w, json!({}), Some("rt-1"));
        w.now += elapsed; // the ID token expires at +300; refresh_before_expiry is 60 s
        let token = rotated.sign(&json!({"iss": ISSUER, "sub": "s", "aud": "app", "exp": w.now + 300}));
        let h = with_cookies(&session, &[("authorization", &format!("Bearer {token}")), ("accept", "application/json")]);
        let request = req_owned("GET", "/api", &h);
        let Decision::Wait(wait) = w.request(&request) else { panic!("expected a wait") };
        let keys = json!([w.idp.public.clone()]);
        refetch(&mut w, keys); // the key never comes
        w.events.clear();
        match w.step(|e, cx| e.on_keys(wait.pending, cx)) {
            Decision::Forward(f) if live => {
                assert!(w.events.contains(&Event::SessionAccepted), "{:?}", w.events);
                assert!(f.response_headers.is_empty(), "no refresh happened");
            }
            Decision::Respond(r) if !live => {
                assert_eq!(r.status, 401);
                assert!(w.events.contains(&Event::TokenRejected(Reason::KidUnknown)), "{:?}", w.events);
            }
            other => panic!("released after {elapsed} s: {other:?} ({:?})", w.events),
        }
        // The next request is not released: it refreshes as usual.
        let d = w.request(&req_owned("GET", "/api", &with_cookies(&session, &[("accept", "application/json")])));
        assert!(matches!(d, Decision::Call(_, Pending::Refresh(_))), "{d:?}");
    }
}

#[test]
fn unknown_kid_with_implausible_claims_never_refetches() {
    let mut w = World::new(json!({}));
    let rotated = Idp::new("idp-keys-rotated.json");
    for claims in [
        json!({"iss": ISSUER, "sub": "s", "aud": "app", "exp": T0 - 3600}),
        json!({"iss": ISSUER, "sub": "s", "aud": "nope", "exp": T0 + 60}),
    ] {
        let token = rotated.sign(&claims);
        let r = respond(w.request(&req("GET", "/api", &[("authorization", &format!("Bearer {token}"))])));
        assert_eq!(r.status, 401);
    }
    assert!(!w.events.contains(&Event::KidRefetchRequested));
}

#[test]
fn require_rules_and_claim_map() {
    let mut w = World::new(json!({
        "claim_map": {"groups": {"g-admins": "admins"}},
        "require": [{"claim": "groups", "one_of": ["admins"]}],
        "claim_headers": {"X-Groups": "groups"},
    }));
    let ok = w.idp.sign(&json!({"iss": ISSUER, "sub": "a", "aud": "app", "exp": T0 + 60, "groups": ["g-admins"]}));
    let f = forward(w.request(&req("GET", "/", &[("authorization", &format!("Bearer {ok}"))])));
    assert!(f.add_headers.contains(&("x-groups".to_string(), "admins".to_string())));
    let no = w.idp.sign(&json!({"iss": ISSUER, "sub": "b", "aud": "app", "exp": T0 + 60, "groups": ["devs"]}));
    let r = respond(w.request(&req("GET", "/", &[("authorization", &format!("Bearer {no}")), ("accept", "application/json")])));
    assert_eq!(r.status, 403);
    // RFC 6750 3.1: a valid token whose claims are not enough is insufficient_scope.
    assert!(r.body.contains("\"error\":\"insufficient_scope\""), "{}", r.body);
    let challenge = header(&r, "www-authenticate").unwrap_or_default();
    assert!(challenge.starts_with("Bearer ") && challenge.contains("error=\"insufficient_scope\""), "{challenge}");
    let session = login(&mut w, json!({"groups": ["devs"]}), None);
    let r = respond(w.request(&req_owned("GET", "/", &with_cookies(&session, &[HTML]))));
    assert_eq!(r.status, 403);
    assert!(r.body.contains("Access denied"));
    assert!(header(&r, "www-authenticate").is_none(), "a session is not challenged for a bearer token");
    let r = respond(w.request(&req_owned("GET", "/", &with_cookies(&session, &[("accept", "application/json")]))));
    assert_eq!(r.status, 403);
    assert!(r.body.contains("\"error\":\"forbidden\""), "{}", r.body);
    assert!(header(&r, "www-authenticate").is_none());
}

#[test]
fn pass_through_and_api_paths() {
    let mut w = World::new(json!({"pass_through_paths": ["/healthz"], "api_paths": ["/api/"]}));
    let f = forward(w.request(&req("GET", "/healthz", &[("x-auth-request-user", "forged")])));
    assert!(f.remove_headers.contains(&"x-auth-request-user".to_string()));
    assert!(f.add_headers.is_empty() && f.set_headers.is_empty());
    let r = respond(w.request(&req("GET", "/api/items", &[HTML])));
    assert_eq!(r.status, 401, "api paths never redirect");
}

#[test]
fn underscore_copies_of_identity_headers_and_unused_subprotocol_tokens_never_go_upstream() {
    let mut w = World::new(json!({"claim_headers": {"X-Groups": "groups"}, "pass_through_paths": ["/public/"]}));
    let token = w.idp.sign(&json!({"iss": ISSUER, "sub": "alice", "aud": "app", "exp": T0 + 300}));
    let auth = format!("Bearer {token}");
    let forged = [("x_groups", "admins"), ("x_auth_request_user", "root"), ("X_Auth_Request_Email", "root@evil"), ("x_other", "kept")];
    for (path, with_auth) in [("/app", true), ("/public/x", false)] {
        let mut headers = forged.to_vec();
        if with_auth {
            headers.push(("authorization", &auth));
        }
        let f = forward(w.request(&req("GET", path, &headers)));
        for name in ["x_groups", "x_auth_request_user", "x_auth_request_email"] {
            assert!(f.remove_headers.iter().any(|r| r.eq_ignore_ascii_case(name)), "{path}: {name}: {f:?}");
        }
        assert!(!f.remove_headers.iter().any(|r| r == "x_other"), "{f:?}");
    }
    // A session or header credential wins; a subprotocol token beside it is never checked,
    // so it never reaches the application either.
    let other = w.idp.sign(&json!({"iss": ISSUER, "sub": "mallory", "aud": "app", "exp": T0 + 300}));
    let proto = format!("chat, base64url.bearer.authorization.k8s.io.{}", b64::url_encode(other.as_bytes()));
    let ws = [("connection", "Upgrade"), ("upgrade", "websocket")];
    let f = forward(w.request(&req("GET", "/ws", &[ws[0], ws[1], ("authorization", &auth), ("sec-websocket-protocol", &proto)])));
    assert!(f.set_headers.contains(&("sec-websocket-protocol".to_string(), "chat".to_string())), "{f:?}");
    let only = format!("base64url.bearer.authorization.k8s.io.{}", b64::url_encode(other.as_bytes()));
    let f = forward(w.request(&req("GET", "/public/ws", &[ws[0], ws[1], ("sec-websocket-protocol", &only)])));
    assert!(f.remove_headers.contains(&"sec-websocket-protocol".to_string()), "{f:?}");
}

#[test]
fn rules_meet_the_path_as_an_application_may_read_it() {
    let mut w = World::new(json!({
        "pass_through_paths": ["/healthz", "/static/"],
        "routes": [{"path_prefix": "/admin", "require": [{"claim": "groups", "one_of": ["admins"]}]}],
    }));
    let api = ("accept", "application/json");
    for path in ["/healthz", "/healthz/live", "/static/app.js", "/static/my%20file.png"] {
        forward(w.request(&req("GET", path, &[api])));
    }
    for path in [
        "/healthz/../secret",
        "/healthz/..%2fsecret",
        "/healthz/%2e%2e/secret",
        "/static/../secret",
        "/static/%2e%2e/secret",
        "/static/%252e%252e/secret",
        "/static/..;/secret",
        "/static/..\\secret",
    ] {
        let r = respond(w.request(&req("GET", path, &[api])));
        assert_eq!(r.status, 401, "{path} is not exempt");
    }
    // A token outside the admins group: each spelling of /admin meets the /admin route's
    // rule, not the top level's (which has none).
    let token = w.idp.sign(&json!({"iss": ISSUER, "sub": "alice", "aud": "app", "exp": T0 + 300, "groups": ["devs"]}));
    let auth = format!("Bearer {token}");
    forward(w.request(&req("GET", "/x", &[("authorization", &auth)])));
    assert_eq!(respond(w.request(&req("GET", "/admin/x", &[("authorization", &auth), api]))).status, 403);
    // Other spellings read as /admin only once decoded: refused whichever route they meet.
    for path in ["//admin/x", "/./admin/x", "/x/../admin/x", "/%61dmin/x", "/admin;/x", "/admin%2fx", "/%2Fadmin/x"] {
        let r = respond(w.request(&req("GET", path, &[("authorization", &auth), api])));
        assert!(matches!(r.status, 400 | 403), "{path}: {}", r.status);
    }
}

#[test]
fn a_path_that_reads_as_two_routes_is_refused() {
    // Envoy routes `/admin/..%2fpublic` to the /admin backend (it keeps %2F); decoded, it
    // is /public, whose route lets everyone in.
    let mut w = World::new(json!({"routes": [
        {"path_prefix": "/admin", "require": [{"claim": "groups", "one_of": ["admins"]}]},
        {"path_prefix": "/public", "pass_through_paths": ["/*"]},
    ]}));
    let token = w.idp.sign(&json!({"iss": ISSUER, "sub": "alice", "aud": "app", "exp": T0 + 300, "groups": ["devs"]}));
    let auth = format!("Bearer {token}");
    for path in ["/admin/..%2fpublic", "/admin/x/..%2f..%2fpublic", "/admin/x/%2e%2e;/%2e%2e;/public", "/admin/x/..%5c..%5cpublic", "/admin/%252e%252e/public"] {
        for headers in [vec![("accept", "application/json")], vec![("accept", "application/json"), ("authorization", auth.as_str())]] {
            let r = respond(w.request(&req("GET", path, &headers)));
            assert_eq!(r.status, 400, "{path}");
            assert!(r.body.contains("path_ambiguous"), "{path}");
        }
    }
    // A name that only starts like a route's prefix: Envoy's `prefix: /admin` routes it to
    // /admin's backend, its `path_separated_prefix` to the default one.
    for path in ["/adminx", "/admin.json", "/admin./x", "/admin%20/x", "/publicx/secret", "/public-api"] {
        assert_eq!(respond(w.request(&req("GET", path, &[("accept", "application/json")]))).status, 400, "{path}");
    }
    // Decoding that stays within one route is fine: an API's encoded slash, a plain path.
    forward(w.request(&req("GET", "/public/files/a%2Fb", &[])));
    forward(w.request(&req("GET", "/public/x", &[])));
    assert_eq!(respond(w.request(&req("GET", "/admin/files/a%2Fb", &[("authorization", &auth)]))).status, 403);
}

#[test]
fn a_path_prefix_ending_in_a_slash_covers_only_what_is_below_it() {
    let mut w = World::new(json!({"pass_through_paths": ["/*"], "routes": [{"path_prefix": "/admin/", "pass_through_paths": []}]}));
    for path in ["/adminx", "/admin.json", "/admin"] {
        forward(w.request(&req("GET", path, &[("accept", "application/json")])));
    }
    assert_eq!(respond(w.request(&req("GET", "/admin/x", &[("accept", "application/json")]))).status, 401);
}

#[test]
fn a_host_spelled_with_a_port_or_trailing_dot_never_gets_another_routes_rules() {
    let mut w = World::new(json!({"routes": [{"host": "admin.example.com", "require": [{"claim": "sub", "one_of": ["root"]}]}]}));
    let token = w.idp.sign(&json!({"iss": ISSUER, "sub": "alice", "aud": "app", "exp": T0 + 300}));
    let auth = format!("Bearer {token}");
    // Envoy routes these spellings to another virtual host than `admin.example.com` unless
    // it strips them: the filter cannot tell which, so it refuses rather than guess.
    for (host, status) in [("admin.example.com", 403), ("ADMIN.example.com", 403), ("ADMIN.example.com:443", 400), ("admin.example.com.", 400), ("admin.example.com.:8443", 400)] {
        let r = RequestView::from_headers(vec![
            (":method".into(), b"GET".to_vec()),
            (":scheme".into(), b"https".to_vec()),
            (":authority".into(), host.as_bytes().to_vec()),
            (":path".into(), b"/x".to_vec()),
            ("authorization".into(), auth.as_bytes().to_vec()),
        ]);
        let resp = respond(w.request(&r));
        assert_eq!(resp.status, status, "{host}");
        assert!(status != 400 || resp.body.contains("host_ambiguous"), "{}", resp.body);
    }
}

#[test]
fn every_routes_claim_headers_are_stripped_on_every_route() {
    let mut w = World::new(json!({
        "claim_headers": {"X-User": "preferred_username"}, "pass_through_paths": ["/healthz"],
        "routes": [{"path_prefix": "/admin", "claim_headers": {"X-Groups": "groups"}}],
    }));
    let forged = [("x-groups", "admins"), ("x-user", "root")];
    let token = w.idp.sign(&json!({"iss": ISSUER, "sub": "bob", "aud": "app", "exp": T0 + 300, "groups": ["users"]}));
    let auth = format!("Bearer {token}");
    for path in ["/app", "/admin/x"] {
        let mut headers = forged.to_vec();
        headers.push(("authorization", &auth));
        let f = forward(w.request(&req("GET", path, &headers)));
        for (h, _) in forged {
            assert!(f.remove_headers.iter().any(|r| r == h), "{path}: {h} forged by the client is removed: {f:?}");
        }
    }
    let f = forward(w.request(&req("GET", "/healthz", &forged)));
    assert!(forged.iter().all(|(h, _)| f.remove_headers.iter().any(|r| r == h)), "{f:?}");
}

#[test]
fn refresh_before_expiry() {
    let mut w = World::new(json!({}));
    let session = login(&mut w, json!({}), Some("rt-1"));
    w.now += 250; // 50 s before the ID token's exp: inside refresh_before_expiry (60 s)
    let d = w.request(&req_owned("GET", "/x", &with_cookies(&session, &[HTML])));
    let Decision::Call(call, pending) = d else { panic!("expected a refresh, got {d:?}") };
    let body = String::from_utf8(call.body.unwrap()).unwrap();
    assert!(body.contains("grant_type=refresh_token") && body.contains("refresh_token=rt-1"));
    let new_id = w.id_token("ignored", json!({"nonce": null}));
    let f = forward(w.respond(pending, &token_response(&new_id, Some("rt-2"))));
    assert!(f.add_headers.contains(&("authorization".to_string(), format!("Bearer {new_id}"))));
    let fresh = set_cookies(&f.response_headers);
    assert!(fresh.iter().any(|(n, v)| n == "oidc_edge" && !v.is_empty()), "the session is re-sealed on the response");
    assert_eq!(f.response_replace_headers, vec![("cache-control".to_string(), "no-store".to_string())], "no shared cache keeps a session");
    assert!(w.events.contains(&Event::SessionRefreshed));

    // Another subject in the refreshed token is refused; the old one is still valid: kept.
    let other = login(&mut w, json!({}), Some("rt-3"));
    w.now += 250;
    let d = w.request(&req_owned("GET", "/x", &with_cookies(&other, &[HTML])));
    let Decision::Call(_, pending) = d else { panic!() };
    let wrong = w.id_token("n", json!({"sub": "mallory", "nonce": null}));
    let f = forward(w.respond(pending, &token_response(&wrong, None)));
    assert!(f.add_headers.iter().any(|(n, v)| n == "x-auth-request-user" && v == "alice"));

    // OIDC Core 12.2: a refreshed ID token about another authentication is refused too.
    for patch in [json!({"auth_time": 1}), json!({"aud": ["app", "other"], "azp": "app"}), json!({"azp": "app"})] {
        // `other` is trusted, so that only 12.2 (the login's audiences) refuses it.
        let mut w = World::new(json!({"audiences": ["app", "other"]}));
        let session = login(&mut w, json!({"auth_time": T0}), Some("rt-1"));
        w.now += 250;
        let d = w.request(&req_owned("GET", "/x", &with_cookies(&session, &[HTML])));
        let Decision::Call(_, pending) = d else { panic!() };
        let mut claims = patch.clone();
        claims["nonce"] = Value::Null;
        let f = forward(w.respond(pending, &token_response(&w.id_token("n", claims), None)));
        assert!(f.response_headers.is_empty(), "{patch}: the session is not re-sealed");
        assert!(w.events.contains(&Event::RefreshFailed(Reason::ClaimInvalid)), "{patch}");
    }

    // Expired and the refresh fails: a new login for browsers, 401 for API clients (each
    // after the previous attempt's lease on the refresh token has run out). `other` kept
    // its refresh token (its refresh was refused); `session`'s rt-1 is used up.
    w.now += 50;
    for (hdrs, status) in [(vec![HTML], 302), (vec![("accept", "application/json")], 401)] {
        w.now += 10;
        let d = w.request(&req_owned("GET", "/x", &with_cookies(&other, &hdrs)));
        let Decision::Call(_, pending) = d else { panic!() };
        let refused = CallResponse { status: 400, headers: vec![], body: br#"{"error":"invalid_grant"}"#.to_vec() };
        let r = respond(w.respond(pending, &refused));
        assert_eq!(r.status, status);
    }
}

#[test]
fn one_refresh_per_refresh_token() {
    let mut w = World::new(json!({}));
    let session = login(&mut w, json!({}), Some("rt-1"));
    let api = [("accept", "application/json")];
    let is_alice = |f: &Forward| f.add_headers.iter().any(|(n, v)| n == "x-auth-request-user" && v == "alice");
    w.now += 250; // inside refresh_before_expiry, the token still valid

    // A page's parallel requests: the first refreshes, the others go on with the token
    // instead of using the same refresh token again (rotating IdPs revoke the grant).
    let d = w.request(&req_owned("GET", "/a", &with_cookies(&session, &api)));
    let Decision::Call(_, first) = d else { panic!("expected a refresh, got {d:?}") };
    for path in ["/b", "/c"] {
        let f = forward(w.request(&req_owned("GET", path, &with_cookies(&session, &api))));
        assert!(is_alice(&f) && f.response_headers.is_empty(), "{f:?}");
    }

    // The refresh fails (IdP down): the token goes on; another request retries only once
    // the lease (idp_timeout + 2 s) has run out.
    let down = CallResponse { status: 503, headers: vec![], body: b"upstream connect error".to_vec() };
    assert!(is_alice(&forward(w.respond(first, &down))));
    assert!(is_alice(&forward(w.request(&req_owned("GET", "/d", &with_cookies(&session, &api))))));
    w.now += 7;
    let d = w.request(&req_owned("GET", "/e", &with_cookies(&session, &api)));
    let Decision::Call(call, retry) = d else { panic!("expected a retried refresh, got {d:?}") };
    assert!(String::from_utf8(call.body.unwrap()).unwrap().contains("refresh_token=rt-1"));

    // It succeeds with a rotated refresh token: rt-1 is used up. Requests still carrying
    // the old cookies never present rt-1 again: for a while they take the refreshed
    // session home (the refreshing request's client may have gone before its answer),
    // later they go on with the old token.
    let new_id = w.id_token("ignored", json!({"nonce": null}));
    let f = forward(w.respond(retry, &token_response(&new_id, Some("rt-2"))));
    let fresh: Vec<(String, String)> = set_cookies(&f.response_headers).into_iter().filter(|(_, v)| !v.is_empty()).collect();
    assert!(!fresh.is_empty());
    w.now += 10;
    let f = forward(w.request(&req_owned("GET", "/f", &with_cookies(&session, &api))));
    assert!(f.add_headers.contains(&("authorization".to_string(), format!("Bearer {new_id}"))), "{f:?}");
    assert!(!set_cookies(&f.response_headers).is_empty(), "the refreshed session goes home with an old copy's request");
    w.now += 30;
    let f = forward(w.request(&req_owned("GET", "/f2", &with_cookies(&session, &api))));
    assert!(is_alice(&f) && f.response_headers.is_empty());
    // The new session refreshes with rt-2 when its own time comes.
    let f = forward(w.request(&req_owned("GET", "/g", &with_cookies(&fresh, &api))));
    assert!(f.add_headers.contains(&("authorization".to_string(), format!("Bearer {new_id}"))));
    w.now += 250;
    let d = w.request(&req_owned("GET", "/h", &with_cookies(&fresh, &api)));
    let Decision::Call(call, _) = d else { panic!("expected a refresh with rt-2, got {d:?}") };
    assert!(String::from_utf8(call.body.unwrap()).unwrap().contains("refresh_token=rt-2"));
}

/// A session whose token has already expired: a page's parallel requests would all need
/// a refresh. One refreshes; the others wait for its result instead of using the refresh
/// token a second time (which a rotating IdP answers by revoking the grant).
#[test]
fn expired_tokens_share_one_refresh() {
    let mut w = World::new(json!({}));
    let session = login(&mut w, json!({}), Some("rt-1"));
    let api = [("accept", "application/json")];
    w.now += 301; // the ID token (exp = login + 300) has expired
    let d = w.request(&req_owned("GET", "/a", &with_cookies(&session, &api)));
    let Decision::Call(call, first) = d else { panic!("expected a refresh, got {d:?}") };
    assert!(String::from_utf8(call.body.unwrap()).unwrap().contains("refresh_token=rt-1"));
    let d = w.request(&req_owned("GET", "/b", &with_cookies(&session, &api)));
    let Decision::Wait(wait) = d else { panic!("expected a wait for the other refresh, got {d:?}") };
    assert!(wait.poll);
    // A tick before the refresh has answered: still waiting.
    let d = w.step(|e, cx| e.on_keys(wait.pending, cx));
    let Decision::Wait(wait) = d else { panic!("expected to wait on, got {d:?}") };

    let new_id = w.id_token("ignored", json!({"nonce": null}));
    let f = forward(w.respond(first, &token_response(&new_id, Some("rt-2"))));
    assert!(!set_cookies(&f.response_headers).is_empty());
    // The next tick: the waiter goes on with the refreshed session and takes its cookies home.
    let f = forward(w.step(|e, cx| e.on_keys(wait.pending, cx)));
    assert!(f.add_headers.contains(&("authorization".to_string(), format!("Bearer {new_id}"))), "{f:?}");
    let theirs: Vec<(String, String)> = set_cookies(&f.response_headers).into_iter().filter(|(_, v)| !v.is_empty()).collect();
    assert!(!theirs.is_empty(), "{f:?}");
    // A request still carrying the old cookies, just after: the result at once, no refresh.
    let f = forward(w.request(&req_owned("GET", "/c", &with_cookies(&session, &api))));
    assert!(f.add_headers.contains(&("authorization".to_string(), format!("Bearer {new_id}"))), "{f:?}");
    assert_eq!(w.events.iter().filter(|e| **e == Event::SessionRefreshed).count(), 1);
    // The waiter's new cookies hold the rotated refresh token: their next refresh uses rt-2.
    w.now += 250;
    let d = w.request(&req_owned("GET", "/d", &with_cookies(&theirs, &api)));
    let Decision::Call(call, _) = d else { panic!("expected a refresh with rt-2, got {d:?}") };
    assert!(String::from_utf8(call.body.unwrap()).unwrap().contains("refresh_token=rt-2"));
}

#[test]
fn many_sessions_refreshing_at_once_each_find_their_result() {
    let mut w = World::new(json!({}));
    let api = [("accept", "application/json")];
    let sessions: Vec<Vec<(String, String)>> = (0..48).map(|i| login(&mut w, json!({}), Some(&format!("rt-{i}")))).collect();
    w.now += 301;
    let mut refreshes = vec![];
    let mut waiters = vec![];
    for session in &sessions {
        let Decision::Call(_, first) = w.request(&req_owned("GET", "/a", &with_cookies(session, &api))) else { panic!("a refresh") };
        refreshes.push(first);
        let Decision::Wait(wait) = w.request(&req_owned("GET", "/b", &with_cookies(session, &api))) else { panic!("a wait") };
        waiters.push(wait);
    }
    for (i, first) in refreshes.into_iter().enumerate() {
        let new_id = w.id_token("ignored", json!({"nonce": null}));
        forward(w.respond(first, &token_response(&new_id, Some(&format!("rt-{i}-2")))));
    }
    // Every waiter goes on at the next tick with its own session's result.
    for wait in waiters {
        let f = forward(w.step(|e, cx| e.on_keys(wait.pending, cx)));
        assert!(!set_cookies(&f.response_headers).is_empty(), "{f:?}");
    }
}

#[test]
fn an_old_cookie_never_spends_a_rotated_refresh_token_again() {
    let mut w = World::new(json!({"refresh_before_expiry": "60s"}));
    let api = [("accept", "application/json")];
    let old = login(&mut w, json!({}), Some("rt-1"));
    w.now += 250;
    let Decision::Call(_, first) = w.request(&req_owned("GET", "/a", &with_cookies(&old, &api))) else { panic!("a refresh") };
    let new_id = w.id_token("ignored", json!({"nonce": null}));
    let f = forward(w.respond(first, &token_response(&new_id, Some("rt-2"))));
    let fresh: Vec<(String, String)> = set_cookies(&f.response_headers).into_iter().filter(|(_, v)| !v.is_empty()).collect();
    // Long after the old token expired (a restored tab, a lost response), the old cookie
    // comes back: it must not use rt-1 again (the IdP would revoke the grant).
    for later in [200, 3600, 7 * 3600] {
        w.now = T0 + 250 + later;
        // Answered at once: nothing is in flight to wait for.
        assert_eq!(respond(w.request(&req_owned("GET", "/old", &with_cookies(&old, &api)))).status, 401, "{later} s later");
    }
    // The live session's refresh token was never spent by those: it refreshes with rt-2.
    let Decision::Call(call, _) = w.request(&req_owned("GET", "/new", &with_cookies(&fresh, &api))) else { panic!("a refresh with rt-2") };
    assert!(String::from_utf8(call.body.unwrap_or_default()).unwrap_or_default().contains("refresh_token=rt-2"));
}

#[test]
fn a_request_waiting_for_another_refresh_gives_up_when_it_fails() {
    let mut w = World::new(json!({}));
    let session = login(&mut w, json!({}), Some("rt-1"));
    w.now += 301;
    let api = [("accept", "application/json")];
    let Decision::Call(_, first) = w.request(&req_owned("GET", "/a", &with_cookies(&session, &api))) else { panic!() };
    let Decision::Wait(wait) = w.request(&req_owned("GET", "/b", &with_cookies(&session, &api))) else { panic!() };
    let down = CallResponse { status: 503, headers: vec![], body: b"upstream connect error".to_vec() };
    assert_eq!(respond(w.respond(first, &down)).status, 401);
    // At its next tick the waiter learns of the failure and is answered like an expired
    // session (401 here, a login for a browser): never sent upstream, never refreshing.
    assert_eq!(respond(w.step(|e, cx| e.on_keys(wait.pending, cx))).status, 401);
    assert!(w.events.contains(&Event::RefreshFailed(Reason::SessionExpired)), "{:?}", w.events);

    // A refresh that never answers (the holder's stream went away): the waiter gives up at
    // the end of the lease.
    w.now += 10;
    let Decision::Call(_, _abandoned) = w.request(&req_owned("GET", "/a2", &with_cookies(&session, &api))) else { panic!() };
    let Decision::Wait(wait) = w.request(&req_owned("GET", "/b2", &with_cookies(&session, &api))) else { panic!() };
    let d = w.step(|e, cx| e.on_keys(wait.pending, cx));
    let Decision::Wait(wait) = d else { panic!("expected to wait on, got {d:?}") };
    w.now = wait.deadline;
    assert_eq!(respond(w.step(|e, cx| e.on_keys(wait.pending, cx))).status, 401);
    // With the lease over, the session's next request tries the refresh again itself.
    let d = w.request(&req_owned("GET", "/c", &with_cookies(&session, &api)));
    assert!(matches!(d, Decision::Call(..)), "{d:?}");
}

#[test]
fn logout() {
    let mut w = World::new(json!({"post_logout_redirect_uri": "http://app.example.com/bye"}));
    let session = login(&mut w, json!({}), None);
    let r = respond(w.request(&req_owned("POST", "/oauth2/logout", &with_cookies(&session, &[("origin", "http://app.example.com")]))));
    assert_eq!(r.status, 302);
    let loc = header(&r, "location").unwrap();
    assert!(loc.starts_with("https://idp.example.com/logout?id_token_hint=eyJ"), "{loc}");
    assert!(loc.contains("client_id=app") && loc.contains("post_logout_redirect_uri=http%3A%2F%2Fapp.example.com%2Fbye"));
    assert!(set_cookies(&r.headers).iter().any(|(n, v)| n == "oidc_edge" && v.is_empty()));
    assert_eq!(header(&r, "clear-site-data"), Some("\"cache\""), "Back shows no signed-in page");
    // A huge ID token is no hint: the URL would be refused at the IdP.
    let big = login(&mut w, json!({"pad": "x".repeat(6000)}), None);
    let r = respond(w.request(&req_owned("POST", "/oauth2/logout", &with_cookies(&big, &[("origin", "http://app.example.com")]))));
    let loc = header(&r, "location").unwrap();
    assert!(loc.starts_with("https://idp.example.com/logout?client_id=app") && !loc.contains("id_token_hint"), "{loc}");
    for cross in [
        vec![("origin", "https://evil.example")],
        vec![("sec-fetch-site", "cross-site")],
        vec![("referer", "https://evil.example/page")],
        vec![("referer", "http://app.example.com.evil.example/")],
        vec![("referer", "http://app.example.com@evil.example/")],
        vec![("referer", "http://app.example.comevil")],
        vec![("referer", "http://app.example.com:8080/")],
    ] {
        let r = respond(w.request(&req_owned("POST", "/oauth2/logout", &with_cookies(&session, &cross))));
        assert_eq!(r.status, 200, "{cross:?}: a confirmation page, not a logout");
        assert!(set_cookies(&r.headers).is_empty());
    }
}

#[test]
fn websockets() {
    let mut w = World::new(json!({"allow_query_token": true, "allowed_origins": ["https://other.example.com"]}));
    let ws = [("upgrade", "websocket"), ("connection", "Upgrade")];
    let r = respond(w.request(&req("GET", "/ws", &[ws[0], ws[1], HTML])));
    assert_eq!(r.status, 401, "never redirected");

    let session = login(&mut w, json!({}), None);
    let with = |origin: &str| with_cookies(&session, &[ws[0], ws[1], ("origin", origin)]);
    forward(w.request(&req_owned("GET", "/ws", &with("http://app.example.com"))));
    forward(w.request(&req_owned("GET", "/ws", &with("https://other.example.com"))));
    let r = respond(w.request(&req_owned("GET", "/ws", &with("https://evil.example"))));
    assert_eq!(r.status, 403);

    let token = w.idp.sign(&json!({"iss": ISSUER, "sub": "ws", "aud": "app", "exp": T0 + 60}));
    let proto = format!("chat, base64url.bearer.authorization.k8s.io.{}", b64::url_encode(token.as_bytes()));
    let f = forward(w.request(&req("GET", "/ws", &[ws[0], ws[1], ("sec-websocket-protocol", &proto)])));
    assert!(f.set_headers.contains(&("sec-websocket-protocol".to_string(), "chat".to_string())));
    assert!(f.add_headers.contains(&("authorization".to_string(), format!("Bearer {token}"))));
    let f = forward(w.request(&req("GET", &format!("/ws?room=1&access_token={token}"), &[ws[0], ws[1]])));
    assert_eq!(f.path.as_deref(), Some("/ws?room=1"));
    // The rest of the query goes on byte for byte, whatever it holds.
    let f = forward(w.request(&req("GET", &format!("/ws?a=%ZZ&access_token={token}&b=x+y&flag&c=%ff"), &[ws[0], ws[1]])));
    assert_eq!(f.path.as_deref(), Some("/ws?a=%ZZ&b=x+y&flag&c=%ff"));

    // A query token is never the application's to see, whichever credential was used:
    // another, unchecked one (an unsigned "admin" here) rides on a cookie-authenticated socket.
    let forged = format!("{}.{}.", b64::url_encode(br#"{"alg":"none"}"#), b64::url_encode(br#"{"sub":"admin"}"#));
    for (path, expect) in [
        (format!("/ws?access_token={forged}"), Some("/ws")),
        (format!("/ws?x=1&access%5Ftoken={forged}&access_token=2"), Some("/ws?x=1")),
        ("/ws?x=1".to_string(), None),
    ] {
        let f = forward(w.request(&req_owned("GET", &path, &with("http://app.example.com"))));
        assert_eq!(f.path.as_deref(), expect, "{path}");
    }
    let auth = format!("Bearer {token}");
    let f = forward(w.request(&req("GET", &format!("/ws?access_token={forged}"), &[ws[0], ws[1], ("authorization", &auth)])));
    assert_eq!(f.path.as_deref(), Some("/ws"));

    // Several subprotocol tokens are refused unread (each would cost a signature check).
    let entry = format!("base64url.bearer.authorization.k8s.io.{}", b64::url_encode(token.as_bytes()));
    let two = format!("chat, {entry}, {entry}");
    let before = w.events.len();
    let r = respond(w.request(&req("GET", "/ws", &[ws[0], ws[1], ("sec-websocket-protocol", &two)])));
    assert_eq!(r.status, 401);
    assert!(r.body.contains("token_repeated"), "{}", r.body);
    assert!(w.events[before..].iter().all(|e| *e != Event::TokenAccepted), "no token was read");
    let split = [ws[0], ws[1], ("sec-websocket-protocol", entry.as_str()), ("sec-websocket-protocol", entry.as_str())];
    assert!(respond(w.request(&req("GET", "/ws", &split))).body.contains("token_repeated"));

    // An Origin that is not text is no origin of ours.
    let mut headers: Vec<(String, Vec<u8>)> = vec![
        (":method".into(), b"GET".to_vec()), (":scheme".into(), b"http".to_vec()), (":authority".into(), b"app.example.com".to_vec()),
        (":path".into(), b"/ws".to_vec()), ("upgrade".into(), b"websocket".to_vec()), ("connection".into(), b"Upgrade".to_vec()),
        ("origin".into(), b"http://app.example.com\xff".to_vec()),
    ];
    headers.push(("cookie".into(), cookie_header(&session).into_bytes()));
    assert_eq!(respond(w.request(&RequestView::from_headers(headers))).status, 403);
}

#[test]
fn routes_keep_sessions_apart() {
    let mut w = World::new(json!({"routes": [{"path_prefix": "/admin", "require": [{"claim": "sub", "one_of": ["root"]}]}]}));
    let session = login(&mut w, json!({}), None);
    // The default route's session is not a session of /admin: it logs in there anew.
    let r = respond(w.request(&req_owned("GET", "/admin/x", &with_cookies(&session, &[HTML]))));
    assert_eq!(r.status, 302);
    let sc = set_cookies(&r.headers);
    assert!(sc.iter().any(|(n, _)| n.starts_with("oidc_edge-1_tx.")), "{sc:?}");
    // The IdP sends the browser back to the shared callback path: the route whose login
    // cookie the request carries finishes it.
    let loc = header(&r, "location").unwrap().to_string();
    let q = Query::parse(loc.split_once('?').unwrap().1);
    let (state, nonce) = (q.single("state").unwrap().to_string(), q.single("nonce").unwrap().to_string());
    let mut jar = session.clone();
    jar.extend(sc);
    let cookie = cookie_header(&jar);
    let d = w.request(&req("GET", &format!("/oauth2/callback?code=c&state={state}&iss=https%3A%2F%2Fidp.example.com"), &[HTML, ("cookie", &cookie)]));
    let Decision::Call(_, pending) = d else { panic!("the /admin route finishes its login: {d:?}") };
    let token = w.id_token(&nonce, json!({}));
    let r = respond(w.respond(pending, &token_response(&token, None)));
    assert_eq!(header(&r, "location"), Some("/admin/x"));
    let admin: Vec<(String, String)> = set_cookies(&r.headers).into_iter().filter(|(n, v)| n == "oidc_edge-1" && !v.is_empty()).collect();
    assert_eq!(admin.len(), 1);
    jar = session.clone();
    jar.extend(admin);
    let r = respond(w.request(&req_owned("GET", "/admin/x", &with_cookies(&jar, &[HTML]))));
    assert_eq!(r.status, 403, "the /admin rule refuses alice");
    forward(w.request(&req_owned("GET", "/x", &with_cookies(&jar, &[HTML]))));
}

#[test]
fn a_host_only_session_cookie_left_from_before_cookie_domain_is_cleared_too() {
    let mut w = World::new(json!({"cookie_domain": "example.com"}));
    let session = login(&mut w, json!({}), None);
    // The browser also holds a host-only `oidc_edge` from before `cookie_domain` was set,
    // and sends both: that reads as no session, so the login must clear both copies.
    let cookie = format!("oidc_edge=old-host-only-value; {}", cookie_header(&session));
    let r = respond(w.request(&req("GET", "/x", &[HTML, ("cookie", &cookie)])));
    assert_eq!(r.status, 302);
    let clears: Vec<&String> = r.headers.iter().filter(|(n, v)| n == "set-cookie" && v.starts_with("oidc_edge=;")).map(|(_, v)| v).collect();
    assert_eq!(clears.len(), 2, "{clears:?}");
    assert!(clears.iter().any(|c| c.contains("Domain=example.com")) && clears.iter().any(|c| !c.contains("Domain=")), "{clears:?}");
}

#[test]
fn same_site_strict_login_survives_the_cross_site_return() {
    let mut w = World::new(json!({"cookie_same_site": "strict"}));
    // The login cookie comes back on the IdP's (cross-site) redirect only if it is not Strict.
    let first = respond(w.request(&req("GET", "/p?a=1&b=2", &[HTML])));
    let tx = first.headers.iter().find(|(n, v)| n == "set-cookie" && v.contains("_tx.")).unwrap();
    assert!(tx.1.contains("SameSite=Lax"), "{}", tx.1);

    // A login another site started (a link to any page here) ends on a page with a link
    // only: moving on by itself would turn the other site's navigation, through a silent
    // sign-in at the IdP, into this site's own, which Strict is there to prevent.
    let r = respond(w.request(&req("GET", "/p?a=1&b=2", &[HTML, ("sec-fetch-site", "cross-site")])));
    let done = respond(finish_started_response(&mut w, &r));
    assert_eq!(done.status, 200);
    assert!(!done.body.contains("http-equiv") && done.body.contains("href=\"/p?a=1&amp;b=2\""), "{}", done.body);

    // One the user started here (typed, or from this site) moves on by itself.
    let r = respond(w.request(&req("GET", "/p?a=1&b=2", &[HTML, ("sec-fetch-site", "none")])));
    let loc = header(&r, "location").unwrap();
    let q = Query::parse(loc.split_once('?').unwrap().1);
    let s = Started { state: q.single("state").unwrap().into(), nonce: q.single("nonce").unwrap().into(), challenge: String::new(), cookies: set_cookies(&r.headers) };
    let d = callback(&mut w, &s, &format!("code=c0de&state={}&iss=https%3A%2F%2Fidp.example.com", s.state));
    let Decision::Call(_, pending) = d else { panic!("expected the code exchange, got {d:?}") };
    let id_token = w.id_token(&s.nonce, json!({}));
    let r = respond(w.respond(pending, &token_response(&id_token, None)));
    // Not a redirect (still the IdP's navigation: the Strict cookie would stay home) but a
    // page that moves on by itself.
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(header(&r, "location").is_none());
    assert_eq!(header(&r, "cache-control"), Some("no-store"));
    assert!(r.body.contains("<meta http-equiv=\"refresh\" content=\"0;url=/p?a=1&amp;b=2\">"), "{}", r.body);
    let made: Vec<&String> = r.headers.iter().filter(|(n, v)| n == "set-cookie" && v.starts_with("oidc_edge=")).map(|(_, v)| v).collect();
    assert_eq!(made.len(), 1);
    assert!(made[0].contains("SameSite=Strict"), "{}", made[0]);
    assert!(r.headers.iter().any(|(n, v)| n == "set-cookie" && v.contains("_tx.") && v.contains("Max-Age=0")));
    let session: Vec<(String, String)> = set_cookies(&r.headers).into_iter().filter(|(n, v)| n == "oidc_edge" && !v.is_empty()).collect();
    let f = forward(w.request(&req_owned("GET", "/p?a=1&b=2", &with_cookies(&session, &[HTML]))));
    assert!(f.add_headers.iter().any(|(k, v)| k == "x-auth-request-user" && v == "alice"));
}

/// Finishes a login whose redirect `r` the engine just gave; returns where it lands.
fn finish_started(w: &mut World, r: &LocalResponse) -> String {
    let done = respond(finish_started_response(w, r));
    header(&done, "location").unwrap().to_string()
}

/// The callback's answer for the login whose redirect `r` the engine just gave.
fn finish_started_response(w: &mut World, r: &LocalResponse) -> Decision {
    let loc = header(r, "location").unwrap();
    let q = Query::parse(loc.split_once('?').unwrap().1);
    let (state, nonce) = (q.single("state").unwrap().to_string(), q.single("nonce").unwrap().to_string());
    let s = Started { state, nonce, challenge: String::new(), cookies: set_cookies(&r.headers) };
    let d = callback(w, &s, &format!("code=c&state={}&iss=https%3A%2F%2Fidp.example.com", s.state));
    let Decision::Call(_, pending) = d else { panic!("expected the code exchange, got {d:?}") };
    let token = w.id_token(&s.nonce, json!({}));
    w.respond(pending, &token_response(&token, None))
}

#[test]
fn login_initiation_lands_on_this_site_only() {
    let iss = "iss=https%3A%2F%2Fidp.example.com";
    // (query of /oauth2/login, where the finished login lands)
    let cases = [
        ("", "/"),
        (iss, "/"),
        ("target_link_uri=%2Fdashboard%3Ftab%3D2", "/dashboard?tab=2"),
        (&format!("{iss}&target_link_uri=http%3A%2F%2Fapp.example.com%2Freports%3Fq%3D1"), "/reports?q=1"),
        ("target_link_uri=http%3A%2F%2FAPP.example.com%2Fr", "/r"),
        ("target_link_uri=https%3A%2F%2Fapp.example.com%2Fr", "/"),
        ("target_link_uri=http%3A%2F%2Fevil.example%2Fr", "/"),
        ("target_link_uri=http%3A%2F%2Fapp.example.com.evil.example%2Fr", "/"),
        ("target_link_uri=%2F%2Fevil.example%2Fr", "/"),
        ("target_link_uri=%2F%5Cevil.example", "/"),
        ("target_link_uri=javascript%3Aalert(1)", "/"),
        ("target_link_uri=%2Foauth2%2Fcallback%3Fcode%3Dx", "/"),
        ("target_link_uri=%2Fa&target_link_uri=%2Fb", "/"),
        ("target_link_uri=%2Foauth2%2Flogout", "/"),
        ("target_link_uri=%2Foauth2%2Flogout%3Fx%3D1", "/"),
        ("target_link_uri=%2Foauth2%2Flogin%3Ftarget_link_uri%3D%2Fx", "/"),
    ];
    for (query, lands) in cases {
        let mut w = World::new(json!({}));
        let r = respond(w.request(&req("GET", &format!("/oauth2/login?{query}"), &[("accept", "application/json")])));
        assert_eq!(r.status, 302, "{query}: even an API-looking client is sent to the IdP from here");
        assert_eq!(finish_started(&mut w, &r), lands, "{query}");
    }
}

#[test]
fn login_initiation_passes_the_hint_and_checks_the_issuer() {
    let mut w = World::new(json!({"auth_query_params": {"login_hint": ["configured"], "prompt": ["login"]}}));
    let session = login(&mut w, json!({}), None);
    // A valid session does not stop a new login: the hint may name another account. It is
    // not cleared either (another site may link here): the callback replaces it.
    let r = respond(w.request(&req_owned("GET", "/oauth2/login?login_hint=bob%40example.com", &with_cookies(&session, &[HTML]))));
    assert_eq!(r.status, 302);
    assert!(set_cookies(&r.headers).iter().all(|(n, _)| n.contains("_tx.")), "{:?}", r.headers);
    forward(w.request(&req_owned("GET", "/x", &with_cookies(&session, &[HTML]))));
    let loc = header(&r, "location").unwrap();
    let q = Query::parse(loc.split_once('?').unwrap().1);
    assert_eq!(q.single("login_hint"), Some("bob@example.com"), "{loc}");
    assert_eq!(q.single("prompt"), Some("login"));
    let r = respond(w.request(&req("GET", "/oauth2/login", &[HTML])));
    let q = Query::parse(header(&r, "location").unwrap().split_once('?').unwrap().1);
    assert_eq!(q.single("login_hint"), Some("configured"));
    // A hint that is too long or holds control characters is dropped, not passed on.
    for hint in ["a%0Db", &"x".repeat(1025)] {
        let r = respond(w.request(&req("GET", &format!("/oauth2/login?login_hint={hint}"), &[HTML])));
        let q = Query::parse(header(&r, "location").unwrap().split_once('?').unwrap().1);
        assert_eq!(q.single("login_hint"), Some("configured"), "{hint}");
    }

    for (method, query, status, reason) in [
        ("GET", "iss=https%3A%2F%2Fother.example.com", 400, Some(Reason::LoginIssuerUnknown)),
        ("GET", "iss=https%3A%2F%2Fidp.example.com%2F", 400, Some(Reason::LoginIssuerUnknown)),
        ("GET", "iss=HTTPS%3A%2F%2Fidp.example.com", 400, Some(Reason::LoginIssuerUnknown)),
        ("GET", "iss=https%3A%2F%2Fevil.example&iss=https%3A%2F%2Fevil.example", 400, Some(Reason::LoginIssuerUnknown)),
        ("GET", "iss=https%3A%2F%2Fidp.example.com&iss=https%3A%2F%2Fevil.example", 400, Some(Reason::LoginIssuerUnknown)),
        ("GET", "iss=", 400, Some(Reason::LoginIssuerUnknown)),
        ("POST", "iss=https%3A%2F%2Fidp.example.com", 405, None),
        ("HEAD", "iss=https%3A%2F%2Fidp.example.com", 302, None),
    ] {
        let mut w = World::new(json!({}));
        let r = respond(w.request(&req(method, &format!("/oauth2/login?{query}"), &[HTML])));
        assert_eq!(r.status, status, "{method} {query}");
        assert_eq!(set_cookies(&r.headers).is_empty(), status != 302, "only a started login sets its cookie");
        if let Some(reason) = reason {
            assert!(w.events.contains(&Event::LoginFailed(reason)), "{query}");
        }
    }
}

#[test]
fn login_initiation_belongs_to_the_route_of_its_target() {
    let mut w = World::new(json!({"routes": [{"path_prefix": "/admin"}, {"path_prefix": "/shop", "login_path": "/shop/login"}]}));
    let tx_of = |r: &LocalResponse| set_cookies(&r.headers).into_iter().map(|(n, _)| n).find(|n| n.contains("_tx.")).unwrap();
    let r = respond(w.request(&req("GET", "/oauth2/login?target_link_uri=%2Fadmin%2Fusers", &[HTML])));
    assert!(tx_of(&r).starts_with("oidc_edge-1_tx."), "{:?}", r.headers);
    assert_eq!(finish_started(&mut w, &r), "/admin/users");
    let r = respond(w.request(&req("GET", "/oauth2/login?target_link_uri=%2Fhome", &[HTML])));
    assert!(tx_of(&r).starts_with("oidc_edge_tx."), "{:?}", r.headers);
    // /shop has its own login path: the shared one does not start /shop's login.
    let r = respond(w.request(&req("GET", "/oauth2/login?target_link_uri=%2Fshop%2Fcart", &[HTML])));
    assert!(tx_of(&r).starts_with("oidc_edge_tx."), "{:?}", r.headers);
    let r = respond(w.request(&req("GET", "/shop/login?target_link_uri=%2Fshop%2Fcart", &[HTML])));
    assert!(tx_of(&r).starts_with("oidc_edge-2_tx."), "{:?}", r.headers);
}

#[test]
fn a_form_submitted_without_a_session_gets_a_sign_in_page_not_json_or_a_redirect() {
    let mut w = World::new(json!({"api_paths": ["/api/"]}));
    let nav = [("sec-fetch-mode", "navigate"), ("sec-fetch-dest", "document"), HTML];
    let cases: [(&str, Vec<(&str, &str)>, Option<&str>); 7] = [
        // The page the form was on, from the same origin: back there after sign-in.
        ("/app/save", [&nav[..], &[("referer", "http://app.example.com/app/edit?id=7#top")]].concat(), Some("/oauth2/login?target_link_uri=%2Fapp%2Fedit%3Fid%3D7")),
        // Another origin, or one that only starts like ours: the root.
        ("/app/save", [&nav[..], &[("referer", "https://evil.example/app/edit")]].concat(), Some("/oauth2/login?target_link_uri=%2F")),
        ("/app/save", [&nav[..], &[("referer", "http://app.example.com.evil.example/x")]].concat(), Some("/oauth2/login?target_link_uri=%2F")),
        ("/app/save", [&nav[..], &[("referer", "http://app.example.com//evil.example/x")]].concat(), Some("/oauth2/login?target_link_uri=%2F")),
        // An older browser without Sec-Fetch-*, asking for HTML.
        ("/app/save", vec![HTML], Some("/oauth2/login?target_link_uri=%2F")),
        // Scripts and configured API paths keep the JSON 401.
        ("/app/save", vec![HTML, ("x-requested-with", "XMLHttpRequest")], None),
        ("/api/save", nav.to_vec(), None),
    ];
    for (path, headers, link) in cases {
        let r = respond(w.request(&req("POST", path, &headers)));
        assert_eq!(r.status, 401, "{path} {headers:?}");
        assert!(header(&r, "www-authenticate").is_some_and(|c| c.starts_with("Bearer ")), "{headers:?}");
        assert!(header(&r, "location").is_none());
        match link {
            Some(href) => {
                assert!(header(&r, "content-type").is_some_and(|t| t.starts_with("text/html")), "{headers:?}");
                assert!(r.body.contains(&format!("<a href=\"{}\">Sign in</a>", href.replace('&', "&amp;"))), "{headers:?}: {}", r.body);
            }
            None => assert!(header(&r, "content-type").is_some_and(|t| t.starts_with("application/json")), "{headers:?}"),
        }
    }
    // A fetch() POST (mode cors) is not a navigation.
    let r = respond(w.request(&req("POST", "/app/save", &[("sec-fetch-mode", "cors"), HTML])));
    assert!(header(&r, "content-type").is_some_and(|t| t.starts_with("application/json")));
}

#[test]
fn a_callback_path_shared_with_another_issuers_route_needs_the_iss_parameter() {
    // RFC 9700 4.4 (IdP mix-up): with one redirect URI for two IdPs, only `iss` says which
    // IdP sent a response; an IdP that does not advertise RFC 9207 is then still held to it.
    let no_iss = json!({"authorization_response_iss_parameter_supported": false});
    let partner = json!({"routes": [{"path_prefix": "/partner/", "issuer": "https://partner.example.com", "client_id": "p"}]});
    for (extra, iss_required) in [(partner.clone(), true), (json!({}), false)] {
        let mut w = World::with_discovery(extra, no_iss.clone());
        let s = start_login(&mut w, "/some/page");
        let d = callback(&mut w, &s, &format!("code=c0de&state={}", s.state));
        if iss_required {
            let r = respond(d);
            assert_eq!(r.status, 400);
            assert!(r.body.contains("iss_param_missing"), "{}", r.body);
            assert!(w.events.contains(&Event::LoginFailed(Reason::IssParamMissing)));
            assert_eq!(w.engine.warnings().len(), 1, "the shared callback is named at load");
        } else {
            assert!(matches!(d, Decision::Call(..)), "one issuer: no iss needed where the IdP does not send it: {d:?}");
            assert!(w.engine.warnings().is_empty());
        }
    }
    // With its issuer, the response goes on to the code exchange.
    let mut w = World::with_discovery(partner, no_iss);
    let s = start_login(&mut w, "/some/page");
    let d = callback(&mut w, &s, &format!("code=c0de&state={}&iss=https%3A%2F%2Fidp.example.com", s.state));
    assert!(matches!(d, Decision::Call(..)), "{d:?}");
}

#[test]
fn with_several_issuers_the_issuer_goes_upstream_and_an_unverified_email_never_does() {
    let idp = Idp::new("idp-keys.json");
    let sts = "https://sts.example.com/";
    let mut w = World::new(json!({"bearer_validators": [{"issuer": sts, "audiences": ["api"], "jwks": {"keys": [idp.public.clone()]}}]}));
    w.sync();
    let forged = ("x-auth-request-issuer", "https://evil.example");
    for (iss, aud) in [(ISSUER, "app"), (sts, "api")] {
        let token = w.idp.sign(&json!({"iss": iss, "sub": "alice", "aud": aud, "exp": T0 + 300, "email": "alice@example.com", "email_verified": false}));
        let f = forward(w.request(&req("GET", "/api", &[("authorization", &format!("Bearer {token}")), forged])));
        assert!(f.remove_headers.contains(&"x-auth-request-issuer".to_string()), "the client's copy goes");
        assert!(f.add_headers.contains(&("x-auth-request-issuer".to_string(), iss.to_string())), "{iss}: {:?}", f.add_headers);
        assert!(f.add_headers.iter().all(|(h, _)| h != "x-auth-request-email"), "email_verified false: {:?}", f.add_headers);
    }
    // One issuer: sub names the user; the header is not sent, but a client's copy is still removed.
    let mut w = World::new(json!({}));
    for verified in [json!(true), json!("true"), Value::Null] {
        let mut claims = json!({"iss": ISSUER, "sub": "bob", "aud": "app", "exp": T0 + 300, "email": "bob@example.com"});
        if !verified.is_null() {
            claims["email_verified"] = verified.clone();
        }
        let token = w.idp.sign(&claims);
        let f = forward(w.request(&req("GET", "/api", &[("authorization", &format!("Bearer {token}")), forged])));
        assert!(f.remove_headers.contains(&"x-auth-request-issuer".to_string()));
        assert!(f.add_headers.iter().all(|(h, _)| h != "x-auth-request-issuer"));
        assert!(f.add_headers.contains(&("x-auth-request-email".to_string(), "bob@example.com".to_string())), "{verified}");
    }
    // One issuer reached with other settings on another route is still one issuer.
    let mut w = World::new(json!({"routes": [{"path_prefix": "/slow/", "idp_timeout": "9s"}]}));
    assert_eq!(w.engine.settings.providers.len(), 2, "two providers of one issuer");
    let token = w.idp.sign(&json!({"iss": ISSUER, "sub": "bob", "aud": "app", "exp": T0 + 300}));
    let f = forward(w.request(&req("GET", "/api", &[("authorization", &format!("Bearer {token}"))])));
    assert!(f.add_headers.iter().all(|(h, _)| h != "x-auth-request-issuer"), "{:?}", f.add_headers);
}

#[test]
fn logout_ends_the_sessions_of_every_route_of_the_host_that_shares_its_path() {
    let mut w = World::new(json!({"routes": [{"path_prefix": "/admin/"}, {"host": "other.example.com"}]}));
    let top = login(&mut w, json!({}), None);
    let admin = login_at(&mut w, "/admin/users", json!({}), None);
    assert!(top.iter().any(|(n, _)| n == "oidc_edge") && admin.iter().any(|(n, _)| n == "oidc_edge-1"), "{top:?} {admin:?}");
    let mut both: Vec<(String, String)> = top.iter().chain(&admin).cloned().collect();
    both.push(("oidc_edge-2".into(), "another-hosts-session".into()));
    // The link on an /admin page: the path selects the top level, whose IdP is visited.
    let r = respond(w.request(&req_owned("POST", "/oauth2/logout", &with_cookies(&both, &[("origin", "http://app.example.com")]))));
    assert_eq!(r.status, 302);
    let cleared: Vec<String> = set_cookies(&r.headers).into_iter().filter(|(_, v)| v.is_empty()).map(|(n, _)| n).collect();
    assert!(cleared.contains(&"oidc_edge".to_string()) && cleared.contains(&"oidc_edge-1".to_string()), "{cleared:?}");
    assert!(!cleared.iter().any(|n| n.starts_with("oidc_edge-2")), "another host's route is not this site's: {cleared:?}");
}

//! The filter's per-request work in the core, timed in wasm under V8 (Node WASI), with
//! an in-memory shared store instead of Envoy's: what a request costs before and apart
//! from the proxy-wasm host calls. Run by `make bench` next to verify_bench:
//!
//!     cargo build --release --target wasm32-wasip1 --example flow_bench
//!     node --no-warnings bench/wasi-run.mjs target/wasm32-wasip1/release/examples/flow_bench.wasm
//!
//! The set-up is the flow tests' (a scripted IdP signing with the fixture key k1, a real
//! login through the engine for the session cookie); only public API is used.

use std::hint::black_box;
use std::time::Instant;

use oidc_edge::b64;
use oidc_edge::config::Settings;
use oidc_edge::entropy::SplitMix;
use oidc_edge::flow::{Context, Decision, Engine, Event};
use oidc_edge::http::{CallResponse, Query};
use oidc_edge::lifecycle::{Refresher, Target};
use oidc_edge::provider::View;
use oidc_edge::request::RequestView;
use oidc_edge::store::MemoryStore;
use rsa::{BigUint, Pkcs1v15Sign, RsaPrivateKey};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

const FIXTURE_KEYS: &str = include_str!("../tests/fixtures/idp-keys.json");
const ISSUER: &str = "https://idp.example.com";
const NOW: u64 = 1_800_000_000;

struct World {
    engine: Engine,
    store: MemoryStore,
    views: Vec<View>,
    rng: SplitMix,
    key: RsaPrivateKey,
    public: Value,
}

impl World {
    fn new() -> World {
        let config = json!({
            "issuer": ISSUER, "idp_cluster": "idp", "client_id": "app", "client_secret": "secret",
            "cookie_secret": b64::std_encode(&[5u8; 32]),
            "pass_through_paths": ["/public/"],
            "routes": [{"path_prefix": "/cold/", "token_cache_size": 0}],
        });
        let engine = Engine::new(Settings::from_json(config.to_string().as_bytes()).expect("config"), [9u8; 16]);
        let set: Value = serde_json::from_str(FIXTURE_KEYS).expect("fixture");
        let k = &set["keys"][0];
        let part = |name: &str| BigUint::from_bytes_be(&b64::url_decode(k[name].as_str().expect("member")).expect("b64"));
        let key = RsaPrivateKey::from_components(part("n"), part("e"), part("d"), vec![part("p"), part("q")]).expect("key");
        let public = json!({"kty": "RSA", "kid": "k1", "use": "sig", "alg": "RS256", "n": k["n"], "e": k["e"]});
        let views = vec![View::default(); engine.settings.providers.len()];
        let mut w = World { engine, store: MemoryStore::default(), views, rng: SplitMix(7), key, public };
        w.load_provider();
        w
    }

    fn load_provider(&mut self) {
        let discovery = json!({"issuer": ISSUER, "authorization_endpoint": format!("{ISSUER}/auth"),
            "token_endpoint": format!("{ISSUER}/token"), "jwks_uri": format!("{ISSUER}/jwks")});
        let jwks = json!({"keys": [self.public.clone()]});
        for _ in 0..4 {
            let r = Refresher { provider: &self.engine.settings.providers[0], keys: &self.engine.provider_keys[0], me: "vm" };
            let Some(plan) = r.poll(&mut self.store, NOW) else { break };
            let body = match plan.target {
                Target::Discovery => &discovery,
                Target::Jwks => &jwks,
            };
            let resp = CallResponse { status: 200, headers: vec![], body: body.to_string().into_bytes() };
            r.complete(&mut self.store, &plan, Some(&resp), NOW, 0);
        }
        self.sync();
    }

    /// What the shell does on every tick (and a request while its provider is not loaded):
    /// one shared-data read per provider.
    fn sync(&mut self) {
        for ((v, k), c) in self.views.iter_mut().zip(&self.engine.provider_keys).zip(&self.engine.settings.providers) {
            v.sync(&self.store, k, c);
        }
    }

    fn step(&mut self, f: impl FnOnce(&Engine, &mut Context<'_>) -> Decision) -> (Decision, Vec<Event>) {
        let mut cx = Context { now: NOW, providers: &self.views, store: &mut self.store, entropy: &mut self.rng, events: vec![] };
        let d = f(&self.engine, &mut cx);
        (d, cx.events)
    }

    fn request(&mut self, req: &RequestView) -> Decision {
        self.step(|e, cx| e.on_request(req, cx)).0
    }

    fn sign(&self, claims: &Value) -> String {
        let header = json!({"alg": "RS256", "typ": "JWT", "kid": "k1"});
        let input = format!("{}.{}", b64::url_encode(header.to_string().as_bytes()), b64::url_encode(claims.to_string().as_bytes()));
        let sig = self.key.sign(Pkcs1v15Sign::new::<Sha256>(), &Sha256::digest(input.as_bytes())).expect("sign");
        format!("{input}.{}", b64::url_encode(&sig))
    }

    /// A login through the engine, as the e2e login driver does through Envoy.
    fn login(&mut self) -> String {
        let Decision::Respond(r) = self.request(&request("/app/", &[("accept", "text/html")])) else { panic!("no redirect") };
        let location = header(&r.headers, "location").expect("location");
        let q = Query::parse(location.split_once('?').expect("query").1);
        let (state, nonce) = (q.single("state").expect("state").to_string(), q.single("nonce").expect("nonce").to_string());
        let tx = cookies(&r.headers);
        let path = format!("/oauth2/callback?code=c0de&state={state}&iss=https%3A%2F%2Fidp.example.com");
        let Decision::Call(_, pending) = self.request(&request(&path, &[("accept", "text/html"), ("cookie", &tx)])) else {
            panic!("no code exchange")
        };
        let id_token = self.sign(&json!({"iss": ISSUER, "sub": "bench", "aud": "app", "exp": NOW + 3600, "iat": NOW,
            "nonce": nonce, "email": "bench@example.com", "name": "Bench"}));
        let body = json!({"token_type": "Bearer", "access_token": "at-123", "id_token": id_token, "expires_in": 3600});
        let resp = CallResponse { status: 200, headers: vec![], body: body.to_string().into_bytes() };
        let (Decision::Respond(r), _) = self.step(|e, cx| e.on_call_response(pending, Some(&resp), cx)) else { panic!("no session") };
        cookies(&r.headers)
    }
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
}

/// The `Cookie` header a browser sends back after these Set-Cookie headers.
fn cookies(headers: &[(String, String)]) -> String {
    headers
        .iter()
        .filter(|(n, _)| n == "set-cookie")
        .filter_map(|(_, v)| v.split(';').next())
        .filter(|c| !c.ends_with('='))
        .collect::<Vec<_>>()
        .join("; ")
}

/// The headers wrk sends, plus the credential.
fn headers(path: &str, extra: &[(&str, &str)]) -> Vec<(String, Vec<u8>)> {
    let mut h: Vec<(String, Vec<u8>)> = vec![
        (":authority".into(), b"127.0.0.1:8080".to_vec()),
        (":path".into(), path.as_bytes().to_vec()),
        (":method".into(), b"GET".to_vec()),
        (":scheme".into(), b"http".to_vec()),
        ("x-forwarded-proto".into(), b"http".to_vec()),
        ("x-request-id".into(), b"5a0c1d2e-7f3b-4c1a-9e8d-0123456789ab".to_vec()),
    ];
    for (n, v) in extra {
        h.push((n.to_string(), v.as_bytes().to_vec()));
    }
    h
}

fn request(path: &str, extra: &[(&str, &str)]) -> RequestView {
    RequestView::from_headers(headers(path, extra))
}

/// Best of `rounds` of the mean µs of `iterations` calls.
fn time_us(rounds: usize, iterations: usize, mut f: impl FnMut()) -> f64 {
    (0..rounds)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..iterations {
                f();
            }
            start.elapsed().as_secs_f64() * 1e6 / iterations as f64
        })
        .fold(f64::INFINITY, f64::min)
}

fn forwarded(d: &Decision) -> bool {
    matches!(d, Decision::Forward(_))
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let (rounds, n) = if quick { (5, 500) } else { (9, 2000) };
    let mut w = World::new();
    let token = w.sign(&json!({"iss": ISSUER, "aud": "app", "sub": "bench", "email": "bench@example.com", "iat": NOW, "exp": NOW + 86400}));
    let bearer = format!("Bearer {token}");
    let session = w.login();
    let target = if cfg!(target_arch = "wasm32") { "wasm32 (V8 via Node WASI)" } else { "native" };
    println!("flow_bench: {target}; the core's work per request, in-memory store, best of {rounds} rounds");
    println!("  bearer token {} bytes, session Cookie header {} bytes", token.len(), session.len());

    let pass = request("/public/x", &[("authorization", &bearer)]);
    let api = request("/api/x", &[("authorization", &bearer)]);
    let cold = request("/cold/api/x", &[("authorization", &bearer)]);
    let app = request("/app/x", &[("cookie", &session)]);
    for (name, r) in [("pass-through", &pass), ("bearer", &api), ("bearer, cache off", &cold), ("session", &app)] {
        let d = w.request(r);
        assert!(forwarded(&d), "{name}: {d:?}");
    }

    // `--loop=pass-through|bearer|session`: only that request, many times, for a profiler
    // (`node --cpu-prof bench/wasi-run.mjs flow_bench.wasm --loop=session`, with a module
    // built with CARGO_PROFILE_RELEASE_STRIP=false so that functions keep their names).
    if let Some(case) = std::env::args().find_map(|a| a.strip_prefix("--loop=").map(str::to_string)) {
        let req = match case.as_str() {
            "pass-through" => &pass,
            "bearer" => &api,
            "session" => &app,
            other => panic!("--loop={other}: pass-through, bearer or session"),
        };
        let us = time_us(1, 200_000, || assert!(forwarded(&w.request(req))));
        println!("  {us:>9.2} µs  on_request, {case}, 200,000 times");
        return;
    }

    let mut rows: Vec<(String, f64)> = Vec::new();
    let mut row = |name: &str, us: f64| rows.push((name.to_string(), us));
    row("RequestView::from_headers (bearer request, 8 headers)", time_us(rounds, n, || {
        black_box(RequestView::from_headers(headers("/api/x", &[("authorization", &bearer)])));
    }));
    row("provider views sync (1 shared-data read when nothing changed)", time_us(rounds, n, || w.sync()));
    let keyer = oidc_edge::flow::cache::Keyer::new([9; 16]);
    row("SipHash-1-3/128 of the bearer token (verdict cache key)", time_us(rounds, n, || {
        black_box(keyer.key_of(token.as_bytes()));
    }));
    row("SipHash-1-3/128 of the session cookie (verdict cache key)", time_us(rounds, n, || {
        black_box(keyer.key_of(session.as_bytes()));
    }));
    row("on_request: pass-through path", time_us(rounds, n, || assert!(forwarded(&w.request(&pass)))));
    row("on_request: bearer, cached verdict", time_us(rounds, n, || assert!(forwarded(&w.request(&api)))));
    row("on_request: session cookie, cached verdict", time_us(rounds, n, || assert!(forwarded(&w.request(&app)))));
    row("on_request: bearer, cache off (full validation)", time_us(rounds, n / 10, || assert!(forwarded(&w.request(&cold)))));
    for (name, us) in &rows {
        println!("  {us:>9.2} µs  {name}");
    }
    for (name, us) in &rows {
        println!("BENCH\t{name}\t{us:.2}");
    }
}

//! The fuzz targets' inputs as plain tests: every file of `fuzz/seeds/<target>/` (the seed
//! corpus) and `fuzz/regressions/<target>/` (inputs that once crashed, kept after the fix)
//! goes through the same harness function the fuzzer calls, so `cargo test` replays them
//! without libFuzzer. See fuzz/README.md.

#[path = "../fuzz/src/targets.rs"]
mod targets;

use std::path::{Path, PathBuf};

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

/// (target, file) for every file under `fuzz/<folder>/<target>/`; an unknown target
/// folder is an error (a renamed target must take its inputs along).
fn inputs(folder: &str) -> Vec<(String, PathBuf)> {
    let root = fuzz_dir().join(folder);
    let mut out = Vec::new();
    let Ok(dirs) = std::fs::read_dir(&root) else { return out };
    for dir in dirs {
        let dir = dir.unwrap().path();
        if !dir.is_dir() {
            continue;
        }
        let target = dir.file_name().unwrap().to_string_lossy().into_owned();
        assert!(targets::by_name(&target).is_some(), "{}: no fuzz target named `{target}`", dir.display());
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir).unwrap().map(|f| f.unwrap().path()).filter(|p| p.is_file()).collect();
        files.sort();
        out.extend(files.into_iter().map(|f| (target.clone(), f)));
    }
    out
}

fn replay(folder: &str) -> usize {
    let all = inputs(folder);
    for (target, file) in &all {
        let data = std::fs::read(file).unwrap();
        let run = targets::by_name(target).unwrap();
        if let Err(panic) = std::panic::catch_unwind(|| run(&data)) {
            let msg = panic.downcast_ref::<String>().cloned().or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string())).unwrap_or_default();
            panic!("fuzz target `{target}` fails on {}: {msg}", file.display());
        }
    }
    all.len()
}

#[test]
fn crash_inputs_stay_fixed() {
    let n = replay("regressions");
    println!("{n} regression inputs replayed");
}

#[test]
fn seed_corpus_passes_and_covers_every_target() {
    let n = replay("seeds");
    for (name, _) in targets::TARGETS {
        let dir = fuzz_dir().join("seeds").join(name);
        let count = std::fs::read_dir(&dir).map(|d| d.count()).unwrap_or(0);
        assert!(count > 0, "target `{name}` has no seed in {}", dir.display());
    }
    println!("{n} seeds replayed");
}

/// The seed tokens signed with the harness keys must pass `jwt::validate`, or the jwt
/// target would never reach the checks after the signature.
#[test]
fn signed_seed_tokens_validate() {
    use oidc_edge::jwt::{self, Alg, ClaimRules};
    let issuers = [targets::ISSUER.to_string()];
    let audiences = [targets::CLIENT_ID.to_string()];
    let rules = ClaimRules {
        issuers: &issuers,
        audiences: &audiences,
        authorized_party: Some(targets::CLIENT_ID),
        require_iat: true,
        nonce: Some(targets::NONCE),
        access_token: Some(targets::ACCESS_TOKEN),
        now: targets::NOW,
        skew: targets::SKEW,
    };
    let mut valid = 0;
    for name in ["valid_rs256_id_token", "valid_eddsa_id_token"] {
        let token = std::fs::read_to_string(fuzz_dir().join("seeds/jwt").join(name)).unwrap();
        jwt::validate(&token, targets::keys(), &rules, &Alg::ALL, oidc_edge::flow::MAX_TOKEN_BYTES).unwrap_or_else(|r| panic!("{name}: {r}"));
        valid += 1;
    }
    assert_eq!(valid, 2);
}

/// The finding behind `regressions/cookies/chunked-session-beside-login-cookie`, end to
/// end: a session too large for one cookie, and a login started in another tab (its
/// transaction cookie shares the session cookie's prefix). The session must still open;
/// it used to read as invalid, which sent the browser to the IdP and deleted the session.
#[test]
fn chunked_session_survives_a_login_in_another_tab() {
    use oidc_edge::entropy::SplitMix;
    use oidc_edge::flow::{Context, Decision, Event};
    use oidc_edge::request::RequestView;
    use oidc_edge::session::{cookies, Session};
    use oidc_edge::store::MemoryStore;

    let session = Session {
        sub: "alice".into(),
        iss: targets::ISSUER.into(),
        email: None,
        id_token: "e".repeat(6000),
        access_token: None,
        refresh_token: None,
        token_exp: targets::NOW + 3600,
        created: targets::NOW,
        expires: targets::NOW + 3600,
    };
    let label = format!("session:__Host-oidc_edge:{}", targets::CLIENT_ID);
    let sealed = targets::sealer().seal(&label, &serde_json::to_vec(&session).unwrap(), &[5u8; 24]).unwrap();
    let chunks = cookies::split("__Host-oidc_edge", &sealed).unwrap();
    assert!(chunks.len() > 1, "the session needs chunks");
    let mut cookie: Vec<String> = chunks.iter().map(|(n, v)| format!("{n}={v}")).collect();
    for pending in [None, Some("__Host-oidc_edge_tx.AAAAAAAAAAAA=sealed-transaction")] {
        cookie.extend(pending.map(str::to_string));
        let headers = format!(":method: GET\n:scheme: https\n:authority: app.example.com\n:path: /\naccept: text/html\ncookie: {}", cookie.join("; "));
        let req = RequestView::from_headers(targets::header_lines(headers.as_bytes()));
        let (mut store, mut entropy) = (MemoryStore::default(), SplitMix(1));
        let mut cx = Context { now: targets::NOW, provider: targets::ready_view(), store: &mut store, entropy: &mut entropy, events: vec![] };
        let decision = engine_request(&req, &mut cx);
        assert!(matches!(decision, Decision::Forward(_)), "with pending login {pending:?}: {:?}", cx.events);
        assert_eq!(cx.events, [Event::SessionAccepted]);
    }
}

/// The finding behind `regressions/flow/client-cookie-name-echoed-into-set-cookie`: with
/// too many logins pending, the filter clears their cookies by name; a name the client
/// made up (here with a CR) used to be echoed into `Set-Cookie`. Only names of the
/// filter's own form are cleared now.
#[test]
fn made_up_transaction_cookie_names_are_not_echoed() {
    use oidc_edge::entropy::SplitMix;
    use oidc_edge::flow::{Context, Decision};
    use oidc_edge::request::RequestView;
    use oidc_edge::store::MemoryStore;

    let ours = ["AAAAAAAAAAAA", "BBBBBBBBBBBB", "CCCCCCCCCCCC", "DDDDDDDDDDDD"].map(|id| format!("__Host-oidc_edge_tx.{id}=v"));
    let headers = format!(
        ":method: GET\n:scheme: https\n:authority: app.example.com\n:path: /\naccept: text/html\ncookie: {}; __Host-oidc_edge_tx.d\rX=4; __Host-oidc_edge_tx.\u{1}=5",
        ours.join("; ")
    );
    let req = RequestView::from_headers(targets::header_lines(headers.as_bytes()));
    let (mut store, mut entropy) = (MemoryStore::default(), SplitMix(1));
    let mut cx = Context { now: targets::NOW, provider: targets::ready_view(), store: &mut store, entropy: &mut entropy, events: vec![] };
    let Decision::Respond(r) = engine_request(&req, &mut cx) else { panic!("a browser without session is redirected") };
    let cleared: Vec<&str> = r.headers.iter().filter(|(n, v)| n == "set-cookie" && v.contains("Max-Age=0")).map(|(_, v)| v.split('=').next().unwrap()).collect();
    assert_eq!(cleared, ours.iter().map(|c| c.split('=').next().unwrap()).collect::<Vec<_>>(), "exactly the filter's own pending logins are cleared");
    assert!(r.headers.iter().all(|(_, v)| !v.bytes().any(|b| b < b' ')), "no control character in any response header");
}

fn engine_request(req: &oidc_edge::request::RequestView, cx: &mut oidc_edge::flow::Context<'_>) -> oidc_edge::flow::Decision {
    targets::engine().on_request(req, cx)
}

/// Rewrites the seeds that need keys or the harness's cookie secret (signed tokens, sealed
/// cookies, a callback carrying a real transaction). The other seeds are plain files.
/// `cargo test --test fuzz_regressions -- --ignored regenerate_seeds`
#[test]
#[ignore = "writes fuzz/seeds; run by hand after changing the harness"]
fn regenerate_seeds() {
    seeds::write_all();
}

mod seeds {
    use super::{fuzz_dir, targets};
    use oidc_edge::b64;
    use oidc_edge::entropy::SplitMix;
    use oidc_edge::flow::{Context, Decision};
    use oidc_edge::request::RequestView;
    use oidc_edge::session::Session;
    use oidc_edge::store::MemoryStore;
    use rsa::{BigUint, Pkcs1v15Sign, RsaPrivateKey};
    use serde_json::{json, Value};
    use sha2::{Digest, Sha256};

    fn write(target: &str, name: &str, data: &[u8]) {
        let dir = fuzz_dir().join("seeds").join(target);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(name), data).unwrap();
    }

    fn big(v: &Value) -> BigUint {
        BigUint::from_bytes_be(&b64::url_decode(v.as_str().unwrap()).unwrap())
    }

    fn sign_rs256(header: &Value, claims: &Value) -> String {
        let fixture: Value = serde_json::from_str(include_str!("fixtures/idp-keys.json")).unwrap();
        let k = &fixture["keys"][0];
        let key = RsaPrivateKey::from_components(big(&k["n"]), big(&k["e"]), big(&k["d"]), vec![big(&k["p"]), big(&k["q"])]).unwrap();
        let input = format!("{}.{}", b64::url_encode(header.to_string().as_bytes()), b64::url_encode(claims.to_string().as_bytes()));
        let sig = key.sign(Pkcs1v15Sign::new::<Sha256>(), &Sha256::digest(input.as_bytes())).unwrap();
        format!("{input}.{}", b64::url_encode(&sig))
    }

    fn sign_eddsa(header: &Value, claims: &Value) -> String {
        // RFC 8037 A.1 private key; PKCS#8 wraps the 32-byte seed after a fixed prefix.
        let seed = b64::url_decode("nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A").unwrap();
        let mut der = vec![0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20];
        der.extend_from_slice(&seed);
        let key = jsonwebtoken::EncodingKey::from_ed_der(&der);
        let input = format!("{}.{}", b64::url_encode(header.to_string().as_bytes()), b64::url_encode(claims.to_string().as_bytes()));
        let sig = jsonwebtoken::crypto::sign(input.as_bytes(), &key, jsonwebtoken::Algorithm::EdDSA).unwrap();
        format!("{input}.{sig}")
    }

    fn id_token_claims() -> Value {
        json!({
            "iss": targets::ISSUER, "sub": "alice", "aud": targets::CLIENT_ID, "azp": targets::CLIENT_ID,
            "exp": targets::NOW + 3600, "iat": targets::NOW - 10, "nbf": targets::NOW - 10,
            "nonce": targets::NONCE, "email": "alice@example.com",
            "at_hash": oidc_edge::jwt::claims::token_hash(targets::ACCESS_TOKEN, oidc_edge::jwt::Alg::RS256),
        })
    }

    pub fn write_all() {
        let rs = sign_rs256(&json!({"alg": "RS256", "kid": "k1", "typ": "JWT"}), &id_token_claims());
        write("jwt", "valid_rs256_id_token", rs.as_bytes());
        let mut ed_claims = id_token_claims();
        ed_claims["at_hash"] = json!(oidc_edge::jwt::claims::token_hash(targets::ACCESS_TOKEN, oidc_edge::jwt::Alg::EdDSA));
        let ed = sign_eddsa(&json!({"alg": "EdDSA", "kid": "ed"}), &ed_claims);
        write("jwt", "valid_eddsa_id_token", ed.as_bytes());

        // A token response carrying the signed ID token, for the flow target's exchange.
        let token_body = json!({"token_type": "Bearer", "access_token": targets::ACCESS_TOKEN, "id_token": rs, "expires_in": 300, "refresh_token": "r"}).to_string();

        // Sealed values: a session in one cookie and one in chunks.
        let session = Session {
            sub: "alice".into(),
            iss: targets::ISSUER.into(),
            email: Some("alice@example.com".into()),
            id_token: rs.clone(),
            access_token: Some(targets::ACCESS_TOKEN.into()),
            refresh_token: None,
            token_exp: targets::NOW + 3600,
            created: targets::NOW - 60,
            expires: targets::NOW + 8 * 3600,
        };
        let plain = serde_json::to_vec(&session).unwrap();
        let sealed = targets::sealer().seal(targets::SEAL_LABEL, &plain, &[1u8; 24]).unwrap();
        write("cookies", "sealed_session", format!("theme=dark; oidc_edge={sealed}; other=1").as_bytes());
        let big_value = targets::sealer().seal(targets::SEAL_LABEL, &vec![b'x'; 6000], &[2u8; 24]).unwrap();
        let parts = oidc_edge::session::cookies::split("oidc_edge", &big_value).unwrap();
        let header: Vec<String> = parts.iter().map(|(n, v)| format!("{n}={v}")).collect();
        write("cookies", "chunked_session", header.join("; ").as_bytes());

        // The flow: a browser that starts a login, then its callback with the real
        // transaction cookie and state, then the token answer; and a session request.
        let engine = targets::engine();
        let browser = ":method: GET\n:scheme: https\n:authority: app.example.com\n:path: /app/page?x=1\naccept: text/html\nsec-fetch-mode: navigate\nsec-fetch-dest: document";
        write("flow", "browser_start_login", browser.as_bytes());
        let req = RequestView::from_headers(targets::header_lines(browser.as_bytes()));
        let mut store = MemoryStore::default();
        let mut entropy = SplitMix(7);
        let mut cx = Context { now: targets::NOW, provider: targets::ready_view(), store: &mut store, entropy: &mut entropy, events: vec![] };
        let Decision::Respond(r) = engine.on_request(&req, &mut cx) else { panic!("a browser gets a redirect") };
        let location = &r.headers.iter().find(|(n, _)| n == "location").unwrap().1;
        let state = location.split("state=").nth(1).unwrap().split('&').next().unwrap();
        let set_cookie = &r.headers.iter().find(|(n, _)| n == "set-cookie").unwrap().1;
        let tx_cookie = set_cookie.split(';').next().unwrap();
        let cb_path = format!("/oauth2/callback?code=c0de&state={state}&iss={}", oidc_edge::http::percent_encode(targets::ISSUER));
        let callback = format!(":method: GET\n:scheme: https\n:authority: app.example.com\n:path: {cb_path}\naccept: text/html\ncookie: {tx_cookie}");
        write("flow", "callback_with_transaction", callback.as_bytes());
        // The ID token for this login carries the transaction's nonce (from the redirect).
        let nonce = location.split("nonce=").nth(1).unwrap().split('&').next().unwrap();
        let mut login_claims = id_token_claims();
        login_claims["nonce"] = json!(nonce);
        let login_token = sign_rs256(&json!({"alg": "RS256", "kid": "k1"}), &login_claims);
        let login_body = json!({"token_type": "Bearer", "access_token": targets::ACCESS_TOKEN, "id_token": login_token, "expires_in": 300}).to_string();
        write("flow", "callback_then_token_response", format!("{callback}\n\n200\n{login_body}").as_bytes());
        let completes = format!("{callback}\n\n200\n{login_body}");
        let (req_part, resp_part) = completes.split_once("\n\n").unwrap();
        let req = RequestView::from_headers(targets::header_lines(req_part.as_bytes()));
        let mut store = MemoryStore::default();
        let mut cx = Context { now: targets::NOW, provider: targets::ready_view(), store: &mut store, entropy: &mut entropy, events: vec![] };
        let Decision::Call(_, pending) = engine.on_request(&req, &mut cx) else { panic!("the callback seed must reach the exchange") };
        let resp = oidc_edge::http::CallResponse { status: 200, headers: vec![], body: resp_part.as_bytes()[4..].to_vec() };
        let done = engine.on_call_response(pending, Some(&resp), &mut cx);
        assert!(cx.events.contains(&oidc_edge::flow::Event::LoginCompleted), "the login seed must complete: {done:?} {:?}", cx.events);
        write("flow", "callback_then_token_error", format!("{callback}\n\n400\n{{\"error\":\"invalid_grant\"}}").as_bytes());
        // The callback's transaction was sealed with nonce and time of that run: check the seed
        // really reaches the code exchange.
        let req = RequestView::from_headers(targets::header_lines(callback.as_bytes()));
        let mut store = MemoryStore::default();
        let mut cx = Context { now: targets::NOW, provider: targets::ready_view(), store: &mut store, entropy: &mut entropy, events: vec![] };
        assert!(matches!(engine.on_request(&req, &mut cx), Decision::Call(..)), "the callback seed must reach the exchange");
        let label = format!("session:__Host-oidc_edge:{}", targets::CLIENT_ID);
        let app_session = targets::sealer().seal(&label, &plain, &[3u8; 24]).unwrap();
        let with_session = format!(":method: GET\n:scheme: https\n:authority: app.example.com\n:path: /app\naccept: text/html\ncookie: __Host-oidc_edge={app_session}; theme=dark\nauthorization: Bearer forged");
        write("flow", "request_with_session", with_session.as_bytes());
        let api = ":method: POST\n:scheme: http\n:authority: app.example.com\n:path: /api/items\naccept: application/json\nauthorization: Bearer abc";
        write("flow", "api_request", api.as_bytes());
        write("request", "api_request", api.as_bytes());
        write("request", "browser", browser.as_bytes());
        write("request", "websocket", b":method: GET\n:path: /ws\n:authority: h\nupgrade: websocket\nconnection: Upgrade");
        write("token_response", "ok", token_body.as_bytes());
        write("token_response", "error", b"400\n{\"error\":\"invalid_grant\",\"error_description\":\"expired\"}");
        write("token_response", "html_503", b"503\n<html>upstream connect error</html>");
        write("discovery", "good", targets::discovery_json().as_bytes());
        write("config", "good", targets::config_json().as_bytes());
        write("jwks", "harness_keys", targets::jwks_text().as_bytes());
        write("flow", "callback_idp_error", format!(":method: GET\n:scheme: https\n:authority: app.example.com\n:path: /oauth2/callback?error=access_denied&error_description=no&state={state}&iss={}\ncookie: {tx_cookie}", oidc_edge::http::percent_encode(targets::ISSUER)).as_bytes());
        write("flow", "open_redirect_attempt", b":method: GET\n:scheme: http\n:authority: app.example.com\n:path: //evil.example/%2F..\naccept: text/html");
        let d = targets::discovery_json();
        let k = targets::jwks_text();
        write("provider", "load_then_outages", format!("{d}\n--\n{k}\n--\n503\nupstream connect error\n--\n<html>login</html>\n--\n{{\"keys\":[]}}\n--\n{k}").as_bytes());
        write("provider", "rotation_and_moved_jwks", format!("{d}\n--\n{k}\n--\n{}\n--\n{}", d.replace("/jwks", "/jwks2"), r#"{"keys":[{"kty":"OKP","crv":"Ed25519","kid":"ed2","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}"#).as_bytes());
        static_seeds();
        let check = RequestView::from_headers(targets::header_lines(with_session.as_bytes()));
        let mut cx = Context { now: targets::NOW, provider: targets::ready_view(), store: &mut store, entropy: &mut entropy, events: vec![] };
        assert!(matches!(engine.on_request(&check, &mut cx), Decision::Forward(_)), "the session seed must open");
    }

    /// Seeds that need no key: shapes from the vectors and the edges of each format.
    fn static_seeds() {
        let vectors = |rel: &str| -> Vec<Value> {
            let text = std::fs::read_to_string(super::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors").join(rel)).unwrap();
            serde_json::from_str(&text).unwrap()
        };
        let verify = vectors("jwt_verify_lib/verify.json");
        let pick = |suffix: &str| verify.iter().find(|c| c["name"].as_str().unwrap().ends_with(suffix)).unwrap().clone();
        for (file, case) in [("upstream_rs256_nokid", "VerifyJwkRsaTest.NoKidOK"), ("upstream_es256_kid", "VerifyJwkECTest.KidOK"), ("upstream_eddsa_kid", "VerifyJwkOKPTest.KidOK"), ("upstream_ps256_keycloak", "Ps256CorrectKidOK"), ("upstream_hs256", "CorrectKidHS256OK")] {
            write("jwt", file, pick(case)["jwt"].as_str().unwrap().as_bytes());
        }
        let claims = id_token_claims().to_string();
        write("jwt", "structured_rs256", format!("#{{\"alg\":\"RS256\",\"kid\":\"k1\"}}\n{claims}\nsignature").as_bytes());
        write("jwt", "structured_none", format!("#{{\"alg\":\"none\"}}\n{claims}\n").as_bytes());
        write("jwt", "structured_embedded_jwk", format!("#{{\"alg\":\"ES256\",\"jwk\":{{\"kty\":\"EC\"}},\"crit\":[\"b64\"]}}\n{claims}\nxx").as_bytes());
        write("jwt", "structured_many_audiences", b"#{\"alg\":\"EdDSA\",\"kid\":\"ed\"}\n{\"iss\":\"https://idp.example.com\",\"aud\":[\"a\",\"oidc-edge-fuzz\"],\"azp\":\"x\",\"exp\":1.7e9,\"iat\":-1,\"nbf\":\"0\",\"sub\":\"\"}\n0123456789012345678901234567890123456789012345678901234567890123");

        let jwks_cases = vectors("jwt_verify_lib/jwks_parse.json");
        for (file, case) in [("upstream_good_rsa", "GoodJwks"), ("upstream_good_ec", "GoodEC"), ("upstream_ignore_unsupported", "JwksIgnoreUnsupportedKeyInMiddle"), ("upstream_rsa_pss", "fixture:PublicKeyRSAPSS"), ("upstream_hmac_strict", "fixture:SymmetricKeyHMAC")] {
            let c = jwks_cases.iter().find(|c| c["name"].as_str().unwrap().ends_with(case)).unwrap();
            write("jwks", file, c["jwks_strict"].as_str().or(c["jwks"].as_str()).unwrap().as_bytes());
        }
        write("jwks", "usage_and_ops", br#"{"keys":[{"kty":"RSA","use":"enc","n":"AQAB","e":"AQAB"},{"kty":"OKP","crv":"Ed25519","key_ops":["verify"],"x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"},{"kty":"EC","crv":"P-384","alg":"ES384","x":"","y":""}]}"#);

        write("discovery", "minimal_no_iss_param", format!(r#"{{"issuer":"{0}","authorization_endpoint":"{0}/a?x=1","token_endpoint":"http://127.0.0.1:9000/t","jwks_uri":"{0}/k","userinfo_endpoint":null}}"#, targets::ISSUER).as_bytes());
        write("discovery", "foreign_issuer", br#"{"issuer":"https://idp.example.com/","authorization_endpoint":"https://x/a"}"#);

        write("token_response", "dpop_string_expiry", br#"{"token_type":"DPoP","access_token":"a","id_token":"i","expires_in":"300"}"#);
        write("token_response", "no_id_token", br#"{"token_type":"bearer","access_token":"a","refresh_token":""}"#);

        write("cookies", "forgiving_syntax", b"a=1; b=\"2\";c; =x;  d = 4 \ne=\xff\xfe; f=6\noidc_edge_0=2~abc; oidc_edge_1=def; oidc_edge_01=x");

        write("config", "every_field", format!(r#"{{"issuer":"{}","idp_cluster":"idp","client_id":"c","client_secret":"s","token_endpoint_auth":"client_secret_post","cookie_secret":"{}","redirect_path":"/cb","redirect_uri":"https://app.example.com/cb","scopes":["email","openid","profile"],"clock_skew_seconds":30,"forward_token":"access_token","allowed_algorithms":["RS256","PS256","ES384","EdDSA"],"audiences":["c","api"],"idp_timeout":"3s","session_lifetime":"1d","login_timeout":"15m","jwks_refresh_interval":3600,"discovery_refresh_interval":"2h"}}"#, targets::ISSUER, b64::url_encode(&[9u8; 32])).as_bytes());
        write("config", "typo_field", br#"{"isuer":"https://i","client_id":5,"clock_skew_seconds":-1,"idp_timeout":"99999999999999999999d"}"#);

        write("callback", "code_state_iss", b"code=abc&state=xyz&iss=https%3A%2F%2Fidp.example.com");
        write("callback", "idp_error", b"error=access_denied&error_description=User%20said+no&state=s");
        write("callback", "repeated_and_bad_escapes", b"state=a&state=b&code=&error=%3Cscript%3E&x=%zz&%E2%9C%93=%F0%9F%98%80&flag");

        write("request", "forwarded_and_return_paths", b":method: GET\n:scheme: http\n:authority: app.example.com\n:path: /\\evil.example/%2f\nx-forwarded-proto: HTTPS, http\naccept: application/xhtml+xml\nx-requested-with: XMLHttpRequest\ncookie: a=1\ncookie: b=2");
    }
}

//! The fuzz targets' inputs as plain tests: every file of `fuzz/seeds/<target>/` (the seed
//! corpus) and `fuzz/regressions/<target>/` (inputs that once crashed, kept after the fix)
//! goes through the same harness function the fuzzer calls, so `cargo test` replays them
//! without libFuzzer. See fuzz/README.md.

#[path = "../fuzz/src/targets.rs"]
mod targets;

use std::path::{Path, PathBuf};

/// Targets whose harness lives outside `targets.rs` and whose inputs another test replays:
/// `annotations` needs the CLI crate (cli/tests/fuzz_regressions.rs).
const REPLAYED_ELSEWHERE: &[&str] = &["annotations"];

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
        if REPLAYED_ELSEWHERE.contains(&target.as_str()) {
            continue;
        }
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
        token_use: oidc_edge::jwt::TokenUse::Bearer,
    };
    let mut valid = 0;
    for name in ["valid_rs256_id_token", "valid_eddsa_id_token"] {
        let token = std::fs::read_to_string(fuzz_dir().join("seeds/jwt").join(name)).unwrap();
        jwt::validate(&token, targets::keys(), &rules, &Alg::ALL, oidc_edge::flow::MAX_TOKEN_BYTES).unwrap_or_else(|r| panic!("{name}: {r}"));
        valid += 1;
    }
    assert_eq!(valid, 2);
}

/// The headers of a request as the flow target reads them, and the world it runs in.
fn request(headers: &str) -> oidc_edge::request::RequestView {
    oidc_edge::request::RequestView::from_headers(targets::header_lines(headers.as_bytes()))
}

/// The finding behind `regressions/cookies/chunked-session-beside-login-cookie`, end to
/// end: a session too large for one cookie, and a login started in another tab (its
/// transaction cookie shares the session cookie's prefix). The session must still open;
/// it used to read as invalid, which sent the browser to the IdP and deleted the session.
#[test]
fn chunked_session_survives_a_login_in_another_tab() {
    use oidc_edge::entropy::SplitMix;
    use oidc_edge::flow::{Decision, Event};
    use oidc_edge::session::{cookies, Session};

    let session = Session {
        sub: "alice".into(),
        iss: targets::ISSUER.into(),
        email: None,
        id_token: "e".repeat(6000),
        access_token: None,
        refresh_token: None,
        extra_claims: Default::default(),
        token_exp: targets::NOW + 3600,
        created: targets::NOW,
        expires: targets::NOW + 3600,
    };
    let label = format!("session:__Host-oidc_edge:default:{}", targets::CLIENT_ID);
    let sealed = targets::sealer().seal(&label, &serde_json::to_vec(&session).unwrap(), &[5u8; 24]).unwrap();
    let chunks = cookies::split("__Host-oidc_edge", &sealed).unwrap();
    assert!(chunks.len() > 1, "the session needs chunks");
    let mut cookie: Vec<String> = chunks.iter().map(|(n, v)| format!("{n}={v}")).collect();
    for pending in [None, Some("__Host-oidc_edge_tx.AAAAAAAAAAAA=sealed-transaction")] {
        cookie.extend(pending.map(str::to_string));
        let req = request(&format!(":method: GET\n:scheme: https\n:authority: app.example.com\n:path: /\naccept: text/html\ncookie: {}", cookie.join("; ")));
        let mut world = targets::World::new();
        let mut events = vec![];
        let decision = world.step(targets::NOW, &mut SplitMix(1), &mut events, |e, cx| e.on_request(&req, cx));
        assert!(matches!(decision, Decision::Forward(_)), "with pending login {pending:?}: {events:?}");
        assert_eq!(events, [Event::SessionAccepted]);
    }
}

/// The finding behind `regressions/flow/client-cookie-name-echoed-into-set-cookie`: with
/// too many logins pending, the filter clears their cookies by name; a name the client
/// made up (here with a CR) used to be echoed into `Set-Cookie`. Only names of the
/// filter's own form are cleared now.
#[test]
fn made_up_transaction_cookie_names_are_not_echoed() {
    use oidc_edge::entropy::SplitMix;
    use oidc_edge::flow::Decision;

    // Nine of the filter's form (beyond the eight a browser may have pending) and two made up.
    let ours = ["A", "B", "C", "D", "E", "F", "G", "H", "I"].map(|id| format!("__Host-oidc_edge_tx.{}=v", id.repeat(12)));
    let req = request(&format!(
        ":method: GET\n:scheme: https\n:authority: app.example.com\n:path: /\naccept: text/html\ncookie: {}; __Host-oidc_edge_tx.d\rX=4; __Host-oidc_edge_tx.\u{1}=5",
        ours.join("; ")
    ));
    let mut world = targets::World::new();
    let Decision::Respond(r) = world.step(targets::NOW, &mut SplitMix(1), &mut vec![], |e, cx| e.on_request(&req, cx)) else {
        panic!("a browser without session is redirected")
    };
    let cleared: Vec<&str> = r.headers.iter().filter(|(n, v)| n == "set-cookie" && v.contains("Max-Age=0")).map(|(_, v)| v.split('=').next().unwrap()).collect();
    let names: Vec<&str> = ours.iter().map(|c| c.split('=').next().unwrap()).collect();
    assert_eq!(cleared.len(), 2, "room for the new login among eight: {cleared:?}");
    assert!(cleared.iter().all(|c| names.contains(c)), "only the filter's own pending logins are cleared: {cleared:?}");
    assert!(r.headers.iter().all(|(_, v)| !v.bytes().any(|b| b < b' ')), "no control character in any response header");
}

/// What each flow seed is for, checked on the steps the flow target takes with it: a
/// seed that no longer reaches its code (a changed label, a moved check) fails here
/// instead of silently fuzzing the front door only.
#[test]
fn flow_seeds_reach_their_code() {
    use oidc_edge::flow::Event;
    let expect: &[(&str, &[&str], Option<Event>)] = &[
        ("browser_start_login", &["respond"], Some(Event::LoginStarted)),
        ("callback_with_transaction", &["call", "respond"], Some(Event::LoginFailed(oidc_edge::error::Reason::TokenEndpointFailed))),
        ("callback_then_token_response", &["call", "respond"], Some(Event::LoginCompleted)),
        ("callback_then_token_error", &["call", "respond"], Some(Event::LoginFailed(oidc_edge::error::Reason::TokenEndpointFailed))),
        ("callback_idp_error", &["respond"], Some(Event::LoginFailed(oidc_edge::error::Reason::IdpError))),
        ("request_with_session", &["forward"], Some(Event::SessionAccepted)),
        ("api_request", &["respond"], Some(Event::TokenRejected(oidc_edge::error::Reason::TokenMalformed))),
        ("open_redirect_attempt", &["respond"], Some(Event::LoginStarted)),
        ("pass_through_with_forged_identity", &["forward"], Some(Event::PassThrough)),
        ("logout_with_session", &["respond"], Some(Event::Logout)),
        ("bearer_valid", &["forward"], Some(Event::TokenAccepted)),
        ("bearer_other_issuer", &["forward"], Some(Event::TokenAccepted)),
        ("bearer_forbidden_by_require", &["respond"], Some(Event::Forbidden)),
        ("websocket_query_token", &["forward"], Some(Event::TokenAccepted)),
        ("bearer_unknown_kid_then_jwks", &["wait", "respond"], Some(Event::TokenRejected(oidc_edge::error::Reason::KidUnknown))),
        ("bearer_unknown_kid_then_rotation", &["wait", "forward"], Some(Event::TokenAccepted)),
        ("bearer_structured_unknown_kid", &["wait", "respond"], Some(Event::KidRefetchRequested)),
        ("api_login_with_userinfo", &["call", "call", "respond"], Some(Event::LoginCompleted)),
        ("login_during_key_rotation", &["call", "wait", "respond"], Some(Event::LoginCompleted)),
        ("session_refresh", &["call", "forward"], Some(Event::SessionRefreshed)),
        ("session_refresh_fails_token_still_valid", &["call", "forward"], Some(Event::RefreshFailed(oidc_edge::error::Reason::TokenEndpointFailed))),
        ("session_refresh_during_key_rotation", &["call", "wait", "forward"], Some(Event::SessionRefreshed)),
        // The two findings: nothing calls out after a wait any more.
        ("api_login_with_userinfo_during_key_rotation", &["call", "call", "wait", "respond"], Some(Event::LoginCompleted)),
        ("bearer_wait_beside_expiring_session", &["wait", "forward"], Some(Event::SessionAccepted)),
    ];
    let dir = fuzz_dir().join("seeds").join("flow");
    for (name, kinds, event) in expect {
        let data = std::fs::read(dir.join(name)).unwrap_or_else(|e| panic!("seed flow/{name}: {e}"));
        let steps = targets::flow_trace(&data);
        let got: Vec<&str> = steps.iter().map(|s| s.kind).collect();
        assert_eq!(&got, kinds, "flow/{name}: {steps:?}");
        if let Some(event) = event {
            assert!(steps.iter().any(|s| s.events.contains(event)), "flow/{name} never counts {event:?}: {steps:?}");
        }
    }
}

/// The seeds that need keys or the harness's secrets are generated (`regenerate_seeds`);
/// generating them again gives the files in git, byte for byte (signatures and seals are
/// deterministic here), so they cannot drift from the harness world unnoticed.
#[test]
fn generated_seeds_are_current() {
    let mut stale = Vec::new();
    for (target, name, data) in seeds::all() {
        let path = fuzz_dir().join("seeds").join(&target).join(&name);
        if std::fs::read(&path).ok().as_deref() != Some(data.as_slice()) {
            stale.push(format!("{target}/{name}"));
        }
    }
    assert!(stale.is_empty(), "seeds differ from what the harness generates (run `cargo test --test fuzz_regressions -- --ignored regenerate_seeds`): {stale:?}");
}

/// Rewrites the seeds that need keys or the harness's cookie secret (signed tokens, sealed
/// cookies, a callback carrying a real transaction), and the other generated ones.
/// `cargo test --test fuzz_regressions -- --ignored regenerate_seeds`
#[test]
#[ignore = "writes fuzz/seeds; run by hand after changing the harness"]
fn regenerate_seeds() {
    for (target, name, data) in seeds::all() {
        let dir = fuzz_dir().join("seeds").join(&target);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(name), data).unwrap();
    }
}

mod seeds {
    use super::targets;
    use oidc_edge::b64;
    use oidc_edge::entropy::SplitMix;
    use oidc_edge::flow::Decision;
    use oidc_edge::session::Session;
    use rsa::{BigUint, Pkcs1v15Sign, RsaPrivateKey};
    use serde_json::{json, Value};
    use sha2::{Digest, Sha256};

    #[derive(Default)]
    pub struct Seeds(Vec<(String, String, Vec<u8>)>);

    impl Seeds {
        fn write(&mut self, target: &str, name: &str, data: &[u8]) {
            self.0.push((target.to_string(), name.to_string(), data.to_vec()));
        }
    }

    fn big(v: &Value) -> BigUint {
        BigUint::from_bytes_be(&b64::url_decode(v.as_str().unwrap()).unwrap())
    }

    /// RS256 with the first key of a fixture file (`idp-keys.json`: k1, `idp-keys-rotated.json`: k2).
    fn sign_rs256_with(fixture: &str, header: &Value, claims: &Value) -> String {
        let fixture: Value = serde_json::from_str(fixture).unwrap();
        let k = &fixture["keys"][0];
        let key = RsaPrivateKey::from_components(big(&k["n"]), big(&k["e"]), big(&k["d"]), vec![big(&k["p"]), big(&k["q"])]).unwrap();
        let input = format!("{}.{}", b64::url_encode(header.to_string().as_bytes()), b64::url_encode(claims.to_string().as_bytes()));
        let sig = key.sign(Pkcs1v15Sign::new::<Sha256>(), &Sha256::digest(input.as_bytes())).unwrap();
        format!("{input}.{}", b64::url_encode(&sig))
    }

    fn sign_rs256(header: &Value, claims: &Value) -> String {
        sign_rs256_with(include_str!("fixtures/idp-keys.json"), header, claims)
    }

    fn sign_k2(claims: &Value) -> String {
        sign_rs256_with(include_str!("fixtures/idp-keys-rotated.json"), &json!({"alg": "RS256", "kid": "k2"}), claims)
    }

    /// The JWKS of the IdP after a rotation: `k2` beside the harness keys.
    fn rotated_jwks() -> String {
        let k2: Value = serde_json::from_str(include_str!("fixtures/idp-keys-rotated.json")).unwrap();
        let k2 = &k2["keys"][0];
        let mut set: Value = serde_json::from_str(&targets::jwks_text()).unwrap();
        set["keys"].as_array_mut().unwrap().push(json!({"kty": "RSA", "kid": "k2", "use": "sig", "alg": "RS256", "n": k2["n"], "e": k2["e"]}));
        set.to_string()
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

    /// Claims of an access token for the API profile (no nonce, no at_hash).
    fn access_claims(sub: &str) -> Value {
        json!({"iss": targets::ISSUER, "sub": sub, "aud": targets::CLIENT_ID, "exp": targets::NOW + 3600, "iat": targets::NOW - 10, "groups": ["g-1", "devs"], "org": {"tenant": "t1"}})
    }

    fn token_answer(id_token: &str) -> String {
        format!("200\n{}", json!({"token_type": "Bearer", "access_token": targets::ACCESS_TOKEN, "id_token": id_token, "expires_in": 300, "refresh_token": "r2"}))
    }

    fn headers(host: &str, path: &str, extra: &str) -> String {
        format!(":method: GET\n:scheme: https\n:authority: {host}\n:path: {path}\naccept: text/html\nsec-fetch-mode: navigate\nsec-fetch-dest: document{extra}")
    }

    /// A browser that starts a login at `host`: its redirect's state and nonce, and the
    /// transaction cookie it was given.
    struct Login {
        browser: String,
        state: String,
        nonce: String,
        tx_cookie: String,
    }

    fn start_login(host: &str) -> Login {
        let browser = headers(host, "/app/page?x=1", "");
        let req = super::request(&browser);
        let mut world = targets::World::new();
        let Decision::Respond(r) = world.step(targets::NOW, &mut SplitMix(7), &mut vec![], |e, cx| e.on_request(&req, cx)) else {
            panic!("a browser gets a redirect")
        };
        let location = &r.headers.iter().find(|(n, _)| n == "location").unwrap().1;
        let param = |name: &str| location.split(&format!("{name}=")).nth(1).unwrap().split('&').next().unwrap().to_string();
        let set_cookie = &r.headers.iter().find(|(n, _)| n == "set-cookie").unwrap().1;
        Login { browser, state: param("state"), nonce: param("nonce"), tx_cookie: set_cookie.split(';').next().unwrap().to_string() }
    }

    impl Login {
        fn callback(&self, host: &str, query: &str) -> String {
            let iss = oidc_edge::http::percent_encode(targets::ISSUER);
            headers(host, &format!("/oauth2/callback?{query}&state={}&iss={iss}", self.state), &format!("\ncookie: {}", self.tx_cookie))
        }

        fn id_token(&self, sign: impl Fn(&Value) -> String) -> String {
            let mut claims = id_token_claims();
            claims["nonce"] = json!(self.nonce);
            sign(&claims)
        }
    }

    fn session(id_token: &str, refresh_token: Option<&str>, token_exp: u64) -> Vec<u8> {
        serde_json::to_vec(&Session {
            sub: "alice".into(),
            iss: targets::ISSUER.into(),
            email: Some("alice@example.com".into()),
            id_token: id_token.to_string(),
            access_token: Some(targets::ACCESS_TOKEN.into()),
            refresh_token: refresh_token.map(str::to_string),
            extra_claims: Default::default(),
            token_exp,
            created: targets::NOW - 60,
            expires: targets::NOW + 8 * 3600,
        })
        .unwrap()
    }

    /// Every generated seed, in a fixed order.
    pub fn all() -> Vec<(String, String, Vec<u8>)> {
        let mut out = Seeds::default();
        let rs = sign_rs256(&json!({"alg": "RS256", "kid": "k1", "typ": "JWT"}), &id_token_claims());
        out.write("jwt", "valid_rs256_id_token", rs.as_bytes());
        let mut ed_claims = id_token_claims();
        ed_claims["at_hash"] = json!(oidc_edge::jwt::claims::token_hash(targets::ACCESS_TOKEN, oidc_edge::jwt::Alg::EdDSA));
        let ed = sign_eddsa(&json!({"alg": "EdDSA", "kid": "ed"}), &ed_claims);
        out.write("jwt", "valid_eddsa_id_token", ed.as_bytes());

        // A token response carrying the signed ID token.
        let token_body = json!({"token_type": "Bearer", "access_token": targets::ACCESS_TOKEN, "id_token": rs, "expires_in": 300, "refresh_token": "r"}).to_string();

        // Sealed values: a session in one cookie and one in chunks (under the cookies
        // target's label).
        let plain = session(&rs, None, targets::NOW + 3600);
        let sealed = targets::sealer().seal(targets::SEAL_LABEL, &plain, &[1u8; 24]).unwrap();
        out.write("cookies", "sealed_session", format!("theme=dark; oidc_edge={sealed}; other=1").as_bytes());
        let big_value = targets::sealer().seal(targets::SEAL_LABEL, &vec![b'x'; 6000], &[2u8; 24]).unwrap();
        let parts = oidc_edge::session::cookies::split("oidc_edge", &big_value).unwrap();
        let header: Vec<String> = parts.iter().map(|(n, v)| format!("{n}={v}")).collect();
        out.write("cookies", "chunked_session", header.join("; ").as_bytes());

        // The browser app (default profile): a login, its callback with the real
        // transaction cookie and state, the token endpoint's answers.
        let app = "app.example.com";
        let login = start_login(app);
        out.write("flow", "browser_start_login", login.browser.as_bytes());
        let callback = login.callback(app, "code=c0de");
        out.write("flow", "callback_with_transaction", callback.as_bytes());
        let login_token = login.id_token(|c| sign_rs256(&json!({"alg": "RS256", "kid": "k1"}), c));
        out.write("flow", "callback_then_token_response", format!("{callback}\n\n{}", token_answer(&login_token)).as_bytes());
        out.write("flow", "callback_then_token_error", format!("{callback}\n\n400\n{{\"error\":\"invalid_grant\"}}").as_bytes());
        out.write("flow", "callback_idp_error", login.callback(app, "error=access_denied&error_description=no").as_bytes());
        // The IdP rotated to k2 before the login: the ID token's kid is new, the request
        // waits for the refetch, which brings k2.
        let rotated_token = login.id_token(sign_k2);
        out.write("flow", "login_during_key_rotation", format!("{callback}\n\n{}\n--\n{}", token_answer(&rotated_token), rotated_jwks()).as_bytes());

        // The API profile (routes[0]): userinfo, SameSite=Strict.
        let api = targets::API_HOST;
        let api_login = start_login(api);
        let api_callback = api_login.callback(api, "code=c0de");
        let api_token = api_login.id_token(|c| sign_rs256(&json!({"alg": "RS256", "kid": "k1"}), c));
        let userinfo = json!({"sub": "alice", "groups": ["g-1", "ops"], "org": {"tenant": "t1"}, "email": "other@example.com"});
        out.write("flow", "api_login_with_userinfo", format!("{api_callback}\n\n{}\n--\n200\n{userinfo}", token_answer(&api_token)).as_bytes());
        let api_rotated = api_login.id_token(sign_k2);
        out.write(
            "flow",
            "api_login_with_userinfo_during_key_rotation",
            format!("{api_callback}\n\n{}\n--\n200\n{userinfo}\n--\n{}", token_answer(&api_rotated), rotated_jwks()).as_bytes(),
        );

        // Sessions: the app's, and the API profile's about to be refreshed.
        let label = format!("session:__Host-oidc_edge:default:{}", targets::CLIENT_ID);
        let app_session = targets::sealer().seal(&label, &plain, &[3u8; 24]).unwrap();
        let with_session = headers(app, "/app", &format!("\ncookie: __Host-oidc_edge={app_session}; theme=dark\nx-auth-request-user: mallory"));
        out.write("flow", "request_with_session", with_session.as_bytes());
        out.write("flow", "logout_with_session", format!(":method: POST\n:scheme: https\n:authority: {app}\n:path: /oauth2/logout\norigin: https://{app}\ncookie: __Host-oidc_edge={app_session}; __Host-oidc_edge_tx.AAAAAAAAAAAA=x").as_bytes());
        let api_label = format!("session:__Host-oidc_edge-1:routes[0]:{}", targets::CLIENT_ID);
        let expiring = targets::sealer().seal(&api_label, &session(&rs, Some("r1"), targets::NOW + 30), &[4u8; 24]).unwrap();
        let api_session = headers(api, "/dashboard", &format!("\ncookie: __Host-oidc_edge-1={expiring}"));
        let mut refreshed_claims = access_claims("alice");
        refreshed_claims["azp"] = json!(targets::CLIENT_ID);
        let refreshed = sign_rs256(&json!({"alg": "RS256", "kid": "k1"}), &refreshed_claims);
        out.write("flow", "session_refresh", format!("{api_session}\n\n{}", token_answer(&refreshed)).as_bytes());
        out.write("flow", "session_refresh_fails_token_still_valid", format!("{api_session}\n\n503\nupstream connect error").as_bytes());
        let refreshed_k2 = sign_k2(&refreshed_claims);
        out.write("flow", "session_refresh_during_key_rotation", format!("{api_session}\n\n{}\n--\n{}", token_answer(&refreshed_k2), rotated_jwks()).as_bytes());

        // Bearer tokens on the API profile.
        let bearer = |token: &str, path: &str| format!(":method: GET\n:scheme: https\n:authority: {api}\n:path: {path}\naccept: application/json\nauthorization: Bearer {token}\nx-groups: forged");
        let access = sign_rs256(&json!({"alg": "RS256", "kid": "k1"}), &access_claims("alice"));
        out.write("flow", "bearer_valid", bearer(&access, "/api/items").as_bytes());
        let partner = sign_eddsa(&json!({"alg": "EdDSA", "kid": "ed"}), &json!({"iss": targets::OTHER_ISSUER, "sub": "bob", "aud": "api", "exp": targets::NOW + 600}));
        out.write("flow", "bearer_other_issuer", bearer(&partner, "/api/items").as_bytes());
        let mallory = sign_rs256(&json!({"alg": "RS256", "kid": "k1"}), &access_claims("mallory"));
        out.write("flow", "bearer_forbidden_by_require", bearer(&mallory, "/api/items").as_bytes());
        out.write("flow", "websocket_query_token", format!(":method: GET\n:scheme: https\n:authority: {api}\n:path: /ws?x=1&access_token={access}\nupgrade: websocket\nconnection: Upgrade\nsec-websocket-protocol: chat").as_bytes());
        let unknown_kid = sign_k2(&access_claims("alice"));
        out.write("flow", "bearer_unknown_kid_then_jwks", format!("{}\n\n{}", bearer(&unknown_kid, "/api/items"), targets::jwks_text()).as_bytes());
        out.write("flow", "bearer_unknown_kid_then_rotation", format!("{}\n\n{}", bearer(&unknown_kid, "/api/items"), rotated_jwks()).as_bytes());
        // A bearer token waiting for keys beside a session that wants a refresh.
        out.write(
            "flow",
            "bearer_wait_beside_expiring_session",
            format!("{}\ncookie: __Host-oidc_edge-1={expiring}\n\n{}\n--\n{}", bearer(&unknown_kid, "/dashboard"), targets::jwks_text(), token_answer(&refreshed)).as_bytes(),
        );
        let claims = access_claims("alice").to_string();
        out.write("flow", "bearer_structured_unknown_kid", format!(":method: GET\n:scheme: https\n:authority: {api}\n:path: /api/x\naccept: application/json\n:jwt: {{\"alg\":\"RS256\",\"kid\":\"k9\"}}\t{claims}\tsig\n\n503\nno").as_bytes());

        let api_plain = ":method: POST\n:scheme: http\n:authority: app.example.com\n:path: /api/items\naccept: application/json\nauthorization: Bearer abc";
        out.write("flow", "api_request", api_plain.as_bytes());
        out.write("flow", "open_redirect_attempt", b":method: GET\n:scheme: http\n:authority: app.example.com\n:path: //evil.example/%2F..\naccept: text/html");
        out.write(
            "flow",
            "pass_through_with_forged_identity",
            format!(":method: GET\n:scheme: https\n:authority: {app}\n:path: {}\nauthorization: Bearer forged\nx-auth-request-user: admin\ncookie: a=1; __Host-oidc_edge={app_session}", targets::PASS_THROUGH).as_bytes(),
        );

        out.write("request", "api_request", api_plain.as_bytes());
        out.write("request", "browser", login.browser.as_bytes());
        out.write("request", "websocket", b":method: GET\n:path: /ws\n:authority: h\nupgrade: websocket\nconnection: Upgrade");
        out.write("token_response", "ok", token_body.as_bytes());
        out.write("token_response", "error", b"400\n{\"error\":\"invalid_grant\",\"error_description\":\"expired\"}");
        out.write("token_response", "html_503", b"503\n<html>upstream connect error</html>");
        out.write("discovery", "good", targets::discovery_json().as_bytes());
        out.write("config", "good", targets::config_json().as_bytes());
        out.write("jwks", "harness_keys", targets::jwks_text().as_bytes());
        out.write("jwks", "rotated", rotated_jwks().as_bytes());
        let d = targets::discovery_json();
        let k = targets::jwks_text();
        out.write("provider", "load_then_outages", format!("{d}\n--\n{k}\n--\n503\nupstream connect error\n--\n<html>login</html>\n--\n{{\"keys\":[]}}\n--\n{k}").as_bytes());
        out.write("provider", "rotation_and_moved_jwks", format!("{d}\n--\n{k}\n--\n{}\n--\n{}", d.replace("/jwks", "/jwks2"), r#"{"keys":[{"kty":"OKP","crv":"Ed25519","kid":"ed2","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}"#).as_bytes());
        out.write("provider", "add_rotation_with_kid_refetch", format!("#add\n{d}\n--\n{k}\n--\n!kid\n{}\n--\n!kid\n503\nbusy\n--\n{k}", rotated_jwks()).as_bytes());
        out.write("provider", "expire_after_rotation", format!("#expire_after\n{d}\n--\n{}\n--\n{k}\n--\n{k}\n--\n{k}", rotated_jwks()).as_bytes());
        // The rsa target: the fixture key and a real RS256 signature (mode 3: e = 65537 from
        // the input), and made-up e = 3 keys of each size and hash (mode 0).
        let k1: Value = serde_json::from_str(include_str!("fixtures/idp-keys.json")).unwrap();
        let (signing_input, sig) = rs.rsplit_once('.').unwrap();
        let mut k1_seed = vec![3u8, 0];
        k1_seed.extend(b64::url_decode(k1["keys"][0]["n"].as_str().unwrap()).unwrap());
        k1_seed.extend(b64::url_decode(sig).unwrap());
        k1_seed.extend(signing_input.as_bytes());
        out.write("rsa", "fixture_key_rs256", &k1_seed);
        for (name, shape, flip) in [("made_up_e3_2048_sha256", 0u8, 5u8), ("made_up_e3_3072_sha384", 4, 200), ("made_up_e3_4096_sha512", 8, 77)] {
            let s_len = (8 * [256usize, 384, 512][usize::from(shape % 3)] / 3).div_ceil(8);
            let mut seed = vec![0u8, shape];
            seed.extend((0..s_len).map(|i| (i as u8).wrapping_mul(151).wrapping_add(shape)));
            seed.push(flip);
            seed.extend(format!("{signing_input}-{name}").as_bytes());
            out.write("rsa", name, &seed);
        }
        static_seeds(&mut out);
        out.0
    }

    /// Seeds that need no key: shapes from the vectors and the edges of each format.
    fn static_seeds(out: &mut Seeds) {
        let vectors = |rel: &str| -> Vec<Value> {
            let text = std::fs::read_to_string(super::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors").join(rel)).unwrap();
            serde_json::from_str(&text).unwrap()
        };
        let verify = vectors("jwt_verify_lib/verify.json");
        let pick = |suffix: &str| verify.iter().find(|c| c["name"].as_str().unwrap().ends_with(suffix)).unwrap().clone();
        for (file, case) in [("upstream_rs256_nokid", "VerifyJwkRsaTest.NoKidOK"), ("upstream_es256_kid", "VerifyJwkECTest.KidOK"), ("upstream_eddsa_kid", "VerifyJwkOKPTest.KidOK"), ("upstream_ps256_keycloak", "Ps256CorrectKidOK"), ("upstream_hs256", "CorrectKidHS256OK")] {
            out.write("jwt", file, pick(case)["jwt"].as_str().unwrap().as_bytes());
        }
        let claims = id_token_claims().to_string();
        out.write("jwt", "structured_rs256", format!("#{{\"alg\":\"RS256\",\"kid\":\"k1\"}}\n{claims}\nsignature").as_bytes());
        out.write("jwt", "structured_none", format!("#{{\"alg\":\"none\"}}\n{claims}\n").as_bytes());
        out.write("jwt", "structured_embedded_jwk", format!("#{{\"alg\":\"ES256\",\"jwk\":{{\"kty\":\"EC\"}},\"crit\":[\"b64\"]}}\n{claims}\nxx").as_bytes());
        out.write("jwt", "structured_many_audiences", b"#{\"alg\":\"EdDSA\",\"kid\":\"ed\"}\n{\"iss\":\"https://idp.example.com\",\"aud\":[\"a\",\"oidc-edge-fuzz\"],\"azp\":\"x\",\"exp\":1.7e9,\"iat\":-1,\"nbf\":\"0\",\"sub\":\"\"}\n0123456789012345678901234567890123456789012345678901234567890123");

        let jwks_cases = vectors("jwt_verify_lib/jwks_parse.json");
        for (file, case) in [("upstream_good_rsa", "GoodJwks"), ("upstream_good_ec", "GoodEC"), ("upstream_ignore_unsupported", "JwksIgnoreUnsupportedKeyInMiddle"), ("upstream_rsa_pss", "fixture:PublicKeyRSAPSS"), ("upstream_hmac_strict", "fixture:SymmetricKeyHMAC")] {
            let c = jwks_cases.iter().find(|c| c["name"].as_str().unwrap().ends_with(case)).unwrap();
            out.write("jwks", file, c["jwks_strict"].as_str().or(c["jwks"].as_str()).unwrap().as_bytes());
        }
        out.write("jwks", "usage_and_ops", br#"{"keys":[{"kty":"RSA","use":"enc","n":"AQAB","e":"AQAB"},{"kty":"OKP","crv":"Ed25519","key_ops":["verify"],"x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"},{"kty":"EC","crv":"P-384","alg":"ES384","x":"","y":""}]}"#);

        out.write("discovery", "minimal_no_iss_param", format!(r#"{{"issuer":"{0}","authorization_endpoint":"{0}/a?x=1","token_endpoint":"http://127.0.0.1:9000/t","jwks_uri":"{0}/k","userinfo_endpoint":null}}"#, targets::ISSUER).as_bytes());
        out.write("discovery", "foreign_issuer", br#"{"issuer":"https://idp.example.com/","authorization_endpoint":"https://x/a"}"#);

        out.write("token_response", "dpop_string_expiry", br#"{"token_type":"DPoP","access_token":"a","id_token":"i","expires_in":"300"}"#);
        out.write("token_response", "no_id_token", br#"{"token_type":"bearer","access_token":"a","refresh_token":""}"#);

        out.write("cookies", "forgiving_syntax", b"a=1; b=\"2\";c; =x;  d = 4 \ne=\xff\xfe; f=6\noidc_edge_0=2~abc; oidc_edge_1=def; oidc_edge_01=x");

        out.write("config", "every_field", format!(r#"{{"issuer":"{}","idp_cluster":"idp","client_id":"c","client_secret":"s","token_endpoint_auth":"client_secret_post","cookie_secret":"{}","redirect_path":"/cb","redirect_uri":"https://app.example.com/cb","scopes":["email","openid","profile"],"clock_skew_seconds":30,"forward_token":"access_token","allowed_algorithms":["RS256","PS256","ES384","EdDSA"],"audiences":["c","api"],"idp_timeout":"3s","session_lifetime":"1d","login_timeout":"15m","jwks_refresh_interval":3600,"discovery_refresh_interval":"2h"}}"#, targets::ISSUER, b64::url_encode(&[9u8; 32])).as_bytes());
        out.write("config", "typo_field", br#"{"isuer":"https://i","client_id":5,"clock_skew_seconds":-1,"idp_timeout":"99999999999999999999d"}"#);

        out.write("callback", "code_state_iss", b"code=abc&state=xyz&iss=https%3A%2F%2Fidp.example.com");
        out.write("callback", "idp_error", b"error=access_denied&error_description=User%20said+no&state=s");
        out.write("callback", "repeated_and_bad_escapes", b"state=a&state=b&code=&error=%3Cscript%3E&x=%zz&%E2%9C%93=%F0%9F%98%80&flag");

        out.write("request", "forwarded_and_return_paths", b":method: GET\n:scheme: http\n:authority: app.example.com\n:path: /\\evil.example/%2f\nx-forwarded-proto: HTTPS, http\naccept: application/xhtml+xml\nx-requested-with: XMLHttpRequest\ncookie: a=1\ncookie: b=2");
    }
}

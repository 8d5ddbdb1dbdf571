//! Configuration parsing: defaults, every refusal and its message, routes and providers.

use super::*;
use serde_json::json;

pub(crate) fn minimal() -> Value {
    json!({
        "issuer": "https://idp.example.com",
        "idp_cluster": "idp",
        "client_id": "app",
        "client_secret": "s3cret",
        "cookie_secret": b64::std_encode(&[7u8; 32]),
    })
}

fn with(patch: Value) -> Result<Settings, ConfigError> {
    let mut base = minimal();
    if let (Value::Object(b), Value::Object(p)) = (&mut base, patch) {
        for (k, v) in p {
            if v.is_null() {
                b.remove(&k);
            } else {
                b.insert(k, v);
            }
        }
    }
    Settings::from_json(base.to_string().as_bytes())
}

fn profile(s: &Settings) -> &Profile {
    &s.profiles[0]
}

#[test]
fn defaults() {
    let s = with(json!({})).unwrap();
    let p = profile(&s);
    let prov = &s.providers[p.provider];
    assert_eq!(prov.discovery.as_ref().unwrap().url(), "https://idp.example.com/.well-known/openid-configuration");
    assert_eq!(p.client_auth, ClientAuth::Basic);
    assert_eq!(p.redirect_path, "/oauth2/callback");
    assert_eq!(p.scope, "openid profile email");
    assert_eq!(p.clock_skew, 60);
    assert_eq!(p.forward_token, ForwardToken::IdToken);
    assert_eq!(p.allowed_algorithms, vec![Alg::RS256]);
    assert_eq!(p.audiences, vec!["app".to_string()]);
    assert_eq!(prov.timeout_ms, 5000);
    assert_eq!(prov.jwks_refresh_interval, 3600);
    assert_eq!(prov.rotation, Rotation::Replace);
    assert_eq!(prov.kid_refetch_cooldown, 30);
    assert_eq!(p.cookie.name, "oidc_edge");
    assert_eq!(p.cookie.same_site, SameSite::Lax);
    assert_eq!(p.logout_path, "/oauth2/logout");
    assert_eq!(p.login_path, "/oauth2/login");
    assert_eq!(p.token_cache_size, 1024);
    assert!(s.routes.is_empty());
}

#[test]
fn trailing_slash_issuer_keeps_issuer_exact() {
    let s = with(json!({"issuer": "https://idp.example.com/realm/"})).unwrap();
    let prov = &s.providers[0];
    assert_eq!(prov.issuer, "https://idp.example.com/realm/");
    assert_eq!(prov.discovery.as_ref().unwrap().path, "/realm/.well-known/openid-configuration");
}

#[test]
fn openid_always_first_and_once() {
    let s = with(json!({"scopes": ["email", "openid", "groups", "email"]})).unwrap();
    assert_eq!(profile(&s).scope, "openid email groups");
    let s = with(json!({"scopes": []})).unwrap();
    assert_eq!(profile(&s).scope, "openid");
}

#[test]
fn errors_name_the_field() {
    let cases: Vec<(Value, &str, &str)> = vec![
        (json!({"issuer": null}), "issuer", "required"),
        (json!({"issuer": "idp.example.com"}), "issuer", "absolute"),
        (json!({"issuer": "https://i/?a=b"}), "issuer", "query"),
        (json!({"issuer": 5}), "issuer", "must be a string"),
        (json!({"idp_cluster": ""}), "idp_cluster", "empty"),
        (json!({"client_id": null}), "client_id", "required"),
        (json!({"client_secret": null}), "client_secret", "required"),
        (json!({"client_secret": {"env": "NOPE"}}), "client_secret", "vmConfig.env"),
        (json!({"client_secret": {"vault": "x"}}), "client_secret", "{\"env\""),
        (json!({"cookie_secret": "c2hvcnQ="}), "cookie_secret", "32 bytes"),
        (json!({"cookie_secret": "!!!"}), "cookie_secret", "base64"),
        (json!({"cookie_secret": null}), "cookie_secret", "required"),
        (json!({"cookie_secrets": []}), "cookie_secrets", "either"),
        (json!({"cookie_secret": null, "cookie_secrets": []}), "cookie_secrets", "at least one"),
        (json!({"cookie_name": "__Host-x"}), "cookie_name", "__"),
        (json!({"cookie_name": "a b"}), "cookie_name", "letters"),
        (json!({"cookie_same_site": "sometimes"}), "cookie_same_site", "lax"),
        (json!({"cookie_domain": "https://x"}), "cookie_domain", "domain"),
        (json!({"token_endpoint_auth": "tls_client_auth"}), "token_endpoint_auth", "private_key_jwt"),
        (json!({"token_endpoint_auth": "private_key_jwt"}), "client_secret", "not used with `private_key_jwt`"),
        (json!({"token_endpoint_auth": "private_key_jwt", "client_secret": null}), "client_private_key", "required"),
        (json!({"token_endpoint_auth": "private_key_jwt", "client_secret": null, "client_private_key": "secret"}), "client_private_key", "not PEM"),
        (json!({"token_endpoint_auth": "private_key_jwt", "client_secret": null, "client_private_key": {"env": "NOPE"}}), "client_private_key", "vmConfig.env"),
        (json!({"client_key_id": "k"}), "client_key_id", "only used with"),
        (json!({"client_assertion_audience": "issuer"}), "client_assertion_audience", "only used with"),
        (json!({"token_endpoint_auth": "client_secret_jwt", "client_secret": "x".repeat(32), "client_assertion_audience": "both"}), "client_assertion_audience", "`token_endpoint` or `issuer`"),
        (json!({"client_private_key": "x"}), "client_private_key", "only used with"),
        (json!({"token_endpoint_auth": "client_secret_jwt"}), "client_secret", "32 characters"),
        (json!({"redirect_path": "callback"}), "redirect_path", "absolute path"),
        (json!({"redirect_path": "//x"}), "redirect_path", "absolute path"),
        (json!({"redirect_uri": "https://app/other"}), "redirect_uri", "redirect_path"),
        (json!({"redirect_uri": "app/oauth2/callback"}), "redirect_uri", "absolute"),
        (json!({"scopes": "openid"}), "scopes", "list of strings"),
        (json!({"scopes": ["a b"]}), "scopes", "scope token"),
        (json!({"auth_query_params": {"prompt": "login"}}), "auth_query_params", "list of strings"),
        (json!({"auth_query_params": {"state": ["x"]}}), "auth_query_params", "sets it itself"),
        (json!({"userinfo": "yes"}), "userinfo", "true or false"),
        (json!({"clock_skew_seconds": -1}), "clock_skew_seconds", "whole number"),
        (json!({"clock_skew_seconds": 3600}), "clock_skew_seconds", "between"),
        (json!({"forward_token": "both"}), "forward_token", "id_token"),
        (json!({"allowed_algorithms": ["HS256"]}), "allowed_algorithms", "never accepted"),
        (json!({"allowed_algorithms": ["none"]}), "allowed_algorithms", "not supported"),
        (json!({"allowed_algorithms": []}), "allowed_algorithms", "at least one"),
        (json!({"audiences": []}), "audiences", "at least one"),
        (json!({"idp_timeout": "forever"}), "idp_timeout", "duration"),
        (json!({"jwks_refresh_interval": "10s"}), "jwks_refresh_interval", "between 1m and 30d"),
        (json!({"jwks_refresh_interval": "31d"}), "jwks_refresh_interval", "between"),
        (json!({"jwks_refresh_interval": "7d"}), "max_key_staleness", "is 1d, not longer than jwks_refresh_interval (7d)"),
        (json!({"jwks_refresh_interval": "1m", "max_key_staleness": "1m"}), "max_key_staleness", "refused between two scheduled fetches"),
        (json!({"key_rotation": "rotate"}), "key_rotation", "replace"),
        (json!({"key_rotation": "expire_after", "key_overlap": "10m"}), "key_overlap", "between 1h and 1d"),
        (json!({"key_overlap": "2h"}), "key_overlap", "expire_after"),
        (json!({"jwks": {"keys": []}}), "jwks", "empty"),
        (json!({"jwks": {"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}, "jwks_uri": "https://x/j"}), "jwks", "private"),
        (json!({"token_endpoint": "/token"}), "token_endpoint", "absolute"),
        (json!({"api_paths": ["api"]}), "api_paths", "absolute path"),
        (json!({"pass_through_paths": "/healthz"}), "pass_through_paths", "list of strings"),
        (json!({"allowed_origins": ["https://a.example.com/"]}), "allowed_origins", "origin"),
        (json!({"claim_headers": {"X Bad": "sub"}}), "claim_headers", "valid header"),
        (json!({"claim_headers": {"Authorization": "sub"}}), "claim_headers", "set by the filter"),
        (json!({"auth_query_params": {"max_age": ["1h"]}}), "auth_query_params", "one number of seconds"),
        (json!({"auth_query_params": {"max_age": ["60", "70"]}}), "auth_query_params", "one number of seconds"),
        (json!({"claim_headers": {"Keep-Alive": "sub"}}), "claim_headers", "steers the connection"),
        (json!({"claim_headers": {"X-Forwarded-For": "sub"}}), "claim_headers", "steers the connection"),
        (json!({"claim_headers": {"x-envoy-upstream-rq-timeout-ms": "sub"}}), "claim_headers", "steers the connection"),
        (json!({"claim_headers": {"X-Forwarded-Client-Cert": "sub"}}), "claim_headers", "steers the connection"),
        (json!({"claim_headers": {"X-Forwarded-Prefix": "sub"}}), "claim_headers", "steers the connection"),
        (json!({"claim_headers": {"Sec-WebSocket-Protocol": "sub"}}), "claim_headers", "steers the connection"),
        (json!({"claim_headers": {"TE": "sub"}}), "claim_headers", "steers the connection"),
        (json!({"claim_headers": {"X-A": "a..b"}}), "claim_headers", "claim path"),
        (json!({"claim_map": {"groups": ["a"]}}), "claim_map", "object"),
        (json!({"require": [{"claim": "groups"}]}), "require[0]", "exactly one"),
        (json!({"require": [{"claim": "groups", "one_of": []}]}), "require[0]", "exactly one"),
        (json!({"require": [{"claim": "groups", "any": ["a"]}]}), "require[0].any", "unknown field"),
        (json!({"require": [{"one_of": ["a"]}]}), "require[0].claim", "required"),
        (json!({"logout_path": "/oauth2/callback"}), "logout_path", "different"),
        (json!({"redirect_path": "/"}), "redirect_path", "not `/`"),
        (json!({"logout_path": "/"}), "logout_path", "absolute path"),
        (json!({"login_path": "/oauth2/logout"}), "login_path", "different"),
        (json!({"login_path": "oauth2/login"}), "login_path", "absolute path"),
        (json!({"post_logout_redirect_uri": "/"}), "post_logout_redirect_uri", "absolute"),
        (json!({"token_cache_size": 1_000_000}), "token_cache_size", "at most"),
        (json!({"bearer_validators": [{"issuer": "https://sts.windows.net/t/"}]}), "bearer_validators[0].audiences", "accepted `aud`"),
        (json!({"bearer_validators": [{"issuer": "https://x", "audiences": ["a"], "scopes": []}]}), "bearer_validators[0].scopes", "unknown field"),
        (json!({"routes": {}}), "routes", "list"),
        (json!({"routes": [{"path_prefix": "/"}]}), "routes[0]", "shadow"),
        (json!({"routes": [{"path_prefix": "/my%20app"}]}), "routes[0].path_prefix", "without `%`"),
        (json!({"routes": [{"path_prefix": "/star*"}]}), "routes[0].path_prefix", "without `%`"),
        (json!({"routes": [{"path_exact": "/a", "path_prefix": "/a"}]}), "routes[0].path_exact", "cannot be combined"),
        (json!({"routes": [{"path_exact": "a"}]}), "routes[0].path_exact", "absolute path"),
        (json!({"routes": [{"path_exact": "/a;b"}]}), "routes[0].path_exact", "without `%`"),
        (json!({"routes": [{"host": "https://a"}]}), "routes[0].host", "host name"),
        (json!({"routes": [{"host": "a.example.com:"}]}), "routes[0].host", "with the port"),
        (json!({"routes": [{"host": "a.example.com", "cookie_name": "oidc_edge_1"}]}), "routes[0].cookie_name", "of the top level"),
        (json!({"cookie_name": "app_tx", "routes": [{"host": "a.example.com", "cookie_name": "app"}]}), "cookie_name", "of routes[0]"),
        (json!({"routes": [{"host": "a.example.com:123456"}]}), "routes[0].host", "with the port"),
        (json!({"routes": [{"host": "a.example.com:80:80"}]}), "routes[0].host", "host name"),
        (json!({"routes": [{"host": "a.example.com", "client_idd": "x"}]}), "routes[0].client_idd", "did you mean `client_id`"),
        (json!({"routes": [{"host": "a.example.com", "routes": []}]}), "routes[0].routes", "nested"),
        (json!({"routes": [{"host": "a.example.com", "cookie_secret": "x"}]}), "routes[0].cookie_secret", "base64"),
        (json!({"isuer": "x"}), "isuer", "did you mean `issuer`"),
        (json!({"totally_unknown_thing": 1}), "totally_unknown_thing", "unknown field"),
    ];
    for (patch, field, needle) in cases {
        let err = with(patch.clone()).expect_err(&format!("{patch} should be refused"));
        assert_eq!(err.field, field, "{patch}: {err}");
        assert!(err.to_string().contains(needle), "{patch}: `{err}` should mention `{needle}`");
    }
}

/// Every documented key is actually read: a wrong-typed value for it is refused with
/// an error that names it (a documented but ignored key would pass silently).
#[test]
fn every_documented_key_is_read() {
    for f in FIELDS {
        let mut cfg = minimal();
        cfg[f.name] = json!([[[]]]);
        if f.name == "key_overlap" {
            cfg["key_rotation"] = json!("expire_after");
        }
        if f.name == "cookie_secrets" {
            cfg.as_object_mut().unwrap().remove("cookie_secret");
        }
        let err = Settings::from_json(cfg.to_string().as_bytes()).expect_err(f.name);
        assert!(err.field.starts_with(f.name), "`{}` gave an error about `{}`: {err}", f.name, err.field);
    }
}

#[test]
fn not_an_object() {
    for input in ["", "[]", "\"x\"", "{", "null"] {
        let err = Settings::from_json(input.as_bytes()).unwrap_err();
        assert!(err.to_string().contains("oidc-edge configuration"), "{input}: {err}");
    }
}

#[test]
fn durations() {
    assert_eq!(parse_duration("90"), Some(90));
    assert_eq!(parse_duration("90s"), Some(90));
    assert_eq!(parse_duration("15m"), Some(900));
    assert_eq!(parse_duration("1h"), Some(3600));
    assert_eq!(parse_duration("7d"), Some(604_800));
    assert_eq!(parse_duration("1w"), None);
    assert_eq!(parse_duration("h"), None);
    assert_eq!(parse_duration("99999999999999999999d"), None);
    let s = with(json!({"jwks_refresh_interval": 120, "session_lifetime": "1d"})).unwrap();
    assert_eq!((s.providers[0].jwks_refresh_interval, profile(&s).session_lifetime), (120, 86_400));
}

#[test]
fn cookie_secrets_accept_both_alphabets_and_rotation() {
    let raw = [0xfbu8; 32];
    for enc in [b64::std_encode(&raw), b64::url_encode(&raw)] {
        let s = with(json!({"cookie_secret": enc})).unwrap();
        assert_eq!(profile(&s).cookie.keys, vec![raw]);
    }
    let s = with(json!({"cookie_secret": null, "cookie_secrets": [b64::std_encode(&[1u8; 32]), b64::std_encode(&[2u8; 32])]})).unwrap();
    assert_eq!(profile(&s).cookie.keys, vec![[1u8; 32], [2u8; 32]]);
}

struct Env;
impl SecretSource for Env {
    fn env(&self, name: &str) -> Option<String> {
        match name {
            "CS" => Some("from-env\n".into()),
            "CK" => Some(b64::std_encode(&[9u8; 32])),
            _ => None,
        }
    }
    fn file(&self, path: &str) -> Result<String, String> {
        Err(format!("no file {path}"))
    }
}

#[test]
fn secrets_from_the_environment() {
    let mut cfg = minimal();
    cfg["client_secret"] = json!({"env": "CS"});
    cfg["cookie_secret"] = json!({"env": "CK"});
    let s = Settings::from_json_with(cfg.to_string().as_bytes(), &Env).unwrap();
    assert_eq!(profile(&s).client_secret, "from-env");
    assert_eq!(profile(&s).cookie.keys, vec![[9u8; 32]]);
    cfg["client_secret"] = json!({"file": "/run/secret"});
    let err = Settings::from_json_with(cfg.to_string().as_bytes(), &Env).unwrap_err();
    assert!(err.to_string().contains("/run/secret"));
}

#[test]
fn explicit_endpoints_skip_discovery() {
    let s = with(json!({
        "authorization_endpoint": "https://idp.example.com/auth",
        "token_endpoint": "https://idp.example.com/token",
        "jwks_uri": "https://idp.example.com/keys",
    }))
    .unwrap();
    assert!(s.providers[0].discovery.is_none());
    let s = with(json!({"jwks_uri": "https://idp.example.com/keys"})).unwrap();
    assert!(s.providers[0].discovery.is_some(), "login endpoints still come from discovery");
    let s = with(json!({"discovery_url": "https://idp.example.com/meta"})).unwrap();
    assert_eq!(s.providers[0].discovery.as_ref().unwrap().path, "/meta");
}

#[test]
fn auth_query_params_shapes() {
    let s = with(json!({"auth_query_params": {"prompt": ["login"], "kc_idp_hint": [], "acr": ["a", "b"]}})).unwrap();
    let mut got = profile(&s).auth_query_params.clone();
    got.sort();
    assert_eq!(
        got,
        vec![
            ("acr".into(), Some("a".into())),
            ("acr".into(), Some("b".into())),
            ("kc_idp_hint".into(), None),
            ("prompt".into(), Some("login".into()))
        ]
    );
}

#[test]
fn claims_config() {
    let s = with(json!({
        "claim_headers": {"X-Groups": "groups", "X-Tenant": "org.tenant.id"},
        "claim_map": {"groups": {"g-1": "admins"}},
        "require": [{"claim": "groups", "one_of": ["admins"]}, {"claim": "email_verified", "equals": true}],
    }))
    .unwrap();
    let p = profile(&s);
    assert!(p.claim_headers.contains(&("x-tenant".into(), vec!["org".into(), "tenant".into(), "id".into()])));
    assert_eq!(p.claim_map, vec![("groups".to_string(), vec![("g-1".to_string(), "admins".to_string())])]);
    assert_eq!(p.require.len(), 2);
}

#[test]
fn routes_override_and_share_providers() {
    let s = with(json!({
        "routes": [
            {"host": "a.example.com", "client_id": "a", "scopes": ["openid", "groups"]},
            {"host": "*.b.example.com", "path_prefix": "/app", "issuer": "https://other.example.com", "client_id": "b"},
            {"path_prefix": "/admin", "require": [{"claim": "groups", "one_of": ["admins"]}]},
        ]
    }))
    .unwrap();
    assert_eq!(s.profiles.len(), 4);
    assert_eq!(s.providers.len(), 2, "routes of the same issuer share its provider");
    assert_eq!(s.profiles[1].client_id, "a");
    assert_eq!(s.profiles[1].scope, "openid groups");
    assert_eq!(s.profiles[1].cookie.keys, s.profiles[0].cookie.keys, "unset keys come from the top level");
    assert_eq!(s.profiles[1].cookie.name, "oidc_edge-1", "each route has its own session cookie");
    assert_eq!(s.profile_for("a.example.com:8443", "/x"), 1);
    assert_eq!(s.profile_for("A.Example.com", "/x"), 1);
    assert_eq!(s.profile_for("x.b.example.com", "/app/y"), 2);
    assert_eq!(s.profile_for("x.b.example.com", "/apple"), 0, "prefix matches whole segments");
    assert_eq!(s.profile_for("b.example.com", "/app"), 0, "wildcard needs a subdomain");
    assert_eq!(s.profile_for("c.example.com", "/admin/users"), 3);
    assert_eq!(s.profile_for("c.example.com", "/"), 0);
}

#[test]
fn a_host_whose_spelling_as_sent_selects_another_route_is_ambiguous() {
    // Envoy picks a virtual host on the Host as sent, port and trailing dot included (unless
    // told to strip them): `public.example.com:443` is not its `public.example.com`.
    let s = with(json!({
        "routes": [
            {"host": "public.example.com", "pass_through_paths": ["/"]},
            {"host": "dev.example.com:8443", "client_id": "dev"},
            {"host": "*.apps.example.com", "client_id": "apps"},
            {"path_prefix": "/admin", "client_id": "admin"},
        ]
    }))
    .unwrap();
    use crate::config::Ambiguity::{Host, Path};
    let cases: [(&str, &str, Result<usize, crate::config::Ambiguity>); 14] = [
        ("public.example.com", "/x", Ok(1)),
        ("PUBLIC.example.com", "/x", Ok(1)),
        ("public.example.com:443", "/x", Err(Host)),
        ("public.example.com.", "/x", Err(Host)),
        ("public.example.com.:443", "/x", Err(Host)),
        ("public.example.com:", "/x", Err(Host)),
        ("dev.example.com:8443", "/x", Ok(2)),
        ("dev.example.com", "/x", Err(Host)),
        ("dev.example.com:9443", "/x", Err(Host)),
        ("a.apps.example.com", "/x", Ok(3)),
        ("a.apps.example.com:443", "/x", Err(Host)),
        // A host no route names reads the same either way: the host-less routes and the top level.
        ("other.example.com:8080", "/admin/x", Ok(4)),
        ("other.example.com.", "/x", Ok(0)),
        ("other.example.com", "/adminx", Err(Path)),
    ];
    for (authority, path, expected) in cases {
        assert_eq!(s.unambiguous_profile_for(authority, path), expected, "{authority} {path}");
    }
    // Without host routes, the host is never read.
    let s = with(json!({"routes": [{"path_prefix": "/admin/"}]})).unwrap();
    assert_eq!(s.unambiguous_profile_for("x.example.com.:1", "/admin/y"), Ok(1));
}

#[test]
fn routes_are_tried_by_host_specificity_as_envoy_picks_virtual_hosts() {
    // Written wildcard-first: Envoy still sends admin.example.com to its own virtual host.
    let s = with(json!({
        "routes": [
            {"path_prefix": "/x", "client_id": "any-host"},
            {"host": "*.example.com", "client_id": "wild"},
            {"host": "*.eu.example.com", "client_id": "wild-eu"},
            {"host": "admin.example.com", "client_id": "admin"},
            {"host": "admin.example.com", "path_prefix": "/x", "client_id": "admin-x-second"},
        ]
    }))
    .unwrap();
    let client = |host: &str, path: &str| s.profiles[s.profile_for(host, path)].client_id.clone();
    assert_eq!(client("admin.example.com", "/public"), "admin", "an exact host before a wildcard written earlier");
    assert_eq!(client("admin.example.com", "/x"), "admin", "within a host, the order written");
    assert_eq!(client("shop.example.com", "/x"), "wild", "any host comes last");
    assert_eq!(client("a.eu.example.com", "/"), "wild-eu", "the longer wildcard first");
    assert_eq!(client("other.test", "/x"), "any-host");
    assert_eq!(client("other.test", "/y"), "app");
    assert_eq!(s.profiles[1].cookie.name, "oidc_edge-1", "cookie names still follow the order written");
}

#[test]
fn exact_routes_cover_one_path() {
    let s = with(json!({
        "routes": [
            {"path_exact": "/docs", "client_id": "docs"},
            {"path_exact": "/", "client_id": "root"},
            {"path_prefix": "/docs/", "client_id": "docs-tree"},
        ]
    }))
    .unwrap();
    let client = |path: &str| s.unambiguous_profile_for("h", path).ok().map(|p| s.profiles[p].client_id.clone());
    assert_eq!(client("/docs").as_deref(), Some("docs"));
    assert_eq!(client("/").as_deref(), Some("root"));
    assert_eq!(client("/docs/secret").as_deref(), Some("docs-tree"), "not below an exact path");
    assert_eq!(client("/docsx").as_deref(), Some("app"), "nor a longer path");
    assert_eq!(client("/x").as_deref(), Some("app"));
}

#[test]
fn bearer_validators_make_keys_only_providers() {
    let s = with(json!({
        "bearer_validators": [
            {"issuer": "https://sts.windows.net/t/", "audiences": ["api://x"], "jwks_uri": "https://login.microsoftonline.com/t/discovery/keys"},
            {"issuer": "https://other.example.com", "audiences": ["api"]},
        ]
    }))
    .unwrap();
    let p = profile(&s);
    assert_eq!(p.bearer.len(), 2);
    let entra = &s.providers[p.bearer[0].provider];
    assert!(entra.keys_only && entra.discovery.is_none());
    let other = &s.providers[p.bearer[1].provider];
    assert_eq!(other.discovery.as_ref().unwrap().url(), "https://other.example.com/.well-known/openid-configuration");
}

#[test]
fn private_key_jwt_takes_the_key_and_its_names() {
    let pem = std::fs::read_to_string(format!("{}/tests/fixtures/client-key-ec.pem", env!("CARGO_MANIFEST_DIR"))).unwrap();
    let with = |extra: Value| {
        let mut c = json!({"issuer": "https://i", "idp_cluster": "idp", "client_id": "app", "cookie_secret": b64::std_encode(&[0u8; 32]),
                           "token_endpoint_auth": "private_key_jwt", "client_private_key": pem});
        for (k, v) in extra.as_object().unwrap() {
            c[k] = v.clone();
        }
        Settings::from_json(c.to_string().as_bytes())
    };
    let p = with(json!({"client_key_id": "k-1"})).unwrap().profiles.remove(0);
    assert_eq!(p.client_auth, ClientAuth::PrivateKeyJwt);
    let key = p.client_key.unwrap();
    assert_eq!((key.key.alg_name(), key.kid.as_deref(), key.x5t), ("ES256", Some("k-1"), None));
    let e = with(json!({"client_key_x5t": "AAAA"})).unwrap_err();
    assert_eq!(e.field, "client_key_x5t");
    assert!(e.message.contains("SHA-1 thumbprint"), "{e:?}");
}

#[test]
fn a_route_with_another_issuer_does_not_inherit_the_top_levels_bearer_validators() {
    let v = json!([{"issuer": "https://sts.windows.net/t/", "audiences": ["api://x"], "jwks_uri": "https://login.example.com/keys"}]);
    let s = with(json!({
        "bearer_validators": v,
        "routes": [
            {"path_prefix": "/same/"},
            {"path_prefix": "/partner/", "issuer": "https://partner.example.com", "client_id": "p"},
            {"path_prefix": "/partner-api/", "issuer": "https://partner.example.com", "client_id": "p", "bearer_validators": v},
        ]
    }))
    .unwrap();
    let validators = |i: usize| s.profiles[i].bearer.len();
    assert_eq!((validators(0), validators(1), validators(2), validators(3)), (1, 1, 0, 1));
}

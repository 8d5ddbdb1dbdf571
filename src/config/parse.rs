//! Builds `Settings` from the plugin JSON: routes, profiles, providers, claim rules; every default and limit.

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::fields::Fields;
use super::reference::check_known;
use super::{
    BearerValidator, ClientAuth, ClientKeySettings, ConfigError, CookieSettings, EndpointOverrides, ForwardToken, Profile, ProviderConfig, Route, RoutePath, Rule,
    host_rank, HostReading, SecretSource, Settings, ValueMap, DAY, HOUR, MINUTE,
};
use crate::b64;
use crate::http::Endpoint;
use crate::jwks::{self, Rotation};
use crate::jwt::Alg;
use crate::oidc::client_key::ClientKey;
use crate::session::cookies::SameSite;

/// Keys a route may not set (they are routing itself).
const ROUTE_ONLY: [&str; 3] = ["host", "path_prefix", "path_exact"];
/// Keys a bearer validator may set.
const VALIDATOR_KEYS: [&str; 6] = ["issuer", "audiences", "jwks_uri", "discovery_url", "jwks", "idp_cluster"];

/// Parses and validates the plugin configuration (the `configuration` StringValue).
pub(super) fn settings(bytes: &[u8], secrets: &dyn SecretSource) -> Result<Settings, ConfigError> {
    let value: Value = serde_json::from_slice(bytes).map_err(|e| {
        ConfigError::new("", format!("not valid JSON ({e}); the configuration must be one JSON object"))
    })?;
    let Value::Object(top) = value else {
        return Err(ConfigError::new("", "must be a JSON object of settings"));
    };
    check_known(&top, "", &[])?;
    let mut settings = Settings { providers: Vec::new(), profiles: Vec::new(), routes: Vec::new(), hosts: HostReading::default() };

    let base: Map<String, Value> = top.iter().filter(|(k, _)| k.as_str() != "routes").map(|(k, v)| (k.clone(), v.clone())).collect();
    let default = parse_profile(&Fields::new(&base, ""), "default", secrets, &mut settings.providers)?;
    settings.profiles.push(default);

    if let Some(routes) = top.get("routes").filter(|v| !v.is_null()) {
        let Value::Array(routes) = routes else {
            return Err(ConfigError::new("routes", "must be a list of route objects"));
        };
        for (i, route) in routes.iter().enumerate() {
            let prefix = format!("routes[{i}].");
            let Value::Object(overrides) = route else {
                return Err(ConfigError::new(&format!("routes[{i}]"), "must be an object with `host` and/or `path_prefix` and overrides"));
            };
            check_known(overrides, &prefix, &ROUTE_ONLY)?;
            if overrides.contains_key("routes") {
                return Err(ConfigError::new(&format!("{prefix}routes"), "routes cannot be nested"));
            }
            let rf = Fields::new(overrides, &prefix);
            let host = rf.optional_string("host")?.map(|h| h.to_ascii_lowercase());
            if let Some(h) = &host {
                let (name, port) = h.rsplit_once(':').map_or((h.as_str(), None), |(n, p)| (n, Some(p)));
                let name = name.strip_prefix("*.").unwrap_or(name);
                let name_ok = !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-');
                let port_ok = port.is_none_or(|p| (1..=5).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit()));
                if !name_ok || !port_ok {
                    return Err(ConfigError::new(
                        &format!("{prefix}host"),
                        "must be a host name such as `app.example.com` or `*.example.com`, with the port when clients send one (`app.example.com:8443`); no scheme or path",
                    ));
                }
            }
            let path = route_path(&rf, &prefix)?;
            if host.is_none() && path == RoutePath::Prefix("/".into()) {
                return Err(ConfigError::new(&format!("routes[{i}]"), "needs a `host` or a `path_prefix` other than `/`, or it would shadow every later route and the top level"));
            }
            let mut merged = base.clone();
            for (k, v) in overrides {
                if !ROUTE_ONLY.contains(&k.as_str()) {
                    merged.insert(k.clone(), v.clone());
                }
            }
            // The top level's extra token issuers were chosen for its own issuer: a route
            // with another IdP trusts only the validators it names itself.
            if overrides.contains_key("issuer") && !overrides.contains_key("bearer_validators") {
                merged.remove("bearer_validators");
            }
            let name = format!("routes[{i}]");
            let mut profile = parse_profile(&Fields::new(&merged, &prefix), &name, secrets, &mut settings.providers)?;
            if !overrides.contains_key("cookie_name") {
                // Two routes on one host must not overwrite each other's session.
                profile.cookie.name = format!("{}-{}", profile.cookie.name, i.saturating_add(1));
            }
            let bare_host = host.as_deref().map(super::bare_host);
            settings.routes.push(Route { host, bare_host, path, profile: settings.profiles.len() });
            settings.profiles.push(profile);
        }
        // Stable, so that the order written still decides among routes of the same host
        // rank; by insertion because routes are few and std's stable sort is big in wasm.
        let mut ordered: Vec<Route> = Vec::with_capacity(settings.routes.len());
        for route in std::mem::take(&mut settings.routes) {
            let rank = host_rank(route.host.as_deref());
            let at = ordered.iter().position(|o| host_rank(o.host.as_deref()) > rank).unwrap_or(ordered.len());
            ordered.insert(at, route);
        }
        settings.routes = ordered;
    }
    check_cookie_names(&settings)?;
    settings.hosts = HostReading {
        routed: settings.routes.iter().any(|r| r.host.is_some()),
        ported: settings.routes.iter().any(|r| r.host != r.bare_host),
    };
    Ok(settings)
}

/// A profile's cookies are `<name>`, `<name>_<n>` (chunks) and `<name>_tx.<id>` (logins):
/// a name that is another profile's name followed by `_` would read that profile's
/// cookies as its own, and each login would clear the other's session.
fn check_cookie_names(settings: &Settings) -> Result<(), ConfigError> {
    for (i, a) in settings.profiles.iter().enumerate() {
        for b in &settings.profiles {
            let (short, long) = (&b.cookie.name, &a.cookie.name);
            if long.len() > short.len() && long.starts_with(short.as_str()) && long.as_bytes().get(short.len()) == Some(&b'_') {
                let field = if i == 0 { "cookie_name".to_string() } else { format!("{}.cookie_name", a.name) };
                return Err(ConfigError::new(
                    &field,
                    format!("`{long}` starts with `{short}_`, the prefix of the session chunks and login cookies of {}: choose a name that does not", b.label()),
                ));
            }
        }
    }
    Ok(())
}

/// A route's `path_prefix` (default `/`) or `path_exact`.
fn route_path(rf: &Fields<'_>, prefix: &str) -> Result<RoutePath, ConfigError> {
    let (field, value) = match (rf.optional_string("path_prefix")?, rf.optional_string("path_exact")?) {
        (Some(_), Some(_)) => {
            return Err(ConfigError::new(&format!("{prefix}path_exact"), "cannot be combined with `path_prefix`: a route matches one path exactly or everything under a prefix"))
        }
        (None, Some(exact)) => ("path_exact", exact),
        (p, None) => ("path_prefix", p.unwrap_or_else(|| "/".into())),
    };
    if !is_plain_path(&value) {
        return Err(ConfigError::new(&format!("{prefix}{field}"), "must be an absolute path such as `/app`"));
    }
    // Route paths are compared with the request's path both as sent and decoded: an encoded
    // one would never meet its decoded twin, and `*` is no wildcard here.
    if value.contains(['%', '*', ';']) {
        return Err(ConfigError::new(&format!("{prefix}{field}"), "must be a plain path without `%`, `*` or `;`, such as `/app` or `/app/`"));
    }
    Ok(if field == "path_exact" { RoutePath::Exact(value) } else { RoutePath::Prefix(value) })
}

fn parse_profile(f: &Fields<'_>, name: &str, secrets: &dyn SecretSource, providers: &mut Vec<ProviderConfig>) -> Result<Profile, ConfigError> {
    let issuer = f.required_string("issuer")?;
    let idp_cluster = f.required_string("idp_cluster")?;
    let main = parse_provider(f, &issuer, &idp_cluster, false)?;
    let provider = intern(providers, main);

    let client_id = f.required_string("client_id")?;
    let client_auth = match f.optional_string("token_endpoint_auth")?.as_deref() {
        None | Some("client_secret_basic") => ClientAuth::Basic,
        Some("client_secret_post") => ClientAuth::Post,
        Some("client_secret_jwt") => ClientAuth::SecretJwt,
        Some("private_key_jwt") => ClientAuth::PrivateKeyJwt,
        Some(other) => {
            return Err(f.err(
                "token_endpoint_auth",
                format!("`{other}` is not supported; use `client_secret_basic`, `client_secret_post`, `client_secret_jwt` or `private_key_jwt`"),
            ))
        }
    };
    let (client_secret, client_key) = client_credentials(f, client_auth, secrets)?;
    let assertion_audience_issuer = match f.optional_string("client_assertion_audience")?.as_deref() {
        None | Some("token_endpoint") => false,
        Some("issuer") => true,
        Some(other) => return Err(f.err("client_assertion_audience", format!("`{other}` is not supported; use `token_endpoint` or `issuer`"))),
    };
    if f.get("client_assertion_audience").is_some() && !matches!(client_auth, ClientAuth::SecretJwt | ClientAuth::PrivateKeyJwt) {
        return Err(f.err("client_assertion_audience", "is only used with `client_secret_jwt` or `private_key_jwt`"));
    }

    let cookie = cookie_settings(f, secrets)?;

    let redirect_path = f.optional_string("redirect_path")?.unwrap_or_else(|| "/oauth2/callback".into());
    if !is_plain_path(&redirect_path) || redirect_path == "/" {
        return Err(f.err("redirect_path", "must be an absolute path such as `/oauth2/callback`, without query or fragment, and not `/` (the application's own root)"));
    }
    let redirect_uri = f.optional_string("redirect_uri")?;
    if let Some(uri) = &redirect_uri {
        let ep = Endpoint::parse(uri)
            .ok_or_else(|| f.err("redirect_uri", "must be an absolute http(s) URL such as `https://app.example.com/oauth2/callback`"))?;
        if ep.path != redirect_path {
            return Err(f.err(
                "redirect_uri",
                format!("its path `{}` must equal `redirect_path` (`{redirect_path}`), or the callback would never be recognised", ep.path),
            ));
        }
    }

    let mut scopes = f.optional_string_list("scopes")?.unwrap_or_else(|| vec!["openid".into(), "profile".into(), "email".into()]);
    for s in &scopes {
        if s.is_empty() || s.bytes().any(|b| b <= b' ' || b == b'"' || b == b'\\' || b >= 0x7f) {
            return Err(f.err("scopes", format!("`{s}` is not a valid scope token (RFC 6749 3.3)")));
        }
    }
    scopes.retain(|s| s != "openid");
    scopes.insert(0, "openid".into());
    let mut seen = Vec::new();
    scopes.retain(|s| {
        let fresh = !seen.contains(s);
        seen.push(s.clone());
        fresh
    });
    let scope = scopes.join(" ");

    let auth_query_params = f.auth_query_params()?;
    let userinfo = f.optional_bool("userinfo")?.unwrap_or(false);

    let clock_skew = f.optional_u64("clock_skew_seconds")?.unwrap_or(60);
    if clock_skew > 600 {
        return Err(f.err("clock_skew_seconds", "must be between 0 and 600 seconds; a larger skew accepts expired tokens for too long"));
    }
    let allowed_algorithms = match f.optional_string_list("allowed_algorithms")? {
        None => vec![Alg::RS256],
        Some(list) if list.is_empty() => return Err(f.err("allowed_algorithms", "must name at least one algorithm, e.g. [\"RS256\"]")),
        Some(list) => list
            .iter()
            .map(|name| {
                Alg::from_name(name).ok_or_else(|| {
                    f.err(
                        "allowed_algorithms",
                        format!("`{name}` is not supported; choose from RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, EdDSA (HMAC and `none` are never accepted)"),
                    )
                })
            })
            .collect::<Result<Vec<_>, _>>()?,
    };
    let audiences = f.optional_string_list("audiences")?.unwrap_or_else(|| vec![client_id.clone()]);
    if audiences.is_empty() || audiences.iter().any(String::is_empty) {
        return Err(f.err("audiences", "must list at least one non-empty audience (default: the client_id)"));
    }
    let forward_token = match f.optional_string("forward_token")?.as_deref() {
        None | Some("id_token") => ForwardToken::IdToken,
        Some("access_token") => ForwardToken::AccessToken,
        Some("none") => ForwardToken::None,
        Some(other) => return Err(f.err("forward_token", format!("`{other}` is not supported; use `id_token`, `access_token` or `none`"))),
    };
    let token_cache_size = f.optional_u64("token_cache_size")?.unwrap_or(1024);
    if token_cache_size > 100_000 {
        return Err(f.err("token_cache_size", "must be at most 100000 entries per worker"));
    }
    let token_cache_ttl = f.optional_duration("token_cache_ttl", 1, HOUR)?.unwrap_or(5 * MINUTE);

    let bearer = bearer_validators(f, &idp_cluster, provider, providers)?;

    let api_paths = f.path_list("api_paths")?;
    let pass_through_paths = f.path_list("pass_through_paths")?;
    let allow_query_token = f.optional_bool("allow_query_token")?.unwrap_or(false);
    let allowed_origins = f.optional_string_list("allowed_origins")?.unwrap_or_default();
    for o in &allowed_origins {
        let ok = Endpoint::parse(o).is_some_and(|e| e.path == "/" && !o.ends_with('/'));
        if !ok {
            return Err(f.err("allowed_origins", format!("`{o}` is not an origin such as `https://app.example.com` (scheme and host, no path or trailing slash)")));
        }
    }

    let claim_headers = f.claim_headers()?;
    let claim_map = f.claim_map()?;
    let require = f.rules()?;

    let session_lifetime = f.optional_duration("session_lifetime", 5 * MINUTE, 30 * DAY)?.unwrap_or(8 * HOUR);
    let login_timeout = f.optional_duration("login_timeout", MINUTE, HOUR)?.unwrap_or(10 * MINUTE);
    let refresh_before_expiry = f.optional_duration("refresh_before_expiry", 0, HOUR)?.unwrap_or(60);
    let logout_path = f.optional_string("logout_path")?.unwrap_or_else(|| "/oauth2/logout".into());
    if !is_plain_path(&logout_path) || logout_path == "/" || logout_path == redirect_path {
        return Err(f.err("logout_path", "must be an absolute path such as `/oauth2/logout`, different from `redirect_path`"));
    }
    let login_path = f.optional_string("login_path")?.unwrap_or_else(|| "/oauth2/login".into());
    if !is_plain_path(&login_path) || login_path == "/" || login_path == redirect_path || login_path == logout_path {
        return Err(f.err("login_path", "must be an absolute path such as `/oauth2/login`, different from `redirect_path` and `logout_path`"));
    }
    let post_logout_redirect_uri = f.optional_string("post_logout_redirect_uri")?;
    if let Some(uri) = &post_logout_redirect_uri {
        if Endpoint::parse(uri).is_none() {
            return Err(f.err("post_logout_redirect_uri", "must be an absolute http(s) URL registered at the IdP"));
        }
    }

    Ok(Profile {
        name: name.to_string(),
        provider,
        bearer,
        client_id,
        client_secret,
        client_auth,
        client_key,
        assertion_audience_issuer,
        cookie,
        redirect_path,
        redirect_uri,
        scope,
        auth_query_params,
        userinfo,
        clock_skew,
        allowed_algorithms,
        audiences,
        forward_token,
        token_cache_size: usize::try_from(token_cache_size).unwrap_or(usize::MAX),
        token_cache_ttl,
        api_paths,
        pass_through_paths,
        allow_query_token,
        allowed_origins,
        claim_headers,
        claim_map,
        require,
        session_lifetime,
        login_timeout,
        refresh_before_expiry,
        logout_path,
        login_path,
        post_logout_redirect_uri,
    })
}

/// The session cookie: its sealing keys (the first seals, all open), name, domain and SameSite.
fn cookie_settings(f: &Fields<'_>, secrets: &dyn SecretSource) -> Result<CookieSettings, ConfigError> {
    let mut cookie_keys = Vec::new();
    match (f.has("cookie_secret"), f.has("cookie_secrets")) {
        (true, true) => return Err(f.err("cookie_secrets", "set either `cookie_secret` or `cookie_secrets`, not both")),
        (false, false) => return Err(f.err("cookie_secret", "is required: base64 of 32 random bytes (`openssl rand -base64 32`)")),
        (true, false) => cookie_keys.push(decode_secret(f, "cookie_secret", &f.required_secret("cookie_secret", secrets)?)?),
        (false, true) => {
            let list = f.secret_list("cookie_secrets", secrets)?;
            if list.is_empty() {
                return Err(f.err("cookie_secrets", "must hold at least one secret; the first seals, all open"));
            }
            for s in list {
                cookie_keys.push(decode_secret(f, "cookie_secrets", &s)?);
            }
        }
    }
    let cookie_name = f.optional_string("cookie_name")?.unwrap_or_else(|| "oidc_edge".into());
    if cookie_name.is_empty()
        || cookie_name.len() > 64
        || cookie_name.starts_with("__")
        || !cookie_name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return Err(f.err("cookie_name", "must be 1 to 64 letters, digits, `_` or `-`, not starting with `__` (the `__Host-` prefix is added when it applies)"));
    }
    let cookie_domain = f.optional_string("cookie_domain")?;
    if let Some(d) = &cookie_domain {
        let bare = d.strip_prefix('.').unwrap_or(d);
        if bare.is_empty() || !bare.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-') {
            return Err(f.err("cookie_domain", "must be a domain such as `example.com`"));
        }
    }
    let same_site = match f.optional_string("cookie_same_site")?.map(|s| s.to_ascii_lowercase()).as_deref() {
        None | Some("lax") => SameSite::Lax,
        Some("strict") => SameSite::Strict,
        Some("none") => SameSite::None,
        Some(other) => return Err(f.err("cookie_same_site", format!("`{other}` is not one of `lax`, `strict`, `none`"))),
    };
    Ok(CookieSettings { name: cookie_name, domain: cookie_domain, same_site, keys: cookie_keys })
}

/// `bearer_validators`: other (issuer, audiences, key source) sets accepted for access
/// tokens, each a keys-only provider refreshed like the profile's own (`provider`).
fn bearer_validators(f: &Fields<'_>, idp_cluster: &str, provider: usize, providers: &mut Vec<ProviderConfig>) -> Result<Vec<BearerValidator>, ConfigError> {
    let mut bearer = Vec::new();
    if let Some(list) = f.get("bearer_validators") {
        let Value::Array(items) = list else {
            return Err(f.err("bearer_validators", "must be a list of objects"));
        };
        for (i, item) in items.iter().enumerate() {
            let field = format!("bearer_validators[{i}]");
            let Value::Object(map) = item else {
                return Err(f.err(&field, "must be an object with `issuer`, `audiences` and a key source"));
            };
            for key in map.keys() {
                if !VALIDATOR_KEYS.contains(&key.as_str()) {
                    return Err(f.err(&format!("{field}.{key}"), format!("unknown field; a bearer validator takes {}", VALIDATOR_KEYS.join(", "))));
                }
            }
            let vf = Fields::new(map, &format!("{}{field}.", f.prefix));
            let v_issuer = vf.required_string("issuer")?;
            let audiences = vf.optional_string_list("audiences")?.unwrap_or_default();
            if audiences.is_empty() {
                return Err(vf.err("audiences", "must list the accepted `aud` values of this issuer's access tokens"));
            }
            let cluster = vf.optional_string("idp_cluster")?.unwrap_or_else(|| idp_cluster.to_string());
            let mut p = parse_provider(&vf, &v_issuer, &cluster, true)?;
            // Refresh policy follows the profile's.
            let main = providers.get(provider).cloned();
            if let Some(m) = main {
                p.timeout_ms = m.timeout_ms;
                p.jwks_refresh_interval = m.jwks_refresh_interval;
                p.discovery_refresh_interval = m.discovery_refresh_interval;
                p.rotation = m.rotation;
                p.kid_refetch_cooldown = m.kid_refetch_cooldown;
                p.max_key_staleness = m.max_key_staleness;
                p.namespace = provider_namespace(&p);
            }
            bearer.push(BearerValidator { issuer: v_issuer, audiences, provider: intern(providers, p) });
        }
    }
    Ok(bearer)
}

/// The client secret, or with `private_key_jwt` the private key: each method takes exactly
/// its own credential, so a leftover one is pointed out rather than silently unused.
fn client_credentials(f: &Fields<'_>, auth: ClientAuth, secrets: &dyn SecretSource) -> Result<(String, Option<ClientKeySettings>), ConfigError> {
    const KEY_FIELDS: [&str; 3] = ["client_private_key", "client_key_id", "client_key_x5t"];
    if auth != ClientAuth::PrivateKeyJwt {
        if let Some(name) = KEY_FIELDS.iter().find(|n| f.get(n).is_some()) {
            return Err(f.err(name, "is only used with `\"token_endpoint_auth\": \"private_key_jwt\"`"));
        }
        let secret = f.required_secret("client_secret", secrets)?;
        if auth == ClientAuth::SecretJwt && secret.len() < 32 {
            return Err(f.err("client_secret", "must be at least 32 characters with `client_secret_jwt`: it is the HS256 key of the client assertion (RFC 7518 3.2)"));
        }
        return Ok((secret, None));
    }
    if f.get("client_secret").is_some() {
        return Err(f.err("client_secret", "is not used with `private_key_jwt` (the client signs with `client_private_key`); remove it"));
    }
    let pem = f.required_secret("client_private_key", secrets)?;
    let key = ClientKey::from_pem(&pem).map_err(|why| {
        f.err("client_private_key", format!("{why}; expected an unencrypted PEM private key (RSA 2048+ or EC P-256/P-384), e.g. from `openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048`"))
    })?;
    let kid = f.optional_string("client_key_id")?;
    let x5t = f.optional_string("client_key_x5t")?;
    if let Some(x5t) = &x5t {
        if b64::url_decode(x5t).map(|d| d.len()) != Some(20) {
            return Err(f.err("client_key_x5t", "must be the base64url SHA-1 thumbprint (20 bytes) of the key's certificate"));
        }
    }
    Ok((String::new(), Some(ClientKeySettings { key, kid, x5t })))
}

fn parse_provider(f: &Fields<'_>, issuer: &str, idp_cluster: &str, keys_only: bool) -> Result<ProviderConfig, ConfigError> {
    let issuer_endpoint = Endpoint::parse(issuer).ok_or_else(|| {
        f.err("issuer", "must be an absolute http(s) URL without user info or fragment, e.g. `https://login.example.com/realms/main`")
    })?;
    if issuer_endpoint.path.contains('?') {
        return Err(f.err("issuer", "must not have a query string (OIDC Discovery 4)"));
    }
    let endpoint = |name: &str| -> Result<Option<Endpoint>, ConfigError> {
        match f.optional_string(name)? {
            None => Ok(None),
            Some(url) => Endpoint::parse(&url).map(Some).ok_or_else(|| f.err(name, "must be an absolute http(s) URL")),
        }
    };
    let endpoints = if keys_only {
        EndpointOverrides { jwks_uri: endpoint("jwks_uri")?, ..EndpointOverrides::default() }
    } else {
        EndpointOverrides {
            authorization: endpoint("authorization_endpoint")?,
            token: endpoint("token_endpoint")?,
            jwks_uri: endpoint("jwks_uri")?,
            userinfo: endpoint("userinfo_endpoint")?,
            end_session: endpoint("end_session_endpoint")?,
        }
    };
    let static_keys = match f.get("jwks") {
        None => None,
        Some(value) => {
            let bytes = serde_json::to_vec(value).unwrap_or_default();
            let (set, _) = jwks::parse_jwks(&bytes).map_err(|e| f.err("jwks", format!("{e}; give the IdP's public keys as {{\"keys\": [...]}}")))?;
            Some(set.keys().iter().map(|k| Value::Object(k.public.clone())).collect())
        }
    };
    if static_keys.is_some() && endpoints.jwks_uri.is_some() {
        return Err(f.err("jwks", "set either static `jwks` or `jwks_uri`, not both"));
    }
    let explicit_discovery = f.optional_string("discovery_url")?;
    let needs_discovery = explicit_discovery.is_some()
        || (static_keys.is_none() && endpoints.jwks_uri.is_none())
        || (!keys_only && (endpoints.authorization.is_none() || endpoints.token.is_none()));
    let discovery = if needs_discovery {
        let url = explicit_discovery.unwrap_or_else(|| format!("{}/.well-known/openid-configuration", issuer.trim_end_matches('/')));
        Some(Endpoint::parse(&url).ok_or_else(|| f.err("discovery_url", "must be an absolute http(s) URL"))?)
    } else {
        None
    };

    let rotation = match f.optional_string("key_rotation")?.as_deref() {
        None | Some("replace") => Rotation::Replace,
        Some("add") => Rotation::Add,
        Some("expire_after") => Rotation::ExpireAfter { overlap: f.optional_duration("key_overlap", HOUR, DAY)?.unwrap_or(HOUR) },
        Some(other) => return Err(f.err("key_rotation", format!("`{other}` is not one of `replace`, `add`, `expire_after`"))),
    };
    if f.has("key_overlap") && !matches!(rotation, Rotation::ExpireAfter { .. }) {
        return Err(f.err("key_overlap", "only applies with `key_rotation: expire_after`"));
    }
    let timeout = f.optional_duration("idp_timeout", 1, 60)?.unwrap_or(5);
    let mut p = ProviderConfig {
        namespace: String::new(),
        issuer: issuer.to_string(),
        idp_cluster: idp_cluster.to_string(),
        discovery,
        endpoints,
        static_keys,
        keys_only,
        timeout_ms: timeout.saturating_mul(1000),
        jwks_refresh_interval: f.optional_duration("jwks_refresh_interval", MINUTE, 30 * DAY)?.unwrap_or(HOUR),
        discovery_refresh_interval: f.optional_duration("discovery_refresh_interval", MINUTE, 30 * DAY)?.unwrap_or(DAY),
        rotation,
        kid_refetch_cooldown: f.optional_duration("kid_refetch_cooldown", 1, HOUR)?.unwrap_or(30),
        max_key_staleness: f.optional_duration("max_key_staleness", MINUTE, 30 * DAY)?.unwrap_or(DAY),
    };
    // Keys are refused once `max_key_staleness` passes without a successful fetch; with a
    // refresh interval as long, a healthy IdP would see its keys refused until the next
    // scheduled fetch.
    if p.static_keys.is_none() && p.max_key_staleness <= p.jwks_refresh_interval {
        let (staleness, interval) = (super::fields::human(p.max_key_staleness), super::fields::human(p.jwks_refresh_interval));
        return Err(f.err(
            "max_key_staleness",
            format!(
                "is {staleness}, not longer than jwks_refresh_interval ({interval}): keys would be refused between two scheduled fetches while the IdP is healthy. Make max_key_staleness several refresh intervals, to leave room for retries (the defaults: jwks_refresh_interval 1h, max_key_staleness 24h), or shorten jwks_refresh_interval"
            ),
        ));
    }
    p.namespace = provider_namespace(&p);
    Ok(p)
}

/// A digest of everything that identifies a provider and how it is refreshed: two
/// configurations share cached metadata exactly when they would fetch the same thing.
fn provider_namespace(p: &ProviderConfig) -> String {
    let ep = |e: &Option<Endpoint>| e.as_ref().map(Endpoint::url).unwrap_or_default();
    let desc = format!(
        "{}\n{}\n{}\n{}|{}|{}|{}|{}\n{}\n{}\n{:?}|{}|{}|{}|{}|{}",
        p.issuer,
        p.idp_cluster,
        ep(&p.discovery),
        ep(&p.endpoints.authorization),
        ep(&p.endpoints.token),
        ep(&p.endpoints.jwks_uri),
        ep(&p.endpoints.userinfo),
        ep(&p.endpoints.end_session),
        p.static_keys.as_ref().map(|k| Value::Array(k.clone()).to_string()).unwrap_or_default(),
        p.keys_only,
        p.rotation,
        p.timeout_ms,
        p.jwks_refresh_interval,
        p.discovery_refresh_interval,
        p.kid_refetch_cooldown,
        p.max_key_staleness,
    );
    b64::url_encode(Sha256::digest(desc.as_bytes()).get(..12).unwrap_or_default())
}

fn intern(providers: &mut Vec<ProviderConfig>, p: ProviderConfig) -> usize {
    if let Some(i) = providers.iter().position(|q| q.namespace == p.namespace) {
        return i;
    }
    providers.push(p);
    providers.len().saturating_sub(1)
}

fn is_plain_path(p: &str) -> bool {
    p.starts_with('/') && !p.starts_with("//") && !p.contains(['?', '#', '\\']) && !p.bytes().any(|b| b <= b' ' || b >= 0x7f)
}

fn decode_secret(f: &Fields<'_>, field: &str, value: &str) -> Result<[u8; 32], ConfigError> {
    let bytes = b64::lenient_decode(value).ok_or_else(|| f.err(field, "is not base64; generate one with `openssl rand -base64 32`"))?;
    <[u8; 32]>::try_from(bytes.as_slice()).map_err(|_| {
        f.err(field, format!("must decode to exactly 32 bytes, got {}; generate one with `openssl rand -base64 32`", bytes.len()))
    })
}

fn is_header_name(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

fn claim_path(f: &Fields<'_>, field: &str, path: &str) -> Result<Vec<String>, ConfigError> {
    let parts: Vec<String> = path.split('.').map(str::to_string).collect();
    if parts.iter().any(String::is_empty) {
        return Err(f.err(field, format!("`{path}` is not a claim path such as `email` or `realm_access.roles`")));
    }
    Ok(parts)
}

/// Headers the filter owns besides the identity headers: a claim header may not replace them.
const RESERVED_HEADERS: [&str; 2] = ["cookie", "host"];

/// Headers that steer the connection, the message framing, Envoy or the proxies behind it:
/// a claim there would let an IdP-side value (a group name) change how the request is
/// carried or whom it is attributed to. `x-envoy-*`, `x-forwarded-*` (proxies' facts about
/// the client: `X-Forwarded-Client-Cert` is its certificate's identity) and browsers'
/// `sec-*` go by prefix.
const TRANSPORT_HEADERS: [&str; 16] = [
    "connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer", "upgrade", "content-length",
    "content-type", "content-encoding", "expect", "proxy-authorization", "set-cookie", "forwarded", "x-real-ip", "x-request-id",
];

fn is_transport_header(lower: &str) -> bool {
    TRANSPORT_HEADERS.contains(&lower) || ["x-envoy-", "x-forwarded-", "sec-"].iter().any(|p| lower.starts_with(p))
}


/// Field readers for the structured keys (maps and rule lists), beside the rules they check.
impl Fields<'_> {
    fn auth_query_params(&self) -> Result<Vec<(String, Option<String>)>, ConfigError> {
        const RESERVED: [&str; 9] =
            ["response_type", "client_id", "redirect_uri", "scope", "state", "nonce", "code_challenge", "code_challenge_method", "request"];
        let name = "auth_query_params";
        let Some(value) = self.get(name) else { return Ok(vec![]) };
        let Value::Object(map) = value else {
            return Err(self.err(name, "must be a map of parameter name to a list of values, e.g. {\"prompt\": [\"login\"], \"kc_idp_hint\": [\"github\"]}"));
        };
        let mut out = Vec::new();
        for (key, values) in map {
            if key.is_empty() || RESERVED.contains(&key.as_str()) {
                return Err(self.err(name, format!("`{key}` cannot be set here: the filter sets it itself")));
            }
            let Value::Array(items) = values else {
                return Err(self.err(name, format!("`{key}` must map to a list of strings (an empty list gives a bare `{key}`)")));
            };
            if items.is_empty() {
                out.push((key.clone(), None));
            }
            // The ID token's `auth_time` is checked against it (OIDC Core 3.1.2.1): it must read as seconds.
            if key == "max_age" && (items.len() != 1 || !items.iter().all(|v| v.as_str().is_some_and(|t| t.parse::<u64>().is_ok()))) {
                return Err(self.err(name, "`max_age` must be one number of seconds, e.g. {\"max_age\": [\"3600\"]}"));
            }
            for item in items {
                let Value::String(v) = item else {
                    return Err(self.err(name, format!("`{key}` must map to a list of strings")));
                };
                out.push((key.clone(), Some(v.clone())));
            }
        }
        Ok(out)
    }

    fn claim_headers(&self) -> Result<Vec<(String, Vec<String>)>, ConfigError> {
        let name = "claim_headers";
        let Some(value) = self.get(name) else { return Ok(vec![]) };
        let Value::Object(map) = value else {
            return Err(self.err(name, "must be a map of header name to claim path, e.g. {\"X-Groups\": \"groups\"}"));
        };
        let mut out = Vec::new();
        for (header, path) in map {
            let lower = header.to_ascii_lowercase();
            if !is_header_name(header) || lower.starts_with(':') {
                return Err(self.err(name, format!("`{header}` is not a valid header name")));
            }
            if RESERVED_HEADERS.contains(&lower.as_str()) || super::IDENTITY_HEADERS.contains(&lower.as_str()) {
                return Err(self.err(name, format!("`{header}` is set by the filter itself and cannot come from a claim")));
            }
            if is_transport_header(&lower) {
                return Err(self.err(name, format!("`{header}` steers the connection or the proxies and cannot come from a claim; use an application header such as `X-User-Groups`")));
            }
            let Value::String(path) = path else {
                return Err(self.err(name, format!("the claim path of `{header}` must be a string such as `groups` or `realm_access.roles`")));
            };
            out.push((lower, claim_path(self, name, path)?));
        }
        Ok(out)
    }

    fn claim_map(&self) -> Result<Vec<(String, ValueMap)>, ConfigError> {
        let name = "claim_map";
        let Some(value) = self.get(name) else { return Ok(vec![]) };
        let Value::Object(map) = value else {
            return Err(self.err(name, "must be a map of claim name to a map of external value to local value"));
        };
        let mut out = Vec::new();
        for (claim, table) in map {
            let Value::Object(table) = table else {
                return Err(self.err(name, format!("`{claim}` must map to an object of external value to local value")));
            };
            let mut pairs = Vec::new();
            for (from, to) in table {
                let Value::String(to) = to else {
                    return Err(self.err(name, format!("`{claim}`: the local name for `{from}` must be a string")));
                };
                pairs.push((from.clone(), to.clone()));
            }
            out.push((claim.clone(), pairs));
        }
        Ok(out)
    }

    fn rules(&self) -> Result<Vec<Rule>, ConfigError> {
        let name = "require";
        let Some(value) = self.get(name) else { return Ok(vec![]) };
        let Value::Array(items) = value else {
            return Err(self.err(name, "must be a list of rules such as {\"claim\": \"groups\", \"one_of\": [\"admins\"]}"));
        };
        let mut out = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let field = format!("{name}[{i}]");
            let Value::Object(rule) = item else {
                return Err(self.err(&field, "must be an object with `claim` and `one_of` or `equals`"));
            };
            for key in rule.keys() {
                if !["claim", "one_of", "equals"].contains(&key.as_str()) {
                    return Err(self.err(&format!("{field}.{key}"), "unknown field; a rule has `claim` and one of `one_of`, `equals`"));
                }
            }
            let Some(Value::String(path)) = rule.get("claim") else {
                return Err(self.err(&format!("{field}.claim"), "is required: the claim path the rule checks"));
            };
            let claim = claim_path(self, &field, path)?;
            match (rule.get("one_of"), rule.get("equals")) {
                (Some(Value::Array(values)), None) if !values.is_empty() => {
                    let values = values
                        .iter()
                        .map(|v| v.as_str().map(str::to_string).ok_or_else(|| self.err(&format!("{field}.one_of"), "must be a list of strings")))
                        .collect::<Result<Vec<_>, _>>()?;
                    out.push(Rule::OneOf { claim, values });
                }
                (None, Some(value)) => out.push(Rule::Equals { claim, value: value.clone() }),
                _ => return Err(self.err(&field, "needs exactly one of `one_of` (a non-empty list of strings) or `equals` (any JSON value)")),
            }
        }
        Ok(out)
    }
}

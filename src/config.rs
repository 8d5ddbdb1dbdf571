//! The plugin configuration: JSON from Envoy in, validated `Settings` out; every default lives here.
//!
//! One JSON object configures a default relying party; `routes` add more (by host and
//! path prefix), each a copy of the top level with its own overrides. Providers (issuer
//! plus where its metadata and keys come from) are deduplicated so that two routes of
//! the same IdP share one discovery/JWKS cache.

use std::fmt;

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::b64;
use crate::http::Endpoint;
use crate::jwks::{self, Rotation};
use crate::jwt::Alg;
use crate::session::cookies::SameSite;

/// A configuration the filter refuses to start with. The message names the field and
/// says what is expected, because the operator reads it in Envoy's log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub field: String,
    pub message: String,
}

impl ConfigError {
    fn new(field: &str, message: impl Into<String>) -> ConfigError {
        ConfigError { field: field.to_string(), message: message.into() }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field.is_empty() {
            write!(f, "oidc-edge configuration: {}", self.message)
        } else {
            write!(f, "oidc-edge configuration, field `{}`: {}", self.field, self.message)
        }
    }
}

impl std::error::Error for ConfigError {}

/// Where `{"env": ...}` and `{"file": ...}` secrets are read from. The shell passes the
/// VM's environment (Envoy `vm_config.environment_variables`, Istio `vmConfig.env`).
pub trait SecretSource {
    fn env(&self, name: &str) -> Option<String>;
    fn file(&self, path: &str) -> Result<String, String>;
}

/// Resolves nothing: for contexts without an environment (tests, validation tools).
pub struct NoSecrets;

impl SecretSource for NoSecrets {
    fn env(&self, _name: &str) -> Option<String> {
        None
    }
    fn file(&self, _path: &str) -> Result<String, String> {
        Err("files cannot be read here".into())
    }
}

/// Stands in for every `{"env"}`/`{"file"}` secret with a valid value: for tools that check
/// a configuration's shape where its secrets are not available (the `oidc-edge` CLI).
pub struct PlaceholderSecrets;

impl SecretSource for PlaceholderSecrets {
    fn env(&self, _name: &str) -> Option<String> {
        Some(b64::std_encode(&[0u8; 32]))
    }
    fn file(&self, _path: &str) -> Result<String, String> {
        Ok(b64::std_encode(&[0u8; 32]))
    }
}

/// One documented configuration key. The README's reference table is checked against this list.
pub struct FieldDoc {
    pub name: &'static str,
    pub kind: &'static str,
    pub default: &'static str,
    pub doc: &'static str,
}

pub const FIELDS: &[FieldDoc] = &[
    // The identity provider.
    FieldDoc { name: "issuer", kind: "string (URL)", default: "required", doc: "The IdP's issuer. Discovery is fetched from `issuer + /.well-known/openid-configuration` (unless `discovery_url` or explicit endpoints say otherwise) and every token's `iss` must equal it exactly." },
    FieldDoc { name: "idp_cluster", kind: "string", default: "required", doc: "The Envoy cluster that reaches the IdP; every discovery, JWKS, token and userinfo call goes through it, with `:authority` taken from the endpoint URL." },
    FieldDoc { name: "discovery_url", kind: "string (URL)", default: "`issuer + /.well-known/openid-configuration`", doc: "Where the discovery document is, when not at the standard place." },
    FieldDoc { name: "authorization_endpoint", kind: "string (URL)", default: "from discovery", doc: "Overrides the discovery document's value." },
    FieldDoc { name: "token_endpoint", kind: "string (URL)", default: "from discovery", doc: "Overrides the discovery document's value." },
    FieldDoc { name: "jwks_uri", kind: "string (URL)", default: "from discovery", doc: "Overrides the discovery document's value. With `authorization_endpoint` and `token_endpoint` also set (or `jwks`), discovery is not fetched at all." },
    FieldDoc { name: "userinfo_endpoint", kind: "string (URL)", default: "from discovery", doc: "Overrides the discovery document's value; used when `userinfo` is on." },
    FieldDoc { name: "end_session_endpoint", kind: "string (URL)", default: "from discovery", doc: "Overrides the discovery document's value; where `logout_path` sends the browser." },
    FieldDoc { name: "jwks", kind: "object", default: "none", doc: "Static public keys (`{\"keys\": [...]}`) for IdPs without a JWKS endpoint; replaces fetching `jwks_uri`." },
    FieldDoc { name: "idp_timeout", kind: "duration", default: "`5s`", doc: "Timeout of every call to the IdP (1s to 60s); also how long a request waits for an unknown-`kid` refetch." },
    FieldDoc { name: "jwks_refresh_interval", kind: "duration", default: "`1h`", doc: "How often the JWKS is refetched (1 minute to 30 days)." },
    FieldDoc { name: "discovery_refresh_interval", kind: "duration", default: "`24h`", doc: "How often the discovery document is refetched (1 minute to 30 days)." },
    FieldDoc { name: "key_rotation", kind: "string", default: "`replace`", doc: "How a fetched JWKS combines with the keys in force: `replace` (the fetched set only), `add` (keys are never dropped), `expire_after` (keys missing from the fetched set stay valid for `key_overlap`)." },
    FieldDoc { name: "key_overlap", kind: "duration", default: "`1h`", doc: "With `key_rotation: expire_after`: how long a key missing from the fetched set stays valid (1 hour to 1 day)." },
    FieldDoc { name: "kid_refetch_cooldown", kind: "duration", default: "`30s`", doc: "A token with an unknown `kid` triggers a JWKS refetch at most once per this period, for the whole proxy (1s to 1h)." },
    FieldDoc { name: "max_key_staleness", kind: "duration", default: "`24h`", doc: "The longest a key set is used without a successful refresh; after that, tokens are refused until the IdP answers (1 minute to 30 days)." },
    // The client.
    FieldDoc { name: "client_id", kind: "string", default: "required", doc: "The client ID registered at the IdP." },
    FieldDoc { name: "client_secret", kind: "secret", default: "required", doc: "The client secret registered at the IdP." },
    FieldDoc { name: "token_endpoint_auth", kind: "string", default: "`client_secret_basic`", doc: "How the client authenticates at the token endpoint: `client_secret_basic`, `client_secret_post`, or `client_secret_jwt` (an HS256 client assertion, RFC 7523)." },
    FieldDoc { name: "redirect_path", kind: "string (path)", default: "`/oauth2/callback`", doc: "The callback path the IdP redirects back to; the redirect URI is built from the request's scheme (`X-Forwarded-Proto` first) and host." },
    FieldDoc { name: "redirect_uri", kind: "string (URL)", default: "built per request", doc: "An absolute redirect URI that replaces the one built from the request; its path must be `redirect_path`." },
    FieldDoc { name: "scopes", kind: "list of strings", default: "`[\"openid\",\"profile\",\"email\"]`", doc: "Scopes to request; `openid` is always added." },
    FieldDoc { name: "auth_query_params", kind: "map of string to list of strings", default: "`{}`", doc: "Extra authorization request parameters: one value gives `k=v`, an empty list a bare `k`, several values repeat the key." },
    FieldDoc { name: "userinfo", kind: "boolean", default: "`false`", doc: "Fetch the userinfo endpoint at login (its `sub` must equal the ID token's) and combine its claims with the ID token's, the ID token winning on conflicts." },
    // Tokens.
    FieldDoc { name: "clock_skew_seconds", kind: "integer", default: "`60`", doc: "Tolerance for `exp`, `nbf` and `iat`, in seconds (0 to 600)." },
    FieldDoc { name: "allowed_algorithms", kind: "list of strings", default: "`[\"RS256\"]`", doc: "Signature algorithms accepted on tokens: RS256/384/512, PS256/384/512, ES256, ES384, EdDSA. The key's type must fit too; HMAC and `none` are never accepted." },
    FieldDoc { name: "audiences", kind: "list of strings", default: "`[client_id]`", doc: "Accepted `aud` values of ID tokens and of bearer tokens from `issuer`." },
    FieldDoc { name: "bearer_validators", kind: "list of objects", default: "`[]`", doc: "Extra accepted issuers of bearer (access) tokens: each `{\"issuer\", \"audiences\", and one of \"jwks_uri\", \"discovery_url\", \"jwks\"}` (default: the issuer's discovery), optionally `idp_cluster`." },
    FieldDoc { name: "forward_token", kind: "string", default: "`id_token`", doc: "What a session sends upstream in `Authorization: Bearer`: `id_token`, `access_token`, or `none` (no Authorization header)." },
    FieldDoc { name: "token_cache_size", kind: "integer", default: "`1024`", doc: "Verified tokens and opened sessions remembered per worker (keyed by a hash, honouring `exp`); 0 turns the cache off." },
    FieldDoc { name: "token_cache_ttl", kind: "duration", default: "`5m`", doc: "The longest a cached verdict is reused before the token is checked again (1s to 1h)." },
    // Which requests.
    FieldDoc { name: "api_paths", kind: "list of paths", default: "`[]`", doc: "Paths whose clients always get 401 instead of a redirect (a trailing `/` or `*` makes a prefix)." },
    FieldDoc { name: "pass_through_paths", kind: "list of paths", default: "`[]`", doc: "Paths never authenticated (health checks, static assets); identity headers are still stripped." },
    FieldDoc { name: "allow_query_token", kind: "boolean", default: "`false`", doc: "Accept a bearer token in the `access_token` query parameter of WebSocket upgrades (removed before the request goes upstream)." },
    FieldDoc { name: "allowed_origins", kind: "list of strings", default: "`[]`", doc: "Origins (`https://app.example.com`) besides the request's own that may open cookie-authenticated WebSockets." },
    // Claims and authorization.
    FieldDoc { name: "claim_headers", kind: "map of header to claim path", default: "`{}`", doc: "Upstream headers set from claims (`\"X-Groups\": \"groups\"`, nested paths with dots, arrays joined with commas); client-sent copies are always removed." },
    FieldDoc { name: "claim_map", kind: "map of claim to map", default: "`{}`", doc: "Renames claim values before headers and rules, e.g. `{\"groups\": {\"a1b2-guid\": \"admins\"}}`; unmapped values stay as they are." },
    FieldDoc { name: "require", kind: "list of rules", default: "`[]`", doc: "Every rule must hold or the request gets 403: `{\"claim\": \"groups\", \"one_of\": [\"admins\"]}` or `{\"claim\": \"email_verified\", \"equals\": true}`." },
    // Cookies and sessions.
    FieldDoc { name: "cookie_secret", kind: "secret (base64)", default: "required (or `cookie_secrets`)", doc: "Base64 of 32 random bytes (`openssl rand -base64 32`); seals the session and login cookies." },
    FieldDoc { name: "cookie_secrets", kind: "list of secrets", default: "none", doc: "Several cookie secrets for rotation: the first seals, all open. Replaces `cookie_secret`." },
    FieldDoc { name: "cookie_name", kind: "string", default: "`oidc_edge`", doc: "Base name of the session cookie (`<name>`, or `<name>_0`, `<name>_1`, … when split); login cookies are `<name>_tx.<id>`. `__Host-` is prepended over https when no domain is set." },
    FieldDoc { name: "cookie_domain", kind: "string", default: "none (host-only)", doc: "The cookies' `Domain`; without it cookies are host-only and use the `__Host-` prefix over https." },
    FieldDoc { name: "cookie_same_site", kind: "string", default: "`lax`", doc: "`lax`, `strict` or `none` (`none` implies `Secure`)." },
    FieldDoc { name: "session_lifetime", kind: "duration", default: "`8h`", doc: "The longest a session lasts after login, whatever the tokens say (5 minutes to 30 days)." },
    FieldDoc { name: "login_timeout", kind: "duration", default: "`10m`", doc: "How long a started login (the sealed transaction cookie) stays valid (1 minute to 1 hour)." },
    FieldDoc { name: "refresh_before_expiry", kind: "duration", default: "`60s`", doc: "Refresh the tokens this long before they expire, when a refresh token is held (0s to 1h)." },
    FieldDoc { name: "logout_path", kind: "string (path)", default: "`/oauth2/logout`", doc: "Clears the session and sends the browser to the IdP's end-session endpoint. Only a POST, or a GET whose `Origin`/`Referer` is this site, logs out." },
    FieldDoc { name: "post_logout_redirect_uri", kind: "string (URL)", default: "`/` on this host", doc: "Where the IdP sends the browser after logout (register it at the IdP)." },
    // Several applications.
    FieldDoc { name: "routes", kind: "list of objects", default: "`[]`", doc: "Further relying parties by `host` (exact, or `*.example.com`) and optional `path_prefix`, each overriding any key above. The first match wins; no match uses the top level." },
];

/// Keys a route may not set (they are routing itself).
const ROUTE_ONLY: [&str; 2] = ["host", "path_prefix"];
/// Keys a bearer validator may set.
const VALIDATOR_KEYS: [&str; 6] = ["issuer", "audiences", "jwks_uri", "discovery_url", "jwks", "idp_cluster"];

/// How the client proves itself at the token endpoint (OIDC Core 9).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    Basic,
    Post,
    /// RFC 7523 client assertion signed with HS256 over the client secret.
    SecretJwt,
}

/// Which token is sent upstream in `Authorization`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForwardToken {
    IdToken,
    AccessToken,
    None,
}

/// Endpoints set explicitly in the configuration; each wins over discovery.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EndpointOverrides {
    pub authorization: Option<Endpoint>,
    pub token: Option<Endpoint>,
    pub jwks_uri: Option<Endpoint>,
    pub userinfo: Option<Endpoint>,
    pub end_session: Option<Endpoint>,
}

/// An issuer and where its metadata and keys come from. Shared by every profile and
/// validator that names the same one.
#[derive(Debug, Clone, PartialEq)]
pub struct ProviderConfig {
    /// Shared-data namespace: a digest of everything below that identifies the provider.
    pub namespace: String,
    pub issuer: String,
    pub idp_cluster: String,
    /// `None` when nothing needs discovery (explicit endpoints or static keys).
    pub discovery: Option<Endpoint>,
    pub endpoints: EndpointOverrides,
    /// Static keys (`jwks`): nothing to fetch.
    pub static_keys: Option<Vec<Value>>,
    /// Only keys are needed (a bearer validator), not login endpoints.
    pub keys_only: bool,
    pub timeout_ms: u64,
    pub jwks_refresh_interval: u64,
    pub discovery_refresh_interval: u64,
    pub rotation: Rotation,
    pub kid_refetch_cooldown: u64,
    pub max_key_staleness: u64,
}

impl ProviderConfig {
    /// How long a request may wait for a key refetch of this provider: one call's timeout.
    pub fn wait_deadline(&self, now: crate::time::UnixTime) -> crate::time::UnixTime {
        crate::time::after(now, (self.timeout_ms / 1000).saturating_add(1))
    }
}

/// External claim value → local value (`claim_map`).
pub type ValueMap = Vec<(String, String)>;

/// An extra accepted issuer of bearer tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BearerValidator {
    pub issuer: String,
    pub audiences: Vec<String>,
    pub provider: usize,
}

/// A claim condition of `require`.
#[derive(Debug, Clone, PartialEq)]
pub enum Rule {
    /// The claim (a string, or a list of strings) holds one of these values.
    OneOf { claim: Vec<String>, values: Vec<String> },
    /// The claim equals this JSON value exactly.
    Equals { claim: Vec<String>, value: Value },
}

impl Rule {
    pub fn claim(&self) -> &[String] {
        match self {
            Rule::OneOf { claim, .. } | Rule::Equals { claim, .. } => claim,
        }
    }
}

/// Cookie naming and attributes of one profile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CookieSettings {
    pub name: String,
    pub domain: Option<String>,
    pub same_site: SameSite,
    /// The first key seals; every key opens.
    pub keys: Vec<[u8; 32]>,
}

/// One relying party: everything that decides how a matched request is handled.
#[derive(Debug, Clone, PartialEq)]
pub struct Profile {
    /// `default`, or `routes[i]`: used in logs and to key per-profile state.
    pub name: String,
    pub provider: usize,
    pub bearer: Vec<BearerValidator>,
    pub client_id: String,
    pub client_secret: String,
    pub client_auth: ClientAuth,
    pub cookie: CookieSettings,
    pub redirect_path: String,
    pub redirect_uri: Option<String>,
    /// Space-separated, `openid` first.
    pub scope: String,
    /// Extra authorization parameters; `None` is a bare key.
    pub auth_query_params: Vec<(String, Option<String>)>,
    pub userinfo: bool,
    pub clock_skew: u64,
    pub allowed_algorithms: Vec<Alg>,
    pub audiences: Vec<String>,
    pub forward_token: ForwardToken,
    pub token_cache_size: usize,
    pub token_cache_ttl: u64,
    pub api_paths: Vec<String>,
    pub pass_through_paths: Vec<String>,
    pub allow_query_token: bool,
    pub allowed_origins: Vec<String>,
    /// (lower-case header name, claim path).
    pub claim_headers: Vec<(String, Vec<String>)>,
    /// (claim name, external value → local value).
    pub claim_map: Vec<(String, ValueMap)>,
    pub require: Vec<Rule>,
    pub session_lifetime: u64,
    pub login_timeout: u64,
    pub refresh_before_expiry: u64,
    pub logout_path: String,
    pub post_logout_redirect_uri: Option<String>,
}

/// Which profile serves a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// Lower-case host without port; `*.example.com` matches any subdomain. `None`: any host.
    pub host: Option<String>,
    pub path_prefix: String,
    pub profile: usize,
}

/// The validated configuration. Built once at configure time; never changes afterwards.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub providers: Vec<ProviderConfig>,
    /// `profiles[0]` is the top level.
    pub profiles: Vec<Profile>,
    pub routes: Vec<Route>,
}

const MINUTE: u64 = 60;
const HOUR: u64 = 3600;
const DAY: u64 = 86_400;

impl Settings {
    /// Parses and validates the plugin configuration without access to secrets in the
    /// environment (`{"env": ...}` secrets are then refused).
    pub fn from_json(bytes: &[u8]) -> Result<Settings, ConfigError> {
        Settings::from_json_with(bytes, &NoSecrets)
    }

    /// Parses and validates the plugin configuration (the `configuration` StringValue).
    pub fn from_json_with(bytes: &[u8], secrets: &dyn SecretSource) -> Result<Settings, ConfigError> {
        let value: Value = serde_json::from_slice(bytes).map_err(|e| {
            ConfigError::new("", format!("not valid JSON ({e}); the configuration must be one JSON object"))
        })?;
        let Value::Object(top) = value else {
            return Err(ConfigError::new("", "must be a JSON object of settings"));
        };
        check_known(&top, "", &[])?;
        let mut settings = Settings { providers: Vec::new(), profiles: Vec::new(), routes: Vec::new() };

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
                    let bare = h.strip_prefix("*.").unwrap_or(h);
                    if bare.is_empty() || !bare.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-') {
                        return Err(ConfigError::new(&format!("{prefix}host"), "must be a host name such as `app.example.com` or `*.example.com` (no scheme, port or path)"));
                    }
                }
                let path_prefix = rf.optional_string("path_prefix")?.unwrap_or_else(|| "/".into());
                if !is_plain_path(&path_prefix) {
                    return Err(ConfigError::new(&format!("{prefix}path_prefix"), "must be an absolute path such as `/app`"));
                }
                if host.is_none() && path_prefix == "/" {
                    return Err(ConfigError::new(&format!("routes[{i}]"), "needs a `host` or a `path_prefix` other than `/`, or it would shadow every later route and the top level"));
                }
                let mut merged = base.clone();
                for (k, v) in overrides {
                    if !ROUTE_ONLY.contains(&k.as_str()) {
                        merged.insert(k.clone(), v.clone());
                    }
                }
                let name = format!("routes[{i}]");
                let mut profile = parse_profile(&Fields::new(&merged, &prefix), &name, secrets, &mut settings.providers)?;
                if !overrides.contains_key("cookie_name") {
                    // Two routes on one host must not overwrite each other's session.
                    profile.cookie.name = format!("{}-{}", profile.cookie.name, i.saturating_add(1));
                }
                settings.routes.push(Route { host, path_prefix, profile: settings.profiles.len() });
                settings.profiles.push(profile);
            }
        }
        Ok(settings)
    }

    /// The profile that serves `host` (the `:authority`, port ignored) and `path`.
    pub fn profile_for(&self, authority: &str, path: &str) -> usize {
        // Most configurations route by path only: no host to normalise on every request.
        let host = if self.routes.iter().any(|r| r.host.is_some()) { bare_host(authority) } else { String::new() };
        self.routes
            .iter()
            .find(|r| host_matches(r.host.as_deref(), &host) && crate::request::path_matches(path, &r.path_prefix))
            .map(|r| r.profile)
            .unwrap_or(0)
    }

    /// Every profile that may serve requests to `authority`, whatever the path: the
    /// candidates for a callback or logout path that several routes share.
    pub fn profiles_for_host(&self, authority: &str) -> Vec<usize> {
        let host = bare_host(authority);
        let mut out: Vec<usize> = self.routes.iter().filter(|r| host_matches(r.host.as_deref(), &host)).map(|r| r.profile).collect();
        out.push(0);
        out
    }

    /// The default profile (the top level of the configuration).
    pub fn default_profile(&self) -> &Profile {
        // profiles is never empty once parsed; the fallback only satisfies the type.
        static EMPTY: std::sync::OnceLock<Profile> = std::sync::OnceLock::new();
        self.profiles.first().unwrap_or_else(|| EMPTY.get_or_init(Profile::placeholder))
    }
}

fn bare_host(authority: &str) -> String {
    let host = authority.rsplit_once(':').filter(|(_, port)| port.bytes().all(|b| b.is_ascii_digit())).map(|(h, _)| h).unwrap_or(authority);
    host.to_ascii_lowercase()
}

fn host_matches(pattern: Option<&str>, host: &str) -> bool {
    match pattern {
        None => true,
        Some(pattern) => match pattern.strip_prefix("*.") {
            Some(suffix) => host.strip_suffix(suffix).is_some_and(|rest| rest.len() > 1 && rest.ends_with('.')),
            None => host == pattern,
        },
    }
}

impl Profile {
    fn placeholder() -> Profile {
        Profile {
            name: String::new(),
            provider: 0,
            bearer: vec![],
            client_id: String::new(),
            client_secret: String::new(),
            client_auth: ClientAuth::Basic,
            cookie: CookieSettings { name: "oidc_edge".into(), domain: None, same_site: SameSite::Lax, keys: vec![] },
            redirect_path: "/oauth2/callback".into(),
            redirect_uri: None,
            scope: "openid".into(),
            auth_query_params: vec![],
            userinfo: false,
            clock_skew: 60,
            allowed_algorithms: vec![Alg::RS256],
            audiences: vec![],
            forward_token: ForwardToken::IdToken,
            token_cache_size: 0,
            token_cache_ttl: 300,
            api_paths: vec![],
            pass_through_paths: vec![],
            allow_query_token: false,
            allowed_origins: vec![],
            claim_headers: vec![],
            claim_map: vec![],
            require: vec![],
            session_lifetime: 8 * HOUR,
            login_timeout: 10 * MINUTE,
            refresh_before_expiry: 60,
            logout_path: "/oauth2/logout".into(),
            post_logout_redirect_uri: None,
        }
    }
}

fn check_known(map: &Map<String, Value>, prefix: &str, extra: &[&str]) -> Result<(), ConfigError> {
    for key in map.keys() {
        if !FIELDS.iter().any(|f| f.name == key) && !extra.contains(&key.as_str()) {
            let hint = closest_field(key)
                .map(|k| format!("; did you mean `{k}`?"))
                .unwrap_or_else(|| "; see the configuration reference in the README".into());
            return Err(ConfigError::new(&format!("{prefix}{key}"), format!("unknown field{hint}")));
        }
    }
    Ok(())
}

fn parse_profile(f: &Fields<'_>, name: &str, secrets: &dyn SecretSource, providers: &mut Vec<ProviderConfig>) -> Result<Profile, ConfigError> {
    let issuer = f.required_string("issuer")?;
    let idp_cluster = f.required_string("idp_cluster")?;
    let main = parse_provider(f, &issuer, &idp_cluster, false)?;
    let provider = intern(providers, main);

    let client_id = f.required_string("client_id")?;
    let client_secret = f.required_secret("client_secret", secrets)?;
    let client_auth = match f.optional_string("token_endpoint_auth")?.as_deref() {
        None | Some("client_secret_basic") => ClientAuth::Basic,
        Some("client_secret_post") => ClientAuth::Post,
        Some("client_secret_jwt") => {
            if client_secret.len() < 32 {
                return Err(f.err("client_secret", "must be at least 32 characters with `client_secret_jwt`: it is the HS256 key of the client assertion (RFC 7518 3.2)"));
            }
            ClientAuth::SecretJwt
        }
        Some(other) => {
            return Err(f.err(
                "token_endpoint_auth",
                format!("`{other}` is not supported; use `client_secret_basic`, `client_secret_post` or `client_secret_jwt`"),
            ))
        }
    };

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

    let redirect_path = f.optional_string("redirect_path")?.unwrap_or_else(|| "/oauth2/callback".into());
    if !is_plain_path(&redirect_path) {
        return Err(f.err("redirect_path", "must be an absolute path such as `/oauth2/callback`, without query or fragment"));
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
            let cluster = vf.optional_string("idp_cluster")?.unwrap_or_else(|| idp_cluster.clone());
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
    if !is_plain_path(&logout_path) || logout_path == redirect_path {
        return Err(f.err("logout_path", "must be an absolute path such as `/oauth2/logout`, different from `redirect_path`"));
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
        cookie: CookieSettings { name: cookie_name, domain: cookie_domain, same_site, keys: cookie_keys },
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
        post_logout_redirect_uri,
    })
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

/// Headers the filter owns: a claim header may not replace them.
const RESERVED_HEADERS: [&str; 6] = ["authorization", "cookie", "host", "x-auth-request-user", "x-auth-request-email", "x-auth-request-access-token"];

/// The raw JSON object with typed accessors whose errors name the field.
struct Fields<'a> {
    map: &'a Map<String, Value>,
    prefix: String,
}

impl<'a> Fields<'a> {
    fn new(map: &'a Map<String, Value>, prefix: &str) -> Fields<'a> {
        Fields { map, prefix: prefix.to_string() }
    }

    fn err(&self, name: &str, message: impl Into<String>) -> ConfigError {
        ConfigError::new(&format!("{}{name}", self.prefix), message)
    }

    fn has(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    fn get(&self, name: &str) -> Option<&'a Value> {
        match self.map.get(name) {
            None | Some(Value::Null) => None,
            Some(v) => Some(v),
        }
    }

    fn required_string(&self, name: &str) -> Result<String, ConfigError> {
        match self.optional_string(name)? {
            Some(s) if !s.trim().is_empty() => Ok(s),
            Some(_) => Err(self.err(name, "must not be empty")),
            None => Err(self.err(name, "is required")),
        }
    }

    fn optional_string(&self, name: &str) -> Result<Option<String>, ConfigError> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(other) => Err(self.err(name, format!("must be a string, got {}", kind_of(other)))),
        }
    }

    fn optional_bool(&self, name: &str) -> Result<Option<bool>, ConfigError> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(other) => Err(self.err(name, format!("must be true or false, got {}", kind_of(other)))),
        }
    }

    /// A secret: a string, `{"env": "NAME"}` (the VM's environment) or `{"file": "/path"}`.
    fn secret_value(&self, name: &str, value: &Value, secrets: &dyn SecretSource) -> Result<String, ConfigError> {
        let resolved = match value {
            Value::String(s) => s.clone(),
            Value::Object(m) if m.len() == 1 => match (m.get("env"), m.get("file")) {
                (Some(Value::String(var)), None) => secrets.env(var).ok_or_else(|| {
                    self.err(name, format!("environment variable `{var}` is not set in the plugin's VM; pass it with Envoy `vm_config.environment_variables` (host_env_keys or key_values) or Istio `vmConfig.env`"))
                })?,
                (None, Some(Value::String(path))) => secrets.file(path).map_err(|e| self.err(name, format!("cannot read `{path}`: {e}")))?,
                _ => return Err(self.err(name, "must be a string, {\"env\": \"NAME\"} or {\"file\": \"/path\"}")),
            },
            other => return Err(self.err(name, format!("must be a string, {{\"env\": \"NAME\"}} or {{\"file\": \"/path\"}}, got {}", kind_of(other)))),
        };
        let trimmed = resolved.trim_end_matches(['\n', '\r']).to_string();
        if trimmed.is_empty() {
            return Err(self.err(name, "must not be empty"));
        }
        Ok(trimmed)
    }

    fn required_secret(&self, name: &str, secrets: &dyn SecretSource) -> Result<String, ConfigError> {
        match self.get(name) {
            None => Err(self.err(name, "is required")),
            Some(v) => self.secret_value(name, v, secrets),
        }
    }

    fn secret_list(&self, name: &str, secrets: &dyn SecretSource) -> Result<Vec<String>, ConfigError> {
        match self.get(name) {
            None => Ok(vec![]),
            Some(Value::Array(items)) => items.iter().map(|v| self.secret_value(name, v, secrets)).collect(),
            Some(other) => Err(self.err(name, format!("must be a list of secrets, got {}", kind_of(other)))),
        }
    }

    fn optional_string_list(&self, name: &str) -> Result<Option<Vec<String>>, ConfigError> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| match v {
                    Value::String(s) => Ok(s.clone()),
                    other => Err(self.err(name, format!("must be a list of strings, found {}", kind_of(other)))),
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Some),
            Some(other) => Err(self.err(name, format!("must be a list of strings, got {}", kind_of(other)))),
        }
    }

    fn path_list(&self, name: &str) -> Result<Vec<String>, ConfigError> {
        let list = self.optional_string_list(name)?.unwrap_or_default();
        for p in &list {
            let bare = p.strip_suffix('*').unwrap_or(p);
            if !bare.starts_with('/') || bare.contains(['?', '#']) || bare.bytes().any(|b| b <= b' ') {
                return Err(self.err(name, format!("`{p}` is not an absolute path such as `/healthz` or `/api/`")));
            }
        }
        Ok(list)
    }

    fn optional_u64(&self, name: &str) -> Result<Option<u64>, ConfigError> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::Number(n)) => n.as_u64().map(Some).ok_or_else(|| self.err(name, "must be a non-negative whole number")),
            Some(other) => Err(self.err(name, format!("must be a number, got {}", kind_of(other)))),
        }
    }

    /// A duration: a number of seconds, or a string like `90s`, `15m`, `1h`, `7d`.
    fn optional_duration(&self, name: &str, min: u64, max: u64) -> Result<Option<u64>, ConfigError> {
        let secs = match self.get(name) {
            None => return Ok(None),
            Some(Value::Number(n)) => n.as_u64(),
            Some(Value::String(s)) => parse_duration(s),
            Some(other) => return Err(self.err(name, format!("must be a duration such as \"1h\" or a number of seconds, got {}", kind_of(other)))),
        };
        let secs = secs.ok_or_else(|| self.err(name, "must be a duration such as \"30s\", \"15m\", \"1h\", \"7d\" or a number of seconds"))?;
        if secs < min || secs > max {
            return Err(self.err(name, format!("must be between {} and {}", human(min), human(max))));
        }
        Ok(Some(secs))
    }

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
            if RESERVED_HEADERS.contains(&lower.as_str()) {
                return Err(self.err(name, format!("`{header}` is set by the filter itself and cannot come from a claim")));
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

/// `90`, `90s`, `15m`, `1h`, `7d` → seconds.
pub fn parse_duration(s: &str) -> Option<u64> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num.parse().ok()?;
    let mult = match unit {
        "" | "s" => 1,
        "m" => MINUTE,
        "h" => HOUR,
        "d" => DAY,
        _ => return None,
    };
    n.checked_mul(mult)
}

fn human(secs: u64) -> String {
    if secs == 0 {
        "0s".into()
    } else if secs % DAY == 0 {
        format!("{}d", secs / DAY)
    } else if secs % HOUR == 0 {
        format!("{}h", secs / HOUR)
    } else if secs % MINUTE == 0 {
        format!("{}m", secs / MINUTE)
    } else {
        format!("{secs}s")
    }
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

fn closest_field(key: &str) -> Option<&'static str> {
    closest_name(key, FIELDS.iter().map(|f| f.name))
}

/// The candidate nearest a misspelt name (at most 3 edits away), for a "did you mean" hint;
/// the annotation renderer uses it too.
pub fn closest_name(key: &str, candidates: impl Iterator<Item = &'static str>) -> Option<&'static str> {
    candidates.map(|n| (edit_distance(key, n), n)).filter(|(d, _)| *d <= 3).min_by_key(|(d, _)| *d).map(|(_, n)| n)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i.saturating_add(1)];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev.get(j).copied().unwrap_or(usize::MAX).saturating_add(usize::from(ca != *cb));
            let del = prev.get(j.saturating_add(1)).copied().unwrap_or(usize::MAX).saturating_add(1);
            let ins = cur.get(j).copied().unwrap_or(usize::MAX).saturating_add(1);
            cur.push(sub.min(del).min(ins));
        }
        prev = cur;
    }
    prev.last().copied().unwrap_or(0)
}

#[cfg(test)]
mod tests {
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
            (json!({"token_endpoint_auth": "private_key_jwt"}), "token_endpoint_auth", "client_secret_basic"),
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
            (json!({"claim_headers": {"X-A": "a..b"}}), "claim_headers", "claim path"),
            (json!({"claim_map": {"groups": ["a"]}}), "claim_map", "object"),
            (json!({"require": [{"claim": "groups"}]}), "require[0]", "exactly one"),
            (json!({"require": [{"claim": "groups", "one_of": []}]}), "require[0]", "exactly one"),
            (json!({"require": [{"claim": "groups", "any": ["a"]}]}), "require[0].any", "unknown field"),
            (json!({"require": [{"one_of": ["a"]}]}), "require[0].claim", "required"),
            (json!({"logout_path": "/oauth2/callback"}), "logout_path", "different"),
            (json!({"post_logout_redirect_uri": "/"}), "post_logout_redirect_uri", "absolute"),
            (json!({"token_cache_size": 1_000_000}), "token_cache_size", "at most"),
            (json!({"bearer_validators": [{"issuer": "https://sts.windows.net/t/"}]}), "bearer_validators[0].audiences", "accepted `aud`"),
            (json!({"bearer_validators": [{"issuer": "https://x", "audiences": ["a"], "scopes": []}]}), "bearer_validators[0].scopes", "unknown field"),
            (json!({"routes": {}}), "routes", "list"),
            (json!({"routes": [{"path_prefix": "/"}]}), "routes[0]", "shadow"),
            (json!({"routes": [{"host": "https://a"}]}), "routes[0].host", "host name"),
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
}

//! The plugin configuration: JSON from Envoy in, validated `Settings` out; every default lives here.
//!
//! One JSON object configures a default relying party; `routes` add more (by host and
//! path prefix), each a copy of the top level with its own overrides. Providers (issuer
//! plus where its metadata and keys come from) are deduplicated so that two routes of
//! the same IdP share one discovery/JWKS cache.
//!
//! This module holds the validated types and the per-request lookups; `parse` builds
//! them from JSON, reading fields through `fields`; `reference` lists every documented key.

mod fields;
mod parse;
mod reference;

use std::fmt;

use serde_json::Value;

use crate::b64;
use crate::http::Endpoint;
use crate::jwks::Rotation;
use crate::jwt::Alg;
use crate::session::cookies::SameSite;

pub use fields::parse_duration;
pub use reference::{closest_name, FieldDoc, FIELDS};

/// Headers the filter sets itself: a client's copies never reach the upstream, and no
/// claim header may take their name.
pub const IDENTITY_HEADERS: [&str; 5] = ["authorization", "x-auth-request-user", "x-auth-request-email", "x-auth-request-issuer", "x-auth-request-access-token"];

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

/// The private key of `private_key_jwt` and how the assertion's header names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientKeySettings {
    pub key: crate::oidc::client_key::ClientKey,
    pub kid: Option<String>,
    /// Base64url SHA-1 thumbprint of the key's certificate (Entra ID identifies keys so).
    pub x5t: Option<String>,
}

/// How the client proves itself at the token endpoint (OIDC Core 9).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    Basic,
    Post,
    /// RFC 7523 client assertion signed with HS256 over the client secret.
    SecretJwt,
    /// RFC 7523 client assertion signed with the client's own private key (`client_key`).
    PrivateKeyJwt,
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
    /// With `private_key_jwt`: the key, and the `kid` / `x5t` the assertion names.
    pub client_key: Option<ClientKeySettings>,
    /// The `aud` of client assertions is the issuer, not the token endpoint.
    pub assertion_audience_issuer: bool,
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
    /// The login initiation endpoint (OIDC Core 4): starts a login on request.
    pub login_path: String,
    pub post_logout_redirect_uri: Option<String>,
}

/// Which profile serves a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// Lower-case host as written, a port included if one was (`app.example.com:8443`);
    /// `*.example.com` matches any subdomain. `None`: any host.
    pub host: Option<String>,
    /// `host` without its port or a trailing dot, for the normalised reading of a request's host.
    pub bare_host: Option<String>,
    pub path: RoutePath,
    pub profile: usize,
}

/// The paths a route covers, as Envoy's route `prefix` / `path` match them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoutePath {
    /// `path_prefix`: by whole segments (`/admin`, `/admin/...`), or everything below it
    /// when it ends in `/`.
    Prefix(String),
    /// `path_exact`: that path only (Kubernetes' `pathType: Exact`).
    Exact(String),
}

impl RoutePath {
    /// `plain`: a prefix read as a plain string, as Envoy's `prefix` match does.
    fn matches(&self, path: &str, plain: bool) -> bool {
        match self {
            RoutePath::Prefix(prefix) if plain => path.starts_with(prefix.as_str()),
            RoutePath::Prefix(prefix) => crate::request::path_matches(path, prefix),
            RoutePath::Exact(exact) => path == exact,
        }
    }
}

/// Envoy picks a virtual host by how specifically its domain names the host: an exact
/// name, then the longest `*.` suffix, then any host. Routes are tried in that order (and
/// in the order written within each), so a wildcard route never takes a request that
/// Envoy sends to an exact host's application.
pub fn host_rank(host: Option<&str>) -> (u8, std::cmp::Reverse<usize>) {
    match host {
        Some(h) => match h.strip_prefix("*.") {
            Some(suffix) => (1, std::cmp::Reverse(suffix.len())),
            None => (0, std::cmp::Reverse(0)),
        },
        None => (2, std::cmp::Reverse(0)),
    }
}

/// The validated configuration. Built once at configure time; never changes afterwards.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub providers: Vec<ProviderConfig>,
    /// `profiles[0]` is the top level.
    pub profiles: Vec<Profile>,
    pub routes: Vec<Route>,
    /// Derived from `routes` at parse: how a request's host must be read.
    pub hosts: HostReading,
}

/// What the routes ask of a request's host, settled at configure time.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HostReading {
    /// Some route names a host: the host is read at all.
    pub routed: bool,
    /// Some route's host names a port: the host as sent can differ from its bare form
    /// even when the request's host has neither port nor trailing dot.
    pub ported: bool,
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
        parse::settings(bytes, secrets)
    }

    /// The profile that serves `host` (the `:authority`, port ignored) and `path`: the first
    /// route whose path matches, a `path_prefix` by whole segments (`/admin` and `/admin/...`).
    pub fn profile_for(&self, authority: &str, path: &str) -> usize {
        self.route_for(&self.route_host(authority), true, |route| route.matches(path, false))
    }

    /// `profile_for`, when every reading of the request that Envoy or the application may
    /// act on selects the same route: the path by whole segments (`path_separated_prefix`)
    /// and as a plain string (`prefix`, the usual one), as for `/adminx` under a route
    /// `/admin`; the host as sent (Envoy picks virtual hosts on it, port and trailing dot
    /// included, unless told to strip them) and without port and trailing dot. Where they
    /// differ, the filter cannot know which backend Envoy sends the request to, nor so
    /// which rules apply.
    pub fn unambiguous_profile_for(&self, authority: &str, path: &str) -> Result<usize, Ambiguity> {
        let bare = self.route_host(authority);
        let by_segments = self.route_for(&bare, true, |route| route.matches(path, false));
        let by_string = self.route_for(&bare, true, |route| route.matches(path, true));
        if by_segments != by_string {
            return Err(Ambiguity::Path);
        }
        // Read as sent only where that can differ: the request's host has a port or a
        // trailing dot, or a route's host names a port.
        if self.hosts.routed && (authority.len() != bare.len() || self.hosts.ported) {
            let sent = authority.to_ascii_lowercase();
            let as_sent = [false, true].map(|plain| self.route_for(&sent, false, |route| route.matches(path, plain)));
            if as_sent.iter().any(|p| *p != by_segments) {
                return Err(Ambiguity::Host);
            }
        }
        Ok(by_segments)
    }

    /// The host routes are matched on, without port or trailing dot. Most configurations
    /// route by path only: then no host is normalised on every request.
    fn route_host(&self, authority: &str) -> String {
        if self.hosts.routed {
            bare_host(authority)
        } else {
            String::new()
        }
    }

    /// The first route (in `host_rank` order, as parsed) for the host whose path matches;
    /// `bare`: `host` is the normalised reading, compared with the routes' bare hosts.
    fn route_for(&self, host: &str, bare: bool, path_matches: impl Fn(&RoutePath) -> bool) -> usize {
        self.routes
            .iter()
            .find(|r| host_matches(if bare { r.bare_host.as_deref() } else { r.host.as_deref() }, host) && path_matches(&r.path))
            .map(|r| r.profile)
            .unwrap_or(0)
    }

    /// Every profile that may serve requests to `authority`, whatever the path: the
    /// candidates for a callback or logout path that several routes share.
    pub fn profiles_for_host(&self, authority: &str) -> Vec<usize> {
        let host = bare_host(authority);
        let mut out: Vec<usize> = self.routes.iter().filter(|r| host_matches(r.bare_host.as_deref(), &host)).map(|r| r.profile).collect();
        out.push(0);
        out
    }

    /// The issuer of a profile's IdP.
    pub fn issuer_of(&self, profile: &Profile) -> &str {
        self.providers.get(profile.provider).map(|p| p.issuer.as_str()).unwrap_or_default()
    }
}

/// Why `unambiguous_profile_for` cannot pick a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ambiguity {
    Path,
    Host,
}

pub(crate) fn bare_host(authority: &str) -> String {
    let host = authority.rsplit_once(':').filter(|(_, port)| port.bytes().all(|b| b.is_ascii_digit())).map(|(h, _)| h).unwrap_or(authority);
    // `app.example.com.` is the same host as `app.example.com` (a fully qualified name).
    host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase()
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
    /// The profile as the configuration names it: `the top level` or `routes[<n>]`.
    pub fn label(&self) -> &str {
        if self.name == "default" {
            "the top level"
        } else {
            &self.name
        }
    }

    /// The `max_age` sent to the IdP (`auth_query_params`), in seconds.
    pub fn max_age(&self) -> Option<u64> {
        self.auth_query_params.iter().find(|(k, _)| k == "max_age").and_then(|(_, v)| v.as_deref()?.parse().ok())
    }
}

#[cfg(test)]
mod tests;

//! The plugin configuration: JSON from Envoy in, validated `Settings` out; every default lives here.

use std::fmt;

use serde_json::{Map, Value};

use crate::b64;
use crate::http::Endpoint;
use crate::jwt::Alg;

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

/// One documented configuration key. The README's reference table is checked against this list.
pub struct FieldDoc {
    pub name: &'static str,
    pub kind: &'static str,
    pub default: &'static str,
    pub doc: &'static str,
}

pub const FIELDS: &[FieldDoc] = &[
    FieldDoc { name: "issuer", kind: "string (URL)", default: "required", doc: "The IdP's issuer; discovery is fetched from `issuer + /.well-known/openid-configuration` and every token's `iss` must equal it exactly." },
    FieldDoc { name: "idp_cluster", kind: "string", default: "required", doc: "The Envoy cluster that reaches the IdP; every discovery, JWKS and token call goes through it." },
    FieldDoc { name: "client_id", kind: "string", default: "required", doc: "The client ID registered at the IdP." },
    FieldDoc { name: "client_secret", kind: "string", default: "required", doc: "The client secret registered at the IdP." },
    FieldDoc { name: "token_endpoint_auth", kind: "string", default: "`client_secret_basic`", doc: "How the client authenticates at the token endpoint: `client_secret_basic` or `client_secret_post`." },
    FieldDoc { name: "cookie_secret", kind: "string (base64)", default: "required", doc: "Base64 of 32 random bytes (`openssl rand -base64 32`); seals the session and login cookies." },
    FieldDoc { name: "redirect_path", kind: "string (path)", default: "`/oauth2/callback`", doc: "The callback path the IdP redirects back to; the redirect URI is built from the request's scheme (`X-Forwarded-Proto` first) and host." },
    FieldDoc { name: "redirect_uri", kind: "string (URL)", default: "built per request", doc: "An absolute redirect URI that replaces the one built from the request; its path must be `redirect_path`." },
    FieldDoc { name: "scopes", kind: "list of strings", default: "`[\"openid\",\"profile\",\"email\"]`", doc: "Scopes to request; `openid` is always added." },
    FieldDoc { name: "clock_skew_seconds", kind: "integer", default: "`60`", doc: "Tolerance for `exp`, `nbf` and `iat`, in seconds (0 to 600)." },
    FieldDoc { name: "forward_token", kind: "string", default: "`id_token`", doc: "Which token goes upstream in `Authorization: Bearer`: `id_token` or `access_token`." },
    FieldDoc { name: "allowed_algorithms", kind: "list of strings", default: "`[\"RS256\"]`", doc: "Signature algorithms accepted on tokens: RS256/384/512, PS256/384/512, ES256, ES384, EdDSA. The key's type must fit too." },
    FieldDoc { name: "audiences", kind: "list of strings", default: "`[client_id]`", doc: "Accepted `aud` values of ID tokens." },
    FieldDoc { name: "idp_timeout", kind: "duration", default: "`5s`", doc: "Timeout of every call to the IdP." },
    FieldDoc { name: "session_lifetime", kind: "duration", default: "`8h`", doc: "The longest a session lasts after login, whatever the tokens say." },
    FieldDoc { name: "login_timeout", kind: "duration", default: "`10m`", doc: "How long a started login (the sealed transaction cookie) stays valid." },
    FieldDoc { name: "jwks_refresh_interval", kind: "duration", default: "`1h`", doc: "How often the JWKS is refetched (1 minute to 30 days)." },
    FieldDoc { name: "discovery_refresh_interval", kind: "duration", default: "`24h`", doc: "How often the discovery document is refetched (1 minute to 30 days)." },
];

/// How the client proves itself at the token endpoint (OIDC Core 9).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    Basic,
    Post,
}

/// Which token is sent upstream in `Authorization`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForwardToken {
    IdToken,
    AccessToken,
}

/// The validated configuration. Built once at configure time; never changes afterwards.
#[derive(Debug, Clone)]
pub struct Settings {
    pub issuer: String,
    pub discovery: Endpoint,
    pub idp_cluster: String,
    pub client_id: String,
    pub client_secret: String,
    pub client_auth: ClientAuth,
    /// The first key seals; every key opens.
    pub cookie_keys: Vec<[u8; 32]>,
    pub redirect_path: String,
    pub redirect_uri: Option<String>,
    /// Space-separated, `openid` first.
    pub scope: String,
    pub clock_skew: u64,
    pub forward_token: ForwardToken,
    pub allowed_algorithms: Vec<Alg>,
    pub audiences: Vec<String>,
    pub idp_timeout_ms: u64,
    pub session_lifetime: u64,
    pub login_timeout: u64,
    pub jwks_refresh_interval: u64,
    pub discovery_refresh_interval: u64,
}

const MINUTE: u64 = 60;
const HOUR: u64 = 3600;
const DAY: u64 = 86_400;

impl Settings {
    /// Parses and validates the plugin configuration (the `configuration` StringValue).
    pub fn from_json(bytes: &[u8]) -> Result<Settings, ConfigError> {
        let value: Value = serde_json::from_slice(bytes).map_err(|e| {
            ConfigError::new("", format!("not valid JSON ({e}); the configuration must be one JSON object"))
        })?;
        let Value::Object(map) = value else {
            return Err(ConfigError::new("", "must be a JSON object of settings"));
        };
        let fields = Fields::new(map)?;
        Settings::from_fields(&fields)
    }

    fn from_fields(f: &Fields) -> Result<Settings, ConfigError> {
        let issuer = f.required_string("issuer")?;
        let discovery_url = format!("{}/.well-known/openid-configuration", issuer.trim_end_matches('/'));
        let issuer_endpoint = Endpoint::parse(&issuer).ok_or_else(|| {
            ConfigError::new("issuer", "must be an absolute http(s) URL without user info or fragment, e.g. `https://login.example.com/realms/main`")
        })?;
        if issuer_endpoint.path.contains('?') {
            return Err(ConfigError::new("issuer", "must not have a query string (OIDC Discovery 4)"));
        }
        let discovery = Endpoint::parse(&discovery_url)
            .ok_or_else(|| ConfigError::new("issuer", "does not give a valid discovery URL"))?;

        let idp_cluster = f.required_string("idp_cluster")?;
        let client_id = f.required_string("client_id")?;
        let client_secret = f.required_string("client_secret")?;
        let client_auth = match f.optional_string("token_endpoint_auth")?.as_deref() {
            None | Some("client_secret_basic") => ClientAuth::Basic,
            Some("client_secret_post") => ClientAuth::Post,
            Some(other) => {
                return Err(ConfigError::new(
                    "token_endpoint_auth",
                    format!("`{other}` is not supported; use `client_secret_basic` or `client_secret_post`"),
                ))
            }
        };

        let cookie_secret = f.required_string("cookie_secret")?;
        let cookie_keys = vec![decode_secret("cookie_secret", &cookie_secret)?];

        let redirect_path = f.optional_string("redirect_path")?.unwrap_or_else(|| "/oauth2/callback".into());
        if !is_plain_path(&redirect_path) {
            return Err(ConfigError::new("redirect_path", "must be an absolute path such as `/oauth2/callback`, without query or fragment"));
        }
        let redirect_uri = f.optional_string("redirect_uri")?;
        if let Some(uri) = &redirect_uri {
            let ep = Endpoint::parse(uri).ok_or_else(|| {
                ConfigError::new("redirect_uri", "must be an absolute http(s) URL such as `https://app.example.com/oauth2/callback`")
            })?;
            if ep.path != redirect_path {
                return Err(ConfigError::new(
                    "redirect_uri",
                    format!("its path `{}` must equal `redirect_path` (`{redirect_path}`), or the callback would never be recognised", ep.path),
                ));
            }
        }

        let mut scopes = f.optional_string_list("scopes")?.unwrap_or_else(|| vec!["openid".into(), "profile".into(), "email".into()]);
        for s in &scopes {
            if s.is_empty() || s.bytes().any(|b| b <= b' ' || b == b'"' || b == b'\\' || b >= 0x7f) {
                return Err(ConfigError::new("scopes", format!("`{s}` is not a valid scope token (RFC 6749 3.3)")));
            }
        }
        scopes.retain(|s| s != "openid");
        scopes.insert(0, "openid".into());
        scopes.dedup();
        let scope = scopes.join(" ");

        let clock_skew = f.optional_u64("clock_skew_seconds")?.unwrap_or(60);
        if clock_skew > 600 {
            return Err(ConfigError::new("clock_skew_seconds", "must be between 0 and 600 seconds; a larger skew accepts expired tokens for too long"));
        }

        let forward_token = match f.optional_string("forward_token")?.as_deref() {
            None | Some("id_token") => ForwardToken::IdToken,
            Some("access_token") => ForwardToken::AccessToken,
            Some(other) => {
                return Err(ConfigError::new("forward_token", format!("`{other}` is not supported; use `id_token` or `access_token`")))
            }
        };

        let allowed_algorithms = match f.optional_string_list("allowed_algorithms")? {
            None => vec![Alg::RS256],
            Some(list) if list.is_empty() => {
                return Err(ConfigError::new("allowed_algorithms", "must name at least one algorithm, e.g. [\"RS256\"]"))
            }
            Some(list) => list
                .iter()
                .map(|name| {
                    Alg::from_name(name).ok_or_else(|| {
                        ConfigError::new(
                            "allowed_algorithms",
                            format!("`{name}` is not supported; choose from RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, EdDSA (HMAC and `none` are never accepted)"),
                        )
                    })
                })
                .collect::<Result<Vec<_>, _>>()?,
        };

        let audiences = f.optional_string_list("audiences")?.unwrap_or_else(|| vec![client_id.clone()]);
        if audiences.is_empty() || audiences.iter().any(String::is_empty) {
            return Err(ConfigError::new("audiences", "must list at least one non-empty audience (default: the client_id)"));
        }

        let idp_timeout = f.optional_duration("idp_timeout", 1, 60)?.unwrap_or(5);
        let session_lifetime = f.optional_duration("session_lifetime", 5 * MINUTE, 30 * DAY)?.unwrap_or(8 * HOUR);
        let login_timeout = f.optional_duration("login_timeout", MINUTE, HOUR)?.unwrap_or(10 * MINUTE);
        let jwks_refresh_interval = f.optional_duration("jwks_refresh_interval", MINUTE, 30 * DAY)?.unwrap_or(HOUR);
        let discovery_refresh_interval =
            f.optional_duration("discovery_refresh_interval", MINUTE, 30 * DAY)?.unwrap_or(24 * HOUR);

        Ok(Settings {
            issuer,
            discovery,
            idp_cluster,
            client_id,
            client_secret,
            client_auth,
            cookie_keys,
            redirect_path,
            redirect_uri,
            scope,
            clock_skew,
            forward_token,
            allowed_algorithms,
            audiences,
            idp_timeout_ms: idp_timeout.saturating_mul(1000),
            session_lifetime,
            login_timeout,
            jwks_refresh_interval,
            discovery_refresh_interval,
        })
    }
}

fn is_plain_path(p: &str) -> bool {
    p.starts_with('/') && !p.starts_with("//") && !p.contains(['?', '#', '\\']) && !p.bytes().any(|b| b <= b' ' || b >= 0x7f)
}

fn decode_secret(field: &str, value: &str) -> Result<[u8; 32], ConfigError> {
    let bytes = b64::lenient_decode(value).ok_or_else(|| {
        ConfigError::new(field, "is not base64; generate one with `openssl rand -base64 32`")
    })?;
    <[u8; 32]>::try_from(bytes.as_slice()).map_err(|_| {
        ConfigError::new(field, format!("must decode to exactly 32 bytes, got {}; generate one with `openssl rand -base64 32`", bytes.len()))
    })
}

/// The raw JSON object with typed, field-naming accessors.
struct Fields {
    map: Map<String, Value>,
}

impl Fields {
    fn new(map: Map<String, Value>) -> Result<Fields, ConfigError> {
        for key in map.keys() {
            if !FIELDS.iter().any(|f| f.name == key) {
                let hint = closest_field(key)
                    .map(|k| format!("; did you mean `{k}`?"))
                    .unwrap_or_else(|| "; see the configuration reference in the README".into());
                return Err(ConfigError::new(key, format!("unknown field{hint}")));
            }
        }
        Ok(Fields { map })
    }

    fn get(&self, name: &str) -> Option<&Value> {
        match self.map.get(name) {
            None | Some(Value::Null) => None,
            Some(v) => Some(v),
        }
    }

    fn required_string(&self, name: &str) -> Result<String, ConfigError> {
        match self.optional_string(name)? {
            Some(s) if !s.trim().is_empty() => Ok(s),
            Some(_) => Err(ConfigError::new(name, "must not be empty")),
            None => Err(ConfigError::new(name, "is required")),
        }
    }

    fn optional_string(&self, name: &str) -> Result<Option<String>, ConfigError> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(other) => Err(ConfigError::new(name, format!("must be a string, got {}", kind_of(other)))),
        }
    }

    fn optional_string_list(&self, name: &str) -> Result<Option<Vec<String>>, ConfigError> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| match v {
                    Value::String(s) => Ok(s.clone()),
                    other => Err(ConfigError::new(name, format!("must be a list of strings, found {}", kind_of(other)))),
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Some),
            Some(other) => Err(ConfigError::new(name, format!("must be a list of strings, got {}", kind_of(other)))),
        }
    }

    fn optional_u64(&self, name: &str) -> Result<Option<u64>, ConfigError> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::Number(n)) => n
                .as_u64()
                .map(Some)
                .ok_or_else(|| ConfigError::new(name, "must be a non-negative whole number")),
            Some(other) => Err(ConfigError::new(name, format!("must be a number, got {}", kind_of(other)))),
        }
    }

    /// A duration: a number of seconds, or a string like `90s`, `15m`, `1h`, `7d`.
    fn optional_duration(&self, name: &str, min: u64, max: u64) -> Result<Option<u64>, ConfigError> {
        let secs = match self.get(name) {
            None => return Ok(None),
            Some(Value::Number(n)) => n.as_u64(),
            Some(Value::String(s)) => parse_duration(s),
            Some(other) => {
                return Err(ConfigError::new(name, format!("must be a duration such as \"1h\" or a number of seconds, got {}", kind_of(other))))
            }
        };
        let secs = secs.ok_or_else(|| ConfigError::new(name, "must be a duration such as \"30s\", \"15m\", \"1h\", \"7d\" or a number of seconds"))?;
        if secs < min || secs > max {
            return Err(ConfigError::new(name, format!("must be between {} and {}", human(min), human(max))));
        }
        Ok(Some(secs))
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
    if secs % DAY == 0 {
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
    FIELDS
        .iter()
        .map(|f| (edit_distance(key, f.name), f.name))
        .filter(|(d, _)| *d <= 3)
        .min_by_key(|(d, _)| *d)
        .map(|(_, n)| n)
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

    #[test]
    fn defaults() {
        let s = with(json!({})).unwrap();
        assert_eq!(s.discovery.url(), "https://idp.example.com/.well-known/openid-configuration");
        assert_eq!(s.client_auth, ClientAuth::Basic);
        assert_eq!(s.redirect_path, "/oauth2/callback");
        assert_eq!(s.scope, "openid profile email");
        assert_eq!(s.clock_skew, 60);
        assert_eq!(s.forward_token, ForwardToken::IdToken);
        assert_eq!(s.allowed_algorithms, vec![Alg::RS256]);
        assert_eq!(s.audiences, vec!["app".to_string()]);
        assert_eq!(s.idp_timeout_ms, 5000);
        assert_eq!(s.jwks_refresh_interval, 3600);
    }

    #[test]
    fn trailing_slash_issuer_keeps_issuer_exact() {
        let s = with(json!({"issuer": "https://idp.example.com/realm/"})).unwrap();
        assert_eq!(s.issuer, "https://idp.example.com/realm/");
        assert_eq!(s.discovery.path, "/realm/.well-known/openid-configuration");
    }

    #[test]
    fn openid_always_first_and_once() {
        let s = with(json!({"scopes": ["email", "openid", "groups"]})).unwrap();
        assert_eq!(s.scope, "openid email groups");
        let s = with(json!({"scopes": []})).unwrap();
        assert_eq!(s.scope, "openid");
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
            (json!({"cookie_secret": "c2hvcnQ="}), "cookie_secret", "32 bytes"),
            (json!({"cookie_secret": "!!!"}), "cookie_secret", "base64"),
            (json!({"token_endpoint_auth": "private_key_jwt"}), "token_endpoint_auth", "client_secret_basic"),
            (json!({"redirect_path": "callback"}), "redirect_path", "absolute path"),
            (json!({"redirect_path": "//x"}), "redirect_path", "absolute path"),
            (json!({"redirect_uri": "https://app/other"}), "redirect_uri", "redirect_path"),
            (json!({"redirect_uri": "app/oauth2/callback"}), "redirect_uri", "absolute"),
            (json!({"scopes": "openid"}), "scopes", "list of strings"),
            (json!({"scopes": ["a b"]}), "scopes", "scope token"),
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
            (json!({"isuer": "x"}), "isuer", "did you mean `issuer`"),
            (json!({"totally_unknown_thing": 1}), "totally_unknown_thing", "unknown field"),
        ];
        for (patch, field, needle) in cases {
            let err = with(patch.clone()).expect_err(&format!("{patch} should be refused"));
            assert_eq!(err.field, field, "{patch}: {err}");
            assert!(err.to_string().contains(needle), "{patch}: `{err}` should mention `{needle}`");
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
        assert_eq!((s.jwks_refresh_interval, s.session_lifetime), (120, 86_400));
    }

    #[test]
    fn cookie_secret_accepts_both_alphabets() {
        let raw = [0xfbu8; 32];
        for enc in [b64::std_encode(&raw), b64::url_encode(&raw)] {
            let s = with(json!({"cookie_secret": enc})).unwrap();
            assert_eq!(s.cookie_keys, vec![raw]);
        }
    }
}

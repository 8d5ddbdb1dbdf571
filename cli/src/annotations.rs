//! The one table: every `oidc-edge.io/` annotation, the plugin key it sets, how its value is
//! read, its default and its documentation. Everything else (parsing, the per-route overrides,
//! the error messages, the table in `docs/cli.md`) is derived from [`ANNOTATIONS`].

use serde_json::{json, Map, Value};

/// The one prefix of every annotation the renderer reads.
pub const PREFIX: &str = "oidc-edge.io/";

/// How an annotation's string value is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// An absolute `http(s)` URL.
    Url,
    /// A non-empty string without control characters.
    Text,
    /// A secret given in the clear (allowed, warned about).
    InlineSecret,
    /// The name of an environment variable of the proxy; rendered as `{"env": NAME}`.
    EnvSecret,
    /// Scope tokens separated by commas and/or spaces.
    Scopes,
    /// One absolute path.
    Path,
    /// A whole number of seconds.
    Seconds,
    /// `Header=claim.path,Header2=claim`.
    ClaimHeaders,
    /// Comma-separated group names, rendered as a `require` rule on the `groups` claim.
    Groups,
    /// Comma-separated absolute paths.
    PathList,
    /// An Envoy cluster name.
    ClusterName,
    /// `id_token`, `access_token` or `none`.
    ForwardToken,
}

/// Whether an Ingress must carry the annotation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    Required,
    /// Exactly one annotation of those with the same key must be given (a secret from the
    /// environment or inline); the first of them in the table is the recommended one.
    OneOfKey,
    Optional,
}

/// One annotation: `oidc-edge.io/<name>` sets the plugin key `key`.
#[derive(Debug)]
pub struct Annotation {
    pub name: &'static str,
    pub key: &'static str,
    pub kind: Kind,
    pub need: Need,
    /// The value the filter uses when the key is absent, as JSON text (`None`: no default).
    /// Used to write explicit per-route values where a route must not inherit the top level.
    pub default: Option<&'static str>,
    pub example: &'static str,
    pub doc: &'static str,
}

pub const ANNOTATIONS: &[Annotation] = &[
    Annotation {
        name: "issuer",
        key: "issuer",
        kind: Kind::Url,
        need: Need::Required,
        default: None,
        example: "https://login.example.com/realms/main",
        doc: "The OpenID Provider's issuer URL (discovery is `<issuer>/.well-known/openid-configuration`). Its host and port give the IdP cluster, ServiceEntry and DestinationRule.",
    },
    Annotation {
        name: "idp-cluster",
        key: "idp_cluster",
        kind: Kind::ClusterName,
        need: Need::Optional,
        default: None,
        example: "idp",
        doc: "`--output envoy` only: the name of the rendered cluster that reaches the IdP (default `oidc-edge-idp-<issuer host>`). With `--output istio` it is always Istio's `outbound|<port>||<issuer host>` and this annotation is ignored with a warning.",
    },
    Annotation {
        name: "client-id",
        key: "client_id",
        kind: Kind::Text,
        need: Need::Required,
        default: None,
        example: "shop-frontend",
        doc: "The client ID registered at the IdP.",
    },
    Annotation {
        name: "client-secret-env",
        key: "client_secret",
        kind: Kind::EnvSecret,
        need: Need::OneOfKey,
        default: None,
        example: "OIDC_EDGE_CLIENT_SECRET",
        doc: "Name of an environment variable of the proxy (the gateway's `istio-proxy` container, or Envoy's process) holding the client secret; rendered as `{\"env\": NAME}` and passed to the VM (`vmConfig.env` / `host_env_keys`). Required unless `client-secret` is given.",
    },
    Annotation {
        name: "client-secret",
        key: "client_secret",
        kind: Kind::InlineSecret,
        need: Need::OneOfKey,
        default: None,
        example: "s3cr3t",
        doc: "The client secret inline. Allowed but warned about: it is then readable by anyone who can read the rendered configuration. Prefer `client-secret-env`.",
    },
    Annotation {
        name: "cookie-secret-env",
        key: "cookie_secret",
        kind: Kind::EnvSecret,
        need: Need::OneOfKey,
        default: None,
        example: "OIDC_EDGE_COOKIE_SECRET",
        doc: "Name of an environment variable of the proxy holding the cookie secret (base64 of 32 random bytes, `openssl rand -base64 32`). Required unless `cookie-secret` is given.",
    },
    Annotation {
        name: "cookie-secret",
        key: "cookie_secret",
        kind: Kind::InlineSecret,
        need: Need::OneOfKey,
        default: None,
        example: "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
        doc: "The cookie secret inline (base64 of 32 bytes). Allowed but warned about; prefer `cookie-secret-env`.",
    },
    Annotation {
        name: "scopes",
        key: "scopes",
        kind: Kind::Scopes,
        need: Need::Optional,
        default: Some(r#"["openid","profile","email"]"#),
        example: "openid,email,groups",
        doc: "Scopes to request, separated by commas and/or spaces; `openid` is always added.",
    },
    Annotation {
        name: "redirect-path",
        key: "redirect_path",
        kind: Kind::Path,
        need: Need::Optional,
        default: Some(r#""/oauth2/callback""#),
        example: "/oauth2/callback",
        doc: "The callback path the IdP redirects back to; register `https://<host><path>` at the IdP.",
    },
    Annotation {
        name: "clock-skew",
        key: "clock_skew_seconds",
        kind: Kind::Seconds,
        need: Need::Optional,
        default: Some("60"),
        example: "30",
        doc: "Tolerance for `exp`, `nbf` and `iat`, in whole seconds (0 to 600).",
    },
    Annotation {
        name: "forward-token",
        key: "forward_token",
        kind: Kind::ForwardToken,
        need: Need::Optional,
        default: Some(r#""id_token""#),
        example: "access_token",
        doc: "Which token goes upstream in `Authorization: Bearer`: `id_token`, `access_token` or `none`.",
    },
    Annotation {
        name: "claim-headers",
        key: "claim_headers",
        kind: Kind::ClaimHeaders,
        need: Need::Optional,
        default: Some("{}"),
        example: "X-User=sub,X-Org=org.name",
        doc: "Request headers set from token claims: comma-separated `Header=claim.path` pairs (a dotted path reaches into nested claims).",
    },
    Annotation {
        name: "required-groups",
        key: "require",
        kind: Kind::Groups,
        need: Need::Optional,
        default: Some("[]"),
        example: "admins,devs",
        doc: "Comma-separated groups; the user must be in at least one (rendered as `\"require\": [{\"claim\": \"groups\", \"one_of\": [...]}]`).",
    },
    Annotation {
        name: "pass-through-paths",
        key: "pass_through_paths",
        kind: Kind::PathList,
        need: Need::Optional,
        default: Some("[]"),
        example: "/healthz,/public",
        doc: "Comma-separated absolute paths that reach the application without authentication.",
    },
    Annotation {
        name: "api-paths",
        key: "api_paths",
        kind: Kind::PathList,
        need: Need::Optional,
        default: Some("[]"),
        example: "/api",
        doc: "Comma-separated absolute paths answered with 401 instead of a login redirect (API clients).",
    },
];

/// The annotation called `name` (without the prefix).
pub fn find(name: &str) -> Option<&'static Annotation> {
    ANNOTATIONS.iter().find(|a| a.name == name)
}

/// The annotations that set `key`, in table order.
pub fn for_key(key: &str) -> impl Iterator<Item = &'static Annotation> + '_ {
    ANNOTATIONS.iter().filter(move |a| a.key == key)
}

/// The plugin keys in the order the rendered configuration lists them.
pub fn keys() -> Vec<&'static str> {
    let mut keys: Vec<&'static str> = Vec::new();
    for a in ANNOTATIONS {
        if !keys.contains(&a.key) {
            keys.push(a.key);
        }
    }
    keys
}

/// The filter's default for `key`, when it has one the renderer can write out.
pub fn default_of(key: &str) -> Option<Value> {
    for_key(key).find_map(|a| a.default).and_then(|text| serde_json::from_str(text).ok())
}

/// Whether an annotation key is meant for this tool: exactly under [`PREFIX`], or a
/// misspelling of the prefix (`oidc-edge-io/`, `oidc-edge.io.`, `oidc_edge.io/`,
/// `OIDC-Edge.io/`, `oidcedge.io/`), which must be refused rather than skipped.
pub fn looks_like_ours(key: &str) -> bool {
    squash(key).starts_with("oidcedge")
}

/// Letters and digits only, lower case: what is left of a key whatever its separators.
fn squash(s: &str) -> String {
    s.chars().filter(char::is_ascii_alphanumeric).map(|c| c.to_ascii_lowercase()).collect()
}

/// For a key that [`looks_like_ours`] but does not start with [`PREFIX`]: the annotation
/// it was probably meant to be.
pub fn meant(key: &str) -> Option<&'static str> {
    let squashed = squash(key);
    let rest = squashed.strip_prefix("oidcedge").unwrap_or(&squashed);
    let rest = rest.strip_prefix("io").unwrap_or(rest);
    if let Some(a) = ANNOTATIONS.iter().find(|a| squash(a.name) == rest) {
        return Some(a.name);
    }
    let tail = key.rsplit(['/', '.']).next().unwrap_or(key).to_ascii_lowercase();
    closest(&tail)
}

/// The closest annotation name to a misspelt one, for a "did you mean" hint.
pub fn closest(name: &str) -> Option<&'static str> {
    oidc_edge::config::closest_name(name, ANNOTATIONS.iter().map(|a| a.name))
}

/// Reads one annotation value. The error says what is wrong and what is expected.
pub fn parse(kind: Kind, raw: &str) -> Result<Value, String> {
    let v = raw.trim();
    match kind {
        Kind::Url => {
            if v.is_empty() {
                return Err("is empty; expected the issuer URL, e.g. `https://login.example.com/realms/main`".into());
            }
            match oidc_edge::http::Endpoint::parse(v) {
                Some(_) => Ok(json!(v)),
                None => Err(format!(
                    "`{v}` is not an absolute http(s) URL; expected e.g. `https://login.example.com/realms/main`"
                )),
            }
        }
        Kind::Text => {
            if v.is_empty() {
                Err("is empty; expected a non-empty value".into())
            } else if v.chars().any(char::is_control) {
                Err("contains control characters".into())
            } else {
                Ok(json!(v))
            }
        }
        Kind::InlineSecret => {
            // A secret is taken as written: trimming it would make the filter send another
            // secret than the one registered at the IdP, failing only at login.
            if !v.is_empty() && v.len() != raw.len() {
                Err("has leading or trailing whitespace; a secret is used exactly as written: remove the spaces (or, if they belong to it, use the `-env` annotation)".into())
            } else if v.is_empty() {
                Err("is empty; expected the secret (better: the name of an environment variable in the `-env` annotation)".into())
            } else if v.chars().any(char::is_control) {
                Err("contains control characters".into())
            } else {
                Ok(json!(v))
            }
        }
        Kind::EnvSecret => {
            if is_env_name(v) {
                Ok(json!({ "env": v }))
            } else {
                Err(format!(
                    "`{v}` is not a valid environment variable name; expected letters, digits and `_`, not starting with a digit, e.g. `MY_APP_SECRET`"
                ))
            }
        }
        Kind::Scopes => {
            let scopes: Vec<&str> = split_list(v, true);
            if scopes.is_empty() {
                return Err("lists no scope; expected scopes separated by commas or spaces, e.g. `openid,email,groups` (or leave the annotation out for the default)".into());
            }
            for s in &scopes {
                if s.bytes().any(|b| b < b' ' || b == b'"' || b == b'\\' || b >= 0x7f) {
                    return Err(format!("`{s}` is not a valid scope (RFC 6749 3.3); expected e.g. `openid,email,groups`"));
                }
            }
            Ok(json!(scopes))
        }
        Kind::Path => {
            check_path(v)?;
            Ok(json!(v))
        }
        Kind::Seconds => {
            let digits = v.strip_suffix('s').unwrap_or(v);
            match digits.parse::<u64>() {
                Ok(n) if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) => Ok(json!(n)),
                _ => Err(format!("`{v}` is not a whole number of seconds; expected e.g. `60`")),
            }
        }
        Kind::ClaimHeaders => parse_claim_headers(v),
        Kind::Groups => {
            let groups: Vec<&str> = split_list(v, false);
            if groups.is_empty() {
                return Err("lists no group; expected comma-separated group names, e.g. `admins,devs`".into());
            }
            if let Some(g) = groups.iter().find(|g| g.chars().any(char::is_control)) {
                return Err(format!("group `{}` contains control characters", g.escape_debug()));
            }
            Ok(json!([{ "claim": "groups", "one_of": groups }]))
        }
        Kind::PathList => {
            let paths: Vec<&str> = split_list(v, true);
            if paths.is_empty() {
                return Err("lists no path; expected comma-separated absolute paths, e.g. `/healthz,/public`".into());
            }
            for p in &paths {
                check_path(p)?;
            }
            Ok(json!(paths))
        }
        Kind::ClusterName => {
            if v.is_empty() || v.bytes().any(|b| b <= b' ' || b >= 0x7f) {
                Err(format!("`{v}` is not a usable Envoy cluster name; expected e.g. `idp` (no spaces)"))
            } else {
                Ok(json!(v))
            }
        }
        Kind::ForwardToken => match v {
            "id_token" | "access_token" | "none" => Ok(json!(v)),
            other => Err(format!("`{other}` is not supported; expected `id_token`, `access_token` or `none`")),
        },
    }
}

fn split_list(v: &str, spaces_separate: bool) -> Vec<&str> {
    v.split(|c: char| c == ',' || (spaces_separate && c.is_whitespace()))
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect()
}

fn check_path(p: &str) -> Result<(), String> {
    let plain = p.starts_with('/')
        && !p.starts_with("//")
        && !p.contains(['?', '#', '\\'])
        && !p.bytes().any(|b| b <= b' ' || b >= 0x7f);
    if plain {
        Ok(())
    } else {
        Err(format!("`{p}` is not an absolute path; expected a path starting with `/`, without query or fragment, e.g. `/healthz`"))
    }
}

/// A POSIX-portable environment variable name.
pub fn is_env_name(v: &str) -> bool {
    let mut bytes = v.bytes();
    match bytes.next() {
        Some(b) if b.is_ascii_alphabetic() || b == b'_' => bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_'),
        _ => false,
    }
}

/// RFC 9110 `token` characters: what an HTTP header name may contain.
fn is_header_name(h: &str) -> bool {
    !h.is_empty() && h.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// Headers the filter itself owns or that must never come from a claim.
const RESERVED_HEADERS: &[&str] = &["authorization", "cookie", "host", "content-length", "transfer-encoding", "connection"];

fn parse_claim_headers(v: &str) -> Result<Value, String> {
    let mut out = Map::new();
    let mut seen: Vec<String> = Vec::new();
    let pairs: Vec<&str> = split_list(v, false);
    if pairs.is_empty() {
        return Err("lists no header; expected `Header=claim.path` pairs, e.g. `X-User=sub,X-Org=org.name`".into());
    }
    for pair in pairs {
        let Some((header, claim)) = pair.split_once('=') else {
            return Err(format!("`{pair}` is not `Header=claim.path`; expected e.g. `X-User=sub,X-Org=org.name`"));
        };
        let (header, claim) = (header.trim(), claim.trim());
        if !is_header_name(header) {
            return Err(format!("`{header}` is not a valid HTTP header name; expected e.g. `X-User`"));
        }
        let lower = header.to_ascii_lowercase();
        if RESERVED_HEADERS.contains(&lower.as_str()) {
            return Err(format!("header `{header}` cannot be set from a claim; choose another name, e.g. `X-User`"));
        }
        if seen.contains(&lower) {
            return Err(format!("header `{header}` is given twice"));
        }
        let claim_ok = !claim.is_empty()
            && claim.split('.').all(|seg| !seg.is_empty())
            && !claim.bytes().any(|b| b <= b' ' || b == b'=' || b >= 0x7f);
        if !claim_ok {
            return Err(format!(
                "`{claim}` (for header `{header}`) is not a claim path; expected a claim name or dotted path such as `sub` or `org.name`"
            ));
        }
        seen.push(lower);
        out.insert(header.to_string(), json!(claim));
    }
    Ok(Value::Object(out))
}

/// The annotation reference as a Markdown table (kept verbatim in `docs/cli.md`; a test checks).
pub fn markdown_table() -> String {
    let mut out = String::from("| annotation | plugin key | required | example | meaning |\n|---|---|---|---|---|\n");
    for a in ANNOTATIONS {
        let need = match a.need {
            Need::Required => "yes",
            Need::OneOfKey => "one of the two",
            Need::Optional => "no",
        };
        let key = match a.kind {
            Kind::EnvSecret => format!("`{}` as `{{\"env\": NAME}}`", a.key),
            _ => format!("`{}`", a.key),
        };
        out.push_str(&format!("| `{PREFIX}{}` | {key} | {need} | `{}` | {} |\n", a.name, a.example, a.doc));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_keys_ordered() {
        for (i, a) in ANNOTATIONS.iter().enumerate() {
            assert!(ANNOTATIONS.iter().skip(i + 1).all(|b| b.name != a.name), "{} twice", a.name);
        }
        assert_eq!(keys().first(), Some(&"issuer"));
        assert_eq!(keys().iter().filter(|k| **k == "client_secret").count(), 1);
    }

    #[test]
    fn every_default_is_json() {
        for a in ANNOTATIONS {
            if let Some(d) = a.default {
                assert!(serde_json::from_str::<Value>(d).is_ok(), "{}: {d}", a.name);
            }
        }
    }

    #[test]
    fn examples_parse() {
        for a in ANNOTATIONS {
            assert!(parse(a.kind, a.example).is_ok(), "{}: {}", a.name, a.example);
        }
    }

    #[test]
    fn values() {
        assert_eq!(parse(Kind::Scopes, " openid, email  groups,").unwrap(), json!(["openid", "email", "groups"]));
        assert_eq!(parse(Kind::Seconds, "30").unwrap(), json!(30));
        assert_eq!(parse(Kind::Seconds, "30s").unwrap(), json!(30));
        assert!(parse(Kind::Seconds, "-1").is_err());
        assert!(parse(Kind::Seconds, "s").is_err());
        assert!(parse(Kind::Seconds, "+5").is_err());
        assert_eq!(
            parse(Kind::ClaimHeaders, "X-User=sub, X-Org = org.name").unwrap(),
            json!({"X-User": "sub", "X-Org": "org.name"})
        );
        assert_eq!(
            parse(Kind::Groups, "admins, Domain Users").unwrap(),
            json!([{"claim": "groups", "one_of": ["admins", "Domain Users"]}])
        );
        assert_eq!(parse(Kind::EnvSecret, "A_1").unwrap(), json!({"env": "A_1"}));
        assert_eq!(parse(Kind::PathList, "/a, /b").unwrap(), json!(["/a", "/b"]));
    }

    #[test]
    fn bad_values_say_what_is_expected() {
        let cases: &[(Kind, &str, &str)] = &[
            (Kind::Url, "login.example.com", "absolute http(s) URL"),
            (Kind::Url, "", "empty"),
            (Kind::EnvSecret, "1SECRET", "environment variable name"),
            (Kind::EnvSecret, "MY-SECRET", "environment variable name"),
            (Kind::EnvSecret, "", "environment variable name"),
            (Kind::Path, "callback", "absolute path"),
            (Kind::Path, "//evil", "absolute path"),
            (Kind::PathList, "/a,b", "`b` is not an absolute path"),
            (Kind::PathList, ",", "no path"),
            (Kind::ClaimHeaders, "X-User", "Header=claim.path"),
            (Kind::ClaimHeaders, "X User=sub", "header name"),
            (Kind::ClaimHeaders, "Authorization=sub", "cannot be set"),
            (Kind::ClaimHeaders, "X-A=sub,x-a=email", "twice"),
            (Kind::ClaimHeaders, "X-A=org..name", "claim path"),
            (Kind::Groups, " , ", "no group"),
            (Kind::ForwardToken, "both", "`id_token`, `access_token` or `none`"),
            (Kind::ClusterName, "my cluster", "cluster name"),
            (Kind::Text, " ", "empty"),
            (Kind::InlineSecret, "  padded secret  ", "leading or trailing whitespace"),
            (Kind::InlineSecret, "secret\n", "leading or trailing whitespace"),
            (Kind::Scopes, "", "lists no scope"),
            (Kind::Scopes, " , ", "lists no scope"),
        ];
        for (kind, raw, needle) in cases {
            let err = parse(*kind, raw).expect_err(raw);
            assert!(err.contains(needle), "{kind:?} {raw:?}: `{err}` should mention `{needle}`");
        }
    }

    #[test]
    fn misspelt_prefixes_are_recognised() {
        for key in [
            "oidc-edge-io/issuer",
            "oidc-edge.io.issuer",
            "oidcedge.io/issuer",
            "oidc_edge.io/issuer",
            "OIDC-Edge.io/issuer",
            "oidc-edge.IO/Issuer",
            "oidc-edge/issuer",
        ] {
            assert!(looks_like_ours(key), "{key}");
            assert_eq!(meant(key), Some("issuer"), "{key}");
        }
        assert_eq!(meant("oidc-edge-io/client-secret-env"), Some("client-secret-env"));
        assert_eq!(meant("oidc_edge.io/required_groups"), Some("required-groups"));
        assert!(looks_like_ours("oidc-edge.io/issuer"));
        for key in ["nginx.ingress.kubernetes.io/auth-url", "kubernetes.io/ingress.class", "edge.io/x", "oidc.io/issuer"] {
            assert!(!looks_like_ours(key), "{key}");
        }
    }

    #[test]
    fn did_you_mean() {
        assert_eq!(closest("isuer"), Some("issuer"));
        assert_eq!(closest("client-secret-envv"), Some("client-secret-env"));
        assert_eq!(closest("completely-different"), None);
    }
}

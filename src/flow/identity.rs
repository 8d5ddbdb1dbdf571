//! Who the request is, once a token or session checked out: claims after `claim_map`, upstream headers, `require` rules.

use serde_json::{Map, Value};

use crate::config::{Profile, Rule};
use crate::time::UnixTime;

/// The authenticated principal, as the upstream will see it.
#[derive(Debug, Clone, PartialEq)]
pub struct Identity {
    pub sub: String,
    pub email: Option<String>,
    /// All claims, after `claim_map`.
    pub claims: Map<String, Value>,
    /// When this identity stops being valid (the token's `exp`).
    pub exp: UnixTime,
}

impl Identity {
    pub fn from_claims(mut claims: Map<String, Value>, profile: &Profile, exp: UnixTime) -> Identity {
        apply_claim_map(&mut claims, profile);
        let sub = claims.get("sub").and_then(Value::as_str).unwrap_or_default().to_string();
        // An address the IdP says it has not verified is anybody's claim: it is not passed
        // on as the user's (absent `email_verified`: many access tokens carry none).
        let unverified = matches!(claims.get("email_verified"), Some(Value::Bool(false))) || claims.get("email_verified").and_then(Value::as_str) == Some("false");
        let email = claims.get("email").and_then(Value::as_str).filter(|_| !unverified).map(str::to_string);
        Identity { sub, email, claims, exp }
    }
}

/// Renames values of mapped claims (a string or the strings of a list); others stay.
fn apply_claim_map(claims: &mut Map<String, Value>, profile: &Profile) {
    for (claim, table) in &profile.claim_map {
        let rename = |v: &mut Value| {
            if let Value::String(s) = v {
                if let Some((_, to)) = table.iter().find(|(from, _)| from == s) {
                    *s = to.clone();
                }
            }
        };
        match claims.get_mut(claim) {
            Some(Value::Array(items)) => items.iter_mut().for_each(rename),
            Some(v @ Value::String(_)) => rename(v),
            _ => {}
        }
    }
}

/// The value at a dotted path (`realm_access.roles`). A top-level claim whose whole name is
/// the path wins: namespaced claims (`https://example.com/roles`, as Auth0 requires) contain
/// dots, and could not be addressed otherwise.
pub fn lookup<'a>(claims: &'a Map<String, Value>, path: &[String]) -> Option<&'a Value> {
    if path.len() > 1 {
        if let Some((_, v)) = claims.iter().find(|(name, _)| is_joined(name, path)) {
            return Some(v);
        }
    }
    let (first, rest) = path.split_first()?;
    let mut current = claims.get(first)?;
    for key in rest {
        current = current.as_object()?.get(key)?;
    }
    Some(current)
}

/// Whether `name` is `parts` joined with dots, without building the joined string.
fn is_joined(name: &str, parts: &[String]) -> bool {
    let mut rest = name;
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            match rest.strip_prefix('.') {
                Some(r) => rest = r,
                None => return false,
            }
        }
        match rest.strip_prefix(part.as_str()) {
            Some(r) => rest = r,
            None => return false,
        }
    }
    rest.is_empty()
}

/// A claim as a header value: strings as they are, numbers and booleans printed, lists
/// joined with commas. Anything that could break the header (control characters) or is
/// absurdly large is dropped rather than forwarded.
pub fn header_value(value: &Value) -> Option<String> {
    let scalar = |v: &Value| -> Option<String> {
        match v {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            _ => None,
        }
    };
    let text = match value {
        Value::Array(items) => items.iter().filter_map(scalar).collect::<Vec<_>>().join(","),
        Value::Object(_) => value.to_string(),
        other => scalar(other)?,
    };
    header_safe(&text).then_some(text)
}

fn header_safe(text: &str) -> bool {
    text.len() <= 16 * 1024 && !text.bytes().any(|b| b < b' ' && b != b'\t' || b == 0x7f)
}

/// The identity headers set upstream (after the client's copies were removed).
/// `with_issuer`: the configuration trusts several issuers, so `sub` alone does not name a
/// user (OIDC Core 5.7: only `iss` and `sub` together do); the issuer goes along.
pub fn upstream_headers(identity: &Identity, profile: &Profile, with_issuer: bool) -> Vec<(String, String)> {
    let mut headers = Vec::with_capacity(profile.claim_headers.len().saturating_add(3));
    if header_safe(&identity.sub) {
        headers.push(("x-auth-request-user".to_string(), identity.sub.clone()));
    }
    if let Some(iss) = identity.claims.get("iss").and_then(Value::as_str).filter(|i| with_issuer && header_safe(i)) {
        headers.push(("x-auth-request-issuer".to_string(), iss.to_string()));
    }
    if let Some(email) = identity.email.as_ref().filter(|e| header_safe(e)) {
        headers.push(("x-auth-request-email".to_string(), email.clone()));
    }
    for (header, path) in &profile.claim_headers {
        if let Some(v) = lookup(&identity.claims, path).and_then(header_value) {
            headers.push((header.clone(), v));
        }
    }
    headers
}

/// Checks every `require` rule; the error names the first rule that failed (for the log).
pub fn check_rules(identity: &Identity, rules: &[Rule]) -> Result<(), String> {
    for rule in rules {
        let value = lookup(&identity.claims, rule.claim());
        let ok = match (rule, value) {
            (Rule::OneOf { values, .. }, Some(Value::String(s))) => values.contains(s),
            (Rule::OneOf { values, .. }, Some(Value::Array(items))) => {
                items.iter().any(|i| i.as_str().is_some_and(|s| values.iter().any(|v| v == s)))
            }
            (Rule::Equals { value: expected, .. }, Some(v)) => v == expected,
            _ => false,
        };
        if !ok {
            return Err(format!("claim `{}` does not satisfy the rule", rule.claim().join(".")));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Settings;
    use serde_json::json;

    fn profile(extra: Value) -> Profile {
        let mut cfg = json!({"issuer":"https://i","idp_cluster":"c","client_id":"a","client_secret":"s",
            "cookie_secret": crate::b64::std_encode(&[1u8;32])});
        for (k, v) in extra.as_object().unwrap() {
            cfg[k] = v.clone();
        }
        Settings::from_json(cfg.to_string().as_bytes()).unwrap().profiles.remove(0)
    }

    fn claims() -> Map<String, Value> {
        json!({
            "sub": "alice", "email": "alice@example.com", "email_verified": true,
            "groups": ["g-1", "devs"], "org": {"tenant": {"id": 42}}, "evil": "a\r\nX-Injected: 1",
            "role": "g-1",
        })
        .as_object()
        .unwrap()
        .clone()
    }

    #[test]
    fn claim_headers_and_map() {
        let p = profile(json!({
            "claim_headers": {"X-Groups": "groups", "X-Tenant": "org.tenant.id", "X-Evil": "evil", "X-Missing": "nope", "X-Verified": "email_verified", "X-Org": "org"},
            "claim_map": {"groups": {"g-1": "admins"}, "role": {"g-1": "owner"}},
        }));
        let id = Identity::from_claims(claims(), &p, 0);
        assert_eq!(id.claims["groups"], json!(["admins", "devs"]));
        assert_eq!(id.claims["role"], json!("owner"));
        let h = upstream_headers(&id, &p, false);
        let get = |n: &str| h.iter().find(|(k, _)| k == n).map(|(_, v)| v.as_str());
        assert_eq!(get("x-auth-request-user"), Some("alice"));
        assert_eq!(get("x-auth-request-email"), Some("alice@example.com"));
        assert_eq!(get("x-groups"), Some("admins,devs"));
        assert_eq!(get("x-tenant"), Some("42"));
        assert_eq!(get("x-verified"), Some("true"));
        assert_eq!(get("x-org"), Some(r#"{"tenant":{"id":42}}"#));
        assert_eq!(get("x-evil"), None, "header injection is dropped");
        assert_eq!(get("x-missing"), None);
    }

    #[test]
    fn rules() {
        let p = profile(json!({"claim_map": {"groups": {"g-1": "admins"}}}));
        let id = Identity::from_claims(claims(), &p, 0);
        let rule = |v: Value| -> Vec<Rule> {
            profile(json!({"require": v})).require
        };
        assert!(check_rules(&id, &rule(json!([{"claim": "groups", "one_of": ["admins"]}]))).is_ok(), "mapped before rules");
        assert!(check_rules(&id, &rule(json!([{"claim": "groups", "one_of": ["g-1"]}]))).is_err());
        assert!(check_rules(&id, &rule(json!([{"claim": "email_verified", "equals": true}]))).is_ok());
        assert!(check_rules(&id, &rule(json!([{"claim": "email_verified", "equals": "true"}]))).is_err());
        assert!(check_rules(&id, &rule(json!([{"claim": "org.tenant.id", "equals": 42}]))).is_ok());
        assert!(check_rules(&id, &rule(json!([{"claim": "sub", "one_of": ["bob", "alice"]}]))).is_ok());
        assert!(check_rules(&id, &rule(json!([{"claim": "missing", "one_of": ["x"]}]))).is_err());
        let both = rule(json!([{"claim": "sub", "one_of": ["alice"]}, {"claim": "groups", "one_of": ["ops"]}]));
        assert!(check_rules(&id, &both).is_err(), "all rules must hold");
    }

    #[test]
    fn namespaced_claims_are_addressed_by_their_whole_name() {
        let mut c = claims();
        c.insert("https://example.com/roles".into(), json!(["editor", "viewer"]));
        c.insert("https://example.com/org".into(), json!("acme"));
        c.insert("https://example".into(), json!({"com/org": "nested-loses"}));
        let p = profile(json!({
            "claim_headers": {"X-Roles": "https://example.com/roles", "X-Org": "https://example.com/org", "X-Tenant": "org.tenant.id", "X-Part": "https://example.com"},
            "claim_map": {"https://example.com/roles": {"editor": "writers"}},
        }));
        let id = Identity::from_claims(c, &p, 0);
        let h = upstream_headers(&id, &p, false);
        let get = |n: &str| h.iter().find(|(k, _)| k == n).map(|(_, v)| v.as_str());
        assert_eq!(get("x-roles"), Some("writers,viewer"), "claim_map applies to namespaced claims too");
        assert_eq!(get("x-org"), Some("acme"), "the whole name wins over a nested reading");
        assert_eq!(get("x-tenant"), Some("42"), "dotted paths still read nested claims");
        assert_eq!(get("x-part"), None, "a prefix of a claim name is not that claim");
        let rule = |v: Value| profile(json!({"require": v})).require;
        assert!(check_rules(&id, &rule(json!([{"claim": "https://example.com/roles", "one_of": ["viewer"]}]))).is_ok());
        assert!(check_rules(&id, &rule(json!([{"claim": "https://example.com/roles", "one_of": ["admin"]}]))).is_err());
    }

    #[test]
    fn joined_names() {
        let parts = |p: &str| p.split('.').map(str::to_string).collect::<Vec<_>>();
        for (name, path, want) in [("a.b", "a.b", true), ("a.b", "a.b.c", false), ("a.b.c", "a.b", false), ("ab", "a.b", false),
                                   ("a.bc", "a.b", false), ("a..b", "a.b", false), ("", "a", false), ("a", "a", true)] {
            assert_eq!(is_joined(name, &parts(path)), want, "{name} vs {path}");
        }
    }
}

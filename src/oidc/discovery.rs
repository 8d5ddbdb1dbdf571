//! The IdP's discovery document (OpenID Connect Discovery 1.0 section 3), reduced to what the filter uses.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::http::Endpoint;

/// The metadata oidc-edge acts on. Unknown members are ignored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Discovery {
    pub issuer: String,
    pub authorization_endpoint: Endpoint,
    pub token_endpoint: Endpoint,
    pub jwks_uri: Endpoint,
    pub userinfo_endpoint: Option<Endpoint>,
    pub end_session_endpoint: Option<Endpoint>,
    /// RFC 9207: when true, the authorization response must carry `iss`.
    pub iss_parameter_supported: bool,
}

pub const MAX_DISCOVERY_BYTES: usize = 256 * 1024;

/// Parses and checks a discovery document against the configured issuer (Discovery 4.3:
/// the `issuer` value must be identical to the one used to fetch it).
pub fn parse(bytes: &[u8], expected_issuer: &str) -> Result<Discovery, String> {
    if bytes.len() > MAX_DISCOVERY_BYTES {
        return Err(format!("the discovery document is larger than {MAX_DISCOVERY_BYTES} bytes"));
    }
    let value: Value = serde_json::from_slice(bytes).map_err(|_| "the discovery document is not JSON".to_string())?;
    let Value::Object(doc) = value else {
        return Err("the discovery document is not a JSON object".into());
    };
    let issuer = match doc.get("issuer") {
        Some(Value::String(s)) => s.clone(),
        _ => return Err("the discovery document has no `issuer`".into()),
    };
    if issuer != expected_issuer {
        return Err(format!("the discovery document's issuer `{issuer}` is not the configured issuer `{expected_issuer}` (they must be identical)"));
    }
    let endpoint = |name: &str, required: bool| -> Result<Option<Endpoint>, String> {
        match doc.get(name) {
            None | Some(Value::Null) if !required => Ok(None),
            None | Some(Value::Null) => Err(format!("the discovery document has no `{name}`")),
            Some(Value::String(url)) => Endpoint::parse(url)
                .map(Some)
                .ok_or_else(|| format!("the discovery document's `{name}` is not an absolute http(s) URL")),
            Some(_) => Err(format!("the discovery document's `{name}` is not a string")),
        }
    };
    let authorization_endpoint = endpoint("authorization_endpoint", true)?;
    let token_endpoint = endpoint("token_endpoint", true)?;
    let jwks_uri = endpoint("jwks_uri", true)?;
    let (Some(authorization_endpoint), Some(token_endpoint), Some(jwks_uri)) = (authorization_endpoint, token_endpoint, jwks_uri) else {
        return Err("the discovery document lacks a required endpoint".into());
    };
    Ok(Discovery {
        issuer,
        authorization_endpoint,
        token_endpoint,
        jwks_uri,
        userinfo_endpoint: endpoint("userinfo_endpoint", false)?,
        end_session_endpoint: endpoint("end_session_endpoint", false)?,
        iss_parameter_supported: doc.get("authorization_response_iss_parameter_supported").and_then(Value::as_bool).unwrap_or(false),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn doc() -> Value {
        json!({
            "issuer": "https://idp.example.com",
            "authorization_endpoint": "https://idp.example.com/auth",
            "token_endpoint": "https://idp.example.com/token",
            "jwks_uri": "https://idp.example.com/jwks",
            "end_session_endpoint": "https://idp.example.com/logout",
            "authorization_response_iss_parameter_supported": true,
        })
    }

    #[test]
    fn parses_what_it_uses() {
        let d = parse(doc().to_string().as_bytes(), "https://idp.example.com").unwrap();
        assert_eq!(d.token_endpoint.authority, "idp.example.com");
        assert_eq!(d.jwks_uri.path, "/jwks");
        assert!(d.iss_parameter_supported);
        assert!(d.userinfo_endpoint.is_none());
        assert_eq!(d.end_session_endpoint.unwrap().path, "/logout");
    }

    #[test]
    fn refusals() {
        let cases: Vec<(&str, Value, &str)> = vec![
            ("issuer slash", json!({"issuer": "https://idp.example.com/"}), "not the configured issuer"),
            ("issuer other", json!({"issuer": "https://evil.example.com"}), "not the configured issuer"),
            ("issuer missing", json!({"issuer": null}), "no `issuer`"),
            ("no jwks", json!({"jwks_uri": null}), "`jwks_uri`"),
            ("bad token url", json!({"token_endpoint": "/token"}), "`token_endpoint`"),
            ("number url", json!({"authorization_endpoint": 5}), "not a string"),
        ];
        for (name, patch, needle) in cases {
            let mut d = doc();
            for (k, v) in patch.as_object().unwrap() {
                if v.is_null() {
                    d.as_object_mut().unwrap().remove(k);
                } else {
                    d[k] = v.clone();
                }
            }
            let err = parse(d.to_string().as_bytes(), "https://idp.example.com").unwrap_err();
            assert!(err.contains(needle), "{name}: {err}");
        }
        for body in ["<html>", "[]", ""] {
            assert!(parse(body.as_bytes(), "https://idp.example.com").is_err());
        }
    }
}

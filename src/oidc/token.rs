//! The token endpoint: the code exchange request (RFC 6749 4.1.3) and its response (4.1.4, 5.2).

use serde_json::Value;

use crate::b64;
use crate::config::{ClientAuth, Settings};
use crate::error::Reason;
use crate::http::{form_encode, percent_encode, CallResponse, Endpoint, HttpCall};

/// Builds the authorization code exchange, with the client authentication configured.
pub fn code_exchange(settings: &Settings, token_endpoint: &Endpoint, code: &str, redirect_uri: &str, code_verifier: &str) -> HttpCall {
    let mut form: Vec<(&str, &str)> = vec![
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", redirect_uri),
        ("code_verifier", code_verifier),
    ];
    token_call(settings, token_endpoint, &mut form)
}

fn token_call<'a>(settings: &'a Settings, token_endpoint: &Endpoint, form: &mut Vec<(&'a str, &'a str)>) -> HttpCall {
    let mut headers = vec![
        ("content-type".to_string(), "application/x-www-form-urlencoded".to_string()),
        ("accept".to_string(), "application/json".to_string()),
    ];
    match settings.client_auth {
        ClientAuth::Basic => {
            // RFC 6749 2.3.1: id and secret are form-encoded before base64.
            let creds = format!("{}:{}", percent_encode(&settings.client_id), percent_encode(&settings.client_secret));
            headers.push(("authorization".to_string(), format!("Basic {}", b64::std_encode(creds.as_bytes()))));
        }
        ClientAuth::Post => {
            form.push(("client_id", &settings.client_id));
            form.push(("client_secret", &settings.client_secret));
        }
    }
    HttpCall {
        method: "POST",
        endpoint: token_endpoint.clone(),
        headers,
        body: Some(form_encode(form).into_bytes()),
        timeout_ms: settings.idp_timeout_ms,
    }
}

/// A successful token response, reduced to what the filter keeps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tokens {
    pub id_token: String,
    pub access_token: String,
    pub refresh_token: Option<String>,
    pub expires_in: Option<u64>,
}

/// Why the token endpoint did not give tokens; `detail` is safe to log (never a token).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenError {
    pub reason: Reason,
    pub detail: String,
    /// True when the IdP refused the request (4xx): the user should start again. False
    /// when the IdP failed or could not be reached: the gateway is at fault (502).
    pub refused: bool,
}

pub const MAX_TOKEN_RESPONSE_BYTES: usize = 1024 * 1024;

pub fn parse_response(resp: &CallResponse) -> Result<Tokens, TokenError> {
    let fail = |reason, detail: String, refused| TokenError { reason, detail, refused };
    if resp.body.len() > MAX_TOKEN_RESPONSE_BYTES {
        return Err(fail(Reason::TokenResponseInvalid, "the token response is too large".into(), false));
    }
    let json: Option<Value> = serde_json::from_slice(&resp.body).ok();
    if resp.status != 200 {
        let error = json
            .as_ref()
            .and_then(|j| j.get("error"))
            .and_then(Value::as_str)
            .filter(|e| e.len() <= 64 && e.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'))
            .unwrap_or("no error code");
        let refused = (400..500).contains(&resp.status);
        return Err(fail(Reason::TokenEndpointFailed, format!("HTTP status {} ({error})", resp.status), refused));
    }
    let Some(Value::Object(map)) = json else {
        return Err(fail(Reason::TokenResponseInvalid, "the token response is not a JSON object".into(), false));
    };
    let text = |name: &str| map.get(name).and_then(Value::as_str).filter(|s| !s.is_empty()).map(str::to_string);
    match map.get("token_type").and_then(Value::as_str) {
        Some(t) if t.eq_ignore_ascii_case("bearer") || t.eq_ignore_ascii_case("dpop") => {}
        _ => return Err(fail(Reason::TokenResponseInvalid, "the token response's token_type is not Bearer".into(), false)),
    }
    let access_token = text("access_token")
        .ok_or_else(|| fail(Reason::TokenResponseInvalid, "the token response has no access_token".into(), false))?;
    let id_token = text("id_token").ok_or_else(|| fail(Reason::IdTokenMissing, "the token response has no id_token".into(), false))?;
    let expires_in = map.get("expires_in").and_then(|v| v.as_u64().or_else(|| v.as_str().and_then(|s| s.parse().ok())));
    Ok(Tokens { id_token, access_token, refresh_token: text("refresh_token"), expires_in })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn settings(auth: &str) -> Settings {
        Settings::from_json(
            json!({"issuer":"https://i","idp_cluster":"idp","client_id":"my app","client_secret":"p@ss:w%rd",
                   "cookie_secret": b64::std_encode(&[0u8;32]), "token_endpoint_auth": auth})
            .to_string()
            .as_bytes(),
        )
        .unwrap()
    }

    #[test]
    fn basic_auth_form_encodes_credentials() {
        let ep = Endpoint::parse("https://i/token").unwrap();
        let call = code_exchange(&settings("client_secret_basic"), &ep, "c0de", "https://app/cb", "v");
        let auth = call.headers.iter().find(|(n, _)| n == "authorization").unwrap();
        let decoded = String::from_utf8(b64::std_decode(auth.1.strip_prefix("Basic ").unwrap()).unwrap()).unwrap();
        assert_eq!(decoded, "my%20app:p%40ss%3Aw%25rd");
        let body = String::from_utf8(call.body.unwrap()).unwrap();
        assert_eq!(body, "grant_type=authorization_code&code=c0de&redirect_uri=https%3A%2F%2Fapp%2Fcb&code_verifier=v");
        assert_eq!(call.method, "POST");
    }

    #[test]
    fn post_auth_puts_credentials_in_body() {
        let ep = Endpoint::parse("https://i/token").unwrap();
        let call = code_exchange(&settings("client_secret_post"), &ep, "c", "r", "v");
        assert!(call.headers.iter().all(|(n, _)| n != "authorization"));
        let body = String::from_utf8(call.body.unwrap()).unwrap();
        assert!(body.ends_with("&client_id=my%20app&client_secret=p%40ss%3Aw%25rd"), "{body}");
    }

    #[test]
    fn responses() {
        let r = |status, body: Value| CallResponse { status, headers: vec![], body: body.to_string().into_bytes() };
        let ok = parse_response(&r(200, json!({"token_type":"Bearer","access_token":"at","id_token":"it","expires_in":300,"refresh_token":"rt"}))).unwrap();
        assert_eq!((ok.id_token.as_str(), ok.expires_in, ok.refresh_token.as_deref()), ("it", Some(300), Some("rt")));
        let e = parse_response(&r(400, json!({"error":"invalid_grant"}))).unwrap_err();
        assert!(e.refused && e.detail.contains("invalid_grant"));
        let e = parse_response(&r(503, json!("upstream connect error"))).unwrap_err();
        assert!(!e.refused);
        assert_eq!(parse_response(&r(200, json!({"token_type":"Bearer","access_token":"at"}))).unwrap_err().reason, Reason::IdTokenMissing);
        assert_eq!(parse_response(&r(200, json!({"token_type":"mac","access_token":"a","id_token":"i"}))).unwrap_err().reason, Reason::TokenResponseInvalid);
        let garbage = CallResponse { status: 200, headers: vec![], body: b"<html>".to_vec() };
        assert_eq!(parse_response(&garbage).unwrap_err().reason, Reason::TokenResponseInvalid);
        let e = parse_response(&r(400, json!({"error":"<script>"}))).unwrap_err();
        assert!(!e.detail.contains("<script>"));
    }
}

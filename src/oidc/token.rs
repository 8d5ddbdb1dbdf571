//! The token endpoint: the code exchange request (RFC 6749 4.1.3) and its response (4.1.4, 5.2).

use serde_json::Value;

use crate::b64;
use crate::config::{ClientAuth, Profile};
use crate::error::Reason;
use crate::http::{form_encode, percent_encode, CallResponse, Endpoint, HttpCall};
use crate::time::{after, UnixTime};

/// What a token request needs besides its grant: who the client is, and for
/// `client_secret_jwt` a fresh assertion id and the time.
pub struct Client<'a> {
    pub profile: &'a Profile,
    /// The IdP's issuer (the assertion's audience with `client_assertion_audience: issuer`).
    pub issuer: &'a str,
    pub timeout_ms: u64,
    pub now: UnixTime,
    /// 16 random bytes for the assertion's `jti` (RFC 7523 3, single use).
    pub jti: [u8; 16],
}

/// Builds the authorization code exchange (RFC 6749 4.1.3, RFC 7636 4.5).
pub fn code_exchange(client: &Client<'_>, token_endpoint: &Endpoint, code: &str, redirect_uri: &str, code_verifier: &str) -> HttpCall {
    let form: Vec<(&str, &str)> = vec![
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", redirect_uri),
        ("code_verifier", code_verifier),
    ];
    token_call(client, token_endpoint, form)
}

/// Builds a refresh grant (RFC 6749 6).
pub fn refresh(client: &Client<'_>, token_endpoint: &Endpoint, refresh_token: &str) -> HttpCall {
    let form: Vec<(&str, &str)> = vec![("grant_type", "refresh_token"), ("refresh_token", refresh_token)];
    token_call(client, token_endpoint, form)
}

fn token_call(client: &Client<'_>, token_endpoint: &Endpoint, form: Vec<(&str, &str)>) -> HttpCall {
    let p = client.profile;
    let mut form: Vec<(String, String)> = form.into_iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    let mut headers = vec![
        ("content-type".to_string(), "application/x-www-form-urlencoded".to_string()),
        ("accept".to_string(), "application/json".to_string()),
    ];
    match p.client_auth {
        ClientAuth::Basic => {
            // RFC 6749 2.3.1: id and secret are form-encoded before base64.
            let creds = format!("{}:{}", percent_encode(&p.client_id), percent_encode(&p.client_secret));
            headers.push(("authorization".to_string(), format!("Basic {}", b64::std_encode(creds.as_bytes()))));
        }
        ClientAuth::Post => {
            form.push(("client_id".into(), p.client_id.clone()));
            form.push(("client_secret".into(), p.client_secret.clone()));
        }
        ClientAuth::SecretJwt | ClientAuth::PrivateKeyJwt => {
            form.push(("client_id".into(), p.client_id.clone()));
            form.push(("client_assertion_type".into(), "urn:ietf:params:oauth:client-assertion-type:jwt-bearer".into()));
            form.push(("client_assertion".into(), client_assertion(client, token_endpoint)));
        }
    }
    let pairs: Vec<(&str, &str)> = form.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    HttpCall { method: "POST", endpoint: token_endpoint.clone(), headers, body: Some(form_encode(&pairs).into_bytes()), timeout_ms: client.timeout_ms }
}

/// RFC 7523 2.2 / OIDC Core 9 client assertion: a JWT issued by and about the client, for
/// the token endpoint, short-lived and single-use; signed with HS256 over the client secret
/// (`client_secret_jwt`) or with the client's private key (`private_key_jwt`). An empty
/// signature (signing failed) makes the IdP refuse it, which ends the login as failed.
pub fn client_assertion(client: &Client<'_>, token_endpoint: &Endpoint) -> String {
    let p = client.profile;
    let header = match &p.client_key {
        Some(k) => {
            let mut h = serde_json::Map::new();
            h.insert("alg".into(), Value::from(k.key.alg_name()));
            h.insert("typ".into(), Value::from("JWT"));
            for (name, value) in [("kid", &k.kid), ("x5t", &k.x5t)] {
                if let Some(value) = value {
                    h.insert(name.into(), Value::from(value.as_str()));
                }
            }
            Value::Object(h)
        }
        None => serde_json::json!({"alg": "HS256", "typ": "JWT"}),
    };
    let claims = serde_json::json!({
        "iss": p.client_id,
        "sub": p.client_id,
        "aud": if p.assertion_audience_issuer { client.issuer.to_string() } else { token_endpoint.url() },
        "jti": b64::url_encode(&client.jti),
        "iat": client.now,
        "exp": after(client.now, 60),
    });
    let signing_input = format!("{}.{}", b64::url_encode(header.to_string().as_bytes()), b64::url_encode(claims.to_string().as_bytes()));
    let signature = match &p.client_key {
        Some(k) => k.key.sign(signing_input.as_bytes()).unwrap_or_else(|| {
            log::error!("oidc-edge: signing the private_key_jwt client assertion failed");
            String::new()
        }),
        None => hs256(p.client_secret.as_bytes(), signing_input.as_bytes()),
    };
    format!("{signing_input}.{signature}")
}

fn hs256(key: &[u8], input: &[u8]) -> String {
    use hmac::{Hmac, Mac};
    match <Hmac<sha2::Sha256> as Mac>::new_from_slice(key) {
        Ok(mut mac) => {
            mac.update(input);
            b64::url_encode(&mac.finalize().into_bytes())
        }
        Err(_) => String::new(),
    }
}

/// A userinfo request with the access token (OIDC Core 5.3.1).
pub fn userinfo(endpoint: &Endpoint, access_token: &str, timeout_ms: u64) -> HttpCall {
    let mut call = HttpCall::get(endpoint.clone(), timeout_ms);
    call.headers.push(("authorization".into(), format!("Bearer {access_token}")));
    call
}

/// A successful token response, reduced to what the filter keeps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tokens {
    /// Absent only in a refresh response (OIDC Core 12.2 makes it optional there).
    pub id_token: Option<String>,
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
        // Only Bearer: the filter forwards the token as `Authorization: Bearer` and holds no
        // DPoP key, so a sender-constrained token would be useless upstream.
        Some(t) if t.eq_ignore_ascii_case("bearer") => {}
        _ => return Err(fail(Reason::TokenResponseInvalid, "the token response's token_type is not Bearer".into(), false)),
    }
    let access_token = text("access_token")
        .ok_or_else(|| fail(Reason::TokenResponseInvalid, "the token response has no access_token".into(), false))?;
    let id_token = text("id_token");
    let expires_in = map.get("expires_in").and_then(|v| v.as_u64().or_else(|| v.as_str().and_then(|s| s.parse().ok())));
    Ok(Tokens { id_token, access_token, refresh_token: text("refresh_token"), expires_in })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn profile(auth: &str, secret: &str) -> Profile {
        crate::config::Settings::from_json(
            json!({"issuer":"https://i","idp_cluster":"idp","client_id":"my app","client_secret":secret,
                   "cookie_secret": b64::std_encode(&[0u8;32]), "token_endpoint_auth": auth})
            .to_string()
            .as_bytes(),
        )
        .unwrap()
        .profiles
        .remove(0)
    }

    fn client(p: &Profile) -> Client<'_> {
        Client { profile: p, issuer: "https://i", timeout_ms: 5000, now: 1000, jti: [7; 16] }
    }

    #[test]
    fn basic_auth_form_encodes_credentials() {
        let ep = Endpoint::parse("https://i/token").unwrap();
        let p = profile("client_secret_basic", "p@ss:w%rd");
        let call = code_exchange(&client(&p), &ep, "c0de", "https://app/cb", "v");
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
        let p = profile("client_secret_post", "p@ss:w%rd");
        let call = code_exchange(&client(&p), &ep, "c", "r", "v");
        assert!(call.headers.iter().all(|(n, _)| n != "authorization"));
        let body = String::from_utf8(call.body.unwrap()).unwrap();
        assert!(body.ends_with("&client_id=my%20app&client_secret=p%40ss%3Aw%25rd"), "{body}");
    }

    #[test]
    fn client_secret_jwt_assertion() {
        let secret = "a-client-secret-of-at-least-32-characters";
        let p = profile("client_secret_jwt", secret);
        let ep = Endpoint::parse("https://i/token").unwrap();
        let call = refresh(&client(&p), &ep, "rt");
        let body = String::from_utf8(call.body.unwrap()).unwrap();
        let q = crate::http::Query::parse(&body);
        assert_eq!(q.single("grant_type"), Some("refresh_token"));
        assert_eq!(q.single("client_assertion_type"), Some("urn:ietf:params:oauth:client-assertion-type:jwt-bearer"));
        let assertion = q.single("client_assertion").unwrap();
        // Verify it independently with jsonwebtoken's HMAC.
        let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
        v.set_audience(&["https://i/token"]);
        v.validate_exp = false;
        let data = jsonwebtoken::decode::<Value>(assertion, &jsonwebtoken::DecodingKey::from_secret(secret.as_bytes()), &v).unwrap();
        assert_eq!(data.claims["iss"], "my app");
        assert_eq!(data.claims["sub"], "my app");
        assert_eq!(data.claims["exp"], 1060);
        assert!(call.headers.iter().all(|(n, _)| n != "authorization"));
    }

    #[test]
    fn private_key_jwt_assertion_is_signed_with_the_clients_key() {
        let fixtures = format!("{}/tests/fixtures", env!("CARGO_MANIFEST_DIR"));
        let public: Value = serde_json::from_str(&std::fs::read_to_string(format!("{fixtures}/client-keys-public.json")).unwrap()).unwrap();
        for (file, kid, alg) in [("client-key-rsa.pem", "client-rsa", jsonwebtoken::Algorithm::RS256), ("client-key-ec.pem", "client-ec", jsonwebtoken::Algorithm::ES256)] {
            let pem = std::fs::read_to_string(format!("{fixtures}/{file}")).unwrap();
            let config = json!({"issuer":"https://i","idp_cluster":"idp","client_id":"my app","cookie_secret": b64::std_encode(&[0u8;32]),
                                "token_endpoint_auth": "private_key_jwt", "client_private_key": pem, "client_key_id": kid,
                                "client_key_x5t": b64::url_encode(&[1u8; 20])});
            let p = crate::config::Settings::from_json(config.to_string().as_bytes()).unwrap().profiles.remove(0);
            let ep = Endpoint::parse("https://i/token").unwrap();
            let call = code_exchange(&client(&p), &ep, "c0de", "https://app/cb", "v");
            let body = String::from_utf8(call.body.unwrap()).unwrap();
            let q = crate::http::Query::parse(&body);
            assert_eq!((q.single("client_id"), q.single("client_secret")), (Some("my app"), None), "{file}");
            assert_eq!(q.single("client_assertion_type"), Some("urn:ietf:params:oauth:client-assertion-type:jwt-bearer"));
            assert!(call.headers.iter().all(|(n, _)| n != "authorization"));
            let assertion = q.single("client_assertion").unwrap();
            let header = jsonwebtoken::decode_header(assertion).unwrap();
            assert_eq!((header.alg, header.kid.as_deref(), header.x5t.as_deref()), (alg, Some(kid), Some(b64::url_encode(&[1u8; 20]).as_str())));
            // Verified independently with the public JWK the IdP registers for the client.
            let jwk: jsonwebtoken::jwk::Jwk = serde_json::from_value(public["keys"].as_array().unwrap().iter().find(|k| k["kid"] == kid).unwrap().clone()).unwrap();
            let mut v = jsonwebtoken::Validation::new(alg);
            v.set_audience(&["https://i/token"]);
            v.validate_exp = false;
            let data = jsonwebtoken::decode::<Value>(assertion, &jsonwebtoken::DecodingKey::from_jwk(&jwk).unwrap(), &v).unwrap();
            assert_eq!((data.claims["iss"].as_str(), data.claims["sub"].as_str()), (Some("my app"), Some("my app")));
            assert_eq!((data.claims["iat"].as_u64(), data.claims["exp"].as_u64()), (Some(1000), Some(1060)));
            assert_eq!(data.claims["jti"], b64::url_encode(&[7; 16]));
        }
    }

    #[test]
    fn assertion_audience_can_be_the_issuer_alone() {
        let secret = "a-client-secret-of-at-least-32-characters";
        for (choice, aud) in [(None, "https://i/token"), (Some("token_endpoint"), "https://i/token"), (Some("issuer"), "https://i")] {
            let mut config = json!({"issuer":"https://i","idp_cluster":"idp","client_id":"my app","client_secret":secret,
                                    "cookie_secret": b64::std_encode(&[0u8;32]), "token_endpoint_auth": "client_secret_jwt"});
            if let Some(choice) = choice {
                config["client_assertion_audience"] = json!(choice);
            }
            let p = crate::config::Settings::from_json(config.to_string().as_bytes()).unwrap().profiles.remove(0);
            let assertion = client_assertion(&client(&p), &Endpoint::parse("https://i/token").unwrap());
            let payload: Value = serde_json::from_slice(&b64::url_decode(assertion.split('.').nth(1).unwrap()).unwrap()).unwrap();
            assert_eq!(payload["aud"], json!(aud), "{choice:?}: a single audience");
        }
    }

    #[test]
    fn responses() {
        let r = |status, body: Value| CallResponse { status, headers: vec![], body: body.to_string().into_bytes() };
        let ok = parse_response(&r(200, json!({"token_type":"Bearer","access_token":"at","id_token":"it","expires_in":300,"refresh_token":"rt"}))).unwrap();
        assert_eq!((ok.id_token.as_deref(), ok.expires_in, ok.refresh_token.as_deref()), (Some("it"), Some(300), Some("rt")));
        let e = parse_response(&r(400, json!({"error":"invalid_grant"}))).unwrap_err();
        assert!(e.refused && e.detail.contains("invalid_grant"));
        let e = parse_response(&r(503, json!("upstream connect error"))).unwrap_err();
        assert!(!e.refused);
        assert_eq!(parse_response(&r(200, json!({"token_type":"Bearer","access_token":"at"}))).unwrap().id_token, None);
        assert_eq!(parse_response(&r(200, json!({"token_type":"mac","access_token":"a","id_token":"i"}))).unwrap_err().reason, Reason::TokenResponseInvalid);
        let garbage = CallResponse { status: 200, headers: vec![], body: b"<html>".to_vec() };
        assert_eq!(parse_response(&garbage).unwrap_err().reason, Reason::TokenResponseInvalid);
        let e = parse_response(&r(400, json!({"error":"<script>"}))).unwrap_err();
        assert!(!e.detail.contains("<script>"));
    }
}

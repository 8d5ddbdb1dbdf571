//! The per-request state machine: a request (and later a call's answer) in, one decision out.
//!
//! This is the only module that decides the order of the steps. It reads no clock and no
//! randomness of its own: `Context` hands in the time, the entropy, the provider view and
//! the shared store, and events come back for the shell's metrics.

use serde_json::Value;

use crate::config::{ForwardToken, Settings};
use crate::entropy::Entropy;
use crate::error::Reason;
use crate::http::{CallResponse, HttpCall, LocalResponse};
use crate::jwt::{self, ClaimRules};
use crate::oidc::{authorize, callback, token};
use crate::pages;
use crate::provider::{Keys, View};
use crate::request::{safe_return_path, ClientKind, RequestView};
use crate::session::cookies::{self, Attributes, SameSite};
use crate::session::seal::Sealer;
use crate::session::{Session, Transaction};
use crate::store::SharedStore;
use crate::time::{after, UnixTime};

/// Tokens larger than this are refused before decoding (a 40 KB Entra ID token fits).
pub const MAX_TOKEN_BYTES: usize = 64 * 1024;
/// A browser holding more pending logins than this gets them all cleared (a loop, or tabs).
const MAX_PENDING_LOGINS: usize = 4;
/// Seconds a client is told to wait while the provider is not loaded.
const RETRY_AFTER_SECS: u64 = 5;

/// What the shell must do with the request.
#[derive(Debug)]
pub enum Decision {
    /// Let it go upstream after these header changes.
    Forward(Forward),
    /// Answer it here.
    Respond(LocalResponse),
    /// Pause it, make this call, and hand the answer to `Engine::on_call_response`.
    Call(HttpCall, Pending),
}

/// Header changes for a request that goes upstream.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Forward {
    /// Removed first: identity headers a client might have forged.
    pub remove_headers: Vec<String>,
    /// Then set (replacing any value).
    pub set_headers: Vec<(String, String)>,
    pub cookie: CookieHeader,
}

/// What happens to the `Cookie` header on the way upstream.
#[derive(Debug, Default, PartialEq, Eq)]
pub enum CookieHeader {
    #[default]
    Keep,
    Remove,
    Replace(String),
}

/// A request waiting for a call's answer.
#[derive(Debug)]
pub enum Pending {
    CodeExchange(Box<Exchange>),
}

#[derive(Debug)]
pub struct Exchange {
    tx: Transaction,
    tx_cookie: String,
    attrs: Attributes,
    session_name: String,
    /// Session cookies the browser sent; those not rewritten are expired.
    old_session_cookies: Vec<String>,
}

/// Something worth counting; the shell turns these into Envoy stats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    LoginStarted,
    LoginCompleted,
    LoginFailed(Reason),
    SessionAccepted,
    SessionRejected(Reason),
    Unauthenticated,
    NotReady,
}

/// Everything a decision may depend on besides the request.
pub struct Context<'a> {
    pub now: UnixTime,
    pub provider: &'a View,
    pub store: &'a mut dyn SharedStore,
    pub entropy: &'a mut dyn Entropy,
    pub events: Vec<Event>,
}

/// Cookie names for one request: `__Host-` prefixed over https (RFC 6265bis 4.1.3.2).
struct Names {
    session: String,
    tx_prefix: String,
    attrs: Attributes,
}

/// One configured relying party: settings plus what is derived from them once.
pub struct Engine {
    pub settings: Settings,
    pub keys: Keys,
    sealer: Sealer,
    identity_headers: Vec<String>,
    cookie_base: String,
}

impl Engine {
    pub fn new(settings: Settings, namespace: &str) -> Engine {
        let sealer = Sealer::new(&settings.cookie_keys);
        Engine {
            keys: Keys::new(namespace),
            sealer,
            identity_headers: vec![
                "authorization".into(),
                "x-auth-request-user".into(),
                "x-auth-request-email".into(),
                "x-auth-request-access-token".into(),
            ],
            cookie_base: "oidc_edge".into(),
            settings,
        }
    }

    fn names(&self, req: &RequestView) -> Names {
        let secure = req.is_https();
        let prefix = if secure { "__Host-" } else { "" };
        Names {
            session: format!("{prefix}{}", self.cookie_base),
            tx_prefix: format!("{prefix}{}_tx.", self.cookie_base),
            attrs: Attributes { secure, same_site: SameSite::Lax, domain: None },
        }
    }

    fn session_label(&self, name: &str) -> String {
        format!("session:{name}:{}", self.settings.client_id)
    }

    /// The entry point for every request.
    pub fn on_request(&self, req: &RequestView, cx: &mut Context<'_>) -> Decision {
        if req.path_only() == self.settings.redirect_path {
            return self.on_callback(req, cx);
        }
        let kind = req.client_kind(&[]);
        if !cx.provider.is_ready() {
            cx.events.push(Event::NotReady);
            return Decision::Respond(pages::not_ready(kind != ClientKind::Browser, RETRY_AFTER_SECS));
        }
        let names = self.names(req);
        let cookies = req.cookies();
        match self.read_session(&cookies, &names, cx.now) {
            Ok(Some(session)) => {
                cx.events.push(Event::SessionAccepted);
                return Decision::Forward(self.forward_session(&session, &cookies));
            }
            Ok(None) => {}
            Err(reason) => cx.events.push(Event::SessionRejected(reason)),
        }
        cx.events.push(Event::Unauthenticated);
        match kind {
            ClientKind::Browser => self.start_login(req, &names, &cookies, cx),
            ClientKind::Api | ClientKind::WebSocket => Decision::Respond(pages::unauthorized(None)),
        }
    }

    fn read_session(&self, cookies: &[(String, String)], names: &Names, now: UnixTime) -> Result<Option<Session>, Reason> {
        let present = cookies::session_cookie_names(cookies, &names.session);
        if present.is_empty() {
            return Ok(None);
        }
        let sealed = cookies::join(cookies, &names.session).ok_or(Reason::SessionInvalid)?;
        let plain = self.sealer.open(&self.session_label(&names.session), &sealed).ok_or(Reason::SessionInvalid)?;
        let session: Session = serde_json::from_slice(&plain).map_err(|_| Reason::SessionInvalid)?;
        if session.iss != self.settings.issuer {
            return Err(Reason::SessionInvalid);
        }
        if !session.is_live(now) {
            return Err(Reason::SessionExpired);
        }
        Ok(Some(session))
    }

    fn forward_session(&self, session: &Session, cookies: &[(String, String)]) -> Forward {
        let token = match self.settings.forward_token {
            ForwardToken::IdToken => &session.id_token,
            ForwardToken::AccessToken => session.access_token.as_ref().unwrap_or(&session.id_token),
        };
        let mut set_headers = vec![
            ("authorization".to_string(), format!("Bearer {token}")),
            ("x-auth-request-user".to_string(), session.sub.clone()),
        ];
        if let Some(email) = &session.email {
            set_headers.push(("x-auth-request-email".to_string(), email.clone()));
        }
        Forward { remove_headers: self.identity_headers.clone(), set_headers, cookie: self.upstream_cookie(cookies) }
    }

    /// The filter's own cookies never reach the application: they are large and they are secrets.
    fn upstream_cookie(&self, cookies: &[(String, String)]) -> CookieHeader {
        if !cookies.iter().any(|(n, _)| self.is_own_cookie(n)) {
            return CookieHeader::Keep;
        }
        let kept: Vec<String> = cookies.iter().filter(|(n, _)| !self.is_own_cookie(n)).map(|(n, v)| format!("{n}={v}")).collect();
        if kept.is_empty() {
            CookieHeader::Remove
        } else {
            CookieHeader::Replace(kept.join("; "))
        }
    }

    fn is_own_cookie(&self, name: &str) -> bool {
        let name = name.strip_prefix("__Host-").unwrap_or(name);
        match name.strip_prefix(self.cookie_base.as_str()) {
            Some("") => true,
            Some(rest) => rest.starts_with("_tx.") || rest.strip_prefix('_').is_some_and(|i| !i.is_empty() && i.bytes().all(|b| b.is_ascii_digit())),
            None => false,
        }
    }

    fn redirect_uri(&self, req: &RequestView) -> Option<String> {
        if let Some(uri) = &self.settings.redirect_uri {
            return Some(uri.clone());
        }
        let host = req.authority.as_str();
        let host_ok = !host.is_empty()
            && host.len() <= 255
            && host.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']' | b'_'));
        let scheme = if req.is_https() { "https" } else { "http" };
        host_ok.then(|| format!("{scheme}://{host}{}", self.settings.redirect_path))
    }

    fn start_login(&self, req: &RequestView, names: &Names, cookies: &[(String, String)], cx: &mut Context<'_>) -> Decision {
        let Some(discovery) = cx.provider.discovery.as_ref() else {
            return Decision::Respond(pages::not_ready(false, RETRY_AFTER_SECS));
        };
        let Some(redirect_uri) = self.redirect_uri(req) else {
            return Decision::Respond(pages::login_failed(400, Reason::Internal, "The request's Host header is not a valid host name."));
        };
        let return_to = safe_return_path(&req.path, &self.settings.redirect_path);
        let mut random = [0u8; authorize::RANDOM_BYTES];
        cx.entropy.fill(&mut random);
        let (location, tx) = authorize::start(
            &discovery.authorization_endpoint,
            &self.settings.client_id,
            &self.settings.scope,
            &redirect_uri,
            &return_to,
            cx.now,
            &random,
        );
        let tx_name = format!("{}{}", names.tx_prefix, callback::state_id(&tx.state));
        let Some(sealed) = self.seal_json(&tx_label(&tx_name), &tx, cx) else {
            return Decision::Respond(pages::login_failed(500, Reason::Internal, "The sign-in could not be prepared."));
        };
        let mut headers = vec![
            ("location".to_string(), location),
            ("cache-control".to_string(), "no-store".to_string()),
            ("set-cookie".to_string(), cookies::set_cookie(&tx_name, &sealed, &names.attrs, Some(self.settings.login_timeout))),
        ];
        // Only names of the filter's own form (prefix + base64url state id): a name the client
        // made up is never echoed into a `Set-Cookie` (it may hold control characters).
        let is_ours = |n: &&String| {
            n.strip_prefix(&names.tx_prefix)
                .is_some_and(|id| !id.is_empty() && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'))
        };
        let pending: Vec<&String> = cookies.iter().map(|(n, _)| n).filter(is_ours).collect();
        if pending.len() >= MAX_PENDING_LOGINS {
            for n in pending {
                headers.push(("set-cookie".into(), cookies::clear_cookie(n, &names.attrs)));
            }
        }
        // A session cookie that did not open is dead weight on every request: drop it now.
        for n in cookies::session_cookie_names(cookies, &names.session) {
            headers.push(("set-cookie".into(), cookies::clear_cookie(&n, &names.attrs)));
        }
        cx.events.push(Event::LoginStarted);
        Decision::Respond(LocalResponse { status: 302, headers, body: String::new() })
    }

    fn seal_json<T: serde::Serialize>(&self, label: &str, value: &T, cx: &mut Context<'_>) -> Option<String> {
        let plain = serde_json::to_vec(value).ok()?;
        let mut nonce = [0u8; 24];
        cx.entropy.fill(&mut nonce);
        self.sealer.seal(label, &plain, &nonce)
    }

    /// The redirect back from the IdP. Checks run in the order of RFC 9207 / RFC 9700:
    /// the transaction bound to this browser by `state`, then `iss`, then `error`, then the code.
    fn on_callback(&self, req: &RequestView, cx: &mut Context<'_>) -> Decision {
        let names = self.names(req);
        let fail = |cx: &mut Context<'_>, status: u16, reason: Reason, clear: Option<&str>| -> Decision {
            log::warn!("oidc-edge: login failed: {} ({})", reason.code(), reason.describe());
            cx.events.push(Event::LoginFailed(reason));
            let mut page = pages::login_failed(status, reason, &format!("{}.", capitalise(reason.describe())));
            if let Some(name) = clear {
                page.headers.push(("set-cookie".into(), cookies::clear_cookie(name, &names.attrs)));
            }
            Decision::Respond(page)
        };
        if !cx.provider.is_ready() {
            cx.events.push(Event::NotReady);
            return Decision::Respond(pages::not_ready(false, RETRY_AFTER_SECS));
        }
        let Some(discovery) = cx.provider.discovery.clone() else {
            return Decision::Respond(pages::not_ready(false, RETRY_AFTER_SECS));
        };
        let params = callback::Params::parse(req.query());
        let Some(state) = params.state.as_deref() else {
            return fail(cx, 400, Reason::StateMissing, None);
        };
        let tx_name = format!("{}{}", names.tx_prefix, callback::state_id(state));
        let cookies = req.cookies();
        let tx_values: Vec<&String> = cookies.iter().filter(|(n, _)| n == &tx_name).map(|(_, v)| v).collect();
        let [sealed] = tx_values.as_slice() else {
            return fail(cx, 400, Reason::StateUnknown, None);
        };
        let tx: Option<Transaction> =
            self.sealer.open(&tx_label(&tx_name), sealed).and_then(|plain| serde_json::from_slice(&plain).ok());
        let Some(tx) = tx else {
            return fail(cx, 400, Reason::StateUnknown, Some(&tx_name));
        };
        if !bool::from(subtle::ConstantTimeEq::ct_eq(tx.state.as_bytes(), state.as_bytes())) {
            return fail(cx, 400, Reason::StateUnknown, Some(&tx_name));
        }
        if cx.now >= after(tx.created, self.settings.login_timeout) {
            return fail(cx, 400, Reason::TransactionExpired, Some(&tx_name));
        }
        match params.iss.as_deref() {
            Some(iss) if iss != self.settings.issuer => return fail(cx, 400, Reason::IssParamMismatch, Some(&tx_name)),
            None if discovery.iss_parameter_supported => return fail(cx, 400, Reason::IssParamMissing, Some(&tx_name)),
            _ => {}
        }
        if let Some(error) = params.error.as_deref() {
            log::warn!(
                "oidc-edge: the identity provider returned error `{error}`{}",
                params.error_description.as_deref().map(|d| format!(": {}", d.escape_debug())).unwrap_or_default()
            );
            cx.events.push(Event::LoginFailed(Reason::IdpError));
            let what = match error {
                "access_denied" => "The identity provider did not grant access (access_denied).".to_string(),
                "login_required" | "interaction_required" | "consent_required" => {
                    format!("The identity provider needs you to sign in again ({error}).")
                }
                other => format!("The identity provider refused the sign-in ({other})."),
            };
            let status = if error == "access_denied" { 403 } else { 400 };
            let mut page = pages::login_failed(status, Reason::IdpError, &what);
            page.headers.push(("set-cookie".into(), cookies::clear_cookie(&tx_name, &names.attrs)));
            return Decision::Respond(page);
        }
        let Some(code) = params.code.as_deref() else {
            return fail(cx, 400, Reason::CodeMissing, Some(&tx_name));
        };
        let keep_until = after(after(tx.created, self.settings.login_timeout), self.settings.clock_skew);
        if !callback::redeem(cx.store, &self.keys.used_states, state, cx.now, keep_until) {
            return fail(cx, 400, Reason::StateReplayed, Some(&tx_name));
        }
        let call = token::code_exchange(&self.settings, &discovery.token_endpoint, code, &tx.redirect_uri, &tx.code_verifier);
        let exchange = Exchange {
            tx,
            tx_cookie: tx_name,
            attrs: names.attrs.clone(),
            session_name: names.session.clone(),
            old_session_cookies: cookies::session_cookie_names(&cookies, &names.session),
        };
        Decision::Call(call, Pending::CodeExchange(Box::new(exchange)))
    }

    /// The answer to a call started by `on_request` (`None`: the call never went out).
    pub fn on_call_response(&self, pending: Pending, response: Option<&CallResponse>, cx: &mut Context<'_>) -> Decision {
        match pending {
            Pending::CodeExchange(exchange) => self.finish_login(*exchange, response, cx),
        }
    }

    fn finish_login(&self, ex: Exchange, response: Option<&CallResponse>, cx: &mut Context<'_>) -> Decision {
        let fail = |cx: &mut Context<'_>, status: u16, reason: Reason, detail: &str| -> Decision {
            log::warn!("oidc-edge: login failed: {} ({detail})", reason.code());
            cx.events.push(Event::LoginFailed(reason));
            let mut page = pages::login_failed(status, reason, &format!("{}.", capitalise(reason.describe())));
            page.headers.push(("set-cookie".into(), cookies::clear_cookie(&ex.tx_cookie, &ex.attrs)));
            Decision::Respond(page)
        };
        let Some(response) = response else {
            return fail(cx, 502, Reason::TokenEndpointFailed, "the token call could not be dispatched; check idp_cluster");
        };
        let tokens = match token::parse_response(response) {
            Ok(t) => t,
            Err(e) => return fail(cx, if e.refused { 400 } else { 502 }, e.reason, &e.detail),
        };
        let issuers = [self.settings.issuer.clone()];
        let rules = ClaimRules {
            issuers: &issuers,
            audiences: &self.settings.audiences,
            authorized_party: Some(&self.settings.client_id),
            require_iat: true,
            nonce: Some(&ex.tx.nonce),
            access_token: Some(&tokens.access_token),
            now: cx.now,
            skew: self.settings.clock_skew,
        };
        let validated = match jwt::validate(&tokens.id_token, &cx.provider.keys, &rules, &self.settings.allowed_algorithms, MAX_TOKEN_BYTES) {
            Ok(v) => v,
            Err(reason) => return fail(cx, 401, reason, reason.describe()),
        };
        let claims = validated.claims;
        let token_exp = match (self.settings.forward_token, tokens.expires_in) {
            (ForwardToken::AccessToken, Some(secs)) => after(cx.now, secs),
            _ => claims.exp,
        };
        let session = Session {
            sub: claims.sub.clone(),
            iss: claims.iss.clone(),
            email: claims.raw.get("email").and_then(Value::as_str).map(str::to_string),
            id_token: tokens.id_token,
            access_token: Some(tokens.access_token),
            refresh_token: tokens.refresh_token,
            token_exp,
            created: cx.now,
            expires: after(cx.now, self.settings.session_lifetime),
        };
        let Some(sealed) = self.seal_json(&self.session_label(&ex.session_name), &session, cx) else {
            return fail(cx, 500, Reason::Internal, "the session could not be sealed");
        };
        let Some(parts) = cookies::split(&ex.session_name, &sealed) else {
            return fail(cx, 502, Reason::TokenResponseInvalid, "the tokens are too large to keep in cookies");
        };
        let max_age = self.settings.session_lifetime;
        let mut headers = vec![
            ("location".to_string(), safe_return_path(&ex.tx.return_to, &self.settings.redirect_path)),
            ("cache-control".to_string(), "no-store".to_string()),
            ("referrer-policy".to_string(), "no-referrer".to_string()),
            ("set-cookie".to_string(), cookies::clear_cookie(&ex.tx_cookie, &ex.attrs)),
        ];
        for old in &ex.old_session_cookies {
            if !parts.iter().any(|(n, _)| n == old) {
                headers.push(("set-cookie".into(), cookies::clear_cookie(old, &ex.attrs)));
            }
        }
        for (name, value) in &parts {
            headers.push(("set-cookie".into(), cookies::set_cookie(name, value, &ex.attrs, Some(max_age))));
        }
        cx.events.push(Event::LoginCompleted);
        Decision::Respond(LocalResponse { status: 302, headers, body: String::new() })
    }
}

fn tx_label(name: &str) -> String {
    format!("tx:{name}")
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(first) => first.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

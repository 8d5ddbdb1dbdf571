//! The browser login: the redirect to the IdP, the callback, the code exchange and the new session.

use serde_json::{Map, Value};

use super::{Context, Decision, Event, Pending, Rp, RETRY_AFTER_SECS};
use crate::error::Reason;
use crate::http::{form_encode, CallResponse, Endpoint, LocalResponse, Query};
use crate::jwt::{self, ClaimRules, TokenUse};
use crate::oidc::{authorize, callback, token};
use crate::pages;
use crate::request::{safe_return_path, RequestView};
use crate::session::cookies::{self, Attributes, SameSite};
use crate::session::{Session, Transaction};
use crate::time::{after, UnixTime};

/// Logins one browser may have in flight (tabs restored together, links opened in new tabs);
/// beyond this the oldest give way. Each login cookie is about 500 bytes of every request.
const MAX_PENDING_LOGINS: usize = 8;
/// Login cookies opened to find the oldest: bounds the work for a request stuffed with them.
const MAX_EXAMINED_LOGINS: usize = 32;
/// Login cookies cleared by one answer at most; more go with the next login.
const MAX_CLEARED_LOGINS: usize = 16;

/// The code exchange in flight.
#[derive(Debug)]
pub struct Exchange {
    pub profile: usize,
    tx: Transaction,
    tx_cookie: String,
    attrs: Attributes,
    session_name: String,
    /// Session cookies the browser sent; those not rewritten are expired.
    old_session_cookies: Vec<String>,
}

/// Tokens received, waiting for userinfo or for keys before the session is made.
#[derive(Debug)]
pub struct Finishing {
    pub exchange: Exchange,
    tokens: token::Tokens,
    userinfo: Option<Map<String, Value>>,
}

fn redirect_uri(rp: &Rp<'_>, req: &RequestView) -> Option<String> {
    if let Some(uri) = &rp.profile.redirect_uri {
        return Some(uri.clone());
    }
    let host = req.authority.as_str();
    let host_ok = !host.is_empty()
        && host.len() <= 255
        && host.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']' | b'_'));
    let scheme = if req.is_https() { "https" } else { "http" };
    host_ok.then(|| format!("{scheme}://{host}{}", rp.profile.redirect_path))
}

/// The login endpoints, or the fail-closed answer while the provider is not loaded.
fn ready_metadata(rp: &Rp<'_>, cx: &mut Context<'_>) -> Result<crate::provider::Metadata, Box<Decision>> {
    match rp.view(cx) {
        Some(v) if v.is_ready(rp.provider, cx.now) => v.metadata.clone().ok_or(()),
        _ => Err(()),
    }
    .map_err(|()| {
        cx.events.push(Event::NotReady);
        Box::new(Decision::Respond(pages::not_ready(false, RETRY_AFTER_SECS)))
    })
}

/// Sends a browser to the IdP with a fresh transaction (state, nonce, PKCE verifier); it
/// comes back to the page it asked for.
pub fn start(rp: &Rp<'_>, req: &RequestView, cx: &mut Context<'_>) -> Decision {
    let return_to = return_path(rp, &req.path);
    begin(rp, req, &return_to, None, true, cx)
}

/// Where a login may return: a same-origin path (`safe_return_path`), never one of the
/// filter's own endpoints (a login that ends in a logout, or in another login).
fn return_path(rp: &Rp<'_>, candidate: &str) -> String {
    let path = safe_return_path(candidate, &rp.profile.redirect_path);
    let own = |p: &str| p == rp.profile.logout_path || p == rp.profile.login_path;
    if own(crate::http::split_path(&path).0) {
        "/".into()
    } else {
        path
    }
}

/// Whether the browser says the request comes from this site or from the user (typed,
/// bookmarked): Fetch Metadata. Browsers that send none are not believed.
fn started_here(req: &RequestView) -> bool {
    req.header_str("sec-fetch-site").is_some_and(|s| matches!(s.trim().to_ascii_lowercase().as_str(), "same-origin" | "none"))
}

/// The longest `login_hint` passed on to the IdP; a longer one is dropped, not cut.
const MAX_LOGIN_HINT: usize = 1024;

/// The login initiation endpoint (OIDC Core 4): an application's "sign in" link, or a third
/// party (the IdP's portal) sending the browser to start a login here. It always starts a
/// new login, even over a valid session: the `login_hint` may name another account.
pub fn initiate(rp: &Rp<'_>, req: &RequestView, cx: &mut Context<'_>) -> Decision {
    if !matches!(req.method.as_str(), "GET" | "HEAD") {
        return Decision::Respond(pages::method_not_allowed("GET, HEAD"));
    }
    let query = Query::parse(req.query());
    // Every `iss` given must be ours: a repeated one is not let pass as absent.
    if let Some((_, iss)) = query.pairs().iter().find(|(k, v)| k == "iss" && *v != rp.provider.issuer) {
        log::warn!("oidc-edge: login initiation for issuer `{}` refused: this route's issuer is `{}`", iss.escape_debug(), rp.provider.issuer);
        cx.events.push(Event::LoginFailed(Reason::LoginIssuerUnknown));
        return Decision::Respond(pages::login_failed(400, Reason::LoginIssuerUnknown, "The sign-in link names an identity provider this site does not use.", "/"));
    }
    let return_to = initiation_target(rp, req, query.single("target_link_uri"));
    let hint = query.single("login_hint").filter(|h| !h.is_empty() && h.len() <= MAX_LOGIN_HINT && !h.chars().any(char::is_control));
    // Another site may link here: the session in force stays until the login completes
    // (the callback replaces it), so such a link cannot log anybody out.
    begin(rp, req, &return_to, hint, false, cx)
}

/// The sign-in link offered to a form submitted without a session: the login initiation
/// path, returning to the page the form was on (its same-origin `Referer`), else `/`.
pub fn resubmit_href(rp: &Rp<'_>, req: &RequestView) -> String {
    let back = req
        .header_str("referer")
        .and_then(|r| Rp::path_on_own_origin(req, r))
        .map(|p| p.split('#').next().unwrap_or_default())
        .map_or_else(|| "/".to_string(), |p| safe_return_path(p, &rp.profile.redirect_path));
    sign_in_href(rp, &back)
}

/// The login initiation path that returns to `return_to` (checked again when followed).
fn sign_in_href(rp: &Rp<'_>, return_to: &str) -> String {
    format!("{}?{}", rp.profile.login_path, form_encode(&[("target_link_uri", return_to)]))
}

/// The path (without query) of a login initiation's `target_link_uri`, absolute or not.
pub fn target_path(req: &RequestView) -> Option<String> {
    let query = Query::parse(req.query());
    let target = query.single("target_link_uri")?;
    let path = if target.starts_with('/') { target.to_string() } else { Endpoint::parse(target)?.path };
    Some(crate::http::split_path(&path).0.to_string())
}

/// Where an initiated login lands: `target_link_uri` when it is on this site (a path, or an
/// absolute URL of the request's own origin), else `/`: never an open redirector (OIDC Core 4).
fn initiation_target(rp: &Rp<'_>, req: &RequestView, target: Option<&str>) -> String {
    let Some(target) = target else { return "/".into() };
    if target.starts_with('/') {
        return return_path(rp, target);
    }
    let own_origin = Rp::origin(req);
    match Endpoint::parse(target) {
        Some(url) if format!("{}://{}", url.scheme, url.authority).eq_ignore_ascii_case(&own_origin) => {
            return_path(rp, &url.path)
        }
        _ => {
            log::info!("oidc-edge: login initiation: target_link_uri is not on this site ({own_origin}); landing on /");
            "/".into()
        }
    }
}

/// Starts the login: the transaction cookie, and the redirect with `login_hint` when given.
/// `drop_session`: the request's session cookies did not open, so they go now.
fn begin(rp: &Rp<'_>, req: &RequestView, return_to: &str, login_hint: Option<&str>, drop_session: bool, cx: &mut Context<'_>) -> Decision {
    let metadata = match ready_metadata(rp, cx) {
        Ok(m) => m,
        Err(not_ready) => return *not_ready,
    };
    let Some(redirect_uri) = redirect_uri(rp, req) else {
        return Decision::Respond(pages::login_failed(400, Reason::Internal, "The request's Host header is not a valid host name.", "/"));
    };
    let names = rp.names(req);
    let cookies = req.cookies();
    let mut random = [0u8; authorize::RANDOM_BYTES];
    cx.entropy.fill(&mut random);
    let (location, mut tx) = authorize::start(
        &metadata.authorization_endpoint,
        &rp.profile.client_id,
        &rp.profile.scope,
        &redirect_uri,
        return_to,
        cx.now,
        &random,
    );
    tx.started_here = started_here(req);
    let location = match login_hint {
        None => with_extra_params(location, &rp.profile.auth_query_params),
        // The link's hint replaces a configured one: a repeated parameter is no parameter.
        Some(hint) => {
            let mut params: Vec<(String, Option<String>)> = rp.profile.auth_query_params.iter().filter(|(k, _)| k != "login_hint").cloned().collect();
            params.push(("login_hint".into(), Some(hint.to_string())));
            with_extra_params(location, &params)
        }
    };
    let tx_name = format!("{}{}", names.tx_prefix, callback::state_id(&tx.state));
    let Some(sealed) = rp.seal_json(&rp.tx_label(&tx_name), &tx, cx) else {
        return Decision::Respond(pages::login_failed(500, Reason::Internal, "The sign-in could not be prepared.", "/"));
    };
    let mut to_idp = pages::redirect(location);
    let headers = &mut to_idp.headers;
    headers.push(("set-cookie".to_string(), cookies::set_cookie(&tx_name, &sealed, &names.tx_attrs(), Some(rp.profile.login_timeout))));
    for n in logins_to_clear(rp, cookies, &names.tx_prefix) {
        headers.push(("set-cookie".into(), cookies::clear_cookie(n, &names.attrs)));
    }
    // A session cookie that did not open is dead weight on every request: drop it now.
    for n in cookies::session_cookie_names(cookies, &names.session).into_iter().filter(|_| drop_session) {
        headers.extend(cookies::clear_session_cookie(&n, &names.attrs).into_iter().map(|c| ("set-cookie".to_string(), c)));
    }
    cx.events.push(Event::LoginStarted);
    Decision::Respond(to_idp)
}

/// The login cookies that make room for a new one: beyond `MAX_PENDING_LOGINS - 1`, those
/// that do not open first, then the oldest, so that the other tabs' logins still complete.
/// A bounded answer even to a request stuffed with made-up login cookies.
fn logins_to_clear<'a>(rp: &Rp<'_>, cookies: &'a [(String, String)], prefix: &str) -> Vec<&'a String> {
    let pending: Vec<&(String, String)> = cookies.iter().filter(|(n, _)| is_tx_cookie(n, prefix)).collect();
    let excess = pending.len().saturating_sub(MAX_PENDING_LOGINS - 1);
    if excess == 0 {
        return vec![];
    }
    let mut by_age: Vec<(UnixTime, &String)> = pending
        .iter()
        .take(MAX_EXAMINED_LOGINS)
        .map(|(n, v)| (rp.open_json::<Transaction>(&rp.tx_label(n), v).map(|tx| tx.created).unwrap_or(0), n))
        .collect();
    by_age.sort_unstable_by_key(|(created, _)| *created);
    // Beyond those examined, the rest go too (made up, most likely).
    let unexamined = pending.iter().skip(MAX_EXAMINED_LOGINS).map(|(n, _)| n);
    by_age.into_iter().map(|(_, n)| n).take(excess).chain(unexamined).take(MAX_CLEARED_LOGINS).collect()
}

/// A login cookie of the filter's own form (prefix + base64url state id). Only such names
/// are ever echoed into a `Set-Cookie`: a name the client made up may hold control characters.
pub fn is_tx_cookie(name: &str, prefix: &str) -> bool {
    name.strip_prefix(prefix).is_some_and(|id| !id.is_empty() && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'))
}

/// `auth_query_params`: `k=v`, a bare `k` for an empty list, repeated keys for several values.
fn with_extra_params(location: String, params: &[(String, Option<String>)]) -> String {
    let mut out = location;
    for (k, v) in params {
        out.push('&');
        match v {
            Some(v) => out.push_str(&form_encode(&[(k.as_str(), v.as_str())])),
            None => out.push_str(&crate::http::percent_encode(k)),
        }
    }
    out
}

/// The login cookie a failed callback clears; `return_to` once it opened, so that the
/// failure page's "start again" link starts a new login back to the same page.
struct Spent<'a> {
    cookie: &'a str,
    attrs: &'a Attributes,
    return_to: Option<&'a str>,
}

fn fail(cx: &mut Context<'_>, rp: &Rp<'_>, status: u16, reason: Reason, detail: &str, spent: Option<Spent<'_>>) -> Decision {
    log::warn!("oidc-edge: login failed: {} ({detail})", reason.code());
    cx.events.push(Event::LoginFailed(reason));
    let again = spent.as_ref().and_then(|s| s.return_to).map_or_else(|| "/".to_string(), |to| sign_in_href(rp, to));
    let mut page = pages::login_failed(status, reason, &format!("{}.", capitalise(reason.describe())), &again);
    if let Some(spent) = spent {
        page.headers.push(("set-cookie".into(), cookies::clear_cookie(spent.cookie, spent.attrs)));
    }
    Decision::Respond(page)
}

/// The redirect back from the IdP. Checks run in the order of RFC 9207 / RFC 9700: the
/// transaction bound to this browser by `state`, then `iss`, then `error`, then the code.
pub fn callback(rp: &Rp<'_>, req: &RequestView, cx: &mut Context<'_>) -> Decision {
    // The IdP's redirect is a GET (response_mode `query`); anything else is not it, and
    // must not spend the login.
    if req.method != "GET" {
        return Decision::Respond(pages::method_not_allowed("GET"));
    }
    let names = rp.names(req);
    let metadata = match ready_metadata(rp, cx) {
        Ok(m) => m,
        Err(not_ready) => return *not_ready,
    };
    let params = callback::Params::parse(req.query());
    let Some(state) = params.state.as_deref() else {
        return fail(cx, rp, 400, Reason::StateMissing, "no state parameter", None);
    };
    let tx_name = format!("{}{}", names.tx_prefix, callback::state_id(state));
    let cookies = req.cookies();
    let tx_values: Vec<&String> = cookies.iter().filter(|(n, _)| n == &tx_name).map(|(_, v)| v).collect();
    let [sealed] = tx_values.as_slice() else {
        // Back to the callback, or its reload, once signed in: the login is done, so this
        // is no failure to show; the state is not redeemed and no code is exchanged.
        if super::session::open_even_expired(rp, req).is_some() {
            log::info!("oidc-edge: a login response without its login cookie from a signed-in browser (back or reload): sent to /");
            return Decision::Respond(pages::redirect("/".into()));
        }
        return fail(cx, rp, 400, Reason::StateUnknown, "no transaction cookie for this state", None);
    };
    let unopened = || Some(Spent { cookie: &tx_name, attrs: &names.attrs, return_to: None });
    let Some(tx) = rp.open_json::<Transaction>(&rp.tx_label(&tx_name), sealed) else {
        return fail(cx, rp, 400, Reason::StateUnknown, "the transaction cookie does not open", unopened());
    };
    if !bool::from(subtle::ConstantTimeEq::ct_eq(tx.state.as_bytes(), state.as_bytes())) {
        return fail(cx, rp, 400, Reason::StateUnknown, "state differs from the transaction's", unopened());
    }
    let clear = || Some(Spent { cookie: &tx_name, attrs: &names.attrs, return_to: Some(&tx.return_to) });
    if cx.now >= after(tx.created, rp.profile.login_timeout) {
        return fail(cx, rp, 400, Reason::TransactionExpired, "login_timeout passed", clear());
    }
    if params.repeated {
        return fail(cx, rp, 400, Reason::ResponseParamRepeated, "code, state, iss or error appears more than once", clear());
    }
    if let Err((reason, why)) = check_iss(rp, req, params.iss.as_deref(), metadata.iss_parameter_supported) {
        return fail(cx, rp, 400, reason, why, clear());
    }
    if let Some(error) = params.error.as_deref() {
        let mut page = idp_error_page(error, params.error_description.as_deref(), &sign_in_href(rp, &tx.return_to), cx);
        page.headers.push(("set-cookie".into(), cookies::clear_cookie(&tx_name, &names.attrs)));
        return Decision::Respond(page);
    }
    let Some(code) = params.code.as_deref() else {
        return fail(cx, rp, 400, Reason::CodeMissing, "no code parameter", clear());
    };
    let keep_until = after(after(tx.created, rp.profile.login_timeout), rp.profile.clock_skew);
    let used_key = format!("oidc-edge/{}/used-states", rp.provider.namespace);
    if !callback::redeem(cx.store, &used_key, state, cx.now, keep_until) {
        return answered_twice(rp, req, &tx, (&tx_name, &names.attrs), cx);
    }
    let client = rp.token_client(cx);
    let call = token::code_exchange(&client, &metadata.token_endpoint, code, &tx.redirect_uri, &tx.code_verifier);
    let exchange = Exchange {
        profile: rp.index,
        tx,
        tx_cookie: tx_name,
        attrs: names.attrs.clone(),
        session_name: names.session.clone(),
        old_session_cookies: cookies::session_cookie_names(cookies, &names.session),
    };
    Decision::Call(call, Pending::CodeExchange(Box::new(exchange)))
}

/// RFC 9207: the response's `iss` is this route's issuer; its absence is accepted only
/// from an IdP that does not advertise the parameter and whose callback path no other
/// issuer's route shares (RFC 9700 4.4, IdP mix-up).
fn check_iss(rp: &Rp<'_>, req: &RequestView, iss: Option<&str>, advertised: bool) -> Result<(), (Reason, &'static str)> {
    match iss {
        Some(iss) if iss != rp.provider.issuer => Err((Reason::IssParamMismatch, "iss parameter is another issuer")),
        None if advertised => Err((Reason::IssParamMissing, "the IdP advertises the iss parameter but sent none")),
        None if rp.engine.callback_shared_across_issuers(&req.authority, rp.index) => Err((
            Reason::IssParamMissing,
            "the callback path is shared with a route of another issuer, so the response must name its issuer (RFC 9207; RFC 9700 4.4 IdP mix-up): give this route its own redirect_path",
        )),
        _ => Ok(()),
    }
}

/// The IdP answered with `error`: a page in the user's terms (its description goes to the
/// log only: it is the IdP's text, or an attacker's), with `again` to start over.
fn idp_error_page(error: &str, description: Option<&str>, again: &str, cx: &mut Context<'_>) -> LocalResponse {
    log::warn!("oidc-edge: the identity provider returned error `{error}`{}", description.map(|d| format!(": {}", d.escape_debug())).unwrap_or_default());
    cx.events.push(Event::LoginFailed(Reason::IdpError));
    let what = match error {
        "access_denied" => "The identity provider did not grant access (access_denied).".to_string(),
        "login_required" | "interaction_required" | "consent_required" => format!("The identity provider needs you to sign in again ({error})."),
        other => format!("The identity provider refused the sign-in ({other})."),
    };
    let status = if error == "access_denied" { 403 } else { 400 };
    pages::login_failed(status, Reason::IdpError, &what, again)
}

/// This browser's own login (its cookie opened and holds the state), answered a second
/// time: a reload while the first answer was on its way (a slow token endpoint), or that
/// answer lost. The code is never exchanged twice (RFC 9700 4.5); the browser is sent on
/// instead of being shown an error: to its page when it is signed in by now, else into
/// a new login to that page, which the IdP's session makes quick.
/// `tx_cookie`: the login cookie's name and attributes, to clear it.
fn answered_twice(rp: &Rp<'_>, req: &RequestView, tx: &Transaction, tx_cookie: (&str, &Attributes), cx: &mut Context<'_>) -> Decision {
    log::info!("oidc-edge: a login response arrived twice from the browser that started it (a reload while the first was in flight?); its code is not exchanged again");
    cx.events.push(Event::LoginFailed(Reason::StateReplayed));
    let clear = ("set-cookie".to_string(), cookies::clear_cookie(tx_cookie.0, tx_cookie.1));
    if super::session::open_even_expired(rp, req).is_some() {
        let return_to = safe_return_path(&tx.return_to, &rp.profile.redirect_path);
        let mut to_page = pages::redirect(return_to);
        to_page.headers.push(clear);
        return Decision::Respond(to_page);
    }
    match begin(rp, req, &tx.return_to, None, false, cx) {
        Decision::Respond(mut again) => {
            again.headers.push(clear);
            Decision::Respond(again)
        }
        other => other,
    }
}

fn fail_exchange(cx: &mut Context<'_>, rp: &Rp<'_>, ex: &Exchange, status: u16, reason: Reason, detail: &str) -> Decision {
    fail(cx, rp, status, reason, detail, Some(Spent { cookie: &ex.tx_cookie, attrs: &ex.attrs, return_to: Some(&ex.tx.return_to) }))
}

/// The token endpoint answered the code exchange.
pub fn on_token_response(rp: &Rp<'_>, ex: Exchange, response: Option<&CallResponse>, cx: &mut Context<'_>) -> Decision {
    let Some(response) = response else {
        return fail_exchange(cx, rp, &ex, 502, Reason::TokenEndpointFailed, "the token call could not be dispatched; check idp_cluster");
    };
    let tokens = match token::parse_response(response) {
        Ok(t) => t,
        Err(e) => return fail_exchange(cx, rp, &ex, if e.refused { 400 } else { 502 }, e.reason, &e.detail),
    };
    if tokens.id_token.is_none() {
        return fail_exchange(cx, rp, &ex, 502, Reason::IdTokenMissing, "the token response has no id_token");
    }
    validate_and_finish(rp, Finishing { exchange: ex, tokens, userinfo: None }, cx, true)
}

/// Validates the ID token (waiting for a refetch when its `kid` is new), then fetches
/// userinfo when configured, then makes the session.
pub fn validate_and_finish(rp: &Rp<'_>, fin: Finishing, cx: &mut Context<'_>, may_wait: bool) -> Decision {
    let Some(view) = rp.view(cx) else {
        return fail_exchange(cx, rp, &fin.exchange, 503, Reason::KeysNotLoaded, "no provider view");
    };
    let id_token = fin.tokens.id_token.clone().unwrap_or_default();
    let issuers = [rp.provider.issuer.clone()];
    let rules = ClaimRules {
        issuers: &issuers,
        audiences: &rp.profile.audiences,
        authorized_party: Some(&rp.profile.client_id),
        require_iat: true,
        nonce: Some(&fin.exchange.tx.nonce),
        access_token: Some(&fin.tokens.access_token),
        now: cx.now,
        skew: rp.profile.clock_skew,
        token_use: TokenUse::IdToken,
    };
    let result = jwt::validate(&id_token, &view.keys, &rules, &rp.profile.allowed_algorithms, super::MAX_TOKEN_BYTES);
    let claims = match result {
        Ok(v) => v.claims,
        Err(reason) if may_wait && view.keys.refetch_may_help(reason) => {
            // A request released after a key wait cannot call out any more (the shell
            // decides it from the root context, `on_keys`): with `userinfo` on, fetch it
            // now, before waiting, so that nothing is left to call once the keys are in.
            // Its claims are used only after the ID token validated (`make_session`).
            if let Some(call) = userinfo_call(rp, view, &fin) {
                return Decision::Call(call, Pending::Userinfo(Box::new(fin)));
            }
            return match rp.wait_for_new_keys(rp.profile.provider, view.generation, fin, Pending::LoginKeys, cx) {
                Ok(wait) => wait,
                Err(fin) => fail_exchange(cx, rp, &fin.exchange, 400, reason, "no key verifies the ID token and the refetch cooldown is running"),
            };
        }
        Err(reason) => return fail_exchange(cx, rp, &fin.exchange, 400, reason, reason.describe()),
    };
    // OIDC Core 3.1.2.1 / 3.1.3.7 (13): with `max_age` asked for, `auth_time` must be there and recent.
    if let Some(max_age) = rp.profile.max_age() {
        let fresh = crate::jwt::claims::numeric_date(&claims.raw, "auth_time").ok().flatten().is_some_and(|t| after(after(t, max_age), rp.profile.clock_skew) >= cx.now);
        if !fresh {
            return fail_exchange(cx, rp, &fin.exchange, 400, Reason::AuthTimeInvalid, "max_age was sent; auth_time is missing or older");
        }
    }
    if let Some(call) = userinfo_call(rp, view, &fin) {
        return Decision::Call(call, Pending::Userinfo(Box::new(fin)));
    }
    if rp.profile.userinfo && fin.userinfo.is_none() {
        log::warn!("oidc-edge: `userinfo` is on but the IdP has no userinfo endpoint; using the ID token's claims only");
    }
    make_session(rp, fin, claims, cx)
}

/// The userinfo request, when `userinfo` is on, the IdP has the endpoint and it was not
/// fetched yet.
fn userinfo_call(rp: &Rp<'_>, view: &crate::provider::View, fin: &Finishing) -> Option<crate::http::HttpCall> {
    if !rp.profile.userinfo || fin.userinfo.is_some() {
        return None;
    }
    let endpoint = view.metadata.as_ref().and_then(|m| m.userinfo_endpoint.clone())?;
    Some(token::userinfo(&endpoint, &fin.tokens.access_token, rp.provider.timeout_ms))
}

/// OIDC Core 5.3.2: the userinfo `sub` must equal the ID token's.
pub fn on_userinfo(rp: &Rp<'_>, mut fin: Finishing, response: Option<&CallResponse>, cx: &mut Context<'_>) -> Decision {
    let parsed = response.filter(|r| r.status == 200).and_then(|r| serde_json::from_slice::<Value>(&r.body).ok());
    let Some(Value::Object(info)) = parsed else {
        let status = response.map(|r| r.status).unwrap_or(0);
        return fail_exchange(cx, rp, &fin.exchange, 502, Reason::UserinfoFailed, &format!("userinfo answered HTTP {status} without a JSON object"));
    };
    fin.userinfo = Some(info);
    // Userinfo may have been fetched before the ID token's new `kid` was known: the wait
    // for the keys comes now (nothing is left to call after it).
    validate_and_finish(rp, fin, cx, true)
}

fn make_session(rp: &Rp<'_>, fin: Finishing, claims: jwt::Claims, cx: &mut Context<'_>) -> Decision {
    let ex = &fin.exchange;
    let mut extra = Map::new();
    if let Some(info) = &fin.userinfo {
        if info.get("sub").and_then(Value::as_str) != Some(claims.sub.as_str()) {
            return fail_exchange(cx, rp, ex, 400, Reason::ClaimInvalid, "the userinfo sub differs from the ID token's");
        }
        // Prefer the ID token: userinfo only adds what the ID token lacks.
        for (k, v) in info {
            if !claims.raw.contains_key(k) {
                extra.insert(k.clone(), v.clone());
            }
        }
    }
    let token_exp = match (rp.profile.forward_token, fin.tokens.expires_in) {
        (crate::config::ForwardToken::AccessToken, Some(secs)) => after(cx.now, secs),
        _ => claims.exp,
    };
    // An ID token only inside the clock skew validates, but a session of it would read as
    // expired on the very next request, which would send the browser back to the IdP for
    // another such token, round and round. Say so once instead.
    if cx.now >= token_exp {
        return fail_exchange(cx, rp, ex, 502, Reason::Expired, "the IdP's token has already expired by this gateway's clock: check both clocks (NTP) and the IdP's token lifetime");
    }
    let email = claims.raw.get("email").or_else(|| extra.get("email")).and_then(Value::as_str).map(str::to_string);
    let session = Session {
        sub: claims.sub.clone(),
        iss: claims.iss.clone(),
        email,
        id_token: fin.tokens.id_token.clone().unwrap_or_default(),
        access_token: Some(fin.tokens.access_token.clone()),
        refresh_token: fin.tokens.refresh_token.clone(),
        extra_claims: extra,
        token_exp,
        created: cx.now,
        expires: after(cx.now, rp.profile.session_lifetime),
    };
    let Some(set_cookies) = super::session::write_cookies(rp, &session, &ex.session_name, &ex.old_session_cookies, &ex.attrs, cx) else {
        return fail_exchange(cx, rp, ex, 502, Reason::TokenResponseInvalid, "the tokens are too large to keep in cookies");
    };
    let location = return_path(rp, &ex.tx.return_to);
    let mut cookie_headers = vec![("set-cookie".to_string(), cookies::clear_cookie(&ex.tx_cookie, &ex.attrs))];
    cookie_headers.extend(set_cookies.into_iter().map(|c| ("set-cookie".to_string(), c)));
    cx.events.push(Event::LoginCompleted);
    if ex.attrs.same_site == SameSite::Strict {
        // The way back from the IdP is a navigation the IdP started, and a redirect from
        // here would still be part of it: the browser would not send the new `Strict`
        // cookie and the user would land without a session (and log in again, forever).
        // A page of this site that moves on by itself starts a same-site navigation; only
        // for a login this site started: otherwise any site could send a user to any page
        // here and, through a silent sign-in at the IdP, arrive with the Strict cookie
        // (and `Sec-Fetch-Site: same-origin`), which is what Strict is meant to prevent.
        let mut page = pages::continue_to(&location, ex.tx.started_here);
        page.headers.extend(cookie_headers);
        return Decision::Respond(page);
    }
    let mut landed = pages::redirect(location);
    landed.headers.extend(cookie_headers);
    Decision::Respond(landed)
}

pub fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(first) => first.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

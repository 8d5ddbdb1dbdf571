//! Refreshing a session's tokens: one refresh grant per refresh token proxy-wide, the new ID token's checks (OIDC Core 12.2), and the result shared with the session's other requests.

use super::cache;
use super::session::{authorization, identity_of, seal_cookies, with_cookies, write_cookies};
use super::{login, Context, Credential, Decision, Event, Names, Pending, Rp, Wait};
use crate::config::ForwardToken;
use crate::error::Reason;
use crate::http::CallResponse;
use crate::jwt::{self, ClaimRules, TokenUse};
use crate::oidc::{callback, token};
use crate::pages;
use crate::request::{ClientKind, RequestView};
use crate::session::cookies::{self, Attributes};
use crate::session::Session;
use crate::time::{after, UnixTime};

/// A refresh grant in flight for one request.
#[derive(Debug)]
pub struct Refreshing {
    pub profile: usize,
    request: Box<RequestView>,
    session: Session,
    session_name: String,
    attrs: Attributes,
    old_cookies: Vec<String>,
    cache_key: cache::Key,
    tokens: Option<token::Tokens>,
    /// When the proxy-wide lease on the session's refresh token ends.
    lease_until: UnixTime,
    /// This request holds that lease (it refreshes; the others wait for its result).
    holds_lease: bool,
    /// The refresh token was used up by an earlier refresh (not one in flight): no result
    /// will come beyond the one shared for a while after that refresh.
    used_up: bool,
}

/// Starts the refresh of `session`, due for this request, when it is this request's turn:
/// `None` lets the request go on with its still-valid token.
///
/// While the token is still valid, one request per refresh token (proxy-wide) refreshes;
/// the others go on with the token. IdPs that rotate refresh tokens take a second use as
/// theft and revoke the whole grant (RFC 9700 4.14.2), so a page's parallel requests must
/// not all refresh with the same one. Once the token has expired, the others wait for
/// that one refresh's result (`take_shared`).
pub fn begin(rp: &Rp<'_>, req: &RequestView, session: &Session, names: &Names, cache_key: cache::Key, cx: &mut Context<'_>) -> Option<Decision> {
    let endpoint = rp.view(cx).and_then(|v| v.metadata.as_ref()).map(|m| m.token_endpoint.clone())?;
    let refresh_token = session.refresh_token.clone()?;
    let now = cx.now;
    let token_live = now < session.token_exp;
    let lease_until = after(rp.provider.wait_deadline(now), 1);
    let lease_key = refresh_lease_key(rp, &refresh_token);
    let redeemed = callback::redeem_or_recorded(cx.store, &lease_key, &refresh_token, now, lease_until);
    let granted = redeemed.is_ok();
    // Another request holds the refresh, or made it. While the token is valid this one
    // goes on with it, taking the result home once it is in: the request that refreshed
    // may have lost its client (a browser moving on) before the new cookies reached it.
    let peeked = if !granted && token_live {
        match shared_result(rp, &refresh_token, cx) {
            Some(Shared::Refreshed(refreshed)) => Some(refreshed),
            _ => return None,
        }
    } else {
        None
    };
    // A lease runs until about `lease_until`; a record that runs longer marks a used-up token.
    let used_up = redeemed.is_err_and(|until| until.is_some_and(|until| until > lease_until));
    let refreshing = Refreshing {
        profile: rp.index,
        request: Box::new(req.clone()),
        session: session.clone(),
        session_name: names.session.clone(),
        attrs: names.attrs.clone(),
        old_cookies: cookies::session_cookie_names(req.cookies(), &names.session),
        cache_key,
        tokens: None,
        lease_until,
        holds_lease: granted,
        used_up,
    };
    if let Some(refreshed) = peeked {
        return Some(go_on_with_shared(rp, refreshing, &refreshed, cx));
    }
    if !granted {
        return Some(take_shared(rp, refreshing, cx));
    }
    let client = rp.token_client(cx);
    let call = token::refresh(&client, &endpoint, &refresh_token);
    Some(Decision::Call(call, Pending::Refresh(Box::new(refreshing))))
}

/// Proxy-wide records of refresh tokens being used or used up (see `begin`), in shards:
/// a used-up token is remembered as long as a copy of its session can come back.
const LEASE_SHARDS: usize = 16;

fn refresh_lease_key(rp: &Rp<'_>, refresh_token: &str) -> String {
    let shard = slot_of(&callback::state_id(refresh_token), LEASE_SHARDS);
    format!("oidc-edge/{}/refresh-tokens/{shard}", rp.provider.namespace)
}

/// How long a refresh's result stays readable by the session's other requests.
const SHARED_RESULT_SECS: u64 = 30;
/// Results live in this many shared-data slots of `RESULTS_PER_SLOT` each, proxy-wide,
/// so memory stays bounded; a full slot drops its oldest result, which only matters to
/// a request still waiting for that one (it gives up at its deadline).
const SHARED_RESULT_SLOTS: usize = 64;
const RESULTS_PER_SLOT: usize = 8;

/// The slot of a `callback::state_id` (base64url of a digest): its first character's
/// place in the alphabet, uniform over 64 values.
fn slot_of(id: &str, slots: usize) -> usize {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let first = id.as_bytes().first().copied().unwrap_or(b'A');
    ALPHABET.iter().position(|c| *c == first).unwrap_or(0).checked_rem(slots).unwrap_or(0)
}

/// A refreshed session, sealed as in its cookie, for the requests that waited for it; an
/// empty `sealed` says the refresh failed. Stored as four lines (all four values are
/// single-line: base64url, a number or a cookie name); a slot holds several in a row.
#[derive(Debug, Clone, PartialEq, Eq)]
struct SharedResult {
    /// The refresh token that was used, as the lease records it (`callback::state_id`).
    id: String,
    until: UnixTime,
    /// The cookie name it is sealed for (the name is bound into the seal).
    cookie: String,
    sealed: String,
}

impl SharedResult {
    fn encode_all(results: &[SharedResult]) -> String {
        let lines: Vec<String> = results.iter().map(|r| format!("{}\n{}\n{}\n{}", r.id, r.until, r.cookie, r.sealed)).collect();
        lines.join("\n")
    }

    /// The results of a slot; a malformed slot reads as empty.
    fn decode_all(bytes: &[u8]) -> Vec<SharedResult> {
        let Ok(text) = std::str::from_utf8(bytes) else { return vec![] };
        let lines: Vec<&str> = text.split('\n').collect();
        lines
            .chunks(4)
            .map(|r| match r {
                [id, until, cookie, sealed] => until.parse().ok().map(|until| SharedResult { id: (*id).into(), until, cookie: (*cookie).into(), sealed: (*sealed).into() }),
                _ => None,
            })
            .collect::<Option<Vec<_>>>()
            .unwrap_or_default()
    }
}

fn shared_result_key(rp: &Rp<'_>, id: &str) -> String {
    format!("oidc-edge/{}/refreshed/{}", rp.provider.namespace, slot_of(id, SHARED_RESULT_SLOTS))
}

/// Leaves the outcome of a refresh with `used` where the requests waiting for it find it:
/// the re-sealed session (`sealed`), or an empty `sealed` for a failure.
fn publish_refresh(rp: &Rp<'_>, used: &str, until: UnixTime, cookie: &str, sealed: &str, cx: &mut Context<'_>) {
    let id = callback::state_id(used);
    let key = shared_result_key(rp, &id);
    let result = SharedResult { id, until, cookie: cookie.to_string(), sealed: sealed.to_string() };
    for _ in 0..4 {
        let (mut results, cas) = match cx.store.get(&key) {
            Some((bytes, cas)) => (SharedResult::decode_all(&bytes), Some(cas)),
            None => (vec![], None),
        };
        results.retain(|r| r.id != result.id && cx.now < r.until);
        while results.len() >= RESULTS_PER_SLOT {
            let oldest = results.iter().enumerate().min_by_key(|(_, r)| r.until).map(|(i, _)| i).unwrap_or(0);
            results.remove(oldest);
        }
        results.push(result.clone());
        if cx.store.set(&key, SharedResult::encode_all(&results).as_bytes(), cas).is_ok() {
            return;
        }
    }
    log::info!("oidc-edge: a refresh result could not be shared (contention on its slot); its waiters give up at their deadline");
}

/// What another request's refresh with the same refresh token came to.
enum Shared {
    Refreshed(Session),
    Failed,
}

fn shared_result(rp: &Rp<'_>, refresh_token: &str, cx: &Context<'_>) -> Option<Shared> {
    let id = callback::state_id(refresh_token);
    let (bytes, _) = cx.store.get(&shared_result_key(rp, &id))?;
    let result = SharedResult::decode_all(&bytes).into_iter().find(|r| r.id == id && cx.now < r.until)?;
    if result.sealed.is_empty() {
        return Some(Shared::Failed);
    }
    let session = rp.open_session(&result.cookie, &result.sealed)?;
    let usable = session.iss == rp.provider.issuer && cx.now < session.token_exp && cx.now < session.expires;
    usable.then_some(Shared::Refreshed(session))
}

/// A request whose token has expired while another request refreshes with the same
/// refresh token: it goes on with that refresh's result (and takes the new cookies home),
/// waits for it, or, once the lease has run out without one, is treated as expired.
pub fn take_shared(rp: &Rp<'_>, r: Refreshing, cx: &mut Context<'_>) -> Decision {
    let shared = r.session.refresh_token.as_deref().and_then(|rt| shared_result(rp, rt, cx));
    if let Some(Shared::Failed) = shared {
        return refresh_failed(rp, r, Reason::SessionExpired, "the token expired and another request's refresh with the same refresh token failed", cx);
    }
    if let Some(Shared::Refreshed(session)) = shared {
        return go_on_with_shared(rp, r, &session, cx);
    }
    if r.used_up {
        return refresh_failed(rp, r, Reason::SessionExpired, "the token expired and its refresh token was used up by an earlier refresh (an old copy of the session)", cx);
    }
    if cx.now < r.lease_until {
        let generation = rp.view(cx).map(|v| v.generation).unwrap_or_default();
        let deadline = r.lease_until;
        return Decision::Wait(Wait { provider: rp.profile.provider, generation, deadline, poll: true, pending: Pending::SharedRefresh(Box::new(r)) });
    }
    refresh_failed(rp, r, Reason::SessionExpired, "the token expired and another request's refresh with the same refresh token gave no result", cx)
}

/// Another request's refreshed session, sealed into this request's cookies.
fn go_on_with_shared(rp: &Rp<'_>, r: Refreshing, session: &Session, cx: &mut Context<'_>) -> Decision {
    let Some(set_cookies) = write_cookies(rp, session, &r.session_name, &r.old_cookies, &r.attrs, cx) else {
        return refresh_failed(rp, r, Reason::TokenResponseInvalid, "the refreshed tokens do not fit in cookies", cx);
    };
    cx.events.push(Event::SessionAccepted);
    go_on_with_refreshed(rp, &r, session, set_cookies, cx)
}

/// A refresh failed. A token that is still valid keeps working (an IdP outage must not
/// log people out); an expired one means a new login (browsers) or a 401 (API clients),
/// never the upstream.
fn refresh_failed(rp: &Rp<'_>, r: Refreshing, reason: Reason, detail: &str, cx: &mut Context<'_>) -> Decision {
    log::warn!("oidc-edge: token refresh failed: {} ({detail})", reason.code());
    cx.events.push(Event::RefreshFailed(reason));
    if let Some(used) = r.session.refresh_token.as_deref().filter(|_| r.holds_lease) {
        // Requests waiting for this refresh give up now rather than at the end of the
        // lease; a later attempt (after the lease) is not shadowed by this failure.
        publish_refresh(rp, used, r.lease_until, "", "", cx);
    }
    if cx.now < r.session.token_exp {
        let identity = identity_of(&r.session, rp);
        cx.events.push(Event::SessionAccepted);
        return rp.forward(&r.request, &identity, Credential::Session, authorization(rp, &r.session), cx);
    }
    rp.engine.cache(rp.index, |c| c.remove(&r.cache_key));
    match r.request.client_kind(&rp.profile.api_paths) {
        ClientKind::Browser => login::start(rp, &r.request, cx),
        ClientKind::Api | ClientKind::WebSocket => Decision::Respond(pages::unauthorized(Some(Reason::SessionExpired))),
    }
}

/// The token endpoint answered the refresh grant.
pub fn on_refresh_response(rp: &Rp<'_>, mut r: Refreshing, response: Option<&CallResponse>, cx: &mut Context<'_>) -> Decision {
    let Some(response) = response else {
        return refresh_failed(rp, r, Reason::TokenEndpointFailed, "the refresh call could not be dispatched", cx);
    };
    match token::parse_response(response) {
        Ok(tokens) => {
            r.tokens = Some(tokens);
            validate_refresh(rp, r, cx, true)
        }
        Err(e) => refresh_failed(rp, r, e.reason, &e.detail, cx),
    }
}

/// OIDC Core 12.2: a refreshed ID token must name the same issuer and subject, for this
/// client, and be otherwise valid; then the session is re-sealed on the response.
pub fn validate_refresh(rp: &Rp<'_>, mut r: Refreshing, cx: &mut Context<'_>, may_wait: bool) -> Decision {
    let Some(tokens) = r.tokens.take() else {
        return refresh_failed(rp, r, Reason::Internal, "no tokens", cx);
    };
    let mut session = r.session.clone();
    let mut token_exp = None;
    if let Some(id_token) = &tokens.id_token {
        let Some(view) = rp.view(cx) else {
            return refresh_failed(rp, r, Reason::KeysNotLoaded, "no provider view", cx);
        };
        let issuers = [session.iss.clone()];
        let rules = ClaimRules {
            issuers: &issuers,
            audiences: &rp.profile.audiences,
            authorized_party: Some(&rp.profile.client_id),
            require_iat: true,
            nonce: None,
            access_token: Some(&tokens.access_token),
            now: cx.now,
            skew: rp.profile.clock_skew,
            token_use: TokenUse::IdToken,
        };
        match jwt::validate(id_token, &view.keys, &rules, &rp.profile.allowed_algorithms, super::MAX_TOKEN_BYTES) {
            Ok(v) if v.claims.sub == session.sub => {
                // The session's own ID token was validated at login; it is only read here.
                let original = jwt::parse(&session.id_token, super::MAX_TOKEN_BYTES).map(|t| t.claims);
                if let Err(claim) = original.map_or(Ok(()), |o| jwt::claims::check_same_authentication(&o, &v.claims.raw)) {
                    return refresh_failed(rp, r, Reason::ClaimInvalid, &format!("the refreshed ID token's `{claim}` differs from the login's (OIDC Core 12.2)"), cx);
                }
                token_exp = Some(v.claims.exp);
                session.id_token = id_token.clone();
                if let Some(email) = v.claims.string("email") {
                    session.email = Some(email.to_string());
                }
            }
            Ok(_) => return refresh_failed(rp, r, Reason::ClaimInvalid, "the refreshed ID token names another subject", cx),
            Err(reason) if may_wait && view.keys.refetch_may_help(reason) => {
                r.tokens = Some(tokens);
                return match rp.wait_for_new_keys(rp.profile.provider, view.generation, r, Pending::RefreshKeys, cx) {
                    Ok(wait) => wait,
                    Err(r) => refresh_failed(rp, r, reason, "no key verifies the ID token and the refetch cooldown is running", cx),
                };
            }
            Err(reason) => return refresh_failed(rp, r, reason, reason.describe(), cx),
        }
    }
    session.access_token = Some(tokens.access_token.clone());
    if let Some(rt) = &tokens.refresh_token {
        session.refresh_token = Some(rt.clone());
    }
    session.token_exp = match rp.profile.forward_token {
        ForwardToken::AccessToken => tokens.expires_in.map(|s| after(cx.now, s)).unwrap_or(session.token_exp),
        ForwardToken::IdToken | ForwardToken::None => token_exp.unwrap_or(session.token_exp),
    };
    if cx.now >= session.token_exp {
        return refresh_failed(rp, r, Reason::Expired, "the refresh did not yield a token that is still valid", cx);
    }
    let Some((sealed, set_cookies)) = seal_cookies(rp, &session, &r.session_name, &r.old_cookies, &r.attrs, cx) else {
        return refresh_failed(rp, r, Reason::TokenResponseInvalid, "the refreshed tokens do not fit in cookies", cx);
    };
    if let Some(used) = r.session.refresh_token.as_deref() {
        publish_refresh(rp, used, after(cx.now, SHARED_RESULT_SECS), &r.session_name, &sealed, cx);
    }
    // A rotated refresh token is used up: requests still carrying the old cookies go on
    // with the old token while it is valid instead of using it again.
    // It stays marked as long as the old session could come back (a lost response, a
    // restored tab): used again after its token expired, the IdP would revoke the grant.
    if let Some(old) = r.session.refresh_token.as_deref().filter(|old| session.refresh_token.as_deref() != Some(*old)) {
        let until = after(r.session.expires.max(r.session.token_exp).max(cx.now), rp.profile.clock_skew);
        callback::record_until(cx.store, &refresh_lease_key(rp, old), old, cx.now, until);
    }
    cx.events.push(Event::SessionRefreshed);
    go_on_with_refreshed(rp, &r, &session, set_cookies, cx)
}

/// The request goes on with the refreshed `session`, whose cookies go back on the answer;
/// the verdict cached for the old cookies is dropped.
fn go_on_with_refreshed(rp: &Rp<'_>, r: &Refreshing, session: &Session, set_cookies: Vec<String>, cx: &mut Context<'_>) -> Decision {
    rp.engine.cache(rp.index, |c| c.remove(&r.cache_key));
    let identity = identity_of(session, rp);
    with_cookies(rp.forward(&r.request, &identity, Credential::Session, authorization(rp, session), cx), set_cookies)
}


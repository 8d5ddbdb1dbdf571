//! Requests that carry a session cookie: opening it, forwarding, the cookies a (re)sealed session is written to; refreshing is `refresh`.

use std::rc::Rc;

use serde_json::Value;

use super::cache::Verdict;
use super::identity::Identity;
use super::{refresh, Authorization, Context, Credential, Decision, Event, Rp};
use crate::b64;
use crate::config::ForwardToken;
use crate::error::Reason;
use crate::pages;
use crate::request::RequestView;
use crate::session::cookies::{self, Attributes};
use crate::session::Session;
use crate::time::{after, UnixTime};

pub enum Outcome {
    Decided(Decision),
    /// No usable session: the caller goes on to other credentials or a login.
    None,
}

/// The claims a session stands for: its ID token's payload (sealed with the session, so
/// it needs no new signature check) plus what userinfo added at login.
pub(super) fn identity_of(session: &Session, rp: &Rp<'_>) -> Identity {
    let mut claims = session
        .id_token
        .split('.')
        .nth(1)
        .and_then(b64::url_decode)
        .and_then(|bytes| serde_json::from_slice::<Value>(&bytes).ok())
        .and_then(|v| match v {
            Value::Object(m) => Some(m),
            _ => None,
        })
        .unwrap_or_default();
    for (k, v) in &session.extra_claims {
        claims.entry(k.clone()).or_insert_with(|| v.clone());
    }
    claims.insert("sub".into(), Value::String(session.sub.clone()));
    if let Some(email) = &session.email {
        claims.entry("email").or_insert_with(|| Value::String(email.clone()));
    }
    Identity::from_claims(claims, rp.profile, session.token_exp)
}

fn open(rp: &Rp<'_>, name: &str, sealed: &str, now: UnixTime) -> Result<Session, Reason> {
    let session = rp.open_session(name, sealed).ok_or(Reason::SessionInvalid)?;
    if session.iss != rp.provider.issuer {
        return Err(Reason::SessionInvalid);
    }
    if now >= session.expires {
        return Err(Reason::SessionExpired);
    }
    Ok(session)
}

/// Reads the session of this request, if any, and decides what it allows.
///
/// `may_refresh` is false for a request released after a key wait (`Engine::on_keys`): it
/// cannot call out any more, so a session due for a refresh is used as it is while its
/// token is valid (the browser's next request refreshes it), and reads as expired after.
pub fn check(rp: &Rp<'_>, req: &RequestView, cx: &mut Context<'_>, may_refresh: bool) -> Outcome {
    let names = rp.names(req);
    let cookies = req.cookies();
    if !cookies::has_session_cookie(cookies, &names.session) {
        return Outcome::None;
    }
    let Some(sealed) = cookies::join(cookies, &names.session) else {
        cx.events.push(Event::SessionRejected(Reason::SessionInvalid));
        return Outcome::None;
    };
    let key = rp.engine.cache_key(sealed.as_bytes());
    let now = cx.now;
    let cached = rp.engine.cache(rp.index, |c| c.get(&key, now, |_| 0).cloned()).flatten();
    let (session, identity) = match cached.and_then(|v| v.session.clone().map(|s| (s, v.identity))) {
        Some(hit) => hit,
        None => match open(rp, &names.session, &sealed, now) {
            Ok(session) => {
                let identity = Rc::new(identity_of(&session, rp));
                let session = Rc::new(session);
                let until = session.expires.min(after(now, rp.profile.token_cache_ttl));
                let verdict = Verdict { identity: identity.clone(), session: Some(session.clone()), until, verified_by: None };
                rp.engine.cache(rp.index, |c| c.insert(key, verdict));
                (session, identity)
            }
            Err(reason) => {
                cx.events.push(Event::SessionRejected(reason));
                return Outcome::None;
            }
        },
    };

    if req.is_websocket_upgrade() && !origin_allowed(rp, req) {
        log::warn!("oidc-edge: refused a cookie-authenticated WebSocket from origin {:?}", req.header_str("origin").unwrap_or("?"));
        cx.events.push(Event::Forbidden);
        return Outcome::Decided(Decision::Respond(pages::forbidden_origin()));
    }

    let token_live = now < session.token_exp;
    let wants_refresh = may_refresh && session.refresh_token.is_some() && after(now, rp.profile.refresh_before_expiry) >= session.token_exp;
    if wants_refresh {
        if let Some(decision) = refresh::begin(rp, req, &session, names, key, cx) {
            return Outcome::Decided(decision);
        }
    }
    if !token_live {
        cx.events.push(Event::SessionRejected(Reason::SessionExpired));
        return Outcome::None;
    }
    cx.events.push(Event::SessionAccepted);
    Outcome::Decided(rp.forward(req, &identity, Credential::Session, authorization(rp, &session), cx))
}

/// A cookie rides along with any request the browser makes, including a WebSocket opened
/// by another site's script: only our own origin (or a configured one) may use it.
fn origin_allowed(rp: &Rp<'_>, req: &RequestView) -> bool {
    // Not a browser: no ambient cookie to hijack.
    let Some(origin) = req.header("origin") else { return true };
    // There but unreadable: no origin of ours (not the same as none).
    let Ok(origin) = std::str::from_utf8(origin) else { return false };
    let origin = origin.trim();
    origin.eq_ignore_ascii_case(&Rp::origin(req)) || rp.profile.allowed_origins.iter().any(|o| o.eq_ignore_ascii_case(origin))
}

pub(super) fn authorization(rp: &Rp<'_>, session: &Session) -> Authorization {
    let token = match (rp.profile.forward_token, &session.access_token) {
        (ForwardToken::IdToken, _) => &session.id_token,
        (ForwardToken::AccessToken, Some(token)) => token,
        (ForwardToken::AccessToken, None) | (ForwardToken::None, _) => return Authorization::None,
    };
    Authorization::bearer(token)
}

/// Seals `session` into cookies under `name` and expires the request's old session
/// cookies that are not rewritten (a smaller session leaves no stale chunks behind).
pub fn write_cookies(rp: &Rp<'_>, session: &Session, name: &str, old: &[String], attrs: &Attributes, cx: &mut Context<'_>) -> Option<Vec<String>> {
    seal_cookies(rp, session, name, old, attrs, cx).map(|(_, set_cookies)| set_cookies)
}

/// `write_cookies`, also giving the sealed value that the cookies carry.
pub(super) fn seal_cookies(rp: &Rp<'_>, session: &Session, name: &str, old: &[String], attrs: &Attributes, cx: &mut Context<'_>) -> Option<(String, Vec<String>)> {
    let sealed = rp.seal_session(name, session, cx)?;
    let parts = cookies::split(name, &sealed)?;
    let max_age = session.expires.saturating_sub(cx.now);
    let mut out = Vec::with_capacity(parts.len().saturating_add(old.len()));
    for stale in old {
        if !parts.iter().any(|(n, _)| n == stale) {
            out.push(cookies::clear_cookie(stale, attrs));
        }
    }
    for (n, v) in &parts {
        out.push(cookies::set_cookie(n, v, attrs, Some(max_age)));
    }
    Some((sealed, out))
}

/// The re-sealed session's cookies go back on the answer, whether it forwards or (refused
/// by `require`) answers locally.
pub(super) fn with_cookies(decision: Decision, set_cookies: Vec<String>) -> Decision {
    let headers = set_cookies.into_iter().map(|c| ("set-cookie".to_string(), c));
    match decision {
        Decision::Forward(mut fwd) => {
            fwd.response_headers.extend(headers);
            if !fwd.response_headers.is_empty() {
                fwd.response_replace_headers.push(("cache-control".into(), "no-store".into()));
            }
            Decision::Forward(fwd)
        }
        Decision::Respond(mut resp) => {
            resp.headers.extend(headers);
            Decision::Respond(resp)
        }
        other => other,
    }
}

/// Opens the session whatever its token's expiry: for logout (an expired one still names
/// the user in `id_token_hint`) and to tell a signed-in browser back at the callback.
pub fn open_even_expired(rp: &Rp<'_>, req: &RequestView) -> Option<Session> {
    let names = rp.names(req);
    let cookies = req.cookies();
    let sealed = cookies::join(cookies, &names.session)?;
    rp.open_session(&names.session, &sealed)
}

//! Requests that carry a bearer token (API clients, WebSockets): which issuer, which keys, and the verdict cache.

use std::rc::Rc;

use super::cache::Verdict;
use super::identity::Identity;
use super::{Authorization, Context, Credential, Decision, Event, Pending, Rp};
use crate::b64;
use crate::error::Reason;
use crate::http::Query;
use crate::jwt::{self, ClaimRules, TokenUse};
use crate::request::RequestView;
use crate::time::after;

/// Where the token came from; decides what is rewritten on the way upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Header,
    /// `Sec-WebSocket-Protocol: base64url.bearer.authorization.k8s.io.<token>` (a browser
    /// cannot set `Authorization` on a WebSocket).
    WebSocketProtocol,
    /// `?access_token=` on a WebSocket upgrade, when `allow_query_token` is on.
    Query,
}

pub enum Outcome {
    Decided(Decision),
    Invalid(Reason),
}

/// A bearer request waiting for a JWKS refetch.
#[derive(Debug)]
pub struct Parked {
    pub profile: usize,
    pub request: RequestView,
}

pub(super) const K8S_PROTOCOL_PREFIX: &str = "base64url.bearer.authorization.k8s.io.";

/// The tokens a WebSocket upgrade may carry besides `Authorization` and cookies. More than
/// one subprotocol token is refused unread, as the Kubernetes API server does: each would
/// cost a signature check, and a request could carry a hundred.
pub fn websocket_tokens(req: &RequestView, allow_query: bool) -> Result<Vec<(String, Source)>, Reason> {
    let mut out = Vec::new();
    let protocols = req.subprotocols();
    let encoded: Vec<&str> = protocols.iter().filter_map(|p| p.strip_prefix(K8S_PROTOCOL_PREFIX)).collect();
    if encoded.len() > 1 {
        return Err(Reason::TokenRepeated);
    }
    for e in encoded {
        if let Some(token) = b64::url_decode(e.trim_end_matches('=')).and_then(|b| String::from_utf8(b).ok()) {
            out.push((token, Source::WebSocketProtocol));
        }
    }
    if allow_query {
        if let Some(token) = Query::parse(req.query()).single("access_token") {
            out.push((token.to_string(), Source::Query));
        }
    }
    Ok(out)
}

/// Validates a bearer token for this profile: issued by its IdP (for `audiences`) or by
/// one of `bearer_validators` (for theirs).
pub fn check(rp: &Rp<'_>, req: &RequestView, token: &str, source: Source, cx: &mut Context<'_>, may_wait: bool) -> Outcome {
    let key = rp.engine.cache_key(token.as_bytes());
    let now = cx.now;
    let providers = cx.providers;
    let cached = rp
        .engine
        .cache(rp.index, |c| c.get(&key, now, |p| providers.get(p).map(|v| v.generation).unwrap_or(u64::MAX)).map(|v| v.identity.clone()))
        .flatten();
    if let Some(identity) = cached {
        cx.events.push(Event::TokenAccepted);
        return Outcome::Decided(forward(rp, req, token, source, &identity, cx));
    }

    // Which issuer? Read it unverified only to pick the rules; everything is verified below.
    let (unverified_iss, several_audiences) = match jwt::parse(token, super::MAX_TOKEN_BYTES) {
        Ok(j) => (
            j.claims.get("iss").and_then(|v| v.as_str()).map(str::to_string),
            j.claims.get("aud").and_then(|v| v.as_array()).is_some_and(|a| a.len() > 1),
        ),
        Err(reason) => return reject(reason, cx),
    };
    let (issuer, audiences, provider_index, client) = match unverified_iss {
        Some(iss) if iss == rp.provider.issuer => (iss, &rp.profile.audiences, rp.profile.provider, Some(rp.profile.client_id.as_str())),
        Some(iss) => match rp.profile.bearer.iter().find(|v| v.issuer == iss) {
            Some(v) => (iss, &v.audiences, v.provider, None),
            None => return reject(Reason::IssMismatch, cx),
        },
        None => return reject(Reason::IssMissing, cx),
    };
    let (Some(view), Some(provider)) = (cx.view(provider_index), rp.engine.settings.providers.get(provider_index)) else {
        return reject(Reason::Internal, cx);
    };
    if !view.keys_fresh(provider, now) {
        return reject(if view.keys.is_empty() { Reason::KeysNotLoaded } else { Reason::KeysStale }, cx);
    }
    let issuers = [issuer];
    let rules = ClaimRules {
        issuers: &issuers,
        audiences,
        // OIDC Core 3.1.3.7 (4, 5): a token of this profile's issuer with several audiences
        // must name this client as its authorized party. A single audience keeps any `azp`.
        authorized_party: client.filter(|_| several_audiences),
        require_iat: false,
        nonce: None,
        access_token: None,
        now,
        skew: rp.profile.clock_skew,
        token_use: TokenUse::Bearer,
    };
    let generation = view.generation;
    match jwt::validate(token, &view.keys, &rules, &rp.profile.allowed_algorithms, super::MAX_TOKEN_BYTES) {
        Ok(valid) => {
            let exp = valid.claims.exp;
            let identity = Rc::new(Identity::from_claims(valid.claims.raw, rp.profile, exp));
            let until = after(exp, 0).min(after(now, rp.profile.token_cache_ttl));
            let verdict = Verdict { identity: identity.clone(), session: None, until, verified_by: Some((provider_index, generation)) };
            rp.engine.cache(rp.index, |c| c.insert(key, verdict));
            cx.events.push(Event::TokenAccepted);
            Outcome::Decided(forward(rp, req, token, source, &identity, cx))
        }
        Err(reason) if may_wait && view.keys.refetch_may_help(reason) => {
            let parked = Parked { profile: rp.index, request: req.clone() };
            match rp.wait_for_new_keys(provider_index, generation, parked, Pending::Bearer, cx) {
                Ok(wait) => Outcome::Decided(wait),
                Err(_) => reject(reason, cx),
            }
        }
        Err(reason) => reject(reason, cx),
    }
}

fn reject(reason: Reason, cx: &mut Context<'_>) -> Outcome {
    cx.events.push(Event::TokenRejected(reason));
    Outcome::Invalid(reason)
}

/// `token` came from this request (`source`). Read from its one Authorization header as
/// `Bearer <token>` exactly (the length says so: `bearer_token` only trims and splits),
/// the header goes on as it is, with no copy and no comparison of the token's bytes.
fn authorization(req: &RequestView, token: &str, source: Source) -> Authorization {
    if source == Source::Header {
        if let [only] = req.header_values("authorization").as_slice() {
            if only.len() == token.len().saturating_add(7) && only.starts_with(b"Bearer ") {
                return Authorization::ClientsOwn;
            }
        }
    }
    Authorization::bearer(token)
}

/// The subprotocol and query tokens are out of the request already (`Rp::strip_only`): the
/// one used is forwarded once, in Authorization.
fn forward(rp: &Rp<'_>, req: &RequestView, token: &str, source: Source, identity: &Identity, cx: &mut Context<'_>) -> Decision {
    rp.forward(req, identity, Credential::Bearer, authorization(req, token, source), cx)
}

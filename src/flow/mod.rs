//! The per-request state machine: a request (then a call's answer, or new keys) in, one decision out.
//!
//! This is the only place that decides the order of the steps. It reads no clock and no
//! randomness of its own: `Context` hands in the time, the entropy, the provider views
//! and the shared store; events come back for the shell's metrics.

pub mod bearer;
pub mod cache;
pub mod identity;
pub mod login;
pub mod logout;
pub mod refresh;
pub mod session;

use std::borrow::Cow;
use std::cell::RefCell;

use crate::config::{Ambiguity, Profile, ProviderConfig, Settings, IDENTITY_HEADERS};
use crate::entropy::Entropy;
use crate::error::Reason;
use crate::http::{HttpCall, LocalResponse};
use crate::pages;
use crate::provider::{Keys, View};
use crate::request::{canonical_path, path_matches, ClientKind, RequestView};
use crate::session::cookies::Attributes;
use crate::session::seal::Sealer;
use crate::session::{packed, Session};
use crate::store::SharedStore;
use crate::time::UnixTime;

use cache::VerdictCache;
use identity::Identity;

/// Tokens larger than this are refused before decoding (a 40 KB Entra ID token fits).
pub const MAX_TOKEN_BYTES: usize = 64 * 1024;
/// Seconds a client is told to wait while the provider is not loaded.
pub const RETRY_AFTER_SECS: u64 = 5;

/// What the shell must do with the request.
#[derive(Debug)]
pub enum Decision {
    /// Let it go upstream after these changes.
    Forward(Forward),
    /// Answer it here.
    Respond(LocalResponse),
    /// Pause it, make this call through the IdP cluster, and hand the answer to
    /// `Engine::on_call_response`.
    Call(HttpCall, Pending),
    /// Pause it until the provider's keys change (a refetch is under way) or the deadline
    /// passes, then hand it to `Engine::on_keys`.
    Wait(Wait),
}

#[derive(Debug)]
pub struct Wait {
    pub provider: usize,
    /// The key-set generation when the wait began: a different one means new keys.
    pub generation: u64,
    pub deadline: UnixTime,
    /// Decide again on every tick, not only on new keys or at the deadline: the request
    /// waits for a refresh another request is making (`Pending::SharedRefresh`).
    pub poll: bool,
    pub pending: Pending,
}

/// What an authenticated request carries upstream in `Authorization`.
#[derive(Debug)]
pub enum Authorization {
    /// The client's own header, already exactly `Bearer <the token just validated>`.
    ClientsOwn,
    /// This value (`Bearer <token>`).
    Set(String),
    /// Nothing: the client's copy is removed.
    None,
}

impl Authorization {
    /// `Bearer <token>`. Not `format!`: this runs on every request, and the formatter
    /// costs more in wasm than the copy.
    pub fn bearer(token: &str) -> Authorization {
        let mut value = String::with_capacity(token.len().saturating_add(7));
        value.push_str("Bearer ");
        value.push_str(token);
        Authorization::Set(value)
    }
}

/// What proved the identity of a request: decides the challenge of a refusal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Credential {
    Session,
    Bearer,
}

/// Changes to a request that goes upstream.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Forward {
    /// Removed first: identity headers a client might have forged.
    pub remove_headers: Vec<String>,
    /// Then set (replacing any value).
    pub set_headers: Vec<(String, String)>,
    /// Then added: headers the request no longer carries once `remove_headers` ran (each
    /// name is one the profile strips, so a client's copy is in `remove_headers`). Adding
    /// spares Envoy the search for a value to replace, about 1 to 4k instructions a header.
    pub add_headers: Vec<(String, String)>,
    pub cookie: CookieHeader,
    /// A new `:path` (a query token removed).
    pub path: Option<String>,
    /// Headers to add to the upstream's response (refreshed session cookies).
    pub response_headers: Vec<(String, String)>,
    /// Headers of the upstream's response replaced: `Cache-Control: no-store` when the
    /// response carries a session cookie, so that no shared cache keeps it for others,
    /// whatever the application said.
    pub response_replace_headers: Vec<(String, String)>,
}

/// What happens to the `Cookie` header on the way upstream.
#[derive(Debug, Default, PartialEq, Eq)]
pub enum CookieHeader {
    #[default]
    Keep,
    Remove,
    /// The client's other cookies, byte for byte as it sent them.
    Replace(Vec<u8>),
}

/// A request waiting for a call's answer or for keys.
#[derive(Debug)]
pub enum Pending {
    CodeExchange(Box<login::Exchange>),
    Userinfo(Box<login::Finishing>),
    LoginKeys(Box<login::Finishing>),
    Refresh(Box<refresh::Refreshing>),
    RefreshKeys(Box<refresh::Refreshing>),
    /// A request whose token has expired, waiting for the result of the refresh another
    /// request of the same session is making with the same refresh token.
    SharedRefresh(Box<refresh::Refreshing>),
    Bearer(Box<bearer::Parked>),
}

/// Something worth counting; the shell turns these into Envoy stats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    LoginStarted,
    LoginCompleted,
    LoginFailed(Reason),
    SessionAccepted,
    SessionRejected(Reason),
    SessionRefreshed,
    RefreshFailed(Reason),
    TokenAccepted,
    TokenRejected(Reason),
    Forbidden,
    Unauthenticated,
    NotReady,
    KidRefetchRequested,
    Logout,
    PassThrough,
}

impl Event {
    /// The events nearly every request ends in: the shell counts them in batches.
    pub const PER_REQUEST: [Event; 3] = [Event::SessionAccepted, Event::TokenAccepted, Event::PassThrough];

    /// The Envoy stat this event counts in (`wasmcustom.` is prepended by Envoy); borrowed
    /// for the per-request events, so counting them allocates nothing.
    pub fn metric_name(&self) -> Cow<'static, str> {
        match self {
            Event::LoginStarted => Cow::Borrowed("oidc_edge.login.started"),
            Event::LoginCompleted => Cow::Borrowed("oidc_edge.login.completed"),
            Event::LoginFailed(r) => Cow::Owned(format!("oidc_edge.login.failed.{}", r.code())),
            Event::SessionAccepted => Cow::Borrowed("oidc_edge.session.accepted"),
            Event::SessionRejected(r) => Cow::Owned(format!("oidc_edge.session.rejected.{}", r.code())),
            Event::SessionRefreshed => Cow::Borrowed("oidc_edge.session.refreshed"),
            Event::RefreshFailed(r) => Cow::Owned(format!("oidc_edge.session.refresh_failed.{}", r.code())),
            Event::TokenAccepted => Cow::Borrowed("oidc_edge.token.accepted"),
            Event::TokenRejected(r) => Cow::Owned(format!("oidc_edge.token.rejected.{}", r.code())),
            Event::Forbidden => Cow::Borrowed("oidc_edge.request.forbidden"),
            Event::Unauthenticated => Cow::Borrowed("oidc_edge.request.unauthenticated"),
            Event::NotReady => Cow::Borrowed("oidc_edge.request.not_ready"),
            Event::KidRefetchRequested => Cow::Borrowed("oidc_edge.jwks.unknown_kid_refetch"),
            Event::Logout => Cow::Borrowed("oidc_edge.logout"),
            Event::PassThrough => Cow::Borrowed("oidc_edge.request.pass_through"),
        }
    }
}

/// Everything a decision may depend on besides the request.
pub struct Context<'a> {
    pub now: UnixTime,
    /// One view per configured provider (`Settings::providers`).
    pub providers: &'a [View],
    pub store: &'a mut dyn SharedStore,
    pub entropy: &'a mut dyn Entropy,
    pub events: Vec<Event>,
}

impl Context<'_> {
    pub fn view(&self, provider: usize) -> Option<&View> {
        self.providers.get(provider)
    }
}

/// Per-profile things derived once from the settings.
struct Party {
    sealer: Sealer,
    /// Cookie names for plain http and for https requests (see `Rp::names`).
    names: [Names; 2],
}

/// The relying parties of one configuration, with their per-worker caches.
pub struct Engine {
    pub settings: Settings,
    pub provider_keys: Vec<Keys>,
    parties: Vec<Party>,
    caches: RefCell<Vec<VerdictCache>>,
    keyer: cache::Keyer,
    /// Header names removed from every request before anything else: the identity headers
    /// and the claim headers of every profile.
    strip: Vec<String>,
    /// Every cookie base name any profile uses: all are kept from the upstream.
    cookie_bases: Vec<String>,
    /// Callback and logout paths that more than one profile uses (see `select_profile`).
    shared_paths: Vec<String>,
    /// Every profile's login initiation path (see `select_profile`).
    login_paths: Vec<String>,
    /// More than one issuer is trusted: `sub` alone does not name a user, so the issuer
    /// goes upstream too (providers of one issuer with other settings count once).
    several_issuers: bool,
}

impl Engine {
    /// `seed`: 16 random bytes keying the verdict caches (the shell passes the host's CSPRNG).
    pub fn new(settings: Settings, seed: [u8; 16]) -> Engine {
        let provider_keys = settings.providers.iter().map(|p| Keys::new(&p.namespace)).collect();
        // Every profile strips every profile's claim headers: routes on one host often share
        // one application, which trusts `X-Groups` whichever route set it.
        let mut strip: Vec<String> = IDENTITY_HEADERS.iter().map(|h| h.to_string()).collect();
        for (header, _) in settings.profiles.iter().flat_map(|p| &p.claim_headers) {
            if !strip.contains(header) {
                strip.push(header.clone());
            }
        }
        let parties = settings
            .profiles
            .iter()
            .map(|p| Party { sealer: Sealer::new(&p.cookie.keys), names: [Names::of(p, false), Names::of(p, true)] })
            .collect();
        let caches = settings.profiles.iter().map(|p| VerdictCache::new(p.token_cache_size)).collect();
        let mut cookie_bases: Vec<String> = settings.profiles.iter().map(|p| p.cookie.name.clone()).collect();
        cookie_bases.sort();
        cookie_bases.dedup();
        let own_paths: Vec<&String> = settings.profiles.iter().flat_map(|p| [&p.redirect_path, &p.logout_path]).collect();
        let mut shared_paths: Vec<String> = own_paths.iter().filter(|p| own_paths.iter().filter(|q| q == p).count() > 1).map(|p| (*p).clone()).collect();
        shared_paths.sort();
        shared_paths.dedup();
        let mut login_paths: Vec<String> = settings.profiles.iter().map(|p| p.login_path.clone()).collect();
        login_paths.sort();
        login_paths.dedup();
        let several_issuers = settings.providers.iter().any(|p| p.issuer != settings.providers.first().map_or("", |f| f.issuer.as_str()));
        Engine { settings, provider_keys, parties, caches: RefCell::new(caches), keyer: cache::Keyer::new(seed), strip, cookie_bases, shared_paths, login_paths, several_issuers }
    }

    /// Whether a profile of another issuer that may serve `authority` has the same callback
    /// path as profile `index`: one redirect URI for two IdPs, where only the response's
    /// `iss` tells which IdP sent it (RFC 9700 4.4.2, IdP mix-up).
    pub(super) fn callback_shared_across_issuers(&self, authority: &str, index: usize) -> bool {
        let Some(me) = self.settings.profiles.get(index) else { return false };
        if !self.shared_paths.contains(&me.redirect_path) {
            return false;
        }
        let issuer = self.settings.issuer_of(me);
        self.settings
            .profiles_for_host(authority)
            .into_iter()
            .filter_map(|i| self.settings.profiles.get(i))
            .any(|p| p.redirect_path == me.redirect_path && self.settings.issuer_of(p) != issuer)
    }

    /// Configurations that work but weaken a defence, for the log at load.
    pub fn warnings(&self) -> Vec<String> {
        let mut out = Vec::new();
        let issuer_of = |p: &Profile| self.settings.issuer_of(p);
        for (i, a) in self.settings.profiles.iter().enumerate() {
            for b in self.settings.profiles.iter().skip(i.saturating_add(1)) {
                if a.redirect_path == b.redirect_path && issuer_of(a) != issuer_of(b) {
                    out.push(format!(
                        "oidc-edge configuration: {} ({}) and {} ({}) share the callback path `{}`: where both serve one host, a login there succeeds only if the identity provider sends `iss` in its response (RFC 9207), which defends against IdP mix-up (RFC 9700 4.4); give each issuer its own `redirect_path` (and register it) to accept IdPs that do not",
                        a.label(), issuer_of(a), b.label(), issuer_of(b), a.redirect_path
                    ));
                }
            }
        }
        out
    }

    /// The entry point for every request.
    pub fn on_request(&self, req: &RequestView, cx: &mut Context<'_>) -> Decision {
        // Rules meet the path as the application may read it, not only as sent. A path whose
        // readings belong to different routes is refused: Envoy routes on one reading (it
        // keeps `%2F`; its `prefix` matches `/adminx` under `/admin`), an application may
        // act on another, and either could be the route with the weaker rules.
        let canonical = canonical_path(req.path_only());
        let route = self.settings.unambiguous_profile_for(&req.authority, req.path_only());
        let decoded_route = match &canonical {
            Cow::Owned(decoded) => self.settings.unambiguous_profile_for(&req.authority, decoded),
            Cow::Borrowed(_) => route,
        };
        let by_route = match (route, decoded_route) {
            (Ok(a), Ok(b)) if a == b => a,
            (Err(Ambiguity::Host), _) | (_, Err(Ambiguity::Host)) => {
                log::info!(
                    "oidc-edge: refused host `{}`: as sent (port or trailing dot included, as Envoy matches virtual hosts unless strip_any_host_port / strip_trailing_host_dot are set) it selects another route than without them; write the route's `host` with the port clients use (`app.example.com:8443`), or set strip_trailing_host_dot on the HTTP connection manager",
                    req.authority.escape_debug()
                );
                return Decision::Respond(pages::ambiguous_host());
            }
            _ => {
                log::info!(
                    "oidc-edge: refused `{}`: it belongs to another route decoded ({canonical:?}) or once a route's path_prefix is read as a plain prefix, as Envoy's `prefix` does (end the path_prefix with `/` to match only below it)",
                    req.path_only().escape_debug()
                );
                return Decision::Respond(pages::ambiguous_path());
            }
        };
        let index = self.select_profile(req, by_route);
        let Some(rp) = self.rp(index) else {
            return Decision::Respond(pages::login_failed(500, Reason::Internal, "The gateway is misconfigured.", "/"));
        };
        let path = req.path_only();
        if path == rp.profile.redirect_path {
            return login::callback(&rp, req, cx);
        }
        if path == rp.profile.logout_path {
            return logout::handle(&rp, req, cx);
        }
        if path == rp.profile.login_path {
            return login::initiate(&rp, req, cx);
        }
        // Unauthenticated only if the path is exempt both as sent and as an application may
        // normalise it: `/healthz/../admin` is not a health check.
        if rp.profile.pass_through_paths.iter().any(|p| path_matches(path, p) && path_matches(&canonical, p)) {
            cx.events.push(Event::PassThrough);
            return Decision::Forward(rp.strip_only(req));
        }
        self.authenticate(&rp, req, cx, true)
    }

    /// The profile for this request: by host and path, except that a callback or logout
    /// path shared by several routes of the host belongs to the route whose login or
    /// session cookie the request carries (a `/admin` route's login comes back to the
    /// common `/oauth2/callback`), and a login path to the route of its `target_link_uri`.
    /// `by_route`: the profile of the request's host and path (`Settings::profile_for`).
    fn select_profile(&self, req: &RequestView, by_route: usize) -> usize {
        let path = req.path_only();
        if self.login_paths.iter().any(|p| p == path) {
            // A login started for `/admin/x` belongs to the route that serves `/admin/x`.
            let by_target = login::target_path(req).map(|target| self.settings.profile_for(&req.authority, &canonical_path(&target)));
            return by_target.filter(|i| self.settings.profiles.get(*i).is_some_and(|p| p.login_path == path)).unwrap_or(by_route);
        }
        if !self.shared_paths.iter().any(|p| p == path) {
            return by_route;
        }
        let candidates: Vec<usize> = self
            .settings
            .profiles_for_host(&req.authority)
            .into_iter()
            .filter(|i| self.settings.profiles.get(*i).is_some_and(|p| p.redirect_path == path || p.logout_path == path))
            .collect();
        if candidates.len() < 2 {
            return by_route;
        }
        let cookies = req.cookies();
        let state = crate::oidc::callback::Params::parse(req.query()).state;
        let owns = |i: usize| -> bool {
            let Some(rp) = self.rp(i) else { return false };
            let names = rp.names(req);
            match (&state, rp.profile.redirect_path == path) {
                (Some(state), true) => {
                    let tx = format!("{}{}", names.tx_prefix, crate::oidc::callback::state_id(state));
                    cookies.iter().any(|(n, _)| n == &tx)
                }
                _ => crate::session::cookies::has_session_cookie(cookies, &names.session),
            }
        };
        if owns(by_route) {
            return by_route;
        }
        candidates.into_iter().find(|i| owns(*i)).unwrap_or(by_route)
    }

    /// Finds credentials in the order: bearer token, session cookies, WebSocket
    /// subprotocol, query token; then decides between forwarding, refreshing, a login
    /// redirect and a 401.
    fn authenticate(&self, rp: &Rp<'_>, req: &RequestView, cx: &mut Context<'_>, may_wait: bool) -> Decision {
        let mut bearer_failure = None;
        if let Some(token) = req.bearer_token() {
            match bearer::check(rp, req, token, bearer::Source::Header, cx, may_wait) {
                bearer::Outcome::Decided(d) => return d,
                bearer::Outcome::Invalid(reason) => bearer_failure = Some(reason),
            }
        }
        // A request released after a wait (`may_wait` false) may not call out: no refresh.
        match session::check(rp, req, cx, may_wait) {
            session::Outcome::Decided(d) => return d,
            session::Outcome::None => {}
        }
        // Only now: a request whose credentials were good never needs its kind.
        let kind = req.client_kind(&rp.profile.api_paths);
        if kind == ClientKind::WebSocket {
            match bearer::websocket_tokens(req, rp.profile.allow_query_token) {
                Ok(tokens) => {
                    for (token, source) in tokens {
                        match bearer::check(rp, req, &token, source, cx, may_wait) {
                            bearer::Outcome::Decided(d) => return d,
                            bearer::Outcome::Invalid(reason) => bearer_failure = Some(reason),
                        }
                    }
                }
                Err(reason) => {
                    cx.events.push(Event::TokenRejected(reason));
                    bearer_failure = Some(reason);
                }
            }
        }
        if let Some(reason) = bearer_failure {
            return Decision::Respond(pages::unauthorized(Some(reason)));
        }
        cx.events.push(Event::Unauthenticated);
        match kind {
            ClientKind::Browser => login::start(rp, req, cx),
            ClientKind::Api | ClientKind::WebSocket => {
                if !rp.ready(cx) {
                    cx.events.push(Event::NotReady);
                    Decision::Respond(pages::not_ready(true, RETRY_AFTER_SECS))
                } else if req.is_form_navigation(&rp.profile.api_paths) {
                    Decision::Respond(pages::sign_in_to_resubmit(&login::resubmit_href(rp, req)))
                } else {
                    Decision::Respond(pages::unauthorized(None))
                }
            }
        }
    }

    /// The Envoy cluster a step's call goes through: that of the provider of the profile
    /// it serves (routes may trust other IdPs). `None` only for a step of no profile.
    pub fn cluster_for(&self, pending: &Pending) -> Option<&str> {
        let profile = match pending {
            Pending::CodeExchange(ex) => ex.profile,
            Pending::Userinfo(f) | Pending::LoginKeys(f) => f.exchange.profile,
            Pending::Refresh(r) | Pending::RefreshKeys(r) | Pending::SharedRefresh(r) => r.profile,
            Pending::Bearer(b) => b.profile,
        };
        let provider = self.settings.profiles.get(profile)?.provider;
        self.settings.providers.get(provider).map(|p| p.idp_cluster.as_str())
    }

    /// The answer to a call started earlier (`None`: the call never went out).
    pub fn on_call_response(&self, pending: Pending, response: Option<&crate::http::CallResponse>, cx: &mut Context<'_>) -> Decision {
        match pending {
            Pending::CodeExchange(ex) => self.with_rp(ex.profile, cx, |rp, cx| login::on_token_response(rp, *ex, response, cx)),
            Pending::Userinfo(fin) => self.with_rp(fin.exchange.profile, cx, |rp, cx| login::on_userinfo(rp, *fin, response, cx)),
            Pending::Refresh(r) => self.with_rp(r.profile, cx, |rp, cx| refresh::on_refresh_response(rp, *r, response, cx)),
            Pending::LoginKeys(_) | Pending::RefreshKeys(_) | Pending::SharedRefresh(_) | Pending::Bearer(_) => {
                Decision::Respond(pages::login_failed(500, Reason::Internal, "An internal error occurred.", "/"))
            }
        }
    }

    /// A waiting request's keys changed, or its wait timed out: decide now without calling
    /// out (the shell releases it from the root context, where a call's answer could not
    /// reach it): `Forward` or `Respond`, or, for a request waiting on another request's
    /// refresh that is still under way, another polling `Wait` (bounded by its lease).
    pub fn on_keys(&self, pending: Pending, cx: &mut Context<'_>) -> Decision {
        match pending {
            Pending::LoginKeys(fin) => self.with_rp(fin.exchange.profile, cx, |rp, cx| login::validate_and_finish(rp, *fin, cx, false)),
            Pending::RefreshKeys(r) => self.with_rp(r.profile, cx, |rp, cx| refresh::validate_refresh(rp, *r, cx, false)),
            Pending::SharedRefresh(r) => self.with_rp(r.profile, cx, |rp, cx| refresh::take_shared(rp, *r, cx)),
            Pending::Bearer(parked) => {
                let index = parked.profile;
                let Some(rp) = self.rp(index) else {
                    return Decision::Respond(pages::unauthorized(Some(Reason::Internal)));
                };
                self.authenticate(&rp, &parked.request, cx, false)
            }
            other => self.on_call_response(other, None, cx),
        }
    }

    fn with_rp(&self, index: usize, cx: &mut Context<'_>, f: impl FnOnce(&Rp<'_>, &mut Context<'_>) -> Decision) -> Decision {
        match self.rp(index) {
            Some(rp) => f(&rp, cx),
            None => Decision::Respond(pages::login_failed(500, Reason::Internal, "The gateway is misconfigured.", "/")),
        }
    }

    fn rp(&self, index: usize) -> Option<Rp<'_>> {
        let profile = self.settings.profiles.get(index)?;
        Some(Rp {
            engine: self,
            index,
            profile,
            provider: self.settings.providers.get(profile.provider)?,
            party: self.parties.get(index)?,
        })
    }

    fn is_own_cookie(&self, name: &str) -> bool {
        let name = name.strip_prefix("__Host-").unwrap_or(name);
        self.cookie_bases.iter().any(|base| {
            crate::session::cookies::is_session_cookie(name, base) || name.strip_prefix(base.as_str()).is_some_and(|rest| rest.starts_with("_tx."))
        })
    }

    /// The filter's own cookies never reach the application: they are large and they are
    /// secrets. The others are passed on as the client wrote them (quotes and all).
    fn upstream_cookie(&self, req: &RequestView) -> CookieHeader {
        let parsed = req.parsed_cookies();
        // The parse stops at a bound: past it, only the full scan below can tell.
        if parsed.complete && !parsed.pairs.iter().any(|(n, _)| self.is_own_cookie(n)) {
            return CookieHeader::Keep;
        }
        // The common case, only the filter's own cookies: no second pass over the header.
        if parsed.complete && parsed.pairs.iter().all(|(n, _)| self.is_own_cookie(n)) {
            return CookieHeader::Remove;
        }
        let mut kept: Vec<&[u8]> = Vec::new();
        let mut dropped = false;
        for header in req.header_values("cookie") {
            for segment in header.split(|b| *b == b';') {
                let text = segment.trim_ascii();
                let name = text.splitn(2, |b| *b == b'=').next().unwrap_or(text).trim_ascii();
                if self.is_own_cookie(&String::from_utf8_lossy(name)) {
                    dropped = true;
                } else if !text.is_empty() {
                    kept.push(text);
                }
            }
        }
        if !dropped {
            CookieHeader::Keep
        } else if kept.is_empty() {
            CookieHeader::Remove
        } else {
            CookieHeader::Replace(kept.join(&b"; "[..]))
        }
    }

    fn cache_key(&self, bytes: &[u8]) -> cache::Key {
        self.keyer.key_of(bytes)
    }

    fn cache<R>(&self, index: usize, f: impl FnOnce(&mut VerdictCache) -> R) -> Option<R> {
        let mut caches = self.caches.try_borrow_mut().ok()?;
        caches.get_mut(index).map(f)
    }
}

/// One relying party while handling a request: its profile, provider and derived state.
pub struct Rp<'a> {
    engine: &'a Engine,
    index: usize,
    pub profile: &'a Profile,
    pub provider: &'a ProviderConfig,
    party: &'a Party,
}

/// Cookie names and attributes for one request: `__Host-` prefixed over https when no
/// domain is set (RFC 6265bis 4.1.3.2). Made once per profile and scheme.
pub struct Names {
    pub session: String,
    pub tx_prefix: String,
    pub attrs: Attributes,
}

impl Names {
    fn of(profile: &Profile, https: bool) -> Names {
        let secure = https || profile.cookie.same_site == crate::session::cookies::SameSite::None;
        let prefix = if https && profile.cookie.domain.is_none() { "__Host-" } else { "" };
        let base = &profile.cookie.name;
        Names {
            session: format!("{prefix}{base}"),
            tx_prefix: format!("{prefix}{base}_tx."),
            attrs: Attributes { secure, same_site: profile.cookie.same_site, domain: profile.cookie.domain.clone() },
        }
    }

    /// Attributes of the login (transaction) cookie. It must come back on the IdP's
    /// redirect to the callback, a navigation another site started, on which browsers
    /// never send a `SameSite=Strict` cookie: under `strict` it is `Lax` (a top-level GET
    /// carries that); `none` stays.
    pub fn tx_attrs(&self) -> Attributes {
        let mut attrs = self.attrs.clone();
        if attrs.same_site == crate::session::cookies::SameSite::Strict {
            attrs.same_site = crate::session::cookies::SameSite::Lax;
        }
        attrs
    }
}

impl Rp<'_> {
    /// For a token no key of `provider` verifies, though new keys might: asks for a JWKS
    /// refetch (coalesced proxy-wide, one per cooldown) and parks `item` until the keys of
    /// `generation` change or the wait ends. `item` comes back when there is no refetch to
    /// wait for (the cooldown runs, or the keys are static).
    fn wait_for_new_keys<T>(&self, provider: usize, generation: u64, item: T, pending: fn(Box<T>) -> Pending, cx: &mut Context<'_>) -> Result<Decision, T> {
        let (Some(cfg), Some(keys)) = (self.engine.settings.providers.get(provider), self.engine.provider_keys.get(provider)) else {
            return Err(item);
        };
        // A request only asks; the VM that wins the lease fetches (so no VM name here).
        let refresher = crate::lifecycle::Refresher { provider: cfg, keys, me: "" };
        if !refresher.request_kid_refetch(cx.store, cx.now) {
            return Err(item);
        }
        cx.events.push(Event::KidRefetchRequested);
        Ok(Decision::Wait(Wait { provider, generation, deadline: cfg.wait_deadline(cx.now), poll: false, pending: pending(Box::new(item)) }))
    }

    fn view<'c>(&self, cx: &'c Context<'_>) -> Option<&'c View> {
        cx.view(self.profile.provider)
    }

    fn ready(&self, cx: &Context<'_>) -> bool {
        self.view(cx).is_some_and(|v| v.is_ready(self.provider, cx.now))
    }

    fn names(&self, req: &RequestView) -> &Names {
        let [http, https] = &self.party.names;
        if req.is_https() {
            https
        } else {
            http
        }
    }

    /// The AAD label of sessions: bound to the cookie, the profile and the client, so a
    /// session never opens under another route or client by accident.
    fn session_label(&self, cookie: &str) -> String {
        format!("session:{cookie}:{}:{}", self.profile.name, self.profile.client_id)
    }

    fn tx_label(&self, cookie: &str) -> String {
        format!("tx:{cookie}:{}:{}", self.profile.name, self.profile.client_id)
    }

    fn seal(&self, label: &str, plain: &[u8], cx: &mut Context<'_>) -> Option<String> {
        let mut nonce = [0u8; 24];
        cx.entropy.fill(&mut nonce);
        self.party.sealer.seal(label, plain, &nonce)
    }

    fn seal_json<T: serde::Serialize>(&self, label: &str, value: &T, cx: &mut Context<'_>) -> Option<String> {
        self.seal(label, &serde_json::to_vec(value).ok()?, cx)
    }

    fn open_json<T: serde::de::DeserializeOwned>(&self, label: &str, sealed: &str) -> Option<T> {
        let plain = self.party.sealer.open(label, sealed)?;
        serde_json::from_slice(&plain).ok()
    }

    fn seal_session(&self, cookie: &str, session: &Session, cx: &mut Context<'_>) -> Option<String> {
        self.seal(&self.session_label(cookie), &packed::pack(session)?, cx)
    }

    fn open_session(&self, cookie: &str, sealed: &str) -> Option<Session> {
        packed::unpack(&self.party.sealer.open(&self.session_label(cookie), sealed)?)
    }

    /// Only the header hygiene: for pass-through paths, and the start of every forward.
    /// Only headers the request carries are named (each removal is a host call).
    fn strip_only(&self, req: &RequestView) -> Forward {
        let mut fwd = Forward { cookie: self.engine.upstream_cookie(req), ..Forward::default() };
        fwd.remove_headers = self.engine.strip.iter().filter(|h| req.header(h).is_some()).cloned().collect();
        // `X_Groups` is `X-Groups` to CGI-style servers (both become HTTP_X_GROUPS), and
        // Envoy lets underscores through by default: such copies go too.
        for name in req.header_names().filter(|n| n.contains(&b'_')) {
            let name = String::from_utf8_lossy(name);
            let dashed = name.replace('_', "-");
            if self.engine.strip.contains(&dashed) && !fwd.remove_headers.iter().any(|r| *r == name) {
                fwd.remove_headers.push(name.into_owned());
            }
        }
        // Nor does a query token, where they are accepted (`allow_query_token`), used or not.
        if self.profile.allow_query_token {
            fwd.path = crate::http::without_query_param(&req.path, "access_token");
        }
        // A bearer token in the WebSocket subprotocol list never goes upstream, used or not:
        // the one used travels in Authorization; another was never checked.
        let protocols = req.subprotocols();
        if protocols.iter().any(|p| p.starts_with(bearer::K8S_PROTOCOL_PREFIX)) {
            let rest: Vec<&str> = protocols.iter().filter(|p| !p.starts_with(bearer::K8S_PROTOCOL_PREFIX)).map(String::as_str).collect();
            if rest.is_empty() {
                fwd.remove_headers.push("sec-websocket-protocol".into());
            } else {
                fwd.set_headers.push(("sec-websocket-protocol".into(), rest.join(", ")));
            }
        }
        fwd
    }

    /// Forwards an authenticated request: forged identity headers out, ours in.
    fn forward(&self, req: &RequestView, identity: &Identity, credential: Credential, authorization: Authorization, cx: &mut Context<'_>) -> Decision {
        if let Err(why) = identity::check_rules(identity, &self.profile.require) {
            log::info!("oidc-edge: access denied to `{}` for {}: {why}", req.path_only(), self.profile.name);
            cx.events.push(Event::Forbidden);
            let browser = req.client_kind(&self.profile.api_paths) == ClientKind::Browser;
            return Decision::Respond(pages::forbidden(browser, credential == Credential::Bearer));
        }
        let mut fwd = self.strip_only(req);
        match authorization {
            Authorization::ClientsOwn => fwd.remove_headers.retain(|h| h != "authorization"),
            // The client's own single Authorization header, unchanged: leave it in place.
            Authorization::Set(auth) if req.header_values("authorization").as_slice() == [auth.as_bytes()] => {
                fwd.remove_headers.retain(|h| h != "authorization");
            }
            Authorization::Set(auth) => fwd.add_headers.push(("authorization".into(), auth)),
            Authorization::None => {}
        }
        fwd.add_headers.extend(identity::upstream_headers(identity, self.profile, self.engine.several_issuers));
        debug_assert!(fwd.add_headers.iter().all(|(h, _)| self.engine.strip.contains(h)), "added headers must be stripped first");
        Decision::Forward(fwd)
    }

    fn token_client(&self, cx: &mut Context<'_>) -> crate::oidc::token::Client<'_> {
        let mut jti = [0u8; 16];
        cx.entropy.fill(&mut jti);
        crate::oidc::token::Client { profile: self.profile, issuer: &self.provider.issuer, timeout_ms: self.provider.timeout_ms, now: cx.now, jti }
    }

    /// The origin of the request (`https://host:port`).
    fn origin(req: &RequestView) -> String {
        format!("{}://{}", if req.is_https() { "https" } else { "http" }, req.authority)
    }

    /// The path of `url` (a `Referer`) when it is on the request's own origin.
    fn path_on_own_origin<'u>(req: &RequestView, url: &'u str) -> Option<&'u str> {
        let own = Rp::origin(req);
        url.get(..own.len()).filter(|o| o.eq_ignore_ascii_case(&own)).and_then(|_| url.get(own.len()..)).filter(|p| p.starts_with('/'))
    }
}

#[cfg(test)]
mod tests;

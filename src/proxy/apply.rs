//! Carries out a core decision on the current HTTP stream; shared by the HTTP and root contexts.

use std::cell::RefCell;
use std::collections::HashMap;

use crate::flow::{CookieHeader, Decision, Engine, Event, Pending, Wait};
use crate::provider::View;
use crate::time::UnixTime;

use super::host;
use super::metrics::Metrics;

/// Per-VM state shared by the root context and every HTTP context.
pub struct Shared {
    pub engine: Engine,
    /// One view per configured provider.
    pub views: RefCell<Vec<View>>,
    /// Requests waiting for new keys, by HTTP context id.
    pub parked: RefCell<HashMap<u32, Wait>>,
    /// Headers to add to, then to replace in, the upstream's response, by HTTP context id.
    pub response_headers: RefCell<HashMap<u32, ResponseEdits>>,
    pub metrics: RefCell<Metrics>,
    /// Calls of HTTP streams waiting for the root context to dispatch them. The root owns
    /// them so that a stream torn down by its client (a browser moving on) does not cancel
    /// its call: a refresh whose answer is lost would spend the refresh token for nothing,
    /// and the next try would present a used one, which rotating IdPs punish by revoking
    /// the grant.
    pub outbox: RefCell<Vec<Outgoing>>,
    /// This VM's queue that wakes the root context for `outbox` (None: calls go out from
    /// the stream itself, as before the queue could be registered).
    pub wake_queue: std::cell::Cell<Option<u32>>,
}

/// A stream's call, handed to the root context.
pub struct Outgoing {
    pub context_id: u32,
    pub cluster: String,
    pub call: crate::http::HttpCall,
    pub pending: Pending,
}

/// Headers to add to the upstream's response, then headers to replace in it.
pub type ResponseEdits = (Vec<(String, String)>, Vec<(String, String)>);

/// What the stream does next.
pub enum Next {
    /// Go on (upstream).
    Continue,
    /// Answered locally, or paused: nothing more to do now.
    Stop,
    /// Paused for a call; its token and the continuation.
    Called(u32, Pending),
}

impl Shared {
    pub fn record(&self, events: &[Event]) {
        if let Ok(mut m) = self.metrics.try_borrow_mut() {
            for e in events {
                m.record(e);
            }
        }
    }

    /// Applies `decision` to the stream `context_id` (the effective context).
    pub fn apply(&self, context_id: u32, decision: Decision) -> Next {
        match decision {
            Decision::Forward(fwd) => {
                host::mark_checked();
                for name in &fwd.remove_headers {
                    host::remove_request_header(name);
                }
                for (name, value) in &fwd.set_headers {
                    host::set_request_header(name, value);
                }
                for (name, value) in &fwd.add_headers {
                    host::add_request_header(name, value);
                }
                match &fwd.cookie {
                    CookieHeader::Keep => {}
                    CookieHeader::Remove => host::remove_request_header("cookie"),
                    CookieHeader::Replace(v) => host::set_request_header_bytes("cookie", v),
                }
                if let Some(path) = &fwd.path {
                    host::set_request_header(":path", path);
                }
                if !fwd.response_headers.is_empty() || !fwd.response_replace_headers.is_empty() {
                    if let Ok(mut map) = self.response_headers.try_borrow_mut() {
                        map.insert(context_id, (fwd.response_headers, fwd.response_replace_headers));
                    }
                }
                Next::Continue
            }
            Decision::Respond(resp) => {
                host::send_response(&resp);
                Next::Stop
            }
            Decision::Call(call, pending) => {
                let Some(cluster) = self.engine.cluster_for(&pending).map(str::to_string) else {
                    log::error!("oidc-edge: a call of no configured profile; answered as a failed call");
                    let decision = self.never_went_out(pending);
                    return self.apply(context_id, decision);
                };
                if let (Some(queue), Ok(mut outbox)) = (self.wake_queue.get(), self.outbox.try_borrow_mut()) {
                    if host::wake(queue) {
                        outbox.push(Outgoing { context_id, cluster, call, pending });
                        return Next::Stop;
                    }
                }
                match host::dispatch(&cluster, &call) {
                    Ok(token) => Next::Called(token, pending),
                    Err(status) => {
                        log::warn!("oidc-edge: dispatching to cluster `{cluster}` failed: {status:?}");
                        let decision = self.never_went_out(pending);
                        self.apply(context_id, decision)
                    }
                }
            }
            Decision::Wait(wait) => {
                // Another worker may have fetched the keys since this VM's last tick.
                self.sync_views();
                let moved_on = self.views.try_borrow().ok().and_then(|v| v.get(wait.provider).map(|v| v.generation != wait.generation));
                if moved_on == Some(true) {
                    let decision = self.run(|engine, cx| engine.on_keys(wait.pending, cx));
                    return self.apply(context_id, decision);
                }
                if let Ok(mut parked) = self.parked.try_borrow_mut() {
                    parked.insert(context_id, wait);
                }
                Next::Stop
            }
        }
    }

    /// The core's decision for a call that could not be dispatched.
    pub fn never_went_out(&self, pending: Pending) -> Decision {
        self.run(|engine, cx| engine.on_call_response(pending, None, cx))
    }

    /// Runs one core step with the host's time, entropy, store and this VM's views.
    pub fn run(&self, step: impl FnOnce(&Engine, &mut crate::flow::Context<'_>) -> Decision) -> Decision {
        self.run_at(host::now(), step)
    }

    pub fn run_at(&self, now: UnixTime, step: impl FnOnce(&Engine, &mut crate::flow::Context<'_>) -> Decision) -> Decision {
        let views = match self.views.try_borrow() {
            Ok(v) => v,
            Err(_) => return Decision::Respond(crate::pages::not_ready(false, 1)),
        };
        let mut store = host::HostStore;
        let mut entropy = host::HostEntropy;
        let mut cx = crate::flow::Context { now, providers: &views, store: &mut store, entropy: &mut entropy, events: Vec::new() };
        let decision = step(&self.engine, &mut cx);
        let events = std::mem::take(&mut cx.events);
        drop(views);
        self.record(&events);
        decision
    }

    /// Views follow the store on every tick and after this VM's own fetches; a request
    /// reads the store itself (a host call that costs as much as the rest of a cached
    /// check) only while a provider is not ready, so that the first keys fetched by any
    /// worker count at once.
    pub fn sync_views_if_unready(&self, now: UnixTime) {
        let unready = match self.views.try_borrow() {
            Ok(views) => views.iter().zip(&self.engine.settings.providers).any(|(v, cfg)| !v.is_ready(cfg, now)),
            Err(_) => false,
        };
        if unready {
            self.sync_views();
        }
    }

    pub fn sync_views(&self) {
        if let Ok(mut views) = self.views.try_borrow_mut() {
            let store = host::HostStore;
            for ((view, keys), cfg) in views.iter_mut().zip(&self.engine.provider_keys).zip(&self.engine.settings.providers) {
                view.sync(&store, keys, cfg);
            }
        }
    }
}

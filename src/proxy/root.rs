//! The root context: configuration at load, provider refresh and parked requests on ticks.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::time::Duration;

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::ContextType;

use crate::config::Settings;
use crate::entropy::Entropy;
use crate::flow::Engine;
use crate::lifecycle::{Plan, Refresher};
use crate::provider::View;

use super::apply::{Next, Outgoing, Shared};
use super::host::{self, HostEntropy, HostStore, WasiSecrets};
use super::http::Http;
use super::metrics::Metrics;

const TICK: Duration = Duration::from_millis(500);

#[derive(Default)]
pub struct Root {
    /// This root context's id, to act as it again after acting for a stream.
    id: u32,
    shared: Option<Rc<Shared>>,
    /// Names this VM in fetch leases.
    me: String,
    /// Refresh calls in flight: token → (provider index, plan).
    in_flight: HashMap<u32, (usize, Plan)>,
    /// Streams' calls this context dispatched for them: token → (stream context id, continuation).
    stream_calls: HashMap<u32, (u32, crate::flow::Pending)>,
}

impl Root {
    pub fn new(id: u32) -> Root {
        Root { id, ..Root::default() }
    }

    fn refresh_providers(&mut self, shared: &Shared) {
        let now = host::now();
        for (index, (cfg, keys)) in shared.engine.settings.providers.iter().zip(&shared.engine.provider_keys).enumerate() {
            if self.in_flight.values().any(|(i, _)| *i == index) {
                continue;
            }
            let refresher = Refresher { provider: cfg, keys, me: &self.me };
            let Some(plan) = refresher.poll(&mut HostStore, now) else { continue };
            match host::dispatch(&cfg.idp_cluster, &plan.call) {
                Ok(token) => {
                    self.in_flight.insert(token, (index, plan));
                }
                Err(status) => {
                    log::warn!("oidc-edge: dispatching to cluster `{}` failed: {status:?}", cfg.idp_cluster);
                    let audit = refresher.complete(&mut HostStore, &plan, None, now, HostEntropy.u64());
                    report(shared, index, &audit);
                }
            }
        }
    }

    /// Waiting requests: decide those whose provider has new keys, whose wait ran out, or
    /// which look again on every tick (a refresh made by another request).
    fn release_parked(&self, shared: &Shared) {
        let now = host::now();
        let due: Vec<(u32, crate::flow::Wait)> = {
            let Ok(mut parked) = shared.parked.try_borrow_mut() else { return };
            let Ok(views) = shared.views.try_borrow() else { return };
            let ids: Vec<u32> = parked
                .iter()
                .filter(|(_, w)| w.poll || now >= w.deadline || views.get(w.provider).is_some_and(|v| v.generation != w.generation))
                .map(|(id, _)| *id)
                .collect();
            ids.into_iter().filter_map(|id| parked.remove(&id).map(|w| (id, w))).collect()
        };
        for (context_id, wait) in due {
            if hostcalls::set_effective_context(context_id).is_err() {
                continue;
            }
            let decision = shared.run(|engine, cx| engine.on_keys(wait.pending, cx));
            match shared.apply(context_id, decision) {
                Next::Continue => host::resume_request(),
                Next::Stop => {}
                Next::Called(..) => {
                    // A waiting request never calls out again; treat it as a failure.
                    log::error!("oidc-edge: internal error: a released request tried to call out");
                    host::send_response(&crate::pages::login_failed(500, crate::error::Reason::Internal, "An internal error occurred.", "/"));
                }
            }
        }
        self.act_as_root();
    }

    /// Dispatches the calls streams handed over; owned by this context, they outlive a
    /// stream its client abandons.
    fn dispatch_outbox(&mut self, shared: &Shared) {
        let outgoing: Vec<Outgoing> = match shared.outbox.try_borrow_mut() {
            Ok(mut outbox) => outbox.drain(..).collect(),
            Err(_) => return,
        };
        for out in outgoing {
            self.act_as_root();
            match host::dispatch(&out.cluster, &out.call) {
                Ok(token) => {
                    self.stream_calls.insert(token, (out.context_id, out.pending));
                }
                Err(status) => {
                    log::warn!("oidc-edge: dispatching to cluster `{}` failed: {status:?}", out.cluster);
                    let decision = shared.never_went_out(out.pending);
                    self.decide_for(shared, out.context_id, decision);
                }
            }
        }
    }

    /// Carries out a stream's decision from this context, if the stream is still there; the
    /// core's side effects (a refresh result shared with the session's other requests) are
    /// already done either way.
    fn decide_for(&mut self, shared: &Shared, context_id: u32, decision: crate::flow::Decision) {
        if hostcalls::set_effective_context(context_id).is_err() {
            return;
        }
        match shared.apply(context_id, decision) {
            Next::Continue => host::resume_request(),
            Next::Stop => {}
            Next::Called(token, pending) => {
                self.stream_calls.insert(token, (context_id, pending));
            }
        }
        // A call made after this (a decision that called out again, such as userinfo after
        // the code exchange, is queued and woken) must belong to this context, not the stream.
        self.act_as_root();
    }

    /// Host calls made for a stream (`set_effective_context`) stay the stream's until the
    /// callback ends: a call dispatched then would be the stream's, and cancelled with it.
    fn act_as_root(&self) {
        let _ = hostcalls::set_effective_context(self.id);
    }
}

fn report(shared: &Shared, provider: usize, audit: &crate::lifecycle::Audit) {
    if audit.succeeded() {
        log::info!("{}", audit.to_json());
    } else {
        log::warn!("{}", audit.to_json());
    }
    if let Ok(mut m) = shared.metrics.try_borrow_mut() {
        for (name, value) in crate::lifecycle::gauges(provider, audit) {
            m.gauge(&name, value);
        }
        m.count(&crate::lifecycle::counter(provider, audit));
    }
}

impl Context for Root {
    fn on_http_call_response(&mut self, token_id: u32, _num_headers: usize, body_size: usize, _num_trailers: usize) {
        let Some(shared) = self.shared.clone() else { return };
        if let Some((context_id, pending)) = self.stream_calls.remove(&token_id) {
            let response = host::call_response(body_size);
            let decision = shared.run(|engine, cx| engine.on_call_response(pending, Some(&response), cx));
            self.decide_for(&shared, context_id, decision);
            return;
        }
        let Some((index, plan)) = self.in_flight.remove(&token_id) else { return };
        let response = host::call_response(body_size);
        let (Some(cfg), Some(keys)) = (shared.engine.settings.providers.get(index), shared.engine.provider_keys.get(index)) else { return };
        let refresher = Refresher { provider: cfg, keys, me: &self.me };
        let audit = refresher.complete(&mut HostStore, &plan, Some(&response), host::now(), HostEntropy.u64());
        report(&shared, index, &audit);
        shared.sync_views();
        self.release_parked(&shared);
        // A fresh discovery document usually makes the JWKS due at once: don't wait a tick.
        self.refresh_providers(&shared);
    }
}

impl RootContext for Root {
    fn on_configure(&mut self, _size: usize) -> bool {
        let Some(bytes) = host::plugin_configuration() else {
            log::error!("oidc-edge configuration: missing; set `configuration` to the plugin's JSON settings");
            return false;
        };
        let settings = match Settings::from_json_with(&bytes, &WasiSecrets) {
            Ok(s) => s,
            Err(e) => {
                log::error!("{e}");
                return false;
            }
        };
        self.me = format!("{:016x}", HostEntropy.u64());
        let mut seed = [0u8; 16];
        HostEntropy.fill(&mut seed);
        let engine = Engine::new(settings, seed);
        for warning in engine.warnings() {
            log::warn!("{warning}");
        }
        let views = vec![View::default(); engine.settings.providers.len()];
        let shared = Shared {
            engine,
            views: RefCell::new(views),
            parked: RefCell::new(HashMap::new()),
            response_headers: RefCell::new(HashMap::new()),
            metrics: RefCell::new(Metrics::with_batched_defined()),
            outbox: RefCell::new(Vec::new()),
            wake_queue: std::cell::Cell::new(None),
        };
        match host::register_queue(&format!("oidc-edge/calls/{}", self.me)) {
            Some(queue) => shared.wake_queue.set(Some(queue)),
            None => log::warn!("oidc-edge: no shared queue; token calls go out from the request itself and end with it"),
        }
        shared.sync_views();
        self.shared = Some(Rc::new(shared));
        self.set_tick_period(TICK);
        true
    }

    fn on_queue_ready(&mut self, queue_id: u32) {
        let Some(shared) = self.shared.clone() else { return };
        host::drain_queue(queue_id);
        self.dispatch_outbox(&shared);
    }

    fn on_tick(&mut self) {
        let Some(shared) = self.shared.clone() else { return };
        if let Ok(mut metrics) = shared.metrics.try_borrow_mut() {
            metrics.flush();
        }
        shared.sync_views();
        self.refresh_providers(&shared);
        self.release_parked(&shared);
    }

    fn create_http_context(&self, context_id: u32) -> Option<Box<dyn HttpContext>> {
        let shared = self.shared.clone()?;
        Some(Box::new(Http::new(context_id, shared)))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

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

use super::apply::{Next, Shared};
use super::host::{self, HostEntropy, HostStore, WasiSecrets};
use super::http::Http;
use super::metrics::Metrics;

const TICK: Duration = Duration::from_millis(500);

#[derive(Default)]
pub struct Root {
    shared: Option<Rc<Shared>>,
    /// Names this VM in fetch leases.
    me: String,
    /// Refresh calls in flight: token → (provider index, plan).
    in_flight: HashMap<u32, (usize, Plan)>,
}

impl Root {
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
                    host::send_response(&crate::pages::login_failed(500, crate::error::Reason::Internal, "An internal error occurred."));
                }
            }
        }
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
        let Some((index, plan)) = self.in_flight.remove(&token_id) else { return };
        let Some(shared) = self.shared.clone() else { return };
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
        let views = vec![View::default(); engine.settings.providers.len()];
        let shared = Shared {
            engine,
            views: RefCell::new(views),
            parked: RefCell::new(HashMap::new()),
            response_headers: RefCell::new(HashMap::new()),
            metrics: RefCell::new(Metrics::default()),
        };
        shared.sync_views();
        self.shared = Some(Rc::new(shared));
        self.set_tick_period(TICK);
        true
    }

    fn on_tick(&mut self) {
        let Some(shared) = self.shared.clone() else { return };
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

//! The root context: configuration at load, provider refresh on ticks, and a factory of HTTP contexts.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::time::Duration;

use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::ContextType;

use crate::config::Settings;
use crate::entropy::Entropy;
use crate::flow::Engine;
use crate::jwks::Rotation;
use crate::lifecycle::{Plan, Refresher};
use crate::provider::View;

use super::host::{self, HostEntropy, HostStore};
use super::http::Http;

const TICK: Duration = Duration::from_millis(500);
const KID_REFETCH_COOLDOWN: u64 = 30;

/// State shared by the root context and every HTTP context of this VM.
pub struct Shared {
    pub engine: Engine,
    pub view: RefCell<View>,
}

#[derive(Default)]
pub struct Root {
    shared: Option<Rc<Shared>>,
    /// Names this VM in the fetch lease.
    me: String,
    in_flight: HashMap<u32, Plan>,
}

impl Root {
    fn refresher<'a>(&'a self, shared: &'a Shared) -> Refresher<'a> {
        Refresher {
            settings: &shared.engine.settings,
            keys: &shared.engine.keys,
            me: &self.me,
            rotation: Rotation::Replace,
            kid_refetch_cooldown: KID_REFETCH_COOLDOWN,
        }
    }
}

impl Context for Root {
    fn on_http_call_response(&mut self, token_id: u32, _num_headers: usize, body_size: usize, _num_trailers: usize) {
        let Some(plan) = self.in_flight.remove(&token_id) else { return };
        let Some(shared) = self.shared.clone() else { return };
        let response = host::call_response(body_size);
        let jitter = HostEntropy.u64();
        let audit = self.refresher(&shared).complete(&mut HostStore, &plan, Some(&response), host::now(), jitter);
        if audit.succeeded() {
            log::info!("{}", audit.to_json());
        } else {
            log::warn!("{}", audit.to_json());
        }
        shared.view.borrow_mut().sync(&HostStore, &shared.engine.keys);
    }
}

impl RootContext for Root {
    fn on_configure(&mut self, _size: usize) -> bool {
        let Some(bytes) = host::plugin_configuration() else {
            log::error!("oidc-edge configuration: missing; set `configuration` to the plugin's JSON settings");
            return false;
        };
        let settings = match Settings::from_json(&bytes) {
            Ok(s) => s,
            Err(e) => {
                log::error!("{e}");
                return false;
            }
        };
        let namespace = crate::provider::namespace(&settings);
        self.me = format!("{:016x}", HostEntropy.u64());
        let engine = Engine::new(settings, &namespace);
        let mut view = View::default();
        view.sync(&HostStore, &engine.keys);
        self.shared = Some(Rc::new(Shared { engine, view: RefCell::new(view) }));
        self.set_tick_period(TICK);
        true
    }

    fn on_tick(&mut self) {
        let Some(shared) = self.shared.clone() else { return };
        shared.view.borrow_mut().sync(&HostStore, &shared.engine.keys);
        let now = host::now();
        let Some(plan) = self.refresher(&shared).poll(&mut HostStore, now) else { return };
        match host::dispatch(&shared.engine.settings.idp_cluster, &plan.call) {
            Ok(token) => {
                self.in_flight.insert(token, plan);
            }
            Err(status) => {
                log::warn!("oidc-edge: dispatching to cluster `{}` failed: {status:?}", shared.engine.settings.idp_cluster);
                let audit = self.refresher(&shared).complete(&mut HostStore, &plan, None, now, HostEntropy.u64());
                log::warn!("{}", audit.to_json());
            }
        }
    }

    fn create_http_context(&self, context_id: u32) -> Option<Box<dyn HttpContext>> {
        let shared = self.shared.clone()?;
        Some(Box::new(Http::new(context_id, shared)))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

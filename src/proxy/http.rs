//! The HTTP context: request headers in, the core's decision applied; call answers handed back.

use std::rc::Rc;

use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::Action;

use crate::flow::{Context as FlowContext, CookieHeader, Decision, Event, Pending};
use crate::request::RequestView;

use super::host::{self, HostEntropy, HostStore};
use super::root::Shared;

pub struct Http {
    shared: Rc<Shared>,
    pending: Option<(u32, Pending)>,
    /// Set-Cookie values to add to the upstream's response.
    response_cookies: Vec<String>,
}

impl Http {
    pub fn new(_context_id: u32, shared: Rc<Shared>) -> Http {
        Http { shared, pending: None, response_cookies: Vec::new() }
    }

    /// Applies a decision. Returns whether the request may continue now.
    fn apply(&mut self, decision: Decision) -> bool {
        match decision {
            Decision::Forward(fwd) => {
                for name in &fwd.remove_headers {
                    host::remove_request_header(name);
                }
                for (name, value) in &fwd.set_headers {
                    host::set_request_header(name, value);
                }
                match &fwd.cookie {
                    CookieHeader::Keep => {}
                    CookieHeader::Remove => host::remove_request_header("cookie"),
                    CookieHeader::Replace(v) => host::set_request_header("cookie", v),
                }
                true
            }
            Decision::Respond(resp) => {
                host::send_response(&resp);
                false
            }
            Decision::Call(call, pending) => match host::dispatch(&self.shared.engine.settings.idp_cluster, &call) {
                Ok(token) => {
                    self.pending = Some((token, pending));
                    false
                }
                Err(status) => {
                    log::warn!("oidc-edge: dispatching to cluster `{}` failed: {status:?}", self.shared.engine.settings.idp_cluster);
                    let next = self.run(|engine, cx| engine.on_call_response(pending, None, cx));
                    self.apply(next)
                }
            },
        }
    }

    fn run(&self, step: impl FnOnce(&crate::flow::Engine, &mut FlowContext<'_>) -> Decision) -> Decision {
        let view = self.shared.view.borrow();
        let mut store = HostStore;
        let mut entropy = HostEntropy;
        let mut cx = FlowContext { now: host::now(), provider: &view, store: &mut store, entropy: &mut entropy, events: Vec::new() };
        let decision = step(&self.shared.engine, &mut cx);
        record(&cx.events);
        decision
    }
}

fn record(_events: &[Event]) {}

impl Context for Http {
    fn on_http_call_response(&mut self, token_id: u32, _num_headers: usize, body_size: usize, _num_trailers: usize) {
        let Some((token, pending)) = self.pending.take() else { return };
        if token != token_id {
            return;
        }
        let response = host::call_response(body_size);
        let decision = self.run(|engine, cx| engine.on_call_response(pending, Some(&response), cx));
        if self.apply(decision) {
            host::resume_request();
        }
    }
}

impl HttpContext for Http {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        self.shared.view.borrow_mut().sync(&HostStore, &self.shared.engine.keys);
        let request = RequestView::from_headers(host::request_headers());
        let decision = self.run(|engine, cx| engine.on_request(&request, cx));
        if self.apply(decision) {
            Action::Continue
        } else {
            Action::Pause
        }
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        for cookie in self.response_cookies.drain(..) {
            host::add_response_header("set-cookie", &cookie);
        }
        Action::Continue
    }
}

//! The HTTP context: request headers in, the core's decision applied; call answers handed back.

use std::rc::Rc;

use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::Action;

use crate::flow::Pending;
use crate::request::RequestView;

use super::apply::{Next, Shared};
use super::host;

pub struct Http {
    id: u32,
    shared: Rc<Shared>,
    pending: Option<(u32, Pending)>,
}

impl Http {
    pub fn new(id: u32, shared: Rc<Shared>) -> Http {
        Http { id, shared, pending: None }
    }

    fn proceed(&mut self, next: Next) -> bool {
        match next {
            Next::Continue => true,
            Next::Stop => false,
            Next::Called(token, pending) => {
                self.pending = Some((token, pending));
                false
            }
        }
    }
}

impl Context for Http {
    fn on_http_call_response(&mut self, token_id: u32, _num_headers: usize, body_size: usize, _num_trailers: usize) {
        let Some((token, pending)) = self.pending.take() else { return };
        if token != token_id {
            return;
        }
        let response = host::call_response(body_size);
        let decision = self.shared.run(|engine, cx| engine.on_call_response(pending, Some(&response), cx));
        let next = self.shared.apply(self.id, decision);
        if self.proceed(next) {
            host::resume_request();
        }
    }
}

/// Per-stream clean-up when the SDK drops the context (`proxy_on_delete`), so the module
/// need not export `proxy_on_done` (see tools/trim_exports.py).
impl Drop for Http {
    fn drop(&mut self) {
        if let Ok(mut parked) = self.shared.parked.try_borrow_mut() {
            parked.remove(&self.id);
        }
        if let Ok(mut headers) = self.shared.response_headers.try_borrow_mut() {
            headers.remove(&self.id);
        }
    }
}

impl HttpContext for Http {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        let now = host::now();
        self.shared.sync_views_if_unready(now);
        let request = RequestView::from_serialized_map(host::request_headers_serialized());
        let decision = self.shared.run_at(now, |engine, cx| engine.on_request(&request, cx));
        let next = self.shared.apply(self.id, decision);
        if self.proceed(next) {
            Action::Continue
        } else {
            Action::Pause
        }
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        let (add, replace) = self.shared.response_headers.try_borrow_mut().ok().and_then(|mut m| m.remove(&self.id)).unwrap_or_default();
        for (name, value) in add {
            host::add_response_header(&name, &value);
        }
        for (name, value) in replace {
            host::set_response_header(&name, &value);
        }
        Action::Continue
    }
}

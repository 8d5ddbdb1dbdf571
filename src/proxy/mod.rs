//! The proxy-wasm shell: turns Envoy callbacks into core inputs and core decisions into host calls.
//!
//! Nothing here decides anything about authentication; see `flow` and `lifecycle`.

mod apply;
mod host;
mod http;
mod metrics;
mod root;

use proxy_wasm::types::LogLevel;

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|id| -> Box<dyn proxy_wasm::traits::RootContext> { Box::new(root::Root::new(id)) });
}}

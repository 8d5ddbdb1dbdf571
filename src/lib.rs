//! oidc-edge: an OpenID Connect relying party that runs inside Envoy as a proxy-wasm filter.
//!
//! Everything outside `proxy` is the host-independent core: it is handed the time,
//! random bytes, the request and the IdP's answers, and it returns decisions. The
//! `proxy` module is the only one that talks to Envoy and is only built for wasm32.

// A panic traps the VM and turns a worker into a 503 machine: the core must not
// panic on anything a client or an IdP controls. Tests may.
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing,
        clippy::arithmetic_side_effects,
        clippy::unreachable,
        clippy::todo,
        clippy::unimplemented
    )
)]

#![cfg_attr(test, allow(clippy::type_complexity))]

pub mod b64;
pub mod config;
pub mod entropy;
pub mod error;
pub mod flow;
pub mod http;
pub mod jwks;
pub mod jwt;
pub mod lifecycle;
pub mod oidc;
pub mod pages;
pub mod provider;
pub mod request;
pub mod session;
pub mod store;
pub mod time;

#[cfg(target_arch = "wasm32")]
mod proxy;

//! The OpenID Connect protocol pieces: discovery, the authorization request, the callback, the token exchange.

pub mod authorize;
pub mod callback;
pub mod client_key;
pub mod discovery;
pub mod token;

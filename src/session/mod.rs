//! Sessions and login transactions, and how they travel: sealed (`seal`) in cookies (`cookies`).

pub mod cookies;
pub mod packed;
pub mod seal;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::time::UnixTime;

/// What the filter remembers about a logged-in browser. It lives only in the sealed
/// cookie: no server-side state, so any worker and any replica can serve the user.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Session {
    pub sub: String,
    pub iss: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    pub id_token: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    /// Claims userinfo added at login (those the ID token lacks).
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub extra_claims: Map<String, Value>,
    /// When the forwarded token stops being valid.
    pub token_exp: UnixTime,
    pub created: UnixTime,
    /// The hard end of the session (`session_lifetime` after login).
    pub expires: UnixTime,
}

/// A login in flight: what the callback needs to finish it (RFC 9700 2.1: state, nonce, PKCE).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transaction {
    pub state: String,
    pub nonce: String,
    pub code_verifier: String,
    /// Where to go after login: a same-origin path, checked when stored and when used.
    pub return_to: String,
    pub redirect_uri: String,
    pub created: UnixTime,
    /// The login was started by a request from this site or the user (`Sec-Fetch-Site`).
    #[serde(default)]
    pub started_here: bool,
}

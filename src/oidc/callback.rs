//! The authorization response at the redirect URI, and the single-use record of states already redeemed.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::b64;
use crate::http::Query;
use crate::store::SharedStore;
use crate::time::UnixTime;

/// The parameters of an authorization response (RFC 6749 4.1.2 / 4.1.2.1, RFC 9207).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Params {
    pub code: Option<String>,
    pub state: Option<String>,
    pub iss: Option<String>,
    pub error: Option<String>,
    pub error_description: Option<String>,
    /// `code`, `state`, `iss` or `error` came more than once (RFC 6749 3.1: they must not).
    /// A repeated `iss` must not pass as an absent one.
    pub repeated: bool,
}

const MAX_PARAM_LEN: usize = 4096;

impl Params {
    pub fn parse(query: &str) -> Params {
        let q = Query::parse(query);
        let get = |name: &str| q.single(name).filter(|v| !v.is_empty() && v.len() <= MAX_PARAM_LEN).map(str::to_string);
        Params {
            code: get("code"),
            state: get("state"),
            iss: get("iss"),
            error: get("error").map(|e| sanitize_code(&e)),
            error_description: get("error_description").map(|d| d.chars().take(300).collect()),
            repeated: ["code", "state", "iss", "error"].iter().any(|n| q.count(n) > 1),
        }
    }
}

/// IdP error codes are ASCII tokens (RFC 6749 4.1.2.1); anything else is replaced so it
/// can go into logs and pages as is.
fn sanitize_code(code: &str) -> String {
    if code.len() <= 64 && code.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.') {
        code.to_string()
    } else {
        "invalid_error_code".to_string()
    }
}

/// The short id that names the transaction cookie of a state: several logins can be in
/// flight in one browser (tabs) without overwriting each other.
pub fn state_id(state: &str) -> String {
    let digest = Sha256::digest(state.as_bytes());
    b64::url_encode(digest.get(..9).unwrap_or_default())
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct UsedStates {
    /// (state id, time after which the record can go).
    entries: Vec<(String, UnixTime)>,
}

/// How many redeemed states are remembered: enough for every login within `login_timeout`
/// at any realistic rate; the oldest go first beyond that.
const MAX_USED_STATES: usize = 4096;

/// Records `state` as redeemed, proxy-wide. Returns false when it was already redeemed:
/// the callback is then a replay (RFC 9700 4.7, state is single use).
pub fn redeem(store: &mut dyn SharedStore, key: &str, state: &str, now: UnixTime, keep_until: UnixTime) -> bool {
    redeem_or_recorded(store, key, state, now, keep_until).is_ok()
}

/// `redeem`, telling on refusal until when `state` was already recorded (`None`: the
/// record could not be written, under persistent contention).
pub fn redeem_or_recorded(store: &mut dyn SharedStore, key: &str, state: &str, now: UnixTime, keep_until: UnixTime) -> Result<(), Option<UnixTime>> {
    redeem_bounded(store, key, state, now, keep_until, MAX_USED_STATES)
}

fn redeem_bounded(store: &mut dyn SharedStore, key: &str, state: &str, now: UnixTime, keep_until: UnixTime, bound: usize) -> Result<(), Option<UnixTime>> {
    let id = state_id(state);
    let mut recorded = None;
    // Persistent contention refuses rather than risk accepting a replay.
    let written = update_used(store, key, now, |used| {
        if let Some((_, until)) = used.entries.iter().find(|(s, _)| s == &id) {
            recorded = Some(*until);
            return Some(false);
        }
        used.push_bounded(id.clone(), keep_until, bound);
        None
    });
    if written == Some(true) {
        Ok(())
    } else {
        Err(recorded)
    }
}

/// Records `state` until at least `keep_until`, whether it was recorded before or not
/// (a lease that becomes a longer-lived mark). Best effort under contention.
pub fn record_until(store: &mut dyn SharedStore, key: &str, state: &str, now: UnixTime, keep_until: UnixTime) {
    let id = state_id(state);
    let _ = update_used(store, key, now, |used| {
        if let Some(entry) = used.entries.iter_mut().find(|(s, _)| s == &id) {
            entry.1 = entry.1.max(keep_until);
        } else {
            used.push_bounded(id.clone(), keep_until, MAX_USED_STATES);
        }
        None
    });
}

impl UsedStates {
    /// Adds a record, dropping the oldest beyond `bound`.
    fn push_bounded(&mut self, id: String, keep_until: UnixTime, bound: usize) {
        if self.entries.len() >= bound {
            let excess = self.entries.len().saturating_sub(bound).saturating_add(1);
            self.entries.drain(..excess);
        }
        self.entries.push((id, keep_until));
    }
}

/// Read-modify-write of the used-states record with compare-and-swap, a few attempts.
/// `change` sees the record without expired entries; `Some(answer)` ends without writing.
/// Returns `Some(true)` once written, `Some(answer)` when `change` stopped, `None` when
/// every attempt lost the race or the record could not be written.
fn update_used(store: &mut dyn SharedStore, key: &str, now: UnixTime, mut change: impl FnMut(&mut UsedStates) -> Option<bool>) -> Option<bool> {
    for _ in 0..8 {
        let (mut used, cas) = match store.get(key) {
            Some((bytes, cas)) => (serde_json::from_slice::<UsedStates>(&bytes).unwrap_or_default(), Some(cas)),
            None => (UsedStates::default(), None),
        };
        // A record past its time is gone, whether or not it was pruned yet.
        used.entries.retain(|(_, until)| *until > now);
        if let Some(answer) = change(&mut used) {
            return Some(answer);
        }
        let bytes = serde_json::to_vec(&used).ok()?;
        if store.set(key, &bytes, cas).is_ok() {
            return Some(true);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemoryStore;

    #[test]
    fn params() {
        let p = Params::parse("code=abc&state=s1&iss=https%3A%2F%2Fidp");
        assert_eq!((p.code.as_deref(), p.state.as_deref(), p.iss.as_deref()), (Some("abc"), Some("s1"), Some("https://idp")));
        let p = Params::parse("error=access_denied&error_description=User%20said%20no&state=s");
        assert_eq!(p.error.as_deref(), Some("access_denied"));
        assert_eq!(p.error_description.as_deref(), Some("User said no"));
        let p = Params::parse("error=%3Cscript%3E&state=s&state=t&code=");
        assert_eq!(p.error.as_deref(), Some("invalid_error_code"));
        assert_eq!(p.state, None, "repeated state is no state");
        assert_eq!(p.code, None, "empty code is no code");
    }

    #[test]
    fn states_are_single_use() {
        let mut store = MemoryStore::default();
        assert!(redeem(&mut store, "k", "s1", 0, 600));
        assert!(!redeem(&mut store, "k", "s1", 1, 600));
        assert!(redeem(&mut store, "k", "s2", 1, 600));
        // Expired records are pruned, the store stays bounded.
        for i in 0..100 {
            assert!(redeem_bounded(&mut store, "k", &format!("x{i}"), 700, 1300, 64).is_ok());
        }
        let (bytes, _) = store.get("k").unwrap();
        let used: UsedStates = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(used.entries.len(), 64);
        assert_eq!(redeem_bounded(&mut store, "k", "x99", 701, 1300, 64), Err(Some(1300)), "recent ones are still remembered, with their time");
    }

    #[test]
    fn record_until_extends_a_record() {
        let mut store = MemoryStore::default();
        assert!(redeem(&mut store, "k", "rt", 100, 110));
        record_until(&mut store, "k", "rt", 105, 500);
        assert!(!redeem(&mut store, "k", "rt", 200, 210), "still recorded past its first expiry");
        assert!(redeem(&mut store, "k", "rt", 500, 510), "gone once the extended time has passed");
        record_until(&mut store, "k", "new", 500, 600);
        assert!(!redeem(&mut store, "k", "new", 501, 510));
        record_until(&mut store, "k", "new", 502, 550);
        assert!(!redeem(&mut store, "k", "new", 560, 570), "never shortened");
    }
}

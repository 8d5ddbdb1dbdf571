//! Discovery and JWKS refresh: when to fetch, who fetches (a shared lease), and what a result changes.
//!
//! Every VM calls `poll` on its ticks; at most one of them holds the lease and fetches,
//! the others read the snapshot it writes. Failures keep the last good state and are
//! retried with exponential backoff and jitter.

use serde::{Deserialize, Serialize};

use crate::config::ProviderConfig;
use crate::http::{CallResponse, Endpoint, HttpCall};
use crate::jwks;
use crate::oidc::discovery;
use crate::provider::{self, Keys, Snapshot};
use crate::store::SharedStore;
use crate::time::{after, UnixTime};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Target {
    Discovery,
    Jwks,
}

/// A fetch this VM won the lease for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub target: Target,
    pub call: HttpCall,
    pub trigger: &'static str,
}

/// One structured audit line per refresh attempt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Audit {
    pub event: &'static str,
    pub target: Target,
    pub endpoint: String,
    pub trigger: &'static str,
    pub outcome: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub keys_added: Vec<String>,
    pub keys_removed: Vec<String>,
    pub keys_in_force: usize,
    pub consecutive_failures: u32,
    pub next_attempt_at: UnixTime,
    pub time: UnixTime,
}

impl Audit {
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    pub fn succeeded(&self) -> bool {
        self.outcome == "success"
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Lease {
    holder: String,
    until: UnixTime,
}

/// The refresh policy of one provider, as seen by one VM (`me` names it in the lease).
pub struct Refresher<'a> {
    pub provider: &'a ProviderConfig,
    pub keys: &'a Keys,
    pub me: &'a str,
}

impl Refresher<'_> {
    /// Decides whether this VM should fetch something now, and takes the lease if so.
    pub fn poll(&self, store: &mut dyn SharedStore, now: UnixTime) -> Option<Plan> {
        let (snap, _) = provider::read(store, self.keys);
        self.due(&snap, now)?;
        if !self.acquire(store, now) {
            return None;
        }
        // Another VM may have completed this very fetch between the read above and the
        // lease: decide again from what is stored now that nobody else can be fetching.
        let (snap, _) = provider::read(store, self.keys);
        let Some((target, trigger)) = self.due(&snap, now) else {
            self.release(store);
            return None;
        };
        let endpoint = match target {
            Target::Discovery => self.provider.discovery.clone()?,
            Target::Jwks => self.jwks_endpoint(&snap)?,
        };
        if trigger == "unknown_kid" {
            self.stamp(store, |s| s.kid_refetch_started_at = now);
        }
        Some(Plan { target, call: HttpCall::get(endpoint, self.provider.timeout_ms), trigger })
    }

    /// The JWKS location: configured, else from discovery. `None` with static keys.
    fn jwks_endpoint(&self, snap: &Snapshot) -> Option<Endpoint> {
        if self.provider.static_keys.is_some() {
            return None;
        }
        self.provider.endpoints.jwks_uri.clone().or_else(|| snap.discovery.as_ref().map(|d| d.jwks_uri.clone()))
    }

    fn due(&self, snap: &Snapshot, now: UnixTime) -> Option<(Target, &'static str)> {
        if self.provider.discovery.is_some() && now >= snap.next_discovery_at {
            let trigger = match (snap.discovery.is_some(), snap.discovery_failures) {
                (false, 0) => "initial",
                (_, f) if f > 0 => "retry",
                _ => "scheduled",
            };
            return Some((Target::Discovery, trigger));
        }
        self.jwks_endpoint(snap)?;
        if now >= snap.next_jwks_at {
            let trigger = match (snap.keys.is_empty(), snap.jwks_failures) {
                (true, 0) => "initial",
                (_, f) if f > 0 => "retry",
                _ => "scheduled",
            };
            return Some((Target::Jwks, trigger));
        }
        if snap.kid_refetch_requested_at > snap.kid_refetch_started_at
            && now >= after(snap.kid_refetch_started_at, self.provider.kid_refetch_cooldown)
        {
            return Some((Target::Jwks, "unknown_kid"));
        }
        None
    }

    /// Applies a fetch result (or `None` when the call could not even be dispatched),
    /// releases the lease and returns the audit line.
    pub fn complete(&self, store: &mut dyn SharedStore, plan: &Plan, response: Option<&CallResponse>, now: UnixTime, jitter: u64) -> Audit {
        let outcome = match response {
            None => Err("the call could not be dispatched (check `idp_cluster`)".to_string()),
            Some(r) => check_response(r),
        };
        let mut audit = Audit {
            event: "oidc_edge.refresh",
            target: plan.target,
            endpoint: plan.call.endpoint.url(),
            trigger: plan.trigger,
            outcome: "failure",
            reason: None,
            keys_added: vec![],
            keys_removed: vec![],
            keys_in_force: 0,
            consecutive_failures: 0,
            next_attempt_at: 0,
            time: now,
        };
        let parsed = outcome.and_then(|body| match plan.target {
            Target::Discovery => discovery::parse(body, &self.provider.issuer).map(|d| Parsed::Discovery(Box::new(d))),
            Target::Jwks => jwks::parse_jwks(body).map(|(set, _)| Parsed::Jwks(set)),
        });
        let provider = self.provider;
        match parsed {
            Ok(result) => {
                self.update(store, |s| {
                    s.last_attempt_at = now;
                    s.last_success_at = now;
                    match &result {
                        Parsed::Discovery(d) => {
                            let jwks_moved = s.discovery.as_ref().map(|old| old.jwks_uri != d.jwks_uri).unwrap_or(true);
                            if jwks_moved || s.keys.is_empty() {
                                s.next_jwks_at = now;
                            }
                            s.discovery = Some(d.as_ref().clone());
                            s.discovery_fetched_at = now;
                            s.discovery_failures = 0;
                            s.next_discovery_at = after(now, provider.discovery_refresh_interval);
                        }
                        Parsed::Jwks(set) => {
                            let merged = jwks::merge(&s.keys, set, provider.rotation, now);
                            s.keys = merged.keys;
                            s.jwks_fetched_at = now;
                            s.jwks_failures = 0;
                            s.next_jwks_at = after(now, provider.jwks_refresh_interval);
                            audit.keys_added = merged.added;
                            audit.keys_removed = merged.removed;
                        }
                    }
                    audit.keys_in_force = s.keys.len();
                    audit.next_attempt_at = match plan.target {
                        Target::Discovery => s.next_discovery_at,
                        Target::Jwks => s.next_jwks_at,
                    };
                });
                audit.outcome = "success";
            }
            Err(reason) => {
                self.update(store, |s| {
                    s.last_attempt_at = now;
                    // Keys past `max_key_staleness` refuse tokens as if none were loaded:
                    // retry at the quick pace then, and never later than the moment they go
                    // stale, or a long warm-cache backoff would keep refusing tokens for
                    // minutes after the IdP is back.
                    let stale_at = after(s.jwks_fetched_at, provider.max_key_staleness);
                    let loaded = s.discovery.is_some() && !s.keys.is_empty() && now < stale_at;
                    let (failures, next) = match plan.target {
                        Target::Discovery => (&mut s.discovery_failures, &mut s.next_discovery_at),
                        Target::Jwks => (&mut s.jwks_failures, &mut s.next_jwks_at),
                    };
                    *failures = failures.saturating_add(1);
                    *next = after(now, backoff(*failures, loaded, jitter));
                    if loaded && plan.target == Target::Jwks {
                        *next = (*next).min(stale_at);
                    }
                    audit.consecutive_failures = *failures;
                    audit.next_attempt_at = *next;
                    audit.keys_in_force = s.keys.len();
                });
                audit.reason = Some(reason);
            }
        }
        self.release(store);
        audit
    }

    /// Asks for a JWKS refetch because a plausible token named an unknown `kid`. Returns
    /// false while the cooldown since the last such refetch runs: the caller then rejects.
    /// Static keys have nothing to refetch: the caller rejects at once.
    pub fn request_kid_refetch(&self, store: &mut dyn SharedStore, now: UnixTime) -> bool {
        if self.provider.static_keys.is_some() {
            return false;
        }
        let (snap, _) = provider::read(store, self.keys);
        if snap.kid_refetch_started_at != 0 && now < after(snap.kid_refetch_started_at, self.provider.kid_refetch_cooldown) {
            // A refetch still in flight (started, not yet answered, lease not expired)
            // may bring this kid too: wait for it with the others instead of refusing.
            let in_flight = snap.kid_refetch_started_at > snap.last_attempt_at && now < after(snap.kid_refetch_started_at, self.lease_secs());
            return in_flight;
        }
        if snap.kid_refetch_requested_at <= snap.kid_refetch_started_at {
            self.stamp(store, |s| s.kid_refetch_requested_at = now.max(s.kid_refetch_started_at.saturating_add(1)));
        }
        true
    }

    /// Read-modify-write of the snapshot under CAS, then a generation bump: views rebuild and
    /// requests waiting for keys are decided again.
    fn update(&self, store: &mut dyn SharedStore, change: impl FnMut(&mut Snapshot)) {
        if self.write(store, change) {
            provider::bump_generation(store, self.keys);
        }
    }

    /// The unknown-`kid` refetch stamps: read from the store by `poll` and
    /// `request_kid_refetch`, never by a view, so the generation stays. A bump here would
    /// wake a request waiting for the refetch at the next tick, before the keys arrive.
    fn stamp(&self, store: &mut dyn SharedStore, change: impl FnMut(&mut Snapshot)) {
        self.write(store, change);
    }

    fn write(&self, store: &mut dyn SharedStore, mut change: impl FnMut(&mut Snapshot)) -> bool {
        for _ in 0..8 {
            let (mut snap, cas) = provider::read(store, self.keys);
            change(&mut snap);
            let Ok(bytes) = serde_json::to_vec(&snap) else { return false };
            if store.set(&self.keys.snapshot, &bytes, cas).is_ok() {
                return true;
            }
        }
        false
    }

    fn lease_secs(&self) -> u64 {
        (self.provider.timeout_ms / 1000).saturating_add(5)
    }

    fn acquire(&self, store: &mut dyn SharedStore, now: UnixTime) -> bool {
        let current = store.get(&self.keys.lease);
        let cas = current.as_ref().map(|(_, c)| *c);
        if let Some((bytes, _)) = &current {
            if let Ok(lease) = serde_json::from_slice::<Lease>(bytes) {
                if lease.until > now && lease.holder != self.me {
                    return false;
                }
            }
        }
        let lease = Lease { holder: self.me.to_string(), until: after(now, self.lease_secs()) };
        let Ok(bytes) = serde_json::to_vec(&lease) else { return false };
        store.set(&self.keys.lease, &bytes, cas).is_ok()
    }

    fn release(&self, store: &mut dyn SharedStore) {
        if let Some((bytes, cas)) = store.get(&self.keys.lease) {
            if serde_json::from_slice::<Lease>(&bytes).map(|l| l.holder == self.me).unwrap_or(false) {
                let free = Lease { holder: String::new(), until: 0 };
                if let Ok(b) = serde_json::to_vec(&free) {
                    let _ = store.set(&self.keys.lease, &b, Some(cas));
                }
            }
        }
    }
}

enum Parsed {
    Discovery(Box<discovery::Discovery>),
    Jwks(jwks::KeySet),
}

fn check_response(r: &CallResponse) -> Result<&[u8], String> {
    if r.status != 200 {
        let hint = match r.status {
            503 => " (Envoy could not connect, or the IdP is unavailable)",
            504 => " (timed out)",
            _ => "",
        };
        return Err(format!("HTTP status {}{hint}", r.status));
    }
    Ok(&r.body)
}

/// Exponential backoff with jitter in [d/2, d]: quick retries while nothing is loaded
/// (requests are being turned away), gentler ones while a good set is in force.
pub fn backoff(failures: u32, loaded: bool, jitter: u64) -> u64 {
    let cap: u64 = if loaded { 300 } else { 30 };
    let exp = 1u64.checked_shl(failures.min(16)).unwrap_or(u64::MAX);
    let d = exp.min(cap).max(2);
    let half = d / 2;
    half.saturating_add(jitter.checked_rem(half.saturating_add(1)).unwrap_or(0))
}

fn metric_prefix(provider: usize, target: Target) -> String {
    let what = match target {
        Target::Discovery => "discovery",
        Target::Jwks => "jwks",
    };
    if provider == 0 {
        format!("oidc_edge.{what}")
    } else {
        format!("oidc_edge.provider{provider}.{what}")
    }
}

/// The counter an attempt increments: `oidc_edge.jwks.fetch_success` / `fetch_failure`
/// (`oidc_edge.provider<N>.` for providers after the first).
pub fn counter(provider: usize, audit: &Audit) -> String {
    let outcome = if audit.succeeded() { "fetch_success" } else { "fetch_failure" };
    format!("{}.{outcome}", metric_prefix(provider, audit.target))
}

/// The gauges an attempt sets: last attempt, last success (Unix seconds), keys in force.
/// "Last attempt" moving on while "last success" stays behind shows a failing refresh.
pub fn gauges(provider: usize, audit: &Audit) -> Vec<(String, u64)> {
    let prefix = metric_prefix(provider, audit.target);
    let mut out = vec![(format!("{prefix}.last_attempt_unix"), audit.time)];
    if audit.succeeded() {
        out.push((format!("{prefix}.last_success_unix"), audit.time));
    }
    if audit.target == Target::Jwks {
        out.push((format!("{prefix}.keys"), u64::try_from(audit.keys_in_force).unwrap_or(u64::MAX)));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemoryStore;
    use serde_json::json;

    fn settings() -> ProviderConfig {
        crate::config::Settings::from_json(
            json!({
                "issuer": "https://idp.example.com",
                "idp_cluster": "idp",
                "client_id": "app",
                "client_secret": "s",
                "cookie_secret": crate::b64::std_encode(&[1u8; 32]),
            })
            .to_string()
            .as_bytes(),
        )
        .unwrap()
        .providers
        .remove(0)
    }

    fn discovery_body() -> Vec<u8> {
        json!({
            "issuer": "https://idp.example.com",
            "authorization_endpoint": "https://idp.example.com/auth",
            "token_endpoint": "https://idp.example.com/token",
            "jwks_uri": "https://idp.example.com/jwks",
        })
        .to_string()
        .into_bytes()
    }

    fn jwks_body(kids: &[&str]) -> Vec<u8> {
        let keys: Vec<_> = kids
            .iter()
            .map(|k| json!({"kty":"RSA","kid":k,"n":crate::jwks::tests_support::RSA_N,"e":"AQAB"}))
            .collect();
        json!({ "keys": keys }).to_string().into_bytes()
    }

    fn ok(body: Vec<u8>) -> CallResponse {
        CallResponse { status: 200, headers: vec![], body }
    }

    /// Discovery then a JWKS with key `a`, at time 0.
    fn load(r: &Refresher<'_>, store: &mut MemoryStore) {
        let p = r.poll(store, 0).unwrap();
        r.complete(store, &p, Some(&ok(discovery_body())), 0, 0);
        let p = r.poll(store, 0).unwrap();
        r.complete(store, &p, Some(&ok(jwks_body(&["a"]))), 0, 0);
    }

    fn refresher<'a>(s: &'a ProviderConfig, k: &'a Keys, me: &'a str) -> Refresher<'a> {
        Refresher { provider: s, keys: k, me }
    }

    /// A store in which another VM's whole fetch happens at the moment this VM looks at
    /// the lease (after it read the snapshot): the interleaving of two workers' ticks.
    struct RacingStore<'a> {
        inner: std::cell::RefCell<MemoryStore>,
        lease_key: String,
        race: std::cell::RefCell<Option<Box<dyn FnOnce(&mut MemoryStore) + 'a>>>,
    }

    impl SharedStore for RacingStore<'_> {
        fn get(&self, key: &str) -> Option<(Vec<u8>, u32)> {
            if key == self.lease_key {
                if let Some(race) = self.race.borrow_mut().take() {
                    race(&mut self.inner.borrow_mut());
                }
            }
            self.inner.borrow().get(key)
        }

        fn set(&mut self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), crate::store::CasMismatch> {
            self.inner.borrow_mut().set(key, value, cas)
        }
    }

    #[test]
    fn a_fetch_another_vm_just_completed_is_not_made_again() {
        let s = settings();
        let k = Keys::new("t");
        let other = refresher(&s, &k, "vm-a");
        let race = move |store: &mut MemoryStore| {
            let plan = other.poll(store, 100).unwrap();
            assert_eq!(plan.target, Target::Discovery);
            assert!(other.complete(store, &plan, Some(&ok(discovery_body())), 100, 0).succeeded());
        };
        let mut store = RacingStore { inner: Default::default(), lease_key: k.lease.clone(), race: std::cell::RefCell::new(Some(Box::new(race))) };
        // vm-b saw no discovery document; by the time it holds the lease, vm-a has stored one.
        let plan = refresher(&s, &k, "vm-b").poll(&mut store, 100).expect("the JWKS is due next");
        assert_eq!(plan.target, Target::Jwks, "the discovery document was fetched twice");
    }

    #[test]
    fn cold_start_fetches_discovery_then_jwks_once_across_vms() {
        let s = settings();
        let k = Keys::new("t");
        let mut store = MemoryStore::default();
        let vms: Vec<String> = (0..5).map(|i| format!("vm{i}")).collect();
        // Every VM ticks at the same moment: exactly one wins the lease.
        let plans: Vec<_> = vms.iter().filter_map(|me| refresher(&s, &k, me).poll(&mut store, 100).map(|p| (me.clone(), p))).collect();
        assert_eq!(plans.len(), 1);
        let (winner, plan) = &plans[0];
        assert_eq!(plan.target, Target::Discovery);
        assert_eq!(plan.call.endpoint.url(), "https://idp.example.com/.well-known/openid-configuration");
        let audit = refresher(&s, &k, winner).complete(&mut store, plan, Some(&ok(discovery_body())), 100, 0);
        assert!(audit.succeeded(), "{audit:?}");

        let plans: Vec<_> = vms.iter().filter_map(|me| refresher(&s, &k, me).poll(&mut store, 100).map(|p| (me.clone(), p))).collect();
        assert_eq!(plans.len(), 1);
        let (winner, plan) = &plans[0];
        assert_eq!(plan.target, Target::Jwks);
        let audit = refresher(&s, &k, winner).complete(&mut store, plan, Some(&ok(jwks_body(&["a"]))), 101, 0);
        assert_eq!(audit.keys_added, vec!["a".to_string()]);

        assert!(vms.iter().all(|me| refresher(&s, &k, me).poll(&mut store, 102).is_none()), "nothing due");
        let mut view = provider::View::default();
        view.sync(&store, &k, &s);
        assert!(view.is_ready(&s, 102));
        // The next scheduled refresh comes after the interval.
        let plan = refresher(&s, &k, "vm3").poll(&mut store, 101 + 3600).unwrap();
        assert_eq!((plan.target, plan.trigger), (Target::Jwks, "scheduled"));
    }

    #[test]
    fn a_dead_lease_holder_does_not_block_others() {
        let s = settings();
        let k = Keys::new("t");
        let mut store = MemoryStore::default();
        assert!(refresher(&s, &k, "vm0").poll(&mut store, 100).is_some());
        // vm0 dies mid-fetch: others wait until the lease expires, then take over.
        assert!(refresher(&s, &k, "vm1").poll(&mut store, 104).is_none());
        assert!(refresher(&s, &k, "vm1").poll(&mut store, 100 + 10).is_some());
    }

    #[test]
    fn keys_gone_stale_are_retried_at_the_quick_pace() {
        let mut s = settings();
        s.max_key_staleness = 600;
        let k = Keys::new("t");
        let mut store = MemoryStore::default();
        let r = refresher(&s, &k, "vm");
        load(&r, &mut store);
        let fail = CallResponse { status: 500, headers: vec![], body: b"oops".to_vec() };
        let mut t = 3600;
        let mut attempts = vec![];
        while t < 3600 + 1800 {
            let p = r.poll(&mut store, t).unwrap_or_else(|| panic!("attempt due at {t}"));
            let audit = r.complete(&mut store, &p, Some(&fail), t, u64::MAX);
            attempts.push(t);
            assert!(audit.next_attempt_at > t);
            t = audit.next_attempt_at;
        }
        // The keys were fetched at 0: they go stale at 600, long before the first refresh
        // (3600) fails. Every attempt after that is at most 30 s after the one before.
        let gaps: Vec<u64> = attempts.windows(2).map(|w| w[1] - w[0]).collect();
        assert!(gaps.iter().all(|g| *g <= 30), "{gaps:?}");

        // Keys still fresh at the failure: the warm backoff, but never past the moment they
        // go stale.
        let mut s = settings();
        s.max_key_staleness = 3600 + 100;
        let mut store = MemoryStore::default();
        let r = refresher(&s, &k, "vm");
        load(&r, &mut store);
        let mut t = 3600;
        for _ in 0..12 {
            let p = r.poll(&mut store, t).unwrap();
            t = r.complete(&mut store, &p, Some(&fail), t, u64::MAX).next_attempt_at;
            if t < 3700 {
                continue;
            }
            assert_eq!(t, 3700, "retried when the keys go stale, not later");
            break;
        }
        assert_eq!(t, 3700);
    }

    #[test]
    fn failures_keep_the_good_set_and_back_off() {
        let s = settings();
        let k = Keys::new("t");
        let mut store = MemoryStore::default();
        let r = refresher(&s, &k, "vm");
        load(&r, &mut store);

        let bad: Vec<CallResponse> = vec![
            CallResponse { status: 500, headers: vec![], body: b"oops".to_vec() },
            CallResponse { status: 503, headers: vec![], body: b"upstream connect error".to_vec() },
            ok(b"<html>login</html>".to_vec()),
            ok(br#"{"keys":[]}"#.to_vec()),
            ok(br#"{"keys":[{"kty":"RSA","n":"#.to_vec()),
        ];
        let mut t = 3600;
        let mut last_delay = 0;
        for (i, resp) in bad.iter().enumerate() {
            let p = r.poll(&mut store, t).unwrap_or_else(|| panic!("attempt {i} due at {t}"));
            assert_eq!(p.target, Target::Jwks);
            let audit = r.complete(&mut store, &p, Some(resp), t, u64::MAX);
            assert!(!audit.succeeded());
            assert!(audit.reason.is_some());
            assert_eq!(audit.keys_in_force, 1, "the good set stays");
            assert_eq!(audit.consecutive_failures, i as u32 + 1);
            let delay = audit.next_attempt_at - t;
            assert!(delay >= last_delay, "backoff grows: {delay} after {last_delay}");
            assert!(delay <= 300);
            last_delay = delay;
            assert!(r.poll(&mut store, t).is_none(), "not retried before the backoff");
            t = audit.next_attempt_at;
        }
        let mut view = provider::View::default();
        view.sync(&store, &k, &s);
        assert_eq!(view.keys.keys().len(), 1);
        let dispatch_failed = r.poll(&mut store, t).unwrap();
        let audit = r.complete(&mut store, &dispatch_failed, None, t, 0);
        assert!(audit.reason.unwrap().contains("idp_cluster"));
    }

    #[test]
    fn discovery_with_another_issuer_is_refused() {
        let s = settings();
        let k = Keys::new("t");
        let mut store = MemoryStore::default();
        let r = refresher(&s, &k, "vm");
        let p = r.poll(&mut store, 0).unwrap();
        let body = discovery_body();
        let evil = String::from_utf8(body).unwrap().replace("\"https://idp.example.com\"", "\"https://evil.example.com\"");
        let audit = r.complete(&mut store, &p, Some(&ok(evil.into_bytes())), 0, 0);
        assert!(audit.reason.unwrap().contains("not the configured issuer"));
        assert!(provider::read(&store, &k).0.discovery.is_none());
    }

    #[test]
    fn unknown_kid_refetch_is_coalesced_and_cooled_down() {
        let s = settings();
        let k = Keys::new("t");
        let mut store = MemoryStore::default();
        let r = refresher(&s, &k, "vm");
        load(&r, &mut store);

        // A flood of unknown kids from many workers: one refetch.
        for i in 0..50 {
            assert!(refresher(&s, &k, &format!("w{i}")).request_kid_refetch(&mut store, 100));
        }
        let plans: Vec<_> = (0..5).filter_map(|i| refresher(&s, &k, &format!("w{i}")).poll(&mut store, 100)).collect();
        assert_eq!(plans.len(), 1);
        assert_eq!(plans[0].trigger, "unknown_kid");
        r.complete(&mut store, &plans[0], Some(&ok(jwks_body(&["a", "b"]))), 100, 0);
        // Within the cooldown: refused, and nothing is fetched.
        assert!(!r.request_kid_refetch(&mut store, 110));
        assert!(r.poll(&mut store, 110).is_none());
        // After it: allowed again.
        assert!(r.request_kid_refetch(&mut store, 131));
        assert_eq!(r.poll(&mut store, 131).map(|p| p.trigger), Some("unknown_kid"));
    }

    #[test]
    fn refetch_stamps_leave_the_generation_until_the_fetch_completes() {
        let s = settings();
        let k = Keys::new("t");
        let mut store = MemoryStore::default();
        let r = refresher(&s, &k, "vm");
        let p = r.poll(&mut store, 0).unwrap();
        r.complete(&mut store, &p, Some(&ok(discovery_body())), 0, 0);
        let p = r.poll(&mut store, 0).unwrap();
        r.complete(&mut store, &p, Some(&ok(jwks_body(&["a"]))), 0, 0);

        // A request parks with this generation; every tick compares against it.
        let parked_at = provider::generation(&store, &k);
        assert!(r.request_kid_refetch(&mut store, 100));
        assert_eq!(provider::generation(&store, &k), parked_at, "asking for a refetch changes no keys");
        let plan = r.poll(&mut store, 100).expect("refetch due");
        assert_eq!(plan.trigger, "unknown_kid");
        assert_eq!(provider::generation(&store, &k), parked_at, "starting it changes no keys either");
        assert!(r.request_kid_refetch(&mut store, 101), "while it is in flight, others wait for it");
        assert_eq!(provider::generation(&store, &k), parked_at);
        r.complete(&mut store, &plan, Some(&ok(jwks_body(&["a", "b"]))), 101, 0);
        assert!(!r.request_kid_refetch(&mut store, 102), "answered: the cooldown runs from the start");
        assert_ne!(provider::generation(&store, &k), parked_at, "the answer wakes the waiting requests");

        // A failed refetch wakes them too (to be rejected), not only a successful one.
        let before = provider::generation(&store, &k);
        assert!(r.request_kid_refetch(&mut store, 200));
        let plan = r.poll(&mut store, 200).unwrap();
        r.complete(&mut store, &plan, Some(&CallResponse { status: 500, headers: vec![], body: vec![] }), 200, 0);
        assert_ne!(provider::generation(&store, &k), before);
    }

    #[test]
    fn tokens_arriving_while_the_refetch_is_in_flight_wait_for_it() {
        let s = settings();
        let k = Keys::new("t");
        let mut store = MemoryStore::default();
        let r = refresher(&s, &k, "vm");
        load(&r, &mut store);
        assert!(r.request_kid_refetch(&mut store, 100));
        let plan = r.poll(&mut store, 101).unwrap();
        assert_eq!(plan.trigger, "unknown_kid");
        // The IdP is slow: more new-kid tokens come while the fetch is out.
        assert!(refresher(&s, &k, "w2").request_kid_refetch(&mut store, 102), "in flight: wait for it");
        assert!(refresher(&s, &k, "w2").poll(&mut store, 102).is_none(), "and no second fetch");
        r.complete(&mut store, &plan, Some(&ok(jwks_body(&["a", "b"]))), 103, 0);
        assert!(!r.request_kid_refetch(&mut store, 104), "answered: the cooldown refuses now");
    }

    #[test]
    fn static_keys_are_never_refetched() {
        let s = crate::config::Settings::from_json(
            json!({
                "issuer": "https://idp.example.com",
                "idp_cluster": "idp",
                "client_id": "app",
                "client_secret": "s",
                "cookie_secret": crate::b64::std_encode(&[1u8; 32]),
                "authorization_endpoint": "https://idp.example.com/auth",
                "token_endpoint": "https://idp.example.com/token",
                "jwks": {"keys": [{"kty": "RSA", "kid": "a", "n": crate::jwks::tests_support::RSA_N, "e": "AQAB"}]},
            })
            .to_string()
            .as_bytes(),
        )
        .unwrap()
        .providers
        .remove(0);
        let k = Keys::new("t");
        let mut store = MemoryStore::default();
        let r = refresher(&s, &k, "vm");
        assert!(!r.request_kid_refetch(&mut store, 100), "nothing to fetch: reject at once instead of waiting");
        assert!(r.poll(&mut store, 100).is_none());
    }

    #[test]
    fn backoff_is_bounded() {
        for f in 0..100 {
            for j in [0, 1, 7, u64::MAX] {
                assert!(backoff(f, false, j) <= 30);
                assert!(backoff(f, true, j) <= 300);
                assert!(backoff(f, true, j) >= 1);
            }
        }
    }
}

//! What every worker needs to know about an IdP: the shared snapshot and each VM's parsed view of it.

use serde::{Deserialize, Serialize};

use crate::config::ProviderConfig;
use crate::http::Endpoint;
use crate::jwks::{self, KeySet, StoredKey};
use crate::oidc::discovery::Discovery;
use crate::store::SharedStore;
use crate::time::{after, UnixTime};

/// The provider state kept in shared data, written only by the VM holding the fetch lease
/// (and, for the refetch request stamp, by any worker under CAS).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    pub discovery: Option<Discovery>,
    pub keys: Vec<StoredKey>,
    pub discovery_fetched_at: UnixTime,
    pub jwks_fetched_at: UnixTime,
    pub next_discovery_at: UnixTime,
    pub next_jwks_at: UnixTime,
    pub discovery_failures: u32,
    pub jwks_failures: u32,
    pub last_attempt_at: UnixTime,
    pub last_success_at: UnixTime,
    /// When a worker last asked for a refetch because of an unknown `kid`.
    pub kid_refetch_requested_at: UnixTime,
    /// When the last unknown-`kid` refetch was started (cooldown anchor).
    pub kid_refetch_started_at: UnixTime,
}

/// Names of the shared-data keys of one provider namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keys {
    pub snapshot: String,
    pub generation: String,
    pub lease: String,
}

impl Keys {
    pub fn new(namespace: &str) -> Keys {
        Keys {
            snapshot: format!("oidc-edge/{namespace}/provider"),
            generation: format!("oidc-edge/{namespace}/generation"),
            lease: format!("oidc-edge/{namespace}/lease"),
        }
    }
}

/// Reads the snapshot and its CAS. A missing or unreadable snapshot reads as empty.
pub fn read(store: &dyn SharedStore, keys: &Keys) -> (Snapshot, Option<u32>) {
    match store.get(&keys.snapshot) {
        Some((bytes, cas)) if !bytes.is_empty() => (serde_json::from_slice(&bytes).unwrap_or_default(), Some(cas)),
        Some((_, cas)) => (Snapshot::default(), Some(cas)),
        None => (Snapshot::default(), None),
    }
}

/// The generation counter: bumped after every snapshot write so workers notice cheaply.
pub fn generation(store: &dyn SharedStore, keys: &Keys) -> u64 {
    store
        .get(&keys.generation)
        .and_then(|(b, _)| <[u8; 8]>::try_from(b.as_slice()).ok())
        .map(u64::from_le_bytes)
        .unwrap_or(0)
}

pub fn bump_generation(store: &mut dyn SharedStore, keys: &Keys) {
    // Retry a few times on contention; a lost bump only delays noticing until the next one.
    for _ in 0..4 {
        let (current, cas) = match store.get(&keys.generation) {
            Some((b, cas)) => (<[u8; 8]>::try_from(b.as_slice()).ok().map(u64::from_le_bytes).unwrap_or(0), Some(cas)),
            None => (0, None),
        };
        if store.set(&keys.generation, &current.wrapping_add(1).to_le_bytes(), cas).is_ok() {
            return;
        }
    }
}

/// The endpoints a login uses: discovery's values, each replaced by an explicit one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Metadata {
    pub authorization_endpoint: Endpoint,
    pub token_endpoint: Endpoint,
    pub userinfo_endpoint: Option<Endpoint>,
    pub end_session_endpoint: Option<Endpoint>,
    /// RFC 9207: the authorization response must carry `iss`.
    pub iss_parameter_supported: bool,
}

/// A VM's parsed view of one provider, rebuilt only when the generation moves.
#[derive(Debug, Clone, Default)]
pub struct View {
    pub generation: u64,
    pub metadata: Option<Metadata>,
    pub keys: KeySet,
    pub jwks_fetched_at: UnixTime,
    static_keys: bool,
    synced_once: bool,
}

impl View {
    fn build(cfg: &ProviderConfig, snapshot: &Snapshot, generation: u64) -> View {
        let d = snapshot.discovery.as_ref();
        let o = &cfg.endpoints;
        let authorization = o.authorization.clone().or_else(|| d.map(|d| d.authorization_endpoint.clone()));
        let token = o.token.clone().or_else(|| d.map(|d| d.token_endpoint.clone()));
        let metadata = match (authorization, token) {
            (Some(authorization_endpoint), Some(token_endpoint)) => Some(Metadata {
                authorization_endpoint,
                token_endpoint,
                userinfo_endpoint: o.userinfo.clone().or_else(|| d.and_then(|d| d.userinfo_endpoint.clone())),
                end_session_endpoint: o.end_session.clone().or_else(|| d.and_then(|d| d.end_session_endpoint.clone())),
                iss_parameter_supported: d.is_some_and(|d| d.iss_parameter_supported),
            }),
            _ => None,
        };
        let (keys, static_keys) = match &cfg.static_keys {
            Some(list) => (jwks::parse_key_list(list).map(|(s, _)| s).unwrap_or_default(), true),
            None => (jwks::from_stored(&snapshot.keys), false),
        };
        View { generation, metadata, keys, jwks_fetched_at: snapshot.jwks_fetched_at, static_keys, synced_once: true }
    }

    /// Keys are usable while the last successful fetch is younger than `max_key_staleness`.
    pub fn keys_fresh(&self, cfg: &ProviderConfig, now: UnixTime) -> bool {
        !self.keys.is_empty() && (self.static_keys || now < after(self.jwks_fetched_at, cfg.max_key_staleness))
    }

    /// Ready to validate tokens (and, unless keys-only, to log in).
    pub fn is_ready(&self, cfg: &ProviderConfig, now: UnixTime) -> bool {
        self.keys_fresh(cfg, now) && (cfg.keys_only || self.metadata.is_some())
    }

    /// Brings the view up to date with the store; cheap when nothing changed.
    pub fn sync(&mut self, store: &dyn SharedStore, keys: &Keys, cfg: &ProviderConfig) {
        let generation = generation(store, keys);
        if generation != self.generation || !self.synced_once {
            let (snapshot, _) = read(store, keys);
            *self = View::build(cfg, &snapshot, generation);
        }
    }
}

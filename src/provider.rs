//! What every worker needs to know about the IdP: the shared snapshot and each VM's parsed view of it.

use serde::{Deserialize, Serialize};

use crate::jwks::{self, KeySet, StoredKey};
use crate::oidc::discovery::Discovery;
use crate::store::SharedStore;
use crate::time::UnixTime;

/// The provider state kept in shared data, written only by the VM holding the fetch lease.
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
    pub used_states: String,
}

impl Keys {
    pub fn new(namespace: &str) -> Keys {
        Keys {
            snapshot: format!("oidc-edge/{namespace}/provider"),
            generation: format!("oidc-edge/{namespace}/generation"),
            lease: format!("oidc-edge/{namespace}/lease"),
            used_states: format!("oidc-edge/{namespace}/used-states"),
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

/// A VM's parsed view of the snapshot, rebuilt only when the generation moves.
#[derive(Debug, Clone, Default)]
pub struct View {
    pub generation: u64,
    pub discovery: Option<Discovery>,
    pub keys: KeySet,
    pub jwks_fetched_at: UnixTime,
    pub kid_refetch_started_at: UnixTime,
}

impl View {
    pub fn from_snapshot(snapshot: &Snapshot, generation: u64) -> View {
        View {
            generation,
            discovery: snapshot.discovery.clone(),
            keys: jwks::from_stored(&snapshot.keys),
            jwks_fetched_at: snapshot.jwks_fetched_at,
            kid_refetch_started_at: snapshot.kid_refetch_started_at,
        }
    }

    /// Ready to serve: the metadata and at least one key are loaded.
    pub fn is_ready(&self) -> bool {
        self.discovery.is_some() && !self.keys.is_empty()
    }

    /// Brings the view up to date with the store; cheap when nothing changed.
    pub fn sync(&mut self, store: &dyn SharedStore, keys: &Keys) {
        let generation = generation(store, keys);
        if generation != self.generation || (!self.is_ready() && generation != 0) {
            let (snapshot, _) = read(store, keys);
            *self = View::from_snapshot(&snapshot, generation);
        }
    }
}

/// The shared-data namespace of one relying party: derived from what identifies it, so
/// two configurations never read each other's state.
pub fn namespace(settings: &crate::config::Settings) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(format!("{}\n{}", settings.issuer, settings.client_id).as_bytes());
    crate::b64::url_encode(digest.get(..12).unwrap_or_default())
}

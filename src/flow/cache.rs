//! A per-worker memory of verdicts (verified bearer tokens, opened sessions), bounded and honouring expiry.

use std::collections::{HashMap, VecDeque};
use std::rc::Rc;

use std::hash::Hasher;

use siphasher::sip128::{Hasher128, SipHasher13};

use crate::flow::identity::Identity;
use crate::session::Session;
use crate::time::UnixTime;

pub type Key = [u8; 16];

/// Derives cache keys with SipHash-1-3 (128-bit output) under a per-VM random key.
/// SipHash is a keyed PRF: without the key nobody can craft a token whose cache key
/// collides with a cached one, and it costs a fraction of SHA-256 on a 20 KB cookie.
#[derive(Debug, Clone, Copy)]
pub struct Keyer {
    k0: u64,
    k1: u64,
}

impl Keyer {
    pub fn new(seed: [u8; 16]) -> Keyer {
        let (a, b) = seed.split_at(8);
        let word = |s: &[u8]| u64::from_le_bytes(<[u8; 8]>::try_from(s).unwrap_or_default());
        Keyer { k0: word(a), k1: word(b) }
    }

    pub fn key_of(&self, bytes: &[u8]) -> Key {
        let mut h = SipHasher13::new_with_keys(self.k0, self.k1);
        h.write(bytes);
        h.finish128().as_bytes()
    }
}

/// What was established about a token or a session cookie.
#[derive(Debug, Clone)]
pub struct Verdict {
    pub identity: Rc<Identity>,
    pub session: Option<Rc<Session>>,
    /// Reuse ends at this time (the token's expiry or the cache TTL, whichever is first).
    pub until: UnixTime,
    /// The provider whose keys verified it, and their generation then: a rotation
    /// re-verifies. `None` for a session, sealed by the filter itself.
    pub verified_by: Option<(usize, u64)>,
}

/// Insertion-ordered and bounded: the oldest entry goes when full. Lookups never
/// allocate; an expired or outdated entry reads as absent.
#[derive(Debug, Default)]
pub struct VerdictCache {
    capacity: usize,
    map: HashMap<Key, Verdict>,
    order: VecDeque<Key>,
}

impl VerdictCache {
    pub fn new(capacity: usize) -> VerdictCache {
        VerdictCache { capacity, map: HashMap::new(), order: VecDeque::new() }
    }

    /// The verdict for `key` if still valid; `generation_of` gives the current key-set
    /// generation of a provider.
    pub fn get(&self, key: &Key, now: UnixTime, generation_of: impl Fn(usize) -> u64) -> Option<&Verdict> {
        self.map.get(key).filter(|v| now < v.until && v.verified_by.is_none_or(|(provider, generation)| generation == generation_of(provider)))
    }

    pub fn insert(&mut self, key: Key, verdict: Verdict) {
        if self.capacity == 0 {
            return;
        }
        if self.map.insert(key, verdict).is_none() {
            self.order.push_back(key);
        }
        while self.map.len() > self.capacity {
            match self.order.pop_front() {
                Some(old) => {
                    self.map.remove(&old);
                }
                None => break,
            }
        }
    }

    pub fn remove(&mut self, key: &Key) {
        if self.map.remove(key).is_some() {
            self.order.retain(|k| k != key);
        }
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Map;

    fn key_of(bytes: &[u8]) -> Key {
        Keyer::new([3; 16]).key_of(bytes)
    }

    fn verdict(until: u64, generation: u64) -> Verdict {
        Verdict {
            identity: Rc::new(Identity { sub: "a".into(), email: None, claims: Map::new(), exp: until }),
            session: None,
            until,
            verified_by: Some((0, generation)),
        }
    }

    #[test]
    fn keys_depend_on_the_secret() {
        let a = Keyer::new([1; 16]);
        let b = Keyer::new([2; 16]);
        assert_ne!(a.key_of(b"token"), b.key_of(b"token"));
        assert_eq!(a.key_of(b"token"), a.key_of(b"token"));
        assert_ne!(a.key_of(b"token"), a.key_of(b"tokem"));
    }

    #[test]
    fn bounded_and_expiring() {
        let mut c = VerdictCache::new(3);
        for i in 0..10u8 {
            c.insert(key_of(&[i]), verdict(100, 1));
        }
        assert_eq!(c.len(), 3);
        assert!(c.get(&key_of(&[9]), 50, |_| 1).is_some());
        assert!(c.get(&key_of(&[0]), 50, |_| 1).is_none(), "oldest evicted");
        assert!(c.get(&key_of(&[9]), 100, |_| 1).is_none(), "expired");
        assert!(c.get(&key_of(&[9]), 50, |_| 2).is_none(), "keys rotated since");
        c.remove(&key_of(&[9]));
        assert_eq!(c.len(), 2);
        let mut off = VerdictCache::new(0);
        off.insert(key_of(&[1]), verdict(100, 1));
        assert!(off.is_empty());
    }
}

//! The shared-data contract: a key-value store with compare-and-swap, shared by every VM of one Envoy.

use std::collections::HashMap;

/// Envoy's proxy-wasm shared data, seen through the two operations the core needs.
/// A `cas` of `None` writes unconditionally; `Some(c)` writes only if the value is still at `c`.
pub trait SharedStore {
    fn get(&self, key: &str) -> Option<(Vec<u8>, u32)>;
    fn set(&mut self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), CasMismatch>;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CasMismatch;

/// An in-memory store with Envoy's semantics (a missing key accepts any cas), for tests
/// and for the native simulation of several VMs.
#[derive(Debug, Default, Clone)]
pub struct MemoryStore {
    map: HashMap<String, (Vec<u8>, u32)>,
    next_cas: u32,
}

impl SharedStore for MemoryStore {
    fn get(&self, key: &str) -> Option<(Vec<u8>, u32)> {
        self.map.get(key).cloned()
    }

    fn set(&mut self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), CasMismatch> {
        if let (Some(expected), Some((_, current))) = (cas, self.map.get(key)) {
            if expected != *current {
                return Err(CasMismatch);
            }
        }
        self.next_cas = self.next_cas.wrapping_add(1).max(1);
        self.map.insert(key.to_string(), (value.to_vec(), self.next_cas));
        Ok(())
    }
}

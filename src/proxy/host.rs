//! Host calls the shell needs, wrapped so that none of them unwraps on the request path.

use std::time::{Duration, UNIX_EPOCH};

use proxy_wasm::hostcalls;
use proxy_wasm::types::{BufferType, MapType, Status};

use crate::entropy::Entropy;
use crate::http::{CallResponse, HttpCall, LocalResponse};
use crate::store::{CasMismatch, SharedStore};
use crate::time::UnixTime;

/// Unix seconds from the host clock: the only clock the filter reads.
pub fn now() -> UnixTime {
    hostcalls::get_current_time()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// WASI `random_get`, served by Envoy from its CSPRNG.
pub struct HostEntropy;

impl Entropy for HostEntropy {
    fn fill(&mut self, buf: &mut [u8]) {
        if getrandom::getrandom(buf).is_err() {
            // Never happens under Envoy. If it did, every state, nonce, PKCE verifier and
            // sealing nonce would be guessable: stop this VM rather than go on. Envoy then
            // fails its requests, and the guard after the filter refuses them.
            log::error!("oidc-edge: the host's random source failed; stopping this VM");
            std::process::abort();
        }
    }
}

/// Envoy's shared data for this plugin's `vm_id`.
pub struct HostStore;

impl SharedStore for HostStore {
    fn get(&self, key: &str) -> Option<(Vec<u8>, u32)> {
        match hostcalls::get_shared_data(key) {
            Ok((Some(bytes), Some(cas))) => Some((bytes, cas)),
            Ok((Some(bytes), None)) => Some((bytes, 0)),
            _ => None,
        }
    }

    fn set(&mut self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), CasMismatch> {
        hostcalls::set_shared_data(key, Some(value), cas).map_err(|_| CasMismatch)
    }
}

extern "C" {
    // The SDK's own import (same name and signature), called directly so the request's
    // headers arrive as the one buffer the host wrote, without the SDK's copy per header.
    fn proxy_get_header_map_pairs(map_type: MapType, return_map_data: *mut *mut u8, return_map_size: *mut usize) -> Status;
    // Called directly: the SDK's `set_property` panics when the host refuses.
    fn proxy_set_property(path_data: *const u8, path_size: usize, value_data: *const u8, value_size: usize) -> Status;
}

/// The stream's filter-state entry `wasm.oidc_edge_checked`, set to `1` on every request
/// the filter lets through. A native RBAC filter after this one (in every configuration
/// we ship) lets through only requests that carry it: if Envoy ever runs a worker without
/// this filter (it does when the worker cannot create the wasm VM, whatever the
/// failure_policy), requests are refused instead of reaching the application unchecked.
/// Clients cannot set filter state, so the marker needs no secret.
pub fn mark_checked() {
    const PATH: &[u8] = b"oidc_edge_checked";
    const VALUE: &[u8] = b"1";
    // SAFETY: the host only reads both buffers during the call.
    let status = unsafe { proxy_set_property(PATH.as_ptr(), PATH.len(), VALUE.as_ptr(), VALUE.len()) };
    if !matches!(status, Status::Ok) {
        log::warn!("oidc-edge: could not mark the request as checked ({status:?}); a guard filter after oidc-edge will refuse it");
    }
}

/// All request headers in proxy-wasm's serialized map form (`RequestView::from_serialized_map`).
pub fn request_headers_serialized() -> Vec<u8> {
    let mut data: *mut u8 = std::ptr::null_mut();
    let mut size: usize = 0;
    // SAFETY: on success the host has allocated `size` bytes at `data` through the SDK's
    // `proxy_on_memory_allocate` (a `Vec<u8>` with capacity `size`, forgotten), exactly as
    // `hostcalls::get_map_bytes` takes it back.
    unsafe {
        match proxy_get_header_map_pairs(MapType::HttpRequestHeaders, &mut data, &mut size) {
            Status::Ok if !data.is_null() => Vec::from_raw_parts(data, size, size),
            _ => Vec::new(),
        }
    }
}

pub fn remove_request_header(name: &str) {
    let _ = hostcalls::remove_map_value(MapType::HttpRequestHeaders, name);
}

pub fn set_request_header(name: &str, value: &str) {
    let _ = hostcalls::set_map_value(MapType::HttpRequestHeaders, name, Some(value));
}

/// A header the request does not have (no lookup for a value to replace).
pub fn add_request_header(name: &str, value: &str) {
    let _ = hostcalls::add_map_value(MapType::HttpRequestHeaders, name, value);
}

/// For values passed on from the client as they came (they may hold bytes that are not UTF-8).
pub fn set_request_header_bytes(name: &str, value: &[u8]) {
    let _ = hostcalls::set_map_value_bytes(MapType::HttpRequestHeaders, name, Some(value));
}

pub fn add_response_header(name: &str, value: &str) {
    let _ = hostcalls::add_map_value(MapType::HttpResponseHeaders, name, value);
}

/// Wakes the root context through this VM's queue (`on_queue_ready`, on this worker's
/// next turn of the event loop).
pub fn wake(queue: u32) -> bool {
    hostcalls::enqueue_shared_queue(queue, Some(b"w")).is_ok()
}

/// Empties the wake-up queue: its entries carry nothing but the wake-up.
pub fn drain_queue(queue: u32) {
    while let Ok(Some(_)) = hostcalls::dequeue_shared_queue(queue) {}
}

pub fn register_queue(name: &str) -> Option<u32> {
    hostcalls::register_shared_queue(name).ok()
}

pub fn set_response_header(name: &str, value: &str) {
    let _ = hostcalls::set_map_value(MapType::HttpResponseHeaders, name, Some(value));
}

pub fn send_response(resp: &LocalResponse) {
    let headers: Vec<(&str, &str)> = resp.headers.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
    let body = (!resp.body.is_empty()).then_some(resp.body.as_bytes());
    if let Err(status) = hostcalls::send_http_response(u32::from(resp.status), headers, body) {
        log::error!("oidc-edge: could not send a local response: {status:?}");
    }
}

pub fn resume_request() {
    let _ = hostcalls::resume_http_request();
}

/// Dispatches `call` through `cluster`; the `:authority` comes from the endpoint URL.
pub fn dispatch(cluster: &str, call: &HttpCall) -> Result<u32, Status> {
    let mut headers: Vec<(&str, &str)> = vec![
        (":method", call.method),
        (":path", call.endpoint.path.as_str()),
        (":authority", call.endpoint.authority.as_str()),
        (":scheme", call.endpoint.scheme.as_str()),
    ];
    for (n, v) in &call.headers {
        headers.push((n.as_str(), v.as_str()));
    }
    hostcalls::dispatch_http_call(cluster, headers, call.body.as_deref(), vec![], Duration::from_millis(call.timeout_ms))
}

/// The answer to a dispatched call, read with the byte-safe accessors.
pub fn call_response(body_size: usize) -> CallResponse {
    let headers = hostcalls::get_map_bytes(MapType::HttpCallResponseHeaders).unwrap_or_default();
    let status = headers
        .iter()
        .find(|(n, _)| n == ":status")
        .and_then(|(_, v)| std::str::from_utf8(v).ok())
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = if body_size == 0 {
        Vec::new()
    } else {
        hostcalls::get_buffer(BufferType::HttpCallResponseBody, 0, body_size).ok().flatten().unwrap_or_default()
    };
    CallResponse { status, headers, body }
}

pub fn plugin_configuration() -> Option<Vec<u8>> {
    hostcalls::get_buffer(BufferType::PluginConfiguration, 0, usize::MAX).ok().flatten()
}

/// Secrets from the VM's environment (Envoy `vm_config.environment_variables`, Istio
/// `vmConfig.env`). Envoy's wasm sandbox has no file system, so file secrets are refused
/// with a pointer to the environment instead.
pub struct WasiSecrets;

impl crate::config::SecretSource for WasiSecrets {
    fn env(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }

    fn file(&self, path: &str) -> Result<String, String> {
        std::fs::read_to_string(path).map_err(|e| format!("{e}. Envoy gives wasm filters no file system; mount the secret as an environment variable of the proxy and use {{\"env\": \"NAME\"}} with vm_config.environment_variables.host_env_keys (Istio: vmConfig.env with valueFrom: HOST)"))
    }
}

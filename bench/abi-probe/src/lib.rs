//! The ABI probe: each request repeats one proxy-wasm host operation N times, nothing else.
//!
//! Plugin configuration (a plain string): `<op> <N>`, where op is
//! `time` (proxy_get_current_time_nanoseconds), `read` (proxy_get_header_map_pairs of
//! the request headers, which makes the host call back into the module to allocate),
//! `value` / `missing` (proxy_get_header_map_value of a header the request has / lacks),
//! `add` (proxy_add_header_map_value), `replace` (proxy_replace_header_map_value),
//! `remove` (proxy_remove_header_map_value of a header the request lacks), `property`
//! (proxy_set_property), `metric` (proxy_increment_metric), `floor` (what any filter that
//! checks requests behind oidc-edge's guard must do: read the request headers once and set
//! the guard's filter state `oidc_edge_checked`; `make bench` runs it as the floor of a
//! proxy-wasm filter in Envoy). Written against the raw ABI,
//! without the SDK, so that nothing but the operation is counted; the callbacks Envoy
//! calls per stream are chosen by trimming exports (bench/abi_costs.py).

use std::alloc::{alloc, dealloc, Layout};
use std::cell::Cell;

extern "C" {
    fn proxy_get_current_time_nanoseconds(out: *mut u64) -> u32;
    fn proxy_get_header_map_pairs(map: u32, data: *mut *mut u8, size: *mut usize) -> u32;
    fn proxy_add_header_map_value(map: u32, k: *const u8, ks: usize, v: *const u8, vs: usize) -> u32;
    fn proxy_replace_header_map_value(map: u32, k: *const u8, ks: usize, v: *const u8, vs: usize) -> u32;
    fn proxy_remove_header_map_value(map: u32, k: *const u8, ks: usize) -> u32;
    fn proxy_get_header_map_value(map: u32, k: *const u8, ks: usize, d: *mut *mut u8, s: *mut usize) -> u32;
    fn proxy_set_property(p: *const u8, ps: usize, v: *const u8, vs: usize) -> u32;
    fn proxy_get_buffer_bytes(kind: u32, start: usize, max: usize, data: *mut *mut u8, size: *mut usize) -> u32;
    fn proxy_define_metric(kind: u32, name: *const u8, name_size: usize, id: *mut u32) -> u32;
    fn proxy_increment_metric(id: u32, offset: i64) -> u32;
}

const REQUEST_HEADERS: u32 = 0;
const PLUGIN_CONFIGURATION: u32 = 7;
const COUNTER: u32 = 0;

#[derive(Clone, Copy)]
enum Op {
    Nothing,
    Time,
    Read,
    Add,
    Replace,
    Remove,
    Property,
    Metric,
    Value,
    Missing,
    Floor,
}

thread_local! {
    static OP: Cell<Op> = const { Cell::new(Op::Nothing) };
    static TIMES: Cell<u32> = const { Cell::new(0) };
    static METRIC: Cell<u32> = const { Cell::new(0) };
}

#[no_mangle]
pub extern "C" fn proxy_abi_version_0_2_1() {}

#[no_mangle]
pub extern "C" fn proxy_on_memory_allocate(size: usize) -> *mut u8 {
    match Layout::from_size_align(size.max(1), 1) {
        // SAFETY: a non-zero size; the module frees it with the same layout.
        Ok(layout) => unsafe { alloc(layout) },
        Err(_) => std::ptr::null_mut(),
    }
}

fn free(ptr: *mut u8, size: usize) {
    if let (false, Ok(layout)) = (ptr.is_null(), Layout::from_size_align(size.max(1), 1)) {
        // SAFETY: allocated by proxy_on_memory_allocate with this layout.
        unsafe { dealloc(ptr, layout) }
    }
}

#[no_mangle]
pub extern "C" fn proxy_on_context_create(_context: u32, _parent: u32) {}

#[no_mangle]
pub extern "C" fn proxy_on_vm_start(_context: u32, _size: usize) -> u32 {
    1
}

#[no_mangle]
pub extern "C" fn proxy_on_configure(_context: u32, size: usize) -> u32 {
    let (mut data, mut len) = (std::ptr::null_mut(), 0usize);
    // SAFETY: the host writes a pointer it allocated through proxy_on_memory_allocate.
    let config = unsafe {
        proxy_get_buffer_bytes(PLUGIN_CONFIGURATION, 0, size, &mut data, &mut len);
        if data.is_null() { Vec::new() } else { std::slice::from_raw_parts(data, len).to_vec() }
    };
    free(data, len);
    let text = String::from_utf8_lossy(&config);
    let mut words = text.split_whitespace();
    OP.set(match words.next().unwrap_or("") {
        "time" => Op::Time,
        "read" => Op::Read,
        "add" => Op::Add,
        "replace" => Op::Replace,
        "remove" => Op::Remove,
        "property" => Op::Property,
        "metric" => Op::Metric,
        "value" => Op::Value,
        "missing" => Op::Missing,
        "floor" => Op::Floor,
        _ => Op::Nothing,
    });
    TIMES.set(words.next().and_then(|n| n.parse().ok()).unwrap_or(0));
    let name = b"abi_probe";
    let mut id = 0;
    // SAFETY: the name is read during the call only.
    unsafe { proxy_define_metric(COUNTER, name.as_ptr(), name.len(), &mut id) };
    METRIC.set(id);
    1
}

#[no_mangle]
pub extern "C" fn proxy_on_request_headers(_context: u32, _headers: usize, _end: u32) -> u32 {
    let (key, value) = (b"x-probe", b"value");
    for _ in 0..TIMES.get() {
        // SAFETY: every buffer is read by the host during the call only; the header map
        // comes back in memory allocated through proxy_on_memory_allocate.
        unsafe {
            match OP.get() {
                Op::Nothing => {}
                Op::Time => {
                    let mut t = 0u64;
                    proxy_get_current_time_nanoseconds(&mut t);
                }
                Op::Read => {
                    let (mut data, mut len) = (std::ptr::null_mut(), 0usize);
                    proxy_get_header_map_pairs(REQUEST_HEADERS, &mut data, &mut len);
                    free(data, len);
                }
                Op::Add => {
                    proxy_add_header_map_value(REQUEST_HEADERS, key.as_ptr(), key.len(), value.as_ptr(), value.len());
                }
                Op::Replace => {
                    proxy_replace_header_map_value(REQUEST_HEADERS, key.as_ptr(), key.len(), value.as_ptr(), value.len());
                }
                Op::Remove => {
                    let absent = b"x-probe-absent";
                    proxy_remove_header_map_value(REQUEST_HEADERS, absent.as_ptr(), absent.len());
                }
                Op::Property => {
                    let path = b"abi_probe";
                    proxy_set_property(path.as_ptr(), path.len(), value.as_ptr(), value.len());
                }
                Op::Value => read_value(b"authorization"),
                Op::Missing => read_value(b"x-missing"),
                Op::Metric => {
                    proxy_increment_metric(METRIC.get(), 1);
                }
                Op::Floor => {
                    let (mut data, mut len) = (std::ptr::null_mut(), 0usize);
                    proxy_get_header_map_pairs(REQUEST_HEADERS, &mut data, &mut len);
                    free(data, len);
                    let (path, one) = (b"oidc_edge_checked", b"1");
                    proxy_set_property(path.as_ptr(), path.len(), one.as_ptr(), one.len());
                }
            }
        }
    }
    0
}

/// One request header's value, as a filter reads it (and frees it).
fn read_value(name: &[u8]) {
    let (mut data, mut len) = (std::ptr::null_mut(), 0usize);
    // SAFETY: the name is read during the call; the value comes back in memory allocated
    // through proxy_on_memory_allocate.
    unsafe { proxy_get_header_map_value(REQUEST_HEADERS, name.as_ptr(), name.len(), &mut data, &mut len) };
    free(data, len);
}

#[no_mangle]
pub extern "C" fn proxy_on_response_headers(_context: u32, _headers: usize, _end: u32) -> u32 {
    0
}

#[no_mangle]
pub extern "C" fn proxy_on_done(_context: u32) -> u32 {
    1
}

#[no_mangle]
pub extern "C" fn proxy_on_delete(_context: u32) {}

#!/usr/bin/env python3
"""Drops the proxy-wasm callbacks oidc-edge does not implement from a module's exports.

Why: the Rust SDK exports every proxy-wasm callback, and Envoy calls each exported one
for every request (each call a crossing into the VM: a few microseconds under V8). A
callback the module does not export is skipped by the host (proxy-wasm-cpp-host checks
for the export first). oidc-edge only needs request and response headers, dispatched
call answers, ticks and the context lifecycle; the body, trailer, metadata, log, done
and network callbacks would only return "continue" from inside the VM.

Only the export entries are removed; the functions stay in the code section (unused).

    python3 tools/trim_exports.py IN.wasm OUT.wasm
"""

from __future__ import annotations

import sys

# Callbacks the filter does not implement (src/proxy keeps to the rest). `proxy_on_done`
# is among them: per-stream clean-up runs when the SDK drops the context at
# `proxy_on_delete`.
UNUSED = frozenset(
    {
        "proxy_on_request_body",
        "proxy_on_request_trailers",
        "proxy_on_request_metadata",
        "proxy_on_response_body",
        "proxy_on_response_trailers",
        "proxy_on_response_metadata",
        "proxy_on_log",
        "proxy_on_done",
        "proxy_on_new_connection",
        "proxy_on_downstream_data",
        "proxy_on_downstream_connection_close",
        "proxy_on_upstream_data",
        "proxy_on_upstream_connection_close",
        "proxy_on_grpc_receive_initial_metadata",
        "proxy_on_grpc_receive_trailing_metadata",
        "proxy_on_grpc_receive",
        "proxy_on_grpc_close",
        "proxy_on_foreign_function",
    }
)

# What the filter cannot work without: checked after trimming.
REQUIRED = frozenset(
    {
        "memory",
        "proxy_on_memory_allocate",
        "proxy_on_context_create",
        "proxy_on_vm_start",
        "proxy_on_configure",
        "proxy_on_tick",
        "proxy_on_request_headers",
        "proxy_on_response_headers",
        "proxy_on_http_call_response",
        "proxy_on_queue_ready",
        "proxy_on_delete",
    }
)

EXPORT_SECTION = 7


def read_leb(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(data):
            raise ValueError("truncated LEB128")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return result, pos


def leb(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def trim(module: bytes, unused: frozenset[str] = UNUSED) -> tuple[bytes, list[str], list[str]]:
    """The module without the `unused` exports; the names removed and the names kept."""
    if module[:8] != b"\0asm\x01\0\0\0":
        raise ValueError("not a WebAssembly 1.0 module")
    out = bytearray(module[:8])
    pos = 8
    removed: list[str] = []
    kept: list[str] = []
    while pos < len(module):
        section = module[pos]
        size, body_start = read_leb(module, pos + 1)
        body_end = body_start + size
        if body_end > len(module):
            raise ValueError("truncated section")
        if section != EXPORT_SECTION:
            out += module[pos:body_end]
            pos = body_end
            continue
        count, p = read_leb(module, body_start)
        entries = bytearray()
        for _ in range(count):
            start = p
            name_len, p = read_leb(module, p)
            name = module[p : p + name_len].decode()
            p += name_len + 1  # the name, then the export kind byte
            _, p = read_leb(module, p)  # the index
            if name in unused:
                removed.append(name)
            else:
                kept.append(name)
                entries += module[start:p]
        if p != body_end:
            raise ValueError("export section size mismatch")
        body = leb(len(kept)) + bytes(entries)
        out += bytes([EXPORT_SECTION]) + leb(len(body)) + body
        pos = body_end
    return bytes(out), removed, kept


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    with open(argv[1], "rb") as f:
        module = f.read()
    trimmed, removed, kept = trim(module)
    missing = sorted(REQUIRED - set(kept))
    if missing:
        print(f"trim_exports: {argv[1]} lacks required exports: {', '.join(missing)}", file=sys.stderr)
        return 1
    with open(argv[2], "wb") as f:
        f.write(trimmed)
    print(f"trim_exports: dropped {len(removed)} unused proxy-wasm callbacks from the exports")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

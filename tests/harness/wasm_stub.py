"""A do-nothing proxy-wasm module, encoded by hand (no toolchain needed).

It lets the harness prove the Envoy wasm wiring (filter block, plugin
configuration, V8 runtime) without the real filter: Envoy loads it, the root
context accepts any configuration, and requests pass untouched.

Exports: memory, proxy_abi_version_0_2_1, proxy_on_memory_allocate (a fixed
scratch area), proxy_on_context_create, proxy_on_vm_start -> 1,
proxy_on_configure -> 1. No request callbacks, so nothing is intercepted.
"""

from __future__ import annotations

import sys
from pathlib import Path

# Unsigned LEB128 as the build's export trimmer writes it.
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools"))
from trim_exports import leb as _uleb  # noqa: E402

I32 = 0x7F


def _sleb(n: int) -> bytes:
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if (n == 0 and not byte & 0x40) or (n == -1 and byte & 0x40):
            out.append(byte)
            return bytes(out)
        out.append(byte | 0x80)


def _vec(items: list[bytes]) -> bytes:
    return _uleb(len(items)) + b"".join(items)


def _section(sid: int, payload: bytes) -> bytes:
    return bytes([sid]) + _uleb(len(payload)) + payload


def _name(s: str) -> bytes:
    return _uleb(len(s)) + s.encode()


def noop_proxy_wasm() -> bytes:
    types = [
        b"\x60" + _vec([]) + _vec([]),  # 0: () -> ()
        b"\x60" + _vec([bytes([I32])]) + _vec([bytes([I32])]),  # 1: (i32) -> i32
        b"\x60" + _vec([bytes([I32]), bytes([I32])]) + _vec([]),  # 2: (i32, i32) -> ()
        b"\x60" + _vec([bytes([I32]), bytes([I32])]) + _vec([bytes([I32])]),  # 3: (i32, i32) -> i32
    ]
    # name, type index, body (no locals)
    funcs = [
        ("proxy_abi_version_0_2_1", 0, b""),
        ("proxy_on_memory_allocate", 1, b"\x41" + _sleb(1024)),  # i32.const 1024
        ("proxy_on_context_create", 2, b""),
        ("proxy_on_vm_start", 3, b"\x41" + _sleb(1)),
        ("proxy_on_configure", 3, b"\x41" + _sleb(1)),
    ]
    type_sec = _section(1, _vec(types))
    func_sec = _section(3, _vec([_uleb(t) for _n, t, _b in funcs]))
    # One memory of 2 pages, no maximum.
    mem_sec = _section(5, _vec([b"\x00" + _uleb(2)]))
    exports = [_name("memory") + b"\x02" + _uleb(0)]
    exports += [_name(n) + b"\x00" + _uleb(i) for i, (n, _t, _b) in enumerate(funcs)]
    export_sec = _section(7, _vec(exports))
    bodies = []
    for _n, _t, body in funcs:
        code = _vec([]) + body + b"\x0b"  # no locals, body, end
        bodies.append(_uleb(len(code)) + code)
    code_sec = _section(10, _vec(bodies))
    return b"\x00asm\x01\x00\x00\x00" + type_sec + func_sec + mem_sec + export_sec + code_sec


def write_noop_wasm(path: str | Path) -> Path:
    p = Path(path)
    p.write_bytes(noop_proxy_wasm())
    return p

"""The built module exports only the proxy-wasm callbacks the filter implements
(tools/trim_exports.py): Envoy crosses into the VM for every exported callback of
every request, so an unused one left exported costs each request a VM call."""

import sys
from pathlib import Path

import pytest

from stack import wasm_path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools"))
import trim_exports  # noqa: E402


def exports(module: bytes) -> list[str]:
    _, removed, kept = trim_exports.trim(module, frozenset())
    assert removed == []
    return kept


def test_built_module_exports_only_what_the_filter_uses():
    if not wasm_path().exists():
        pytest.skip("dist/oidc_edge.wasm is not built (make build)")
    names = set(exports(wasm_path().read_bytes()))
    assert not names & trim_exports.UNUSED, f"unused callbacks still exported: {sorted(names & trim_exports.UNUSED)}"
    assert trim_exports.REQUIRED <= names, f"missing: {sorted(trim_exports.REQUIRED - names)}"


def test_trimming_keeps_every_other_byte():
    # A module with a type-less export section: "a" (function 0) and "proxy_on_log" (function 1).
    def entry(name: str, index: int) -> bytes:
        return bytes([len(name)]) + name.encode() + bytes([0, index])

    body = bytes([2]) + entry("a", 0) + entry("proxy_on_log", 1)
    custom = bytes([0, 4, 1, ord("x"), 9, 9])
    module = b"\0asm\x01\0\0\0" + custom + bytes([7, len(body)]) + body + custom
    trimmed, removed, kept = trim_exports.trim(module)
    assert (removed, kept) == (["proxy_on_log"], ["a"])
    body = bytes([1]) + entry("a", 0)
    assert trimmed == b"\0asm\x01\0\0\0" + custom + bytes([7, len(body)]) + body + custom
    with pytest.raises(ValueError):
        trim_exports.trim(module[:-3])

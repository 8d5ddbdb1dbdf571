#!/usr/bin/env python3
"""`make bench-abi`: what each proxy-wasm operation costs inside Envoy, in instructions.

Why: most of what oidc-edge adds to a request is not its own code but the crossings
between Envoy and the wasm VM (see README, "Cost per request"). This measures them one
by one with bench/abi-probe, a module that repeats a single host operation N times per
request and does nothing else, against the same module doing nothing, in one Envoy run
under callgrind (the same counting as `make bench-instructions`). Listeners are counted
in small batches, each with its own reference listener: valgrind cannot hold many V8 VMs.

Rows:
  a wasm filter that exports no per-stream callback   Envoy's own per-stream cost
  per callback Envoy calls into the module             (5 exported - none) / 5
  per operation                                        (N operations - 0) / N

Nothing is asserted; it prints a table. Takes about 2 minutes.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT / "tools"))

import instructions  # noqa: E402  (callgrind wrapper and control)
import stack as harness  # noqa: E402
import trim_exports  # noqa: E402

import requests  # noqa: E402

PER_STREAM = ("proxy_on_context_create", "proxy_on_request_headers", "proxy_on_response_headers", "proxy_on_done", "proxy_on_delete")
# A request like an API client's: a bearer token of a usual size.
HEADERS = {"Authorization": "Bearer " + "x" * 560, "Accept": "application/json"}

LISTENER = """\
  - name: {name}
    address: {{ socket_address: {{ address: 127.0.0.1, port_value: {port} }} }}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: {name}
          route_config:
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:
              - match: {{ prefix: "/" }}
                direct_response: {{ status: 200, body: {{ inline_string: ok }} }}
          http_filters:{wasm}
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
"""

WASM = """
          - name: envoy.filters.http.wasm
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm
              config:
                vm_config:
                  vm_id: {name}
                  runtime: envoy.wasm.runtime.v8
                  code: {{ local: {{ filename: {module} }} }}
                configuration:
                  "@type": type.googleapis.com/google.protobuf.StringValue
                  value: {config}"""


def build_probe(out: Path) -> tuple[Path, Path]:
    """The probe with every per-stream callback exported, and with none."""
    module = instructions.bench.build_abi_probe()
    every, bare = out / "probe.wasm", out / "probe-bare.wasm"
    every.write_bytes(module)
    bare.write_bytes(trim_exports.trim(module, frozenset(PER_STREAM))[0])
    return every, bare


def count_batch(listeners: list[tuple[str, Path | None, str]], out: Path, requests_per: int) -> dict[str, float]:
    """Instructions per request on each listener (name, module or None, probe config)."""
    ports = harness.free_ports(len(listeners) + 1)
    config = ["admin:", f"  address: {{ socket_address: {{ address: 127.0.0.1, port_value: {ports[-1]} }} }}",
              "static_resources:", "  listeners:"]
    for (name, module, op), port in zip(listeners, ports):
        wasm = WASM.format(name=name, module=json.dumps(str(module)), config=json.dumps(op)) if module else ""
        config.append(LISTENER.format(name=name, port=port, wasm=wasm))
    yaml = out / "envoy.yaml"
    yaml.write_text("\n".join(config))
    envoy = subprocess.Popen(
        [instructions.callgrind_envoy(out), "-c", str(yaml), "--concurrency", "1", "--disable-hot-restart",
         "--base-id", str(ports[-1]), "-l", "error"],
        stdout=subprocess.DEVNULL, stderr=(out / "envoy.log").open("w"),
    )
    counts: dict[str, float] = {}
    try:
        for (name, _, _), port in zip(listeners, ports):
            url = f"http://127.0.0.1:{port}/x"
            http = requests.Session()
            deadline = time.monotonic() + 600
            while True:
                try:
                    http.get(url, headers=HEADERS, timeout=60)
                    break
                except requests.ConnectionError:
                    if envoy.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError(f"Envoy did not serve {name}: see {out / 'envoy.log'}") from None
                    time.sleep(1)
            counts[name] = instructions.count_url(url, HEADERS, name, envoy.pid, out, requests_per)
    finally:
        envoy.terminate()
        envoy.wait(timeout=60)
    return counts


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=200, help="requests counted per listener (200)")
    args = ap.parse_args()
    if not shutil.which("valgrind") or not shutil.which("callgrind_control"):
        print("valgrind not found: `apt-get install -y valgrind` (make bench-abi does it)", file=sys.stderr)
        return 2
    started = time.monotonic()
    out = Path(tempfile.mkdtemp(prefix="oidc-edge-abi-"))
    every, bare = build_probe(out)
    n = 5
    first = count_batch([("no_filter", None, ""), ("bare", bare, "nothing 0"), ("nothing", every, "nothing 0")], out, args.requests)
    rows = [
        ("no filter", first["no_filter"], ""),
        ("wasm filter, no per-stream callback exported", first["bare"], f"{first['bare'] - first['no_filter']:+,.0f} Envoy's per-stream cost"),
        ("5 per-stream callbacks, each returning at once", first["nothing"],
         f"{(first['nothing'] - first['bare']) / len(PER_STREAM):+,.0f} per callback"),
    ]
    ops = [("time", "proxy_get_current_time_nanoseconds"), ("read", "proxy_get_header_map_pairs (request headers)"),
           ("value", "proxy_get_header_map_value (a present header)"), ("missing", "proxy_get_header_map_value (absent)"),
           ("add", "proxy_add_header_map_value"), ("replace", "proxy_replace_header_map_value"),
           ("remove", "proxy_remove_header_map_value (absent header)"), ("property", "proxy_set_property (filter state)"),
           ("metric", "proxy_increment_metric")]
    for i in range(0, len(ops), 2):
        pair = ops[i : i + 2]
        batch = count_batch([("nothing", every, "nothing 0")] + [(op, every, f"{op} {n}") for op, _ in pair], out, args.requests)
        for op, label in pair:
            rows.append((f"{label} x{n}", batch[op], f"{(batch[op] - batch['nothing']) / n:+,.0f} per call"))
    print(f"\nInstructions per request in Envoy's process (callgrind, {args.requests} keep-alive requests per listener,"
          " direct_response, 1 worker; each operation against the do-nothing module in the same run):")
    print(f"{'':52} {'instructions':>13}  cost")
    for label, total, cost in rows:
        print(f"{label:52} {total:>13,.0f}  {cost}")
    print("\nA header change also clears Envoy's route cache: the router matches the route again, once.")
    print("Whatever returns data (a header map, a present header's value) makes the host call back into the VM to"
          " allocate the answer: that call back is most of what a read costs.")
    print(f"took {time.monotonic() - started:.0f} s")
    shutil.rmtree(out, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

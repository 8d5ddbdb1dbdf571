#!/usr/bin/env python3
"""`make bench-instructions`: instructions per request, counted by callgrind, side by side.

The same Envoy configuration as `make bench` (bench/envoy-bench.template.yaml), with Envoy
run under `valgrind --tool=callgrind`. For each route, collection is switched on for a
fixed number of keep-alive requests only, so the count covers exactly the requests'
work in Envoy's process: the filters, V8 and the filter's wasm code, the HTTP codec.

Why beside `make bench`: on a shared machine req/s and even CPU time per request move
by half between runs (a neighbour on the same core slows every instruction), while
instruction counts are the same from run to run. They are not time: Envoy's RSA in
BoringSSL runs many instructions per cycle, crossings into V8 few, so instruction
ratios flatter the filter against `jwt_authn`; use them to compare builds of oidc-edge
with each other (`--wasm` against the current module), and req/s for the targets.

A second oidc-edge listener without the RBAC guard (the same VM) shows what the
guard costs; the `wasm floor` listener (bench/abi-probe reading the headers once and
marking the request, behind the same guard) what any proxy-wasm filter costs. All routes are direct_response ones: no upstream in the count. Takes 2 to 4 minutes
(Envoy starts slowly under valgrind). Nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import run as bench  # noqa: E402  (bench/run.py: the stack, routes and helpers)
import stack as harness  # noqa: E402

import requests  # noqa: E402


def callgrind_envoy(out_dir: Path) -> str:
    """A wrapper script that starts Envoy under callgrind with collection off."""
    envoy = harness.find_envoy()
    script = out_dir / "envoy-callgrind.sh"
    script.write_text(
        "#!/bin/sh\n"
        f"exec valgrind --tool=callgrind --instr-atstart=no --smc-check=all-non-file"
        f" --callgrind-out-file={out_dir}/callgrind.%p.out '{envoy}' \"$@\"\n"
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return str(script)


def control(*args: str) -> None:
    subprocess.run(["callgrind_control", *args], check=True, capture_output=True, timeout=300)


def total_of(dump: Path) -> int:
    for line in dump.read_text(errors="replace").splitlines():
        if line.startswith("totals:"):
            return int(line.split()[1])
    raise RuntimeError(f"no totals in {dump}")


def count(stack: bench.BenchStack, route: bench.Route, pid: int, out_dir: Path, n: int) -> float:
    """Instructions per request on `route` (see count_url)."""
    return count_url(stack.bench_url(route.listener, route.path), route.headers, route.name, pid, out_dir, n)


def count_url(url: str, headers: dict[str, str], label: str, pid: int, out_dir: Path, n: int) -> float:
    """Instructions per request over `n` requests on one keep-alive connection, after 20
    uncounted ones that must all be 200; the dump is kept as route-<label>.out."""
    http = requests.Session()
    for _ in range(20):
        resp = http.get(url, headers=headers, timeout=60)
        if resp.status_code != 200:
            raise RuntimeError(f"{label}: {resp.status_code} {resp.text[:200]}")
    before = set(out_dir.glob("callgrind.*.out.*"))
    control("-z", str(pid))
    control("-i", "on", str(pid))
    for _ in range(n):
        http.get(url, headers=headers, timeout=60)
    control("-i", "off", str(pid))
    control("-d", "route", str(pid))
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        new = sorted(set(out_dir.glob("callgrind.*.out.*")) - before)
        if new:
            time.sleep(0.5)  # the dump is written in one go, but give it a moment
            named = out_dir / ("route-" + re.sub(r"[^a-z0-9]+", "-", label.lower()).strip("-") + ".out")
            new[-1].rename(named)
            return total_of(named) / n
        time.sleep(0.2)
    raise RuntimeError(f"{label}: callgrind wrote no dump")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=300, help="requests counted per route (300)")
    ap.add_argument("--keep", action="store_true", help="keep the callgrind dumps (one per route, for callgrind_annotate)")
    ap.add_argument("--wasm", help="another build of the module to count beside the current one (a second wasm VM, behind the same"
                    " RBAC guard: builds from before the guard get its 403)")
    args = ap.parse_args()
    if not shutil.which("valgrind") or not shutil.which("callgrind_control"):
        print("valgrind not found: `apt-get install -y valgrind` (make bench-instructions does it)", file=sys.stderr)
        return 2

    out_dir = Path(tempfile.mkdtemp(prefix="oidc-edge-callgrind-"))
    harness.find_envoy = lambda wrapper=callgrind_envoy(out_dir): wrapper  # the stack starts Envoy through it

    class Stack(bench.BenchStack):
        """The bench stack, plus a listener with oidc-edge but without its guard (the
        guard's cost) and, with --wasm, a listener running the other build."""

        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            taken = set(self.ports.values()) | set(self.bench_ports.values())
            spare = [p for p in harness.free_ports(12) if p not in taken]
            self.bench_ports["unguarded"] = spare[0]
            if args.wasm:
                self.bench_ports["other"] = spare[1]

        def clone_edge(self, text: str, name: str) -> str:
            start, end = text.index("  - name: oidc_edge\n"), text.index("  clusters:")
            return (
                text[start:end]
                .replace("name: oidc_edge", f"name: {name}")
                .replace("stat_prefix: oidc_edge", f"stat_prefix: {name}")
                .replace(f"port_value: {self.bench_ports['oidc_edge']}", f"port_value: {self.bench_ports[name]}")
            )

        def render_envoy_config(self) -> str:
            text = super().render_envoy_config()
            end = text.index("  clusters:")
            # Same vm_id, code and configuration: the same VM serves both listeners.
            unguarded = self.clone_edge(text, "unguarded")
            guard_start = unguarded.index("          - name: oidc-edge-guard")
            unguarded = unguarded[:guard_start] + unguarded[unguarded.index("          - name: envoy.filters.http.router", guard_start):]
            extra = unguarded
            if args.wasm:
                extra += (
                    self.clone_edge(text, "other")
                    .replace("vm_id: oidc-edge", "vm_id: other")
                    .replace(json.dumps(str(self.wasm)), json.dumps(str(Path(args.wasm).resolve())))
                )
            return text[:end] + extra + text[end:]

    started = time.monotonic()
    with Stack(upstream="echo", name="bench-instructions", plugin_config_overrides=bench.PLUGIN_OVERRIDES,
               envoy_concurrency=1, startup_timeout=900) as stack:
        stack.start()
        stack.wait_filter_ready(600)
        token = bench.mint_token(bench.token_claims(stack, sub="bench", ttl=86400))
        bearer = {"Authorization": f"Bearer {token}"}
        cookie = {"Cookie": bench.session_cookie(stack)}
        routes = [
            bench.Route("no filter", "plain", "/direct/x", bearer),
            bench.Route("no filter, session cookie", "plain", "/direct/x", cookie),
            bench.Route("jwt_authn", "jwt_authn", "/direct/x", bearer),
            bench.Route("jwt_authn + jwt_cache_config", "jwt_cached", "/direct/x", bearer),
            bench.Route("wasm floor (headers, mark)", "wasm_floor", "/direct/x", bearer),
        ]
        for listener, label in [("oidc_edge", "oidc-edge")] + ([("other", "--wasm build")] if args.wasm else []):
            routes += [
                bench.Route(f"{label} pass-through", listener, "/public/direct/x", bearer),
                bench.Route(f"{label} bearer", listener, "/direct/x", bearer),
                bench.Route(f"{label} session", listener, "/direct/x", cookie),
            ]
        routes.append(bench.Route("oidc-edge bearer, no guard", "unguarded", "/direct/x", bearer))
        pid = stack.pids()["envoy"]
        counts = {r.name: count(stack, r, pid, out_dir, args.requests) for r in routes}

    base, native = counts["no filter"], counts["jwt_authn"]
    print(f"\nInstructions per request in Envoy's process (callgrind, {args.requests} keep-alive requests per route,"
          " direct_response, 1 worker):")
    print(f"{'route':32} {'instructions':>13} {'over no filter':>15} {'÷ jwt_authn':>12}")
    for name, n in counts.items():
        print(f"{name:32} {n:>13,.0f} {n - base:>+15,.0f} {native / n:>11.2f}x")
    session, bearer, same = counts["oidc-edge session"], counts["oidc-edge bearer"], counts["no filter, session cookie"]
    print(f"\nThe guard (RBAC after oidc-edge) costs {bearer - counts['oidc-edge bearer, no guard']:,.0f} instructions per request.")
    print(f"The targets' ratios by instructions: bearer ÷ jwt_authn {native / bearer:.2f}x;"
          f" session ÷ no filter {base / session:.2f}x, ÷ no filter with the same Cookie header {same / session:.2f}x")
    print("Same from run to run (unlike req/s here), but not time: see this script's docstring.")
    if args.keep:
        print(f"dumps kept in {out_dir} (callgrind_annotate --inclusive=yes FILE)")
    else:
        shutil.rmtree(out_dir, ignore_errors=True)
    print(f"took {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

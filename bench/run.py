#!/usr/bin/env python3
"""`make bench`: oidc-edge against no filter and Envoy's native jwt_authn, side by side.

One Envoy (--concurrency 1) started by the e2e harness (IdP + echo upstream + Envoy on
free ports) with listeners that differ only in their HTTP filters (see
bench/envoy-bench.template.yaml). `wrk` drives each route in turn, the main four twice
in opposite orders, and the ratios are computed within this one run: absolute numbers
on a shared 2-core machine move from run to run, ratios much less.

Also measured: the cost of one RS256 verification inside the filter, as the difference
in per-request time between the cached bearer route and a route with the verdict cache
off (token_cache_size 0), and directly with the verify_bench wasm micro-benchmark
(--verify-wasm).

Nothing here asserts a timing: it prints.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import string
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "harness"))

from oidc_login import login  # noqa: E402
from stack import DEFAULT_KEYS, Stack, free_ports, new_session  # noqa: E402
from tokens import mint_token, public_jwk, token_claims  # noqa: E402

TEMPLATE = ROOT / "bench" / "envoy-bench.template.yaml"
ROUTES_INDENT = 12
COOKIE_PREFIX = "oidc_edge"

ROUTES_YAML = """\
name: bench
virtual_hosts:
- name: all
  domains: ["*"]
  routes:
  - match: { prefix: "/direct/" }
    direct_response: { status: 200, body: { inline_string: "ok" } }
  - match: { prefix: "/cold/direct/" }
    direct_response: { status: 200, body: { inline_string: "ok" } }
  - match: { prefix: "/public/direct/" }
    direct_response: { status: 200, body: { inline_string: "ok" } }
  - match: { prefix: "/" }
    route: { cluster: upstream, timeout: 0s }
"""

# The plugin: the harness default, plus a route without verdict cache and a pass-through path.
PLUGIN_OVERRIDES = {
    "routes": [{"path_prefix": "/cold/", "token_cache_size": 0}],
    "pass_through_paths": ["/public/"],
}

# RECIPE.md "Measured baselines" (one earlier run, direct_response, wrk -c16 10 s).
RECIPE = {
    "no filter": 34746,
    "jwt_authn": 12421,
    "oidc-edge pass-through (no crypto)": 27320,
    "oidc-edge bearer, cache off": 1201,
    "oidc-edge bearer": 23172,
}


class BenchStack(Stack):
    """The harness stack with the bench's Envoy configuration (extra listeners)."""

    def __init__(self, **kwargs):
        kwargs["start"] = False
        super().__init__(**kwargs)
        taken = set(self.ports.values())
        extra = [p for p in free_ports(8) if p not in taken][:3]
        self.bench_ports = {"plain": extra[0], "jwt_authn": extra[1], "jwt_cached": extra[2], "oidc_edge": self.envoy_port}

    def render_envoy_config(self) -> str:
        from stack import deep_merge

        self.plugin_config = deep_merge(self.default_plugin_config(), self.plugin_config_overrides)
        routes = "\n".join(" " * ROUTES_INDENT + line for line in ROUTES_YAML.splitlines())
        jwks = json.dumps({"keys": [public_jwk("k1", DEFAULT_KEYS)]})
        return string.Template(TEMPLATE.read_text()).substitute(
            ADMIN_PORT=self.ports["envoy_admin"],
            PLAIN_PORT=self.bench_ports["plain"],
            JWT_PORT=self.bench_ports["jwt_authn"],
            JWT_CACHED_PORT=self.bench_ports["jwt_cached"],
            EDGE_PORT=self.bench_ports["oidc_edge"],
            IDP_PORT=self.ports["idp"],
            UPSTREAM_PORT=self.ports["upstream"],
            ROUTES=routes,
            ISSUER=json.dumps(self.issuer),
            AUDIENCE=json.dumps(self.client_id),
            JWKS=json.dumps(jwks),
            WASM=json.dumps(str(self.wasm)),
            PLUGIN_CONFIG=json.dumps(json.dumps(self.plugin_config)),
        )

    def bench_url(self, listener: str, path: str) -> str:
        return f"http://127.0.0.1:{self.bench_ports[listener]}{path}"


# -------------------------------------------------------------------- wrk --


@dataclass
class Route:
    name: str
    listener: str
    path: str
    headers: dict[str, str]


@dataclass
class Result:
    rps: float
    p50_ms: float
    p99_ms: float
    non_2xx: int
    errors: int
    requests: int = 0
    # CPU time Envoy (all its threads) spent per request: unlike req/s, hardly moved by
    # other processes competing for the cores.
    envoy_cpu_us: float = float("nan")


@dataclass
class Row:
    route: Route
    runs: list[Result] = field(default_factory=list)

    def mean(self, attr: str) -> float:
        values = [getattr(r, attr) for r in self.runs]
        return sum(values) / len(values) if values else float("nan")

    @property
    def rps(self) -> float:
        return self.mean("rps")

    @property
    def spread(self) -> str:
        if len(self.runs) < 2:
            return ""
        lo, hi = min(r.rps for r in self.runs), max(r.rps for r in self.runs)
        return f"{lo:,.0f}–{hi:,.0f}"

    @property
    def cpu(self) -> float:
        return self.mean("envoy_cpu_us")

    @property
    def bad(self) -> int:
        return sum(r.non_2xx + r.errors for r in self.runs)


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}


def _ms(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text.strip())
    if not m:
        return float("nan")
    return float(m.group(1)) * _UNITS[m.group(2)]


def parse_wrk(out: str) -> Result:
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    p50 = re.search(r"^\s+50%\s+(\S+)", out, re.M)
    p99 = re.search(r"^\s+99%\s+(\S+)", out, re.M)
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    total = re.search(r"(\d+) requests in", out)
    errs = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if not rps:
        raise RuntimeError(f"cannot read wrk's output:\n{out}")
    return Result(
        rps=float(rps.group(1)),
        p50_ms=_ms(p50.group(1)) if p50 else float("nan"),
        p99_ms=_ms(p99.group(1)) if p99 else float("nan"),
        non_2xx=int(non2xx.group(1)) if non2xx else 0,
        errors=sum(int(x) for x in errs.groups()) if errs else 0,
        requests=int(total.group(1)) if total else 0,
    )


_TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, all threads (/proc/PID/stat fields 14, 15)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK


def run_wrk(stack: BenchStack, route: Route, args: argparse.Namespace, duration: float | None = None) -> Result:
    argv = ["wrk", f"-t{args.threads}", f"-c{args.connections}", f"-d{round(duration or args.duration)}s", "--latency"]
    for name, value in route.headers.items():
        argv += ["-H", f"{name}: {value}"]
    argv.append(stack.bench_url(route.listener, route.path))
    envoy = stack.pids()["envoy"]
    cpu_before = cpu_seconds(envoy)
    out = subprocess.run(argv, check=True, capture_output=True, text=True, timeout=(duration or args.duration) + 30).stdout
    cpu = cpu_seconds(envoy) - cpu_before
    stack.check_alive()
    result = parse_wrk(out)
    if result.requests:
        result.envoy_cpu_us = cpu * 1e6 / result.requests
    return result


# ------------------------------------------------------------------ setup --


def session_cookie(stack: BenchStack) -> str:
    """A real login through Envoy and the IdP; the filter's session cookie(s) as a header."""
    result = login(stack, "/app/", user="bench")
    if result.callback_response.status_code != 302:
        raise RuntimeError(f"login failed: {result.callback_response.status_code} {result.callback_response.text[:300]}")
    pairs = [f"{c.name}={c.value}" for c in result.session.cookies if c.name.startswith(COOKIE_PREFIX) and "_tx" not in c.name]
    if not pairs:
        raise RuntimeError("no session cookie after login")
    return "; ".join(pairs)


def check_routes(stack: BenchStack, routes: list[Route]) -> None:
    """Each route answers 200 with what it is given, and the filters really filter."""
    http = new_session()
    for r in routes:
        resp = http.get(stack.bench_url(r.listener, r.path), headers=r.headers, timeout=10, allow_redirects=False)
        if resp.status_code != 200:
            raise RuntimeError(f"{r.name}: GET {r.path} gave {resp.status_code}: {resp.text[:300]}")
        if r.listener == "oidc_edge" and not r.path.startswith(("/public/", "/direct/", "/cold/direct/")):
            if resp.json()["headers"].get("x-auth-request-user") != "bench":
                raise RuntimeError(f"{r.name}: the upstream did not get the identity")
    for listener in ("jwt_authn", "jwt_cached", "oidc_edge"):
        resp = http.get(stack.bench_url(listener, "/api/x"), headers={"Accept": "application/json"}, timeout=10, allow_redirects=False)
        if resp.status_code != 401:
            raise RuntimeError(f"{listener} without a token answered {resp.status_code}, not 401")


# ----------------------------------------------------------------- report --


def fmt_ratio(x: float) -> str:
    return f"{x:.2f}x" if x == x else "-"


def table(title: str, rows: list[Row], base: Row, native: Row, recipe: bool = False) -> None:
    print(f"\n{title}")
    head = (f"{'route':38} {'req/s':>9} {'range':>15} {'p50 ms':>8} {'p99 ms':>8} {'÷ no filter':>12} {'÷ jwt_authn':>12}"
            f" {'Envoy CPU µs/req':>17} {'CPU ÷ jwt_authn':>16}")
    if recipe:
        head += f" {'RECIPE req/s':>13}"
    print(head)
    print("-" * len(head))
    for row in rows:
        line = (
            f"{row.route.name:38} {row.rps:>9,.0f} {row.spread:>15} {row.mean('p50_ms'):>8.2f} {row.mean('p99_ms'):>8.2f}"
            f" {fmt_ratio(row.rps / base.rps):>12} {fmt_ratio(row.rps / native.rps):>12}"
            f" {row.cpu:>17.1f} {fmt_ratio(row.cpu / native.cpu):>16}"
        )
        if recipe:
            ref = RECIPE.get(row.route.name)
            line += f" {ref:>13,}" if ref else f" {'':>13}"
        if row.bad:
            line += f"  !! {row.bad} non-2xx/socket errors"
        print(line)


def wasm_microbench(path: str) -> list[tuple[str, float]]:
    """Runs a wasm32-wasip1 example under Node's WASI; prints its report, returns its BENCH lines."""
    node = shutil.which("node") or "node"
    proc = subprocess.run([node, "--no-warnings", str(ROOT / "bench" / "wasi-run.mjs"), path], capture_output=True, text=True, timeout=600)
    lines = [line for line in proc.stdout.splitlines() if not line.startswith("BENCH\t")]
    print("\n".join(lines))
    if proc.returncode != 0:
        print(proc.stderr, file=sys.stderr)
        raise RuntimeError(f"{path} failed with status {proc.returncode}")
    out = []
    for line in proc.stdout.splitlines():
        if line.startswith("BENCH\t"):
            _, name, us = line.split("\t")
            out.append((name, float(us)))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", type=float, default=float(os.environ.get("BENCH_DURATION", 6)), help="seconds per wrk run (6)")
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=2, help="rounds of the main four routes, alternating order (2)")
    ap.add_argument("--no-direct", action="store_true", help="skip the direct_response table")
    ap.add_argument("--verify-wasm", help="the verify_bench wasm module to run under Node first")
    ap.add_argument("--flow-wasm", help="the flow_bench wasm module to run under Node first")
    args = ap.parse_args()

    if not shutil.which("wrk"):
        print("wrk not found: `apt-get install -y wrk` (make bench does it)", file=sys.stderr)
        return 2
    started = time.monotonic()
    load_before = os.getloadavg()

    micro: list[tuple[str, float]] = []
    if args.verify_wasm:
        print("== RS256 verification in wasm (V8 via Node WASI), verify_bench ==")
        micro = wasm_microbench(args.verify_wasm)
    if args.flow_wasm:
        print("\n== The core's per-request work in wasm (V8 via Node WASI), flow_bench ==")
        wasm_microbench(args.flow_wasm)

    print("\n== Envoy 1 worker (--concurrency 1), wrk "
          f"-t{args.threads} -c{args.connections} -d{args.duration:g}s per run ==")
    with BenchStack(name="bench", plugin_config_overrides=PLUGIN_OVERRIDES, envoy_concurrency=1) as stack:
        stack.start()
        stack.wait_filter_ready(20)
        token = mint_token(token_claims(stack, sub="bench", ttl=86400))
        bearer = {"Authorization": f"Bearer {token}"}
        cookie = {"Cookie": session_cookie(stack)}

        def r(name: str, listener: str, path: str, headers: dict) -> Route:
            return Route(name, listener, path, headers)

        main_routes = [
            r("no filter", "plain", "/api/x", bearer),
            r("jwt_authn", "jwt_authn", "/api/x", bearer),
            r("oidc-edge bearer", "oidc_edge", "/api/x", bearer),
            r("oidc-edge session", "oidc_edge", "/app/x", cookie),
        ]
        extra_routes = [
            # The session's fair baseline: Envoy parses every byte of the cookie (about 40
            # instructions a byte) whether or not a filter reads it.
            r("no filter, same Cookie header", "plain", "/app/x", cookie),
            r("jwt_authn + jwt_cache_config", "jwt_cached", "/api/x", bearer),
            r("oidc-edge pass-through (no crypto)", "oidc_edge", "/public/x", bearer),
            r("oidc-edge bearer, cache off", "oidc_edge", "/cold/api/x", bearer),
        ]
        direct_routes = [
            r("no filter", "plain", "/direct/x", bearer),
            r("no filter, same Cookie header", "plain", "/direct/x", cookie),
            r("jwt_authn", "jwt_authn", "/direct/x", bearer),
            r("jwt_authn + jwt_cache_config", "jwt_cached", "/direct/x", bearer),
            r("oidc-edge bearer", "oidc_edge", "/direct/x", bearer),
            r("oidc-edge session", "oidc_edge", "/direct/x", cookie),
            r("oidc-edge pass-through (no crypto)", "oidc_edge", "/public/direct/x", bearer),
            r("oidc-edge bearer, cache off", "oidc_edge", "/cold/direct/x", bearer),
        ]
        check_routes(stack, main_routes + extra_routes + ([] if args.no_direct else direct_routes))

        # Warm-up: V8 tiers the module up, the verdict cache fills.
        for route in main_routes[2:] + extra_routes[3:]:
            run_wrk(stack, route, args, duration=2)

        rows = {route.name: Row(route) for route in main_routes}
        for i in range(args.rounds):
            order = main_routes if i % 2 == 0 else list(reversed(main_routes))
            for route in order:
                rows[route.name].runs.append(run_wrk(stack, route, args))
                print(f"  round {i + 1}: {route.name:36} {rows[route.name].runs[-1].rps:>9,.0f} req/s", flush=True)
        extra = {}
        for route in extra_routes:
            extra[route.name] = Row(route, [run_wrk(stack, route, args)])
            print(f"  once:    {route.name:36} {extra[route.name].rps:>9,.0f} req/s", flush=True)
        direct = {}
        if not args.no_direct:
            for route in direct_routes:
                direct[route.name] = Row(route, [run_wrk(stack, route, args)])
                print(f"  direct:  {route.name:36} {direct[route.name].rps:>9,.0f} req/s", flush=True)

    load_after = os.getloadavg()
    base, native = rows["no filter"], rows["jwt_authn"]
    table("To the echo upstream (the main comparison; req/s = mean of the rounds, range = min–max):",
          list(rows.values()) + list(extra.values()), base, native)
    if direct:
        table("Envoy direct_response, no upstream (RECIPE.md's kind of table; one run each):",
              list(direct.values()), direct["no filter"], direct["jwt_authn"], recipe=True)

    bearer_row, session_row = rows["oidc-edge bearer"], rows["oidc-edge session"]
    print("\nTargets (printed, never asserted); req/s ratios, and the same from Envoy's CPU per request:")
    b = bearer_row.rps / native.rps
    s = session_row.rps / base.rps
    b_cpu = native.cpu / bearer_row.cpu
    s_cpu = base.cpu / session_row.cpu
    print(f"  bearer ÷ jwt_authn  = {b:.2f} req/s, {b_cpu:.2f} by CPU  (target ≥ 1.5: {'met' if b >= 1.5 else 'NOT met'} by req/s)")
    print(f"  session ÷ no filter = {s:.2f} req/s, {s_cpu:.2f} by CPU  (target ≥ 0.75: {'met' if s >= 0.75 else 'NOT met'} by req/s)")
    same = extra.get("no filter, same Cookie header")
    if same:
        print(f"  session ÷ no filter with the same Cookie header = {session_row.rps / same.rps:.2f} req/s,"
              f" {same.cpu / session_row.cpu:.2f} by CPU (one run of the baseline)")

    print("\nCold RS256 verification inside the filter: route with the verdict cache off minus the cached route,"
          "\nas wall time per request at saturation (1/throughput, 1 worker) and as Envoy CPU time per request:")
    for label, cached, cold in (
        ("to the upstream", bearer_row, extra["oidc-edge bearer, cache off"]),
        ("direct_response", direct.get("oidc-edge bearer"), direct.get("oidc-edge bearer, cache off")),
    ):
        if cached and cold:
            wall = 1e6 / cold.rps - 1e6 / cached.rps
            cpu = cold.cpu - cached.cpu
            print(f"  {label:16} wall {1e6 / cached.rps:7.1f} -> {1e6 / cold.rps:7.1f} µs: {wall:7.1f} µs;"
                  f"  CPU {cached.cpu:7.1f} -> {cold.cpu:7.1f} µs: {cpu:7.1f} µs per verification")
    if micro:
        print("  direct, verify_bench in wasm under Node's V8 (same load, same run):")
        for name, us in micro:
            print(f"    {us:9.1f} µs  {name}")

    print(f"\nNoise: load average {load_before[0]:.1f} before, {load_after[0]:.1f} after, on {os.cpu_count()} cores shared with"
          " other work; wrk, Envoy and the Node upstream compete for them. Compare ratios within one run,"
          " not absolute numbers across runs.")
    print(f"bench took {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

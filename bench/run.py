#!/usr/bin/env python3
"""`make bench`: oidc-edge against no filter and Envoy's native jwt_authn, side by side.

One Envoy with one worker (--concurrency 1), started by the e2e harness (IdP + echo
upstream + Envoy on free ports), with listeners that differ only in their HTTP filters
(bench/envoy-bench.template.yaml). `wrk` drives each route in turn for the same time.

What is measured is Envoy's throughput, so Envoy must be the bottleneck:
- Envoy (all its threads) is pinned to CPU 0; wrk and the upstream run on the other
  CPUs. Without pinning, wrk, the upstream and Envoy fight for the same two cores and
  req/s measures the mix (an earlier version of this bench, through the Node echo
  upstream, was bound by Node: every route came out near the same req/s).
- The upstream is nginx answering 200 (Debian's, as `make setup` installs it): native,
  cheap, and it echoes the identity header it received so the bench can check the
  filter really forwarded it. Without nginx, the harness's Node echo upstream is used
  and the table says so.
- Each row prints how busy Envoy's core was; a row under 90% was bound by something
  else (wrk, the upstream) and is flagged.
- The main routes run in several short rounds, the order reversed every round; ratios
  are taken within each round (the machine's speed drifts between rounds: a neighbour
  on a shared host steals cycles) and the median of those is reported.

Beside the filters, a `wasm floor` listener runs bench/abi-probe doing the least any
proxy-wasm filter that checks requests does: read the request headers once and set the
filter state the guard needs, behind the same guard. It shows what part of oidc-edge's
cost is the price of being a wasm filter at all.

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
import statistics
import string
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "harness"))
sys.path.insert(0, str(ROOT / "tools"))

from oidc_login import login  # noqa: E402
from stack import DEFAULT_KEYS, Stack, _Proc, free_ports, new_session  # noqa: E402
from tokens import mint_token, public_jwk, token_claims  # noqa: E402
import trim_exports  # noqa: E402

TEMPLATE = ROOT / "bench" / "envoy-bench.template.yaml"
ROUTES_INDENT = 12
COOKIE_PREFIX = "oidc_edge"
# The header nginx answers with: the X-Auth-Request-User value it received.
SAW_USER = "x-upstream-saw-user"

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
    route: { cluster: bench_upstream, timeout: 0s }
"""

# The plugin: the harness default, plus a route without verdict cache and a pass-through path.
PLUGIN_OVERRIDES = {
    "routes": [{"path_prefix": "/cold/", "token_cache_size": 0}],
    "pass_through_paths": ["/public/"],
}

# RECIPE.md "Measured baselines" (one earlier run, direct_response, wrk -c16 10 s, unpinned).
RECIPE = {
    "no filter": 34746,
    "jwt_authn": 12421,
    "oidc-edge pass-through (no crypto)": 27320,
    "oidc-edge bearer, cache off": 1201,
    "oidc-edge bearer": 23172,
}

NGINX_CONF = """\
daemon off; master_process off; worker_processes 1;
pid {dir}/nginx.pid; error_log {dir}/nginx-error.log warn;
events {{ worker_connections 1024; }}
http {{
  access_log off;
  client_body_temp_path {dir}/body; proxy_temp_path {dir}/proxy; fastcgi_temp_path {dir}/fastcgi;
  uwsgi_temp_path {dir}/uwsgi; scgi_temp_path {dir}/scgi;
  large_client_header_buffers 4 96k;
  keepalive_requests 10000000; keepalive_timeout 300s;
  server {{
    listen 127.0.0.1:{port};
    location / {{
      add_header {saw} $http_x_auth_request_user always;
      return 200 "ok";
    }}
  }}
}}
"""


def find_nginx() -> str | None:
    return shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx",) if Path(p).is_file()), None)


def build_abi_probe() -> bytes:
    """bench/abi-probe built (its own workspace and target folder); the module's bytes."""
    subprocess.run(
        ["cargo", "build", "--quiet", "--release", "--target", "wasm32-wasip1",
         "--manifest-path", str(ROOT / "bench" / "abi-probe" / "Cargo.toml"), "--target-dir", str(ROOT / "target" / "abi-probe")],
        check=True,
    )
    return (ROOT / "target" / "abi-probe" / "wasm32-wasip1" / "release" / "abi_probe.wasm").read_bytes()


def build_floor_wasm(out: Path) -> Path:
    """bench/abi-probe, exporting the same per-stream callbacks as oidc-edge (no proxy_on_done)."""
    module = build_abi_probe()
    path = out / "wasm-floor.wasm"
    path.write_bytes(trim_exports.trim(module, frozenset({"proxy_on_done"}))[0])
    return path


# CPUs: Envoy gets the first, everything else (wrk, the upstreams, the IdP) the rest.
CPUS = sorted(os.sched_getaffinity(0))
ENVOY_CPUS = set(CPUS[:1])
LOAD_CPUS = set(CPUS[1:]) or set(CPUS)


def pin(pid: int, cpus: set[int]) -> None:
    """Every thread of `pid` onto `cpus` (threads made later inherit it)."""
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            os.sched_setaffinity(int(task.name), cpus)
        except (ProcessLookupError, PermissionError, OSError):
            pass


class BenchStack(Stack):
    """The harness stack with the bench's Envoy configuration (extra listeners), the
    floor module and, with `upstream="nginx"`, nginx as the upstream of every route that
    is not a direct response."""

    def __init__(self, upstream: str = "nginx", **kwargs):
        kwargs["start"] = False
        super().__init__(**kwargs)
        taken = set(self.ports.values())
        extra = [p for p in free_ports(10) if p not in taken][:5]
        self.bench_ports = {"plain": extra[0], "jwt_authn": extra[1], "jwt_cached": extra[2], "wasm_floor": extra[3],
                            "oidc_edge": self.envoy_port}
        self.nginx_port = extra[4]
        self.workdir = Path(tempfile.mkdtemp(prefix="oidc-edge-bench-"))
        self.floor_wasm = build_floor_wasm(self.workdir)
        nginx = find_nginx() if upstream == "nginx" else None
        self.upstream_kind = "nginx" if nginx else "echo"
        self.nginx_bin = nginx
        self._nginx: _Proc | None = None

    @property
    def bench_upstream_port(self) -> int:
        return self.nginx_port if self.upstream_kind == "nginx" else self.ports["upstream"]

    def start(self) -> "BenchStack":
        if self.nginx_bin:
            conf = self.workdir / "nginx.conf"
            conf.write_text(NGINX_CONF.format(dir=self.workdir, port=self.nginx_port, saw=SAW_USER))
            self.artifacts.mkdir(parents=True, exist_ok=True)
            self._nginx = _Proc("nginx", [self.nginx_bin, "-c", str(conf), "-p", str(self.workdir)], self.workdir / "nginx.log")
        super().start()
        pids = self.pids()
        pin(pids["envoy"], ENVOY_CPUS)
        for name, pid in pids.items():
            if name != "envoy":
                pin(pid, LOAD_CPUS)
        if self._nginx:
            pin(self._nginx.pid, LOAD_CPUS)
        return self

    def stop(self) -> None:
        super().stop()
        if self._nginx:
            self._nginx.stop()
            self._nginx = None
        shutil.rmtree(self.workdir, ignore_errors=True)

    def check_alive(self) -> None:
        super().check_alive()
        if self._nginx:
            self._nginx.check()

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
            FLOOR_PORT=self.bench_ports["wasm_floor"],
            EDGE_PORT=self.bench_ports["oidc_edge"],
            IDP_PORT=self.ports["idp"],
            UPSTREAM_PORT=self.ports["upstream"],
            BENCH_UPSTREAM_PORT=self.bench_upstream_port,
            ROUTES=routes,
            ISSUER=json.dumps(self.issuer),
            AUDIENCE=json.dumps(self.client_id),
            JWKS=json.dumps(jwks),
            WASM=json.dumps(str(self.wasm)),
            FLOOR_WASM=json.dumps(str(self.floor_wasm)),
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
    # Envoy's CPU time over the run's wall time: 1.0 when its core was never idle.
    envoy_busy: float = float("nan")


@dataclass
class Row:
    route: Route
    runs: list[Result] = field(default_factory=list)

    def median(self, attr: str) -> float:
        values = [getattr(r, attr) for r in self.runs]
        return statistics.median(values) if values else float("nan")

    @property
    def rps(self) -> float:
        return self.median("rps")

    @property
    def spread(self) -> str:
        if len(self.runs) < 2:
            return ""
        lo, hi = min(r.rps for r in self.runs), max(r.rps for r in self.runs)
        return f"{lo:,.0f}–{hi:,.0f}"

    @property
    def cpu(self) -> float:
        return self.median("envoy_cpu_us")

    @property
    def busy(self) -> float:
        return self.median("envoy_busy")

    @property
    def bad(self) -> int:
        return sum(r.non_2xx + r.errors for r in self.runs)

    def ratio(self, other: "Row") -> float:
        """Median over rounds of this row's req/s over `other`'s in the same round."""
        pairs = [a.rps / b.rps for a, b in zip(self.runs, other.runs) if b.rps]
        return statistics.median(pairs) if pairs else float("nan")


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
    seconds = round(duration or args.duration)
    argv = ["wrk", f"-t{args.threads}", f"-c{args.connections}", f"-d{seconds}s", "--latency"]
    for name, value in route.headers.items():
        argv += ["-H", f"{name}: {value}"]
    argv.append(stack.bench_url(route.listener, route.path))
    envoy = stack.pids()["envoy"]
    cpu_before, wall_before = cpu_seconds(envoy), time.monotonic()
    out = subprocess.run(argv, check=True, capture_output=True, text=True, timeout=seconds + 30,
                         preexec_fn=lambda: os.sched_setaffinity(0, LOAD_CPUS)).stdout  # noqa: PLW1509
    cpu, wall = cpu_seconds(envoy) - cpu_before, time.monotonic() - wall_before
    stack.check_alive()
    result = parse_wrk(out)
    if result.requests:
        result.envoy_cpu_us = cpu * 1e6 / result.requests
    result.envoy_busy = cpu / max(wall, seconds) if len(ENVOY_CPUS) == 1 else float("nan")
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
        checked = r.listener == "oidc_edge" and not r.path.startswith(("/public/", "/direct/", "/cold/direct/"))
        if checked:
            if stack.upstream_kind == "nginx":
                user = resp.headers.get(SAW_USER)
            else:
                user = resp.json()["headers"].get("x-auth-request-user")
            if user != "bench":
                raise RuntimeError(f"{r.name}: the upstream did not get the identity ({user!r})")
    for listener in ("jwt_authn", "jwt_cached", "oidc_edge"):
        resp = http.get(stack.bench_url(listener, "/api/x"), headers={"Accept": "application/json"}, timeout=10, allow_redirects=False)
        if resp.status_code != 401:
            raise RuntimeError(f"{listener} without a token answered {resp.status_code}, not 401")


# ----------------------------------------------------------------- report --


def fmt_ratio(x: float) -> str:
    return f"{x:.2f}x" if x == x else "-"


def table(title: str, rows: list[Row], base: Row, native: Row, recipe: bool = False) -> None:
    """One row per route; ratios are medians of within-round ratios where the row ran in
    the rounds, else plain ratios of medians (marked ~)."""
    print(f"\n{title}")
    head = (f"{'route':42} {'req/s':>9} {'range':>15} {'p50 ms':>7} {'p99 ms':>7} {'÷ no filter':>12} {'÷ jwt_authn':>12}"
            f" {'Envoy µs/req':>13} {'core busy':>10}")
    if recipe:
        head += f" {'RECIPE req/s':>13}"
    print(head)
    print("-" * len(head))
    for row in rows:
        def ratio(other: Row) -> str:
            if row is other:
                return "1.00x"
            if len(row.runs) == len(other.runs) > 1:
                return fmt_ratio(row.ratio(other))
            return "~" + fmt_ratio(row.rps / other.rps)

        line = (
            f"{row.route.name:42} {row.rps:>9,.0f} {row.spread:>15} {row.median('p50_ms'):>7.2f} {row.median('p99_ms'):>7.2f}"
            f" {ratio(base):>12} {ratio(native):>12} {row.cpu:>13.1f} {row.busy:>9.0%} "
        )
        if recipe:
            ref = RECIPE.get(row.route.name)
            line += f" {ref:>13,}" if ref else f" {'':>13}"
        if row.busy == row.busy and row.busy < 0.9:
            line += "  !! Envoy's core not saturated: bound by wrk or the upstream"
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


def rounds(stack: BenchStack, routes: list[Route], args: argparse.Namespace, label: str) -> dict[str, Row]:
    """`args.rounds` rounds over `routes`, the order reversed every other round."""
    rows = {route.name: Row(route) for route in routes}
    for i in range(args.rounds):
        order = routes if i % 2 == 0 else list(reversed(routes))
        for route in order:
            rows[route.name].runs.append(run_wrk(stack, route, args))
        print(f"  {label} round {i + 1}: " + ", ".join(f"{r.name} {rows[r.name].runs[-1].rps:,.0f}" for r in routes), flush=True)
    return rows


def targets(label: str, rows: dict[str, Row]) -> None:
    base, native = rows["no filter"], rows["jwt_authn"]
    bearer, session, floor = rows["oidc-edge bearer"], rows["oidc-edge session"], rows["wasm floor (headers read, request marked)"]
    same = rows["no filter, same Cookie header"]
    b, s = bearer.ratio(native), session.ratio(base)
    print(f"  {label}:")
    print(f"    bearer ÷ jwt_authn  = {b:.2f}  (target ≥ 1.5: {'met' if b >= 1.5 else 'NOT met'});"
          f" by Envoy CPU per request {native.cpu / bearer.cpu:.2f}")
    print(f"    session ÷ no filter = {s:.2f}  (target ≥ 0.75: {'met' if s >= 0.75 else 'NOT met'});"
          f" by Envoy CPU per request {base.cpu / session.cpu:.2f};"
          f" ÷ no filter with the same Cookie header {session.ratio(same):.2f}")
    print(f"    the wasm floor ÷ no filter = {floor.ratio(base):.2f}: no proxy-wasm filter behind the guard does better;"
          f" oidc-edge session ÷ floor {session.ratio(floor):.2f}, bearer ÷ floor {bearer.ratio(floor):.2f}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", type=float, default=float(os.environ.get("BENCH_DURATION", 3)), help="seconds per wrk run (3)")
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--threads", type=int, default=1, help="wrk threads (1: wrk shares the non-Envoy CPU with the upstream)")
    ap.add_argument("--rounds", type=int, default=5, help="rounds of the main routes, alternating order (5)")
    ap.add_argument("--upstream", choices=("nginx", "echo"), default="nginx", help="the upstream of non-direct routes (nginx)")
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

    with BenchStack(upstream=args.upstream, name="bench", plugin_config_overrides=PLUGIN_OVERRIDES, envoy_concurrency=1) as stack:
        stack.start()
        print(f"\n== Envoy 1 worker (--concurrency 1) on CPU {sorted(ENVOY_CPUS)}, wrk -t{args.threads} -c{args.connections}"
              f" -d{args.duration:g}s per run on CPU {sorted(LOAD_CPUS)}; upstream: {stack.upstream_kind} ==")
        if stack.upstream_kind != "nginx":
            print("  (nginx not found: the Node echo upstream serves the upstream table and may bound it; `make setup` installs nginx)")
        if ENVOY_CPUS == LOAD_CPUS:
            print("  (one CPU only: nothing pinned, wrk and the upstream share Envoy's core)")
        stack.wait_filter_ready(20)
        token = mint_token(token_claims(stack, sub="bench", ttl=86400))
        bearer = {"Authorization": f"Bearer {token}"}
        cookie = {"Cookie": session_cookie(stack)}

        def routes(prefix: str) -> tuple[list[Route], list[Route]]:
            p = f"{prefix}x"
            main_routes = [
                Route("no filter", "plain", p, bearer),
                Route("jwt_authn", "jwt_authn", p, bearer),
                Route("oidc-edge bearer", "oidc_edge", p, bearer),
                Route("oidc-edge session", "oidc_edge", p, cookie),
                # Envoy parses every byte of the cookie (about 40 instructions a byte)
                # whether or not a filter reads it.
                Route("no filter, same Cookie header", "plain", p, cookie),
                Route("wasm floor (headers read, request marked)", "wasm_floor", p, bearer),
            ]
            extra_routes = [
                Route("jwt_authn + jwt_cache_config", "jwt_cached", p, bearer),
                Route("oidc-edge pass-through (no crypto)", "oidc_edge", f"/public{p}", bearer),
                Route("oidc-edge bearer, cache off", "oidc_edge", f"/cold{p}", bearer),
            ]
            return main_routes, extra_routes

        up_main, up_extra = routes("/api/")
        direct_main, direct_extra = routes("/direct/")
        check_routes(stack, up_main + up_extra + ([] if args.no_direct else direct_main + direct_extra))

        # Warm-up: V8 tiers the module up, the verdict cache fills, connections open.
        for route in up_main + up_extra:
            run_wrk(stack, route, args, duration=1)

        tables = [("To the upstream", up_main, up_extra, "/api/")]
        if not args.no_direct:
            tables.append(("Envoy direct_response, no upstream", direct_main, direct_extra, "/direct/"))
        results = []
        for title, main_routes, extra_routes, _ in tables:
            rows = rounds(stack, main_routes, args, "upstream" if title.startswith("To") else "direct")
            for route in extra_routes:
                rows[route.name] = Row(route, [run_wrk(stack, route, args)])
                print(f"  once: {route.name:36} {rows[route.name].rps:>9,.0f} req/s", flush=True)
            results.append((title, rows))

    load_after = os.getloadavg()
    for title, rows in results:
        direct = title.startswith("Envoy direct")
        table(f"{title} (req/s: median of {args.rounds} rounds, range min–max; ratios: median of within-round ratios,"
              " ~ for routes run once):", list(rows.values()), rows["no filter"], rows["jwt_authn"], recipe=direct)

    print("\nTargets (printed, never asserted), by req/s:")
    for title, rows in results:
        targets(title, rows)

    print("\nCold RS256 verification inside the filter: route with the verdict cache off minus the cached route,"
          "\nas wall time per request at saturation (1/throughput, 1 worker) and as Envoy CPU time per request:")
    for title, rows in results:
        cached, cold = rows["oidc-edge bearer"], rows["oidc-edge bearer, cache off"]
        wall = 1e6 / cold.rps - 1e6 / cached.rps
        cpu = cold.cpu - cached.cpu
        print(f"  {title[:34]:34} wall {1e6 / cached.rps:7.1f} -> {1e6 / cold.rps:7.1f} µs: {wall:7.1f} µs;"
              f"  CPU {cached.cpu:7.1f} -> {cold.cpu:7.1f} µs: {cpu:7.1f} µs per verification")
    if micro:
        print("  verify_bench in wasm under Node's V8 (same load, same run):")
        for name, us in micro:
            print(f"    {us:9.1f} µs  {name}")

    print(f"\nNoise: load average {load_before[0]:.1f} before, {load_after[0]:.1f} after, on {os.cpu_count()} CPUs;"
          " the host may be shared (steal time). Compare ratios within one run, not absolute numbers across runs.")
    print(f"bench took {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

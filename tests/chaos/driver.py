"""Chaos traffic for oidc-edge, shared by tests/e2e/test_chaos.py and `make soak`.

A seeded mix of requests is sent concurrently through the real Envoy while
the real IdP is faulted in turn; every request carries a unique
`X-Request-Tag` and is classified here, before it is sent, as carrying valid
credentials or not. An auditor reads everything the echo upstream received
(`GET /requests?since=`) and checks it against that classification.

    from driver import chaos_stack, fault_cycle, run_chaos
    stack = chaos_stack("chaos")
    result = run_chaos(stack, fault_cycle(phase_seconds=6))
    print(result.summary())
    assert result.problems() == []

Traffic classes (weights in CLASSES):
  login.*            a new browser login: start (302 to the IdP), the IdP's forms
                     (plain HTTP, not through Envoy), the callback (302, or the
                     defined 502 when the token endpoint failed), then the landed
                     page with the new session (valid: 200 from the upstream).
                     A third of them ask for `//evil`-style return paths.
  session*           established sessions, small and split into several cookies,
                     some with a junk non-UTF-8 cookie or forged identity headers
                     beside them (valid: 200 from the upstream).
  bearer_valid/_big  RS256 tokens signed with the IdP's key k1, some 8 KB (valid).
  bearer_*           expired, forged (payload changed), alg none, unknown kid,
                     wrong key / HS256 confusion / wrong iss / wrong aud: 401.
  ws_*               WebSocket upgrades: session with own Origin and bearer in
                     Sec-WebSocket-Protocol (valid: 101 and an echo), none (401),
                     session from a foreign Origin (403), bad bearer (401).
  junk_*, huge_*, tampered/truncated/swapped session cookies, random callbacks:
                     never the upstream, never a 5xx.
  pass_through       /healthz (configured pass-through): the upstream, without
                     any identity header even when the client forged them.
  session_refresh    sessions of a second relying party (route `Host: localhost`,
                     cookies oidc_edge-1*) with refresh_before_expiry 1h: every
                     request refreshes the tokens at the IdP's token endpoint
                     first. The client keeps whatever cookies come back, as a
                     browser does. Refreshes fail while the IdP is faulted (and
                     when concurrent requests reuse a rotated refresh token):
                     the token is still valid, so the request must still get
                     the upstream's 200 (an IdP outage logs nobody out).

Randomness is seeded per worker; which request meets which fault depends on
timing, so the checks are about what may never happen, not about counts.
"""

from __future__ import annotations

import json
import random
import re
import sys
import threading
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable
from urllib.parse import quote, urlsplit

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "harness"))

import jwt as pyjwt  # noqa: E402
import requests  # noqa: E402

from http_util import b64url_encode, parse_set_cookie  # noqa: E402
from oidc_login import BROWSER_HEADERS, LoginError, complete_at_idp, new_browser  # noqa: E402
from stack import CALLBACK_PATH, Stack, free_ports  # noqa: E402
from tokens import mint_token, private_key, public_pem, token_claims  # noqa: E402
from wire import Reply, http_request, websocket_exchange  # noqa: E402

# ------------------------------------------------------------ configuration --

PASS_THROUGH = "/healthz"
COOKIE = "oidc_edge"
# Every cookie of the filter: oidc_edge, oidc_edge_N, oidc_edge_tx.<id>, and the
# same under a route's base name (oidc_edge-1...), with or without __Host-.
FILTER_COOKIE = re.compile(rf"^(__Host-)?{COOKIE}(-\d+)?(_\d+|_tx\.[^=]*)?$")
# The second relying party: requests with this Host refresh their tokens first.
REFRESH_HOST = "localhost"

# idp_timeout low so that `slow` (3 s) is past it; a 1 s kid cooldown so that
# unknown-kid tokens make the filter refetch the JWKS again and again while the
# IdP is faulted; the shortest scheduled refreshes; a 1 s verdict cache so that
# valid tokens are verified against the keys in force throughout.
PLUGIN_OVERRIDES = {
    "idp_timeout": "2s",
    "kid_refetch_cooldown": "1s",
    "jwks_refresh_interval": "1m",
    "discovery_refresh_interval": "1m",
    "token_cache_ttl": "1s",
    "pass_through_paths": [PASS_THROUGH],
}
BIG_PREFIX = "big-"
# Logins starting with BIG_PREFIX get a 6000-character claim: their sessions
# are split into several cookies.
IDP_ARGS = ["--big-claim-bytes", "6000", "--big-claim-login-prefix", BIG_PREFIX]
SLOW_MS = 3000
FAULTS = [("slow", SLOW_MS), ("down", 0), ("500", 0), ("html", 0), ("empty_keys", 0), ("truncated", 0), ("garbage", 0)]

CRASH_LINES = re.compile(
    r"panicked|wasm trap|Function: proxy_on_\w+ failed|Uncaught RuntimeError|Wasm VM failed|VM \S* ?(crashed|failed)",
    re.IGNORECASE,
)


def chaos_stack_kwargs(**kwargs) -> dict:
    """Stack(...) arguments the chaos driver expects: Envoy --concurrency 2,
    the chaos plugin settings, an IdP issuing small and big sessions, and no
    path normalisation in Envoy: the hostile return paths (`//evil/x`) must
    reach the filter as sent, which must refuse them itself."""
    # The route's host carries the port the driver sends, as Envoy matches virtual hosts.
    ports = dict(kwargs.pop("ports", None) or {})
    ports.setdefault("envoy", free_ports(1)[0])
    kwargs["ports"] = ports
    overrides = dict(PLUGIN_OVERRIDES)
    overrides["routes"] = [{"host": f"{REFRESH_HOST}:{ports['envoy']}", "refresh_before_expiry": "1h"}]
    overrides.update(kwargs.pop("plugin_config_overrides", {}) or {})
    idp_args = IDP_ARGS + list(kwargs.pop("idp_args", []) or [])
    kwargs.setdefault("envoy_concurrency", 2)
    kwargs.setdefault("normalize_paths", False)
    return dict(plugin_config_overrides=overrides, idp_args=idp_args, **kwargs)


def chaos_stack(name: str = "chaos", **kwargs) -> Stack:
    return Stack(name=name, **chaos_stack_kwargs(**kwargs))


@dataclass
class Phase:
    name: str
    mode: str
    delay_ms: int = 0
    # The phase lasts at least min_seconds and until `coverage` valid session
    # and bearer requests each ran entirely inside it, but never past max_seconds.
    min_seconds: float = 6.0
    max_seconds: float = 60.0
    coverage: int = 4


def fault_cycle(phase_seconds: float = 6.0, rounds: int = 1, coverage: int = 4) -> list[Phase]:
    """ok, then every fault in turn (`rounds` times), then ok again."""
    phases = [Phase("00-ok", "ok", 0, phase_seconds, coverage=coverage)]
    for r in range(rounds):
        for mode, delay in FAULTS:
            phases.append(Phase(f"{len(phases):02d}-{mode}", mode, delay, phase_seconds, coverage=coverage))
        if rounds > 1 and r < rounds - 1:
            phases.append(Phase(f"{len(phases):02d}-ok", "ok", 0, phase_seconds, coverage=coverage))
    phases.append(Phase(f"{len(phases):02d}-ok", "ok", 0, phase_seconds, coverage=coverage))
    return phases


# ------------------------------------------------------------------ records --


@dataclass
class Sess:
    """A session as the browser holds it: the filter's cookies, in order.
    `host` is the Host it belongs to (None: 127.0.0.1, the top level)."""

    sub: str
    cookies: dict[str, str]
    host: str | None = None
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    @property
    def big(self) -> bool:
        return len(self.cookies) > 1

    def header(self) -> str:
        with self.lock:
            return "; ".join(f"{n}={v}" for n, v in self.cookies.items())

    def update(self, set_cookies: list[str]) -> None:
        """Keep what a response sets and drop what it clears, as a browser does."""
        with self.lock:
            for raw in set_cookies:
                c = parse_set_cookie(raw)
                if not FILTER_COOKIE.match(c.name) or "_tx." in c.name:
                    continue
                if c.creates:
                    self.cookies[c.name] = c.value
                else:
                    self.cookies.pop(c.name, None)


@dataclass
class Rec:
    tag: str
    cls: str
    valid: bool  # carried valid credentials: must get the upstream's answer
    expect: frozenset  # statuses (or outcomes) that are right for it
    sub: str | None = None
    pass_through: bool = False
    via_envoy: bool = True
    allow_error: bool = False  # the connection may be closed on it (e.g. 431)
    phase: str = ""
    phase_end: str = ""
    started: float = 0.0
    outcome: str = ""
    status: int | None = None
    upstream: bool = False  # the answer is the upstream's echo of this request
    retry_after: bool = False
    problems: list[str] = field(default_factory=list)


VALID_SESSION_CLASSES = {"session", "session_big", "session_junk_cookie", "session_refresh", "ws_session", "login.landed"}
VALID_BEARER_CLASSES = {"bearer_valid", "bearer_big", "ws_bearer"}


class Ledger:
    """Every request of the run, checked as it finishes; thread-safe."""

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        self.lock = threading.Lock()
        self.counter = 0
        self.phase = "setup"
        self.by_tag: dict[str, Rec] = {}
        self.counts: Counter = Counter()  # (cls, outcome) -> n
        self.phase_counts: Counter = Counter()  # (phase, cls, outcome) -> n
        self.coverage: Counter = Counter()  # (phase, "session"|"bearer") -> n
        self.violations: list[str] = []
        self.minute: Counter = Counter()  # since the last take_minute()
        self.answered_unseen: set[str] = set()  # valid, answered, not yet in the upstream log
        self.seen_tags: set[str] = set()  # in the upstream log (the auditor's)

    def register(self, cls: str, valid: bool, expect, sub: str | None = None, **kw) -> Rec:
        with self.lock:
            self.counter += 1
            tag = f"{self.run_id}-{self.counter:07d}"
            rec = Rec(tag=tag, cls=cls, valid=valid, expect=frozenset(str(e) for e in expect), sub=sub, phase=self.phase, started=time.monotonic(), **kw)
            self.by_tag[tag] = rec
            return rec

    def set_phase(self, name: str) -> None:
        with self.lock:
            self.phase = name

    def finish(self, rec: Rec, reply: Reply | None = None, *, status: int | None = None, error: BaseException | None = None,
               upstream: bool = False, retry_after: bool = False, outcome: str | None = None) -> None:
        if reply is not None:
            status = reply.status
            retry_after = bool(reply.header("retry-after"))
            upstream = upstream or _echoes(reply, rec.tag)
        rec.status = status
        rec.upstream = upstream
        rec.retry_after = retry_after
        if outcome is not None:
            rec.outcome = outcome
        elif error is not None:
            rec.outcome = f"err:{type(error).__name__}"
        else:
            rec.outcome = str(status)
        p = rec.problems
        if rec.via_envoy:
            if error is not None and not rec.allow_error:
                p.append(f"no answer from Envoy: {type(error).__name__}: {str(error)[:160]}")
            if status is not None and status >= 500:
                defined = (status == 503 and retry_after) or (status == 502 and rec.cls == "login.callback")
                if not defined:
                    p.append(f"undefined {status} (retry-after {'present' if retry_after else 'absent'})")
            if rec.valid and not (status in (200, 101) and upstream):
                p.append(f"valid credentials not served by the upstream: {rec.outcome}")
            if not rec.valid and not rec.pass_through and upstream:
                p.append("the upstream answered a request without valid credentials")
            not_ready = status == 503 and retry_after and not rec.valid
            if error is None and rec.outcome not in rec.expect and not not_ready and not p:
                p.append(f"unexpected {rec.outcome}, expected one of {sorted(rec.expect)}")
        with self.lock:
            rec.phase_end = self.phase
            self.counts[(rec.cls, rec.outcome)] += 1
            self.phase_counts[(rec.phase, rec.cls, rec.outcome)] += 1
            self.minute["requests"] += 1
            if p:
                self.minute[f"errors:{rec.cls}"] += 1
                for problem in p:
                    self.violations.append(f"[{rec.phase}] {rec.cls} {rec.tag}: {problem}")
            if rec.valid and rec.via_envoy and status in (200, 101) and upstream:
                if rec.tag not in self.seen_tags:
                    self.answered_unseen.add(rec.tag)
                if rec.phase == rec.phase_end:
                    kind = "session" if rec.cls in VALID_SESSION_CLASSES else "bearer" if rec.cls in VALID_BEARER_CLASSES else None
                    if kind:
                        self.coverage[(rec.phase, kind)] += 1

    def violate(self, rec: Rec, problem: str) -> None:
        with self.lock:
            rec.problems.append(problem)
            self.violations.append(f"[{rec.phase}] {rec.cls} {rec.tag}: {problem}")
            self.minute[f"errors:{rec.cls}"] += 1

    def take_minute(self) -> Counter:
        with self.lock:
            m, self.minute = self.minute, Counter()
            return m


def _echoes(reply: Reply, tag: str) -> bool:
    """True when `reply` is the echo upstream's answer to the request tagged `tag`."""
    if reply.status != 200 or "json" not in (reply.header("content-type") or ""):
        return False
    try:
        body = json.loads(reply.body)
    except ValueError:
        return False
    return isinstance(body, dict) and isinstance(body.get("headers"), dict) and body["headers"].get("x-request-tag") == tag


# ------------------------------------------------------------------ auditor --


class Auditor:
    """Reads every request the upstream received, once, and checks it:
    its tag was sent with valid credentials (or to the pass-through path),
    its Authorization is a token the IdP's key signed for this client, its
    identity headers name the subject the request was sent for, and no
    cookie of the filter went along."""

    def __init__(self, stack: Stack, ledger: Ledger, interval: float = 2.0) -> None:
        self.stack = stack
        self.ledger = ledger
        self.interval = interval
        self.last_seq = 0
        self.seen = 0
        self.leaks: list[str] = []
        self.minute_leaks = 0
        self.problems: list[str] = []
        self._tokens: dict[str, str | None] = {}  # token -> sub, or None if invalid
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._key = public_pem("k1")
        self._lock = threading.Lock()

    def start(self) -> None:
        self.last_seq = self._current_total()
        self._thread = threading.Thread(target=self._loop, name="auditor", daemon=True)
        self._thread.start()

    def _current_total(self) -> int:
        r = requests.get(f"http://127.0.0.1:{self.stack.ports['upstream_admin']}/requests",
                         params={"since": str(2**53)}, timeout=30)
        r.raise_for_status()
        return int(r.json().get("total", 0))

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.poll()
            except Exception as exc:  # noqa: BLE001 - report, keep polling
                self.problems.append(f"auditor poll failed: {exc!r}")

    def poll(self) -> int:
        with self._lock:
            entries = self.stack.upstream_requests(since=self.last_seq)
            if entries and entries[0]["seq"] != self.last_seq + 1:
                self.problems.append(
                    f"the upstream forgot requests {self.last_seq + 1}..{entries[0]['seq'] - 1} before they were read: "
                    "raise its --max-kept or poll more often")
            for e in entries:
                self._check(e)
                self.last_seq = max(self.last_seq, int(e["seq"]))
            self.seen += len(entries)
            return len(entries)

    def finish(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join()
        # Everything has been answered: read until nothing new comes.
        while self.poll():
            pass
        with self.ledger.lock:
            unseen = sorted(self.ledger.answered_unseen)
        for tag in unseen:
            rec = self.ledger.by_tag[tag]
            self.problems.append(f"{rec.cls} {tag} was answered as the upstream but the upstream never logged it")

    def _leak(self, what: str) -> None:
        self.leaks.append(what)
        self.minute_leaks += 1

    def _sub_of(self, token: str) -> str | None:
        if token not in self._tokens:
            try:
                claims = pyjwt.decode(token, self._key, algorithms=["RS256"], audience=self.stack.client_id,
                                      issuer=self.stack.issuer, leeway=120,
                                      options={"require": ["exp", "iss", "aud", "sub"]})
                self._tokens[token] = str(claims["sub"])
            except pyjwt.PyJWTError:
                self._tokens[token] = None
        return self._tokens[token]

    def _check(self, e: dict) -> None:
        headers = e.get("headers") or {}
        tag = headers.get("x-request-tag")
        path = str(e.get("path", ""))
        path_only = path.split("?", 1)[0]
        rec = self.ledger.by_tag.get(tag) if tag else None
        what = f"seq {e.get('seq')} {e.get('method')} {path[:80]} tag={tag} class={rec.cls if rec else '?'}"
        cookie = headers.get("cookie", "")
        if any(FILTER_COOKIE.match(part.strip().partition("=")[0]) for part in cookie.split(";")):
            self.problems.append(f"{what}: the filter's cookies reached the upstream")
        if path_only == PASS_THROUGH or path_only.startswith(PASS_THROUGH + "/"):
            if rec is None or not rec.pass_through:
                self._leak(f"{what}: pass-through path without a pass-through tag")
            for h in ("authorization", "x-auth-request-user", "x-auth-request-email"):
                if h in headers:
                    self.problems.append(f"{what}: client's {h} reached the upstream on a pass-through path")
            return
        if rec is None or not rec.valid:
            self._leak(f"{what}: reached the upstream without valid credentials")
            return
        with self.ledger.lock:
            self.ledger.seen_tags.add(tag)
            self.ledger.answered_unseen.discard(tag)
        auth = headers.get("authorization", "")
        scheme, _, token = auth.partition(" ")
        sub = self._sub_of(token.strip()) if scheme.lower() == "bearer" and token.strip() else None
        if sub is None:
            self._leak(f"{what}: the upstream got no valid Authorization from the filter ({auth[:40]!r})")
            return
        if sub != rec.sub or headers.get("x-auth-request-user") != rec.sub:
            self.problems.append(
                f"{what}: identity {sub!r}/{headers.get('x-auth-request-user')!r}, the request was sent for {rec.sub!r}")
        raw_names = [n for n, _v in e.get("raw_headers", [])]
        if raw_names.count("authorization") != 1 or raw_names.count("x-auth-request-user") != 1:
            self.problems.append(f"{what}: identity headers not exactly once: {raw_names}")


# ------------------------------------------------------------- envoy watch --


class EnvoyWatch:
    """Wasm VM health (Envoy's wasm.* stats, crash lines in envoy.log) and memory."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.log_path = stack.artifacts / "envoy.log"
        self.log_offset = 0
        self.before: dict = {}

    def wasm_stats(self) -> dict:
        return {k: v for k, v in self.stack.envoy_stats(filter=r"^wasm\.").items()}

    def start(self) -> None:
        self.before = self.wasm_stats()
        self.log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0

    def crash_lines(self) -> list[str]:
        try:
            with open(self.log_path, "rb") as f:
                f.seek(self.log_offset)
                text = f.read().decode("utf-8", "replace")
        except OSError:
            return []
        return [line for line in text.splitlines() if CRASH_LINES.search(line)]

    def problems(self) -> list[str]:
        out = []
        if self.stack.envoy_pid is None:
            out.append("Envoy is not running any more")
            return out
        after = self.wasm_stats()
        for name in sorted(set(self.before) | set(after)):
            if self.before.get(name) != after.get(name):
                out.append(f"Envoy stat {name}: {self.before.get(name)} -> {after.get(name)} (a wasm VM crashed or was reloaded)")
        out += [f"envoy.log: {line[:300]}" for line in self.crash_lines()[:20]]
        return out

    def memory(self) -> dict:
        mem: dict = {}
        pid = self.stack.envoy_pid
        if pid:
            try:
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    key, _, value = line.partition(":")
                    if key in ("VmRSS", "VmHWM"):
                        mem[key] = int(value.split()[0])  # kB
            except OSError:
                pass
        stats = self.stack.envoy_stats(filter=r"^server\.memory_")
        for k in ("server.memory_allocated", "server.memory_heap_size", "server.memory_physical_size"):
            if k in stats:
                mem[k] = int(stats[k])
        return mem


def format_memory(mem: dict) -> str:
    mb = lambda b: f"{b / 1048576:.1f} MiB"  # noqa: E731
    parts = []
    if "VmRSS" in mem:
        parts.append(f"RSS {mem['VmRSS'] / 1024:.1f} MiB (peak {mem.get('VmHWM', 0) / 1024:.1f})")
    if "server.memory_allocated" in mem:
        parts.append(f"allocated {mb(mem['server.memory_allocated'])}")
    if "server.memory_heap_size" in mem:
        parts.append(f"heap {mb(mem['server.memory_heap_size'])}")
    return ", ".join(parts)


# ------------------------------------------------------------------ traffic --


def b64url_token(token: str) -> str:
    return b64url_encode(token.encode())


class Traffic:
    """The request mix. Every op registers its records before sending."""

    def __init__(self, stack: Stack, ledger: Ledger) -> None:
        self.stack = stack
        self.ledger = ledger
        self.host = "127.0.0.1"
        self.port = stack.envoy_port
        self.origin = stack.origin
        self.sessions: list[Sess] = []
        self.refresh_sessions: list[Sess] = []  # of the REFRESH_HOST route
        self.sessions_lock = threading.Lock()
        self.tokens: list[tuple[str, str]] = []  # (sub, token) pre-minted valid
        self.big_tokens: list[tuple[str, str]] = []
        self.k2 = private_key("k2")

    # -- plumbing ----------------------------------------------------------

    def send(self, rec: Rec, method: str, path: str, headers: list, body: bytes | None = None) -> Reply | None:
        hdrs = [("X-Request-Tag", rec.tag), ("User-Agent", "oidc-edge-chaos/1.0")] + list(headers)
        try:
            reply = http_request(self.host, self.port, method, path, hdrs, body)
        except Exception as exc:  # noqa: BLE001 - every failure is an outcome
            self.ledger.finish(rec, error=exc)
            return None
        self.ledger.finish(rec, reply)
        return reply

    def ws(self, rec: Rec, headers: list, path: str = "/ws/chat") -> None:
        hdrs = [("X-Request-Tag", rec.tag)] + list(headers)
        message = f"hello {rec.tag}"
        try:
            res = websocket_exchange(self.host, self.port, path, hdrs, message)
        except Exception as exc:  # noqa: BLE001
            self.ledger.finish(rec, error=exc)
            return
        self.ledger.finish(rec, status=res.status, retry_after=bool(res.header("retry-after")),
                           upstream=res.status == 101 and res.echo == message)

    def pick_session(self, rng: random.Random, big: bool | None = None) -> Sess:
        with self.sessions_lock:
            pool = [s for s in self.sessions if big is None or s.big == big] or list(self.sessions)
            return rng.choice(pool)

    def add_session(self, sess: Sess) -> None:
        with self.sessions_lock:
            self.sessions.append(sess)
            # Keep the established ones; rotate those made during the run.
            if len(self.sessions) > 24:
                del self.sessions[8]

    def claims(self, sub: str, ttl: int = 7200, **extra) -> dict:
        return token_claims(self.stack, sub=sub, ttl=ttl, jti=uuid.uuid4().hex, **extra)

    def api_headers(self, rng: random.Random) -> list:
        # What API clients say (a client that says nothing, or only */*, is treated as a
        # browser and redirected: see README "Browsers, API clients and WebSockets").
        return rng.choice([
            [("Accept", "application/json")],
            [("Accept", "application/json, text/plain, */*")],
            [("Accept", "*/*"), ("Sec-Fetch-Mode", "cors"), ("Sec-Fetch-Dest", "empty")],
        ])

    # -- set-up ------------------------------------------------------------

    def login(self, rng: random.Random, user: str, path: str = "/app/", strict: bool = False, host: str | None = None) -> Sess | None:
        """One browser login through Envoy and the IdP; records every step.
        With `strict`, any failure raises (used before the faults). `host`:
        log in at that Host (a route) instead of 127.0.0.1."""
        L = self.ledger
        evil = path.startswith("//") or path.startswith("/\\")
        browser = new_browser()
        host_header = [("Host", f"{host}:{self.port}")] if host else []
        try:
            start = L.register("login.start", False, {302})
            reply = self.send(start, "GET", path, host_header + list(BROWSER_HEADERS.items()))
            location = reply.header("location") if reply else None
            if reply is None or reply.status != 302 or not location:
                if strict:
                    raise AssertionError(f"login start: {start.outcome} {start.problems}")
                return None
            if not location.startswith(self.stack.discovery["authorization_endpoint"] + "?"):
                L.violate(start, f"login redirect to {location[:100]!r}")
                return None
            tx = {}
            for raw in reply.header_all("set-cookie"):
                c = parse_set_cookie(raw)
                if c.creates:
                    tx[c.name] = c.value
            idp = L.register("login.idp", False, {"ok"}, via_envoy=False)
            try:
                result = complete_at_idp(browser, location, user=user)
            except (requests.RequestException, LoginError) as exc:
                L.finish(idp, outcome=f"err:{type(exc).__name__}")
                if strict:
                    raise
                return None
            L.finish(idp, outcome="ok")
            cb_url = urlsplit(result.callback_url)
            if cb_url.hostname != (host or self.host) or cb_url.port != self.port:
                raise AssertionError(f"the IdP sent the browser to {result.callback_url}")
            cb = L.register("login.callback", False, {302, 502})
            cookie = "; ".join(f"{n}={v}" for n, v in tx.items())
            cb_reply = self.send(cb, "GET", f"{cb_url.path}?{cb_url.query}",
                                 host_header + list(BROWSER_HEADERS.items()) + [("Cookie", cookie)])
            if cb_reply is None or cb_reply.status != 302:
                if strict:
                    raise AssertionError(f"login callback: {cb.outcome} {cb_reply.body[:300] if cb_reply else ''}")
                if cb_reply is not None and any(parse_set_cookie(h).creates and "_tx." not in parse_set_cookie(h).name
                                                for h in cb_reply.header_all("set-cookie")):
                    L.violate(cb, "a failed callback created a session cookie")
                return None
            back = cb_reply.header("location") or ""
            if not back.startswith("/") or back.startswith("//") or back.startswith("/\\") or (evil and back != "/"):
                L.violate(cb, f"return path {path!r} became Location {back!r}")
                return None
            cookies = {}
            for raw in cb_reply.header_all("set-cookie"):
                c = parse_set_cookie(raw)
                if c.creates and "_tx." not in c.name:
                    cookies[c.name] = c.value
            if not cookies:
                L.violate(cb, "a successful callback set no session cookie")
                return None
            sess = Sess(sub=user, cookies=cookies, host=host)
            landed = L.register("login.landed", True, {200}, sub=user)
            reply = self.send(landed, "GET", back, host_header + list(BROWSER_HEADERS.items()) + [("Cookie", sess.header())])
            if reply is not None:
                sess.update(reply.header_all("set-cookie"))
            if strict and landed.problems:
                raise AssertionError(f"login landed: {landed.outcome} {landed.problems}")
            return sess
        finally:
            browser.close()

    def establish(self, rng: random.Random) -> None:
        """Sessions and tokens made before any fault (the keys are loaded)."""
        for user in ("alice", "bob", "carol", f"{BIG_PREFIX}dave", f"{BIG_PREFIX}erin", f"{BIG_PREFIX}frank"):
            sess = self.login(rng, user, f"/app/{user}", strict=True)
            assert sess is not None
            if user.startswith(BIG_PREFIX) and not sess.big:
                raise AssertionError(f"{user}'s session should be split into several cookies: {list(sess.cookies)}")
            self.sessions.append(sess)
        for user in ("rita", f"{BIG_PREFIX}rob"):
            sess = self.login(rng, user, f"/app/{user}", strict=True, host=REFRESH_HOST)
            assert sess is not None
            self.refresh_sessions.append(sess)
        big = "B" * 8000
        for i in range(4):
            sub = f"api-{i}"
            self.tokens.append((sub, mint_token(self.claims(sub))))
            self.big_tokens.append((sub, mint_token(self.claims(sub, big=big))))

    # -- ops ---------------------------------------------------------------

    def op_login(self, rng: random.Random, n: int) -> None:
        user = f"{BIG_PREFIX if rng.random() < 0.3 else ''}u{rng.randrange(1000)}"
        path = rng.choice(["/app/page?x=1", "/dash", "//evil.example/x", "/\\evil.example", "///evil.example/%2F..", "/app/"])
        sess = self.login(rng, user, path)
        if sess is not None:
            self.add_session(sess)

    def _session_request(self, rng: random.Random, cls: str, sess: Sess, cookie: str | bytes) -> Reply | None:
        rec = self.ledger.register(cls, True, {200}, sub=sess.sub)
        variant = rng.choice(["html", "json", "post", "xhr", "forged"])
        path = f"/app/{cls}/{rng.randrange(10**6)}?q={rng.randrange(100)}"
        headers: list = [("Cookie", cookie)]
        if sess.host:
            headers.append(("Host", f"{sess.host}:{self.port}"))
        method, body = "GET", None
        if variant == "html":
            headers += list(BROWSER_HEADERS.items()) + [("Sec-Fetch-Mode", "navigate"), ("Sec-Fetch-Dest", "document")]
        elif variant == "json":
            headers += [("Accept", "application/json")]
        elif variant == "post":
            method, body = "POST", json.dumps({"n": rng.randrange(1000)}).encode()
            headers += [("Accept", "application/json"), ("Content-Type", "application/json")]
        elif variant == "xhr":
            headers += [("Accept", "*/*"), ("X-Requested-With", "XMLHttpRequest")]
        else:  # a valid session wins over forged identity headers
            headers += [("Accept", "application/json"), ("Authorization", "Bearer junk.junk.junk"),
                        ("X-Auth-Request-User", "mallory"), ("X-Auth-Request-Email", "mallory@evil.example")]
        return self.send(rec, method, path, headers, body)

    def op_session(self, rng, n):
        sess = self.pick_session(rng, big=False)
        self._session_request(rng, "session", sess, sess.header())

    def op_session_big(self, rng, n):
        sess = self.pick_session(rng, big=True)
        self._session_request(rng, "session_big", sess, sess.header())

    def op_session_refresh(self, rng, n):
        sess = rng.choice(self.refresh_sessions)
        reply = self._session_request(rng, "session_refresh", sess, sess.header())
        if reply is not None:
            sess.update(reply.header_all("set-cookie"))

    def op_session_junk_cookie(self, rng, n):
        sess = self.pick_session(rng)
        junk = b"theme=\xff\xfe\x80dark; " + sess.header().encode() + b"; lang=\xc3\x28"
        self._session_request(rng, "session_junk_cookie", sess, junk)

    def _bearer(self, rng, cls: str, token: str, valid: bool, sub: str | None, expect=None) -> None:
        rec = self.ledger.register(cls, valid, expect or ({200} if valid else {401}), sub=sub)
        path = f"/api/{cls}/{rng.randrange(10**6)}"
        headers = [("Authorization", f"Bearer {token}")] + self.api_headers(rng)
        if rng.random() < 0.3:
            self.send(rec, "POST", path, headers + [("Content-Type", "application/json")], b'{"x":1}')
        else:
            self.send(rec, "GET", path, headers)

    def op_bearer_valid(self, rng, n):
        if rng.random() < 0.5:
            sub, token = rng.choice(self.tokens)
        else:  # fresh: never cached, verified against the keys in force now
            sub = f"api-fresh-{rng.randrange(100)}"
            token = mint_token(self.claims(sub, ttl=900))
        self._bearer(rng, "bearer_valid", token, True, sub)

    def op_bearer_big(self, rng, n):
        sub, token = rng.choice(self.big_tokens)
        self._bearer(rng, "bearer_big", token, True, sub)

    def op_bearer_expired(self, rng, n):
        now = int(time.time())
        token = mint_token(self.claims("late", iat=now - 7200, exp=now - 3600))
        self._bearer(rng, "bearer_expired", token, False, None)

    def op_bearer_forged(self, rng, n):
        _sub, token = rng.choice(self.tokens)
        h, p, s = token.split(".")
        claims = json.loads(pyjwt.utils.base64url_decode(p))
        claims["sub"] = "mallory"
        forged = f"{h}.{b64url_encode(json.dumps(claims, separators=(',', ':')).encode())}.{s}"
        self._bearer(rng, "bearer_forged", forged, False, None)

    def op_bearer_alg_none(self, rng, n):
        alg = rng.choice(["none", "None", "NONE", "nOnE"])
        token = mint_token(self.claims("mallory"), alg="none", header_overrides={"alg": alg})
        if rng.random() < 0.5:  # with a signature that means nothing
            token += b64url_encode(b"x" * 256)
        self._bearer(rng, "bearer_alg_none", token, False, None)

    def op_bearer_unknown_kid(self, rng, n):
        token = mint_token(self.claims("mallory"), kid=f"kx-{rng.randrange(10**9)}", key=self.k2)
        self._bearer(rng, "bearer_unknown_kid", token, False, None)

    def op_bearer_misc(self, rng, n):
        kind = rng.choice(["wrong_key", "hs256", "wrong_iss", "wrong_aud", "garbage"])
        if kind == "wrong_key":
            token = mint_token(self.claims("mallory"), kid="k1", key=self.k2)
        elif kind == "hs256":
            token = mint_token(self.claims("mallory"), kid="k1", alg="HS256", hmac_key=public_pem("k1"))
        elif kind == "wrong_iss":
            token = mint_token(self.claims("mallory", issuer=self.stack.issuer + "/"))
        elif kind == "wrong_aud":
            token = mint_token(self.claims("mallory", audience="another-client"))
        else:
            token = rng.choice(["a.b.c", "....", "eyJhbGciOiJSUzI1NiJ9." + "A" * 300 + ".x", "x" * 5000])
        self._bearer(rng, "bearer_misc", token, False, None)

    def op_ws_session(self, rng, n):
        sess = self.pick_session(rng)
        rec = self.ledger.register("ws_session", True, {101}, sub=sess.sub)
        self.ws(rec, [("Origin", self.origin), ("Cookie", sess.header())])

    def op_ws_bearer(self, rng, n):
        sub, token = rng.choice(self.tokens)
        rec = self.ledger.register("ws_bearer", True, {101}, sub=sub)
        proto = f"base64url.bearer.authorization.k8s.io.{b64url_token(token)}, chat"
        self.ws(rec, [("Sec-WebSocket-Protocol", proto)])

    def op_ws_unauth(self, rng, n):
        rec = self.ledger.register("ws_unauth", False, {401})
        self.ws(rec, [("Origin", self.origin)] + ([("Sec-WebSocket-Protocol", "chat")] if rng.random() < 0.5 else []))

    def op_ws_foreign_origin(self, rng, n):
        sess = self.pick_session(rng)
        rec = self.ledger.register("ws_foreign_origin", False, {403})
        self.ws(rec, [("Origin", rng.choice(["https://evil.example", "null", "http://127.0.0.1.evil.example"])),
                      ("Cookie", sess.header())])

    def op_ws_bad_bearer(self, rng, n):
        now = int(time.time())
        token = rng.choice([
            mint_token(self.claims("late", iat=now - 7200, exp=now - 3600)),
            mint_token(self.claims("mallory"), kid="k1", key=self.k2),
            mint_token(self.claims("mallory"), alg="none"),
        ])
        rec = self.ledger.register("ws_bad_bearer", False, {401})
        self.ws(rec, [("Sec-WebSocket-Protocol", f"base64url.bearer.authorization.k8s.io.{b64url_token(token)}, chat")])

    def _unauth(self, rng, cls: str, headers: list, path: str | None = None, expect_api=401, **kw) -> None:
        browser = rng.random() < 0.5
        hdrs = list(headers) + (list(BROWSER_HEADERS.items()) if browser else self.api_headers(rng))
        rec = self.ledger.register(cls, False, {302} if browser else {expect_api}, **kw)
        self.send(rec, "GET", path or f"/app/{cls}/{rng.randrange(10**6)}", hdrs)

    def op_junk_cookie(self, rng, n):
        junk = rng.choice([
            b"oidc_edge=\xff\xfe\x80abc",
            b"oidc_edge_0=\xc3\x28; oidc_edge_1=\xa0\xa1",
            b"\xff\xff=\xff\xff; oidc_edge=" + bytes(range(0x80, 0xff)),
            b"oidc_edge_tx.abc=\xf0\x28\x8c\x28",
        ])
        self._unauth(rng, "junk_cookie", [("Cookie", junk)])

    def op_junk_auth(self, rng, n):
        junk = rng.choice([b"Bearer \xff\xfe\xfd", b"\xc3\x28 \xa0\xa1", b"Bearer eyJ\x80\x81.\xfe.\xff", b"Basic \xff"])
        self._unauth(rng, "junk_auth", [("Authorization", junk)])

    def op_huge_near(self, rng, n):
        # Envoy allows 96 KiB of request headers here: stay just under it.
        self._unauth(rng, "huge_near", [("X-Pad", "p" * (88 * 1024))])

    def op_huge_over(self, rng, n):
        rec = self.ledger.register("huge_over", False, {431}, allow_error=True)
        self.send(rec, "GET", f"/app/huge/{rng.randrange(10**6)}", [("Accept", "application/json"), ("X-Pad", "p" * (100 * 1024))])

    def op_tampered_session(self, rng, n):
        sess = self.pick_session(rng)
        cookies = dict(sess.cookies)
        name = rng.choice(list(cookies))
        v = cookies[name]
        # Not the last character: its low bits may be padding that decodes the same.
        i = rng.randrange(max(1, len(v) - 1))
        cookies[name] = v[:i] + ("A" if v[i] != "A" else "B") + v[i + 1:]
        self._unauth(rng, "tampered_session", [("Cookie", "; ".join(f"{k}={x}" for k, x in cookies.items()))])

    def op_truncated_session(self, rng, n):
        sess = self.pick_session(rng)
        cookies = dict(sess.cookies)
        if len(cookies) > 1 and rng.random() < 0.5:
            del cookies[rng.choice(list(cookies))]
        else:
            name = rng.choice(list(cookies))
            cookies[name] = cookies[name][: rng.randrange(len(cookies[name]))]
        self._unauth(rng, "truncated_session", [("Cookie", "; ".join(f"{k}={x}" for k, x in cookies.items()))])

    def op_swapped_chunks(self, rng, n):
        bigs = [s for s in self.sessions if s.big]
        a, b = rng.sample(bigs, 2) if len(bigs) >= 2 else (bigs[0], bigs[0])
        cookies = dict(a.cookies)
        names = [k for k in cookies if k in b.cookies]
        name = rng.choice(names[1:] or names)
        if a is b:
            cookies[name] = cookies[name][::-1]
        else:
            cookies[name] = b.cookies[name]
        self._unauth(rng, "swapped_chunks", [("Cookie", "; ".join(f"{k}={x}" for k, x in cookies.items()))])

    def op_random_callback(self, rng, n):
        r = lambda k: "".join(rng.choice("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_") for _ in range(k))  # noqa: E731
        query = rng.choice([
            f"code={r(40)}&state={r(43)}",
            f"state={r(43)}",
            f"code={r(40)}",
            f"error=access_denied&state={r(43)}",
            f"error=%FF%FE&error_description=%00%01&state={r(10)}",
            f"code=%FF%FE&state=%C3%28&iss={quote(self.stack.issuer)}",
            f"code=a&code=b&state={r(5)}&state={r(5)}",
            f"state={r(4000)}&code={r(10)}",
            "",
        ])
        path = CALLBACK_PATH + (f"?{query}" if query else "")
        headers = list(BROWSER_HEADERS.items())
        if rng.random() < 0.5:
            headers.append(("Cookie", f"{COOKIE}_tx.{r(12)}={r(200)}"))
        rec = self.ledger.register("random_callback", False, {400, 401, 403})
        self.send(rec, "GET", path, headers)

    def op_pass_through(self, rng, n):
        rec = self.ledger.register("pass_through", False, {200}, pass_through=True)
        path = rng.choice([PASS_THROUGH, PASS_THROUGH + "/live"])
        headers = [("Accept", "application/json")]
        if rng.random() < 0.5:
            headers += [("Authorization", "Bearer forged"), ("X-Auth-Request-User", "mallory")]
        reply = self.send(rec, "GET", path, headers)
        if reply is not None and rec.status == 200 and not rec.upstream:
            self.ledger.violate(rec, "pass-through path not answered by the upstream")


# Weights of the request mix.
CLASSES: dict[str, tuple[int, Callable]] = {
    "login": (6, Traffic.op_login),
    "session": (12, Traffic.op_session),
    "session_big": (8, Traffic.op_session_big),
    "session_junk_cookie": (3, Traffic.op_session_junk_cookie),
    "session_refresh": (5, Traffic.op_session_refresh),
    "bearer_valid": (10, Traffic.op_bearer_valid),
    "bearer_big": (3, Traffic.op_bearer_big),
    "bearer_expired": (3, Traffic.op_bearer_expired),
    "bearer_forged": (3, Traffic.op_bearer_forged),
    "bearer_alg_none": (3, Traffic.op_bearer_alg_none),
    "bearer_unknown_kid": (3, Traffic.op_bearer_unknown_kid),
    "bearer_misc": (3, Traffic.op_bearer_misc),
    "ws_session": (4, Traffic.op_ws_session),
    "ws_bearer": (4, Traffic.op_ws_bearer),
    "ws_unauth": (2, Traffic.op_ws_unauth),
    "ws_foreign_origin": (2, Traffic.op_ws_foreign_origin),
    "ws_bad_bearer": (2, Traffic.op_ws_bad_bearer),
    "junk_cookie": (3, Traffic.op_junk_cookie),
    "junk_auth": (3, Traffic.op_junk_auth),
    "huge_near": (1, Traffic.op_huge_near),
    "huge_over": (1, Traffic.op_huge_over),
    "tampered_session": (3, Traffic.op_tampered_session),
    "truncated_session": (3, Traffic.op_truncated_session),
    "swapped_chunks": (2, Traffic.op_swapped_chunks),
    "random_callback": (3, Traffic.op_random_callback),
    "pass_through": (2, Traffic.op_pass_through),
}


# ------------------------------------------------------------------- runner --


@dataclass
class ChaosResult:
    ledger: Ledger
    auditor: Auditor
    watch_problems: list[str]
    phases: list[tuple[str, float]]  # (name, seconds)
    memory: list[tuple[str, dict]]
    filter_stats: dict
    idp_stats: dict
    seconds: float
    coverage_problems: list[str]

    def problems(self) -> list[str]:
        return (list(self.auditor.leaks) + self.auditor.problems + self.ledger.violations
                + self.watch_problems + self.coverage_problems)

    def summary(self) -> str:
        return summarise(self)


def run_chaos(
    stack: Stack,
    phases: list[Phase],
    workers: int = 8,
    seed: int = 20251122,
    log: Callable[[str], None] = print,
    every_minute: Callable[[str, "Ledger", "Auditor", "EnvoyWatch"], None] | None = None,
) -> ChaosResult:
    """Drive the mix through `stack` while the IdP goes through `phases`."""
    t0 = time.monotonic()
    ledger = Ledger(run_id=f"c{seed % 100000:05d}")
    traffic = Traffic(stack, ledger)
    stack.idp_fault("all", "ok")
    watch = EnvoyWatch(stack)
    watch.start()
    memory = [("start", watch.memory())]
    auditor = Auditor(stack, ledger)
    auditor.start()
    traffic.establish(random.Random(seed))

    stop = threading.Event()
    names = list(CLASSES)
    weights = [CLASSES[n][0] for n in names]
    worker_errors: list[str] = []

    def work(i: int) -> None:
        rng = random.Random(seed * 1000 + i)
        n = 0
        while not stop.is_set():
            n += 1
            name = rng.choices(names, weights)[0]
            try:
                CLASSES[name][1](traffic, rng, n)
            except Exception as exc:  # noqa: BLE001 - a driver bug, not the filter's
                worker_errors.append(f"worker {i} op {name}: {type(exc).__name__}: {exc}")
                if len(worker_errors) > 50:
                    stop.set()

    threads = [threading.Thread(target=work, args=(i,), name=f"chaos-{i}", daemon=True) for i in range(workers)]
    done_phases: list[tuple[str, float]] = []
    coverage_problems: list[str] = []
    next_minute = time.monotonic() + 60
    minute_no = 0
    try:
        ledger.set_phase(phases[0].name if phases else "run")
        for t in threads:
            t.start()
        for ph in phases:
            stack.idp_fault("all", ph.mode, ph.delay_ms)
            ledger.set_phase(ph.name)
            start = time.monotonic()
            log(f"chaos: phase {ph.name} (IdP {ph.mode}{f' {ph.delay_ms} ms' if ph.delay_ms else ''})")
            while True:
                time.sleep(0.25)
                if every_minute and time.monotonic() >= next_minute:
                    minute_no += 1
                    next_minute += 60
                    every_minute(str(minute_no), ledger, auditor, watch)
                elapsed = time.monotonic() - start
                with ledger.lock:
                    cov = (ledger.coverage[(ph.name, "session")], ledger.coverage[(ph.name, "bearer")])
                if stop.is_set() or elapsed >= ph.max_seconds:
                    break
                if elapsed >= ph.min_seconds and min(cov) >= ph.coverage:
                    break
            if min(cov) < ph.coverage:
                coverage_problems.append(
                    f"phase {ph.name}: only {cov[0]} session and {cov[1]} bearer requests with valid credentials "
                    f"ran entirely inside it (wanted {ph.coverage} each)")
            done_phases.append((ph.name, time.monotonic() - start))
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=120)
        stack.idp_fault("all", "ok")
    ledger.set_phase("recovery")
    # After the outage: a new login and a fresh bearer token work at once.
    rng = random.Random(seed + 1)
    if traffic.login(rng, "recovered", "/after") is None:
        ledger.violations.append("[recovery] a login after the IdP came back did not succeed")
    traffic.op_bearer_valid(rng, 0)
    if every_minute:
        every_minute("last", ledger, auditor, watch)  # the part-minute since the last report
    auditor.finish()
    memory.append(("end", watch.memory()))
    watch_problems = watch.problems() + [f"driver: {e}" for e in worker_errors[:20]]
    filter_stats = {k.removeprefix("wasmcustom."): v for k, v in stack.envoy_stats(filter=r"^wasmcustom\.").items()}
    return ChaosResult(ledger=ledger, auditor=auditor, watch_problems=watch_problems, phases=done_phases,
                       memory=memory, filter_stats=filter_stats, idp_stats=stack.idp_stats(),
                       seconds=time.monotonic() - t0, coverage_problems=coverage_problems)


# ------------------------------------------------------------------ summary --


def table(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    out = []
    for j, r in enumerate(rows):
        out.append("  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths))))
        if j == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out)


def summarise(res: ChaosResult) -> str:
    L = res.ledger
    outcomes = sorted({o for (_c, o) in L.counts}, key=lambda o: (not o[:1].isdigit(), o))
    classes = sorted({c for (c, _o) in L.counts})
    errors = Counter()
    for v in L.violations:
        m = re.match(r"\[[^\]]*\] (\S+) ", v)
        if m:
            errors[m.group(1)] += 1
    rows = [["class", "total"] + outcomes + ["violations"]]
    for c in classes:
        row = [c, str(sum(n for (cc, _o), n in L.counts.items() if cc == c))]
        row += [str(L.counts.get((c, o), "")) or "" for o in outcomes]
        row.append(str(errors.get(c, 0)))
        rows.append(row)
    total = [["TOTAL", str(sum(L.counts.values()))] + [str(sum(n for (_c, oo), n in L.counts.items() if oo == o)) for o in outcomes]
             + [str(len(L.violations))]]
    lines = ["requests per class x outcome (HTTP status; 101 = WebSocket upgraded and echoed;"
             " login.idp = the IdP's forms, not through Envoy)", table(rows + total), ""]
    # Per phase: requests, valid-credential requests and how they ended.
    prow = [["phase", "seconds", "requests", "valid", "valid ok", "401", "403", "4xx other", "502", "503", "leaks/violations"]]
    for name, secs in [("setup", 0.0)] + res.phases + [("recovery", 0.0)]:
        items = [(c, o, n) for (p, c, o), n in L.phase_counts.items() if p == name]
        valid_cls = VALID_SESSION_CLASSES | VALID_BEARER_CLASSES
        prow.append([
            name, f"{secs:.0f}" if secs else "-", str(sum(n for _c, _o, n in items)),
            str(sum(n for c, _o, n in items if c in valid_cls)),
            str(sum(n for c, o, n in items if c in valid_cls and o in ("200", "101"))),
            str(sum(n for _c, o, n in items if o == "401")),
            str(sum(n for _c, o, n in items if o == "403")),
            str(sum(n for _c, o, n in items if o.startswith("4") and o not in ("401", "403"))),
            str(sum(n for _c, o, n in items if o == "502")),
            str(sum(n for _c, o, n in items if o == "503")),
            str(sum(1 for v in L.violations if v.startswith(f"[{name}]"))),
        ])
    lines += ["per IdP phase (valid = carried valid credentials)", table(prow), ""]
    lines.append(f"upstream: {res.auditor.seen} requests audited, {len(res.auditor.leaks)} leaks, "
                 f"{len(res.auditor.problems)} other problems")
    interesting = {k: v for k, v in sorted(res.filter_stats.items())
                   if not k.endswith("_unix") and ("fail" in k or "rejected" in k or "completed" in k or "refetch" in k or "refreshed" in k
                                                   or k.endswith(".keys") or "fetch_success" in k or "not_ready" in k)}
    lines.append("filter stats: " + ", ".join(f"{k.removeprefix('oidc_edge.')}={v}" for k, v in interesting.items()))
    lines.append("IdP requests: " + ", ".join(f"{k}={v}" for k, v in sorted(res.idp_stats.items())
                                               if k in ("/jwks", "/.well-known/openid-configuration", "/token")))
    lines.append("Envoy memory: " + "; ".join(f"{label}: {format_memory(m)}" for label, m in res.memory))
    lines.append(f"duration {res.seconds:.0f} s; problems: {len(res.problems())}")
    return "\n".join(lines)

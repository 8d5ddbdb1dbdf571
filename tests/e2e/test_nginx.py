"""NGINX in front of Envoy, as an ingress would be: nginx-examples/nginx.conf
carries a 32 KB session through a login, page requests and a WebSocket;
NGINX's default buffers refuse the same cookie (400 "Request Header Or
Cookie Too Large") and the callback's large Set-Cookie (502 "upstream sent
too big header").

Debian's nginx (`make nginx`, part of `make setup`) runs unprivileged from a
temporary prefix: the example file rendered with a free 127.0.0.1 port,
Envoy's port and the temp/log paths, `-g "daemon off; master_process off;
pid ...; error_log stderr"`. One process, in its own process group, with
PR_SET_PDEATHSIG: it cannot outlive the test run.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
import requests
import websocket

from http_util import bearer_token, cookie_names, created_cookies, jwt_payload
from oidc_login import BROWSER_HEADERS, login
from stack import ARTIFACTS_DIR, HARNESS_DIR, ROOT, Stack, _child_setup, serve, _tail, free_ports, new_session

EXAMPLE = ROOT / "nginx-examples" / "nginx.conf"
PREFIX = "oidc_edge"
# The IdP's big claim, sized so that the sealed session comes to about 32 KB
# of cookies (checked below).
BIG_CLAIM = 24_000
BUFFER_DIRECTIVES = (
    "client_header_buffer_size",
    "large_client_header_buffers",
    "proxy_buffer_size",
    "proxy_buffers",
    "proxy_busy_buffers_size",
)


# ------------------------------------------------------------------- nginx --


def find_nginx() -> str | None:
    return shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx",) if Path(p).is_file()), None)


@pytest.fixture(scope="module")
def nginx_bin() -> str:
    path = find_nginx()
    if path is None:
        # `make setup` installs it; a direct pytest run gets the same chance.
        subprocess.run(["bash", str(HARNESS_DIR / "install-nginx.sh")], check=False, timeout=600)
        path = find_nginx()
    if path is None:
        pytest.skip("nginx is not installed and cannot be installed here (needs root and apt-get: `make nginx`)")
    return path


def render(envoy_port: int, listen_port: int, prefix: Path, default_buffers: bool = False) -> str:
    """nginx-examples/nginx.conf for an unprivileged instance on 127.0.0.1:
    the listen address, Envoy's port, and temp/log paths under `prefix`.
    With `default_buffers`, the buffer directives are removed (NGINX's
    defaults apply)."""
    text = EXAMPLE.read_text()

    def sub(pattern: str, repl: str) -> None:
        nonlocal text
        text, n = re.subn(pattern, repl, text, flags=re.M)
        assert n == 1, f"{pattern!r} found {n} times in {EXAMPLE}"

    sub(r"^(\s*)listen 80;", rf"\g<1>listen 127.0.0.1:{listen_port};")
    sub(r"^(\s*)server 127\.0\.0\.1:8080;", rf"\g<1>server 127.0.0.1:{envoy_port};")
    paths = "\n".join(
        f"    {d} {prefix / name};"
        for d, name in (
            ("client_body_temp_path", "client_body"),
            ("proxy_temp_path", "proxy"),
            ("fastcgi_temp_path", "fastcgi"),
            ("uwsgi_temp_path", "uwsgi"),
            ("scgi_temp_path", "scgi"),
        )
    )
    sub(r"^http \{$", f"http {{\n    access_log {prefix / 'access.log'};\n{paths}")
    if default_buffers:
        for directive in BUFFER_DIRECTIVES:
            sub(rf"^\s*{directive}\s[^;]*;.*$", f"    # {directive}: NGINX's default")
    return text


class Nginx:
    """One unprivileged NGINX process (master_process off) in its own
    process group; dies with this process (PR_SET_PDEATHSIG)."""

    def __init__(self, binary: str, name: str, conf: str, port: int, prefix: Path):
        self.port = port
        self.dir = prefix
        self.artifacts = ARTIFACTS_DIR / name
        self.artifacts.mkdir(parents=True, exist_ok=True)
        self.conf = self.dir / "nginx.conf"
        self.conf.write_text(conf)
        (self.artifacts / "nginx.conf").write_text(conf)
        self.log = self.artifacts / "nginx.log"
        globals_ = f"daemon off; master_process off; pid {self.dir / 'nginx.pid'}; error_log stderr info;"
        argv = [binary, "-p", str(self.dir), "-c", str(self.conf), "-e", "stderr", "-g", globals_]
        check = subprocess.run([*argv, "-t"], capture_output=True, text=True, timeout=30)
        assert check.returncode == 0, f"nginx -t refused the rendered {EXAMPLE.name}:\n{check.stderr}"
        with open(self.log, "wb") as log:  # fresh: wait_for_log must not see a past run
            self.proc = subprocess.Popen(  # noqa: S603 - fixed argv
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_child_setup(os.getpid()),  # noqa: PLW1509
                close_fds=True,
            )
        try:
            self._wait_listening(time.monotonic() + 20)
        except BaseException:
            self.stop()
            raise

    def _wait_listening(self, deadline: float) -> None:
        while True:
            if self.proc.poll() is not None:
                raise AssertionError(f"nginx exited with {self.proc.returncode}:\n{_tail(self.log)}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise AssertionError(f"nginx not listening on {self.port}:\n{_tail(self.log)}") from None
                time.sleep(0.05)

    def error_log(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        shutil.rmtree(self.dir, ignore_errors=True)


class Front:
    """What the login driver needs of a stack, for the NGINX address."""

    def __init__(self, stack: Stack, nginx: Nginx):
        self.stack = stack
        self.nginx = nginx
        self.origin = f"http://127.0.0.1:{nginx.port}"
        self.discovery = stack.discovery
        self.redirect_uri = f"{self.origin}/oauth2/callback"

    def url(self, path: str = "/") -> str:
        return self.origin + (path if path.startswith("/") else "/" + path)


# ------------------------------------------------------------------ stacks --


@pytest.fixture(scope="module")
def ports() -> dict[str, int]:
    tuned, default = free_ports(2)
    return {"tuned": tuned, "default": default}


@pytest.fixture(scope="module")
def stack(ports):
    extra = ["--big-claim-bytes", str(BIG_CLAIM)]
    for port in ports.values():
        extra += ["--redirect-uri", f"http://127.0.0.1:{port}/oauth2/callback",
                  "--post-logout-redirect-uri", f"http://127.0.0.1:{port}/"]
    yield from serve(Stack(name="nginx-envoy", idp_args=extra))


@pytest.fixture(scope="module")
def tuned(nginx_bin, stack, ports):
    n = start_nginx(nginx_bin, stack, ports["tuned"], "nginx-tuned", default_buffers=False)
    yield Front(stack, n)
    n.stop()


@pytest.fixture(scope="module")
def untuned(nginx_bin, stack, ports):
    n = start_nginx(nginx_bin, stack, ports["default"], "nginx-default", default_buffers=True)
    yield Front(stack, n)
    n.stop()


def start_nginx(binary: str, stack: Stack, port: int, name: str, default_buffers: bool) -> Nginx:
    prefix = Path(tempfile.mkdtemp(prefix=f"oidc-edge-{name}-"))
    try:
        conf = render(stack.envoy_port, port, prefix, default_buffers=default_buffers)
        return Nginx(binary, name, conf, port, prefix)
    except BaseException:
        shutil.rmtree(prefix, ignore_errors=True)
        raise


@pytest.fixture(scope="module")
def session(tuned):
    """alice's ~32 KB session, logged in through the tuned NGINX."""
    r = login(tuned, "/through/nginx?x=1", user="alice")
    cb = r.callback_response
    assert cb.status_code == 302, (cb.status_code, cb.headers, cb.text[:300])
    return r


def filter_cookies(session: requests.Session) -> dict[str, str]:
    return {c.name: c.value for c in session.cookies if c.name.startswith(PREFIX)}


def cookie_header(cookies: dict[str, str]) -> str:
    return "; ".join(f"{k}={v}" for k, v in cookies.items())


def wait_for_log(nginx: Nginx, text: str, timeout: float = 10) -> bool:
    """Whether `text` shows up in the NGINX log (it is written just after
    the response; wait for it rather than race it)."""
    deadline = time.monotonic() + timeout
    while text not in nginx.error_log():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


# ------------------------------------------------------------------- tests --


def test_large_session_page_through_nginx(tuned, session):
    cookies = filter_cookies(session.session)
    size = len(cookie_header(cookies))
    assert size >= 32 * 1024, f"session cookies are {size} bytes, want >= 32 KB (raise BIG_CLAIM)"
    chunks = created_cookies(session.callback_response, PREFIX)
    assert len([c for c in chunks if not c.name.startswith(f"{PREFIX}_tx.")]) >= 8

    before = tuned.stack.upstream_count()
    page = session.follow()
    assert page.status_code == 200, (page.status_code, page.text[:300])
    echo = page.json()
    assert echo["path"] == "/through/nginx?x=1"
    h = echo["headers"]
    token = bearer_token(h)
    assert token and jwt_payload(token)["sub"] == "alice" and len(jwt_payload(token)["big"]) == BIG_CLAIM
    assert [n for n, _v in echo["raw_headers"]].count("authorization") == 1
    assert not [n for n in cookie_names(h.get("cookie")) if n.startswith(PREFIX)]
    # What NGINX told Envoy (and Envoy passed on).
    assert h["host"] == f"127.0.0.1:{tuned.nginx.port}"
    assert h["x-forwarded-proto"] == "http"
    assert h["x-forwarded-host"] == f"127.0.0.1:{tuned.nginx.port}"
    assert "127.0.0.1" in h["x-forwarded-for"]
    assert tuned.stack.upstream_count() == before + 1


def test_large_session_websocket_through_nginx(tuned, session):
    cookies = filter_cookies(session.session)
    ws = websocket.create_connection(
        f"ws://127.0.0.1:{tuned.nginx.port}/ws/feed",
        cookie=cookie_header(cookies),
        origin=tuned.origin,
        timeout=15,
    )
    try:
        for i in range(5):
            text = f"frame {i} " + "y" * (i * 2000)
            ws.send(text)
            assert ws.recv() == text
    finally:
        ws.close()
    upgrades = [r for r in tuned.stack.upstream_requests() if r["websocket"]]
    assert upgrades and upgrades[-1]["path"] == "/ws/feed"
    seen = upgrades[-1]["headers"]
    assert jwt_payload(bearer_token(seen))["sub"] == "alice"
    assert not [n for n in cookie_names(seen.get("cookie")) if n.startswith(PREFIX)]


def test_default_buffers_refuse_the_large_cookie(untuned, session):
    cookies = filter_cookies(session.session)
    before = untuned.stack.upstream_count()
    with new_session() as http:
        r = http.get(untuned.url("/through/nginx"), headers={**BROWSER_HEADERS, "Cookie": cookie_header(cookies)},
                     allow_redirects=False, timeout=15)
    assert r.status_code == 400, (r.status_code, r.text[:300])
    assert "Request Header Or Cookie Too Large" in r.text, r.text[:300]
    with pytest.raises(websocket.WebSocketBadStatusException) as info:
        websocket.create_connection(f"ws://127.0.0.1:{untuned.nginx.port}/ws/feed", cookie=cookie_header(cookies),
                                    origin=untuned.origin, timeout=15).close()
    assert info.value.status_code == 400
    assert untuned.stack.upstream_count() == before
    # NGINX says why only at the `info` log level.
    assert wait_for_log(untuned.nginx, "client sent too long header line: \"Cookie: oidc_edge_0=")


def test_default_buffers_break_the_login_callback(untuned):
    """The callback's answer carries the whole sealed session in Set-Cookie
    headers: more than NGINX's default proxy_buffer_size."""
    r = login(untuned, "/after/login", user="alice")
    assert r.callback_response.status_code == 502, (r.callback_response.status_code, r.callback_response.text[:300])
    assert wait_for_log(untuned.nginx, "upstream sent too big header while reading response header from upstream")

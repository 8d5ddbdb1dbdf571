"""A real browser: headless Debian Chromium (playwright-core) logs in through
Envoy and the test IdP, with an ID token so large that the session is split
into several cookies, and the landed page's script talks over a WebSocket.

- The IdP runs with --big-claim-bytes 12000; the echo upstream serves
  /app.html (--app-page), a page whose script opens a same-origin WebSocket
  to /ws/echo and writes `ws: echo ok` into #ws when its message comes back.
- The browser opens /app.html through Envoy, is sent to the IdP's login form,
  fills in user name and password, submits, accepts consent, lands back on
  /app.html; the page says `user: alice` and `ws: echo ok`.
- The browser holds several `oidc_edge_N` cookies (HttpOnly, each under 4 KB);
  the upstream saw the page and the WebSocket upgrade as alice, with the
  filter's Authorization and without the filter's cookies.
- tests/artifacts/browser/landed.png is the landed page.

Skipped only when Chromium is not installed and cannot be (`make browser`
installs Debian's `chromium` as root).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from http_util import bearer_token, cookie_names, jwt_payload
from stack import ARTIFACTS_DIR, HARNESS_DIR, find_node

CHROMIUM = Path("/usr/bin/chromium")
BIG_CLAIM = 12000


def test_browser_login_split_session_and_websocket(make_stack):
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is not installed and could not be: `make browser` installs Debian's chromium "
                    "package (needs root and the Debian package mirror)")
    if not (HARNESS_DIR / "node_modules" / "playwright-core").is_dir():
        pytest.fail("tests/harness/node_modules/playwright-core missing: run `make setup` (npm ci)", pytrace=False)

    s = make_stack(name="browser", idp_args=["--big-claim-bytes", str(BIG_CLAIM)], upstream_args=["--app-page", "/app.html"])
    s.wait_filter_ready(30)
    screenshot = ARTIFACTS_DIR / "browser" / "landed.png"
    screenshot.unlink(missing_ok=True)
    profile = tempfile.mkdtemp(prefix="oidc-edge-chromium-")
    try:
        run = subprocess.run(
            [find_node(), str(HARNESS_DIR / "browser_login.mjs"), "--url", s.url("/app.html"),
             "--user", "alice", "--password", "secret", "--screenshot", str(screenshot),
             "--chromium", str(CHROMIUM), "--user-data-dir", profile, "--timeout-ms", "60000"],
            capture_output=True, text=True, timeout=300,
        )
    finally:
        shutil.rmtree(profile, ignore_errors=True)
    (s.artifacts / "browser-run.log").write_text(run.stdout + "\n--- stderr ---\n" + run.stderr)
    lines = [line for line in run.stdout.splitlines() if line.startswith("{")]
    assert lines, f"browser driver printed no result (exit {run.returncode}):\n{run.stdout[-2000:]}\n{run.stderr[-3000:]}"
    result = json.loads(lines[-1])
    assert result["ok"], f"browser run failed at {result.get('final_url')}: {result.get('error')}\npage: {result.get('page_text')}\nsteps: {result.get('steps')}"

    # The way it went: Envoy -> the IdP's interaction pages -> the callback -> the page.
    steps = result["steps"]
    assert any(u.startswith(s.issuer + "/interaction/") for u in steps), steps
    assert result["final_url"] == s.url("/app.html"), result["final_url"]
    assert result["user"] == "user: alice", result["user"]
    assert result["ws"] == "ws: echo ok", result["ws"]
    assert screenshot.is_file() and screenshot.stat().st_size > 0

    # The session is split into several cookies, each small enough for a browser.
    chunks = sorted(c["name"] for c in result["cookies"] if re.fullmatch(r"oidc_edge_\d+", c["name"]))
    assert len(chunks) >= 2, f"expected several oidc_edge_N cookies, the browser holds {[c['name'] for c in result['cookies']]}"
    for c in result["cookies"]:
        if c["name"].startswith("oidc_edge"):
            assert c["httpOnly"], c
            assert c["size"] <= 4000, c
    assert not [c for c in result["cookies"] if c["name"].startswith("oidc_edge_tx")], result["cookies"]

    # What the application saw: the page and the WebSocket, as alice, with the
    # (large) ID token in Authorization and none of the filter's cookies.
    seen = s.upstream_requests()
    page = [e for e in seen if e["path"] == "/app.html" and not e["websocket"]]
    ws = [e for e in seen if e["websocket"]]
    assert page and ws, [(e["path"], e["websocket"]) for e in seen]
    for e in (page[-1], ws[-1]):
        headers = e["headers"]
        assert headers.get("x-auth-request-user") == "alice", headers.get("x-auth-request-user")
        token = bearer_token(headers)
        assert token and jwt_payload(token)["sub"] == "alice"
        assert len(jwt_payload(token).get("big", "")) == BIG_CLAIM
        assert not [n for n in cookie_names(headers.get("cookie")) if n.startswith("oidc_edge")], headers.get("cookie")
    assert ws[-1]["path"] == "/ws/echo"

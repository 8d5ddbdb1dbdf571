"""Sessions through the real Envoy and the real IdP: large tokens split into
chunked cookies, WebSockets (cookies, bearer header, subprotocol, query
token, origin checks), stale and tampered chunks, refresh before expiry and
its failures, RP-initiated logout, and the cookie options (`__Host-` over
https, cookie_name, cookie_domain, SameSite, secret rotation).

Stacks (module scope, so each starts once):
  - `refresh`: ID and access tokens live 65 s, clock skew 0; the default
    refresh_before_expiry (60 s) makes a session refresh from its 5th second.
    A session made when the module starts is kept untouched until the last
    test, which waits once for its token to expire.
  - `big`: the IdP gives alice a 20 000-character claim (bob none);
    allow_query_token on, https://app.example.com an allowed origin.
  - `plain`: default config on a fixed Envoy port whose https and
    app.example.test callbacks are registered at the IdP; the cookie-option
    tests restart its Envoy with other configurations.
"""

from __future__ import annotations

import base64
import html
import re
import time
from urllib.parse import urlsplit

import pytest
import requests
import websocket

from http_util import (
    b64url_encode,
    bearer_token,
    cookie_names,
    cookies_from_response,
    created_cookies,
    jwt_payload,
)
from oidc_login import (
    BROWSER_HEADERS,
    call_callback,
    complete_at_idp,
    idp_logout,
    login,
    new_browser,
    query_params,
    start_login,
)
from stack import COOKIE_SECRET, Stack, free_ports, new_session, serve
from tokens import mint_token, token_claims

PREFIX = "oidc_edge"
API_HEADERS = {"Accept": "application/json"}
BIG_CLAIM = 20_000
# A second cookie secret (bytes 0x20..0x3f) for the rotation test.
COOKIE_SECRET_B = base64.b64encode(bytes(range(32, 64))).decode("ascii")
ALLOWED_ORIGIN = "https://app.example.com"
FOREIGN_ORIGIN = "https://evil.example"
TTL = 65  # seconds, ID and access tokens of the refresh stack
CROWD = 16  # sessions whose tokens expire together (test_many_sessions_...)


# --------------------------------------------------------------- helpers --


def is_filter_cookie(name: str) -> bool:
    return name.removeprefix("__Host-").startswith(PREFIX)


def filter_cookies(session: requests.Session) -> dict[str, str]:
    return {c.name: c.value for c in session.cookies if is_filter_cookie(c.name)}


def cookie_header(cookies: dict[str, str]) -> str:
    return "; ".join(f"{k}={v}" for k, v in cookies.items())


def get(stack: Stack, path: str, cookies: dict[str, str] | None = None, headers: dict | None = None,
        browser: bool = True) -> requests.Response:
    """One request through Envoy with exactly these cookies (no jar)."""
    h = dict(BROWSER_HEADERS if browser else API_HEADERS)
    if cookies:
        h["Cookie"] = cookie_header(cookies)
    h.update(headers or {})
    with new_session() as s:
        return s.get(stack.url(path), headers=h, allow_redirects=False, timeout=15)


def forwarded(resp: requests.Response) -> dict:
    """The echo upstream's view of a forwarded request."""
    assert resp.status_code == 200, (resp.status_code, resp.headers, resp.text[:400])
    return resp.json()


def assert_login_redirect(stack: Stack, resp: requests.Response) -> None:
    assert resp.status_code == 302, (resp.status_code, resp.text[:300])
    assert resp.headers["Location"].startswith(stack.discovery["authorization_endpoint"] + "?"), resp.headers["Location"]


def assert_401(resp: requests.Response) -> None:
    assert resp.status_code == 401, (resp.status_code, resp.headers, resp.text[:300])
    assert "Location" not in resp.headers, resp.headers
    assert resp.headers.get("WWW-Authenticate", "").startswith("Bearer"), resp.headers


def logged_in(stack: Stack, user: str, path: str = "/", session: requests.Session | None = None):
    """A full browser login; returns (browser, the landing page's echo)."""
    r = login(stack, path, user=user, session=session)
    assert r.callback_response.status_code == 302, (r.callback_response.status_code, r.callback_response.text[:300])
    page = r.follow()
    return r, forwarded(page)


def forwarded_token(echo: dict) -> str:
    token = bearer_token(echo["headers"])
    assert token, echo["headers"].get("authorization")
    assert [n for n, _v in echo["raw_headers"]].count("authorization") == 1, echo["raw_headers"]
    return token


def assert_no_filter_cookie_upstream(echo: dict) -> None:
    names = cookie_names(echo["headers"].get("cookie"))
    assert not [n for n in names if is_filter_cookie(n)], names


def ws_url(stack: Stack, path: str) -> str:
    return "ws" + stack.url(path)[len("http"):]


def ws_open(stack: Stack, path: str, *, cookies: dict[str, str] | None = None, headers: dict | None = None,
            origin: str | None = None, subprotocols: list[str] | None = None) -> websocket.WebSocket:
    """A WebSocket through Envoy. Without `origin` no Origin header is sent
    (a non-browser client)."""
    return websocket.create_connection(
        ws_url(stack, path),
        header=dict(headers or {}),
        cookie=cookie_header(cookies) if cookies else None,
        origin=origin,
        suppress_origin=origin is None,
        subprotocols=subprotocols,
        timeout=15,
    )


def ws_refused(stack: Stack, path: str, **kwargs) -> websocket.WebSocketBadStatusException:
    """Opens a WebSocket that must be refused; returns the refusal."""
    with pytest.raises(websocket.WebSocketBadStatusException) as info:
        ws = ws_open(stack, path, **kwargs)
        ws.close()
    return info.value


def echo_round_trips(ws: websocket.WebSocket, count: int = 5) -> None:
    try:
        for i in range(count):
            text = f"message {i} " + "x" * (i * 1000)
            ws.send(text)
            assert ws.recv() == text
        ws.send_binary(bytes(range(256)))
        assert ws.recv() == bytes(range(256))
    finally:
        ws.close()


def last_upgrade(stack: Stack) -> dict:
    upgrades = [r for r in stack.upstream_requests() if r["websocket"]]
    assert upgrades, "no WebSocket upgrade reached the upstream"
    return upgrades[-1]


def wait_until(unix_time: float) -> None:
    """Sleep until the wall clock reaches `unix_time` (a wait, not a check)."""
    while True:
        left = unix_time - time.time()
        if left <= 0:
            return
        time.sleep(min(left, 1.0))


def https_browser() -> requests.Session:
    """A browser behind a TLS-terminating front: Envoy is told (by
    X-Forwarded-Proto) that the client is on https."""
    b = new_browser()
    b.headers["X-Forwarded-Proto"] = "https"
    return b


def keep_secure_cookies_over_http(b: requests.Session) -> None:
    """The harness speaks plain http to Envoy where the browser would speak
    https to the front: once the Set-Cookie headers have been checked, let
    the jar send the Secure cookies on http too."""
    for c in b.cookies:
        c.secure = False


# ------------------------------------------------------------------ stacks --


@pytest.fixture(scope="module")
def refresh_stack():
    yield from serve(Stack(
        name="sessions-refresh",
        idp_args=["--id-token-ttl", str(TTL), "--access-token-ttl", str(TTL)],
        plugin_config_overrides={"clock_skew_seconds": 0},
    ))


@pytest.fixture(scope="module")
def expiring_session(refresh_stack):
    """A session made now and left alone until the last test of the module,
    which waits once for its token to expire (a second one, bert's, is
    for the parallel requests of a session whose token has expired)."""
    r, echo = logged_in(refresh_stack, "erin")
    burst, _ = logged_in(refresh_stack, "bert")
    crowd = [filter_cookies(logged_in(refresh_stack, f"crowd{i}")[0].session) for i in range(CROWD)]
    return {"cookies": filter_cookies(r.session), "exp": jwt_payload(forwarded_token(echo))["exp"],
            "burst_cookies": filter_cookies(burst.session), "crowd": crowd}


@pytest.fixture(scope="module")
def big():
    yield from serve(Stack(
        name="sessions-big",
        idp_args=["--big-claim-bytes", str(BIG_CLAIM), "--big-claim-users", "alice"],
        plugin_config_overrides={"allow_query_token": True, "allowed_origins": [ALLOWED_ORIGIN]},
    ))


@pytest.fixture(scope="module")
def alice(big):
    """alice's chunked session on the big stack: (browser, forwarded token)."""
    r, echo = logged_in(big, "alice")
    return r.session, forwarded_token(echo)


PLAIN_PORT = free_ports(1)[0]
APP_HOST = "app.example.test"


@pytest.fixture(scope="module")
def plain():
    port = PLAIN_PORT
    extra = []
    for base in (f"https://127.0.0.1:{port}", f"http://{APP_HOST}:{port}", f"https://{APP_HOST}:{port}"):
        extra += ["--redirect-uri", f"{base}/oauth2/callback", "--post-logout-redirect-uri", f"{base}/"]
    yield from serve(Stack(name="sessions-plain", ports={"envoy": port}, idp_args=extra))


@pytest.fixture
def plain_config(plain):
    """`apply(overrides)`: the plain stack with these plugin overrides,
    restarting its Envoy only when they differ from the running ones (an
    Envoy start compiles the wasm module: seconds on a busy machine)."""

    def apply(overrides: dict) -> Stack:
        if overrides != plain.plugin_config_overrides:
            plain.restart_envoy(plugin_config_overrides=overrides)
            plain.wait_filter_ready(15)
        return plain

    return apply


# ----------------------------------------------------------------- refresh --
# First in the module: the expiring session starts its clock here.


def test_refresh_before_expiry_reseals_and_forwards_a_new_token(refresh_stack, expiring_session):
    s = refresh_stack
    r, echo = logged_in(s, "rita")
    old = jwt_payload(forwarded_token(echo))
    # In the refresh window (token_exp - 60 s) and a second after iat, so
    # the new token's iat differs.
    wait_until(old["iat"] + (TTL - 60) + 1)
    s.idp_stats_reset()
    resp = r.session.get(s.url("/after-refresh"), allow_redirects=False, timeout=15)
    echo = forwarded(resp)
    assert s.idp_stats().get("/token", 0) >= 1, s.idp_stats()
    resealed = created_cookies(resp, PREFIX)
    assert resealed, f"no re-sealed session cookie: {cookies_from_response(resp)}"
    new = jwt_payload(forwarded_token(echo))
    assert new["sub"] == old["sub"] == "rita"
    assert new["iat"] > old["iat"] and new["exp"] > old["exp"], (old, new)
    assert_no_filter_cookie_upstream(echo)
    # The browser now holds the refreshed session: the new token goes
    # upstream (unless, on a very slow machine, it is due for refresh again).
    later = r.session.get(s.url("/later"), allow_redirects=False, timeout=15)
    token = jwt_payload(forwarded_token(forwarded(later)))
    assert token["sub"] == "rita"
    if not created_cookies(later, PREFIX):
        assert token["iat"] == new["iat"], (token, new)


def test_a_refresh_outlives_the_request_whose_client_hung_up(refresh_stack):
    """A browser moving on resets its request while that request's refresh is at the
    IdP. The call belongs to the filter, not to the request: its result is kept for the
    session's next request, and the refresh token is never presented twice (rotating
    IdPs revoke the whole grant when a used one comes back). Before, Envoy cancelled the
    call with the request, and the next try presented the spent refresh token."""
    import socket
    import struct

    import stack as harness

    s = refresh_stack
    r, echo = logged_in(s, "hana")
    wait_until(jwt_payload(forwarded_token(echo))["iat"] + (TTL - 60) + 1)
    cookies = {c.name: c.value for c in r.session.cookies if is_filter_cookie(c.name)}
    s.idp_stats_reset()
    s.idp_fault("token", "slow", 2000)
    try:
        sock = socket.create_connection(("127.0.0.1", s.envoy_port), timeout=10)
        sock.sendall(
            f"GET /hang-up HTTP/1.1\r\nHost: 127.0.0.1:{s.envoy_port}\r\nCookie: {cookie_header(cookies)}\r\n"
            "Accept: application/json\r\n\r\n".encode()
        )
        harness.wait_until(lambda: s.idp_stats().get("/token", 0) >= 1, 15, message="the refresh reaching the IdP")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()  # a reset, as a browser cancelling a request
        # The IdP answers 2 s later; until the result is in, requests go on with the
        # still-valid token and take no cookies home.
        later = harness.wait_until(
            lambda: (lambda resp: resp if created_cookies(resp, PREFIX) else None)(get(s, "/after-hang-up", cookies, browser=False)),
            20, interval=0.5, message="the refreshed session on a later request",
        )
    finally:
        s.idp_fault("token", "ok")
    assert later.status_code == 200, (later.status_code, later.text[:300])
    assert jwt_payload(forwarded_token(forwarded(later)))["sub"] == "hana"
    assert s.idp_stats().get("/token", 0) == 1, f"the refresh token was presented again: {s.idp_stats()}"


def test_refresh_failure_keeps_a_still_valid_token(refresh_stack):
    s = refresh_stack
    r, echo = logged_in(s, "ross")
    token = forwarded_token(echo)
    wait_until(jwt_payload(token)["iat"] + (TTL - 60) + 1)
    s.idp_fault("token", "500")
    try:
        s.idp_stats_reset()
        before = s.upstream_count()
        for browser in (True, False):
            resp = get(s, "/during-outage", filter_cookies(r.session), browser=browser)
            echo = forwarded(resp)
            assert forwarded_token(echo) == token
            assert created_cookies(resp, PREFIX) == []
        assert s.idp_stats().get("/token", 0) >= 1, s.idp_stats()
        assert s.upstream_count() == before + 2
    finally:
        s.idp_fault("token", "ok")


# ------------------------------------------------ large tokens, chunks, WS --


def test_large_id_token_session_is_chunked(big):
    r = login(big, "/big/page", user="alice")
    cb = r.callback_response
    assert cb.status_code == 302, (cb.status_code, cb.text[:300])
    made = created_cookies(cb, PREFIX)
    names = sorted(c.name for c in made if not c.name.startswith(f"{PREFIX}_tx."))
    assert len(names) >= 5, names
    assert names == sorted(f"{PREFIX}_{i}" for i in range(len(names))), names
    for c in made:
        assert len(c.name) + 1 + len(c.value) <= 4000, (c.name, len(c.value))
        assert c.http_only and c.path == "/", c.raw
    first = next(c for c in made if c.name == f"{PREFIX}_0")
    assert first.value.startswith(f"{len(names)}~"), first.value[:10]

    before = big.upstream_count()
    echo = forwarded(r.follow())
    token = forwarded_token(echo)
    claims = jwt_payload(token)
    assert claims["sub"] == "alice" and len(claims["big"]) == BIG_CLAIM
    assert len(token) > BIG_CLAIM
    assert_no_filter_cookie_upstream(echo)
    assert echo["headers"]["x-auth-request-user"] == "alice"
    assert big.upstream_count() == before + 1


def test_websocket_with_chunked_session_cookies(big, alice):
    session, token = alice
    cookies = filter_cookies(session)
    assert len(cookies) >= 5 and sum(len(v) for v in cookies.values()) > 20_000
    ws = ws_open(big, "/ws/chat?room=1", cookies={**cookies, "app_pref": "dark"}, origin=big.origin)
    echo_round_trips(ws)
    seen = last_upgrade(big)
    assert seen["path"] == "/ws/chat?room=1"
    assert bearer_token(seen["headers"]) == token
    assert [n for n, _v in seen["raw_headers"]].count("authorization") == 1
    assert cookie_names(seen["headers"].get("cookie")) == ["app_pref"]


def big_bearer(stack: Stack, size: int = 40 * 1024) -> str:
    """A valid token of at least `size` bytes signed with the fixture key."""
    filler = b64url_encode(bytes(range(256)) * (size // 256 + 1))[: size * 3 // 4]
    token = mint_token(token_claims(stack, sub="carol", big=filler))
    assert len(token) >= size, len(token)
    return token


def test_websocket_with_40kb_bearer_header(big):
    token = big_bearer(big)
    ws = ws_open(big, "/ws/api", headers={"Authorization": f"Bearer {token}"})
    echo_round_trips(ws)
    seen = last_upgrade(big)
    assert bearer_token(seen["headers"]) == token
    assert seen["headers"]["x-auth-request-user"] == "carol"


def test_websocket_with_40kb_bearer_in_subprotocol(big):
    token = big_bearer(big)
    entry = "base64url.bearer.authorization.k8s.io." + b64url_encode(token.encode())
    ws = ws_open(big, "/ws/k8s", subprotocols=["v4.channel.k8s.io", entry])
    assert ws.getsubprotocol() == "v4.channel.k8s.io"
    echo_round_trips(ws)
    seen = last_upgrade(big)
    assert bearer_token(seen["headers"]) == token
    protocols = [p.strip() for p in seen["headers"].get("sec-websocket-protocol", "").split(",")]
    assert protocols == ["v4.channel.k8s.io"], protocols
    assert "base64url.bearer" not in str(seen["raw_headers"])


def test_websocket_subprotocol_token_beside_another_credential_never_goes_upstream(big):
    """The Authorization header authenticates; a second token in the subprotocol list
    was never checked, so it is dropped from the list, not passed on."""
    alice = mint_token(token_claims(big, sub="alice"))
    mallory = mint_token(token_claims(big, sub="mallory"))
    entry = "base64url.bearer.authorization.k8s.io." + b64url_encode(mallory.encode())
    ws = ws_open(big, "/ws/two", headers={"Authorization": f"Bearer {alice}"}, subprotocols=["v4.channel.k8s.io", entry])
    echo_round_trips(ws)
    seen = last_upgrade(big)
    assert seen["headers"].get("x-auth-request-user") == "alice"
    assert "base64url.bearer" not in str(seen["raw_headers"]), seen["raw_headers"]


def test_websocket_with_query_token(big):
    token = mint_token(token_claims(big, sub="dave"))
    ws = ws_open(big, f"/ws/q?room=7&access_token={token}&x=1")
    echo_round_trips(ws, count=2)
    seen = last_upgrade(big)
    assert urlsplit(seen["path"]).path == "/ws/q"
    assert query_params(seen["path"]) == {"room": "7", "x": "1"}, seen["path"]
    assert "access_token" not in seen["path"]
    assert bearer_token(seen["headers"]) == token


def test_query_token_beside_another_credential_never_goes_upstream(big):
    """Authorization authenticates; an unsigned `access_token` in the query was never
    checked, so it is cut from the path, and the rest of the query stays as sent."""
    alice = mint_token(token_claims(big, sub="alice"))
    forged = b64url_encode(b'{"alg":"none"}') + "." + b64url_encode(b'{"sub":"admin"}') + "."
    ws = ws_open(big, f"/ws/q2?a=%ZZ&access_token={forged}&b=x+y&flag", headers={"Authorization": f"Bearer {alice}"})
    echo_round_trips(ws)
    seen = last_upgrade(big)
    assert seen["headers"].get("x-auth-request-user") == "alice"
    assert seen["path"] == "/ws/q2?a=%ZZ&b=x+y&flag", seen["path"]


def test_unauthenticated_upgrade_is_401_never_a_redirect(big):
    before = big.upstream_count()
    for headers in ({"Accept": "text/html"}, {"Accept": "text/html", "Sec-Fetch-Mode": "navigate", "Sec-Fetch-Dest": "document"}, {}):
        err = ws_refused(big, "/ws/anon", headers=headers, origin=big.origin)
        assert err.status_code == 401, err
        assert not any(k.lower() == "location" for k in (err.resp_headers or {})), err.resp_headers
    assert big.upstream_count() == before


def test_cookie_websocket_from_a_foreign_origin_is_403(big, alice):
    session, _token = alice
    before = big.upstream_count()
    err = ws_refused(big, "/ws/chat", cookies=filter_cookies(session), origin=FOREIGN_ORIGIN)
    assert err.status_code == 403, err
    assert big.upstream_count() == before
    # The same cookies from an origin listed in allowed_origins.
    ws = ws_open(big, "/ws/chat", cookies=filter_cookies(session), origin=ALLOWED_ORIGIN)
    echo_round_trips(ws, count=2)
    assert last_upgrade(big)["headers"]["origin"] == ALLOWED_ORIGIN


def test_smaller_session_expires_the_stale_chunks(big):
    # alice's large session in this browser...
    r, _echo = logged_in(big, "alice")
    browser = r.session
    chunks = sorted(filter_cookies(browser))
    assert len(chunks) >= 5, chunks
    # ...then bob logs in in the same browser (the login is started in
    # another tab, without the session cookies, at a fresh IdP session).
    other = new_browser()
    st = start_login(big, "/as-bob", session=other)
    idp = complete_at_idp(other, st.authorize_url, user="bob")
    for c in other.cookies:
        if c.name.startswith(f"{PREFIX}_tx."):
            browser.cookies.set(c.name, c.value, domain="127.0.0.1", path="/")
    cb = call_callback(browser, idp.callback_url)
    assert cb.status_code == 302, (cb.status_code, cb.text[:300])
    sent = cookies_from_response(cb, PREFIX)
    cleared = sorted(c.name for c in sent if c.clears and not c.name.startswith(f"{PREFIX}_tx."))
    assert cleared == chunks, (cleared, chunks)
    for c in sent:
        if c.clears:
            assert c.max_age == 0, c.raw
    assert [c.name for c in sent if c.creates] == [PREFIX]
    assert sorted(filter_cookies(browser)) == [PREFIX]
    echo = forwarded(browser.get(big.url("/as-bob"), allow_redirects=False, timeout=15))
    assert jwt_payload(forwarded_token(echo))["sub"] == "bob"


def _two_sessions(big):
    a = filter_cookies(logged_in(big, "alice")[0].session)
    b = filter_cookies(logged_in(big, "alice")[0].session)
    assert len(a) >= 3 and len(b) >= 3
    return a, b


@pytest.mark.parametrize("tamper", ["drop", "extra", "swap"])
def test_tampered_chunks_read_as_no_session(big, tamper):
    a, b = _two_sessions(big)
    # The untouched session works, with or without the verdict cache.
    assert forwarded(get(big, "/ok", a, browser=False))
    cookies = dict(a)
    if tamper == "drop":
        del cookies[f"{PREFIX}_1"]
    elif tamper == "extra":
        extra = f"{PREFIX}_{len(a)}"  # one past the last chunk
        assert extra not in a
        cookies[extra] = "AAAA"
    else:
        cookies[f"{PREFIX}_1"] = b[f"{PREFIX}_1"]
    before = big.upstream_count()
    assert_login_redirect(big, get(big, "/tampered", cookies, browser=True))
    assert_401(get(big, "/tampered", cookies, browser=False))
    assert big.upstream_count() == before


# ------------------------------------------------------------------ logout --


def test_logout_clears_every_cookie_and_ends_at_the_idp(big):
    r, echo = logged_in(big, "alice")
    browser = r.session
    token = forwarded_token(echo)
    names = sorted(filter_cookies(browser))
    assert len(names) >= 5

    resp = browser.post(big.url("/oauth2/logout"), headers={"Origin": big.origin}, allow_redirects=False, timeout=15)
    assert resp.status_code == 302, (resp.status_code, resp.text[:300])
    location = resp.headers["Location"]
    assert location.startswith(big.discovery["end_session_endpoint"] + "?"), location[:200]
    p = query_params(location)
    # This stack's ID token is over 12 KB: too long a hint for many IdPs' request lines,
    # so the client alone is named (a small token is sent as the hint: unit-tested).
    assert len(token) > 4096 and "id_token_hint" not in p, location[:200]
    assert p["client_id"] == big.client_id
    assert p["post_logout_redirect_uri"] == big.origin + "/"
    cleared = sorted(c.name for c in cookies_from_response(resp, PREFIX) if c.clears)
    assert cleared == names, (cleared, names)
    assert filter_cookies(browser) == {}

    # Sessions are sealed cookies, not server state: logout ends the
    # browser's copy (and the IdP's session), it does not revoke a copy
    # taken earlier.
    out = idp_logout(browser, location)
    assert out.callback_url == big.origin + "/", out.callback_url
    # The browser is signed out: the next page sends it to the IdP again.
    assert_login_redirect(big, browser.get(out.callback_url, allow_redirects=False, timeout=15))


@pytest.mark.parametrize("headers", [{"Origin": FOREIGN_ORIGIN}, {"Sec-Fetch-Site": "cross-site"}], ids=["origin", "sec-fetch-site"])
def test_cross_site_logout_clears_nothing(big, headers):
    r, _echo = logged_in(big, "bob")
    browser = r.session
    before = filter_cookies(browser)
    resp = browser.post(big.url("/oauth2/logout"), headers=headers, allow_redirects=False, timeout=15)
    assert resp.status_code == 200, (resp.status_code, resp.text[:300])
    assert "<form" in resp.text and "/oauth2/logout" in resp.text
    assert cookies_from_response(resp, PREFIX) == []
    assert filter_cookies(browser) == before
    assert jwt_payload(forwarded_token(forwarded(browser.get(big.url("/still"), allow_redirects=False, timeout=15))))["sub"] == "bob"


# ---------------------------------------------------------- cookie options --


def test_https_cookies_are_host_prefixed_and_secure(plain):
    s = plain
    b = https_browser()
    st = start_login(s, "/secure/page", session=b)
    assert query_params(st.authorize_url)["redirect_uri"] == f"https://127.0.0.1:{s.envoy_port}/oauth2/callback"
    tx = created_cookies(st.response, "__Host-")
    assert [c.name.startswith(f"__Host-{PREFIX}_tx.") for c in tx] == [True], [c.raw for c in cookies_from_response(st.response)]
    keep_secure_cookies_over_http(b)
    idp = complete_at_idp(b, st.authorize_url, user="alice")
    assert idp.callback_url.startswith(f"https://127.0.0.1:{s.envoy_port}/oauth2/callback?")
    cb = call_callback(b, "http://" + idp.callback_url[len("https://"):])
    assert cb.status_code == 302, (cb.status_code, cb.text[:300])
    made = created_cookies(cb, "__Host-")
    assert [c.name for c in made] == [f"__Host-{PREFIX}"], [c.raw for c in cookies_from_response(cb)]
    for c in [*tx, *made]:
        assert c.secure and c.http_only and c.path == "/" and "domain" not in c.attrs, c.raw
    assert created_cookies(cb, PREFIX) == []  # no unprefixed cookie
    keep_secure_cookies_over_http(b)
    echo = forwarded(b.get(s.url(cb.headers["Location"]), allow_redirects=False, timeout=15))
    assert jwt_payload(forwarded_token(echo))["sub"] == "alice"
    assert_no_filter_cookie_upstream(echo)


def test_cookie_secret_rotation(plain_config):
    s = plain_config({})
    a_session = filter_cookies(logged_in(s, "alice")[0].session)
    assert forwarded(get(s, "/a", a_session))

    s = plain_config({"cookie_secret": None, "cookie_secrets": [COOKIE_SECRET_B, COOKIE_SECRET]})
    assert jwt_payload(forwarded_token(forwarded(get(s, "/a-under-ba", a_session))))["sub"] == "alice"
    b_session = filter_cookies(logged_in(s, "bob")[0].session)
    assert forwarded(get(s, "/b-under-ba", b_session))

    s = plain_config({"cookie_secret": None, "cookie_secrets": [COOKIE_SECRET]})
    before = s.upstream_count()
    assert_login_redirect(s, get(s, "/b-under-a", b_session))
    assert_401(get(s, "/b-under-a", b_session, browser=False))
    assert s.upstream_count() == before
    assert jwt_payload(forwarded_token(forwarded(get(s, "/a-under-a", a_session))))["sub"] == "alice"


def same_site_of(cookie) -> str:
    rest = getattr(cookie, "_rest", {}) or {}
    return next((str(v) for k, v in rest.items() if k.lower() == "samesite"), "Lax")


def cross_site_cookie_header(b: requests.Session) -> str:
    """What a browser sends on a navigation another site started: the IdP's
    redirect back to the callback, and every redirect after it in the same
    navigation (redirect-tainted). SameSite=Strict cookies stay home; Lax
    ones go along with a top-level GET (RFC 6265bis 5.2 and 5.6.7)."""
    return "; ".join(f"{c.name}={c.value}" for c in b.cookies if same_site_of(c).lower() != "strict")


META_REFRESH = re.compile(r'<meta http-equiv="refresh" content="0;\s*url=([^"]*)"', re.I)


def test_cookie_name_and_same_site_strict(plain_config):
    s = plain_config({"cookie_name": "app_sess", "cookie_same_site": "strict"})
    # Started by another site: the login ends on a page with a link only, never moving on
    # by itself (that would turn the other site's navigation into this site's own).
    b = new_browser()
    st = start_login(s, "/named?x=1&y=2", session=b, headers={"Sec-Fetch-Site": "cross-site"})
    idp = complete_at_idp(b, st.authorize_url, user="alice")
    cb = b.get(idp.callback_url, headers={"Cookie": cross_site_cookie_header(b)}, allow_redirects=False, timeout=15)
    assert cb.status_code == 200 and not META_REFRESH.search(cb.text) and 'href="/named?x=1&amp;y=2"' in cb.text, cb.text[:500]
    # Started by the user (a typed address): it moves on by itself.
    b = new_browser()
    st = start_login(s, "/named?x=1&y=2", session=b, headers={"Sec-Fetch-Site": "none"})
    assert [c.name.startswith("app_sess_tx.") for c in created_cookies(st.response, "app_sess")] == [True]
    idp = complete_at_idp(b, st.authorize_url, user="alice")
    # The IdP's redirect back is a cross-site navigation, as a browser makes it.
    cb = b.get(idp.callback_url, headers={"Cookie": cross_site_cookie_header(b)}, allow_redirects=False, timeout=15)
    assert cb.status_code in (200, 302), (cb.status_code, cb.text[:300])
    made = created_cookies(cb, "app_sess")
    assert [c.name for c in made] == ["app_sess"], [c.raw for c in cookies_from_response(cb)]
    assert made[0].same_site == "Strict", made[0].raw
    assert created_cookies(st.response, PREFIX) == [] and created_cookies(cb, PREFIX) == []
    if cb.status_code == 302:
        # Still the navigation the IdP started: the Strict cookie stays home.
        landing = b.get(s.url(cb.headers["Location"]), headers={"Cookie": cross_site_cookie_header(b)},
                        allow_redirects=False, timeout=15)
    else:
        # A page of this site moves on by itself: a same-site navigation.
        m = META_REFRESH.search(cb.text)
        assert m, cb.text[:500]
        target = html.unescape(m.group(1))
        assert target == "/named?x=1&y=2", target
        assert cb.headers.get("Cache-Control") == "no-store"
        landing = b.get(s.url(target), allow_redirects=False, timeout=15)
    echo = forwarded(landing)
    assert jwt_payload(forwarded_token(echo))["sub"] == "alice"
    assert not [n for n in cookie_names(echo["headers"].get("cookie")) if n.startswith("app_sess")]


def test_cookie_domain_drops_the_host_prefix(plain_config):
    s = plain_config({"cookie_domain": "example.test"})
    host = f"{APP_HOST}:{s.envoy_port}"
    common = {**BROWSER_HEADERS, "Host": host, "X-Forwarded-Proto": "https"}
    jar: dict[str, str] = {}

    def envoy(path: str) -> requests.Response:
        h = dict(common)
        if jar:
            h["Cookie"] = cookie_header(jar)
        with new_session() as http:
            resp = http.get(s.url(path), headers=h, allow_redirects=False, timeout=15)
        for c in cookies_from_response(resp):
            assert c.attrs.get("domain") == "example.test" and c.secure, c.raw
            assert not c.name.startswith("__Host-"), c.raw
            if c.clears:
                jar.pop(c.name, None)
            else:
                jar[c.name] = c.value
        return resp

    first = envoy("/on-app")
    assert_login_redirect(s, first)
    assert query_params(first.headers["Location"])["redirect_uri"] == f"https://{host}/oauth2/callback"
    assert [n for n in jar if n.startswith(f"{PREFIX}_tx.")], jar
    idp = complete_at_idp(new_browser(), first.headers["Location"], user="alice")
    back = urlsplit(idp.callback_url)
    assert back.netloc == host
    cb = envoy(f"{back.path}?{back.query}")
    assert cb.status_code == 302, (cb.status_code, cb.text[:300])
    assert list(jar) == [PREFIX], jar
    echo = forwarded(envoy("/on-app"))
    assert jwt_payload(forwarded_token(echo))["sub"] == "alice"


# -------------------------------------------------- last: the slow expiry --


def test_expired_token_with_failing_refresh_never_reaches_upstream(refresh_stack, expiring_session):
    s = refresh_stack
    wait_until(expiring_session["exp"] + 1)
    s.idp_fault("token", "500")
    try:
        s.idp_stats_reset()
        before = s.upstream_count()
        assert_login_redirect(s, get(s, "/expired", expiring_session["cookies"], browser=True))
        assert_401(get(s, "/expired", expiring_session["cookies"], browser=False))
        assert s.idp_stats().get("/token", 0) >= 1, s.idp_stats()
        assert s.upstream_count() == before
    finally:
        s.idp_fault("token", "ok")


def test_many_sessions_refreshing_at_once_all_go_on(refresh_stack, expiring_session):
    """Sixteen sessions whose tokens expired together, three parallel requests
    each: every session refreshes once and each of its waiting requests finds
    its own session's result among the others' (they share bounded slots)."""
    import threading

    s = refresh_stack
    wait_until(expiring_session["exp"] + 1)
    before = s.idp_stats().get("/token", 0)
    jobs = [(i, k) for i in range(CROWD) for k in range(3)]
    replies: dict = {}
    start = threading.Barrier(len(jobs))

    def fetch(i: int, k: int) -> None:
        start.wait()
        replies[(i, k)] = get(s, f"/crowd/{i}/{k}", expiring_session["crowd"][i], browser=False)

    threads = [threading.Thread(target=fetch, args=job) for job in jobs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    failed = {job: (r.status_code, r.text[:120]) for job, r in replies.items() if r.status_code != 200}
    assert not failed, failed
    for i in range(CROWD):
        subs = {forwarded(replies[(i, k)])["headers"]["x-auth-request-user"] for k in range(3)}
        assert subs == {f"crowd{i}"}, subs
    assert s.idp_stats().get("/token", 0) - before == CROWD, s.idp_stats()


def test_parallel_requests_after_expiry_share_one_refresh(refresh_stack, expiring_session):
    """A page's parallel requests after the token has expired (an idle tab coming
    back): one request refreshes; the others wait for its result rather than use
    the refresh token again, which this IdP (like Auth0, Okta, Keycloak with
    refresh token revocation) answers by revoking the whole grant. All get
    through, the IdP sees one refresh grant, and the session's next refresh works."""
    import threading

    s = refresh_stack
    wait_until(expiring_session["exp"] + 1)
    s.idp_stats_reset()
    cookies = expiring_session["burst_cookies"]
    replies: list = [None] * 4

    def fetch(i: int) -> None:
        replies[i] = get(s, f"/burst/{i}", cookies, browser=False)

    threads = [threading.Thread(target=fetch, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [r.status_code for r in replies] == [200] * 4, [(r.status_code, r.text[:200]) for r in replies]
    tokens = {jwt_payload(forwarded_token(forwarded(r)))["iat"] for r in replies}
    assert len(tokens) == 1, f"the requests went on with different tokens: {tokens}"
    assert all(created_cookies(r, PREFIX) for r in replies), "every request takes the refreshed cookies home"
    assert s.idp_stats().get("/token", 0) == 1, s.idp_stats()

    # The grant is intact: the refreshed session refreshes again once it is due.
    fresh = {c.name: c.value for c in created_cookies(replies[0], PREFIX)}
    new = jwt_payload(forwarded_token(forwarded(replies[0])))
    wait_until(new["iat"] + (TTL - 60) + 1)
    later = get(s, "/burst/later", fresh, browser=False)
    assert later.status_code == 200, (later.status_code, later.text[:300])
    assert created_cookies(later, PREFIX), "no refresh after the burst"
    assert jwt_payload(forwarded_token(forwarded(later)))["iat"] > new["iat"]
    assert s.idp_stats().get("/token", 0) == 2, s.idp_stats()

"""The filter's first milestone: fail closed until ready, the authorization
redirect, the callback, the session, and the callback's failure modes.

Every test goes through a real Envoy with dist/oidc_edge.wasm and the test
IdP (oidc-provider). Cookie names of the filter start with `oidc_edge`.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from urllib.parse import urlencode, urljoin, urlsplit

import pytest
import requests

from http_util import bearer_token, cookie_names, cookies_from_response, created_cookies, jwt_payload
from oidc_login import (
    BROWSER_HEADERS,
    call_callback,
    complete_at_idp,
    login,
    new_browser,
    query_params,
    raw_get,
    start_login,
)
from stack import HARNESS_DIR, Stack, free_ports, serve

PREFIX = "oidc_edge"
B64URL_43 = re.compile(r"^[A-Za-z0-9_-]{43}$")


# --------------------------------------------------------------- helpers --


def browser_get(session: requests.Session, stack: Stack, path: str, headers: dict | None = None) -> requests.Response:
    return raw_get(session, stack.url("/"), path, headers=headers)


def assert_no_session_created(resp: requests.Response) -> None:
    made = created_cookies(resp, PREFIX)
    assert made == [], f"response sets {PREFIX} cookies: {[c.raw for c in made]}"


def assert_client_error_page(resp: requests.Response) -> None:
    assert 400 <= resp.status_code < 500, f"expected a 4xx page, got {resp.status_code}: {resp.text[:300]}"


def settle_count(stack: Stack) -> int:
    """The upstream's request count, after in-flight requests have landed."""
    time.sleep(0.1)
    return stack.upstream_count()


def filter_cookies(session: requests.Session) -> dict[str, str]:
    return {c.name: c.value for c in session.cookies if c.name.startswith(PREFIX)}


def browser_with_cookies(cookies: dict[str, str], host: str = "127.0.0.1") -> requests.Session:
    b = new_browser()
    for name, value in cookies.items():
        b.cookies.set(name, value, domain=host, path="/")
    return b


# ------------------------------------------------------ fail closed first --


@pytest.mark.parametrize(
    "fault",
    [
        pytest.param({"target": "all", "mode": "down"}, id="idp-down"),
        pytest.param({"target": "jwks", "mode": "500"}, id="jwks-500"),
    ],
)
def test_not_ready_is_503_with_retry_after(make_stack, fault):
    s = make_stack(idp_faults_before_envoy=[fault])
    time.sleep(1.0)  # give the filter time to try (and fail) its first fetches
    for _ in range(3):
        r = requests.get(s.url("/protected/page"), headers=BROWSER_HEADERS, allow_redirects=False, timeout=10)
        assert r.status_code == 503, (r.status_code, r.headers, r.text[:300])
        assert r.headers.get("Retry-After"), r.headers
        assert_no_session_created(r)
        time.sleep(0.2)
    assert settle_count(s) == 0


# --------------------------------------------------------------- redirect --


def test_browser_without_session_is_redirected_to_idp(stack, browser):
    before = stack.upstream_count()
    r = browser_get(browser, stack, "/some/page?x=1")
    assert r.status_code == 302, (r.status_code, r.text[:300])
    endpoint = stack.discovery["authorization_endpoint"]
    location = r.headers["Location"]
    assert location.startswith(endpoint + "?"), location
    p = query_params(location)
    assert p.get("response_type") == "code"
    assert p.get("client_id") == stack.client_id
    assert p.get("redirect_uri") == f"http://127.0.0.1:{stack.envoy_port}/oauth2/callback"
    assert "openid" in p.get("scope", "").split()
    assert p.get("state")
    assert p.get("nonce")
    assert B64URL_43.match(p.get("code_challenge", "")), p.get("code_challenge")
    assert p.get("code_challenge_method") == "S256"

    tx = created_cookies(r, PREFIX)
    assert tx, f"no {PREFIX} transaction cookie in {cookies_from_response(r)}"
    for c in tx:
        assert c.http_only, c.raw
        assert (c.same_site or "").lower() == "lax", c.raw
    assert settle_count(stack) == before


def test_each_redirect_is_fresh(stack):
    a = start_login(stack, "/a").params
    b = start_login(stack, "/a").params
    for key in ("state", "nonce", "code_challenge"):
        assert a[key] != b[key], key


# ------------------------------------------------------------- full login --


def test_full_login(stack):
    result = login(stack, "/some/page?x=1", user="alice")
    cb = result.callback_response
    assert cb.status_code == 302, (cb.status_code, cb.text[:300])
    assert cb.headers["Location"] == "/some/page?x=1"
    assert "no-store" in cb.headers.get("Cache-Control", "").lower()
    assert cb.headers.get("Referrer-Policy", "").lower() == "no-referrer"
    assert created_cookies(cb, PREFIX), f"no session cookie in {cookies_from_response(cb)}"

    before = stack.upstream_count()
    page = result.follow()
    assert page.status_code == 200, (page.status_code, page.text[:300])
    echo = page.json()
    assert echo["path"] == "/some/page?x=1"
    headers = echo["headers"]
    token = bearer_token(headers)
    assert token, headers.get("authorization")
    claims = jwt_payload(token)
    assert claims["sub"] == "alice"
    assert claims["iss"] == stack.issuer
    assert headers.get("x-auth-request-user") == "alice"
    assert headers.get("x-auth-request-email") == "alice@example.com"
    forwarded = cookie_names(headers.get("cookie"))
    assert not [n for n in forwarded if n.startswith(PREFIX)], forwarded
    assert [n for n, _v in echo["raw_headers"]].count("authorization") == 1
    assert stack.upstream_count() == before + 1


def test_identity_headers_from_client_are_replaced(stack):
    result = login(stack, "/", user="alice")
    assert result.callback_response.status_code == 302
    r = result.session.get(
        stack.url("/api/whoami"),
        headers={
            "X-Auth-Request-User": "mallory",
            "X-Auth-Request-Email": "mallory@evil.example",
            "Authorization": "Bearer junk",
        },
        allow_redirects=False,
        timeout=10,
    )
    assert r.status_code == 200, (r.status_code, r.text[:300])
    echo = r.json()
    assert echo["headers"].get("x-auth-request-user") == "alice"
    assert echo["headers"].get("x-auth-request-email") == "alice@example.com"
    token = bearer_token(echo["headers"])
    assert token and token != "junk"
    assert jwt_payload(token)["sub"] == "alice"
    raw = echo["raw_headers"]
    assert not [v for _n, v in raw if "mallory" in v or v == "Bearer junk"], raw
    assert [n for n, _v in raw].count("authorization") == 1
    assert [n for n, _v in raw].count("x-auth-request-user") == 1


# ------------------------------------------------- callback failure modes --


def _callback_with(stack: Stack, session: requests.Session, url: str) -> requests.Response:
    before = stack.upstream_count()
    r = call_callback(session, url)
    assert_client_error_page(r)
    assert_no_session_created(r)
    assert settle_count(stack) == before
    return r


def _drop_param(url: str, name: str) -> str:
    parts = urlsplit(url)
    kept = [kv for kv in parts.query.split("&") if kv and kv.split("=", 1)[0] != name]
    return parts._replace(query="&".join(kept)).geturl()


def test_callback_without_state(stack):
    start = start_login(stack, "/")
    idp = complete_at_idp(start.session, start.authorize_url)
    url = _drop_param(idp.callback_url, "state")
    assert "state=" not in url and "code=" in url
    _callback_with(stack, start.session, url)


def test_callback_with_foreign_state(stack):
    a = start_login(stack, "/a")
    b = start_login(stack, "/b")
    assert a.state != b.state
    idp_a = complete_at_idp(a.session, a.authorize_url)
    # A's code and state, B's transaction cookie.
    _callback_with(stack, b.session, idp_a.callback_url)


def test_callback_replayed_after_success(stack):
    """The same answer again from the browser that started the login (a reload while
    the first answer was on its way): its code is not exchanged a second time, and the
    browser is sent into a new login back to the same page instead of an error page."""
    start = start_login(stack, "/replayed?x=1")
    tx = filter_cookies(start.session)
    assert tx
    idp = complete_at_idp(start.session, start.authorize_url)
    exchanges = stack.idp_stats().get("/token", 0)
    ok = call_callback(start.session, idp.callback_url)
    assert ok.status_code == 302, (ok.status_code, ok.text[:300])
    assert stack.idp_stats().get("/token", 0) == exchanges + 1
    before = stack.upstream_count()
    again = call_callback(browser_with_cookies(tx), idp.callback_url)
    assert again.status_code == 302, (again.status_code, again.text[:300])
    assert again.headers["Location"].startswith(stack.discovery["authorization_endpoint"] + "?"), again.headers
    assert query_params(again.headers["Location"]).get("state") not in (None, start.state)
    made = [c.name for c in created_cookies(again, PREFIX)]
    assert made and all("_tx." in n for n in made), f"only a new login cookie: {made}"
    assert stack.idp_stats().get("/token", 0) == exchanges + 1, "the code went to the token endpoint once"
    assert settle_count(stack) == before
    # The new login lands on the page first asked for.
    again_browser = browser_with_cookies(tx)
    again_browser.cookies.update(again.cookies)
    landed = complete_at_idp(again_browser, again.headers["Location"])
    done = call_callback(again_browser, landed.callback_url)
    assert (done.status_code, done.headers.get("Location")) == (302, "/replayed?x=1"), done.text[:300]


def test_callback_without_transaction_cookie(stack):
    start = start_login(stack, "/")
    idp = complete_at_idp(start.session, start.authorize_url)
    _callback_with(stack, new_browser(), idp.callback_url)


def test_callback_with_idp_error(stack):
    start = start_login(stack, "/")
    idp = complete_at_idp(start.session, start.authorize_url, abort=True)
    assert idp.params.get("error") == "access_denied"
    assert idp.params.get("state") == start.state
    _callback_with(stack, start.session, idp.callback_url)


def test_tampered_session_cookie_is_absent(stack):
    result = login(stack, "/", user="alice")
    cb = result.callback_response
    assert cb.status_code == 302
    session_cookies = created_cookies(cb, PREFIX)
    assert session_cookies
    target = session_cookies[0].name
    jar_cookie = next(c for c in result.session.cookies if c.name == target)
    value = jar_cookie.value
    assert len(value) >= 3
    mid = len(value) // 2
    jar_cookie.value = value[:mid] + ("A" if value[mid] != "A" else "B") + value[mid + 1:]

    before = stack.upstream_count()
    r = browser_get(result.session, stack, "/")
    assert r.status_code == 302, (r.status_code, r.text[:300])
    assert r.headers["Location"].startswith(stack.discovery["authorization_endpoint"] + "?")
    assert settle_count(stack) == before


# ------------------------------------------------------------ return path --


@pytest.fixture(scope="module")
def raw_paths_stack():
    """Envoy without path normalisation: these paths reach the filter as sent."""
    yield from serve(Stack(name="login-raw-paths", normalize_paths=False))


@pytest.mark.parametrize(
    "path",
    [
        "//evil.example/x",
        "/\\evil.example",
        "/\\/evil.example/x",
        "//evil.example/%2F..",
        "///evil.example/x",
    ],
)
def test_return_path_is_same_origin(raw_paths_stack, path):
    stack = raw_paths_stack
    result = login(stack, path, user="alice")
    cb = result.callback_response
    assert cb.status_code == 302, (cb.status_code, cb.text[:300])
    location = cb.headers["Location"]
    assert location.startswith("/"), location
    assert not location.startswith("//"), location
    assert not location.startswith("/\\"), location
    resolved = urlsplit(urljoin(stack.url("/"), location.replace("\\", "/")))
    assert resolved.netloc == f"127.0.0.1:{stack.envoy_port}", location


# ------------------------------------------------------ login initiation --


def test_login_initiation_with_hint_and_target(stack):
    """OIDC Core 4: a third party sends the browser to /oauth2/login with `iss`,
    `login_hint` and `target_link_uri`; the login starts at once, even over a
    valid session, and lands on the target."""
    alice = login(stack, "/", user="alice")
    assert alice.callback_response.status_code == 302
    target = stack.url("/reports?q=1")
    query = urlencode({"iss": stack.issuer, "login_hint": "bob", "target_link_uri": target})
    # The application's session, without the IdP's own (which would sign alice in again).
    start = start_login(stack, f"/oauth2/login?{query}", session=browser_with_cookies(filter_cookies(alice.session)))
    assert start.params.get("login_hint") == "bob", start.authorize_url
    before = stack.upstream_count()
    idp = complete_at_idp(start.session, start.authorize_url, user="bob")
    cb = call_callback(start.session, idp.callback_url)
    assert cb.status_code == 302, (cb.status_code, cb.text[:300])
    assert cb.headers["Location"] == "/reports?q=1"
    page = start.session.get(stack.url("/reports?q=1"), allow_redirects=False, timeout=10)
    assert page.status_code == 200, (page.status_code, page.text[:300])
    assert page.json()["headers"].get("x-auth-request-user") == "bob"
    assert settle_count(stack) == before + 1, "only the page itself reached the application"


@pytest.mark.parametrize(
    "query,status,lands",
    [
        pytest.param({"target_link_uri": "https://evil.example/x"}, 302, "/", id="foreign-target"),
        pytest.param({"target_link_uri": "//evil.example/x"}, 302, "/", id="scheme-relative-target"),
        pytest.param({"iss": "https://evil.example"}, 400, None, id="foreign-issuer"),
    ],
)
def test_login_initiation_never_leaves_this_site(stack, query, status, lands):
    resp = browser_get(new_browser(), stack, "/oauth2/login?" + urlencode(query))
    assert resp.status_code == status, (resp.status_code, resp.text[:300])
    if lands is None:
        assert_no_session_created(resp)
        assert "login_issuer_unknown" in resp.text
        return
    start = start_login(stack, "/oauth2/login?" + urlencode(query))
    idp = complete_at_idp(start.session, start.authorize_url, user="alice")
    cb = call_callback(start.session, idp.callback_url)
    assert cb.headers["Location"] == lands


def test_form_posted_without_session_offers_a_sign_in_back_to_the_form(stack):
    """A browser submits a form after its session is gone: no redirect (it would drop the
    form), no JSON, but a 401 page whose link signs in and returns to the form's page."""
    browser = new_browser()
    before = stack.upstream_count()
    form_page = stack.url("/app/edit?id=7")
    resp = browser.post(stack.url("/app/save"), data={"title": "draft"}, allow_redirects=False, timeout=10,
                        headers={**BROWSER_HEADERS, "Sec-Fetch-Mode": "navigate", "Sec-Fetch-Dest": "document",
                                 "Origin": stack.origin, "Referer": form_page})
    assert resp.status_code == 401, (resp.status_code, resp.text[:300])
    assert resp.headers["Content-Type"].startswith("text/html")
    assert "Location" not in resp.headers
    href = re.search(r'<a href="([^"]+)">Sign in</a>', resp.text)
    assert href, resp.text[:500]
    link = href.group(1).replace("&amp;", "&")
    assert link == "/oauth2/login?" + urlencode({"target_link_uri": "/app/edit?id=7"}), link
    start = start_login(stack, link, session=browser)
    idp = complete_at_idp(start.session, start.authorize_url, user="alice")
    cb = call_callback(start.session, idp.callback_url)
    assert cb.status_code == 302 and cb.headers["Location"] == "/app/edit?id=7", (cb.status_code, cb.headers)
    assert stack.upstream_count() == before, "the form never reached the application"


# ------------------------------------------------------------------- demo --


def test_demo_check_runs_headless():
    """`demo.py --check` (what CI runs for the demo) on free ports."""
    env = dict(os.environ)
    names = ["PORT", "ADMIN_PORT", "IDP_PORT", "IDP_ADMIN_PORT", "UPSTREAM_PORT", "UPSTREAM_ADMIN_PORT"]
    for name, port in zip(names, free_ports(len(names))):
        env[f"OIDC_EDGE_DEMO_{name}"] = str(port)
    r = subprocess.run(
        [sys.executable, str(HARNESS_DIR / "demo.py"), "--check"],
        env=env, capture_output=True, text=True, timeout=120,
    )
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "demo check: OK" in r.stdout
    assert '"x-auth-request-user": "demo"' in r.stdout

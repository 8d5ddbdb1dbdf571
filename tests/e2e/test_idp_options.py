"""IdP-facing options through the real Envoy and the real IdP: client
authentication methods, secrets from the VM environment, explicit endpoints and
static keys instead of discovery, extra authorization parameters, userinfo,
which token goes upstream, and several applications (routes) behind one filter."""

from urllib.parse import parse_qsl, urlsplit

import pytest

from http_util import jwt_payload
from oidc_login import call_callback, complete_at_idp, login, new_browser, start_login
from stack import CLIENT_ID, CLIENT_SECRET, COOKIE_SECRET, ROOT, Stack, free_ports

JWT_CLIENT_SECRET = "test-secret-for-client-secret-jwt-0123456789"
HTML = {"Accept": "text/html"}
FIXTURES = ROOT / "tests" / "fixtures"


def echoed(stack, session, path="/after-login"):
    r = session.get(stack.url(path), headers=HTML, allow_redirects=False, timeout=10)
    assert r.status_code == 200, (r.status_code, r.text[:500])
    return r.json()["headers"]


def logged_in(stack, **kw):
    result = login(stack, "/after-login", **kw)
    assert result.callback_response.status_code == 302, result.callback_response.text[:800]
    return result.session


@pytest.fixture
def make(request):
    stacks = []

    def _make(name, **kw):
        s = Stack(name=name, **kw)
        stacks.append(s)
        s.wait_filter_ready(20)
        return s

    yield _make
    for s in stacks:
        s.stop()


def test_client_secret_post(make):
    s = make("opt-post", plugin_config_overrides={"client_id": f"{CLIENT_ID}-post", "token_endpoint_auth": "client_secret_post",
                                                 "audiences": [f"{CLIENT_ID}-post"]})
    headers = echoed(s, logged_in(s))
    assert jwt_payload(headers["authorization"].split(" ", 1)[1])["aud"] == f"{CLIENT_ID}-post"


def test_client_secret_jwt(make):
    s = make("opt-jwt", plugin_config_overrides={"client_id": f"{CLIENT_ID}-jwt", "client_secret": JWT_CLIENT_SECRET,
                                                "token_endpoint_auth": "client_secret_jwt", "audiences": [f"{CLIENT_ID}-jwt"]})
    headers = echoed(s, logged_in(s))
    assert headers["x-auth-request-user"] == "alice"


@pytest.mark.parametrize("pem,kid,audience", [("client-key-rsa.pem", "client-rsa", None), ("client-key-ec.pem", "client-ec", None),
                                              ("client-key-ec.pem", "client-ec", "issuer")])
def test_private_key_jwt(make, pem, kid, audience):
    """The client signs its assertion with its own key (RS256 or ES256); the key
    comes from the VM environment as operators keep it, never a client secret.
    The assertion's audience is the token endpoint, or the issuer alone."""
    key = (FIXTURES / pem).read_text()
    s = make(f"opt-pkjwt-{kid}", vm_env={"OIDC_EDGE_CLIENT_KEY": key},
             plugin_config_overrides={"client_id": f"{CLIENT_ID}-pkjwt", "client_secret": None,
                                      "token_endpoint_auth": "private_key_jwt", "client_key_id": kid,
                                      "client_private_key": {"env": "OIDC_EDGE_CLIENT_KEY"},
                                      "client_assertion_audience": audience,
                                      "audiences": [f"{CLIENT_ID}-pkjwt"]})
    headers = echoed(s, logged_in(s))
    assert headers["x-auth-request-user"] == "alice"
    assert s.idp_stats().get("/token") == 1


def test_private_key_jwt_with_a_key_the_idp_does_not_know_fails_the_login(make):
    s = make("opt-pkjwt-unknown", plugin_config_overrides={
        "client_id": f"{CLIENT_ID}-pkjwt", "client_secret": None, "token_endpoint_auth": "private_key_jwt",
        "client_private_key": (FIXTURES / "client-key-ec.pem").read_text(), "client_key_id": "client-rsa",
        "audiences": [f"{CLIENT_ID}-pkjwt"]})
    result = login(s, "/after-login")
    cb = result.callback_response
    assert cb.status_code == 400 and "token_endpoint_failed" in cb.text, (cb.status_code, cb.text[:500])
    assert s.upstream_count() == 0


def test_secrets_from_the_vm_environment(make):
    s = make("opt-env", vm_env={"OIDC_EDGE_CLIENT_SECRET": CLIENT_SECRET, "OIDC_EDGE_COOKIE_SECRET": COOKIE_SECRET},
             plugin_config_overrides={"client_secret": {"env": "OIDC_EDGE_CLIENT_SECRET"},
                                      "cookie_secret": {"env": "OIDC_EDGE_COOKIE_SECRET"}})
    assert echoed(s, logged_in(s))["x-auth-request-user"] == "alice"
    assert CLIENT_SECRET not in str(s.plugin_config) and COOKIE_SECRET not in str(s.plugin_config), \
        "the plugin configuration names the variables, not the secrets"


def test_explicit_endpoints_and_static_keys_skip_discovery(make):
    from tokens import public_jwk

    s = Stack(name="opt-static", start=False)
    base = s.issuer  # the ports, hence the issuer, are picked before start
    s.plugin_config_overrides = {
        "authorization_endpoint": f"{base}/auth",
        "token_endpoint": f"{base}/token",
        "jwks": {"keys": [public_jwk("k1")]},
    }
    s.start()
    try:
        s.wait_filter_ready(20)
        stats = s.idp_stats()
        assert not any("openid-configuration" in p for p in stats), stats
        assert "/jwks" not in stats, stats
        assert echoed(s, logged_in(s))["x-auth-request-user"] == "alice"
    finally:
        s.stop()


def test_discovery_url(make):
    s = Stack(name="opt-discovery-url", start=False)
    s.plugin_config_overrides = {"discovery_url": f"{s.issuer}/.well-known/openid-configuration?tenant=main"}
    s.start()
    try:
        s.wait_filter_ready(20)
        assert echoed(s, logged_in(s))["x-auth-request-user"] == "alice"
    finally:
        s.stop()


def test_auth_query_params(make):
    s = make("opt-params", plugin_config_overrides={"auth_query_params": {"prompt": ["login"], "kc_idp_hint": [],
                                                                          "acr_values": ["a b", "c"]}})
    start = start_login(s, "/")
    query = urlsplit(start.authorize_url).query
    pairs = parse_qsl(query, keep_blank_values=True)
    assert ("prompt", "login") in pairs
    assert [v for k, v in pairs if k == "acr_values"] == ["a b", "c"], "several values repeat the key"
    assert "&kc_idp_hint&" in f"&{query}&" or query.endswith("&kc_idp_hint"), "an empty list gives a bare key"
    assert "acr_values=a%20b" in query, "values are URL-encoded"


def test_userinfo_claims_are_combined(make):
    s = make("opt-userinfo", plugin_config_overrides={"userinfo": True, "claim_headers": {"X-From-Userinfo": "userinfo_only",
                                                                                         "X-Name": "name"}})
    before = s.idp_stats().get("/me", 0)
    headers = echoed(s, logged_in(s))
    assert headers["x-from-userinfo"] == "from-userinfo"
    assert headers["x-name"] == "Alice", "the ID token's claims stay"
    assert s.idp_stats().get("/me", 0) == before + 1, "userinfo is fetched once, at login"


def test_userinfo_off_by_default(make):
    s = make("opt-no-userinfo", plugin_config_overrides={"claim_headers": {"X-From-Userinfo": "userinfo_only"}})
    headers = echoed(s, logged_in(s))
    assert "x-from-userinfo" not in headers
    assert s.idp_stats().get("/me", 0) == 0


@pytest.mark.parametrize("mode", ["access_token", "none"])
def test_forward_token(make, mode):
    s = make(f"opt-forward-{mode}", plugin_config_overrides={"forward_token": mode})
    headers = echoed(s, logged_in(s))
    assert headers["x-auth-request-user"] == "alice"
    if mode == "none":
        assert "authorization" not in headers
    else:
        token = headers["authorization"].split(" ", 1)[1]
        assert "." not in token or jwt_payload(token).get("nonce") is None, "the access token, not the ID token"


def test_routes_by_host_and_path(make):
    # The route's host carries the port clients send, as Envoy matches virtual hosts.
    port = free_ports(1)[0]
    s = make("opt-routes", ports={"envoy": port}, plugin_config_overrides={
        "routes": [
            {"host": f"localhost:{port}", "client_id": f"{CLIENT_ID}-post", "token_endpoint_auth": "client_secret_post",
             "audiences": [f"{CLIENT_ID}-post"]},
            {"path_prefix": "/admin", "require": [{"claim": "sub", "one_of": ["root"]}]},
        ]})
    # Top level (host 127.0.0.1).
    browser = logged_in(s)
    assert jwt_payload(echoed(s, browser)["authorization"].split(" ", 1)[1])["aud"] == CLIENT_ID
    # The /admin route on the same host: its own session, so a new login, and its rule refuses alice.
    r = browser.get(s.url("/admin/x"), headers=HTML, allow_redirects=False, timeout=10)
    assert r.status_code == 302 and r.headers["location"].startswith(s.discovery["authorization_endpoint"])
    idp = complete_at_idp(browser, r.headers["location"])
    cb = call_callback(browser, idp.callback_url)
    assert cb.status_code == 302
    r = browser.get(s.url("/admin/x"), headers=HTML, allow_redirects=False, timeout=10)
    assert r.status_code == 403
    # The localhost route: another client and client authentication.
    other = new_browser()
    url = f"http://localhost:{s.envoy_port}/app"
    r = other.get(url, headers=HTML, allow_redirects=False, timeout=10)
    assert r.status_code == 302
    assert dict(parse_qsl(urlsplit(r.headers["location"]).query))["client_id"] == f"{CLIENT_ID}-post"
    idp = complete_at_idp(other, r.headers["location"])
    assert idp.callback_url.startswith(f"http://localhost:{s.envoy_port}/oauth2/callback")
    cb = other.get(idp.callback_url, allow_redirects=False, timeout=10)
    assert cb.status_code == 302, cb.text[:500]
    r = other.get(url, headers=HTML, allow_redirects=False, timeout=10)
    assert r.status_code == 200, r.text[:300]
    assert jwt_payload(r.json()["headers"]["authorization"].split(" ", 1)[1])["aud"] == f"{CLIENT_ID}-post"

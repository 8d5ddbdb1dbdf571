"""The harness itself, without the wasm filter: Envoy, the echo upstream and
the test IdP behave as the filter's tests assume."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import textwrap
import time
from urllib.parse import urlencode

import jwt
import pytest
import requests
import websocket
import yaml

from http_util import jwt_parts
from oidc_login import complete_at_idp, idp_logout, new_browser, parse_html, query_params
from stack import (
    CLIENT_ID,
    CLIENT_SECRET,
    COOKIE_SECRET,
    ENVOY_DIR,
    FIXTURES_DIR,
    HARNESS_DIR,
    Stack,
    find_envoy,
    free_ports,
)
from tokens import mint_token, public_jwk, public_pem, token_claims
from wasm_stub import write_noop_wasm

GROUPS = ["admins", "devs"]
BIG = 3000


@pytest.fixture(scope="module")
def bare():
    """A stack without the filter; the IdP adds groups and a big claim."""
    s = Stack(
        name="harness",
        with_filter=False,
        idp_args=["--groups", ",".join(GROUPS), "--big-claim-bytes", str(BIG)],
    )
    yield s
    s.stop()


@pytest.fixture
def clean_idp(bare):
    bare.idp_fault("all", "ok")
    bare.idp_stats_reset()
    yield bare
    bare.idp_fault("all", "ok")
    bare.idp_set_keys(file=FIXTURES_DIR / "idp-keys.json")


def pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


def authorize_url(s: Stack, challenge: str, state: str = "st-1", nonce: str = "n-1", client_id: str = CLIENT_ID) -> str:
    q = urlencode(
        {
            "response_type": "code",
            "client_id": client_id,
            "redirect_uri": s.redirect_uri,
            "scope": "openid profile email",
            "state": state,
            "nonce": nonce,
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        }
    )
    return f"{s.discovery['authorization_endpoint']}?{q}"


def get_code(s: Stack, user: str = "alice", client_id: str = CLIENT_ID, browser=None):
    verifier, challenge = pkce_pair()
    result = complete_at_idp(browser or new_browser(), authorize_url(s, challenge, client_id=client_id), user=user)
    return result, verifier


def redeem(s: Stack, code: str, verifier: str, post: bool = False) -> requests.Response:
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": s.redirect_uri, "code_verifier": verifier}
    if post:
        data.update(client_id=f"{CLIENT_ID}-post", client_secret=CLIENT_SECRET)
        return requests.post(s.discovery["token_endpoint"], data=data, timeout=10)
    return requests.post(s.discovery["token_endpoint"], data=data, auth=(CLIENT_ID, CLIENT_SECRET), timeout=10)


# ---------------------------------------------------------------- Envoy --


def test_echo_upstream_through_envoy(bare):
    before = bare.upstream_count()
    r = requests.get(bare.url("/some/path?q=1"), headers={"X-Probe": "42", "Cookie": "a=1; b=2"}, timeout=5)
    assert r.status_code == 200
    echo = r.json()
    assert echo["method"] == "GET"
    assert echo["path"] == "/some/path?q=1"
    assert echo["headers"]["x-probe"] == "42"
    assert echo["headers"]["cookie"] == "a=1; b=2"
    assert ["x-probe", "42"] in echo["raw_headers"]
    seen = bare.upstream_requests()
    assert len(seen) == before + 1
    assert seen[-1]["path"] == "/some/path?q=1" and seen[-1]["websocket"] is False
    bare.upstream_reset()
    assert bare.upstream_count() == 0


def test_large_headers_pass_envoy(bare):
    # max_request_headers_kb: 96 lets a 90 KB cookie through; more is 431.
    r = requests.get(bare.url("/big"), headers={"Cookie": "c=" + "x" * 90_000}, timeout=5)
    assert r.status_code == 200
    assert len(r.json()["headers"]["cookie"]) == 90_002
    r = requests.get(bare.url("/big"), headers={"Cookie": "c=" + "x" * 100_000}, timeout=5)
    assert r.status_code == 431


def test_websocket_through_envoy(bare):
    before = bare.upstream_count()
    ws = websocket.create_connection(
        f"ws://127.0.0.1:{bare.envoy_port}/ws/echo?x=1",
        subprotocols=["base64url.bearer.abc", "chat.v1", "other"],
        timeout=5,
    )
    try:
        assert ws.getsubprotocol() == "chat.v1"
        ws.send("hello")
        assert ws.recv() == "hello"
        ws.send_binary(b"\x00\x01\xff")
        assert ws.recv() == b"\x00\x01\xff"
    finally:
        ws.close()
    seen = bare.upstream_requests()
    assert len(seen) == before + 1
    assert seen[-1]["websocket"] is True
    assert seen[-1]["path"] == "/ws/echo?x=1"
    assert seen[-1]["headers"]["sec-websocket-protocol"].replace(" ", "") == "base64url.bearer.abc,chat.v1,other"


def test_websocket_bearer_only_protocol_selects_none(bare):
    # websocket-client refuses an answer without a subprotocol when it
    # offered some, so this handshake is written by hand.
    key = base64.b64encode(secrets.token_bytes(16)).decode()
    request = (
        f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{bare.envoy_port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
        "Sec-WebSocket-Protocol: base64url.bearer.abc\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", bare.envoy_port), timeout=5) as sock:
        sock.sendall(request.encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = sock.recv(4096)
            assert chunk, head
            head += chunk
    lines = head.split(b"\r\n\r\n")[0].decode().split("\r\n")
    assert lines[0].startswith("HTTP/1.1 101")
    names = {line.split(":", 1)[0].strip().lower() for line in lines[1:]}
    assert "sec-websocket-protocol" not in names


def test_envoy_stats_and_restart(bare):
    requests.get(bare.url("/count-me"), timeout=5)
    stats = bare.envoy_stats()
    assert stats["http.ingress.downstream_rq_total"] >= 1
    assert "cluster.idp.upstream_cx_total" in stats
    old = bare.pids()["envoy"]
    bare.restart_envoy()
    assert bare.pids()["envoy"] != old
    assert requests.get(bare.url("/after-restart"), timeout=5).json()["path"] == "/after-restart"
    # Counters start again from zero in the new process.
    assert bare.envoy_stats()["http.ingress.downstream_rq_total"] == 1


def test_rendered_config_without_filter(bare):
    config = (bare.artifacts / "envoy.yaml").read_text()
    assert "envoy.filters.http.wasm" not in config
    assert f"port_value: {bare.envoy_port}" in config
    assert "max_request_headers_kb: 96" in config


def test_rendered_config_with_filter_is_valid(tmp_path):
    """The filter block renders into a config Envoy accepts (--mode validate),
    with the plugin JSON intact, whether or not the module is built."""
    s = Stack(name="render-check", start=False, with_filter=True,
              plugin_config_overrides={"extra": {"quote": "a\"b'c $x ${Y} \\ \u00e9"}, "client_secret": None})
    s.artifacts = tmp_path
    s.wasm = write_noop_wasm(tmp_path / "noop.wasm")
    config = s.render_envoy_config()
    assert s.plugin_config["issuer"] == s.issuer
    assert s.plugin_config["extra"]["quote"] == "a\"b'c $x ${Y} \\ \u00e9"
    assert "client_secret" not in s.plugin_config
    value_lines = [line.strip() for line in config.splitlines() if line.strip().startswith("value: ")]
    assert len(value_lines) == 1
    assert json.loads(json.loads(value_lines[0][len("value: "):])) == s.plugin_config
    path = tmp_path / "envoy.yaml"
    path.write_text(config)
    r = subprocess.run([find_envoy(), "--mode", "validate", "-c", str(path), "--disable-hot-restart"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]


def test_demo_config_is_valid_and_matches_harness(tmp_path):
    """envoy/envoy-demo.yaml (the README's config) stays valid and in step
    with the harness defaults."""
    text = (ENVOY_DIR / "envoy-demo.yaml").read_text()
    assert "filename: dist/oidc_edge.wasm" in text
    assert f'"cookie_secret": "{COOKIE_SECRET}"' in text
    assert f'"client_secret": "{CLIENT_SECRET}"' in text and f'"client_id": "{CLIENT_ID}"' in text
    for port in (8080, 9901, 9000, 9100):
        assert f"port_value: {port} " in text
    wasm = write_noop_wasm(tmp_path / "noop.wasm")
    path = tmp_path / "envoy-demo.yaml"
    path.write_text(text.replace("filename: dist/oidc_edge.wasm", f"filename: {wasm}"))
    r = subprocess.run([find_envoy(), "--mode", "validate", "-c", str(path), "--disable-hot-restart"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]


def test_stack_with_a_stub_wasm_filter(tmp_path):
    """The wasm filter block loads a real proxy-wasm module under V8 (a
    do-nothing stub) and traffic flows: the wiring the real filter uses."""
    wasm = write_noop_wasm(tmp_path / "noop.wasm")
    # The stub does not mark requests as checked: without the guard.
    with Stack(name="stub-filter", wasm=wasm, envoy_concurrency=2, guard=False) as s:
        r = requests.get(s.url("/through-stub"), timeout=5)
        assert r.status_code == 200 and r.json()["path"] == "/through-stub"
        assert s.wait_filter_ready(5).status_code == 200
        stats = s.envoy_stats(filter="wasm")
        assert any("wasm" in name for name in stats), stats
        config = (s.artifacts / "envoy.yaml").read_text()
        assert "envoy.wasm.runtime.v8" in config and "FAIL_RELOAD" in config


# --------------------------------------------------------------- the IdP --


def test_idp_login_driver_reaches_callback(clean_idp):
    s = clean_idp
    verifier, challenge = pkce_pair()
    browser = new_browser()
    result = complete_at_idp(browser, authorize_url(s, challenge, state="st-42", nonce="n-42"), user="carol")
    assert result.callback_url.startswith(s.redirect_uri + "?")
    params = result.params
    assert params["code"] and params["state"] == "st-42" and params["iss"] == s.issuer
    # The steps RECIPE.md lists: login form then consent form.
    pages = [r for r in result.responses if r.status_code == 200]
    forms = [parse_html(r.text).forms[0] for r in pages]
    assert [sorted(f.field_names()) for f in forms] == [["login", "password", "prompt"], ["prompt"]]

    tokens = redeem(s, params["code"], verifier)
    assert tokens.status_code == 200, tokens.text
    body = tokens.json()
    assert body["token_type"].lower() == "bearer" and body["refresh_token"] and body["access_token"]
    header, claims = jwt_parts(body["id_token"])
    assert header == {"alg": "RS256", "kid": "k1"}
    assert claims["sub"] == "carol"
    assert claims["email"] == "carol@example.com" and claims["email_verified"] is True
    assert claims["name"] == "Carol"
    assert claims["groups"] == GROUPS
    assert len(claims["big"]) == BIG
    assert claims["nonce"] == "n-42" and claims["aud"] == CLIENT_ID and claims["iss"] == s.issuer
    assert claims["exp"] - claims["iat"] == 3600
    # The ID token verifies with the fixture's public key.
    jwt.decode(body["id_token"], public_pem("k1"), algorithms=["RS256"], audience=CLIENT_ID, issuer=s.issuer)

    # A code is single use.
    again = redeem(s, params["code"], verifier)
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"


def test_idp_second_login_reuses_idp_session(clean_idp):
    browser = new_browser()
    first, _ = get_code(clean_idp, user="dave", browser=browser)
    second, verifier = get_code(clean_idp, user="ignored", browser=browser)
    # No form at all the second time: the IdP session and grant are reused.
    assert all(r.status_code != 200 for r in second.responses)
    tokens = redeem(clean_idp, second.params["code"], verifier).json()
    assert jwt_parts(tokens["id_token"])[1]["sub"] == "dave"


def test_idp_client_secret_post_and_refresh_rotation(clean_idp):
    s = clean_idp
    result, verifier = get_code(s, client_id=f"{CLIENT_ID}-post")
    r = redeem(s, result.params["code"], verifier, post=True)
    assert r.status_code == 200, r.text
    rt1 = r.json()["refresh_token"]
    # (oidc-provider 9 accepts client_secret_basic as well for a client
    # registered with client_secret_post, and the other way round.)
    r3 = requests.post(s.discovery["token_endpoint"], timeout=10, data={
        "grant_type": "refresh_token", "refresh_token": rt1,
        "client_id": f"{CLIENT_ID}-post", "client_secret": CLIENT_SECRET})
    assert r3.status_code == 200, r3.text
    body = r3.json()
    assert body["refresh_token"] != rt1  # rotated
    assert jwt_parts(body["id_token"])[1]["sub"] == "alice"


def test_idp_pkce_required(clean_idp):
    s = clean_idp
    q = urlencode({"response_type": "code", "client_id": CLIENT_ID, "redirect_uri": s.redirect_uri,
                   "scope": "openid", "state": "s", "nonce": "n"})
    r = requests.get(f"{s.discovery['authorization_endpoint']}?{q}", allow_redirects=False, timeout=5)
    assert r.status_code in (302, 303)
    params = query_params(r.headers["Location"])
    assert params["error"] == "invalid_request"


def test_idp_abort_gives_access_denied(clean_idp):
    _verifier, challenge = pkce_pair()
    result = complete_at_idp(new_browser(), authorize_url(clean_idp, challenge, state="st-abort"), abort=True)
    assert result.params["error"] == "access_denied"
    assert result.params["state"] == "st-abort"
    assert result.params["iss"] == clean_idp.issuer


def test_idp_discovery_shape(bare):
    d = bare.discovery
    assert d["issuer"] == bare.issuer
    assert d["code_challenge_methods_supported"] == ["S256"]
    assert d["authorization_response_iss_parameter_supported"] is True
    for key in ("authorization_endpoint", "token_endpoint", "jwks_uri", "end_session_endpoint", "userinfo_endpoint"):
        assert d[key].startswith(bare.issuer + "/")
    assert "client_secret_basic" in d["token_endpoint_auth_methods_supported"]


def test_idp_stats_count_requests(clean_idp):
    s = clean_idp
    assert s.idp_stats() == {}
    for _ in range(2):
        requests.get(s.discovery["jwks_uri"], timeout=5)
    requests.get(s.idp_url("/.well-known/openid-configuration"), timeout=5)
    stats = s.idp_stats()
    assert stats["/jwks"] == 2
    assert stats["/.well-known/openid-configuration"] == 1
    s.idp_stats_reset()
    assert s.idp_stats() == {}


@pytest.mark.parametrize(
    "target,mode,check",
    [
        ("jwks", "500", lambda r: r.status_code == 500),
        ("jwks", "html", lambda r: r.status_code == 200 and r.headers["content-type"].startswith("text/html")),
        ("jwks", "empty_keys", lambda r: r.status_code == 200 and r.json() == {"keys": []}),
        ("jwks", "garbage", lambda r: r.status_code == 200 and not _is_json(r.content)),
        ("jwks", "truncated", lambda r: r.status_code == 200 and not _is_json(r.content) and r.text.startswith('{"keys":[')),
        ("discovery", "500", lambda r: r.status_code == 500),
        ("discovery", "truncated", lambda r: r.status_code == 200 and not _is_json(r.content)),
    ],
)
def test_idp_body_faults(clean_idp, target, mode, check):
    s = clean_idp
    path = {"jwks": "/jwks", "discovery": "/.well-known/openid-configuration"}[target]
    s.idp_fault(target, mode)
    r = requests.get(s.idp_url(path), timeout=5)
    assert check(r), (r.status_code, r.headers, r.content[:200])
    # Other endpoints are untouched.
    other = "/.well-known/openid-configuration" if target == "jwks" else "/jwks"
    assert requests.get(s.idp_url(other), timeout=5).json()
    s.idp_fault(target, "ok")
    assert requests.get(s.idp_url(path), timeout=5).json()


def test_idp_token_fault(clean_idp):
    s = clean_idp
    result, verifier = get_code(s)
    s.idp_fault("token", "500")
    assert redeem(s, result.params["code"], verifier).status_code == 500
    s.idp_fault("token", "ok")
    assert redeem(s, result.params["code"], verifier).status_code == 200


def test_idp_slow(clean_idp):
    s = clean_idp
    s.idp_fault("jwks", "slow", delay_ms=600)
    t0 = time.monotonic()
    assert requests.get(s.idp_url("/jwks"), timeout=5).status_code == 200
    assert time.monotonic() - t0 >= 0.55
    t0 = time.monotonic()
    requests.get(s.idp_url("/.well-known/openid-configuration"), timeout=5)
    assert time.monotonic() - t0 < 0.5


def test_idp_down_then_ok(clean_idp):
    s = clean_idp
    # An open keep-alive connection is cut too.
    keep = requests.Session()
    keep.trust_env = False
    assert keep.get(s.idp_url("/jwks"), timeout=5).status_code == 200
    s.idp_fault("all", "down")
    with pytest.raises(requests.ConnectionError):
        keep.get(s.idp_url("/jwks"), timeout=5)
    with socket.socket() as sock:
        assert sock.connect_ex(("127.0.0.1", s.idp_port)) != 0
    # Through Envoy's idp cluster the connect fails as well: the admin
    # listener stays up meanwhile.
    assert s.idp_admin("GET", "/fault")["listening"] is False
    s.idp_fault("all", "ok")
    assert requests.get(s.idp_url("/jwks"), timeout=5).status_code == 200
    assert s.idp_admin("GET", "/fault")["listening"] is True


def test_idp_key_rotation_without_restart(clean_idp):
    s = clean_idp
    pid = s.pids()["idp"]
    browser = new_browser()
    get_code(s, browser=browser)  # an IdP session exists in this browser
    assert [k["kid"] for k in requests.get(s.idp_url("/jwks"), timeout=5).json()["keys"]] == ["k1"]

    assert s.idp_set_keys(file=FIXTURES_DIR / "idp-keys-rotated.json") == {"kids": ["k2"]}
    served = requests.get(s.idp_url("/jwks"), timeout=5).json()["keys"]
    assert served == [public_jwk("k2")]
    result, verifier = get_code(s, browser=browser)
    # The IdP session survived the swap (no login form this time).
    assert all(r.status_code != 200 for r in result.responses)
    token = redeem(s, result.params["code"], verifier).json()["id_token"]
    assert jwt_parts(token)[0]["kid"] == "k2"
    jwt.decode(token, public_pem("k2"), algorithms=["RS256"], audience=CLIENT_ID)

    s.idp_set_keys(file=FIXTURES_DIR / "idp-keys-both.json")
    assert [k["kid"] for k in requests.get(s.idp_url("/jwks"), timeout=5).json()["keys"]] == ["k2", "k1"]
    assert s.pids()["idp"] == pid


# ----------------------------------------------------- tokens and hygiene --


def test_mint_token_matches_fixture_keys(bare):
    claims = token_claims(bare, sub="erin")
    tok = mint_token(claims)
    assert jwt.decode(tok, public_pem("k1"), algorithms=["RS256"], audience=CLIENT_ID)["sub"] == "erin"
    tok2 = mint_token(claims, kid="k2", header_overrides={"typ": None, "x5u": "http://evil"})
    header, _ = jwt_parts(tok2)
    assert header == {"alg": "RS256", "kid": "k2", "x5u": "http://evil"}
    jwt.decode(tok2, public_pem("k2"), algorithms=["RS256"], audience=CLIENT_ID)
    assert mint_token(claims, alg="none").endswith(".")
    hs = mint_token(claims, alg="HS256", hmac_key=public_pem("k1"))
    assert jwt_parts(hs)[0]["alg"] == "HS256"
    # The IdP serves the same public key the fixtures hold.
    assert requests.get(bare.idp_url("/jwks"), timeout=5).json()["keys"][0] == public_jwk("k1")


def _is_json(data: bytes) -> bool:
    try:
        json.loads(data)
        return True
    except (ValueError, UnicodeDecodeError):
        return False


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def test_children_die_with_their_parent(tmp_path):
    """SIGKILL the Python process owning a stack: its servers go too."""
    script = textwrap.dedent(
        f"""
        import json, sys, time
        sys.path.insert(0, {str(HARNESS_DIR)!r})
        from stack import Stack
        s = Stack(name="orphan-check", with_filter=False)
        print(json.dumps(s.pids()), flush=True)
        time.sleep(60)
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        pids = json.loads(line)
        assert set(pids) == {"idp", "upstream", "envoy"}
        assert all(_alive(p) for p in pids.values())
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and any(_alive(p) for p in pids.values()):
        time.sleep(0.1)
    assert not any(_alive(p) for p in pids.values()), pids


def test_stop_leaves_nothing(tmp_path):
    s = Stack(name="stop-check", with_filter=False)
    pids = s.pids()
    ports = dict(s.ports)
    s.stop()
    assert not any(_alive(p) for p in pids.values())
    for role in ("envoy", "idp", "upstream"):
        with socket.socket() as sock:
            assert sock.connect_ex(("127.0.0.1", ports[role])) != 0, role
    # Picked ports are distinct.
    assert len(set(ports.values())) == len(ports)
    assert all(p > 0 for p in free_ports(3))


def test_idp_rp_initiated_logout(clean_idp):
    s = clean_idp
    browser = new_browser()
    result, verifier = get_code(s, browser=browser)
    id_token = redeem(s, result.params["code"], verifier).json()["id_token"]
    q = urlencode({"id_token_hint": id_token, "post_logout_redirect_uri": f"{s.origin}/", "state": "bye"})
    out = idp_logout(browser, f"{s.discovery['end_session_endpoint']}?{q}")
    assert out.callback_url.startswith(f"{s.origin}/")
    assert out.params.get("state") == "bye"
    # The IdP session is gone: the next authorization asks for a login again.
    again, _ = get_code(s, browser=browser)
    assert any("name=\"login\"" in r.text for r in again.responses if r.status_code == 200)


@pytest.mark.parametrize("name", ["envoy-demo.yaml", "envoy-compose.yaml", "harness"])
def test_every_shipped_envoy_config_puts_the_guard_right_after_the_filter(name, tmp_path):
    """The guard only protects where it sits between oidc-edge and the router,
    with the same filter-state key the filter sets (src/proxy/host.rs)."""
    if name == "harness":
        s = Stack(name="guard-order", start=False)
        s.wasm = write_noop_wasm(tmp_path / "noop.wasm")
        text = s.render_envoy_config()
    else:
        text = (ENVOY_DIR / name).read_text()
    config = yaml.safe_load(text)
    for listener in config["static_resources"]["listeners"]:
        hcm = listener["filter_chains"][0]["filters"][0]["typed_config"]
        names = [f["name"] for f in hcm["http_filters"]]
        assert names[-3:] == ["oidc-edge", "oidc-edge-guard", "envoy.filters.http.router"], names
        # The filter's path rules, the router and the application read one path.
        assert hcm.get("normalize_path") is True and hcm.get("merge_slashes") is True, name
        # A fully qualified host name selects the route of its plain name (no host_ambiguous).
        assert hcm.get("strip_trailing_host_dot") is True, name
        guard = hcm["http_filters"][-2]["typed_config"]
        assert guard["@type"].endswith(".rbac.v3.RBAC") and guard["rules"]["action"] == "ALLOW"
        (policy,) = guard["rules"]["policies"].values()
        assert policy["permissions"] == [{"any": True}]
        assert policy["principals"] == [{"filter_state": {"key": "wasm.oidc_edge_checked", "string_match": {"exact": "1"}}}]

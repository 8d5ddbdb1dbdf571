"""Bearer tokens, API clients and claims, through a real Envoy and the test IdP.

A bearer token here is minted with the fixture keys (`tokens.mint_token`):
k1 is the key the IdP signs with and publishes, so a k1 token with
iss = the IdP's issuer and aud = client_id is exactly what the IdP could
have issued. Every refusal must be a 401 with an RFC 6750 challenge and must
never reach the upstream; every acceptance must reach it with the token
unchanged and the identity headers set by the filter alone.
"""

from __future__ import annotations

import http.client
import json
import re
import socket
import time
import uuid

import pytest
import requests
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from http_util import b64url_encode
from oidc_login import BROWSER_HEADERS, login, new_browser, raw_get
from stack import Stack, new_session, wait_until
from tokens import mint_token, public_jwk, public_pem, token_claims

API = {"Accept": "application/json"}
CHALLENGE = re.compile(r'^Bearer\s.*\berror="invalid_token".*\berror_description="[^"]+"')
GROUPS_GUID = "g-admins-guid"


# ----------------------------------------------------------------- stacks --


def _second_issuer(s: Stack) -> str:
    return f"{s.issuer}/tenant-b"


STATIC_ISSUER = "https://static.example.com"


@pytest.fixture(scope="module")
def bs():
    """The bearer stack: API paths, pass-through paths, claim headers and two
    extra bearer validators (one fetching the IdP's jwks_uri under another
    issuer name, one with static keys holding only k2)."""
    s = Stack(name="bearer", start=False)
    s.plugin_config_overrides = {
        "api_paths": ["/api/"],
        "pass_through_paths": ["/healthz", "/public/"],
        "claim_headers": {"X-Tenant-Id": "org.tenant.id", "X-Groups": "groups"},
        "bearer_validators": [
            {"issuer": _second_issuer(s), "audiences": ["api://tenant-b"], "jwks_uri": f"{s.issuer}/jwks"},
            {"issuer": STATIC_ISSUER, "audiences": ["api://static"], "jwks": {"keys": [public_jwk("k2")]}},
        ],
    }
    try:
        s.start()
        assert s.discovery["jwks_uri"] == f"{s.issuer}/jwks"
        s.wait_filter_ready(30)
        yield s
    finally:
        s.stop()


@pytest.fixture(scope="module")
def rules():
    """A stack with `claim_map` and `require`: only alice and carol, and only
    in the group the IdP calls `g-admins-guid` (mapped to `admins`)."""
    s = Stack(
        name="bearer-rules",
        idp_args=["--groups", f"{GROUPS_GUID},devs"],
        plugin_config_overrides={
            "claim_headers": {"X-Groups": "groups"},
            "claim_map": {"groups": {GROUPS_GUID: "admins"}},
            "require": [
                {"claim": "groups", "one_of": ["admins"]},
                {"claim": "sub", "one_of": ["alice", "carol"]},
            ],
        },
    )
    try:
        s.wait_filter_ready(30)
        yield s
    finally:
        s.stop()


# ---------------------------------------------------------------- helpers --


def call(s: Stack, path: str = "/api/echo", token: str | None = None, headers: dict | None = None,
         method: str = "GET") -> requests.Response:
    h = dict(API)
    if token is not None:
        h["Authorization"] = f"Bearer {token}"
    h.update(headers or {})
    with new_session() as http:
        return http.request(method, s.url(path), headers=h, allow_redirects=False, timeout=30)


def settled_count(s: Stack) -> int:
    time.sleep(0.1)
    return s.upstream_count()


def code_of(r: requests.Response) -> str | None:
    try:
        return r.json().get("code")
    except ValueError:
        return None


def assert_refused(s: Stack, token: str, codes: set[str] | None = None, path: str = "/api/echo") -> requests.Response:
    """`token` gets 401 with an invalid_token challenge and never reaches the upstream."""
    before = s.upstream_count()
    r = call(s, path, token)
    assert r.status_code == 401, (r.status_code, r.headers, r.text[:300])
    www = r.headers.get("WWW-Authenticate", "")
    assert CHALLENGE.match(www), www
    assert "Location" not in r.headers
    if codes is not None:
        assert code_of(r) in codes, (code_of(r), r.text)
    assert settled_count(s) == before, "a refused token reached the upstream"
    return r


def assert_accepted(s: Stack, token: str, sub: str = "alice", headers: dict | None = None, path: str = "/api/echo") -> dict:
    """`token` reaches the upstream unchanged; returns the echo."""
    before = s.upstream_count()
    r = call(s, path, token, headers=headers)
    assert r.status_code == 200, (r.status_code, r.headers, r.text[:300])
    echo = r.json()
    assert echo["headers"].get("authorization") == f"Bearer {token}"
    assert echo["headers"].get("x-auth-request-user") == sub
    names = [n for n, _v in echo["raw_headers"]]
    assert names.count("authorization") == 1 and names.count("x-auth-request-user") == 1, echo["raw_headers"]
    assert settled_count(s) == before + 1
    return echo


def fresh(s: Stack, **claims) -> dict:
    """Valid claims for `s`, unique per call (a new jti), so that the
    filter's verdict cache never answers for a token this test has not sent.
    A claim given as None is left out (`sub` and `iss` included)."""
    drop = [name for name in ("sub", "iss") if name in claims and claims[name] is None]
    for name in drop:
        claims.pop(name)
    claims.setdefault("jti", uuid.uuid4().hex)
    out = token_claims(s, **claims)
    for name in drop:
        out.pop(name, None)
    return out


def attacker_key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def attacker_public_jwk(key, kid: str = "k1") -> dict:
    jwk = json.loads(RSAAlgorithm.to_jwk(key.public_key()))
    jwk.update({"kid": kid, "use": "sig", "alg": "RS256"})
    return jwk


def wasm_counter(s: Stack, name: str) -> int:
    return int(s.envoy_stats().get(f"wasmcustom.oidc_edge.{name}", 0))


# --------------------------------------------------------- valid tokens --


def test_valid_bearer_reaches_upstream_unchanged(bs):
    token = mint_token(fresh(bs, sub="alice"))
    echo = assert_accepted(bs, token, headers={"X-Auth-Request-User": "mallory", "X-Auth-Request-Email": "m@evil.example"})
    assert echo["headers"].get("x-auth-request-email") == "alice@example.com"
    assert not [v for _n, v in echo["raw_headers"] if "mallory" in v or "evil.example" in v], echo["raw_headers"]
    # The same token again (the verdict cache) gives the same result.
    assert_accepted(bs, token)


def test_bearer_scheme_is_case_insensitive(bs):
    token = mint_token(fresh(bs))
    with new_session() as http:
        r = http.get(bs.url("/api/echo"), headers={**API, "Authorization": f"bearer {token}"}, timeout=30)
    assert r.status_code == 200, r.text[:300]
    assert r.json()["headers"]["x-auth-request-user"] == "alice"


def test_bearer_on_a_browser_navigation_is_accepted(bs):
    token = mint_token(fresh(bs, sub="bob"))
    with new_session() as http:
        r = http.get(bs.url("/page"), headers={**BROWSER_HEADERS, "Authorization": f"Bearer {token}"},
                     allow_redirects=False, timeout=30)
    assert r.status_code == 200, (r.status_code, r.text[:300])
    assert r.json()["headers"]["x-auth-request-user"] == "bob"


# ------------------------------------------------ RFC 8725 and friends --


@pytest.mark.parametrize("alg", ["none", "None", "NONE", "nOnE"])
def test_alg_none_refused(bs, alg):
    claims = fresh(bs)
    # Unsecured JWS as RFC 7519 6.1 writes it (empty signature) ...
    assert_refused(bs, mint_token(claims, alg=alg), {"alg_none", "token_malformed"})
    # ... and with something in the signature part, so only `alg` can refuse it.
    unsigned = mint_token(claims, alg=alg)
    assert_refused(bs, unsigned + b64url_encode(b"not-a-signature"), {"alg_none"})
    # A valid RS256 signature under a header that says none.
    signed = mint_token(claims)
    header = b64url_encode(json.dumps({"alg": alg, "typ": "JWT", "kid": "k1"}).encode())
    assert_refused(bs, header + signed[signed.index("."):], {"alg_none"})


@pytest.mark.parametrize("alg", ["HS256", "HS384", "HS512"])
def test_hmac_with_rsa_public_key_as_secret_refused(bs, alg):
    token = mint_token(fresh(bs), alg=alg, hmac_key=public_pem("k1"))
    assert_refused(bs, token, {"alg_not_allowed"})


def test_unknown_key_with_the_real_kid_refused(bs):
    stats_before = bs.idp_stats().get("/jwks", 0)
    token = mint_token(fresh(bs), kid="k1", key=attacker_key())
    assert_refused(bs, token, {"signature_invalid"})
    # A known kid with a bad signature is not a reason to refetch the keys.
    time.sleep(1.5)
    assert bs.idp_stats().get("/jwks", 0) == stats_before


@pytest.mark.parametrize("member", ["jwk", "jku", "x5u", "x5c"])
def test_embedded_key_headers_refused(bs, member):
    key = attacker_key()
    value = {
        "jwk": attacker_public_jwk(key),
        "jku": "http://127.0.0.1:1/evil-jwks.json",
        "x5u": "http://127.0.0.1:1/evil-cert.pem",
        "x5c": ["MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA"],
    }[member]
    # Signed with the attacker's key (what the embedded key vouches for) ...
    assert_refused(bs, mint_token(fresh(bs), key=key, header_overrides={member: value}), {"embedded_key_refused"})
    # ... and even with the real key: following such members is refused outright.
    assert_refused(bs, mint_token(fresh(bs), header_overrides={member: value}), {"embedded_key_refused"})


@pytest.mark.parametrize("crit", [["exp"], ["b64"], ["urn:example:unknown"], []])
def test_crit_refused(bs, crit):
    token = mint_token(fresh(bs), header_overrides={"crit": crit, "urn:example:unknown": True, "b64": True})
    assert_refused(bs, token, {"crit_unsupported"})


def test_other_kinds_of_jwt_from_the_idp_refused(bs):
    """RFC 8725 3.11-3.12: a back-channel logout token (or any security event token) the
    IdP signed for this client never passes as a bearer token; RFC 9068 access tokens do."""
    assert_accepted(bs, mint_token(fresh(bs), header_overrides={"typ": "at+jwt"}))
    events = {"http://schemas.openid.net/event/backchannel-logout": {}}
    assert_refused(bs, mint_token(fresh(bs, events=events), header_overrides={"typ": "logout+jwt"}), {"token_kind_refused"})
    assert_refused(bs, mint_token(fresh(bs, events=events)), {"token_kind_refused"})
    assert_refused(bs, mint_token(fresh(bs), header_overrides={"typ": "secevent+jwt"}), {"token_kind_refused"})


def test_expired_beyond_skew_refused(bs):
    now = int(time.time())
    assert_refused(bs, mint_token(fresh(bs, iat=now - 900, exp=now - 300)), {"expired"})


def test_expired_within_skew_accepted(bs):
    # clock_skew_seconds defaults to 60: a token 20 s past exp still passes.
    now = int(time.time())
    assert_accepted(bs, mint_token(fresh(bs, iat=now - 600, exp=now - 20)))


def test_nbf_in_the_future_refused(bs):
    now = int(time.time())
    assert_refused(bs, mint_token(fresh(bs, nbf=now + 600, exp=now + 1200)), {"not_yet_valid"})


@pytest.mark.parametrize("variant", ["trailing-slash", "upper-case-host", "other"])
def test_wrong_issuer_refused(bs, variant):
    iss = {
        "trailing-slash": bs.issuer + "/",
        "upper-case-host": bs.issuer.replace("127.0.0.1", "LOCALHOST"),
        "other": "https://evil.example.com",
    }[variant]
    assert_refused(bs, mint_token(fresh(bs, issuer=iss)), {"iss_mismatch"})


def test_wrong_audience_refused(bs):
    assert_refused(bs, mint_token(fresh(bs, audience="some-other-client")), {"aud_mismatch"})
    assert_refused(bs, mint_token(fresh(bs, audience=["x", "y"], azp=bs.client_id)), {"aud_mismatch"})


def test_several_audiences_need_azp(bs):
    both = [bs.client_id, "some-other-client"]
    assert_refused(bs, mint_token(fresh(bs, audience=both)), {"azp_mismatch"})
    assert_refused(bs, mint_token(fresh(bs, audience=both, azp="some-other-client")), {"azp_mismatch"})
    assert_accepted(bs, mint_token(fresh(bs, audience=both, azp=bs.client_id)))
    # One audience: `azp` may name another client (whoever asked for the token).
    assert_accepted(bs, mint_token(fresh(bs, azp="some-cli")))


@pytest.mark.parametrize("claim,code", [("sub", "sub_missing"), ("exp", "exp_missing"), ("iss", "iss_missing")])
def test_missing_claim_refused(bs, claim, code):
    assert_refused(bs, mint_token(fresh(bs, **{claim: None})), {code})


def test_empty_sub_refused(bs):
    assert_refused(bs, mint_token(fresh(bs, sub="")), {"sub_missing"})


def test_huge_tokens_refused_before_decoding(bs):
    # Over the filter's 64 KiB limit but under Envoy's 96 KiB header limit: the filter refuses it.
    big = mint_token(fresh(bs, pad="x" * 52_000))
    assert 64 * 1024 < len(big) < 90 * 1024
    assert_refused(bs, big, {"token_too_large"})
    # 100 KB: Envoy itself refuses the headers (431) before the filter sees them.
    huge = mint_token(fresh(bs, pad="x" * 100_000))
    before = bs.upstream_count()
    r = call(bs, "/api/echo", huge)
    assert r.status_code in (401, 431), (r.status_code, r.text[:200])
    assert settled_count(bs) == before
    assert_accepted(bs, mint_token(fresh(bs)))


@pytest.mark.parametrize(
    "token",
    [
        "not-a-jwt",
        "a.b",
        "a.b.c.d",
        "!!!.???.***",
        "eyJhbGciOiJSUzI1NiJ9.e30=.c2ln",
        "eyJhbGciOiJSUzI1NiJ9.%%%%.c2ln",
        "eyJhbGciOiJSUzI1NiJ9.e30.c2ln+/==",
        "e30.e30.e30",
        "W10.W10.c2ln",
        "bnVsbA.bnVsbA.c2ln",
    ],
)
def test_garbage_tokens_refused(bs, token):
    assert_refused(bs, token)


def test_garbage_base64_in_an_otherwise_valid_token(bs):
    h, p, sig = mint_token(fresh(bs)).split(".")
    assert_refused(bs, f"{h}.{p[:10]}$${p[10:]}.{sig}", {"token_bad_base64"})
    assert_refused(bs, f"{h}.{p}.{sig[:-4]}+/+/", {"token_bad_base64"})
    # A flipped signature bit is a bad signature.
    flipped = sig[:20] + ("A" if sig[20] != "A" else "B") + sig[21:]
    assert_refused(bs, f"{h}.{p}.{flipped}", {"signature_invalid"})
    # Claims changed after signing.
    forged = b64url_encode(json.dumps({**fresh(bs), "sub": "admin"}).encode())
    assert_refused(bs, f"{h}.{forged}.{sig}", {"signature_invalid"})


def _raw_request(s: Stack, path: str, header_lines: list[bytes]) -> tuple[int, bytes]:
    """One HTTP/1.1 request written byte for byte; returns (status, head)."""
    head = [f"GET {path} HTTP/1.1".encode(), f"Host: 127.0.0.1:{s.envoy_port}".encode(), b"Connection: close"]
    data = b"\r\n".join(head + header_lines) + b"\r\n\r\n"
    with socket.create_connection(("127.0.0.1", s.envoy_port), timeout=30) as sock:
        sock.sendall(data)
        received = b""
        while b"\r\n\r\n" not in received:
            chunk = sock.recv(65536)
            if not chunk:
                break
            received += chunk
    status_line = received.split(b"\r\n", 1)[0]
    parts = status_line.split(b" ")
    assert len(parts) >= 2 and parts[1].isdigit(), received[:200]
    return int(parts[1]), received


def test_non_utf8_bytes_in_headers_do_not_crash_the_vm(bs):
    vm_before = {k: v for k, v in bs.envoy_stats(filter="wasm").items() if k.startswith("wasm.")}
    before = bs.upstream_count()
    token = mint_token(fresh(bs)).encode()
    cases = [
        [b"Accept: application/json", b"Authorization: Bearer \xff\xfe" + token],
        [b"Accept: application/json", b"Authorization: Bearer " + token + b"\xc3\x28"],
        [b"Accept: application/json", b"Authorization: \xffearer " + token],
        [b"Accept: text/html", b"Authorization: Bearer \x80\x81\x82"],
        [b"Accept: application/json", b"Cookie: oidc_edge=\xff\xfe; other=\xe9t\xe9", b"Authorization: Bearer " + token[:-3] + b"\xff\xff\xff"],
    ]
    for lines in cases:
        status, head = _raw_request(bs, "/api/echo", lines)
        # No credential that can be read: a 401 (never a 5xx from a dead VM, never the upstream).
        assert status == 401, head[:300]
    assert settled_count(bs) == before
    # The worker's VM is alive: the next requests are decided as usual.
    assert_accepted(bs, mint_token(fresh(bs)))
    assert_refused(bs, "still.alive.x")
    vm_after = {k: v for k, v in bs.envoy_stats(filter="wasm").items() if k.startswith("wasm.")}
    for name in ("wasm.envoy.wasm.runtime.v8.active", "wasm.envoy.wasm.runtime.v8.created", "wasm.wasm_vm_count"):
        assert vm_after.get(name) == vm_before.get(name), (name, vm_before, vm_after)
    log = bs.envoy_log()
    assert "panicked" not in log and "Uncaught" not in log, [l for l in log.splitlines() if "panicked" in l or "Uncaught" in l]


def test_rejections_are_counted_by_reason(bs):
    before = wasm_counter(bs, "token.rejected.expired")
    accepted = int(bs.settled_filter_stats().get("wasmcustom.oidc_edge.token.accepted", 0))
    now = int(time.time())
    assert_refused(bs, mint_token(fresh(bs, exp=now - 3600)), {"expired"})
    assert_accepted(bs, mint_token(fresh(bs)))
    assert wasm_counter(bs, "token.rejected.expired") == before + 1
    # Successes are counted in batches: they reach Envoy on the filter's next tick (0.5 s).
    wait_until(lambda: wasm_counter(bs, "token.accepted") == accepted + 1, 5, message="token.accepted counted")
    prom = bs.envoy_prometheus()
    assert prom.get("oidc_edge_token_rejected_expired") == before + 1, sorted(k for k in prom if "oidc" in k)


# ------------------------------------------------- who gets a redirect --


@pytest.mark.parametrize(
    "method,path,headers",
    [
        pytest.param("GET", "/page", {"Accept": "application/json"}, id="accept-json"),
        pytest.param("GET", "/page", {**BROWSER_HEADERS, "X-Requested-With": "XMLHttpRequest"}, id="x-requested-with"),
        pytest.param("GET", "/page", {**BROWSER_HEADERS, "Sec-Fetch-Mode": "cors", "Sec-Fetch-Dest": "empty"}, id="sec-fetch-cors"),
        pytest.param("GET", "/page", {**BROWSER_HEADERS, "Sec-Fetch-Mode": "navigate", "Sec-Fetch-Dest": "image"}, id="sec-fetch-dest-image"),
        pytest.param("POST", "/page", dict(BROWSER_HEADERS), id="post"),
        pytest.param("GET", "/api/things", {**BROWSER_HEADERS, "Sec-Fetch-Mode": "navigate", "Sec-Fetch-Dest": "document"}, id="api-path"),
        pytest.param("GET", "/page", {"Accept": "application/json, text/plain, */*"}, id="accept-json-or-any"),
    ],
)
def test_api_clients_get_401_not_a_redirect(bs, method, path, headers):
    before = bs.upstream_count()
    with new_session() as http:
        r = http.request(method, bs.url(path), headers=headers, allow_redirects=False, timeout=30)
    assert r.status_code == 401, (r.status_code, r.headers, r.text[:300])
    assert "Location" not in r.headers
    assert r.headers.get("WWW-Authenticate", "").startswith("Bearer"), r.headers
    assert 'error="invalid_token"' not in r.headers["WWW-Authenticate"], "no token was sent"
    assert not [c for c in r.headers.get("Set-Cookie", "").split(",") if "oidc_edge" in c]
    assert settled_count(bs) == before


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param(dict(BROWSER_HEADERS), id="accept-html"),
        pytest.param({**BROWSER_HEADERS, "Sec-Fetch-Mode": "navigate", "Sec-Fetch-Dest": "document"}, id="sec-fetch-navigate"),
        # A client that says nothing about what it accepts (curl, scripts) is treated as a browser.
        pytest.param({"Accept": "*/*"}, id="accept-any"),
        pytest.param({"Accept": ""}, id="no-accept"),
    ],
)
def test_browser_navigation_is_redirected(bs, headers):
    before = bs.upstream_count()
    with new_session() as http:
        r = http.get(bs.url("/page?x=1"), headers=headers, allow_redirects=False, timeout=30)
    assert r.status_code == 302, (r.status_code, r.text[:300])
    assert r.headers["Location"].startswith(bs.discovery["authorization_endpoint"] + "?")
    assert settled_count(bs) == before


def test_invalid_bearer_on_a_browser_navigation_is_401_not_a_redirect(bs):
    # A client that sent a token gets told why it failed rather than a login page.
    with new_session() as http:
        r = http.get(bs.url("/page"), headers={**BROWSER_HEADERS, "Authorization": "Bearer x.y.z"},
                     allow_redirects=False, timeout=30)
    assert r.status_code == 401, (r.status_code, r.text[:300])
    assert CHALLENGE.match(r.headers.get("WWW-Authenticate", ""))


# ---------------------------------------------------------------- claims --


def test_claim_headers_nested_and_arrays(bs):
    token = mint_token(fresh(bs, org={"tenant": {"id": "t-42", "name": "Acme"}}, groups=["admins", "devs", "ops"]))
    echo = assert_accepted(bs, token, headers={"X-Tenant-Id": "forged", "X-Groups": "forged-admins"})
    assert echo["headers"].get("x-tenant-id") == "t-42"
    assert echo["headers"].get("x-groups") == "admins,devs,ops"
    raw = echo["raw_headers"]
    assert [n for n, _v in raw].count("x-tenant-id") == 1
    assert [n for n, _v in raw].count("x-groups") == 1
    assert not [v for _n, v in raw if "forged" in v], raw


def test_client_copies_of_claim_headers_are_stripped_when_the_claim_is_absent(bs):
    echo = assert_accepted(bs, mint_token(fresh(bs)), headers={"X-Tenant-Id": "forged", "x-groups": "forged"})
    assert "x-tenant-id" not in echo["headers"]
    assert "x-groups" not in echo["headers"]


@pytest.mark.parametrize("path", ["/healthz", "/healthz/live", "/public/app.css"])
def test_pass_through_paths_reach_upstream_unauthenticated_and_stripped(bs, path):
    before = bs.upstream_count()
    forged = {
        "Authorization": "Bearer forged.token.value",
        "X-Auth-Request-User": "mallory",
        "X-Auth-Request-Email": "mallory@evil.example",
        "X-Auth-Request-Access-Token": "forged",
        "X-Groups": "admins",
        "X-Tenant-Id": "forged",
        "Cookie": "oidc_edge=forged-session; app=1",
    }
    with new_session() as http:
        r = http.get(bs.url(path), headers={**BROWSER_HEADERS, **forged}, allow_redirects=False, timeout=30)
    assert r.status_code == 200, (r.status_code, r.text[:300])
    echo = r.json()
    for name in ("authorization", "x-auth-request-user", "x-auth-request-email", "x-auth-request-access-token",
                 "x-groups", "x-tenant-id"):
        assert name not in echo["headers"], (name, echo["headers"])
    assert echo["headers"].get("cookie") == "app=1"
    assert settled_count(bs) == before + 1


@pytest.mark.parametrize("path,authenticated", [("/api/echo", True), ("/public/app.css", False)])
def test_underscore_copies_of_identity_headers_are_stripped(bs, path, authenticated):
    """CGI-style servers read `X_Groups` as `X-Groups`, and Envoy passes underscores by
    default: the filter removes such copies of every identity and claim header."""
    forged = {"X_Groups": "admins", "X_Auth_Request_User": "root", "X_Auth_Request_Email": "root@evil.example"}
    if authenticated:
        forged["Authorization"] = f"Bearer {mint_token(fresh(bs))}"
    r = raw_call(bs, path, forged)
    assert r.status_code == 200, (r.status_code, r.text[:300])
    names = [n.lower() for n, _v in r.json()["raw_headers"]]
    assert not {"x_groups", "x_auth_request_user", "x_auth_request_email"} & set(names), names


def test_pass_through_is_not_a_prefix_of_other_paths(bs):
    with new_session() as http:
        r = http.get(bs.url("/healthzz"), headers=BROWSER_HEADERS, allow_redirects=False, timeout=30)
    assert r.status_code == 302


# ------------------------------------------------------- path confusion --


@pytest.fixture(scope="module")
def raw_paths():
    """Envoy without path normalisation, so the filter alone meets raw paths:
    pass-through paths, and an /admin route whose rule the top level lacks
    (with a claim header of its own)."""
    s = Stack(
        name="bearer-raw-paths",
        normalize_paths=False,
        plugin_config_overrides={
            "pass_through_paths": ["/healthz", "/public/"],
            "claim_headers": {"X-Groups": "groups"},
            "routes": [{"path_prefix": "/admin", "claim_headers": {"X-Admin-Groups": "groups"},
                        "require": [{"claim": "groups", "one_of": ["admins"]}]}],
        },
    )
    try:
        s.wait_filter_ready(30)
        yield s
    finally:
        s.stop()


def raw_call(s: Stack, path: str, headers: dict | None = None) -> requests.Response:
    return raw_get(new_browser(), s.url("/"), path, headers={**API, **(headers or {})})


@pytest.mark.parametrize("path", [
    "/healthz/../secret", "/healthz/..%2fsecret", "/healthz/%2e%2e/secret", "/healthz/%252e%252e/secret",
    "/public/../secret", "/public/%2e%2e/secret", "/public/..;/secret", "/public/..\\secret",
])
def test_a_pass_through_prefix_does_not_exempt_the_path_it_leads_to(raw_paths, path):
    before = raw_paths.upstream_count()
    r = raw_call(raw_paths, path)
    assert r.status_code == 401, (path, r.status_code, r.text[:300])
    assert settled_count(raw_paths) == before, f"{path} reached the application unauthenticated"


@pytest.mark.parametrize("path", [
    "/admin/x", "//admin/x", "/./admin/x", "/x/../admin/x", "/%61dmin/x", "/admin;/x", "/admin%2fx", "/%2Fadmin/x",
])
def test_every_spelling_of_a_route_meets_its_rules(raw_paths, path):
    token = mint_token(fresh(raw_paths, groups=["devs"]))
    before = raw_paths.upstream_count()
    r = raw_call(raw_paths, path, {"Authorization": f"Bearer {token}"})
    # 403 under the /admin rule, or 400 where the path reads as another route once decoded.
    assert r.status_code in (400, 403), (path, r.status_code, r.text[:300])
    assert settled_count(raw_paths) == before
    # The plain spelling of another path still goes through: the token is good.
    ok = raw_call(raw_paths, "/x", {"Authorization": f"Bearer {token}"})
    assert ok.status_code == 200, (ok.status_code, ok.text[:300])


@pytest.fixture(scope="module")
def two_routes():
    """The shipped path normalisation on, and two routes: /admin with a rule, /public open."""
    s = Stack(name="bearer-two-routes", plugin_config_overrides={"routes": [
        {"path_prefix": "/admin", "require": [{"claim": "groups", "one_of": ["admins"]}]},
        {"path_prefix": "/public", "pass_through_paths": ["/*"]},
    ]})
    try:
        s.wait_filter_ready(30)
        yield s
    finally:
        s.stop()


@pytest.mark.parametrize("path", ["/admin/..%2fpublic", "/admin/x/..%2f..%2fpublic", "/admin/x/%2e%2e;/%2e%2e;/public",
                                  "/admin/x/..%5c..%5cpublic", "/adminx", "/admin.json", "/admin%20/x", "/publicx/secret"])
def test_a_path_that_reads_as_two_routes_is_refused(two_routes, path):
    """Envoy keeps %2F (and encoded dots before `;`): it would route the first ones to
    /admin's backend, while decoded they read as /public, the open route. The others
    only start like a route's prefix: Envoy's `prefix` would route them there, its
    `path_separated_prefix` would not."""
    before = two_routes.upstream_count()
    for headers in [{}, {"Authorization": f"Bearer {mint_token(fresh(two_routes, groups=['devs']))}"}]:
        r = raw_call(two_routes, path, headers)
        assert r.status_code == 400 and "path_ambiguous" in r.text, (path, r.status_code, r.text[:300])
    assert settled_count(two_routes) == before, f"{path} reached the application"
    assert raw_call(two_routes, "/public/x").status_code == 200


@pytest.fixture(scope="module")
def host_routes():
    """A host route that is open (an application without login) beside a protected top
    level, as `oidc-edge render` makes for an Ingress without annotations."""
    s = Stack(name="bearer-host-routes", plugin_config_overrides={
        "routes": [{"host": "public.example.com", "pass_through_paths": ["/"]}]})
    try:
        s.wait_filter_ready(30)
        yield s
    finally:
        s.stop()


@pytest.mark.parametrize("host,status", [
    ("public.example.com", 200),
    # Envoy strips the trailing dot (strip_trailing_host_dot, as shipped): the same host.
    ("public.example.com.", 200),
    # Envoy matches virtual hosts with the port: another virtual host than the route's.
    ("public.example.com:443", 400), ("PUBLIC.example.com:8443", 400), ("public.example.com.:80", 400),
    ("admin.example.com", 401), ("admin.example.com:443", 401),
])
def test_a_host_spelled_with_a_port_never_gets_an_open_routes_rules(host_routes, host, status):
    before = host_routes.upstream_count()
    conn = http.client.HTTPConnection("127.0.0.1", host_routes.envoy_port, timeout=10)
    try:
        conn.putrequest("GET", "/x", skip_host=True, skip_accept_encoding=True)
        conn.putheader("Host", host)
        conn.putheader("Accept", "application/json")
        conn.endheaders()
        r = conn.getresponse()
        body = r.read().decode(errors="replace")
    finally:
        conn.close()
    assert r.status == status, (host, r.status, body[:300])
    if status == 400:
        assert "host_ambiguous" in body, body[:300]
    assert settled_count(host_routes) == before + (1 if status == 200 else 0), host


def test_claim_headers_of_every_route_are_stripped_on_every_route(raw_paths):
    forged = {"X-Groups": "admins", "X-Admin-Groups": "admins"}
    token = mint_token(fresh(raw_paths, sub="bob", groups=None))
    for path in ["/app", "/healthz"]:
        r = raw_call(raw_paths, path, {**forged, "Authorization": f"Bearer {token}"})
        assert r.status_code == 200, (path, r.status_code, r.text[:300])
        seen = r.json()["headers"]
        assert "x-groups" not in seen and "x-admin-groups" not in seen, (path, seen)


# ------------------------------------------------------ bearer_validators --


def test_second_issuer_accepted_for_its_audiences_only(bs):
    other = _second_issuer(bs)
    echo = assert_accepted(bs, mint_token(fresh(bs, sub="svc-b", issuer=other, audience="api://tenant-b")), sub="svc-b")
    assert echo["headers"].get("x-auth-request-user") == "svc-b"
    # Its tokens for the main client's audience, and the main issuer's tokens for its audience: refused.
    assert_refused(bs, mint_token(fresh(bs, issuer=other, audience=bs.client_id)), {"aud_mismatch"})
    assert_refused(bs, mint_token(fresh(bs, audience="api://tenant-b")), {"aud_mismatch"})
    # The usual rules hold for it too.
    now = int(time.time())
    assert_refused(bs, mint_token(fresh(bs, issuer=other, audience="api://tenant-b", exp=now - 600)), {"expired"})
    assert_refused(bs, mint_token(fresh(bs, issuer=other, audience="api://tenant-b"), alg="HS256",
                                  hmac_key=public_pem("k1")), {"alg_not_allowed"})
    assert_refused(bs, mint_token(fresh(bs, issuer=other + "/", audience="api://tenant-b")), {"iss_mismatch"})


def test_static_jwks_validator(bs):
    # Static keys hold only k2.
    assert_accepted(bs, mint_token(fresh(bs, sub="svc-s", issuer=STATIC_ISSUER, audience="api://static"), kid="k2"),
                    sub="svc-s")
    assert_refused(bs, mint_token(fresh(bs, issuer=STATIC_ISSUER, audience=bs.client_id), kid="k2"), {"aud_mismatch"})
    # The main issuer does not know k2 (its JWKS holds k1): k2 is only good for the static issuer.
    assert_refused(bs, mint_token(fresh(bs), kid="k2", key=None), {"kid_unknown"})


def test_static_jwks_validator_unknown_kid_is_refused_without_a_refetch(bs):
    # There is nothing to refetch for static keys: an unknown kid is refused at once,
    # without asking for (and waiting on) a refetch that cannot happen.
    stats_before = bs.idp_stats().get("/jwks", 0)
    refetches = wasm_counter(bs, "jwks.unknown_kid_refetch")
    assert_refused(bs, mint_token(fresh(bs, issuer=STATIC_ISSUER, audience="api://static"), kid="k1"), {"kid_unknown"})
    assert wasm_counter(bs, "jwks.unknown_kid_refetch") == refetches
    assert bs.idp_stats().get("/jwks", 0) == stats_before


def test_validators_fetch_their_keys(bs):
    stats = bs.envoy_stats()
    # providers: 0 = the main issuer, 1 = tenant-b (jwks_uri), 2 = static keys (nothing to fetch)
    assert stats.get("wasmcustom.oidc_edge.jwks.fetch_success", 0) >= 1, stats
    assert stats.get("wasmcustom.oidc_edge.provider1.jwks.fetch_success", 0) >= 1, sorted(k for k in stats if "oidc" in k)
    assert "wasmcustom.oidc_edge.provider2.jwks.fetch_success" not in stats
    jwks_audits = {a["endpoint"] for a in bs.refresh_audits(target="jwks", outcome="success")}
    assert jwks_audits == {f"{bs.issuer}/jwks"}


# ---------------------------------------------------- claim_map + require --


def test_require_with_claim_map_lets_the_mapped_group_in(rules):
    result = login(rules, "/app", user="alice")
    assert result.callback_response.status_code == 302, result.callback_response.text[:300]
    page = result.follow()
    assert page.status_code == 200, (page.status_code, page.text[:300])
    assert page.json()["headers"].get("x-groups") == "admins,devs"
    assert page.json()["headers"].get("x-auth-request-user") == "alice"


def test_require_refuses_a_browser_session_with_a_403_page(rules):
    result = login(rules, "/app", user="bob")
    assert result.callback_response.status_code == 302, result.callback_response.text[:300]
    before = rules.upstream_count()
    page = result.follow()
    assert page.status_code == 403, (page.status_code, page.text[:300])
    assert page.headers.get("Content-Type", "").startswith("text/html")
    assert "Location" not in page.headers
    assert "forbidden" in page.text
    # The same session from a script: JSON.
    r = result.session.get(rules.url("/app"), headers={**API, "X-Requested-With": "XMLHttpRequest"},
                           allow_redirects=False, timeout=30)
    assert r.status_code == 403, (r.status_code, r.text[:300])
    assert r.headers.get("Content-Type", "").startswith("application/json")
    assert r.json()["error"] == "forbidden"
    assert "WWW-Authenticate" not in r.headers, "a session is not a bearer token: no challenge"
    assert settled_count(rules) == before


@pytest.mark.parametrize(
    "sub,groups,status",
    [
        ("carol", [GROUPS_GUID], 200),
        ("carol", ["devs"], 403),
        ("carol", "g-admins-guid", 200),
        ("bob", [GROUPS_GUID], 403),
        ("carol", None, 403),
    ],
)
def test_require_for_api_clients_is_json_403(rules, sub, groups, status):
    before = rules.upstream_count()
    token = mint_token(fresh(rules, sub=sub, groups=groups))
    r = call(rules, "/app", token)
    assert r.status_code == status, (r.status_code, r.text[:300])
    if status == 403:
        assert r.headers.get("Content-Type", "").startswith("application/json")
        # RFC 6750 3.1: the token is valid, its claims are not enough.
        assert r.json()["error"] == "insufficient_scope"
        challenge = r.headers.get("WWW-Authenticate", "")
        assert challenge.startswith("Bearer ") and 'error="insufficient_scope"' in challenge, challenge
        assert settled_count(rules) == before
    else:
        assert r.json()["headers"]["x-groups"] == "admins"
        assert settled_count(rules) == before + 1


def test_forbidden_is_counted(rules):
    before = int(rules.envoy_stats().get("wasmcustom.oidc_edge.request.forbidden", 0))
    r = call(rules, "/app", mint_token(fresh(rules, sub="mallory", groups=[GROUPS_GUID])))
    assert r.status_code == 403
    wait_until(lambda: int(rules.envoy_stats().get("wasmcustom.oidc_edge.request.forbidden", 0)) == before + 1,
               10, message="request.forbidden to count the refusal")
    # Signed in from the browser: the page, never a redirect loop.
    b = new_browser()
    try:
        r = b.get(rules.url("/app"), headers={"Authorization": f"Bearer {mint_token(fresh(rules, sub='bob', groups=[GROUPS_GUID]))}"},
                  allow_redirects=False, timeout=30)
        assert r.status_code == 403 and r.headers["Content-Type"].startswith("text/html")
    finally:
        b.close()

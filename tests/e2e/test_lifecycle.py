"""Discovery and JWKS lifecycle through a real Envoy and the test IdP: one
fetch per proxy, unknown-kid refetches, key rotation and rotation strategies,
outages with a warm cache, a cold start with the IdP down, audit lines and
Envoy stats.

Fetches are counted at the IdP (admin `/stats`, requests by path), never
inferred from the filter's own reports. The one test that has to wait for
real refresh periods is marked `long` (about two and a half minutes):
`-m "not long"` leaves it out.

The filter's stats, as this Envoy shows them (`/stats` name, then
`/stats/prometheus` name): every counter and gauge is
`wasmcustom.oidc_edge.<name>` in /stats and `oidc_edge_<name with _ for .>`
in Prometheus; they appear on first use. See `STAT_NAMES` below.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from http_util import b64url_encode
from oidc_login import BROWSER_HEADERS, call_callback, complete_at_idp, login, new_browser, start_login
from stack import FIXTURES_DIR, Stack, new_session, wait_until
from tokens import mint_token, token_claims

BOTH_KEYS = FIXTURES_DIR / "idp-keys-both.json"  # k2 signs, k2 and k1 published
ROTATED_KEYS = FIXTURES_DIR / "idp-keys-rotated.json"  # k2 only
API = {"Accept": "application/json"}
# How long the IdP takes to answer a JWKS refetch that requests wait for (idp_timeout is 5 s).
SLOW_MS = 1500

# The filter's stats as Envoy names them: /stats name -> /stats/prometheus name.
STAT_NAMES = {
    # counters
    "wasmcustom.oidc_edge.login.started": "oidc_edge_login_started",
    "wasmcustom.oidc_edge.login.completed": "oidc_edge_login_completed",
    "wasmcustom.oidc_edge.login.failed.idp_error": "oidc_edge_login_failed_idp_error",
    "wasmcustom.oidc_edge.login.failed.state_missing": "oidc_edge_login_failed_state_missing",
    "wasmcustom.oidc_edge.session.accepted": "oidc_edge_session_accepted",
    "wasmcustom.oidc_edge.token.accepted": "oidc_edge_token_accepted",
    "wasmcustom.oidc_edge.token.rejected.kid_unknown": "oidc_edge_token_rejected_kid_unknown",
    "wasmcustom.oidc_edge.token.rejected.expired": "oidc_edge_token_rejected_expired",
    "wasmcustom.oidc_edge.request.unauthenticated": "oidc_edge_request_unauthenticated",
    "wasmcustom.oidc_edge.jwks.unknown_kid_refetch": "oidc_edge_jwks_unknown_kid_refetch",
    "wasmcustom.oidc_edge.jwks.fetch_success": "oidc_edge_jwks_fetch_success",
    "wasmcustom.oidc_edge.jwks.fetch_failure": "oidc_edge_jwks_fetch_failure",
    "wasmcustom.oidc_edge.discovery.fetch_success": "oidc_edge_discovery_fetch_success",
    # gauges
    "wasmcustom.oidc_edge.jwks.keys": "oidc_edge_jwks_keys",
    "wasmcustom.oidc_edge.jwks.last_attempt_unix": "oidc_edge_jwks_last_attempt_unix",
    "wasmcustom.oidc_edge.jwks.last_success_unix": "oidc_edge_jwks_last_success_unix",
    "wasmcustom.oidc_edge.discovery.last_attempt_unix": "oidc_edge_discovery_last_attempt_unix",
    "wasmcustom.oidc_edge.discovery.last_success_unix": "oidc_edge_discovery_last_success_unix",
}
COLD_START_STAT_NAMES = {
    "wasmcustom.oidc_edge.discovery.fetch_failure": "oidc_edge_discovery_fetch_failure",
    "wasmcustom.oidc_edge.request.not_ready": "oidc_edge_request_not_ready",
    "wasmcustom.oidc_edge.token.rejected.keys_not_loaded": "oidc_edge_token_rejected_keys_not_loaded",
}
AUDIT_FIELDS = {"event", "target", "endpoint", "trigger", "outcome", "keys_added", "keys_removed", "keys_in_force",
                "consecutive_failures", "next_attempt_at", "time"}


# ---------------------------------------------------------------- helpers --


def fresh(s: Stack, **claims) -> dict:
    """Valid claims, unique per call (the verdict cache never answers for them)."""
    claims.setdefault("jti", uuid.uuid4().hex)
    return token_claims(s, **claims)


def signed_as(claims: dict, kid: str, signer: str = "k2") -> str:
    """A token whose header names `kid`, signed with the fixture key `signer`."""
    return mint_token(claims, kid=signer, header_overrides={"kid": kid})


def unknown_kid() -> str:
    return f"unknown-{uuid.uuid4().hex[:12]}"


def api(s: Stack, token: str | None = None, path: str = "/api/echo") -> requests.Response:
    headers = dict(API)
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    with new_session() as http:
        return http.get(s.url(path), headers=headers, allow_redirects=False, timeout=60)


def code_of(r: requests.Response) -> str | None:
    try:
        return r.json().get("code")
    except ValueError:
        return None


def assert_passes(s: Stack, token: str, sub: str = "alice") -> None:
    r = api(s, token)
    assert r.status_code == 200, (r.status_code, r.headers.get("WWW-Authenticate"), r.text[:300])
    assert r.json()["headers"].get("x-auth-request-user") == sub


def assert_401(s: Stack, token: str, codes: set[str]) -> requests.Response:
    r = api(s, token)
    assert r.status_code == 401, (r.status_code, r.text[:300])
    assert code_of(r) in codes, (code_of(r), r.text[:300])
    return r


def idp_count(s: Stack, path: str = "/jwks") -> int:
    return int(s.idp_stats().get(path, 0))


def stat(s: Stack, name: str) -> int:
    return int(s.envoy_stats().get(f"wasmcustom.oidc_edge.{name}", 0))


def check_audit_shape(audit: dict) -> None:
    assert AUDIT_FIELDS <= set(audit), audit
    assert audit["event"] == "oidc_edge.refresh"
    assert audit["outcome"] in ("success", "failure")
    if audit["outcome"] == "failure":
        assert audit.get("reason"), audit
    else:
        assert "reason" not in audit, audit
    assert isinstance(audit["keys_added"], list) and isinstance(audit["keys_removed"], list)
    assert isinstance(audit["time"], int) and audit["time"] > 1_600_000_000


def session_works(s: Stack, browser: requests.Session, sub: str = "alice") -> None:
    r = browser.get(s.url("/with-session"), allow_redirects=False, timeout=60)
    assert r.status_code == 200, (r.status_code, r.headers.get("Location"), r.text[:300])
    assert r.json()["headers"].get("x-auth-request-user") == sub


def logged_in(s: Stack, user: str = "alice") -> requests.Session:
    result = login(s, "/start", user=user)
    assert result.callback_response.status_code == 302, (result.callback_response.status_code,
                                                           result.callback_response.text[:300])
    page = result.follow()
    assert page.status_code == 200, (page.status_code, page.text[:300])
    assert page.json()["headers"]["x-auth-request-user"] == user
    return result.session


# ---------------------------------------------------- unknown-kid refetch --


def test_unknown_kid_refetch_once_and_flood_is_cooled_down(make_stack):
    s = make_stack(name="unknown-kid", envoy_concurrency=2)
    s.wait_filter_ready(30)
    wait_until(lambda: s.refresh_audits(target="jwks", outcome="success"), 30, message="the initial JWKS fetch")
    base = idp_count(s)
    assert base == 1, s.idp_stats()

    s.idp_set_keys(file=BOTH_KEYS)  # the IdP now signs with k2 and publishes k2 and k1
    now = int(time.time())
    implausible = [
        (fresh(s, iat=now - 7200, exp=now - 3600), "k2", {"expired"}),
        (fresh(s, audience="someone-else"), "k2", {"aud_mismatch"}),
        (fresh(s, issuer="https://evil.example.com"), "k2", {"iss_mismatch"}),
        (fresh(s, nbf=now + 3600, exp=now + 7200), "k2", {"not_yet_valid"}),
        (fresh(s, exp=now - 3600), "random-" + uuid.uuid4().hex, {"expired"}),
        (fresh(s, audience="someone-else"), "random-" + uuid.uuid4().hex, {"aud_mismatch"}),
    ]
    for claims, kid, codes in implausible:
        assert_401(s, signed_as(claims, kid), codes)
    time.sleep(2.0)  # every VM ticks (500 ms) several times: any refetch would have started
    assert idp_count(s) == base, f"an implausible token made the filter fetch: {s.idp_stats()}"
    assert stat(s, "jwks.unknown_kid_refetch") == 0
    assert not s.refresh_audits(trigger="unknown_kid")

    # The first plausible k2 token: one refetch, and the request waits for it and passes,
    # even when the IdP takes a while to answer (1.5 s; idp_timeout is 5 s).
    s.idp_fault("jwks", "slow", delay_ms=SLOW_MS)
    t_refetch = time.monotonic()
    r = api(s, mint_token(fresh(s, sub="k2-user"), kid="k2"))
    s.idp_fault("jwks", "ok")
    assert r.status_code == 200, ("the first k2 token should wait for the refetch and pass",
                                  r.status_code, r.text[:300])
    assert r.json()["headers"]["x-auth-request-user"] == "k2-user"
    assert idp_count(s) == base + 1, s.idp_stats()
    audits = s.refresh_audits(trigger="unknown_kid")
    assert len(audits) == 1, audits
    check_audit_shape(audits[0])
    assert audits[0]["outcome"] == "success" and audits[0]["keys_added"] == ["k2"] and audits[0]["keys_removed"] == []
    assert stat(s, "jwks.unknown_kid_refetch") >= 1

    # A flood of plausible tokens with random kids, from many connections at once. An
    # unknown kid is refused before any signature check, so one real signature serves
    # them all (minting 200 RSA signatures would only slow the flood down).
    _h, payload, signature = signed_as(fresh(s, sub="flood"), "x").split(".")
    flood = [
        ".".join([b64url_encode(json.dumps({"alg": "RS256", "typ": "JWT", "kid": f"random-{uuid.uuid4().hex}"}).encode()),
                  payload, signature])
        for _ in range(200)
    ]

    def one(token: str) -> tuple[int, str | None]:
        r = api(s, token)
        return r.status_code, code_of(r)

    t_flood = time.monotonic()
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(one, flood))
    print(f"flood of {len(flood)} unknown kids took {time.monotonic() - t_flood:.1f}s")
    assert {status for status, _ in results} == {401}, results[:5]
    assert {code for _, code in results} == {"kid_unknown"}
    time.sleep(1.5)  # a refetch asked for at the end of the flood would have started by now
    elapsed = time.monotonic() - t_refetch
    extra = idp_count(s) - (base + 1)
    cooldown = 30
    assert extra <= int(elapsed // cooldown), (
        f"{extra} JWKS fetches for the flood in {elapsed:.0f}s; at most one per {cooldown}s cooldown is allowed")
    # k1 is still published: its tokens still pass, and k2 ones too (no fetch needed).
    assert_passes(s, mint_token(fresh(s), kid="k1"))
    assert_passes(s, mint_token(fresh(s), kid="k2"))
    assert idp_count(s) == base + 1 + extra


# -------------------------------------------------- rotation strategies --


@pytest.mark.parametrize("strategy", ["replace", "add", "expire_after"])
def test_rotation_to_a_new_key_mid_run(make_stack, strategy):
    """The IdP serves k1, then k2 only. New logins and k2 tokens work at once
    (the unknown kid makes the filter refetch, without an Envoy restart);
    whether k1 tokens survive the refetch depends on `key_rotation`."""
    overrides: dict = {"key_rotation": strategy}
    if strategy == "expire_after":
        overrides["key_overlap"] = "1h"
    s = make_stack(name=f"rotation-{strategy}", plugin_config_overrides=overrides)
    s.wait_filter_ready(30)
    envoy_pid = s.pids()["envoy"]
    old_token = mint_token(fresh(s, sub="old-k1"), kid="k1")
    assert_passes(s, old_token, sub="old-k1")  # verified once, so now in the verdict cache
    browser = logged_in(s, "alice")  # a session from before the rotation
    base = idp_count(s)

    s.idp_set_keys(file=ROTATED_KEYS)
    s.idp_fault("jwks", "slow", delay_ms=SLOW_MS)  # the refetch takes a while: requests wait for it
    if strategy == "replace":
        # The next login: its ID token is signed by k2, the callback waits for the refetch.
        logged_in(s, "dave")
        assert_passes(s, mint_token(fresh(s, sub="new-k2"), kid="k2"), sub="new-k2")
    else:
        # The first k2 bearer token makes the refetch; then a login needs none.
        assert_passes(s, mint_token(fresh(s, sub="new-k2"), kid="k2"), sub="new-k2")
        logged_in(s, "dave")
    s.idp_fault("jwks", "ok")
    assert idp_count(s) == base + 1, s.idp_stats()
    refetch = s.refresh_audits(trigger="unknown_kid")
    assert len(refetch) == 1, refetch
    check_audit_shape(refetch[0])
    assert refetch[0]["keys_added"] == ["k2"]
    assert refetch[0]["keys_removed"] == (["k1"] if strategy == "replace" else [])
    assert refetch[0]["keys_in_force"] == (1 if strategy == "replace" else 2)
    assert stat(s, "jwks.keys") == refetch[0]["keys_in_force"]

    # k1 tokens after the refresh that removed k1 from the IdP's set; the cached verdict does not count.
    for token in (old_token, mint_token(fresh(s, sub="old-k1"), kid="k1")):
        if strategy == "replace":
            assert_401(s, token, {"kid_unknown"})
        else:
            assert_passes(s, token, sub="old-k1")
    # The session made before the rotation keeps working (it was checked at login).
    session_works(s, browser, "alice")
    assert idp_count(s) == base + 1, f"no further fetch: {s.idp_stats()}"
    assert s.pids()["envoy"] == envoy_pid


# ------------------------------------------------ outages, warm cache --

OUTAGES = [
    # (fault target, mode, what the audit's reason says)
    ("jwks", "500", "HTTP status 500"),
    ("jwks", "html", "not JSON"),
    ("jwks", "empty_keys", "empty"),
    ("jwks", "truncated", "not JSON"),
    ("jwks", "garbage", "not JSON"),
    ("all", "down", "HTTP status 503"),
]


def test_outages_with_a_warm_cache_keep_everyone_in(make_stack):
    s = make_stack(name="outage", envoy_concurrency=2, plugin_config_overrides={"kid_refetch_cooldown": "1s"})
    s.wait_filter_ready(30)
    browser = logged_in(s, "alice")
    token = mint_token(fresh(s))
    assert_passes(s, token)

    # Two failed logins, for their counters.
    st = start_login(s, "/x")
    aborted = complete_at_idp(st.session, st.authorize_url, abort=True)
    assert call_callback(st.session, aborted.callback_url).status_code == 403
    assert call_callback(new_browser(), s.redirect_uri + "?code=abc").status_code == 400

    first = s.refresh_audits(target="jwks", outcome="success")
    assert len(first) == 1
    success_at = first[0]["time"]
    time.sleep(1.1)  # so that a failed attempt is at a later second than the last success
    seen_failures = 0
    for target, mode, reason in OUTAGES:
        s.idp_fault(target, mode)

        # A plausible token with an unknown kid asks for a refetch (cooldown 1 s); it fails.
        def failed_for_this_mode():
            assert_401(s, signed_as(fresh(s), unknown_kid()), {"kid_unknown"})
            return [a for a in s.refresh_audits(target="jwks", outcome="failure")[seen_failures:] if reason in a["reason"]]

        audit = wait_until(failed_for_this_mode, 60, interval=0.5, message=f"a failed JWKS fetch with {target}={mode}")[0]
        check_audit_shape(audit)
        assert audit["keys_in_force"] == 1, audit
        assert audit["keys_added"] == [] and audit["keys_removed"] == []
        assert audit["consecutive_failures"] >= 1
        assert audit["endpoint"] == f"{s.issuer}/jwks"
        seen_failures = len(s.refresh_audits(target="jwks", outcome="failure"))

        # Nobody is logged out and known keys keep verifying, during the outage.
        session_works(s, browser, "alice")
        assert_passes(s, token)
        assert_passes(s, mint_token(fresh(s, sub=f"during-{mode}")), sub=f"during-{mode}")

        stats = s.envoy_stats()
        # (Retries with backoff may have failed again since: at least these.)
        assert stats["wasmcustom.oidc_edge.jwks.fetch_failure"] >= seen_failures
        assert stats["wasmcustom.oidc_edge.jwks.last_attempt_unix"] > stats["wasmcustom.oidc_edge.jwks.last_success_unix"]
        assert stats["wasmcustom.oidc_edge.jwks.last_success_unix"] == success_at
        assert stats["wasmcustom.oidc_edge.jwks.keys"] == 1
        if target == "all":
            s.idp_fault("all", "ok")
        else:
            s.idp_fault(target, "ok")

    # The IdP is back: the next attempt succeeds with the same key.
    def recovered():
        api(s, signed_as(fresh(s), unknown_kid()))
        return [a for a in s.refresh_audits(target="jwks", outcome="success") if a["time"] > success_at]

    audit = wait_until(recovered, 60, interval=0.5, message="a successful JWKS fetch after the outage")[0]
    assert audit["keys_in_force"] == 1 and audit["keys_added"] == [] and audit["keys_removed"] == []
    assert_passes(s, token)
    session_works(s, browser, "alice")
    for a in s.refresh_audits():
        check_audit_shape(a)

    # Every stat the filter defines in this run, under both of Envoy's names.
    assert_passes(s, token)
    api(s, mint_token(fresh(s, exp=int(time.time()) - 3600)))
    stats = s.settled_filter_stats()
    prom = s.envoy_prometheus()
    missing = {n: p for n, p in STAT_NAMES.items() if n not in stats or p not in prom}
    assert not missing, (missing, sorted(k for k in stats if "oidc" in k), sorted(k for k in prom if "oidc" in k))
    for name, prom_name in STAT_NAMES.items():
        assert prom[prom_name] == stats[name], (name, prom_name)
    assert stats["wasmcustom.oidc_edge.login.failed.idp_error"] >= 1
    assert stats["wasmcustom.oidc_edge.login.failed.state_missing"] >= 1
    assert stats["wasmcustom.oidc_edge.login.completed"] >= 1
    assert stats["wasmcustom.oidc_edge.jwks.fetch_failure"] >= len(OUTAGES)
    assert stats["wasmcustom.oidc_edge.jwks.fetch_success"] == len(s.refresh_audits(target="jwks", outcome="success"))
    assert stats["wasmcustom.oidc_edge.jwks.fetch_failure"] == len(s.refresh_audits(target="jwks", outcome="failure"))
    assert stats["wasmcustom.oidc_edge.discovery.fetch_success"] == 1


# ------------------------------------------------------------ cold start --


def test_cold_start_with_the_idp_down(make_stack):
    s = make_stack(name="cold-start", envoy_concurrency=2, idp_faults_before_envoy=[{"target": "all", "mode": "down"}])
    envoy_pid = s.pids()["envoy"]
    wait_until(lambda: len(s.refresh_audits(target="discovery", outcome="failure")) >= 2, 60,
               message="two failed discovery attempts")
    token = mint_token(fresh(s))
    for _ in range(3):
        with new_session() as http:
            r = http.get(s.url("/page"), headers=BROWSER_HEADERS, allow_redirects=False, timeout=60)
        assert r.status_code == 503, (r.status_code, r.text[:300])
        assert r.headers.get("Retry-After", "").isdigit(), r.headers
        assert "Location" not in r.headers
        r = api(s)
        assert r.status_code == 401, (r.status_code, r.text[:300])
        assert r.headers.get("WWW-Authenticate", "").startswith("Bearer")
        r = api(s, token)
        assert r.status_code == 401, (r.status_code, r.text[:300])
        assert code_of(r) == "keys_not_loaded", r.text
    time.sleep(0.2)
    assert s.upstream_count() == 0
    for audit in s.refresh_audits():
        check_audit_shape(audit)
        assert audit["outcome"] == "failure" and audit["target"] == "discovery", audit
        assert "503" in audit["reason"], audit
    assert not s.refresh_audits(target="jwks"), "no JWKS fetch without the discovery document"
    stats = s.envoy_stats()
    prom = s.envoy_prometheus()
    for name, prom_name in COLD_START_STAT_NAMES.items():
        assert stats.get(name, 0) >= 1, (name, sorted(k for k in stats if "oidc" in k))
        assert prom.get(prom_name) == stats[name], prom_name
    assert "wasmcustom.oidc_edge.discovery.last_success_unix" not in stats

    s.idp_fault("all", "ok")
    t0 = time.monotonic()

    def passes():
        with new_session() as http:
            r = http.get(s.url("/page"), headers=BROWSER_HEADERS, allow_redirects=False, timeout=60)
        return r.status_code == 302 and api(s, token).status_code == 200

    # Backoff before anything is loaded is capped at 30 s; give it twice that and more.
    wait_until(passes, 90, interval=0.5, message="the filter to load the IdP's metadata and keys after it came back")
    print(f"cold start: requests passed {time.monotonic() - t0:.1f}s after the IdP came back")
    assert s.pids()["envoy"] == envoy_pid
    assert s.refresh_audits(target="discovery", outcome="success")
    assert s.refresh_audits(target="jwks", outcome="success")[0]["keys_added"] == ["k1"]
    assert s.upstream_count() == 1
    logged_in(s, "alice")


# ----------------------------------------------------- the long one --


@pytest.mark.long
def test_long_one_jwks_fetch_per_refresh_period_for_the_whole_proxy(make_stack):
    """LONG (about 2.5 minutes): Envoy with 4 workers (5+ VMs ticking) and
    jwks_refresh_interval 1m. Over two refresh periods the IdP sees one JWKS
    fetch per period, not one per VM, and discovery once. Meanwhile traffic
    flows through every worker, a login completes, a rotation published by
    the IdP is picked up by the scheduled refresh, and every refresh writes
    one audit line."""
    s = make_stack(name="refresh-periods", envoy_concurrency=4, plugin_config_overrides={"jwks_refresh_interval": "1m"})
    s.wait_filter_ready(30)
    stats = s.envoy_stats()
    assert stats["wasm.wasm_vm_count"] >= 5, stats["wasm.wasm_vm_count"]
    first = wait_until(lambda: s.refresh_audits(target="jwks", outcome="success"), 30, message="the initial JWKS fetch")[0]

    failures: list = []
    stop = threading.Event()

    def traffic() -> None:
        i = 0
        while not stop.is_set():
            i += 1
            try:
                r = api(s, mint_token(fresh(s, sub=f"t{i}"), kid="k1"))  # a new connection each time
                if r.status_code != 200:
                    failures.append((i, r.status_code, r.text[:200]))
            except requests.RequestException as exc:
                failures.append((i, type(exc).__name__))
            stop.wait(0.3)

    worker = threading.Thread(target=traffic, daemon=True)
    worker.start()
    try:
        logged_in(s, "alice")
        # After the second fetch the IdP publishes k2 as well (and signs with it):
        # the third, scheduled fetch must pick it up without any unknown-kid refetch.
        wait_until(lambda: len(s.refresh_audits(target="jwks", outcome="success")) >= 2, 150, interval=0.5,
                   message="the first scheduled JWKS refresh")
        s.idp_set_keys(file=BOTH_KEYS)
        wait_until(lambda: len(s.refresh_audits(target="jwks")) >= 3, 150, interval=0.5,
                   message="the second scheduled JWKS refresh")
        # Two full periods after the first fetch, and a little more.
        while time.time() < first["time"] + 130:
            time.sleep(1)
        logged_in(s, "bob")  # k2-signed ID token: known from the scheduled refresh
        assert_passes(s, mint_token(fresh(s, sub="k2-user"), kid="k2"), sub="k2-user")
    finally:
        stop.set()
        worker.join(30)

    audits = s.refresh_audits(target="jwks")
    counts = s.idp_stats()
    assert counts.get("/jwks") == len(audits) == 3, (counts, audits)
    assert counts.get("/.well-known/openid-configuration") == 1, counts
    assert [a["trigger"] for a in audits] == ["initial", "scheduled", "scheduled"]
    assert all(a["outcome"] == "success" for a in audits), audits
    for a in s.refresh_audits():
        check_audit_shape(a)
    for earlier, later in zip(audits, audits[1:]):
        assert later["time"] - earlier["time"] >= 60, audits
    assert audits[0]["keys_added"] == ["k1"]
    assert audits[1]["keys_added"] == []
    assert audits[2]["keys_added"] == ["k2"] and audits[2]["keys_removed"] == []
    assert not failures, failures[:5]

    stats = s.envoy_stats()
    assert stats["wasmcustom.oidc_edge.jwks.fetch_success"] == 3
    assert stats["wasmcustom.oidc_edge.discovery.fetch_success"] == 1
    assert stats["wasmcustom.oidc_edge.jwks.last_success_unix"] == audits[-1]["time"]
    assert stats["wasmcustom.oidc_edge.jwks.last_attempt_unix"] == audits[-1]["time"]
    assert stats["wasmcustom.oidc_edge.jwks.keys"] == 2
    assert stats.get("wasmcustom.oidc_edge.jwks.unknown_kid_refetch", 0) == 0
    # Successes reach Envoy in batches, on each VM's next tick (0.5 s).
    wait_until(lambda: stat(s, "token.accepted") >= 100, 5, message="token.accepted counted")
    assert "wasmcustom.oidc_edge.jwks.fetch_failure" not in stats


@pytest.mark.parametrize("guard", [True, False], ids=["with-guard", "without-guard"])
def test_workers_that_cannot_create_the_vm_refuse_requests_with_the_guard(guard):
    """Envoy runs a worker whose wasm VM fails to be created without the filter
    (any failure_policy). Under an address-space limit both workers' VMs fail
    (V8 reserves GBs per VM): the shipped RBAC guard after oidc-edge then
    refuses every request (403), where without it they reach the application.
    The second case proves the first one tests something."""
    with Stack(name=f"vm-create-fails-{'guard' if guard else 'bare'}", envoy_concurrency=2,
               envoy_address_space_kb=30_000_000, guard=guard) as s:
        # The precondition: both workers really run without their VM.
        wait_until(lambda: (s.artifacts / "envoy.log").read_text().count("Failed to create new Wasm instance") >= 2,
                   timeout=10, message="both workers failing to create the VM")
        assert s.envoy_stats(filter="wasm")["wasm.envoy.wasm.runtime.v8.active"] == 2
        http = new_session()
        token = mint_token(token_claims(s, sub="someone"))
        seen_before = s.upstream_count()
        for headers in ({"Accept": "application/json"}, {"Accept": "text/html"}, {"Authorization": f"Bearer {token}"}):
            for _ in range(4):  # both workers
                r = http.get(s.url("/private"), headers=headers, timeout=5, allow_redirects=False)
                if guard:
                    assert r.status_code == 403, (headers, r.status_code, r.text[:200])
                else:
                    assert r.status_code == 200 and r.json()["path"] == "/private", (headers, r.status_code)
        if guard:
            assert s.envoy_stats(filter="rbac")["http.ingress.rbac.denied"] == 12
            assert s.upstream_count() == seen_before

"""Chaos: a concurrent mix of logins, sessions (small and split into several
cookies), bearer tokens, WebSockets and garbage through the real Envoy
(--concurrency 2) while the real IdP is made slow (past idp_timeout), down,
500, HTML, empty keys, truncated and garbage in turn, then ok again.

The traffic, the classification and the checks are in tests/chaos/driver.py
(shared with `make soak`). Asserted:
- nothing without valid credentials reaches the upstream: every request the
  upstream logged carries the tag of a request sent with valid credentials
  (or went to the pass-through path), an Authorization that the IdP's key
  signed for this client, and the identity it was sent for;
- no 5xx but the defined ones: 503 with Retry-After (not ready) and the 502
  page of a login whose code exchange failed;
- every request with a valid session or bearer token (keys loaded before the
  faults) got the upstream's 200 (or a WebSocket upgrade and its echo), in
  every phase, and each phase saw some of both; this includes sessions of a
  second route whose every request refreshes its tokens first (the refresh
  fails while the IdP is faulted: the still-valid token must carry on);
- no wasm VM crash: Envoy's wasm.* stats unchanged, no crash lines in its log;
- the faults were met: the filter's JWKS refetches failed while the key set
  stayed in force.
The summary table (class x outcome, per phase) is printed and kept in
tests/artifacts/chaos/summary.txt.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "chaos"))

from driver import chaos_stack_kwargs, fault_cycle, run_chaos  # noqa: E402

PHASE_SECONDS = 5.0
WORKERS = 8
SEED = 20251122


def test_chaos_faults_never_leak_or_crash(make_stack, capsys):
    stack = make_stack(**chaos_stack_kwargs(name="chaos"))
    stack.wait_filter_ready(30)

    def log(line: str) -> None:
        with capsys.disabled():
            print(line, flush=True)

    with capsys.disabled():
        print()
    result = run_chaos(stack, fault_cycle(phase_seconds=PHASE_SECONDS), workers=WORKERS, seed=SEED, log=log)
    summary = result.summary()
    (stack.artifacts / "summary.txt").write_text(summary + "\n\n" + "\n".join(result.problems()) + "\n")
    log(summary)

    assert result.auditor.leaks == [], "requests reached the upstream without valid credentials:\n" + "\n".join(result.auditor.leaks[:40])
    assert result.watch_problems == [], "wasm VM trouble:\n" + "\n".join(result.watch_problems)
    assert result.ledger.violations == [], f"{len(result.ledger.violations)} contract violations:\n" + "\n".join(result.ledger.violations[:60])
    assert result.auditor.problems == [], "\n".join(result.auditor.problems[:40])
    assert result.coverage_problems == [], "\n".join(result.coverage_problems)

    stats = result.filter_stats
    assert stats.get("oidc_edge.jwks.fetch_failure", 0) > 0, f"no JWKS fetch met a fault: {stats}"
    assert stats.get("oidc_edge.jwks.keys") == 1, f"the key set in force changed: {stats}"
    assert stats.get("oidc_edge.login.completed", 0) > 0, stats
    # The refresh route refreshed tokens, and refreshes failed (faults, reused
    # rotated refresh tokens) without anyone losing the session.
    assert stats.get("oidc_edge.session.refreshed", 0) > 0, stats
    assert sum(v for k, v in stats.items() if k.startswith("oidc_edge.session.refresh_failed.")) > 0, stats


def test_parallel_requests_of_one_session_refresh_once(make_stack):
    """A page that fires several requests at once inside refresh_before_expiry
    must not make the filter use one refresh token several times: IdPs that
    rotate refresh tokens (oidc-provider here, Auth0, Okta, Keycloak with
    refresh token revocation) take a second use as theft and revoke the whole
    grant, and the session could never be refreshed again. After the burst,
    the browser keeps the cookies that came back; its next refresh works."""
    import random
    import threading

    from driver import REFRESH_HOST, Ledger, Traffic
    from wire import http_request

    stack = make_stack(**chaos_stack_kwargs(name="refresh-burst"))
    stack.wait_filter_ready(30)
    traffic = Traffic(stack, Ledger("rb"))
    # The refresh route refreshes on every request (refresh_before_expiry 1h).
    sess = traffic.login(random.Random(1), "rita", "/x", strict=True, host=REFRESH_HOST)

    def get(cookie: str):
        return http_request("127.0.0.1", stack.envoy_port, "GET", "/api/burst",
                            [("Host", f"{REFRESH_HOST}:{stack.envoy_port}"), ("Accept", "application/json"), ("Cookie", cookie)])

    def refreshed() -> int:
        return int(stack.envoy_stats(filter=r"session\.refreshed$").get("wasmcustom.oidc_edge.session.refreshed", 0))

    cookie = sess.header()
    replies: list = [None] * 4
    threads = [threading.Thread(target=lambda i=i: replies.__setitem__(i, get(cookie))) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [r.status for r in replies] == [200] * 4, [(r.status, r.body[:200]) for r in replies]
    for r in replies:
        sess.update(r.header_all("set-cookie"))

    before = refreshed()
    r = get(sess.header())
    assert r.status == 200, r.body[:300]
    failed = {k: v for k, v in stack.envoy_stats(filter=r"refresh_failed").items() if v}
    assert refreshed() == before + 1 and r.header_all("set-cookie"), (
        f"the session could not be refreshed after a burst of parallel requests: {failed}")

"""oidc-edge demo: real Envoy + the oidc-edge filter + a test IdP + an echo
application, all on 127.0.0.1 with fixed ports.

    make demo                       # or: .venv/bin/python tests/harness/demo.py
    open http://127.0.0.1:8080/     # log in with any user name and password
    Ctrl-C                          # stops everything

    .venv/bin/python tests/harness/demo.py --check
        headless: starts the stack, logs in once through the login driver,
        prints the headers the application received, exits 0 (or 1).

Ports (environment overrides):
    OIDC_EDGE_DEMO_PORT                 8080  Envoy listener (open this)
    OIDC_EDGE_DEMO_ADMIN_PORT           9901  Envoy admin
    OIDC_EDGE_DEMO_IDP_PORT             9000  IdP (issuer http://127.0.0.1:9000)
    OIDC_EDGE_DEMO_IDP_ADMIN_PORT       9001  IdP admin API
    OIDC_EDGE_DEMO_UPSTREAM_PORT        9100  echo application
    OIDC_EDGE_DEMO_UPSTREAM_ADMIN_PORT  9101  echo application admin
Logs: tests/artifacts/demo/. The module is dist/oidc_edge.wasm
(OIDC_EDGE_WASM to use another).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from http_util import bearer_token, jwt_payload  # noqa: E402
from oidc_login import LoginError, login  # noqa: E402
from stack import Stack, StackError  # noqa: E402

PORTS = {
    "envoy": ("OIDC_EDGE_DEMO_PORT", 8080),
    "envoy_admin": ("OIDC_EDGE_DEMO_ADMIN_PORT", 9901),
    "idp": ("OIDC_EDGE_DEMO_IDP_PORT", 9000),
    "idp_admin": ("OIDC_EDGE_DEMO_IDP_ADMIN_PORT", 9001),
    "upstream": ("OIDC_EDGE_DEMO_UPSTREAM_PORT", 9100),
    "upstream_admin": ("OIDC_EDGE_DEMO_UPSTREAM_ADMIN_PORT", 9101),
}


def demo_ports() -> dict[str, int]:
    ports = {}
    for role, (env, default) in PORTS.items():
        raw = os.environ.get(env, "")
        try:
            ports[role] = int(raw) if raw else default
        except ValueError:
            sys.exit(f"{env}={raw!r} is not a port number")
    return ports


def check(stack: Stack) -> int:
    """One headless login; prints what the application received."""
    result = login(stack, "/demo/check?from=demo", user="demo")
    cb = result.callback_response
    if cb.status_code != 302:
        print(f"callback answered {cb.status_code}, expected 302:\n{cb.text[:500]}", file=sys.stderr)
        return 1
    page = result.follow()
    if page.status_code != 200:
        print(f"{result.location} answered {page.status_code} after login:\n{page.text[:500]}", file=sys.stderr)
        return 1
    echo = page.json()
    headers = echo["headers"]
    print(f"logged in as 'demo'; {echo['method']} {echo['path']} reached the application with these headers:")
    print(json.dumps(headers, indent=2, sort_keys=True))
    token = bearer_token(headers)
    if not token:
        print("no bearer token reached the application", file=sys.stderr)
        return 1
    claims = jwt_payload(token)
    print("token claims: " + json.dumps({k: claims.get(k) for k in ("iss", "sub", "aud", "email", "exp")}))
    if claims.get("sub") != "demo":
        print(f"unexpected sub {claims.get('sub')!r}", file=sys.stderr)
        return 1
    print("demo check: OK")
    return 0


def serve(stack: Stack) -> int:
    print()
    print(f"  oidc-edge demo is running: open {stack.url('/')}")
    print("  log in with any user name and any password")
    print(f"  (logs in {stack.artifacts}; Ctrl-C stops everything)")
    print(flush=True)
    while True:
        time.sleep(1)
        stack.check_alive()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="log in once headless, print the headers, exit")
    args = parser.parse_args()

    def on_term(_sig, _frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    stack = None
    try:
        stack = Stack(name="demo", ports=demo_ports())
        stack.wait_filter_ready(20)
        return check(stack) if args.check else serve(stack)
    except KeyboardInterrupt:
        # A second Ctrl-C while stopping must not break the clean stop with a traceback.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        print("\nstopping", flush=True)
        return 0
    except (StackError, LoginError) as exc:
        print(f"demo failed: {exc}", file=sys.stderr)
        # Envoy says "Address already in use", Node (the IdP, the app) EADDRINUSE.
        if any(t in str(exc).lower() for t in ("address already in use", "eaddrinuse")):
            print("a port of the demo is taken: pick others with the OIDC_EDGE_DEMO_*_PORT variables "
                  "(`.venv/bin/python tests/harness/demo.py --help`)", file=sys.stderr)
        if stack is not None:
            print(f"logs: {stack.artifacts}", file=sys.stderr)
        return 1
    finally:
        if stack is not None:
            stack.stop()


if __name__ == "__main__":
    sys.exit(main())

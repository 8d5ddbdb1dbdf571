"""Fixtures of the end-to-end suite.

- `stack` (session): the full stack with the oidc-edge filter, filter ready.
- `make_stack` (function): `make_stack(**Stack kwargs)` starts an extra
  stack (e.g. plugin_config_overrides, idp_args, with_filter=False) and
  stops it after the test.
- `browser` (function): a fresh requests.Session acting as a browser.

Tests marked `long` wait for real time (refresh periods); `-m "not long"`
leaves them out.

Artifacts (logs, rendered envoy.yaml) land in tests/artifacts/<name>/; a
failing test's report lists the directories of the stacks it used.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "harness"))

from oidc_login import new_browser  # noqa: E402
from stack import Stack, serve, wasm_path  # noqa: E402


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "long: a test that must wait for real time to pass (minutes); deselect with -m 'not long'",
    )


def _stacks_of(node) -> list:
    stacks = getattr(node, "_oidc_edge_stacks", None)
    if stacks is None:
        stacks = []
        node._oidc_edge_stacks = stacks  # noqa: SLF001
    return stacks


def _require_wasm() -> None:
    if not wasm_path().is_file():
        pytest.fail(
            f"{wasm_path()} does not exist: build the filter first (`make build`), "
            "or point OIDC_EDGE_WASM at a module",
            pytrace=False,
        )


@pytest.fixture(scope="session")
def stack():
    _require_wasm()
    yield from serve(Stack(name="session"))


@pytest.fixture
def make_stack(request):
    made: list[Stack] = []

    def make(**kwargs) -> Stack:
        if kwargs.get("with_filter", True):
            _require_wasm()
        kwargs.setdefault("name", request.node.name)
        s = Stack(**kwargs)
        made.append(s)
        _stacks_of(request.node).append(s)
        return s

    yield make
    for s in made:
        s.stop()


@pytest.fixture
def browser():
    s = new_browser()
    yield s
    s.close()


@pytest.fixture(autouse=True)
def _remember_session_stack(request):
    if "stack" in request.fixturenames:
        _stacks_of(request.node).append(request.getfixturevalue("stack"))
    yield


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        stacks = getattr(item, "_oidc_edge_stacks", [])
        if stacks:
            report.sections.append(
                ("oidc-edge stacks", "\n".join(f"{s!r}: logs in {s.artifacts}" for s in stacks))
            )

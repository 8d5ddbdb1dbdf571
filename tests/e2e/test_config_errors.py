"""A bad configuration is refused when Envoy loads the filter, with a log line
naming the field and what is expected; a good one loads. Uses the real Envoy
(`--mode validate` runs the plugin's on_configure)."""

import subprocess

import pytest

from stack import Stack, find_envoy, wasm_path

# Each message is tested natively (src/config/); these prove the wiring through
# Envoy: on_configure refuses, and the log names the field.
CASES = [
    ({"cookie_secret": "c2hvcnQ="}, "field `cookie_secret`: must decode to exactly 32 bytes"),
    ({"isuer": "x"}, "field `isuer`: unknown field; did you mean `issuer`?"),
    ({"client_secret": {"env": "OIDC_EDGE_UNSET_VARIABLE"}}, "environment variable `OIDC_EDGE_UNSET_VARIABLE` is not set"),
    ({"client_secret": {"file": "/run/secrets/client"}}, "Envoy gives wasm filters no file system"),
]


def validate(tmp_path, overrides):
    s = Stack(name="config-check", start=False, with_filter=True, plugin_config_overrides=overrides)
    s.artifacts = tmp_path
    path = tmp_path / "envoy.yaml"
    path.write_text(s.render_envoy_config())
    return subprocess.run([find_envoy(), "--mode", "validate", "-c", str(path), "--disable-hot-restart"],
                          capture_output=True, text=True, timeout=60)


@pytest.fixture(autouse=True)
def needs_wasm():
    if not wasm_path().exists():
        pytest.skip("dist/oidc_edge.wasm is not built (make build)")


def test_good_configuration_loads(tmp_path):
    r = validate(tmp_path, {})
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert "OK" in r.stdout + r.stderr


@pytest.mark.parametrize("overrides,message", CASES, ids=[m.split(":")[0] for _, m in CASES])
def test_bad_configuration_is_refused_with_the_field_named(tmp_path, overrides, message):
    r = validate(tmp_path, overrides)
    out = r.stdout + r.stderr
    assert "Unable to create Wasm plugin" in out or r.returncode != 0, out[-2000:]
    assert message in out, out[-3000:]

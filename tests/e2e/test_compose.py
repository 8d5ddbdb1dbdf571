"""The docker-compose demo (docker-compose.yml, envoy/envoy-compose.yaml),
checked without Docker (these machines have no engine): the compose file
parses and is consistent, every local path it mounts or runs exists, and the
real Envoy validates the compose Envoy config with the container paths mapped
back to the repository (which loads the wasm module and its configuration)."""

from __future__ import annotations

import json
import shlex
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from stack import ARTIFACTS_DIR, ROOT, StackError, find_envoy, wasm_path

yaml = pytest.importorskip("yaml", reason="PyYAML is not installed in the venv (tests/requirements.txt; run `make setup`)")

COMPOSE = ROOT / "docker-compose.yml"
ENVOY_IMAGE = "envoyproxy/envoy:v1.40-latest"


@pytest.fixture(scope="module")
def compose() -> dict:
    data = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(data, dict) and isinstance(data.get("services"), dict), "a compose file with services"
    return data


def bind_mounts(service: dict) -> list[tuple[Path, str]]:
    """(host path, container path) of every bind mount, short or long syntax."""
    mounts = []
    for v in service.get("volumes", []):
        if isinstance(v, str):
            source, target = v.split(":")[:2]
            assert source.startswith((".", "/")), f"{v}: only bind mounts are expected, not named volumes"
        else:
            assert v.get("type") == "bind", f"{v}: only bind mounts are expected"
            source, target = v["source"], v["target"]
        mounts.append(((COMPOSE.parent / source).resolve(), target))
    return mounts


def to_host(container_path: str, mounts: list[tuple[Path, str]]) -> Path | None:
    """The repository path behind a container path, if it lies in a bind mount."""
    for source, target in mounts:
        if container_path == target:
            return source
        if container_path.startswith(target.rstrip("/") + "/"):
            return source / container_path[len(target.rstrip("/")) + 1 :]
    return None


def command_words(service: dict) -> list[str]:
    cmd = service.get("command", [])
    words = shlex.split(cmd) if isinstance(cmd, str) else list(cmd)
    # `sh -c "<script>"`: the script's own words too.
    if words[:2] == ["sh", "-c"] and len(words) == 3:
        words = words[:2] + shlex.split(words[2].replace("&&", " "))
    return words


def flag(words: list[str], name: str) -> list[str]:
    return [words[i + 1] for i, w in enumerate(words[:-1]) if w == name]


def published(service: dict) -> dict[int, tuple[str, int]]:
    """container port -> (host address, host port)."""
    out = {}
    for p in service.get("ports", []):
        host_ip, host_port, container_port = str(p).split(":")
        out[int(container_port)] = (host_ip, int(host_port))
    return out


def envoy_config(compose: dict) -> tuple[dict, list[tuple[Path, str]]]:
    mounts = bind_mounts(compose["services"]["envoy"])
    words = command_words(compose["services"]["envoy"])
    config_path = to_host(flag(words, "-c")[0], mounts)
    assert config_path is not None and config_path.is_file(), f"envoy -c {flag(words, '-c')}: not mounted from the repository"
    return yaml.safe_load(config_path.read_text()), mounts


def wasm_filters(config: dict) -> list[dict]:
    hcm = config["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
    return [f for f in hcm["http_filters"] if f["typed_config"]["@type"].endswith("wasm.v3.Wasm")]


def cluster(config: dict, name: str) -> dict:
    found = [c for c in config["static_resources"]["clusters"] if c["name"] == name]
    assert found, f"no cluster {name}"
    return found[0]


def cluster_address(c: dict) -> tuple[str, int]:
    sa = c["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]["socket_address"]
    return sa["address"], sa["port_value"]


def test_services_and_images(compose):
    services = compose["services"]
    assert set(services) == {"envoy", "idp", "upstream"}
    assert services["envoy"]["image"] == ENVOY_IMAGE
    assert services["idp"]["image"] == "node:20"
    assert services["upstream"]["image"] == "node:20"
    assert "npm ci" in " ".join(command_words(services["idp"]))
    assert "npm ci" in " ".join(command_words(services["upstream"]))


def test_every_mounted_path_exists(compose):
    for name, service in compose["services"].items():
        for source, target in bind_mounts(service):
            if source == wasm_path() or source.name == "oidc_edge.wasm":
                assert source.is_file(), f"{name}: {source} (mounted at {target}) is missing: run `make build`"
            assert source.exists(), f"{name}: {source} (mounted at {target}) does not exist"


def test_paths_in_commands_and_envoy_config_exist(compose):
    for name, service in compose["services"].items():
        mounts = bind_mounts(service)
        # The container's own working directory (where scripts are copied) is not ours.
        workdir = service.get("working_dir", "").rstrip("/")
        for word in command_words(service):
            if workdir and (word.rstrip("/") == workdir or word.startswith(workdir + "/")):
                continue
            if word.startswith("/"):
                host = to_host(word, mounts)
                assert host is not None and host.exists(), f"{name}: `{word}` is not a mounted repository file"
    # The files the copied scripts are started from.
    for name, script in (("idp", "idp.mjs"), ("upstream", "upstream.mjs")):
        words = command_words(compose["services"][name])
        assert f"/harness/{script}" in words and script in words, f"{name}: copies and runs {script}"
    config, mounts = envoy_config(compose)
    for f in wasm_filters(config):
        filename = f["typed_config"]["config"]["vm_config"]["code"]["local"]["filename"]
        host = to_host(filename, mounts)
        assert host is not None, f"{filename}: not mounted into the envoy service"
        assert host.is_file(), f"{host}: missing (run `make build`)"


def test_ports_are_published_on_loopback_only(compose):
    for name, service in compose["services"].items():
        for container_port, (host_ip, _) in published(service).items():
            assert host_ip == "127.0.0.1", f"{name}:{container_port} must only be published on 127.0.0.1 (test IdP, test secrets)"


def test_browser_and_envoy_use_the_same_issuer(compose):
    """The issuer URL is what the browser opens (a published port on
    localhost) and what the filter checks `iss` against; the filter reaches
    the same IdP through its cluster, by service name."""
    services = compose["services"]
    config, _ = envoy_config(compose)
    plugin = json.loads(wasm_filters(config)[0]["typed_config"]["config"]["configuration"]["value"])
    idp_words = command_words(services["idp"])

    assert flag(idp_words, "--issuer") == [plugin["issuer"]]
    issuer = urlsplit(plugin["issuer"])
    idp_port = int(flag(idp_words, "--port")[0])
    assert issuer.hostname == "localhost"
    assert published(services["idp"])[idp_port] == ("127.0.0.1", issuer.port), "the issuer's port is the IdP's, published as is"
    assert flag(idp_words, "--host") == ["0.0.0.0"], "the IdP listens beyond its container's loopback"

    assert cluster_address(cluster(config, plugin["idp_cluster"])) == ("idp", idp_port), "idp_cluster reaches the idp service"
    upstream_port = int(flag(command_words(services["upstream"]), "--port")[0])
    routes = config["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]["route_config"]
    app_cluster = routes["virtual_hosts"][0]["routes"][0]["route"]["cluster"]
    assert cluster_address(cluster(config, app_cluster)) == ("upstream", upstream_port)

    listener_port = config["static_resources"]["listeners"][0]["address"]["socket_address"]["port_value"]
    _, envoy_host_port = published(services["envoy"])[listener_port]
    assert f"http://localhost:{envoy_host_port}/oauth2/callback" in flag(idp_words, "--redirect-uri")
    assert flag(idp_words, "--client-id") == [plugin["client_id"]]
    assert flag(idp_words, "--client-secret") == [plugin["client_secret"]]


def test_envoy_validates_the_compose_config(compose):
    try:
        envoy = find_envoy()
    except StackError as e:
        pytest.skip(f"cannot run Envoy: {e}")
    config, mounts = envoy_config(compose)
    for f in wasm_filters(config):
        code = f["typed_config"]["config"]["vm_config"]["code"]["local"]
        host = to_host(code["filename"], mounts)
        if host is None or not host.is_file():
            pytest.skip(f"{code['filename']} is not available on this machine (run `make build`)")
        code["filename"] = str(host)
    out_dir = ARTIFACTS_DIR / "compose"
    out_dir.mkdir(parents=True, exist_ok=True)
    mapped = out_dir / "envoy-compose.mapped.yaml"
    mapped.write_text(yaml.safe_dump(config, sort_keys=False))
    r = subprocess.run(
        [envoy, "--mode", "validate", "--disable-hot-restart", "-c", str(mapped)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0 and "OK" in r.stdout + r.stderr, f"envoy --mode validate {mapped}:\n{r.stdout}{r.stderr}"

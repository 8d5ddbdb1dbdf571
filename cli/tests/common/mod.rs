//! Helpers shared by the CLI's integration tests.
#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde::Deserialize;
use serde_yaml_ng::Value;

/// A pinned module URL, as `--output istio` requires one.
pub const WASM: &str = "oci://registry.example.com/oidc-edge:0.1.0";

/// The repository's root (the workspace).
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("cli/ has a parent").to_path_buf()
}

/// A manifest under `tests/ingress/`.
pub fn ingress(name: &str) -> PathBuf {
    repo().join("tests/ingress").join(name)
}

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// Runs the `oidc-edge` binary with `args`, feeding `stdin`.
pub fn run(args: &[&str], stdin: &str) -> Run {
    let mut child = Command::new(env!("CARGO_BIN_EXE_oidc-edge"))
        .args(args)
        .current_dir(repo())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start oidc-edge");
    child.stdin.take().expect("stdin").write_all(stdin.as_bytes()).expect("write stdin");
    let out = child.wait_with_output().expect("wait oidc-edge");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8(out.stdout).expect("utf-8 stdout"),
        stderr: String::from_utf8(out.stderr).expect("utf-8 stderr"),
    }
}

/// Every YAML document of a stream.
pub fn docs(text: &str) -> Vec<Value> {
    serde_yaml_ng::Deserializer::from_str(text).map(|d| Value::deserialize(d).expect("valid YAML")).collect()
}

pub fn find_kind<'a>(docs: &'a [Value], kind: &str) -> Vec<&'a Value> {
    docs.iter().filter(|d| d.get("kind").and_then(Value::as_str) == Some(kind)).collect()
}

/// Follows a path of mapping keys and sequence indexes written as `a.b.0.c`.
pub fn at<'a>(v: &'a Value, path: &str) -> &'a Value {
    let mut cur = v;
    for part in path.split('.') {
        cur = match part.parse::<usize>() {
            Ok(i) => cur.get(i),
            Err(_) => cur.get(part),
        }
        .unwrap_or_else(|| panic!("no `{part}` in path `{path}` of {v:?}"));
    }
    cur
}

pub fn str_at<'a>(v: &'a Value, path: &str) -> &'a str {
    at(v, path).as_str().unwrap_or_else(|| panic!("`{path}` is not a string"))
}

/// The plugin JSON inside the rendered Envoy filter entry.
pub fn envoy_plugin_json(docs: &[Value]) -> serde_json::Value {
    let text = str_at(&docs[0], "http_filters.0.typed_config.config.configuration.value");
    serde_json::from_str(text).expect("plugin configuration is JSON")
}

/// The renderer's options for library-level tests; the filter check off for keys the
/// filter does not know yet.
pub fn opts(output: oidc_edge_cli::Output, check_with_filter: bool) -> oidc_edge_cli::Options {
    let wasm_url = (output == oidc_edge_cli::Output::Istio).then(|| WASM.to_string());
    oidc_edge_cli::Options { output, check_with_filter, wasm_url, ..Default::default() }
}

pub fn inputs(files: &[&str]) -> Vec<oidc_edge_cli::Input> {
    files
        .iter()
        .map(|f| oidc_edge_cli::Input {
            name: format!("tests/ingress/{f}"),
            text: std::fs::read_to_string(ingress(f)).expect("read manifest"),
        })
        .collect()
}

/// `.venv/bin/envoy` and `dist/oidc_edge.wasm` if both exist (after `make setup build`).
pub fn envoy_and_wasm() -> Result<(PathBuf, PathBuf), String> {
    let envoy = repo().join(".venv/bin/envoy");
    let wasm = std::env::var_os("OIDC_EDGE_WASM").map(PathBuf::from).unwrap_or_else(|| repo().join("dist/oidc_edge.wasm"));
    let mut missing = Vec::new();
    if !envoy.is_file() {
        missing.push(format!("{} (run `make setup`)", envoy.display()));
    }
    if !wasm.is_file() {
        missing.push(format!("{} (run `make build`)", wasm.display()));
    }
    if missing.is_empty() {
        Ok((envoy, wasm))
    } else {
        Err(missing.join(" and "))
    }
}

/// A complete Envoy configuration around rendered `--output envoy` fragments: a listener
/// whose http_filters are the rendered ones then the router, the rendered clusters and an
/// application cluster.
pub fn complete_envoy_config(rendered: &str) -> Value {
    let d = docs(rendered);
    let mut filters = at(&d[0], "http_filters").as_sequence().expect("http_filters is a list").clone();
    let router: Value = serde_yaml_ng::from_str(
        r#"{name: envoy.filters.http.router, typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}}"#,
    )
    .unwrap();
    filters.push(router);
    let mut clusters = at(&d[1], "clusters").as_sequence().expect("clusters is a list").clone();
    let app: Value = serde_yaml_ng::from_str(
        "name: app\ntype: STATIC\nconnect_timeout: 1s\nload_assignment:\n  cluster_name: app\n  endpoints:\n  - lb_endpoints:\n    - endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: 9100}}}\n",
    )
    .unwrap();
    clusters.push(app);
    let mut config: Value = serde_yaml_ng::from_str(
        r#"
admin: {address: {socket_address: {address: 127.0.0.1, port_value: 0}}}
static_resources:
  listeners:
  - name: ingress
    address: {socket_address: {address: 127.0.0.1, port_value: 0}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: ingress
          route_config:
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:
              - match: {prefix: "/"}
                route: {cluster: app}
          http_filters: []
  clusters: []
"#,
    )
    .unwrap();
    let hcm = config
        .get_mut("static_resources")
        .and_then(|s| s.get_mut("listeners"))
        .and_then(|l| l.get_mut(0))
        .and_then(|l| l.get_mut("filter_chains"))
        .and_then(|c| c.get_mut(0))
        .and_then(|c| c.get_mut("filters"))
        .and_then(|f| f.get_mut(0))
        .and_then(|f| f.get_mut("typed_config"))
        .expect("hcm");
    *hcm.get_mut("http_filters").unwrap() = Value::Sequence(filters);
    *config.get_mut("static_resources").and_then(|s| s.get_mut("clusters")).unwrap() = Value::Sequence(clusters);
    config
}

/// Runs `envoy --mode validate` on `config` (written under the test's temp dir).
pub fn envoy_validate(envoy: &Path, config: &Value, name: &str, env: &[(&str, &str)]) -> (bool, String) {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("envoy-validate");
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join(format!("{name}.yaml"));
    std::fs::write(&file, serde_yaml_ng::to_string(config).unwrap()).unwrap();
    let out = Command::new(envoy)
        .args(["--mode", "validate", "--disable-hot-restart", "--log-level", "warn", "-c"])
        .arg(&file)
        .envs(env.iter().copied())
        .output()
        .expect("run envoy");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), format!("config {}:\n{text}", file.display()))
}

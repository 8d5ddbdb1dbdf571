//! Every annotation's rendering is accepted by the filter's own validator: `claim_headers`,
//! `require`, `pass_through_paths`, `api_paths`, `routes` and secrets from the environment.

mod common;

use common::*;
use serde_json::json;

/// The process environment, as the filter's VM environment would hold it.
struct Env;

impl oidc_edge::config::SecretSource for Env {
    fn env(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
    fn file(&self, path: &str) -> Result<String, String> {
        std::fs::read_to_string(path).map_err(|e| e.to_string())
    }
}

fn set_secret_env() {
    // The filter may resolve `{"env": NAME}` while parsing: give it the variables.
    std::env::set_var("SHOP_CLIENT_SECRET", "shop-secret");
    std::env::set_var("ADMIN_CLIENT_SECRET", "admin-secret");
    std::env::set_var("GRAFANA_OIDC_CLIENT_SECRET", "grafana-secret");
    std::env::set_var("OIDC_EDGE_COOKIE_SECRET", "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=");
}

fn filter_accepts(plugin_json: &serde_json::Value) {
    set_secret_env();
    if let Err(e) = oidc_edge::config::Settings::from_json_with(plugin_json.to_string().as_bytes(), &Env) {
        panic!("the filter refuses the rendered configuration: {e}\n{plugin_json:#}");
    }
}

fn istio_plugin_json(stdout: &str) -> serde_json::Value {
    let d = docs(stdout);
    serde_json::to_value(at(find_kind(&d, "WasmPlugin")[0], "spec.pluginConfig")).unwrap()
}

#[test]
fn env_secrets_render_and_pass_the_filter() {
    let r = run(&["render", "--wasm-url", WASM, "tests/ingress/app-with-service.yaml"], "");
    assert_eq!(r.code, 0, "{}", r.stderr);
    let plugin = istio_plugin_json(&r.stdout);
    assert_eq!(plugin["client_secret"], json!({"env": "GRAFANA_OIDC_CLIENT_SECRET"}));
    filter_accepts(&plugin);
    let r = run(&["render", "-o", "envoy", "tests/ingress/app-with-service.yaml"], "");
    assert_eq!(r.code, 0, "{}", r.stderr);
    filter_accepts(&envoy_plugin_json(&docs(&r.stdout)));
}

fn one_app_plus(annotation: &str, value: &str) -> String {
    let m = std::fs::read_to_string(ingress("one-app.yaml")).unwrap();
    m.replace("    oidc-edge.io/client-id: wiki\n", &format!("    oidc-edge.io/client-id: wiki\n    oidc-edge.io/{annotation}: \"{value}\"\n"))
}

fn renders_and_passes(annotation: &str, value: &str, key: &str, expected: serde_json::Value) {
    let r = run(&["render", "--wasm-url", WASM], &one_app_plus(annotation, value));
    assert_eq!(r.code, 0, "{annotation}: {}", r.stderr);
    let plugin = istio_plugin_json(&r.stdout);
    assert_eq!(plugin[key], expected);
    filter_accepts(&plugin);
}

#[test]
fn claim_headers_pass_the_filter() {
    renders_and_passes("claim-headers", "X-User=sub,X-Org=org.name", "claim_headers", json!({"X-Org": "org.name", "X-User": "sub"}));
}

#[test]
fn required_groups_pass_the_filter() {
    renders_and_passes("required-groups", "admins,devs", "require", json!([{"claim": "groups", "one_of": ["admins", "devs"]}]));
}

#[test]
fn pass_through_paths_pass_the_filter() {
    renders_and_passes("pass-through-paths", "/healthz,/public", "pass_through_paths", json!(["/healthz", "/public"]));
}

#[test]
fn api_paths_pass_the_filter() {
    renders_and_passes("api-paths", "/api", "api_paths", json!(["/api"]));
}

#[test]
fn two_ingresses_with_known_keys_pass_the_filter_as_routes() {
    let blog = std::fs::read_to_string(ingress("one-app.yaml"))
        .unwrap()
        .replace("name: wiki\n", "name: blog\n")
        .replace("wiki.example.com", "blog.example.com")
        .replace("client-id: wiki", "client-id: blog");
    let r = run(&["render", "--wasm-url", WASM, "-", "tests/ingress/one-app.yaml"], &blog);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let plugin = istio_plugin_json(&r.stdout);
    assert_eq!(plugin["routes"][1], json!({"host": "wiki.example.com", "path_prefix": "/", "client_id": "wiki"}));
    filter_accepts(&plugin);
}

#[test]
fn two_apps_render_through_the_binary() {
    for output in ["istio", "envoy"] {
        let wasm = if output == "istio" { WASM } else { "/etc/envoy/oidc_edge.wasm" };
        let r = run(&["render", "--wasm-url", wasm, "-o", output, "tests/ingress/two-apps.yaml"], "");
        assert_eq!(r.code, 0, "{output}: {}", r.stderr);
        assert_eq!(r.stderr, "", "{output}: no warnings expected");
        let d = docs(&r.stdout);
        let plugin = if output == "istio" {
            serde_json::to_value(at(find_kind(&d, "WasmPlugin")[0], "spec.pluginConfig")).unwrap()
        } else {
            envoy_plugin_json(&d)
        };
        assert_eq!(plugin["routes"].as_array().map(Vec::len), Some(3));
        filter_accepts(&plugin);
    }
}

//! `oidc-edge render` on the manifests under `tests/ingress/`: golden files and structure of
//! both outputs, the command line, and every error case.
//!
//! Tests that go through the filter's validator use only keys the filter of this build knows
//! (`one-app.yaml`); the manifests with keys the filter is still getting are rendered through
//! the library with that check off, and checked again with it in `pending.rs`.

mod common;

use common::*;
use oidc_edge_cli::{annotations, render, GatewayTarget, Options, Output};
use serde_json::json;

fn golden(name: &str, actual: &str) {
    let path = repo().join("cli/tests/golden").join(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}; run with UPDATE_GOLDEN=1 to create it", path.display()));
    assert!(
        expected == actual,
        "{} differs from the rendered output (UPDATE_GOLDEN=1 rewrites it after review):\n{actual}",
        path.display()
    );
}

fn filter_accepts(plugin_json: &serde_json::Value) {
    if let Err(e) = oidc_edge::config::Settings::from_json(plugin_json.to_string().as_bytes()) {
        panic!("the filter refuses the rendered configuration: {e}\n{plugin_json:#}");
    }
}

// ------------------------------------------------------------------ one app, both outputs --

#[test]
fn one_app_istio_golden_and_structure() {
    let r = run(&["render", "--wasm-url", WASM, "tests/ingress/one-app.yaml"], "");
    assert_eq!(r.code, 0, "{}", r.stderr);
    golden("one-app.istio.yaml", &r.stdout);
    // Inline secrets are allowed, with a warning; idp-cluster does not apply to Istio.
    assert!(r.stderr.contains("warning: docs/wiki: annotation oidc-edge.io/client-secret: the secret is written in clear text"), "{}", r.stderr);
    assert!(r.stderr.contains("warning: docs/wiki: annotation oidc-edge.io/cookie-secret:"), "{}", r.stderr);
    assert!(r.stderr.contains("warning: docs/wiki: annotation oidc-edge.io/idp-cluster: ignored with --output istio"), "{}", r.stderr);

    let d = docs(&r.stdout);
    assert_eq!(d.len(), 4);
    let wp = find_kind(&d, "WasmPlugin")[0];
    assert_eq!(str_at(wp, "apiVersion"), "extensions.istio.io/v1alpha1");
    assert_eq!(str_at(wp, "metadata.namespace"), "istio-system");
    assert_eq!(str_at(wp, "spec.selector.matchLabels.istio"), "ingressgateway");
    assert_eq!(str_at(wp, "spec.url"), WASM);
    assert_eq!(str_at(wp, "spec.phase"), "AUTHN");
    assert_eq!(str_at(wp, "spec.failStrategy"), "FAIL_CLOSE");
    assert!(wp.get("spec").unwrap().get("sha256").is_none());
    assert!(wp.get("spec").unwrap().get("vmConfig").is_none(), "no env secrets, no vmConfig");
    let plugin: serde_json::Value = serde_json::to_value(at(wp, "spec.pluginConfig")).unwrap();
    assert_eq!(
        plugin,
        json!({
            "issuer": "https://login.example.com/realms/main",
            "idp_cluster": "outbound|443||login.example.com",
            "client_id": "wiki",
            "client_secret": "test-secret-0123456789",
            "cookie_secret": "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
            "scopes": ["openid", "email", "profile"],
            "redirect_path": "/oauth2/callback",
            "clock_skew_seconds": 30,
            "forward_token": "access_token"
        })
    );
    filter_accepts(&plugin);

    let se = find_kind(&d, "ServiceEntry")[0];
    assert_eq!(str_at(se, "spec.hosts.0"), "login.example.com");
    assert_eq!(at(se, "spec.ports.0.number").as_u64(), Some(443));
    assert_eq!(str_at(se, "spec.resolution"), "DNS");
    assert_eq!(str_at(se, "spec.location"), "MESH_EXTERNAL");
    assert_eq!(str_at(se, "spec.exportTo.0"), ".");
    let dr = find_kind(&d, "DestinationRule")[0];
    assert_eq!(str_at(dr, "spec.host"), "login.example.com");
    assert_eq!(str_at(dr, "spec.trafficPolicy.tls.mode"), "SIMPLE");
    assert_eq!(str_at(dr, "spec.trafficPolicy.tls.sni"), "login.example.com");
}

#[test]
fn one_app_envoy_golden_and_structure() {
    let r = run(&["render", "--output", "envoy", "tests/ingress/one-app.yaml"], "");
    assert_eq!(r.code, 0, "{}", r.stderr);
    golden("one-app.envoy.yaml", &r.stdout);
    assert!(!r.stderr.contains("idp-cluster"), "idp-cluster applies to Envoy: {}", r.stderr);
    assert!(r.stdout.contains("BEFORE envoy.filters.http.router"), "the fragment says where it goes");
    assert!(r.stdout.contains("add these entries to static_resources.clusters"));

    let d = docs(&r.stdout);
    assert_eq!(d.len(), 2);
    let f = at(&d[0], "http_filters.0");
    assert_eq!(str_at(f, "typed_config.@type"), "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm");
    assert_eq!(str_at(f, "typed_config.config.vm_config.runtime"), "envoy.wasm.runtime.v8");
    assert_eq!(str_at(f, "typed_config.config.vm_config.code.local.filename"), "/etc/envoy/oidc_edge.wasm");
    assert_eq!(str_at(f, "typed_config.config.configuration.@type"), "type.googleapis.com/google.protobuf.StringValue");
    assert_eq!(str_at(f, "typed_config.config.failure_policy"), "FAIL_RELOAD");
    // The guard follows the filter: only requests the filter marked as checked pass.
    let g = at(&d[0], "http_filters.1");
    assert_eq!(str_at(g, "typed_config.@type"), "type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC");
    assert_eq!(str_at(g, "typed_config.rules.action"), "ALLOW");
    let principal = at(g, "typed_config.rules.policies.checked-by-oidc-edge.principals.0.filter_state");
    assert_eq!((str_at(principal, "key"), str_at(principal, "string_match.exact")), ("wasm.oidc_edge_checked", "1"));
    assert!(at(&d[0], "http_filters").as_sequence().is_some_and(|f| f.len() == 2));
    let plugin = envoy_plugin_json(&d);
    assert_eq!(plugin["idp_cluster"], "idp");
    filter_accepts(&plugin);

    let c = at(&d[1], "clusters.0");
    assert_eq!(str_at(c, "name"), "idp");
    assert_eq!(str_at(c, "type"), "LOGICAL_DNS");
    assert_eq!(str_at(c, "load_assignment.endpoints.0.lb_endpoints.0.endpoint.address.socket_address.address"), "login.example.com");
    assert_eq!(at(c, "load_assignment.endpoints.0.lb_endpoints.0.endpoint.address.socket_address.port_value").as_u64(), Some(443));
    assert_eq!(str_at(c, "transport_socket.typed_config.@type"), "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext");
    assert_eq!(str_at(c, "transport_socket.typed_config.sni"), "login.example.com");
    let vc = at(c, "transport_socket.typed_config.common_tls_context.validation_context");
    assert_eq!(str_at(vc, "trusted_ca.filename"), "/etc/ssl/certs/ca-certificates.crt");
    assert_eq!(str_at(vc, "match_typed_subject_alt_names.0.matcher.exact"), "login.example.com");
}

#[test]
fn envoy_cluster_name_is_derived_from_the_issuer_without_the_annotation() {
    let manifest = std::fs::read_to_string(ingress("one-app.yaml")).unwrap().replace("    oidc-edge.io/idp-cluster: idp\n", "");
    let r = run(&["render", "-o", "envoy", "--ca-file", "/etc/pki/ca.pem", "--wasm-url", "file:///srv/oidc.wasm"], &manifest);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let d = docs(&r.stdout);
    assert_eq!(envoy_plugin_json(&d)["idp_cluster"], "oidc-edge-idp-login.example.com");
    assert_eq!(str_at(&d[1], "clusters.0.name"), "oidc-edge-idp-login.example.com");
    assert_eq!(str_at(&d[1], "clusters.0.transport_socket.typed_config.common_tls_context.validation_context.trusted_ca.filename"), "/etc/pki/ca.pem");
    assert_eq!(str_at(&d[0], "http_filters.0.typed_config.config.vm_config.code.local.filename"), "/srv/oidc.wasm");
}

#[test]
fn istio_options() {
    let sha = "ab".repeat(32);
    let r = run(
        &["render", "--wasm-url", "https://example.com/oidc.wasm", "--sha256", &sha, "--namespace", "istio-ingress", "--gateway-ref", "public", "-"],
        &std::fs::read_to_string(ingress("one-app.yaml")).unwrap(),
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let d = docs(&r.stdout);
    let wp = find_kind(&d, "WasmPlugin")[0];
    assert_eq!(str_at(wp, "spec.url"), "https://example.com/oidc.wasm");
    assert_eq!(str_at(wp, "spec.sha256"), sha);
    assert!(wp.get("spec").unwrap().get("selector").is_none(), "targetRefs and selector exclude each other");
    assert_eq!(str_at(wp, "spec.targetRefs.0.kind"), "Gateway");
    assert_eq!(str_at(wp, "spec.targetRefs.0.group"), "gateway.networking.k8s.io");
    assert_eq!(str_at(wp, "spec.targetRefs.0.name"), "public");
    for doc in &d {
        assert_eq!(str_at(doc, "metadata.namespace"), "istio-ingress");
    }

    let r = run(&["render", "--wasm-url", WASM, "--gateway-selector", "app=edge", "--gateway-selector=tier=public"], &std::fs::read_to_string(ingress("one-app.yaml")).unwrap());
    assert_eq!(r.code, 0, "{}", r.stderr);
    let wp = docs(&r.stdout).into_iter().find(|d| d.get("kind").and_then(|k| k.as_str()) == Some("WasmPlugin")).unwrap();
    assert_eq!(str_at(&wp, "spec.selector.matchLabels.app"), "edge");
    assert_eq!(str_at(&wp, "spec.selector.matchLabels.tier"), "public");
}

#[test]
fn http_issuer_has_no_tls_and_a_warning() {
    let manifest = std::fs::read_to_string(ingress("one-app.yaml")).unwrap().replace("https://login.example.com/realms/main", "http://idp.dev.svc.cluster.local:8080/realms/dev");
    let r = run(&["render", "--wasm-url", WASM], &manifest);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stderr.contains("annotation oidc-edge.io/issuer: plain http"), "{}", r.stderr);
    let d = docs(&r.stdout);
    assert!(find_kind(&d, "DestinationRule").is_empty());
    let se = find_kind(&d, "ServiceEntry")[0];
    assert_eq!(at(se, "spec.ports.0.number").as_u64(), Some(8080));
    assert_eq!(str_at(se, "spec.ports.0.protocol"), "HTTP");
    assert_eq!(str_at(se, "metadata.name"), "oidc-edge-idp-idp.dev.svc.cluster.local-8080");
    assert_eq!(str_at(find_kind(&d, "WasmPlugin")[0], "spec.pluginConfig.idp_cluster"), "outbound|8080||idp.dev.svc.cluster.local");

    let r = run(&["render", "-o", "envoy"], &manifest);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let d = docs(&r.stdout);
    assert!(at(&d[1], "clusters.0").get("transport_socket").is_none());
}

#[test]
fn ingress_of_another_class_is_left_out() {
    let nginx = one_app_with("ingressClassName: istio", "ingressClassName: nginx").replace("name: wiki\n", "name: legacy\n").replace("client-id: wiki", "client-id: legacy");
    let wiki = std::fs::read_to_string(ingress("one-app.yaml")).unwrap();
    for output in ["istio", "envoy"] {
        // First in the input, it would have been the top level.
        let r = run(&["render", "-o", output, "--wasm-url", "file:///w.wasm", "-", "tests/ingress/one-app.yaml"], &nginx);
        assert_eq!(r.code, 0, "{output}: {}", r.stderr);
        assert!(r.stderr.contains("note: docs/legacy: ingress class `nginx`, not `istio`: left out"), "{output}: {}", r.stderr);
        assert!(!r.stdout.contains("legacy"), "{output}: nothing of it is rendered:\n{}", r.stdout);
        assert!(r.stdout.contains("wiki"), "{output}");
    }
    // Alone, nothing is left to render.
    let e = refused(&["render", "--wasm-url", "file:///w.wasm"], &nginx);
    assert!(e.contains("error: no Ingress of class `istio` in the input has oidc-edge.io/* annotations"), "{e}");
    // The legacy annotation counts too, and wins over ingressClassName as in Istio.
    let annotated = wiki.replace("  annotations:\n", "  annotations:\n    kubernetes.io/ingress.class: nginx\n");
    let e = refused(&["render", "--wasm-url", "file:///w.wasm"], &annotated);
    assert!(e.contains("note: docs/wiki: ingress class `nginx`"), "{e}");
    // --ingress-class chooses the class.
    let r = run(&["render", "--ingress-class", "nginx", "--wasm-url", "file:///w.wasm", "-", "tests/ingress/one-app.yaml"], &nginx);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("client_id: \"legacy\"") || r.stdout.contains("client_id: legacy"), "{}", r.stdout);
    assert!(r.stderr.contains("note: docs/wiki: ingress class `istio`, not `nginx`: left out"), "{}", r.stderr);
}

// --------------------------------------------------- several Ingresses, keys still pending --

#[test]
fn multi_document_file_renders_only_the_ingress() {
    let out = render(&inputs(&["app-with-service.yaml"]), &opts(Output::Istio, false)).expect("renders");
    let d = docs(&out.text);
    assert_eq!(d.len(), 4, "WasmPlugin, EnvoyFilter, ServiceEntry, DestinationRule");
    let wp = find_kind(&d, "WasmPlugin")[0];
    assert_eq!(str_at(wp, "spec.pluginConfig.issuer"), "https://auth.example.org", "the Service's annotation is not read");
    assert_eq!(str_at(wp, "spec.pluginConfig.client_secret.env"), "GRAFANA_OIDC_CLIENT_SECRET");
    assert_eq!(str_at(wp, "spec.pluginConfig.cookie_secret.env"), "OIDC_EDGE_COOKIE_SECRET");
    assert_eq!(str_at(wp, "spec.vmConfig.env.0.name"), "GRAFANA_OIDC_CLIENT_SECRET");
    assert_eq!(str_at(wp, "spec.vmConfig.env.0.valueFrom"), "HOST");
    assert_eq!(str_at(wp, "spec.vmConfig.env.1.name"), "OIDC_EDGE_COOKIE_SECRET");
    assert!(out.warnings.is_empty(), "{:?}", out.warnings);

    let out = render(&inputs(&["app-with-service.yaml"]), &opts(Output::Envoy, false)).expect("renders");
    let d = docs(&out.text);
    assert_eq!(
        serde_json::to_value(at(&d[0], "http_filters.0.typed_config.config.vm_config.environment_variables.host_env_keys")).unwrap(),
        json!(["GRAFANA_OIDC_CLIENT_SECRET", "OIDC_EDGE_COOKIE_SECRET"])
    );
    assert_eq!(envoy_plugin_json(&d)["client_secret"], json!({"env": "GRAFANA_OIDC_CLIENT_SECRET"}));
}

#[test]
fn two_apps_become_routes() {
    let out = render(&inputs(&["two-apps.yaml"]), &opts(Output::Istio, false)).expect("renders");
    let cfg = out.plugin_config.to_json();
    let admin_route = json!({
        "host": "admin.example.com",
        "path_prefix": "/",
        "issuer": "https://login.microsoftonline.com/00000000-0000-0000-0000-000000000000/v2.0",
        "idp_cluster": "outbound|443||login.microsoftonline.com",
        "client_id": "11111111-2222-3333-4444-555555555555",
        "client_secret": {"env": "ADMIN_CLIENT_SECRET"},
        "scopes": ["openid", "profile", "email"],
        "redirect_path": "/auth/callback",
        "clock_skew_seconds": 120,
        "forward_token": "access_token",
        "claim_headers": {"X-Tenant": "tid", "X-User": "preferred_username"},
        "require": [{"claim": "groups", "one_of": ["backoffice-admins", "auditors"]}],
        "pass_through_paths": [],
        "api_paths": []
    });
    assert_eq!(
        cfg,
        json!({
            "issuer": "https://login.example.com/realms/main",
            "idp_cluster": "outbound|443||login.example.com",
            "client_id": "shop",
            "client_secret": {"env": "SHOP_CLIENT_SECRET"},
            "cookie_secret": {"env": "OIDC_EDGE_COOKIE_SECRET"},
            "scopes": ["openid", "email", "groups"],
            "claim_headers": {"X-Email": "email", "X-User": "sub"},
            "pass_through_paths": ["/healthz", "/static"],
            "api_paths": ["/api"],
            "routes": [
                admin_route,
                {"host": "shop.example.com", "path_prefix": "/api"},
                {"host": "shop.example.com", "path_prefix": "/"}
            ]
        })
    );
    // Key order as documented: table order, routes last; host and path first in a route.
    let keys: Vec<&String> = out.plugin_config.settings.keys().collect();
    assert_eq!(keys, ["issuer", "idp_cluster", "client_id", "client_secret", "cookie_secret", "scopes", "claim_headers", "pass_through_paths", "api_paths"]);
    assert!(out.text.contains("  pluginConfig:\n    issuer: \"https://login.example.com/realms/main\"\n"), "{}", out.text);
    assert!(out.text.contains("    routes:\n    - host: \"admin.example.com\"\n      path_prefix: \"/\"\n      issuer: "), "{}", out.text);

    let d = docs(&out.text);
    assert_eq!(find_kind(&d, "WasmPlugin").len(), 1, "one gateway, one plugin");
    let hosts: Vec<&str> = find_kind(&d, "ServiceEntry").iter().map(|se| str_at(se, "spec.hosts.0")).collect();
    assert_eq!(hosts, ["login.example.com", "login.microsoftonline.com"]);
    assert_eq!(find_kind(&d, "DestinationRule").len(), 2);
    let env: Vec<&str> = at(find_kind(&d, "WasmPlugin")[0], "spec.vmConfig.env").as_sequence().unwrap().iter().map(|e| str_at(e, "name")).collect();
    assert_eq!(env, ["ADMIN_CLIENT_SECRET", "OIDC_EDGE_COOKIE_SECRET", "SHOP_CLIENT_SECRET"]);
}

#[test]
fn default_picks_the_top_level_provider() {
    let options = Options { default: Some("backoffice/admin".into()), ..opts(Output::Envoy, false) };
    let out = render(&inputs(&["two-apps.yaml"]), &options).expect("renders");
    let cfg = out.plugin_config.to_json();
    assert_eq!(cfg["client_id"], "11111111-2222-3333-4444-555555555555");
    assert_eq!(cfg["idp_cluster"], "oidc-edge-idp-login.microsoftonline.com");
    let routes = cfg["routes"].as_array().unwrap();
    let admin = routes.iter().find(|r| r["host"] == "admin.example.com").unwrap();
    assert_eq!(admin, &json!({"host": "admin.example.com", "path_prefix": "/"}), "the default provider's routes override nothing");
    let shop = routes.iter().find(|r| r["host"] == "shop.example.com" && r["path_prefix"] == "/").unwrap();
    // What the top level sets and shop does not is written back to its default.
    assert_eq!(shop["require"], json!([]));
    assert_eq!(shop["redirect_path"], "/oauth2/callback");
    assert_eq!(shop["clock_skew_seconds"], 60);
    assert_eq!(shop["forward_token"], "id_token");
    assert!(shop.get("cookie_secret").is_none(), "same cookie secret as the top level");

    let d = docs(&out.text);
    let clusters: Vec<&str> = at(&d[1], "clusters").as_sequence().unwrap().iter().map(|c| str_at(c, "name")).collect();
    assert_eq!(clusters, ["oidc-edge-idp-login.example.com", "oidc-edge-idp-login.microsoftonline.com"]);
    assert_eq!(
        serde_json::to_value(at(&d[0], "http_filters.0.typed_config.config.vm_config.environment_variables.host_env_keys")).unwrap(),
        json!(["ADMIN_CLIENT_SECRET", "OIDC_EDGE_COOKIE_SECRET", "SHOP_CLIENT_SECRET"])
    );
}

#[test]
fn files_and_stdin_combine() {
    // Two inputs rendered together: one configuration with routes.
    let two = render(&inputs(&["app-with-service.yaml", "two-apps.yaml"]), &opts(Output::Istio, false)).expect("renders");
    let cfg = two.plugin_config.to_json();
    assert_eq!(cfg["client_id"], "grafana", "the first Ingress fills the top level");
    let hosts: Vec<&str> = cfg["routes"].as_array().unwrap().iter().map(|r| r["host"].as_str().unwrap()).collect();
    assert_eq!(hosts, ["admin.example.com", "grafana.example.org", "shop.example.com", "shop.example.com"]);
}

// ------------------------------------------------------------------------------- errors --

#[test]
fn bad_annotations_are_all_reported_and_nothing_is_written() {
    let r = run(&["render", "--wasm-url", WASM, "tests/ingress/bad-annotations.yaml"], "");
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert_eq!(r.stdout, "", "nothing on stdout when refusing");
    let expected = [
        "error: team-a/typos: annotation oidc-edge.io/isuer: unknown annotation; did you mean oidc-edge.io/issuer?",
        "error: team-a/typos: annotation oidc-edge.io/issuer: is required; expected e.g. `https://login.example.com/realms/main`",
        "error: team-a/typos: annotation oidc-edge.io/client-secret-env: `1ST_SECRET` is not a valid environment variable name; expected letters, digits and `_`, not starting with a digit, e.g. `MY_APP_SECRET`",
        "error: team-a/typos: annotation oidc-edge.io/cookie-secret-env: `COOKIE-SECRET` is not a valid environment variable name",
        "error: team-a/typos: annotation oidc-edge.io/redirect-path: `oauth2/callback` is not an absolute path; expected a path starting with `/`",
        "error: team-a/typos: annotation oidc-edge.io/clock-skew: `one minute` is not a whole number of seconds; expected e.g. `60`",
        "error: team-a/typos: annotation oidc-edge.io/forward-token: `refresh_token` is not supported; expected `id_token`, `access_token` or `none`",
        "error: team-a/typos: annotation oidc-edge.io/pass-through-paths: `metrics` is not an absolute path",
        "error: team-a/typos: annotation oidc-edge.io/claim-headers: `X-User` is not `Header=claim.path`",
        "error: team-b/missing: annotation oidc-edge.io/issuer: is required",
        "error: team-b/missing: annotation oidc-edge.io/client-id: is required",
        "error: team-b/missing: annotation oidc-edge.io/client-secret-env: is required: the name of the proxy's environment variable that holds `client_secret`",
        "error: team-b/missing: annotation oidc-edge.io/cookie-secret-env: is required",
        // From the filter's own validator.
        "error: team-b/missing: annotation oidc-edge.io/clock-skew: must be between 0 and 600 seconds",
    ];
    for line in expected {
        assert!(r.stderr.lines().any(|l| l.starts_with(line)), "missing `{line}` in:\n{}", r.stderr);
    }
    let errors = r.stderr.lines().filter(|l| l.starts_with("error: ")).count();
    assert_eq!(errors, expected.len(), "{}", r.stderr);
    assert!(r.stderr.ends_with("oidc-edge: 14 errors; nothing was written\n"), "{}", r.stderr);
    assert!(!r.stderr.contains("nginx.ingress"), "other prefixes are not ours");
}

fn one_app_with(replace: &str, with: &str) -> String {
    let m = std::fs::read_to_string(ingress("one-app.yaml")).unwrap();
    assert!(m.contains(replace), "{replace}");
    m.replace(replace, with)
}

fn refused(args: &[&str], stdin: &str) -> String {
    let r = run(args, stdin);
    assert_eq!(r.code, 1, "should be refused; stderr:\n{}", r.stderr);
    assert_eq!(r.stdout, "");
    r.stderr
}

#[test]
fn more_annotation_errors() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "    oidc-edge.io/client-id: wiki\n",
            "    oidc-edge.io/client-id: wiki\n    oidc-edge.io/client-secret-env: WIKI_SECRET\n",
            "docs/wiki: annotation oidc-edge.io/client-secret: cannot be combined with oidc-edge.io/client-secret-env",
        ),
        ("oidc-edge.io/clock-skew: \"30\"", "oidc-edge.io/clock-skew: 30", "docs/wiki: annotation oidc-edge.io/clock-skew: is not a string; Kubernetes annotation values are strings: quote the value"),
        ("oidc-edge.io/clock-skew: \"30\"", "oidc-edge.io/clock-skew:", "docs/wiki: annotation oidc-edge.io/clock-skew: has no value"),
        ("oidc-edge.io/issuer: https://login.example.com/realms/main", "oidc-edge.io/issuer: login.example.com", "docs/wiki: annotation oidc-edge.io/issuer: `login.example.com` is not an absolute http(s) URL"),
        ("oidc-edge.io/issuer: https://login.example.com/realms/main", "oidc-edge.io/issuer: https://10.1.2.3/realms/main", "docs/wiki: annotation oidc-edge.io/issuer: the issuer's host `10.1.2.3` is an IP address"),
        ("oidc-edge.io/issuer: https://login.example.com/realms/main", "oidc-edge.io/issuer: https://login.example.com/?x=1", "docs/wiki: annotation oidc-edge.io/issuer: must not have a query string"),
        (
            "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
            "c2hvcnQ=",
            "docs/wiki: annotation oidc-edge.io/cookie-secret: must decode to exactly 32 bytes, got 5",
        ),
        ("oidc-edge.io/scopes: openid email profile", "oidc-edge.io/scopes: openid \"email\"", "docs/wiki: annotation oidc-edge.io/scopes: `\"email\"` is not a valid scope"),
        ("oidc-edge.io/idp-cluster: idp", "oidc-edge.io/idp-custer: idp", "docs/wiki: annotation oidc-edge.io/idp-custer: unknown annotation; did you mean oidc-edge.io/idp-cluster?"),
        ("oidc-edge.io/idp-cluster: idp", "oidc-edge.io/frobnicate: yes", "docs/wiki: annotation oidc-edge.io/frobnicate: unknown annotation; expected one of: issuer, idp-cluster, client-id"),
        ("path: /\n", "path: app\n", "docs/wiki: spec.rules[0].http.paths[0].path `app` is not an absolute path"),
        ("client-secret: test-secret-0123456789", "client-secret: \"  test-secret-0123456789 \"", "docs/wiki: annotation oidc-edge.io/client-secret: has leading or trailing whitespace; a secret is used exactly as written"),
        ("oidc-edge.io/scopes: openid email profile", "oidc-edge.io/scopes: \"\"", "docs/wiki: annotation oidc-edge.io/scopes: lists no scope"),
    ];
    for (from, to, needle) in cases {
        let stderr = refused(&["render", "--wasm-url", WASM], &one_app_with(from, to));
        assert!(stderr.contains(&format!("error: {needle}")), "`{needle}` not in:\n{stderr}");
    }
}

#[test]
fn input_errors() {
    let e = refused(&["render", "--wasm-url", WASM, "tests/ingress/does-not-exist.yaml"], "");
    assert!(e.contains("error: cannot read tests/ingress/does-not-exist.yaml:"), "{e}");
    let e = refused(&["render", "--wasm-url", WASM], "kind: [unclosed\n");
    assert!(e.contains("error: <stdin>: document 1: not valid YAML"), "{e}");
    let e = refused(&["render", "--wasm-url", WASM], "apiVersion: v1\nkind: Service\nmetadata: {name: s}\n");
    assert!(e.contains("error: no Ingress in the input (networking.k8s.io/v1, or v1beta1)"), "{e}");
    let plain = "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: plain, namespace: web}\nspec: {ingressClassName: istio, defaultBackend: {service: {name: a, port: {number: 80}}}}\n";
    let e = refused(&["render", "--wasm-url", WASM], plain);
    assert!(e.contains("note: web/plain: no oidc-edge.io/* annotations: its hosts and paths are rendered as routes that are never authenticated"), "{e}");
    assert!(e.contains("error: no Ingress of class `istio` in the input has oidc-edge.io/* annotations"), "{e}");
    let e = refused(&["render", "--wasm-url", WASM, "tests/ingress/one-app.yaml", "tests/ingress/one-app.yaml"], "");
    assert!(e.contains("error: docs/wiki: appears twice in the input"), "{e}");
    let e = refused(&["render", "--wasm-url", WASM, "--default", "docs/nope", "tests/ingress/one-app.yaml"], "");
    assert!(e.contains("error: --default docs/nope: no Ingress of class `istio` with oidc-edge.io/* annotations is called that; expected namespace/name, one of: docs/wiki"), "{e}");
}

#[test]
fn conflicts_between_ingresses() {
    // The same host and path claimed by two Ingresses with different settings.
    let other = one_app_with("name: wiki\n", "name: wiki2\n").replace("client-id: wiki", "client-id: other");
    let options = opts(Output::Istio, false);
    let both = vec![
        oidc_edge_cli::Input { name: "a".into(), text: std::fs::read_to_string(ingress("one-app.yaml")).unwrap() },
        oidc_edge_cli::Input { name: "b".into(), text: other },
    ];
    let err = render(&both, &options).unwrap_err();
    assert_eq!(err.errors, ["docs/wiki2: host wiki.example.com path / is also served by docs/wiki with other oidc-edge settings; one gateway can apply only one"]);

    // Two IdPs under one Envoy cluster name.
    let other = one_app_with("name: wiki\n", "name: blog\n")
        .replace("https://login.example.com/realms/main", "https://other.example.com")
        .replace("wiki.example.com", "blog.example.com");
    let both = vec![
        oidc_edge_cli::Input { name: "a".into(), text: std::fs::read_to_string(ingress("one-app.yaml")).unwrap() },
        oidc_edge_cli::Input { name: "b".into(), text: other },
    ];
    let err = render(&both, &opts(Output::Envoy, false)).unwrap_err();
    assert_eq!(err.errors, ["docs/blog: annotation oidc-edge.io/idp-cluster: `idp` already names the cluster of login.example.com:443 (docs/wiki); choose another name"]);
}

#[test]
fn command_line_errors_exit_2() {
    for (args, needle) in [
        (vec![], "missing command"),
        (vec!["draw"], "unknown command `draw`"),
        (vec!["render", "--output", "nginx"], "--output `nginx`: expected `istio` or `envoy`"),
        (vec!["render", "--sha256", "abc"], "expected 64 hexadecimal digits"),
        (vec!["render", "--namespace", "Istio_System"], "--namespace `Istio_System`"),
        (vec!["render", "--gateway-selector", "noequals"], "expected LABEL=VALUE"),
        (vec!["render", "--gateway-ref", "gw", "--gateway-selector", "a=b"], "exclude each other"),
        (vec!["render", "-o", "envoy", "--wasm-url", "oci://ghcr.io/x/y:1"], "must be a local file"),
        (vec!["render", "--wasm-url", "/local/path.wasm"], "expected an oci://, https://, http:// or file:// URL"),
        (vec!["render", "--default", "wiki"], "expected namespace/name"),
        (vec!["render", "--frobnicate"], "unknown option `--frobnicate`"),
        (vec!["render", "--namespace"], "--namespace needs a value"),
        (vec!["render"], "--wasm-url is required with --output istio: the URL of the oidc-edge module you built and published, pinned to a version, e.g. --wasm-url oci://"),
        (vec!["render", "--ingress-class", ""], "--ingress-class ``: expected the name of an ingress class"),
    ] {
        let r = run(&args, "");
        assert_eq!(r.code, 2, "{args:?}: {}", r.stderr);
        assert_eq!(r.stdout, "");
        assert!(r.stderr.contains(needle), "{args:?}: `{needle}` not in {}", r.stderr);
        assert!(r.stderr.contains("Usage: oidc-edge render"), "usage follows the error");
    }
}

#[test]
fn help_version_and_annotations() {
    let r = run(&["render", "--wasm-url", WASM, "--help"], "");
    assert_eq!(r.code, 0);
    assert!(r.stdout.starts_with("Usage: oidc-edge render"));
    let r = run(&["--version"], "");
    assert_eq!((r.code, r.stdout.as_str()), (0, concat!("oidc-edge ", env!("CARGO_PKG_VERSION"), "\n")));
    let r = run(&["annotations"], "");
    assert_eq!(r.code, 0);
    assert_eq!(r.stdout, annotations::markdown_table());
}

// ------------------------------------------------------------------------ documentation --

#[test]
fn docs_list_every_annotation() {
    let docs = std::fs::read_to_string(repo().join("docs/cli.md")).unwrap();
    assert!(
        docs.contains(&annotations::markdown_table()),
        "docs/cli.md must contain the annotation table exactly as `oidc-edge annotations` prints it:\n{}",
        annotations::markdown_table()
    );
}

#[test]
fn gateway_target_default_is_the_istio_ingress_gateway() {
    assert_eq!(Options::default().gateway, GatewayTarget::Selector(vec![("istio".into(), "ingressgateway".into())]));
    assert_eq!(Options::default().namespace, "istio-system");
}

#[test]
fn two_apps_goldens() {
    // Rendered through the library with the filter check off until the filter has the keys
    // (the same text the binary prints; see pending.rs).
    for (output, name) in [(Output::Istio, "two-apps.istio.yaml"), (Output::Envoy, "two-apps.envoy.yaml")] {
        let out = render(&inputs(&["two-apps.yaml"]), &opts(output, false)).expect("renders");
        golden(name, &out.text);
    }
}

#[test]
fn envoy_ip_issuer_is_a_static_cluster_without_sni() {
    for (issuer, ip, name) in [
        ("https://10.1.2.3:8443/realms/main", "10.1.2.3", "oidc-edge-idp-10.1.2.3-8443"),
        ("https://[fd00::1]/realms/main", "fd00::1", "oidc-edge-idp-fd00::1"),
    ] {
        let manifest = one_app_with("https://login.example.com/realms/main", issuer).replace("    oidc-edge.io/idp-cluster: idp\n", "");
        let r = run(&["render", "-o", "envoy"], &manifest);
        assert_eq!(r.code, 0, "{issuer}: {}", r.stderr);
        let d = docs(&r.stdout);
        let c = at(&d[1], "clusters.0");
        assert_eq!(str_at(c, "name"), name);
        assert_eq!(str_at(c, "type"), "STATIC");
        assert!(c.get("dns_lookup_family").is_none());
        assert_eq!(str_at(c, "load_assignment.endpoints.0.lb_endpoints.0.endpoint.address.socket_address.address"), ip);
        let tls = at(c, "transport_socket.typed_config");
        assert!(tls.get("sni").is_none(), "{issuer}: no SNI for an IP address");
        let san = at(tls, "common_tls_context.validation_context.match_typed_subject_alt_names.0");
        assert_eq!((str_at(san, "san_type"), str_at(san, "matcher.exact")), ("IP_ADDRESS", ip));
        // Istio needs a DNS name.
        let e = refused(&["render", "--wasm-url", WASM], &manifest);
        assert!(e.contains("is an IP address"), "{e}");
    }
}

/// Every scalar after `key:` or `- ` outside `|` blocks: what a YAML reader types itself.
fn plain_scalars(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut block_indent: Option<usize> = None;
    for line in text.lines() {
        let indent = line.len() - line.trim_start().len();
        if let Some(b) = block_indent {
            if line.trim().is_empty() || indent >= b {
                continue;
            }
            block_indent = None;
        }
        let mut rest = line.trim_start();
        if rest.starts_with('#') || rest == "---" || rest.is_empty() {
            continue;
        }
        while let Some(r) = rest.strip_prefix("- ") {
            rest = r;
        }
        let value = if let Some(quoted) = rest.strip_prefix('"') {
            // A quoted key: what follows its closing quote.
            let close = quoted.find("\":").map(|i| i + 1).unwrap_or(quoted.len());
            quoted[close..].trim_start_matches(':').trim()
        } else {
            match rest.split_once(": ") {
                Some((_, v)) => v.trim(),
                None if rest.ends_with(':') => "",
                None => rest,
            }
        };
        if value == "|" || value == "|-" {
            block_indent = Some(indent + 1);
            continue;
        }
        if !value.is_empty() && !value.starts_with('"') {
            out.push(value.to_string());
        }
    }
    out
}

#[test]
fn yaml_1_1_words_stay_strings() {
    // kubectl reads YAML 1.1: unquoted, `on` is true, `1_000` a number, `2001-01-01` a date,
    // `1:20` sexagesimal 80, `<<` a merge key.
    let words = "yes,no,on,off,y,n,Y,N,true,False,~,null,012,0o12,1e3,1_000,2001-01-01,.inf,-.5,0b101,1:20,<<,=,!!str";
    let manifest = one_app_with("    oidc-edge.io/client-id: wiki\n", &format!("    oidc-edge.io/client-id: \"on\"\n    oidc-edge.io/required-groups: \"{words}\"\n    oidc-edge.io/claim-headers: \"X-A=on,Y=1_000\"\n"))
        .replace("test-secret-0123456789", "\"s3cr\\\"et\\u2028yz\\u202e\"");
    for output in ["istio", "envoy"] {
        let r = run(&["render", "-o", output, "--wasm-url", "file:///w.wasm"], &manifest);
        assert_eq!(r.code, 0, "{output}: {}", r.stderr);
        let plain = plain_scalars(&r.stdout);
        assert!(plain.iter().all(|v| v.parse::<u64>().is_ok() || v == "true"), "{output}: unquoted scalars {plain:?} in\n{}", r.stdout);
        // Keys from the input are quoted when YAML 1.1 would read them otherwise.
        if output == "istio" {
            assert!(r.stdout.contains("    client_id: \"on\"\n"), "{}", r.stdout);
            for w in ["yes", "1_000", "2001-01-01", "1:20", "<<", "~"] {
                assert!(r.stdout.contains(&format!("      - \"{w}\"\n")), "{w}: {}", r.stdout);
            }
            assert!(r.stdout.contains("      \"Y\": \"1_000\"\n"), "{}", r.stdout);
            // Line breaks of YAML 1.1 and bidi controls are escaped.
            assert!(r.stdout.contains("    client_secret: \"s3cr\\\"et\\u2028yz\\u202E\"\n"), "{}", r.stdout);
            let plugin = serde_json::to_value(at(find_kind(&docs(&r.stdout), "WasmPlugin")[0], "spec.pluginConfig")).unwrap();
            assert_eq!(plugin["client_id"], "on");
            assert_eq!(plugin["client_secret"], "s3cr\"et\u{2028}yz\u{202e}");
            assert_eq!(plugin["require"][0]["one_of"].as_array().map(Vec::len), Some(24));
        } else {
            assert!(!r.stdout.contains('\u{2028}') && !r.stdout.contains('\u{202e}'), "{}", r.stdout);
            assert_eq!(envoy_plugin_json(&docs(&r.stdout))["client_secret"], "s3cr\"et\u{2028}yz\u{202e}");
        }
    }
}

#[test]
fn options_of_the_other_output_are_warned_about() {
    let one_app = std::fs::read_to_string(ingress("one-app.yaml")).unwrap();
    let sha = "ab".repeat(32);
    let r = run(&["render", "-o", "envoy", "--sha256", &sha, "-n", "gw", "--gateway-selector", "a=b", "--ca-file", "/ca.pem"], &one_app);
    assert_eq!(r.code, 0, "{}", r.stderr);
    for flag in ["--sha256", "--namespace", "--gateway-selector"] {
        assert!(r.stderr.contains(&format!("warning: {flag} applies to --output istio only; ignored with --output envoy")), "{flag}: {}", r.stderr);
    }
    assert!(!r.stderr.contains("--ca-file"), "{}", r.stderr);
    let r = run(&["render", "--wasm-url", WASM, "--ca-file", "/ca.pem", "--gateway-ref", "gw"], &one_app);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stderr.contains("warning: --ca-file applies to --output envoy only; ignored with --output istio"), "{}", r.stderr);
    assert!(!r.stderr.contains("--gateway-ref applies"), "{}", r.stderr);
}

#[test]
fn an_unpinned_module_url_is_warned_about() {
    let one_app = std::fs::read_to_string(ingress("one-app.yaml")).unwrap();
    for url in ["oci://ghcr.io/oidc-edge/oidc-edge:latest", "oci://registry:5000/oidc-edge"] {
        let r = run(&["render", "--wasm-url", url], &one_app);
        assert_eq!(r.code, 0, "{}", r.stderr);
        assert!(r.stderr.contains(&format!("warning: --wasm-url `{url}` is not pinned")), "{url}: {}", r.stderr);
    }
    for url in [WASM, "oci://registry:5000/oidc-edge@sha256:0123", "https://example.com/oidc.wasm"] {
        let r = run(&["render", "--wasm-url", url], &one_app);
        assert!(!r.stderr.contains("not pinned"), "{url}: {}", r.stderr);
    }
}

#[test]
fn istio_output_has_the_guard_on_the_plugin_s_pods() {
    let one_app = std::fs::read_to_string(ingress("one-app.yaml")).unwrap();
    let envoy = run(&["render", "-o", "envoy"], &one_app);
    let envoy_guard = at(&docs(&envoy.stdout)[0], "http_filters.1").clone();
    for (extra, label, value) in [
        (vec![], "istio", "ingressgateway"),
        (vec!["--gateway-selector", "istio=ingress", "--namespace", "istio-ingress"], "istio", "ingress"),
        (vec!["--gateway-ref", "public"], "gateway.networking.k8s.io/gateway-name", "public"),
    ] {
        let mut args = vec!["render", "--wasm-url", WASM];
        args.extend(extra.iter().copied());
        let r = run(&args, &one_app);
        assert_eq!(r.code, 0, "{}", r.stderr);
        let d = docs(&r.stdout);
        let wp = find_kind(&d, "WasmPlugin")[0];
        let filters = find_kind(&d, "EnvoyFilter");
        assert_eq!(filters.len(), 1, "{extra:?}");
        let f = filters[0];
        assert_eq!(str_at(f, "apiVersion"), "networking.istio.io/v1alpha3");
        assert_eq!(str_at(f, "metadata.name"), "oidc-edge-guard");
        assert_eq!(str_at(f, "metadata.namespace"), str_at(wp, "metadata.namespace"), "{extra:?}");
        let labels = at(f, "spec.workloadSelector.labels").as_mapping().unwrap();
        assert_eq!(labels.len(), 1, "{extra:?}");
        assert_eq!(labels.get(label).and_then(|v| v.as_str()), Some(value), "{extra:?}");
        if extra.first() != Some(&"--gateway-ref") {
            assert_eq!(at(f, "spec.workloadSelector.labels"), at(wp, "spec.selector.matchLabels"), "the same pods as the plugin");
        }
        let p = at(f, "spec.configPatches.0");
        assert_eq!(str_at(p, "applyTo"), "HTTP_FILTER");
        assert_eq!(str_at(p, "match.context"), "GATEWAY");
        assert_eq!(str_at(p, "match.listener.filterChain.filter.name"), "envoy.filters.network.http_connection_manager");
        assert_eq!(str_at(p, "match.listener.filterChain.filter.subFilter.name"), "envoy.filters.http.router");
        assert_eq!(str_at(p, "patch.operation"), "INSERT_BEFORE");
        assert_eq!(at(p, "patch.value"), &envoy_guard, "the RBAC filter the Envoy output (and README) uses");
    }
}

#[test]
fn readme_shows_the_guard_the_istio_output_writes() {
    // README's EnvoyFilter is what the output holds (flow style there, block style here).
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let start = readme.find("kind: EnvoyFilter").expect("README has the EnvoyFilter");
    let block = &readme[readme[..start].rfind("```yaml").unwrap() + 7..];
    let block = &block[..block.find("```").unwrap()];
    let theirs: serde_yaml_ng::Value = serde_yaml_ng::from_str(block).unwrap();
    let r = run(&["render", "--wasm-url", WASM], &std::fs::read_to_string(ingress("one-app.yaml")).unwrap());
    let d = docs(&r.stdout);
    let ours = find_kind(&d, "EnvoyFilter")[0];
    assert_eq!(at(ours, "spec"), at(&theirs, "spec"));
}

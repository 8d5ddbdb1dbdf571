//! Several Ingresses rendered into one configuration, checked the way it matters: which
//! settings the filter built from the rendered configuration applies to a host and path.

use oidc_edge::config::{PlaceholderSecrets, Settings};
use oidc_edge_cli::{render, Input, Options, Rendered};
use serde_json::{json, Value};

/// An Ingress of class istio with oidc-edge settings (`client` names the client ID), plus
/// `extra` annotation lines, serving `paths` (`(host or "", path, pathType)`).
fn protected(ns_name: &str, client: &str, extra: &str, paths: &[(&str, &str, &str)]) -> String {
    let annotations = format!(
        "    oidc-edge.io/issuer: https://login.example.com\n    oidc-edge.io/client-id: {client}\n    oidc-edge.io/client-secret-env: SECRET_{}\n    oidc-edge.io/cookie-secret-env: COOKIE\n{extra}",
        client.to_ascii_uppercase()
    );
    manifest(ns_name, &annotations, paths)
}

fn manifest(ns_name: &str, annotations: &str, paths: &[(&str, &str, &str)]) -> String {
    let (ns, name) = ns_name.split_once('/').unwrap();
    let mut rules = String::new();
    for (host, path, path_type) in paths {
        if *host == "*default*" {
            continue;
        }
        let host = if host.is_empty() { String::new() } else { format!("host: \"{host}\", ") };
        rules.push_str(&format!(
            "  - {{{host}http: {{paths: [{{path: \"{path}\", pathType: {path_type}, backend: {{service: {{name: s, port: {{number: 80}}}}}}}}]}}}}\n"
        ));
    }
    let default_backend = if paths.iter().any(|(h, _, _)| *h == "*default*") { "  defaultBackend: {service: {name: s, port: {number: 80}}}\n" } else { "" };
    let annotations = if annotations.is_empty() { String::new() } else { format!("  annotations:\n{annotations}") };
    let rules = if rules.is_empty() { String::new() } else { format!("  rules:\n{rules}") };
    format!("---\napiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: {name}\n  namespace: {ns}\n{annotations}spec:\n  ingressClassName: istio\n{default_backend}{rules}")
}

fn options() -> Options {
    Options { wasm_url: Some("oci://registry.example.com/oidc-edge:1.0.0".into()), ..Options::default() }
}

fn render_all(docs: &[String], opts: &Options) -> Result<Rendered, oidc_edge_cli::Failure> {
    render(&[Input { name: "t.yaml".into(), text: docs.concat() }], opts)
}

/// The filter's settings built from the rendered configuration.
fn filter_settings(r: &Rendered) -> Settings {
    let json = r.plugin_config.to_json();
    Settings::from_json_with(json.to_string().as_bytes(), &PlaceholderSecrets).unwrap_or_else(|e| panic!("the filter refuses it: {e}\n{json:#}"))
}

/// The client ID and pass-through paths the filter applies to `host` and `path`.
fn applied(s: &Settings, host: &str, path: &str) -> (String, Vec<String>) {
    let p = &s.profiles[s.profile_for(host, path)];
    (p.client_id.clone(), p.pass_through_paths.clone())
}

fn route_keys(r: &Rendered) -> Vec<(String, String)> {
    r.plugin_config
        .routes
        .iter()
        .map(|route| {
            let host = route.get("host").and_then(Value::as_str).unwrap_or("*").to_string();
            let path = route.iter().find(|(k, _)| k.starts_with("path_")).map(|(k, v)| format!("{k}={}", v.as_str().unwrap())).unwrap();
            (host, path)
        })
        .collect()
}

#[test]
fn exact_hosts_come_before_wildcards() {
    // `*.example.com` sorts before `admin.example.com` as a string; the filter takes the
    // first route that matches, so admin's rule would never apply.
    let admin = protected("ops/admin", "admin", "    oidc-edge.io/required-groups: admins\n", &[("admin.example.com", "/", "Prefix")]);
    let apps = protected("apps/apps", "apps", "", &[("*.example.com", "/", "Prefix"), ("a.b.example.com", "/", "Prefix")]);
    let wider = protected("apps/wide", "wide", "", &[("*.b.example.com", "/", "Prefix")]);
    let r = render_all(&[apps, admin, wider], &options()).expect("renders");
    let hosts: Vec<String> = route_keys(&r).into_iter().map(|(h, _)| h).collect();
    assert_eq!(hosts, ["a.b.example.com", "admin.example.com", "*.b.example.com", "*.example.com"]);
    let s = filter_settings(&r);
    assert_eq!(applied(&s, "admin.example.com", "/").0, "admin");
    assert_eq!(applied(&s, "x.b.example.com", "/").0, "wide");
    assert_eq!(applied(&s, "x.example.com", "/").0, "apps");
}

#[test]
fn longer_paths_come_first_within_a_host() {
    let a = protected("x/a", "a", "", &[("h.example.com", "/", "Prefix"), ("h.example.com", "/api", "Prefix")]);
    let b = protected("x/b", "b", "", &[("h.example.com", "/api/admin", "Prefix"), ("", "/static", "Prefix")]);
    let r = render_all(&[a, b], &options()).expect("renders");
    let paths: Vec<String> = route_keys(&r).into_iter().map(|(h, p)| format!("{h} {p}")).collect();
    assert_eq!(
        paths,
        ["h.example.com path_prefix=/api/admin", "h.example.com path_prefix=/api", "h.example.com path_prefix=/", "* path_prefix=/static"]
    );
}

#[test]
fn a_prefix_with_a_trailing_slash_also_covers_the_bare_path() {
    // Kubernetes: Prefix `/c/` matches `/c` too; rendered as `/c/` the filter would leave
    // `/c` to the top level's looser rules.
    let a = protected("x/a", "a", "", &[("h.example.com", "/", "Prefix")]);
    let b = protected("x/b", "b", "    oidc-edge.io/required-groups: b-admins\n", &[("h.example.com", "/c/", "Prefix")]);
    let r = render_all(&[a, b], &options()).expect("renders");
    assert!(route_keys(&r).contains(&("h.example.com".into(), "path_prefix=/c".into())), "{:?}", route_keys(&r));
    let s = filter_settings(&r);
    for path in ["/c", "/c/", "/c/x"] {
        assert_eq!(applied(&s, "h.example.com", path).0, "b", "{path}");
    }
}

#[test]
fn tls_hosts_make_no_routes() {
    // One certificate for a and b: b's host belongs to the other Ingress, not to a.
    let a = protected("n/a", "a", "", &[("a.example.com", "/", "Prefix")])
        .replace("spec:\n", "spec:\n  tls:\n  - hosts: [a.example.com, b.example.com]\n    secretName: cert\n");
    let b = protected("n/b", "b", "", &[("b.example.com", "/", "Prefix")]);
    let r = render_all(&[a, b], &options()).expect("no conflict over b.example.com");
    assert_eq!(applied(&filter_settings(&r), "b.example.com", "/").0, "b");
}

#[test]
fn an_ingress_without_annotations_stays_public() {
    let shop = protected("shop/shop", "shop", "", &[("shop.example.com", "/", "Prefix")]);
    let blog = manifest("blog/blog", "", &[("blog.example.com", "/", "Prefix"), ("shop.example.com", "/blog", "Prefix")]);
    let r = render_all(&[shop, blog], &options()).expect("renders");
    assert!(
        r.warnings.iter().any(|w| w.starts_with("note: blog/blog: no oidc-edge.io/* annotations: its hosts and paths are rendered as routes that are never authenticated")),
        "{:?}",
        r.warnings
    );
    assert!(r.plugin_config.routes.contains(&serde_json::from_value(json!({"host": "blog.example.com", "path_prefix": "/", "pass_through_paths": ["/*"]})).unwrap()));
    let s = filter_settings(&r);
    assert_eq!(applied(&s, "blog.example.com", "/x"), ("shop".to_string(), vec!["/*".to_string()]));
    assert_eq!(applied(&s, "shop.example.com", "/blog/x").1, ["/*"]);
    assert_eq!(applied(&s, "shop.example.com", "/cart").1, Vec::<String>::new());
    assert!(r.text.contains("blog/blog"), "the output names where it comes from");
}

#[test]
fn a_public_default_backend_makes_the_top_level_public() {
    let plain = manifest("web/plain", "", &[("*default*", "", "")]);
    let wiki = protected("docs/wiki", "wiki", "    oidc-edge.io/pass-through-paths: /healthz\n", &[("wiki.example.com", "/", "Prefix")]);
    let r = render_all(&[plain, wiki], &options()).expect("renders");
    let s = filter_settings(&r);
    assert_eq!(applied(&s, "other.example.com", "/").1, ["/*"]);
    assert_eq!(applied(&s, "wiki.example.com", "/").1, ["/healthz"]);
}

#[test]
fn the_default_backend_ingress_is_the_top_level() {
    let shop = protected("shop/shop", "shop", "", &[("shop.example.com", "/", "Prefix")]);
    let ops = protected("ops/catchall", "ops", "    oidc-edge.io/required-groups: ops\n", &[("*default*", "", "")]);
    // Chosen without --default, said on stderr.
    let r = render_all(&[shop.clone(), ops.clone()], &options()).expect("renders");
    assert!(r.warnings.iter().any(|w| w.starts_with("note: ops/catchall: its default backend")), "{:?}", r.warnings);
    assert_eq!(r.plugin_config.settings["client_id"], "ops");
    assert_eq!(route_keys(&r), [("shop.example.com".to_string(), "path_prefix=/".to_string())], "no host-less `/` route");
    let s = filter_settings(&r);
    assert_eq!(applied(&s, "shop.example.com", "/").0, "shop");
    assert_eq!(applied(&s, "anything.example.com", "/").0, "ops");
    // Named by --default.
    let named = render_all(&[shop.clone(), ops.clone()], &Options { default: Some("ops/catchall".into()), ..options() }).expect("renders");
    assert_eq!(named.plugin_config, r.plugin_config);
    // Another Ingress at the top level: the error names the catch-all and the fix.
    let e = render_all(&[shop, ops], &Options { default: Some("shop/shop".into()), ..options() }).unwrap_err();
    assert_eq!(
        e.errors,
        ["ops/catchall: its default backend (or host-less path /) takes every request no other rule takes, which only the top level can do, and the top level is shop/shop; render with --default ops/catchall"]
    );
}

#[test]
fn a_path_the_filter_refuses_is_told_against_its_ingress() {
    let a = protected("x/a", "a", "", &[("h.example.com", "/", "Prefix")]);
    let b = protected("x/b", "b", "", &[("h.example.com", "/my%20app", "Prefix")]);
    let e = render_all(&[a, b], &options()).unwrap_err();
    assert_eq!(e.errors.len(), 1, "{:?}", e.errors);
    assert!(e.errors[0].starts_with("x/b: host h.example.com path /my%20app (path_prefix): the oidc-edge filter refuses it: "), "{:?}", e.errors);
}

#[test]
fn a_misspelt_prefix_is_an_error() {
    let shop = protected("n/shop", "shop", "", &[("shop.example.com", "/", "Prefix")]);
    for (key, meant) in [
        ("oidc-edge-io/required-groups", "required-groups"),
        ("oidc-edge.io.required-groups", "required-groups"),
        ("oidcedge.io/required-groups", "required-groups"),
        ("oidc_edge.io/required-groups", "required-groups"),
        ("OIDC-Edge.io/required-groups", "required-groups"),
    ] {
        let admin = protected("n/admin", "admin", &format!("    {key}: admins\n"), &[("admin.example.com", "/", "Prefix")]);
        let e = render_all(&[shop.clone(), admin], &options()).unwrap_err();
        assert_eq!(
            e.errors,
            [format!("n/admin: annotation {key}: not an oidc-edge annotation as spelt (so it would be ignored); did you mean oidc-edge.io/{meant}?")]
        );
    }
    // With every annotation misspelt the Ingress is refused, not left out as public.
    let admin = manifest("n/admin", "    oidc-edge-io/issuer: https://login.example.com\n    oidc-edge-io/client-id: admin\n", &[("admin.example.com", "/", "Prefix")]);
    let e = render_all(&[shop, admin], &options()).unwrap_err();
    assert!(e.errors.iter().any(|m| m == "n/admin: annotation oidc-edge-io/issuer: not an oidc-edge annotation as spelt (so it would be ignored); did you mean oidc-edge.io/issuer?"), "{:?}", e.errors);
    assert!(e.errors.iter().all(|m| !m.contains("oidc-edge.io/issuer: is required")), "{:?}", e.errors);
}

#[test]
fn v1beta1_ingresses_are_rendered() {
    let shop = protected("n/shop", "shop", "", &[("shop.example.com", "/", "Prefix")]);
    let old = protected("n/old", "old", "", &[])
        .replace("networking.k8s.io/v1\n", "extensions/v1beta1\n")
        .replace("spec:\n  ingressClassName: istio\n", "spec:\n  ingressClassName: istio\n  rules:\n  - host: old.example.com\n    http: {paths: [{path: /app/*, backend: {serviceName: old, servicePort: 80}}]}\n");
    let r = render_all(&[shop, old], &options()).expect("renders");
    assert!(route_keys(&r).contains(&("old.example.com".into(), "path_prefix=/app".into())), "{:?}", route_keys(&r));
    assert_eq!(applied(&filter_settings(&r), "old.example.com", "/app/x").0, "old");
}

#[test]
fn one_ingress_alone_has_no_routes() {
    let r = render_all(&[protected("n/shop", "shop", "", &[("shop.example.com", "/", "Prefix")])], &options()).expect("renders");
    assert!(r.plugin_config.routes.is_empty());
}

#[test]
fn an_exact_path_covers_that_path_only() {
    // Written as a prefix, Exact `/docs` (no group needed) let `/docs/secret` through
    // without the admins group that `/` requires.
    let main = protected("x/main", "main", "    oidc-edge.io/required-groups: admins\n", &[("x.example.com", "/", "Prefix")]);
    let docs = protected("x/docs", "docs", "", &[("x.example.com", "/docs", "Exact")]);
    let r = render_all(&[main, docs], &options()).expect("renders");
    assert!(route_keys(&r).contains(&("x.example.com".into(), "path_exact=/docs".into())), "{:?}", route_keys(&r));
    let s = filter_settings(&r);
    assert_eq!(applied(&s, "x.example.com", "/docs").0, "docs");
    for path in ["/docs/secret", "/docs/", "/docsx"] {
        assert_eq!(applied(&s, "x.example.com", path).0, "main", "{path}");
    }
}

#[test]
fn exact_and_prefix_on_the_same_path_do_not_conflict() {
    let admin = protected("ops/admin", "admin", "    oidc-edge.io/required-groups: admins\n", &[("h.example.com", "/", "Prefix")]);
    let status = protected("ops/status", "status", "", &[("h.example.com", "/", "Exact")]);
    let r = render_all(&[admin, status], &options()).expect("renders");
    assert_eq!(
        route_keys(&r),
        [("h.example.com".to_string(), "path_exact=/".to_string()), ("h.example.com".to_string(), "path_prefix=/".to_string())]
    );
    let s = filter_settings(&r);
    assert_eq!(applied(&s, "h.example.com", "/").0, "status");
    assert_eq!(applied(&s, "h.example.com", "/x").0, "admin");
}

#[test]
fn implementation_specific_paths_follow_istio() {
    // Istio: exact, unless the path ends in `.*` or `/*` (a prefix of what comes before).
    let a = protected("x/a", "a", "", &[("h.example.com", "/", "Prefix")]);
    let b = protected(
        "x/b",
        "b",
        "    oidc-edge.io/required-groups: b-admins\n",
        &[("h.example.com", "/b.*", "ImplementationSpecific"), ("h.example.com", "/x/*", "ImplementationSpecific"), ("h.example.com", "/exact", "ImplementationSpecific")],
    );
    let r = render_all(&[a, b], &options()).expect("renders");
    let keys = route_keys(&r);
    for want in ["path_prefix=/b", "path_prefix=/x", "path_exact=/exact"] {
        assert!(keys.contains(&("h.example.com".to_string(), want.to_string())), "{want}: {keys:?}");
    }
    let s = filter_settings(&r);
    for path in ["/b", "/b/c", "/x", "/x/y", "/exact"] {
        assert_eq!(applied(&s, "h.example.com", path).0, "b", "{path}");
    }
    assert_eq!(applied(&s, "h.example.com", "/exact/y").0, "a");
}

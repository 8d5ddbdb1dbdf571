//! `--output istio`: a WasmPlugin on the ingress gateway, and a ServiceEntry plus a
//! DestinationRule per IdP so that the gateway has the cluster the filter calls.

use crate::model::{Idp, PluginConfig};
use crate::yaml::{document, map, num, s, seq, to_value};
use crate::{GatewayTarget, Options};

/// Why there is no default module URL: no image is published under a fixed name, and an
/// unpinned tag would let every gateway restart load whatever the tag points to then.
pub const WASM_URL_REQUIRED: &str = "--wasm-url is required with --output istio: the URL of the oidc-edge module you built and published, pinned to a version, e.g. --wasm-url oci://registry.example.com/oidc-edge:0.1.0 (add --sha256 of the module)";

const MANAGED_BY: &str = "oidc-edge-render";

pub fn render(cfg: &PluginConfig, idps: &[Idp], opts: &Options, sources: &[String]) -> Result<String, String> {
    let ns = opts.namespace.as_str();
    let env = cfg.env_names();
    let mut spec = serde_yaml_ng::Mapping::new();
    let mut put = |k: &str, v: serde_yaml_ng::Value| {
        spec.insert(s(k), v);
    };
    // The guard must run on exactly the proxies the plugin runs on: on any other it would
    // refuse every request. So it selects the same pods the plugin does.
    let guard_selector: Vec<(String, String)> = match &opts.gateway {
        GatewayTarget::Selector(labels) => labels.clone(),
        GatewayTarget::GatewayRef(name) => vec![(GATEWAY_NAME_LABEL.to_string(), name.clone())],
    };
    let target_comment = match &opts.gateway {
        GatewayTarget::Selector(labels) => {
            let mut m = serde_yaml_ng::Mapping::new();
            for (k, v) in labels {
                m.insert(s(k.as_str()), s(v.as_str()));
            }
            put("selector", map([("matchLabels", serde_yaml_ng::Value::Mapping(m))]));
            let labels: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
            format!(
                "It applies to the gateway pods labelled {} in {ns} (Istio's Ingress\n\
                 controller uses the gateway labelled istio=ingressgateway unless\n\
                 meshConfig.ingressSelector says otherwise; --gateway-selector changes it).",
                labels.join(",")
            )
        }
        GatewayTarget::GatewayRef(name) => {
            put(
                "targetRefs",
                seq([map([("kind", s("Gateway")), ("group", s("gateway.networking.k8s.io")), ("name", s(name.as_str()))])]),
            );
            format!("It applies to the Gateway API Gateway `{name}` in {ns} (targetRefs, Istio 1.22 or later).")
        }
    };
    let Some(url) = &opts.wasm_url else {
        return Err(WASM_URL_REQUIRED.to_string());
    };
    put("url", s(url.as_str()));
    if let Some(sha) = &opts.sha256 {
        put("sha256", s(sha.as_str()));
    }
    put("phase", s("AUTHN"));
    put("failStrategy", s("FAIL_CLOSE"));
    if !env.is_empty() {
        put(
            "vmConfig",
            map([("env", seq(env.iter().map(|n| map([("name", s(n.as_str())), ("valueFrom", s("HOST"))]))))]),
        );
    }
    put("pluginConfig", to_value(cfg)?);

    let plugin = map([
        ("apiVersion", s("extensions.istio.io/v1alpha1")),
        ("kind", s("WasmPlugin")),
        ("metadata", metadata("oidc-edge", ns)),
        ("spec", serde_yaml_ng::Value::Mapping(spec)),
    ]);
    let mut comment = format!(
        "Rendered by `oidc-edge render --output istio` from {}.\n\
         Apply in the ingress gateway's namespace ({ns}): kubectl apply -f <this file>\n\
         \n\
         WasmPlugin: the oidc-edge filter (phase AUTHN, failStrategy FAIL_CLOSE for a\n\
         crashed module; a proxy worker that cannot create the module at all runs\n\
         without it, which the EnvoyFilter oidc-edge-guard below turns into 403s).\n{target_comment}\n",
        sources.join(", ")
    );
    if !env.is_empty() {
        comment.push_str(&format!(
            "Secrets come from the gateway's environment (vmConfig.env, valueFrom: HOST):\n\
             set {} on its istio-proxy container, e.g. from a Secret:\n  \
             kubectl -n {ns} set env deployment/istio-ingressgateway -c istio-proxy --from=secret/oidc-edge\n",
            env.join(", ")
        ));
    }
    let mut docs = vec![document(&comment, &plugin)?];
    docs.push(document(
        &format!(
            "The guard (README, Failure behaviour): an RBAC filter before the router that lets\n\
             through only requests oidc-edge has checked. A worker that cannot create the\n\
             wasm VM runs without the plugin whatever failStrategy says; with the guard it\n\
             answers 403 instead of passing requests on unchecked. It selects the same pods\n\
             as the WasmPlugin ({}):\n\
             on any proxy without the plugin it would refuse everything.",
            guard_selector.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(",")
        ),
        &guard_filter(&guard_selector, ns),
    )?);

    for idp in idps {
        docs.push(document(
            &format!(
                "The IdP {host} as a mesh-external service: the gateway then has the cluster\n\
                 {cluster} that the filter calls (discovery, JWKS, token).\n\
                 exportTo \".\" keeps it to this namespace.",
                host = idp.host,
                cluster = idp.cluster
            ),
            &service_entry(idp, ns),
        )?);
        if idp.tls {
            docs.push(document(
                &format!(
                    "TLS to the IdP: the filter sends plain HTTP into the cluster and the gateway\n\
                     originates TLS (SNI and certificate name {host}). exportTo \".\" so that\n\
                     sidecars elsewhere, whose applications speak TLS to {host} themselves,\n\
                     do not encrypt twice.",
                    host = idp.host
                ),
                &destination_rule(idp, ns),
            )?);
        }
    }
    Ok(crate::yaml::stream(&docs))
}

/// The label Istio puts on the pods of a Gateway API gateway it deploys.
const GATEWAY_NAME_LABEL: &str = "gateway.networking.k8s.io/gateway-name";

/// README's EnvoyFilter for the guard: the Envoy output's RBAC filter, inserted before the
/// router of every gateway listener of the selected pods.
fn guard_filter(selector: &[(String, String)], ns: &str) -> serde_yaml_ng::Value {
    let mut labels = serde_yaml_ng::Mapping::new();
    for (k, v) in selector {
        labels.insert(s(k.as_str()), s(v.as_str()));
    }
    let patch = map([
        ("applyTo", s("HTTP_FILTER")),
        (
            "match",
            map([
                ("context", s("GATEWAY")),
                (
                    "listener",
                    map([(
                        "filterChain",
                        map([(
                            "filter",
                            map([("name", s("envoy.filters.network.http_connection_manager")), ("subFilter", map([("name", s("envoy.filters.http.router"))]))]),
                        )]),
                    )]),
                ),
            ]),
        ),
        ("patch", map([("operation", s("INSERT_BEFORE")), ("value", crate::envoy::guard())])),
    ]);
    map([
        ("apiVersion", s("networking.istio.io/v1alpha3")),
        ("kind", s("EnvoyFilter")),
        ("metadata", metadata("oidc-edge-guard", ns)),
        ("spec", map([("workloadSelector", map([("labels", serde_yaml_ng::Value::Mapping(labels))])), ("configPatches", seq([patch]))])),
    ])
}

fn metadata(name: &str, ns: &str) -> serde_yaml_ng::Value {
    map([
        ("name", s(name)),
        ("namespace", s(ns)),
        ("labels", map([("app.kubernetes.io/name", s("oidc-edge")), ("app.kubernetes.io/managed-by", s(MANAGED_BY))])),
    ])
}

/// A DNS-1123 name for the IdP's resources.
pub fn resource_name(idp: &Idp) -> String {
    let mut name = format!("oidc-edge-idp-{}", idp.host.replace(['[', ']', ':'], "-"));
    if idp.port != if idp.tls { 443 } else { 80 } {
        name.push_str(&format!("-{}", idp.port));
    }
    name.truncate(253);
    name.trim_end_matches(['-', '.']).to_string()
}

fn service_entry(idp: &Idp, ns: &str) -> serde_yaml_ng::Value {
    let (port_name, protocol) = if idp.tls { ("https", "HTTPS") } else { ("http", "HTTP") };
    map([
        ("apiVersion", s("networking.istio.io/v1")),
        ("kind", s("ServiceEntry")),
        ("metadata", metadata(&resource_name(idp), ns)),
        (
            "spec",
            map([
                ("hosts", seq([s(idp.host.as_str())])),
                ("exportTo", seq([s(".")])),
                ("location", s("MESH_EXTERNAL")),
                ("ports", seq([map([("number", num(u64::from(idp.port))), ("name", s(port_name)), ("protocol", s(protocol))])])),
                ("resolution", s("DNS")),
            ]),
        ),
    ])
}

fn destination_rule(idp: &Idp, ns: &str) -> serde_yaml_ng::Value {
    map([
        ("apiVersion", s("networking.istio.io/v1")),
        ("kind", s("DestinationRule")),
        ("metadata", metadata(&resource_name(idp), ns)),
        (
            "spec",
            map([
                ("host", s(idp.host.as_str())),
                ("exportTo", seq([s(".")])),
                (
                    "trafficPolicy",
                    map([(
                        "tls",
                        map([
                            ("mode", s("SIMPLE")),
                            ("sni", s(idp.host.as_str())),
                            ("subjectAltNames", seq([s(idp.host.as_str())])),
                        ]),
                    )]),
                ),
            ]),
        ),
    ])
}

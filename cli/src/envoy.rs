//! `--output envoy`: the `http_filters` entry and the IdP `clusters` entries, as YAML
//! fragments to paste into a static Envoy configuration.

use crate::model::{Idp, PluginConfig};
use crate::yaml::{document, map, num, s, seq};
use crate::Options;

pub const DEFAULT_WASM_PATH: &str = "/etc/envoy/oidc_edge.wasm";
pub const DEFAULT_CA_FILE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// The module's path for Envoy's `code.local.filename`: a path or a `file://` URL.
pub fn wasm_path(url: Option<&str>) -> Result<String, String> {
    match url {
        None => Ok(DEFAULT_WASM_PATH.to_string()),
        Some(u) if u.contains("://") && !u.starts_with("file://") => Err(format!(
            "--wasm-url `{u}`: with --output envoy the module must be a local file (a path or file:// URL); download it first"
        )),
        Some(u) => {
            let p = u.strip_prefix("file://").unwrap_or(u);
            if p.is_empty() {
                Err("--wasm-url: empty path".to_string())
            } else {
                Ok(p.to_string())
            }
        }
    }
}

pub fn render(cfg: &PluginConfig, idps: &[Idp], opts: &Options, sources: &[String]) -> Result<String, String> {
    let json = ascii_json(&serde_json::to_string_pretty(cfg).map_err(|e| format!("internal error: {e}"))?);
    let env = cfg.env_names();
    let code = map([("local", map([("filename", s(wasm_path(opts.wasm_url.as_deref())?))]))]);
    let vm_config = if env.is_empty() {
        map([("vm_id", s("oidc-edge")), ("runtime", s("envoy.wasm.runtime.v8")), ("code", code)])
    } else {
        map([
            ("vm_id", s("oidc-edge")),
            ("runtime", s("envoy.wasm.runtime.v8")),
            ("code", code),
            ("environment_variables", map([("host_env_keys", seq(env.iter().map(|n| s(n.as_str()))))])),
        ])
    };
    let filter = map([
        ("name", s("oidc-edge")),
        (
            "typed_config",
            map([
                ("@type", s("type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm")),
                (
                    "config",
                    map([
                        ("name", s("oidc-edge")),
                        ("root_id", s("oidc-edge")),
                        ("vm_config", vm_config),
                        (
                            "configuration",
                            map([("@type", s("type.googleapis.com/google.protobuf.StringValue")), ("value", s(format!("{json}\n")))]),
                        ),
                        ("failure_policy", s("FAIL_RELOAD")),
                    ]),
                ),
            ]),
        ),
    ]);
    let mut comment = format!(
        "Rendered by `oidc-edge render --output envoy` from {}.\n\
         \n\
         1. The oidc-edge filter and its guard: add both entries, in this order, to\n\
         the http_filters of your HttpConnectionManager, BEFORE envoy.filters.http.router.\n\
         The guard (RBAC) lets through only requests oidc-edge has checked: a worker\n\
         that cannot create the wasm VM runs without the filter (whatever\n\
         failure_policy says) and then answers 403 instead of passing requests on.\n\
         Also set normalize_path: true, merge_slashes: true and\n\
         strip_trailing_host_dot: true on that HttpConnectionManager, so that the\n\
         application reads the path the filter's rules were matched on and a fully\n\
         qualified host name selects its route; and max_request_headers_kb: 96 with\n\
         common_http_protocol_options: {{ max_headers_count: 200 }} for large sessions.",
        sources.join(", ")
    );
    if !env.is_empty() {
        comment.push_str(&format!(
            "\nSecrets come from Envoy's environment (host_env_keys): start Envoy with {} set.",
            env.join(", ")
        ));
    }
    let mut docs = vec![document(&comment, &map([("http_filters", seq([filter, guard()]))]))?];
    let clusters = seq(idps.iter().map(|idp| cluster(idp, &opts.ca_file)));
    docs.push(document(
        "2. The IdP: add these entries to static_resources.clusters. The filter calls\n\
         the IdP (discovery, JWKS, token endpoint) through them; over https the\n\
         IdP's certificate is checked against the CA bundle and the issuer's host name.",
        &map([("clusters", clusters)]),
    )?);
    Ok(crate::yaml::stream(&docs))
}

/// The JSON with every non-ASCII character as a `\u` escape (JSON reads it the same), so
/// that it can be a `|` block in YAML 1.1 too, where NEL and U+2028 would break its lines.
/// Outside strings JSON has no such characters, so the escapes only ever land inside one.
fn ascii_json(json: &str) -> String {
    let mut out = String::with_capacity(json.len());
    for c in json.chars() {
        if c.is_ascii() && c != '\u{7f}' {
            out.push(c);
        } else {
            let mut units = [0u16; 2];
            for u in c.encode_utf16(&mut units) {
                out.push_str(&format!("\\u{u:04x}"));
            }
        }
    }
    out
}

/// The RBAC filter that refuses any request oidc-edge did not mark as checked (the filter
/// state `wasm.oidc_edge_checked` the filter sets on every request it lets through).
pub(crate) fn guard() -> serde_yaml_ng::Value {
    let principal = map([(
        "filter_state",
        map([("key", s("wasm.oidc_edge_checked")), ("string_match", map([("exact", s("1"))]))]),
    )]);
    let policy = map([("permissions", seq([map([("any", serde_yaml_ng::Value::Bool(true))])])), ("principals", seq([principal]))]);
    map([
        ("name", s("oidc-edge-guard")),
        (
            "typed_config",
            map([
                ("@type", s("type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC")),
                ("rules", map([("action", s("ALLOW")), ("policies", map([("checked-by-oidc-edge", policy)]))])),
            ]),
        ),
    ])
}

fn cluster(idp: &Idp, ca_file: &str) -> serde_yaml_ng::Value {
    let bare_host = idp.host.trim_matches(['[', ']']);
    // An IP address is neither resolved nor sent as SNI (RFC 6066 3), and the certificate
    // must name it as an IP address.
    let is_ip = bare_host.parse::<std::net::IpAddr>().is_ok();
    let address = map([(
        "address",
        map([("socket_address", map([("address", s(bare_host)), ("port_value", num(u64::from(idp.port)))]))]),
    )]);
    let load_assignment = map([
        ("cluster_name", s(idp.cluster.as_str())),
        ("endpoints", seq([map([("lb_endpoints", seq([map([("endpoint", address)])]))])])),
    ]);
    let base = [
        ("name", s(idp.cluster.as_str())),
        // One IdP host name: connect to one of its addresses at a time.
        ("type", s(if is_ip { "STATIC" } else { "LOGICAL_DNS" })),
        ("connect_timeout", s("5s")),
        ("load_assignment", load_assignment),
    ];
    let [name, kind, timeout, load_assignment] = base;
    let base = if is_ip {
        map([name, kind, timeout, load_assignment])
    } else {
        map([name, kind, ("dns_lookup_family", s("V4_PREFERRED")), timeout, load_assignment])
    };
    if !idp.tls {
        return base;
    }
    let san = if is_ip {
        map([("san_type", s("IP_ADDRESS")), ("matcher", map([("exact", s(bare_host))]))])
    } else {
        map([("san_type", s("DNS")), ("matcher", map([("exact", s(bare_host))]))])
    };
    let validation_context = map([
        ("trusted_ca", map([("filename", s(ca_file))])),
        // Without this Envoy accepts any certificate the CAs signed.
        ("match_typed_subject_alt_names", seq([san])),
    ]);
    let common = map([("validation_context", validation_context)]);
    let upstream_tls = if is_ip {
        map([("@type", s(UPSTREAM_TLS)), ("common_tls_context", common)])
    } else {
        map([("@type", s(UPSTREAM_TLS)), ("sni", s(bare_host)), ("common_tls_context", common)])
    };
    let tls = map([("name", s("envoy.transport_sockets.tls")), ("typed_config", upstream_tls)]);
    let serde_yaml_ng::Value::Mapping(mut m) = base else { return base };
    m.insert(s("transport_socket"), tls);
    serde_yaml_ng::Value::Mapping(m)
}

const UPSTREAM_TLS: &str = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext";


//! Kubernetes manifests in, `networking.k8s.io/v1` Ingresses out. Every other document
//! (Services, Deployments, other API versions) is ignored; `kind: List` is opened.

use serde::Deserialize;
use serde_yaml_ng::Value;

/// One input: a file's name (or `<stdin>`) and its text.
#[derive(Debug, Clone)]
pub struct Input {
    pub name: String,
    pub text: String,
}

/// How a path of an Ingress matches, after Istio's reading of its `pathType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum PathMatch {
    /// The path and nothing else (query aside).
    Exact,
    /// The path and everything below it, by whole segments.
    Prefix,
}

/// One host and path an Ingress serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngressPath {
    /// `None` for rules without a host and for the default backend: every host.
    pub host: Option<String>,
    pub path: String,
    pub kind: PathMatch,
}

impl IngressPath {
    pub fn prefix(host: Option<String>, path: &str) -> IngressPath {
        IngressPath { host, path: path.to_string(), kind: PathMatch::Prefix }
    }

    /// Host-less `/` by prefix: every request no other rule takes.
    pub fn is_catch_all(&self) -> bool {
        self.host.is_none() && self.path == "/" && self.kind == PathMatch::Prefix
    }
}

/// The parts of an Ingress the renderer uses.
#[derive(Debug, Clone)]
pub struct Ingress {
    pub namespace: String,
    pub name: String,
    /// `networking.k8s.io/v1`, or one of the older versions that still carry Ingresses.
    pub api_version: String,
    /// Every annotation, in document order, values as written (they should all be strings).
    pub annotations: Vec<(String, Value)>,
    /// The hosts and paths of `spec.rules`, plus the default backend as host-less `/`.
    pub routes: Vec<IngressPath>,
    /// The legacy `kubernetes.io/ingress.class` annotation, else `spec.ingressClassName`
    /// (Istio reads them in that order).
    pub class: Option<String>,
    /// Problems with the Ingress's own fields (not its annotations).
    pub problems: Vec<String>,
}

impl Ingress {
    /// `namespace/name`, the way every message names the Ingress.
    pub fn id(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
}

/// The API versions whose `kind: Ingress` is read. The two `v1beta1` ones were removed in
/// Kubernetes 1.22 but still come out of old manifests and charts.
const INGRESS_VERSIONS: [&str; 3] = ["networking.k8s.io/v1", "networking.k8s.io/v1beta1", "extensions/v1beta1"];

/// Reads every Ingress of every input. Errors name the input and the document.
pub fn read(inputs: &[Input]) -> Result<Vec<Ingress>, Vec<String>> {
    let mut ingresses = Vec::new();
    let mut errors = Vec::new();
    for input in inputs {
        for (index, doc) in serde_yaml_ng::Deserializer::from_str(&input.text).enumerate() {
            match Value::deserialize(doc) {
                Ok(value) => collect(&value, &input.name, index.saturating_add(1), &mut ingresses, &mut errors),
                Err(e) => {
                    errors.push(format!("{}: document {}: not valid YAML: {e}", input.name, index.saturating_add(1)));
                    // The parser cannot resynchronise after a syntax error.
                    break;
                }
            }
        }
    }
    if errors.is_empty() {
        Ok(ingresses)
    } else {
        Err(errors)
    }
}

fn collect(value: &Value, source: &str, doc: usize, out: &mut Vec<Ingress>, errors: &mut Vec<String>) {
    let api_version = value.get("apiVersion").and_then(Value::as_str);
    let kind = value.get("kind").and_then(Value::as_str);
    match (api_version, kind) {
        (Some("v1"), Some("List")) => {
            if let Some(items) = value.get("items").and_then(Value::as_sequence) {
                for item in items {
                    collect(item, source, doc, out, errors);
                }
            }
        }
        (Some(v), Some("Ingress")) if INGRESS_VERSIONS.contains(&v) => match ingress(value, v) {
            Ok(i) => out.push(i),
            Err(e) => errors.push(format!("{source}: document {doc}: Ingress: {e}")),
        },
        _ => {}
    }
}

/// Reads one path the way Istio's Ingress controller does (`pilot/pkg/config/kube/ingress`):
/// `Prefix` by whole segments, a trailing `/` ignored as Kubernetes specifies; `Exact` as
/// written; `ImplementationSpecific` (and a `v1beta1` path without `pathType`) exact unless
/// it ends in `/*` or `.*`, which make a prefix of what comes before.
fn read_path(path: &str, path_type: Option<&str>) -> Result<(String, PathMatch), String> {
    match path_type {
        Some("Prefix") => {
            let trimmed = path.trim_end_matches('/');
            Ok((if trimmed.is_empty() { "/".to_string() } else { trimmed.to_string() }, PathMatch::Prefix))
        }
        Some("Exact") => Ok((path.to_string(), PathMatch::Exact)),
        None | Some("ImplementationSpecific") => {
            if matches!(path, "" | "/" | "*" | "/*" | ".*") {
                return Ok(("/".to_string(), PathMatch::Prefix));
            }
            match path.strip_suffix(".*").or_else(|| path.strip_suffix("/*")) {
                Some("") => Ok(("/".to_string(), PathMatch::Prefix)),
                Some(prefix) => Ok((prefix.to_string(), PathMatch::Prefix)),
                None => Ok((path.to_string(), PathMatch::Exact)),
            }
        }
        Some(other) => Err(format!("pathType `{other}` is not one of Exact, Prefix, ImplementationSpecific")),
    }
}

fn ingress(value: &Value, api_version: &str) -> Result<Ingress, String> {
    let meta = value.get("metadata");
    let name = meta
        .and_then(|m| m.get("name"))
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
        .ok_or("has no metadata.name")?
        .to_string();
    let namespace = meta
        .and_then(|m| m.get("namespace"))
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
        .unwrap_or("default")
        .to_string();
    let mut annotations = Vec::new();
    if let Some(map) = meta.and_then(|m| m.get("annotations")).and_then(Value::as_mapping) {
        for (k, v) in map {
            if let Some(k) = k.as_str() {
                annotations.push((k.to_string(), v.clone()));
            }
        }
    }
    let spec = value.get("spec");
    let mut problems = Vec::new();
    let mut routes: Vec<IngressPath> = Vec::new();
    fn push(routes: &mut Vec<IngressPath>, route: IngressPath) {
        if !routes.contains(&route) {
            routes.push(route);
        }
    }
    // spec.tls only lists the hosts a certificate is for; which hosts and paths the Ingress
    // serves is spec.rules (and the default backend) alone.
    let rules = spec.and_then(|s| s.get("rules")).and_then(Value::as_sequence);
    for (i, rule) in rules.into_iter().flatten().enumerate() {
        let host = rule.get("host").and_then(Value::as_str).filter(|h| !h.is_empty()).map(str::to_ascii_lowercase);
        let paths = rule.get("http").and_then(|h| h.get("paths")).and_then(Value::as_sequence);
        let (mut any, mut bad) = (false, false);
        for (j, p) in paths.into_iter().flatten().enumerate() {
            let raw = p.get("path").and_then(Value::as_str).unwrap_or("");
            let path_type = p.get("pathType").and_then(Value::as_str);
            let wildcard = matches!((path_type, raw), (None | Some("ImplementationSpecific"), "" | "*" | ".*") | (Some("Prefix"), ""));
            if !raw.starts_with('/') && !wildcard {
                problems.push(format!("spec.rules[{i}].http.paths[{j}].path `{raw}` is not an absolute path"));
                bad = true;
                continue;
            }
            match read_path(raw, path_type) {
                Ok((path, kind)) => {
                    any = true;
                    push(&mut routes, IngressPath { host: host.clone(), path, kind });
                }
                Err(e) => {
                    problems.push(format!("spec.rules[{i}].http.paths[{j}].{e}"));
                    bad = true;
                }
            }
        }
        if !any && !bad {
            push(&mut routes, IngressPath::prefix(host, "/"));
        }
    }
    // `defaultBackend` (`backend` before v1) takes every request no rule takes.
    let default_backend = spec.and_then(|s| s.get("defaultBackend").or_else(|| s.get("backend"))).is_some_and(|b| !b.is_null());
    if default_backend || (routes.is_empty() && problems.is_empty()) {
        push(&mut routes, IngressPath::prefix(None, "/"));
    }
    let class = annotations
        .iter()
        .find(|(k, _)| k == "kubernetes.io/ingress.class")
        .and_then(|(_, v)| v.as_str())
        .or_else(|| spec.and_then(|s| s.get("ingressClassName")).and_then(Value::as_str))
        .map(str::to_string);
    Ok(Ingress { namespace, name, api_version: api_version.to_string(), annotations, routes, class, problems })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(text: &str) -> Vec<Ingress> {
        read(&[Input { name: "t.yaml".into(), text: text.into() }]).unwrap()
    }

    fn prefix(host: &str, path: &str) -> IngressPath {
        IngressPath::prefix(Some(host.to_string()), path)
    }

    #[test]
    fn ignores_other_documents_and_opens_lists() {
        let text = "---\napiVersion: v1\nkind: Service\nmetadata: {name: s}\n---\n\
apiVersion: networking.k8s.io/v2\nkind: Ingress\nmetadata: {name: future}\n---\n\
apiVersion: v1\nkind: List\nitems:\n- apiVersion: networking.k8s.io/v1\n  kind: Ingress\n  metadata: {name: a, namespace: shop}\n  spec:\n    rules:\n    - host: A.example.com\n      http:\n        paths:\n        - {path: /, pathType: Prefix, backend: {service: {name: a, port: {number: 80}}}}\n        - {path: /api, pathType: Prefix, backend: {service: {name: a, port: {number: 80}}}}\n";
        let got = one(text);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].id(), "shop/a");
        assert_eq!(got[0].routes, vec![prefix("a.example.com", "/"), prefix("a.example.com", "/api")]);
    }

    #[test]
    fn tls_hosts_are_not_routes() {
        let got = one("apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: a}\nspec:\n  tls:\n  - hosts: [a.example.com, b.example.com]\n  rules:\n  - host: a.example.com\n    http: {paths: [{path: /, pathType: Prefix}]}\n");
        assert_eq!(got[0].routes, vec![prefix("a.example.com", "/")]);
    }

    #[test]
    fn path_types_read_as_istio_does() {
        let cases: &[(&str, Option<&str>, &str, PathMatch)] = &[
            // Kubernetes: a Prefix path's trailing slash does not matter (`/c/` matches `/c`).
            ("/c/", Some("Prefix"), "/c", PathMatch::Prefix),
            ("/c", Some("Prefix"), "/c", PathMatch::Prefix),
            ("/", Some("Prefix"), "/", PathMatch::Prefix),
            ("/docs", Some("Exact"), "/docs", PathMatch::Exact),
            ("/docs/", Some("Exact"), "/docs/", PathMatch::Exact),
            ("/", Some("Exact"), "/", PathMatch::Exact),
            // Istio: ImplementationSpecific is exact unless it ends in `/*` or `.*`.
            ("/b", Some("ImplementationSpecific"), "/b", PathMatch::Exact),
            ("/b.*", Some("ImplementationSpecific"), "/b", PathMatch::Prefix),
            ("/x/*", Some("ImplementationSpecific"), "/x", PathMatch::Prefix),
            ("/*", Some("ImplementationSpecific"), "/", PathMatch::Prefix),
            (".*", Some("ImplementationSpecific"), "/", PathMatch::Prefix),
            ("", Some("ImplementationSpecific"), "/", PathMatch::Prefix),
            ("/b", None, "/b", PathMatch::Exact),
        ];
        for (path, path_type, want, kind) in cases {
            assert_eq!(read_path(path, *path_type), Ok((want.to_string(), *kind)), "{path} {path_type:?}");
        }
        assert!(read_path("/a", Some("Regex")).unwrap_err().contains("pathType `Regex`"));
    }

    #[test]
    fn v1beta1_ingresses_are_read() {
        for version in ["networking.k8s.io/v1beta1", "extensions/v1beta1"] {
            let got = one(&format!("apiVersion: {version}\nkind: Ingress\nmetadata: {{name: old}}\nspec:\n  backend: {{serviceName: a, servicePort: 80}}\n  rules:\n  - host: a.example.com\n    http: {{paths: [{{path: /api/*, backend: {{serviceName: a, servicePort: 80}}}}, {{path: /exact, backend: {{serviceName: a, servicePort: 80}}}}]}}\n"));
            assert_eq!(got.len(), 1, "{version}");
            assert_eq!(got[0].api_version, version);
            assert_eq!(
                got[0].routes,
                vec![
                    prefix("a.example.com", "/api"),
                    IngressPath { host: Some("a.example.com".into()), path: "/exact".into(), kind: PathMatch::Exact },
                    IngressPath::prefix(None, "/"),
                ],
                "{version}"
            );
        }
    }

    #[test]
    fn default_backend_next_to_rules_is_the_catch_all() {
        let got = one("apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: x}\nspec:\n  defaultBackend: {service: {name: a, port: {number: 80}}}\n  rules:\n  - host: a.example.com\n    http: {paths: [{path: /a, pathType: Prefix}]}\n");
        assert_eq!(got[0].routes, vec![prefix("a.example.com", "/a"), IngressPath::prefix(None, "/")]);
    }

    #[test]
    fn the_class_annotation_wins_as_in_istio() {
        let got = one("apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: x, annotations: {kubernetes.io/ingress.class: nginx}}\nspec: {ingressClassName: istio}\n");
        assert_eq!(got[0].class.as_deref(), Some("nginx"));
    }

    #[test]
    fn default_backend_only_is_every_host() {
        let got = one("apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: x}\nspec: {defaultBackend: {service: {name: a, port: {number: 80}}}}\n");
        assert_eq!(got[0].id(), "default/x");
        assert_eq!(got[0].routes, vec![IngressPath::prefix(None, "/")]);
    }

    #[test]
    fn bad_yaml_and_missing_name() {
        let err = read(&[Input { name: "f".into(), text: "a: [".into() }]).unwrap_err();
        assert!(err[0].starts_with("f: document 1: not valid YAML"), "{err:?}");
        let err = read(&[Input { name: "f".into(), text: "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {}\n".into() }])
            .unwrap_err();
        assert!(err[0].contains("no metadata.name"), "{err:?}");
    }
}

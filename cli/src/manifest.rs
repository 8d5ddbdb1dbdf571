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

/// The parts of an Ingress the renderer uses.
#[derive(Debug, Clone)]
pub struct Ingress {
    pub namespace: String,
    pub name: String,
    /// Every annotation, in document order, values as written (they should all be strings).
    pub annotations: Vec<(String, Value)>,
    /// `(host, path)` pairs served by this Ingress; `host` is `None` for rules without one.
    pub routes: Vec<(Option<String>, String)>,
    /// `spec.ingressClassName`, or the legacy `kubernetes.io/ingress.class` annotation.
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
        (Some("networking.k8s.io/v1"), Some("Ingress")) => match ingress(value) {
            Ok(i) => out.push(i),
            Err(e) => errors.push(format!("{source}: document {doc}: Ingress: {e}")),
        },
        _ => {}
    }
}

fn ingress(value: &Value) -> Result<Ingress, String> {
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
    let mut routes: Vec<(Option<String>, String)> = Vec::new();
    fn push(routes: &mut Vec<(Option<String>, String)>, host: Option<String>, path: String) {
        if !routes.contains(&(host.clone(), path.clone())) {
            routes.push((host, path));
        }
    }
    let rules = spec.and_then(|s| s.get("rules")).and_then(Value::as_sequence);
    for (i, rule) in rules.into_iter().flatten().enumerate() {
        let host = rule.get("host").and_then(Value::as_str).filter(|h| !h.is_empty()).map(str::to_ascii_lowercase);
        let paths = rule.get("http").and_then(|h| h.get("paths")).and_then(Value::as_sequence);
        let (mut any, mut bad) = (false, false);
        for (j, p) in paths.into_iter().flatten().enumerate() {
            let path = p.get("path").and_then(Value::as_str).unwrap_or("/");
            if !path.starts_with('/') {
                problems.push(format!("spec.rules[{i}].http.paths[{j}].path `{path}` is not an absolute path"));
                bad = true;
                continue;
            }
            any = true;
            push(&mut routes, host.clone(), path.to_string());
        }
        if !any && !bad {
            push(&mut routes, host, "/".to_string());
        }
    }
    let tls = spec.and_then(|s| s.get("tls")).and_then(Value::as_sequence);
    for t in tls.into_iter().flatten() {
        for h in t.get("hosts").and_then(Value::as_sequence).into_iter().flatten() {
            if let Some(h) = h.as_str().filter(|h| !h.is_empty()) {
                let h = h.to_ascii_lowercase();
                if !routes.iter().any(|(host, _)| host.as_deref() == Some(h.as_str())) {
                    push(&mut routes, Some(h), "/".to_string());
                }
            }
        }
    }
    if routes.is_empty() && problems.is_empty() {
        // Only a defaultBackend: every host, every path.
        routes.push((None, "/".to_string()));
    }
    let class = spec
        .and_then(|s| s.get("ingressClassName"))
        .and_then(Value::as_str)
        .or_else(|| {
            annotations
                .iter()
                .find(|(k, _)| k == "kubernetes.io/ingress.class")
                .and_then(|(_, v)| v.as_str())
        })
        .map(str::to_string);
    Ok(Ingress { namespace, name, annotations, routes, class, problems })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(text: &str) -> Vec<Ingress> {
        read(&[Input { name: "t.yaml".into(), text: text.into() }]).unwrap()
    }

    #[test]
    fn ignores_other_documents_and_opens_lists() {
        let text = "---\napiVersion: v1\nkind: Service\nmetadata: {name: s}\n---\n\
apiVersion: networking.k8s.io/v1beta1\nkind: Ingress\nmetadata: {name: old}\n---\n\
apiVersion: v1\nkind: List\nitems:\n- apiVersion: networking.k8s.io/v1\n  kind: Ingress\n  metadata: {name: a, namespace: shop}\n  spec:\n    rules:\n    - host: A.example.com\n      http:\n        paths:\n        - {path: /, pathType: Prefix, backend: {service: {name: a, port: {number: 80}}}}\n        - {path: /api, pathType: Prefix, backend: {service: {name: a, port: {number: 80}}}}\n    tls:\n    - hosts: [a.example.com, b.example.com]\n";
        let got = one(text);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].id(), "shop/a");
        assert_eq!(
            got[0].routes,
            vec![
                (Some("a.example.com".into()), "/".into()),
                (Some("a.example.com".into()), "/api".into()),
                (Some("b.example.com".into()), "/".into()),
            ]
        );
    }

    #[test]
    fn default_backend_only_is_every_host() {
        let got = one("apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: x}\nspec: {defaultBackend: {service: {name: a, port: {number: 80}}}}\n");
        assert_eq!(got[0].id(), "default/x");
        assert_eq!(got[0].routes, vec![(None, "/".into())]);
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

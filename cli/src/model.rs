//! One Ingress's annotations -> its plugin settings (a provider), every check collected so
//! that all errors come out at once. Combining several is `routes`.

use indexmap::IndexMap;
use serde::Serialize;
use serde_json::{json, Value};

use crate::annotations::{self, Annotation, Kind, Need, PREFIX};
use crate::manifest::{Ingress, IngressPath};
use crate::{Options, Output};

/// The plugin configuration as rendered: keys in table order, then `routes`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PluginConfig {
    #[serde(flatten)]
    pub settings: IndexMap<String, Value>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<IndexMap<String, Value>>,
    /// `namespace/name` of the Ingress each route comes from, for messages.
    #[serde(skip)]
    pub route_sources: Vec<String>,
}

impl PluginConfig {
    pub fn to_json(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }

    /// Every `{"env": NAME}` secret, top level and routes, sorted and deduplicated.
    pub fn env_names(&self) -> Vec<String> {
        let mut names: Vec<String> = Vec::new();
        let maps = std::iter::once(&self.settings).chain(self.routes.iter());
        for map in maps {
            for v in map.values() {
                if let Some(name) = env_name(v) {
                    names.push(name.to_string());
                }
            }
        }
        names.sort();
        names.dedup();
        names
    }
}

fn env_name(v: &Value) -> Option<&str> {
    match v {
        Value::Object(o) if o.len() == 1 => o.get("env").and_then(Value::as_str),
        _ => None,
    }
}

/// The IdP an Ingress's issuer points at, and the cluster that reaches it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Idp {
    pub tls: bool,
    pub host: String,
    pub port: u16,
    pub cluster: String,
}

/// One Ingress's settings: the plugin keys its annotations set (and `idp_cluster`).
#[derive(Debug, Clone)]
pub struct Provider {
    pub id: String,
    pub routes: Vec<IngressPath>,
    pub settings: IndexMap<&'static str, Value>,
    pub idp: Idp,
}

/// Collected diagnostics.
#[derive(Debug, Default)]
pub struct Diagnostics {
    pub errors: Vec<String>,
    pub warnings: Vec<String>,
}

impl Diagnostics {
    fn annotation(&mut self, id: &str, a: &str, message: impl AsRef<str>) {
        self.errors.push(format!("{id}: annotation {PREFIX}{a}: {}", message.as_ref()));
    }
    fn warn_annotation(&mut self, id: &str, a: &str, message: impl AsRef<str>) {
        self.warnings.push(format!("warning: {id}: annotation {PREFIX}{a}: {}", message.as_ref()));
    }
}

/// Reads one Ingress's annotations. `None` when the Ingress has no `oidc-edge.io/` annotation.
pub fn provider(ingress: &Ingress, opts: &Options, diags: &mut Diagnostics) -> Option<Provider> {
    let id = ingress.id();
    if !ingress.annotations.iter().any(|(k, _)| annotations::looks_like_ours(k)) {
        return None;
    }
    let ours: Vec<(&str, &serde_yaml_ng::Value)> = ingress
        .annotations
        .iter()
        .filter_map(|(k, v)| k.strip_prefix(PREFIX).map(|name| (name, v)))
        .collect();
    let errors_before = diags.errors.len();
    for p in &ingress.problems {
        diags.errors.push(format!("{id}: {p}"));
    }
    let mut settings: IndexMap<&'static str, (Value, &'static Annotation)> = IndexMap::new();
    let mut attempted: Vec<&'static str> = Vec::new();
    // A misspelt prefix would otherwise leave the Ingress unprotected without a word.
    for (key, _) in ingress.annotations.iter().filter(|(k, _)| annotations::looks_like_ours(k) && !k.starts_with(PREFIX)) {
        let hint = match annotations::meant(key) {
            Some(n) => {
                // Its own error says what is missing; no second one for the same key.
                attempted.extend(annotations::find(n).map(|a| a.key));
                format!("did you mean {PREFIX}{n}?")
            }
            None => format!("the prefix is `{PREFIX}`, e.g. {PREFIX}issuer"),
        };
        diags.errors.push(format!("{id}: annotation {key}: not an oidc-edge annotation as spelt (so it would be ignored); {hint}"));
    }
    for (name, raw) in ours {
        let Some(a) = annotations::find(name) else {
            let hint = match annotations::closest(name) {
                Some(n) => format!("did you mean {PREFIX}{n}?"),
                None => format!("expected one of: {}", annotations::ANNOTATIONS.iter().map(|a| a.name).collect::<Vec<_>>().join(", ")),
            };
            diags.annotation(&id, name, format!("unknown annotation; {hint}"));
            continue;
        };
        attempted.push(a.key);
        let raw = match raw {
            serde_yaml_ng::Value::String(s) => s.as_str(),
            serde_yaml_ng::Value::Null => {
                diags.annotation(&id, a.name, format!("has no value; expected e.g. `{}`", a.example));
                continue;
            }
            _ => {
                diags.annotation(&id, a.name, "is not a string; Kubernetes annotation values are strings: quote the value");
                continue;
            }
        };
        match annotations::parse(a.kind, raw) {
            Ok(value) => {
                if let Some((_, other)) = settings.get(a.key) {
                    diags.annotation(
                        &id,
                        a.name,
                        format!("cannot be combined with {PREFIX}{}: both set `{}`; keep only one (the `-env` one keeps the secret out of the configuration)", other.name, a.key),
                    );
                    continue;
                }
                if a.kind == Kind::InlineSecret {
                    let env = annotations::for_key(a.key).find(|e| e.kind == Kind::EnvSecret).map(|e| e.name).unwrap_or("");
                    diags.warn_annotation(
                        &id,
                        a.name,
                        format!("the secret is written in clear text into the rendered configuration; prefer {PREFIX}{env} (an environment variable of the proxy)"),
                    );
                }
                settings.insert(a.key, (value, a));
            }
            Err(message) => diags.annotation(&id, a.name, message),
        }
    }

    // Required keys.
    for key in annotations::keys() {
        if attempted.contains(&key) {
            continue;
        }
        let mut group = annotations::for_key(key);
        let Some(first) = group.next() else { continue };
        match first.need {
            Need::Required => diags.annotation(&id, first.name, format!("is required; expected e.g. `{}`", first.example)),
            Need::OneOfKey => {
                let inline = group.next().map(|a| format!(" (or, not recommended, the value itself in {PREFIX}{})", a.name)).unwrap_or_default();
                diags.annotation(
                    &id,
                    first.name,
                    format!("is required: the name of the proxy's environment variable that holds `{key}`, e.g. `{}`{inline}", first.example),
                );
            }
            Need::Optional => {}
        }
    }

    // The IdP and its cluster.
    let idp = settings.get("issuer").and_then(|(issuer, _)| issuer.as_str()).and_then(|issuer| {
        let idp = idp_of(issuer, settings.get("idp_cluster").and_then(|(v, _)| v.as_str()), opts.output);
        match &idp {
            Err(m) => diags.annotation(&id, "issuer", m),
            Ok(i) if !i.tls => diags.warn_annotation(
                &id,
                "issuer",
                "plain http: the client secret and the tokens cross the network unencrypted; use https outside tests",
            ),
            Ok(_) => {}
        }
        match &idp {
            Ok(_) if opts.output == Output::Istio && settings.contains_key("idp_cluster") => diags.warn_annotation(
                &id,
                "idp-cluster",
                "ignored with --output istio: the filter must use Istio's cluster name `outbound|<port>||<issuer host>`",
            ),
            _ => {}
        }
        idp.ok()
    });

    if opts.check_with_filter {
        // Each key alone always; all keys together only when nothing else is wrong.
        let whole = diags.errors.len() == errors_before;
        check_with_filter(&id, &settings, whole, diags);
    }
    if diags.errors.len() != errors_before {
        return None;
    }
    let idp = idp?;
    let mut out: IndexMap<&'static str, Value> = IndexMap::new();
    for key in annotations::keys() {
        if key == "idp_cluster" {
            out.insert(key, json!(idp.cluster));
        } else if let Some((v, _)) = settings.get(key) {
            out.insert(key, v.clone());
        }
    }
    Some(Provider { id, routes: ingress.routes.clone(), settings: out, idp })
}

/// `outbound|443||login.example.com` for Istio; the annotation or a name from the host for Envoy.
fn idp_of(issuer: &str, annotated_cluster: Option<&str>, output: Output) -> Result<Idp, String> {
    let ep = oidc_edge::http::Endpoint::parse(issuer).ok_or("is not an absolute http(s) URL")?;
    let tls = ep.scheme == "https";
    let (host, port) = split_authority(&ep.authority)
        .ok_or_else(|| format!("`{}` is not a valid host[:port]; expected e.g. `https://login.example.com`", ep.authority))?;
    let port = port.unwrap_or(if tls { 443 } else { 80 });
    let host = host.to_ascii_lowercase();
    let is_ip = host.starts_with('[') || host.parse::<std::net::Ipv4Addr>().is_ok();
    if output == Output::Istio && is_ip {
        return Err(format!(
            "the issuer's host `{host}` is an IP address; Istio reaches the IdP through a ServiceEntry with DNS resolution, which needs a DNS name"
        ));
    }
    let default_port = if tls { 443 } else { 80 };
    let cluster = match (output, annotated_cluster) {
        (Output::Istio, _) => format!("outbound|{port}||{host}"),
        (Output::Envoy, Some(name)) => name.to_string(),
        (Output::Envoy, None) if port == default_port => format!("oidc-edge-idp-{}", host.trim_matches(['[', ']'])),
        (Output::Envoy, None) => format!("oidc-edge-idp-{}-{port}", host.trim_matches(['[', ']'])),
    };
    Ok(Idp { tls, host, port, cluster })
}

fn split_authority(authority: &str) -> Option<(&str, Option<u16>)> {
    let (host, port) = if authority.starts_with('[') {
        let end = authority.find(']')?;
        let (h, rest) = authority.split_at(end.checked_add(1)?);
        (h, rest.strip_prefix(':'))
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    let valid_host = !host.is_empty()
        && (host.starts_with('[') || host.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.'));
    if !valid_host {
        return None;
    }
    let port = match port {
        None => None,
        Some(p) => Some(p.parse::<u16>().ok().filter(|p| *p != 0)?),
    };
    Some((host, port))
}

/// A config the filter accepts whatever is being checked; each key is then checked alone
/// against it, so that every key's problem is reported (the filter stops at the first).
fn base_config() -> serde_json::Map<String, Value> {
    let mut m = serde_json::Map::new();
    m.insert("issuer".into(), json!("https://idp.invalid"));
    m.insert("idp_cluster".into(), json!("idp"));
    m.insert("client_id".into(), json!("client"));
    m.insert("client_secret".into(), json!("placeholder"));
    m.insert("cookie_secret".into(), json!(oidc_edge::b64::std_encode(&[0u8; 32])));
    m
}

/// Secrets from the environment cannot be known here: check a placeholder in their place.
fn placeholder_for(key: &str) -> Value {
    match key {
        "cookie_secret" => json!(oidc_edge::b64::std_encode(&[0u8; 32])),
        _ => json!("placeholder"),
    }
}

pub(crate) fn replace_env_secrets(map: &mut serde_json::Map<String, Value>) {
    for (k, v) in map.iter_mut() {
        if env_name(v).is_some() {
            *v = placeholder_for(k);
        }
    }
}

/// Explains a refusal by the filter's own validator.
fn filter_message(key: &str, e: &oidc_edge::config::ConfigError) -> String {
    if e.field == key && e.message.starts_with("unknown field") {
        format!("the oidc-edge filter this tool was built with does not support the key `{key}` yet (it would refuse the configuration); remove the annotation or use a build whose filter has it")
    } else if e.field == key {
        e.message.clone()
    } else {
        e.to_string()
    }
}

fn check_with_filter(id: &str, settings: &IndexMap<&'static str, (Value, &'static Annotation)>, whole: bool, diags: &mut Diagnostics) {
    let mut failed = false;
    for (key, (value, a)) in settings {
        if *key == "idp_cluster" {
            continue;
        }
        let mut cfg = base_config();
        cfg.insert((*key).to_string(), value.clone());
        let Err(e) = oidc_edge::config::Settings::from_json_with(Value::Object(cfg).to_string().as_bytes(), &oidc_edge::config::PlaceholderSecrets) else {
            continue;
        };
        if env_name(value).is_some() {
            // A filter that reads `{"env": NAME}` may also look the variable up while parsing,
            // and this machine is not the proxy: only a filter that wants a plain string here
            // is a refusal.
            if e.field == *key && e.message.contains("must be a string") {
                let inline = annotations::for_key(key).find(|x| x.kind == Kind::InlineSecret).map(|x| x.name).unwrap_or("");
                diags.annotation(
                    id,
                    a.name,
                    format!("the oidc-edge filter this tool was built with cannot read `{key}` from the environment yet (`{{\"env\": ...}}`); give the value in {PREFIX}{inline} (not recommended) or use a build whose filter has it"),
                );
                failed = true;
            }
            continue;
        }
        diags.annotation(id, a.name, filter_message(key, &e));
        failed = true;
    }
    if failed || !whole {
        return;
    }
    // All together (cross-key rules).
    let mut cfg = base_config();
    for (key, (value, _)) in settings {
        cfg.insert((*key).to_string(), value.clone());
    }
    replace_env_secrets(&mut cfg);
    if let Err(e) = oidc_edge::config::Settings::from_json_with(Value::Object(cfg).to_string().as_bytes(), &oidc_edge::config::PlaceholderSecrets) {
        match settings.get(e.field.as_str()) {
            Some((_, a)) => diags.annotation(id, a.name, filter_message(&e.field, &e)),
            None => diags.errors.push(format!("{id}: the filter refuses the rendered configuration: {e}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authorities() {
        assert_eq!(split_authority("a.example.com"), Some(("a.example.com", None)));
        assert_eq!(split_authority("a.example.com:8443"), Some(("a.example.com", Some(8443))));
        assert_eq!(split_authority("[::1]:9000"), Some(("[::1]", Some(9000))));
        assert_eq!(split_authority("a:0"), None);
        assert_eq!(split_authority("a:x"), None);
        assert_eq!(split_authority("a_b"), None);
    }

    #[test]
    fn idp_clusters() {
        let i = idp_of("https://Login.Example.com/realms/x", None, Output::Istio).unwrap();
        assert_eq!((i.tls, i.host.as_str(), i.port, i.cluster.as_str()), (true, "login.example.com", 443, "outbound|443||login.example.com"));
        let e = idp_of("http://idp:9000", None, Output::Envoy).unwrap();
        assert_eq!((e.tls, e.port, e.cluster.as_str()), (false, 9000, "oidc-edge-idp-idp-9000"));
        let e = idp_of("https://idp.example.com", Some("mine"), Output::Envoy).unwrap();
        assert_eq!(e.cluster, "mine");
        assert!(idp_of("https://10.0.0.1", None, Output::Istio).unwrap_err().contains("IP address"));
    }

    #[test]
    fn defaults_agree_with_the_filter() {
        let settings = oidc_edge::config::Settings::from_json(Value::Object(base_config()).to_string().as_bytes()).unwrap();
        let s = settings.profiles.first().expect("the top level's profile");
        assert_eq!(annotations::default_of("redirect_path"), Some(json!(s.redirect_path)));
        assert_eq!(annotations::default_of("clock_skew_seconds"), Some(json!(s.clock_skew)));
        let scopes: Vec<String> = s.scope.split(' ').map(str::to_string).collect();
        assert_eq!(annotations::default_of("scopes"), Some(json!(scopes)));
        assert_eq!(s.forward_token, oidc_edge::config::ForwardToken::IdToken);
        assert_eq!(annotations::default_of("forward_token"), Some(json!("id_token")));
    }
}

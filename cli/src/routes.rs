//! Several Ingresses, one plugin configuration: which Ingress fills the top level, the
//! `routes` every other host and path becomes, their order, and which Ingress a refusal of
//! the combined configuration by the filter comes from.

use indexmap::IndexMap;
use serde_json::{json, Value};

use crate::annotations;
use crate::manifest::{IngressPath, PathMatch};
use crate::model::{Diagnostics, PluginConfig, Provider};

/// What an Ingress without any `oidc-edge.io/` annotation is given: every path it serves
/// passes without authentication, so that rendering it next to protected applications
/// keeps it public instead of leaving its host to the top level's login.
pub const PUBLIC_PASS_THROUGH: &str = "/*";

/// An Ingress without `oidc-edge.io/` annotations: its hosts and paths stay public.
#[derive(Debug, Clone)]
pub struct Public {
    pub id: String,
    pub routes: Vec<IngressPath>,
}

/// One route before it is written: where it matches, what it overrides, whose it is.
struct Route<'a> {
    at: IngressPath,
    overrides: IndexMap<String, Value>,
    owner: &'a str,
}

fn public_overrides() -> IndexMap<String, Value> {
    IndexMap::from([("pass_through_paths".to_string(), json!([PUBLIC_PASS_THROUGH]))])
}

/// The keys where `mine` differs from the top level, the filter's default written out where
/// the top level sets a key `mine` does not (a route must not inherit it by accident).
fn overrides(mine: &IndexMap<String, Value>, top: &IndexMap<String, Value>) -> IndexMap<String, Value> {
    let mut out = IndexMap::new();
    for key in annotations::keys() {
        let m = mine.get(key).cloned().or_else(|| annotations::default_of(key));
        let t = top.get(key).cloned().or_else(|| annotations::default_of(key));
        if let Some(m) = m {
            if Some(&m) != t.as_ref() {
                out.insert(key.to_string(), m);
            }
        }
    }
    out
}

/// The Ingress whose catch-all (default backend, or host-less `/`) must be the top level:
/// only the top level takes every request no route takes.
pub fn catch_all_owner(providers: &[Provider]) -> Option<usize> {
    providers.iter().position(|p| p.routes.iter().any(IngressPath::is_catch_all))
}

/// The plugin configuration: `providers[default]` fills the top level; with any other
/// Ingress (protected or public) every host and path becomes a route.
pub fn plugin_config(providers: &[Provider], public: &[Public], default: usize, diags: &mut Diagnostics) -> Option<PluginConfig> {
    let top = providers.get(default)?;
    let mut settings: IndexMap<String, Value> = top.settings.iter().map(|(k, v)| ((*k).to_string(), v.clone())).collect();
    if providers.len() == 1 && public.is_empty() {
        return Some(PluginConfig { settings, routes: Vec::new(), route_sources: Vec::new() });
    }
    let errors_before = diags.errors.len();
    // A public catch-all makes the top level public; the default Ingress's own paths then
    // become routes that undo it.
    let public_catch_all = public.iter().find(|q| q.routes.iter().any(IngressPath::is_catch_all));
    if let Some(q) = public_catch_all {
        if top.routes.iter().any(IngressPath::is_catch_all) {
            diags.errors.push(format!(
                "{}: its default backend (or host-less path /) takes every request no other rule takes, and so does {}, which has oidc-edge settings; one gateway can apply only one",
                q.id, top.id
            ));
        }
        settings.insert("pass_through_paths".to_string(), json!([PUBLIC_PASS_THROUGH]));
    }
    for p in providers.iter().filter(|p| p.id != top.id) {
        if p.routes.iter().any(IngressPath::is_catch_all) {
            diags.errors.push(format!(
                "{}: its default backend (or host-less path /) takes every request no other rule takes, which only the top level can do, and the top level is {}; render with --default {}",
                p.id, top.id, p.id
            ));
        }
    }

    let mut routes: Vec<Route> = Vec::new();
    let sources = providers
        .iter()
        .map(|p| (p.id.as_str(), overrides(&p.settings.iter().map(|(k, v)| ((*k).to_string(), v.clone())).collect(), &settings), &p.routes))
        .chain(public.iter().map(|q| {
            let o = if settings.get("pass_through_paths") == Some(&json!([PUBLIC_PASS_THROUGH])) { IndexMap::new() } else { public_overrides() };
            (q.id.as_str(), o, &q.routes)
        }));
    for (id, overrides, paths) in sources {
        for at in paths {
            if at.is_catch_all() {
                // The top level covers it (or an error above says why it cannot).
                continue;
            }
            if let Some(other) = routes.iter().find(|r| r.at == *at) {
                if other.overrides != overrides {
                    diags.errors.push(format!(
                        "{id}: host {} path {} is also served by {} with other oidc-edge settings; one gateway can apply only one",
                        at.host.as_deref().unwrap_or("*"),
                        at.path,
                        other.owner,
                    ));
                }
                continue;
            }
            routes.push(Route { at: at.clone(), overrides: overrides.clone(), owner: id });
        }
    }
    if diags.errors.len() != errors_before {
        return None;
    }
    routes.sort_by(|a, b| order(&a.at).cmp(&order(&b.at)));
    let route_sources = routes.iter().map(|r| r.owner.to_string()).collect();
    let routes = routes
        .into_iter()
        .map(|r| {
            let mut out = IndexMap::new();
            if let Some(h) = r.at.host {
                out.insert("host".to_string(), json!(h));
            }
            out.insert(path_key(r.at.kind).to_string(), json!(r.at.path));
            out.extend(r.overrides);
            out
        })
        .collect();
    Some(PluginConfig { settings, routes, route_sources })
}

/// The route key a path is written under.
fn path_key(kind: PathMatch) -> &'static str {
    match kind {
        PathMatch::Exact => "path_exact",
        PathMatch::Prefix => "path_prefix",
    }
}

/// Most specific first, as the gateway picks: named hosts, then wildcards by longer suffix,
/// then host-less rules; within a host longer paths first and, at equal length, an exact
/// path before a prefix (Istio's order for the paths of an Ingress).
fn order(at: &IngressPath) -> (u8, std::cmp::Reverse<usize>, &str, std::cmp::Reverse<usize>, PathMatch, &str) {
    let (class, suffix) = match at.host.as_deref() {
        Some(h) if h.starts_with("*.") => (1, h.len()),
        Some(h) => (0, h.len()),
        None => (2, 0),
    };
    let host = at.host.as_deref().unwrap_or("");
    // Exact hosts are told apart by name only; the suffix length orders wildcards.
    let suffix = if class == 1 { suffix } else { 0 };
    (class, std::cmp::Reverse(suffix), host, std::cmp::Reverse(at.path.len()), at.kind, at.path.as_str())
}

/// The combined configuration through the filter's validator (secrets from the environment
/// replaced); a refusal is told against the Ingress its route came from.
pub fn check_combined(cfg: &PluginConfig, ids: &[String], diags: &mut Diagnostics) {
    let Value::Object(mut json) = cfg.to_json() else { return };
    crate::model::replace_env_secrets(&mut json);
    if let Some(Value::Array(routes)) = json.get_mut("routes") {
        for r in routes.iter_mut() {
            if let Value::Object(r) = r {
                crate::model::replace_env_secrets(r);
            }
        }
    }
    let Err(e) = oidc_edge::config::Settings::from_json_with(Value::Object(json).to_string().as_bytes(), &oidc_edge::config::PlaceholderSecrets) else {
        return;
    };
    if e.field == "routes" && e.message.starts_with("unknown field") {
        diags.errors.push(format!(
            "the combined configuration of {} is refused by the filter: {e}; the filter this tool was built with has no `routes` yet, so several Ingresses cannot share one configuration: render them one at a time (one gateway each) or use a build whose filter has `routes`",
            ids.join(", ")
        ));
        return;
    }
    match route_index(&e.field).and_then(|i| Some((cfg.routes.get(i)?, cfg.route_sources.get(i)?))) {
        Some((route, owner)) => {
            let host = route.get("host").and_then(Value::as_str).unwrap_or("*");
            let (key, path) = route.iter().find(|(k, _)| k.starts_with("path_")).map(|(k, v)| (k.as_str(), v.as_str().unwrap_or(""))).unwrap_or(("path", ""));
            diags.errors.push(format!(
                "{owner}: host {host} path {path} ({key}): the oidc-edge filter refuses it: {}; change the Ingress's path or pathType",
                e.message
            ));
        }
        None => diags.errors.push(format!("the combined configuration of {} is refused by the filter: {e}", ids.join(", "))),
    }
}

/// `routes[3].path_prefix` and `routes[3]` name route 3.
fn route_index(field: &str) -> Option<usize> {
    let rest = field.strip_prefix("routes[")?;
    let end = rest.find(']')?;
    rest.get(..end)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(host: Option<&str>, path: &str, kind: PathMatch) -> IngressPath {
        IngressPath { host: host.map(str::to_string), path: path.to_string(), kind }
    }

    #[test]
    fn exact_hosts_before_wildcards_before_none_and_longer_paths_first() {
        let mut v = vec![
            at(None, "/api", PathMatch::Prefix),
            at(Some("*.example.com"), "/", PathMatch::Prefix),
            at(Some("admin.example.com"), "/", PathMatch::Prefix),
            at(Some("*.apps.example.com"), "/", PathMatch::Prefix),
            at(Some("admin.example.com"), "/docs", PathMatch::Prefix),
            at(Some("admin.example.com"), "/docs", PathMatch::Exact),
            at(Some("a.example.com"), "/", PathMatch::Prefix),
        ];
        v.sort_by(|a, b| order(a).cmp(&order(b)));
        assert_eq!(
            v,
            vec![
                at(Some("a.example.com"), "/", PathMatch::Prefix),
                at(Some("admin.example.com"), "/docs", PathMatch::Exact),
                at(Some("admin.example.com"), "/docs", PathMatch::Prefix),
                at(Some("admin.example.com"), "/", PathMatch::Prefix),
                at(Some("*.apps.example.com"), "/", PathMatch::Prefix),
                at(Some("*.example.com"), "/", PathMatch::Prefix),
                at(None, "/api", PathMatch::Prefix),
            ]
        );
    }

    #[test]
    fn route_indexes() {
        assert_eq!(route_index("routes[3].path_prefix"), Some(3));
        assert_eq!(route_index("routes[12]"), Some(12));
        assert_eq!(route_index("issuer"), None);
        assert_eq!(route_index("routes[x]"), None);
    }
}

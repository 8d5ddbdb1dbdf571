//! `oidc-edge render`: Kubernetes Ingress annotations (`oidc-edge.io/...`) to the oidc-edge
//! filter's configuration, as an Istio WasmPlugin (plus ServiceEntry and DestinationRule for
//! the IdP) or as Envoy `http_filters` and `clusters` fragments.
//!
//! The pipeline: [`manifest`] reads the Ingresses, [`model`] turns each one's annotations into
//! plugin settings through the one table in [`annotations`] and checks them with the filter's
//! own `Settings::from_json`, then [`istio`] or [`envoy`] writes the output. Nothing is
//! printed here: [`render`] returns the text, or every error at once.

// User input must never panic the tool: same rules as the filter's core.
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing, clippy::unreachable, clippy::todo)
)]

pub mod annotations;
pub mod envoy;
pub mod istio;
pub mod manifest;
pub mod model;
pub mod routes;
pub mod yaml;

pub use manifest::Input;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    Istio,
    Envoy,
}

/// Which ingress gateway the WasmPlugin applies to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GatewayTarget {
    /// `spec.selector.matchLabels`.
    Selector(Vec<(String, String)>),
    /// `spec.targetRefs` to a Gateway API `Gateway` of this name.
    GatewayRef(String),
}

/// The class Istio's own Ingress controller serves (mesh config `ingressClass`).
pub const DEFAULT_INGRESS_CLASS: &str = "istio";

#[derive(Debug, Clone)]
pub struct Options {
    pub output: Output,
    /// Istio: the module's URL (`oci://`, `https://`, `file://`); Envoy: its local path.
    pub wasm_url: Option<String>,
    pub sha256: Option<String>,
    /// Istio: the namespace of the rendered resources (the ingress gateway's).
    pub namespace: String,
    /// `namespace/name` of the Ingress whose settings fill the top level.
    pub default: Option<String>,
    pub gateway: GatewayTarget,
    /// The ingress class the gateway serves: Ingresses of another class are left out.
    pub ingress_class: String,
    /// Envoy: the CA bundle that verifies the IdP's certificate.
    pub ca_file: String,
    /// Check the configuration with the filter's own validator (always on in the binary;
    /// tests of keys the filter does not know yet turn it off).
    pub check_with_filter: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            output: Output::Istio,
            wasm_url: None,
            sha256: None,
            namespace: "istio-system".to_string(),
            default: None,
            gateway: GatewayTarget::Selector(vec![("istio".to_string(), "ingressgateway".to_string())]),
            ingress_class: DEFAULT_INGRESS_CLASS.to_string(),
            ca_file: envoy::DEFAULT_CA_FILE.to_string(),
            check_with_filter: true,
        }
    }
}

/// A successful rendering.
#[derive(Debug, Clone)]
pub struct Rendered {
    /// The YAML to print.
    pub text: String,
    /// The plugin configuration it carries.
    pub plugin_config: model::PluginConfig,
    /// Warnings and notes for stderr.
    pub warnings: Vec<String>,
}

/// A refused rendering: every error (and the warnings seen on the way).
#[derive(Debug, Clone)]
pub struct Failure {
    pub errors: Vec<String>,
    pub warnings: Vec<String>,
}

pub fn render(inputs: &[Input], opts: &Options) -> Result<Rendered, Failure> {
    let mut diags = model::Diagnostics::default();
    let fail = |d: model::Diagnostics| Failure { errors: d.errors, warnings: d.warnings };
    let ingresses = match manifest::read(inputs) {
        Ok(i) => i,
        Err(errors) => return Err(Failure { errors, warnings: Vec::new() }),
    };

    let mut providers = Vec::new();
    let mut public = Vec::new();
    let mut annotated = Vec::new();
    for ingress in &ingresses {
        let id = ingress.id();
        if let Some(class) = ingress.class.as_deref().filter(|c| *c != opts.ingress_class) {
            // Another controller serves it: neither its hosts nor its settings reach this gateway.
            diags.warnings.push(format!(
                "note: {id}: ingress class `{class}`, not `{}`: left out (another controller serves it; --ingress-class {class} renders that class instead)",
                opts.ingress_class
            ));
            continue;
        }
        if ingress.class.is_none() && opts.output == Output::Istio {
            diags.warnings.push(format!(
                "warning: {id}: no ingress class: Istio serves it only with meshConfig.ingressControllerMode DEFAULT; rendered as if of class `{}`",
                opts.ingress_class
            ));
        }
        if !ingress.annotations.iter().any(|(k, _)| annotations::looks_like_ours(k)) {
            diags.warnings.push(format!(
                "note: {id}: no {}* annotations: its hosts and paths are rendered as routes that are never authenticated (pass_through_paths: [\"{}\"])",
                annotations::PREFIX,
                routes::PUBLIC_PASS_THROUGH
            ));
            public.push(routes::Public { id, routes: ingress.routes.clone() });
            continue;
        }
        annotated.push(id);
        if let Some(p) = model::provider(ingress, opts, &mut diags) {
            providers.push(p);
        }
    }
    if annotated.is_empty() {
        diags.errors.push(if ingresses.is_empty() {
            "no Ingress in the input (networking.k8s.io/v1, or v1beta1)".to_string()
        } else {
            format!("no Ingress of class `{}` in the input has {}* annotations", opts.ingress_class, annotations::PREFIX)
        });
    }
    let mut seen = Vec::new();
    for i in &ingresses {
        let id = i.id();
        if seen.contains(&id) {
            diags.errors.push(format!("{id}: appears twice in the input"));
        }
        seen.push(id);
    }
    let default = match &opts.default {
        None => match routes::catch_all_owner(&providers) {
            Some(i) => {
                if let Some(p) = providers.get(i).filter(|_| i != 0) {
                    diags.warnings.push(format!(
                        "note: {}: its default backend (or host-less path /) takes every request no other rule takes: its settings are the top level",
                        p.id
                    ));
                }
                i
            }
            None => 0,
        },
        Some(name) => match providers.iter().position(|p| p.id == *name) {
            Some(i) => i,
            None => {
                if !annotated.contains(name) {
                    diags.errors.push(format!(
                        "--default {name}: no Ingress of class `{}` with {}* annotations is called that; expected namespace/name, one of: {}",
                        opts.ingress_class,
                        annotations::PREFIX,
                        annotated.join(", ")
                    ));
                }
                0
            }
        },
    };
    // Two IdPs must not share a cluster name.
    let mut idps: Vec<(model::Idp, String)> = Vec::new();
    for p in &providers {
        match idps.iter().find(|(i, _)| i.cluster == p.idp.cluster) {
            Some((i, _)) if *i == p.idp => {}
            Some((i, owner)) => diags.errors.push(format!(
                "{}: annotation {}idp-cluster: `{}` already names the cluster of {}:{} ({owner}); choose another name",
                p.id,
                annotations::PREFIX,
                p.idp.cluster,
                i.host,
                i.port
            )),
            None => idps.push((p.idp.clone(), p.id.clone())),
        }
    }
    if !diags.errors.is_empty() {
        return Err(fail(diags));
    }
    let ids: Vec<String> = providers.iter().map(|p| p.id.clone()).chain(public.iter().map(|q| q.id.clone())).collect();
    let Some(cfg) = routes::plugin_config(&providers, &public, default, &mut diags) else {
        return Err(fail(diags));
    };
    if opts.check_with_filter && !cfg.routes.is_empty() {
        routes::check_combined(&cfg, &ids, &mut diags);
    }
    if !diags.errors.is_empty() {
        return Err(fail(diags));
    }
    let idps: Vec<model::Idp> = idps.into_iter().map(|(i, _)| i).collect();
    let text = match opts.output {
        Output::Istio => istio::render(&cfg, &idps, opts, &ids),
        Output::Envoy => envoy::render(&cfg, &idps, opts, &ids),
    };
    match text {
        Ok(text) => Ok(Rendered { text, plugin_config: cfg, warnings: diags.warnings }),
        Err(e) => {
            diags.errors.push(e);
            Err(fail(diags))
        }
    }
}

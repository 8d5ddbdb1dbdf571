//! The `oidc-edge` command line. Exit codes: 0 rendered, 1 refused input (every error on
//! stderr, nothing on stdout), 2 bad command line.

#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing, clippy::unreachable, clippy::todo)
)]

use std::io::{Read, Write};
use std::process::ExitCode;

use oidc_edge_cli::{annotations, envoy, istio, render, GatewayTarget, Input, Options, Output};

const USAGE: &str = "\
Usage: oidc-edge render [OPTIONS] [FILE...]

Reads Kubernetes manifests (files, or standard input when no FILE or FILE is `-`;
several YAML documents per file) and turns the oidc-edge.io/* annotations of every
Ingress (networking.k8s.io/v1, or v1beta1) into oidc-edge configuration on standard
output. Other documents are ignored. Several Ingresses share one configuration: each
of their hosts and paths becomes an entry of `routes`; those of an Ingress without
oidc-edge.io/* annotations are never authenticated.

Options:
  -o, --output istio|envoy    istio (default): WasmPlugin + ServiceEntry/DestinationRule
                              per IdP; envoy: http_filters and clusters fragments
      --wasm-url URL          istio (required): the module, pinned (oci://…:0.1.0,
                              https://, file://); envoy: its local path (default
                              /etc/envoy/oidc_edge.wasm)
      --sha256 HEX            istio: SHA-256 of the module (WasmPlugin sha256)
      --namespace NS          istio: namespace of the rendered resources, which must be
                              the ingress gateway's (default istio-system)
      --gateway-selector K=V  istio: labels of the gateway pods (repeatable; default
                              istio=ingressgateway)
      --gateway-ref NAME      istio: apply to this Gateway API Gateway (targetRefs)
                              instead of a label selector
      --ca-file PATH          envoy: CA bundle that verifies the IdP's certificate
                              (default /etc/ssl/certs/ca-certificates.crt)
      --default NS/NAME       the Ingress whose settings fill the top level when
                              several are rendered (default: the one with a default
                              backend or host-less `/` path, else the first)
      --ingress-class NAME    the class the gateway serves (default istio): Ingresses of
                              another class are left out
  -h, --help                  this help; `oidc-edge annotations` lists the annotations
  -V, --version

Exit status: 0 rendered; 1 the input was refused (every problem is listed on
stderr, nothing is written to stdout); 2 bad command line.
";

enum Command {
    /// Options, files, and warnings about the command line.
    Render(Box<Options>, Vec<String>, Vec<String>),
    Help,
    Version,
    Annotations,
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (opts, files) = match parse_args(&args) {
        Ok(Command::Render(opts, files, warnings)) => {
            for w in warnings {
                eprintln!("{w}");
            }
            (opts, files)
        }
        Ok(Command::Help) => return print_out(USAGE),
        Ok(Command::Version) => return print_out(&format!("oidc-edge {}\n", env!("CARGO_PKG_VERSION"))),
        Ok(Command::Annotations) => return print_out(&annotations::markdown_table()),
        Err(message) => {
            eprintln!("oidc-edge: {message}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let inputs = match read_inputs(&files) {
        Ok(i) => i,
        Err(errors) => {
            for e in errors {
                eprintln!("error: {e}");
            }
            return ExitCode::from(1);
        }
    };
    match render(&inputs, opts.as_ref()) {
        Ok(rendered) => {
            for w in &rendered.warnings {
                eprintln!("{w}");
            }
            print_out(&rendered.text)
        }
        Err(failure) => {
            for w in &failure.warnings {
                eprintln!("{w}");
            }
            for e in &failure.errors {
                eprintln!("error: {e}");
            }
            let n = failure.errors.len();
            eprintln!("oidc-edge: {n} error{}; nothing was written", if n == 1 { "" } else { "s" });
            ExitCode::from(1)
        }
    }
}

fn print_out(text: &str) -> ExitCode {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("oidc-edge: cannot write to standard output: {e}");
            ExitCode::from(1)
        }
    }
}

fn read_inputs(files: &[String]) -> Result<Vec<Input>, Vec<String>> {
    let files: Vec<&str> = if files.is_empty() { vec!["-"] } else { files.iter().map(String::as_str).collect() };
    let mut inputs = Vec::new();
    let mut errors = Vec::new();
    let mut stdin_read = false;
    for f in files {
        if f == "-" {
            if stdin_read {
                continue;
            }
            stdin_read = true;
            let mut text = String::new();
            match std::io::stdin().read_to_string(&mut text) {
                Ok(_) => inputs.push(Input { name: "<stdin>".to_string(), text }),
                Err(e) => errors.push(format!("cannot read standard input: {e}")),
            }
        } else {
            match std::fs::read_to_string(f) {
                Ok(text) => inputs.push(Input { name: f.to_string(), text }),
                Err(e) => errors.push(format!("cannot read {f}: {e}")),
            }
        }
    }
    if errors.is_empty() {
        Ok(inputs)
    } else {
        Err(errors)
    }
}

fn parse_args(args: &[String]) -> Result<Command, String> {
    let mut it = args.iter();
    match it.next().map(String::as_str) {
        None => return Err("missing command".to_string()),
        Some("-h" | "--help" | "help") => return Ok(Command::Help),
        Some("-V" | "--version") => return Ok(Command::Version),
        Some("annotations") => return Ok(Command::Annotations),
        Some("render") => {}
        Some(other) => return Err(format!("unknown command `{other}`; expected `render`")),
    }
    let mut opts = Options::default();
    let mut files = Vec::new();
    let mut selector: Vec<(String, String)> = Vec::new();
    let mut gateway_ref: Option<String> = None;
    let mut only_files = false;
    let mut given: Vec<&str> = Vec::new();
    while let Some(arg) = it.next() {
        if only_files || arg == "-" || !arg.starts_with('-') {
            files.push(arg.clone());
            continue;
        }
        if arg == "--" {
            only_files = true;
            continue;
        }
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f, Some(v.to_string())),
            _ => (arg.as_str(), None),
        };
        given.push(match flag {
            "-n" => "--namespace",
            other => other,
        });
        if matches!(flag, "-h" | "--help") {
            return Ok(Command::Help);
        }
        let mut value = || -> Result<String, String> {
            match inline.clone() {
                Some(v) => Ok(v),
                None => it.next().cloned().ok_or_else(|| format!("{flag} needs a value")),
            }
        };
        match flag {
            "-o" | "--output" => {
                opts.output = match value()?.as_str() {
                    "istio" => Output::Istio,
                    "envoy" => Output::Envoy,
                    other => return Err(format!("--output `{other}`: expected `istio` or `envoy`")),
                }
            }
            "--wasm-url" => opts.wasm_url = Some(value()?),
            "--sha256" => {
                let v = value()?.to_ascii_lowercase();
                if v.len() != 64 || !v.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err(format!("--sha256 `{v}`: expected 64 hexadecimal digits (sha256sum of the module)"));
                }
                opts.sha256 = Some(v);
            }
            "--namespace" | "-n" => {
                let v = value()?;
                if !is_dns_label(&v) {
                    return Err(format!("--namespace `{v}`: expected a Kubernetes namespace name (lowercase letters, digits, `-`)"));
                }
                opts.namespace = v;
            }
            "--gateway-selector" => {
                let v = value()?;
                match v.split_once('=') {
                    Some((k, val)) if !k.is_empty() && !k.contains(char::is_whitespace) && !val.contains(char::is_whitespace) => {
                        selector.push((k.to_string(), val.to_string()))
                    }
                    _ => return Err(format!("--gateway-selector `{v}`: expected LABEL=VALUE, e.g. istio=ingressgateway")),
                }
            }
            "--gateway-ref" => {
                let v = value()?;
                if v.is_empty() || v.contains(char::is_whitespace) {
                    return Err(format!("--gateway-ref `{v}`: expected the name of a Gateway"));
                }
                gateway_ref = Some(v);
            }
            "--ca-file" => opts.ca_file = value()?,
            "--ingress-class" => {
                let v = value()?;
                if v.is_empty() || v.contains(char::is_whitespace) {
                    return Err(format!("--ingress-class `{v}`: expected the name of an ingress class, e.g. istio"));
                }
                opts.ingress_class = v;
            }
            "--default" => {
                let v = value()?;
                if !v.contains('/') {
                    return Err(format!("--default `{v}`: expected namespace/name of an Ingress"));
                }
                opts.default = Some(v);
            }
            other => return Err(format!("unknown option `{other}`")),
        }
    }
    match (gateway_ref, selector.is_empty()) {
        (Some(_), false) => return Err("--gateway-ref and --gateway-selector exclude each other (a WasmPlugin has one or the other)".into()),
        (Some(name), true) => opts.gateway = GatewayTarget::GatewayRef(name),
        (None, false) => opts.gateway = GatewayTarget::Selector(selector),
        (None, true) => {}
    }
    let mut warnings = Vec::new();
    if opts.output == Output::Envoy {
        envoy::wasm_path(opts.wasm_url.as_deref())?;
        for flag in given.iter().filter(|f| ISTIO_ONLY.contains(f)) {
            warnings.push(format!("warning: {flag} applies to --output istio only; ignored with --output envoy"));
        }
    } else {
        match &opts.wasm_url {
            None => return Err(istio::WASM_URL_REQUIRED.to_string()),
            Some(u) if !["oci://", "https://", "http://", "file://"].iter().any(|p| u.starts_with(p)) => {
                return Err(format!("--wasm-url `{u}`: expected an oci://, https://, http:// or file:// URL, e.g. oci://registry.example.com/oidc-edge:0.1.0"))
            }
            Some(u) if u.starts_with("oci://") && !u.contains('@') && (u.ends_with(":latest") || !u.rsplit('/').next().unwrap_or("").contains(':')) => {
                warnings.push(format!("warning: --wasm-url `{u}` is not pinned (no tag, or `latest`): each gateway restart may load another module; use a version tag or @sha256 digest"))
            }
            Some(_) => {}
        }
        for flag in given.iter().filter(|f| ENVOY_ONLY.contains(f)) {
            warnings.push(format!("warning: {flag} applies to --output envoy only; ignored with --output istio"));
        }
    }
    Ok(Command::Render(Box::new(opts), files, warnings))
}

/// Options that only shape the Istio resources, and the one only Envoy's clusters use.
const ISTIO_ONLY: [&str; 4] = ["--sha256", "--namespace", "--gateway-selector", "--gateway-ref"];
const ENVOY_ONLY: [&str; 1] = ["--ca-file"];

fn is_dns_label(v: &str) -> bool {
    !v.is_empty()
        && v.len() <= 63
        && v.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !v.starts_with('-')
        && !v.ends_with('-')
}

//! The annotation harness: Ingress YAML in, `oidc-edge render` out (Istio and Envoy).
//!
//! Apart from `targets.rs` because it needs the CLI crate, which the filter's own tests
//! cannot depend on; `cli/tests/fuzz_regressions.rs` replays its seeds and regressions.

use oidc_edge_cli::{render, Input, Options, Output};

/// Every input either renders to YAML documents again, each carrying a configuration the
/// filter accepts (the renderer checks it with `Settings::from_json`), or is refused with
/// at least one message; nothing panics.
pub fn annotations(data: &[u8]) {
    // The CLI reads its inputs as UTF-8 text and refuses other bytes before parsing.
    let Ok(text) = std::str::from_utf8(data) else { return };
    let inputs = [Input { name: "fuzz.yaml".to_string(), text: text.to_string() }];
    for output in [Output::Istio, Output::Envoy] {
        let opts = Options { output, wasm_url: (output == Output::Istio).then(|| "oci://registry.example.com/oidc-edge:0.1.0".to_string()), ..Options::default() };
        match render(&inputs, &opts) {
            Ok(rendered) => {
                for doc in serde_yaml_ng::Deserializer::from_str(&rendered.text) {
                    let parsed = <serde_yaml_ng::Value as serde::Deserialize>::deserialize(doc);
                    assert!(parsed.is_ok(), "the rendered output is not YAML: {parsed:?}\n{}", rendered.text);
                }
                assert!(!rendered.plugin_config.settings.is_empty(), "rendered without any setting");
            }
            Err(failure) => {
                assert!(!failure.errors.is_empty(), "refused without a message");
                assert!(failure.errors.iter().all(|e| !e.trim().is_empty()), "an empty message: {failure:?}");
            }
        }
    }
}

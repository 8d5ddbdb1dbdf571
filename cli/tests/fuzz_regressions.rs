//! The `annotations` fuzz target's inputs as plain tests: every file of
//! `fuzz/seeds/annotations/` and `fuzz/regressions/annotations/` goes through the harness
//! the fuzzer calls (the filter's other targets are replayed by tests/fuzz_regressions.rs).

#[path = "../../fuzz/src/annotations.rs"]
mod harness;

use std::path::Path;

fn replay(folder: &str) -> usize {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz").join(folder).join("annotations");
    let Ok(entries) = std::fs::read_dir(&dir) else { return 0 };
    let mut files: Vec<_> = entries.map(|e| e.unwrap().path()).filter(|p| p.is_file()).collect();
    files.sort();
    for file in &files {
        let data = std::fs::read(file).unwrap();
        if let Err(panic) = std::panic::catch_unwind(|| harness::annotations(&data)) {
            let msg = panic.downcast_ref::<String>().cloned().or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string())).unwrap_or_default();
            panic!("fuzz target `annotations` fails on {}: {msg}", file.display());
        }
    }
    files.len()
}

#[test]
fn annotation_seeds_and_crash_inputs_pass() {
    let seeds = replay("seeds");
    assert!(seeds >= 4, "the seed corpus is the Ingress manifests of tests/ingress ({seeds} found)");
    let regressions = replay("regressions");
    println!("{seeds} seeds and {regressions} regression inputs replayed");
}

/// The harness must be able to fail: a manifest that renders is checked as rendered YAML,
/// one that is refused must say why. Both paths are reached by the seeds.
#[test]
fn seeds_reach_both_outcomes() {
    use oidc_edge_cli::{render, Input, Options};
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/seeds/annotations");
    let outcome = |name: &str| {
        let text = std::fs::read_to_string(dir.join(name)).unwrap();
        let opts = Options { wasm_url: Some("oci://registry.example.com/oidc-edge:0.1.0".into()), ..Options::default() };
        render(&[Input { name: name.to_string(), text }], &opts).is_ok()
    };
    assert!(outcome("one-app"), "one-app renders");
    assert!(!outcome("bad-annotations"), "bad-annotations is refused");
}

//! The rendered `--output envoy` fragments, put into a complete Envoy configuration, are
//! accepted by the real Envoy (`envoy --mode validate` loads the wasm module and hands it the
//! plugin configuration, so the filter's own configure step runs too).

mod common;

use common::*;

#[test]
fn rendered_envoy_fragments_pass_envoy_validate() {
    let (envoy, wasm) = match envoy_and_wasm() {
        Ok(found) => found,
        Err(missing) => {
            eprintln!("SKIPPED rendered_envoy_fragments_pass_envoy_validate: missing {missing}");
            return;
        }
    };
    let manifest = ingress("one-app.yaml");
    let r = run(
        &["render", "--output", "envoy", "--wasm-url", wasm.to_str().unwrap(), manifest.to_str().unwrap()],
        "",
    );
    assert_eq!(r.code, 0, "render failed:\n{}", r.stderr);
    let config = complete_envoy_config(&r.stdout);
    let (ok, log) = envoy_validate(&envoy, &config, "one-app", &[]);
    assert!(ok, "envoy --mode validate refused the rendered config\n{log}");
    assert!(log.contains("OK"), "{log}");
}

/// Issuers on an IP address (IPv4 and IPv6) give a STATIC cluster without SNI.
#[test]
fn ip_issuer_envoy_fragments_pass_envoy_validate() {
    let (envoy, wasm) = match envoy_and_wasm() {
        Ok(found) => found,
        Err(missing) => {
            eprintln!("SKIPPED ip_issuer_envoy_fragments_pass_envoy_validate: missing {missing}");
            return;
        }
    };
    let manifest = std::fs::read_to_string(ingress("one-app.yaml")).unwrap();
    for (i, issuer) in ["https://10.1.2.3:8443/realms/main", "https://[fd00::1]/realms/main"].iter().enumerate() {
        let m = manifest.replace("https://login.example.com/realms/main", issuer);
        let r = run(&["render", "-o", "envoy", "--wasm-url", wasm.to_str().unwrap()], &m);
        assert_eq!(r.code, 0, "{issuer}: {}", r.stderr);
        let (ok, log) = envoy_validate(&envoy, &complete_envoy_config(&r.stdout), &format!("ip-issuer-{i}"), &[]);
        assert!(ok, "{issuer}: envoy --mode validate refused the rendered config\n{log}");
    }
}

/// A configuration the filter refuses makes `--mode validate` fail: the check above is real.
#[test]
fn envoy_validate_catches_a_bad_plugin_config() {
    let (envoy, wasm) = match envoy_and_wasm() {
        Ok(found) => found,
        Err(missing) => {
            eprintln!("SKIPPED envoy_validate_catches_a_bad_plugin_config: missing {missing}");
            return;
        }
    };
    let manifest = ingress("one-app.yaml");
    let r = run(&["render", "-o", "envoy", "--wasm-url", wasm.to_str().unwrap(), manifest.to_str().unwrap()], "");
    assert_eq!(r.code, 0, "{}", r.stderr);
    let broken = r.stdout.replace("\"clock_skew_seconds\": 30", "\"clock_skew_seconds\": 30, \"no_such_key\": 1");
    assert_ne!(broken, r.stdout);
    let (ok, log) = envoy_validate(&envoy, &complete_envoy_config(&broken), "one-app-broken", &[]);
    assert!(!ok, "envoy accepted a plugin configuration with an unknown key\n{log}");
    assert!(log.contains("field `no_such_key`: unknown field"), "the filter's own message should be in Envoy's log\n{log}");
}

#[test]
fn two_apps_envoy_fragments_pass_envoy_validate() {
    let (envoy, wasm) = envoy_and_wasm().expect("make setup build first");
    let manifest = ingress("two-apps.yaml");
    let r = run(&["render", "-o", "envoy", "--wasm-url", wasm.to_str().unwrap(), manifest.to_str().unwrap()], "");
    assert_eq!(r.code, 0, "render failed:\n{}", r.stderr);
    let config = complete_envoy_config(&r.stdout);
    let cookie = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    let env = [("SHOP_CLIENT_SECRET", "shop-secret"), ("ADMIN_CLIENT_SECRET", "admin-secret"), ("OIDC_EDGE_COOKIE_SECRET", cookie)];
    let (ok, log) = envoy_validate(&envoy, &config, "two-apps", &env);
    assert!(ok, "envoy --mode validate refused the rendered config\n{log}");
}

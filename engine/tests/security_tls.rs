//! TLS certificate verification stays on for every client kcache builds or is handed.
//!
//! kcache never constructs TLS settings of its own: [`kcache::reflector::KubeSource`]
//! and [`kcache::client::CachedClient`] take a `kube::Client`, whose TLS comes
//! from its `kube::Config`. So the checks are (1) kube's configs for an https
//! URL or a kubeconfig verify certificates unless told otherwise, shown on the
//! rustls configuration kube actually builds (its certificate verifier), with a
//! control proving the check can fail; and (2) a source scan: no kcache,
//! loadgen or bench source file turns verification off.

use kube::client::ConfigExt;
use kube::config::{KubeConfigOptions, Kubeconfig};

/// Base64 of a self-signed test certificate (CN=kcache-test-client), used as the cluster CA.
const CA_B64: &str = "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCk1JSUJrVENDQVRlZ0F3SUJBZ0lVUCtZaVgvTWEvUDRXY1UvbkRIYXhLUTNsTkhRd0NnWUlLb1pJemowRUF3SXcKSFRFYk1Ca0dBMVVFQXd3U2EyTmhZMmhsTFhSbGMzUXRZMnhwWlc1ME1DQVhEVEkyTVRFeU16RTVNekEwTkZvWQpEekl4TWpZeE1ETXdNVGt6TURRMFdqQWRNUnN3R1FZRFZRUUREQkpyWTJGamFHVXRkR1Z6ZEMxamJHbGxiblF3CldUQVRCZ2NxaGtqT1BRSUJCZ2dxaGtqT1BRTUJCd05DQUFUZGMzMmZOQjRwYUdQUnNacWM0MFliNDJpc3B1TkUKQ1B0OTF3OGJWdEo2L3UvODFKcWVNWThGNVF5c0RCYUpUeC96dEs5MjhIOHJCbHdtQ0VkY3BWUW5vMU13VVRBZApCZ05WSFE0RUZnUVV0SnRMT3Z0eTRJZ0NESG1OUDc5QU9rZHJPTGt3SHdZRFZSMGpCQmd3Rm9BVXRKdExPdnR5CjRJZ0NESG1OUDc5QU9rZHJPTGt3RHdZRFZSMFRBUUgvQkFVd0F3RUIvekFLQmdncWhrak9QUVFEQWdOSUFEQkYKQWlCMi9ULzdFV1hpZ0VEOEZnS2oxTmZ0UTFaQ0xZVmRwbHdlRkRmczZwejltQUloQU5mejFCYTJONTE1dUpvYwpnc0RaQW5KZXJHU3ZQZUNudUZLNS9zYUplV0IvCi0tLS0tRU5EIENFUlRJRklDQVRFLS0tLS0K";

fn kubeconfig(insecure: Option<bool>) -> Kubeconfig {
    let insecure = insecure.map(|b| format!("\n    insecure-skip-tls-verify: {b}")).unwrap_or_default();
    let yaml = format!(
        "apiVersion: v1
kind: Config
current-context: kind-kcache
clusters:
- name: kind-kcache
  cluster:
    server: https://127.0.0.1:6443
    certificate-authority-data: {CA_B64}{insecure}
contexts:
- name: kind-kcache
  context:
    cluster: kind-kcache
    user: kind-kcache
users:
- name: kind-kcache
  user:
    token: not-a-real-token
"
    );
    Kubeconfig::from_yaml(&yaml).expect("test kubeconfig parses")
}

async fn config_from(kc: Kubeconfig) -> kube::Config {
    kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default()).await.expect("config from kubeconfig")
}

/// The certificate verifier of the rustls configuration kube builds from `config`, as text.
fn verifier_of(config: &kube::Config) -> String {
    let tls = config.rustls_client_config().expect("rustls config");
    format!("{tls:?}")
}

#[test]
fn a_config_for_an_https_url_verifies_certificates_by_default() {
    let config = kube::Config::new("https://127.0.0.1:6443".parse().expect("url"));
    assert!(!config.accept_invalid_certs);
}

#[tokio::test]
async fn a_kubeconfig_without_insecure_skip_tls_verify_keeps_verification() {
    assert!(!config_from(kubeconfig(None)).await.accept_invalid_certs);
    assert!(!config_from(kubeconfig(Some(false))).await.accept_invalid_certs);
    // Control: the flag is read, so the assertions above can fail.
    assert!(config_from(kubeconfig(Some(true))).await.accept_invalid_certs);
}

#[tokio::test]
async fn the_tls_configuration_kube_builds_checks_certificates() {
    let config = config_from(kubeconfig(None)).await;
    let tls = verifier_of(&config);
    assert!(tls.contains("WebPkiServerVerifier"), "expected a webpki verifier: {tls}");
    assert!(!tls.contains("NoCertificateVerification"), "{tls}");
    // Control: with verification off, kube swaps in a verifier that accepts anything.
    let mut insecure = config;
    insecure.accept_invalid_certs = true;
    let tls = verifier_of(&insecure);
    assert!(tls.contains("NoCertificateVerification"), "{tls}");
}

/// Every `.rs` file under `dir`, recursively.
fn rust_files(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

#[test]
fn no_kcache_source_file_turns_certificate_verification_off() {
    // Grep-based: kcache builds no TLS configuration itself, so what can be
    // checked is that no code path sets the flag or swaps the verifier.
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut files = Vec::new();
    for dir in ["engine/src", "loadgen/src", "loadgen/tests", "bench/src", "bench/benches"] {
        rust_files(&root.join(dir), &mut files);
    }
    assert!(files.len() > 20, "expected the workspace sources under {}", root.display());
    let forbidden = ["accept_invalid_certs", "insecure_skip_tls_verify", "dangerous()", "NoCertificateVerification", "danger_accept_invalid"];
    for f in &files {
        let text = std::fs::read_to_string(f).expect("readable source");
        for word in forbidden {
            assert!(!text.contains(word), "{} mentions {word}", f.display());
        }
    }
}

//! Both providers compiled in, no process-wide provider installed: what a service gets when a
//! second crate enables rustls's `ring` feature and nobody calls `install_default`.
//!
//! Nothing in this file installs a provider, so every test in this process sees none.

use rustls::crypto::CryptoProvider;
use tests_providers::assert_every_mode_connects;

/// tiberius 0.13 builds its TLS configuration with `builder_with_provider`: the installed
/// provider if there is one, else aws-lc-rs. It never asks rustls to pick one from the crate
/// features, so two providers in the graph do not stop it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_mode_connects_through_the_layer() {
    assert!(
        CryptoProvider::get_default().is_none(),
        "this process must start without a provider"
    );
    assert_every_mode_connects().await;
    assert!(
        CryptoProvider::get_default().is_none(),
        "connecting must not install a process-wide provider"
    );
}

/// The case that really fails with both providers in the graph: code that asks rustls for the
/// process default (`ClientConfig::builder()`, as a hand-made TLS client or an HTTP client
/// built with a provider-agnostic feature does) panics, because rustls cannot choose between
/// two compiled-in providers. Installing one (see the other files) is the fix.
#[test]
fn rustls_default_builder_panics_without_an_installed_provider() {
    assert!(
        CryptoProvider::get_default().is_none(),
        "this process must start without a provider"
    );
    let result = std::panic::catch_unwind(|| {
        let _ = rustls::ClientConfig::builder();
    });
    assert!(
        result.is_err(),
        "rustls chose a provider by itself although both ring and aws-lc-rs are compiled in"
    );
}

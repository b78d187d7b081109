//! Both providers compiled in, `ring` installed as the process-wide provider before the first
//! connect, as a service does when another of its TLS clients needs a default.

use std::sync::Once;

use rustls::crypto::CryptoProvider;
use tests_providers::assert_every_mode_connects;

fn install() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        CryptoProvider::install_default(rustls::crypto::ring::default_provider())
            .expect("no provider was installed before");
    });
}

/// tiberius honours the installed provider; the layer connects in every mode with it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_mode_connects_through_the_layer() {
    install();
    assert_every_mode_connects().await;
}

/// With a provider installed, rustls's default builder works again: the panic of the
/// no-provider case is gone.
#[test]
fn rustls_default_builder_uses_the_installed_provider() {
    install();
    assert!(CryptoProvider::get_default().is_some(), "installed");
    let _ = rustls::ClientConfig::builder();
}

//! The one rustls crypto provider the probes use.

use std::sync::Arc;

use rustls::crypto::CryptoProvider;

/// The crypto provider every probe uses: aws-lc-rs, never the process default, so the doctor
/// neither depends on nor changes what tiberius installs for `connect`.
pub(crate) fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

//! What the accept loop and every connection task share: the configuration, the TLS
//! configurations built once at start-up, and the counters. Its own module so that the server
//! (which owns it) and the session (which reads it) both depend on it, not on each other.

use std::sync::Arc;

use rustls::ServerConfig;

use crate::config::EmulatorConfig;
use crate::stats::StatsCell;

/// State shared by the accept loop and every connection.
pub(crate) struct Shared {
    pub(crate) config: EmulatorConfig,
    /// TLS for TDS 7 (wrapped in PRELOGIN packets); `None` when the setting is `none`.
    pub(crate) tds7_tls: Option<Arc<ServerConfig>>,
    /// TLS for TDS 8.0 strict (ALPN tds/8.0).
    pub(crate) strict_tls: Arc<ServerConfig>,
    pub(crate) stats: StatsCell,
}

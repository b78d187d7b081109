//! The running emulator: listener, accept loop, connection tasks, and the handle tests hold.

use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::{EmulatorConfig, EncryptionSetting};
use crate::session;
use crate::shared::Shared;
use crate::stats::{ClientRecord, Stats, StatsCell};
use crate::tls::ServerIdentity;

/// How often the `wait_for_*` helpers look at the counters.
const POLL_INTERVAL: Duration = Duration::from_millis(10);

/// A running emulator. Dropping it stops the listener and every connection without waiting;
/// [`Emulator::shutdown`] does the same and waits until all tasks are gone.
pub struct Emulator {
    local_addr: SocketAddr,
    ca_pem: String,
    shared: Arc<Shared>,
    cancel: CancellationToken,
    tracker: TaskTracker,
}

impl std::fmt::Debug for Emulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Emulator")
            .field("local_addr", &self.local_addr)
            .field("encryption", &self.shared.config.encryption)
            .finish_non_exhaustive()
    }
}

impl Emulator {
    /// Builds the certificates and TLS configurations, binds the listener and starts
    /// accepting. Errors: the address cannot be bound, or the certificate cannot be generated
    /// or loaded (kind `Other`, wrapping a [`TlsSetupError`](crate::TlsSetupError)).
    pub async fn start(config: EmulatorConfig) -> io::Result<Emulator> {
        let identity = ServerIdentity::from_source(&config.certificate, config.certificate_flaw)
            .map_err(io::Error::other)?;
        // TDS 7: no TLS 1.3 session tickets; they would be wrapped after the client switched
        // to raw TLS (tds-handshake.md §4.1).
        let tds7_tls = match config.encryption {
            EncryptionSetting::None => None,
            _ => Some(
                identity
                    .server_config(&config.tds7_tls, false, 0)
                    .map_err(io::Error::other)?,
            ),
        };
        let strict_tls = identity
            .server_config(&config.strict_tls, true, 2)
            .map_err(io::Error::other)?;
        let listener = TcpListener::bind(config.listen).await?;
        let local_addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            config,
            tds7_tls,
            strict_tls,
            stats: StatsCell::default(),
        });
        let cancel = CancellationToken::new();
        let tracker = TaskTracker::new();
        tracker.spawn(accept_loop(
            listener,
            shared.clone(),
            cancel.clone(),
            tracker.clone(),
        ));
        tracing::info!(%local_addr, encryption = %shared.config.encryption, "tds-emulator listening");
        Ok(Emulator {
            local_addr,
            ca_pem: identity.ca_pem().to_owned(),
            shared,
            cancel,
            tracker,
        })
    }

    /// The address the emulator listens on (with the real port when started on port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// PEM of the CA that signed the server certificate: what a client should trust.
    pub fn ca_cert_pem(&self) -> &str {
        &self.ca_pem
    }

    /// Writes [`ca_cert_pem`](Self::ca_cert_pem) to `path`, for clients that take a file
    /// (tiberius `Config::trust_cert_ca(path)`, pytds `cafile=`).
    pub fn write_ca_pem(&self, path: impl AsRef<Path>) -> io::Result<()> {
        std::fs::write(path, &self.ca_pem)
    }

    /// The configuration the emulator runs with.
    pub fn config(&self) -> &EmulatorConfig {
        &self.shared.config
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> Stats {
        self.shared.stats.snapshot()
    }

    /// What each client offered and how far it got, in accept order.
    pub fn clients(&self) -> Vec<ClientRecord> {
        self.shared.stats.clients()
    }

    /// Connections accepted and not finished yet (including stalled ones).
    pub fn open_connections(&self) -> usize {
        self.shared.stats.open()
    }

    /// Waits until exactly `n` connections are open, at most `timeout`. Returns whether it
    /// happened.
    pub async fn wait_for_open_connections(&self, n: usize, timeout: Duration) -> bool {
        self.wait_until(|emulator| emulator.open_connections() == n, timeout)
            .await
    }

    /// Waits until `condition(&stats)` holds, at most `timeout`. Returns whether it did.
    pub async fn wait_for_stats(
        &self,
        condition: impl Fn(&Stats) -> bool,
        timeout: Duration,
    ) -> bool {
        self.wait_until(|emulator| condition(&emulator.stats()), timeout)
            .await
    }

    async fn wait_until(&self, condition: impl Fn(&Self) -> bool, timeout: Duration) -> bool {
        tokio::time::timeout(timeout, async {
            while !condition(self) {
                tokio::time::sleep(POLL_INTERVAL).await;
            }
        })
        .await
        .is_ok()
    }

    /// Stops the listener, closes every connection (stalled ones included) and waits until
    /// every task has ended.
    pub async fn shutdown(self) {
        self.cancel.cancel();
        self.tracker.close();
        self.tracker.wait().await;
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        self.cancel.cancel();
        self.tracker.close();
    }
}

/// Decrements the open-connection gauge when a connection task ends, however it ends.
struct OpenConnection(Arc<Shared>);

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.stats.connection_closed();
    }
}

async fn accept_loop(
    listener: TcpListener,
    shared: Arc<Shared>,
    cancel: CancellationToken,
    tracker: TaskTracker,
) {
    loop {
        let accepted = tokio::select! {
            _ = cancel.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((tcp, peer)) => spawn_connection(&shared, &cancel, &tracker, tcp, peer),
            Err(error) => {
                // Typically EMFILE under load: back off briefly instead of spinning.
                tracing::warn!(%error, "accept failed");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
}

fn spawn_connection(
    shared: &Arc<Shared>,
    cancel: &CancellationToken,
    tracker: &TaskTracker,
    tcp: TcpStream,
    peer: SocketAddr,
) {
    // Replies are small and latency matters more than segment count (and a reset must not
    // race a reply held back by Nagle).
    let _ = tcp.set_nodelay(true);
    let index = shared.stats.accept(peer);
    let open = OpenConnection(shared.clone());
    let shared = shared.clone();
    let cancel = cancel.clone();
    tracker.spawn(async move {
        let _open = open;
        tokio::select! {
            _ = cancel.cancelled() => {}
            _ = session::serve(shared, tcp, index) => {}
        }
    });
}

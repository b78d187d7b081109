//! Counters per phase and outcome, and what each client offered, for tests to assert on.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use tds_handshake::Encryption;

/// How many [`ClientRecord`]s are kept; later connections are counted but not recorded.
pub const MAX_CLIENT_RECORDS: usize = 100_000;

/// A snapshot of the emulator's counters (all totals since start).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// TCP connections accepted.
    pub accepted: u64,
    /// Connections whose first byte was 0x16 (a TLS ClientHello: TDS 8.0 strict).
    pub tls_first: u64,
    /// Plaintext PRELOGIN messages read (TDS 7), plus PRELOGIN messages read inside strict TLS.
    pub prelogin_received: u64,
    /// PRELOGIN replies sent.
    pub prelogin_replied: u64,
    /// Replies after which the MS-TDS matrix terminated the connection.
    pub matrix_terminations: u64,
    /// Plaintext PRELOGINs refused by a strict-only server (reset without a reply).
    pub strict_only_refusals: u64,
    /// TLS-first connections that a server without TDS 8.0 left hanging, closed or reset.
    pub tls_first_refused: u64,
    /// TLS handshakes started (TDS 7 wrapped or strict).
    pub tls_started: u64,
    /// TLS handshakes completed.
    pub tls_completed: u64,
    /// TLS handshakes that failed inside rustls (e.g. the client aborted on the certificate).
    pub tls_failed: u64,
    /// LOGIN7 messages read.
    pub login7_received: u64,
    /// Successful logins (routed logins are not counted here but in `routed`).
    pub logged_in: u64,
    /// Logins answered with a routing ENVCHANGE (see [`EmulatorConfig::route`](crate::EmulatorConfig::route)).
    pub routed: u64,
    /// Logins rejected with an ERROR token (credentials, database or a fault).
    pub login_failed: u64,
    /// SQL batch and RPC requests answered.
    pub queries: u64,
    /// Attention (cancel) requests acknowledged.
    pub attentions: u64,
    /// Connections the server ended with a TCP reset.
    pub resets_sent: u64,
    /// Connections the server ended with an orderly close (FIN) on purpose.
    pub closes_sent: u64,
    /// Connections that went silent (stall fault or legacy hang).
    pub stalls: u64,
    /// Connections that violated the protocol (unexpected packet type, undecodable message).
    pub protocol_errors: u64,
    /// LOGIN7 messages refused for their TDS version (below 7.1: the server closes without a
    /// response, as SQL Server does with versions it does not support, error 17802).
    pub tds_version_refused: u64,
    /// First messages that were neither PRELOGIN nor a TLS ClientHello (a TDS 7.0 LOGIN7 sent
    /// without PRELOGIN, a pre-TDS 7 login, anything else): closed without a response
    /// (MS-TDS 3.3.5.1). Also counted in `protocol_errors`.
    pub unknown_first_message: u64,
    /// Faults injected, by [`Fault::kind`](crate::Fault::kind).
    pub faults_injected: BTreeMap<&'static str, u64>,
}

impl Stats {
    /// How many times the fault kind was injected (0 if never).
    pub fn faults(&self, kind: &str) -> u64 {
        self.faults_injected.get(kind).copied().unwrap_or(0)
    }

    /// All faults injected.
    pub fn faults_total(&self) -> u64 {
        self.faults_injected.values().sum()
    }
}

/// What one client offered and how far it got. Never holds a password.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClientRecord {
    /// 0-based accept index (the index schedules use).
    pub index: u64,
    /// The client's address.
    pub peer: Option<SocketAddr>,
    /// The first byte the client sent.
    pub first_byte: Option<u8>,
    /// `Some(true)` when the client started with TLS (TDS 8.0 strict), `Some(false)` with a
    /// plaintext PRELOGIN.
    pub started_with_tls: Option<bool>,
    /// The ENCRYPTION byte of the client's PRELOGIN.
    pub offered_encryption: Option<Encryption>,
    /// The ENCRYPTION byte the server replied.
    pub replied_encryption: Option<Encryption>,
    /// The matrix said to terminate after the reply.
    pub terminated_by_matrix: bool,
    /// Negotiated TLS version ("TLSv1_2", "TLSv1_3").
    pub tls_version: Option<String>,
    /// ALPN protocol the server selected (strict: "tds/8.0").
    pub alpn: Option<String>,
    /// Only LOGIN7 was encrypted (client OFF, server OFF).
    pub login_only_encryption: bool,
    /// LOGIN7 TDSVersion.
    pub tds_version: Option<u32>,
    /// LOGIN7 user name (at most 256 characters are kept).
    pub user: Option<String>,
    /// LOGIN7 database, empty if none was sent (at most 256 characters are kept).
    pub database: Option<String>,
    /// LOGIN7 application name (at most 256 characters are kept).
    pub app_name: Option<String>,
    /// LOGIN7 requested packet size.
    pub requested_packet_size: Option<u32>,
    /// The login succeeded and the session stayed here (false for a routed login).
    pub logged_in: bool,
    /// Where the login was routed (`HOST:PORT`), if it was.
    pub routed_to: Option<String>,
    /// The login error number sent, if any.
    pub login_error: Option<u32>,
    /// Requests answered after login.
    pub queries: u64,
    /// The fault injected on this connection, in its text form.
    pub fault: Option<String>,
    /// The description of a TLS alert the client sent during the handshake, if the server
    /// read one (e.g. 70 protocol_version after an old ServerHello).
    pub client_alert: Option<u8>,
}

#[derive(Debug, Default)]
pub(crate) struct StatsCell {
    counters: Mutex<Stats>,
    clients: Mutex<Vec<ClientRecord>>,
    open: AtomicUsize,
}

impl StatsCell {
    pub(crate) fn snapshot(&self) -> Stats {
        lock(&self.counters).clone()
    }

    pub(crate) fn clients(&self) -> Vec<ClientRecord> {
        lock(&self.clients).clone()
    }

    pub(crate) fn open(&self) -> usize {
        self.open.load(Ordering::SeqCst)
    }

    pub(crate) fn count(&self, update: impl FnOnce(&mut Stats)) {
        update(&mut lock(&self.counters));
    }

    /// Registers an accepted connection: counts it, opens its record, returns its index.
    pub(crate) fn accept(&self, peer: SocketAddr) -> u64 {
        self.open.fetch_add(1, Ordering::SeqCst);
        let index = {
            let mut stats = lock(&self.counters);
            stats.accepted += 1;
            stats.accepted - 1
        };
        let mut clients = lock(&self.clients);
        if clients.len() < MAX_CLIENT_RECORDS {
            clients.push(ClientRecord {
                index,
                peer: Some(peer),
                ..ClientRecord::default()
            });
        }
        index
    }

    pub(crate) fn connection_closed(&self) {
        self.open.fetch_sub(1, Ordering::SeqCst);
    }

    pub(crate) fn record(&self, index: u64, update: impl FnOnce(&mut ClientRecord)) {
        let mut clients = lock(&self.clients);
        if let Some(record) = usize::try_from(index)
            .ok()
            .and_then(|i| clients.get_mut(i))
            .filter(|record| record.index == index)
        {
            update(record);
        }
    }
}

/// Locks a mutex, recovering the data if a panicking thread poisoned it (counters stay usable).
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

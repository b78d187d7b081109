//! A SQL Server handshake emulator that misbehaves on purpose.
//!
//! `tds-emulator` plays the server side of the SQL Server connection handshake faithfully
//! enough that real clients (tiberius, python-tds, FreeTDS, ...) log in and run `SELECT 1`,
//! and it fails on demand in every way that makes a client report error 10054 ("An existing
//! connection was forcibly closed by the remote host") and its relatives:
//!
//! - the five server encryption settings ([`EncryptionSetting`]): no TLS, SQL Server's default,
//!   Force Encryption, Force Strict Encryption (TDS 8.0 only), and strict plus legacy on one port;
//! - the MS-TDS 2.2.6.5 encryption matrix, including "reply, then terminate" as a TCP reset;
//! - TLS inside TDS 7 PRELOGIN packets (login-only and full encryption) and TDS 8.0 strict TLS
//!   with ALPN `tds/8.0`, with a certificate generated at start-up (a CA plus a `localhost` /
//!   `127.0.0.1` leaf) or loaded from PEM;
//! - LOGIN7 parsing, a real login response, login errors by number, replies to `SELECT 1` and to
//!   sized result sets (`SELECT ROWS <n> BYTES <m>`, for throughput benchmarks);
//! - faults at exact points of the handshake ([`Fault`]) on deterministic schedules
//!   ([`Schedule`]), and counters and per-client records ([`Stats`], [`ClientRecord`]);
//! - gateway routing ([`Route`], [`EmulatorConfig::route`]): a login answered with an
//!   ENVCHANGE routing token that sends the client to another server.
//!
//! The PRELOGIN codec, packet framing, the encryption matrix and TLS alert bytes come from the
//! sans-IO crate `tds-handshake`; this crate adds I/O, TLS, LOGIN7 and the token stream.
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use tds_emulator::{Emulator, EmulatorConfig, EncryptionSetting, Fault, Schedule};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> std::io::Result<()> {
//! let emulator = Emulator::start(
//!     EmulatorConfig::new()
//!         .encryption(EncryptionSetting::Force)
//!         .fault(Fault::ResetBeforePreloginReply, Schedule::FirstN(2)),
//! )
//! .await?;
//! let addr = emulator.local_addr(); // 127.0.0.1:<ephemeral port>
//! let ca_path = std::env::temp_dir().join(format!("emulator-ca-{}.pem", addr.port()));
//! emulator.write_ca_pem(&ca_path)?; // trust this in the client: Config::trust_cert_ca(path)
//! // ... point a client at `addr` ...
//! assert!(emulator.wait_for_open_connections(0, Duration::from_secs(5)).await);
//! assert_eq!(emulator.stats().accepted, 0);
//! emulator.shutdown().await;
//! # let _ = std::fs::remove_file(ca_path);
//! # Ok(())
//! # }
//! ```
//!
//! # Modules
//!
//! | module | role |
//! |---|---|
//! | [`config`] | [`EmulatorConfig`] and the settings it is built from |
//! | [`fault`] | [`Fault`], [`FaultRule`] and their text syntax (`FAULT@SCHEDULE`) |
//! | [`schedule`] | [`Schedule`]: always, first N, every Nth, probability with a seed |
//! | [`server`] | [`Emulator`]: start, inspect, wait, shut down |
//! | [`stats`] | [`Stats`] counters and [`ClientRecord`]s |
//! | [`login7`] | the LOGIN7 parser |
//! | [`route`] | [`Route`], [`RouteRule`]: where a gateway sends logins, and their text syntax |
//! | [`tokens`] | TDS token encoders (login response, errors, result sets) per [`tokens::Dialect`] |
//! | [`tls`] | certificate generation/loading and rustls configurations |
//!
//! Private modules: `link` (the socket, TLS driving, resets), `session` (one connection's
//! state machine and fault points), `shared` (what the server and its sessions share),
//! `request` (what a query asks for).
//!
//! # Behaviour worth knowing
//!
//! - A server that does not accept TDS 8.0 (`none`, `off`, `force`) answers a TLS-first client
//!   with silence by default, as SQL Server 2019 does (clients time out);
//!   [`TlsFirstResponse`] switches to a close or a reset (MS-TDS 3.3.5.1 allows closing).
//! - "Terminate" in the matrix is a TCP reset sent after the client's next bytes or after
//!   [`EmulatorConfig::terminate_grace`] (2 s), so the reply itself always arrives and the
//!   client reads ECONNRESET; [`Termination::Fin`] closes in order instead.
//! - In strict mode the PRELOGIN reply inside TLS says ENCRYPT_NOT_SUP (tds-handshake.md §5.2).
//! - LOGINACK echoes TDS 8.0 when the client sent 8.0, else the client's 7.x version capped at 7.4.
//! - Each session speaks its client's dialect ([`tokens::Dialect`]): TDS 7.1 gets 7.1 field
//!   sizes. What SQL Server 2019/2022 refuse is closed without a response: a first message
//!   that is neither PRELOGIN nor a ClientHello (TDS 7.0, 4.2, 5.0), a LOGIN7 below 7.1.
//! - The PRELOGIN reply carries the options the client sent (no MARS to a client that sent none).
//! - The crate README compares what the emulator sends with real servers' bytes.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod config;
pub mod fault;
mod link;
pub mod login7;
mod request;
pub mod route;
pub mod schedule;
pub mod server;
mod session;
mod shared;
pub mod ssrp;
pub mod stats;
pub mod tls;
pub mod tokens;

pub use config::{
    CertificateFlaw, CertificateSource, EmulatorConfig, EncryptionSetting, Login, ServerVersion,
    SettingParseError, Termination, TlsFirstResponse, TlsProtocol,
};
pub use fault::{
    AlertFraming, Fault, FaultParseError, FaultPoint, FaultRule, OldTlsVersion, StallPhase,
};
pub use login7::{Login7, Login7Error};
pub use route::{Route, RouteParseError, RouteRule};
pub use schedule::{Schedule, ScheduleParseError};
pub use server::Emulator;
pub use ssrp::{BrowserInstance, BrowserResponder};
pub use stats::{ClientRecord, Stats};
pub use tds_handshake::Encryption;
pub use tls::TlsSetupError;

//! `tds-doctor`: explains a SQL Server pre-login 10054 and says what to change.
//!
//! Error 10054 ("An existing connection was forcibly closed by the remote host" during the
//! pre-login handshake) has causes on both sides: Force Encryption, a TDS 8.0-only server, no
//! common TLS version, a certificate clients reject. This crate asks the server directly,
//! without credentials, in a short series of bounded probes (one TCP connection each), and
//! turns the answers into findings and into what each client setting will meet, using the
//! cause names of `tiberius-tower`.
//!
//! The binary `tds-doctor` has three commands: `probe` (the server's posture), `explain`
//! (what one client's settings will hit against it) and `connect` (a real connect through the
//! middleware with a timeline of attempts). This library serves the binary and its tests.
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use tds_doctor::{ProbeOptions, Target, probe};
//! use tds_emulator::{Emulator, EmulatorConfig, EncryptionSetting};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> std::io::Result<()> {
//! let server = Emulator::start(EmulatorConfig::new().encryption(EncryptionSetting::Force)).await?;
//! let target = Target::new("127.0.0.1", server.local_addr().port());
//! let report = probe(&target, &ProbeOptions::new().timeout(Duration::from_secs(2))).await;
//! assert_eq!(report.posture.force_encryption, Some(true));
//! # server.shutdown().await;
//! # Ok(())
//! # }
//! ```
//!
//! # Modules
//!
//! | module | role |
//! |---|---|
//! | [`target`] | [`Target`]: `HOST[,PORT]` and the instance name |
//! | [`probe`](mod@probe) | [`probe()`] and [`ProbeOptions`]: the bounded probes |
//! | [`tls`] | TLS inside TDS 7 PRELOGIN packets and TLS first (TDS 8.0), driven over rustls |
//! | [`certificate`] | the server certificate: names, validity, algorithms, validation |
//! | [`report`] | [`Report`]: everything a probe saw, serialisable as JSON |
//! | [`diagnosis`] | the server's posture, findings, and what each client setting meets |
//! | [`render`] | the human-readable tables |
//! | [`connect`] | `tds-doctor connect`: the middleware with a live attempt timeline |
//!
//! No probe sends a login, so no probe can leak or lock out a credential; `connect` takes a
//! connection string and never prints it.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod certificate;
pub mod connect;
mod crypto;
pub mod diagnosis;
pub mod probe;
pub mod render;
pub mod report;
pub mod target;
pub mod tls;
mod wire;

pub use diagnosis::{ClientLevel, ClientSettings, ClientTrust, explain};
pub use probe::{DEFAULT_TIMEOUT, ProbeOptions, probe};
pub use report::{ClientVerdict, Finding, Posture, Report, Severity};
pub use target::{Target, TargetError};

/// Exit code: the server is healthy (no warning or problem found; `connect`: connected).
pub const EXIT_HEALTHY: u8 = 0;
/// Exit code: findings of severity warning or problem (`connect`: the connect failed;
/// `explain`: the client will fail).
pub const EXIT_FINDINGS: u8 = 1;
/// Exit code: bad command line (clap's own code for usage errors).
pub const EXIT_USAGE: u8 = 2;
/// Exit code: nothing accepted a TCP connection at the address (refused, no route, DNS).
pub const EXIT_UNREACHABLE: u8 = 3;

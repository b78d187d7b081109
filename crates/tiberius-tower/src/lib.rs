//! Tower middleware that makes [tiberius](https://docs.rs/tiberius) connection
//! setup survive the SQL Server pre-login handshake.
//!
//! SQL Server error 10054 ("an existing connection was forcibly closed by the
//! remote host" during the pre-login handshake; `ECONNRESET` on Linux) has
//! many causes that need opposite responses: a server that forces
//! encryption, a server that accepts only TDS 8.0 strict, no common TLS
//! version, an untrusted certificate, or a plain network blip. This crate
//! watches the handshake bytes of every attempt, [`classify`]s each failure
//! into a [`Cause`], and then
//!
//! - **upgrades** the encryption level at once when the server asks for more
//!   (`NotSupported < Off < Required < Strict`, never down, never above a
//!   ceiling, never touching certificate trust);
//! - **retries** transient causes with exponential backoff and jitter
//!   ([`backon`]), bounded by attempts, a deadline and a [`RetryBudget`]
//!   shared by every clone of the service;
//! - **follows** routing redirects a bounded number of times;
//! - **stops** at once on deterministic causes, with a [`ConnectError`] that
//!   says what to change;
//! - **remembers** per endpoint what an upgrade learned ([`EndpointMemory`],
//!   HSTS-style), so the next connect starts at the right level.
//!
//! # Example
//!
//! A server with Force Encryption, a client configured at `NotSupported`: the
//! first attempt is refused (the server replies REQ and resets), the layer
//! upgrades to Required and the second attempt logs in.
//!
//! ```
//! use tiberius_tower::{Cause, ConnectPolicy, ConnectRequest, Connector, EncryptionLevel, PreloginLayer};
//! use tds_emulator::{Emulator, EmulatorConfig, EncryptionSetting};
//! use tower::{Service, ServiceBuilder, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let server = Emulator::start(EmulatorConfig::new().encryption(EncryptionSetting::Force)).await?;
//! let ca = std::env::temp_dir().join(format!("tiberius-tower-doc-{}.pem", std::process::id()));
//! server.write_ca_pem(&ca)?;
//!
//! let mut connect = ServiceBuilder::new()
//!     .layer(PreloginLayer::new(ConnectPolicy::new()))
//!     .service(Connector::new());
//!
//! let request = ConnectRequest::builder()
//!     .host("127.0.0.1")
//!     .port(server.local_addr().port())
//!     .authentication(tiberius::AuthMethod::sql_server("sa", "Password123!"))
//!     .encryption(EncryptionLevel::NotSupported)
//!     .trust_cert_ca(&ca)
//!     .build();
//!
//! let mut connected = connect.ready().await?.call(request).await?;
//! let attempts = connected.attempts();
//! assert_eq!(attempts.len(), 2);
//! assert_eq!(attempts[0].cause(), Some(Cause::EncryptionRequired));
//! assert_eq!(connected.encryption(), EncryptionLevel::Required);
//!
//! let row = connected
//!     .client_mut()
//!     .simple_query("SELECT 1")
//!     .await?
//!     .into_row()
//!     .await?
//!     .expect("one row");
//! assert_eq!(row.get::<i32, _>(0), Some(1));
//! # server.shutdown().await;
//! # let _ = std::fs::remove_file(&ca);
//! # Ok(())
//! # }
//! ```
//!
//! # How one connect flows
//!
//! The folders follow the flow, bytes to effect (`docs/architecture.md`
//! walks one connect through them):
//!
//! | folder | role |
//! |---|---|
//! | `request/` | [`ConnectRequest`]: the user's intent, plus the fields the policy rewrites; ADO.NET connection strings ([`ConnectionString`]); named instances through [`SqlBrowser`] |
//! | `connect/` | [`Connector`]: one observed attempt, returning [`Observed`] or an [`AttemptError`] |
//! | `classify/` | [`classify`]: observation + failure → [`Cause`], a pure function |
//! | `policy/` | [`ConnectPolicy`] and the plan: the one place that decides; [`RetryBudget`], [`EndpointMemory`] |
//! | `service/` | [`Prelogin`] and [`PreloginLayer`]: carry out the plan's steps |
//! | `error.rs` | [`ConnectError`]: the cause, the attempts, and what to change |
//! | `telemetry/` | spans and [`attributes`]; `ConnectMetrics` (feature `metrics`) |
//! | `pool/` | `pool::PoolConnector` for bb8 and deadpool (features `bb8`, `deadpool`) |
//! | `pool/` | `pool`: bb8 and deadpool adapters (features `bb8`, `deadpool`) |
//!
//! # Layers between the middleware and the connector
//!
//! Any tower layer fits there if its service answers a [`ConnectRequest`]
//! with an [`Observed`] client and its error converts into a [`BoxError`]:
//! `ServiceBuilder::new().layer(PreloginLayer::new(policy)).timeout(d).service(Connector::new())`
//! bounds each attempt, and an elapsed timeout is the cause `timeout`,
//! retried like any other (see [`Prelogin`]).
//!
//! # Telemetry
//!
//! Spans go through [`tracing`], shaped for `tracing-opentelemetry`: each
//! connect runs in an `mssql.connect` span of kind CLIENT with the
//! OpenTelemetry database attributes (`db.system.name =
//! "microsoft.sql_server"`, `server.address`, `server.port`, `db.namespace`,
//! and on failure `error.type` and status ERROR); each attempt in a child
//! `mssql.connect.attempt` span with the phase reached, the cause
//! (`mssql.prelogin.cause`), the offered and replied encryption bytes, the
//! TLS alert, the decision (retry, upgrade from/to...), the retry number and
//! backoff delay, and `db.response.status_code`: the server error number,
//! or `"10054"` when the server reset or closed during the pre-login
//! handshake. The names are constants in [`attributes`]; `docs/telemetry.md`
//! documents each one.
//!
//! With the `metrics` feature, `ConnectMetrics` records
//! `db.client.connection.create_time` and `mssql.client.connection.attempts`
//! through the `opentelemetry` API.
//!
//! No credential ever reaches a span, an event, a metric, an error or a
//! `Debug`.
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod cause;
mod classify;
mod connect;
mod endpoint;
mod error;
mod level;
mod policy;
#[cfg(any(feature = "bb8", feature = "deadpool"))]
pub mod pool;
mod request;
mod service;
mod telemetry;

pub use cause::Cause;
pub use classify::classify;
pub use connect::{
    AttemptError, AttemptFailure, AttemptTimings, BoxError, Connector, Observed, ObservedStream,
    TdsClient,
};
pub use endpoint::EndpointKey;
pub use error::ConnectError;
pub use level::EncryptionLevel;
pub use policy::{Attempt, ConnectPolicy, Decision, EndpointMemory, RetryBudget, StopReason};
pub use request::{
    BrowserError, ConnectRequest, ConnectRequestBuilder, ConnectionString, RequestError,
    SqlBrowser, TrustSetting,
};
pub use service::{Connected, Prelogin, PreloginLayer};
pub use telemetry::attributes;
#[cfg(feature = "metrics")]
pub use telemetry::metrics::ConnectMetrics;

/// The handshake facts this crate reports, from `tds-handshake`: what the
/// observer saw ([`Observation`]), how far the handshake got ([`Phase`]), and
/// PRELOGIN ENCRYPTION values ([`Encryption`]).
pub use tds_handshake::{Encryption, Observation, Phase};

//! Shared by the tests of this package: connect through `PreloginLayer` in every encryption
//! mode the emulator and tiberius support, in a build whose `rustls` holds both crypto
//! providers (`ring` and `aws-lc-rs`).
//!
//! The question these tests answer: does a second rustls provider in the graph (as tonic with
//! `tls-ring`, or any crate enabling rustls's `ring` feature, brings into a service that exports
//! traces) break connecting to SQL Server through the layer? Each test file is its own process
//! and decides whether a process-wide provider is installed before the first connect.
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tds_emulator::{Emulator, EmulatorConfig, EncryptionSetting};
use tiberius_tower::{ConnectPolicy, ConnectRequest, Connector, EncryptionLevel, PreloginLayer};
use tower::{Service, ServiceBuilder, ServiceExt};

/// Every wait here is bounded by this (CI is a slow, shared 2-core machine).
pub const WALL_CLOCK: Duration = Duration::from_secs(60);

/// One case: a server setting, the level the client is configured at, and the level the
/// connection must end at (what SQL Server's encryption matrix and the layer's upgrade rules
/// give, tds-handshake.md §3.2 and design §4).
#[derive(Debug, Clone, Copy)]
pub struct Mode {
    /// A readable name for failure messages.
    pub name: &'static str,
    /// The emulator's encryption setting.
    pub server: EncryptionSetting,
    /// The client's configured level.
    pub client: EncryptionLevel,
    /// The level the connection is established at.
    pub expected: EncryptionLevel,
}

/// Every mode a connection can end in, and the two upgrades that need TLS after a failure.
pub const MODES: [Mode; 6] = [
    // No TLS at all: the control case, no provider is touched.
    Mode {
        name: "not_supported on an off server",
        server: EncryptionSetting::Off,
        client: EncryptionLevel::NotSupported,
        expected: EncryptionLevel::NotSupported,
    },
    // Login-only TLS inside TDS 7 PRELOGIN packets (MS-TDS 2.2.6.5: OFF + OFF).
    Mode {
        name: "off on an off server",
        server: EncryptionSetting::Off,
        client: EncryptionLevel::Off,
        expected: EncryptionLevel::Off,
    },
    // Full TLS inside TDS 7.
    Mode {
        name: "required on a force server",
        server: EncryptionSetting::Force,
        client: EncryptionLevel::Required,
        expected: EncryptionLevel::Required,
    },
    // TDS 8.0: TLS first, ALPN tds/8.0.
    Mode {
        name: "strict on a strict-only server",
        server: EncryptionSetting::StrictOnly,
        client: EncryptionLevel::Strict,
        expected: EncryptionLevel::Strict,
    },
    // The classic 10054: ENCRYPT_REQ then a reset, upgraded to Required.
    Mode {
        name: "not_supported upgraded on a force server",
        server: EncryptionSetting::Force,
        client: EncryptionLevel::NotSupported,
        expected: EncryptionLevel::Required,
    },
    // A reset with no reply to a plaintext PRELOGIN, then the Strict probe.
    Mode {
        name: "required upgraded on a strict-only server",
        server: EncryptionSetting::StrictOnly,
        client: EncryptionLevel::Required,
        expected: EncryptionLevel::Strict,
    },
];

/// What one connect through the layer gave.
#[derive(Debug)]
pub struct Outcome {
    /// The level the layer connected at.
    pub encryption: EncryptionLevel,
    /// The value `SELECT 1` returned.
    pub select_one: Option<i32>,
}

/// Starts an emulator with `mode.server` (otherwise SQL Server's defaults), connects through
/// `PreloginLayer` at `mode.client`, runs `SELECT 1`, and stops the emulator. A failed connect
/// is returned as its `Display` text (the layer's advice).
pub async fn connect_in(mode: Mode) -> Result<Outcome, String> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let emulator = Emulator::start(EmulatorConfig::new().encryption(mode.server))
        .await
        .map_err(|e| format!("emulator did not start: {e}"))?;
    let ca: PathBuf = std::env::temp_dir().join(format!(
        "tests-providers-{}-{}.pem",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    emulator
        .write_ca_pem(&ca)
        .map_err(|e| format!("CA not written: {e}"))?;

    let request = ConnectRequest::builder()
        .host("127.0.0.1")
        .port(emulator.local_addr().port())
        .database("master")
        .authentication(tiberius::AuthMethod::sql_server("sa", "Password123!"))
        .encryption(mode.client)
        .trust_cert_ca(&ca)
        .build();
    let policy = ConnectPolicy::new()
        .min_delay(Duration::from_millis(5))
        .max_delay(Duration::from_millis(40))
        .strict_probe_timeout(Duration::from_secs(3))
        .without_memory();
    let mut service = ServiceBuilder::new()
        .layer(PreloginLayer::new(policy))
        .service(Connector::new());

    let result = tokio::time::timeout(WALL_CLOCK, async {
        let ready = service.ready().await.map_err(|e| e.to_string())?;
        let mut connected = ready.call(request).await.map_err(|e| e.to_string())?;
        let row = connected
            .client_mut()
            .simple_query("SELECT 1")
            .await
            .map_err(|e| e.to_string())?
            .into_row()
            .await
            .map_err(|e| e.to_string())?;
        Ok(Outcome {
            encryption: connected.encryption(),
            select_one: row.and_then(|r| r.get::<i32, _>(0)),
        })
    })
    .await
    .unwrap_or_else(|_| Err(format!("{}: no answer within {WALL_CLOCK:?}", mode.name)));

    emulator.shutdown().await;
    let _ = std::fs::remove_file(&ca);
    result
}

/// Connects in every mode of [`MODES`] and asserts each ends at its expected level with
/// `SELECT 1` answered.
pub async fn assert_every_mode_connects() {
    for mode in MODES {
        let outcome = connect_in(mode)
            .await
            .unwrap_or_else(|error| panic!("{}: connect failed: {error}", mode.name));
        assert_eq!(outcome.encryption, mode.expected, "{}", mode.name);
        assert_eq!(outcome.select_one, Some(1), "{}: SELECT 1", mode.name);
    }
}

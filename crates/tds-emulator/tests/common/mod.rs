//! Helpers shared by the integration tests: start the emulator in one line, connect tiberius.
#![allow(dead_code, unreachable_pub)]

use std::path::PathBuf;
use std::time::Duration;

use tds_emulator::{Emulator, EmulatorConfig};
use tiberius::{AuthMethod, Client, Config, EncryptionLevel};
use tokio::net::TcpStream;
use tokio_util::compat::{Compat, TokioAsyncWriteCompatExt};

pub const USER: &str = "sa";
pub const PASSWORD: &str = "Password123!";
/// Upper bound for anything a test waits on (generous for a slow shared CI machine).
pub const PATIENCE: Duration = Duration::from_secs(60);
/// tiberius's handshake timeout where a case expects the server to hang.
pub const HANG_TIMEOUT: Duration = Duration::from_secs(3);

pub type TdsClient = Client<Compat<TcpStream>>;

/// A running emulator with its CA written to a file.
pub struct Running {
    pub emulator: Emulator,
    pub ca_path: PathBuf,
}

impl Running {
    pub async fn shutdown(self) {
        let _ = std::fs::remove_file(&self.ca_path);
        tokio::time::timeout(PATIENCE, self.emulator.shutdown())
            .await
            .expect("emulator shutdown did not finish");
    }
}

pub async fn start(config: EmulatorConfig) -> Running {
    let emulator = Emulator::start(config).await.expect("emulator starts");
    let ca_path = std::env::temp_dir().join(format!(
        "tds-emulator-test-ca-{}-{}.pem",
        std::process::id(),
        emulator.local_addr().port()
    ));
    emulator.write_ca_pem(&ca_path).expect("CA written");
    Running { emulator, ca_path }
}

/// How the client treats the server certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trust {
    /// Trust the emulator's CA (the normal case).
    Ca,
    /// tiberius `trust_cert()`: no validation at all.
    Any,
    /// Nothing extra: the OS store only, which does not know the emulator's CA.
    Nothing,
}

pub fn client_config(running: &Running, level: EncryptionLevel, trust: Trust) -> Config {
    let mut config = Config::new();
    config.host("localhost");
    config.port(running.emulator.local_addr().port());
    config.authentication(AuthMethod::sql_server(USER, PASSWORD));
    config.encryption(level);
    config.handshake_timeout(Some(Duration::from_secs(30)));
    match trust {
        Trust::Ca => config.trust_cert_ca(running.ca_path.display().to_string()),
        Trust::Any => config.trust_cert(),
        Trust::Nothing => {}
    }
    config
}

/// Connects tiberius with `config`; the whole attempt is bounded by [`PATIENCE`].
pub async fn connect(running: &Running, config: Config) -> tiberius::Result<TdsClient> {
    tokio::time::timeout(PATIENCE, async {
        let tcp = TcpStream::connect(running.emulator.local_addr()).await?;
        tcp.set_nodelay(true)?;
        Client::connect(config, tcp.compat_write()).await
    })
    .await
    .expect("tiberius connect did not finish within the test's patience")
}

/// Runs `SELECT 1` as a batch and as an RPC and returns both values.
pub async fn select_one(client: &mut TdsClient) -> (i32, i32) {
    tokio::time::timeout(PATIENCE, async {
        let row = client
            .simple_query("SELECT 1")
            .await
            .expect("batch")
            .into_row()
            .await
            .expect("batch row")
            .expect("one row");
        let batch: i32 = row.get(0).expect("int");
        let row = client
            .query("SELECT 1", &[])
            .await
            .expect("rpc")
            .into_row()
            .await
            .expect("rpc row")
            .expect("one row");
        let rpc: i32 = row.get(0).expect("int");
        (batch, rpc)
    })
    .await
    .expect("SELECT 1 did not finish")
}

/// The io::ErrorKind of a tiberius I/O error.
pub fn io_kind(error: &tiberius::error::Error) -> Option<std::io::ErrorKind> {
    match error {
        tiberius::error::Error::Io { kind, .. } => Some(*kind),
        _ => None,
    }
}

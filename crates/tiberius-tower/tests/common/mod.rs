//! Helpers shared by the integration tests: start an emulator in one line,
//! build requests and fast policies, read back what the emulator saw.
#![allow(dead_code, unreachable_pub)]

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tds_emulator::{ClientRecord, Emulator, EmulatorConfig, EncryptionSetting};
use tiberius_tower::{
    ConnectPolicy, ConnectRequest, Connected, Connector, EncryptionLevel, Prelogin, PreloginLayer,
    RetryBudget, TdsClient,
};
use tower::{Service, ServiceBuilder, ServiceExt};

/// Every wait in these tests is bounded by this (CI is a slow 2-core machine).
pub const WALL_CLOCK: Duration = Duration::from_secs(60);

/// A handshake bound large enough for a debug-build TLS handshake on a busy
/// machine, small enough that stall cases finish quickly.
pub const HANDSHAKE: Duration = Duration::from_secs(3);

/// A started emulator plus the CA file its certificate chains to.
pub struct Server {
    pub emulator: Emulator,
    pub ca: PathBuf,
}

impl Server {
    pub async fn start(config: EmulatorConfig) -> Server {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let emulator = Emulator::start(config).await.expect("emulator starts");
        let ca = std::env::temp_dir().join(format!(
            "tiberius-tower-test-{}-{}.pem",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        emulator.write_ca_pem(&ca).expect("CA written");
        Server { emulator, ca }
    }

    /// A server with this setting and the emulator's realistic defaults.
    pub async fn with_setting(setting: EncryptionSetting) -> Server {
        Server::start(base_config(setting)).await
    }

    pub fn request(&self, level: EncryptionLevel) -> ConnectRequest {
        self.request_to(self.emulator.local_addr().port(), level, "Password123!")
    }

    /// Like [`Server::request`], sent to another port on 127.0.0.1 (a relay
    /// in front of this server).
    pub fn request_via(&self, port: u16, level: EncryptionLevel) -> ConnectRequest {
        self.request_to(port, level, "Password123!")
    }

    /// Like [`Server::request`], with a password the server may refuse.
    pub fn request_with_password(&self, level: EncryptionLevel, password: &str) -> ConnectRequest {
        self.request_to(self.emulator.local_addr().port(), level, password)
    }

    fn request_to(&self, port: u16, level: EncryptionLevel, password: &str) -> ConnectRequest {
        ConnectRequest::builder()
            .host("127.0.0.1")
            .port(port)
            .database("master")
            .authentication(tiberius::AuthMethod::sql_server("sa", password))
            .encryption(level)
            .trust_cert_ca(&self.ca)
            .tcp_connect_timeout(Duration::from_secs(5))
            .handshake_timeout(HANDSHAKE)
            .build()
    }

    /// The level each connection offered, as the emulator saw it, in accept order.
    pub fn offered_levels(&self) -> Vec<Option<EncryptionLevel>> {
        let mut clients = self.emulator.clients();
        clients.sort_by_key(|c| c.index);
        clients.iter().map(level_of).collect()
    }

    pub async fn stop(self) {
        self.emulator.shutdown().await;
        let _ = std::fs::remove_file(&self.ca);
    }
}

/// The emulator with this setting and otherwise SQL Server's behaviour
/// (a server without TDS 8.0 says nothing to a TLS-first client, as SQL
/// Server 2019 does). A test that needs a harsher server asks for it itself.
pub fn base_config(setting: EncryptionSetting) -> EmulatorConfig {
    EmulatorConfig::new().encryption(setting)
}

/// The rung a client record shows, read the way MS-TDS 2.2.6.5 defines the
/// PRELOGIN ENCRYPTION byte: a stream that starts with TLS is Strict; else
/// 0x02 NOT_SUP, 0x00 OFF, 0x01 ON and 0x03 REQ (both Required), the
/// CLIENT_CERT bit (0x80) ignored.
pub fn level_of(client: &ClientRecord) -> Option<EncryptionLevel> {
    if client.started_with_tls == Some(true) {
        return Some(EncryptionLevel::Strict);
    }
    match client.offered_encryption?.0 & 0x7f {
        0x02 => Some(EncryptionLevel::NotSupported),
        0x00 => Some(EncryptionLevel::Off),
        0x01 | 0x03 => Some(EncryptionLevel::Required),
        _ => None,
    }
}

/// A policy with millisecond backoff so the suite is fast; a large private
/// budget so cases do not interfere.
pub fn fast_policy() -> ConnectPolicy {
    ConnectPolicy::new()
        .min_delay(Duration::from_millis(5))
        .max_delay(Duration::from_millis(40))
        .server_transient_min_delay(Duration::from_millis(20))
        .max_retries(2)
        .deadline(Duration::from_secs(45))
        .strict_probe_timeout(Duration::from_secs(3))
        .budget(RetryBudget::fixed(1_000))
}

/// [`fast_policy`] for the pool tests whose server resets 30 % of 200
/// connects, paying its retries from `budget`. A connect allowed k retries
/// still fails with probability 0.3^(k+1): with 6 (EF Core's count) one of
/// the 200 failed in about 4 % of runs (it happened in CI at 3f47826); with
/// 12, in 200 x 0.3^13 ≈ 0.003 %. Expected retries: 200 x 0.3 / 0.7 ≈ 86.
pub fn through_30_percent_resets(budget: std::sync::Arc<RetryBudget>) -> ConnectPolicy {
    fast_policy()
        .max_retries(12)
        .max_attempts(13)
        .budget(budget)
}

pub fn service(policy: ConnectPolicy) -> Prelogin<Connector> {
    ServiceBuilder::new()
        .layer(PreloginLayer::new(policy))
        .service(Connector::new())
}

pub async fn connect(
    svc: &mut Prelogin<Connector>,
    request: ConnectRequest,
) -> Result<Connected<TdsClient>, tiberius_tower::ConnectError> {
    let ready = svc.ready().await.expect("always ready");
    tokio::time::timeout(WALL_CLOCK, ready.call(request))
        .await
        .expect("connect finished within the wall-clock bound")
}

/// Runs SELECT 1 and returns the value.
pub async fn select_one(client: &mut TdsClient) -> Option<i32> {
    let stream = tokio::time::timeout(WALL_CLOCK, client.simple_query("SELECT 1"))
        .await
        .ok()?
        .ok()?;
    let row = tokio::time::timeout(WALL_CLOCK, stream.into_row())
        .await
        .ok()?
        .ok()??;
    row.get::<i32, _>(0)
}

/// Levels must be >= the floor and never decrease, except that the attempt
/// right after a failed Strict probe returns to the pre-probe level.
pub fn assert_levels_monotonic(
    name: &str,
    floor: EncryptionLevel,
    levels: &[EncryptionLevel],
    probes: &[bool],
) {
    let mut high = floor;
    for (i, level) in levels.iter().enumerate() {
        assert!(
            *level >= floor,
            "{name}: attempt {i} at {level} below floor {floor}"
        );
        if probes.get(i).copied().unwrap_or(false) {
            continue;
        }
        assert!(
            *level >= high,
            "{name}: attempt {i} at {level} after {high}"
        );
        high = *level;
    }
}

/// Which side wrote a chunk of a recorded transcript.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Client,
    Server,
}

/// What the server sends in a clean connect at Off (the emulator's
/// defaults), from the connector's own observation.
pub async fn server_bytes_of_clean_connect() -> u64 {
    let server = Server::with_setting(EncryptionSetting::Off).await;
    let observed = tokio::time::timeout(
        WALL_CLOCK,
        Connector::new().oneshot(server.request(EncryptionLevel::Off)),
    )
    .await
    .expect("bounded")
    .expect("clean connect");
    let bytes = observed.observation().expect("observed").server_bytes;
    drop(observed);
    server.stop().await;
    bytes
}

/// The bytes of one relayed connection, both directions, in the order the
/// relay read them (a chunk is recorded before it is forwarded, so an answer
/// is always recorded after what it answers).
pub type Transcript = std::sync::Arc<std::sync::Mutex<Vec<(Side, Vec<u8>)>>>;

/// A loopback relay for one connection to `upstream`, recording both
/// directions. Returns the port to connect to, the transcript and the task.
pub async fn record_one_connection(
    upstream: std::net::SocketAddr,
) -> (u16, Transcript, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("relay binds");
    let port = listener.local_addr().expect("relay address").port();
    let transcript = Transcript::default();
    let record = transcript.clone();
    let task = tokio::spawn(async move {
        let Ok((client, _)) = listener.accept().await else {
            return;
        };
        let Ok(server) = tokio::net::TcpStream::connect(upstream).await else {
            return;
        };
        let _ = client.set_nodelay(true);
        let _ = server.set_nodelay(true);
        let (client_read, client_write) = client.into_split();
        let (server_read, server_write) = server.into_split();
        tokio::join!(
            pump(client_read, server_write, Side::Client, record.clone()),
            pump(server_read, client_write, Side::Server, record),
        );
    });
    (port, transcript, task)
}

/// Copies one direction of a relayed connection, recording each chunk in
/// order, and closes the other side's write half when this side ends.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    side: Side,
    record: Transcript,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buf = vec![0u8; 32 * 1024];
    while let Ok(n) = from.read(&mut buf).await {
        let Some(chunk) = buf.get(..n).filter(|c| !c.is_empty()) else {
            break;
        };
        record
            .lock()
            .expect("transcript lock")
            .push((side, chunk.to_vec()));
        if to.write_all(chunk).await.is_err() {
            break;
        }
    }
    let _ = to.shutdown().await;
}

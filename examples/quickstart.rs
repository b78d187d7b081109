//! Quickstart: connect to SQL Server through `tiberius-tower` and watch it recover.
//!
//! The program starts the project's SQL Server handshake emulator in-process, configured like a
//! server with "Force Encryption = Yes" whose listener also drops the next two connections in the
//! middle of the TLS handshake. The client is configured lower than the server requires
//! (`EncryptionLevel::NotSupported`). Through the layer it:
//!
//! 1. offers no encryption; the server replies ENCRYPT_REQ and resets (the classic 10054):
//!    cause `encryption_required`, so it upgrades to `Required` at once, without sleeping;
//! 2. gets reset twice mid-handshake: cause `transient_reset`, retried with backoff and jitter;
//! 3. logs in and runs `SELECT 1`;
//! 4. connects again, starting at the level it learned (one attempt).
//!
//! Run it with:
//!
//! ```sh
//! cargo run -p examples --example quickstart
//! ```
//!
//! To run it in a project of your own, copy this file to `src/main.rs` and add:
//!
//! ```toml
//! [dependencies]
//! tiberius-tower = "0.1"
//! tds-emulator = "0.1"
//! tiberius = { version = "0.13", default-features = false, features = ["rustls", "tds80"] }
//! tokio = { version = "1", features = ["macros", "rt-multi-thread"] }
//! tower = { version = "0.5", features = ["util"] }
//! ```
//!
//! Against a real server, drop the emulator, set `host`/`port`/credentials, and trust the
//! server's CA with `trust_cert_ca` (the middleware never changes certificate trust).

use std::error::Error;
use std::time::Duration;

use tds_emulator::{Emulator, EmulatorConfig, EncryptionSetting, Fault, Schedule};
use tiberius_tower::{
    Attempt, ConnectPolicy, ConnectRequest, Connector, EncryptionLevel, PreloginLayer,
};
use tower::{Service, ServiceBuilder, ServiceExt};

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    // A Force Encryption server whose first three connections are reset 300 bytes into the
    // server's output. The first one never gets that far (the 43-byte PRELOGIN reply, then
    // the matrix's own reset); the next two die inside the TLS ServerHello flight.
    let server = Emulator::start(
        EmulatorConfig::new()
            .encryption(EncryptionSetting::Force)
            .fault(Fault::ResetAtServerByte(300), Schedule::FirstN(3)),
    )
    .await?;
    let ca_path = std::env::temp_dir().join(format!("quickstart-ca-{}.pem", std::process::id()));
    server.write_ca_pem(&ca_path)?;
    println!(
        "emulator listening on {} (Force Encryption)",
        server.local_addr()
    );

    // Short delays so the demo is quick; the defaults are documented on `ConnectPolicy`.
    let policy = ConnectPolicy::new()
        .min_delay(Duration::from_millis(50))
        .max_delay(Duration::from_millis(500));
    let mut connect = ServiceBuilder::new()
        .layer(PreloginLayer::new(policy))
        .service(Connector::new());

    let request = || {
        ConnectRequest::builder()
            .host("127.0.0.1")
            .port(server.local_addr().port())
            .database("master")
            .authentication(tiberius::AuthMethod::sql_server("sa", "Password123!"))
            .encryption(EncryptionLevel::NotSupported)
            .trust_cert_ca(&ca_path)
            .build()
    };

    println!("\nfirst connect (client configured at NotSupported):");
    let mut connected = connect.ready().await?.call(request()).await?;
    print_attempts(connected.attempts());

    let row = connected
        .client_mut()
        .simple_query("SELECT 1")
        .await?
        .into_row()
        .await?
        .ok_or("SELECT 1 returned no row")?;
    println!("SELECT 1 -> {:?}", row.get::<i32, _>(0));
    drop(connected);

    println!("\nsecond connect (the endpoint memory remembers the upgrade):");
    let connected = connect.ready().await?.call(request()).await?;
    print_attempts(connected.attempts());
    drop(connected);

    server.shutdown().await;
    let _ = std::fs::remove_file(&ca_path);
    Ok(())
}

fn print_attempts(attempts: &[Attempt]) {
    for (number, attempt) in attempts.iter().enumerate() {
        let outcome = match attempt.cause() {
            Some(cause) => format!("failed: {}", cause.as_str()),
            None => "connected".to_owned(),
        };
        let offered = attempt
            .offered()
            .map_or_else(|| "-".to_owned(), |b| format!("0x{:02X}", b.0));
        let replied = attempt
            .replied()
            .map_or_else(|| "-".to_owned(), |b| format!("0x{:02X}", b.0));
        println!(
            "  attempt {}: encryption {:<12} offered {offered:<4} replied {replied:<4} slept {:>4} ms, took {:>4} ms -> {outcome}",
            number + 1,
            attempt.encryption().to_string(),
            attempt.delay().as_millis(),
            attempt.duration().as_millis(),
        );
    }
}

//! A deadpool pool of SQL Server connections made through `tiberius-tower`.
//!
//! The program starts the project's emulator in-process with its defaults (encryption available,
//! not forced) and builds a pool of 4 with `PoolConnector::deadpool_builder`, which sets the tokio
//! runtime and leaves deadpool's create timeout off (the layer's deadline bounds each connect):
//!
//! 1. four connections, each running `SELECT 1`; deadpool health-checks (`SELECT 1`) a connection
//!    every time it comes back out of the pool;
//! 2. a second pool points at a server without TLS while the client requires it: `get()` returns
//!    `PoolError::Backend` with the layer's cause (`encryption_unavailable`) and its advice after
//!    one attempt.
//!
//! Run it with:
//!
//! ```sh
//! cargo run -p examples --example pool_deadpool
//! ```
//!
//! In a project of your own, these are the dependencies it needs:
//!
//! ```toml
//! [dependencies]
//! tiberius-tower = { version = "0.1", features = ["deadpool"] }
//! tds-emulator = "0.1"
//! deadpool = { version = "0.12", default-features = false, features = ["managed", "rt_tokio_1"] }
//! tiberius = { version = "0.13", default-features = false, features = ["rustls", "tds80"] }
//! tokio = { version = "1", features = ["macros", "rt-multi-thread"] }
//! tower = { version = "0.5", features = ["util"] }
//! ```

use std::error::Error;
use std::time::Instant;

use deadpool::managed::PoolError;
use tds_emulator::{Emulator, EmulatorConfig, EncryptionSetting};
use tiberius_tower::pool::PoolConnector;
use tiberius_tower::{ConnectPolicy, ConnectRequest, Connector, EncryptionLevel, PreloginLayer};
use tower::ServiceBuilder;

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let server = Emulator::start(EmulatorConfig::new()).await?;
    let no_tls = Emulator::start(EmulatorConfig::new().encryption(EncryptionSetting::None)).await?;
    let ca_path = std::env::temp_dir().join(format!("pool-deadpool-ca-{}.pem", std::process::id()));
    server.write_ca_pem(&ca_path)?;

    let service = ServiceBuilder::new()
        .layer(PreloginLayer::new(ConnectPolicy::new()))
        .service(Connector::new());
    let request = |port: u16| {
        ConnectRequest::builder()
            .host("127.0.0.1")
            .port(port)
            .authentication(tiberius::AuthMethod::sql_server("sa", "Password123!"))
            .encryption(EncryptionLevel::Required)
            .trust_cert_ca(&ca_path)
            .build()
    };

    let pool = PoolConnector::new(service.clone(), request(server.local_addr().port()))
        .deadpool_builder()
        .max_size(4)
        .build()?;
    let mut held = Vec::new();
    for _ in 0..4 {
        let mut conn = pool.get().await?;
        let row = conn.simple_query("SELECT 1").await?.into_row().await?;
        println!(
            "pooled connection answers SELECT 1 = {:?}",
            row.and_then(|r| r.get::<i32, _>(0))
        );
        held.push(conn);
    }
    drop(held);
    println!("pool status: {:?}", pool.status());

    let unavailable = PoolConnector::new(service, request(no_tls.local_addr().port()))
        .deadpool_builder()
        .max_size(4)
        .build()?;
    let started = Instant::now();
    match unavailable.get().await {
        Err(PoolError::Backend(error)) => println!(
            "get() failed after {:?} with cause {:?}:\n  {error}",
            started.elapsed(),
            error.cause().map(|c| c.as_str())
        ),
        Err(other) => println!("get() failed: {other}"),
        Ok(_) => println!("unexpected: connected without TLS"),
    }

    server.shutdown().await;
    no_tls.shutdown().await;
    let _ = std::fs::remove_file(&ca_path);
    Ok(())
}

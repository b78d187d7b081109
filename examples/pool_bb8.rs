//! A bb8 pool of SQL Server connections made through `tiberius-tower`.
//!
//! The program starts the project's emulator in-process as a "Force Encryption = Yes" server and
//! points a pool of 4 at it with a client configured at `NotSupported`:
//!
//! 1. the first connection is refused (ENCRYPT_REQ, then a reset), upgraded to `Required` at once,
//!    and the level is remembered: the next three start at `Required`;
//! 2. each checkout runs the health check (`SELECT 1`);
//! 3. a second pool points at a login the server refuses: `get()` returns the layer's cause
//!    (`login_failed`) and its advice after one attempt, where a pool left at bb8's defaults would
//!    retry until its 30 s `connection_timeout` and say only `TimedOut`.
//!
//! Run it with:
//!
//! ```sh
//! cargo run -p examples --example pool_bb8
//! ```
//!
//! In a project of your own, these are the dependencies it needs:
//!
//! ```toml
//! [dependencies]
//! tiberius-tower = { version = "0.1", features = ["bb8"] }
//! tds-emulator = "0.1"
//! bb8 = "0.9"
//! tiberius = { version = "0.13", default-features = false, features = ["rustls", "tds80"] }
//! tokio = { version = "1", features = ["macros", "rt-multi-thread"] }
//! tower = { version = "0.5", features = ["util"] }
//! ```

use std::error::Error;
use std::time::{Duration, Instant};

use tds_emulator::{Emulator, EmulatorConfig, EncryptionSetting};
use tiberius_tower::pool::{Bb8Pool, PoolConnector};
use tiberius_tower::{ConnectPolicy, ConnectRequest, Connector, EncryptionLevel, PreloginLayer};
use tower::ServiceBuilder;

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let server =
        Emulator::start(EmulatorConfig::new().encryption(EncryptionSetting::Force)).await?;
    let ca_path = std::env::temp_dir().join(format!("pool-bb8-ca-{}.pem", std::process::id()));
    server.write_ca_pem(&ca_path)?;
    let port = server.local_addr().port();

    // One layered service for the whole pool: its clones share the retry budget and the endpoint
    // memory, so what the first connect learns, the others use.
    let service = ServiceBuilder::new()
        .layer(PreloginLayer::new(
            ConnectPolicy::new().min_delay(Duration::from_millis(50)),
        ))
        .service(Connector::new());
    let ca = ca_path.clone();
    let request = move |password: &str| {
        ConnectRequest::builder()
            .host("127.0.0.1")
            .port(port)
            .authentication(tiberius::AuthMethod::sql_server("sa", password))
            .encryption(EncryptionLevel::NotSupported)
            .trust_cert_ca(&ca)
            .build()
    };

    // A closure makes a fresh request per connect, so a rotated password is picked up.
    let fresh = request.clone();
    let connector =
        PoolConnector::with_fresh_request(service.clone(), move || fresh("Password123!"));
    let pool = Bb8Pool::build(Bb8Pool::builder().max_size(4), connector);

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
    println!("pool state: {:?}", pool.pool().state());

    // A login the server refuses: the cause reaches get() as itself.
    let refused = PoolConnector::new(service, request("not-the-password"));
    let refused_pool = Bb8Pool::build(Bb8Pool::builder().max_size(4), refused);
    let started = Instant::now();
    match refused_pool.get().await {
        Err(bb8::RunError::User(error)) => println!(
            "get() failed after {:?} with cause {:?}:\n  {error}",
            started.elapsed(),
            error.cause().map(|c| c.as_str())
        ),
        Err(bb8::RunError::TimedOut) => println!("get() timed out"),
        Ok(_) => println!("unexpected: the wrong password logged in"),
    }

    server.shutdown().await;
    let _ = std::fs::remove_file(&ca_path);
    Ok(())
}

//! Connect to your own SQL Server with an ADO.NET connection string, through `tiberius-tower`,
//! and print what each attempt saw and what the layer decided.
//!
//! Copy this file into a new project as `src/main.rs` and add:
//!
//! ```toml
//! [dependencies]
//! tiberius-tower = "0.1"
//! tokio = { version = "1", features = ["macros", "rt-multi-thread"] }
//! tower = { version = "0.5", features = ["util"] }
//! ```
//!
//! Then run it with the connection string in `MSSQL_CONNECTION_STRING`:
//!
//! ```sh
//! export MSSQL_CONNECTION_STRING='Server=tcp:db.example.com,1433;Database=master;User Id=app;Password=...;Encrypt=true;TrustServerCertificateCA=/etc/ssl/db-ca.pem'
//! cargo run
//! ```
//!
//! In this repository: `cargo run -p examples --example connect`. To try it without a server,
//! start the emulator (`cargo run -p tds-emulator -- --encryption force`), which prints its
//! address and the path of its CA certificate, and point the connection string at both.
//!
//! The program prints one line per attempt (level, PRELOGIN bytes offered and replied, how far
//! the handshake got, the cause and the decision), then the result of `SELECT 1`. It exits with
//! status 2 when the variable is unset or unreadable, 1 when the connect fails (after printing
//! the layer's advice), 0 when `SELECT 1` answered. The connection string itself is never
//! printed: it holds the password.

use std::process::ExitCode;

use tiberius_tower::{Attempt, ConnectPolicy, ConnectRequest, Connector, PreloginLayer};
use tower::{Service, ServiceBuilder, ServiceExt};

const VARIABLE: &str = "MSSQL_CONNECTION_STRING";

#[tokio::main]
async fn main() -> ExitCode {
    let Ok(connection_string) = std::env::var(VARIABLE) else {
        eprintln!(
            "{VARIABLE} is not set. Set it to an ADO.NET connection string, for example:\n  \
             {VARIABLE}='Server=tcp:HOST,1433;Database=master;User Id=USER;Password=PASSWORD;\
             Encrypt=true;TrustServerCertificateCA=/path/to/ca.pem'"
        );
        return ExitCode::from(2);
    };
    // `RequestError` names the offending key, never a value, so printing it is safe.
    let request = match ConnectRequest::from_ado_string(&connection_string) {
        Ok(request) => request,
        Err(error) => {
            eprintln!("{VARIABLE}: {error}");
            return ExitCode::from(2);
        }
    };
    println!(
        "connecting to {}:{} (database {}, configured encryption {})",
        request.host(),
        request.port(),
        request.database().unwrap_or("(login default)"),
        request.encryption(),
    );

    // The defaults are meant for production: see ConnectPolicy's documentation and docs/guide.md.
    let mut connect = ServiceBuilder::new()
        .layer(PreloginLayer::new(ConnectPolicy::new()))
        .service(Connector::new());
    let ready = match connect.ready().await {
        Ok(ready) => ready,
        Err(error) => {
            eprintln!("the connect service is not ready: {error}");
            return ExitCode::FAILURE;
        }
    };
    let mut connected = match ready.call(request).await {
        Ok(connected) => connected,
        Err(error) => {
            print_timeline(error.attempts());
            eprintln!("connect failed: {error}");
            return ExitCode::FAILURE;
        }
    };
    print_timeline(connected.attempts());
    println!("connected at encryption {}", connected.encryption());

    let answer = match connected.client_mut().simple_query("SELECT 1").await {
        Ok(stream) => stream.into_row().await,
        Err(error) => Err(error),
    };
    match answer {
        Ok(Some(row)) => {
            println!("SELECT 1 -> {:?}", row.get::<i32, _>(0));
            ExitCode::SUCCESS
        }
        Ok(None) => {
            eprintln!("SELECT 1 returned no row");
            ExitCode::FAILURE
        }
        Err(error) => {
            eprintln!("SELECT 1 failed: {error}");
            ExitCode::FAILURE
        }
    }
}

/// One line per attempt, in order: what was tried, what the wire showed, what was decided.
fn print_timeline(attempts: &[Attempt]) {
    for (index, attempt) in attempts.iter().enumerate() {
        // The PRELOGIN ENCRYPTION byte, in hex as MS-TDS 2.2.6.5 writes it.
        let byte = |b: Option<u8>| b.map_or_else(|| "-".to_owned(), |b| format!("0x{b:02X}"));
        let outcome = match (attempt.cause(), attempt.decision()) {
            (None, _) => "connected".to_owned(),
            (Some(cause), Some(decision)) => {
                format!("{}, next: {}", cause.as_str(), decision.as_str())
            }
            (Some(cause), None) => cause.as_str().to_owned(),
        };
        println!(
            "attempt {}: {}:{} at {}{}, slept {} ms, took {} ms: offered {}, replied {}, reached {} -> {outcome}",
            index + 1,
            attempt.host(),
            attempt.port(),
            attempt.encryption(),
            if attempt.strict_probe() {
                " (Strict probe)"
            } else {
                ""
            },
            attempt.delay().as_millis(),
            attempt.duration().as_millis(),
            byte(attempt.offered().map(|e| e.0)),
            byte(attempt.replied().map(|e| e.0)),
            attempt
                .phase()
                .map_or_else(|| "-".to_owned(), |phase| format!("{phase:?}")),
        );
    }
}

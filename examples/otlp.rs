//! OpenTelemetry: export the middleware's spans and metrics with OTLP, and see in your tracing
//! backend *why* a SQL Server connect failed or recovered.
//!
//! The program starts the project's SQL Server handshake emulator in-process (Force Encryption,
//! two transient resets in the TLS handshake) and connects through `PreloginLayer` three times:
//!
//! 1. client at `NotSupported`: the server replies ENCRYPT_REQ and resets (the classic 10054):
//!    span `mssql.connect.attempt` with `mssql.prelogin.cause() = encryption_required` and
//!    `db.response.status_code = "10054"`, an upgrade, then two `transient_reset` retries;
//! 2. the same again: the endpoint memory starts at Required (`mssql.memory.applied = true`);
//! 3. a wrong password: `error.type = login_failed`, `db.response.status_code = "18456"`.
//!
//! Spans go `tracing` → `tracing-opentelemetry` → OTLP/HTTP (protobuf); metrics
//! (`db.client.connection.create_time`, `mssql.client.connection.attempts`) go through a
//! `Meter` handed to the layer. The exporters read the standard variables, above all
//! `OTEL_EXPORTER_OTLP_ENDPOINT` (default `http://localhost:4318`; `/v1/traces` and
//! `/v1/metrics` are appended). An `https://` endpoint is exported over TLS, as production
//! collectors are: the exporter's HTTP client (reqwest) uses rustls with the aws-lc-rs provider
//! and the platform's trust store. A second rustls provider in the same program (tonic's
//! `tls-ring`, say) does not disturb tiberius; see docs/guide.md.
//!
//! ```sh
//! cargo run -p examples --example otlp
//! OTEL_EXPORTER_OTLP_ENDPOINT=https://collector.example.com:4318 cargo run -p examples --example otlp
//! ```
//!
//! With no collector listening the program still succeeds: failed exports are logged as
//! warnings, each bounded by the exporter timeout. Against a real server, drop the emulator and
//! set host, port, credentials and `trust_cert_ca` (or start from the `connect` example).
//!
//! To run it in a project of your own, copy this file to `src/main.rs` and add:
//!
//! ```toml
//! [dependencies]
//! tiberius-tower = { version = "0.1", features = ["metrics"] }
//! tds-emulator = "0.1"
//! tiberius = { version = "0.13", default-features = false, features = ["rustls", "tds80"] }
//! tokio = { version = "1", features = ["macros", "rt-multi-thread"] }
//! tower = { version = "0.5", features = ["util"] }
//! tracing = "0.1"
//! tracing-subscriber = { version = "0.3", default-features = false, features = ["fmt", "registry", "std"] }
//! tracing-opentelemetry = { version = "0.34", default-features = false }
//! opentelemetry = { version = "0.33", default-features = false, features = ["trace", "metrics"] }
//! opentelemetry_sdk = { version = "0.33", default-features = false, features = ["trace", "metrics", "internal-logs"] }
//! opentelemetry-otlp = { version = "0.33", default-features = false, features = ["http-proto", "reqwest-blocking-client", "reqwest-rustls", "trace", "metrics", "internal-logs"] }
//! ```

use std::error::Error;
use std::time::Duration;

use opentelemetry::metrics::MeterProvider as _;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{MetricExporter, Protocol, SpanExporter, WithExportConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::metrics::SdkMeterProvider;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tds_emulator::{Emulator, EmulatorConfig, EncryptionSetting, Fault, Schedule};
use tiberius_tower::ConnectMetrics;
use tiberius_tower::{ConnectPolicy, ConnectRequest, Connector, EncryptionLevel, PreloginLayer};
use tower::{Service, ServiceBuilder, ServiceExt};
use tracing::Level;
use tracing_subscriber::Layer as _;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt as _;

/// How long one export may take, retries included. Bounds the run when nothing listens.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(2);

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let resource = Resource::builder()
        .with_service_name("tiberius-tower-otlp-example")
        .build();
    let spans = SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary)
        .with_timeout(EXPORT_TIMEOUT)
        .build()?;
    let tracer_provider = SdkTracerProvider::builder()
        .with_resource(resource.clone())
        .with_batch_exporter(spans)
        .build();
    let metrics = MetricExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary)
        .with_timeout(EXPORT_TIMEOUT)
        .build()?;
    let meter_provider = SdkMeterProvider::builder()
        .with_resource(resource)
        .with_periodic_exporter(metrics)
        .build();

    // Only the database spans go to OpenTelemetry: the exporter's own HTTP client must not trace
    // itself into the next export. The console gets this program's lines and the SDK's warnings
    // (a failed export is one).
    let to_otel = Targets::new()
        .with_target("tiberius_tower", Level::TRACE)
        .with_target("tiberius", Level::DEBUG);
    let to_console = Targets::new()
        .with_target("otlp", Level::INFO)
        .with_target("opentelemetry", Level::WARN)
        .with_target("opentelemetry_sdk", Level::WARN)
        .with_target("opentelemetry-otlp", Level::WARN);
    let subscriber = tracing_subscriber::registry()
        .with(
            tracing_opentelemetry::layer()
                .with_tracer(tracer_provider.tracer("otlp-example"))
                .with_filter(to_otel),
        )
        .with(
            tracing_subscriber::fmt::layer()
                .with_ansi(false)
                .with_filter(to_console),
        );
    tracing::subscriber::set_global_default(subscriber)?;

    let outcome = run(&meter_provider).await;

    // Flush and stop both pipelines off the runtime (they block); each export is bounded by
    // EXPORT_TIMEOUT, so this ends even when no collector answers.
    tokio::task::spawn_blocking(move || {
        if let Err(error) = tracer_provider.shutdown() {
            tracing::warn!(%error, "span export did not complete");
        }
        if let Err(error) = meter_provider.shutdown() {
            tracing::warn!(%error, "metric export did not complete");
        }
    })
    .await?;
    outcome
}

async fn run(meter_provider: &SdkMeterProvider) -> Result<(), Box<dyn Error>> {
    let server = Emulator::start(
        EmulatorConfig::new()
            .encryption(EncryptionSetting::Force)
            .fault(Fault::ResetAtServerByte(300), Schedule::FirstN(3)),
    )
    .await?;
    let ca_path = std::env::temp_dir().join(format!("otlp-example-ca-{}.pem", std::process::id()));
    server.write_ca_pem(&ca_path)?;
    tracing::info!(address = %server.local_addr(), "emulator listening (Force Encryption)");

    // Without `.metrics(..)` the layer would use `opentelemetry::global::meter("tiberius-tower")`.
    let meter = meter_provider.meter("otlp-example");
    let layer = PreloginLayer::new(
        ConnectPolicy::new()
            .min_delay(Duration::from_millis(50))
            .max_delay(Duration::from_millis(500)),
    )
    .metrics(ConnectMetrics::new(&meter).pool_name("example"));
    let mut connect = ServiceBuilder::new().layer(layer).service(Connector::new());

    let request = |password: &str| {
        ConnectRequest::builder()
            .host("127.0.0.1")
            .port(server.local_addr().port())
            .database("master")
            .authentication(tiberius::AuthMethod::sql_server("sa", password))
            .encryption(EncryptionLevel::NotSupported)
            .trust_cert_ca(&ca_path)
            .build()
    };

    for (label, password) in [
        ("first connect", "Password123!"),
        ("second connect", "Password123!"),
        ("wrong password", "not-the-password"),
    ] {
        match connect.ready().await?.call(request(password)).await {
            Ok(connected) => {
                let causes: Vec<&str> = connected
                    .attempts()
                    .iter()
                    .map(|a| a.cause().map_or("connected", |c| c.as_str()))
                    .collect();
                tracing::info!(
                    "{label}: connected at {:?} after {:?}",
                    connected.encryption(),
                    causes
                );
            }
            Err(error) => tracing::info!(
                "{label}: {} ({})",
                error.cause(),
                error.stop_reason().as_str()
            ),
        }
    }

    server.shutdown().await;
    let _ = std::fs::remove_file(&ca_path);
    Ok(())
}

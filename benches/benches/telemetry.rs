//! The cost of telemetry on a successful connect, side by side in one run.
//!
//! Both variants make the same clean connect (emulator with encryption Off,
//! client at Off: TLS for the login only) through `PreloginLayer`:
//!
//! - `off`: no `tracing` subscriber, metrics off: the spans are disabled
//!   callsites;
//! - `on`: `tracing-opentelemetry` into an SDK tracer provider (batch
//!   processor, an exporter that discards), plus the metrics through an SDK
//!   meter provider (periodic reader, in-memory exporter).
//!
//! The emulator runs on its own runtime thread; the client runs on the
//! bench thread, so the scoped subscriber sees the client only. After the
//! run it prints both medians and their ratio (`on / off`), read from
//! criterion's estimates.
//!
//! ```sh
//! cargo bench -p benches --bench telemetry -- --warm-up-time 1 --measurement-time 5
//! ```

use std::path::PathBuf;

use criterion::Criterion;
use opentelemetry::metrics::MeterProvider as _;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::metrics::{InMemoryMetricExporter, PeriodicReader, SdkMeterProvider};
use opentelemetry_sdk::trace::{SdkTracerProvider, SpanData, SpanExporter};
use tds_emulator::{Emulator, EmulatorConfig, EncryptionSetting};
use tiberius_tower::metrics::ConnectMetrics;
use tiberius_tower::{ConnectRequest, Connector, EncryptionLevel, Policy, Prelogin, PreloginLayer};
use tower::{Service, ServiceBuilder, ServiceExt};
use tracing_subscriber::layer::SubscriberExt as _;

const GROUP: &str = "telemetry";

/// A span exporter that drops everything: the cost measured is the
/// instrumentation and the SDK, not a network.
#[derive(Debug)]
struct Discard;

impl SpanExporter for Discard {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        drop(batch);
        Ok(())
    }
}

fn criterion_home() -> PathBuf {
    std::env::var_os("CRITERION_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../target/criterion"))
        })
}

/// The median (ns) criterion estimated for `id`, if this run produced one.
fn median_ns(id: &str) -> Option<f64> {
    let path = criterion_home()
        .join(GROUP)
        .join(id)
        .join("new/estimates.json");
    let json = std::fs::read_to_string(path).ok()?;
    let median = &json[json.find("\"median\"")?..];
    let value = &median[median.find("\"point_estimate\":")? + "\"point_estimate\":".len()..];
    let end = value.find([',', '}'])?;
    value[..end].trim().parse().ok()
}

fn service(policy: Policy, metrics: Option<ConnectMetrics>) -> Prelogin<Connector> {
    let layer = match metrics {
        Some(metrics) => PreloginLayer::new(policy).metrics(metrics),
        None => PreloginLayer::new(policy).without_metrics(),
    };
    ServiceBuilder::new().layer(layer).service(Connector::new())
}

fn main() {
    let server_runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("server runtime");
    let server = server_runtime
        .block_on(Emulator::start(
            EmulatorConfig::new().encryption(EncryptionSetting::Off),
        ))
        .expect("emulator starts");
    let ca = std::env::temp_dir().join(format!("bench-telemetry-{}.pem", std::process::id()));
    server.write_ca_pem(&ca).expect("CA written");
    let request = ConnectRequest::builder()
        .host("127.0.0.1")
        .port(server.local_addr().port())
        .database("master")
        .authentication(tiberius::AuthMethod::sql_server("sa", "Password123!"))
        .encryption(EncryptionLevel::Off)
        .trust_cert_ca(&ca)
        .build();
    let client = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("client runtime");
    let connect = |svc: &mut Prelogin<Connector>| {
        let request = request.clone();
        client.block_on(async {
            let connected = svc
                .ready()
                .await
                .expect("ready")
                .call(request)
                .await
                .expect("clean connect");
            drop(connected);
        });
    };
    let policy = Policy::new().without_memory();

    let mut criterion = Criterion::default()
        .output_directory(&criterion_home())
        .configure_from_args();
    let mut group = criterion.benchmark_group(GROUP);
    group.sample_size(50);

    let mut plain = service(policy.clone(), None);
    group.bench_function("off", |b| b.iter(|| connect(&mut plain)));

    // Built only now, so the `off` run never saw a subscriber exist.
    let tracer_provider = SdkTracerProvider::builder()
        .with_batch_exporter(Discard)
        .build();
    let meter_provider = SdkMeterProvider::builder()
        .with_reader(PeriodicReader::builder(InMemoryMetricExporter::default()).build())
        .build();
    let subscriber = tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(tracer_provider.tracer("bench")));
    let mut traced = service(
        policy,
        Some(ConnectMetrics::new(&meter_provider.meter("bench"))),
    );
    {
        let _guard = tracing::subscriber::set_default(subscriber);
        group.bench_function("on", |b| b.iter(|| connect(&mut traced)));
    }
    group.finish();
    criterion.final_summary();

    let _ = tracer_provider.shutdown();
    let _ = meter_provider.shutdown();
    server_runtime.block_on(server.shutdown());
    let _ = std::fs::remove_file(&ca);

    match (median_ns("off"), median_ns("on")) {
        (Some(off), Some(on)) => println!(
            "\nconnect median: telemetry off {:.3} ms, on {:.3} ms, ratio on/off {:.4}",
            off / 1e6,
            on / 1e6,
            on / off
        ),
        _ => println!("\nno criterion estimates (test mode or filtered run): no ratio"),
    }
}

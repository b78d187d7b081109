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
//! criterion's estimates, and the same ratio from an interleaved control
//! (the two variants in turn, 300 rounds), which this noisy machine needs.
//!
//! ```sh
//! cargo bench -p benches --bench telemetry -- --warm-up-time 1 --measurement-time 5
//! ```

mod common;

use common::{Server, client_runtime, criterion, print_ratio, server_runtime};
use opentelemetry::metrics::MeterProvider as _;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::metrics::{InMemoryMetricExporter, PeriodicReader, SdkMeterProvider};
use opentelemetry_sdk::trace::{SdkTracerProvider, SpanData, SpanExporter};
use tds_emulator::{EmulatorConfig, EncryptionSetting};
use tiberius_tower::metrics::ConnectMetrics;
use tiberius_tower::{Connector, EncryptionLevel, Policy, Prelogin, PreloginLayer};
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

fn service(policy: Policy, metrics: Option<ConnectMetrics>) -> Prelogin<Connector> {
    let layer = match metrics {
        Some(metrics) => PreloginLayer::new(policy).metrics(metrics),
        None => PreloginLayer::new(policy).without_metrics(),
    };
    ServiceBuilder::new().layer(layer).service(Connector::new())
}

fn main() {
    let server_runtime = server_runtime();
    let server = Server::start(
        &server_runtime,
        EmulatorConfig::new().encryption(EncryptionSetting::Off),
        "telemetry",
    );
    let request = server.request(EncryptionLevel::Off);
    let client = client_runtime();
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

    let mut criterion = criterion();
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
    let dispatch = tracing::Dispatch::new(
        tracing_subscriber::registry()
            .with(tracing_opentelemetry::layer().with_tracer(tracer_provider.tracer("bench"))),
    );
    let mut traced = service(
        policy,
        Some(ConnectMetrics::new(&meter_provider.meter("bench"))),
    );
    group.bench_function("on", |b| {
        tracing::dispatcher::with_default(&dispatch, || b.iter(|| connect(&mut traced)))
    });
    group.finish();
    criterion.final_summary();

    // Control: criterion runs `off` then `on`, and this shared machine drifts by more than
    // the effect; here the two take turns, 300 rounds, so drift hits both alike.
    let control = common::median_ns(GROUP, "off").map(|_| {
        common::interleaved(
            300,
            [&mut || connect(&mut plain), &mut || {
                tracing::dispatcher::with_default(&dispatch, || connect(&mut traced))
            }],
        )
    });

    let _ = tracer_provider.shutdown();
    let _ = meter_provider.shutdown();
    server.stop(&server_runtime);

    println!();
    print_ratio(GROUP, "on", "off", "<= 1.02");
    if let Some([off, on]) = control {
        println!(
            "{GROUP} (interleaved control, 300 rounds): median on {} / off {} = ratio {:.4}",
            common::human(on),
            common::human(off),
            on / off
        );
    }
}

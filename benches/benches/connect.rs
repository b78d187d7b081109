//! Design §3: a successful connect through the layer vs bare tiberius.
//!
//! All three variants make the same clean connect to one emulator
//! (encryption Off, client at Off: TLS for the login only, then LOGIN7 and
//! the login response), with the same `tiberius::Config`
//! (`ConnectRequest::tiberius_config`):
//!
//! - `bare`: `TcpStream::connect` + TCP_NODELAY + `tiberius::Client::connect`;
//! - `layer`: `PreloginLayer` (default policy, memory on, metrics off, no
//!   subscriber) over `Connector`;
//! - `layer_telemetry`: the same with telemetry on as in the `telemetry`
//!   bench: `tracing-opentelemetry` into an SDK tracer provider (batch
//!   processor, discarding exporter) as the bench thread's subscriber, and
//!   the metrics through an SDK meter provider.
//!
//! Prints the medians and the ratios `layer / bare` and
//! `layer_telemetry / bare` (goal <= 1.02).
//!
//! ```sh
//! cargo bench -p benches --bench connect -- --warm-up-time 1 --measurement-time 5
//! ```

mod common;

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

use common::{Server, bare_connect, client_runtime, layered, print_ratio, server_runtime};

const GROUP: &str = "connect";

/// A span exporter that drops everything.
#[derive(Debug)]
struct Discard;

impl SpanExporter for Discard {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        drop(batch);
        Ok(())
    }
}

fn main() {
    let server_rt = server_runtime();
    let server = Server::start(
        &server_rt,
        EmulatorConfig::new().encryption(EncryptionSetting::Off),
        "connect",
    );
    let request = server.request(EncryptionLevel::Off);
    let client = client_runtime();

    let layer_connect = |svc: &mut Prelogin<Connector>| {
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

    let mut criterion = common::criterion();
    let mut group = criterion.benchmark_group(GROUP);
    group.sample_size(50);

    group.bench_function("bare", |b| {
        b.iter(|| {
            client.block_on(async {
                let connected = bare_connect(&request).await.expect("clean connect");
                drop(connected);
            })
        })
    });

    let mut plain = layered(Policy::new());
    group.bench_function("layer", |b| b.iter(|| layer_connect(&mut plain)));

    // Built only now, so the runs above never saw a subscriber exist.
    let tracer_provider = SdkTracerProvider::builder()
        .with_batch_exporter(Discard)
        .build();
    let meter_provider = SdkMeterProvider::builder()
        .with_reader(PeriodicReader::builder(InMemoryMetricExporter::default()).build())
        .build();
    let subscriber = tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(tracer_provider.tracer("bench")));
    let mut traced = ServiceBuilder::new()
        .layer(
            PreloginLayer::new(Policy::new())
                .metrics(ConnectMetrics::new(&meter_provider.meter("bench"))),
        )
        .service(Connector::new());
    {
        let _guard = tracing::subscriber::set_default(subscriber);
        group.bench_function("layer_telemetry", |b| b.iter(|| layer_connect(&mut traced)));
    }
    group.finish();
    criterion.final_summary();

    // Control: bare and layer in turn, so ordering and drift hit both alike.
    let control = common::median_ns(GROUP, "bare").map(|_| {
        common::interleaved(
            300,
            [
                &mut || {
                    client.block_on(async {
                        drop(bare_connect(&request).await.expect("clean connect"));
                    })
                },
                &mut || layer_connect(&mut plain),
            ],
        )
    });

    let _ = tracer_provider.shutdown();
    let _ = meter_provider.shutdown();
    server.stop(&server_rt);

    println!();
    print_ratio(GROUP, "layer", "bare", "<= 1.02");
    print_ratio(GROUP, "layer_telemetry", "bare", "<= 1.02");
    if let Some([bare, layer]) = control {
        println!(
            "{GROUP} (interleaved control, 300 rounds): median layer {} / bare {} = ratio {:.4}",
            common::human(layer),
            common::human(bare),
            layer / bare
        );
    }
}

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

use tds_emulator::{EmulatorConfig, EncryptionSetting};
use tiberius_tower::{ConnectPolicy, EncryptionLevel};

use common::telemetry::Telemetry;
use common::{
    Server, bare_connect, client_runtime, connect_through, layered, print_ratio, server_runtime,
};

const GROUP: &str = "connect";

fn main() {
    let server_rt = server_runtime();
    let server = Server::start(
        &server_rt,
        EmulatorConfig::new().encryption(EncryptionSetting::Off),
        "connect",
    );
    let request = server.request(EncryptionLevel::Off);
    let client = client_runtime();

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

    let mut plain = layered(ConnectPolicy::new());
    group.bench_function("layer", |b| {
        b.iter(|| connect_through(&client, &mut plain, &request))
    });

    // Built only now, so the runs above never saw a subscriber exist.
    let telemetry = Telemetry::new();
    let mut traced = telemetry.layered(ConnectPolicy::new());
    group.bench_function("layer_telemetry", |b| {
        tracing::dispatcher::with_default(&telemetry.dispatch, || {
            b.iter(|| connect_through(&client, &mut traced, &request))
        })
    });
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
                &mut || connect_through(&client, &mut plain, &request),
            ],
        )
    });

    telemetry.shutdown();
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

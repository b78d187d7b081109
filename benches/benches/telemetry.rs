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

use common::telemetry::Telemetry;
use common::{Server, client_runtime, connect_through, criterion, print_ratio, server_runtime};
use tds_emulator::{EmulatorConfig, EncryptionSetting};
use tiberius_tower::{ConnectPolicy, EncryptionLevel};

const GROUP: &str = "telemetry";

fn main() {
    let server_runtime = server_runtime();
    let server = Server::start(
        &server_runtime,
        EmulatorConfig::new().encryption(EncryptionSetting::Off),
        "telemetry",
    );
    let request = server.request(EncryptionLevel::Off);
    let client = client_runtime();
    let policy = ConnectPolicy::new().without_memory();

    let mut criterion = criterion();
    let mut group = criterion.benchmark_group(GROUP);
    group.sample_size(50);

    let mut plain = common::layered(policy.clone());
    group.bench_function("off", |b| {
        b.iter(|| connect_through(&client, &mut plain, &request))
    });

    // Built only now, so the `off` run never saw a subscriber exist.
    let telemetry = Telemetry::new();
    let mut traced = telemetry.layered(policy);
    group.bench_function("on", |b| {
        tracing::dispatcher::with_default(&telemetry.dispatch, || {
            b.iter(|| connect_through(&client, &mut traced, &request))
        })
    });
    group.finish();
    criterion.final_summary();

    // Control: criterion runs `off` then `on`, and this shared machine drifts by more than
    // the effect; here the two take turns, 300 rounds, so drift hits both alike.
    let control = common::median_ns(GROUP, "off").map(|_| {
        common::interleaved(
            300,
            [
                &mut || connect_through(&client, &mut plain, &request),
                &mut || {
                    tracing::dispatcher::with_default(&telemetry.dispatch, || {
                        connect_through(&client, &mut traced, &request)
                    })
                },
            ],
        )
    });

    telemetry.shutdown();
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

//! Design §3: query throughput after login, observed stream vs bare stream.
//!
//! One emulator (encryption Off); two clients at Off (TLS for the login
//! only, so everything after login is plaintext TDS and the stream wrapper
//! is all that differs):
//!
//! - `bare`: tiberius over a plain `TcpStream`;
//! - `observed`: connected through `PreloginLayer`, so tiberius runs over
//!   `tiberius_tower::ObservedStream` (`TdsClient`).
//!
//! Each iteration runs `SELECT ROWS 2000 BYTES 4000` (2,000 rows of one
//! 4,000-byte VARBINARY column, ~8 MB of row data) and collects the rows.
//! Prints the medians and the throughput ratio `observed / bare` (=
//! `median bare / median observed`; goal >= 0.99).
//!
//! ```sh
//! cargo bench -p benches --bench throughput -- --warm-up-time 1 --measurement-time 5
//! ```

mod common;

use criterion::Throughput;
use futures_util::io::{AsyncRead, AsyncWrite};
use tds_emulator::{EmulatorConfig, EncryptionSetting};
use tiberius_tower::{ConnectPolicy, EncryptionLevel};
use tower::{Service, ServiceExt};

use common::{Server, bare_connect, client_runtime, human, layered, median_ns, server_runtime};

const GROUP: &str = "throughput";
const ROWS: usize = 2_000;
const BYTES: usize = 4_000;

/// Runs the sized query and checks its shape.
async fn query<S>(client: &mut tiberius::Client<S>) -> usize
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    let rows = client
        .simple_query(format!("SELECT ROWS {ROWS} BYTES {BYTES}"))
        .await
        .expect("query")
        .into_first_result()
        .await
        .expect("rows");
    assert_eq!(rows.len(), ROWS);
    rows.len()
}

fn main() {
    let server_rt = server_runtime();
    let server = Server::start(
        &server_rt,
        EmulatorConfig::new().encryption(EncryptionSetting::Off),
        "throughput",
    );
    let request = server.request(EncryptionLevel::Off);
    let client = client_runtime();

    let mut bare = client
        .block_on(bare_connect(&request))
        .expect("bare connect");
    let mut svc = layered(ConnectPolicy::new());
    let mut observed = client
        .block_on(async { svc.ready().await?.call(request.clone()).await })
        .expect("layered connect")
        .into_client();

    // One row checked in full: the payload really is ROWS x BYTES.
    let first = client.block_on(async {
        observed
            .simple_query(format!("SELECT ROWS 1 BYTES {BYTES}"))
            .await
            .expect("query")
            .into_row()
            .await
            .expect("row")
            .expect("one row")
    });
    assert_eq!(first.get::<&[u8], _>(0).map(<[u8]>::len), Some(BYTES));

    let mut criterion = common::criterion();
    let mut group = criterion.benchmark_group(GROUP);
    group.sample_size(30);
    group.throughput(Throughput::Bytes((ROWS * BYTES) as u64));
    group.bench_function("bare", |b| b.iter(|| client.block_on(query(&mut bare))));
    group.bench_function("observed", |b| {
        b.iter(|| client.block_on(query(&mut observed)))
    });
    group.finish();
    criterion.final_summary();

    // Control: the two queries in turn, so ordering and drift hit both alike.
    let control = median_ns(GROUP, "bare").map(|_| {
        common::interleaved(
            30,
            [
                &mut || {
                    client.block_on(query(&mut bare));
                },
                &mut || {
                    client.block_on(query(&mut observed));
                },
            ],
        )
    });

    drop(bare);
    drop(observed);
    server.stop(&server_rt);

    println!();
    match (median_ns(GROUP, "bare"), median_ns(GROUP, "observed")) {
        (Some(bare), Some(observed)) => {
            let mb = (ROWS * BYTES) as f64 / 1e6;
            println!(
                "{GROUP}: median bare {} ({:.0} MB/s) / observed {} ({:.0} MB/s): \
                 throughput ratio observed/bare {:.4}  (goal >= 0.99)",
                human(bare),
                mb / (bare / 1e9),
                human(observed),
                mb / (observed / 1e9),
                bare / observed
            );
        }
        _ => println!("{GROUP}: no criterion estimates in this run"),
    }
    if let Some([bare, observed]) = control {
        println!(
            "{GROUP} (interleaved control, 30 rounds): median bare {} / observed {}: \
             throughput ratio observed/bare {:.4}",
            human(bare),
            human(observed),
            bare / observed
        );
    }
}

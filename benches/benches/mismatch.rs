//! Design §3: a deterministic mismatch, time to a useful outcome through the
//! layer vs bb8's blind connection retry (goal: >= 100x faster).
//!
//! The mismatch: a server without encryption support (emulator `none`, the
//! PRELOGIN reply says NOT_SUP) and a client that requires encryption.
//! Retrying can never help.
//!
//! - `layer`: `PreloginLayer` (default policy, metrics off) over
//!   `Connector`: one attempt, classified `encryption_unavailable`, stop,
//!   and a `ConnectError` that says what to change. Criterion-sampled.
//! - `layer_ceiling`: the other deterministic stop, for reference: a Force
//!   Encryption server, client at NotSupported, policy ceiling Off
//!   (`encryption_required`, stop at the ceiling). Criterion-sampled.
//! - `bare_once`: one bare `tiberius::Client::connect` failing, for
//!   reference (what each of bb8's tries costs). Criterion-sampled.
//! - bb8: a pool (`bb8` 0.9, `max_size(1)`, everything else default, so
//!   `connection_timeout` = 30 s and `retry_connection` = true) over a
//!   minimal `ManageConnection` that makes one bare tiberius connect.
//!   `pool.get()` until it returns: bb8 retries the connect with doubling
//!   sleeps until its timeout and then returns `RunError::TimedOut`; the
//!   tiberius error goes to its (default, no-op) error sink. One timed run
//!   of the full default timeout, nothing scaled.
//!
//! Prints the layer's median, bb8's time and the ratio `bb8 / layer`.
//!
//! ```sh
//! cargo bench -p benches --bench mismatch -- --warm-up-time 1 --measurement-time 5
//! ```

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tds_emulator::{EmulatorConfig, EncryptionSetting};
use tiberius_tower::{
    Cause, ConnectError, ConnectPolicy, ConnectRequest, Connector, EncryptionLevel, Prelogin,
};
use tokio::runtime::Runtime;
use tower::{Service, ServiceExt};

use common::{
    BOUND, BareClient, Server, bare_connect, client_runtime, human, layered, median_ns,
    print_ratio, server_runtime,
};

const GROUP: &str = "mismatch";

/// The smallest bb8 manager for tiberius: one bare connect per call.
struct Manager {
    request: ConnectRequest,
    tries: Arc<Tries>,
}

/// What the manager saw, readable after the pool gave up.
#[derive(Default)]
struct Tries {
    connects: AtomicUsize,
    last_error: Mutex<Option<String>>,
}

impl bb8::ManageConnection for Manager {
    type Connection = BareClient;
    type Error = tiberius::error::Error;

    async fn connect(&self) -> Result<BareClient, tiberius::error::Error> {
        self.tries.connects.fetch_add(1, Ordering::Relaxed);
        let result = bare_connect(&self.request).await;
        if let Err(e) = &result {
            *self
                .tries
                .last_error
                .lock()
                .unwrap_or_else(|p| p.into_inner()) = Some(e.to_string());
        }
        result
    }

    async fn is_valid(&self, client: &mut BareClient) -> Result<(), tiberius::error::Error> {
        client.simple_query("SELECT 1").await?.into_row().await?;
        Ok(())
    }

    fn has_broken(&self, _: &mut BareClient) -> bool {
        false
    }
}

/// One connect through the layer that must fail with `cause`.
fn layer_fails(
    client: &Runtime,
    svc: &mut Prelogin<Connector>,
    request: &ConnectRequest,
    cause: Cause,
) -> ConnectError {
    client.block_on(async {
        let result = svc
            .ready()
            .await
            .expect("ready")
            .call(request.clone())
            .await;
        let Err(error) = result else {
            panic!("a mismatch never connects");
        };
        assert_eq!(error.cause(), cause);
        error
    })
}

fn main() {
    let server_rt = server_runtime();
    let client = client_runtime();
    let none = Server::start(
        &server_rt,
        EmulatorConfig::new().encryption(EncryptionSetting::None),
        "mismatch-none",
    );
    let force = Server::start(
        &server_rt,
        EmulatorConfig::new().encryption(EncryptionSetting::Force),
        "mismatch-force",
    );
    let unavailable = none.request(EncryptionLevel::Required);
    let ceiling = force.request(EncryptionLevel::NotSupported);
    let mut svc = layered(ConnectPolicy::new());
    let mut capped = layered(ConnectPolicy::new().ceiling(EncryptionLevel::Off));

    let error = layer_fails(
        &client,
        &mut svc,
        &unavailable,
        Cause::EncryptionUnavailable,
    );
    println!(
        "layer outcome ({} attempt(s), stop {:?}): {error}",
        error.attempts().len(),
        error.stop_reason()
    );
    let error = layer_fails(&client, &mut capped, &ceiling, Cause::EncryptionRequired);
    println!(
        "layer_ceiling outcome ({} attempt(s), stop {:?}): {error}",
        error.attempts().len(),
        error.stop_reason()
    );

    let mut criterion = common::criterion();
    let mut group = criterion.benchmark_group(GROUP);
    group.sample_size(50);
    group.bench_function("layer", |b| {
        b.iter(|| {
            layer_fails(
                &client,
                &mut svc,
                &unavailable,
                Cause::EncryptionUnavailable,
            )
        })
    });
    group.bench_function("layer_ceiling", |b| {
        b.iter(|| layer_fails(&client, &mut capped, &ceiling, Cause::EncryptionRequired))
    });
    group.bench_function("bare_once", |b| {
        b.iter(|| match client.block_on(bare_connect(&unavailable)) {
            Ok(_) => panic!("a mismatch never connects"),
            Err(e) => e,
        })
    });
    group.finish();
    criterion.final_summary();

    // bb8, one run with its defaults (skipped when criterion runs in test
    // mode or under a filter that left out the layer).
    let layer = median_ns(GROUP, "layer");
    let bb8 = layer.map(|_| {
        let tries = Arc::new(Tries::default());
        let manager = Manager {
            request: unavailable.clone(),
            tries: Arc::clone(&tries),
        };
        client.block_on(async {
            let pool = bb8::Pool::builder()
                .max_size(1)
                .build(manager)
                .await
                .expect("no idle connections to open");
            let started = Instant::now();
            let outcome = tokio::time::timeout(BOUND, pool.get()).await;
            let elapsed = started.elapsed();
            let outcome = match outcome {
                Ok(Ok(_)) => "connected (unexpected)".to_owned(),
                Ok(Err(e)) => format!("{e:?}"),
                Err(_) => "still waiting at the bench's bound".to_owned(),
            };
            (elapsed, outcome, tries)
        })
    });

    none.stop(&server_rt);
    force.stop(&server_rt);

    println!();
    print_ratio(
        GROUP,
        "layer",
        "bare_once",
        "context: layer vs one bare failed connect",
    );
    match (layer, bb8) {
        (Some(layer), Some((elapsed, outcome, tries))) => {
            let last = tries
                .last_error
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone()
                .unwrap_or_default();
            println!(
                "bb8 (connection_timeout 30 s default, retry_connection default): {} until {outcome}, \
                 {} connect tries, the last failing with: {last}",
                human(elapsed.as_nanos() as f64),
                tries.connects.load(Ordering::Relaxed),
            );
            println!(
                "{GROUP}: layer median {} vs bb8 {}: layer is {:.0}x faster  (goal >= 100x)",
                human(layer),
                human(elapsed.as_nanos() as f64),
                elapsed.as_nanos() as f64 / layer
            );
        }
        _ => println!("{GROUP}: no criterion estimates in this run: bb8 not run"),
    }
}

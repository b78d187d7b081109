//! deadpool pools of layered connections against the emulator: upgrades learned
//! once, deterministic causes reaching `get`, transient resets within the
//! shared budget, and a server restarted under the pool.
#![cfg(feature = "deadpool")]

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{
    Server, WALL_CLOCK, base_config, fast_policy, select_one, server_bytes_of_clean_connect,
    service, through_30_percent_resets,
};
use deadpool::managed::{Object, Pool, PoolError};
use futures_util::StreamExt;
use tds_emulator::{EmulatorConfig, EncryptionSetting, Fault, Schedule};
use tiberius_tower::pool::PoolConnector;
use tiberius_tower::{Cause, Connector, EncryptionLevel, Prelogin, RetryBudget};

type Svc = Prelogin<Connector>;

fn pool(connector: PoolConnector<Svc>, max_size: usize) -> Pool<PoolConnector<Svc>> {
    connector
        .deadpool_builder()
        .max_size(max_size)
        .build()
        .expect("a tokio runtime is set")
}

async fn get(pool: &Pool<PoolConnector<Svc>>) -> Object<PoolConnector<Svc>> {
    tokio::time::timeout(WALL_CLOCK, pool.get())
        .await
        .expect("bounded")
        .expect("connection")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn force_encryption_pool_of_10_learns_the_upgrade_once() {
    let server = Server::with_setting(EncryptionSetting::Force).await;
    let connector = PoolConnector::new(
        service(fast_policy()),
        server.request(EncryptionLevel::NotSupported),
    );
    let pool = pool(connector, 10);

    // The first connection learns the upgrade; the other nine, asked for
    // together while it is held, start where it ended.
    let mut first = get(&pool).await;
    assert_eq!(select_one(&mut first).await, Some(1));
    let others: Vec<_> = futures_util::future::join_all((0..9).map(|_| get(&pool))).await;
    assert_eq!(others.len(), 9);
    assert_eq!(pool.status().size, 10);

    // Written down from what SQL Server does: NOT_SUP is answered REQ and
    // reset (one record), then eleven logins at Required.
    let levels = server.offered_levels();
    let not_supported = levels
        .iter()
        .filter(|l| **l == Some(EncryptionLevel::NotSupported))
        .count();
    let required = levels
        .iter()
        .filter(|l| **l == Some(EncryptionLevel::Required))
        .count();
    assert_eq!(
        (not_supported, required, levels.len()),
        (1, 10, 11),
        "{levels:?}"
    );
    drop(others);
    drop(first);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deterministic_causes_reach_get_after_one_connect() {
    // A server without TLS and a client that requires it.
    let none = Server::with_setting(EncryptionSetting::None).await;
    // A login the server does not know.
    let off = Server::with_setting(EncryptionSetting::Off).await;
    let wrong_password = off.request_with_password(EncryptionLevel::Required, "NotThePassword!");
    let cases = [
        (
            &none,
            none.request(EncryptionLevel::Required),
            "encryption_unavailable",
        ),
        (&off, wrong_password, "login_failed"),
    ];
    for (server, request, cause) in cases {
        let pool = pool(PoolConnector::new(service(fast_policy()), request), 4);
        let started = Instant::now();
        let error = match tokio::time::timeout(WALL_CLOCK, pool.get()).await {
            Ok(Err(PoolError::Backend(error))) => error,
            Ok(Err(other)) => panic!("{cause}: {other:?}"),
            Ok(Ok(_)) => panic!("{cause}: connected"),
            Err(_) => panic!("{cause}: get did not finish"),
        };
        println!("{cause}: pool.get() returned after {:?}", started.elapsed());
        assert_eq!(error.cause().map(Cause::as_str), Some(cause));
        let connect = error.connect_error().expect("the layer's error");
        assert_eq!(connect.attempts().len(), 1, "{cause}");
        assert!(!error.to_string().contains("NotThePassword"), "{error}");
        // Neither the layer nor the pool tried again.
        assert!(
            server
                .emulator
                .wait_for_stats(|s| s.accepted == 1, Duration::from_secs(5))
                .await
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(
            server.emulator.stats().accepted,
            1,
            "{cause}: no second connect"
        );
    }
    none.stop().await;
    off.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_resets_are_retried_within_the_shared_budget() {
    // 30 % of connections are reset inside the login response: transient,
    // and no Strict-probe candidate (the server replied to the PRELOGIN).
    let cut = server_bytes_of_clean_connect().await - 20;
    let server = Server::start(base_config(EncryptionSetting::Off).fault(
        Fault::ResetAtServerByte(cut),
        Schedule::Probability { p: 0.3, seed: 7 },
    ))
    .await;
    const GETS: usize = 200;
    const BUDGET: u32 = 150;
    let budget = Arc::new(RetryBudget::fixed(BUDGET));
    let connector = PoolConnector::new(
        service(through_30_percent_resets(Arc::clone(&budget))),
        server.request(EncryptionLevel::Off),
    );
    // Every connection is taken out of the pool after its query, so each
    // get makes a connect through the layer.
    let pool = pool(connector, 10);
    let ok = futures_util::stream::iter(0..GETS)
        .map(|_| async {
            let mut conn = get(&pool).await;
            let one = select_one(&mut conn).await;
            drop(Object::take(conn));
            one
        })
        .buffer_unordered(10)
        .filter(|one| std::future::ready(*one == Some(1)))
        .count()
        .await;
    assert_eq!(ok, GETS);
    let stats = server.emulator.stats();
    let resets = stats.faults("reset_at_server_byte");
    println!(
        "{GETS} gets: {} connections accepted, {resets} reset",
        stats.accepted
    );
    assert!(resets > 0, "the fault fired");
    // Each reset connection was retried, and each retry was paid for by the
    // shared budget.
    let retries = resets;
    // Every retry was paid for by the shared budget.
    assert_eq!(u64::from(BUDGET - budget.available()), retries);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_server_is_detected_and_its_connections_replaced() {
    let server = Server::with_setting(EncryptionSetting::Off).await;
    let addr = server.emulator.local_addr();
    let pool = pool(
        PoolConnector::new(
            service(fast_policy()),
            server.request(EncryptionLevel::Required),
        ),
        4,
    );
    let held: Vec<_> = futures_util::future::join_all((0..4).map(|_| get(&pool))).await;
    drop(held);
    assert_eq!(pool.status().available, 4);

    // The server goes away with every connection and comes back on the same
    // address with a new certificate, written where the request reads it.
    let ca = server.ca.clone();
    server.emulator.shutdown().await;
    let restarted = Server::start(EmulatorConfig::new().listen(addr)).await;
    restarted.emulator.write_ca_pem(&ca).expect("CA written");

    for _ in 0..8 {
        let mut conn = get(&pool).await;
        assert_eq!(select_one(&mut conn).await, Some(1));
    }
    // The four dead connections failed their recycle check and were
    // dropped; one new connection from the restarted server served the
    // eight sequential gets.
    assert_eq!(restarted.emulator.stats().logged_in, 1);
    assert_eq!(pool.status().size, 1);
    restarted.stop().await;
    let _ = std::fs::remove_file(&ca);
}

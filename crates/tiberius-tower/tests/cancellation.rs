//! Cancellation at any await point leaks nothing (design §4, issue 8).
//!
//! The middleware's connect future is driven by hand, one poll at a time,
//! with a waker that only records that it was woken. For N = 1, 2, ... the
//! future is dropped right after its N-th `Pending`, until a run completes
//! without being dropped; after every drop the emulator must see all of that
//! run's sockets closed within a bounded wait. Each `Pending` is an await
//! point the connect really reached, so every one of them is covered.
//! Three paths: the Force Encryption upgrade, the Strict probe, and the
//! plaintext check after a silent Strict attempt.

mod common;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use common::{Server, base_config, fast_policy, select_one, service};
use futures_util::task::{ArcWake, waker};
use tds_emulator::EncryptionSetting;
use tiberius_tower::{Cause, ConnectPolicy, EncryptionLevel};
use tower::{Service, ServiceExt};

/// A waker that remembers a wake-up (a permit is kept if nobody waits yet).
struct Woken(tokio::sync::Notify);

impl ArcWake for Woken {
    fn wake_by_ref(arc_self: &Arc<Self>) {
        arc_self.0.notify_one();
    }
}

/// Bound on the wait for one wake-up, and on the sockets closing.
const WAIT: Duration = Duration::from_secs(20);

/// More await points than any connect here has: reaching it is a failure.
const MAX_PENDINGS: usize = 2_000;

enum Run {
    /// Dropped after its N-th `Pending`.
    Dropped,
    /// Finished before its N-th `Pending`, after this many: connected in
    /// this many attempts, or failed with this cause.
    Completed {
        pendings: usize,
        outcome: Result<usize, Cause>,
    },
}

/// Connects, dropping the future right after its `drop_after`-th `Pending`.
async fn run_once(
    server: &Server,
    policy: ConnectPolicy,
    level: EncryptionLevel,
    drop_after: usize,
) -> Run {
    let mut svc = service(policy);
    let ready = svc.ready().await.expect("always ready");
    let mut connect = Box::pin(ready.call(server.request(level)));
    let woken = Arc::new(Woken(tokio::sync::Notify::new()));
    let waker = waker(woken.clone());
    let mut pendings = 0;
    loop {
        let mut cx = Context::from_waker(&waker);
        match Pin::new(&mut connect).poll(&mut cx) {
            Poll::Ready(Ok(mut connected)) => {
                assert_eq!(select_one(connected.client_mut()).await, Some(1));
                return Run::Completed {
                    pendings,
                    outcome: Ok(connected.attempts().len()),
                };
            }
            Poll::Ready(Err(error)) => {
                return Run::Completed {
                    pendings,
                    outcome: Err(error.cause()),
                };
            }
            Poll::Pending => {
                pendings += 1;
                if pendings == drop_after {
                    drop(connect);
                    return Run::Dropped;
                }
                tokio::time::timeout(WAIT, woken.0.notified())
                    .await
                    .unwrap_or_else(|_| panic!("no wake-up within {WAIT:?} after poll {pendings}"));
            }
        }
    }
}

/// Drops the connect after each of its await points in turn; returns how
/// many were covered.
async fn drop_at_every_await_point(
    setting: EncryptionSetting,
    level: EncryptionLevel,
    policy: impl Fn() -> ConnectPolicy,
    expected: Result<usize, Cause>,
) -> usize {
    let server = Server::start(base_config(setting)).await;
    for drop_after in 1..=MAX_PENDINGS {
        // A fresh policy each run: its endpoint memory must not skip the
        // upgrade or the probe a previous run learned.
        let run = run_once(&server, policy(), level, drop_after).await;
        assert!(
            server.emulator.wait_for_open_connections(0, WAIT).await,
            "{setting}/{level}: {} connections still open after dropping at pending {drop_after}",
            server.emulator.open_connections()
        );
        if let Run::Completed { pendings, outcome } = run {
            // The run that was not dropped took the path under test.
            assert_eq!(outcome, expected, "{setting}/{level}");
            server.stop().await;
            return pendings;
        }
    }
    panic!("{setting}/{level}: still pending after {MAX_PENDINGS} polls");
}

// One thread: the emulator and the I/O driver run only while the connect is
// pending, so every await point the connect reaches shows as a `Pending`.
#[tokio::test(flavor = "current_thread")]
async fn dropping_the_force_encryption_upgrade_at_every_await_point_leaks_no_socket() {
    // NotSupported against Force Encryption: reply REQ, reset, upgrade, TLS, login.
    let covered = drop_at_every_await_point(
        EncryptionSetting::Force,
        EncryptionLevel::NotSupported,
        fast_policy,
        Ok(2),
    )
    .await;
    assert!(covered >= 2, "{covered} await points");
    println!("force upgrade: {covered} await points covered");
}

// One thread: the emulator and the I/O driver run only while the connect is
// pending, so every await point the connect reaches shows as a `Pending`.
#[tokio::test(flavor = "current_thread")]
async fn dropping_the_strict_probe_at_every_await_point_leaks_no_socket() {
    // Required against Force Strict Encryption: reset, Strict probe, login.
    let covered = drop_at_every_await_point(
        EncryptionSetting::StrictOnly,
        EncryptionLevel::Required,
        || fast_policy().ceiling(EncryptionLevel::Strict),
        Ok(2),
    )
    .await;
    assert!(covered >= 2, "{covered} await points");
    println!("strict probe: {covered} await points covered");
}

// One thread: the emulator and the I/O driver run only while the connect is
// pending, so every await point the connect reaches shows as a `Pending`.
#[tokio::test(flavor = "current_thread")]
async fn dropping_the_strict_unsupported_check_at_every_await_point_leaks_no_socket() {
    // Strict against a server without TDS 8.0 (the emulator's default
    // silence): the TLS-first attempt meets silence, then the plaintext
    // PRELOGIN check runs. A short probe bound keeps each run short.
    let covered = drop_at_every_await_point(
        EncryptionSetting::Off,
        EncryptionLevel::Strict,
        || fast_policy().strict_probe_timeout(Duration::from_millis(300)),
        Err(Cause::StrictUnsupported),
    )
    .await;
    assert!(covered >= 2, "{covered} await points");
    println!("strict unsupported: {covered} await points covered");
}

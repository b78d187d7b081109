//! A panic inside tiberius during the handshake is contained: the connect fails with
//! `backend_panic`, nothing aborts, the socket is released, and the service keeps working.

mod common;

use common::{Server, WALL_CLOCK, base_config, connect, fast_policy, select_one, service};
use tds_emulator::{EncryptionSetting, Fault, Schedule};
use tiberius_tower::{Cause, EncryptionLevel, StopReason};

// tiberius 0.13 checks the server's PRELOGIN THREADID with `debug_assert_eq!(thread_id, 0)`
// (tds-handshake.md §2.3), so only debug builds panic on it; a release build compiles the
// assertion out, logs in, and this test would have nothing to observe.
#[cfg(debug_assertions)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn driver_panic_on_nonzero_threadid_becomes_backend_panic_and_leaks_nothing() {
    let faulty = Server::start(
        base_config(EncryptionSetting::Off).fault(Fault::NonZeroThreadId, Schedule::Always),
    )
    .await;
    let healthy = Server::with_setting(EncryptionSetting::Off).await;
    let mut svc = service(fast_policy().without_memory());

    // Twice: a contained panic must not poison the service, the runtime or the next attempt.
    for round in 1..=2u64 {
        let error = connect(&mut svc, faulty.request(EncryptionLevel::Required))
            .await
            .expect_err("the driver panicked");
        assert_eq!(error.cause(), Cause::BackendPanic, "round {round}: {error}");
        // A driver bug is not fixed by trying again.
        assert_eq!(error.stop_reason(), StopReason::Deterministic);
        assert_eq!(error.attempts().len(), 1);
        assert_eq!(error.attempts()[0].cause(), Some(Cause::BackendPanic));
        assert_eq!(faulty.emulator.stats().faults("nonzero_threadid"), round);
        // The panicking future dropped its socket: the emulator sees every connection end.
        assert!(
            faulty
                .emulator
                .wait_for_open_connections(0, WALL_CLOCK)
                .await,
            "round {round}: a connection was leaked"
        );
    }

    // The same service, a healthy server: a normal connect and query.
    let mut connected = connect(&mut svc, healthy.request(EncryptionLevel::Required))
        .await
        .expect("the service still connects");
    assert_eq!(connected.attempts().len(), 1);
    assert_eq!(select_one(connected.client_mut()).await, Some(1));
    drop(connected);

    faulty.stop().await;
    healthy.stop().await;
}

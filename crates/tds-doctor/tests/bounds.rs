//! A dead or silent server: the probe ends within its documented time, with the finding.

mod common;

use std::time::Duration;

use common::{PATIENCE, codes};
use tds_doctor::report::{PreloginOutcome, TlsOutcome};
use tds_doctor::{ProbeOptions, Target};
use tokio::net::TcpListener;

#[tokio::test]
async fn refused_address_ends_after_one_probe_as_unreachable() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener); // nothing listens there now: the SYN is answered with a reset

    let options = ProbeOptions::new().timeout(Duration::from_secs(2));
    // Documented: a refused address ends after the first probe.
    let report = tokio::time::timeout(
        options.probe_timeout() + PATIENCE,
        tds_doctor::probe(&Target::new("127.0.0.1", port), &options),
    )
    .await
    .expect("a refused address ends after one probe");

    assert!(matches!(
        report.prelogin[0].result,
        PreloginOutcome::Unreachable { .. }
    ));
    assert_eq!(report.prelogin[1].result, PreloginOutcome::Skipped);
    assert_eq!(report.prelogin[2].result, PreloginOutcome::Skipped);
    assert!(matches!(report.tds8.result, TlsOutcome::Unreachable { .. }));
    assert_eq!(codes(&report), ["unreachable"]);
    assert_eq!(report.exit_code(), 3);
}

#[tokio::test]
async fn silent_server_ends_after_two_probe_bounds() {
    // Accepts TCP, reads nothing, answers nothing: a hung listener or a black-holing proxy.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (count_tx, mut count_rx) = tokio::sync::mpsc::unbounded_channel();
    let holder = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
            let _ = count_tx.send(held.len());
        }
    });

    let options = ProbeOptions::new().timeout(Duration::from_secs(1));
    // Documented: a server that never answers ends after 2 × the per-probe bound.
    let report = tokio::time::timeout(
        options.probe_timeout() * 2 + PATIENCE,
        tds_doctor::probe(&Target::new("127.0.0.1", port), &options),
    )
    .await
    .expect("a silent server ends after two probe bounds");

    assert_eq!(report.prelogin[0].result, PreloginOutcome::Timeout);
    assert_eq!(report.prelogin[1].result, PreloginOutcome::Skipped);
    assert_eq!(report.tds8.result, TlsOutcome::Timeout);
    assert!(matches!(
        report.tds7_tls12.result,
        TlsOutcome::NotOffered { .. }
    ));
    assert!(codes(&report).contains(&"silent"), "{:?}", codes(&report));
    assert_eq!(report.exit_code(), 1);
    // Exactly two connections were made: the skipped probes really did not run.
    let mut connections = 0;
    while let Ok(n) = count_rx.try_recv() {
        connections = n;
    }
    assert_eq!(connections, 2);
    holder.abort();
}

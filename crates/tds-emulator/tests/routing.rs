//! Gateway routing (MS-TDS 2.2.7.9, ENVCHANGE type 20) and the non-zero THREADID fault, as
//! tiberius 0.13 sees them.

mod common;

use std::panic::AssertUnwindSafe;

use common::{PATIENCE, Trust, client_config, connect, select_one, start};
use futures_util::FutureExt;
use tds_emulator::{EmulatorConfig, EncryptionSetting, Fault, Route, RouteRule, Schedule};
use tds_handshake::{
    Encryption, MAX_PRELOGIN_PACKET, MessageReassembler, PacketType, Prelogin, Side, ThreadId,
    Version, encode_message,
};
use tiberius::EncryptionLevel;
use tiberius::error::Error;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routed_login_surfaces_as_tiberius_routing_error_with_host_and_port() {
    // Every encryption mode: the login response travels in clear (NOT_SUP), after a
    // login-only TLS (OFF/OFF), or inside TLS (Force).
    for (setting, level) in [
        (EncryptionSetting::None, EncryptionLevel::NotSupported),
        (EncryptionSetting::Off, EncryptionLevel::Off),
        (EncryptionSetting::Force, EncryptionLevel::Required),
    ] {
        let route = Route::new("node-2.emu.test", 11_000).expect("valid route");
        let running = start(
            EmulatorConfig::new()
                .encryption(setting)
                .route(route, Schedule::Always),
        )
        .await;
        let config = client_config(&running, level, Trust::Ca);
        match connect(&running, config).await {
            Err(Error::Routing { host, port }) => {
                assert_eq!(
                    (host.as_str(), port),
                    ("node-2.emu.test", 11_000),
                    "{setting}"
                );
            }
            other => panic!("{setting}: expected Error::Routing, got {:?}", other.err()),
        }
        let stats = running.emulator.stats();
        assert_eq!((stats.routed, stats.logged_in), (1, 0), "{setting}");
        let clients = running.emulator.clients();
        assert_eq!(
            clients[0].routed_to.as_deref(),
            Some("node-2.emu.test:11000"),
            "{setting}"
        );
        assert!(!clients[0].logged_in, "{setting}");
        // tiberius 0.13 logs in with TDS 7.4, so it may be routed without ReadOnlyIntent.
        assert_eq!(clients[0].tds_version, Some(0x7400_0004), "{setting}");
        assert!(
            running
                .emulator
                .wait_for_open_connections(0, PATIENCE)
                .await,
            "{setting}: the routed connection was not closed"
        );
        running.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routing_follows_its_schedule_and_wrong_credentials_are_not_routed() {
    let rule: RouteRule = "127.0.0.1:1@first:1".parse().expect("valid rule");
    let running = start(EmulatorConfig::new().route_rule(rule)).await;

    // Connection 0: first:1 fires, but a failing login is rejected by the gateway itself
    // (18456), never routed.
    let mut config = client_config(&running, EncryptionLevel::Required, Trust::Ca);
    config.authentication(tiberius::AuthMethod::sql_server("sa", "wrong"));
    match connect(&running, config).await {
        Err(Error::Server(token)) => assert_eq!(token.code(), 18456),
        other => panic!("expected 18456, got {:?}", other.err()),
    }

    // Connection 1: the first:1 schedule no longer fires, the login stays here.
    let config = client_config(&running, EncryptionLevel::Required, Trust::Ca);
    let mut client = connect(&running, config).await.expect("logs in here");
    assert_eq!(select_one(&mut client).await, (1, 1));
    drop(client);
    let stats = running.emulator.stats();
    assert_eq!((stats.routed, stats.logged_in), (0, 1));
    running.shutdown().await;

    // With first:1 firing on connection 0 and a good login, it is routed.
    let rule: RouteRule = "[::1]:1433@first:1".parse().expect("valid rule");
    let running = start(EmulatorConfig::new().route_rule(rule)).await;
    let config = client_config(&running, EncryptionLevel::Required, Trust::Ca);
    match connect(&running, config).await {
        Err(Error::Routing { host, port }) => assert_eq!((host.as_str(), port), ("::1", 1433)),
        other => panic!("expected Error::Routing, got {:?}", other.err()),
    }
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nonzero_threadid_reply_is_sent_and_counted() {
    let running =
        start(EmulatorConfig::new().fault(Fault::NonZeroThreadId, Schedule::FirstN(1))).await;
    let config = client_config(&running, EncryptionLevel::Required, Trust::Ca);
    // Debug builds of tiberius 0.13 panic on a non-zero THREADID (debug_assert_eq!); release
    // builds compile the assertion out and log in. Either way the emulator must have sent it.
    let outcome = AssertUnwindSafe(connect(&running, config))
        .catch_unwind()
        .await;
    if cfg!(debug_assertions) {
        assert!(outcome.is_err(), "debug tiberius did not panic on THREADID");
    }
    let stats = running.emulator.stats();
    assert_eq!(stats.faults("nonzero_threadid"), 1);
    assert_eq!(
        running.emulator.clients()[0].fault.as_deref(),
        Some("nonzero-threadid")
    );
    assert!(
        running
            .emulator
            .wait_for_open_connections(0, PATIENCE)
            .await
    );

    // The schedule is spent: the next client is served normally.
    let config = client_config(&running, EncryptionLevel::Required, Trust::Ca);
    let mut client = connect(&running, config).await.expect("logs in");
    assert_eq!(select_one(&mut client).await, (1, 1));
    drop(client);
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nonzero_threadid_reply_carries_four_nonzero_bytes() {
    let running =
        start(EmulatorConfig::new().fault(Fault::NonZeroThreadId, Schedule::Always)).await;
    let reply = tokio::time::timeout(PATIENCE, async {
        let mut tcp = tokio::net::TcpStream::connect(running.emulator.local_addr())
            .await
            .expect("connects");
        let request = Prelogin::client_request(
            Version {
                major: 0,
                minor: 13,
                build: 0,
                sub_build: 0,
            },
            Encryption::ON,
        );
        let mut wire = Vec::new();
        encode_message(
            PacketType::PreLogin,
            0,
            &request.encode(Side::Client),
            MAX_PRELOGIN_PACKET,
            &mut wire,
        );
        tcp.write_all(&wire).await.expect("PRELOGIN sent");
        let mut reassembler = MessageReassembler::new(MAX_PRELOGIN_PACKET);
        let mut buf = [0u8; 1024];
        loop {
            if let Some(message) = reassembler.next_message() {
                break message.expect("a well-framed reply");
            }
            let n = tcp.read(&mut buf).await.expect("reads");
            assert!(n > 0, "the server closed before replying");
            reassembler.push(&buf[..n]).expect("TDS framing");
        }
    })
    .await
    .expect("the reply arrived");
    assert_eq!(reply.packet_type, PacketType::TabularResult.as_u8());
    let prelogin = Prelogin::decode(&reply.payload, Side::Server).expect("decodes");
    match prelogin.thread_id {
        Some(ThreadId::Id(id)) => assert_ne!(id, 0),
        other => panic!("THREADID should carry 4 bytes, got {other:?}"),
    }
    running.shutdown().await;
}

//! Gateway routing (tiberius `Error::Routing`, MS-TDS ENVCHANGE type 20) through the layer:
//! followed to the alternate server, bounded by `ConnectPolicy::max_redirects`, and never at the
//! expense of the encryption level reached or the certificate trust the user chose.

mod common;

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use common::{
    HANDSHAKE, Server, WALL_CLOCK, base_config, connect, fast_policy, select_one, service,
};
use tds_emulator::{Emulator, EncryptionSetting, Route, Schedule};
use tiberius_tower::{
    Cause, ConnectRequest, EncryptionLevel, EndpointKey, EndpointMemory, StopReason,
};

/// A route to the emulator at `port` on loopback.
fn to_port(port: u16) -> Route {
    Route::new("127.0.0.1", port).expect("a valid route")
}

/// A gateway that sends every login to `target`.
async fn gateway_to(setting: EncryptionSetting, target: &Server) -> Server {
    let port = target.emulator.local_addr().port();
    Server::start(base_config(setting).route(to_port(port), Schedule::Always)).await
}

/// One PEM file trusting every given server's CA: what a user whose gateway and nodes have
/// different issuers would configure.
fn ca_bundle(servers: &[&Server]) -> PathBuf {
    let first = servers[0].emulator.local_addr().port();
    let path = std::env::temp_dir().join(format!(
        "tiberius-tower-routing-{}-{first}.pem",
        std::process::id()
    ));
    let pem: String = servers
        .iter()
        .map(|s| s.emulator.ca_cert_pem().to_owned())
        .collect();
    std::fs::write(&path, pem).expect("bundle written");
    path
}

fn request_to(server: &Server, level: EncryptionLevel, ca: &PathBuf) -> ConnectRequest {
    ConnectRequest::builder()
        .host("127.0.0.1")
        .port(server.emulator.local_addr().port())
        .database("master")
        .authentication(tiberius::AuthMethod::sql_server("sa", "Password123!"))
        .encryption(level)
        .trust_cert_ca(ca)
        .tcp_connect_timeout(Duration::from_secs(5))
        .handshake_timeout(HANDSHAKE)
        .build()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_redirect_is_followed_to_the_node_and_the_session_works_there() {
    let node = Server::with_setting(EncryptionSetting::Off).await;
    let gateway = gateway_to(EncryptionSetting::Off, &node).await;
    let bundle = ca_bundle(&[&gateway, &node]);
    let mut svc = service(fast_policy().without_memory());

    let mut connected = connect(
        &mut svc,
        request_to(&gateway, EncryptionLevel::Required, &bundle),
    )
    .await
    .expect("connects through the redirect");
    assert_eq!(select_one(connected.client_mut()).await, Some(1));

    let attempts = connected.attempts();
    assert_eq!(attempts.len(), 2, "{attempts:#?}");
    let gateway_port = gateway.emulator.local_addr().port();
    let node_port = node.emulator.local_addr().port();
    assert_eq!(
        (attempts[0].host(), attempts[0].port()),
        ("127.0.0.1", gateway_port)
    );
    assert_eq!(attempts[0].cause(), Some(Cause::Routing));
    assert_eq!(
        attempts[1].delay(),
        Duration::ZERO,
        "a redirect is not a retry: no backoff"
    );
    assert_eq!(
        (attempts[1].host(), attempts[1].port()),
        ("127.0.0.1", node_port)
    );
    assert_eq!(attempts[1].cause(), None);

    let (g, n) = (gateway.emulator.stats(), node.emulator.stats());
    assert_eq!((g.routed, g.logged_in), (1, 0));
    assert_eq!((n.routed, n.logged_in), (0, 1));
    drop(connected);
    let _ = std::fs::remove_file(bundle);
    gateway.stop().await;
    node.stop().await;
}

/// Starts an emulator that routes every login to its own address. Its port must be known
/// before it starts, so one is reserved by binding 127.0.0.1:0 and released; if another
/// process takes it in between, the start fails and a new port is tried.
async fn self_routing(setting: EncryptionSetting) -> Server {
    for _ in 0..10 {
        let reserved = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("binds");
        let port = reserved.local_addr().expect("has an address").port();
        drop(reserved);
        let config = base_config(setting)
            .listen(SocketAddr::from((Ipv4Addr::LOCALHOST, port)))
            .route(to_port(port), Schedule::Always);
        if let Ok(emulator) = Emulator::start(config).await {
            let ca = std::env::temp_dir().join(format!(
                "tiberius-tower-routing-self-{}-{port}.pem",
                std::process::id()
            ));
            emulator.write_ca_pem(&ca).expect("CA written");
            return Server { emulator, ca };
        }
    }
    panic!("no free loopback port in 10 tries");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endless_redirects_stop_at_max_redirects_with_cause_routing() {
    let server = self_routing(EncryptionSetting::Off).await;
    let port = server.emulator.local_addr().port();

    // (max_redirects, attempts): the first attempt plus one per redirect followed.
    for (max_redirects, expected_attempts) in [(2, 3), (0, 1), (5, 6)] {
        let mut svc = service(fast_policy().without_memory().max_redirects(max_redirects));
        let routed_before = server.emulator.stats().routed;
        let error = connect(&mut svc, server.request(EncryptionLevel::Required))
            .await
            .expect_err("a redirect loop never connects");
        assert_eq!(
            error.cause(),
            Cause::Routing,
            "max_redirects {max_redirects}"
        );
        assert_eq!(error.stop_reason(), StopReason::RedirectLimit);
        let attempts = error.attempts();
        assert_eq!(attempts.len(), expected_attempts, "{attempts:#?}");
        for attempt in attempts {
            assert_eq!((attempt.host(), attempt.port()), ("127.0.0.1", port));
            assert_eq!(attempt.cause(), Some(Cause::Routing));
            assert_eq!(attempt.encryption(), EncryptionLevel::Required);
        }
        let routed = server.emulator.stats().routed - routed_before;
        assert_eq!(routed, expected_attempts as u64);
    }
    // Every routed connection was closed by one side or the other.
    assert!(
        server
            .emulator
            .wait_for_open_connections(0, WALL_CLOCK)
            .await
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirect_keeps_the_upgraded_encryption_level_and_the_users_trust() {
    // The gateway forces encryption, the node would accept less: a NotSupported client is
    // upgraded at the gateway, and must reach the node at the upgraded level, not at the
    // level it was configured with (design §2.2 rule 1).
    let node = Server::with_setting(EncryptionSetting::Off).await;
    let gateway = gateway_to(EncryptionSetting::Force, &node).await;
    let bundle = ca_bundle(&[&gateway, &node]);
    let mut svc = service(fast_policy().without_memory());

    let connected = connect(
        &mut svc,
        request_to(&gateway, EncryptionLevel::NotSupported, &bundle),
    )
    .await
    .expect("connects after an upgrade and a redirect");
    let levels: Vec<_> = connected
        .attempts()
        .iter()
        .map(|a| (a.port(), a.encryption(), a.cause()))
        .collect();
    let (gateway_port, node_port) = (
        gateway.emulator.local_addr().port(),
        node.emulator.local_addr().port(),
    );
    assert_eq!(
        levels,
        [
            (
                gateway_port,
                EncryptionLevel::NotSupported,
                Some(Cause::EncryptionRequired)
            ),
            (
                gateway_port,
                EncryptionLevel::Required,
                Some(Cause::Routing)
            ),
            (node_port, EncryptionLevel::Required, None),
        ]
    );
    // What the node saw: an ENCRYPT_ON offer and a full TLS handshake, validated against
    // the CA file the user gave (the node's certificate has its own issuer).
    let at_node = node.emulator.clients();
    assert_eq!(at_node.len(), 1);
    assert_eq!(
        common::level_of(&at_node[0]),
        Some(EncryptionLevel::Required)
    );
    assert!(at_node[0].tls_version.is_some(), "{:?}", at_node[0]);
    assert!(!at_node[0].login_only_encryption);
    assert!(at_node[0].logged_in);
    drop(connected);

    // Trusting only the gateway's CA, the redirect meets a certificate the user did not
    // trust: the layer stops with certificate_untrusted instead of trusting it silently.
    let other_node = Server::with_setting(EncryptionSetting::Off).await;
    let other_gateway = gateway_to(EncryptionSetting::Off, &other_node).await;
    let error = connect(
        &mut svc,
        request_to(&other_gateway, EncryptionLevel::Required, &other_gateway.ca),
    )
    .await
    .expect_err("the node's certificate is not trusted");
    assert_eq!(error.cause(), Cause::CertificateUntrusted);
    let causes: Vec<_> = error
        .attempts()
        .iter()
        .map(|a| (a.port(), a.encryption(), a.cause()))
        .collect();
    assert_eq!(
        causes,
        [
            (
                other_gateway.emulator.local_addr().port(),
                EncryptionLevel::Required,
                Some(Cause::Routing)
            ),
            (
                other_node.emulator.local_addr().port(),
                EncryptionLevel::Required,
                Some(Cause::CertificateUntrusted)
            ),
        ]
    );
    let at_other_node = other_node.emulator.clients();
    assert_eq!(at_other_node.len(), 1);
    assert_eq!(
        common::level_of(&at_other_node[0]),
        Some(EncryptionLevel::Required)
    );
    assert!(
        at_other_node[0].tls_version.is_none(),
        "{:?}",
        at_other_node[0]
    );
    assert!(!at_other_node[0].logged_in);
    assert_eq!(other_node.emulator.stats().logged_in, 0);

    let _ = std::fs::remove_file(bundle);
    for server in [gateway, node, other_gateway, other_node] {
        server.stop().await;
    }
}

/// The routed node is an endpoint of its own: when the endpoint memory already holds a floor
/// for it (learned by an earlier connect, or pre-seeded), the first attempt at the node starts
/// there instead of relearning it with a refused handshake.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirect_starts_the_node_at_its_remembered_floor() {
    let node = Server::with_setting(EncryptionSetting::Force).await;
    let gateway = gateway_to(EncryptionSetting::Off, &node).await;
    let bundle = ca_bundle(&[&gateway, &node]);
    let memory = EndpointMemory::default();
    memory.seed(
        EndpointKey::new("127.0.0.1", node.emulator.local_addr().port(), None),
        EncryptionLevel::Required,
    );
    let mut svc = service(fast_policy().memory(memory));

    let mut connected = connect(
        &mut svc,
        request_to(&gateway, EncryptionLevel::NotSupported, &bundle),
    )
    .await
    .expect("connects through the redirect");
    assert_eq!(select_one(connected.client_mut()).await, Some(1));

    let levels: Vec<_> = connected
        .attempts()
        .iter()
        .map(|a| a.encryption())
        .collect();
    assert_eq!(
        levels,
        [EncryptionLevel::NotSupported, EncryptionLevel::Required],
        "gateway at the configured level, node at its remembered floor: {:#?}",
        connected.attempts()
    );
    assert_eq!(
        node.offered_levels(),
        [Some(EncryptionLevel::Required)],
        "the node never saw an offer below its floor"
    );
    drop(connected);
    let _ = std::fs::remove_file(bundle);
    gateway.stop().await;
    node.stop().await;
}

/// What an upgrade at the node teaches is the node's floor, not the gateway's: the gateway
/// answered the configured level, and a later connect must not start it higher (a gateway
/// that cannot speak the node's level would then fail where it used to work).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upgrade_at_the_node_is_remembered_for_the_node_not_the_gateway() {
    let node = Server::with_setting(EncryptionSetting::Force).await;
    let gateway = gateway_to(EncryptionSetting::Off, &node).await;
    let bundle = ca_bundle(&[&gateway, &node]);
    let memory = std::sync::Arc::new(EndpointMemory::default());
    let mut svc = service(fast_policy().memory(std::sync::Arc::clone(&memory)));

    let connected = connect(
        &mut svc,
        request_to(&gateway, EncryptionLevel::NotSupported, &bundle),
    )
    .await
    .expect("connects through the redirect");
    let levels: Vec<_> = connected
        .attempts()
        .iter()
        .map(|a| a.encryption())
        .collect();
    assert_eq!(
        levels,
        [
            EncryptionLevel::NotSupported,
            EncryptionLevel::NotSupported,
            EncryptionLevel::Required
        ],
        "gateway, node refused, node upgraded: {:#?}",
        connected.attempts()
    );
    drop(connected);

    let gateway_key = EndpointKey::new("127.0.0.1", gateway.emulator.local_addr().port(), None);
    let node_key = EndpointKey::new("127.0.0.1", node.emulator.local_addr().port(), None);
    assert_eq!(memory.floor(&node_key), Some(EncryptionLevel::Required));
    assert_eq!(
        memory.floor(&gateway_key),
        None,
        "the gateway never needed more than the configured level"
    );
    let _ = std::fs::remove_file(bundle);
    gateway.stop().await;
    node.stop().await;
}

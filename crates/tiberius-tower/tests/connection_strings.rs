//! Connection strings as users write them, end to end against the emulator:
//! timeouts and retry keywords reach the request and the policy; unknown,
//! unsupported and malformed keywords are clear errors that echo no secret.

mod common;

use std::time::{Duration, Instant};

use common::{
    Server, WALL_CLOCK, base_config, fast_policy, select_one, server_bytes_of_clean_connect,
    service,
};
use tds_emulator::{
    BrowserInstance, BrowserResponder, EncryptionSetting, Fault, Schedule, StallPhase,
};
use tiberius_tower::{
    Cause, ConnectRequest, ConnectionString, EncryptionLevel, RequestError, SqlBrowser,
};

fn string_for(server: &Server, rest: &str) -> String {
    format!(
        "Server=tcp:127.0.0.1,{};Initial Catalog=master;Persist Security Info=False;User ID=sa;\
         Password=Password123!;MultipleActiveResultSets=False;Encrypt=True;\
         TrustServerCertificateCA={};{rest}",
        server.emulator.local_addr().port(),
        server.ca.display()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_portal_style_string_connects() {
    let server = Server::with_setting(EncryptionSetting::Off).await;
    let parsed =
        ConnectionString::parse(&string_for(&server, "Connection Timeout=30;")).expect("parses");
    assert_eq!(parsed.connect_timeout(), Some(Duration::from_secs(30)));
    let debug = format!("{parsed:?}");
    assert!(!debug.contains("Password123!"), "{debug}");
    let policy = parsed.apply_to(fast_policy());
    let mut svc = service(policy);
    let mut connected = common::connect(&mut svc, parsed.into_request())
        .await
        .expect("connects");
    assert_eq!(connected.encryption(), EncryptionLevel::Required);
    assert_eq!(select_one(connected.client_mut()).await, Some(1));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_retry_count_is_the_policys_retries() {
    // The first connection is reset inside the login response: transient.
    let cut = server_bytes_of_clean_connect().await - 20;
    for (count, connects) in [(0, false), (1, true)] {
        let server = Server::start(
            base_config(EncryptionSetting::Off)
                .fault(Fault::ResetAtServerByte(cut), Schedule::FirstN(1)),
        )
        .await;
        let parsed = ConnectionString::parse(&string_for(
            &server,
            &format!("Encrypt=False;ConnectRetryCount={count};ConnectRetryInterval=1"),
        ))
        .expect("parses");
        assert_eq!(
            parsed.connect_retry_interval(),
            Some(Duration::from_secs(1))
        );
        let mut svc = service(parsed.apply_to(fast_policy()));
        let result = common::connect(&mut svc, parsed.into_request()).await;
        match (connects, result) {
            (true, Ok(connected)) => {
                assert_eq!(connected.attempts().len(), 2);
                assert!(connected.attempts()[1].delay() >= Duration::from_secs(1));
            }
            (false, Err(error)) => {
                assert_eq!(error.cause(), Cause::TransientReset);
                assert_eq!(error.attempts().len(), 1);
            }
            (_, other) => panic!(
                "ConnectRetryCount={count}: {:?}",
                other.map(|_| "connected")
            ),
        }
        server.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_timeout_bounds_the_whole_connect() {
    // A server that reads the PRELOGIN and never answers.
    let server = Server::start(
        base_config(EncryptionSetting::Off)
            .fault(Fault::Stall(StallPhase::Prelogin), Schedule::Always),
    )
    .await;
    let parsed =
        ConnectionString::parse(&string_for(&server, "Connect Timeout=2;")).expect("parses");
    assert_eq!(parsed.request().handshake_timeout(), Duration::from_secs(2));
    let mut svc = service(parsed.apply_to(fast_policy().deadline(Duration::from_secs(45))));
    let started = Instant::now();
    let error = common::connect(&mut svc, parsed.into_request())
        .await
        .expect_err("the server never answers");
    let elapsed = started.elapsed();
    println!(
        "Connect Timeout=2 against a stalled server: {elapsed:?}, {}",
        error.cause()
    );
    assert_eq!(error.cause(), Cause::Timeout);
    // Not a speed assertion: the 45 s deadline of the policy was replaced by
    // the string's 2 s, far below it.
    assert!(elapsed < Duration::from_secs(30), "{elapsed:?}");
    server.stop().await;
}

#[test]
fn mistakes_name_the_keyword_and_never_the_value() {
    let base = "Server=tcp:h,1433;User ID=sa;Password=Hunter2Secret;";
    let error = |rest: &str| {
        let error = ConnectRequest::from_ado_string(&format!("{base}{rest}")).expect_err(rest);
        let text = error.to_string();
        assert!(!text.contains("Hunter2Secret"), "{text}");
        (error, text)
    };
    let (e, text) = error("Conect Timeout=30");
    assert!(matches!(e, RequestError::UnknownKeyword(_)), "{e:?}");
    assert!(text.contains("`conect timeout`"), "{text}");
    // A key that does not look like a keyword is not echoed.
    let (e, _) = error("Hunter2Secret;");
    assert!(
        matches!(
            e,
            RequestError::Tiberius(_) | RequestError::UnknownKeyword(_)
        ),
        "{e:?}"
    );
    let (e, text) = error("Max Pool Size=100");
    assert!(
        matches!(
            e,
            RequestError::UnsupportedKeyword {
                keyword: "Max Pool Size",
                ..
            }
        ),
        "{e:?}"
    );
    assert!(text.contains("bb8"), "{text}");
    let (e, _) = error("Application Intent=ReadOnly");
    assert!(
        matches!(
            e,
            RequestError::UnsupportedKeyword {
                keyword: "Application Intent",
                ..
            }
        ),
        "{e:?}"
    );
    let (_, text) = error("MultipleActiveResultSets=True");
    assert!(text.contains("MultipleActiveResultSets"), "{text}");
    for (rest, keyword) in [
        ("Connect Timeout=abc", "connect timeout"),
        ("Connect Timeout=0", "connect timeout"),
        ("Timeout=-5", "connect timeout"),
        ("ConnectRetryCount=256", "connectretrycount"),
        ("ConnectRetryInterval=0", "connectretryinterval"),
        ("ConnectRetryInterval=61", "connectretryinterval"),
    ] {
        let (e, text) = error(rest);
        assert!(matches!(e, RequestError::Invalid(_)), "{rest}: {e:?}");
        assert!(text.contains(keyword), "{rest}: {text}");
    }
    // SqlClient's spellings and synonyms are accepted.
    for rest in [
        "Connect Timeout=5",
        "Connection Timeout=5",
        "Timeout=5",
        "Connect Retry Count=2;Connect Retry Interval=3",
        "Persist Security Info=True",
        "Workstation ID=app01;Application Name=shop;ApplicationIntent=ReadOnly",
    ] {
        ConnectRequest::from_ado_string(&format!("{base}{rest}"))
            .unwrap_or_else(|e| panic!("{rest}: {e}"));
    }
}

/// A server with its SQL Browser: the emulator's responder on a UDP port of
/// its own, announcing `SALES` on the emulator's TCP port.
async fn with_browser(server: &Server) -> BrowserResponder {
    BrowserResponder::start(
        "127.0.0.1:0".parse().expect("address"),
        "EMU",
        vec![BrowserInstance::new(
            "SALES",
            server.emulator.local_addr().port(),
        )],
    )
    .await
    .expect("browser responder starts")
}

fn named_instance_string(server: &Server, instance: &str) -> String {
    format!(
        "Server=127.0.0.1\\{instance};User ID=sa;Password=Password123!;Encrypt=True;\
         TrustServerCertificateCA={}",
        server.ca.display()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_named_instance_is_found_through_sql_browser() {
    let server = Server::with_setting(EncryptionSetting::Off).await;
    let browser = with_browser(&server).await;
    let sql_browser = SqlBrowser::new().port(browser.local_addr().port());

    // Without SQL Browser, a parse says what is missing.
    assert!(matches!(
        ConnectionString::parse(&named_instance_string(&server, "sales")),
        Err(RequestError::NeedsBrowser)
    ));
    let parsed = tokio::time::timeout(
        WALL_CLOCK,
        ConnectionString::resolve(&named_instance_string(&server, "sales"), &sql_browser),
    )
    .await
    .expect("bounded")
    .expect("SQL Browser answers for SALES");
    let request = parsed.into_request();
    assert_eq!(request.port(), server.emulator.local_addr().port());
    assert_eq!(request.instance(), Some("sales"));
    let mut svc = service(fast_policy());
    let mut connected = common::connect(&mut svc, request).await.expect("connects");
    assert_eq!(select_one(connected.client_mut()).await, Some(1));
    assert_eq!(browser.requests(), 1);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_instance_is_a_clear_error_after_one_retransmission() {
    let server = Server::with_setting(EncryptionSetting::Off).await;
    let browser = with_browser(&server).await;
    let sql_browser = SqlBrowser::new()
        .port(browser.local_addr().port())
        .timeout(Duration::from_millis(300));
    let error = tokio::time::timeout(
        WALL_CLOCK,
        ConnectionString::resolve(&named_instance_string(&server, "MARKETING"), &sql_browser),
    )
    .await
    .expect("bounded")
    .expect_err("SQL Browser does not know MARKETING");
    let text = error.to_string();
    assert!(
        matches!(&error, RequestError::Browser(e) if e.is_no_answer()),
        "{error:?}"
    );
    assert!(text.contains("`MARKETING`"), "{text}");
    assert!(!text.contains("Password123!"), "{text}");
    // The request and one retransmission, then the error.
    assert_eq!(browser.requests(), 2);
    assert_eq!(server.emulator.stats().accepted, 0);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_sql_browser_at_all_is_a_clear_error() {
    let server = Server::with_setting(EncryptionSetting::Off).await;
    // A UDP port nobody listens on any more.
    let closed = std::net::UdpSocket::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("address")
        .port();
    let sql_browser = SqlBrowser::new()
        .port(closed)
        .timeout(Duration::from_millis(300));
    let error = tokio::time::timeout(
        WALL_CLOCK,
        ConnectionString::resolve(&named_instance_string(&server, "SALES"), &sql_browser),
    )
    .await
    .expect("bounded")
    .expect_err("nothing answers");
    assert!(
        matches!(&error, RequestError::Browser(e) if e.is_no_answer()),
        "{error:?}"
    );
    assert!(error.to_string().contains("SALES"), "{error}");
    server.stop().await;
}

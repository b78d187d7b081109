//! Named situations from the design: upgrades, memory, sweeps, misconfigurations,
//! a dead server, the shared budget and cancellation.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{Server, WALL_CLOCK, base_config, connect, fast_policy, select_one, service};
use futures_util::StreamExt;
use tds_emulator::{
    AlertFraming, EncryptionSetting, Fault, Schedule, StallPhase, TlsFirstResponse,
};
use tiberius_tower::{
    Cause, ConnectPolicy, ConnectRequest, EncryptionLevel, RetryBudget, StopReason, TrustSetting,
};
use tower::{Service, ServiceExt};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strict_only_server_reached_by_required_client_in_two_attempts_then_one() {
    let server = Server::with_setting(EncryptionSetting::StrictOnly).await;
    let mut svc = service(fast_policy());

    let mut first = connect(&mut svc, server.request(EncryptionLevel::Required))
        .await
        .expect("connects");
    let attempts = first.attempts();
    assert_eq!(attempts.len(), 2);
    assert_eq!(attempts[0].cause(), Some(Cause::StrictRequired));
    assert_eq!(attempts[0].encryption(), EncryptionLevel::Required);
    assert!(attempts[1].strict_probe());
    assert_eq!(first.encryption(), EncryptionLevel::Strict);
    assert_eq!(select_one(first.client_mut()).await, Some(1));

    // The endpoint memory: the next connect starts at Strict.
    let second = connect(&mut svc, server.request(EncryptionLevel::Required))
        .await
        .expect("connects");
    assert_eq!(second.attempts().len(), 1);
    assert_eq!(second.encryption(), EncryptionLevel::Strict);
    assert_eq!(
        server.offered_levels(),
        vec![
            Some(EncryptionLevel::Required),
            Some(EncryptionLevel::Strict),
            Some(EncryptionLevel::Strict)
        ]
    );

    // With the ceiling at Required the probe is not allowed: the resets are
    // reported as the 10054 they are.
    let mut capped = service(
        fast_policy()
            .ceiling(EncryptionLevel::Required)
            .without_memory(),
    );
    let error = connect(&mut capped, server.request(EncryptionLevel::Required))
        .await
        .expect_err("no strict");
    assert_eq!(error.cause(), Cause::TransientReset);
    assert!(error.saw_10054_signature());
    assert!(
        error
            .attempts()
            .iter()
            .all(|a| a.encryption() == EncryptionLevel::Required)
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn force_encryption_server_upgrades_notsupported_client_then_remembers() {
    let server = Server::with_setting(EncryptionSetting::Force).await;
    let mut svc = service(fast_policy());

    let mut first = connect(&mut svc, server.request(EncryptionLevel::NotSupported))
        .await
        .expect("connects");
    assert_eq!(first.attempts().len(), 2);
    assert_eq!(first.attempts()[0].cause(), Some(Cause::EncryptionRequired));
    assert_eq!(first.attempts()[0].delay(), Duration::ZERO);
    assert_eq!(
        first.attempts()[1].delay(),
        Duration::ZERO,
        "upgrades do not sleep"
    );
    assert_eq!(first.encryption(), EncryptionLevel::Required);
    assert_eq!(select_one(first.client_mut()).await, Some(1));

    // A clone shares the memory.
    let mut clone = svc.clone();
    let second = connect(&mut clone, server.request(EncryptionLevel::NotSupported))
        .await
        .expect("connects");
    assert_eq!(second.attempts().len(), 1);
    assert_eq!(second.encryption(), EncryptionLevel::Required);
    assert_eq!(
        server.offered_levels(),
        vec![
            Some(EncryptionLevel::NotSupported),
            Some(EncryptionLevel::Required),
            Some(EncryptionLevel::Required)
        ]
    );

    // Memory off: every connect pays the upgrade again.
    let mut forgetful = service(fast_policy().without_memory());
    for _ in 0..2 {
        let c = connect(
            &mut forgetful,
            server.request(EncryptionLevel::NotSupported),
        )
        .await
        .expect("connects");
        assert_eq!(c.attempts().len(), 2);
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn untrusted_certificate_fails_once_and_trust_is_never_changed() {
    let server = Server::with_setting(EncryptionSetting::Force).await;
    let request = ConnectRequest::builder()
        .host("127.0.0.1")
        .port(server.emulator.local_addr().port())
        .authentication(tiberius::AuthMethod::sql_server("sa", "Password123!"))
        .encryption(EncryptionLevel::Required)
        .build();
    assert_eq!(request.trust(), &TrustSetting::SystemRoots);
    let mut svc = service(fast_policy());
    let error = connect(&mut svc, request)
        .await
        .expect_err("the CA is not trusted");
    assert_eq!(error.cause(), Cause::CertificateUntrusted);
    assert_eq!(error.stop_reason(), StopReason::Deterministic);
    assert_eq!(error.attempts().len(), 1);
    assert_eq!(server.emulator.stats().accepted, 1);
    let text = error.to_string();
    assert!(text.contains("certificate not trusted"), "{text}");
    assert!(!text.contains("Password123!") && !format!("{error:?}").contains("Password123!"));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deterministic_misconfigurations_fail_fast_with_the_right_cause() {
    struct Case {
        name: &'static str,
        setting: EncryptionSetting,
        fault: Option<Fault>,
        /// What a TLS-first ClientHello meets; None: SQL Server's silence.
        tls_first: Option<TlsFirstResponse>,
        level: EncryptionLevel,
        ceiling: EncryptionLevel,
        cause: Cause,
        max_attempts: usize,
        advice: &'static str,
    }
    use EncryptionLevel::Strict;
    let cases = [
        Case {
            name: "server_without_encryption",
            setting: EncryptionSetting::None,
            fault: None,
            tls_first: None,
            level: EncryptionLevel::Required,
            ceiling: Strict,
            cause: Cause::EncryptionUnavailable,
            max_attempts: 1,
            advice: "never downgrades",
        },
        Case {
            name: "no_common_tls_version",
            setting: EncryptionSetting::Force,
            fault: Some(Fault::Alert {
                description: 70,
                framing: AlertFraming::Wrapped,
            }),
            tls_first: None,
            level: EncryptionLevel::Required,
            ceiling: Strict,
            cause: Cause::TlsVersionMismatch,
            max_attempts: 1,
            advice: "KB3135244",
        },
        Case {
            name: "cipher_mismatch_alert",
            setting: EncryptionSetting::Off,
            fault: Some(Fault::Alert {
                description: 40,
                framing: AlertFraming::Wrapped,
            }),
            tls_first: None,
            level: EncryptionLevel::Required,
            ceiling: Strict,
            cause: Cause::TlsHandshakeRejected,
            max_attempts: 1,
            advice: "TLS handshake",
        },
        Case {
            name: "schannel_close_after_client_hello",
            setting: EncryptionSetting::Off,
            fault: Some(Fault::ResetAfterClientHello),
            tls_first: None,
            level: EncryptionLevel::Required,
            ceiling: Strict,
            cause: Cause::TlsHandshakeRejected,
            max_attempts: 2,
            advice: "TLS handshake",
        },
        Case {
            // SQL Server 2019 and older: silence after the ClientHello, while
            // a plaintext PRELOGIN is answered (issue 11: never a 30 s wait).
            name: "strict_client_legacy_server",
            setting: EncryptionSetting::Off,
            fault: None,
            tls_first: None,
            level: Strict,
            ceiling: Strict,
            cause: Cause::StrictUnsupported,
            max_attempts: 1,
            advice: "SQL Server 2022",
        },
        Case {
            // A server that resets a TLS-first ClientHello at once.
            name: "strict_client_server_resetting_the_client_hello",
            setting: EncryptionSetting::Off,
            fault: None,
            tls_first: Some(TlsFirstResponse::Reset),
            level: Strict,
            ceiling: Strict,
            cause: Cause::TlsHandshakeRejected,
            max_attempts: 2,
            advice: "TDS 8.0",
        },
        Case {
            name: "force_encryption_with_a_not_supported_ceiling",
            setting: EncryptionSetting::Force,
            fault: None,
            tls_first: None,
            level: EncryptionLevel::NotSupported,
            ceiling: EncryptionLevel::NotSupported,
            cause: Cause::EncryptionRequired,
            max_attempts: 1,
            advice: "encrypt=true",
        },
        Case {
            name: "login_failed",
            setting: EncryptionSetting::Off,
            fault: Some(Fault::LoginError(18456)),
            tls_first: None,
            level: EncryptionLevel::Required,
            ceiling: Strict,
            cause: Cause::LoginFailed,
            max_attempts: 1,
            advice: "login failed",
        },
        Case {
            name: "server_error",
            setting: EncryptionSetting::Off,
            fault: Some(Fault::LoginError(4064)),
            tls_first: None,
            level: EncryptionLevel::Required,
            ceiling: Strict,
            cause: Cause::ServerError,
            max_attempts: 1,
            advice: "server",
        },
    ];
    for case in cases {
        let mut config = base_config(case.setting);
        if let Some(fault) = case.fault {
            config = config.fault(fault, Schedule::Always);
        }
        if let Some(response) = case.tls_first {
            config = config.tls_first_response(response);
        }
        let server = Server::start(config).await;
        let mut svc = service(fast_policy().ceiling(case.ceiling));
        let started = Instant::now();
        let error = connect(&mut svc, server.request(case.level))
            .await
            .expect_err(case.name);
        assert_eq!(error.cause(), case.cause, "{}: {error}", case.name);
        assert!(
            error.attempts().len() <= case.max_attempts,
            "{}: {} attempts",
            case.name,
            error.attempts().len()
        );
        assert!(
            error.to_string().contains(case.advice),
            "{}: {error}",
            case.name
        );
        assert!(started.elapsed() < Duration::from_secs(20), "{}", case.name);
        assert!(!format!("{error} {error:?}").contains("Password123!"));
        server.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_down_fails_within_the_deadline_with_connection_refused() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    drop(listener);
    let request = ConnectRequest::builder()
        .host("127.0.0.1")
        .port(port)
        .encryption(EncryptionLevel::Required)
        .build();
    let deadline = Duration::from_secs(10);
    let mut svc = service(fast_policy().deadline(deadline));
    let started = Instant::now();
    let error = connect(&mut svc, request)
        .await
        .expect_err("nothing listens");
    assert!(started.elapsed() < deadline);
    assert_eq!(error.cause(), Cause::ConnectionRefused);
    assert!(error.observation().is_none());
    assert!(!error.saw_10054_signature());
    assert!(error.to_string().contains("nothing accepts connections"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn budget_stops_a_retry_storm_against_an_always_resetting_server() {
    // Client NOT_SUP, server Off: reply NOT_SUP, then the fault resets. A
    // transient reset every time.
    let server = Server::start(
        base_config(EncryptionSetting::Off).fault(Fault::ResetAfterPreloginReply, Schedule::Always),
    )
    .await;
    let budget = Arc::new(RetryBudget::fixed(5));
    let svc = service(fast_policy().max_retries(3).budget(Arc::clone(&budget)));
    const CONNECTS: usize = 20;
    let errors: Vec<_> = futures_util::stream::iter(0..CONNECTS)
        .map(|_| {
            let mut svc = svc.clone();
            let request = server.request(EncryptionLevel::NotSupported);
            async move {
                let ready = svc.ready().await.expect("ready");
                tokio::time::timeout(WALL_CLOCK, ready.call(request))
                    .await
                    .expect("bounded")
                    .expect_err("always reset")
            }
        })
        .buffer_unordered(CONNECTS)
        .collect()
        .await;
    let attempts: usize = errors.iter().map(|e| e.attempts().len()).sum();
    println!(
        "retry storm: {CONNECTS} connects, {attempts} attempts, {} accepted by the server, budget of 5 retries",
        server.emulator.stats().accepted
    );
    assert!(
        attempts <= CONNECTS + 5,
        "{attempts} attempts for {CONNECTS} connects"
    );
    assert!(errors.iter().all(|e| e.cause() == Cause::TransientReset));
    assert!(
        errors
            .iter()
            .any(|e| e.stop_reason() == StopReason::BudgetExhausted)
    );
    for error in errors
        .iter()
        .filter(|e| e.stop_reason() == StopReason::BudgetExhausted)
    {
        // The message must say why retrying stopped, not claim retries were tried.
        let text = error.to_string();
        assert!(text.contains("retry budget"), "{text}");
    }
    assert_eq!(budget.available(), 0);
    assert!(server.emulator.stats().accepted as usize <= CONNECTS + 5);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_that_finds_the_budget_empty_waits_for_a_login_to_pay_for_it() {
    // The first connection is reset after the PRELOGIN reply (a blip); every
    // later one logs in. The budget starts empty, never refills on its own,
    // and each login deposits one retry.
    let server = Server::start(
        base_config(EncryptionSetting::Off)
            .fault(Fault::ResetAfterPreloginReply, Schedule::FirstN(1)),
    )
    .await;
    let budget = Arc::new(RetryBudget::new(1.0, 0.0, 0));
    let svc = service(fast_policy().budget(Arc::clone(&budget)));

    let mut waiting = {
        let mut svc = svc.clone();
        let request = server.request(EncryptionLevel::NotSupported);
        tokio::spawn(async move {
            let ready = svc.ready().await.expect("ready");
            tokio::time::timeout(WALL_CLOCK, ready.call(request))
                .await
                .expect("bounded")
        })
    };
    // Its retry waits: nothing has paid for it.
    assert!(
        tokio::time::timeout(Duration::from_millis(300), &mut waiting)
            .await
            .is_err(),
        "the retry waits for the budget"
    );
    assert_eq!(server.emulator.stats().accepted, 1, "one attempt so far");

    // Another connect logs in: its deposit pays for the waiting retry.
    let mut other = service(fast_policy().budget(Arc::clone(&budget)));
    let mut paid = connect(&mut other, server.request(EncryptionLevel::NotSupported))
        .await
        .expect("logs in");
    assert_eq!(paid.attempts().len(), 1);
    assert_eq!(select_one(paid.client_mut()).await, Some(1));

    let mut recovered = tokio::time::timeout(WALL_CLOCK, waiting)
        .await
        .expect("bounded")
        .expect("no panic")
        .expect("connects once paid");
    let attempts = recovered.attempts();
    assert_eq!(attempts.len(), 2);
    assert_eq!(attempts[0].cause(), Some(Cause::TransientReset));
    let delay = match attempts[0].decision() {
        Some(tiberius_tower::Decision::Retry { delay, .. }) => *delay,
        other => panic!("the first attempt's decision is a retry, not {other:?}"),
    };
    // The retry waited from the end of its backoff until the other login's
    // deposit, which came after the 300 ms the test watched it wait; the
    // task's start and the first attempt took part of those 300 ms (a few ms
    // on an idle machine, more on a loaded one), so the record is not held
    // to the whole 300 ms, only to far more than any backoff of
    // `fast_policy` (40 ms at most, plus up to 5 ms of jitter).
    assert!(
        delay >= Duration::from_millis(160),
        "the record reports the wait for the budget, not only the backoff: {delay:?}"
    );
    assert_eq!(select_one(recovered.client_mut()).await, Some(1));
    assert_eq!(server.emulator.stats().accepted, 3);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_nothing_pays_for_stops_at_the_deadline_with_budget_exhausted() {
    let server = Server::start(
        base_config(EncryptionSetting::Off).fault(Fault::ResetAfterPreloginReply, Schedule::Always),
    )
    .await;
    let deadline = Duration::from_millis(800);
    let mut svc = service(
        fast_policy()
            .deadline(deadline)
            .budget(RetryBudget::new(1.0, 0.0, 0)),
    );
    let started = Instant::now();
    let error = connect(&mut svc, server.request(EncryptionLevel::NotSupported))
        .await
        .expect_err("always reset");
    assert!(
        started.elapsed() >= deadline,
        "it waited until the deadline"
    );
    assert_eq!(error.attempts().len(), 1);
    assert_eq!(error.cause(), Cause::TransientReset);
    assert_eq!(error.stop_reason(), StopReason::BudgetExhausted);
    let text = error.to_string();
    assert!(text.contains("retry budget"), "{text}");
    assert_eq!(server.emulator.stats().accepted, 1);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strict_probe_against_a_hanging_legacy_server_is_bounded() {
    // A reset before the PRELOGIN reply once, on a SQL Server 2019-like server
    // that never answers a TLS ClientHello: the probe waits only its own bound.
    let server = Server::start(
        tds_emulator::EmulatorConfig::new()
            .encryption(EncryptionSetting::Off)
            .fault(Fault::ResetBeforePreloginReply, Schedule::FirstN(1)),
    )
    .await;
    let mut svc = service(fast_policy().strict_probe_timeout(Duration::from_millis(500)));
    let started = Instant::now();
    let mut connected = connect(&mut svc, server.request(EncryptionLevel::Required))
        .await
        .expect("connects");
    let attempts = connected.attempts();
    assert_eq!(attempts.len(), 3);
    assert_eq!(
        attempts[0].cause(),
        Some(Cause::TransientReset),
        "the probe did not get through"
    );
    assert!(attempts[1].strict_probe());
    assert_eq!(attempts[1].cause(), Some(Cause::Timeout));
    assert_eq!(attempts[2].encryption(), EncryptionLevel::Required);
    assert!(started.elapsed() < Duration::from_secs(20));
    assert_eq!(select_one(connected.client_mut()).await, Some(1));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_transient_error_is_retried_then_reported() {
    let server = Server::start(
        base_config(EncryptionSetting::Off).fault(Fault::LoginError(40613), Schedule::Always),
    )
    .await;
    let mut svc = service(fast_policy());
    let error = connect(&mut svc, server.request(EncryptionLevel::Required))
        .await
        .expect_err("always 40613");
    assert_eq!(error.cause(), Cause::ServerTransient);
    assert_eq!(error.attempts().len(), 3);
    assert!(
        error
            .attempts()
            .iter()
            .all(|a| a.server_error() == Some(40613))
    );
    assert!(
        error.attempts()[1].delay() >= Duration::from_millis(20),
        "server transients wait longer"
    );
    assert!(matches!(
        error.tiberius_error(),
        Some(tiberius::error::Error::Server(_))
    ));
    assert!(std::error::Error::source(&error).is_some());

    // A number the user adds is retried too.
    let server2 = Server::start(
        base_config(EncryptionSetting::Off).fault(Fault::LoginError(50001), Schedule::FirstN(1)),
    )
    .await;
    let mut svc = service(fast_policy().add_transient_numbers([50001]));
    let c = connect(&mut svc, server2.request(EncryptionLevel::Required))
        .await
        .expect("retried");
    assert_eq!(c.attempts().len(), 2);
    server.stop().await;
    server2.stop().await;
}

/// The handshake timeout (here 10 s) is clipped to what is left of the
/// connect's deadline (300 ms): the attempt ends through the connector's own
/// timeout, so the error still says how far the handshake got.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_deadline_clips_the_handshake_timeout_and_keeps_the_observation() {
    let server = Server::start(
        base_config(EncryptionSetting::Off)
            .fault(Fault::Stall(StallPhase::Prelogin), Schedule::Always),
    )
    .await;
    let request = ConnectRequest::builder()
        .host("127.0.0.1")
        .port(server.emulator.local_addr().port())
        .encryption(EncryptionLevel::Required)
        .trust_cert_ca(&server.ca)
        .handshake_timeout(Duration::from_secs(10))
        .build();
    let deadline = Duration::from_millis(300);
    let mut svc = service(fast_policy().deadline(deadline));
    let started = Instant::now();
    let error = connect(&mut svc, request)
        .await
        .expect_err("the server never replies");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(error.cause(), Cause::Timeout);
    assert_eq!(error.stop_reason(), StopReason::DeadlineExceeded);
    assert_eq!(error.attempts().len(), 1, "{:#?}", error.attempts());
    let attempt = &error.attempts()[0];
    assert_eq!(
        attempt.phase(),
        Some(tds_handshake::Phase::PreloginSent),
        "the observation of the cut attempt is kept"
    );
    let last = error.last_attempt().expect("the connector's own error");
    assert!(
        matches!(last.failure(), tiberius_tower::AttemptFailure::HandshakeTimeout(d) if *d <= deadline),
        "{}",
        last.failure()
    );
    server.stop().await;
}

/// Issue 11: a client configured at Strict meets a server without TDS 8.0
/// (the emulator's default, like SQL Server 2019: silence after a TLS-first
/// ClientHello). With the default policy it stops with `strict_unsupported`
/// after one attempt and one plaintext PRELOGIN, in about one probe timeout
/// (5 s), never at the 30 s deadline, and never below Strict.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strict_client_against_a_server_without_tds8_stops_with_the_fix_in_about_one_probe_timeout()
{
    for setting in [EncryptionSetting::Off, EncryptionSetting::Force] {
        let server = Server::start(base_config(setting)).await;
        let mut svc = service(ConnectPolicy::new().without_memory());
        let request = ConnectRequest::builder()
            .host("127.0.0.1")
            .port(server.emulator.local_addr().port())
            .authentication(tiberius::AuthMethod::sql_server("sa", "Password123!"))
            .encryption(EncryptionLevel::Strict)
            .trust_cert_ca(&server.ca)
            .build();
        let started = Instant::now();
        let error = connect(&mut svc, request)
            .await
            .expect_err("no TDS 8.0 here");
        let took = started.elapsed();
        println!("{setting}: strict_unsupported after {took:?}");
        assert_eq!(
            error.cause(),
            Cause::StrictUnsupported,
            "{setting}: {error}"
        );
        assert_eq!(error.stop_reason(), StopReason::Deterministic);
        assert_eq!(error.attempts().len(), 1, "{setting}");
        assert_eq!(error.attempts()[0].encryption(), EncryptionLevel::Strict);
        let text = error.to_string();
        assert!(
            text.contains("SQL Server 2022") && text.contains("Encrypt=mandatory"),
            "{text}"
        );
        // The server saw the ClientHello, then one plaintext PRELOGIN that
        // never went on to a login.
        let mut clients = server.emulator.clients();
        clients.sort_by_key(|c| c.index);
        assert_eq!(clients.len(), 2, "{setting}: {clients:?}");
        assert_eq!(clients[0].started_with_tls, Some(true));
        assert_eq!(clients[1].started_with_tls, Some(false));
        assert!(
            clients.iter().all(|c| c.user.is_none()),
            "no login was sent"
        );
        // Two probe timeouts is the goal; the 30 s deadline is what it replaced.
        assert!(took < Duration::from_secs(20), "{setting}: took {took:?}");
        server.stop().await;
    }
}

//! Every fault, and the symptom tiberius 0.13 shows for it (tds-handshake.md §7.3).

mod common;

use std::io::ErrorKind;
use std::time::Duration;

use common::{HANG_TIMEOUT, PATIENCE, Trust, client_config, connect, io_kind, select_one, start};
use tds_emulator::{
    AlertFraming, EmulatorConfig, EncryptionSetting, Fault, FaultRule, OldTlsVersion, Schedule,
    StallPhase,
};
use tiberius::EncryptionLevel;
use tiberius::error::Error;

/// The client-side symptom a fault must produce.
#[derive(Debug, Clone, Copy)]
enum Symptom {
    /// tiberius `Error::Io` of this kind, optionally with this text in the message.
    Io(ErrorKind, Option<&'static str>),
    /// A TCP reset (10054 / ECONNRESET): tiberius `Error::Io` of kind `ConnectionReset`, or,
    /// when the reset surfaces inside its TLS stream, of kind `BrokenPipe` with
    /// "Connection reset by peer (os error 104)" in the message.
    Reset,
    /// tiberius `Error::Server` with this number and class.
    Server(u32, u8),
    /// The handshake never completes: tiberius's handshake timeout.
    HandshakeTimeout,
    /// Login succeeds; the first query fails with an I/O error of one of these kinds.
    QueryFails(&'static [ErrorKind]),
    /// Login succeeds; the first query never answers.
    QueryHangs,
}

struct Case {
    fault: Fault,
    setting: EncryptionSetting,
    level: EncryptionLevel,
    symptom: Symptom,
}

fn case(
    fault: Fault,
    setting: EncryptionSetting,
    level: EncryptionLevel,
    symptom: Symptom,
) -> Case {
    Case {
        fault,
        setting,
        level,
        symptom,
    }
}

fn cases() -> Vec<Case> {
    use EncryptionLevel::{Required, Strict};
    use EncryptionSetting::{Force, Off, StrictOnly};
    use Symptom::*;
    let reset = Reset;
    vec![
        case(Fault::ResetBeforePreloginReply, Off, Required, reset),
        case(Fault::ResetBeforePreloginReply, StrictOnly, Strict, reset),
        case(
            Fault::FinBeforePreloginReply,
            Off,
            Required,
            Io(ErrorKind::UnexpectedEof, None),
        ),
        // tiberius reads "HT" as a header with a huge length, then meets EOF mid-packet.
        case(
            Fault::GarbageReply,
            Off,
            Required,
            Io(ErrorKind::Other, Some("bytes remaining on stream")),
        ),
        case(
            Fault::TruncatedReply,
            Force,
            Required,
            Io(ErrorKind::Other, Some("bytes remaining on stream")),
        ),
        case(Fault::ResetAfterPreloginReply, Off, Required, reset),
        case(Fault::ResetAfterPreloginReply, StrictOnly, Strict, reset),
        case(Fault::ResetAfterClientHello, Off, Required, reset),
        case(Fault::ResetAfterClientHello, Force, Required, reset),
        case(Fault::ResetAfterClientHello, StrictOnly, Strict, reset),
        // 100 bytes: past the 43-byte PRELOGIN reply, inside the server's TLS flight.
        case(Fault::ResetAtServerByte(100), Off, Required, reset),
        case(Fault::ResetAtServerByte(20), Off, Required, reset),
        case(Fault::ResetAtServerByte(200), StrictOnly, Strict, reset),
        case(
            Fault::Alert {
                description: 40,
                framing: AlertFraming::Wrapped,
            },
            Off,
            Required,
            Io(ErrorKind::InvalidData, Some("HandshakeFailure")),
        ),
        case(
            Fault::Alert {
                description: 70,
                framing: AlertFraming::Wrapped,
            },
            Force,
            Required,
            Io(ErrorKind::InvalidData, Some("ProtocolVersion")),
        ),
        case(
            Fault::Alert {
                description: 40,
                framing: AlertFraming::Raw,
            },
            Off,
            Required,
            Io(ErrorKind::UnexpectedEof, Some("tls handshake eof")),
        ),
        case(
            Fault::Alert {
                description: 71,
                framing: AlertFraming::Raw,
            },
            StrictOnly,
            Strict,
            Io(ErrorKind::InvalidData, Some("InsufficientSecurity")),
        ),
        case(
            Fault::Stall(StallPhase::Prelogin),
            Off,
            Required,
            HandshakeTimeout,
        ),
        case(
            Fault::Stall(StallPhase::Tls),
            Off,
            Required,
            HandshakeTimeout,
        ),
        case(
            Fault::Stall(StallPhase::Tls),
            StrictOnly,
            Strict,
            HandshakeTimeout,
        ),
        case(
            Fault::Stall(StallPhase::Login),
            Force,
            Required,
            HandshakeTimeout,
        ),
        case(Fault::Stall(StallPhase::Query), Off, Required, QueryHangs),
        case(
            Fault::WrongPacketType,
            Off,
            Required,
            Io(
                ErrorKind::InvalidData,
                Some("expected a pre-login packet during the TLS handshake"),
            ),
        ),
        case(Fault::LoginError(18456), Off, Required, Server(18456, 14)),
        case(Fault::LoginError(4060), Force, Required, Server(4060, 11)),
        case(
            Fault::LoginError(40613),
            StrictOnly,
            Strict,
            Server(40613, 17),
        ),
        case(Fault::LoginError(50000), Off, Required, Server(50000, 14)),
        case(
            Fault::CloseAfterLogin,
            Off,
            Required,
            QueryFails(&[
                ErrorKind::UnexpectedEof,
                ErrorKind::ConnectionReset,
                ErrorKind::BrokenPipe,
            ]),
        ),
        case(
            Fault::ResetAfterLogin,
            Off,
            Required,
            QueryFails(&[ErrorKind::ConnectionReset, ErrorKind::BrokenPipe]),
        ),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_fault_shows_its_client_side_symptom() {
    let mut failures = Vec::new();
    for case in cases() {
        let label = format!(
            "{} on {} with {:?}: expected {:?}",
            case.fault, case.setting, case.level, case.symptom
        );
        let running = start(
            EmulatorConfig::new()
                .encryption(case.setting)
                .fault(case.fault, Schedule::Always),
        )
        .await;
        let mut config = client_config(&running, case.level, Trust::Ca);
        if matches!(case.symptom, Symptom::HandshakeTimeout) {
            config.handshake_timeout(Some(HANG_TIMEOUT));
        }
        let outcome = connect(&running, config).await;
        let verdict: Result<(), String> = match (case.symptom, outcome) {
            (Symptom::Io(kind, text), Err(Error::Io { kind: got, message }))
                if got == kind && text.is_none_or(|t| message.contains(t)) =>
            {
                Ok(())
            }
            (Symptom::Reset, Err(Error::Io { kind, message }))
                if kind == ErrorKind::ConnectionReset || message.contains("os error 104") =>
            {
                Ok(())
            }
            (Symptom::Server(number, class), Err(Error::Server(token)))
                if token.code() == number && token.class() == class =>
            {
                Ok(())
            }
            (Symptom::HandshakeTimeout, Err(error))
                if io_kind(&error) == Some(ErrorKind::TimedOut) =>
            {
                Ok(())
            }
            (Symptom::QueryFails(kinds), Ok(mut client)) => {
                let result = tokio::time::timeout(PATIENCE, client.simple_query("SELECT 1")).await;
                match result {
                    Ok(Err(error)) if io_kind(&error).is_some_and(|k| kinds.contains(&k)) => Ok(()),
                    Ok(Err(error)) => Err(format!("query error {error:?}")),
                    Ok(Ok(_)) => Err("query succeeded".to_owned()),
                    Err(_) => Err("query hung".to_owned()),
                }
            }
            (Symptom::QueryHangs, Ok(mut client)) => {
                let result =
                    tokio::time::timeout(HANG_TIMEOUT, client.simple_query("SELECT 1")).await;
                assert!(
                    running
                        .emulator
                        .wait_for_open_connections(1, PATIENCE)
                        .await,
                    "{label}: the stalled connection stays open"
                );
                match result {
                    Err(_) => Ok(()),
                    Ok(_) => Err("query answered".to_owned()),
                }
            }
            (_, Ok(_)) => Err("connected".to_owned()),
            (_, Err(error)) => Err(format!("{error:?}")),
        };
        if let Err(got) = verdict {
            failures.push(format!("{label}; got {got}"));
        }
        let stats = running.emulator.stats();
        if running
            .emulator
            .wait_for_stats(|s| s.faults(case.fault.kind()) == 1, PATIENCE)
            .await
        {
            let record = &running.emulator.clients()[0];
            assert_eq!(record.fault, Some(case.fault.to_string()), "{label}");
        } else {
            failures.push(format!("{label}; fault not counted: {stats:?}"));
        }
        // Shutdown must close everything, stalled connections included.
        running.shutdown().await;
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_closes_stalled_connections() {
    let running =
        start(EmulatorConfig::new().fault(Fault::Stall(StallPhase::Prelogin), Schedule::Always))
            .await;
    let config = client_config(&running, EncryptionLevel::Required, Trust::Ca);
    let pending = tokio::spawn({
        let addr = running.emulator.local_addr();
        async move {
            let tcp = tokio::net::TcpStream::connect(addr).await?;
            tiberius::Client::connect(
                config,
                tokio_util::compat::TokioAsyncWriteCompatExt::compat_write(tcp),
            )
            .await
            .map(drop)
        }
    });
    assert!(
        running
            .emulator
            .wait_for_stats(|s| s.stalls == 1 && s.faults("stall") == 1, PATIENCE)
            .await
    );
    assert_eq!(running.emulator.open_connections(), 1);
    running.shutdown().await;
    let outcome = tokio::time::timeout(PATIENCE, pending)
        .await
        .expect("the client sees the close")
        .expect("client task");
    let error = outcome.expect_err("the connection was closed by shutdown");
    assert!(io_kind(&error).is_some(), "{error:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schedules_pick_the_right_connections() {
    // first:2 — connections 0 and 1 reset, then logins succeed.
    let rule: FaultRule = "reset-before-prelogin-reply@first:2".parse().unwrap();
    let running = start(EmulatorConfig::new().fault_rule(rule)).await;
    let mut outcomes = Vec::new();
    for _ in 0..3 {
        let config = client_config(&running, EncryptionLevel::Required, Trust::Ca);
        outcomes.push(connect(&running, config).await.is_ok());
    }
    assert_eq!(outcomes, [false, false, true]);
    assert_eq!(
        running
            .emulator
            .stats()
            .faults("reset_before_prelogin_reply"),
        2
    );
    running.shutdown().await;

    // every:3 and a probability rule combined with a fallback rule at the same point: the
    // first rule that fires wins.
    let schedule = Schedule::Probability { p: 0.5, seed: 7 };
    let running = start(
        EmulatorConfig::new()
            .fault(Fault::LoginError(4060), Schedule::EveryNth(3))
            .fault(Fault::LoginError(18456), schedule),
    )
    .await;
    for index in 0..6u64 {
        let config = client_config(&running, EncryptionLevel::Required, Trust::Ca);
        let outcome = connect(&running, config).await;
        let expected = if Schedule::EveryNth(3).fires(index) {
            Some(4060)
        } else if schedule.fires(index) {
            Some(18456)
        } else {
            None
        };
        match (expected, outcome) {
            (None, Ok(mut client)) => assert_eq!(select_one(&mut client).await, (1, 1)),
            (Some(number), Err(Error::Server(token))) => assert_eq!(token.code(), number),
            (expected, outcome) => panic!(
                "connection {index}: expected {expected:?}, got {:?}",
                outcome.err()
            ),
        }
    }
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_credentials_and_unknown_database_are_login_errors() {
    let running = start(
        EmulatorConfig::new()
            .credentials("app", "secret")
            .database("sales"),
    )
    .await;
    let mut config = client_config(&running, EncryptionLevel::Required, Trust::Ca);
    config.authentication(tiberius::AuthMethod::sql_server("app", "wrong"));
    match connect(&running, config).await {
        Err(Error::Server(token)) => assert_eq!((token.code(), token.class()), (18456, 14)),
        other => panic!("{:?}", other.err()),
    }
    let mut config = client_config(&running, EncryptionLevel::Required, Trust::Ca);
    config.authentication(tiberius::AuthMethod::sql_server("app", "secret"));
    config.database("nope");
    match connect(&running, config).await {
        Err(Error::Server(token)) => assert_eq!((token.code(), token.class()), (4060, 11)),
        other => panic!("{:?}", other.err()),
    }
    let mut config = client_config(&running, EncryptionLevel::Required, Trust::Ca);
    config.authentication(tiberius::AuthMethod::sql_server("app", "secret"));
    config.database("sales");
    let mut client = connect(&running, config).await.expect("login");
    assert_eq!(select_one(&mut client).await, (1, 1));
    let clients = running.emulator.clients();
    assert_eq!(clients[2].database.as_deref(), Some("sales"));
    assert_eq!(clients[0].login_error, Some(18456));
    assert!(!format!("{clients:?}").contains("secret"));
    drop(client);
    let _ = Duration::ZERO;
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_old_server_hello_is_a_tls_version_error_in_tiberius() {
    for (setting, level) in [
        (EncryptionSetting::Off, EncryptionLevel::Required),
        (EncryptionSetting::Force, EncryptionLevel::Off),
        (EncryptionSetting::StrictAndLegacy, EncryptionLevel::Strict),
    ] {
        for version in [OldTlsVersion::Tls10, OldTlsVersion::Tls11] {
            let case = format!("{setting} x {level:?} x {version:?}");
            let running = start(
                EmulatorConfig::new()
                    .encryption(setting)
                    .fault(Fault::OldServerHello(version), Schedule::Always),
            )
            .await;
            let config = client_config(&running, level, Trust::Ca);
            let error = connect(&running, config)
                .await
                .err()
                .unwrap_or_else(|| panic!("{case}: the login must fail"));
            // rustls refuses a ServerHello below TLS 1.2 (client/hs.rs); tiberius passes its
            // error on as an I/O error.
            match &error {
                Error::Io { kind, message } => {
                    assert_eq!(*kind, ErrorKind::InvalidData, "{case}: {error:?}");
                    assert_eq!(
                        message, "peer is incompatible: ServerDoesNotSupportTls12Or13",
                        "{case}"
                    );
                }
                other => panic!("{case}: expected Error::Io, got {other:?}"),
            }
            // rustls queues alert 70 (protocol_version). In strict mode tokio-rustls writes it
            // raw; in TDS 7 tiberius's own wrapping stream drops the connection without
            // writing it (seen with tshark), so the emulator reads only the close.
            assert!(
                running
                    .emulator
                    .wait_for_open_connections(0, PATIENCE)
                    .await,
                "{case}"
            );
            let record = &running.emulator.clients()[0];
            let alert = (level == EncryptionLevel::Strict).then_some(70);
            assert_eq!(record.client_alert, alert, "{case}: {record:?}");
            assert_eq!(
                record.fault.as_deref(),
                Some(Fault::OldServerHello(version).to_string().as_str())
            );
            assert_eq!(record.tls_version, None, "{case}: no TLS session");
            running.shutdown().await;
        }
    }
}

//! `connect` through the real middleware, and `explain` checked against it: for each server
//! setting and client level, what the doctor predicts is what tiberius-tower does.

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};

use common::{PATIENCE, start};
use tds_doctor::connect::{self, Sink, Timeline};
use tds_doctor::{ClientSettings, explain};
use tds_emulator::{AlertFraming, EmulatorConfig, EncryptionSetting, Fault, Schedule, TlsProtocol};
use tracing_subscriber::layer::SubscriberExt;

const PASSWORD: &str = "Password123!";

/// A `Write` into a shared buffer, to read the timeline back.
#[derive(Clone, Default)]
struct Buffer(Arc<Mutex<Vec<u8>>>);

impl Write for Buffer {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Buffer {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

/// Connects with a timeline into a buffer (the test runtime is current-thread, so the
/// thread-local default subscriber sees every span of the connect).
async fn connect_with_timeline(connection_string: &str) -> (connect::ConnectOutcome, String) {
    let buffer = Buffer::default();
    let sink: Sink = Arc::new(Mutex::new(buffer.clone()));
    let subscriber = tracing_subscriber::registry().with(Timeline::new(sink));
    let _guard = tracing::subscriber::set_default(subscriber);
    let outcome = tokio::time::timeout(PATIENCE, connect::connect(connection_string))
        .await
        .expect("the connect ends within the middleware's deadline")
        .expect("the connection string is valid");
    (outcome, buffer.text())
}

fn connection_string(port: u16, ca: &std::path::Path, encrypt: &str, password: &str) -> String {
    format!(
        "Server=127.0.0.1,{port};User Id=sa;Password={password};Encrypt={encrypt};TrustServerCertificateCA={}",
        ca.display()
    )
}

#[tokio::test]
async fn connect_prints_each_attempt_and_never_the_password() {
    let server = start(EmulatorConfig::new().encryption(EncryptionSetting::Force)).await;
    let text = connection_string(server.port(), &server.ca_path, "DANGER_PLAINTEXT", PASSWORD);
    let (outcome, timeline) = connect_with_timeline(&text).await;

    assert!(outcome.connected, "{outcome:?}");
    assert_eq!(outcome.attempts, 2);
    assert_eq!(outcome.exit_code(), 0);
    let lines: Vec<&str> = timeline.lines().collect();
    assert_eq!(lines.len(), 2, "{timeline}");
    assert!(lines[0].contains("attempt 1"), "{timeline}");
    assert!(lines[0].contains("encryption=not_supported"), "{timeline}");
    // tiberius starts TLS after the REQ reply and meets the server's reset there.
    assert!(lines[0].contains("phase=tls_handshake"), "{timeline}");
    assert!(
        lines[0].contains("cause=encryption_required (10054)"),
        "{timeline}"
    );
    assert!(
        lines[0].contains("decision=upgrade not_supported->required"),
        "{timeline}"
    );
    assert!(lines[1].contains("attempt 2"), "{timeline}");
    assert!(lines[1].contains("encryption=required"), "{timeline}");
    assert!(lines[1].contains("connected"), "{timeline}");
    assert!(!timeline.contains(PASSWORD));
    assert!(!outcome.summary.contains(PASSWORD));
    server.shutdown().await;
}

#[tokio::test]
async fn failed_connect_names_the_cause_and_hides_the_password() {
    let server = start(EmulatorConfig::new()).await;
    let wrong = "Wrong-Secret-42";
    let text = connection_string(server.port(), &server.ca_path, "true", wrong);
    let (outcome, timeline) = connect_with_timeline(&text).await;

    assert!(!outcome.connected);
    assert_eq!(outcome.cause.as_deref(), Some("login_failed"));
    assert_eq!(outcome.stop_reason.as_deref(), Some("deterministic"));
    assert_eq!(outcome.exit_code(), 1);
    assert!(
        timeline.contains("cause=login_failed (18456)"),
        "{timeline}"
    );
    assert!(!timeline.contains(wrong) && !outcome.summary.contains(wrong));
    server.shutdown().await;
}

#[tokio::test]
async fn connection_string_errors_never_repeat_a_value() {
    let secret = "Very-Secret-7";
    let text = format!("Server=127.0.0.1,1;Password={secret};Encrypt=sometimes");
    let error = connect::connect(&text).await.unwrap_err();
    assert!(
        !error.contains(secret) && !error.contains("sometimes"),
        "{error}"
    );
}

/// For each server setting and each client level (a Strict client against a server without
/// TDS 8.0 waits one probe timeout, then stops as `strict_unsupported`),
/// the doctor's prediction (connects or not, the cause, the number of handshakes) is what the
/// middleware then does.
#[tokio::test]
async fn explain_predicts_what_the_middleware_does() {
    let all: &[&str] = &["DANGER_PLAINTEXT", "false", "true", "strict"];
    let tds7: &[&str] = &["DANGER_PLAINTEXT", "false", "true"];
    let config = |setting| EmulatorConfig::new().encryption(setting);
    let cases: Vec<(String, EmulatorConfig, &[&str])> = vec![
        // Strict against a server without TDS 8.0: silence, then strict_unsupported.
        ("none".into(), config(EncryptionSetting::None), all),
        ("off".into(), config(EncryptionSetting::Off), all),
        ("force".into(), config(EncryptionSetting::Force), all),
        (
            "strict-only".into(),
            config(EncryptionSetting::StrictOnly),
            all,
        ),
        (
            "strict-and-legacy".into(),
            config(EncryptionSetting::StrictAndLegacy),
            all,
        ),
        (
            "force + reset-after-client-hello".into(),
            config(EncryptionSetting::Force).fault(Fault::ResetAfterClientHello, Schedule::Always),
            tds7,
        ),
        (
            "off + alert 40".into(),
            config(EncryptionSetting::Off).fault(
                Fault::Alert {
                    description: 40,
                    framing: AlertFraming::Wrapped,
                },
                Schedule::Always,
            ),
            &["true"],
        ),
        (
            "off + TLS 1.3 only in TDS 7".into(),
            config(EncryptionSetting::Off).tds7_tls_versions(&[TlsProtocol::Tls13]),
            &["true"],
        ),
    ];
    let mut mismatches = Vec::new();
    for (setting, config, levels) in cases {
        let server = start(config).await;
        let report = server.probe().await;
        for encrypt in levels {
            let text = connection_string(server.port(), &server.ca_path, encrypt, PASSWORD);
            let settings = ClientSettings::from_ado_string(&text).unwrap();
            let predicted = explain(&report, &settings);
            let (actual, timeline) = connect_with_timeline(&text).await;
            let predicted_cause = predicted.cause.map(str::to_owned);
            if (
                predicted.connects,
                predicted_cause.clone(),
                predicted.handshakes as usize,
            ) != (actual.connected, actual.cause.clone(), actual.attempts)
            {
                mismatches.push(format!(
                    "{setting} Encrypt={encrypt}: predicted connects={} cause={predicted_cause:?} handshakes={}, \
                     middleware connected={} cause={:?} attempts={}\n{timeline}",
                    predicted.connects, predicted.handshakes, actual.connected, actual.cause, actual.attempts
                ));
            }
        }
        server.shutdown().await;
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
}

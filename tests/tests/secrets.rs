//! No secret reaches any output: a known password (and a wrong one, and the
//! connection strings that carry them) is searched for in everything a
//! connect can emit, through every path the emulator can produce.
//!
//! Captured: every span and event at TRACE with all their fields (a `fmt`
//! layer into a buffer, tiberius's own events included), the spans exported
//! through `tracing-opentelemetry`, the exported metrics, the error's
//! `Display`, `Debug` and source chain, and the `Debug` of the request, the
//! connected client and every attempt record.

use std::io::Write;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use opentelemetry::trace::TracerProvider as _;
use tds_emulator::{AlertFraming, EmulatorConfig, EncryptionSetting, Fault, Schedule, StallPhase};
use tests::{PASSWORD, Pipeline, Server, base_config, connect, fast_policy};
use tiberius_tower::{Cause, ConnectRequest, EncryptionLevel, RetryBudget};
use tracing_subscriber::fmt::format::FmtSpan;
use tracing_subscriber::layer::SubscriberExt;

/// A wrong password that is just as secret as the right one.
const WRONG_PASSWORD: &str = "Wr0ng-S3cret-Qx7";

/// A `fmt` writer into a shared buffer.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Capture {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap_or_else(PoisonError::into_inner)).into_owned()
    }
}

/// One path through the middleware.
struct Case {
    name: &'static str,
    config: EmulatorConfig,
    /// Builds the request from the started server.
    request: fn(&Server) -> ConnectRequest,
    policy: fn() -> tiberius_tower::ConnectPolicy,
    /// None: it connects; Some: the cause it fails with.
    cause: Option<Cause>,
}

fn at(level: EncryptionLevel) -> fn(&Server) -> ConnectRequest {
    match level {
        EncryptionLevel::NotSupported => |s| s.request(EncryptionLevel::NotSupported),
        EncryptionLevel::Off => |s| s.request(EncryptionLevel::Off),
        EncryptionLevel::Required => |s| s.request(EncryptionLevel::Required),
        EncryptionLevel::Strict => |s| s.request(EncryptionLevel::Strict),
    }
}

fn ado(server: &Server, password: &str) -> String {
    format!(
        "Server=tcp:127.0.0.1,{};Database=master;User Id=sa;Password={password};\
         Encrypt=true;TrustServerCertificateCA={}",
        server.port(),
        server.ca.display()
    )
}

fn cases() -> Vec<Case> {
    let alert = |description| Fault::Alert {
        description,
        framing: AlertFraming::Wrapped,
    };
    vec![
        Case {
            name: "clean",
            config: base_config(EncryptionSetting::Off),
            request: at(EncryptionLevel::NotSupported),
            policy: fast_policy,
            cause: None,
        },
        Case {
            name: "encryption_upgrade",
            config: base_config(EncryptionSetting::Force),
            request: at(EncryptionLevel::NotSupported),
            policy: fast_policy,
            cause: None,
        },
        Case {
            name: "strict_upgrade",
            config: base_config(EncryptionSetting::StrictOnly),
            request: at(EncryptionLevel::Required),
            policy: fast_policy,
            cause: None,
        },
        Case {
            name: "transient_then_success",
            config: base_config(EncryptionSetting::Force)
                .fault(Fault::ResetAtServerByte(300), Schedule::FirstN(2)),
            request: at(EncryptionLevel::Required),
            policy: fast_policy,
            cause: None,
        },
        Case {
            name: "connection_string_success",
            config: base_config(EncryptionSetting::Force),
            request: |s| ConnectRequest::from_ado_string(&ado(s, PASSWORD)).expect("parses"),
            policy: fast_policy,
            cause: None,
        },
        Case {
            name: "connection_string_wrong_password",
            config: base_config(EncryptionSetting::Force),
            request: |s| ConnectRequest::from_ado_string(&ado(s, WRONG_PASSWORD)).expect("parses"),
            policy: fast_policy,
            cause: Some(Cause::LoginFailed),
        },
        Case {
            name: "login_failed",
            config: base_config(EncryptionSetting::Off),
            request: |s| s.request_with(EncryptionLevel::Required, WRONG_PASSWORD),
            policy: fast_policy,
            cause: Some(Cause::LoginFailed),
        },
        Case {
            name: "server_transient",
            config: base_config(EncryptionSetting::Off)
                .fault(Fault::LoginError(40613), Schedule::Always),
            request: at(EncryptionLevel::Required),
            policy: fast_policy,
            cause: Some(Cause::ServerTransient),
        },
        Case {
            name: "server_error",
            config: base_config(EncryptionSetting::Off)
                .fault(Fault::LoginError(4064), Schedule::Always),
            request: at(EncryptionLevel::Required),
            policy: fast_policy,
            cause: Some(Cause::ServerError),
        },
        Case {
            name: "encryption_unavailable",
            config: base_config(EncryptionSetting::None),
            request: at(EncryptionLevel::Required),
            policy: fast_policy,
            cause: Some(Cause::EncryptionUnavailable),
        },
        Case {
            name: "ceiling_blocks_upgrade",
            config: base_config(EncryptionSetting::Force),
            request: at(EncryptionLevel::NotSupported),
            policy: || fast_policy().ceiling(EncryptionLevel::Off),
            cause: Some(Cause::EncryptionRequired),
        },
        Case {
            name: "tls_version_mismatch",
            config: base_config(EncryptionSetting::Force).fault(alert(70), Schedule::Always),
            request: at(EncryptionLevel::Required),
            policy: fast_policy,
            cause: Some(Cause::TlsVersionMismatch),
        },
        Case {
            name: "tls_handshake_rejected",
            config: base_config(EncryptionSetting::Force).fault(alert(40), Schedule::Always),
            request: at(EncryptionLevel::Required),
            policy: fast_policy,
            cause: Some(Cause::TlsHandshakeRejected),
        },
        Case {
            name: "certificate_untrusted",
            config: base_config(EncryptionSetting::Force),
            request: |s| {
                ConnectRequest::builder()
                    .host("127.0.0.1")
                    .port(s.port())
                    .authentication(tiberius::AuthMethod::sql_server("sa", PASSWORD))
                    .encryption(EncryptionLevel::Required)
                    .build()
            },
            policy: fast_policy,
            cause: Some(Cause::CertificateUntrusted),
        },
        Case {
            name: "protocol_violation",
            config: base_config(EncryptionSetting::Off)
                .fault(Fault::GarbageReply, Schedule::Always),
            request: at(EncryptionLevel::Required),
            policy: fast_policy,
            cause: Some(Cause::ProtocolViolation),
        },
        Case {
            name: "timeout",
            config: base_config(EncryptionSetting::Off)
                .fault(Fault::Stall(StallPhase::Login), Schedule::Always),
            request: |s| {
                ConnectRequest::builder()
                    .host("127.0.0.1")
                    .port(s.port())
                    .authentication(tiberius::AuthMethod::sql_server("sa", PASSWORD))
                    .encryption(EncryptionLevel::Required)
                    .trust_cert_ca(&s.ca)
                    .handshake_timeout(Duration::from_millis(500))
                    .build()
            },
            policy: || fast_policy().max_retries(1),
            cause: Some(Cause::Timeout),
        },
        Case {
            name: "budget_exhausted",
            config: base_config(EncryptionSetting::Off)
                .fault(Fault::ResetBeforePreloginReply, Schedule::Always),
            request: at(EncryptionLevel::Required),
            policy: || {
                fast_policy()
                    .ceiling(EncryptionLevel::Required)
                    .budget(RetryBudget::fixed(1))
            },
            cause: Some(Cause::TransientReset),
        },
    ]
}

/// Everything a person or a backend could see of one connect.
async fn run(case: Case, pipeline: &Pipeline, out: &mut String) -> Vec<String> {
    let server = Server::start(case.config).await;
    let request = (case.request)(&server);
    let mut secrets = vec![PASSWORD.to_owned(), WRONG_PASSWORD.to_owned()];
    secrets.push(ado(&server, PASSWORD));
    secrets.push(ado(&server, WRONG_PASSWORD));
    out.push_str(&format!("{request:?}\n{request:#?}\n"));

    let mut svc = pipeline.service((case.policy)());
    match connect(&mut svc, request).await {
        Ok(connected) => {
            assert_eq!(case.cause, None, "{}: connected", case.name);
            out.push_str(&format!("{:?}\n", connected.attempts()));
            out.push_str(&format!("{connected:?}\n{connected:#?}\n"));
        }
        Err(error) => {
            assert_eq!(Some(error.cause()), case.cause, "{}: {error}", case.name);
            out.push_str(&format!("{error}\n{error:?}\n{error:#?}\n"));
            let mut source: Option<&dyn std::error::Error> = std::error::Error::source(&error);
            while let Some(e) = source {
                out.push_str(&format!("{e}\n{e:?}\n"));
                source = e.source();
            }
            if let Some(last) = error.last_attempt() {
                out.push_str(&format!("{last}\n{last:?}\n"));
            }
        }
    }
    server.stop().await;
    secrets
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_password_or_connection_string_reaches_any_output_on_any_path() {
    let pipeline = Pipeline::new();
    let log = Capture::default();
    let writer = log.clone();
    let spans = opentelemetry_sdk::trace::InMemorySpanExporter::default();
    let tracer = opentelemetry_sdk::trace::SdkTracerProvider::builder()
        .with_simple_exporter(spans.clone())
        .build();
    let subscriber = tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(move || writer.clone())
                .with_ansi(false)
                .with_span_events(FmtSpan::FULL)
                // No filter: every level, TRACE included.
                .with_target(true),
        )
        .with(tracing_opentelemetry::layer().with_tracer(tracer.tracer("secrets")));
    let _guard = tracing::subscriber::set_default(subscriber);

    let mut out = String::new();
    let mut secrets = Vec::new();
    let mut names = Vec::new();
    for case in cases() {
        names.push((case.name, case.cause));
        secrets.extend(run(case, &pipeline, &mut out).await);
    }
    let exported = spans.get_finished_spans().expect("spans");
    out.push_str(&format!("{exported:#?}\n"));
    out.push_str(&format!("{:#?}\n", pipeline.metrics()));
    let log = log.text();

    // The capture is not vacuous: every path left its mark.
    assert!(log.contains("mssql.connect.attempt"), "{log}");
    // Fields recorded after span creation reach the log too.
    assert!(log.contains("db.response.status_code=10054"), "{log}");
    assert!(log.contains("server.address=\"127.0.0.1\""), "{log}");
    assert!(log.contains("TRACE") || log.contains("DEBUG"));
    for (name, cause) in &names {
        if let Some(cause) = cause {
            assert!(log.contains(cause.as_str()), "{name}: {cause} not logged");
        }
    }
    assert!(exported.len() > names.len());

    println!(
        "secrets: {} paths, {} secrets, {} bytes of log and {} bytes of Debug/Display/telemetry searched",
        names.len(),
        secrets.len(),
        log.len(),
        out.len()
    );
    for secret in &secrets {
        assert!(!log.contains(secret.as_str()), "secret in the log");
        assert!(
            !out.contains(secret.as_str()),
            "secret in Debug/Display/telemetry"
        );
    }
}

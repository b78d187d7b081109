//! The spans a connect exports through a real `tracing-opentelemetry`
//! pipeline into the SDK's in-memory exporter: names, kinds, status,
//! parent-child links and attributes, one test per situation.

use opentelemetry::trace::{SpanKind, Status};
use opentelemetry_sdk::trace::SpanData;
use tds_emulator::{AlertFraming, EncryptionSetting, Fault, Schedule};
use tests::{
    ConnectTrace, Pipeline, Server, attr, base_config, boolean, connect, fast_policy, int, string,
};
use tiberius_tower::Encryption;
use tiberius_tower::{Cause, EncryptionLevel, EndpointMemory, RetryBudget, StopReason};

/// What every connect span carries, whatever the outcome.
fn assert_connect_span(trace: &ConnectTrace, port: u16, requested: EncryptionLevel) {
    let span = &trace.connect;
    assert_eq!(span.name, "mssql.connect");
    assert_eq!(span.span_kind, SpanKind::Client);
    assert_eq!(
        span.parent_span_id,
        opentelemetry::trace::SpanId::INVALID,
        "root"
    );
    assert_eq!(string(span, "db.system.name"), "microsoft.sql_server");
    assert_eq!(string(span, "server.address"), "127.0.0.1");
    assert_eq!(int(span, "server.port"), i64::from(port));
    assert_eq!(string(span, "db.namespace"), "master");
    assert_eq!(
        string(span, "mssql.encryption.requested"),
        requested.as_str()
    );
    assert_eq!(int(span, "mssql.attempts"), trace.attempts.len() as i64);
    // `otel.*` fields become kind and status, never attributes.
    assert!(attr(span, "otel.kind").is_none());
    assert!(attr(span, "otel.status_code").is_none());
    for (i, attempt) in trace.attempts.iter().enumerate() {
        assert_eq!(attempt.name, "mssql.connect.attempt");
        assert_eq!(attempt.span_kind, SpanKind::Internal);
        assert_eq!(
            attempt.parent_span_id,
            trace.connect_id(),
            "child of connect"
        );
        assert_eq!(
            attempt.span_context.trace_id(),
            span.span_context.trace_id()
        );
        assert_eq!(int(attempt, "mssql.attempt"), i as i64 + 1);
        assert_eq!(string(attempt, "server.address"), "127.0.0.1");
        assert_eq!(int(attempt, "server.port"), i64::from(port));
    }
}

/// A successful attempt: no error attributes, status unset.
fn assert_attempt_connected(span: &SpanData, level: EncryptionLevel) {
    assert_eq!(span.status, Status::Unset);
    assert_eq!(string(span, "mssql.encryption"), level.as_str());
    assert_eq!(string(span, "mssql.phase"), "logged_in");
    for absent in [
        "mssql.prelogin.cause",
        "error.type",
        "db.response.status_code",
        "mssql.decision",
    ] {
        assert!(attr(span, absent).is_none(), "{absent} on a success");
    }
}

/// A failed attempt: cause as `mssql.prelogin.cause()` and `error.type`, status ERROR.
fn assert_attempt_failed(span: &SpanData, cause: &str, decision: &str) {
    assert!(
        matches!(span.status, Status::Error { .. }),
        "{:?}",
        span.status
    );
    assert_eq!(string(span, "mssql.prelogin.cause"), cause);
    assert_eq!(string(span, "error.type"), cause);
    assert_eq!(string(span, "mssql.decision"), decision);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clean_connect_is_one_client_span_with_one_internal_attempt() {
    let server = Server::start(base_config(EncryptionSetting::Off)).await;
    let pipeline = Pipeline::new();
    let _guard = pipeline.set_default();
    let mut svc = pipeline.service(fast_policy());

    let connected = connect(&mut svc, server.request(EncryptionLevel::NotSupported))
        .await
        .expect("connects");
    // Offered and replied are filled on success too (MS-TDS 2.2.6.5:
    // client NOT_SUP + server OFF → NOT_SUP).
    assert_eq!(connected.attempts()[0].offered(), Some(Encryption::NOT_SUP));
    assert_eq!(connected.attempts()[0].replied(), Some(Encryption::NOT_SUP));
    drop(connected);

    let trace = ConnectTrace::find(&pipeline.spans());
    assert_connect_span(&trace, server.port(), EncryptionLevel::NotSupported);
    let connect_span = &trace.connect;
    assert_eq!(connect_span.status, Status::Unset);
    assert_eq!(
        string(connect_span, "mssql.encryption.final"),
        "not_supported"
    );
    assert!(!boolean(connect_span, "mssql.memory.applied"));
    for absent in [
        "error.type",
        "mssql.prelogin.cause",
        "db.response.status_code",
        "mssql.stop_reason",
    ] {
        assert!(
            attr(connect_span, absent).is_none(),
            "{absent} on a success"
        );
    }

    assert_eq!(trace.attempts.len(), 1);
    let attempt = &trace.attempts[0];
    assert_attempt_connected(attempt, EncryptionLevel::NotSupported);
    // The connect span covers its attempt: it ends when the connect
    // returns, not before.
    assert!(connect_span.start_time <= attempt.start_time);
    assert!(
        attempt.end_time <= connect_span.end_time,
        "the connect span ends after its attempt"
    );
    assert_eq!(int(attempt, "mssql.prelogin.offered"), 0x02);
    assert_eq!(int(attempt, "mssql.prelogin.replied"), 0x02);
    assert_eq!(int(attempt, "mssql.retry"), 0);
    assert_eq!(int(attempt, "mssql.backoff.delay_ms"), 0);
    assert!(!boolean(attempt, "mssql.strict_probe"));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn force_encryption_upgrade_tags_10054_and_the_upgrade_then_memory_decides() {
    let server = Server::start(base_config(EncryptionSetting::Force)).await;
    let pipeline = Pipeline::new();
    let _guard = pipeline.set_default();
    let mut svc = pipeline.service(fast_policy().memory(EndpointMemory::default()));

    let connected = connect(&mut svc, server.request(EncryptionLevel::NotSupported))
        .await
        .expect("connects after the upgrade");
    // MS-TDS 2.2.6.5: tiberius at Required offers REQ (0x03); a Force
    // Encryption server answers ON (0x01).
    let second = &connected.attempts()[1];
    assert_eq!(second.offered(), Some(Encryption::REQ));
    assert_eq!(second.replied(), Some(Encryption::ON));
    drop(connected);

    let trace = ConnectTrace::find(&pipeline.take_spans());
    assert_connect_span(&trace, server.port(), EncryptionLevel::NotSupported);
    assert_eq!(trace.connect.status, Status::Unset, "recovered");
    assert_eq!(
        string(&trace.connect, "mssql.prelogin.cause"),
        "encryption_required"
    );
    assert_eq!(string(&trace.connect, "mssql.encryption.final"), "required");
    assert!(attr(&trace.connect, "error.type").is_none());

    assert_eq!(trace.attempts.len(), 2);
    let refused = &trace.attempts[0];
    assert_attempt_failed(refused, "encryption_required", "upgrade");
    assert_eq!(string(refused, "db.response.status_code"), "10054");
    assert_eq!(int(refused, "mssql.prelogin.offered"), 0x02, "NOT_SUP");
    assert_eq!(int(refused, "mssql.prelogin.replied"), 0x03, "REQ");
    assert_eq!(string(refused, "mssql.upgrade.from"), "not_supported");
    assert_eq!(string(refused, "mssql.upgrade.to"), "required");
    let upgraded = &trace.attempts[1];
    assert_attempt_connected(upgraded, EncryptionLevel::Required);
    assert_eq!(int(upgraded, "mssql.retry"), 0, "an upgrade is not a retry");
    assert_eq!(
        int(upgraded, "mssql.backoff.delay_ms"),
        0,
        "upgrades do not sleep"
    );
    assert_eq!(int(upgraded, "mssql.prelogin.offered"), 0x03, "REQ");
    assert_eq!(int(upgraded, "mssql.prelogin.replied"), 0x01, "ON");

    // The next connect starts where the memory says.
    drop(
        connect(&mut svc, server.request(EncryptionLevel::NotSupported))
            .await
            .expect("connects"),
    );
    let trace = ConnectTrace::find(&pipeline.take_spans());
    assert!(boolean(&trace.connect, "mssql.memory.applied"));
    assert_eq!(trace.attempts.len(), 1);
    assert_eq!(string(&trace.attempts[0], "mssql.encryption"), "required");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strict_only_server_probe_upgrades_required_client_to_strict() {
    let server = Server::start(base_config(EncryptionSetting::StrictOnly)).await;
    let pipeline = Pipeline::new();
    let _guard = pipeline.set_default();
    let mut svc = pipeline.service(fast_policy());

    let connected = connect(&mut svc, server.request(EncryptionLevel::Required))
        .await
        .expect("connects through the probe");
    assert_eq!(connected.attempts()[0].cause(), Some(Cause::StrictRequired));
    drop(connected);

    let trace = ConnectTrace::find(&pipeline.spans());
    assert_connect_span(&trace, server.port(), EncryptionLevel::Required);
    assert_eq!(trace.connect.status, Status::Unset);
    // The first attempt's span stays open until the probe settles its cause:
    // both spans and the record say the same thing.
    assert_eq!(
        string(&trace.connect, "mssql.prelogin.cause"),
        "strict_required"
    );
    assert_eq!(string(&trace.connect, "mssql.encryption.final"), "strict");

    assert_eq!(trace.attempts.len(), 2);
    let reset = &trace.attempts[0];
    assert_attempt_failed(reset, "strict_required", "probe_strict");
    assert_eq!(string(reset, "db.response.status_code"), "10054");
    assert_eq!(string(reset, "mssql.phase"), "prelogin_sent");
    assert_eq!(string(reset, "mssql.upgrade.from"), "required");
    assert_eq!(string(reset, "mssql.upgrade.to"), "strict");
    assert!(
        attr(reset, "mssql.prelogin.replied").is_none(),
        "no reply came"
    );
    let probe = &trace.attempts[1];
    assert_attempt_connected(probe, EncryptionLevel::Strict);
    assert!(boolean(probe, "mssql.strict_probe"));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_reset_then_success_records_the_retry_and_its_backoff() {
    // A reset before any reply, with the ceiling at Required so the policy
    // cannot read it as a strict-only server and probe.
    let server = Server::start(
        base_config(EncryptionSetting::Off)
            .fault(Fault::ResetBeforePreloginReply, Schedule::FirstN(1)),
    )
    .await;
    let pipeline = Pipeline::new();
    let _guard = pipeline.set_default();
    let mut svc = pipeline.service(fast_policy().ceiling(EncryptionLevel::Required));

    let connected = connect(&mut svc, server.request(EncryptionLevel::NotSupported))
        .await
        .expect("the retry connects");
    // Jitter off: the first backoff is exactly the 5 ms minimum.
    assert_eq!(
        connected.attempts()[1].delay(),
        std::time::Duration::from_millis(5)
    );
    drop(connected);

    let trace = ConnectTrace::find(&pipeline.spans());
    assert_connect_span(&trace, server.port(), EncryptionLevel::NotSupported);
    assert_eq!(trace.connect.status, Status::Unset);
    assert_eq!(
        string(&trace.connect, "mssql.prelogin.cause"),
        "transient_reset"
    );

    let reset = &trace.attempts[0];
    assert_attempt_failed(reset, "transient_reset", "retry");
    assert_eq!(string(reset, "db.response.status_code"), "10054");
    assert_eq!(string(reset, "mssql.phase"), "prelogin_sent");
    assert!(attr(reset, "mssql.upgrade.to").is_none());
    let retry = &trace.attempts[1];
    assert_attempt_connected(retry, EncryptionLevel::NotSupported);
    assert_eq!(int(retry, "mssql.retry"), 1);
    assert_eq!(int(retry, "mssql.backoff.delay_ms"), 5);
    assert_eq!(int(reset, "mssql.retry"), 0);
    assert_eq!(int(reset, "mssql.backoff.delay_ms"), 0);
    assert_eq!(int(reset, "mssql.prelogin.offered"), 0x02, "NOT_SUP");
    assert!(
        attr(reset, "mssql.prelogin.replied").is_none(),
        "no reply came"
    );
    // Entered for the backoff sleep, the connect span is entered again for
    // its final records, so its last exit is the end of the connect.
    assert!(reset.end_time <= retry.start_time);
    assert!(
        retry.end_time <= trace.connect.end_time,
        "the connect span ends after its last attempt"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deterministic_tls_version_mismatch_stops_with_error_status_and_the_alert() {
    let server = Server::start(base_config(EncryptionSetting::Force).fault(
        Fault::Alert {
            description: 70,
            framing: AlertFraming::Wrapped,
        },
        Schedule::Always,
    ))
    .await;
    let pipeline = Pipeline::new();
    let _guard = pipeline.set_default();
    let mut svc = pipeline.service(fast_policy());

    let error = connect(&mut svc, server.request(EncryptionLevel::Required))
        .await
        .expect_err("no common TLS version");
    assert_eq!(error.cause(), Cause::TlsVersionMismatch);

    let trace = ConnectTrace::find(&pipeline.spans());
    assert_connect_span(&trace, server.port(), EncryptionLevel::Required);
    let connect_span = &trace.connect;
    assert!(matches!(connect_span.status, Status::Error { .. }));
    assert_eq!(string(connect_span, "error.type"), "tls_version_mismatch");
    assert_eq!(
        string(connect_span, "mssql.prelogin.cause"),
        "tls_version_mismatch"
    );
    assert_eq!(string(connect_span, "mssql.stop_reason"), "deterministic");
    assert!(!boolean(connect_span, "mssql.budget.exhausted"));

    assert_eq!(trace.attempts.len(), 1);
    let attempt = &trace.attempts[0];
    assert_attempt_failed(attempt, "tls_version_mismatch", "stop");
    assert_eq!(int(attempt, "mssql.tls.alert"), 70);
    assert_eq!(string(attempt, "mssql.tls.alert.sender"), "server");
    assert_eq!(int(attempt, "mssql.prelogin.offered"), 0x03, "REQ");
    assert_eq!(int(attempt, "mssql.prelogin.replied"), 0x01, "ON");
    // An alert and a close is a TLS answer, not the 10054 reset.
    assert!(!error.attempts()[0].reset_during_prelogin());
    assert!(attr(attempt, "db.response.status_code").is_none());
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_failed_carries_the_server_error_number() {
    let server = Server::start(base_config(EncryptionSetting::Off)).await;
    let pipeline = Pipeline::new();
    let _guard = pipeline.set_default();
    let mut svc = pipeline.service(fast_policy());

    let error = connect(
        &mut svc,
        server.request_with(EncryptionLevel::Required, "not-the-password"),
    )
    .await
    .expect_err("wrong password");
    assert_eq!(error.cause(), Cause::LoginFailed);

    let trace = ConnectTrace::find(&pipeline.spans());
    assert_connect_span(&trace, server.port(), EncryptionLevel::Required);
    assert!(matches!(trace.connect.status, Status::Error { .. }));
    assert_eq!(string(&trace.connect, "error.type"), "login_failed");
    assert_eq!(string(&trace.connect, "db.response.status_code"), "18456");

    assert_eq!(trace.attempts.len(), 1);
    let attempt = &trace.attempts[0];
    assert_attempt_failed(attempt, "login_failed", "stop");
    assert_eq!(string(attempt, "db.response.status_code"), "18456");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exhausted_budget_is_tagged_on_the_connect_span() {
    let server = Server::start(
        base_config(EncryptionSetting::Off)
            .fault(Fault::ResetBeforePreloginReply, Schedule::Always),
    )
    .await;
    let pipeline = Pipeline::new();
    let _guard = pipeline.set_default();
    let mut svc = pipeline.service(
        fast_policy()
            .ceiling(EncryptionLevel::Required)
            .max_retries(3)
            .budget(RetryBudget::fixed(1)),
    );

    let error = connect(&mut svc, server.request(EncryptionLevel::NotSupported))
        .await
        .expect_err("always reset");
    assert_eq!(error.stop_reason(), StopReason::BudgetExhausted);

    let trace = ConnectTrace::find(&pipeline.spans());
    assert_connect_span(&trace, server.port(), EncryptionLevel::NotSupported);
    let connect_span = &trace.connect;
    assert!(matches!(connect_span.status, Status::Error { .. }));
    assert_eq!(string(connect_span, "error.type"), "transient_reset");
    assert_eq!(
        string(connect_span, "mssql.stop_reason"),
        "budget_exhausted"
    );
    assert!(boolean(connect_span, "mssql.budget.exhausted"));
    assert_eq!(string(connect_span, "db.response.status_code"), "10054");

    assert_eq!(trace.attempts.len(), 2);
    assert_attempt_failed(&trace.attempts[0], "transient_reset", "retry");
    assert_attempt_failed(&trace.attempts[1], "transient_reset", "stop");
    assert_eq!(int(&trace.attempts[0], "mssql.retry"), 0);
    assert_eq!(int(&trace.attempts[0], "mssql.backoff.delay_ms"), 0);
    assert_eq!(int(&trace.attempts[1], "mssql.retry"), 1);
    // Jitter off: exactly the 5 ms minimum.
    assert_eq!(int(&trace.attempts[1], "mssql.backoff.delay_ms"), 5);
    for attempt in &trace.attempts {
        assert_eq!(string(attempt, "db.response.status_code"), "10054");
    }
    server.stop().await;
}

/// A retry that finds the budget empty waits for its steady token: the next
/// attempt's span reports the whole wait, and both spans agree with the
/// records.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_that_waited_for_the_budget_reports_the_wait() {
    // The first connection is reset before the PRELOGIN reply; the ceiling
    // keeps the Strict probe out of it, so the reset is retried.
    let server = Server::start(
        base_config(EncryptionSetting::Off)
            .fault(Fault::ResetBeforePreloginReply, Schedule::FirstN(1)),
    )
    .await;
    let pipeline = Pipeline::new();
    let _guard = pipeline.set_default();
    // Empty, no deposit, 2 steady tokens per second on average: the first
    // comes 250 to 750 ms after the budget is built, so the retry waits for
    // it after its backoff (5 ms, plus up to 5 ms of jitter).
    let mut svc = pipeline.service(
        fast_policy()
            .ceiling(EncryptionLevel::Off)
            .budget(RetryBudget::new(0.0, 2.0, 0)),
    );

    let connected = connect(&mut svc, server.request(EncryptionLevel::Off))
        .await
        .expect("the retry connects");
    let attempts = connected.attempts();
    assert_eq!(attempts.len(), 2);
    let waited = match attempts[0].decision() {
        Some(tiberius_tower::Decision::Retry { delay, .. }) => *delay,
        other => panic!("a retry, not {other:?}"),
    };
    // The first attempt took part of the 250 ms before the token; what is
    // left is still far more than any backoff.
    assert!(
        waited >= std::time::Duration::from_millis(100),
        "backoff plus the wait for a token: {waited:?}"
    );

    let trace = ConnectTrace::find(&pipeline.spans());
    assert_connect_span(&trace, server.port(), EncryptionLevel::Off);
    assert_eq!(trace.connect.status, Status::Unset);
    assert_eq!(trace.attempts.len(), 2);
    assert_attempt_failed(&trace.attempts[0], "transient_reset", "retry");
    assert_attempt_connected(&trace.attempts[1], EncryptionLevel::Off);
    assert_eq!(int(&trace.attempts[1], "mssql.retry"), 1);
    assert_eq!(
        int(&trace.attempts[1], "mssql.backoff.delay_ms"),
        i64::try_from(waited.as_millis()).expect("small"),
        "the span and the record agree"
    );
    assert!(
        trace.attempts[0].end_time <= trace.attempts[1].start_time,
        "the waiting attempt's span ends when its retry is decided"
    );
    server.stop().await;
}

/// A Strict client against a server without TDS 8.0, as SQL Server 2019
/// behaves: silence after the ClientHello (the emulator's default, asked for
/// here by name), then one plaintext PRELOGIN check that the server answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strict_client_against_a_silent_legacy_server_stops_as_strict_unsupported() {
    let server = Server::start(
        tds_emulator::EmulatorConfig::new()
            .encryption(EncryptionSetting::Off)
            .tls_first_response(tds_emulator::TlsFirstResponse::Hang),
    )
    .await;
    let pipeline = Pipeline::new();
    let _guard = pipeline.set_default();
    let mut svc = pipeline.service(fast_policy());

    let error = connect(&mut svc, server.request(EncryptionLevel::Strict))
        .await
        .expect_err("the server has no TDS 8.0");
    assert_eq!(error.cause(), Cause::StrictUnsupported);
    assert_eq!(error.stop_reason(), StopReason::Deterministic);

    let trace = ConnectTrace::find(&pipeline.spans());
    assert_connect_span(&trace, server.port(), EncryptionLevel::Strict);
    let connect_span = &trace.connect;
    assert!(matches!(connect_span.status, Status::Error { .. }));
    assert_eq!(string(connect_span, "error.type"), "strict_unsupported");
    assert_eq!(
        string(connect_span, "mssql.prelogin.cause"),
        "strict_unsupported"
    );
    assert_eq!(string(connect_span, "mssql.stop_reason"), "deterministic");
    assert!(!boolean(connect_span, "mssql.budget.exhausted"));
    assert!(attr(connect_span, "db.response.status_code").is_none());

    // One attempt: the plaintext check is not an attempt of its own.
    assert_eq!(trace.attempts.len(), 1);
    let attempt = &trace.attempts[0];
    assert_attempt_failed(attempt, "strict_unsupported", "stop");
    assert_eq!(string(attempt, "mssql.encryption"), "strict");
    assert!(
        !boolean(attempt, "mssql.strict_probe"),
        "configured, not a probe"
    );
    assert_eq!(int(attempt, "mssql.retry"), 0);
    assert_eq!(int(attempt, "mssql.backoff.delay_ms"), 0);
    // Silence is not a reset: no 10054, nothing offered in plaintext, no reply.
    assert!(attr(attempt, "db.response.status_code").is_none());
    assert!(attr(attempt, "mssql.prelogin.offered").is_none());
    assert!(attr(attempt, "mssql.prelogin.replied").is_none());
    assert!(attr(attempt, "mssql.tls.alert").is_none());
    server.stop().await;
}

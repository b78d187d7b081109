//! The spans: one CLIENT span per logical connect, one child per attempt,
//! shaped for `tracing-opentelemetry` (see [`attributes`](crate::attributes)
//! for the names and `docs/telemetry.md` for what each means).
//!
//! Fields are declared up front, `Empty` where the value comes later,
//! because a `tracing` span cannot grow fields after it is created. Only
//! values this crate computed are recorded: host, port, database name,
//! levels, causes, phases, bytes and numbers. Never the request itself,
//! whose credentials must not reach a span.

use std::time::Duration;

use tds_handshake::{Direction, Observation};
use tracing::Span;
use tracing::field::Empty;

use crate::attributes::{self as attr, values};
use crate::error::{AttemptFailure, ConnectError};
use crate::policy::{AttemptRecord, Decision};
use crate::request::{ConnectRequest, EncryptionLevel};

/// The span of one logical connect, entered for its whole duration.
pub(crate) fn connect_span(request: &ConnectRequest) -> Span {
    let span = tracing::info_span!(
        attr::SPAN_CONNECT,
        { attr::OTEL_KIND } = values::KIND_CLIENT,
        { attr::DB_SYSTEM_NAME } = values::DB_SYSTEM_SQL_SERVER,
        { attr::SERVER_ADDRESS } = request.host(),
        { attr::SERVER_PORT } = i64::from(request.port()),
        { attr::DB_NAMESPACE } = Empty,
        { attr::ENCRYPTION_REQUESTED } = request.encryption().as_str(),
        { attr::ENCRYPTION_FINAL } = Empty,
        { attr::MEMORY_APPLIED } = Empty,
        { attr::ATTEMPTS } = Empty,
        { attr::PRELOGIN_CAUSE } = Empty,
        { attr::DB_RESPONSE_STATUS_CODE } = Empty,
        { attr::STOP_REASON } = Empty,
        { attr::BUDGET_EXHAUSTED } = Empty,
        { attr::ERROR_TYPE } = Empty,
        { attr::OTEL_STATUS_CODE } = Empty,
        { attr::OTEL_STATUS_DESCRIPTION } = Empty,
    );
    // An absent database is an absent attribute, not an empty string.
    if let Some(database) = request.database() {
        span.record(attr::DB_NAMESPACE, database);
    }
    span
}

/// Counts as `i64`: `tracing-opentelemetry` has no unsigned visitor and
/// would export a `u64` as a string, where OpenTelemetry wants an int.
fn int(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Where an attempt sits in the connect: its number, which backoff retry it
/// is, the delay slept before it, and whether it is the Strict probe.
#[derive(Debug, Clone, Copy)]
pub(crate) struct AttemptPlace {
    pub(crate) number: usize,
    pub(crate) retry: usize,
    pub(crate) delay: Duration,
    pub(crate) strict_probe: bool,
}

/// The span of one attempt; a child of the current (connect) span.
pub(crate) fn attempt_span(request: &ConnectRequest, place: AttemptPlace) -> Span {
    tracing::info_span!(
        attr::SPAN_ATTEMPT,
        { attr::ATTEMPT } = int(place.number),
        { attr::SERVER_ADDRESS } = request.host(),
        { attr::SERVER_PORT } = i64::from(request.port()),
        { attr::ENCRYPTION } = request.encryption().as_str(),
        { attr::RETRY } = int(place.retry),
        { attr::BACKOFF_DELAY_MS } = i64::try_from(place.delay.as_millis()).unwrap_or(i64::MAX),
        { attr::STRICT_PROBE } = place.strict_probe,
        { attr::PHASE } = Empty,
        { attr::PRELOGIN_OFFERED } = Empty,
        { attr::PRELOGIN_REPLIED } = Empty,
        { attr::PRELOGIN_CAUSE } = Empty,
        { attr::TLS_ALERT } = Empty,
        { attr::TLS_ALERT_SENDER } = Empty,
        { attr::DB_RESPONSE_STATUS_CODE } = Empty,
        { attr::DECISION } = Empty,
        { attr::UPGRADE_FROM } = Empty,
        { attr::UPGRADE_TO } = Empty,
        { attr::ERROR_TYPE } = Empty,
        { attr::OTEL_STATUS_CODE } = Empty,
        { attr::OTEL_STATUS_DESCRIPTION } = Empty,
    )
}

/// The value of `db.response.status_code` for an attempt: the server error
/// number, or "10054" when the server reset or closed during the pre-login
/// handshake (the client-side error SQL Server drivers report for it).
pub(crate) fn response_status_code(record: &AttemptRecord) -> Option<String> {
    match record.server_error {
        Some(number) => Some(number.to_string()),
        None if record.reset_during_prelogin => Some(values::STATUS_10054.to_owned()),
        None => None,
    }
}

/// Records what is known of an attempt once it ended, in success or failure.
pub(crate) fn record_attempt(
    span: &Span,
    record: &AttemptRecord,
    observation: Option<&Observation>,
    failure: Option<&AttemptFailure>,
) {
    if let Some(phase) = record.phase {
        span.record(attr::PHASE, phase.name());
    }
    if let Some(offered) = record.offered {
        span.record(attr::PRELOGIN_OFFERED, i64::from(offered));
    }
    if let Some(replied) = record.replied {
        span.record(attr::PRELOGIN_REPLIED, i64::from(replied));
    }
    if let Some(alert) = observation.and_then(|o| o.first_alert) {
        span.record(attr::TLS_ALERT, i64::from(alert.alert.description.0));
        span.record(
            attr::TLS_ALERT_SENDER,
            match alert.sender {
                Direction::ServerToClient => values::SENDER_SERVER,
                Direction::ClientToServer => values::SENDER_CLIENT,
            },
        );
    }
    let Some(cause) = record.cause else {
        return;
    };
    span.record(attr::PRELOGIN_CAUSE, cause.as_str());
    span.record(attr::ERROR_TYPE, cause.as_str());
    span.record(attr::OTEL_STATUS_CODE, values::STATUS_ERROR);
    if let Some(code) = response_status_code(record) {
        span.record(attr::DB_RESPONSE_STATUS_CODE, code.as_str());
    }
    // tiberius and io messages carry server text and OS errors, never the
    // credentials (the request is not part of any of them).
    if let Some(failure) = failure {
        span.record(
            attr::OTEL_STATUS_DESCRIPTION,
            tracing::field::display(failure),
        );
    }
}

/// Records the policy's decision after a failed attempt on its span.
pub(crate) fn record_decision(span: &Span, decision: &Decision, from: EncryptionLevel) {
    span.record(attr::DECISION, decision.as_str());
    match decision {
        Decision::Upgrade { to } => {
            span.record(attr::UPGRADE_FROM, from.as_str());
            span.record(attr::UPGRADE_TO, to.as_str());
        }
        Decision::ProbeStrict => {
            span.record(attr::UPGRADE_FROM, from.as_str());
            span.record(attr::UPGRADE_TO, EncryptionLevel::Strict.as_str());
        }
        _ => {}
    }
}

/// Whether the endpoint memory chose the first attempt's level.
pub(crate) fn record_memory(span: &Span, applied: bool) {
    span.record(attr::MEMORY_APPLIED, applied);
}

/// Records a successful connect. The status stays unset: OpenTelemetry
/// asks instrumentation to leave it so on success.
pub(crate) fn record_connected(span: &Span, history: &[AttemptRecord]) {
    span.record(attr::ATTEMPTS, int(history.len()));
    if let Some(last) = history.last() {
        span.record(attr::ENCRYPTION_FINAL, last.encryption.as_str());
    }
    if let Some(cause) = history.iter().rev().find_map(|r| r.cause) {
        span.record(attr::PRELOGIN_CAUSE, cause.as_str());
    }
}

/// Records a failed connect: the cause as `error.type`, status ERROR, and
/// the last attempt's response status code.
pub(crate) fn record_failed(span: &Span, error: &ConnectError) {
    let cause = error.cause().as_str();
    span.record(attr::ATTEMPTS, int(error.attempts().len()));
    span.record(attr::PRELOGIN_CAUSE, cause);
    span.record(attr::ERROR_TYPE, cause);
    span.record(attr::STOP_REASON, error.stop_reason().as_str());
    span.record(attr::BUDGET_EXHAUSTED, error.budget_exhausted());
    span.record(attr::OTEL_STATUS_CODE, values::STATUS_ERROR);
    span.record(
        attr::OTEL_STATUS_DESCRIPTION,
        format_args!(
            "{cause} ({}) after {} attempt(s)",
            error.stop_reason().as_str(),
            error.attempts().len()
        ),
    );
    if let Some(last) = error.attempts().last() {
        span.record(attr::ENCRYPTION_FINAL, last.encryption.as_str());
        if let Some(code) = response_status_code(last) {
            span.record(attr::DB_RESPONSE_STATUS_CODE, code.as_str());
        }
    }
}

/// What the create-time histogram is told about a connect.
// Built on every connect so the driver has one code path; only the
// `metrics` feature reads it.
#[cfg_attr(not(feature = "metrics"), allow(dead_code))]
#[derive(Debug)]
pub(crate) struct ConnectFacts<'a> {
    pub(crate) host: &'a str,
    pub(crate) port: u16,
    pub(crate) database: Option<&'a str>,
    pub(crate) elapsed: Duration,
}

#[cfg(feature = "metrics")]
pub(crate) use crate::metrics::MetricsSink;

/// Without the `metrics` feature there is nowhere to send measurements.
/// (A field, not a unit struct, so both builds construct it with `default()`.)
#[cfg(not(feature = "metrics"))]
#[derive(Debug, Clone, Default)]
pub(crate) struct MetricsSink {
    _nothing: (),
}

/// Counts one attempt; `outcome` is `connected` or the decision's name.
pub(crate) fn count_attempt(sink: &MetricsSink, record: &AttemptRecord, outcome: &'static str) {
    #[cfg(feature = "metrics")]
    if let Some(metrics) = sink.get() {
        metrics.record_attempt(record, outcome);
    }
    #[cfg(not(feature = "metrics"))]
    let _ = (sink, record, outcome);
}

/// Records a connect's duration; `failed` is its cause on failure.
pub(crate) fn measure_connect(
    sink: &MetricsSink,
    connect: &ConnectFacts<'_>,
    failed: Option<crate::Cause>,
) {
    #[cfg(feature = "metrics")]
    if let Some(metrics) = sink.get() {
        metrics.record_connect(connect, failed);
    }
    #[cfg(not(feature = "metrics"))]
    let _ = (sink, connect, failed);
}

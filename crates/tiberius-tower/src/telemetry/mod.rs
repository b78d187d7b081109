//! The spans: one CLIENT span per logical connect, one child per attempt,
//! shaped for `tracing-opentelemetry` (see [`attributes`] for the names and
//! `docs/telemetry.md` for what each means), and the metrics sink.
//!
//! Fields are declared up front, `Empty` where the value comes later,
//! because a `tracing` span cannot grow fields after it is created. Each
//! value is recorded once, when it is final: an attempt's cause and decision
//! when the plan settles its record. Only values this crate computed are
//! recorded: host, port, database name, levels, causes, phases, bytes and
//! numbers. Never the request itself, whose credentials must not reach a
//! span.

pub mod attributes;
#[cfg(feature = "metrics")]
pub(crate) mod metrics;

use std::time::Duration;

use tds_handshake::Direction;
use tracing::Span;
use tracing::field::{Empty, display};

use crate::connect::AttemptError;
use crate::error::ConnectError;
use crate::level::EncryptionLevel;
use crate::policy::plan::NextAttempt;
use crate::policy::{Attempt, Decision};
use crate::request::ConnectRequest;

use attributes as attr;

#[cfg(feature = "metrics")]
pub(crate) use metrics::MetricsSink;

/// The span of one logical connect, entered for its whole duration.
pub(crate) fn connect_span(request: &ConnectRequest) -> Span {
    let span = tracing::info_span!(
        attr::SPAN_CONNECT,
        { attr::OTEL_KIND } = "client",
        { attr::DB_SYSTEM_NAME } = "microsoft.sql_server",
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

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// The span of one attempt, a child of `connect` (explicitly: the connect
/// span is not entered while attempts run, see `service::drive`).
pub(crate) fn attempt_span(connect: &Span, request: &ConnectRequest, next: NextAttempt) -> Span {
    tracing::info_span!(
        parent: connect,
        attr::SPAN_ATTEMPT,
        { attr::ATTEMPT } = int(next.number),
        { attr::SERVER_ADDRESS } = request.host(),
        { attr::SERVER_PORT } = i64::from(request.port()),
        { attr::ENCRYPTION } = request.encryption().as_str(),
        { attr::RETRY } = int(next.retry),
        { attr::BACKOFF_DELAY_MS } = millis(next.delay),
        { attr::STRICT_PROBE } = next.strict_probe,
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

/// Records what failed, as soon as the attempt ended. tiberius and io
/// messages carry server text and OS errors, never the credentials (the
/// request is not part of any of them).
pub(crate) fn record_failure(span: &Span, error: &AttemptError) {
    span.record(attr::OTEL_STATUS_DESCRIPTION, display(error.failure()));
    tracing::debug!(parent: span, error = %error.failure(), "connection attempt failed");
}

/// Records an attempt's settled record: what the wire showed, the cause and
/// what the policy decided.
pub(crate) fn record_settled(span: &Span, record: &Attempt) {
    if let Some(phase) = record.phase() {
        span.record(attr::PHASE, phase.name());
    }
    if let Some(offered) = record.offered() {
        span.record(attr::PRELOGIN_OFFERED, i64::from(offered.0));
    }
    if let Some(replied) = record.replied() {
        span.record(attr::PRELOGIN_REPLIED, i64::from(replied.0));
    }
    if let Some((description, sender)) = record.tls_alert() {
        span.record(attr::TLS_ALERT, i64::from(description));
        span.record(
            attr::TLS_ALERT_SENDER,
            match sender {
                Direction::ServerToClient => "server",
                Direction::ClientToServer => "client",
            },
        );
    }
    let Some(cause) = record.cause() else {
        return;
    };
    span.record(attr::PRELOGIN_CAUSE, cause.as_str());
    span.record(attr::ERROR_TYPE, cause.as_str());
    span.record(attr::OTEL_STATUS_CODE, "ERROR");
    if let Some(code) = record.response_status_code() {
        span.record(attr::DB_RESPONSE_STATUS_CODE, display(code));
    }
    if let Some(decision) = record.decision() {
        span.record(attr::DECISION, decision.as_str());
        let to = match decision {
            Decision::Upgrade { to } => Some(*to),
            Decision::ProbeStrict => Some(EncryptionLevel::Strict),
            _ => None,
        };
        if let Some(to) = to {
            span.record(attr::UPGRADE_FROM, record.encryption().as_str());
            span.record(attr::UPGRADE_TO, to.as_str());
        }
    }
}

/// Whether the endpoint memory chose the first attempt's level.
pub(crate) fn record_memory(span: &Span, applied: bool) {
    span.record(attr::MEMORY_APPLIED, applied);
}

/// Records a successful connect. The status stays unset: OpenTelemetry
/// asks instrumentation to leave it so on success.
pub(crate) fn record_connected(span: &Span, history: &[Attempt]) {
    span.record(attr::ATTEMPTS, int(history.len()));
    if let Some(last) = history.last() {
        span.record(attr::ENCRYPTION_FINAL, last.encryption().as_str());
    }
    if let Some(cause) = history.iter().rev().find_map(Attempt::cause) {
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
    span.record(attr::OTEL_STATUS_CODE, "ERROR");
    span.record(
        attr::OTEL_STATUS_DESCRIPTION,
        format_args!(
            "{cause} ({}) after {} attempt(s)",
            error.stop_reason().as_str(),
            error.attempts().len()
        ),
    );
    if let Some(last) = error.attempts().last() {
        span.record(attr::ENCRYPTION_FINAL, last.encryption().as_str());
        if let Some(code) = last.response_status_code() {
            span.record(attr::DB_RESPONSE_STATUS_CODE, display(code));
        }
    }
}

/// What the create-time histogram is told about a connect: the endpoint as
/// the user asked for it.
#[derive(Debug)]
pub(crate) struct ConnectFacts {
    #[cfg_attr(not(feature = "metrics"), allow(dead_code))]
    pub(crate) host: String,
    #[cfg_attr(not(feature = "metrics"), allow(dead_code))]
    pub(crate) port: u16,
    #[cfg_attr(not(feature = "metrics"), allow(dead_code))]
    pub(crate) database: Option<String>,
}

impl ConnectFacts {
    pub(crate) fn of(request: &ConnectRequest) -> Self {
        ConnectFacts {
            host: request.host().to_owned(),
            port: request.port(),
            database: request.database().map(str::to_owned),
        }
    }
}

/// Without the `metrics` feature there is nowhere to send measurements. (A
/// field, not a unit struct, so both builds construct it with `default()`.)
#[cfg(not(feature = "metrics"))]
#[derive(Debug, Clone, Default)]
pub(crate) struct MetricsSink {
    _nothing: (),
}

#[cfg(not(feature = "metrics"))]
impl MetricsSink {
    pub(crate) fn is_on(&self) -> bool {
        false
    }

    pub(crate) fn count_attempt(&self, _record: &Attempt) {}

    pub(crate) fn measure_connect(
        &self,
        _facts: &ConnectFacts,
        _elapsed: Duration,
        _failed: Option<crate::Cause>,
    ) {
    }
}

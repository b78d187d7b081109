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

use std::collections::VecDeque;
use std::time::Duration;

use tds_handshake::{Direction, Phase};
use tracing::Span;
use tracing::field::{Empty, display};

use crate::cause::Cause;
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
    tracing::info_span!(
        attr::SPAN_CONNECT,
        { attr::OTEL_KIND } = "client",
        { attr::DB_SYSTEM_NAME } = "microsoft.sql_server",
        { attr::SERVER_ADDRESS } = request.host(),
        { attr::SERVER_PORT } = i64::from(request.port()),
        // An absent database is an absent attribute, not an empty string.
        { attr::DB_NAMESPACE } = request.database(),
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
    )
}

/// The attempt spans whose records are not settled yet, oldest first.
///
/// A span stays open until the plan settles its record, which for most
/// attempts is right after the attempt; only the attempt that triggered the
/// Strict probe, or a silent TLS-first one, waits for the next step. So the
/// first span is held inline and a clean connect allocates nothing here.
#[derive(Debug, Default)]
pub(crate) struct OpenSpans {
    oldest: Option<Span>,
    newer: VecDeque<Span>,
}

impl OpenSpans {
    /// Adds the span of the attempt just made.
    pub(crate) fn push(&mut self, span: Span) {
        if self.oldest.is_none() && self.newer.is_empty() {
            self.oldest = Some(span);
        } else {
            self.newer.push_back(span);
        }
    }

    /// The span of the attempt made last.
    pub(crate) fn newest(&self) -> Option<&Span> {
        self.newer.back().or(self.oldest.as_ref())
    }

    /// Takes the oldest span, whose record is the next to settle.
    pub(crate) fn pop_oldest(&mut self) -> Option<Span> {
        self.oldest.take().or_else(|| self.newer.pop_front())
    }
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
/// what the policy decided, in one batch (one `on_record` for the
/// subscriber; `None`s are not recorded).
pub(crate) fn record_settled(span: &Span, record: &Attempt) {
    let alert = record.tls_alert();
    let cause = record.cause().map(Cause::as_str);
    // A record without a cause logged in: no status, decision or upgrade.
    let decision = record.decision().filter(|_| cause.is_some());
    let upgraded_to = decision.and_then(|decision| match decision {
        Decision::Upgrade { to } => Some(*to),
        Decision::ProbeStrict => Some(EncryptionLevel::Strict),
        _ => None,
    });
    let status_code = record.response_status_code().filter(|_| cause.is_some());
    tracing::record_all!(
        span,
        { attr::PHASE } = record.phase().map(Phase::name),
        { attr::PRELOGIN_OFFERED } = record.offered().map(|e| i64::from(e.0)),
        { attr::PRELOGIN_REPLIED } = record.replied().map(|e| i64::from(e.0)),
        { attr::TLS_ALERT } = alert.map(|(description, _)| i64::from(description)),
        { attr::TLS_ALERT_SENDER } = alert.map(|(_, sender)| sender_name(sender)),
        { attr::PRELOGIN_CAUSE } = cause,
        { attr::ERROR_TYPE } = cause,
        { attr::OTEL_STATUS_CODE } = cause.map(|_| "ERROR"),
        { attr::DB_RESPONSE_STATUS_CODE } = status_code.map(display),
        { attr::DECISION } = decision.map(Decision::as_str),
        { attr::UPGRADE_FROM } = upgraded_to.map(|_| record.encryption().as_str()),
        { attr::UPGRADE_TO } = upgraded_to.map(EncryptionLevel::as_str),
    );
}

fn sender_name(sender: Direction) -> &'static str {
    match sender {
        Direction::ServerToClient => "server",
        Direction::ClientToServer => "client",
    }
}

/// Whether the endpoint memory chose the first attempt's level.
pub(crate) fn record_memory(span: &Span, applied: bool) {
    span.record(attr::MEMORY_APPLIED, applied);
}

/// Records a successful connect, in one batch. The status stays unset:
/// OpenTelemetry asks instrumentation to leave it so on success.
pub(crate) fn record_connected(span: &Span, history: &[Attempt]) {
    let recovered_from = history.iter().rev().find_map(Attempt::cause);
    tracing::record_all!(
        span,
        { attr::ATTEMPTS } = int(history.len()),
        { attr::ENCRYPTION_FINAL } = history.last().map(|last| last.encryption().as_str()),
        { attr::PRELOGIN_CAUSE } = recovered_from.map(Cause::as_str),
    );
}

/// Records a failed connect, in one batch: the cause as `error.type`,
/// status ERROR, and the last attempt's response status code.
pub(crate) fn record_failed(span: &Span, error: &ConnectError) {
    let cause = error.cause().as_str();
    let attempts = error.attempts();
    let last = attempts.last();
    tracing::record_all!(
        span,
        { attr::ATTEMPTS } = int(attempts.len()),
        { attr::PRELOGIN_CAUSE } = cause,
        { attr::ERROR_TYPE } = cause,
        { attr::STOP_REASON } = error.stop_reason().as_str(),
        { attr::BUDGET_EXHAUSTED } = error.budget_exhausted(),
        { attr::OTEL_STATUS_CODE } = "ERROR",
        { attr::OTEL_STATUS_DESCRIPTION } = format_args!(
            "{cause} ({}) after {} attempt(s)",
            error.stop_reason().as_str(),
            attempts.len()
        ),
        { attr::ENCRYPTION_FINAL } = last.map(|last| last.encryption().as_str()),
        { attr::DB_RESPONSE_STATUS_CODE } =
            last.and_then(Attempt::response_status_code).map(display),
    );
}

/// Without the `metrics` feature there is nowhere to send measurements. (A
/// field, not a unit struct, so both builds construct it with `default()`.)
#[cfg(not(feature = "metrics"))]
#[derive(Debug, Clone, Default)]
pub(crate) struct MetricsSink {
    _nothing: (),
}

/// Without the `metrics` feature no connect has anything to measure.
#[cfg(not(feature = "metrics"))]
#[derive(Debug)]
pub(crate) enum ConnectFacts {}

#[cfg(not(feature = "metrics"))]
impl MetricsSink {
    pub(crate) fn connect_facts(&self, _request: &ConnectRequest) -> Option<ConnectFacts> {
        None
    }

    pub(crate) fn count_attempt(&self, _record: &Attempt) {}

    pub(crate) fn measure_connect(
        &self,
        _facts: &ConnectFacts,
        _elapsed: Duration,
        _failed: Option<Cause>,
    ) {
    }
}

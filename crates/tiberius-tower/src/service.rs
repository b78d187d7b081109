//! [`Prelogin`]: the service that drives the policy around single attempts.

use std::sync::{Arc, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::Instant;

use tds_handshake::{Observation, Phase};
use tower::ServiceExt;
use tower_service::Service;
use tracing::Instrument;

use crate::attributes::values;
use crate::cause::Cause;
use crate::classify::verdict;
use crate::error::{AttemptError, AttemptFailure, ConnectError, StopReason};
use crate::future::ResponseFuture;
use crate::memory::EndpointKey;
use crate::policy::{AttemptRecord, Decision, Policy};
use crate::request::{ConnectRequest, EncryptionLevel, ObservationSlot};
use crate::telemetry::{self, AttemptPlace, ConnectFacts, MetricsSink};

/// A successful connect: the client and every attempt it took.
#[derive(Debug)]
pub struct Connected<C> {
    client: C,
    attempts: Vec<AttemptRecord>,
}

impl<C> Connected<C> {
    /// The client.
    pub fn client(&self) -> &C {
        &self.client
    }

    /// The client, mutably (to run queries).
    pub fn client_mut(&mut self) -> &mut C {
        &mut self.client
    }

    /// Every attempt, in order; the last one succeeded.
    pub fn attempts(&self) -> &[AttemptRecord] {
        &self.attempts
    }

    /// The encryption level the connection was made at.
    pub fn encryption(&self) -> Option<EncryptionLevel> {
        self.attempts.last().map(|a| a.encryption)
    }

    /// Takes the client, dropping the history.
    pub fn into_client(self) -> C {
        self.client
    }

    /// Takes both.
    pub fn into_parts(self) -> (C, Vec<AttemptRecord>) {
        (self.client, self.attempts)
    }
}

/// The connection-setup middleware: makes attempts through the inner
/// service (normally [`Connector`](crate::Connector)), classifies each
/// failure, and upgrades, retries, redirects or stops as the [`Policy`]
/// decides.
///
/// Always ready: readiness of the inner service is awaited inside each
/// attempt. Clones share the policy's budget and memory.
///
/// Each call runs in an `mssql.connect` span with one `mssql.connect.attempt`
/// child per attempt (see [`attributes`](crate::attributes)); with the
/// `metrics` feature it also records the connect time and counts attempts.
#[derive(Debug, Clone)]
pub struct Prelogin<S> {
    inner: S,
    policy: Policy,
    metrics: MetricsSink,
}

impl<S> Prelogin<S> {
    /// Wraps `inner` with `policy`.
    pub fn new(inner: S, policy: Policy) -> Self {
        Prelogin {
            inner,
            policy,
            metrics: MetricsSink::default(),
        }
    }

    pub(crate) fn with_sink(mut self, metrics: MetricsSink) -> Self {
        self.metrics = metrics;
        self
    }

    /// The policy.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl<S> Service<ConnectRequest> for Prelogin<S>
where
    S: Service<ConnectRequest, Error = AttemptError> + Clone + Send + 'static,
    S::Response: Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Connected<S::Response>;
    type Error = ConnectError;
    type Future = ResponseFuture<S::Response>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: ConnectRequest) -> Self::Future {
        let span = telemetry::connect_span(&request);
        let inner = self.inner.clone();
        let policy = self.policy.clone();
        let metrics = self.metrics.clone();
        let connect = drive(inner, policy, request, metrics, span.clone());
        ResponseFuture::new(Box::pin(connect.instrument(span)))
    }
}

async fn drive<S>(
    inner: S,
    policy: Policy,
    request: ConnectRequest,
    metrics: MetricsSink,
    span: tracing::Span,
) -> Result<Connected<S::Response>, ConnectError>
where
    S: Service<ConnectRequest, Error = AttemptError>,
{
    let started = Instant::now();
    let host = request.host().to_owned();
    let port = request.port();
    let database = request.database().map(str::to_owned);
    // What the policy did after each attempt, in order; counted once the
    // connect is over, when a Strict probe has settled the causes before it.
    let mut outcomes: Vec<&'static str> = Vec::new();
    let outcome = attempts(inner, policy, request, &span, &mut outcomes).await;
    let history = match &outcome {
        Ok(connected) => {
            telemetry::record_connected(&span, connected.attempts());
            connected.attempts()
        }
        Err(error) => {
            telemetry::record_failed(&span, error);
            error.attempts()
        }
    };
    for (record, outcome) in history.iter().zip(outcomes) {
        telemetry::count_attempt(&metrics, record, outcome);
    }
    let facts = ConnectFacts {
        host: &host,
        port,
        database: database.as_deref(),
        elapsed: started.elapsed(),
    };
    telemetry::measure_connect(
        &metrics,
        &facts,
        outcome.as_ref().err().map(ConnectError::cause),
    );
    outcome
}

async fn attempts<S>(
    mut inner: S,
    policy: Policy,
    mut request: ConnectRequest,
    connect_span: &tracing::Span,
    outcomes: &mut Vec<&'static str>,
) -> Result<Connected<S::Response>, ConnectError>
where
    S: Service<ConnectRequest, Error = AttemptError>,
{
    let started = Instant::now();
    let configured = request.encryption();
    let handshake_timeout = request.handshake_timeout();
    // `Duration::MAX` means "no deadline"; thirty years is tokio's "never".
    let deadline = started
        .checked_add(policy.get_deadline())
        .or_else(|| started.checked_add(Duration::from_secs(86_400 * 365 * 30)))
        .unwrap_or(started);
    request.set_deadline(deadline);
    let mut plan = policy.plan(&request);
    telemetry::record_memory(connect_span, plan.floor() > configured);
    request.set_encryption(plan.floor());
    policy.get_budget().deposit();

    let mut history: Vec<AttemptRecord> = Vec::new();
    // The endpoints this connect left by a redirect, with the level that got
    // through to their routing answer: each learns its own floor.
    let mut redirected_from: Vec<(EndpointKey, EncryptionLevel)> = Vec::new();
    let mut last_error: Option<AttemptError> = None;
    let mut delay = Duration::ZERO;
    let mut retries = 0;
    let mut retried = false;

    loop {
        // No attempt starts at or after the deadline: a zero timeout would
        // still poll the attempt once, opening a socket for nothing. (The
        // checks after each decision catch this while the last attempt's span
        // is open; this one covers a zero deadline and a late wake-up.)
        if Instant::now() >= deadline {
            return Err(deadline_stop(
                history,
                last_error,
                None,
                outcomes,
                plan.ceiling(),
            ));
        }

        let mut record = AttemptRecord::new(request.host(), request.port(), request.encryption());
        record.delay = delay;
        // The plan knows whether the Strict probe is the attempt about to run.
        let probing = plan.probing();
        record.strict_probe = probing;

        let place = AttemptPlace {
            number: history.len() + 1,
            retry: if retried { retries } else { 0 },
            delay,
            strict_probe: probing,
        };
        let attempt_span = telemetry::attempt_span(&request, place);
        let slot = ObservationSlot::default();
        let attempt_started = Instant::now();
        let attempt = async {
            let ready = inner.ready().await?;
            ready.call(request.with_report(Arc::clone(&slot))).await
        };
        // The connector ends its own work at the deadline (and so reports what
        // it saw); this bound is for connectors that do not.
        let outcome =
            tokio::time::timeout_at(deadline, attempt.instrument(attempt_span.clone())).await;
        record.duration = attempt_started.elapsed();

        let error = match outcome {
            Ok(Ok(client)) => {
                let observation = *slot.lock().unwrap_or_else(PoisonError::into_inner);
                fill_success(&mut record, observation.as_ref());
                telemetry::record_attempt(&attempt_span, &record, observation.as_ref(), None);
                outcomes.push(values::OUTCOME_CONNECTED);
                history.push(record);
                if probing {
                    relabel_probe_candidate(&mut history);
                }
                if let Some(memory) = policy.get_memory() {
                    // Each endpoint learns the level that got through to it;
                    // after a redirect the node is not the gateway.
                    redirected_from.push((request.endpoint(), request.encryption()));
                    for (endpoint, level) in redirected_from {
                        if level > configured {
                            memory.learn(endpoint, level);
                        }
                    }
                }
                return Ok(Connected {
                    client,
                    attempts: history,
                });
            }
            Ok(Err(error)) => error,
            Err(_) => {
                // The connect's deadline passed during this attempt.
                record.cause = Some(Cause::Timeout);
                telemetry::record_attempt(&attempt_span, &record, None, None);
                let stop = Decision::Stop {
                    cause: Cause::Timeout,
                    reason: StopReason::DeadlineExceeded,
                };
                telemetry::record_decision(&attempt_span, &stop, record.encryption);
                outcomes.push(stop.as_str());
                history.push(record);
                return Err(ConnectError::new(
                    Cause::Timeout,
                    StopReason::DeadlineExceeded,
                    history,
                    None,
                    plan.ceiling(),
                ));
            }
        };

        let observation = error.observation().copied();
        let judged = verdict(
            observation.as_ref().unwrap_or(&Observation::default()),
            error.failure(),
            policy.get_transient_numbers(),
        );
        fill_record(&mut record, &error, observation.as_ref(), judged);
        telemetry::record_attempt(
            &attempt_span,
            &record,
            observation.as_ref(),
            Some(error.failure()),
        );
        tracing::debug!(
            parent: &attempt_span,
            cause = judged.cause.as_str(),
            error = %error.failure(),
            "connection attempt failed"
        );
        history.push(record);

        if probing && history.last().is_some_and(|r| r.server_spoke_tls) {
            relabel_probe_candidate(&mut history);
        }

        let decision = match error.failure() {
            AttemptFailure::Tiberius(tiberius::error::Error::Routing { host, port }) => {
                let node = EndpointKey::new(host, *port, None);
                let remembered = policy.get_memory().and_then(|m| m.floor(&node));
                plan.redirect(&history, host, *port, remembered)
            }
            _ => plan.next(&history),
        };
        tracing::debug!(parent: &attempt_span, ?decision, "policy decision");
        if let Some(last) = history.last() {
            telemetry::record_decision(&attempt_span, &decision, last.encryption);
        }
        outcomes.push(decision.as_str());

        retried = false;
        delay = Duration::ZERO;
        request.set_handshake_timeout(handshake_timeout);
        match decision {
            Decision::Retry {
                delay: wait,
                encryption,
            } => {
                // The plan adds up recorded durations; the clock has the last
                // word. A sleep that would end at or past the deadline is not
                // started: nothing could run after it.
                if Instant::now()
                    .checked_add(wait)
                    .is_none_or(|end| end >= deadline)
                {
                    return Err(deadline_stop(
                        history,
                        Some(error),
                        Some(&attempt_span),
                        outcomes,
                        plan.ceiling(),
                    ));
                }
                request.set_encryption(encryption.max(plan.floor()));
                tokio::time::sleep(wait).await;
                delay = wait;
                retries += 1;
                retried = true;
            }
            Decision::Upgrade { to } => {
                request.set_encryption(to.max(request.encryption()));
            }
            Decision::ProbeStrict => {
                request.set_encryption(EncryptionLevel::Strict);
                request.set_handshake_timeout(
                    handshake_timeout.min(policy.get_strict_probe_timeout()),
                );
            }
            Decision::Redirect { host, port } => {
                redirected_from.push((request.endpoint(), request.encryption()));
                request.set_address(host, port);
                // The plan raised its floor to the node's remembered one.
                request.set_encryption(request.encryption().max(plan.floor()));
            }
            Decision::Stop { cause, reason } => {
                return Err(ConnectError::new(
                    cause,
                    reason,
                    history,
                    Some(error),
                    plan.ceiling(),
                ));
            }
        }
        if Instant::now() >= deadline {
            return Err(deadline_stop(
                history,
                Some(error),
                Some(&attempt_span),
                outcomes,
                plan.ceiling(),
            ));
        }
        last_error = Some(error);
    }
}

/// The deadline ended the connect between attempts: the cause is the last
/// attempt's (or `timeout` when none ran), and the last attempt's decision
/// becomes "stop" in its span and in the attempts counter.
fn deadline_stop(
    history: Vec<AttemptRecord>,
    last_error: Option<AttemptError>,
    last_span: Option<&tracing::Span>,
    outcomes: &mut [&'static str],
    ceiling: EncryptionLevel,
) -> ConnectError {
    let cause = history
        .last()
        .and_then(|r| r.cause)
        .unwrap_or(Cause::Timeout);
    let stop = Decision::Stop {
        cause,
        reason: StopReason::DeadlineExceeded,
    };
    if let (Some(span), Some(last)) = (last_span, history.last()) {
        telemetry::record_decision(span, &stop, last.encryption);
    }
    if let Some(outcome) = outcomes.last_mut() {
        *outcome = stop.as_str();
    }
    ConnectError::new(
        cause,
        StopReason::DeadlineExceeded,
        history,
        last_error,
        ceiling,
    )
}

/// The probe got through: the reset that triggered it was the strict-only
/// server, not a blip (design §2.3).
fn relabel_probe_candidate(history: &mut [AttemptRecord]) {
    if let Some(candidate) = history
        .iter_mut()
        .rev()
        .find(|r| r.strict_probe_candidate && !r.strict_probe)
    {
        candidate.cause = Some(Cause::StrictRequired);
    }
}

fn fill_record(
    record: &mut AttemptRecord,
    error: &AttemptError,
    observation: Option<&Observation>,
    judged: crate::classify::Verdict,
) {
    record.cause = Some(judged.cause);
    record.strict_probe_candidate = judged.strict_probe_candidate;
    record.reset_during_prelogin = judged.reset_during_prelogin;
    record.unconfirmed_rejection = judged.unconfirmed_rejection;
    record.phase = error.phase();
    record.tcp_connect = error.timings().tcp_connect;
    record.handshake = error.timings().handshake;
    record.server_error = error
        .failure()
        .tiberius_error()
        .and_then(tiberius::error::Error::code);
    if let Some(obs) = observation {
        record.server_spoke_tls = obs.server_hello.is_some() || obs.phase >= Phase::LoginSent;
        fill_offer(record, obs);
    }
}

/// What a successful attempt negotiated, from the observation the
/// connector reported (None from a connector that does not report).
fn fill_success(record: &mut AttemptRecord, observation: Option<&Observation>) {
    record.phase = Some(Phase::LoggedIn);
    if let Some(obs) = observation {
        record.server_spoke_tls = obs.server_hello.is_some() || obs.phase >= Phase::LoginSent;
        fill_offer(record, obs);
    }
}

fn fill_offer(record: &mut AttemptRecord, obs: &Observation) {
    record.offered = obs
        .client_prelogin
        .as_ref()
        .and_then(|p| p.encryption)
        .map(|e| e.0);
    record.replied = obs
        .server_prelogin
        .as_ref()
        .and_then(|p| p.encryption)
        .map(|e| e.0);
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use tds_handshake::{Encryption, PreloginSummary};

    use super::*;
    use crate::budget::RetryBudget;
    use crate::error::AttemptTimings;

    /// What a Force Encryption server does to a NotSupported client: reply
    /// REQ, then reset. Classified `encryption_required` (an upgrade).
    fn refused_for_encryption() -> AttemptError {
        let summary = |e| PreloginSummary {
            encryption: Some(Encryption(e)),
            ..PreloginSummary::default()
        };
        let observation = Observation {
            phase: Phase::PreloginReplied,
            started_with_tls: Some(false),
            client_prelogin: Some(summary(0x02)),
            server_prelogin: Some(summary(0x03)),
            client_bytes: 47,
            server_bytes: 43,
            ..Observation::default()
        };
        AttemptError::new(
            AttemptFailure::Tiberius(tiberius::error::Error::Io {
                kind: std::io::ErrorKind::ConnectionReset,
                message: "Connection reset by peer (os error 104)".into(),
            }),
            Some(observation),
            EncryptionLevel::NotSupported,
            AttemptTimings::default(),
        )
    }

    fn request() -> ConnectRequest {
        ConnectRequest::builder()
            .host("db")
            .encryption(EncryptionLevel::NotSupported)
            .build()
    }

    /// An attempt that used the whole deadline is the last one: the upgrade
    /// it asked for would start at the deadline, so it is not started.
    #[tokio::test(start_paused = true)]
    async fn no_attempt_starts_at_the_deadline() {
        let calls = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&calls);
        let inner = tower::service_fn(move |request: ConnectRequest| {
            counted.fetch_add(1, Ordering::SeqCst);
            async move {
                // The connector bounds itself by the deadline it is given.
                let deadline = request.deadline().expect("the middleware sets a deadline");
                tokio::time::sleep_until(deadline).await;
                Err::<(), _>(refused_for_encryption())
            }
        });
        let policy = Policy::new()
            .deadline(Duration::from_millis(100))
            .budget(RetryBudget::fixed(10))
            .without_memory();
        let mut service = Prelogin::new(inner, policy);
        let error = service
            .call(request())
            .await
            .expect_err("the deadline ends the connect");
        assert_eq!(
            calls.load(Ordering::SeqCst),
            1,
            "no attempt after the deadline"
        );
        assert_eq!(error.stop_reason(), StopReason::DeadlineExceeded);
        assert_eq!(error.cause(), Cause::EncryptionRequired);
        assert_eq!(error.attempts().len(), 1);
        assert!(
            error.last_attempt().is_some(),
            "the last attempt's error is kept"
        );
        let text = error.to_string();
        assert!(text.contains("Policy::deadline"), "{text}");
    }

    /// Backoff sleeps and attempts together end at the deadline, not after.
    #[tokio::test(start_paused = true)]
    async fn sleeps_and_attempts_end_at_the_deadline() {
        let calls = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&calls);
        let inner = tower::service_fn(move |_request: ConnectRequest| {
            counted.fetch_add(1, Ordering::SeqCst);
            async move {
                // Slow failures the plan does not see in full: it only adds
                // up recorded durations.
                tokio::time::sleep(Duration::from_millis(40)).await;
                Err::<(), _>(AttemptError::new(
                    AttemptFailure::TcpConnect(std::io::ErrorKind::ConnectionRefused.into()),
                    None,
                    EncryptionLevel::Required,
                    AttemptTimings::default(),
                ))
            }
        });
        let policy = Policy::new()
            .deadline(Duration::from_millis(100))
            .min_delay(Duration::from_millis(50))
            .max_delay(Duration::from_millis(50))
            .jitter(false)
            .budget(RetryBudget::fixed(10))
            .without_memory();
        let started = Instant::now();
        let error = Prelogin::new(inner, policy)
            .call(request())
            .await
            .expect_err("refused until the deadline");
        assert!(
            started.elapsed() <= Duration::from_millis(100),
            "returned at {:?}, after the deadline",
            started.elapsed()
        );
        assert_eq!(error.stop_reason(), StopReason::DeadlineExceeded);
        // 0-40 ms refused, 40-90 ms backoff, 90 ms second attempt cut at 100.
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        assert_eq!(error.cause(), Cause::Timeout);
    }

    /// `Duration::MAX` everywhere means "no limit", never a panic.
    #[tokio::test(start_paused = true)]
    async fn unbounded_durations_do_not_panic() {
        let inner = tower::service_fn(|_request: ConnectRequest| async {
            Err::<(), _>(refused_for_encryption())
        });
        let policy = Policy::new()
            .deadline(Duration::MAX)
            .max_delay(Duration::MAX)
            .strict_probe_timeout(Duration::MAX)
            .ceiling(EncryptionLevel::Off)
            .without_memory();
        let request = ConnectRequest::builder()
            .encryption(EncryptionLevel::NotSupported)
            .tcp_connect_timeout(Duration::MAX)
            .handshake_timeout(Duration::MAX)
            .build();
        let error = Prelogin::new(inner, policy)
            .call(request)
            .await
            .expect_err("the ceiling forbids the upgrade");
        assert_eq!(error.stop_reason(), StopReason::CeilingReached);
    }
}

//! [`Prelogin`]: the service that drives the policy around single attempts.

use std::sync::{Arc, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tds_handshake::{Observation, Phase};
use tower::ServiceExt;
use tower_service::Service;
use tracing::Instrument;

use crate::attributes::values;
use crate::cause::Cause;
use crate::classify::verdict;
use crate::error::{AttemptError, AttemptFailure, ConnectError, StopReason};
use crate::future::ResponseFuture;
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
    let endpoint = request.endpoint();
    let handshake_timeout = request.handshake_timeout();
    let deadline = policy.get_deadline();
    let mut plan = policy.plan(&request);
    telemetry::record_memory(connect_span, plan.floor() > configured);
    request.set_encryption(plan.floor());
    policy.get_budget().deposit();

    let mut history: Vec<AttemptRecord> = Vec::new();
    let mut delay = Duration::ZERO;
    let mut probing = false;
    let mut retries = 0;
    let mut retried = false;

    loop {
        let mut record = AttemptRecord::new(request.host(), request.port(), request.encryption());
        record.delay = delay;
        record.strict_probe = probing;

        let remaining = deadline.saturating_sub(started.elapsed());
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
        let outcome =
            tokio::time::timeout(remaining, attempt.instrument(attempt_span.clone())).await;
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
                let connected_at = request.encryption();
                if connected_at > configured
                    && let Some(memory) = policy.get_memory()
                {
                    memory.learn(endpoint.clone(), connected_at);
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
                plan.redirect(&history, host, *port)
            }
            _ => plan.next(&history),
        };
        tracing::debug!(parent: &attempt_span, ?decision, "policy decision");
        if let Some(last) = history.last() {
            telemetry::record_decision(&attempt_span, &decision, last.encryption);
        }
        outcomes.push(decision.as_str());

        probing = false;
        retried = false;
        delay = Duration::ZERO;
        request.set_handshake_timeout(handshake_timeout);
        match decision {
            Decision::Retry {
                delay: wait,
                encryption,
            } => {
                request.set_encryption(encryption.max(plan.floor()));
                let remaining = deadline.saturating_sub(started.elapsed());
                tokio::time::sleep(wait.min(remaining)).await;
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
                probing = true;
            }
            Decision::Redirect { host, port } => {
                request.set_address(host, port);
                // The node is an endpoint of its own: start it at what memory holds for
                // it, never below the level this connect has already reached.
                if let Some(floor) = policy
                    .get_memory()
                    .and_then(|memory| memory.floor(&request.endpoint()))
                {
                    request.set_encryption(request.encryption().max(floor));
                }
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
    }
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

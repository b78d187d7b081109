//! [`Prelogin`]: the service that drives the policy around single attempts.

use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tds_handshake::{Observation, Phase};
use tower::ServiceExt;
use tower_service::Service;
use tracing::Instrument;

use crate::cause::Cause;
use crate::classify::verdict;
use crate::error::{AttemptError, AttemptFailure, ConnectError, StopReason};
use crate::future::ResponseFuture;
use crate::policy::{AttemptRecord, Decision, Policy};
use crate::request::{ConnectRequest, EncryptionLevel};

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
#[derive(Debug, Clone)]
pub struct Prelogin<S> {
    inner: S,
    policy: Policy,
}

impl<S> Prelogin<S> {
    /// Wraps `inner` with `policy`.
    pub fn new(inner: S, policy: Policy) -> Self {
        Prelogin { inner, policy }
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
        let span = tracing::info_span!(
            "mssql.connect",
            otel.kind = "client",
            db.system.name = "microsoft.sql_server",
            server.address = %request.host(),
            server.port = request.port(),
            db.namespace = request.database().unwrap_or(""),
            mssql.encryption.requested = request.encryption().as_str(),
            mssql.encryption.final = tracing::field::Empty,
            mssql.attempts = tracing::field::Empty,
            error.type = tracing::field::Empty,
            otel.status_code = tracing::field::Empty,
        );
        let inner = self.inner.clone();
        let policy = self.policy.clone();
        ResponseFuture::new(Box::pin(drive(inner, policy, request).instrument(span)))
    }
}

async fn drive<S>(
    mut inner: S,
    policy: Policy,
    mut request: ConnectRequest,
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
    request.set_encryption(plan.floor());
    policy.get_budget().deposit();

    let mut history: Vec<AttemptRecord> = Vec::new();
    let mut delay = Duration::ZERO;
    let mut probing = false;

    loop {
        let mut record = AttemptRecord::new(request.host(), request.port(), request.encryption());
        record.delay = delay;
        record.strict_probe = probing;

        let remaining = deadline.saturating_sub(started.elapsed());
        let attempt_span = tracing::info_span!(
            "mssql.connect.attempt",
            mssql.encryption = request.encryption().as_str(),
            mssql.attempt = history.len() + 1,
            mssql.strict_probe = probing,
            mssql.backoff_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
            mssql.phase = tracing::field::Empty,
            mssql.prelogin.cause = tracing::field::Empty,
            mssql.prelogin.offered = tracing::field::Empty,
            mssql.prelogin.replied = tracing::field::Empty,
            mssql.tls.alert = tracing::field::Empty,
            db.response.status_code = tracing::field::Empty,
        );
        let attempt_started = Instant::now();
        let attempt = async {
            let ready = inner.ready().await?;
            ready.call(request.clone()).await
        };
        let outcome =
            tokio::time::timeout(remaining, attempt.instrument(attempt_span.clone())).await;
        record.duration = attempt_started.elapsed();

        let error = match outcome {
            Ok(Ok(client)) => {
                record.phase = Some(Phase::LoggedIn);
                attempt_span.record("mssql.phase", Phase::LoggedIn.name());
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
                let span = tracing::Span::current();
                span.record("mssql.encryption.final", connected_at.as_str());
                span.record("mssql.attempts", history.len());
                return Ok(Connected {
                    client,
                    attempts: history,
                });
            }
            Ok(Err(error)) => error,
            Err(_) => {
                // The connect's deadline passed during this attempt.
                record.cause = Some(Cause::Timeout);
                history.push(record);
                return Err(finish(ConnectError::new(
                    Cause::Timeout,
                    StopReason::DeadlineExceeded,
                    history,
                    None,
                    plan.ceiling(),
                )));
            }
        };

        let observation = error.observation().copied();
        let judged = verdict(
            observation.as_ref().unwrap_or(&Observation::default()),
            error.failure(),
            policy.get_transient_numbers(),
        );
        fill_record(&mut record, &error, observation.as_ref(), judged);
        record_attempt_span(&attempt_span, &record, observation.as_ref());
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
        tracing::debug!(?decision, "policy decision");

        probing = false;
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
            }
            Decision::Stop { cause, reason } => {
                return Err(finish(ConnectError::new(
                    cause,
                    reason,
                    history,
                    Some(error),
                    plan.ceiling(),
                )));
            }
        }
    }
}

/// Records the failure on the connect span.
fn finish(error: ConnectError) -> ConnectError {
    let span = tracing::Span::current();
    span.record("error.type", error.cause().as_str());
    span.record("otel.status_code", "ERROR");
    span.record("mssql.attempts", error.attempts().len());
    if let Some(last) = error.attempts().last() {
        span.record("mssql.encryption.final", last.encryption.as_str());
    }
    error
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
}

fn record_attempt_span(span: &tracing::Span, record: &AttemptRecord, obs: Option<&Observation>) {
    if let Some(phase) = record.phase {
        span.record("mssql.phase", phase.name());
    }
    if let Some(cause) = record.cause {
        span.record("mssql.prelogin.cause", cause.as_str());
    }
    if let Some(offered) = record.offered {
        span.record("mssql.prelogin.offered", offered);
    }
    if let Some(replied) = record.replied {
        span.record("mssql.prelogin.replied", replied);
    }
    if let Some(alert) = obs.and_then(|o| o.first_alert) {
        span.record("mssql.tls.alert", alert.alert.description.0);
    }
    if let Some(number) = record.server_error {
        span.record("db.response.status_code", number);
    } else if record.reset_during_prelogin {
        span.record("db.response.status_code", "10054");
    }
}

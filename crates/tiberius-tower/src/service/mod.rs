//! [`Prelogin`]: the service that carries out the plan's steps around
//! single attempts, and [`Connected`], what it returns.

mod layer;

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::time::Instant;
use tower::ServiceExt;
use tower_service::Service;
use tracing::{Instrument, Span};

use crate::connect::check::answers_plaintext_prelogin;
use crate::connect::{AttemptError, AttemptFailure, AttemptTimings, BoxError, Observed};
use crate::error::ConnectError;
use crate::level::EncryptionLevel;
use crate::policy::plan::{Plan, Step};
use crate::policy::{Attempt, ConnectPolicy};
use crate::request::ConnectRequest;
use crate::telemetry::{self, MetricsSink};

pub use layer::PreloginLayer;

/// A successful connect: the client and every attempt it took.
#[derive(Debug)]
pub struct Connected<C> {
    client: C,
    attempts: Vec<Attempt>,
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

    /// Every attempt, in order; the last one logged in.
    pub fn attempts(&self) -> &[Attempt] {
        &self.attempts
    }

    /// The encryption level the connection was made at.
    pub fn encryption(&self) -> EncryptionLevel {
        self.attempts
            .last()
            .map_or(EncryptionLevel::NotSupported, Attempt::encryption)
    }

    /// Takes the client, dropping the history.
    pub fn into_client(self) -> C {
        self.client
    }

    /// Takes both.
    pub fn into_parts(self) -> (C, Vec<Attempt>) {
        (self.client, self.attempts)
    }
}

/// The connection-setup middleware: makes attempts through the inner
/// service (normally [`Connector`](crate::Connector)), and upgrades, retries,
/// redirects or stops as the [`ConnectPolicy`] decides after each one.
///
/// Always ready: readiness of the inner service is awaited inside each
/// attempt. Clones share the policy's budget and memory.
///
/// # What may sit between this and the connector
///
/// Any tower layer whose service answers a [`ConnectRequest`] with an
/// [`Observed`] client and fails with an error that converts into a
/// [`BoxError`]. Errors that are an [`AttemptError`] (the connector's) are
/// read as they are; `tower::timeout::error::Elapsed` (a `Timeout` layer)
/// becomes the cause `timeout` and is retried; any other error is kept as
/// [`AttemptFailure::Layer`] with the cause `unknown`, which stops the
/// connect. A timeout layer there bounds each attempt but hides what the wire
/// showed; the request's own timeouts do not.
///
/// Each call runs in an `mssql.connect` span with one `mssql.connect.attempt`
/// child per attempt (see [`attributes`](crate::attributes)); with the
/// `metrics` feature it also records the connect time and counts attempts.
#[derive(Debug, Clone)]
pub struct Prelogin<S> {
    inner: S,
    policy: ConnectPolicy,
    metrics: MetricsSink,
}

impl<S> Prelogin<S> {
    /// Wraps `inner` with `policy`.
    pub fn new(inner: S, policy: ConnectPolicy) -> Self {
        Prelogin {
            inner,
            policy,
            metrics: MetricsSink::default(),
        }
    }

    fn with_metrics(mut self, metrics: MetricsSink) -> Self {
        self.metrics = metrics;
        self
    }
}

impl<S, C> Service<ConnectRequest> for Prelogin<S>
where
    S: Service<ConnectRequest, Response = Observed<C>> + Clone + Send + 'static,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
    C: Send + 'static,
{
    type Response = Connected<C>;
    type Error = ConnectError;
    type Future = Pin<Box<dyn Future<Output = Result<Connected<C>, ConnectError>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: ConnectRequest) -> Self::Future {
        let span = telemetry::connect_span(&request);
        Box::pin(drive(
            self.inner.clone(),
            self.policy.clone(),
            request,
            self.metrics.clone(),
            span,
        ))
    }
}

/// One logical connect: carries out the plan's steps until it says
/// connected or stopped.
///
/// The connect span is entered around the backoff sleeps, the plaintext
/// check and the final records, but not around attempts: an attempt runs in
/// its own span, whose parent is the connect span. Entering both on every
/// poll of a handshake (tens of polls) cost a subscriber such as
/// `tracing-opentelemetry` two enter/exit pairs per poll where one does;
/// the trace (parents, start and end times, attributes) is the same.
async fn drive<S, C>(
    mut inner: S,
    policy: ConnectPolicy,
    request: ConnectRequest,
    metrics: MetricsSink,
    connect_span: Span,
) -> Result<Connected<C>, ConnectError>
where
    S: Service<ConnectRequest, Response = Observed<C>>,
    S::Error: Into<BoxError>,
{
    let started = Instant::now();
    let facts = metrics.connect_facts(&request);
    let mut plan = Plan::new(policy, request, started);
    telemetry::record_memory(&connect_span, plan.memory_applied());

    // Attempt spans stay open until their record is settled (in order).
    let mut open = telemetry::OpenSpans::default();
    let mut client = None;
    let mut step = Step::Attempt;
    loop {
        step = match step {
            Step::Attempt => {
                if !plan.delay().is_zero() {
                    tokio::time::sleep(plan.delay())
                        .instrument(connect_span.clone())
                        .await;
                }
                let span =
                    telemetry::attempt_span(&connect_span, plan.request(), plan.next_attempt());
                let began = Instant::now();
                let request = plan.request().clone();
                let produced = attempt(&mut inner, request, began, plan.deadline())
                    .instrument(span.clone())
                    .await;
                open.push(span);
                let produced = produced.map(|observed| {
                    let (connected, observation) = observed.into_parts();
                    client = Some(connected);
                    observation
                });
                if let (Err(error), Some(span)) = (&produced, open.newest()) {
                    telemetry::record_failure(span, error);
                }
                let ended = Instant::now();
                plan.step(produced, ended.duration_since(began), ended)
            }
            Step::AwaitBudget => {
                let began = Instant::now();
                let (delay, budget, until) = (plan.delay(), plan.budget(), plan.deadline());
                let granted = async {
                    if !delay.is_zero() {
                        tokio::time::sleep(delay).await;
                    }
                    budget.acquire(until).await
                }
                .instrument(connect_span.clone())
                .await;
                plan.budget_answered(granted, began.elapsed())
            }
            Step::CheckPlaintext => {
                let request = plan.request();
                let answered = answers_plaintext_prelogin(
                    request.host(),
                    request.port(),
                    request.instance(),
                    plan.check_until(),
                )
                .instrument(connect_span.clone())
                .await;
                plan.checked(answered, Instant::now())
            }
            Step::Connected | Step::Stopped => break,
        };
        for record in plan.newly_settled() {
            if let Some(span) = open.pop_oldest() {
                telemetry::record_settled(&span, record);
            }
            metrics.count_attempt(record);
        }
    }

    // Entered for the final records, so the connect span's last exit (which
    // `tracing-opentelemetry` takes as its end time) is the connect's end.
    let outcome = {
        // No await in this block: the guard never crosses a suspension point.
        let _entered = connect_span.enter();
        match (step, client) {
            (Step::Connected, Some(client)) => {
                let attempts = plan.into_attempts();
                telemetry::record_connected(&connect_span, &attempts);
                Ok(Connected { client, attempts })
            }
            _ => {
                let error = plan.into_error();
                telemetry::record_failed(&connect_span, &error);
                Err(error)
            }
        }
    };
    if let Some(facts) = facts {
        let failed = outcome.as_ref().err().map(ConnectError::cause);
        metrics.measure_connect(&facts, started.elapsed(), failed);
    }
    outcome
}

/// One attempt through the inner service, bounded by the connect's deadline
/// (the connector ends its own work there and reports what it saw; this
/// bound is for inner services that do not).
async fn attempt<S, C>(
    inner: &mut S,
    request: ConnectRequest,
    started: Instant,
    deadline: Instant,
) -> Result<Observed<C>, AttemptError>
where
    S: Service<ConnectRequest, Response = Observed<C>>,
    S::Error: Into<BoxError>,
{
    let level = request.encryption();
    let work = async {
        let ready = inner.ready().await?;
        ready.call(request).await
    };
    match tokio::time::timeout_at(deadline, work).await {
        Ok(Ok(observed)) => Ok(observed),
        Ok(Err(error)) => Err(match error.into().downcast::<AttemptError>() {
            Ok(error) => *error,
            Err(other) => AttemptError::new(
                AttemptFailure::Layer(other),
                None,
                level,
                AttemptTimings::default(),
            ),
        }),
        Err(_) => Err(AttemptError::new(
            AttemptFailure::HandshakeTimeout(deadline.saturating_duration_since(started)),
            None,
            level,
            AttemptTimings::default(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use tds_handshake::{Encryption, Observation, Phase, PreloginSummary};

    use super::*;
    use crate::cause::Cause;
    use crate::policy::{RetryBudget, StopReason};

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
                Err::<Observed<()>, _>(refused_for_encryption())
            }
        });
        let policy = ConnectPolicy::new()
            .deadline(Duration::from_millis(100))
            .budget(RetryBudget::fixed(10))
            .without_memory();
        let error = Prelogin::new(inner, policy)
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
        assert!(text.contains("ConnectPolicy::deadline"), "{text}");
    }

    /// Backoff sleeps and attempts together end at the deadline, not after.
    #[tokio::test(start_paused = true)]
    async fn sleeps_and_attempts_end_at_the_deadline() {
        let calls = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&calls);
        let inner = tower::service_fn(move |_request: ConnectRequest| {
            counted.fetch_add(1, Ordering::SeqCst);
            async move {
                // Slow failures that ignore the deadline they were given.
                tokio::time::sleep(Duration::from_millis(40)).await;
                Err::<Observed<()>, _>(AttemptError::new(
                    AttemptFailure::TcpConnect(std::io::ErrorKind::ConnectionRefused.into()),
                    None,
                    EncryptionLevel::Required,
                    AttemptTimings::default(),
                ))
            }
        });
        let policy = ConnectPolicy::new()
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
        assert_eq!(
            started.elapsed(),
            Duration::from_millis(100),
            "ends at the deadline"
        );
        assert_eq!(error.stop_reason(), StopReason::DeadlineExceeded);
        // 0-40 ms refused, 40-90 ms backoff, 90 ms second attempt cut at 100.
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        assert_eq!(error.cause(), Cause::Timeout);
        let delays: Vec<_> = error.attempts().iter().map(Attempt::delay).collect();
        assert_eq!(delays, [Duration::ZERO, Duration::from_millis(50)]);
    }

    /// `Duration::MAX` everywhere means "no limit", never a panic.
    #[tokio::test(start_paused = true)]
    async fn unbounded_durations_do_not_panic() {
        let inner = tower::service_fn(|_request: ConnectRequest| async {
            Err::<Observed<()>, _>(refused_for_encryption())
        });
        let policy = ConnectPolicy::new()
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

    /// A layer's own error that is not the connector's stops with `unknown`
    /// and keeps the error; an elapsed `tower::timeout` is a retried timeout.
    #[tokio::test(start_paused = true)]
    async fn errors_of_layers_in_between_are_classified() {
        let inner = tower::service_fn(|_request: ConnectRequest| async {
            Err::<Observed<()>, BoxError>("the buffer closed".into())
        });
        let policy = ConnectPolicy::new().without_memory();
        let error = Prelogin::new(inner, policy)
            .call(request())
            .await
            .expect_err("a layer failed");
        assert_eq!(error.cause(), Cause::Unknown);
        assert!(error.to_string().contains("the buffer closed"), "{error}");

        let slow = tower::service_fn(|_request: ConnectRequest| async {
            tokio::time::sleep(Duration::from_secs(60)).await;
            Ok::<_, AttemptError>(Observed::new((), None))
        });
        let timed = tower::ServiceBuilder::new()
            .timeout(Duration::from_secs(1))
            .service(slow);
        let policy = ConnectPolicy::new()
            .max_retries(1)
            .jitter(false)
            .budget(RetryBudget::fixed(10))
            .without_memory();
        let error = Prelogin::new(timed, policy)
            .call(request())
            .await
            .expect_err("every attempt times out");
        let causes: Vec<_> = error.attempts().iter().map(Attempt::cause).collect();
        assert_eq!(causes, [Some(Cause::Timeout), Some(Cause::Timeout)]);
        assert_eq!(error.stop_reason(), StopReason::RetriesExhausted);
    }
}

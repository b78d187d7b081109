//! Connection pools over the layered service: [`PoolConnector`] is a
//! `bb8::ManageConnection` (feature `bb8`) and a `deadpool::managed::Manager`
//! (feature `deadpool`).
//!
//! A pool must not retry what the layer already decided. Each connect the
//! pool asks for is one logical connect through the layer (upgrades, retries
//! within the shared [`RetryBudget`](crate::RetryBudget), the deadline); its
//! [`ConnectError`] reaches the caller of `get()` unchanged, inside
//! [`PoolConnectError::Connect`]:
//!
//! - deadpool creates connections inside `Pool::get`, so its error is
//!   `PoolError::Backend(PoolConnectError::Connect(..))` as soon as the
//!   layer stops. [`PoolConnector::deadpool_builder`] sets the tokio runtime
//!   and leaves the create timeout off (the layer's deadline bounds it).
//! - bb8 0.9 connects in a background task and only hands the error to its
//!   `ErrorSink`; `bb8::Pool::get` itself waits for its `connection_timeout`
//!   (30 s) and returns `TimedOut`, with the cause thrown away, and by
//!   default retries the connect until then. [`Bb8Pool`] turns retrying off
//!   (`retry_connection(false)`) and its [`get`](Bb8Pool::get) returns the
//!   layer's error as `RunError::User` as soon as a connect fails.
//!
//! # Health and broken connections
//!
//! The health check is `SELECT 1`, bounded by
//! [`health_check_timeout`](PoolConnector::health_check_timeout) (5 s): bb8
//! runs it on every checkout (`test_on_check_out`, its default), deadpool on
//! every recycle. A connection that fails it is dropped and the pool connects
//! a new one through the layer.
//!
//! bb8's cheap `has_broken` check (run when a connection goes back to the
//! pool) answers `false`: `tiberius::Client` exposes neither its stream nor
//! whether the last read failed, so a connection whose server went away is
//! found by the next health check, not before.

#[cfg(feature = "bb8")]
mod bb8;
#[cfg(feature = "deadpool")]
mod deadpool;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use tower::ServiceExt;
use tower_service::Service;

use crate::{Cause, ConnectError, ConnectRequest, Connected, TdsClient};

#[cfg(feature = "bb8")]
pub use self::bb8::Bb8Pool;

/// Default bound on one health check (`SELECT 1`): 5 s. A healthy server
/// answers in one round trip; a server that stalls must not hold a checkout.
const DEFAULT_HEALTH_CHECK_TIMEOUT: Duration = Duration::from_secs(5);

/// The layered service a pool connects through: [`Prelogin`](crate::Prelogin)
/// over a connector (`ServiceBuilder::new().layer(PreloginLayer::new(policy)).service(Connector::new())`),
/// or any service of the same shape. Every such service implements it; it
/// only names the bounds once.
pub trait LayeredConnect:
    Service<ConnectRequest, Response = Connected<TdsClient>, Error = ConnectError, Future: Send>
    + Clone
    + Send
    + Sync
    + 'static
{
}

impl<S> LayeredConnect for S where
    S: Service<ConnectRequest, Response = Connected<TdsClient>, Error = ConnectError, Future: Send>
        + Clone
        + Send
        + Sync
        + 'static
{
}

/// Where each connect's request comes from: the same request cloned, or a
/// fresh one per connect so tokens and passwords can rotate.
type RequestSource = Arc<dyn Fn() -> ConnectRequest + Send + Sync>;

/// Makes pooled connections through the layered service: one logical connect
/// (the layer's upgrades and retries included) per connection the pool asks
/// for, and a `SELECT 1` health check.
///
/// `S` is the layered service, for example
/// `ServiceBuilder::new().layer(PreloginLayer::new(policy)).service(Connector::new())`.
/// Every connect runs on a clone of it, so the retry budget and the endpoint
/// memory are shared by all the pool's connects.
pub struct PoolConnector<S> {
    service: S,
    request: RequestSource,
    health_check_timeout: Duration,
    #[cfg(feature = "bb8")]
    failures: tokio::sync::broadcast::Sender<PoolConnectError>,
}

impl<S> PoolConnector<S>
where
    S: LayeredConnect,
{
    /// A connector that clones `request` for every connect.
    pub fn new(service: S, request: ConnectRequest) -> Self {
        Self::from_source(service, Arc::new(move || request.clone()))
    }

    /// A connector that calls `make_request` for every connect, so a
    /// password or an access token can change between connects.
    pub fn with_fresh_request(
        service: S,
        make_request: impl Fn() -> ConnectRequest + Send + Sync + 'static,
    ) -> Self {
        Self::from_source(service, Arc::new(make_request))
    }

    fn from_source(service: S, request: RequestSource) -> Self {
        PoolConnector {
            service,
            request,
            health_check_timeout: DEFAULT_HEALTH_CHECK_TIMEOUT,
            #[cfg(feature = "bb8")]
            failures: tokio::sync::broadcast::channel(16).0,
        }
    }

    /// Bound on one health check. Default 5 s.
    pub fn health_check_timeout(mut self, timeout: Duration) -> Self {
        self.health_check_timeout = timeout;
        self
    }

    /// One logical connect through the layer.
    ///
    /// # Errors
    ///
    /// [`PoolConnectError::Connect`] with the layer's [`ConnectError`].
    pub async fn connect(&self) -> Result<TdsClient, PoolConnectError> {
        let request = (self.request)();
        match self.service.clone().oneshot(request).await {
            Ok(connected) => Ok(connected.into_client()),
            Err(error) => {
                let error = PoolConnectError::Connect(Arc::new(error));
                #[cfg(feature = "bb8")]
                {
                    // No receiver (no bb8 get waiting) is not an error.
                    let _ = self.failures.send(error.clone());
                }
                Err(error)
            }
        }
    }

    /// The health check: `SELECT 1`, read to the end, within the
    /// [`health_check_timeout`](Self::health_check_timeout).
    ///
    /// # Errors
    ///
    /// [`PoolConnectError::HealthCheck`] when the query fails, returns
    /// anything but one row holding 1, or does not finish in time.
    pub async fn check(&self, client: &mut TdsClient) -> Result<(), PoolConnectError> {
        let query = async {
            let rows = client
                .simple_query("SELECT 1")
                .await?
                .into_first_result()
                .await?;
            Ok::<_, tiberius::error::Error>(rows.len() == 1 && rows[0].get::<i32, _>(0) == Some(1))
        };
        match tokio::time::timeout(self.health_check_timeout, query).await {
            Ok(Ok(true)) => Ok(()),
            Ok(Ok(false)) => Err(PoolConnectError::HealthCheck(
                HealthCheckFailure::WrongAnswer,
            )),
            Ok(Err(error)) => Err(PoolConnectError::HealthCheck(HealthCheckFailure::Query(
                Arc::new(error),
            ))),
            Err(_) => Err(PoolConnectError::HealthCheck(HealthCheckFailure::TimedOut)),
        }
    }
}

impl<S> fmt::Debug for PoolConnector<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The request is behind a closure: nothing of it, credentials
        // included, can be printed.
        f.debug_struct("PoolConnector")
            .field("health_check_timeout", &self.health_check_timeout)
            .finish_non_exhaustive()
    }
}

/// Why a pool could not hand out a connection, as the pool's manager reports
/// it (`RunError::User` in bb8, `PoolError::Backend` in deadpool).
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum PoolConnectError {
    /// The layer stopped: its [`ConnectError`] with the cause, the attempts
    /// and the advice. Shared, because bb8 hands one failure to every get
    /// that waits for it.
    #[error(transparent)]
    Connect(Arc<ConnectError>),
    /// A pooled connection failed its health check (the pool drops it and
    /// connects another; callers of `get` do not see this one).
    #[error("pooled connection failed its health check: {0}")]
    HealthCheck(HealthCheckFailure),
}

impl PoolConnectError {
    /// The layer's error, when a connect failed.
    pub fn connect_error(&self) -> Option<&ConnectError> {
        match self {
            PoolConnectError::Connect(error) => Some(error),
            PoolConnectError::HealthCheck(_) => None,
        }
    }

    /// The cause the layer stopped on, when a connect failed.
    pub fn cause(&self) -> Option<Cause> {
        self.connect_error().map(ConnectError::cause)
    }
}

/// How a health check failed.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum HealthCheckFailure {
    /// `SELECT 1` failed (the connection is usually closed or reset).
    #[error("SELECT 1 failed: {0}")]
    Query(#[source] Arc<tiberius::error::Error>),
    /// `SELECT 1` did not answer one row holding 1.
    #[error("SELECT 1 did not return 1")]
    WrongAnswer,
    /// `SELECT 1` did not finish within the health check timeout.
    #[error("SELECT 1 did not finish within the health check timeout")]
    TimedOut,
}

//! [`Connector`]: one connection attempt, observed.
//!
//! Resolve and TCP-connect under the request's TCP timeout (TCP_NODELAY on,
//! as TDS is request/response), wrap the socket in an [`ObservedStream`], and
//! run `tiberius::Client::connect` under the request's handshake timeout.
//! Both timeouts end early at the connect's
//! [`deadline`](ConnectRequest::deadline) when the middleware set one.
//!
//! Nothing is spawned: the attempt is one future, so dropping it at any await
//! point drops the socket with it and leaks no task. A panic inside tiberius
//! (it has `debug_assert!`s on peer input) is caught with `catch_unwind` and
//! becomes [`AttemptFailure::Panic`].

use std::any::Any;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::Instant;

use futures_util::FutureExt;
use tokio::net::TcpStream;
use tokio_util::compat::{Compat, TokioAsyncWriteCompatExt};
use tower_service::Service;

use crate::error::{AttemptError, AttemptFailure, AttemptTimings};
use crate::request::ConnectRequest;
use crate::stream::{ObservedStream, SharedObserver};

/// The client a successful attempt returns: tiberius over the observed stream.
pub type TdsClient = tiberius::Client<Compat<ObservedStream>>;

/// A `tower::Service<ConnectRequest>` that makes exactly one attempt.
///
/// Use it under [`PreloginLayer`](crate::PreloginLayer); on its own it
/// neither retries nor upgrades. Always ready; cheap to clone.
#[derive(Debug, Clone, Copy, Default)]
pub struct Connector {
    _private: (),
}

impl Connector {
    /// A connector.
    pub fn new() -> Self {
        Connector { _private: () }
    }

    /// Makes one attempt (what `call` does, as an `async fn`).
    pub async fn connect(request: ConnectRequest) -> Result<TdsClient, AttemptError> {
        let encryption = request.encryption();
        let mut timings = AttemptTimings::default();

        let started = Instant::now();
        let address = (request.host().to_owned(), request.port());
        let tcp_until = until(started, request.tcp_connect_timeout(), request.deadline());
        let tcp = match tokio::time::timeout_at(tcp_until, TcpStream::connect(address)).await {
            Ok(Ok(tcp)) => tcp,
            Ok(Err(e)) => {
                return Err(AttemptError::new(
                    AttemptFailure::TcpConnect(e),
                    None,
                    encryption,
                    timings,
                ));
            }
            Err(_) => {
                return Err(AttemptError::new(
                    AttemptFailure::TcpConnectTimeout(tcp_until.duration_since(started)),
                    None,
                    encryption,
                    timings,
                ));
            }
        };
        timings.tcp_connect = Some(started.elapsed());
        // TDS is strictly request/response; Nagle would hold the last
        // segment of each handshake flight for a delayed ACK.
        let _ = tcp.set_nodelay(true);

        let observer = Arc::new(SharedObserver::new());
        let stream = ObservedStream::new(tcp, Arc::clone(&observer)).compat_write();
        let config = request.tiberius_config();

        let handshake_started = Instant::now();
        let handshake_until = until(
            handshake_started,
            request.handshake_timeout(),
            request.deadline(),
        );
        let handshake = AssertUnwindSafe(tiberius::Client::connect(config, stream)).catch_unwind();
        let outcome = tokio::time::timeout_at(handshake_until, handshake).await;
        timings.handshake = Some(handshake_started.elapsed());

        let failure = match outcome {
            Ok(Ok(Ok(client))) => {
                observer.mark_logged_in();
                // The client keeps the stream, so this is the last chance to
                // hand the middleware what was negotiated.
                request.report_observation(&observer.observation());
                return Ok(client);
            }
            Ok(Ok(Err(e))) => AttemptFailure::Tiberius(e),
            Ok(Err(panic)) => AttemptFailure::Panic(panic_message(panic.as_ref())),
            Err(_) => {
                AttemptFailure::HandshakeTimeout(handshake_until.duration_since(handshake_started))
            }
        };
        Err(AttemptError::new(
            failure,
            Some(observer.observation()),
            encryption,
            timings,
        ))
    }
}

/// When a step that started at `start` with its own `timeout` must end: the
/// earlier of the two bounds. `Duration::MAX` means "no own limit".
fn until(start: Instant, timeout: Duration, deadline: Option<Instant>) -> Instant {
    // Thirty years: what tokio itself uses for "never".
    const FAR: Duration = Duration::from_secs(86_400 * 365 * 30);
    let own = start
        .checked_add(timeout)
        .unwrap_or_else(|| start.checked_add(FAR).unwrap_or(start));
    deadline.map_or(own, |deadline| own.min(deadline))
}

fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_owned()
    }
}

impl Service<ConnectRequest> for Connector {
    type Response = TdsClient;
    type Error = AttemptError;
    type Future = AttemptFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: ConnectRequest) -> Self::Future {
        AttemptFuture {
            inner: Box::pin(Connector::connect(request)),
        }
    }
}

/// The future of one [`Connector`] attempt.
pub struct AttemptFuture {
    inner: Pin<Box<dyn Future<Output = Result<TdsClient, AttemptError>> + Send>>,
}

impl std::fmt::Debug for AttemptFuture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AttemptFuture").finish_non_exhaustive()
    }
}

impl Future for AttemptFuture {
    type Output = Result<TdsClient, AttemptError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.inner.as_mut().poll(cx)
    }
}

//! One attempt, observed: the [`Connector`] service and what it returns.
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

pub(crate) mod check;
mod error;
mod stream;

use std::any::Any;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::FutureExt;
use tds_handshake::Observation;
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_util::compat::{Compat, TokioAsyncWriteCompatExt};
use tower_service::Service;

use crate::request::ConnectRequest;

pub use error::{AttemptError, AttemptFailure, AttemptTimings, BoxError};
pub use stream::ObservedStream;
use stream::SharedObserver;

/// The client a successful attempt returns: tiberius over the observed stream.
pub type TdsClient = tiberius::Client<Compat<ObservedStream>>;

/// What a successful attempt returns: the client and what the handshake
/// observer saw (the offered and replied encryption, TLS facts).
///
/// A custom connector under [`Prelogin`](crate::Prelogin) returns this too;
/// `None` for the observation when it has none (the attempt's record then
/// lacks the wire facts).
#[derive(Debug)]
pub struct Observed<C> {
    client: C,
    observation: Option<Observation>,
}

impl<C> Observed<C> {
    /// A client with what its handshake showed.
    pub fn new(client: C, observation: Option<Observation>) -> Self {
        Observed {
            client,
            observation,
        }
    }

    /// The client.
    pub fn client(&self) -> &C {
        &self.client
    }

    /// What the observer saw, if anything.
    pub fn observation(&self) -> Option<&Observation> {
        self.observation.as_ref()
    }

    /// Takes both.
    pub fn into_parts(self) -> (C, Option<Observation>) {
        (self.client, self.observation)
    }
}

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
}

impl Service<ConnectRequest> for Connector {
    type Response = Observed<TdsClient>;
    type Error = AttemptError;
    type Future = Pin<Box<dyn Future<Output = Result<Observed<TdsClient>, AttemptError>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: ConnectRequest) -> Self::Future {
        Box::pin(attempt(request))
    }
}

async fn attempt(request: ConnectRequest) -> Result<Observed<TdsClient>, AttemptError> {
    let encryption = request.encryption();
    let fail = |failure, observation, tcp, handshake| {
        AttemptError::new(
            failure,
            observation,
            encryption,
            AttemptTimings::new(tcp, handshake),
        )
    };

    let started = Instant::now();
    let tcp_until = until(started, request.tcp_connect_timeout(), request.deadline());
    let address = (request.host(), request.port());
    let tcp = match tokio::time::timeout_at(tcp_until, TcpStream::connect(address)).await {
        Ok(Ok(tcp)) => tcp,
        Ok(Err(e)) => return Err(fail(AttemptFailure::TcpConnect(e), None, None, None)),
        Err(_) => {
            let waited = tcp_until.duration_since(started);
            return Err(fail(
                AttemptFailure::TcpConnectTimeout(waited),
                None,
                None,
                None,
            ));
        }
    };
    // One clock read ends the TCP phase and starts the handshake.
    let handshake_started = Instant::now();
    let tcp_time = Some(handshake_started.duration_since(started));
    // TDS is strictly request/response; Nagle would hold the last segment of
    // each handshake flight for a delayed ACK.
    let _ = tcp.set_nodelay(true);

    let observer = Arc::new(SharedObserver::default());
    let stream = ObservedStream::new(tcp, Arc::clone(&observer)).compat_write();
    let handshake_until = until(
        handshake_started,
        request.handshake_timeout(),
        request.deadline(),
    );
    let silence = request
        .silence_timeout()
        .map(|timeout| until(handshake_started, timeout, Some(handshake_until)));
    // The attempt owns its request: the configuration is moved, not copied.
    let config = request.into_tiberius_config();
    // tiberius's handshake future is large (tens of KiB). Boxed once here and
    // polled in place, it is copied once; held by value, every move (into
    // `catch_unwind`, into the bound, into this future's state and into the
    // box `Connector::call` returns) copied all of it, which cost more
    // instructions per connect than the rest of the middleware together.
    let mut handshake =
        Box::pin(AssertUnwindSafe(tiberius::Client::connect(config, stream)).catch_unwind());
    let outcome = bounded(handshake.as_mut(), handshake_until, silence, &observer).await;
    drop(handshake);
    let handshake_time = Some(handshake_started.elapsed());

    let failure = match outcome {
        Bounded::Done(Ok(Ok(client))) => {
            return Ok(Observed::new(client, Some(observer.finish())));
        }
        Bounded::Done(Ok(Err(e))) => AttemptFailure::Tiberius(e),
        Bounded::Done(Err(panic)) => AttemptFailure::Panic(panic_message(panic.as_ref())),
        Bounded::Silent(at) => AttemptFailure::Silent(at.duration_since(handshake_started)),
        Bounded::TimedOut => {
            AttemptFailure::HandshakeTimeout(handshake_until.duration_since(handshake_started))
        }
    };
    Err(fail(
        failure,
        Some(observer.observation()),
        tcp_time,
        handshake_time,
    ))
}

enum Bounded<T> {
    Done(T),
    Silent(Instant),
    TimedOut,
}

/// Runs `work` until `until`; if `silence` is set and the server has sent
/// nothing by then, ends it there (the caller drops the attempt with its
/// socket).
async fn bounded<F: Future + ?Sized>(
    mut work: Pin<&mut F>,
    until: Instant,
    silence: Option<Instant>,
    observer: &SharedObserver,
) -> Bounded<F::Output> {
    if let Some(silence) = silence.filter(|s| *s < until) {
        match tokio::time::timeout_at(silence, work.as_mut()).await {
            Ok(done) => return Bounded::Done(done),
            Err(_) if observer.server_bytes() == 0 => return Bounded::Silent(silence),
            // The server is talking, only slowly: the handshake bound decides.
            Err(_) => {}
        }
    }
    match tokio::time::timeout_at(until, work).await {
        Ok(done) => Bounded::Done(done),
        Err(_) => Bounded::TimedOut,
    }
}

/// When a step that started at `start` with its own `timeout` must end: the
/// earlier of the two bounds. `Duration::MAX` means "no own limit".
pub(crate) fn until(start: Instant, timeout: Duration, deadline: Option<Instant>) -> Instant {
    let own = start
        .checked_add(timeout)
        .unwrap_or_else(|| far_future(start));
    deadline.map_or(own, |deadline| own.min(deadline))
}

/// Thirty years from `start`: what tokio itself uses for "never".
pub(crate) fn far_future(start: Instant) -> Instant {
    const FAR: Duration = Duration::from_secs(86_400 * 365 * 30);
    start.checked_add(FAR).unwrap_or(start)
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

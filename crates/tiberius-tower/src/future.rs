//! [`ResponseFuture`]: the future returned by [`Prelogin`](crate::Prelogin).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use crate::error::ConnectError;
use crate::service::Connected;

type Boxed<C> = Pin<Box<dyn Future<Output = Result<Connected<C>, ConnectError>> + Send>>;

/// Resolves to the connected client with its attempt history, or to a
/// [`ConnectError`]. Dropping it cancels the connect at once: the attempt in
/// flight is dropped with its socket, and any backoff sleep ends.
pub struct ResponseFuture<C> {
    inner: Boxed<C>,
}

impl<C> ResponseFuture<C> {
    pub(crate) fn new(inner: Boxed<C>) -> Self {
        ResponseFuture { inner }
    }
}

impl<C> fmt::Debug for ResponseFuture<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl<C> Future for ResponseFuture<C> {
    type Output = Result<Connected<C>, ConnectError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.inner.as_mut().poll(cx)
    }
}

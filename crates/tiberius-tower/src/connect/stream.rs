//! The observing stream: a `TcpStream` that shows every byte it moves to the
//! handshake [`Observer`].
//!
//! Only bytes that actually moved are fed: the filled part of a read and the
//! `Ok(n)` prefix of a write, so the observation matches the wire, not what
//! tiberius meant to send. The observer sits behind a `std::sync::Mutex`
//! shared with the connector (which reads the observation when the attempt
//! ends); each poll holds the lock only to feed one buffer. Once the
//! observer turns passive (after login it only counts bytes, which nobody
//! here needs), an `AtomicBool` skips the lock: one branch per poll.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};

use tds_handshake::{Direction, Observation, Observer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// An observer shared between the stream and whoever reads the observation.
#[derive(Debug, Default)]
pub(crate) struct SharedObserver {
    passive: AtomicBool,
    state: Mutex<State>,
}

/// The observer while the handshake runs; nothing once the login is done and
/// the connector took the observation, so an open connection does not keep
/// the observer (its reassembly buffers are about 4 KiB) for its whole life.
#[derive(Debug)]
enum State {
    Watching(Box<Observer>),
    Released,
}

impl Default for State {
    fn default() -> Self {
        State::Watching(Box::default())
    }
}

impl SharedObserver {
    /// A copy of the observation so far (the empty observation once
    /// [`finish`](Self::finish) took it).
    pub(crate) fn observation(&self) -> Observation {
        match &*self.lock() {
            State::Watching(observer) => *observer.observation(),
            State::Released => Observation::default(),
        }
    }

    /// Tells the observer the login succeeded and hands over its final
    /// observation; the observer is dropped and nothing is fed from here on.
    pub(crate) fn finish(&self) -> Observation {
        self.passive.store(true, Ordering::Release);
        match std::mem::replace(&mut *self.lock(), State::Released) {
            State::Watching(mut observer) => {
                observer.mark_logged_in();
                *observer.observation()
            }
            State::Released => Observation::default(),
        }
    }

    /// Bytes the server has sent so far.
    pub(crate) fn server_bytes(&self) -> u64 {
        self.observation().server_bytes
    }

    /// True once feeding stopped.
    fn is_passive(&self) -> bool {
        self.passive.load(Ordering::Acquire)
    }

    fn feed(&self, direction: Direction, bytes: &[u8]) {
        if bytes.is_empty() || self.is_passive() {
            return;
        }
        if let State::Watching(observer) = &mut *self.lock() {
            observer.feed(direction, bytes);
            if observer.is_passive() {
                self.passive.store(true, Ordering::Release);
            }
        }
    }

    fn eof(&self, direction: Direction) {
        if self.is_passive() {
            return;
        }
        if let State::Watching(observer) = &mut *self.lock() {
            observer.eof(direction);
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // The observer never panics on input (tds-handshake's contract); if
        // it ever did, its state is still a valid observation to report.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The TCP stream under a [`TdsClient`](crate::TdsClient): it showed every
/// handshake byte to the observer, and after login it only passes bytes on
/// (one atomic load per poll).
#[derive(Debug)]
pub struct ObservedStream {
    inner: TcpStream,
    observer: Arc<SharedObserver>,
}

impl ObservedStream {
    /// Wraps `inner`; bytes are reported to `observer`.
    pub(crate) fn new(inner: TcpStream, observer: Arc<SharedObserver>) -> Self {
        ObservedStream { inner, observer }
    }

    /// The underlying TCP stream.
    pub fn get_ref(&self) -> &TcpStream {
        &self.inner
    }
}

impl AsyncRead for ObservedStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let had_room = buf.remaining() > 0;
        let result = Pin::new(&mut this.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = &result
            && !this.observer.is_passive()
        {
            let filled = &buf.filled()[before..];
            if filled.is_empty() {
                // Zero bytes into a buffer with room is an orderly close.
                if had_room {
                    this.observer.eof(Direction::ServerToClient);
                }
            } else {
                this.observer.feed(Direction::ServerToClient, filled);
            }
        }
        result
    }
}

impl AsyncWrite for ObservedStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = &result
            && !this.observer.is_passive()
        {
            let written = buf.get(..*n).unwrap_or(buf);
            this.observer.feed(Direction::ClientToServer, written);
        }
        result
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(written)) = &result
            && !this.observer.is_passive()
        {
            let mut n = *written;
            // Feed exactly the prefix that was written, slice by slice.
            for slice in bufs {
                if n == 0 {
                    break;
                }
                let take = n.min(slice.len());
                this.observer
                    .feed(Direction::ClientToServer, &slice[..take]);
                n -= take;
            }
        }
        result
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

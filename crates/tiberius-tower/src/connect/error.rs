//! What one attempt reports when it fails: [`AttemptError`].

use std::fmt;
use std::io;
use std::time::Duration;

use tds_handshake::{Observation, Phase};

use crate::level::EncryptionLevel;

/// An error from a tower layer placed between [`PreloginLayer`](crate::PreloginLayer)
/// and the [`Connector`](crate::Connector).
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// What went wrong in one attempt, before classification.
#[derive(Debug)]
#[non_exhaustive]
pub enum AttemptFailure {
    /// DNS resolution or the TCP connect failed.
    TcpConnect(io::Error),
    /// DNS resolution plus TCP connect did not finish in time.
    TcpConnectTimeout(Duration),
    /// The server sent no byte within this long after a TLS-first (Strict)
    /// ClientHello (see [`ConnectRequest::silence_timeout`](crate::ConnectRequest::silence_timeout)).
    Silent(Duration),
    /// The TDS handshake (PRELOGIN, TLS, LOGIN7) did not finish in time.
    HandshakeTimeout(Duration),
    /// tiberius returned an error during the handshake.
    Tiberius(tiberius::error::Error),
    /// tiberius panicked during the handshake; the panic was caught. The
    /// payload is kept only when it is a string.
    Panic(String),
    /// A layer between the middleware and the connector failed the attempt
    /// (a `tower::timeout::Timeout` that elapsed, a `Buffer` that closed...).
    Layer(BoxError),
}

impl AttemptFailure {
    /// The tiberius error, if this failure is one.
    pub fn tiberius_error(&self) -> Option<&tiberius::error::Error> {
        match self {
            AttemptFailure::Tiberius(e) => Some(e),
            _ => None,
        }
    }

    /// The failure was a timeout of a tower layer (`tower::timeout::Timeout`).
    pub(crate) fn is_layer_timeout(&self) -> bool {
        matches!(self, AttemptFailure::Layer(e) if e.is::<tower::timeout::error::Elapsed>())
    }
}

impl fmt::Display for AttemptFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AttemptFailure::TcpConnect(e) => write!(f, "TCP connect failed: {e}"),
            AttemptFailure::TcpConnectTimeout(d) => {
                write!(f, "TCP connect did not complete within {d:?}")
            }
            AttemptFailure::Silent(d) => write!(
                f,
                "the server sent nothing within {d:?} after a TLS-first (TDS 8.0) ClientHello"
            ),
            AttemptFailure::HandshakeTimeout(d) => {
                write!(f, "TDS handshake did not complete within {d:?}")
            }
            AttemptFailure::Tiberius(e) => write!(f, "tiberius: {e}"),
            AttemptFailure::Panic(msg) => write!(f, "tiberius panicked: {msg}"),
            AttemptFailure::Layer(e) => write!(f, "a layer under the middleware failed: {e}"),
        }
    }
}

impl std::error::Error for AttemptFailure {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            AttemptFailure::TcpConnect(e) => Some(e),
            AttemptFailure::Tiberius(e) => Some(e),
            AttemptFailure::Layer(e) => Some(e.as_ref()),
            _ => None,
        }
    }
}

/// Time spent in each part of one attempt.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AttemptTimings {
    tcp_connect: Option<Duration>,
    handshake: Option<Duration>,
}

impl AttemptTimings {
    /// Timings of an attempt: DNS + TCP connect (None when it never
    /// finished) and the TDS handshake (None when it never started).
    pub fn new(tcp_connect: Option<Duration>, handshake: Option<Duration>) -> Self {
        AttemptTimings {
            tcp_connect,
            handshake,
        }
    }

    /// DNS + TCP connect, when it finished.
    pub fn tcp_connect(&self) -> Option<Duration> {
        self.tcp_connect
    }

    /// The TDS handshake, when it started.
    pub fn handshake(&self) -> Option<Duration> {
        self.handshake
    }
}

/// The failure of one attempt by the [`Connector`](crate::Connector): what
/// failed, what the observer saw on the wire, and how long each part took.
#[derive(Debug)]
pub struct AttemptError {
    failure: AttemptFailure,
    observation: Option<Observation>,
    encryption: EncryptionLevel,
    timings: AttemptTimings,
}

impl AttemptError {
    /// Assembles an attempt error (public so custom connectors can produce one).
    pub fn new(
        failure: AttemptFailure,
        observation: Option<Observation>,
        encryption: EncryptionLevel,
        timings: AttemptTimings,
    ) -> Self {
        AttemptError {
            failure,
            observation,
            encryption,
            timings,
        }
    }

    /// What failed.
    pub fn failure(&self) -> &AttemptFailure {
        &self.failure
    }

    /// What the observer saw; None when TCP never connected.
    pub fn observation(&self) -> Option<&Observation> {
        self.observation.as_ref()
    }

    /// The furthest handshake phase reached; None when TCP never connected.
    pub fn phase(&self) -> Option<Phase> {
        self.observation.as_ref().map(|o| o.phase)
    }

    /// The encryption level this attempt asked tiberius for.
    pub fn encryption(&self) -> EncryptionLevel {
        self.encryption
    }

    /// Time spent in each part of the attempt.
    pub fn timings(&self) -> AttemptTimings {
        self.timings
    }
}

impl fmt::Display for AttemptError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "connection attempt at encryption {} failed: {}",
            self.encryption, self.failure
        )
    }
}

impl std::error::Error for AttemptError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.failure)
    }
}

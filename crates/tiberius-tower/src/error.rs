//! [`ConnectError`]: how a logical connect failed, and what to change.

use std::fmt;

use tds_handshake::Observation;

use crate::cause::Cause;
use crate::connect::{AttemptError, AttemptFailure};
use crate::level::EncryptionLevel;
use crate::policy::{Attempt, StopReason};

/// The final failure of a logical connect through [`Prelogin`](crate::Prelogin).
///
/// `Display` says what happened and what to change; it never contains a
/// password or token (tiberius's messages don't carry them and this crate
/// never formats a connection string).
#[derive(Debug)]
#[non_exhaustive]
pub struct ConnectError {
    cause: Cause,
    stop: StopReason,
    attempts: Vec<Attempt>,
    last: Option<AttemptError>,
    ceiling: EncryptionLevel,
}

impl ConnectError {
    pub(crate) fn new(
        cause: Cause,
        stop: StopReason,
        attempts: Vec<Attempt>,
        last: Option<AttemptError>,
        ceiling: EncryptionLevel,
    ) -> Self {
        ConnectError {
            cause,
            stop,
            attempts,
            last,
            ceiling,
        }
    }

    /// The cause of the last failed attempt (for a failed Strict probe, the
    /// cause of the attempt that triggered it).
    pub fn cause(&self) -> Cause {
        self.cause
    }

    /// Why the policy stopped.
    pub fn stop_reason(&self) -> StopReason {
        self.stop
    }

    /// Every attempt, in order.
    pub fn attempts(&self) -> &[Attempt] {
        &self.attempts
    }

    /// What the observer saw during the last attempt (None if TCP never connected).
    pub fn observation(&self) -> Option<&Observation> {
        self.last.as_ref().and_then(AttemptError::observation)
    }

    /// The last attempt's error.
    pub fn last_attempt(&self) -> Option<&AttemptError> {
        self.last.as_ref()
    }

    /// The tiberius error of the last attempt, if it was one.
    pub fn tiberius_error(&self) -> Option<&tiberius::error::Error> {
        self.last
            .as_ref()
            .and_then(|e| e.failure().tiberius_error())
    }

    /// True when any attempt died the way SQL Server error 10054 reports:
    /// the server reset or closed the connection during the pre-login
    /// handshake (before LOGIN7 was sent).
    pub fn saw_10054_signature(&self) -> bool {
        self.attempts.iter().any(Attempt::reset_during_prelogin)
    }

    /// True when retries stopped because the shared retry budget was empty.
    pub(crate) fn budget_exhausted(&self) -> bool {
        self.stop == StopReason::BudgetExhausted
    }

    fn advice(&self) -> String {
        let last_level = self
            .attempts
            .last()
            .map(|a| a.encryption)
            .unwrap_or(EncryptionLevel::NotSupported);
        if self.stop == StopReason::BudgetExhausted {
            // Not "retries did not help": this connect may not have retried at all.
            return format!(
                "the last attempt failed with {} and the retry budget shared by every clone of \
                 this service stayed empty: neither a login nor the steady allowance paid for a \
                 retry before the deadline. Many connects are failing \
                 at once; check that the server is up and its error log and listener load \
                 (ConnectPolicy::budget and ConnectPolicy::deadline size the wait)",
                self.cause
            );
        }
        if self.stop == StopReason::DeadlineExceeded
            && (self.cause.is_upgrade() || self.cause == Cause::Routing)
        {
            return format!(
                "the connect's deadline passed before the next step could start (the server \
                 answered {}, which an upgrade or a redirect follows): raise ConnectPolicy::deadline, \
                 or lower the per-attempt TCP and handshake timeouts",
                self.cause
            );
        }
        match self.cause {
            Cause::EncryptionRequired => format!(
                "the server requires encryption but the client offered none: set encrypt=true \
                 (Required), or raise the policy ceiling (now {}) so the upgrade is allowed",
                self.ceiling
            ),
            Cause::StrictRequired => format!(
                "the server requires TDS 8.0 strict encryption: set encrypt=strict, or raise \
                 the policy ceiling (now {}) to strict",
                self.ceiling
            ),
            Cause::StrictUnsupported => "the client is configured for TDS 8.0 strict \
                 encryption, but the server does not speak it: it stayed silent after the \
                 TLS-first ClientHello and answered a plain PRELOGIN. TDS 8.0 needs SQL Server \
                 2022 or later, or Azure SQL; against this server set Encrypt=true (Required, \
                 SqlClient's Encrypt=mandatory); this library never goes below the configured \
                 level"
                .to_owned(),
            Cause::EncryptionUnavailable => "the server does not offer encryption but the client \
                 requires it: enable a certificate on the server (Force Encryption or a \
                 provisioned certificate); this library never downgrades"
                .to_owned(),
            Cause::TlsVersionMismatch => "server and client share no TLS version: enable TLS 1.2 \
                 on the server (KB3135244 lists the updates for SQL Server 2008-2014) or in the \
                 client's TLS settings"
                .to_owned(),
            Cause::TlsHandshakeRejected => {
                if last_level == EncryptionLevel::Strict {
                    "the server refused the TLS handshake: it may not support TDS 8.0 strict \
                     encryption (SQL Server 2022+ only), share no cipher suite, or use a \
                     certificate signed with a weak hash; check the server's Schannel events"
                        .to_owned()
                } else {
                    "the server refused the TLS handshake (no common cipher suite, a weak \
                     certificate hash, or TLS disabled): check the server's Schannel events \
                     (36874, 36888) and enable TLS 1.2 cipher suites on both sides"
                        .to_owned()
                }
            }
            Cause::CertificateUntrusted => "certificate not trusted: install the server's CA \
                 (trust_cert_ca / TrustServerCertificateCA), or set TrustServerCertificate \
                 only if you accept the risk; this library never changes trust settings"
                .to_owned(),
            Cause::TransientReset => "the server reset or closed the connection; retries did \
                 not help: check the server's error log and listener load, or a firewall \
                 between client and server"
                .to_owned(),
            Cause::Timeout => "the server did not answer in time: check that the address points \
                 at SQL Server, and if the client uses encrypt=strict, that the server supports \
                 TDS 8.0"
                .to_owned(),
            Cause::ConnectionRefused => "nothing accepts connections at this address: check \
                 host and port, that SQL Server runs and listens on TCP"
                .to_owned(),
            Cause::ServerTransient => "the server reported a transient error and retries did \
                 not outlast it: try again later or raise the policy deadline"
                .to_owned(),
            Cause::LoginFailed => {
                "login failed: check the user name, password and database permissions".to_owned()
            }
            Cause::ServerError => "the server rejected the login with an error: see the server \
                 message below"
                .to_owned(),
            Cause::Routing => "the server kept redirecting the connection: raise the redirect \
                 limit or connect to the final address directly"
                .to_owned(),
            Cause::ProtocolViolation => "the server's bytes are not valid TDS/TLS: check that \
                 the address points at SQL Server and no proxy rewrites the stream"
                .to_owned(),
            Cause::BackendPanic => "the driver panicked during the handshake (a bug, caught \
                 here): please report it with the attempt details"
                .to_owned(),
            _ => {
                "the connection failed for an unrecognised reason: see the source error".to_owned()
            }
        }
    }
}

impl fmt::Display for ConnectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.attempts.len();
        write!(
            f,
            "could not connect ({}, after {} attempt{}, {}): {}",
            self.cause,
            n,
            if n == 1 { "" } else { "s" },
            self.stop.as_str().replace('_', " "),
            self.advice()
        )?;
        if let Some(last) = &self.last {
            write!(f, " [last error: {}]", last.failure())?;
        }
        Ok(())
    }
}

impl std::error::Error for ConnectError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self.last.as_ref().map(AttemptError::failure) {
            Some(AttemptFailure::Tiberius(e)) => Some(e),
            Some(AttemptFailure::TcpConnect(e)) => Some(e),
            Some(other) => Some(other),
            None => None,
        }
    }
}

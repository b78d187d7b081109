//! Why an attempt failed: the vocabulary shared by errors, spans and metrics.
//!
//! Every cause has a stable snake_case name ([`Cause::as_str`]); the names are
//! defined once, as the constants in [`names`], so telemetry and error text can
//! never drift apart.

use std::fmt;

/// Stable snake_case names of the causes, defined once.
///
/// These are part of the public contract: dashboards and alerts key on them.
pub mod names {
    /// See [`Cause::EncryptionRequired`](super::Cause::EncryptionRequired).
    pub const ENCRYPTION_REQUIRED: &str = "encryption_required";
    /// See [`Cause::StrictRequired`](super::Cause::StrictRequired).
    pub const STRICT_REQUIRED: &str = "strict_required";
    /// See [`Cause::EncryptionUnavailable`](super::Cause::EncryptionUnavailable).
    pub const ENCRYPTION_UNAVAILABLE: &str = "encryption_unavailable";
    /// See [`Cause::TlsVersionMismatch`](super::Cause::TlsVersionMismatch).
    pub const TLS_VERSION_MISMATCH: &str = "tls_version_mismatch";
    /// See [`Cause::TlsHandshakeRejected`](super::Cause::TlsHandshakeRejected).
    pub const TLS_HANDSHAKE_REJECTED: &str = "tls_handshake_rejected";
    /// See [`Cause::CertificateUntrusted`](super::Cause::CertificateUntrusted).
    pub const CERTIFICATE_UNTRUSTED: &str = "certificate_untrusted";
    /// See [`Cause::TransientReset`](super::Cause::TransientReset).
    pub const TRANSIENT_RESET: &str = "transient_reset";
    /// See [`Cause::Timeout`](super::Cause::Timeout).
    pub const TIMEOUT: &str = "timeout";
    /// See [`Cause::ConnectionRefused`](super::Cause::ConnectionRefused).
    pub const CONNECTION_REFUSED: &str = "connection_refused";
    /// See [`Cause::ServerTransient`](super::Cause::ServerTransient).
    pub const SERVER_TRANSIENT: &str = "server_transient";
    /// See [`Cause::LoginFailed`](super::Cause::LoginFailed).
    pub const LOGIN_FAILED: &str = "login_failed";
    /// See [`Cause::ServerError`](super::Cause::ServerError).
    pub const SERVER_ERROR: &str = "server_error";
    /// See [`Cause::Routing`](super::Cause::Routing).
    pub const ROUTING: &str = "routing";
    /// See [`Cause::ProtocolViolation`](super::Cause::ProtocolViolation).
    pub const PROTOCOL_VIOLATION: &str = "protocol_violation";
    /// See [`Cause::BackendPanic`](super::Cause::BackendPanic).
    pub const BACKEND_PANIC: &str = "backend_panic";
    /// See [`Cause::Unknown`](super::Cause::Unknown).
    pub const UNKNOWN: &str = "unknown";
}

/// The cause of a failed connection attempt, as decided by [`classify`](crate::classify()).
///
/// The variants follow the design's cause table (design §1, §2.3). Each one
/// implies a response: upgrade, retry, redirect, or stop with advice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Cause {
    /// The client offered less encryption than the server requires (Force
    /// Encryption): the server's PRELOGIN reply said REQ/ON and it then closed.
    /// Response: upgrade to Required at once.
    EncryptionRequired,
    /// The server accepts only TDS 8.0 strict connections. Only assigned after
    /// a Strict probe got through (design §2.3). Response: upgrade to Strict.
    StrictRequired,
    /// The client requires encryption but the server offers none (reply
    /// NOT_SUP or OFF). Response: stop; this library never downgrades.
    EncryptionUnavailable,
    /// Client and server share no TLS version (alert 70, or a ServerHello for
    /// a version the client refuses). Response: stop; enable TLS 1.2.
    TlsVersionMismatch,
    /// The TLS handshake was refused (alert 40/71/other, or a reset right
    /// after the ClientHello with no ServerHello). Response: stop.
    TlsHandshakeRejected,
    /// The client's TLS stack does not trust the server certificate.
    /// Response: stop; trust settings are never changed by this library.
    CertificateUntrusted,
    /// A reset or EOF with nothing that explains it. Response: retry with
    /// backoff and jitter, within the budget.
    TransientReset,
    /// TCP connect, handshake or overall deadline elapsed. Response: retry
    /// while the deadline allows.
    Timeout,
    /// Nothing listens on the address (TCP RST to the SYN). Response: retry a
    /// few times (failovers briefly refuse), then stop.
    ConnectionRefused,
    /// A server ERROR token with a number known to be transient (40613,
    /// 40501, 4060, ...). Response: retry with a longer first delay.
    ServerTransient,
    /// Error 18456. Response: stop; fix the credentials.
    LoginFailed,
    /// Any other server ERROR token. Response: stop.
    ServerError,
    /// The server redirected the client (ENVCHANGE routing). Response: follow
    /// it, a bounded number of times.
    Routing,
    /// The server sent bytes that are not TDS or TLS where they should be.
    /// Response: stop.
    ProtocolViolation,
    /// The driver panicked during the handshake; the panic was caught.
    /// Response: stop.
    BackendPanic,
    /// Nothing above fits. Response: stop.
    Unknown,
}

impl Cause {
    /// Every cause, in declaration order.
    pub const ALL: [Cause; 16] = [
        Cause::EncryptionRequired,
        Cause::StrictRequired,
        Cause::EncryptionUnavailable,
        Cause::TlsVersionMismatch,
        Cause::TlsHandshakeRejected,
        Cause::CertificateUntrusted,
        Cause::TransientReset,
        Cause::Timeout,
        Cause::ConnectionRefused,
        Cause::ServerTransient,
        Cause::LoginFailed,
        Cause::ServerError,
        Cause::Routing,
        Cause::ProtocolViolation,
        Cause::BackendPanic,
        Cause::Unknown,
    ];

    /// The stable snake_case name used in errors, spans and metrics.
    pub const fn as_str(self) -> &'static str {
        match self {
            Cause::EncryptionRequired => names::ENCRYPTION_REQUIRED,
            Cause::StrictRequired => names::STRICT_REQUIRED,
            Cause::EncryptionUnavailable => names::ENCRYPTION_UNAVAILABLE,
            Cause::TlsVersionMismatch => names::TLS_VERSION_MISMATCH,
            Cause::TlsHandshakeRejected => names::TLS_HANDSHAKE_REJECTED,
            Cause::CertificateUntrusted => names::CERTIFICATE_UNTRUSTED,
            Cause::TransientReset => names::TRANSIENT_RESET,
            Cause::Timeout => names::TIMEOUT,
            Cause::ConnectionRefused => names::CONNECTION_REFUSED,
            Cause::ServerTransient => names::SERVER_TRANSIENT,
            Cause::LoginFailed => names::LOGIN_FAILED,
            Cause::ServerError => names::SERVER_ERROR,
            Cause::Routing => names::ROUTING,
            Cause::ProtocolViolation => names::PROTOCOL_VIOLATION,
            Cause::BackendPanic => names::BACKEND_PANIC,
            Cause::Unknown => names::UNKNOWN,
        }
    }

    /// Looks a cause up by its stable name.
    pub fn from_name(name: &str) -> Option<Cause> {
        Cause::ALL.into_iter().find(|c| c.as_str() == name)
    }

    /// True for causes that a later attempt of the same request may not hit:
    /// the policy retries these with backoff.
    pub const fn is_transient(self) -> bool {
        matches!(
            self,
            Cause::TransientReset
                | Cause::Timeout
                | Cause::ConnectionRefused
                | Cause::ServerTransient
        )
    }

    /// True for causes an encryption upgrade answers.
    pub const fn is_upgrade(self) -> bool {
        matches!(self, Cause::EncryptionRequired | Cause::StrictRequired)
    }

    /// True for causes that repeat on every attempt until someone changes a
    /// setting: the policy stops at once.
    pub const fn is_deterministic(self) -> bool {
        !self.is_transient() && !self.is_upgrade() && !matches!(self, Cause::Routing)
    }
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_snake_case_and_round_trip() {
        let mut seen = std::collections::HashSet::new();
        for cause in Cause::ALL {
            let name = cause.as_str();
            assert!(seen.insert(name), "duplicate name {name}");
            assert!(name.chars().all(|c| c.is_ascii_lowercase() || c == '_'));
            assert_eq!(Cause::from_name(name), Some(cause));
            assert_eq!(cause.to_string(), name);
        }
        assert_eq!(Cause::from_name("nope"), None);
    }

    #[test]
    fn every_cause_has_exactly_one_response_kind() {
        for cause in Cause::ALL {
            let kinds = [
                cause.is_transient(),
                cause.is_upgrade(),
                cause.is_deterministic(),
                cause == Cause::Routing,
            ];
            assert_eq!(kinds.iter().filter(|k| **k).count(), 1, "{cause}");
        }
    }
}

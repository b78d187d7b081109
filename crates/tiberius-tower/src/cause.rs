//! Why an attempt failed: the vocabulary shared by errors, spans and metrics.
//!
//! Every cause has a stable snake_case name ([`Cause::as_str`]), written once,
//! in `as_str`, so telemetry and error text can never drift apart. The names
//! are part of the public contract: dashboards and alerts key on them.

use std::fmt;

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
    /// The client is configured for TDS 8.0 strict, but the server does not
    /// speak it: it stayed silent after the TLS-first ClientHello (SQL Server
    /// 2019 and older do) while it answered a plaintext PRELOGIN. Response:
    /// stop; never below the configured level.
    StrictUnsupported,
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
    pub const ALL: [Cause; 17] = [
        Cause::EncryptionRequired,
        Cause::StrictRequired,
        Cause::StrictUnsupported,
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
            Cause::EncryptionRequired => "encryption_required",
            Cause::StrictRequired => "strict_required",
            Cause::StrictUnsupported => "strict_unsupported",
            Cause::EncryptionUnavailable => "encryption_unavailable",
            Cause::TlsVersionMismatch => "tls_version_mismatch",
            Cause::TlsHandshakeRejected => "tls_handshake_rejected",
            Cause::CertificateUntrusted => "certificate_untrusted",
            Cause::TransientReset => "transient_reset",
            Cause::Timeout => "timeout",
            Cause::ConnectionRefused => "connection_refused",
            Cause::ServerTransient => "server_transient",
            Cause::LoginFailed => "login_failed",
            Cause::ServerError => "server_error",
            Cause::Routing => "routing",
            Cause::ProtocolViolation => "protocol_violation",
            Cause::BackendPanic => "backend_panic",
            Cause::Unknown => "unknown",
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

//! What tiberius and rustls say in words: the text matchers, isolated here
//! because they are the part of classification a dependency upgrade can break
//! (the tests in `mod.rs` pin each message shape seen in tds-handshake.md §7.3).

use std::io::ErrorKind;

use crate::cause::Cause;
use crate::connect::AttemptFailure;

pub(super) fn error_text(error: &tiberius::error::Error) -> String {
    use tiberius::error::Error as TdsError;
    match error {
        TdsError::Io { message, .. } => message.clone(),
        TdsError::Tls(message) => message.clone(),
        TdsError::Protocol(message) => message.to_string(),
        other => other.to_string(),
    }
}

pub(super) fn is_reset_or_eof(failure: &AttemptFailure) -> bool {
    match failure {
        AttemptFailure::Tiberius(tiberius::error::Error::Io { kind, message }) => {
            matches!(
                kind,
                ErrorKind::ConnectionReset
                    | ErrorKind::ConnectionAborted
                    | ErrorKind::UnexpectedEof
                    | ErrorKind::BrokenPipe
            ) && !wraps_protocol_error(message)
        }
        _ => false,
    }
}

/// tiberius reports any error of its packet reader as `BrokenPipe` with the
/// inner error's text (`Connection::poll_read`), and rustls's corrupt-record
/// error arrives as `BrokenPipe` too: those are the server's bytes being
/// wrong, not the connection being closed.
pub(super) fn wraps_protocol_error(message: &str) -> bool {
    message.contains("corrupt message") || message.contains("Protocol error")
}

pub(super) fn is_certificate_rejection(message: &str) -> bool {
    // rustls' renderings of certificate validation failures, plus tiberius's
    // remediation wrapper ("the server's certificate was rejected").
    const MARKERS: [&str; 8] = [
        "invalid peer certificate",
        "certificate was rejected",
        "UnknownIssuer",
        "unknown issuer",
        "NotValidForName",
        "BadSignature",
        "certificate expired",
        "Expired",
    ];
    MARKERS.iter().any(|m| message.contains(m))
}

pub(super) fn is_version_incompatibility(message: &str) -> bool {
    message.contains("ServerDoesNotSupportTls12Or13")
        || message.contains("peer is incompatible")
        || message.contains("PeerIncompatible")
        || message.contains("unsupported protocol version")
}

/// rustls reports a received alert as "received fatal alert: <Name>".
pub(super) fn alert_in_text(message: &str) -> Option<Cause> {
    let (_, name) = message.split_once("received fatal alert: ")?;
    let name = name.split(|c: char| !c.is_ascii_alphanumeric()).next()?;
    Some(match name {
        "ProtocolVersion" => Cause::TlsVersionMismatch,
        _ => Cause::TlsHandshakeRejected,
    })
}

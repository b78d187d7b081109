//! `classify`: from what the wire showed and what tiberius said, to a [`Cause`].
//!
//! A pure function, table-tested below. The wire observation comes first
//! where it is decisive (an encryption mismatch looks like a plain reset to
//! tiberius, design §1); tiberius's error decides the rest, using the error
//! shapes recorded in tds-handshake.md §7.3.

mod text;
mod transient;

use std::io::ErrorKind;

use tds_handshake::{Direction, Encryption, Observation, ParseStopReason, Phase};

use crate::cause::Cause;
use crate::connect::AttemptFailure;

use text::{
    alert_in_text, error_text, is_certificate_rejection, is_reset_or_eof,
    is_version_incompatibility, wraps_protocol_error,
};
pub(crate) use transient::TransientNumbers;
use transient::server_cause;

/// The cause and the facts the policy needs beyond it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Verdict {
    /// The cause.
    pub(crate) cause: Cause,
    /// The server reset or closed with no byte of reply right after a
    /// plaintext PRELOGIN: a strict-only server or a blip (design §2.3). The
    /// cause is [`Cause::TransientReset`]; the policy may probe Strict.
    pub(crate) strict_probe_candidate: bool,
    /// The server stayed silent after a TLS-first ClientHello: a server
    /// without TDS 8.0 or a stall. The cause is [`Cause::Timeout`]; the
    /// policy tells the two apart with a plaintext PRELOGIN.
    pub(crate) silent_after_tls_first: bool,
    /// The server reset or closed before LOGIN7 was sent (the 10054 shape).
    pub(crate) reset_during_prelogin: bool,
    /// The cause is [`Cause::TlsHandshakeRejected`] read from a close right
    /// after the ClientHello with no alert and no ServerHello. A blip right
    /// after the PRELOGIN reply looks the same from the client, so the
    /// policy confirms it with one more attempt before stopping.
    pub(crate) unconfirmed_rejection: bool,
    /// The server answered with TLS (a ServerHello or an alert) or the
    /// handshake went past TLS: for the Strict probe, "it got through".
    pub(crate) server_spoke_tls: bool,
}

/// Classifies a failed attempt: what the observer saw on the wire and what
/// failed, to a [`Cause`]. A pure function; the policy acts on its answer.
///
/// Server error numbers are read with the default transient set (the
/// policy's own set, which a user may extend, decides inside the middleware).
pub fn classify(observation: &Observation, failure: &AttemptFailure) -> Cause {
    verdict(observation, failure, &TransientNumbers::new()).cause
}

/// Classifies a failed attempt: the cause plus the facts the plan needs.
pub(crate) fn verdict(
    observation: &Observation,
    failure: &AttemptFailure,
    transient: &TransientNumbers,
) -> Verdict {
    let closed = is_reset_or_eof(failure);
    let before_login = observation.phase < Phase::LoginSent;
    let cause = cause_of(observation, failure, transient);
    let no_reply_after_plaintext_prelogin = closed
        && observation.started_with_tls == Some(false)
        && observation.client_prelogin.is_some()
        && observation.server_prelogin.is_none()
        && observation.server_bytes == 0;
    let timed_out = matches!(
        failure,
        AttemptFailure::Silent(_) | AttemptFailure::HandshakeTimeout(_)
    );
    Verdict {
        cause,
        strict_probe_candidate: cause == Cause::TransientReset && no_reply_after_plaintext_prelogin,
        silent_after_tls_first: cause == Cause::Timeout
            && timed_out
            && observation.started_with_tls == Some(true)
            && observation.server_bytes == 0,
        reset_during_prelogin: closed && before_login && observation.client_bytes > 0,
        unconfirmed_rejection: cause == Cause::TlsHandshakeRejected
            && closed
            && observation.first_alert.is_none()
            && observation.server_hello.is_none(),
        // A ServerHello, a login, or a TLS alert from the server: any TLS
        // answer to a TLS-first ClientHello shows the server speaks TDS 8.0
        // (an alert then names what it refused).
        server_spoke_tls: observation.server_hello.is_some()
            || observation.phase >= Phase::LoginSent
            || observation
                .first_alert
                .is_some_and(|alert| alert.sender == Direction::ServerToClient),
    }
}

fn cause_of(obs: &Observation, failure: &AttemptFailure, transient: &TransientNumbers) -> Cause {
    use tiberius::error::Error as TdsError;

    let error = match failure {
        AttemptFailure::Panic(_) => return Cause::BackendPanic,
        AttemptFailure::TcpConnect(e) => {
            return match e.kind() {
                ErrorKind::ConnectionRefused => Cause::ConnectionRefused,
                ErrorKind::TimedOut => Cause::Timeout,
                ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted => Cause::TransientReset,
                _ => Cause::Unknown,
            };
        }
        AttemptFailure::TcpConnectTimeout(_) | AttemptFailure::Silent(_) => return Cause::Timeout,
        AttemptFailure::Layer(_) if failure.is_layer_timeout() => return Cause::Timeout,
        AttemptFailure::Layer(_) => return Cause::Unknown,
        AttemptFailure::HandshakeTimeout(_) => None,
        AttemptFailure::Tiberius(e) => Some(e),
    };

    // What the server said in words is unambiguous.
    match error {
        Some(TdsError::Server(token)) => return server_cause(token.code(), transient),
        Some(TdsError::Routing { .. }) => return Cause::Routing,
        _ => {}
    }

    let message = error.map(error_text).unwrap_or_default();

    // The client's TLS stack refused the certificate: never retried, never
    // "fixed" by trusting it (design §2.2 rule 2).
    if is_certificate_rejection(&message) {
        return Cause::CertificateUntrusted;
    }

    // The PRELOGIN exchange decides encryption mismatches, whatever tiberius
    // did next (it attempts TLS on a REQ reply to NOT_SUP and then meets the
    // closed socket, §3.4).
    if let (Some(offered), Some(replied)) = (offered(obs), replied(obs)) {
        let offered = offered.base();
        let replied = replied.base();
        if offered == Encryption::NOT_SUP
            && (replied == Encryption::REQ || replied == Encryption::ON)
        {
            return Cause::EncryptionRequired;
        }
        if replied == Encryption::NOT_SUP && offered != Encryption::NOT_SUP {
            return Cause::EncryptionUnavailable;
        }
        if replied == Encryption::OFF
            && (offered == Encryption::ON || offered == Encryption::REQ)
            && obs.started_with_tls == Some(false)
        {
            return Cause::EncryptionUnavailable;
        }
    }
    if message.contains("does not allow the requested encryption level") {
        return Cause::EncryptionUnavailable;
    }

    // A TLS alert seen in clear names the reason (tds-handshake.md §7.2).
    if let Some(alert) = &obs.first_alert {
        return match alert.alert.description.0 {
            70 => Cause::TlsVersionMismatch,
            42..=46 | 48 if alert.sender == Direction::ClientToServer => {
                Cause::CertificateUntrusted
            }
            _ => Cause::TlsHandshakeRejected,
        };
    }
    if let Some(cause) = alert_in_text(&message) {
        return cause;
    }
    if is_version_incompatibility(&message) {
        return Cause::TlsVersionMismatch;
    }

    if matches!(failure, AttemptFailure::HandshakeTimeout(_))
        || matches!(
            error,
            Some(TdsError::Io {
                kind: ErrorKind::TimedOut,
                ..
            })
        )
    {
        return Cause::Timeout;
    }

    // Bytes from the server that the observer could not parse: not TDS.
    if let Some(stop) = &obs.parse_stopped
        && stop.direction == Direction::ServerToClient
        && obs.phase < Phase::LoginSent
        && is_garbage(stop.reason)
    {
        return Cause::ProtocolViolation;
    }

    if is_reset_or_eof(failure) {
        // Closed in answer to the ClientHello, before any ServerHello: the
        // Schannel signature of a TLS version, cipher or certificate-hash
        // mismatch (§8), or a non-strict server refusing a TDS 8 ClientHello.
        if obs.client_hello.is_some()
            && obs.server_hello.is_none()
            && obs.phase == Phase::TlsHandshake
            && bytes_after_prelogin_reply(obs) == 0
        {
            return Cause::TlsHandshakeRejected;
        }
        // A TDS 8.0 ClientHello answered by a close without one byte: the
        // server does not speak TDS 8.0 (or refuses the TLS offer).
        if obs.started_with_tls == Some(true) && obs.client_hello.is_some() && obs.server_bytes == 0
        {
            return Cause::TlsHandshakeRejected;
        }
        return Cause::TransientReset;
    }

    match error {
        Some(TdsError::Tls(_)) => Cause::TlsHandshakeRejected,
        Some(TdsError::Protocol(_))
        | Some(TdsError::Encoding(_))
        | Some(TdsError::Conversion(_))
        | Some(TdsError::Utf8)
        | Some(TdsError::Utf16)
        | Some(TdsError::ParseInt(_)) => Cause::ProtocolViolation,
        Some(TdsError::Io { kind, message }) => match kind {
            ErrorKind::InvalidData | ErrorKind::InvalidInput => Cause::ProtocolViolation,
            // "Protocol error" as `Other` from the codec, or wrapped in
            // `BrokenPipe` by the packet reader; rustls rejecting a TLS 1.3
            // ticket wrapped in 0x12 (§4.1).
            _ if wraps_protocol_error(message) => Cause::ProtocolViolation,
            ErrorKind::NotConnected => Cause::TransientReset,
            _ => Cause::Unknown,
        },
        _ => Cause::Unknown,
    }
}

/// The ENCRYPTION byte the client offered in its plaintext PRELOGIN.
fn offered(obs: &Observation) -> Option<Encryption> {
    obs.client_prelogin.as_ref().and_then(|p| p.encryption)
}

/// The ENCRYPTION byte the server replied with.
fn replied(obs: &Observation) -> Option<Encryption> {
    obs.server_prelogin.as_ref().and_then(|p| p.encryption)
}

/// Server bytes after its PRELOGIN reply, as far as the observation tells.
/// Without per-phase counters, "no ServerHello and no alert" stands in for
/// "nothing useful"; a partial TLS flight counts as nothing.
fn bytes_after_prelogin_reply(obs: &Observation) -> u64 {
    if obs.server_hello.is_some() || obs.first_alert.is_some() {
        1
    } else {
        0
    }
}

/// Parse stops that mean "not TDS/TLS", as opposed to "cut short" or "too
/// big for the observer's fixed buffer" (which say nothing about the server).
fn is_garbage(reason: ParseStopReason) -> bool {
    matches!(
        reason,
        ParseStopReason::NotTds { .. }
            | ParseStopReason::InvalidPacketHeader
            | ParseStopReason::InvalidTlsRecord
            | ParseStopReason::PreloginInvalid(_)
            | ParseStopReason::HelloInvalid(_)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io;
    use std::time::Duration;
    use tds_handshake::{
        Alert, AlertDescription, AlertLevel, ClientHelloFacts, ObservedAlert, ParseStop,
        PreloginSummary, ServerHelloFacts, TlsFraming, TlsVersion,
    };
    use tiberius::error::Error as TdsError;

    const OFF: u8 = 0x00;
    const ON: u8 = 0x01;
    const NOT_SUP: u8 = 0x02;
    const REQ: u8 = 0x03;

    fn summary(enc: u8) -> PreloginSummary {
        PreloginSummary {
            encryption: Some(Encryption(enc)),
            ..PreloginSummary::default()
        }
    }

    /// Client sent a plaintext PRELOGIN; nothing came back.
    fn prelogin_sent(offered: u8) -> Observation {
        Observation {
            phase: Phase::PreloginSent,
            started_with_tls: Some(false),
            client_prelogin: Some(summary(offered)),
            client_bytes: 47,
            ..Observation::default()
        }
    }

    /// PRELOGIN exchanged.
    fn replied(offered: u8, reply: u8) -> Observation {
        Observation {
            phase: Phase::PreloginReplied,
            server_prelogin: Some(summary(reply)),
            server_bytes: 43,
            ..prelogin_sent(offered)
        }
    }

    /// PRELOGIN exchanged, then the client's ClientHello went out.
    fn client_hello_sent(offered: u8, reply: u8) -> Observation {
        Observation {
            phase: Phase::TlsHandshake,
            client_hello: Some(ClientHelloFacts::default()),
            client_bytes: 47 + 1470,
            ..replied(offered, reply)
        }
    }

    fn server_hello_seen(offered: u8, reply: u8) -> Observation {
        Observation {
            server_hello: Some(ServerHelloFacts {
                selected_version: TlsVersion::TLS12,
                ..ServerHelloFacts::default()
            }),
            server_bytes: 43 + 1211,
            ..client_hello_sent(offered, reply)
        }
    }

    fn with_alert(mut obs: Observation, sender: Direction, description: u8) -> Observation {
        obs.first_alert = Some(ObservedAlert {
            sender,
            alert: Alert {
                level: AlertLevel::from_u8(2),
                description: AlertDescription(description),
            },
            framing: TlsFraming::WrappedPrelogin,
        });
        obs.alerts = 1;
        obs
    }

    /// Strict: the client started with a ClientHello.
    fn strict_hello_sent() -> Observation {
        Observation {
            phase: Phase::PreloginSent,
            started_with_tls: Some(true),
            client_hello: Some(ClientHelloFacts {
                alpn_tds8: true,
                ..ClientHelloFacts::default()
            }),
            client_bytes: 1400,
            ..Observation::default()
        }
    }

    fn io(kind: ErrorKind, message: &str) -> AttemptFailure {
        AttemptFailure::Tiberius(TdsError::Io {
            kind,
            message: message.to_owned(),
        })
    }

    fn reset() -> AttemptFailure {
        io(
            ErrorKind::ConnectionReset,
            "Connection reset by peer (os error 104)",
        )
    }

    fn eof() -> AttemptFailure {
        io(ErrorKind::UnexpectedEof, "failed to fill whole buffer")
    }

    struct Row {
        name: &'static str,
        obs: Observation,
        failure: AttemptFailure,
        cause: Cause,
        probe: bool,
    }

    fn row(name: &'static str, obs: Observation, failure: AttemptFailure, cause: Cause) -> Row {
        Row {
            name,
            obs,
            failure,
            cause,
            probe: false,
        }
    }

    fn rows() -> Vec<Row> {
        use Cause::*;
        vec![
            // design §1 row 1: Force Encryption, client at NotSupported.
            row("force_encryption_reply_req_then_reset", replied(NOT_SUP, REQ), reset(), EncryptionRequired),
            row("force_encryption_reply_req_then_fin", replied(NOT_SUP, REQ), eof(), EncryptionRequired),
            row("force_encryption_reply_on_then_reset", replied(NOT_SUP, ON), reset(), EncryptionRequired),
            row("force_encryption_tiberius_tried_tls_anyway", client_hello_sent(NOT_SUP, REQ), reset(), EncryptionRequired),
            // design §2.3: no reply after plaintext PRELOGIN is ambiguous.
            Row { probe: true, ..row("no_reply_after_plaintext_prelogin_reset", prelogin_sent(REQ), reset(), TransientReset) },
            Row { probe: true, ..row("no_reply_after_plaintext_prelogin_fin", prelogin_sent(NOT_SUP), eof(), TransientReset) },
            row("partial_reply_then_reset", Observation { server_bytes: 10, ..prelogin_sent(REQ) }, reset(), TransientReset),
            // The server offers no encryption, the client requires it.
            row("required_vs_not_sup", replied(REQ, NOT_SUP), AttemptFailure::Tiberius(TdsError::Protocol("Server does not allow the requested encryption level.".into())), EncryptionUnavailable),
            row("on_vs_off", replied(ON, OFF), AttemptFailure::Tiberius(TdsError::Protocol("Server does not allow the requested encryption level.".into())), EncryptionUnavailable),
            row("off_vs_not_sup_tiberius_tries_tls", client_hello_sent(OFF, NOT_SUP), eof(), EncryptionUnavailable),
            row("tiberius_text_without_observation", Observation::default(), AttemptFailure::Tiberius(TdsError::Protocol("Server does not allow the requested encryption level.".into())), EncryptionUnavailable),
            // TLS alerts (§7.2) and the ClientHello reset (§8).
            row("alert_70_wrapped", with_alert(client_hello_sent(REQ, ON), Direction::ServerToClient, 70), io(ErrorKind::InvalidData, "received fatal alert: ProtocolVersion"), TlsVersionMismatch),
            row("alert_40_wrapped", with_alert(client_hello_sent(REQ, ON), Direction::ServerToClient, 40), io(ErrorKind::InvalidData, "received fatal alert: HandshakeFailure"), TlsHandshakeRejected),
            row("alert_71_raw_then_fin", with_alert(client_hello_sent(REQ, ON), Direction::ServerToClient, 71), io(ErrorKind::UnexpectedEof, "tls handshake eof"), TlsHandshakeRejected),
            row("alert_120_strict_alpn", with_alert(strict_hello_sent(), Direction::ServerToClient, 120), io(ErrorKind::InvalidData, "received fatal alert: NoApplicationProtocol"), TlsHandshakeRejected),
            row("alert_text_only_70", client_hello_sent(REQ, ON), io(ErrorKind::InvalidData, "received fatal alert: ProtocolVersion"), TlsVersionMismatch),
            row("alert_text_only_40", client_hello_sent(REQ, ON), io(ErrorKind::InvalidData, "received fatal alert: HandshakeFailure"), TlsHandshakeRejected),
            row("client_sent_unknown_ca", with_alert(server_hello_seen(REQ, ON), Direction::ClientToServer, 48), io(ErrorKind::InvalidData, "invalid peer certificate: UnknownIssuer"), CertificateUntrusted),
            row("server_too_old", server_hello_seen(REQ, ON), io(ErrorKind::InvalidData, "peer is incompatible: ServerDoesNotSupportTls12Or13"), TlsVersionMismatch),
            row("reset_right_after_client_hello", client_hello_sent(REQ, ON), reset(), TlsHandshakeRejected),
            row("reset_after_server_hello", server_hello_seen(REQ, ON), reset(), TransientReset),
            row("strict_hello_reset_no_answer", strict_hello_sent(), reset(), TlsHandshakeRejected),
            row("strict_reset_after_tls", Observation { server_hello: Some(ServerHelloFacts::default()), server_bytes: 900, phase: Phase::TlsHandshake, ..strict_hello_sent() }, reset(), TransientReset),
            // Certificates: the client's TLS stack says no.
            row("certificate_unknown_issuer", server_hello_seen(REQ, ON), AttemptFailure::Tiberius(TdsError::Tls("the server's certificate was rejected during the TLS handshake: invalid peer certificate: UnknownIssuer".into())), CertificateUntrusted),
            row("certificate_wrong_name", server_hello_seen(REQ, ON), AttemptFailure::Tiberius(TdsError::Tls("invalid peer certificate: NotValidForName".into())), CertificateUntrusted),
            row("other_tls_error", server_hello_seen(REQ, ON), AttemptFailure::Tiberius(TdsError::Tls("something odd".into())), TlsHandshakeRejected),
            // Timeouts.
            row("handshake_timeout", strict_hello_sent(), AttemptFailure::HandshakeTimeout(Duration::from_secs(1)), Timeout),
            row("tiberius_timed_out", prelogin_sent(REQ), io(ErrorKind::TimedOut, "the connection handshake ... did not complete"), Timeout),
            row("tcp_connect_timeout", Observation::default(), AttemptFailure::TcpConnectTimeout(Duration::from_secs(1)), Timeout),
            // TCP connect.
            row("tcp_refused", Observation::default(), AttemptFailure::TcpConnect(io::Error::from(ErrorKind::ConnectionRefused)), ConnectionRefused),
            row("tcp_timed_out", Observation::default(), AttemptFailure::TcpConnect(io::Error::from(ErrorKind::TimedOut)), Timeout),
            row("tcp_other", Observation::default(), AttemptFailure::TcpConnect(io::Error::other("no such host")), Unknown),
            // Routing, panics, garbage.
            row("routing", server_hello_seen(REQ, ON), AttemptFailure::Tiberius(TdsError::Routing { host: "node".into(), port: 1 }), Routing),
            row("panic", replied(REQ, ON), AttemptFailure::Panic("assertion failed".into()), BackendPanic),
            row("invalid_packet_type", replied(REQ, ON), io(ErrorKind::Other, "Protocol error: header: invalid packet type: 21"), ProtocolViolation),
            row("wrong_packet_type_in_tls", replied(REQ, ON), io(ErrorKind::InvalidData, "expected a pre-login packet during the TLS handshake"), ProtocolViolation),
            row("login_ack_version", server_hello_seen(REQ, ON), AttemptFailure::Tiberius(TdsError::Protocol("Login ACK: Invalid TDS version".into())), ProtocolViolation),
            // tiberius's packet reader wraps every inner error in BrokenPipe
            // with the inner text: a reset stays a reset, garbage stays garbage.
            row("reset_wrapped_in_broken_pipe", server_hello_seen(REQ, ON), io(ErrorKind::BrokenPipe, "An error occurred during the attempt of performing I/O: Connection reset by peer (os error 104)"), TransientReset),
            row("reset_in_broken_pipe_right_after_client_hello", client_hello_sent(REQ, ON), io(ErrorKind::BrokenPipe, "An error occurred during the attempt of performing I/O: Connection reset by peer (os error 104)"), TlsHandshakeRejected),
            row("protocol_error_wrapped_in_broken_pipe", Observation { phase: Phase::LoginSent, ..server_hello_seen(REQ, ON) }, io(ErrorKind::BrokenPipe, "Protocol error: header: invalid packet type: 21"), ProtocolViolation),
            row("certificate_expired", server_hello_seen(REQ, ON), AttemptFailure::Tiberius(TdsError::Tls("the server's certificate was rejected during the TLS handshake: certificate expired: verification time 1700000000 (UNIX), but certificate is not valid after 1600000000 (UNIX)".into())), CertificateUntrusted),
            row("certificate_unknown_issuer_unwrapped", server_hello_seen(REQ, ON), io(ErrorKind::InvalidData, "invalid peer certificate: UnknownIssuer"), CertificateUntrusted),
            row("alert_70_sent_by_the_client", with_alert(server_hello_seen(REQ, ON), Direction::ClientToServer, 70), io(ErrorKind::InvalidData, "peer is incompatible: ServerDoesNotSupportTls12Or13"), TlsVersionMismatch),
            row("alert_70_raw_then_fin", with_alert(client_hello_sent(REQ, ON), Direction::ServerToClient, 70), io(ErrorKind::UnexpectedEof, "tls handshake eof"), TlsVersionMismatch),
            row("corrupt_message_broken_pipe", server_hello_seen(REQ, ON), io(ErrorKind::BrokenPipe, "received corrupt message of type InvalidContentType"), ProtocolViolation),
            row(
                "garbage_reply_then_reset",
                Observation {
                    parse_stopped: Some(ParseStop {
                        direction: Direction::ServerToClient,
                        offset: 0,
                        reason: ParseStopReason::InvalidPacketHeader,
                    }),
                    server_bytes: 20,
                    ..prelogin_sent(REQ)
                },
                reset(),
                ProtocolViolation,
            ),
            row(
                "truncated_reply_is_not_garbage",
                Observation {
                    parse_stopped: Some(ParseStop {
                        direction: Direction::ServerToClient,
                        offset: 0,
                        reason: ParseStopReason::TruncatedAtEof,
                    }),
                    server_bytes: 20,
                    server_eof: true,
                    ..prelogin_sent(REQ)
                },
                eof(),
                TransientReset,
            ),
            row("reset_during_login", Observation { phase: Phase::LoginSent, ..server_hello_seen(REQ, ON) }, reset(), TransientReset),
            row("unknown_io", replied(REQ, ON), io(ErrorKind::PermissionDenied, "nope"), Unknown),
        ]
    }

    #[test]
    fn cause_table() {
        let numbers = TransientNumbers::new();
        for row in rows() {
            let v = verdict(&row.obs, &row.failure, &numbers);
            assert_eq!(v.cause, row.cause, "{}", row.name);
            assert_eq!(
                v.strict_probe_candidate, row.probe,
                "{} probe flag",
                row.name
            );
            assert_eq!(classify(&row.obs, &row.failure), row.cause, "{}", row.name);
        }
    }

    #[test]
    fn the_10054_signature_is_a_close_before_login() {
        let numbers = TransientNumbers::new();
        assert!(verdict(&prelogin_sent(REQ), &reset(), &numbers).reset_during_prelogin);
        assert!(verdict(&replied(NOT_SUP, REQ), &eof(), &numbers).reset_during_prelogin);
        let after_login = Observation {
            phase: Phase::LoginSent,
            ..server_hello_seen(REQ, ON)
        };
        assert!(!verdict(&after_login, &reset(), &numbers).reset_during_prelogin);
        assert!(
            !verdict(
                &prelogin_sent(REQ),
                &AttemptFailure::HandshakeTimeout(Duration::ZERO),
                &numbers
            )
            .reset_during_prelogin
        );
    }

    #[test]
    fn any_tls_answer_from_the_server_means_it_spoke_tls() {
        let numbers = TransientNumbers::new();
        let silent = strict_hello_sent();
        assert!(!verdict(&silent, &reset(), &numbers).server_spoke_tls);
        let alerted = with_alert(strict_hello_sent(), Direction::ServerToClient, 70);
        assert!(verdict(&alerted, &reset(), &numbers).server_spoke_tls);
        let refused_by_us = with_alert(strict_hello_sent(), Direction::ClientToServer, 48);
        assert!(!verdict(&refused_by_us, &reset(), &numbers).server_spoke_tls);
        let hello = server_hello_seen(REQ, OFF);
        assert!(verdict(&hello, &reset(), &numbers).server_spoke_tls);
    }

    #[test]
    fn server_numbers() {
        let numbers = TransientNumbers::new();
        assert_eq!(server_cause(18456, &numbers), Cause::LoginFailed);
        for n in [
            4060, 40613, 40501, 40197, 49918, 49919, 49920, 10928, 10929, 233, 64,
        ] {
            assert_eq!(server_cause(n, &numbers), Cause::ServerTransient, "{n}");
        }
        for n in [208, 2812, 1205, 20, 0] {
            assert_eq!(server_cause(n, &numbers), Cause::ServerError, "{n}");
        }
        let added = TransientNumbers::new().with([50001]);
        assert_eq!(server_cause(50001, &added), Cause::ServerTransient);
        assert_eq!(
            server_cause(40613, &added),
            Cause::ServerTransient,
            "adding keeps defaults"
        );
        let replaced = TransientNumbers::empty().with([50001]);
        assert_eq!(server_cause(40613, &replaced), Cause::ServerError);
    }
}

//! What the observer saw: plain `Copy` data, no heap fields.

use core::fmt;

use crate::encryption::Encryption;
use crate::prelogin::{PreloginErrorKind, PreloginView, ThreadId, Version};
use crate::tls::{Alert, ClientHelloFacts, HelloError, ServerHelloFacts};

/// Which way bytes travel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Client to server (the middleware's writes).
    ClientToServer,
    /// Server to client (the middleware's reads).
    ServerToClient,
}

impl Direction {
    /// Stable snake_case name.
    pub fn name(self) -> &'static str {
        match self {
            Self::ClientToServer => "client_to_server",
            Self::ServerToClient => "server_to_client",
        }
    }
}

/// How far the handshake got. Ordered: a later phase compares greater, and the observer
/// only ever moves forward.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub enum Phase {
    /// TCP is up; nothing recognisable has been sent yet.
    #[default]
    TcpConnected,
    /// The client sent a whole PRELOGIN (TDS 7), or a TLS ClientHello as its first bytes
    /// (TDS 8 strict, where the PRELOGIN travels inside TLS).
    PreloginSent,
    /// The server's PRELOGIN reply was decoded (never seen in strict mode).
    PreloginReplied,
    /// A TLS handshake record was seen after the PRELOGIN exchange (in strict mode: the
    /// server's first handshake record).
    TlsHandshake,
    /// The client sent LOGIN7 in clear, or its first raw application-data record after
    /// the TLS handshake (tds-handshake.md §4.1: in TDS 7 that record carries LOGIN7).
    ///
    /// In TDS 8 strict everything after the ClientHello is encrypted, so the same rule
    /// fires on the client's first raw application-data record, which is really its TLS
    /// 1.3 Finished or the inner PRELOGIN: read `LoginSent` there as "the TLS handshake
    /// got as far as the client's encrypted traffic".
    LoginSent,
    /// Login succeeded (told by the caller, or a plaintext LOGINACK + DONE was seen).
    LoggedIn,
}

impl Phase {
    /// Stable snake_case name.
    pub fn name(self) -> &'static str {
        match self {
            Self::TcpConnected => "tcp_connected",
            Self::PreloginSent => "prelogin_sent",
            Self::PreloginReplied => "prelogin_replied",
            Self::TlsHandshake => "tls_handshake",
            Self::LoginSent => "login_sent",
            Self::LoggedIn => "logged_in",
        }
    }
}

/// How TLS bytes were carried.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TlsFraming {
    /// Raw TLS records on the socket (TDS 8 strict, or after the TDS 7 handshake).
    Raw,
    /// Wrapped in PRELOGIN (0x12) packets, as TDS 7.2+ requires.
    WrappedPrelogin,
    /// Wrapped in tabular-result (0x04) packets, as some servers do (MS-TDS 2.2.6.5 allows
    /// it before TDS 7.2).
    WrappedTabular,
}

/// An alert seen in clear, with who sent it and how it was framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ObservedAlert {
    /// The direction it travelled: `ServerToClient` means the server sent it.
    pub sender: Direction,
    /// Level and description.
    pub alert: Alert,
    /// Raw or wrapped.
    pub framing: TlsFraming,
}

/// The parts of a PRELOGIN worth keeping, without heap data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct PreloginSummary {
    /// VERSION.
    pub version: Version,
    /// ENCRYPTION, if present.
    pub encryption: Option<Encryption>,
    /// True when INSTOPT carried a non-empty name (client) or a non-zero byte (server).
    pub instance_present: bool,
    /// THREADID, if present.
    pub thread_id: Option<ThreadId>,
    /// MARS, if present.
    pub mars: Option<u8>,
    /// True when TRACEID was present.
    pub trace_id_present: bool,
    /// FEDAUTHREQUIRED, if present.
    pub fed_auth_required: Option<u8>,
    /// True when NONCEOPT was present.
    pub nonce_present: bool,
}

impl PreloginSummary {
    /// Summarises a decoded PRELOGIN.
    pub fn from_view(view: &PreloginView<'_>) -> Self {
        Self {
            version: view.version,
            encryption: view.encryption,
            instance_present: view.instance.is_some_and(|i| i.iter().any(|&b| b != 0)),
            thread_id: view.thread_id,
            mars: view.mars,
            trace_id_present: view.trace_id.is_some(),
            fed_auth_required: view.fed_auth_required,
            nonce_present: view.nonce.is_some(),
        }
    }
}

/// Why the observer stopped interpreting a direction (or one message of it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ParseStopReason {
    /// The client's first byte is neither a TDS packet type nor a TLS record.
    NotTds {
        /// The byte seen.
        first_byte: u8,
    },
    /// A TDS header with an unknown type or a length below 8: framing is lost.
    InvalidPacketHeader,
    /// A TLS record header that is not plausible TLS: framing is lost.
    InvalidTlsRecord,
    /// A PRELOGIN message larger than the observer's fixed buffer (parsing continues).
    PreloginTooLarge,
    /// A PRELOGIN message that does not decode (parsing continues).
    PreloginInvalid(PreloginErrorKind),
    /// A ClientHello or ServerHello larger than the fixed buffer (parsing continues).
    HelloTooLarge,
    /// A ClientHello or ServerHello that does not parse (parsing continues).
    HelloInvalid(HelloError),
    /// The direction closed in the middle of a packet, record or message.
    TruncatedAtEof,
}

impl ParseStopReason {
    /// Stable snake_case name.
    pub fn name(self) -> &'static str {
        match self {
            Self::NotTds { .. } => "not_tds",
            Self::InvalidPacketHeader => "invalid_packet_header",
            Self::InvalidTlsRecord => "invalid_tls_record",
            Self::PreloginTooLarge => "prelogin_too_large",
            Self::PreloginInvalid(_) => "prelogin_invalid",
            Self::HelloTooLarge => "hello_too_large",
            Self::HelloInvalid(_) => "hello_invalid",
            Self::TruncatedAtEof => "truncated_at_eof",
        }
    }
}

/// Where and why parsing gave up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ParseStop {
    /// The direction whose bytes were not understood.
    pub direction: Direction,
    /// Offset in that direction's byte stream of the packet, record or message at fault
    /// (for [`ParseStopReason::TruncatedAtEof`], where the stream ended).
    pub offset: u64,
    /// Why.
    pub reason: ParseStopReason,
}

impl fmt::Display for ParseStop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} at byte {} of {}",
            self.reason.name(),
            self.offset,
            self.direction.name()
        )
    }
}

/// Everything the observer learnt about one connection. `Copy`-sized data only, so
/// cloning it allocates nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Observation {
    /// The furthest phase reached.
    pub phase: Phase,
    /// `Some(true)` when the client's first byte was 0x16 (TDS 8 strict), `Some(false)`
    /// when it was a TDS packet type (0x12 normally), `None` before any byte or for
    /// something else.
    pub started_with_tls: Option<bool>,
    /// The client's PRELOGIN.
    pub client_prelogin: Option<PreloginSummary>,
    /// The server's PRELOGIN reply.
    pub server_prelogin: Option<PreloginSummary>,
    /// The client's (last) ClientHello.
    pub client_hello: Option<ClientHelloFacts>,
    /// The server's (last) ServerHello.
    pub server_hello: Option<ServerHelloFacts>,
    /// How the server framed its first TLS record.
    pub tls_framing: Option<TlsFraming>,
    /// The first alert seen in clear.
    pub first_alert: Option<ObservedAlert>,
    /// Alerts seen in clear, both directions.
    pub alerts: u32,
    /// Bytes client → server.
    pub client_bytes: u64,
    /// Bytes server → client.
    pub server_bytes: u64,
    /// The client closed its side.
    pub client_eof: bool,
    /// The server closed its side.
    pub server_eof: bool,
    /// The first point where parsing gave up, if any.
    pub parse_stopped: Option<ParseStop>,
    /// The server answered the TLS-wrapped LOGIN7 in plaintext: login-only encryption
    /// (client OFF, server OFF; MS-TDS 3.2.5.2).
    pub login_only: bool,
}

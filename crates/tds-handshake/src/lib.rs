//! Sans-IO codec and observer for the SQL Server (TDS) connection handshake.
//!
//! SQL Server reports many different pre-login failures with the same text, error 10054
//! ("An existing connection was forcibly closed by the remote host"). Telling them apart
//! needs the bytes: what encryption the client offered, what the server replied, how far
//! the TLS handshake got and which alert, if any, was sent. This crate reads those bytes.
//! It does no I/O, has no runtime and no dependencies, never panics on peer input and
//! contains no `unsafe` code, so it can sit inside any stream wrapper and be fuzzed.
//!
//! # Observing a connection
//!
//! Feed the [`Observer`] the bytes that actually moved in each direction, in whatever
//! chunks the socket produced, and read the [`Observation`] when the attempt ends:
//!
//! ```
//! use tds_handshake::{
//!     encode_message, Direction, Encryption, Observer, PacketType, Phase, Prelogin, Side,
//!     Version,
//! };
//!
//! let version = Version { major: 16, minor: 0, build: 4220, sub_build: 0 };
//!
//! // The client offers NOT_SUP; a server with Force Encryption answers REQ and closes
//! // (MS-TDS 2.2.6.5), the classic cause of a pre-login 10054.
//! let mut request = Vec::new();
//! let payload = Prelogin::client_request(version, Encryption::NOT_SUP).encode(Side::Client);
//! encode_message(PacketType::PreLogin, 0, &payload, 4096, &mut request);
//!
//! let mut reply = Vec::new();
//! let payload = Prelogin::server_reply(version, Encryption::REQ).encode(Side::Server);
//! encode_message(PacketType::TabularResult, 0, &payload, 4096, &mut reply);
//!
//! let mut observer = Observer::new(); // no allocation, here or later
//! observer.client_bytes(&request);
//! for chunk in reply.chunks(5) {
//!     observer.server_bytes(chunk); // any chunking gives the same result
//! }
//! observer.eof(Direction::ServerToClient);
//!
//! let seen = observer.observation();
//! assert_eq!(seen.phase, Phase::PreloginReplied);
//! assert_eq!(seen.started_with_tls, Some(false));
//! assert_eq!(seen.client_prelogin.unwrap().encryption, Some(Encryption::NOT_SUP));
//! assert_eq!(seen.server_prelogin.unwrap().encryption, Some(Encryption::REQ));
//! assert!(seen.server_eof);
//! assert_eq!(seen.parse_stopped, None);
//! ```
//!
//! In a `tokio::io::AsyncRead`/`AsyncWrite` wrapper, call [`Observer::client_bytes`] from
//! `poll_write` with the prefix the inner stream accepted, [`Observer::server_bytes`] from
//! `poll_read` with the bytes newly filled, and [`Observer::eof`] on a zero-length read.
//! Once [`Observer::is_passive`] is true the login is encrypted or answered and the
//! observer only counts bytes.
//!
//! # Modules
//!
//! - [`packet`]: the 8-byte TDS header, [`encode_message`] and the bounded
//!   [`MessageReassembler`] (MS-TDS 2.2.3).
//! - [`prelogin`]: [`Prelogin`] (owned) and [`PreloginView`] (borrowed, allocation-free)
//!   for the client request and the server reply, with typed [`PreloginError`]s
//!   (MS-TDS 2.2.6.5).
//! - [`encryption`]: the [`Encryption`] byte and [`negotiate`], the server's side of the
//!   MS-TDS encryption matrix.
//! - [`tls`]: TLS record headers, [`Alert`]s, and the facts a ClientHello and ServerHello
//!   reveal in clear (versions, ALPN `tds/8.0`, SNI).
//! - [`observer`]: the [`Observer`], its [`Observation`] and the [`Phase`]s it tracks,
//!   for TDS 7 (TLS wrapped in PRELOGIN packets, or tabular ones) and TDS 8 strict (TLS
//!   first).
//!
//! # Bounds
//!
//! The observer's memory is fixed at construction (under 5 KB, all inline): partial headers
//! live in small arrays and a PRELOGIN or TLS hello is captured in a
//! [`CAPTURE_LIMIT`](observer::CAPTURE_LIMIT)-byte array per direction. Anything larger is
//! reported as a [`ParseStop`] instead of being buffered. Length fields are never used to
//! reserve memory.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod cursor;
pub mod encryption;
pub mod observer;
pub mod packet;
pub mod prelogin;
pub mod tls;

pub use encryption::{Encryption, Negotiation, ServerEncryption, negotiate};
pub use observer::{
    Direction, Observation, ObservedAlert, Observer, ParseStop, ParseStopReason, Phase,
    PreloginSummary, TlsFraming,
};
pub use packet::{
    HEADER_LEN, MAX_PRELOGIN_PACKET, Message, MessageReassembler, PacketError, PacketHeader,
    PacketStatus, PacketType, encode_message,
};
pub use prelogin::{
    Prelogin, PreloginError, PreloginErrorKind, PreloginView, Side, ThreadId, Version,
};
pub use tls::{
    Alert, AlertDescription, AlertLevel, ClientHelloFacts, ContentType, HelloError,
    OfferedVersions, RecordHeader, ServerHelloFacts, TlsVersion,
};

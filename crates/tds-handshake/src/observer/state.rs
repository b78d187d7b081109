//! Per-direction parser state and the cross-direction context, all fixed-size.

use super::observation::{Direction, Observation, ParseStop, ParseStopReason, Phase, TlsFraming};
use crate::packet::HEADER_LEN;
use crate::tls::{HANDSHAKE_HEADER_LEN, RECORD_HEADER_LEN};

/// Largest PRELOGIN message or TLS hello the observer buffers. A rustls ClientHello with a
/// post-quantum key share is about 1.5 KB (tds-handshake.md §4.1); a PRELOGIN with every
/// option is under 150 bytes. Anything larger yields a [`ParseStop`] instead of memory.
pub const CAPTURE_LIMIT: usize = 2048;

/// A fixed buffer that records how much it could not hold.
#[derive(Debug, Clone)]
pub(super) struct Capture {
    buf: [u8; CAPTURE_LIMIT],
    len: usize,
    overflow: bool,
}

impl Capture {
    pub(super) const fn new() -> Self {
        Self {
            buf: [0; CAPTURE_LIMIT],
            len: 0,
            overflow: false,
        }
    }

    pub(super) fn reset(&mut self) {
        self.len = 0;
        self.overflow = false;
    }

    pub(super) fn push(&mut self, bytes: &[u8]) {
        let end = self.len.saturating_add(bytes.len());
        match self.buf.get_mut(self.len..end) {
            Some(dst) => {
                dst.copy_from_slice(bytes);
                self.len = end;
            }
            None => self.overflow = true,
        }
    }

    pub(super) fn overflowed(&self) -> bool {
        self.overflow
    }

    pub(super) fn bytes(&self) -> &[u8] {
        self.buf.get(..self.len).unwrap_or_default()
    }
}

/// What the reader expects at the current position of a direction's byte stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Unit {
    /// Between packets/records: the next byte decides which.
    Boundary,
    /// Collecting a TDS packet header.
    TdsHeader,
    /// Inside a TDS packet's payload.
    TdsPayload,
    /// Inside a raw (unwrapped) TLS record.
    RawRecord,
}

/// How the payload of the current TDS message is interpreted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum MessageKind {
    /// No payload byte seen yet.
    Undecided,
    /// The client's PRELOGIN, captured.
    Prelogin,
    /// The server's PRELOGIN reply, captured.
    PreloginReply,
    /// TLS records carried inside TDS packets.
    WrappedTls(TlsFraming),
    /// The plaintext login response, scanned token by token.
    LoginResponse,
    /// Not interesting; counted only.
    Skip,
}

/// TLS record reassembly state (records may span TDS packets).
#[derive(Debug, Clone)]
pub(super) struct RecordState {
    pub(super) header: [u8; RECORD_HEADER_LEN],
    pub(super) have: usize,
    pub(super) in_body: bool,
    pub(super) remaining: usize,
    pub(super) content_type: u8,
    /// The record was sent before this direction's ChangeCipherSpec, so it is readable.
    pub(super) clear: bool,
    pub(super) framing: TlsFraming,
    pub(super) alert: [u8; 2],
    pub(super) alert_have: usize,
}

impl RecordState {
    const fn new() -> Self {
        Self {
            header: [0; RECORD_HEADER_LEN],
            have: 0,
            in_body: false,
            remaining: 0,
            content_type: 0,
            clear: true,
            framing: TlsFraming::Raw,
            alert: [0; 2],
            alert_have: 0,
        }
    }

    /// True when a record has started but not ended.
    pub(super) fn is_mid_record(&self) -> bool {
        self.have > 0 || self.in_body
    }
}

/// Handshake-message reassembly state (messages may span records).
#[derive(Debug, Clone)]
pub(super) struct HandshakeState {
    pub(super) header: [u8; HANDSHAKE_HEADER_LEN],
    pub(super) have: usize,
    pub(super) in_body: bool,
    pub(super) remaining: usize,
    pub(super) capturing: bool,
}

impl HandshakeState {
    const fn new() -> Self {
        Self {
            header: [0; HANDSHAKE_HEADER_LEN],
            have: 0,
            in_body: false,
            remaining: 0,
            capturing: false,
        }
    }
}

/// Token scanner for a plaintext login response (MS-TDS 2.2.7).
#[derive(Debug, Clone)]
pub(super) struct LoginScan {
    pub(super) step: ScanStep,
    pub(super) field: [u8; 2],
    pub(super) have: usize,
    pub(super) skip: usize,
    pub(super) token: u8,
    pub(super) login_ack: bool,
    pub(super) error: bool,
}

/// Where the token scanner is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ScanStep {
    /// Expecting a token byte.
    Token,
    /// Reading a 2-byte length (or a DONE status).
    Field,
    /// Skipping token data.
    Skip,
    /// Finished or gave up.
    Done,
}

impl LoginScan {
    const fn new() -> Self {
        Self {
            step: ScanStep::Token,
            field: [0; 2],
            have: 0,
            skip: 0,
            token: 0,
            login_ack: false,
            error: false,
        }
    }
}

/// Everything the observer keeps for one direction.
#[derive(Debug, Clone)]
pub(super) struct DirState {
    pub(super) dir: Direction,
    /// Bytes of this direction processed so far.
    pub(super) offset: u64,
    /// Offset where the current packet or raw record began.
    pub(super) unit_start: u64,
    /// Offset where the current TDS message began.
    pub(super) message_start: u64,
    pub(super) passive: bool,
    pub(super) unit: Unit,
    pub(super) tds_header: [u8; HEADER_LEN],
    pub(super) tds_have: usize,
    pub(super) packet_remaining: usize,
    pub(super) packet_eom: bool,
    pub(super) message_open: bool,
    pub(super) message_type: u8,
    pub(super) message_kind: MessageKind,
    pub(super) prelogin_done: bool,
    /// This direction sent ChangeCipherSpec: its later records are encrypted.
    pub(super) cipher_active: bool,
    pub(super) record: RecordState,
    pub(super) handshake: HandshakeState,
    pub(super) capture: Capture,
    pub(super) scan: LoginScan,
}

impl DirState {
    pub(super) const fn new(dir: Direction) -> Self {
        Self {
            dir,
            offset: 0,
            unit_start: 0,
            message_start: 0,
            passive: false,
            unit: Unit::Boundary,
            tds_header: [0; HEADER_LEN],
            tds_have: 0,
            packet_remaining: 0,
            packet_eom: false,
            message_open: false,
            message_type: 0,
            message_kind: MessageKind::Undecided,
            prelogin_done: false,
            cipher_active: false,
            record: RecordState::new(),
            handshake: HandshakeState::new(),
            capture: Capture::new(),
            scan: LoginScan::new(),
        }
    }

    /// True when the stream stopped in the middle of something.
    pub(super) fn is_mid_unit(&self) -> bool {
        self.unit != Unit::Boundary || self.message_open || self.record.is_mid_record()
    }
}

/// State shared by both directions.
#[derive(Debug, Clone, Default)]
pub(super) struct Shared {
    pub(super) obs: Observation,
    /// LOGIN7 went inside TLS (raw application data after the handshake).
    pub(super) login_in_tls: bool,
}

impl Shared {
    /// Moves the phase forward, never back.
    pub(super) fn advance(&mut self, phase: Phase) {
        if phase > self.obs.phase {
            self.obs.phase = phase;
        }
    }

    /// Records the first reason parsing gave up; later ones are ignored.
    pub(super) fn stop(&mut self, direction: Direction, offset: u64, reason: ParseStopReason) {
        if self.obs.parse_stopped.is_none() {
            self.obs.parse_stopped = Some(ParseStop {
                direction,
                offset,
                reason,
            });
        }
    }
}

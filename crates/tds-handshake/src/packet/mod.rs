//! TDS packet framing: the 8-byte header and messages split across packets (MS-TDS 2.2.3).
//!
//! A *message* is one or more packets of the same type; the last one has the EOM bit
//! (`status & 0x01`) set. Payloads must be reassembled before PRELOGIN options, tokens or
//! wrapped TLS records are parsed, because all of them cross packet boundaries freely.

mod reassembly;

pub use reassembly::{Message, MessageReassembler};

use core::fmt;

/// Size of the TDS packet header (MS-TDS 2.2.3.1).
pub const HEADER_LEN: usize = 8;

/// Largest packet allowed before login completes (MS-TDS 2.2.3.1.3: 4096 until the
/// ENVCHANGE packet-size confirmation).
pub const MAX_PRELOGIN_PACKET: usize = 4096;

/// Smallest packet size a client may negotiate (MS-TDS 2.2.6.4, PacketSize).
pub const MIN_NEGOTIATED_PACKET: usize = 512;

/// Largest packet size a client may negotiate (MS-TDS 2.2.6.4, PacketSize).
pub const MAX_NEGOTIATED_PACKET: usize = 32767;

/// The message type in byte 0 of the header (MS-TDS 2.2.3.1.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum PacketType {
    /// SQL batch (client to server).
    SqlBatch = 0x01,
    /// Pre-TDS 7 login (legacy, client to server).
    PreTds7Login = 0x02,
    /// Remote procedure call (client to server).
    Rpc = 0x03,
    /// Tabular result: every server response, including the PRELOGIN reply.
    TabularResult = 0x04,
    /// Attention (cancel), header only.
    Attention = 0x06,
    /// Bulk load data.
    BulkLoad = 0x07,
    /// Federated authentication token.
    FedAuthToken = 0x08,
    /// Transaction manager request (14 decimal, not 0x14).
    TransactionManager = 0x0E,
    /// TDS 7+ LOGIN7.
    Login7 = 0x10,
    /// SSPI message.
    Sspi = 0x11,
    /// PRELOGIN; in TDS 7.x it also carries the TLS handshake in both directions.
    PreLogin = 0x12,
}

impl PacketType {
    /// Maps the raw header byte to a known type.
    pub fn from_u8(value: u8) -> Option<Self> {
        Some(match value {
            0x01 => Self::SqlBatch,
            0x02 => Self::PreTds7Login,
            0x03 => Self::Rpc,
            0x04 => Self::TabularResult,
            0x06 => Self::Attention,
            0x07 => Self::BulkLoad,
            0x08 => Self::FedAuthToken,
            0x0E => Self::TransactionManager,
            0x10 => Self::Login7,
            0x11 => Self::Sspi,
            0x12 => Self::PreLogin,
            _ => return None,
        })
    }

    /// The raw header byte.
    pub fn as_u8(self) -> u8 {
        self as u8
    }
}

/// The status bit field in byte 1 of the header (MS-TDS 2.2.3.1.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct PacketStatus(pub u8);

impl PacketStatus {
    /// No bit set: more packets of this message follow.
    pub const NORMAL: Self = Self(0x00);
    /// End of message: the last packet of the message.
    pub const EOM: Self = Self(0x01);
    /// The client abandons the message; always combined with EOM.
    pub const IGNORE: Self = Self(0x02);
    /// Reset the connection before the request (TDS 7.1+).
    pub const RESET_CONNECTION: Self = Self(0x08);
    /// Reset the connection but keep the transaction (TDS 7.3+).
    pub const RESET_CONNECTION_SKIP_TRAN: Self = Self(0x10);

    /// True when bit 0 is set. Read as a bit, never as `status == 1`: clients combine it
    /// with other bits (tds-handshake.md §1.3).
    pub fn is_eom(self) -> bool {
        self.0 & Self::EOM.0 != 0
    }

    /// True when the IGNORE bit is set.
    pub fn is_ignore(self) -> bool {
        self.0 & Self::IGNORE.0 != 0
    }
}

/// The decoded 8-byte packet header (MS-TDS 2.2.3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PacketHeader {
    /// Raw type byte; see [`PacketType::from_u8`]. Kept raw so unknown types can be reported.
    pub packet_type: u8,
    /// Status bits.
    pub status: PacketStatus,
    /// Whole packet length including the header (big-endian on the wire).
    pub length: u16,
    /// Server process id (big-endian on the wire); informational.
    pub spid: u16,
    /// Packet sequence number, mod 256; receivers ignore it.
    pub packet_id: u8,
    /// Unused, always 0.
    pub window: u8,
}

impl PacketHeader {
    /// Decodes the first 8 bytes of `bytes`. Needs at least 8 bytes and a length ≥ 8.
    /// The packet type is not checked; use [`PacketType::from_u8`] for that.
    pub fn decode(bytes: &[u8]) -> Result<PacketHeader, PacketError> {
        let Some(h) = bytes.first_chunk::<HEADER_LEN>() else {
            return Err(PacketError::TruncatedHeader {
                available: bytes.len(),
            });
        };
        let length = u16::from_be_bytes([h[2], h[3]]);
        if usize::from(length) < HEADER_LEN {
            return Err(PacketError::LengthTooSmall { length });
        }
        Ok(PacketHeader {
            packet_type: h[0],
            status: PacketStatus(h[1]),
            length,
            spid: u16::from_be_bytes([h[4], h[5]]),
            packet_id: h[6],
            window: h[7],
        })
    }

    /// Encodes the header as it appears on the wire.
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let [l0, l1] = self.length.to_be_bytes();
        let [s0, s1] = self.spid.to_be_bytes();
        [
            self.packet_type,
            self.status.0,
            l0,
            l1,
            s0,
            s1,
            self.packet_id,
            self.window,
        ]
    }

    /// Payload bytes following the header (`length - 8`, never negative).
    pub fn payload_len(&self) -> usize {
        usize::from(self.length).saturating_sub(HEADER_LEN)
    }

    /// True when this is the last packet of its message.
    pub fn is_eom(&self) -> bool {
        self.status.is_eom()
    }

    /// The packet type, when it is one MS-TDS defines.
    pub fn known_type(&self) -> Option<PacketType> {
        PacketType::from_u8(self.packet_type)
    }
}

/// Why a packet or message could not be framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PacketError {
    /// Fewer than 8 bytes were given for a header.
    TruncatedHeader {
        /// Bytes that were available.
        available: usize,
    },
    /// The length field is below the header size, so no packet can be framed.
    LengthTooSmall {
        /// The length field as read.
        length: u16,
    },
    /// The type byte is not a packet type MS-TDS defines.
    UnknownType {
        /// The type byte as read.
        packet_type: u8,
    },
    /// A packet of another type arrived before the message in progress had its EOM.
    MixedTypes {
        /// Type of the message in progress.
        expected: u8,
        /// Type of the packet that arrived.
        found: u8,
    },
    /// The message would exceed the reassembler's bound.
    MessageTooLarge {
        /// The configured bound in bytes.
        limit: usize,
    },
    /// Too many complete messages are waiting to be popped.
    Backlog {
        /// The number of queued messages allowed.
        limit: usize,
    },
}

impl fmt::Display for PacketError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TruncatedHeader { available } => {
                write!(f, "TDS packet header needs 8 bytes, {available} available")
            }
            Self::LengthTooSmall { length } => {
                write!(f, "TDS packet length {length} is below the 8-byte header")
            }
            Self::UnknownType { packet_type } => {
                write!(f, "unknown TDS packet type 0x{packet_type:02x}")
            }
            Self::MixedTypes { expected, found } => write!(
                f,
                "TDS packet of type 0x{found:02x} inside a message of type 0x{expected:02x}"
            ),
            Self::MessageTooLarge { limit } => {
                write!(f, "TDS message exceeds the {limit}-byte limit")
            }
            Self::Backlog { limit } => {
                write!(f, "more than {limit} TDS messages are waiting to be read")
            }
        }
    }
}

impl std::error::Error for PacketError {}

/// Splits `payload` into packets of at most `max_packet` bytes (header included), EOM on
/// the last, packet ids counting from 1 (mod 256), appending to `out`.
///
/// `max_packet` is clamped to `9..=65535` so every packet carries at least one payload
/// byte and its length fits the u16 field. An empty payload still produces one packet
/// (header only, EOM), which is how Attention is sent.
pub fn encode_message(
    packet_type: PacketType,
    spid: u16,
    payload: &[u8],
    max_packet: usize,
    out: &mut Vec<u8>,
) {
    let max_packet = max_packet.clamp(HEADER_LEN + 1, usize::from(u16::MAX));
    let chunk = max_packet - HEADER_LEN;
    let packets = payload.len().div_ceil(chunk).max(1);
    out.reserve(
        payload
            .len()
            .saturating_add(packets.saturating_mul(HEADER_LEN)),
    );
    let mut rest = payload;
    let mut packet_id: u8 = 1;
    loop {
        let take = rest.len().min(chunk);
        let (body, tail) = rest.split_at(take);
        let last = tail.is_empty();
        let header = PacketHeader {
            packet_type: packet_type.as_u8(),
            status: if last {
                PacketStatus::EOM
            } else {
                PacketStatus::NORMAL
            },
            // `take <= chunk` and `max_packet <= u16::MAX`, so this cannot saturate.
            length: u16::try_from(take + HEADER_LEN).unwrap_or(u16::MAX),
            spid,
            packet_id,
            window: 0,
        };
        out.extend_from_slice(&header.encode());
        out.extend_from_slice(body);
        if last {
            break;
        }
        rest = tail;
        packet_id = packet_id.wrapping_add(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trips_and_reads_eom_as_a_bit() {
        let bytes = [0x12, 0x05, 0x00, 0x2F, 0x00, 0x5A, 0x03, 0x00];
        let h = PacketHeader::decode(&bytes).unwrap();
        assert_eq!(h.encode(), bytes);
        assert!(h.is_eom(), "0x05 has bit 0 set");
        assert_eq!(h.payload_len(), 39);
        assert_eq!(h.spid, 0x5A);
        assert_eq!(h.known_type(), Some(PacketType::PreLogin));
    }

    #[test]
    fn header_errors_are_typed() {
        assert_eq!(
            PacketHeader::decode(&[0x12, 1, 0]),
            Err(PacketError::TruncatedHeader { available: 3 })
        );
        assert_eq!(
            PacketHeader::decode(&[0x12, 1, 0, 7, 0, 0, 0, 0]),
            Err(PacketError::LengthTooSmall { length: 7 })
        );
    }

    #[test]
    fn packet_types_round_trip() {
        for b in 0..=255u8 {
            if let Some(t) = PacketType::from_u8(b) {
                assert_eq!(t.as_u8(), b);
            }
        }
        assert_eq!(PacketType::from_u8(0x14), None, "0x14 is TLS, not TDS");
    }

    #[test]
    fn encode_message_splits_with_eom_on_the_last_and_ids_from_one() {
        let payload: Vec<u8> = (0..20).collect();
        let mut out = Vec::new();
        encode_message(PacketType::PreLogin, 0, &payload, 16, &mut out);
        // 8 payload bytes per packet: 3 packets.
        assert_eq!(out.len(), 20 + 3 * 8);
        let first = PacketHeader::decode(&out).unwrap();
        assert_eq!(
            (first.length, first.status, first.packet_id),
            (16, PacketStatus::NORMAL, 1)
        );
        let last = PacketHeader::decode(&out[32..]).unwrap();
        assert_eq!(
            (last.length, last.status, last.packet_id),
            (12, PacketStatus::EOM, 3)
        );
    }

    #[test]
    fn empty_message_is_one_header_only_packet() {
        let mut out = Vec::new();
        encode_message(PacketType::Attention, 0, &[], 4096, &mut out);
        assert_eq!(out, [0x06, 0x01, 0x00, 0x08, 0, 0, 1, 0]);
    }

    #[test]
    fn reassembler_rejects_mixed_types_unknown_types_and_oversize() {
        let mut r = MessageReassembler::new(4096);
        let mut wire = vec![0x12, 0x00, 0x00, 0x09, 0, 0, 1, 0, 0xAA];
        wire.extend([0x04, 0x01, 0x00, 0x09, 0, 0, 2, 0, 0xBB]);
        assert_eq!(
            r.push(&wire),
            Err(PacketError::MixedTypes {
                expected: 0x12,
                found: 0x04
            })
        );
        assert_eq!(
            r.next_message(),
            Some(Err(PacketError::MixedTypes {
                expected: 0x12,
                found: 0x04
            }))
        );
        assert!(r.push(&[0]).is_err(), "errors are sticky");

        let mut r = MessageReassembler::new(4096);
        assert_eq!(
            r.push(&[0x99, 1, 0, 8, 0, 0, 0, 0]),
            Err(PacketError::UnknownType { packet_type: 0x99 })
        );

        let mut r = MessageReassembler::new(4);
        let mut big = Vec::new();
        encode_message(PacketType::SqlBatch, 0, &[1; 5], 4096, &mut big);
        assert_eq!(r.push(&big), Err(PacketError::MessageTooLarge { limit: 4 }));
    }

    #[test]
    fn reassembler_never_trusts_the_length_field() {
        // A header announcing 65535 bytes followed by 3: nothing is reserved up front and
        // no message appears.
        let mut r = MessageReassembler::new(100_000);
        r.push(&[0x12, 0x01, 0xFF, 0xFF, 0, 0, 1, 0, 1, 2, 3])
            .unwrap();
        assert!(r.next_message().is_none());
        assert!(!r.is_idle());
    }

    #[test]
    fn reassembler_limits_the_backlog() {
        let mut wire = Vec::new();
        for _ in 0..17 {
            encode_message(PacketType::TabularResult, 0, &[], 4096, &mut wire);
        }
        let mut r = MessageReassembler::new(10);
        assert_eq!(r.push(&wire), Err(PacketError::Backlog { limit: 16 }));
        assert_eq!(
            std::iter::from_fn(|| r.next_message())
                .take(20)
                .filter(Result::is_ok)
                .count(),
            16
        );
    }
}

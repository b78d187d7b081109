//! Incremental message reassembly: bytes in, whole messages out, memory bounded.

use std::collections::VecDeque;

use super::{HEADER_LEN, PacketError, PacketHeader, PacketType};

/// Complete messages a reassembler holds before [`MessageReassembler::push`] refuses more.
const MAX_QUEUED_MESSAGES: usize = 16;

/// One reassembled TDS message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Raw packet type shared by all its packets.
    pub packet_type: u8,
    /// Concatenated payloads, headers removed.
    pub payload: Vec<u8>,
    /// Number of packets it arrived in.
    pub packets: usize,
    /// Status byte of the last packet (EOM, maybe IGNORE).
    pub last_status: u8,
}

impl Message {
    /// The packet type, when MS-TDS defines it.
    pub fn known_type(&self) -> Option<PacketType> {
        PacketType::from_u8(self.packet_type)
    }
}

/// Where the reader is inside the packet stream.
#[derive(Debug, Clone, Copy)]
enum Position {
    /// Collecting the 8 header bytes.
    Header { have: usize },
    /// Copying payload bytes of the current packet.
    Payload { remaining: usize, eom: bool },
}

/// Incremental reassembly: push bytes, pop whole messages.
///
/// The length field is never trusted for allocation: payload bytes are copied as they
/// arrive, the message in progress may not exceed `max_message` bytes, and at most 16
/// complete messages wait to be popped. Peak memory is therefore about
/// `17 × max_message` whatever the peer sends. A framing error is sticky: the stream
/// cannot be resynchronised, so every later call reports it again.
#[derive(Debug, Clone)]
pub struct MessageReassembler {
    max_message: usize,
    header: [u8; HEADER_LEN],
    position: Position,
    current: Option<Message>,
    ready: VecDeque<Message>,
    error: Option<PacketError>,
}

impl MessageReassembler {
    /// A reassembler that refuses messages longer than `max_message` payload bytes.
    pub fn new(max_message: usize) -> Self {
        Self {
            max_message,
            header: [0; HEADER_LEN],
            position: Position::Header { have: 0 },
            current: None,
            ready: VecDeque::new(),
            error: None,
        }
    }

    /// Feeds bytes as they arrive, in any chunking.
    pub fn push(&mut self, mut bytes: &[u8]) -> Result<(), PacketError> {
        if let Some(e) = self.error {
            return Err(e);
        }
        while !bytes.is_empty() {
            let used = match self.step(bytes) {
                Ok(used) => used,
                Err(e) => {
                    self.error = Some(e);
                    return Err(e);
                }
            };
            bytes = bytes.get(used..).unwrap_or_default();
        }
        Ok(())
    }

    /// Pops the next complete message; after a framing error, yields that error once the
    /// messages completed before it have been popped.
    pub fn next_message(&mut self) -> Option<Result<Message, PacketError>> {
        if let Some(m) = self.ready.pop_front() {
            return Some(Ok(m));
        }
        self.error.map(Err)
    }

    /// True when no partial packet or message is buffered (a clean message boundary).
    pub fn is_idle(&self) -> bool {
        matches!(self.position, Position::Header { have: 0 }) && self.current.is_none()
    }

    /// Consumes a prefix of `bytes`, returning how many bytes were used.
    fn step(&mut self, bytes: &[u8]) -> Result<usize, PacketError> {
        match self.position {
            Position::Header { have } => {
                let want = HEADER_LEN.saturating_sub(have);
                let take = want.min(bytes.len());
                let dst = self.header.get_mut(have..have + take).unwrap_or_default();
                dst.copy_from_slice(bytes.get(..take).unwrap_or_default());
                let have = have + take;
                if have < HEADER_LEN {
                    self.position = Position::Header { have };
                    return Ok(take);
                }
                self.start_packet()?;
                Ok(take)
            }
            Position::Payload { remaining, eom } => {
                let take = remaining.min(bytes.len());
                let chunk = bytes.get(..take).unwrap_or_default();
                let limit = self.max_message;
                if let Some(m) = self.current.as_mut() {
                    if m.payload.len().saturating_add(take) > limit {
                        return Err(PacketError::MessageTooLarge { limit });
                    }
                    m.payload.extend_from_slice(chunk);
                }
                let remaining = remaining - take;
                self.position = Position::Payload { remaining, eom };
                if remaining == 0 {
                    self.finish_packet(eom)?;
                }
                Ok(take)
            }
        }
    }

    fn start_packet(&mut self) -> Result<(), PacketError> {
        let header = PacketHeader::decode(&self.header)?;
        if header.known_type().is_none() {
            return Err(PacketError::UnknownType {
                packet_type: header.packet_type,
            });
        }
        match self.current.as_mut() {
            Some(m) if m.packet_type != header.packet_type => {
                return Err(PacketError::MixedTypes {
                    expected: m.packet_type,
                    found: header.packet_type,
                });
            }
            Some(m) => {
                m.packets = m.packets.saturating_add(1);
                m.last_status = header.status.0;
            }
            None => {
                self.current = Some(Message {
                    packet_type: header.packet_type,
                    payload: Vec::new(),
                    packets: 1,
                    last_status: header.status.0,
                });
            }
        }
        let eom = header.is_eom();
        self.position = Position::Payload {
            remaining: header.payload_len(),
            eom,
        };
        if header.payload_len() == 0 {
            self.finish_packet(eom)?;
        }
        Ok(())
    }

    fn finish_packet(&mut self, eom: bool) -> Result<(), PacketError> {
        self.position = Position::Header { have: 0 };
        if !eom {
            return Ok(());
        }
        if self.ready.len() >= MAX_QUEUED_MESSAGES {
            return Err(PacketError::Backlog {
                limit: MAX_QUEUED_MESSAGES,
            });
        }
        if let Some(m) = self.current.take() {
            self.ready.push_back(m);
        }
        Ok(())
    }
}

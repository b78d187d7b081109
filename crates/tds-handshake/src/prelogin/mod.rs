//! The PRELOGIN message (MS-TDS 2.2.6.5): decode and encode, client request and server reply.
//!
//! Layout: an option table of 5-byte entries (`token`, `offset` BE u16, `length` BE u16),
//! the 0xFF TERMINATOR, then the option data. Offsets count from the start of the payload.
//! [`PreloginView`] decodes without allocating (the observer uses it); [`Prelogin`] is the
//! owned form for emulators and tests.

mod error;
mod view;

pub use error::{PreloginError, PreloginErrorKind};
pub use view::PreloginView;

use crate::encryption::Encryption;

/// Option tokens (MS-TDS 2.2.6.5).
pub mod token {
    /// VERSION: 6 bytes, must be first.
    pub const VERSION: u8 = 0x00;
    /// ENCRYPTION: 1 byte.
    pub const ENCRYPTION: u8 = 0x01;
    /// INSTOPT: NUL-terminated instance name (client) or 1 byte (server).
    pub const INSTOPT: u8 = 0x02;
    /// THREADID: u32 (client) or empty (server).
    pub const THREADID: u8 = 0x03;
    /// MARS: 1 byte.
    pub const MARS: u8 = 0x04;
    /// TRACEID: ConnID GUID + ActivityID GUID + sequence (36 bytes, TDS 7.4).
    pub const TRACEID: u8 = 0x05;
    /// FEDAUTHREQUIRED: 1 byte.
    pub const FEDAUTHREQUIRED: u8 = 0x06;
    /// NONCEOPT: 32 bytes.
    pub const NONCEOPT: u8 = 0x07;
    /// TERMINATOR: ends the option table, no offset or length.
    pub const TERMINATOR: u8 = 0xFF;
}

/// Longest INSTOPT or TRACEID data [`Prelogin::encode`] writes; longer values are cut so
/// every offset fits its u16 field. Real peers send at most 36 bytes.
pub const MAX_ENCODED_OPTION: usize = 4096;

/// The sender's product version from the VERSION option.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Version {
    /// Major version (e.g. 16 for SQL Server 2022).
    pub major: u8,
    /// Minor version.
    pub minor: u8,
    /// Build number (big-endian on the wire).
    pub build: u16,
    /// Sub-build. Its byte order is not normative (SqlClient writes LE, tedious and
    /// tiberius BE); this crate reads and writes it big-endian. Nobody relies on it.
    pub sub_build: u16,
}

impl Version {
    /// Decodes the 6 VERSION bytes.
    pub fn from_bytes(b: [u8; 6]) -> Self {
        Self {
            major: b[0],
            minor: b[1],
            build: u16::from_be_bytes([b[2], b[3]]),
            sub_build: u16::from_be_bytes([b[4], b[5]]),
        }
    }

    /// Encodes the 6 VERSION bytes.
    pub fn to_bytes(self) -> [u8; 6] {
        let [b0, b1] = self.build.to_be_bytes();
        let [s0, s1] = self.sub_build.to_be_bytes();
        [self.major, self.minor, b0, b1, s0, s1]
    }
}

/// Who sent a PRELOGIN: it changes how INSTOPT is laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Side {
    /// The client's request (type 0x12).
    Client,
    /// The server's reply (type 0x04).
    Server,
}

/// The THREADID option.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ThreadId {
    /// Length 0: what servers send (tiberius debug-asserts on anything else).
    Empty,
    /// The client's thread id (little-endian u32 on the wire, per the MS-TDS §4.1 sample).
    Id(u32),
}

/// An owned PRELOGIN message. `None` means the option is absent.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Prelogin {
    /// VERSION (always present; decoding requires it first).
    pub version: Version,
    /// ENCRYPTION.
    pub encryption: Option<Encryption>,
    /// INSTOPT: client, the name bytes without the NUL; server, the raw byte(s).
    pub instance: Option<Vec<u8>>,
    /// THREADID.
    pub thread_id: Option<ThreadId>,
    /// MARS (0 off, 1 on).
    pub mars: Option<u8>,
    /// TRACEID raw bytes (36 in TDS 7.4; tiberius tests send 20).
    pub trace_id: Option<Vec<u8>>,
    /// FEDAUTHREQUIRED.
    pub fed_auth_required: Option<u8>,
    /// NONCEOPT.
    pub nonce: Option<[u8; 32]>,
}

impl Prelogin {
    /// Decodes a payload (the bytes after the 8-byte header(s), reassembled).
    pub fn decode(payload: &[u8], side: Side) -> Result<Prelogin, PreloginError> {
        PreloginView::parse(payload, side).map(|v| v.to_owned_prelogin())
    }

    /// Encodes the payload only (no packet header).
    pub fn encode(&self, side: Side) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode_into(side, &mut out);
        out
    }

    /// Appends the encoded payload to `out`. Options are written in token order, VERSION
    /// first, data in the same order, as every client does.
    pub fn encode_into(&self, side: Side, out: &mut Vec<u8>) {
        // Every option's data is borrowed or a small array, so nothing is allocated here.
        let version = self.version.to_bytes();
        let enc = self.encryption.map(|e| [e.0]);
        let thread = self.thread_id.map(|t| match t {
            ThreadId::Empty => ([0u8; 4], 0usize),
            ThreadId::Id(id) => (id.to_le_bytes(), 4usize),
        });
        let mars = self.mars.map(|m| [m]);
        let fed = self.fed_auth_required.map(|f| [f]);
        let instance = self.instance.as_deref().map(capped);
        let trace = self.trace_id.as_deref().map(capped);

        let mut options: [(u8, &[u8], bool); 8] = [(0, &[], false); 8];
        let mut n = 0usize;
        let entries: [(u8, Option<&[u8]>, bool); 8] = [
            (token::VERSION, Some(&version[..]), false),
            (token::ENCRYPTION, enc.as_ref().map(|b| &b[..]), false),
            (token::INSTOPT, instance, side == Side::Client),
            (
                token::THREADID,
                thread
                    .as_ref()
                    .map(|(b, len)| b.get(..*len).unwrap_or_default()),
                false,
            ),
            (token::MARS, mars.as_ref().map(|b| &b[..]), false),
            (token::TRACEID, trace, false),
            (token::FEDAUTHREQUIRED, fed.as_ref().map(|b| &b[..]), false),
            (token::NONCEOPT, self.nonce.as_ref().map(|b| &b[..]), false),
        ];
        for (tok, data, nul) in entries {
            if let (Some(data), Some(slot)) = (data, options.get_mut(n)) {
                *slot = (tok, data, nul);
                n += 1;
            }
        }
        let present = options.get(..n).unwrap_or_default();
        let table_len = present.len() * 5 + 1;
        let mut offset = table_len;
        let start = out.len();
        for &(tok, data, nul) in present {
            let len = data.len() + usize::from(nul);
            out.push(tok);
            out.extend_from_slice(&u16::try_from(offset).unwrap_or(u16::MAX).to_be_bytes());
            out.extend_from_slice(&u16::try_from(len).unwrap_or(u16::MAX).to_be_bytes());
            offset += len;
        }
        out.push(token::TERMINATOR);
        for &(_, data, nul) in present {
            out.extend_from_slice(data);
            if nul {
                out.push(0);
            }
        }
        debug_assert_eq!(out.len() - start, offset);
    }

    /// The reply a SQL Server-like server sends (tds-handshake.md §2.3): VERSION,
    /// ENCRYPTION, INSTOPT `00`, THREADID empty, MARS `00`.
    pub fn server_reply(version: Version, encryption: Encryption) -> Prelogin {
        Prelogin {
            version,
            encryption: Some(encryption),
            instance: Some(vec![0]),
            thread_id: Some(ThreadId::Empty),
            mars: Some(0),
            trace_id: None,
            fed_auth_required: None,
            nonce: None,
        }
    }

    /// A client request laid out like tiberius 0.13's (tds-handshake.md §2.2): VERSION,
    /// ENCRYPTION, INSTOPT empty, THREADID 0, MARS off.
    pub fn client_request(version: Version, encryption: Encryption) -> Prelogin {
        Prelogin {
            version,
            encryption: Some(encryption),
            instance: Some(Vec::new()),
            thread_id: Some(ThreadId::Id(0)),
            mars: Some(0),
            trace_id: None,
            fed_auth_required: None,
            nonce: None,
        }
    }
}

/// Cuts option data to [`MAX_ENCODED_OPTION`] bytes so offsets fit their u16 fields.
fn capped(data: &[u8]) -> &[u8] {
    data.get(..MAX_ENCODED_OPTION.min(data.len()))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use PreloginErrorKind as K;

    fn err(payload: &[u8]) -> PreloginError {
        Prelogin::decode(payload, Side::Client).unwrap_err()
    }

    const VERSION_ENTRY: [u8; 5] = [0x00, 0x00, 0x0B, 0x00, 0x06];

    #[test]
    fn missing_terminator() {
        assert_eq!(
            err(&VERSION_ENTRY),
            PreloginError::new(K::MissingTerminator, 5)
        );
        assert_eq!(err(&[]), PreloginError::new(K::MissingTerminator, 0));
    }

    #[test]
    fn truncated_option_table() {
        assert_eq!(
            err(&[0x00, 0x00, 0x06]),
            PreloginError::new(K::TruncatedOptionTable, 0)
        );
    }

    #[test]
    fn unknown_token() {
        let mut p = VERSION_ENTRY.to_vec();
        p.extend([0x08, 0, 0, 0, 0, 0xFF]);
        assert_eq!(err(&p).kind, K::UnknownToken(0x08));
        assert_eq!(err(&p).offset, 5);
    }

    #[test]
    fn version_not_first_or_absent() {
        assert_eq!(
            err(&[0x01, 0x00, 0x06, 0x00, 0x01, 0xFF, 0x00]).kind,
            K::VersionNotFirst
        );
        assert_eq!(err(&[0xFF]).kind, K::VersionNotFirst);
    }

    #[test]
    fn duplicate_option() {
        let p = [
            0x00, 0x00, 0x10, 0x00, 0x06, 0x01, 0x00, 0x16, 0x00, 0x01, 0x01, 0x00, 0x17, 0x00,
            0x01, 0xFF, 0, 0, 0, 0, 0, 0, 1, 1,
        ];
        assert_eq!(err(&p), PreloginError::new(K::DuplicateOption(0x01), 10));
    }

    #[test]
    fn offsets_inside_table_out_of_range_and_overlapping() {
        // VERSION pointing at the table itself.
        let p = [0x00, 0x00, 0x00, 0x00, 0x06, 0xFF, 0, 0, 0, 0, 0, 0];
        assert_eq!(err(&p).kind, K::OffsetInsideTable(0x00));
        // VERSION running past the end.
        let p = [0x00, 0x00, 0x06, 0x00, 0x06, 0xFF, 0, 0];
        assert_eq!(err(&p).kind, K::OutOfRange(0x00));
        // ENCRYPTION inside VERSION's bytes.
        let p = [
            0x00, 0x00, 0x0B, 0x00, 0x06, 0x01, 0x00, 0x0C, 0x00, 0x01, 0xFF, 0, 0, 0, 0, 0, 0,
        ];
        assert_eq!(err(&p).kind, K::Overlap(0x00, 0x01));
    }

    #[test]
    fn bad_lengths() {
        let p = [0x00, 0x00, 0x06, 0x00, 0x05, 0xFF, 0, 0, 0, 0, 0];
        assert_eq!(err(&p).kind, K::BadLength(0x00));
        let mut p = vec![
            0x00, 0x00, 0x0B, 0x00, 0x06, 0x03, 0x00, 0x11, 0x00, 0x02, 0xFF,
        ];
        p.extend([0; 8]);
        assert_eq!(err(&p).kind, K::BadLength(0x03));
    }

    #[test]
    fn errors_display_what_and_where() {
        let e = PreloginError::new(K::UnknownToken(0x42), 5);
        assert_eq!(
            e.to_string(),
            "unknown PRELOGIN option token 0x42 at offset 5"
        );
        assert_eq!(e.kind.name(), "unknown_token");
    }

    #[test]
    fn every_option_round_trips() {
        let p = Prelogin {
            version: Version {
                major: 16,
                minor: 0,
                build: 4220,
                sub_build: 7,
            },
            encryption: Some(Encryption(0x81)),
            instance: Some(b"MSSQLServer".to_vec()),
            thread_id: Some(ThreadId::Id(0xDEAD_BEEF)),
            mars: Some(1),
            trace_id: Some((0..36).collect()),
            fed_auth_required: Some(1),
            nonce: Some([7; 32]),
        };
        for side in [Side::Client, Side::Server] {
            assert_eq!(Prelogin::decode(&p.encode(side), side).unwrap(), p);
        }
    }
}

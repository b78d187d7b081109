//! TLS record sniffing: just enough of RFC 5246 / RFC 8446 framing to see, from outside,
//! which versions were offered and chosen, whether ALPN `tds/8.0` was offered, and which
//! alerts were sent in clear (tds-handshake.md §7).

mod alert;
mod hello;

pub use alert::{Alert, AlertDescription, AlertLevel};
pub use hello::{ClientHelloFacts, HelloError, OfferedVersions, ServerHelloFacts};

use core::fmt;

/// Size of a TLS record header: type, version (2), length (2).
pub const RECORD_HEADER_LEN: usize = 5;

/// Size of a handshake message header: type, length (u24).
pub const HANDSHAKE_HEADER_LEN: usize = 4;

/// Largest record length a peer may send: 2^14 plaintext plus 2048 bytes of TLS 1.2
/// expansion (RFC 5246 §6.2.3). Anything larger is not TLS.
pub const MAX_RECORD_LEN: usize = (1 << 14) + 2048;

/// The ALPN protocol id TDS 8.0 uses (MS-TDS 3.3.5.1).
pub const ALPN_TDS8: &[u8] = b"tds/8.0";

/// TLS extension types this crate reads (RFC 8446 §4.2).
pub mod extension {
    /// server_name (SNI).
    pub const SERVER_NAME: u16 = 0x0000;
    /// application_layer_protocol_negotiation.
    pub const ALPN: u16 = 0x0010;
    /// supported_versions.
    pub const SUPPORTED_VERSIONS: u16 = 0x002B;
    /// key_share.
    pub const KEY_SHARE: u16 = 0x0033;
}

/// Record content types (RFC 8446 §5.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum ContentType {
    /// change_cipher_spec (20).
    ChangeCipherSpec = 20,
    /// alert (21).
    Alert = 21,
    /// handshake (22).
    Handshake = 22,
    /// application_data (23).
    ApplicationData = 23,
    /// heartbeat (24).
    Heartbeat = 24,
}

impl ContentType {
    /// Maps a raw content-type byte.
    pub fn from_u8(value: u8) -> Option<Self> {
        Some(match value {
            20 => Self::ChangeCipherSpec,
            21 => Self::Alert,
            22 => Self::Handshake,
            23 => Self::ApplicationData,
            24 => Self::Heartbeat,
            _ => return None,
        })
    }

    /// The raw byte.
    pub fn as_u8(self) -> u8 {
        self as u8
    }
}

/// True when `byte` can start a TLS record. No TDS packet type lies in 0x14..=0x18, which
/// is how a reader tells raw TLS from a TDS header (tds-handshake.md §1.2).
pub fn is_record_start(byte: u8) -> bool {
    ContentType::from_u8(byte).is_some()
}

/// A TLS protocol version as carried on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct TlsVersion(pub u16);

impl TlsVersion {
    /// SSL 3.0.
    pub const SSL3: Self = Self(0x0300);
    /// TLS 1.0.
    pub const TLS10: Self = Self(0x0301);
    /// TLS 1.1.
    pub const TLS11: Self = Self(0x0302);
    /// TLS 1.2.
    pub const TLS12: Self = Self(0x0303);
    /// TLS 1.3.
    pub const TLS13: Self = Self(0x0304);

    /// Human name, e.g. `"TLS 1.2"`, or `"unknown"`.
    pub fn name(self) -> &'static str {
        match self {
            Self::SSL3 => "SSL 3.0",
            Self::TLS10 => "TLS 1.0",
            Self::TLS11 => "TLS 1.1",
            Self::TLS12 => "TLS 1.2",
            Self::TLS13 => "TLS 1.3",
            _ => "unknown",
        }
    }

    /// GREASE values (RFC 8701) that clients sprinkle into version lists.
    pub fn is_grease(self) -> bool {
        let [hi, lo] = self.0.to_be_bytes();
        hi == lo && hi & 0x0F == 0x0A
    }
}

impl fmt::Display for TlsVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (0x{:04x})", self.name(), self.0)
    }
}

/// The 5-byte TLS record header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RecordHeader {
    /// Raw content type; see [`ContentType::from_u8`].
    pub content_type: u8,
    /// Legacy record version (`03 01` in a first ClientHello, `03 03` otherwise).
    pub version: TlsVersion,
    /// Length of the fragment that follows.
    pub length: u16,
}

impl RecordHeader {
    /// Reads the header from the first 5 bytes; `None` when fewer are available.
    pub fn parse(bytes: &[u8]) -> Option<RecordHeader> {
        let &[t, v0, v1, l0, l1] = bytes.first_chunk::<RECORD_HEADER_LEN>()?;
        Some(RecordHeader {
            content_type: t,
            version: TlsVersion(u16::from_be_bytes([v0, v1])),
            length: u16::from_be_bytes([l0, l1]),
        })
    }

    /// Encodes the header.
    pub fn encode(&self) -> [u8; RECORD_HEADER_LEN] {
        let [v0, v1] = self.version.0.to_be_bytes();
        let [l0, l1] = self.length.to_be_bytes();
        [self.content_type, v0, v1, l0, l1]
    }

    /// The content type, when known.
    pub fn known_type(&self) -> Option<ContentType> {
        ContentType::from_u8(self.content_type)
    }

    /// Wireshark's test for "this is TLS": a known content type, major version 3, minor
    /// at most 4 and a length within [`MAX_RECORD_LEN`].
    pub fn is_plausible(&self) -> bool {
        let [major, minor] = self.version.0.to_be_bytes();
        self.known_type().is_some()
            && major == 3
            && minor <= 4
            && usize::from(self.length) <= MAX_RECORD_LEN
    }
}

/// Handshake message types (RFC 8446 §4, RFC 5246 §7.4).
pub mod handshake_type {
    /// ClientHello.
    pub const CLIENT_HELLO: u8 = 1;
    /// ServerHello (and HelloRetryRequest).
    pub const SERVER_HELLO: u8 = 2;
    /// NewSessionTicket.
    pub const NEW_SESSION_TICKET: u8 = 4;
    /// EncryptedExtensions.
    pub const ENCRYPTED_EXTENSIONS: u8 = 8;
    /// Certificate.
    pub const CERTIFICATE: u8 = 11;
    /// ServerKeyExchange.
    pub const SERVER_KEY_EXCHANGE: u8 = 12;
    /// CertificateRequest.
    pub const CERTIFICATE_REQUEST: u8 = 13;
    /// ServerHelloDone.
    pub const SERVER_HELLO_DONE: u8 = 14;
    /// CertificateVerify.
    pub const CERTIFICATE_VERIFY: u8 = 15;
    /// ClientKeyExchange.
    pub const CLIENT_KEY_EXCHANGE: u8 = 16;
    /// Finished.
    pub const FINISHED: u8 = 20;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_header_plausibility_follows_wireshark() {
        let h = RecordHeader::parse(&[0x16, 0x03, 0x01, 0x05, 0xB1]).unwrap();
        assert!(h.is_plausible());
        assert_eq!(h.known_type(), Some(ContentType::Handshake));
        assert_eq!(h.encode(), [0x16, 0x03, 0x01, 0x05, 0xB1]);
        assert!(
            !RecordHeader::parse(&[0x16, 0x02, 0x01, 0, 1])
                .unwrap()
                .is_plausible()
        );
        assert!(
            !RecordHeader::parse(&[0x16, 0x03, 0x03, 0xFF, 0xFF])
                .unwrap()
                .is_plausible()
        );
        assert!(
            !RecordHeader::parse(&[0x12, 0x03, 0x03, 0, 1])
                .unwrap()
                .is_plausible()
        );
        assert_eq!(RecordHeader::parse(&[0x16, 0x03]), None);
    }

    #[test]
    fn version_names_and_grease() {
        assert_eq!(TlsVersion::TLS13.name(), "TLS 1.3");
        assert_eq!(TlsVersion(0x0200).name(), "unknown");
        assert!(TlsVersion(0x7A7A).is_grease());
        assert!(!TlsVersion::TLS12.is_grease());
    }

    /// legacy 0x0303, empty session id, one suite, null compression, then `exts`.
    fn client_hello(exts: &[u8]) -> Vec<u8> {
        let mut b = vec![0x03, 0x03];
        b.extend([0u8; 32]);
        b.extend([0, 0, 2, 0x13, 0x01, 1, 0]);
        b.extend(u16::try_from(exts.len()).unwrap().to_be_bytes());
        b.extend_from_slice(exts);
        b
    }

    #[test]
    fn client_hello_with_grease_versions_and_other_alpn() {
        let exts = [
            0x00, 0x2B, 0x00, 0x05, 0x04, 0x7A, 0x7A, 0x03, 0x04, // supported_versions
            0x00, 0x10, 0x00, 0x05, 0x00, 0x03, 0x02, b'h', b'2', // ALPN h2
        ];
        let f = ClientHelloFacts::parse(&client_hello(&exts)).unwrap();
        assert!(f.supported_versions_ext && f.alpn_offered && !f.alpn_tds8 && !f.sni);
        assert_eq!(f.offered_versions.max(), Some(TlsVersion::TLS13));
        assert_eq!(f.offered_versions.min(), Some(TlsVersion::TLS13));
        assert_eq!(f.cipher_suites, 1);
    }

    #[test]
    fn pre_1_3_client_hello_offers_its_legacy_version() {
        let mut b = client_hello(&[]);
        b.truncate(b.len() - 2); // no extensions block at all
        b[1] = 0x01;
        let f = ClientHelloFacts::parse(&b).unwrap();
        assert_eq!(f.offered_versions.max(), Some(TlsVersion::TLS10));
        assert!(!f.supported_versions_ext);
    }

    #[test]
    fn malformed_and_truncated_hellos_are_errors() {
        assert_eq!(ClientHelloFacts::parse(&[3, 3]), Err(HelloError::Truncated));
        let mut b = client_hello(&[0x00, 0x10, 0x00, 0x09]);
        assert_eq!(ClientHelloFacts::parse(&b), Err(HelloError::Malformed));
        b.truncate(10);
        assert_eq!(ServerHelloFacts::parse(&b), Err(HelloError::Truncated));
    }

    #[test]
    fn alert_record_round_trip() {
        let a = Alert::fatal(AlertDescription::NO_APPLICATION_PROTOCOL);
        let r = a.to_record(TlsVersion::TLS12);
        assert_eq!(r, [0x15, 3, 3, 0, 2, 2, 120]);
        assert_eq!(Alert::parse(&r[5..]), Some(a));
        assert_eq!(a.to_string(), "fatal alert no_application_protocol (120)");
        assert_eq!(AlertLevel::from_u8(7), AlertLevel::Unknown(7));
    }
}

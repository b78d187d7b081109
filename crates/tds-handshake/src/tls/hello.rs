//! ClientHello and ServerHello facts (RFC 8446 §4.1.2, §4.1.3; RFC 5246 §7.4.1).
//!
//! Parsers take the handshake message *body* (after the 4-byte handshake header) and
//! return small `Copy` summaries; they borrow and never allocate.

use core::fmt;

use super::{ALPN_TDS8, TlsVersion, extension};
use crate::cursor::Cursor;

/// Why a hello could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum HelloError {
    /// The body ends before a fixed field.
    Truncated,
    /// A length inside the body does not fit its container.
    Malformed,
}

impl fmt::Display for HelloError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Truncated => "TLS hello truncated",
            Self::Malformed => "TLS hello has inconsistent lengths",
        })
    }
}

impl std::error::Error for HelloError {}

/// A set of TLS versions from SSL 3.0 to TLS 1.3, as a bitset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct OfferedVersions(pub u8);

impl OfferedVersions {
    const ALL: [TlsVersion; 5] = [
        TlsVersion::SSL3,
        TlsVersion::TLS10,
        TlsVersion::TLS11,
        TlsVersion::TLS12,
        TlsVersion::TLS13,
    ];

    fn bit(version: TlsVersion) -> Option<u8> {
        let index = Self::ALL.iter().position(|v| *v == version)?;
        Some(1u8 << index)
    }

    /// Adds a version; versions outside SSL 3.0..=TLS 1.3 (and GREASE) are ignored.
    pub fn insert(&mut self, version: TlsVersion) {
        if let Some(bit) = Self::bit(version) {
            self.0 |= bit;
        }
    }

    /// True when `version` is in the set.
    pub fn contains(self, version: TlsVersion) -> bool {
        Self::bit(version).is_some_and(|bit| self.0 & bit != 0)
    }

    /// True when the set is empty.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The highest version in the set.
    pub fn max(self) -> Option<TlsVersion> {
        Self::ALL.iter().rev().copied().find(|v| self.contains(*v))
    }

    /// The lowest version in the set.
    pub fn min(self) -> Option<TlsVersion> {
        Self::ALL.iter().copied().find(|v| self.contains(*v))
    }
}

/// What a ClientHello reveals in clear.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ClientHelloFacts {
    /// ClientHello.legacy_version (the highest version for TLS ≤ 1.2 clients).
    pub legacy_version: TlsVersion,
    /// Versions offered: the supported_versions list when present, otherwise only
    /// `legacy_version` (a pre-1.3 client may also accept lower ones).
    pub offered_versions: OfferedVersions,
    /// True when the supported_versions extension (0x002B) was present.
    pub supported_versions_ext: bool,
    /// True when an ALPN extension was present.
    pub alpn_offered: bool,
    /// True when ALPN listed `tds/8.0` (TDS 8.0 strict, MS-TDS 3.3.5.1).
    pub alpn_tds8: bool,
    /// True when a server_name (SNI) extension was present.
    pub sni: bool,
    /// Number of cipher suites offered.
    pub cipher_suites: u16,
}

impl ClientHelloFacts {
    /// Reads a ClientHello body.
    pub fn parse(body: &[u8]) -> Result<ClientHelloFacts, HelloError> {
        let mut c = Cursor::new(body);
        let legacy_version = TlsVersion(c.u16_be().ok_or(HelloError::Truncated)?);
        c.take(32).ok_or(HelloError::Truncated)?; // random
        c.block_u8().ok_or(HelloError::Truncated)?; // legacy_session_id
        let suites = c.block_u16().ok_or(HelloError::Truncated)?;
        c.block_u8().ok_or(HelloError::Truncated)?; // legacy_compression_methods
        let mut facts = ClientHelloFacts {
            legacy_version,
            cipher_suites: u16::try_from(suites.len() / 2).unwrap_or(u16::MAX),
            ..ClientHelloFacts::default()
        };
        for_each_extension(&mut c, |ext_type, data| {
            match ext_type {
                extension::SERVER_NAME => facts.sni = true,
                extension::ALPN => {
                    facts.alpn_offered = true;
                    facts.alpn_tds8 = alpn_lists_tds8(data)?;
                }
                extension::SUPPORTED_VERSIONS => {
                    facts.supported_versions_ext = true;
                    let mut list = Cursor::new(data);
                    let mut versions = Cursor::new(list.block_u8().ok_or(HelloError::Malformed)?);
                    while let Some(v) = versions.u16_be() {
                        facts.offered_versions.insert(TlsVersion(v));
                    }
                }
                _ => {}
            }
            Ok(())
        })?;
        if !facts.supported_versions_ext {
            facts.offered_versions.insert(legacy_version);
        }
        Ok(facts)
    }
}

/// What a ServerHello reveals in clear.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ServerHelloFacts {
    /// The negotiated version: supported_versions when present (TLS 1.3), otherwise
    /// legacy_version.
    pub selected_version: TlsVersion,
    /// ServerHello.legacy_version (0x0303 under TLS 1.3).
    pub legacy_version: TlsVersion,
    /// The selected cipher suite.
    pub cipher_suite: u16,
    /// ALPN in the ServerHello: `None` when absent (always so under TLS 1.3, where ALPN
    /// travels in the encrypted EncryptedExtensions), else whether it chose `tds/8.0`.
    pub alpn_tds8: Option<bool>,
}

impl ServerHelloFacts {
    /// Reads a ServerHello body.
    pub fn parse(body: &[u8]) -> Result<ServerHelloFacts, HelloError> {
        let mut c = Cursor::new(body);
        let legacy_version = TlsVersion(c.u16_be().ok_or(HelloError::Truncated)?);
        c.take(32).ok_or(HelloError::Truncated)?; // random
        c.block_u8().ok_or(HelloError::Truncated)?; // legacy_session_id_echo
        let cipher_suite = c.u16_be().ok_or(HelloError::Truncated)?;
        c.u8().ok_or(HelloError::Truncated)?; // legacy_compression_method
        let mut facts = ServerHelloFacts {
            selected_version: legacy_version,
            legacy_version,
            cipher_suite,
            alpn_tds8: None,
        };
        for_each_extension(&mut c, |ext_type, data| {
            match ext_type {
                extension::SUPPORTED_VERSIONS => {
                    let v = Cursor::new(data).u16_be().ok_or(HelloError::Malformed)?;
                    facts.selected_version = TlsVersion(v);
                }
                extension::ALPN => facts.alpn_tds8 = Some(alpn_lists_tds8(data)?),
                _ => {}
            }
            Ok(())
        })?;
        Ok(facts)
    }
}

/// Walks the optional extensions block that ends a hello.
fn for_each_extension(
    c: &mut Cursor<'_>,
    mut visit: impl FnMut(u16, &[u8]) -> Result<(), HelloError>,
) -> Result<(), HelloError> {
    if c.remaining() == 0 {
        // Pre-TLS 1.2 hellos may omit the extensions block entirely.
        return Ok(());
    }
    let mut exts = Cursor::new(c.block_u16().ok_or(HelloError::Malformed)?);
    while exts.remaining() > 0 {
        let ext_type = exts.u16_be().ok_or(HelloError::Malformed)?;
        let data = exts.block_u16().ok_or(HelloError::Malformed)?;
        visit(ext_type, data)?;
    }
    Ok(())
}

/// True when an ALPN ProtocolNameList contains `tds/8.0`.
fn alpn_lists_tds8(data: &[u8]) -> Result<bool, HelloError> {
    let mut names = Cursor::new(Cursor::new(data).block_u16().ok_or(HelloError::Malformed)?);
    let mut found = false;
    while names.remaining() > 0 {
        found |= names.block_u8().ok_or(HelloError::Malformed)? == ALPN_TDS8;
    }
    Ok(found)
}

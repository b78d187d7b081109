//! TLS alerts (RFC 8446 §6): the reason a handshake failed, when sent in clear.

use core::fmt;

use super::{ContentType, TlsVersion};

/// Alert level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AlertLevel {
    /// 1: warning.
    Warning,
    /// 2: fatal.
    Fatal,
    /// Any other byte, kept as sent.
    Unknown(u8),
}

impl AlertLevel {
    /// Maps the raw byte.
    pub fn from_u8(value: u8) -> Self {
        match value {
            1 => Self::Warning,
            2 => Self::Fatal,
            other => Self::Unknown(other),
        }
    }

    /// The raw byte.
    pub fn as_u8(self) -> u8 {
        match self {
            Self::Warning => 1,
            Self::Fatal => 2,
            Self::Unknown(b) => b,
        }
    }
}

/// Alert description byte (RFC 8446 §6.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AlertDescription(pub u8);

impl AlertDescription {
    /// close_notify (0).
    pub const CLOSE_NOTIFY: Self = Self(0);
    /// unexpected_message (10).
    pub const UNEXPECTED_MESSAGE: Self = Self(10);
    /// bad_record_mac (20).
    pub const BAD_RECORD_MAC: Self = Self(20);
    /// handshake_failure (40): no common cipher suite; Schannel logs "fatal alert 40".
    pub const HANDSHAKE_FAILURE: Self = Self(40);
    /// bad_certificate (42).
    pub const BAD_CERTIFICATE: Self = Self(42);
    /// unsupported_certificate (43).
    pub const UNSUPPORTED_CERTIFICATE: Self = Self(43);
    /// certificate_expired (45).
    pub const CERTIFICATE_EXPIRED: Self = Self(45);
    /// certificate_unknown (46).
    pub const CERTIFICATE_UNKNOWN: Self = Self(46);
    /// illegal_parameter (47).
    pub const ILLEGAL_PARAMETER: Self = Self(47);
    /// unknown_ca (48): typically a self-signed server certificate.
    pub const UNKNOWN_CA: Self = Self(48);
    /// decode_error (50).
    pub const DECODE_ERROR: Self = Self(50);
    /// decrypt_error (51).
    pub const DECRYPT_ERROR: Self = Self(51);
    /// protocol_version (70): no acceptable TLS version.
    pub const PROTOCOL_VERSION: Self = Self(70);
    /// insufficient_security (71).
    pub const INSUFFICIENT_SECURITY: Self = Self(71);
    /// internal_error (80).
    pub const INTERNAL_ERROR: Self = Self(80);
    /// inappropriate_fallback (86).
    pub const INAPPROPRIATE_FALLBACK: Self = Self(86);
    /// user_canceled (90).
    pub const USER_CANCELED: Self = Self(90);
    /// missing_extension (109).
    pub const MISSING_EXTENSION: Self = Self(109);
    /// unsupported_extension (110).
    pub const UNSUPPORTED_EXTENSION: Self = Self(110);
    /// unrecognized_name (112): SNI mismatch.
    pub const UNRECOGNIZED_NAME: Self = Self(112);
    /// certificate_required (116).
    pub const CERTIFICATE_REQUIRED: Self = Self(116);
    /// no_application_protocol (120): ALPN `tds/8.0` refused.
    pub const NO_APPLICATION_PROTOCOL: Self = Self(120);

    /// The RFC name in snake_case, or `"unknown"`.
    pub fn name(self) -> &'static str {
        match self.0 {
            0 => "close_notify",
            10 => "unexpected_message",
            20 => "bad_record_mac",
            40 => "handshake_failure",
            42 => "bad_certificate",
            43 => "unsupported_certificate",
            45 => "certificate_expired",
            46 => "certificate_unknown",
            47 => "illegal_parameter",
            48 => "unknown_ca",
            50 => "decode_error",
            51 => "decrypt_error",
            70 => "protocol_version",
            71 => "insufficient_security",
            80 => "internal_error",
            86 => "inappropriate_fallback",
            90 => "user_canceled",
            109 => "missing_extension",
            110 => "unsupported_extension",
            112 => "unrecognized_name",
            116 => "certificate_required",
            120 => "no_application_protocol",
            _ => "unknown",
        }
    }
}

impl fmt::Display for AlertDescription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.name(), self.0)
    }
}

/// A TLS alert message: level and description.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Alert {
    /// Warning or fatal.
    pub level: AlertLevel,
    /// Why.
    pub description: AlertDescription,
}

impl Alert {
    /// A fatal alert.
    pub fn fatal(description: AlertDescription) -> Self {
        Self {
            level: AlertLevel::Fatal,
            description,
        }
    }

    /// Reads the 2-byte alert body (the record fragment); `None` when shorter.
    pub fn parse(fragment: &[u8]) -> Option<Alert> {
        let &[level, description] = fragment.first_chunk::<2>()?;
        Some(Alert {
            level: AlertLevel::from_u8(level),
            description: AlertDescription(description),
        })
    }

    /// The whole unencrypted alert record: `15 vv vv 00 02 level description`.
    pub fn to_record(&self, version: TlsVersion) -> [u8; 7] {
        let [v0, v1] = version.0.to_be_bytes();
        [
            ContentType::Alert.as_u8(),
            v0,
            v1,
            0,
            2,
            self.level.as_u8(),
            self.description.0,
        ]
    }
}

impl fmt::Display for Alert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let level = match self.level {
            AlertLevel::Warning => "warning",
            AlertLevel::Fatal => "fatal",
            AlertLevel::Unknown(_) => "unknown-level",
        };
        write!(f, "{level} alert {}", self.description)
    }
}

//! Typed PRELOGIN decoding errors.

use core::fmt;

/// What is wrong with a PRELOGIN payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PreloginErrorKind {
    /// The payload ends in the middle of an option-table entry.
    TruncatedOptionTable,
    /// The option table ends without the 0xFF TERMINATOR.
    MissingTerminator,
    /// A token MS-TDS 2.2.6.5 does not define.
    UnknownToken(u8),
    /// The first option is not VERSION (servers close the connection, MS-TDS 2.2.6.5).
    VersionNotFirst,
    /// The same option appears twice.
    DuplicateOption(u8),
    /// An option's data starts inside the option table.
    OffsetInsideTable(u8),
    /// An option's data runs past the end of the payload.
    OutOfRange(u8),
    /// Two options' data overlap.
    Overlap(u8, u8),
    /// An option has a length its type does not allow.
    BadLength(u8),
}

impl PreloginErrorKind {
    /// Stable snake_case name.
    pub fn name(self) -> &'static str {
        match self {
            Self::TruncatedOptionTable => "truncated_option_table",
            Self::MissingTerminator => "missing_terminator",
            Self::UnknownToken(_) => "unknown_token",
            Self::VersionNotFirst => "version_not_first",
            Self::DuplicateOption(_) => "duplicate_option",
            Self::OffsetInsideTable(_) => "offset_inside_table",
            Self::OutOfRange(_) => "out_of_range",
            Self::Overlap(..) => "overlap",
            Self::BadLength(_) => "bad_length",
        }
    }
}

/// A PRELOGIN payload that cannot be decoded, with the payload offset where it was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PreloginError {
    /// What is wrong.
    pub kind: PreloginErrorKind,
    /// Offset in the payload (after the packet header) of the offending entry or byte.
    pub offset: usize,
}

impl PreloginError {
    pub(crate) fn new(kind: PreloginErrorKind, offset: usize) -> Self {
        Self { kind, offset }
    }
}

impl fmt::Display for PreloginError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let at = self.offset;
        match self.kind {
            PreloginErrorKind::TruncatedOptionTable => {
                write!(f, "PRELOGIN option table truncated at offset {at}")
            }
            PreloginErrorKind::MissingTerminator => {
                write!(
                    f,
                    "PRELOGIN option table has no 0xFF terminator (ends at {at})"
                )
            }
            PreloginErrorKind::UnknownToken(t) => {
                write!(f, "unknown PRELOGIN option token 0x{t:02x} at offset {at}")
            }
            PreloginErrorKind::VersionNotFirst => {
                write!(
                    f,
                    "PRELOGIN must start with the VERSION option (offset {at})"
                )
            }
            PreloginErrorKind::DuplicateOption(t) => {
                write!(f, "PRELOGIN option 0x{t:02x} repeated at offset {at}")
            }
            PreloginErrorKind::OffsetInsideTable(t) => write!(
                f,
                "PRELOGIN option 0x{t:02x} points into the option table (entry at {at})"
            ),
            PreloginErrorKind::OutOfRange(t) => write!(
                f,
                "PRELOGIN option 0x{t:02x} data runs past the payload (entry at {at})"
            ),
            PreloginErrorKind::Overlap(a, b) => write!(
                f,
                "PRELOGIN options 0x{a:02x} and 0x{b:02x} overlap (entry at {at})"
            ),
            PreloginErrorKind::BadLength(t) => {
                write!(
                    f,
                    "PRELOGIN option 0x{t:02x} has an invalid length (entry at {at})"
                )
            }
        }
    }
}

impl std::error::Error for PreloginError {}

//! Zero-allocation PRELOGIN decoding.

use super::error::{PreloginError, PreloginErrorKind as Kind};
use super::{Prelogin, Side, ThreadId, Version, token};
use crate::encryption::Encryption;

/// Size of one option-table entry: token, offset (u16), length (u16).
const ENTRY_LEN: usize = 5;

/// A decoded PRELOGIN that borrows from the payload; it never allocates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PreloginView<'a> {
    /// VERSION.
    pub version: Version,
    /// ENCRYPTION.
    pub encryption: Option<Encryption>,
    /// INSTOPT: client, the name up to (not including) the first NUL; server, the raw bytes.
    pub instance: Option<&'a [u8]>,
    /// THREADID.
    pub thread_id: Option<ThreadId>,
    /// MARS.
    pub mars: Option<u8>,
    /// TRACEID raw bytes.
    pub trace_id: Option<&'a [u8]>,
    /// FEDAUTHREQUIRED.
    pub fed_auth_required: Option<u8>,
    /// NONCEOPT.
    pub nonce: Option<[u8; 32]>,
}

/// One option-table entry as read.
#[derive(Debug, Clone, Copy, Default)]
struct Entry {
    token: u8,
    offset: usize,
    len: usize,
    at: usize,
}

impl Entry {
    fn end(self) -> usize {
        self.offset.saturating_add(self.len)
    }
}

impl<'a> PreloginView<'a> {
    /// Decodes `payload` strictly: VERSION first, no duplicate or unknown tokens, the
    /// terminator present, every data range after the table, inside the payload and not
    /// overlapping another (MS-TDS 2.2.6.5). Never panics.
    pub fn parse(payload: &'a [u8], side: Side) -> Result<PreloginView<'a>, PreloginError> {
        let mut entries = [Entry::default(); 8];
        let mut count = 0usize;
        let mut seen = 0u16;
        let mut pos = 0usize;
        loop {
            let Some(&tok) = payload.get(pos) else {
                return Err(PreloginError::new(Kind::MissingTerminator, pos));
            };
            if tok == token::TERMINATOR {
                pos += 1;
                break;
            }
            if tok > token::NONCEOPT {
                return Err(PreloginError::new(Kind::UnknownToken(tok), pos));
            }
            if count == 0 && tok != token::VERSION {
                return Err(PreloginError::new(Kind::VersionNotFirst, pos));
            }
            let bit = 1u16 << tok;
            if seen & bit != 0 {
                return Err(PreloginError::new(Kind::DuplicateOption(tok), pos));
            }
            seen |= bit;
            let Some(&[_, o0, o1, l0, l1]) = payload.get(pos..pos.saturating_add(ENTRY_LEN)) else {
                return Err(PreloginError::new(Kind::TruncatedOptionTable, pos));
            };
            // At most 8 distinct tokens pass the checks above, so a slot always exists.
            if let Some(slot) = entries.get_mut(count) {
                *slot = Entry {
                    token: tok,
                    offset: usize::from(u16::from_be_bytes([o0, o1])),
                    len: usize::from(u16::from_be_bytes([l0, l1])),
                    at: pos,
                };
                count += 1;
            }
            pos = pos.saturating_add(ENTRY_LEN);
        }
        let table_end = pos;
        let entries = entries.get(..count).unwrap_or_default();
        if entries.is_empty() {
            return Err(PreloginError::new(Kind::VersionNotFirst, 0));
        }
        for (i, e) in entries.iter().enumerate() {
            if e.offset < table_end && e.len > 0 {
                return Err(PreloginError::new(Kind::OffsetInsideTable(e.token), e.at));
            }
            if e.end() > payload.len() {
                return Err(PreloginError::new(Kind::OutOfRange(e.token), e.at));
            }
            for other in entries.get(..i).unwrap_or_default() {
                let disjoint = e.len == 0
                    || other.len == 0
                    || e.end() <= other.offset
                    || other.end() <= e.offset;
                if !disjoint {
                    return Err(PreloginError::new(
                        Kind::Overlap(other.token, e.token),
                        e.at,
                    ));
                }
            }
        }

        let mut view = PreloginView {
            version: Version::default(),
            encryption: None,
            instance: None,
            thread_id: None,
            mars: None,
            trace_id: None,
            fed_auth_required: None,
            nonce: None,
        };
        for e in entries {
            let data = payload.get(e.offset..e.end()).unwrap_or_default();
            let bad = || PreloginError::new(Kind::BadLength(e.token), e.at);
            match e.token {
                token::VERSION => {
                    let b: [u8; 6] = data.try_into().map_err(|_| bad())?;
                    view.version = Version::from_bytes(b);
                }
                token::ENCRYPTION => view.encryption = Some(Encryption(one(data).ok_or_else(bad)?)),
                token::INSTOPT => {
                    view.instance = Some(match side {
                        // MBCS name, NUL-terminated; a missing NUL is tolerated.
                        Side::Client => data.split(|&b| b == 0).next().unwrap_or_default(),
                        Side::Server => data,
                    });
                }
                token::THREADID => {
                    view.thread_id = Some(match data {
                        [] => ThreadId::Empty,
                        &[a, b, c, d] => ThreadId::Id(u32::from_le_bytes([a, b, c, d])),
                        _ => return Err(bad()),
                    });
                }
                token::MARS => view.mars = Some(one(data).ok_or_else(bad)?),
                token::TRACEID => view.trace_id = Some(data),
                token::FEDAUTHREQUIRED => view.fed_auth_required = Some(one(data).ok_or_else(bad)?),
                _ => view.nonce = Some(data.try_into().map_err(|_| bad())?),
            }
        }
        Ok(view)
    }

    /// Copies the view into an owned [`Prelogin`].
    pub fn to_prelogin(&self) -> Prelogin {
        Prelogin {
            version: self.version,
            encryption: self.encryption,
            instance: self.instance.map(<[u8]>::to_vec),
            thread_id: self.thread_id,
            mars: self.mars,
            trace_id: self.trace_id.map(<[u8]>::to_vec),
            fed_auth_required: self.fed_auth_required,
            nonce: self.nonce,
        }
    }

    pub(crate) fn to_owned_prelogin(self) -> Prelogin {
        self.to_prelogin()
    }
}

/// The single byte of a 1-byte option.
fn one(data: &[u8]) -> Option<u8> {
    match data {
        &[b] => Some(b),
        _ => None,
    }
}

//! A bounds-checked reader over a byte slice, shared by the PRELOGIN and TLS parsers.
//!
//! Every read returns `None` instead of panicking when the input is too short, so the
//! parsers built on it never index out of bounds whatever the peer sends.

/// A forward-only cursor over borrowed bytes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Cursor<'a> {
    rest: &'a [u8],
}

impl<'a> Cursor<'a> {
    /// Starts reading at the beginning of `bytes`.
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Self { rest: bytes }
    }

    /// Bytes not yet read.
    pub(crate) fn remaining(&self) -> usize {
        self.rest.len()
    }

    /// Takes the next `n` bytes.
    pub(crate) fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if n > self.rest.len() {
            return None;
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Some(head)
    }

    /// Reads one byte.
    pub(crate) fn u8(&mut self) -> Option<u8> {
        let (&first, tail) = self.rest.split_first()?;
        self.rest = tail;
        Some(first)
    }

    /// Reads a big-endian u16.
    pub(crate) fn u16_be(&mut self) -> Option<u16> {
        let b = self.take(2)?;
        Some(u16::from_be_bytes([*b.first()?, *b.get(1)?]))
    }

    /// Reads a block prefixed by a one-byte length.
    pub(crate) fn block_u8(&mut self) -> Option<&'a [u8]> {
        let n = self.u8()?;
        self.take(usize::from(n))
    }

    /// Reads a block prefixed by a big-endian two-byte length.
    pub(crate) fn block_u16(&mut self) -> Option<&'a [u8]> {
        let n = self.u16_be()?;
        self.take(usize::from(n))
    }
}

//! Little-endian primitives shared by every encoder and decoder of the format. The reader
//! checks every length against what is left of its input, so no decoder can read out of bounds
//! or allocate more than the input justifies.

use super::DecodeError;
use uuid::Uuid;

/// Appends little-endian values to a byte vector.
pub(crate) trait WireWrite {
    fn put_u8(&mut self, v: u8);
    fn put_u16(&mut self, v: u16);
    fn put_u32(&mut self, v: u32);
    fn put_u64(&mut self, v: u64);
    fn put_i64(&mut self, v: i64);
    fn put_uuid(&mut self, v: &Uuid);
    /// A string of at most 255 bytes, longer ones are cut at a char boundary.
    fn put_str8(&mut self, v: &str);
    /// A string of at most 65535 bytes, longer ones are cut at a char boundary.
    fn put_str16(&mut self, v: &str);
}

/// Longest prefix of `s` that fits in `max` bytes and ends on a char boundary.
#[inline(always)]
pub(crate) fn truncate_str(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    cut_str(s, max)
}

#[cold]
fn cut_str(s: &str, max: usize) -> &str {
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

impl WireWrite for Vec<u8> {
    fn put_u8(&mut self, v: u8) {
        self.push(v);
    }
    fn put_u16(&mut self, v: u16) {
        self.extend_from_slice(&v.to_le_bytes());
    }
    fn put_u32(&mut self, v: u32) {
        self.extend_from_slice(&v.to_le_bytes());
    }
    fn put_u64(&mut self, v: u64) {
        self.extend_from_slice(&v.to_le_bytes());
    }
    fn put_i64(&mut self, v: i64) {
        self.extend_from_slice(&v.to_le_bytes());
    }
    fn put_uuid(&mut self, v: &Uuid) {
        self.extend_from_slice(v.as_bytes());
    }
    fn put_str8(&mut self, v: &str) {
        let v = truncate_str(v, u8::MAX as usize);
        self.put_u8(v.len() as u8);
        self.extend_from_slice(v.as_bytes());
    }
    fn put_str16(&mut self, v: &str) {
        let v = truncate_str(v, u16::MAX as usize);
        self.put_u16(v.len() as u16);
        self.extend_from_slice(v.as_bytes());
    }
}

/// A bounds-checked cursor over an input buffer.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// A reader at the start of `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    /// Bytes not read yet.
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// Current offset from the start of the input.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// True when every byte has been read.
    pub fn is_empty(&self) -> bool {
        self.remaining() == 0
    }

    /// The next `n` bytes.
    pub fn bytes(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], DecodeError> {
        if n > self.remaining() {
            return Err(DecodeError::Truncated {
                what,
                needed: n,
                remaining: self.remaining(),
            });
        }
        let out = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], DecodeError> {
        let b = self.bytes(N, what)?;
        let mut out = [0u8; N];
        out.copy_from_slice(b);
        Ok(out)
    }

    /// One byte.
    pub fn u8(&mut self, what: &'static str) -> Result<u8, DecodeError> {
        Ok(self.array::<1>(what)?[0])
    }
    /// A little-endian u16.
    pub fn u16(&mut self, what: &'static str) -> Result<u16, DecodeError> {
        Ok(u16::from_le_bytes(self.array(what)?))
    }
    /// A little-endian u32.
    pub fn u32(&mut self, what: &'static str) -> Result<u32, DecodeError> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }
    /// A little-endian u64.
    pub fn u64(&mut self, what: &'static str) -> Result<u64, DecodeError> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }
    /// A little-endian i64.
    pub fn i64(&mut self, what: &'static str) -> Result<i64, DecodeError> {
        Ok(i64::from_le_bytes(self.array(what)?))
    }
    /// 16 bytes of a UUID.
    pub fn uuid(&mut self, what: &'static str) -> Result<Uuid, DecodeError> {
        Ok(Uuid::from_bytes(self.array(what)?))
    }

    fn utf8(bytes: &'a [u8], what: &'static str) -> Result<&'a str, DecodeError> {
        utf8(bytes).map_err(|_| DecodeError::InvalidUtf8 { what })
    }
    /// A string with a one-byte length.
    pub fn str8(&mut self, what: &'static str) -> Result<&'a str, DecodeError> {
        let n = self.u8(what)? as usize;
        Self::utf8(self.bytes(n, what)?, what)
    }
    /// A string with a two-byte length.
    pub fn str16(&mut self, what: &'static str) -> Result<&'a str, DecodeError> {
        let n = self.u16(what)? as usize;
        Self::utf8(self.bytes(n, what)?, what)
    }

    /// Reads a count of items that each take at least `min_item_size` bytes, refusing counts
    /// the remaining input cannot hold (so a forged count never drives an allocation).
    pub fn count(
        &mut self,
        raw: usize,
        min_item_size: usize,
        what: &'static str,
    ) -> Result<usize, DecodeError> {
        if raw.saturating_mul(min_item_size.max(1)) > self.remaining() {
            return Err(DecodeError::Truncated {
                what,
                needed: raw.saturating_mul(min_item_size.max(1)),
                remaining: self.remaining(),
            });
        }
        Ok(raw)
    }
}

/// `bytes` as text, if they are valid UTF-8 (the same answer as [`std::str::from_utf8`]).
///
/// Decoders check every name, key and value they read, and most are short ASCII: those are
/// recognized eight bytes at a time, where the standard check goes byte by byte over a short
/// or unaligned value (about a hundred instructions for an attribute key or value of the
/// collector's benchmark). Other text goes through the standard check.
#[inline]
pub fn utf8(bytes: &[u8]) -> Result<&str, std::str::Utf8Error> {
    if is_ascii(bytes) {
        // SAFETY: every byte is under 0x80 (`is_ascii`), and a sequence of ASCII bytes is
        // valid UTF-8.
        return Ok(unsafe { std::str::from_utf8_unchecked(bytes) });
    }
    std::str::from_utf8(bytes)
}

/// True if no byte has its high bit set: whole words first, then the bytes left.
#[inline]
fn is_ascii(bytes: &[u8]) -> bool {
    let words = bytes.chunks_exact(8);
    let rest = words.remainder().iter().fold(0, |seen, b| seen | b);
    // A chunk of eight always converts; `u64::MAX` (not ASCII) would only say it did not.
    let words = words.fold(0, |seen, w| {
        seen | w.try_into().map_or(u64::MAX, u64::from_ne_bytes)
    });
    words & 0x8080_8080_8080_8080 == 0 && rest < 0x80
}

#[cfg(test)]
mod tests {
    use super::utf8;

    /// Short, long, unaligned and non-ASCII text, valid or not, with the odd byte in every
    /// place (kept small: this test also runs under Miri).
    #[test]
    fn text_is_what_the_standard_check_says() {
        let base: Vec<u8> = (0..40u8).map(|i| b'a' + i % 26).collect();
        let odd: [&[u8]; 6] = [
            b"\xc3\xa9",
            b"\xe2\x82\xac",
            b"\xff",
            b"\x80",
            b"\xc3",
            b"\x7f",
        ];
        for len in 0..base.len() {
            for start in 0..3.min(len + 1) {
                let ascii = &base[start..len];
                assert_eq!(utf8(ascii), std::str::from_utf8(ascii));
                for (place, bytes) in odd.iter().enumerate() {
                    let at = (place * 7) % (ascii.len() + 1);
                    let mut text = ascii.to_vec();
                    text.splice(at..at, bytes.iter().copied());
                    assert_eq!(utf8(&text), std::str::from_utf8(&text), "{text:?}");
                }
            }
        }
    }

    #[cfg(not(miri))]
    proptest::proptest! {
        #[test]
        fn any_bytes_are_text_exactly_when_the_standard_check_says(
            bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64),
            text in ".{0,24}",
        ) {
            proptest::prop_assert_eq!(utf8(&bytes), std::str::from_utf8(&bytes));
            proptest::prop_assert_eq!(utf8(text.as_bytes()), Ok(text.as_str()));
        }
    }
}

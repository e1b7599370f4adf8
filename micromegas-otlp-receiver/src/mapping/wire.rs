//! A reader of the protobuf wire format, so that a request can be mapped straight from its
//! bytes, with no decoded message in between (prost's decode allocates every string, id and
//! attribute of a request, then the mapping copies them once more).
//!
//! It accepts and refuses what prost's decode of the same message does: fields in any order,
//! unknown fields skipped (groups included), the last occurrence of a scalar field winning;
//! truncated fields, overlong varints, tag 0, a known field with another wire type, and text
//! that is not UTF-8 are errors.

use thiserror::Error;

/// Nesting of groups inside an unknown field past which a message is refused (prost's
/// recursion limit).
const MAX_DEPTH: u32 = 100;

/// Bytes that are not a valid protobuf encoding of the message read.
/// (Boxed, so that the results of the reader's hot functions stay two words.)
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("invalid protobuf: {0}")]
#[allow(clippy::box_collection)] // one word, not three: errors are rare, results are not
pub struct WireError(Box<String>);

impl WireError {
    #[cold]
    #[inline(never)]
    fn new(what: impl Into<String>) -> Self {
        Self(Box::new(what.into()))
    }
}

impl From<prost::DecodeError> for WireError {
    #[cold]
    fn from(e: prost::DecodeError) -> Self {
        Self::new(e.to_string())
    }
}

/// The value of one field, as its wire type carries it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Value<'a> {
    /// Wire type 0.
    Varint(u64),
    /// Wire type 1.
    Fixed64(u64),
    /// Wire type 2: bytes, text, an embedded message or a packed array.
    Bytes(&'a [u8]),
    /// Wire type 5.
    Fixed32(u32),
    /// A group (wire types 3 and 4, deprecated, used by no OTLP field), skipped: an unknown
    /// field is ignored, a known one is an error.
    Group,
}

impl<'a> Value<'a> {
    fn wire_type(&self) -> &'static str {
        match self {
            Value::Varint(_) => "varint",
            Value::Fixed64(_) => "64-bit",
            Value::Bytes(_) => "length-delimited",
            Value::Fixed32(_) => "32-bit",
            Value::Group => "a group",
        }
    }

    #[cold]
    #[inline(never)]
    fn mismatch(&self, field: &str, expected: &str) -> WireError {
        WireError::new(format!(
            "field {field} is {}, expected {expected}",
            self.wire_type()
        ))
    }

    /// A `bytes` field, or an embedded message.
    #[inline]
    pub fn bytes(self, field: &str) -> Result<&'a [u8], WireError> {
        match self {
            Value::Bytes(b) => Ok(b),
            other => Err(other.mismatch(field, "length-delimited")),
        }
    }

    /// A `string` field.
    #[inline]
    pub fn text(self, field: &str) -> Result<&'a str, WireError> {
        text(self.bytes(field)?, field)
    }

    /// A varint field (`int32`, `int64`, `uint32`, `uint64`, `bool`, enum), as its 64 bits.
    #[inline]
    pub fn varint(self, field: &str) -> Result<u64, WireError> {
        match self {
            Value::Varint(v) => Ok(v),
            other => Err(other.mismatch(field, "varint")),
        }
    }

    /// A `fixed64` or `double` field, as its 64 bits.
    #[inline]
    pub fn fixed64(self, field: &str) -> Result<u64, WireError> {
        match self {
            Value::Fixed64(v) => Ok(v),
            other => Err(other.mismatch(field, "64-bit")),
        }
    }

    /// A `fixed32` field.
    #[inline]
    pub fn fixed32(self, field: &str) -> Result<u32, WireError> {
        match self {
            Value::Fixed32(v) => Ok(v),
            other => Err(other.mismatch(field, "32-bit")),
        }
    }
}

/// The fields of one message, in the order of its bytes.
#[derive(Debug, Clone)]
pub struct Fields<'a> {
    buf: &'a [u8],
}

impl<'a> Fields<'a> {
    /// The fields of the message encoded in `buf`.
    #[inline]
    pub fn new(buf: &'a [u8]) -> Self {
        Self { buf }
    }

    #[inline]
    fn take(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        if n > self.buf.len() {
            return Err(WireError::new("a field runs past the end of its message"));
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }

    #[inline(always)]
    fn varint(&mut self) -> Result<u64, WireError> {
        // Keys and lengths are mostly under 128: one byte.
        if let Some((&byte, rest)) = self.buf.split_first() {
            if byte < 0x80 {
                self.buf = rest;
                return Ok(u64::from(byte));
            }
        }
        self.varint_long()
    }

    fn varint_long(&mut self) -> Result<u64, WireError> {
        let mut value = 0u64;
        for (i, &byte) in self.buf.iter().enumerate().take(10) {
            if i == 9 && byte > 1 {
                break; // more than 64 bits
            }
            value |= u64::from(byte & 0x7f) << (7 * i);
            if byte < 0x80 {
                self.buf = &self.buf[i + 1..];
                return Ok(value);
            }
        }
        Err(WireError::new("invalid varint"))
    }

    /// A field's key: its number and wire type.
    #[inline(always)]
    fn key(&mut self) -> Result<(u32, u8), WireError> {
        let key = self.varint()?;
        let key = u32::try_from(key).map_err(|_| WireError::new("invalid key"))?;
        let tag = key >> 3;
        if tag == 0 {
            return Err(WireError::new("invalid tag value: 0"));
        }
        Ok((tag, (key & 7) as u8))
    }

    /// The value of a field of wire type `wire_type` (not a group).
    #[inline(always)]
    fn value(&mut self, wire_type: u8) -> Result<Value<'a>, WireError> {
        Ok(match wire_type {
            0 => Value::Varint(self.varint()?),
            1 => Value::Fixed64(u64::from_le_bytes(fixed(self.take(8)?))),
            2 => {
                let len = usize::try_from(self.varint()?)
                    .map_err(|_| WireError::new("a field's length is too large"))?;
                Value::Bytes(self.take(len)?)
            }
            5 => Value::Fixed32(u32::from_le_bytes(fixed(self.take(4)?))),
            other => return Err(WireError::new(format!("invalid wire type {other}"))),
        })
    }

    /// Skips a group begun with tag `tag`, nested groups included.
    #[cold]
    fn skip_group(&mut self, tag: u32, depth: u32) -> Result<(), WireError> {
        if depth > MAX_DEPTH {
            return Err(WireError::new("groups nested too deep"));
        }
        loop {
            if self.buf.is_empty() {
                return Err(WireError::new("a group is not closed"));
            }
            let (inner, wire_type) = self.key()?;
            match wire_type {
                3 => self.skip_group(inner, depth + 1)?,
                4 if inner == tag => return Ok(()),
                4 => return Err(WireError::new("a group is closed with another tag")),
                w => {
                    self.value(w)?;
                }
            }
        }
    }

    /// The next field, or `None` at the end of the message. Always inlined: its result is a
    /// tagged union, which the caller's `match` then reads from registers rather than from
    /// memory just written (a stall); whether it was inlined used to depend on how the compiler
    /// split the crate, and moved the mapping's speed by 30 %.
    #[inline(always)]
    pub fn next_field(&mut self) -> Result<Option<(u32, Value<'a>)>, WireError> {
        if self.buf.is_empty() {
            return Ok(None);
        }
        let (tag, wire_type) = self.key()?;
        let value = match wire_type {
            3 => {
                self.skip_group(tag, 1)?;
                Value::Group
            }
            4 => return Err(WireError::new("a group is closed that was not opened")),
            w => self.value(w)?,
        };
        Ok(Some((tag, value)))
    }
}

/// `bytes` as text.
#[inline]
pub fn text<'a>(bytes: &'a [u8], field: &str) -> Result<&'a str, WireError> {
    match micromegas_core::transit::wire::utf8(bytes) {
        Ok(s) => Ok(s),
        Err(_) => Err(WireError::new(format!("field {field} is not valid UTF-8"))),
    }
}

/// The message of a field whose encoding is the usual one: key `key` (one byte), a one-byte
/// length, then the bytes, at the start of `buf`; with what follows. `None` for any other
/// encoding (the caller then reads the fields one by one).
#[inline]
pub fn short_field(buf: &[u8], key: u8) -> Option<(&[u8], &[u8])> {
    match buf {
        [k, len, rest @ ..] if *k == key && *len < 0x80 && usize::from(*len) <= rest.len() => {
            Some(rest.split_at(usize::from(*len)))
        }
        _ => None,
    }
}

/// The value of `buf` if it is exactly one valid varint.
#[inline]
pub fn whole_varint(buf: &[u8]) -> Option<u64> {
    let mut fields = Fields::new(buf);
    let v = fields.varint().ok()?;
    fields.buf.is_empty().then_some(v)
}

fn fixed<const N: usize>(b: &[u8]) -> [u8; N] {
    let mut out = [0; N];
    out.copy_from_slice(b);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
    use prost::Message;

    fn all(buf: &[u8]) -> Result<Vec<(u32, Value<'_>)>, WireError> {
        let mut fields = Fields::new(buf);
        let mut out = Vec::new();
        while let Some(f) = fields.next_field()? {
            out.push(f);
        }
        Ok(out)
    }

    #[test]
    fn reads_what_prost_writes() {
        let kv = KeyValue {
            key: "k".into(),
            value: Some(AnyValue {
                value: Some(any_value::Value::IntValue(-3)),
            }),
            key_strindex: 300,
        };
        let bytes = kv.encode_to_vec();
        let fields = all(&bytes).expect("valid");
        assert_eq!(fields[0].0, 1);
        assert_eq!(fields[0].1.text("key"), Ok("k"));
        let value = fields[1].1.bytes("value").expect("a message");
        let inner = all(value).expect("valid");
        assert_eq!(inner, vec![(3, Value::Varint((-3i64) as u64))]);
        assert_eq!(fields[2], (3, Value::Varint(300)));
    }

    #[test]
    fn skips_groups_and_refuses_what_prost_refuses() {
        // Field 5 as a group holding a varint field, then field 1 = 7.
        let grouped = [0x2b, 0x08, 0x01, 0x2c, 0x08, 0x07];
        assert_eq!(
            all(&grouped),
            Ok(vec![(5, Value::Group), (1, Value::Varint(7))])
        );
        assert!(Value::Group.text("key").is_err());
        for bad in [
            &[0x2b, 0x08, 0x01][..], // group not closed
            &[0x2c],                 // end of a group never opened
            &[0x0a, 0x05, 0x61],     // length past the end
            &[0x00, 0x01],           // tag 0
            &[0x0e],                 // wire type 6
            &[
                0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02,
            ], // 65 bits
            &[0x08, 0x80],           // truncated varint
            &[0x09, 0x01, 0x02],     // truncated fixed64
        ] {
            assert!(all(bad).is_err(), "{bad:?} was read");
            assert!(KeyValue::decode(bad).is_err(), "prost read {bad:?}");
        }
    }

    #[test]
    fn shortcuts_take_only_the_encoding_they_expect() {
        assert_eq!(whole_varint(&[0x96, 0x01]), Some(150));
        assert_eq!(whole_varint(&[0x96]), None);
        assert_eq!(whole_varint(&[0x01, 0x02]), None);
        assert_eq!(whole_varint(&[]), None);
        let field = [0x0a, 0x02, b'a', b'b', 0x10];
        assert_eq!(short_field(&field, 0x0a), Some((&b"ab"[..], &[0x10][..])));
        assert_eq!(short_field(&field, 0x12), None);
        assert_eq!(short_field(&[0x0a, 0x03, b'a'], 0x0a), None);
        assert_eq!(short_field(&[0x0a, 0x80, 0x01], 0x0a), None);
    }

    #[test]
    fn a_known_field_of_another_wire_type_or_bad_text_is_an_error() {
        let fields = all(&[0x08, 0x01]).expect("valid");
        assert!(fields[0].1.text("key").is_err());
        let fields = all(&[0x0a, 0x01, 0xff]).expect("valid");
        assert!(fields[0].1.text("key").is_err());
        assert_eq!(fields[0].1.bytes("key"), Ok(&[0xff][..]));
    }
}

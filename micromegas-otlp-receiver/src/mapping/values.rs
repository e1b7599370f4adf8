//! Attributes (`KeyValue`) and values (`AnyValue`) read from their bytes. The usual shapes, a
//! string, integer or boolean, are read in place; any other value (arrays, maps, bytes,
//! doubles, an indexed key) is decoded by prost and spelled by [`value_text`].

use super::common::{value_text, write_attribute};
use super::wire::{short_field, text, whole_varint, Fields, WireError};
use micromegas_lake::tables::AttributeWriter;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue};
use prost::Message;
use std::borrow::Cow;

/// A value read in place.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Scalar<'a> {
    /// No value.
    Absent,
    /// A string.
    Text(&'a str),
    /// An integer.
    Int(i64),
    /// A boolean.
    Bool(bool),
}

impl<'a> Scalar<'a> {
    /// Reads an `AnyValue` message holding a string, integer or boolean (or nothing); `None`
    /// when it holds any other value.
    #[inline]
    pub fn read(bytes: &'a [u8]) -> Result<Option<Self>, WireError> {
        // The usual encoding: one field, with a one-byte length for a string.
        match bytes {
            [0x0a, len, s @ ..] if usize::from(*len) == s.len() => {
                return Ok(Some(Self::Text(text(s, "AnyValue.string_value")?)))
            }
            [0x10, b] if *b < 0x80 => return Ok(Some(Self::Bool(*b != 0))),
            [0x18, v @ ..] => {
                if let Some(v) = whole_varint(v) {
                    return Ok(Some(Self::Int(v as i64)));
                }
            }
            _ => {}
        }
        let mut scalar = Self::Absent;
        let mut fields = Fields::new(bytes);
        while let Some((tag, v)) = fields.next_field()? {
            scalar = match tag {
                1 => Self::Text(v.text("AnyValue.string_value")?),
                2 => Self::Bool(v.varint("AnyValue.bool_value")? != 0),
                3 => Self::Int(v.varint("AnyValue.int_value")? as i64),
                4..=8 => return Ok(None),
                _ => scalar,
            };
        }
        Ok(Some(scalar))
    }

    /// The value as [`value_text`] spells it.
    pub fn text(self) -> Cow<'a, str> {
        match self {
            Self::Absent => Cow::Borrowed(""),
            Self::Text(s) => Cow::Borrowed(s),
            Self::Int(i) => Cow::Owned(i.to_string()),
            Self::Bool(b) => Cow::Borrowed(if b { "true" } else { "false" }),
        }
    }
}

/// The text of a value given as the bytes of its occurrences (a message field may occur
/// several times; prost merges them), as [`value_text`] spells it.
pub fn any_value_text<'a>(occurrences: &[&'a [u8]]) -> Result<Cow<'a, str>, WireError> {
    match occurrences {
        [] => Ok(Cow::Borrowed("")),
        [one] => match Scalar::read(one)? {
            Some(scalar) => Ok(scalar.text()),
            None => Ok(Cow::Owned(value_text(Some(&AnyValue::decode(*one)?)))),
        },
        several => {
            let mut value = AnyValue::default();
            for bytes in several {
                value.merge(*bytes)?;
            }
            Ok(Cow::Owned(value_text(Some(&value))))
        }
    }
}

/// An attribute, read from its bytes.
#[derive(Debug)]
pub enum Attribute<'a> {
    /// The usual shape, borrowed: a key and a string, integer or boolean value (or none).
    Scalar(&'a str, Scalar<'a>),
    /// Any other shape, decoded by prost (boxed: attributes are moved into lists, and most
    /// are scalars).
    Decoded(Box<KeyValue>),
}

impl<'a> Attribute<'a> {
    /// Reads a `KeyValue` message.
    #[inline]
    pub fn read(bytes: &'a [u8]) -> Result<Self, WireError> {
        // The usual encoding, which SDKs write: the key, then the value, each with a one-byte
        // length.
        if let Some((key, rest)) = short_field(bytes, 0x0a) {
            if let Some((value, [])) = short_field(rest, 0x12) {
                if let Some(scalar) = Scalar::read(value)? {
                    return Ok(Self::Scalar(text(key, "KeyValue.key")?, scalar));
                }
            }
        }
        Self::read_fields(bytes)
    }

    /// Reads a `KeyValue` message field by field.
    fn read_fields(bytes: &'a [u8]) -> Result<Self, WireError> {
        let decoded = || Ok(Self::Decoded(Box::new(KeyValue::decode(bytes)?)));
        let (mut key, mut value) = ("", None);
        let mut fields = Fields::new(bytes);
        while let Some((tag, v)) = fields.next_field()? {
            match tag {
                1 => key = v.text("KeyValue.key")?,
                2 if value.is_none() => value = Some(v.bytes("KeyValue.value")?),
                // A second value (merged into the first) or an indexed key.
                2 | 3 => return decoded(),
                _ => {}
            }
        }
        match Scalar::read(value.unwrap_or_default())? {
            Some(scalar) => Ok(Self::Scalar(key, scalar)),
            None => decoded(),
        }
    }

    /// The attribute's key.
    pub fn key(&self) -> &str {
        match self {
            Self::Scalar(key, _) => key,
            Self::Decoded(kv) => &kv.key,
        }
    }

    /// The value as [`value_text`] spells it.
    pub fn text(&self) -> String {
        match self {
            Self::Scalar(_, scalar) => scalar.text().into_owned(),
            Self::Decoded(kv) => value_text(kv.value.as_ref()),
        }
    }

    /// Adds the attribute to a map being built, as [`write_attribute`] does.
    pub fn write(&self, out: &mut AttributeWriter<'_>) {
        match self {
            Self::Scalar(key, Scalar::Int(i)) => out.entry(key, itoa::Buffer::new().format(*i)),
            Self::Scalar(key, scalar) => out.entry(key, &scalar.text()),
            Self::Decoded(kv) => write_attribute(out, &kv.key, kv.value.as_ref()),
        }
    }
}

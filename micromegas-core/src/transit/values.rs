//! Tagged values: the variable tail of an event (log arguments, properties).
//!
//! Each item is a tag byte, an optional key, then the value:
//!
//! | tag & 0x7f | value |
//! |---|---|
//! | 1 | i64, 8 bytes |
//! | 2 | u64, 8 bytes |
//! | 3 | f64, 8 bytes |
//! | 4 | bool, 1 byte (0 or 1) |
//! | 5 | string: u16 length + UTF-8 bytes |
//! | 6 | truncation marker: the writer ran out of room, later items are missing (no value) |
//!
//! When `tag & 0x80` is set the item is keyed: a u8 length and the UTF-8 key come right after
//! the tag, before the value. When `tag & 0x40` is set instead, the key is a u8 index into the
//! `fields` entry (comma-separated names) of the event's callsite dependency, so that field
//! names are sent once per block rather than per event.

use super::wire::{truncate_str, Reader, WireWrite};
use super::DecodeError;
use std::fmt;

/// Tag of an i64 value.
pub const TAG_I64: u8 = 1;
/// Tag of a u64 value.
pub const TAG_U64: u8 = 2;
/// Tag of an f64 value.
pub const TAG_F64: u8 = 3;
/// Tag of a bool value.
pub const TAG_BOOL: u8 = 4;
/// Tag of a string value.
pub const TAG_STR: u8 = 5;
/// Tag of the truncation marker.
pub const TAG_TRUNCATED: u8 = 6;
/// Bit set on the tag of a keyed item.
pub const KEYED: u8 = 0x80;
/// Bit set on the tag of an item keyed by field index.
pub const KEY_INDEX: u8 = 0x40;

/// A decoded value, borrowing strings from the block.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value<'a> {
    /// Signed integer.
    I64(i64),
    /// Unsigned integer.
    U64(u64),
    /// Float.
    F64(f64),
    /// Boolean.
    Bool(bool),
    /// String.
    Str(&'a str),
    /// The writer ran out of room; the items after this one were not recorded.
    Truncated,
}

impl fmt::Display for Value<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::I64(v) => write!(f, "{v}"),
            Value::U64(v) => write!(f, "{v}"),
            Value::F64(v) => write!(f, "{v}"),
            Value::Bool(v) => write!(f, "{v}"),
            Value::Str(v) => f.write_str(v),
            Value::Truncated => f.write_str("…"),
        }
    }
}

/// One item of a tail: a value and, for properties, its key.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TailItem<'a> {
    /// Key of a property; `None` for a positional log argument or an indexed field.
    pub key: Option<&'a str>,
    /// Index of the field in the callsite's `fields` list, for indexed items.
    pub index: Option<u8>,
    /// The value.
    pub value: Value<'a>,
}

/// Iterates the items of a tail; stops at the first malformed item with an error.
#[derive(Debug, Clone)]
pub struct TailIter<'a> {
    reader: Reader<'a>,
    failed: bool,
}

impl<'a> TailIter<'a> {
    /// Iterates over `tail`.
    pub fn new(tail: &'a [u8]) -> Self {
        Self {
            reader: Reader::new(tail),
            failed: false,
        }
    }

    fn next_item(&mut self) -> Result<TailItem<'a>, DecodeError> {
        let r = &mut self.reader;
        let tag = r.u8("tail tag")?;
        let key = if tag & KEYED != 0 {
            Some(r.str8("tail key")?)
        } else {
            None
        };
        let index = if tag & KEY_INDEX != 0 {
            Some(r.u8("tail field index")?)
        } else {
            None
        };
        let value = match tag & !(KEYED | KEY_INDEX) {
            TAG_I64 => Value::I64(r.i64("tail i64")?),
            TAG_U64 => Value::U64(r.u64("tail u64")?),
            TAG_F64 => Value::F64(f64::from_bits(r.u64("tail f64")?)),
            TAG_BOOL => match r.u8("tail bool")? {
                0 => Value::Bool(false),
                1 => Value::Bool(true),
                v => {
                    return Err(DecodeError::Invalid(format!(
                        "bool value {v} is not 0 or 1"
                    )))
                }
            },
            TAG_STR => Value::Str(r.str16("tail string")?),
            TAG_TRUNCATED => Value::Truncated,
            t => return Err(DecodeError::Invalid(format!("unknown tail value tag {t}"))),
        };
        Ok(TailItem { key, index, value })
    }
}

impl<'a> Iterator for TailIter<'a> {
    type Item = Result<TailItem<'a>, DecodeError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.reader.is_empty() {
            return None;
        }
        let item = self.next_item();
        self.failed = item.is_err();
        Some(item)
    }
}

/// Appends one tail item to `out` (for writers off the hot path and for tests).
pub fn encode_item(out: &mut Vec<u8>, key: Option<&str>, value: &Value<'_>) {
    let tag = match value {
        Value::I64(_) => TAG_I64,
        Value::U64(_) => TAG_U64,
        Value::F64(_) => TAG_F64,
        Value::Bool(_) => TAG_BOOL,
        Value::Str(_) => TAG_STR,
        Value::Truncated => TAG_TRUNCATED,
    };
    match key {
        Some(k) => {
            out.put_u8(tag | KEYED);
            out.put_str8(k);
        }
        None => out.put_u8(tag),
    }
    match value {
        Value::I64(v) => out.put_i64(*v),
        Value::U64(v) => out.put_u64(*v),
        Value::F64(v) => out.put_u64(v.to_bits()),
        Value::Bool(v) => out.put_u8(*v as u8),
        Value::Str(s) => out.put_str16(truncate_str(s, u16::MAX as usize)),
        Value::Truncated => {}
    }
}

/// Fills the `{}` placeholders of a format string with positional values. `{{` and `}}` are
/// literal braces; anything between braces (`{:?}`, `{:>8}`) counts as a placeholder. Missing
/// arguments leave the placeholder as written; extra arguments are appended.
pub fn format_message<'a>(fmt: &str, mut args: impl Iterator<Item = Value<'a>>) -> String {
    let mut out = String::with_capacity(fmt.len() + 16);
    let mut chars = fmt.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        match c {
            '{' if matches!(chars.peek(), Some((_, '{'))) => {
                chars.next();
                out.push('{');
            }
            '}' if matches!(chars.peek(), Some((_, '}'))) => {
                chars.next();
                out.push('}');
            }
            '{' => {
                let rest = &fmt[i..];
                match rest.find('}') {
                    Some(end) => {
                        let placeholder = &rest[..=end];
                        for _ in 0..placeholder.chars().count() - 1 {
                            chars.next();
                        }
                        match args.next() {
                            Some(v) => {
                                use std::fmt::Write;
                                let _ = write!(out, "{v}");
                            }
                            None => out.push_str(placeholder),
                        }
                    }
                    None => out.push('{'),
                }
            }
            c => out.push(c),
        }
    }
    for extra in args {
        use std::fmt::Write;
        let _ = write!(out, " {extra}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_placeholders() {
        let args = [Value::Str("bob"), Value::U64(12), Value::F64(1.5)];
        assert_eq!(
            format_message("user {} took {:?} ms {{x}} {}", args.into_iter()),
            "user bob took 12 ms {x} 1.5"
        );
        assert_eq!(
            format_message("a {} b {}", [Value::I64(-1)].into_iter()),
            "a -1 b {}"
        );
        assert_eq!(format_message("é {", std::iter::empty()), "é {");
    }

    #[test]
    fn tail_round_trip() {
        let mut buf = Vec::new();
        encode_item(&mut buf, None, &Value::I64(-3));
        encode_item(&mut buf, Some("k"), &Value::Str("v"));
        encode_item(&mut buf, None, &Value::Bool(true));
        encode_item(&mut buf, None, &Value::Truncated);
        let items: Vec<_> = TailIter::new(&buf).collect::<Result<_, _>>().unwrap();
        assert_eq!(items.len(), 4);
        assert_eq!(
            items[1],
            TailItem {
                key: Some("k"),
                index: None,
                value: Value::Str("v")
            }
        );
        assert_eq!(items[3].value, Value::Truncated);
    }
}

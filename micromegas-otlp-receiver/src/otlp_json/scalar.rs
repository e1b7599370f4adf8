//! One JSON value of a field, written as protobuf: numbers, strings (text, hex and base64
//! bytes, 64-bit integers, doubles and enum names spelled as strings), booleans; and the
//! protobuf wire primitives (varints, keys, lengths).

use super::schema::Kind;
use std::str::FromStr;

/// A JSON value that is not an object nor an array.
#[derive(Clone, Copy)]
pub(super) enum Prim<'a> {
    Bool(bool),
    U64(u64),
    I64(i64),
    F64(f64),
    Str(&'a str),
}

/// What a JSON value is, for an error message.
pub(super) fn describe(p: Prim<'_>) -> String {
    match p {
        Prim::Bool(b) => b.to_string(),
        Prim::U64(n) => n.to_string(),
        Prim::I64(n) => n.to_string(),
        Prim::F64(d) => d.to_string(),
        Prim::Str(s) if s.len() <= 40 => format!("the string {s:?}"),
        Prim::Str(s) => format!("a string of {} bytes", s.len()),
    }
}

pub(super) fn expected(what: &str, found: &str) -> String {
    format!("expected {what}, found {found}")
}

/// What a field of `kind` takes, for an error message.
pub(super) fn takes(kind: Kind) -> &'static str {
    match kind {
        Kind::Message(_) => "an object",
        Kind::Text => "a string",
        Kind::HexBytes => "hexadecimal text",
        Kind::Base64Bytes => "base64 text",
        Kind::Bool => "true or false",
        Kind::Fixed64 | Kind::Uint => UNSIGNED,
        Kind::Sfixed64 | Kind::Int => SIGNED,
        Kind::Fixed32 => UNSIGNED_32,
        Kind::Sint32 => SIGNED_32,
        Kind::Double => "a number (or \"NaN\", \"Infinity\", \"-Infinity\")",
        Kind::Enum(_) => "an enum number or name",
    }
}

const UNSIGNED: &str = "an unsigned integer";
const SIGNED: &str = "an integer";
const UNSIGNED_32: &str = "a 32-bit unsigned integer";
const SIGNED_32: &str = "a 32-bit integer";

const VARINT: u8 = 0;
const I64: u8 = 1;
pub(super) const LEN: u8 = 2;
const I32: u8 = 5;

pub(super) fn wire_type(kind: Kind) -> u8 {
    match kind {
        Kind::Message(_) | Kind::Text | Kind::HexBytes | Kind::Base64Bytes => LEN,
        Kind::Fixed64 | Kind::Sfixed64 | Kind::Double => I64,
        Kind::Fixed32 => I32,
        Kind::Bool | Kind::Uint | Kind::Int | Kind::Sint32 | Kind::Enum(_) => VARINT,
    }
}

/// Writes one value of a field of `kind` (not a message) without its key: a length-delimited
/// one with its length. The error says what the field takes and what was found.
pub(super) fn write(kind: Kind, p: Prim<'_>, out: &mut Vec<u8>) -> Result<(), String> {
    match kind {
        Kind::Message(_) => return Err(expected("an object", &describe(p))),
        Kind::Text => bytes(out, text(kind, p)?.as_bytes()),
        Kind::HexBytes => {
            let s = text(kind, p)?;
            let decoded = hex(s).ok_or_else(|| {
                expected(
                    "hexadecimal text (an even number of digits 0-9, a-f)",
                    &format!("{s:?}"),
                )
            })?;
            bytes(out, &decoded);
        }
        Kind::Base64Bytes => {
            let s = text(kind, p)?;
            let decoded = base64(s).ok_or_else(|| expected("base64 text", &format!("{s:?}")))?;
            bytes(out, &decoded);
        }
        Kind::Bool => match p {
            Prim::Bool(b) => varint(out, b as u64),
            _ => return Err(expected(takes(kind), &describe(p))),
        },
        Kind::Fixed64 => out.extend_from_slice(&integer::<u64>(kind, p)?.to_le_bytes()),
        Kind::Sfixed64 => out.extend_from_slice(&integer::<i64>(kind, p)?.to_le_bytes()),
        Kind::Fixed32 => out.extend_from_slice(&integer::<u32>(kind, p)?.to_le_bytes()),
        Kind::Uint => varint(out, integer::<u64>(kind, p)?),
        Kind::Int => varint(out, integer::<i64>(kind, p)? as u64),
        Kind::Sint32 => {
            let n = integer::<i32>(kind, p)?;
            varint(out, ((n << 1) ^ (n >> 31)) as u32 as u64);
        }
        Kind::Double => out.extend_from_slice(&double(p)?.to_le_bytes()),
        Kind::Enum(by_name) => {
            let n = match p {
                Prim::Str(name) => by_name(name).ok_or_else(|| {
                    expected("an enum value", &format!("the unknown name {name:?}"))
                })?,
                _ => integer::<i32>(kind, p)?,
            };
            varint(out, n as i64 as u64);
        }
    }
    Ok(())
}

fn text<'a>(kind: Kind, p: Prim<'a>) -> Result<&'a str, String> {
    match p {
        Prim::Str(s) => Ok(s),
        _ => Err(expected(takes(kind), &describe(p))),
    }
}

/// An integer of type `T`: a JSON number (`1e3` and `5.0` are integers too), or a decimal
/// string.
fn integer<T: FromStr + TryFrom<i128>>(kind: Kind, p: Prim<'_>) -> Result<T, String> {
    let n = match p {
        Prim::U64(n) => T::try_from(i128::from(n)).ok(),
        Prim::I64(n) => T::try_from(i128::from(n)).ok(),
        Prim::F64(d) if d.fract() == 0.0 && d.abs() < 2e19 => T::try_from(d as i128).ok(),
        Prim::Str(s) => s.parse().ok(),
        _ => None,
    };
    n.ok_or_else(|| {
        let what = format!("{} (a number or a decimal string)", takes(kind));
        expected(&what, &describe(p))
    })
}

/// A double: a JSON number, a decimal string, or one of the names of the values JSON numbers
/// cannot hold.
fn double(p: Prim<'_>) -> Result<f64, String> {
    let d = match p {
        Prim::U64(n) => Some(n as f64),
        Prim::I64(n) => Some(n as f64),
        Prim::F64(d) => Some(d),
        Prim::Str("NaN") => Some(f64::NAN),
        Prim::Str("Infinity") => Some(f64::INFINITY),
        Prim::Str("-Infinity") => Some(f64::NEG_INFINITY),
        Prim::Str(text) => text.parse().ok().filter(|d: &f64| d.is_finite()),
        Prim::Bool(_) => None,
    };
    d.ok_or_else(|| expected(takes(Kind::Double), &describe(p)))
}

/// The bytes of hexadecimal text, either case.
fn hex(s: &str) -> Option<Vec<u8>> {
    fn digit(c: u8) -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            b'A'..=b'F' => Some(c - b'A' + 10),
            _ => None,
        }
    }
    let s = s.as_bytes();
    if !s.len().is_multiple_of(2) {
        return None;
    }
    s.chunks_exact(2)
        .map(|pair| Some(digit(pair[0])? << 4 | digit(pair[1])?))
        .collect()
}

/// The bytes of base64 text: standard or URL-safe alphabet, padded or not.
fn base64(s: &str) -> Option<Vec<u8>> {
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE_NO_PAD};
    use base64::Engine;
    let unpadded = s.trim_end_matches('=');
    STANDARD
        .decode(s)
        .or_else(|_| STANDARD_NO_PAD.decode(unpadded))
        .or_else(|_| URL_SAFE_NO_PAD.decode(unpadded))
        .ok()
}

pub(super) fn varint(out: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        out.push(n as u8 | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

pub(super) fn key(out: &mut Vec<u8>, tag: u32, wire_type: u8) {
    varint(out, (tag as u64) << 3 | wire_type as u64);
}

fn bytes(out: &mut Vec<u8>, b: &[u8]) {
    varint(out, b.len() as u64);
    out.extend_from_slice(b);
}

/// Puts the length of what was written since `start` in front of it.
pub(super) fn close_len(out: &mut Vec<u8>, start: usize) {
    let (mut prefix, mut n, mut len) = ([0u8; 10], (out.len() - start) as u64, 0);
    while n >= 0x80 {
        prefix[len] = n as u8 | 0x80;
        n >>= 7;
        len += 1;
    }
    prefix[len] = n as u8;
    out.splice(start..start, prefix[..=len].iter().copied());
}

//! The JSON read token by token (serde's visitors over `serde_json`'s reader), each value
//! written as protobuf as soon as it is read: no tree of JSON values, and keys are matched
//! where they lie in the body.

use super::scalar::{self, describe, expected, takes, Prim, LEN};
use super::schema::{Field, Fields, Kind};
use super::{find, Step};
use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use std::fmt;

/// The output, the path to the value being read, and the first bad value met.
#[derive(Default)]
pub(super) struct Ctx {
    pub out: Vec<u8>,
    path: Vec<Step>,
    /// The path and message of a value of the wrong kind (the reader then stops).
    pub fail: Option<(Vec<Step>, String)>,
}

impl Ctx {
    /// Room for the output of a body of `len` bytes.
    pub(super) fn for_body(len: usize) -> Self {
        Self {
            out: Vec::with_capacity(len / 2),
            ..Default::default()
        }
    }

    /// Records a bad value at the current path; the error stops the reader.
    fn fail<E: de::Error>(&mut self, message: String) -> E {
        self.fail = Some((std::mem::take(&mut self.path), message));
        E::custom("a value of the wrong kind")
    }
}

/// What a JSON value is read as.
#[derive(Clone, Copy)]
enum Role {
    /// The fields of a message: the top, or a message's content.
    Message(Fields),
    /// The value of a field (all of its values, for a repeated one): written with its key,
    /// nothing for `null`.
    Field(&'static Field),
    /// One element of a repeated field of messages or strings, written with its key.
    Element(&'static Field),
    /// One element of a packed repeated number field, written without key.
    Packed(Kind),
}

/// Reads one JSON value in its role.
pub(super) struct Node<'c> {
    role: Role,
    ctx: &'c mut Ctx,
}

impl<'c> Node<'c> {
    pub(super) fn message(fields: Fields, ctx: &'c mut Ctx) -> Self {
        Self {
            role: Role::Message(fields),
            ctx,
        }
    }

    /// A JSON value that is not an object nor an array.
    fn prim<E: de::Error>(self, p: Prim<'_>) -> Result<(), E> {
        let written = match self.role {
            Role::Message(_) => Err(expected("an object", &describe(p))),
            Role::Field(f) if f.repeated => Err(expected("an array", &describe(p))),
            Role::Field(f) | Role::Element(f) => {
                scalar::key(&mut self.ctx.out, f.tag, scalar::wire_type(f.kind));
                scalar::write(f.kind, p, &mut self.ctx.out)
            }
            Role::Packed(kind) => scalar::write(kind, p, &mut self.ctx.out),
        };
        written.map_err(|message| self.ctx.fail(message))
    }

    /// An object, or an array, where the role takes none.
    fn wrong<E: de::Error>(self, found: &str) -> E {
        let what = match self.role {
            Role::Message(_) => "an object",
            Role::Field(f) if f.repeated => "an array",
            Role::Field(f) | Role::Element(f) => takes(f.kind),
            Role::Packed(kind) => takes(kind),
        };
        self.ctx.fail(expected(what, found))
    }
}

impl<'de> DeserializeSeed<'de> for Node<'_> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

/// Reads the fields of a message from a JSON object: unknown keys are skipped.
fn fields<'de, A: MapAccess<'de>>(
    fields: Fields,
    ctx: &mut Ctx,
    mut map: A,
) -> Result<(), A::Error> {
    while let Some(found) = map.next_key_seed(KeySeed(fields))? {
        match found {
            Some(f) => {
                ctx.path.push(Step::Key(f.name));
                map.next_value_seed(Node {
                    role: Role::Field(f),
                    ctx: &mut *ctx,
                })?;
                ctx.path.pop();
            }
            None => {
                map.next_value::<IgnoredAny>()?;
            }
        }
    }
    Ok(())
}

impl<'de> Visitor<'de> for Node<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an OTLP/JSON value")
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        match self.role {
            // `null` is an absent field, or a message with no field set.
            Role::Message(_) | Role::Field(_) => Ok(()),
            Role::Element(f) if matches!(f.kind, Kind::Message(_)) => {
                // An element of a list of messages written as `null` (as some writers do
                // for an empty `AnyValue`): a message with no field set.
                scalar::key(&mut self.ctx.out, f.tag, LEN);
                self.ctx.out.push(0);
                Ok(())
            }
            Role::Element(_) | Role::Packed(_) => Err(self.wrong("null")),
        }
    }

    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        self.visit_unit()
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<(), E> {
        self.prim(Prim::Bool(v))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<(), E> {
        self.prim(Prim::U64(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<(), E> {
        self.prim(Prim::I64(v))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<(), E> {
        self.prim(Prim::F64(v))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        self.prim(Prim::Str(v))
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<(), A::Error> {
        let f = match self.role {
            Role::Message(message) => return fields(message, self.ctx, map),
            Role::Field(f) if !f.repeated => f,
            Role::Element(f) => f,
            Role::Field(_) | Role::Packed(_) => return Err(self.wrong("an object")),
        };
        let Kind::Message(message) = f.kind else {
            return Err(self.wrong("an object"));
        };
        scalar::key(&mut self.ctx.out, f.tag, LEN);
        let start = self.ctx.out.len();
        fields(message, self.ctx, map)?;
        scalar::close_len(&mut self.ctx.out, start);
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let f = match self.role {
            Role::Field(f) if f.repeated => f,
            _ => return Err(self.wrong("an array")),
        };
        let ctx = self.ctx;
        let packed = scalar::wire_type(f.kind) != LEN;
        let before_key = ctx.out.len();
        if packed {
            scalar::key(&mut ctx.out, f.tag, LEN);
        }
        let start = ctx.out.len();
        let role = if packed {
            Role::Packed(f.kind)
        } else {
            Role::Element(f)
        };
        let mut i = 0;
        loop {
            ctx.path.push(Step::Index(i));
            let element = seq.next_element_seed(Node {
                role,
                ctx: &mut *ctx,
            })?;
            ctx.path.pop();
            if element.is_none() {
                break;
            }
            i += 1;
        }
        if packed && i == 0 {
            ctx.out.truncate(before_key);
        } else if packed {
            scalar::close_len(&mut ctx.out, start);
        }
        Ok(())
    }
}

/// Reads a key, and finds the field it names (`None` for a key this version does not know).
struct KeySeed(Fields);

impl<'de> DeserializeSeed<'de> for KeySeed {
    type Value = Option<&'static Field>;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeySeed {
    type Value = Option<&'static Field>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a key")
    }

    fn visit_str<E: de::Error>(self, key: &str) -> Result<Self::Value, E> {
        Ok(find(self.0, key))
    }
}

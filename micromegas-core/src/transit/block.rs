//! Blocks: a header and an LZ4-compressed payload of events followed by their dependencies.

use super::layout::{EventLayout, FieldType};
use super::values::TailIter;
use super::wire::{Reader, WireWrite};
use super::DecodeError;
use crate::model::StreamInfo;
use std::collections::HashMap;
use uuid::Uuid;

/// Largest decompressed payload a decoder accepts (32 MiB).
pub const MAX_PAYLOAD_BYTES: usize = 32 << 20;
/// LZ4 cannot expand its input by more than this factor; a header that claims more is forged.
const MAX_LZ4_RATIO: usize = 255;

/// Payload compression.
#[repr(u8)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// Stored as is.
    None = 0,
    /// LZ4 block format (lz4_flex), without size prefix.
    Lz4 = 1,
}

/// Header of a block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockHeader {
    /// Random id, unique across processes; writes are idempotent by it.
    pub block_id: Uuid,
    /// Stream the block belongs to.
    pub stream_id: Uuid,
    /// Position of the block in its stream, from 0.
    pub sequence: u64,
    /// Ticks of the first event.
    pub begin_ticks: u64,
    /// Ticks of the last event.
    pub end_ticks: u64,
    /// Wall time of the first event, ns since the Unix epoch.
    pub begin_unix_nanos: i64,
    /// Wall time of the last event, ns since the Unix epoch.
    pub end_unix_nanos: i64,
    /// Number of events.
    pub event_count: u32,
    /// Payload compression.
    pub compression: Compression,
    /// Size of the payload once decompressed.
    pub uncompressed_len: u32,
    /// Size of the event section at the start of the decompressed payload; the dependency
    /// section follows it.
    pub events_len: u32,
}

/// A block as sent on the wire: header plus compressed payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    /// Header.
    pub header: BlockHeader,
    /// Payload, compressed as the header says.
    pub payload: Vec<u8>,
}

/// What a dependency describes.
#[repr(u8)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DependencyKind {
    /// A span callsite (`name`, `target`, `file`, `line`).
    SpanCallsite = 1,
    /// A log callsite (`level`, `target`, `fmt`, `file`, `line`).
    LogCallsite = 2,
    /// A metric callsite (`name`, `unit`, `target`, `file`, `line`).
    MetricCallsite = 3,
    /// Any other static description, as key/value pairs.
    Other = 4,
}

impl DependencyKind {
    fn from_u8(v: u8) -> Option<Self> {
        Some(match v {
            1 => DependencyKind::SpanCallsite,
            2 => DependencyKind::LogCallsite,
            3 => DependencyKind::MetricCallsite,
            4 => DependencyKind::Other,
            _ => return None,
        })
    }
}

/// Static data that events of a block refer to by id, sent once per block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dependency {
    /// Id used by the events' `DepRef` fields.
    pub id: u64,
    /// What it describes.
    pub kind: DependencyKind,
    /// Its content as key/value pairs.
    pub entries: Vec<(String, String)>,
}

impl Dependency {
    /// The value of entry `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.entries
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// Appends one dependency to a payload under construction (for [`Describe`] functions).
///
/// [`Describe`]: crate::metadata::Describe
pub fn encode_dependency(
    out: &mut Vec<u8>,
    id: u64,
    kind: DependencyKind,
    entries: &[(&str, &str)],
) {
    out.put_u64(id);
    out.put_u8(kind as u8);
    out.put_u8(entries.len() as u8);
    for (k, v) in entries {
        out.put_str8(k);
        out.put_str16(v);
    }
}

impl Block {
    /// Compresses `payload` (events then dependencies) and builds the block.
    pub fn seal(header: BlockHeader, payload: &[u8]) -> Self {
        Self::seal_with(header, payload, &mut Vec::new())
    }

    /// [`Block::seal`] compressing into `scratch` first, so that a caller sealing many blocks
    /// allocates only the exact compressed size for each (no large transient allocation).
    pub fn seal_with(mut header: BlockHeader, payload: &[u8], scratch: &mut Vec<u8>) -> Self {
        scratch.resize(lz4_flex::block::get_maximum_output_size(payload.len()), 0);
        let compressed = match lz4_flex::block::compress_into(payload, scratch) {
            Ok(n) => scratch[..n].to_vec(),
            // Cannot happen: the scratch has the maximum output size.
            Err(_) => lz4_flex::block::compress(payload),
        };
        header.uncompressed_len = payload.len() as u32;
        header.compression = Compression::Lz4;
        Self {
            header,
            payload: compressed,
        }
    }

    /// Encoded size in bytes.
    pub fn encoded_len(&self) -> usize {
        HEADER_LEN + self.payload.len()
    }

    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        let h = &self.header;
        out.put_uuid(&h.block_id);
        out.put_uuid(&h.stream_id);
        out.put_u64(h.sequence);
        out.put_u64(h.begin_ticks);
        out.put_u64(h.end_ticks);
        out.put_i64(h.begin_unix_nanos);
        out.put_i64(h.end_unix_nanos);
        out.put_u32(h.event_count);
        out.put_u8(h.compression as u8);
        out.put_u32(h.uncompressed_len);
        out.put_u32(h.events_len);
        out.put_u32(self.payload.len() as u32);
        out.extend_from_slice(&self.payload);
    }

    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let block_id = r.uuid("block id")?;
        let stream_id = r.uuid("block stream id")?;
        let sequence = r.u64("block sequence")?;
        let begin_ticks = r.u64("block begin ticks")?;
        let end_ticks = r.u64("block end ticks")?;
        let begin_unix_nanos = r.i64("block begin time")?;
        let end_unix_nanos = r.i64("block end time")?;
        let event_count = r.u32("block event count")?;
        let compression = match r.u8("block compression")? {
            0 => Compression::None,
            1 => Compression::Lz4,
            c => return Err(DecodeError::Invalid(format!("unknown compression {c}"))),
        };
        let uncompressed_len = r.u32("block uncompressed length")?;
        let events_len = r.u32("block events length")?;
        if events_len > uncompressed_len {
            return Err(DecodeError::Invalid(format!(
                "events section ({events_len} bytes) is larger than the payload ({uncompressed_len} bytes)"
            )));
        }
        let payload_len = r.u32("block payload length")? as usize;
        let payload = r.bytes(payload_len, "block payload")?.to_vec();
        Ok(Self {
            header: BlockHeader {
                block_id,
                stream_id,
                sequence,
                begin_ticks,
                end_ticks,
                begin_unix_nanos,
                end_unix_nanos,
                event_count,
                compression,
                uncompressed_len,
                events_len,
            },
            payload,
        })
    }

    /// Decompresses the payload and reads the dependencies. Memory is bounded by
    /// [`MAX_PAYLOAD_BYTES`] and by 255 times the compressed size.
    pub fn decode_payload(&self) -> Result<Payload, DecodeError> {
        let h = &self.header;
        let len = h.uncompressed_len as usize;
        let bytes = match h.compression {
            Compression::None => {
                if self.payload.len() != len {
                    return Err(DecodeError::Invalid(format!(
                        "stored payload is {} bytes, header says {len}",
                        self.payload.len()
                    )));
                }
                self.payload.clone()
            }
            Compression::Lz4 => {
                let limit =
                    MAX_PAYLOAD_BYTES.min(self.payload.len().saturating_mul(MAX_LZ4_RATIO) + 64);
                if len > limit {
                    return Err(DecodeError::TooLarge {
                        what: "block payload",
                        size: len,
                        limit,
                    });
                }
                let mut out = vec![0u8; len];
                let n = lz4_flex::block::decompress_into(&self.payload, &mut out)
                    .map_err(|e| DecodeError::Decompress(e.to_string()))?;
                if n != len {
                    return Err(DecodeError::Invalid(format!(
                        "payload decompressed to {n} bytes, header says {len}"
                    )));
                }
                out
            }
        };
        let events_len = h.events_len as usize;
        if events_len > bytes.len() {
            return Err(DecodeError::Invalid(format!(
                "events section ({events_len} bytes) is larger than the payload ({} bytes)",
                bytes.len()
            )));
        }
        let mut r = Reader::new(&bytes[events_len..]);
        let mut deps = HashMap::new();
        while !r.is_empty() {
            let id = r.u64("dependency id")?;
            let raw_kind = r.u8("dependency kind")?;
            let kind = DependencyKind::from_u8(raw_kind).ok_or_else(|| {
                DecodeError::Invalid(format!("unknown dependency kind {raw_kind}"))
            })?;
            let n = r.u8("dependency entry count")? as usize;
            let n = r.count(n, 3, "dependency entries")?;
            let mut entries = Vec::with_capacity(n);
            for _ in 0..n {
                let k = r.str8("dependency key")?.to_owned();
                let v = r.str16("dependency value")?.to_owned();
                entries.push((k, v));
            }
            deps.insert(id, Dependency { id, kind, entries });
        }
        Ok(Payload {
            bytes,
            events_len,
            deps,
            begin_ticks: h.begin_ticks,
        })
    }
}

const HEADER_LEN: usize = 16 + 16 + 8 * 5 + 4 + 1 + 4 + 4 + 4;

/// A decompressed payload: its events and the dependencies they refer to.
#[derive(Debug, Clone)]
pub struct Payload {
    bytes: Vec<u8>,
    events_len: usize,
    deps: HashMap<u64, Dependency>,
    begin_ticks: u64,
}

impl Payload {
    /// The dependencies of the block, by id.
    pub fn dependencies(&self) -> &HashMap<u64, Dependency> {
        &self.deps
    }

    /// Iterates over the events, decoding each with the layouts of `stream`.
    pub fn events<'a>(&'a self, stream: &'a StreamInfo) -> EventIter<'a> {
        EventIter {
            reader: Reader::new(&self.bytes[..self.events_len]),
            stream,
            deps: &self.deps,
            failed: false,
            ticks: self.begin_ticks,
        }
    }
}

/// Iterator over the events of a payload. Yields an error and stops at the first malformed
/// event.
#[derive(Debug)]
pub struct EventIter<'a> {
    reader: Reader<'a>,
    stream: &'a StreamInfo,
    deps: &'a HashMap<u64, Dependency>,
    failed: bool,
    /// Ticks of the previous event, to accumulate `TicksDelta32` fields.
    ticks: u64,
}

impl<'a> EventIter<'a> {
    fn next_event(&mut self) -> Result<EventRef<'a>, DecodeError> {
        let r = &mut self.reader;
        let type_id = r.u8("event type")?;
        let layout = self
            .stream
            .layout(type_id)
            .ok_or(DecodeError::UnknownEventType(type_id))?;
        let fixed = r.bytes(layout.size as usize, "event fields")?;
        let tail = if layout.has_tail {
            let n = r.u16("event tail length")? as usize;
            r.bytes(n, "event tail")?
        } else {
            &[]
        };
        let mut ticks = None;
        if let Some(f) = layout.field_of_type(FieldType::TicksDelta32) {
            let off = f.offset as usize;
            let delta =
                i32::from_le_bytes([fixed[off], fixed[off + 1], fixed[off + 2], fixed[off + 3]]);
            self.ticks = self.ticks.wrapping_add(delta as i64 as u64);
            ticks = Some(self.ticks);
        }
        Ok(EventRef {
            layout,
            fixed,
            tail,
            deps: self.deps,
            ticks,
        })
    }
}

impl<'a> Iterator for EventIter<'a> {
    type Item = Result<EventRef<'a>, DecodeError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.reader.is_empty() {
            return None;
        }
        let ev = self.next_event();
        self.failed = ev.is_err();
        Some(ev)
    }
}

/// A value of a fixed field.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum FieldValue<'a> {
    /// Unsigned integer (`U8`, `U32`, `U64`, `Ticks`, `SpanId`).
    U64(u64),
    /// Signed integer.
    I64(i64),
    /// Float.
    F64(f64),
    /// A resolved dependency reference.
    Dep(&'a Dependency),
}

/// One event, decoded lazily through its layout.
#[derive(Debug, Clone, Copy)]
pub struct EventRef<'a> {
    /// The layout the stream gives for this event's type.
    pub layout: &'a EventLayout,
    fixed: &'a [u8],
    tail: &'a [u8],
    deps: &'a HashMap<u64, Dependency>,
    ticks: Option<u64>,
}

impl<'a> EventRef<'a> {
    /// Name of the event type.
    pub fn name(&self) -> &'a str {
        &self.layout.name
    }

    fn raw_u64(&self, offset: usize, size: usize) -> u64 {
        // The layout was validated against `size` at decode time and `fixed` has exactly
        // `layout.size` bytes, so this slice is in bounds.
        let mut b = [0u8; 8];
        b[..size].copy_from_slice(&self.fixed[offset..offset + size]);
        u64::from_le_bytes(b)
    }

    /// The value of field `name`; an error if the field is missing or refers to a dependency
    /// that the block does not carry.
    pub fn field(&self, name: &str) -> Result<FieldValue<'a>, DecodeError> {
        let f = self
            .layout
            .field(name)
            .ok_or_else(|| DecodeError::MissingField {
                event: self.layout.name.clone(),
                field: name.to_owned(),
            })?;
        let raw = self.raw_u64(f.offset as usize, f.ty.size());
        Ok(match f.ty {
            FieldType::U8
            | FieldType::U32
            | FieldType::U64
            | FieldType::Ticks
            | FieldType::SpanId => FieldValue::U64(raw),
            FieldType::I64 => FieldValue::I64(raw as i64),
            FieldType::F64 => FieldValue::F64(f64::from_bits(raw)),
            // Accumulated by the iterator (the field holds the delta).
            FieldType::TicksDelta32 => FieldValue::U64(self.ticks.unwrap_or(0)),
            FieldType::DepRef | FieldType::DepRef32 => FieldValue::Dep(
                self.deps
                    .get(&raw)
                    .ok_or(DecodeError::UnknownDependency(raw))?,
            ),
        })
    }

    /// Field `name` as an unsigned integer (integers and floats are converted).
    pub fn u64(&self, name: &str) -> Result<u64, DecodeError> {
        match self.field(name)? {
            FieldValue::U64(v) => Ok(v),
            FieldValue::I64(v) => Ok(v as u64),
            FieldValue::F64(v) => Ok(v as u64),
            FieldValue::Dep(_) => Err(DecodeError::Invalid(format!("field {name} is a reference"))),
        }
    }

    /// Field `name` as a dependency.
    pub fn dep(&self, name: &str) -> Result<&'a Dependency, DecodeError> {
        match self.field(name)? {
            FieldValue::Dep(d) => Ok(d),
            _ => Err(DecodeError::Invalid(format!(
                "field {name} is not a reference"
            ))),
        }
    }

    /// The tagged values of the tail (empty if the type has none).
    pub fn tail(&self) -> TailIter<'a> {
        TailIter::new(self.tail)
    }
}

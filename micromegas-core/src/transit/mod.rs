//! The transit format: self-describing, compressed blocks of events.
//!
//! A [`Batch`](batch::Batch) is what sinks receive and what the collector accepts:
//!
//! ```text
//! batch   = "MMTB" version:u8 process stream_count:u32 stream* block_count:u32 block*
//! process = process_id:16 exe:str16 username:str16 hostname:str16 service_name:str16
//!           start_unix_nanos:i64 start_ticks:u64 ticks_per_second:u64 properties
//! stream  = stream_id:16 process_id:16 kind:u8 thread_id:u64 thread_name:str16
//!           layout_count:u8 layout* properties
//! layout  = type_id:u8 name:str8 size:u16 has_tail:u8 field_count:u8
//!           (name:str8 offset:u16 type:u8)*
//! block   = block_id:16 stream_id:16 sequence:u64 begin_ticks:u64 end_ticks:u64
//!           begin_unix_nanos:i64 end_unix_nanos:i64 event_count:u32 compression:u8
//!           uncompressed_len:u32 events_len:u32 payload_len:u32 payload
//! payload = LZ4(events dependencies)          -- events take the first events_len bytes
//! event   = type_id:u8 fixed[layout.size] (tail_len:u16 tail)?   -- tail if has_tail
//! dependency = id:u64 kind:u8 entry_count:u8 (key:str8 value:str16)*
//! properties = count:u16 (key:str16 value:str16)*
//! ```
//!
//! Integers are little-endian; `strN` is an N-bit byte length followed by UTF-8. The layout
//! of each event type is in its stream, so a reader decodes any block with the stream alone.
//! Callsite metadata (names, targets, files, format strings) is sent once per block as a
//! dependency; events refer to it by id. Tails hold tagged values ([`values`]).
//! The full description, with the rationale, is `docs/transit-format.md`.

pub mod batch;
pub mod block;
pub mod layout;
pub mod values;
pub mod wire;

/// First bytes of every batch.
pub const MAGIC: [u8; 4] = *b"MMTB";
/// Version of the format this crate writes and reads.
pub const FORMAT_VERSION: u8 = 1;

/// Why an input could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The input ended inside an item.
    #[error("truncated input: {what} needs {needed} bytes, {remaining} left")]
    Truncated {
        /// Item being read.
        what: &'static str,
        /// Bytes it needs.
        needed: usize,
        /// Bytes left.
        remaining: usize,
    },
    /// The input does not start with the batch magic.
    #[error("not a micromegas batch: the input does not start with \"MMTB\"")]
    BadMagic,
    /// Written by an unknown version of the format.
    #[error("unsupported transit format version {0} (this reader supports version 1); upgrade the reader")]
    UnsupportedVersion(u8),
    /// A string is not UTF-8.
    #[error("{what} is not valid UTF-8")]
    InvalidUtf8 {
        /// Item being read.
        what: &'static str,
    },
    /// A size is over the decoder's limit.
    #[error("{what} of {size} bytes is over the limit of {limit} bytes")]
    TooLarge {
        /// Item being read.
        what: &'static str,
        /// Its size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// The payload does not decompress.
    #[error("payload does not decompress: {0}")]
    Decompress(String),
    /// An event's type byte has no layout in its stream.
    #[error("event type {0} is not described by the stream")]
    UnknownEventType(u8),
    /// An event refers to a dependency the block does not carry.
    #[error("event refers to dependency {0:#x} which the block does not carry")]
    UnknownDependency(u64),
    /// An event lacks a field the reader needs.
    #[error("event {event} has no field {field}")]
    MissingField {
        /// Event type name.
        event: String,
        /// Field name.
        field: String,
    },
    /// Any other inconsistency.
    #[error("invalid input: {0}")]
    Invalid(String),
}

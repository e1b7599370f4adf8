//! Event layouts: how a stream describes the events it carries, so that a reader decodes any
//! block without the writer's Rust types.

use super::wire::{Reader, WireWrite};
use super::DecodeError;

/// Type of a fixed-size field of an event.
#[repr(u8)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FieldType {
    /// Unsigned 8-bit integer.
    U8 = 1,
    /// Unsigned 32-bit integer.
    U32 = 2,
    /// Unsigned 64-bit integer.
    U64 = 3,
    /// Signed 64-bit integer.
    I64 = 4,
    /// IEEE-754 double.
    F64 = 5,
    /// Raw tick counter value (u64), converted to time with the process calibration.
    Ticks = 6,
    /// Id (u64) of a dependency sent in the same block (callsite metadata).
    DepRef = 7,
    /// Process-unique span id (u64); 0 means none.
    SpanId = 8,
    /// Id (u32) of a dependency sent in the same block.
    DepRef32 = 9,
    /// Signed tick difference (i32) from the previous event of the block that has one, or
    /// from the block's `begin_ticks` for the first; readers accumulate it into ticks.
    TicksDelta32 = 10,
}

impl FieldType {
    /// Size in bytes.
    pub fn size(self) -> usize {
        match self {
            FieldType::U8 => 1,
            FieldType::U32 | FieldType::DepRef32 | FieldType::TicksDelta32 => 4,
            _ => 8,
        }
    }

    fn from_u8(v: u8) -> Option<Self> {
        Some(match v {
            1 => FieldType::U8,
            2 => FieldType::U32,
            3 => FieldType::U64,
            4 => FieldType::I64,
            5 => FieldType::F64,
            6 => FieldType::Ticks,
            7 => FieldType::DepRef,
            8 => FieldType::SpanId,
            9 => FieldType::DepRef32,
            10 => FieldType::TicksDelta32,
            _ => return None,
        })
    }
}

/// One field of an event's fixed part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldLayout {
    /// Field name.
    pub name: String,
    /// Offset from the start of the fixed part (just after the type byte).
    pub offset: u16,
    /// Type, which gives the size.
    pub ty: FieldType,
}

/// Layout of one event type of a stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventLayout {
    /// Type byte that starts each event of this type (1..=254).
    pub type_id: u8,
    /// Name of the event type (`begin_scope`, `log`, ...).
    pub name: String,
    /// Size of the fixed part in bytes.
    pub size: u16,
    /// When true the fixed part is followed by a u16 length and that many bytes of tagged
    /// values (see [`super::values`]).
    pub has_tail: bool,
    /// Fields of the fixed part.
    pub fields: Vec<FieldLayout>,
}

impl EventLayout {
    /// Builds a layout whose fields are packed in the order given.
    pub fn packed(type_id: u8, name: &str, has_tail: bool, fields: &[(&str, FieldType)]) -> Self {
        let mut offset = 0u16;
        let fields = fields
            .iter()
            .map(|(n, ty)| {
                let f = FieldLayout {
                    name: (*n).to_owned(),
                    offset,
                    ty: *ty,
                };
                offset += ty.size() as u16;
                f
            })
            .collect();
        Self {
            type_id,
            name: name.to_owned(),
            size: offset,
            has_tail,
            fields,
        }
    }

    /// The layout of these events in blocks: 64-bit dependency references become 32-bit
    /// block-local ids and the first absolute tick field becomes a 32-bit delta. Records are
    /// about half the size, and the deltas compress far better than absolute ticks.
    pub fn compact(&self) -> EventLayout {
        let mut ticks_done = false;
        let fields: Vec<(&str, FieldType)> = self
            .fields
            .iter()
            .map(|f| {
                let ty = match f.ty {
                    FieldType::DepRef => FieldType::DepRef32,
                    FieldType::Ticks if !ticks_done => {
                        ticks_done = true;
                        FieldType::TicksDelta32
                    }
                    t => t,
                };
                (f.name.as_str(), ty)
            })
            .collect();
        EventLayout::packed(self.type_id, &self.name, self.has_tail, &fields)
    }

    /// The first field of type `ty`.
    pub fn field_of_type(&self, ty: FieldType) -> Option<&FieldLayout> {
        self.fields.iter().find(|f| f.ty == ty)
    }

    /// The field named `name`.
    pub fn field(&self, name: &str) -> Option<&FieldLayout> {
        self.fields.iter().find(|f| f.name == name)
    }

    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        out.put_u8(self.type_id);
        out.put_str8(&self.name);
        out.put_u16(self.size);
        out.put_u8(self.has_tail as u8);
        out.put_u8(self.fields.len() as u8);
        for f in &self.fields {
            out.put_str8(&f.name);
            out.put_u16(f.offset);
            out.put_u8(f.ty as u8);
        }
    }

    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let type_id = r.u8("event layout type id")?;
        if type_id == 0 || type_id == u8::MAX {
            return Err(DecodeError::Invalid(format!(
                "event layout type id {type_id} is reserved"
            )));
        }
        let name = r.str8("event layout name")?.to_owned();
        let size = r.u16("event layout size")?;
        let has_tail = match r.u8("event layout tail flag")? {
            0 => false,
            1 => true,
            v => return Err(DecodeError::Invalid(format!("tail flag {v} is not 0 or 1"))),
        };
        let n = r.u8("event layout field count")? as usize;
        let n = r.count(n, 4, "event layout fields")?;
        let mut fields = Vec::with_capacity(n);
        for _ in 0..n {
            let name = r.str8("field name")?.to_owned();
            let offset = r.u16("field offset")?;
            let raw_ty = r.u8("field type")?;
            let ty = FieldType::from_u8(raw_ty)
                .ok_or_else(|| DecodeError::Invalid(format!("unknown field type {raw_ty}")))?;
            if offset as usize + ty.size() > size as usize {
                return Err(DecodeError::Invalid(format!(
                    "field {name} at offset {offset} overflows event {} of size {size}",
                    type_id
                )));
            }
            fields.push(FieldLayout { name, offset, ty });
        }
        Ok(Self {
            type_id,
            name,
            size,
            has_tail,
            fields,
        })
    }
}

/// Type ids and layouts of the events the native instrumentation writes.
pub mod native {
    use super::{EventLayout, FieldType::*};

    /// Span stream: a synchronous scope begins (`meta`, `ticks`).
    pub const BEGIN_SCOPE: u8 = 1;
    /// Span stream: a synchronous scope ends (`meta`, `ticks`).
    pub const END_SCOPE: u8 = 2;
    /// Span stream: an async span begins (`meta`, `ticks`, `span_id`, `parent_span_id`,
    /// `trace_id`, `trace_id_high`: its trace in two halves).
    pub const BEGIN_ASYNC: u8 = 3;
    /// Span stream: an async span ends (`meta`, `ticks`, `span_id`, `parent_span_id`).
    pub const END_ASYNC: u8 = 4;
    /// Span stream: a span with an id is created (`meta`, `ticks`, `span_id`,
    /// `parent_span_id`, `trace_id`, `trace_id_high`: the W3C trace id in two halves), its
    /// fields in the tail.
    pub const SPAN_NEW: u8 = 5;
    /// Span stream: fields recorded on an existing span (`meta`, `ticks`, `span_id`), in the
    /// tail (`meta` names the fields).
    pub const SPAN_RECORD: u8 = 6;
    /// Span stream: the span is entered on this thread (`span_id`, `ticks`).
    pub const SPAN_ENTER: u8 = 7;
    /// Span stream: the span is exited on this thread (`span_id`, `ticks`).
    pub const SPAN_EXIT: u8 = 8;
    /// Span stream: the span is closed (`span_id`, `ticks`); it ends then.
    pub const SPAN_CLOSE: u8 = 9;
    /// Span stream: the span is closed, having ended at its last exit (`span_id`,
    /// `end_ticks`: the ticks of that exit, a plain number: the record has no time of its own).
    pub const SPAN_CLOSE_ENDED: u8 = 13;
    /// Span stream: `span_id` follows from `follows_span_id` (`span_id`, `ticks`,
    /// `follows_span_id`).
    pub const SPAN_FOLLOWS: u8 = 10;
    /// Span stream: a synchronous scope begins while an async span is being polled on this
    /// thread, or while a span of the `tracing` layer is entered there (`meta`, `ticks`,
    /// `parent_span_id`: that span, `trace_id`, `trace_id_high`: its trace in two halves).
    pub const BEGIN_SCOPE_IN_ASYNC: u8 = 11;
    /// Span stream: an error was logged on this thread (`ticks`, `span_id`: the async span
    /// being polled, 0 if none); it marks the innermost span failed: the innermost open scope
    /// if it began in that poll (or outside async code when `span_id` is 0), else that async
    /// span.
    pub const SCOPE_ERROR: u8 = 12;
    /// Log stream: an event with fields (`meta`, `ticks`, `span_id`, `trace_id`,
    /// `trace_id_high`), the fields
    /// (including `message`) in the tail.
    pub const LOG_FIELDS: u8 = 3;
    /// Log stream: an event with fields, as [`LOG_FIELDS`], whose message, when it is static
    /// text, is the dependency `text` (an entry `text`) rather than a field of the tail (the
    /// text is then sent once per block). `text` is the empty text when the message is a field.
    pub const LOG_FIELDS_TEXT: u8 = 8;
    /// Log stream: a log with a static message (`meta`, `ticks`).
    pub const LOG_STATIC: u8 = 1;
    /// Log stream: a log whose arguments follow as tagged values (`meta`, `ticks`, tail).
    pub const LOG_ARGS: u8 = 2;
    /// Log stream: a log with a static message made in a native scope outside any async span
    /// (`meta`, `ticks`, `scope_ticks`: begin ticks of the innermost scope open on the thread;
    /// `trace_or_root_ticks`: begin ticks of the outermost). A scope's id derives from its begin
    /// ticks and its thread ([`crate::read::scope_span_id`]); the log's span is the innermost
    /// scope, its trace the outermost's id. (Data of an earlier version also has
    /// `async_span_id`, and the fields of [`LOG_STATIC_IN_ASYNC`] then.)
    pub const LOG_STATIC_IN_SPAN: u8 = 4;
    /// Log stream: a log with arguments made in a native scope: the fields of
    /// [`LOG_STATIC_IN_SPAN`], the arguments in the tail.
    pub const LOG_ARGS_IN_SPAN: u8 = 5;
    /// Log stream: a log with a static message made while an async span is polled on the
    /// thread, or a span of the `tracing` layer is entered there (`meta`, `ticks`,
    /// `scope_ticks`: begin ticks of the innermost scope begun in it, 0 if none;
    /// `async_span_id`: that span; `trace_id`, `trace_id_high`: its trace in two halves). The
    /// log's span is the scope if there is one, else that span.
    pub const LOG_STATIC_IN_ASYNC: u8 = 6;
    /// Log stream: a log with arguments made in an async span: the fields of
    /// [`LOG_STATIC_IN_ASYNC`], the arguments in the tail.
    pub const LOG_ARGS_IN_ASYNC: u8 = 7;
    /// Metric stream: integer value (`meta`, `ticks`, `value`).
    pub const INT_METRIC: u8 = 1;
    /// Metric stream: float value (`meta`, `ticks`, `value`).
    pub const FLOAT_METRIC: u8 = 2;
    /// Metric stream: integer value with properties in the tail.
    pub const INT_METRIC_PROPS: u8 = 3;
    /// Metric stream: float value with properties in the tail.
    pub const FLOAT_METRIC_PROPS: u8 = 4;

    /// Layouts of the span stream.
    pub fn span_layouts() -> Vec<EventLayout> {
        let async_fields = [
            ("meta", DepRef),
            ("ticks", Ticks),
            ("span_id", SpanId),
            ("parent_span_id", SpanId),
        ];
        let id_ticks = [("span_id", SpanId), ("ticks", Ticks)];
        vec![
            EventLayout::packed(
                BEGIN_SCOPE,
                "begin_scope",
                false,
                &[("meta", DepRef), ("ticks", Ticks)],
            ),
            EventLayout::packed(
                END_SCOPE,
                "end_scope",
                false,
                &[("meta", DepRef), ("ticks", Ticks)],
            ),
            EventLayout::packed(
                BEGIN_SCOPE_IN_ASYNC,
                "begin_scope_in_async",
                false,
                &[
                    ("meta", DepRef),
                    ("ticks", Ticks),
                    ("parent_span_id", SpanId),
                    ("trace_id", U64),
                    ("trace_id_high", U64),
                ],
            ),
            EventLayout::packed(
                SCOPE_ERROR,
                "scope_error",
                false,
                &[("ticks", Ticks), ("span_id", SpanId)],
            ),
            EventLayout::packed(
                BEGIN_ASYNC,
                "begin_async",
                false,
                &[
                    ("meta", DepRef),
                    ("ticks", Ticks),
                    ("span_id", SpanId),
                    ("parent_span_id", SpanId),
                    ("trace_id", U64),
                    ("trace_id_high", U64),
                ],
            ),
            EventLayout::packed(END_ASYNC, "end_async", false, &async_fields),
            EventLayout::packed(
                SPAN_NEW,
                "span_new",
                true,
                &[
                    ("meta", DepRef),
                    ("ticks", Ticks),
                    ("span_id", SpanId),
                    ("parent_span_id", SpanId),
                    ("trace_id", U64),
                    ("trace_id_high", U64),
                ],
            ),
            EventLayout::packed(
                SPAN_RECORD,
                "span_record",
                true,
                &[("meta", DepRef), ("ticks", Ticks), ("span_id", SpanId)],
            ),
            EventLayout::packed(SPAN_ENTER, "span_enter", false, &id_ticks),
            EventLayout::packed(SPAN_EXIT, "span_exit", false, &id_ticks),
            EventLayout::packed(SPAN_CLOSE, "span_close", false, &id_ticks),
            EventLayout::packed(
                SPAN_CLOSE_ENDED,
                "span_close_ended",
                false,
                &[("span_id", SpanId), ("end_ticks", U64)],
            ),
            EventLayout::packed(
                SPAN_FOLLOWS,
                "span_follows",
                false,
                &[
                    ("span_id", SpanId),
                    ("ticks", Ticks),
                    ("follows_span_id", SpanId),
                ],
            ),
        ]
    }

    /// Layouts of the log stream.
    pub fn log_layouts() -> Vec<EventLayout> {
        let in_span = [
            ("meta", DepRef),
            ("ticks", Ticks),
            ("scope_ticks", U64),
            ("trace_or_root_ticks", U64),
        ];
        let in_async = [
            ("meta", DepRef),
            ("ticks", Ticks),
            ("scope_ticks", U64),
            ("async_span_id", SpanId),
            ("trace_id", U64),
            ("trace_id_high", U64),
        ];
        let fields = [
            ("meta", DepRef),
            ("ticks", Ticks),
            ("span_id", SpanId),
            ("trace_id", U64),
            ("trace_id_high", U64),
        ];
        let fields_text = [fields.as_slice(), &[("text", DepRef)]].concat();
        vec![
            EventLayout::packed(
                LOG_STATIC,
                "log",
                false,
                &[("meta", DepRef), ("ticks", Ticks)],
            ),
            EventLayout::packed(
                LOG_ARGS,
                "log_args",
                true,
                &[("meta", DepRef), ("ticks", Ticks)],
            ),
            EventLayout::packed(LOG_STATIC_IN_SPAN, "log_in_span", false, &in_span),
            EventLayout::packed(LOG_ARGS_IN_SPAN, "log_args_in_span", true, &in_span),
            EventLayout::packed(LOG_STATIC_IN_ASYNC, "log_in_async", false, &in_async),
            EventLayout::packed(LOG_ARGS_IN_ASYNC, "log_args_in_async", true, &in_async),
            EventLayout::packed(LOG_FIELDS, "log_fields", true, &fields),
            EventLayout::packed(LOG_FIELDS_TEXT, "log_fields_text", true, &fields_text),
        ]
    }

    /// Layouts of the records the calling threads write for a stream of `kind` (absolute
    /// ticks, callsite addresses). Blocks carry their [`EventLayout::compact`] form.
    pub fn layouts_of(kind: crate::model::StreamKind) -> Vec<EventLayout> {
        match kind {
            crate::model::StreamKind::Spans => span_layouts(),
            crate::model::StreamKind::Logs => log_layouts(),
            crate::model::StreamKind::Metrics => metric_layouts(),
        }
    }

    /// Layouts of blocks of a native stream of `kind`.
    pub fn block_layouts_of(kind: crate::model::StreamKind) -> Vec<EventLayout> {
        layouts_of(kind).iter().map(EventLayout::compact).collect()
    }

    /// Layouts of the metric stream.
    pub fn metric_layouts() -> Vec<EventLayout> {
        let int = [("meta", DepRef), ("ticks", Ticks), ("value", U64)];
        let float = [("meta", DepRef), ("ticks", Ticks), ("value", F64)];
        vec![
            EventLayout::packed(INT_METRIC, "int_metric", false, &int),
            EventLayout::packed(FLOAT_METRIC, "float_metric", false, &float),
            EventLayout::packed(INT_METRIC_PROPS, "int_metric", true, &int),
            EventLayout::packed(FLOAT_METRIC_PROPS, "float_metric", true, &float),
        ]
    }
}

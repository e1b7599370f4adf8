//! Reading blocks back into the event model, using nothing but the stream's layouts and the
//! block's dependencies.

use crate::metadata::Level;
use crate::model::{ProcessInfo, StreamInfo};
use crate::transit::block::{Block, Dependency, EventRef};
use crate::transit::values::{format_message, Value};
use crate::transit::DecodeError;
use std::collections::HashMap;

/// Where an event was emitted from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// Span or metric name (empty for logs).
    pub name: String,
    /// Target.
    pub target: String,
    /// Source file.
    pub file: String,
    /// Source line.
    pub line: u32,
}

impl Location {
    fn of(dep: &Dependency) -> Self {
        Self {
            name: dep.get("name").unwrap_or_default().to_owned(),
            target: dep.get("target").unwrap_or_default().to_owned(),
            file: dep.get("file").unwrap_or_default().to_owned(),
            line: dep.get("line").and_then(|l| l.parse().ok()).unwrap_or(0),
        }
    }
}

/// A log entry with its message formatted.
#[derive(Debug, Clone, PartialEq)]
pub struct LogEntry {
    /// Raw ticks.
    pub ticks: u64,
    /// Wall time, ns since the Unix epoch.
    pub time_unix_nanos: i64,
    /// Severity.
    pub level: Level,
    /// Format string filled with the stored arguments.
    pub msg: String,
    /// Callsite.
    pub location: Location,
    /// Keyed values (for events with fields, every field but `message`).
    pub properties: Vec<(String, String)>,
    /// Span the entry was emitted in (0 for none or unknown).
    pub span_id: u64,
    /// Trace of that span (0 for none).
    pub trace_id: u128,
}

/// One metric value.
#[derive(Debug, Clone, PartialEq)]
pub struct Measure {
    /// Raw ticks.
    pub ticks: u64,
    /// Wall time, ns since the Unix epoch.
    pub time_unix_nanos: i64,
    /// Unit.
    pub unit: String,
    /// Kind of metric as its callsite says (`counter`, `gauge`, `histogram`); native metrics,
    /// which record a value at an instant, are `gauge`.
    pub kind: String,
    /// Value (integers are converted).
    pub value: f64,
    /// Callsite, with the metric name.
    pub location: Location,
    /// Keyed values.
    pub properties: Vec<(String, String)>,
}

/// A span boundary. Scopes nest by order within their thread's stream; async spans carry ids.
#[derive(Debug, Clone, PartialEq)]
pub struct SpanEvent {
    /// Raw ticks.
    pub ticks: u64,
    /// True for a beginning, false for an end.
    pub begin: bool,
    /// Async span id, `None` for a thread scope.
    pub span_id: Option<u64>,
    /// Async parent span id (0 for none); for a thread scope, the async span being polled
    /// when it began (`None` outside any).
    pub parent_span_id: Option<u64>,
    /// Callsite, with the span name.
    pub location: Location,
    /// The trace of an async span's beginning, or of the span a scope began in (an async span
    /// being polled, or a span of the `tracing` layer entered); `None` otherwise, and for data
    /// written before events carried it.
    pub trace_id: Option<u128>,
}

/// What happened to a span with an id (spans created through `span_new`, e.g. by the
/// `tracing` layer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpanChange {
    /// Created, with its parent, trace and initial fields.
    New,
    /// Fields recorded after creation.
    Record,
    /// Entered on the stream's thread.
    Enter,
    /// Exited on the stream's thread.
    Exit,
    /// Closed.
    Close,
    /// Follows from another span.
    Follows,
    /// An error was logged in the innermost native span of the stream's thread: the scope
    /// open there if it began during the poll of async span `span_id` (or outside async code
    /// when `span_id` is 0), else that async span.
    Failed,
}

/// A change to a span with an id.
#[derive(Debug, Clone, PartialEq)]
pub struct SpanUpdate {
    /// What happened.
    pub change: SpanChange,
    /// Raw ticks.
    pub ticks: u64,
    /// The span.
    pub span_id: u64,
    /// Parent span (for `New`; 0 for a root).
    pub parent_span_id: u64,
    /// Trace (for `New`).
    pub trace_id: u128,
    /// The span it follows from (for `Follows`).
    pub follows_span_id: u64,
    /// Callsite (for `New`).
    pub location: Option<Location>,
    /// Level name of the callsite (for `New`), if it has one.
    pub level: Option<String>,
    /// Fields (for `New` and `Record`).
    pub fields: Vec<(String, String)>,
}

/// An event of the native model.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// Change to a span with an id.
    SpanUpdate(SpanUpdate),
    /// Span boundary.
    Span(SpanEvent),
    /// Log entry.
    Log(LogEntry),
    /// Metric value.
    Measure(Measure),
    /// An event type this reader does not interpret (named by its layout).
    Other(String),
}

/// Positional arguments and keyed properties of an event's tail.
type ArgsAndProps<'a> = (Vec<Value<'a>>, Vec<(String, String)>);

fn props_and_args<'a>(ev: &EventRef<'a>) -> Result<ArgsAndProps<'a>, DecodeError> {
    let mut args = Vec::new();
    let mut props = Vec::new();
    for item in ev.tail() {
        let item = item?;
        match item.key {
            Some(k) => props.push((k.to_owned(), item.value.to_string())),
            None => args.push(item.value),
        }
    }
    Ok((args, props))
}

/// Fields of an event's tail, keys resolved (indexed keys through the callsite's `fields`).
fn named_fields(
    ev: &EventRef<'_>,
    dep: Option<&Dependency>,
) -> Result<Vec<(String, String)>, DecodeError> {
    let names: Vec<&str> = dep
        .and_then(|d| d.get("fields"))
        .map(|f| f.split(',').collect())
        .unwrap_or_default();
    let mut out = Vec::new();
    for item in ev.tail() {
        let item = item?;
        let key = match (item.key, item.index) {
            (Some(k), _) => k.to_owned(),
            (None, Some(i)) => names
                .get(i as usize)
                .map_or_else(|| format!("field{i}"), |n| (*n).to_owned()),
            (None, None) => String::new(),
        };
        out.push((key, item.value.to_string()));
    }
    Ok(out)
}

/// The message of a native log callsite (its format filled with the event's unnamed values)
/// and the event's named values.
fn native_message(
    ev: &EventRef<'_>,
    dep: &Dependency,
) -> Result<(String, Vec<(String, String)>), DecodeError> {
    let (args, properties) = props_and_args(ev)?;
    let fmt = dep.get("fmt").unwrap_or_default();
    let msg = if args.is_empty() {
        fmt.to_owned()
    } else {
        format_message(fmt, args.into_iter())
    };
    Ok((msg, properties))
}

fn log_entry(
    process: &ProcessInfo,
    dep: &Dependency,
    ticks: u64,
    msg: String,
    properties: Vec<(String, String)>,
    (span_id, trace_id): (u64, u128),
) -> LogEntry {
    LogEntry {
        ticks,
        time_unix_nanos: process.ticks_to_unix_nanos(ticks),
        level: dep
            .get("level")
            .and_then(Level::parse)
            .unwrap_or(Level::Info),
        msg,
        location: Location::of(dep),
        properties,
        span_id,
        trace_id,
    }
}

/// The span id of a native scope (`span_scope!`): scopes get no id when they run, but their
/// thread and begin ticks identify them, and the reader (and the writer, for the parent of an
/// async span first polled in a scope) derives one from those. Distinct for the scopes of one
/// thread (a bijection of the ticks, but for the one value it would map to 0, which takes 1);
/// across threads and processes, equal with a chance of 2^-64 per pair.
pub fn scope_span_id(process: &ProcessInfo, thread_id: u64, begin_ticks: u64) -> u64 {
    fn mix(mut z: u64) -> u64 {
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    let (hi, lo) = process.process_id.as_u64_pair();
    let thread = mix(hi ^ mix(lo ^ mix(thread_id)));
    mix(thread ^ begin_ticks).max(1)
}

/// Field `name` of `ev`, 0 when its layout has none (a field added after the layout was
/// first written).
fn opt_u64(ev: &EventRef<'_>, name: &str) -> Result<u64, DecodeError> {
    match ev.layout.field(name) {
        Some(_) => ev.u64(name),
        None => Ok(0),
    }
}

/// The span and trace of a log made in a native span (see
/// [`crate::transit::layout::native::LOG_STATIC_IN_SPAN`] and `LOG_STATIC_IN_ASYNC`).
fn native_log_ids(
    process: &ProcessInfo,
    stream: &StreamInfo,
    ev: &EventRef<'_>,
) -> Result<(u64, u128), DecodeError> {
    let scope = |ticks| scope_span_id(process, stream.thread_id, ticks);
    let scope_ticks = ev.u64("scope_ticks")?;
    let async_span = opt_u64(ev, "async_span_id")?;
    let span = if scope_ticks != 0 {
        scope(scope_ticks)
    } else {
        async_span
    };
    let trace = if async_span != 0 {
        // An earlier version kept the low half in `trace_or_root_ticks`.
        let low = match ev.layout.field("trace_id") {
            Some(_) => ev.u64("trace_id")?,
            None => ev.u64("trace_or_root_ticks")?,
        };
        u128::from(low) | u128::from(opt_u64(ev, "trace_id_high")?) << 64
    } else {
        match ev.u64("trace_or_root_ticks")? {
            0 => 0,
            root => scope(root).into(),
        }
    };
    Ok((span, trace))
}

/// Interprets one event of `stream`.
pub fn interpret(
    process: &ProcessInfo,
    stream: &StreamInfo,
    ev: &EventRef<'_>,
) -> Result<Event, DecodeError> {
    let name = ev.name();
    let ticks = || ev.u64("ticks");
    Ok(match name {
        "span_new" | "span_record" | "span_enter" | "span_exit" | "span_close"
        | "span_close_ended" | "span_follows" => {
            let change = match name {
                "span_new" => SpanChange::New,
                "span_record" => SpanChange::Record,
                "span_enter" => SpanChange::Enter,
                "span_exit" => SpanChange::Exit,
                "span_close" | "span_close_ended" => SpanChange::Close,
                _ => SpanChange::Follows,
            };
            let dep = if ev.layout.field("meta").is_some() {
                Some(ev.dep("meta")?)
            } else {
                None
            };
            let opt = |f: &str| opt_u64(ev, f);
            Event::SpanUpdate(SpanUpdate {
                change,
                // A span closed after its last exit ended then.
                ticks: match name {
                    "span_close_ended" => ev.u64("end_ticks")?,
                    _ => ticks()?,
                },
                span_id: ev.u64("span_id")?,
                parent_span_id: opt("parent_span_id")?,
                trace_id: u128::from(opt("trace_id")?) | u128::from(opt("trace_id_high")?) << 64,
                follows_span_id: opt("follows_span_id")?,
                location: dep.filter(|_| change == SpanChange::New).map(Location::of),
                level: dep
                    .filter(|_| change == SpanChange::New)
                    .and_then(|d| d.get("level"))
                    .map(str::to_owned),
                fields: if ev.layout.has_tail {
                    named_fields(ev, dep)?
                } else {
                    Vec::new()
                },
            })
        }
        "scope_error" => Event::SpanUpdate(SpanUpdate {
            change: SpanChange::Failed,
            ticks: ticks()?,
            span_id: ev.u64("span_id")?,
            parent_span_id: 0,
            trace_id: 0,
            follows_span_id: 0,
            location: None,
            level: None,
            fields: Vec::new(),
        }),
        "log_fields" | "log_fields_text" => {
            let dep = ev.dep("meta")?;
            let (msg, properties) = if dep.get("fmt").is_some() {
                // A native callsite in a span (the `log` bridge): its message as for `log_args`.
                native_message(ev, dep)?
            } else {
                // The message is a field, or else the static text the record names.
                let mut msg = None;
                let mut properties = Vec::new();
                for (k, v) in named_fields(ev, Some(dep))? {
                    if k == "message" {
                        msg = Some(v);
                    } else {
                        properties.push((k, v));
                    }
                }
                let msg = match msg {
                    Some(m) => m,
                    None if name == "log_fields_text" => {
                        ev.dep("text")?.get("text").unwrap_or_default().to_owned()
                    }
                    None => String::new(),
                };
                (msg, properties)
            };
            let high = opt_u64(ev, "trace_id_high")?;
            let trace = u128::from(ev.u64("trace_id")?) | u128::from(high) << 64;
            let ids = (ev.u64("span_id")?, trace);
            Event::Log(log_entry(process, dep, ticks()?, msg, properties, ids))
        }
        "begin_scope" | "end_scope" | "begin_async" | "end_async" | "begin_scope_in_async" => {
            let field = |f: &str| match ev.layout.field(f) {
                Some(_) => ev.u64(f).map(Some),
                None => Ok(None),
            };
            Event::Span(SpanEvent {
                ticks: ticks()?,
                begin: name.starts_with("begin"),
                span_id: field("span_id")?,
                parent_span_id: field("parent_span_id")?,
                location: Location::of(ev.dep("meta")?),
                trace_id: match ev.layout.field("trace_id") {
                    Some(_) => {
                        let high = opt_u64(ev, "trace_id_high")?;
                        Some(u128::from(ev.u64("trace_id")?) | u128::from(high) << 64)
                            .filter(|t| *t != 0)
                    }
                    None => None,
                },
            })
        }
        "log" | "log_args" | "log_in_span" | "log_args_in_span" | "log_in_async"
        | "log_args_in_async" => {
            let dep = ev.dep("meta")?;
            let (msg, properties) = native_message(ev, dep)?;
            let ids = if name.ends_with("in_span") || name.ends_with("in_async") {
                native_log_ids(process, stream, ev)?
            } else {
                (0, 0)
            };
            Event::Log(log_entry(process, dep, ticks()?, msg, properties, ids))
        }
        "int_metric" | "float_metric" => {
            let dep = ev.dep("meta")?;
            let value = match ev.field("value")? {
                crate::transit::block::FieldValue::F64(v) => v,
                crate::transit::block::FieldValue::U64(v) => v as f64,
                crate::transit::block::FieldValue::I64(v) => v as f64,
                crate::transit::block::FieldValue::Dep(_) => {
                    return Err(DecodeError::Invalid("metric value is a reference".into()))
                }
            };
            let (_, mut properties) = props_and_args(ev)?;
            // Labels interned with the callsite (metrics recorder) come as `label.<key>`.
            for (k, v) in &dep.entries {
                if let Some(label) = k.strip_prefix("label.") {
                    properties.push((label.to_owned(), v.clone()));
                }
            }
            // A description given to the metrics recorder, named as for OTLP metrics.
            if let Some(d) = dep.get("description") {
                properties.push(("otel.description".to_owned(), d.to_owned()));
            }
            let t = ticks()?;
            Event::Measure(Measure {
                ticks: t,
                time_unix_nanos: process.ticks_to_unix_nanos(t),
                unit: dep.get("unit").unwrap_or_default().to_owned(),
                kind: dep.get("kind").unwrap_or("gauge").to_owned(),
                value,
                location: Location::of(dep),
                properties,
            })
        }
        other => Event::Other(other.to_owned()),
    })
}

/// Decodes and interprets every event of a block. The result owns its strings, so its size
/// grows with the event count; to process large or untrusted blocks without materializing
/// them, iterate [`Payload::events`](crate::transit::block::Payload::events) and call
/// [`interpret`] per event.
pub fn decode_block(
    process: &ProcessInfo,
    stream: &StreamInfo,
    block: &Block,
) -> Result<Vec<Event>, DecodeError> {
    let payload = block.decode_payload()?;
    // Every event takes at least one byte: never trust the header's count for the capacity.
    let capacity = block.header.event_count.min(block.header.events_len) as usize;
    let mut out = Vec::with_capacity(capacity.min(1 << 16));
    for ev in payload.events(stream) {
        out.push(interpret(process, stream, &ev?)?);
    }
    if out.len() != block.header.event_count as usize {
        return Err(DecodeError::Invalid(format!(
            "block {} holds {} events, its header says {}",
            block.header.block_id,
            out.len(),
            block.header.event_count
        )));
    }
    Ok(out)
}

/// A span with its beginning and end.
#[derive(Debug, Clone, PartialEq)]
pub struct Span {
    /// Name.
    pub name: String,
    /// The span's id: an async span's own; for a scope, the id derived from its thread and
    /// begin ticks ([`scope_span_id`]), which the logs made in it carry as their `span_id`.
    pub id: u64,
    /// Parent id (0 for a root).
    pub parent: u64,
    /// Depth in its tree (0 for a root). For a scope, counted within its thread's stream.
    pub depth: u32,
    /// Ticks at the beginning.
    pub begin_ticks: u64,
    /// Ticks at the end.
    pub end_ticks: u64,
}

/// Rebuilds the scopes (`span_scope!`) of one thread stream of `process` from its events in
/// order. Each scope's id is the one [`scope_span_id`] derives, so the scopes match the
/// `span_id` of the logs made in them. A scope's parent is the scope it began in; the
/// outermost scope of an async span's poll, or of a span of the `tracing` layer entered on
/// the thread, has that span as parent. Scopes still open at the end are not returned.
pub fn thread_scopes<'a>(
    process: &ProcessInfo,
    stream: &StreamInfo,
    events: impl IntoIterator<Item = &'a Event>,
) -> Vec<Span> {
    // Open scopes, each with the span it was begun in (0: none).
    let mut stack: Vec<(Span, u64)> = Vec::new();
    let mut out = Vec::new();
    for ev in events {
        let Event::Span(s) = ev else { continue };
        if s.span_id.is_some() {
            continue;
        }
        if s.begin {
            let in_span = s.parent_span_id.unwrap_or(0);
            let parent = match stack.last() {
                Some((top, top_in)) if in_span == 0 || *top_in == in_span => top.id,
                _ => in_span,
            };
            let span = Span {
                name: s.location.name.clone(),
                id: scope_span_id(process, stream.thread_id, s.ticks),
                parent,
                depth: stack.len() as u32,
                begin_ticks: s.ticks,
                end_ticks: 0,
            };
            stack.push((span, in_span));
        } else if let Some((mut span, _)) = stack.pop() {
            span.end_ticks = s.ticks;
            out.push(span);
        }
    }
    out
}

/// Joins the begin and end events of async spans, from any number of streams in any order.
/// Spans whose beginning or end is missing are not returned.
pub fn async_spans<'a>(events: impl IntoIterator<Item = &'a Event>) -> Vec<Span> {
    let mut begins: HashMap<u64, Span> = HashMap::new();
    let mut ends: HashMap<u64, u64> = HashMap::new();
    for ev in events {
        let Event::Span(s) = ev else { continue };
        let (Some(id), Some(parent)) = (s.span_id, s.parent_span_id) else {
            continue;
        };
        if s.begin {
            begins.insert(
                id,
                Span {
                    name: s.location.name.clone(),
                    id,
                    parent,
                    depth: 0,
                    begin_ticks: s.ticks,
                    end_ticks: 0,
                },
            );
        } else {
            ends.insert(id, s.ticks);
        }
    }
    let mut out: Vec<Span> = begins
        .into_iter()
        .filter_map(|(id, mut span)| {
            span.end_ticks = *ends.get(&id)?;
            Some(span)
        })
        .collect();
    out.sort_by_key(|s| (s.begin_ticks, s.id));
    out
}

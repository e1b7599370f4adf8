//! Spans: joining beginnings and ends that may lie in different blocks, streams and
//! materialization runs, and each enter of a span on a thread with its exit (on the same
//! stream). What is still open at the end of a run is carried to the next one (stored in the
//! catalog with the partition, in the same transaction).

use super::fetch::RawBlock;
use super::otel_fields::OtelFields;
use crate::hex;
use crate::tables::{IntervalRow, SpanColumns, SpanText};
use micromegas_core::read::{self, Event, SpanChange};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// Most open spans kept per process; past it the oldest are given up (never closed).
const MAX_OPEN: usize = 100_000;
/// Most spans entered and not yet exited kept per stream (a thread's nesting depth); past it
/// the oldest enters are given up (their intervals are not written).
const MAX_ENTERED: usize = 1024;

/// A span begun and not yet ended.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Open {
    id: u64,
    parent: u64,
    trace: u128,
    name: String,
    target: String,
    level: Option<String>,
    file: String,
    line: u32,
    start: i64,
    thread_name: String,
    fields: Vec<(String, String)>,
    follows: Vec<u64>,
    /// For a thread scope, the async span being polled when it began (0: none).
    #[serde(default)]
    poll_parent: u64,
}

impl Open {
    /// A span begun at `start` at a native callsite, on the stream's thread.
    fn at(
        id: u64,
        (parent, trace): (u64, u128),
        loc: read::Location,
        start: i64,
        raw: &RawBlock,
    ) -> Self {
        Open {
            id,
            parent,
            trace,
            name: loc.name,
            target: loc.target,
            level: None,
            file: loc.file,
            line: loc.line,
            start,
            thread_name: raw.stream.thread_name.clone(),
            fields: Vec::new(),
            follows: Vec::new(),
            poll_parent: 0,
        }
    }
}

/// State carried between runs for one process.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Carry {
    /// Open thread scopes, per stream, innermost last.
    stacks: BTreeMap<String, Vec<Open>>,
    /// Spans with ids, begun and not ended.
    open: HashMap<u64, Open>,
    /// Ends seen before their beginning: id → end time.
    early_ends: HashMap<u64, i64>,
    /// Spans entered and not yet exited, per stream, innermost last: (id, enter time).
    #[serde(default)]
    entered: BTreeMap<String, Vec<(u64, i64)>>,
}

impl Carry {
    /// Parses a stored state; an unreadable one starts afresh.
    pub fn parse(text: Option<&str>) -> Self {
        text.and_then(|t| serde_json::from_str(t).ok())
            .unwrap_or_default()
    }

    /// Serializes the state.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// The lowercase hex of `id`'s `N` big-endian bytes, written into `buf`; `None` for 0.
fn hex_id<const N: usize>(id: [u8; N], buf: &mut [u8]) -> Option<&str> {
    (id != [0; N]).then(|| hex::encode_into(&id, buf))
}

/// Where a process's ended spans go: their columns, and the names all its spans share.
struct SpanSink<'a> {
    columns: &'a mut SpanColumns,
    process_id: Arc<str>,
    service: Arc<str>,
}

impl SpanSink<'_> {
    /// Appends the span `o`, ended at `end`, to the columns.
    fn push(&mut self, o: Open, end: i64) {
        let (mut trace, mut span, mut parent) = ([0u8; 32], [0u8; 16], [0u8; 16]);
        let follows = (!o.follows.is_empty()).then(|| {
            let ids: Vec<String> = o.follows.iter().map(|f| format!("{f:016x}")).collect();
            ids.join(",")
        });
        let otel = OtelFields::of(&o.fields);
        let text = SpanText {
            trace_id: hex_id(o.trace.to_be_bytes(), &mut trace),
            span_id: hex::encode_into(&o.id.to_be_bytes(), &mut span),
            parent_span_id: hex_id(o.parent.to_be_bytes(), &mut parent),
            name: otel.name.unwrap_or(&o.name),
            target: &o.target,
            service_name: &self.service,
            process_id: &self.process_id,
            thread_name: &o.thread_name,
            start_time: o.start,
            end_time: end.max(o.start),
            kind: otel.kind.unwrap_or("INTERNAL"),
            status_code: otel.status_code(),
            status_message: otel.status_message,
            level: o.level.as_deref(),
            file: &o.file,
            line: (o.line != 0).then_some(o.line as i32),
        };
        self.columns.append(&text, |a| {
            for (key, value) in &o.fields {
                if !otel.takes(key, value) {
                    a.entry(key, value);
                }
            }
            if let Some(ids) = &follows {
                a.entry("follows_from", ids);
            }
        });
    }
}

/// What [`join_spans`] found besides the spans that ended (appended to the columns).
#[derive(Debug, Default)]
pub struct Joined {
    /// Enters matched with their exits.
    pub intervals: Vec<IntervalRow>,
    /// Blocks that could not be decoded: (block id, reason).
    pub bad: Vec<(String, String)>,
}

/// Joins the span events of `blocks` (one process, each stream's blocks in order) with the
/// carried state; the spans that end are appended to `columns`.
pub fn join_spans(carry: &mut Carry, blocks: &[RawBlock], columns: &mut SpanColumns) -> Joined {
    let mut intervals = Vec::new();
    let mut bad = Vec::new();
    let mut out = SpanSink {
        columns,
        process_id: "".into(),
        service: "".into(),
    };
    for raw in blocks {
        let process = &raw.process;
        out.process_id = process.process_id.to_string().into();
        out.service = process.service_name.as_str().into();
        let stream_key = raw.stream.stream_id.to_string();
        let thread: Arc<str> = raw.stream.thread_name.as_str().into();
        let events = match read::decode_block(process, &raw.stream, &raw.block) {
            Ok(e) => e,
            Err(e) => {
                bad.push((raw.row.block_id.clone(), e.to_string()));
                continue;
            }
        };
        for ev in events {
            match ev {
                Event::Span(s) => {
                    let time = process.ticks_to_unix_nanos(s.ticks);
                    match s.span_id {
                        None if s.begin => {
                            // The id logs made in the scope name it by.
                            let id = read::scope_span_id(process, raw.stream.thread_id, s.ticks);
                            let stack = carry.stacks.entry(stream_key.clone()).or_default();
                            let poll_parent = s.parent_span_id.unwrap_or(0);
                            // The outermost scope of an async span's poll (or begun in a
                            // span of the `tracing` layer) is that span's child; scopes within
                            // it, and scopes outside any span with an id, are children of the
                            // enclosing scope.
                            let (parent, trace) = match stack.last() {
                                Some(top) if poll_parent == 0 || top.poll_parent == poll_parent => {
                                    (top.id, top.trace)
                                }
                                _ if poll_parent != 0 => {
                                    let trace = match s.trace_id {
                                        Some(t) => t,
                                        None => carry.open.get(&poll_parent).map_or(0, |p| p.trace),
                                    };
                                    (poll_parent, trace)
                                }
                                _ => (0, id.into()),
                            };
                            let mut open = Open::at(id, (parent, trace), s.location, time, raw);
                            open.poll_parent = poll_parent;
                            stack.push(open);
                        }
                        None => {
                            if let Some(o) = carry.stacks.get_mut(&stream_key).and_then(Vec::pop) {
                                out.push(o, time);
                            }
                        }
                        Some(id) if s.begin => {
                            let parent = s.parent_span_id.unwrap_or(0);
                            // The trace is in the event; older data had only the parent,
                            // found when its beginning was read first.
                            let trace = match s.trace_id {
                                Some(t) => t,
                                None if parent == 0 => id.into(),
                                None => carry.open.get(&parent).map_or(0, |p| p.trace),
                            };
                            let open = Open::at(id, (parent, trace), s.location, time, raw);
                            begin(carry, open, &mut out);
                        }
                        Some(id) => end(carry, id, time, &mut out),
                    }
                }
                Event::SpanUpdate(u) => {
                    let time = process.ticks_to_unix_nanos(u.ticks);
                    match u.change {
                        SpanChange::New => {
                            let loc = u.location.unwrap_or(read::Location {
                                name: String::new(),
                                target: String::new(),
                                file: String::new(),
                                line: 0,
                            });
                            let trace = if u.trace_id == 0 {
                                u.span_id.into()
                            } else {
                                u.trace_id
                            };
                            let mut open =
                                Open::at(u.span_id, (u.parent_span_id, trace), loc, time, raw);
                            open.level = u.level;
                            open.fields = u.fields;
                            begin(carry, open, &mut out);
                        }
                        SpanChange::Record => {
                            if let Some(o) = carry.open.get_mut(&u.span_id) {
                                for (k, v) in u.fields {
                                    match o.fields.iter_mut().find(|(ok, _)| *ok == k) {
                                        Some(slot) => slot.1 = v,
                                        None => o.fields.push((k, v)),
                                    }
                                }
                            }
                        }
                        SpanChange::Follows => {
                            if let Some(o) = carry.open.get_mut(&u.span_id) {
                                o.follows.push(u.follows_span_id);
                            }
                        }
                        SpanChange::Failed => {
                            let in_poll = |o: &&mut Open| o.poll_parent == u.span_id;
                            let scope = carry
                                .stacks
                                .get_mut(&stream_key)
                                .and_then(|s| s.last_mut())
                                .filter(in_poll);
                            let failed = match scope {
                                Some(o) => Some(o),
                                None => carry.open.get_mut(&u.span_id),
                            };
                            if let Some(o) = failed {
                                mark_failed(o);
                            }
                        }
                        SpanChange::Close => end(carry, u.span_id, time, &mut out),
                        SpanChange::Enter => {
                            let entered = carry.entered.entry(stream_key.clone()).or_default();
                            entered.push((u.span_id, time));
                        }
                        SpanChange::Exit => {
                            if let Some(begin) = exit(carry, &stream_key, u.span_id) {
                                intervals.push(IntervalRow {
                                    span_id: u.span_id,
                                    process_id: Arc::clone(&out.process_id),
                                    service_name: Arc::clone(&out.service),
                                    thread_name: Arc::clone(&thread),
                                    begin_time: begin,
                                    end_time: time.max(begin),
                                });
                            }
                        }
                    }
                }
                _ => {}
            }
        }
    }
    bound(carry);
    Joined { intervals, bad }
}

/// Marks a native span failed, as the layer's spans are by an error event in them (see
/// [`OtelFields`]).
fn mark_failed(o: &mut Open) {
    let field = micromegas_core::events::ERROR_EVENT_FIELD;
    if !o.fields.iter().any(|(k, _)| k == field) {
        o.fields.push((field.to_owned(), "true".to_owned()));
    }
}

/// Takes the innermost enter of span `id` on a stream (exits may come out of order) and
/// returns its time; `None` when that enter was not read (given up, or in an unreadable block).
fn exit(carry: &mut Carry, stream_key: &str, id: u64) -> Option<i64> {
    let entered = carry.entered.get_mut(stream_key)?;
    let at = entered.iter().rposition(|(e, _)| *e == id)?;
    let (_, begin) = entered.remove(at);
    if entered.is_empty() {
        carry.entered.remove(stream_key);
    }
    Some(begin)
}

fn begin(carry: &mut Carry, open: Open, out: &mut SpanSink<'_>) {
    match carry.early_ends.remove(&open.id) {
        Some(end) => out.push(open, end),
        None => {
            carry.open.insert(open.id, open);
        }
    }
}

fn end(carry: &mut Carry, id: u64, time: i64, out: &mut SpanSink<'_>) {
    match carry.open.remove(&id) {
        Some(o) => out.push(o, time),
        None => {
            carry.early_ends.insert(id, time);
        }
    }
}

/// Keeps the carried state bounded: the oldest open spans are given up first.
fn bound(carry: &mut Carry) {
    if carry.open.len() > MAX_OPEN {
        let mut starts: Vec<(i64, u64)> = carry.open.values().map(|o| (o.start, o.id)).collect();
        starts.sort_unstable();
        for (_, id) in starts.iter().take(carry.open.len() - MAX_OPEN) {
            carry.open.remove(id);
        }
    }
    if carry.early_ends.len() > MAX_OPEN {
        carry.early_ends.clear();
    }
    for entered in carry.entered.values_mut() {
        if entered.len() > MAX_ENTERED {
            entered.drain(..entered.len() - MAX_ENTERED);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An exit takes the innermost enter of its span on its stream, out of order included;
    /// an exit whose enter was not read gives nothing; emptied streams are dropped.
    #[test]
    fn exits_take_the_innermost_enter_of_their_span() {
        let mut carry = Carry::default();
        carry
            .entered
            .insert("s".into(), vec![(1, 10), (2, 20), (1, 30)]);
        assert_eq!(exit(&mut carry, "s", 2), Some(20));
        assert_eq!(exit(&mut carry, "s", 1), Some(30));
        assert_eq!(exit(&mut carry, "other", 1), None);
        assert_eq!(exit(&mut carry, "s", 7), None);
        assert_eq!(exit(&mut carry, "s", 1), Some(10));
        assert!(carry.entered.is_empty());
    }

    /// A span that ends goes to the columns with its ids in lowercase hex (no parent for a
    /// root), its fields and follows-from links as attributes, and an end never before its
    /// start.
    #[test]
    fn ended_spans_are_appended_as_rows() {
        use arrow::array::{Array, AsArray};
        let mut carry = Carry::default();
        let open = |id, parent, trace, start| Open {
            id,
            parent,
            trace,
            name: "request".into(),
            target: "app".into(),
            level: Some("INFO".into()),
            file: "src/main.rs".into(),
            line: 7,
            start,
            thread_name: "worker-1".into(),
            fields: vec![("route".into(), "/pay".into())],
            follows: Vec::new(),
            poll_parent: 0,
        };
        let mut root = open(0xab, 0, 0x0102_0304_0506_0708_090a_0b0c_0d0e_0f10, 100);
        root.follows = vec![0x11, 0x2200];
        carry.open.insert(0xab, root);
        carry.open.insert(0xcd, open(0xcd, 0xab, 0xab, 500));
        let mut columns = SpanColumns::with_capacity(0);
        let mut out = SpanSink {
            columns: &mut columns,
            process_id: "p-1".into(),
            service: "shop".into(),
        };
        end(&mut carry, 0xab, 900, &mut out);
        end(&mut carry, 0xcd, 400, &mut out);
        let batch = columns.finish().unwrap();
        let text = |name: &str, row: usize| -> Option<String> {
            let c = batch.column_by_name(name).unwrap().as_string::<i32>();
            c.is_valid(row).then(|| c.value(row).to_owned())
        };
        assert_eq!(batch.num_rows(), 2);
        assert_eq!(
            text("trace_id", 0).as_deref(),
            Some("0102030405060708090a0b0c0d0e0f10")
        );
        assert_eq!(text("span_id", 0).as_deref(), Some("00000000000000ab"));
        assert_eq!(text("parent_span_id", 0), None);
        assert_eq!(
            text("trace_id", 1).as_deref(),
            Some("000000000000000000000000000000ab")
        );
        assert_eq!(
            text("parent_span_id", 1).as_deref(),
            Some("00000000000000ab")
        );
        for (column, value) in [
            ("kind", "INTERNAL"),
            ("status_code", "UNSET"),
            ("process_id", "p-1"),
            ("service_name", "shop"),
            ("thread_name", "worker-1"),
            ("level", "INFO"),
        ] {
            assert_eq!(text(column, 1).as_deref(), Some(value), "{column}");
        }
        let ends = batch.column_by_name("end_time").unwrap();
        let ends = ends.as_primitive::<arrow::datatypes::TimestampNanosecondType>();
        assert_eq!((ends.value(0), ends.value(1)), (900, 500));
        let attributes = batch.column_by_name("attributes").unwrap().as_map();
        let pairs = |row: usize| -> Vec<(String, String)> {
            let entries = attributes.value(row);
            let (k, v) = (
                entries.column(0).as_string::<i32>(),
                entries.column(1).as_string::<i32>(),
            );
            (0..entries.len())
                .map(|i| (k.value(i).into(), v.value(i).into()))
                .collect()
        };
        let p = |k: &str, v: &str| (k.to_owned(), v.to_owned());
        assert_eq!(
            pairs(0),
            [
                p("route", "/pay"),
                p("follows_from", "0000000000000011,0000000000002200")
            ]
        );
        assert_eq!(pairs(1), [p("route", "/pay")]);
        assert!(carry.open.is_empty());
    }

    /// Enters still open at the end of a run are carried to the next one; a state stored
    /// before intervals were kept still parses; a thread's enters stay bounded.
    #[test]
    fn open_enters_are_carried_and_bounded() {
        let mut carry = Carry::default();
        carry.entered.insert("s".into(), vec![(5, 50)]);
        let mut again = Carry::parse(Some(&carry.to_json()));
        assert_eq!(exit(&mut again, "s", 5), Some(50));

        let older = r#"{"stacks":{},"scope_counts":{},"open":{},"early_ends":{}}"#;
        assert!(Carry::parse(Some(older)).entered.is_empty());

        let deep: Vec<(u64, i64)> = (0..MAX_ENTERED as u64 + 10).map(|i| (i, 0)).collect();
        carry.entered.insert("deep".into(), deep);
        bound(&mut carry);
        let kept = &carry.entered["deep"];
        assert_eq!(kept.len(), MAX_ENTERED);
        assert_eq!(kept[0].0, 10, "the oldest enters are given up first");
    }
}

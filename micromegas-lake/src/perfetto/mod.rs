//! Export of traces to Perfetto (`.pftrace`, open it at <https://ui.perfetto.dev>): the spans
//! of one process or one trace over a time range, one track per process and thread (and per
//! lane where async spans overlap), spans as nested slices with their attributes as debug
//! annotations, the intervals a span of the tracing layer was entered on a thread (from
//! `span_intervals`) as slices on that thread, and log entries as instant events on their
//! thread.
//!
//! ```
//! use micromegas_lake::perfetto::{export, Selection};
//! use micromegas_lake::{Lake, LakeOptions};
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let lake = Lake::open("memory://", LakeOptions::default()).await.unwrap();
//! let selection = Selection::trace("4bf92f3577b34da6a3ce929d0e0e4736");
//! let mut file = Vec::new();
//! let report = export(&lake, &selection, &mut file).await.unwrap();
//! assert_eq!(report.slices, 0); // an empty lake has no such trace
//! # });
//! ```

pub mod lanes;
pub mod proto;

use crate::error::{LakeError, Result};
use crate::Lake;
use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::TimestampNanosecondType;
use futures::StreamExt;
use lanes::{Interval, Step};
use proto::{DebugAnnotation, EventType, TracePacket, TrackDescriptor, TrackEvent};
use std::collections::BTreeMap;
use std::io::Write;

/// Which spans and logs to export.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    /// Only this process (UUID).
    pub process_id: Option<String>,
    /// Only this trace (32 hex digits).
    pub trace_id: Option<String>,
    /// Only spans ending at or after this time (ns since the Unix epoch).
    pub begin_ns: Option<i64>,
    /// Only spans starting before this time (ns since the Unix epoch).
    pub end_ns: Option<i64>,
}

impl Selection {
    /// Every span of one trace.
    pub fn trace(trace_id: impl Into<String>) -> Self {
        Self {
            trace_id: Some(trace_id.into()),
            ..Default::default()
        }
    }

    /// Every span of one process.
    pub fn process(process_id: impl Into<String>) -> Self {
        Self {
            process_id: Some(process_id.into()),
            ..Default::default()
        }
    }

    /// Restricts to `[begin, end)`, in ns since the Unix epoch.
    pub fn between(mut self, begin_ns: i64, end_ns: i64) -> Self {
        self.begin_ns = Some(begin_ns);
        self.end_ns = Some(end_ns);
        self
    }

    /// The SQL filter; ids are checked to be ids, so nothing else reaches the SQL text.
    fn filter(&self, start: &str, end: &str) -> Result<String> {
        let mut clauses = vec!["TRUE".to_owned()];
        if let Some(p) = &self.process_id {
            if uuid::Uuid::parse_str(p).is_err() {
                return Err(LakeError::Config(format!(
                    "process id {p:?} is not a UUID (see `SELECT process_id FROM processes`)"
                )));
            }
            clauses.push(format!("process_id = '{p}'"));
        }
        if let Some(t) = &self.trace_id {
            if t.len() != 32 || !t.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(LakeError::Config(format!(
                    "trace id {t:?} is not 32 hex digits (see `SELECT trace_id FROM spans`)"
                )));
            }
            clauses.push(format!("trace_id = '{}'", t.to_ascii_lowercase()));
        }
        if let Some(b) = self.begin_ns {
            clauses.push(format!("{end} >= to_timestamp_nanos({b})"));
        }
        if let Some(e) = self.end_ns {
            clauses.push(format!("{start} < to_timestamp_nanos({e})"));
        }
        Ok(clauses.join(" AND "))
    }
}

/// What an export wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExportReport {
    /// Slices written: spans, and the intervals spans were entered on a thread.
    pub slices: usize,
    /// Log entries written as instant events.
    pub instants: usize,
    /// Tracks declared (processes, threads, lanes).
    pub tracks: usize,
    /// Bytes written.
    pub bytes: usize,
}

struct Span {
    start: i64,
    end: i64,
    name: String,
    target: String,
    annotations: Vec<DebugAnnotation>,
}

struct Log {
    time: i64,
    msg: String,
    target: String,
    level: String,
}

/// A thread of a process: its spans and logs. OTLP spans without a thread share the
/// process's unnamed thread.
#[derive(Default)]
struct Thread {
    spans: Vec<Span>,
    logs: Vec<Log>,
}

#[derive(Default)]
struct Process {
    service: String,
    threads: BTreeMap<String, Thread>,
}

/// Writes the spans and logs of `selection` to `out` as a Perfetto trace.
pub async fn export(
    lake: &Lake,
    selection: &Selection,
    out: &mut impl Write,
) -> Result<ExportReport> {
    export_observed(lake, selection, out, |_| {}).await
}

/// [`export`], calling `progress` with the running totals as spans and logs are read and
/// written (for a progress display).
pub async fn export_observed(
    lake: &Lake,
    selection: &Selection,
    out: &mut impl Write,
    mut progress: impl FnMut(&ExportReport),
) -> Result<ExportReport> {
    if selection.trace_id.is_none() && selection.process_id.is_none() {
        return Err(LakeError::Config(
            "choose a process or a trace to export".to_owned(),
        ));
    }
    let mut processes: BTreeMap<String, Process> = BTreeMap::new();
    let spans = format!(
        "SELECT process_id, service_name, thread_name, start_time, end_time, name, target, \
         trace_id, span_id, parent_span_id, attributes FROM spans WHERE {}",
        selection.filter("start_time", "end_time")?
    );
    let mut read = ExportReport::default();
    for_each_batch(lake, &spans, |b| {
        read_spans(b, &mut processes);
        read.slices += b.num_rows();
        progress(&read);
    })
    .await?;
    // Where the spans of the tracing layer ran: each enter on a thread, on that thread.
    let time_only = Selection {
        begin_ns: selection.begin_ns,
        end_ns: selection.end_ns,
        ..Default::default()
    };
    let intervals = format!(
        "SELECT i.process_id, i.service_name, i.thread_name, i.begin_time, i.end_time, \
         s.name, s.target, i.span_id FROM span_intervals i \
         JOIN (SELECT process_id, span_id, name, target FROM spans WHERE {}) s \
         ON i.span_id = s.span_id AND i.process_id = s.process_id WHERE {}",
        selection.filter("start_time", "end_time")?,
        time_only.filter("i.begin_time", "i.end_time")?
    );
    for_each_batch(lake, &intervals, |b| {
        read_intervals(b, &mut processes);
        read.slices += b.num_rows();
        progress(&read);
    })
    .await?;
    // Logs of the exported spans' processes (of the trace's spans when a trace is chosen).
    let mut logs = format!(
        "SELECT process_id, service_name, thread_name, time, msg, target, level FROM log_entries \
         WHERE {}",
        selection.filter("time", "time")?
    );
    if selection.trace_id.is_some() && processes.is_empty() {
        return write(&processes, out, &mut progress);
    }
    if selection.trace_id.is_some() {
        logs = format!(
            "{logs} AND process_id IN ({})",
            processes
                .keys()
                .map(|p| format!("'{p}'"))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    for_each_batch(lake, &logs, |b| {
        read_logs(b, &mut processes);
        read.instants += b.num_rows();
        progress(&read);
    })
    .await?;
    write(&processes, out, &mut progress)
}

async fn for_each_batch(lake: &Lake, sql: &str, mut f: impl FnMut(&RecordBatch)) -> Result<()> {
    let ctx = lake.session().await?;
    let mut stream = ctx.sql(sql).await?.execute_stream().await?;
    while let Some(batch) = stream.next().await {
        f(&batch?);
    }
    Ok(())
}

/// The thread `thread` of process `process` (of service `service`), added if new.
fn thread_of<'a>(
    processes: &'a mut BTreeMap<String, Process>,
    process: &str,
    service: &str,
    thread: &str,
) -> &'a mut Thread {
    let p = processes.entry(process.to_owned()).or_default();
    p.service = service.to_owned();
    p.threads.entry(thread.to_owned()).or_default()
}

/// Adds the rows of `b` as slices on their threads. Its first columns are process_id,
/// service_name, thread_name, start and end times, name and target; `annotate` gives a row's
/// debug annotations.
fn read_slices(
    b: &RecordBatch,
    processes: &mut BTreeMap<String, Process>,
    mut annotate: impl FnMut(usize) -> Vec<DebugAnnotation>,
) {
    let text = |i: usize| b.column(i).as_string::<i32>();
    let time = |i: usize| b.column(i).as_primitive::<TimestampNanosecondType>();
    let (process, service, thread) = (text(0), text(1), text(2));
    let (start, end, name, target) = (time(3), time(4), text(5), text(6));
    for row in 0..b.num_rows() {
        let annotations = annotate(row);
        thread_of(
            processes,
            process.value(row),
            service.value(row),
            thread.value(row),
        )
        .spans
        .push(Span {
            start: start.value(row),
            end: end.value(row).max(start.value(row)),
            name: name.value(row).to_owned(),
            target: target.value(row).to_owned(),
            annotations,
        });
    }
}

/// Spans, with trace_id, span_id, parent_span_id and attributes after the slice columns.
fn read_spans(b: &RecordBatch, processes: &mut BTreeMap<String, Process>) {
    let text = |i: usize| b.column(i).as_string::<i32>();
    let (trace, span, parent) = (text(7), text(8), text(9));
    let attributes = b.column(10).as_map();
    read_slices(b, processes, |row| {
        let mut annotations = Vec::new();
        for (key, column) in [
            ("trace_id", trace),
            ("span_id", span),
            ("parent_span_id", parent),
        ] {
            if column.is_valid(row) {
                annotations.push(DebugAnnotation::new(key, column.value(row)));
            }
        }
        let entries = attributes.value(row);
        let (keys, values) = (
            entries.column(0).as_string::<i32>(),
            entries.column(1).as_string::<i32>(),
        );
        for i in 0..entries.len() {
            let value = if values.is_valid(i) {
                values.value(i)
            } else {
                ""
            };
            annotations.push(DebugAnnotation::new(keys.value(i), value));
        }
        annotations
    });
}

/// Intervals a span was entered on a thread, with the span_id after the slice columns.
fn read_intervals(b: &RecordBatch, processes: &mut BTreeMap<String, Process>) {
    let span = b.column(7).as_string::<i32>();
    read_slices(b, processes, |row| {
        vec![
            DebugAnnotation::new("span_id", span.value(row)),
            DebugAnnotation::new("entered", "on this thread"),
        ]
    });
}

fn read_logs(b: &RecordBatch, processes: &mut BTreeMap<String, Process>) {
    let text = |i: usize| b.column(i).as_string::<i32>();
    let (process, service, thread) = (text(0), text(1), text(2));
    let time = b.column(3).as_primitive::<TimestampNanosecondType>();
    let (msg, target, level) = (text(4), text(5), text(6));
    for row in 0..b.num_rows() {
        thread_of(
            processes,
            process.value(row),
            service.value(row),
            thread.value(row),
        )
        .logs
        .push(Log {
            time: time.value(row),
            msg: msg.value(row).to_owned(),
            target: target.value(row).to_owned(),
            level: level.value(row).to_owned(),
        });
    }
}

/// The sequence every packet is written on.
const SEQUENCE: u32 = 1;

struct Writer<'a, W: Write> {
    out: &'a mut W,
    report: ExportReport,
    next_uuid: u64,
}

impl<W: Write> Writer<'_, W> {
    /// Appends one packet as field 1 of `Trace`.
    fn packet(&mut self, packet: TracePacket) -> Result<()> {
        use prost::Message;
        let body = packet.encode_to_vec();
        let mut framed = Vec::with_capacity(body.len() + 6);
        prost::encoding::encode_key(1, prost::encoding::WireType::LengthDelimited, &mut framed);
        prost::encoding::encode_varint(body.len() as u64, &mut framed);
        framed.extend_from_slice(&body);
        self.out
            .write_all(&framed)
            .map_err(|source| LakeError::Io {
                what: "writing the Perfetto trace".to_owned(),
                source,
            })?;
        self.report.bytes += framed.len();
        Ok(())
    }

    fn track(&mut self, descriptor: TrackDescriptor) -> Result<u64> {
        self.next_uuid += 1;
        let uuid = self.next_uuid;
        self.report.tracks += 1;
        self.packet(TracePacket {
            trusted_packet_sequence_id: Some(SEQUENCE),
            track_descriptor: Some(TrackDescriptor {
                uuid: Some(uuid),
                ..descriptor
            }),
            ..Default::default()
        })?;
        Ok(uuid)
    }

    fn event(&mut self, time: i64, event: TrackEvent) -> Result<()> {
        self.packet(TracePacket {
            timestamp: Some(time.max(0) as u64),
            trusted_packet_sequence_id: Some(SEQUENCE),
            track_event: Some(event),
            ..Default::default()
        })
    }
}

fn write(
    processes: &BTreeMap<String, Process>,
    out: &mut impl Write,
    progress: &mut impl FnMut(&ExportReport),
) -> Result<ExportReport> {
    let mut w = Writer {
        out,
        report: ExportReport::default(),
        next_uuid: 0,
    };
    let mut tid = 0i64;
    for (pid, (process_id, process)) in (1i32..).zip(processes) {
        let process_track = w.track(TrackDescriptor {
            process: Some(proto::ProcessDescriptor {
                pid: Some(pid),
                process_name: Some(format!("{} {process_id}", process.service)),
            }),
            ..Default::default()
        })?;
        for (thread_name, thread) in &process.threads {
            tid += 1;
            let name = if thread_name.is_empty() {
                "spans"
            } else {
                thread_name.as_str()
            };
            let thread_track = w.track(TrackDescriptor {
                thread: Some(proto::ThreadDescriptor {
                    pid: Some(pid),
                    tid: Some(tid),
                    thread_name: Some(name.to_owned()),
                }),
                parent_uuid: Some(process_track),
                ..Default::default()
            })?;
            write_thread(&mut w, thread, thread_track, name)?;
            progress(&w.report);
        }
    }
    w.out.flush().map_err(|source| LakeError::Io {
        what: "writing the Perfetto trace".to_owned(),
        source,
    })?;
    Ok(w.report)
}

fn write_thread<W: Write>(
    w: &mut Writer<'_, W>,
    thread: &Thread,
    track: u64,
    name: &str,
) -> Result<()> {
    let intervals = thread
        .spans
        .iter()
        .enumerate()
        .map(|(index, s)| Interval {
            start: s.start,
            end: s.end,
            index,
        })
        .collect();
    // Logs go on the thread's own track (lane 1), in time order among its slices.
    let mut logs: Vec<&Log> = thread.logs.iter().collect();
    logs.sort_by_key(|l| l.time);
    let mut logs = logs.into_iter().peekable();
    for (lane, steps) in lanes::assign(intervals).into_iter().enumerate() {
        let lane_track = if lane == 0 {
            track
        } else {
            w.track(TrackDescriptor {
                name: Some(format!("{name} (lane {})", lane + 1)),
                parent_uuid: Some(track),
                ..Default::default()
            })?
        };
        for step in steps {
            if lane == 0 {
                // Before a slice begins at t, the logs before t; before one ends, those up to t.
                let (Step::Begin { time, .. } | Step::End { time, .. }) = step;
                let inclusive = matches!(step, Step::End { .. });
                while let Some(log) =
                    logs.next_if(|l| l.time < time || (inclusive && l.time == time))
                {
                    instant(w, track, log)?;
                }
            }
            match step {
                Step::Begin { time, index } => {
                    let span = &thread.spans[index];
                    w.report.slices += 1;
                    w.event(
                        time,
                        TrackEvent {
                            r#type: Some(EventType::SliceBegin as i32),
                            track_uuid: Some(lane_track),
                            name: Some(span.name.clone()),
                            categories: vec![span.target.clone()],
                            debug_annotations: span.annotations.clone(),
                        },
                    )?;
                }
                Step::End { time, .. } => w.event(
                    time,
                    TrackEvent {
                        r#type: Some(EventType::SliceEnd as i32),
                        track_uuid: Some(lane_track),
                        ..Default::default()
                    },
                )?,
            }
        }
    }
    for log in logs {
        instant(w, track, log)?;
    }
    Ok(())
}

fn instant<W: Write>(w: &mut Writer<'_, W>, track: u64, log: &Log) -> Result<()> {
    w.report.instants += 1;
    w.event(
        log.time,
        TrackEvent {
            r#type: Some(EventType::Instant as i32),
            track_uuid: Some(track),
            name: Some(log.msg.clone()),
            categories: vec![log.target.clone()],
            debug_annotations: vec![DebugAnnotation::new("level", log.level.clone())],
        },
    )
}

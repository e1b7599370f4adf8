//! The event model: a process owns streams (one per thread and kind), a stream is a sequence
//! of blocks, a block carries events.

use crate::time::Calibration;
use crate::transit::layout::EventLayout;
use crate::transit::wire::{Reader, WireWrite};
use crate::transit::DecodeError;
use uuid::Uuid;

/// Key/value properties attached to a process or a stream.
pub type Properties = Vec<(String, String)>;

/// Identity and clock of an instrumented process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessInfo {
    /// Random id chosen at start.
    pub process_id: Uuid,
    /// Path of the executable.
    pub exe: String,
    /// User running the process.
    pub username: String,
    /// Host name.
    pub hostname: String,
    /// Service name (OpenTelemetry `service.name`).
    pub service_name: String,
    /// Tick counter anchor and frequency used to turn ticks into wall time.
    pub calibration: Calibration,
    /// Free-form properties.
    pub properties: Properties,
}

impl ProcessInfo {
    /// Describes the running process, calibrating the tick counter.
    pub fn current(service_name: Option<&str>, properties: Properties) -> Self {
        let exe = std::env::current_exe()
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        let service_name = service_name.map(str::to_owned).unwrap_or_else(|| {
            let stem = std::path::Path::new(&exe)
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            format!("unknown_service:{stem}")
        });
        // Miri cannot call into the user database; it only checks the pipeline's memory safety.
        #[cfg(not(miri))]
        let (username, hostname) = (
            whoami::username(),
            whoami::fallible::hostname().unwrap_or_default(),
        );
        #[cfg(miri)]
        let (username, hostname) = (std::env::var("USER").unwrap_or_default(), String::new());
        Self {
            process_id: Uuid::new_v4(),
            exe,
            username,
            hostname,
            service_name,
            calibration: crate::time::calibrate(),
            properties,
        }
    }

    /// Wall time (ns since the Unix epoch) of a tick value of this process.
    pub fn ticks_to_unix_nanos(&self, ticks: u64) -> i64 {
        crate::time::ticks_to_unix_nanos(ticks, &self.calibration)
    }

    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        out.put_uuid(&self.process_id);
        out.put_str16(&self.exe);
        out.put_str16(&self.username);
        out.put_str16(&self.hostname);
        out.put_str16(&self.service_name);
        out.put_i64(self.calibration.start_unix_nanos);
        out.put_u64(self.calibration.start_ticks);
        out.put_u64(self.calibration.ticks_per_second);
        encode_properties(&self.properties, out);
    }

    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let process_id = r.uuid("process id")?;
        let exe = r.str16("process exe")?.to_owned();
        let username = r.str16("process username")?.to_owned();
        let hostname = r.str16("process hostname")?.to_owned();
        let service_name = r.str16("process service name")?.to_owned();
        let start_unix_nanos = r.i64("process start time")?;
        let start_ticks = r.u64("process start ticks")?;
        let ticks_per_second = r.u64("process tick frequency")?;
        if ticks_per_second == 0 {
            return Err(DecodeError::Invalid("process tick frequency is 0".into()));
        }
        let properties = decode_properties(r)?;
        Ok(Self {
            process_id,
            exe,
            username,
            hostname,
            service_name,
            calibration: Calibration {
                start_ticks,
                start_unix_nanos,
                ticks_per_second,
            },
            properties,
        })
    }
}

/// What a stream carries.
#[repr(u8)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum StreamKind {
    /// Span begin/end events of one thread (and async spans polled on it).
    Spans = 1,
    /// Log entries of one thread.
    Logs = 2,
    /// Metric values of one thread.
    Metrics = 3,
}

impl StreamKind {
    /// All kinds, in the order of their index.
    pub const ALL: [StreamKind; 3] = [StreamKind::Spans, StreamKind::Logs, StreamKind::Metrics];

    /// 0-based index, for per-kind arrays.
    pub fn index(self) -> usize {
        self as usize - 1
    }

    /// Lower-case name (`spans`, `logs`, `metrics`).
    pub fn as_str(self) -> &'static str {
        match self {
            StreamKind::Spans => "spans",
            StreamKind::Logs => "logs",
            StreamKind::Metrics => "metrics",
        }
    }

    fn from_u8(v: u8) -> Option<Self> {
        Some(match v {
            1 => StreamKind::Spans,
            2 => StreamKind::Logs,
            3 => StreamKind::Metrics,
            _ => return None,
        })
    }
}

/// A sequence of blocks written by one thread for one kind of event, with the layout of every
/// event type it carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamInfo {
    /// Random id.
    pub stream_id: Uuid,
    /// Owning process.
    pub process_id: Uuid,
    /// What it carries.
    pub kind: StreamKind,
    /// Process-local thread number, from 1 in order of first event.
    pub thread_id: u64,
    /// Thread name, empty if the thread has none.
    pub thread_name: String,
    /// Layout of each event type.
    pub layouts: Vec<EventLayout>,
    /// Free-form properties.
    pub properties: Properties,
}

impl StreamInfo {
    /// The layout of events starting with `type_id`.
    pub fn layout(&self, type_id: u8) -> Option<&EventLayout> {
        self.layouts.iter().find(|l| l.type_id == type_id)
    }

    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        out.put_uuid(&self.stream_id);
        out.put_uuid(&self.process_id);
        out.put_u8(self.kind as u8);
        out.put_u64(self.thread_id);
        out.put_str16(&self.thread_name);
        out.put_u8(self.layouts.len() as u8);
        for l in &self.layouts {
            l.encode(out);
        }
        encode_properties(&self.properties, out);
    }

    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let stream_id = r.uuid("stream id")?;
        let process_id = r.uuid("stream process id")?;
        let raw_kind = r.u8("stream kind")?;
        let kind = StreamKind::from_u8(raw_kind)
            .ok_or_else(|| DecodeError::Invalid(format!("unknown stream kind {raw_kind}")))?;
        let thread_id = r.u64("stream thread id")?;
        let thread_name = r.str16("stream thread name")?.to_owned();
        let n = r.u8("stream layout count")? as usize;
        let n = r.count(n, 6, "stream layouts")?;
        let mut layouts: Vec<EventLayout> = Vec::with_capacity(n);
        for _ in 0..n {
            let layout = EventLayout::decode(r)?;
            if layouts.iter().any(|l| l.type_id == layout.type_id) {
                return Err(DecodeError::Invalid(format!(
                    "event type {} is described twice",
                    layout.type_id
                )));
            }
            layouts.push(layout);
        }
        let properties = decode_properties(r)?;
        Ok(Self {
            stream_id,
            process_id,
            kind,
            thread_id,
            thread_name,
            layouts,
            properties,
        })
    }
}

fn encode_properties(props: &Properties, out: &mut Vec<u8>) {
    let n = props.len().min(u16::MAX as usize);
    out.put_u16(n as u16);
    for (k, v) in props.iter().take(n) {
        out.put_str16(k);
        out.put_str16(v);
    }
}

fn decode_properties(r: &mut Reader<'_>) -> Result<Properties, DecodeError> {
    let n = r.u16("property count")? as usize;
    let n = r.count(n, 4, "properties")?;
    let mut props = Vec::with_capacity(n);
    for _ in 0..n {
        let k = r.str16("property key")?.to_owned();
        let v = r.str16("property value")?.to_owned();
        props.push((k, v));
    }
    Ok(props)
}

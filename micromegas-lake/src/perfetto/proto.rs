//! The part of Perfetto's trace format (`perfetto/trace/perfetto_trace.proto`) the export
//! writes: tracks (process, thread, lanes) and track events (slices, instants) with debug
//! annotations. Field numbers are Perfetto's; a `Trace` is the concatenation of its packets
//! as field 1, which lets the export stream packet by packet.

/// `TracePacket`: one track descriptor or one track event.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TracePacket {
    /// Nanoseconds (the trace clock; here wall time since the Unix epoch).
    #[prost(uint64, optional, tag = "8")]
    pub timestamp: Option<u64>,
    /// The writer's sequence; every packet of the export uses one.
    #[prost(uint32, optional, tag = "10")]
    pub trusted_packet_sequence_id: Option<u32>,
    /// A slice or instant event.
    #[prost(message, optional, tag = "11")]
    pub track_event: Option<TrackEvent>,
    /// A track declaration.
    #[prost(message, optional, tag = "60")]
    pub track_descriptor: Option<TrackDescriptor>,
}

/// `TrackDescriptor`: a process, a thread, or a lane under a thread.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TrackDescriptor {
    /// The track's id, referred to by events.
    #[prost(uint64, optional, tag = "1")]
    pub uuid: Option<u64>,
    /// The track's name (lanes).
    #[prost(string, optional, tag = "2")]
    pub name: Option<String>,
    /// Set on a process track.
    #[prost(message, optional, tag = "3")]
    pub process: Option<ProcessDescriptor>,
    /// Set on a thread track.
    #[prost(message, optional, tag = "4")]
    pub thread: Option<ThreadDescriptor>,
    /// The enclosing track (a lane's thread).
    #[prost(uint64, optional, tag = "5")]
    pub parent_uuid: Option<u64>,
}

/// `ProcessDescriptor`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ProcessDescriptor {
    /// A small number standing for the process in this trace.
    #[prost(int32, optional, tag = "1")]
    pub pid: Option<i32>,
    /// Service name and process id.
    #[prost(string, optional, tag = "6")]
    pub process_name: Option<String>,
}

/// `ThreadDescriptor`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ThreadDescriptor {
    /// The process's number.
    #[prost(int32, optional, tag = "1")]
    pub pid: Option<i32>,
    /// A small number standing for the thread in this trace.
    #[prost(int64, optional, tag = "2")]
    pub tid: Option<i64>,
    /// The thread's name.
    #[prost(string, optional, tag = "5")]
    pub thread_name: Option<String>,
}

/// `TrackEvent.Type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, prost::Enumeration)]
#[repr(i32)]
pub enum EventType {
    /// Opens a slice on its track.
    SliceBegin = 1,
    /// Closes the innermost open slice of its track.
    SliceEnd = 2,
    /// A point in time.
    Instant = 3,
}

/// `TrackEvent`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TrackEvent {
    /// Key/value details shown beside the event.
    #[prost(message, repeated, tag = "4")]
    pub debug_annotations: Vec<DebugAnnotation>,
    /// Begin, end or instant.
    #[prost(enumeration = "EventType", optional, tag = "9")]
    pub r#type: Option<i32>,
    /// The track the event is on.
    #[prost(uint64, optional, tag = "11")]
    pub track_uuid: Option<u64>,
    /// Categories (the target).
    #[prost(string, repeated, tag = "22")]
    pub categories: Vec<String>,
    /// The name (span name, log message).
    #[prost(string, optional, tag = "23")]
    pub name: Option<String>,
}

/// `DebugAnnotation` with a string value.
#[derive(Clone, PartialEq, prost::Message)]
pub struct DebugAnnotation {
    /// The value.
    #[prost(string, optional, tag = "6")]
    pub string_value: Option<String>,
    /// The key.
    #[prost(string, optional, tag = "10")]
    pub name: Option<String>,
}

impl DebugAnnotation {
    /// `name = value`.
    pub fn new(name: impl Into<String>, value: impl Into<String>) -> Self {
        Self {
            name: Some(name.into()),
            string_value: Some(value.into()),
        }
    }
}

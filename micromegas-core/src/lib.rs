//! # micromegas-core
//!
//! The instrumentation hot path of micromegas and the transit format it writes.
//!
//! Events (span scopes, async spans, logs, metrics) are appended by the calling thread to its
//! own lock-free ring as a few bytes: a type byte, the address of the callsite's static
//! metadata, a raw tick count and, for logs with arguments, the arguments stored binary. A
//! dedicated flusher thread turns rings into self-describing, LZ4-compressed blocks
//! ([`transit`]) and hands them to a [`sink::Sink`]; a byte budget bounds memory and every
//! event dropped is counted ([`Stats`]).
//!
//! ```
//! use micromegas_core::{init, Options, sink::MemorySink, read};
//! use std::sync::Arc;
//!
//! let sink = Arc::new(MemorySink::new());
//! let guard = init(sink.clone(), Options::default().service_name("demo")).unwrap();
//! {
//!     micromegas_core::span_scope!("handle_request");
//!     micromegas_core::info!("user {} logged in after {} ms", "alice", 42);
//!     micromegas_core::imetric!("request.bytes", "bytes", 512);
//! }
//! let stats = guard.shutdown(); // flushes
//! assert_eq!(stats.total_dropped(), 0);
//!
//! // Read everything back with nothing but what the blocks describe.
//! let mut messages = Vec::new();
//! for batch in sink.batches() {
//!     for block in &batch.blocks {
//!         let stream = batch.stream_of(block).unwrap();
//!         for ev in read::decode_block(&batch.process, stream, block).unwrap() {
//!             if let read::Event::Log(log) = ev {
//!                 messages.push(log.msg);
//!             }
//!         }
//!     }
//! }
//! assert_eq!(messages, ["user alice logged in after 42 ms"]);
//! ```
#![warn(missing_docs)]

mod dispatch;
pub mod events;
mod macros;
pub mod metadata;
pub mod model;
pub mod read;
pub mod sink;
pub mod spans;
pub mod time;
pub mod transit;

pub use dispatch::{
    flush, init, register_sampler, stats, unrecorded, unrecorded_thread, DropReason, Guard,
    InitError, Options, Stats,
};

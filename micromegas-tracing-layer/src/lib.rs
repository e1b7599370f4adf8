//! # micromegas-tracing-layer
//!
//! Capture what an application already emits through the `tracing`, `log` and `metrics`
//! facades into micromegas, at the cost of a few stores per event in the calling thread.
//!
//! - [`MicromegasLayer`]: a `tracing_subscriber::Layer` for spans and events;
//! - [`LogBridge`]: a `log::Log`;
//! - [`MicromegasRecorder`]: a `metrics` 0.24 `Recorder`;
//! - [`init`]: all three in one call, configured from the environment.
//! - `network::NetworkSink` (feature `network`): sends the blocks to a micromegas collector.
//! - [`system_monitor`] (feature `system-monitor`, default): the process's CPU, memory,
//!   threads and file descriptors, the machine's load and memory, and the pipeline's own
//!   counters, as metrics every few seconds; on in [`init`], one builder call otherwise.
//!
//! ```
//! use micromegas_core::sink::MemorySink;
//! use micromegas_tracing_layer::MicromegasLayer;
//! use std::sync::Arc;
//! use tracing_subscriber::layer::SubscriberExt;
//!
//! let sink = Arc::new(MemorySink::new());
//! let (layer, guard) = MicromegasLayer::builder()
//!     .service_name("checkout")
//!     .sink(sink.clone())
//!     .build()
//!     .unwrap();
//! let subscriber = tracing_subscriber::registry().with(layer);
//! tracing_core::dispatcher::with_default(&tracing_core::Dispatch::new(subscriber), || {
//!     tracing::info_span!("request", id = 7).in_scope(|| tracing::info!(items = 3, "paid"));
//! });
//! let stats = guard.shutdown();
//! assert_eq!(stats.total_dropped(), 0);
//! ```
#![warn(missing_docs)]

mod callsite;
mod config;
mod fields;
mod layer;
mod log_bridge;
mod metrics_recorder;
#[cfg(feature = "network")]
pub mod network;
mod span_stack;
mod span_table;
#[cfg(feature = "system-monitor")]
pub mod system_monitor;
mod traceparent;

pub use config::{init, Builder, InitError};
pub use layer::MicromegasLayer;
pub use log_bridge::LogBridge;
pub use metrics_recorder::{MicromegasRecorder, DEFAULT_CARDINALITY_LIMIT, OVERFLOW_LABEL};
pub use traceparent::current as current_traceparent;

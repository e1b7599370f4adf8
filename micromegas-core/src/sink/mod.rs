//! Sinks: where the flusher hands finished batches.

mod directory;
mod memory;

pub use directory::DirectorySink;
pub use memory::MemorySink;

use crate::transit::batch::Batch;
use std::time::Duration;

/// Why a sink did not take a batch.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SinkError {
    /// Try again later (the batch stays queued, within the byte budget).
    #[error("sink unavailable, will retry: {0}")]
    Retryable(String),
    /// Never accepted (the batch is dropped and counted).
    #[error("sink rejected the batch: {0}")]
    Rejected(String),
}

/// Receives batches on the flusher thread. Calls are sequential and in order. A sink may block
/// for a while (the calling threads of the application are never affected, only the flusher).
pub trait Sink: Send + Sync + 'static {
    /// Takes one batch. Return only once the sink is responsible for it.
    fn write_batch(&self, batch: &Batch) -> Result<(), SinkError>;

    /// Makes everything taken so far durable, waiting up to `timeout`.
    fn flush(&self, timeout: Duration) -> Result<(), SinkError> {
        let _ = timeout;
        Ok(())
    }
}

/// Accepts and discards everything.
#[derive(Debug, Default, Clone, Copy)]
pub struct NullSink;

impl Sink for NullSink {
    fn write_batch(&self, _batch: &Batch) -> Result<(), SinkError> {
        Ok(())
    }
}

//! The embedded sink: an instrumented process writes its own blocks straight into a lake.

use crate::{Lake, LakeOptions, Result};
use micromegas_core::sink::{Sink, SinkError};
use micromegas_core::transit::batch::Batch;

/// A [`Sink`] writing every batch into a lake, durably, before acknowledging it.
#[derive(Debug)]
pub struct LakeSink {
    runtime: tokio::runtime::Runtime,
    lake: Lake,
}

impl LakeSink {
    /// Opens the lake at `url` on a small runtime of its own (the flusher thread calls the
    /// sink outside any async runtime).
    pub fn open(url: &str, options: LakeOptions) -> Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("micromegas-lake-sink")
            .enable_all()
            .build()
            .map_err(|source| crate::LakeError::Io {
                what: "starting the lake sink's runtime".into(),
                source,
            })?;
        let lake = runtime.block_on(Lake::open(url, options))?;
        Ok(Self { runtime, lake })
    }

    /// The lake written to.
    pub fn lake(&self) -> &Lake {
        &self.lake
    }
}

impl Sink for LakeSink {
    fn write_batch(&self, batch: &Batch) -> std::result::Result<(), SinkError> {
        match self
            .runtime
            .block_on(self.lake.write_batches(std::slice::from_ref(batch)))
        {
            Ok(_) => Ok(()),
            Err(e) if e.is_retryable() => Err(SinkError::Retryable(e.to_string())),
            Err(e) => Err(SinkError::Rejected(e.to_string())),
        }
    }
}

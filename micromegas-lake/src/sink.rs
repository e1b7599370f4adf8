//! The embedded sink: an instrumented process writes its own blocks straight into a lake.

use crate::{Lake, LakeOptions, Result};
use micromegas_core::sink::{Sink, SinkError};
use micromegas_core::transit::batch::Batch;

/// A [`Sink`] writing every batch into a lake, durably, before acknowledging it.
#[derive(Debug)]
pub struct LakeSink {
    runtime: Runtime,
    lake: Lake,
}

#[derive(Debug)]
enum Runtime {
    /// Always `Some` until dropped (see the `Drop` impl of [`LakeSink`]).
    Own(Option<tokio::runtime::Runtime>),
    Shared(tokio::runtime::Handle),
}

impl Runtime {
    fn block_on<F: std::future::Future>(&self, f: F) -> Option<F::Output> {
        match self {
            Runtime::Own(r) => r.as_ref().map(|r| r.block_on(f)),
            Runtime::Shared(h) => Some(h.block_on(f)),
        }
    }
}

impl Drop for LakeSink {
    /// A runtime of its own is shut down without blocking when the sink is dropped inside an
    /// async context (where dropping a runtime panics): the app's guard dropped at the end of
    /// `#[tokio::main] async fn main`, or a task's thread letting go of the pipeline's last
    /// reference. Elsewhere its tasks get a second to end.
    fn drop(&mut self) {
        if let Runtime::Own(own) = &mut self.runtime {
            if let Some(runtime) = own.take() {
                if tokio::runtime::Handle::try_current().is_ok() {
                    runtime.shutdown_background();
                } else {
                    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
                }
            }
        }
    }
}

impl LakeSink {
    /// Opens the lake at `url` on a small runtime of its own (the flusher thread calls the
    /// sink outside any async runtime). Called from async code, it blocks that thread while
    /// the lake opens, on a thread of its own (a runtime cannot be entered from another).
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
        let open = || runtime.block_on(Lake::open(url, options));
        let lake = if tokio::runtime::Handle::try_current().is_ok() {
            std::thread::scope(|s| s.spawn(open).join()).map_err(|_| crate::LakeError::Io {
                what: "opening the lake sink's lake".into(),
                source: std::io::Error::other("the thread opening the lake panicked"),
            })??
        } else {
            open()?
        };
        Ok(Self {
            runtime: Runtime::Own(Some(runtime)),
            lake,
        })
    }

    /// A sink into a lake already open on the runtime of `handle` (a service recording its own
    /// telemetry into the lake it serves). The flusher thread waits on that runtime, so it
    /// must keep running while the pipeline does.
    pub fn with_lake(lake: Lake, handle: tokio::runtime::Handle) -> Self {
        Self {
            runtime: Runtime::Shared(handle),
            lake,
        }
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
            Some(Ok(_)) => Ok(()),
            Some(Err(e)) if e.is_retryable() => Err(SinkError::Retryable(e.to_string())),
            Some(Err(e)) => Err(SinkError::Rejected(e.to_string())),
            None => Err(SinkError::Retryable(
                "the lake sink is being dropped".into(),
            )),
        }
    }
}

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
    Own(tokio::runtime::Runtime),
    Shared(tokio::runtime::Handle),
}

impl Runtime {
    fn block_on<F: std::future::Future>(&self, f: F) -> F::Output {
        match self {
            Runtime::Own(r) => r.block_on(f),
            Runtime::Shared(h) => h.block_on(f),
        }
    }
}

impl LakeSink {
    /// Opens the lake at `url` on a small runtime of its own (the flusher thread calls the
    /// sink outside any async runtime). Called from async code, it blocks that thread while
    /// the runtime starts and the lake opens on a thread of their own (a runtime can neither
    /// be entered nor dropped in another).
    pub fn open(url: &str, options: LakeOptions) -> Result<Self> {
        let open = || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .thread_name("micromegas-lake-sink")
                // What the lake's clients emit there is not recorded: it would feed itself.
                .on_thread_start(micromegas_core::unrecorded_thread)
                .enable_all()
                .build()
                .map_err(|source| crate::LakeError::Io {
                    what: "starting the lake sink's runtime".into(),
                    source,
                })?;
            let lake = runtime.block_on(Lake::open(url, options))?;
            Ok(Self {
                runtime: Runtime::Own(runtime),
                lake,
            })
        };
        if tokio::runtime::Handle::try_current().is_err() {
            return open();
        }
        std::thread::scope(|s| s.spawn(open).join()).map_err(|_| crate::LakeError::Io {
            what: "opening the lake sink's lake".into(),
            source: std::io::Error::other("the thread opening the lake panicked"),
        })?
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
            Ok(_) => Ok(()),
            Err(e) if e.is_retryable() => Err(SinkError::Retryable(e.to_string())),
            Err(e) => Err(SinkError::Rejected(e.to_string())),
        }
    }
}

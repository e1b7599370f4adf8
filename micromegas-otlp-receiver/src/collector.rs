//! What the collector's servers share: the lake, the limits, the accepted tokens, the
//! in-flight budget that turns overload into backpressure, and the deadline of a write.

use crate::admission::{Admission, Admitted, Busy};
use crate::auth::Tokens;
use crate::telemetry;
use micromegas_lake::{Lake, LakeError};
use std::future::Future;
use std::time::Duration;

/// Default largest request, after decompression: 64 MiB, as the OTLP specification
/// recommends.
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 64 << 20;

/// Default budget of request bytes being written at once: 256 MiB.
pub const DEFAULT_MAX_INFLIGHT_BYTES: usize = 256 << 20;

/// Default longest wait for a request's data to be durable: 8 s, below the 10 s export
/// timeout of OpenTelemetry SDKs and of the network sink, so that a client hears the
/// collector's retryable refusal rather than giving up on its own.
pub const DEFAULT_WRITE_TIMEOUT: Duration = Duration::from_secs(8);

/// Settings of a collector's servers.
#[derive(Debug, Clone)]
pub struct CollectorOptions {
    /// Largest request, after decompression (bigger: gRPC RESOURCE_EXHAUSTED / HTTP 413).
    pub max_message_bytes: usize,
    /// Request bytes being written at once before new requests are refused with
    /// UNAVAILABLE + RetryInfo / 503 + Retry-After.
    pub max_inflight_bytes: usize,
    /// Bearer tokens required on ingest (none: open).
    pub tokens: Tokens,
    /// Longest wait for a request's data to be durable before the request is refused as
    /// retryable (see [`Collector::write`]).
    pub write_timeout: Duration,
}

impl Default for CollectorOptions {
    fn default() -> Self {
        Self {
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
            max_inflight_bytes: DEFAULT_MAX_INFLIGHT_BYTES,
            tokens: Tokens::default(),
            write_timeout: DEFAULT_WRITE_TIMEOUT,
        }
    }
}

/// One collector: a lake and the settings its gRPC and HTTP servers apply. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Collector {
    lake: Lake,
    options: CollectorOptions,
    admission: Admission,
}

impl Collector {
    /// A collector writing into `lake`.
    pub fn new(lake: Lake, options: CollectorOptions) -> Self {
        let admission = Admission::new(options.max_inflight_bytes);
        Self {
            lake,
            options,
            admission,
        }
    }

    /// The lake written to.
    pub fn lake(&self) -> &Lake {
        &self.lake
    }

    /// The settings.
    pub fn options(&self) -> &CollectorOptions {
        &self.options
    }

    /// Bytes of requests being written now.
    pub fn in_flight_bytes(&self) -> usize {
        self.admission.in_flight_bytes()
    }

    /// Admits a request of `bytes` (decoded size) or refuses it as over the budget; records
    /// either in the collector's own telemetry.
    pub fn admit(
        &self,
        transport: &'static str,
        signal: &'static str,
        bytes: usize,
    ) -> Result<Admitted, Busy> {
        let admitted = self.admission.admit(bytes);
        match &admitted {
            Ok(_) => telemetry::request(transport, signal, bytes, self.in_flight_bytes()),
            Err(busy) => telemetry::refused(transport, signal, "busy", &busy.to_string()),
        }
        admitted
    }

    /// Runs the write of an admitted request as a task of its own, which keeps the request's
    /// share of the in-flight budget until the write ends, whether or not anyone still waits
    /// for it (the client went away, or the deadline passed): writes held up by an unreachable
    /// object store or catalog cannot pile up past the budget, and over it new requests are
    /// refused at once. Answers within [`CollectorOptions::write_timeout`]; after it, with a
    /// retryable [`LakeError::TimedOut`] while the write goes on (a request sent again is
    /// recognised by its block ids and stored once).
    pub async fn write<T: Send + 'static>(
        &self,
        admitted: Admitted,
        write: impl Future<Output = Result<T, LakeError>> + Send + 'static,
    ) -> Result<T, LakeError> {
        let admission = self.admission.clone();
        let task = tokio::spawn(async move {
            let result = write.await;
            drop(admitted);
            telemetry::inflight_bytes(admission.in_flight_bytes());
            result
        });
        match tokio::time::timeout(self.options.write_timeout, task).await {
            Ok(Ok(result)) => result,
            Ok(Err(failed)) => Err(LakeError::Io {
                what: "the task writing a request into the lake".into(),
                source: std::io::Error::other(failed),
            }),
            Err(_) => Err(LakeError::TimedOut {
                what: "writing the request into the lake".into(),
                after: self.options.write_timeout,
                setting: "--write-timeout",
            }),
        }
    }

    /// Waits, at most `limit`, for the writes still running (those whose requests were
    /// answered or went away) to end. Returns the bytes of requests whose writes are still
    /// running at the limit: they were not acknowledged, so their clients still hold them.
    pub async fn finish_writes(&self, limit: Duration) -> usize {
        let _ = tokio::time::timeout(limit, self.admission.idle()).await;
        self.in_flight_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn collector(budget: usize, write_timeout: Duration) -> Collector {
        let lake = Lake::open("memory://", Default::default()).await.unwrap();
        Collector::new(
            lake,
            CollectorOptions {
                max_inflight_bytes: budget,
                write_timeout,
                ..Default::default()
            },
        )
    }

    #[tokio::test]
    async fn a_write_past_its_deadline_is_refused_and_keeps_its_budget_until_it_ends() {
        let c = collector(4096, Duration::from_millis(50)).await;
        let (release, released) = tokio::sync::oneshot::channel::<()>();
        let admitted = c.admit("test", "logs", 4096).unwrap();
        let e = c
            .write(admitted, async move {
                let _ = released.await;
                Ok(7)
            })
            .await
            .unwrap_err();
        assert!(matches!(e, LakeError::TimedOut { .. }), "{e}");
        assert!(e.is_retryable());
        assert!(e.to_string().contains("--write-timeout"), "{e}");
        // The write goes on and holds the budget: a new request is refused as busy.
        assert_eq!(c.in_flight_bytes(), 4096);
        assert!(c.admit("test", "logs", 1).is_err());
        release.send(()).unwrap();
        assert_eq!(c.finish_writes(Duration::from_secs(60)).await, 0);
        let admitted = c.admit("test", "logs", 1).unwrap();
        assert_eq!(c.write(admitted, async { Ok(7) }).await.unwrap(), 7);
    }

    #[tokio::test]
    async fn the_in_flight_gauge_falls_when_a_write_ends() {
        use micromegas_core::read::{decode_block, Event};
        let sink = std::sync::Arc::new(micromegas_core::sink::MemorySink::new());
        let guard = micromegas_core::init(sink.clone(), Default::default()).unwrap();
        let c = collector(1 << 20, Duration::from_secs(60)).await;
        let admitted = c.admit("test", "logs", 4096).unwrap();
        c.write(admitted, async { Ok(()) }).await.unwrap();
        guard.shutdown();
        // This test's thread only: the other tests of this binary run meanwhile. The write's
        // task ran on it too (a current-thread runtime).
        let this_thread = std::thread::current().name().unwrap_or_default().to_owned();
        let mut values = Vec::new();
        for batch in sink.batches() {
            for block in &batch.blocks {
                let stream = batch.stream_of(block).unwrap();
                if stream.thread_name != this_thread {
                    continue;
                }
                for e in decode_block(&batch.process, stream, block).unwrap() {
                    if let Event::Measure(m) = e {
                        if m.location.name == "collector.inflight_bytes" {
                            values.push(m.value);
                        }
                    }
                }
            }
        }
        // At admission, then once the write ended.
        assert_eq!(values, [4096.0, 0.0]);
    }

    #[tokio::test]
    async fn a_write_that_panics_is_an_error_and_frees_its_budget() {
        let c = collector(4096, Duration::from_secs(60)).await;
        let admitted = c.admit("test", "logs", 100).unwrap();
        let e = c
            .write::<()>(admitted, async { panic!("a bug in a write") })
            .await
            .unwrap_err();
        assert!(e.to_string().contains("the task writing a request"), "{e}");
        assert_eq!(c.in_flight_bytes(), 0);
    }

    #[tokio::test]
    async fn finish_writes_reports_what_is_still_running_at_its_limit() {
        let c = collector(1 << 20, Duration::from_millis(10)).await;
        let admitted = c.admit("test", "logs", 2048).unwrap();
        let pending = c.write::<()>(admitted, std::future::pending());
        assert!(pending.await.is_err());
        assert_eq!(c.finish_writes(Duration::from_millis(10)).await, 2048);
    }
}

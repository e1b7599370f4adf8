//! Cost per operation through the `tracing`, `log` and `metrics` facades, in one run:
//! MicromegasLayer against the floor set by tracing itself (Registry + a layer that does
//! nothing) and the physical floor of what it records (the same plus one clock read per time
//! it keeps), the fmt layer writing to `io::sink()`, and tracing-opentelemetry with the SDK's
//! batch processor and an exporter that discards; our `log` bridge against our native static
//! log; our `metrics` recorder against metrics-util's `DebuggingRecorder` and against the
//! floor of the `metrics` API (a recorder that only clones one `Arc`).
//!
//! `cargo bench -p micromegas-tracing-layer --bench layer`, then
//! `python3 scripts/bench_report.py layer` prints the table of BENCHMARKS.md.

use criterion::{criterion_group, criterion_main, Bencher, Criterion};
use micromegas_core::sink::NullSink;
use micromegas_tracing_layer::{LogBridge, MicromegasLayer, MicromegasRecorder};
use opentelemetry::trace::TracerProvider;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SdkTracerProvider, SpanData, SpanExporter};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tracing_subscriber::layer::SubscriberExt;

/// Times `op` in chunks, letting micromegas' flusher drain between chunks (not timed), so
/// that a loop doing nothing else never saturates the pipeline. Every configuration is timed
/// the same way.
fn iter_chunked(b: &mut Bencher<'_>, mut op: impl FnMut()) {
    const CHUNK: u64 = 4096;
    b.iter_custom(|iters| {
        let mut total = Duration::ZERO;
        let mut done = 0;
        while done < iters {
            let n = CHUNK.min(iters - done);
            let t = Instant::now();
            for _ in 0..n {
                op();
            }
            total += t.elapsed();
            done += n;
            micromegas_core::flush(Duration::from_secs(5));
        }
        total
    })
}

struct Noop;
impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Noop {}

/// The physical floor of what the layer must record: a layer that only reads the clock where
/// the layer's records carry a time (an event; a span's creation, each enter and each exit;
/// a span's close needs none, since it ends at its last exit), and keeps nothing.
struct ClockReads;
impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for ClockReads {
    fn on_new_span(
        &self,
        _: &tracing::span::Attributes<'_>,
        _: &tracing::span::Id,
        _: tracing_subscriber::layer::Context<'_, S>,
    ) {
        std::hint::black_box(micromegas_core::time::now());
    }
    fn on_event(&self, _: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        std::hint::black_box(micromegas_core::time::now());
    }
    fn on_enter(&self, _: &tracing::span::Id, _: tracing_subscriber::layer::Context<'_, S>) {
        std::hint::black_box(micromegas_core::time::now());
    }
    fn on_exit(&self, _: &tracing::span::Id, _: tracing_subscriber::layer::Context<'_, S>) {
        std::hint::black_box(micromegas_core::time::now());
    }
}

#[derive(Debug)]
struct DiscardExporter;
impl SpanExporter for DiscardExporter {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        std::hint::black_box(batch);
        Ok(())
    }
}

/// The `log` logger: our bridge, or, to measure the floor of the `log` facade, a logger that
/// does nothing (one process can install only one logger; the flag costs both the same).
struct SwitchLogger {
    noop: AtomicBool,
    bridge: LogBridge,
}
impl log::Log for SwitchLogger {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        self.bridge.enabled(metadata)
    }
    #[inline]
    fn log(&self, record: &log::Record<'_>) {
        if self.noop.load(Ordering::Relaxed) {
            std::hint::black_box(record);
            return;
        }
        self.bridge.log(record)
    }
    fn flush(&self) {
        self.bridge.flush()
    }
}
static LOGGER: SwitchLogger = SwitchLogger {
    noop: AtomicBool::new(false),
    bridge: LogBridge::new(log::LevelFilter::Info),
};

/// The floor of `counter!(..).increment(1)` through the `metrics` API: a recorder that looks
/// nothing up and clones one `Arc` whose increment does nothing. The API makes every recorder
/// pay this `Arc`'s clone and drop (two locked instructions) at each call.
struct FloorRecorder(Arc<NoopCounter>);
struct NoopCounter;
impl metrics::CounterFn for NoopCounter {
    fn increment(&self, value: u64) {
        std::hint::black_box(value);
    }
    fn absolute(&self, _: u64) {}
}
impl metrics::Recorder for FloorRecorder {
    fn describe_counter(
        &self,
        _: metrics::KeyName,
        _: Option<metrics::Unit>,
        _: metrics::SharedString,
    ) {
    }
    fn describe_gauge(
        &self,
        _: metrics::KeyName,
        _: Option<metrics::Unit>,
        _: metrics::SharedString,
    ) {
    }
    fn describe_histogram(
        &self,
        _: metrics::KeyName,
        _: Option<metrics::Unit>,
        _: metrics::SharedString,
    ) {
    }
    fn register_counter(&self, _: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Counter {
        metrics::Counter::from_arc(Arc::clone(&self.0))
    }
    fn register_gauge(&self, _: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Gauge {
        metrics::Gauge::noop()
    }
    fn register_histogram(
        &self,
        _: &metrics::Key,
        _: &metrics::Metadata<'_>,
    ) -> metrics::Histogram {
        metrics::Histogram::noop()
    }
}

fn event() {
    tracing::info!(n = 42u64, "request done");
}

fn span_lifecycle() {
    tracing::info_span!("request", id = 42u64).in_scope(|| {});
}

fn bench(c: &mut Criterion) {
    let guard =
        micromegas_core::init(Arc::new(NullSink), micromegas_core::Options::default()).unwrap();
    log::set_logger(&LOGGER).unwrap();
    log::set_max_level(log::LevelFilter::Info);
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(DiscardExporter)
        .build();

    let configs: Vec<(&str, tracing::Dispatch)> = vec![
        (
            "noop_layer",
            tracing::Dispatch::new(tracing_subscriber::registry().with(Noop)),
        ),
        (
            "floor_clock_reads",
            tracing::Dispatch::new(tracing_subscriber::registry().with(ClockReads)),
        ),
        (
            "micromegas",
            tracing::Dispatch::new(tracing_subscriber::registry().with(MicromegasLayer::new())),
        ),
        (
            "fmt_to_sink",
            tracing::Dispatch::new(
                tracing_subscriber::registry()
                    .with(tracing_subscriber::fmt::layer().with_writer(std::io::sink)),
            ),
        ),
        (
            "tracing_opentelemetry",
            tracing::Dispatch::new(
                tracing_subscriber::registry()
                    .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("bench"))),
            ),
        ),
    ];
    for (group, op) in [
        ("tracing_event", event as fn()),
        ("tracing_span_lifecycle", span_lifecycle),
    ] {
        let mut g = c.benchmark_group(group);
        for (name, dispatch) in &configs {
            tracing::dispatcher::with_default(dispatch, || {
                g.bench_function(*name, |b| iter_chunked(b, op));
            });
        }
        g.finish();
    }
    // The same event and span lifecycle inside a parent span entered once, outside the timed
    // loop (most events and spans of a real request are inside a span).
    for (group, op) in [
        ("tracing_event_in_span", event as fn()),
        ("tracing_child_span_lifecycle", span_lifecycle),
    ] {
        let mut g = c.benchmark_group(group);
        for (name, dispatch) in &configs {
            tracing::dispatcher::with_default(dispatch, || {
                let _parent = tracing::info_span!("parent").entered();
                g.bench_function(*name, |b| iter_chunked(b, op));
            });
        }
        g.finish();
    }

    let mut g = c.benchmark_group("log_static");
    g.bench_function("log_bridge", |b| {
        iter_chunked(b, || log::info!("request done"))
    });
    LOGGER.noop.store(true, Ordering::Relaxed);
    g.bench_function("floor_noop_logger", |b| {
        iter_chunked(b, || log::info!("request done"))
    });
    LOGGER.noop.store(false, Ordering::Relaxed);
    g.bench_function("micromegas_native", |b| {
        iter_chunked(b, || micromegas_core::info!("request done"))
    });
    g.finish();

    let ours = MicromegasRecorder::new();
    let debugging = metrics_util::debugging::DebuggingRecorder::new();
    let mut g = c.benchmark_group("metrics_counter");
    metrics::with_local_recorder(&ours, || {
        g.bench_function("micromegas_recorder", |b| {
            iter_chunked(b, || {
                metrics::counter!("requests", "route" => "/pay").increment(1)
            })
        });
    });
    metrics::with_local_recorder(&debugging, || {
        g.bench_function("metrics_util_debugging", |b| {
            iter_chunked(b, || {
                metrics::counter!("requests", "route" => "/pay").increment(1)
            })
        });
    });
    let floor = FloorRecorder(Arc::new(NoopCounter));
    metrics::with_local_recorder(&floor, || {
        g.bench_function("floor_one_arc", |b| {
            iter_chunked(b, || {
                metrics::counter!("requests", "route" => "/pay").increment(1)
            })
        });
    });
    g.finish();

    // The same increment on a handle registered once (what `counter!` costs beyond the
    // facade's per-call registration).
    let mut g = c.benchmark_group("metrics_counter_handle");
    let handle =
        metrics::with_local_recorder(&ours, || metrics::counter!("requests", "route" => "/pay"));
    g.bench_function("micromegas_recorder", |b| {
        iter_chunked(b, || handle.increment(1))
    });
    let handle = metrics::with_local_recorder(
        &debugging,
        || metrics::counter!("requests", "route" => "/pay"),
    );
    g.bench_function("metrics_util_debugging", |b| {
        iter_chunked(b, || handle.increment(1))
    });
    g.finish();

    // A gauge set on a handle registered once: ours records the value as an event (every value
    // is kept), metrics-util's keeps the last one.
    let mut g = c.benchmark_group("metrics_gauge_handle");
    let gauge = metrics::with_local_recorder(&ours, || metrics::gauge!("queue_depth"));
    let mut depth = 0.0;
    g.bench_function("micromegas_recorder", |b| {
        iter_chunked(b, || {
            depth += 1.0;
            gauge.set(depth)
        })
    });
    let gauge = metrics::with_local_recorder(&debugging, || metrics::gauge!("queue_depth"));
    g.bench_function("metrics_util_debugging", |b| {
        iter_chunked(b, || {
            depth += 1.0;
            gauge.set(depth)
        })
    });
    g.finish();

    let _ = provider.shutdown();
    let stats = guard.shutdown();
    eprintln!(
        "micromegas: delivered {} events, dropped {:?}",
        stats.delivered_events, stats.dropped
    );
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = bench
}
criterion_main!(benches);

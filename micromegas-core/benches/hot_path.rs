//! Cost per event in the calling thread: micromegas-core against micromegas-tracing 0.33 and
//! the floor (one tick-counter read), all in one run.
//!
//! `cargo bench -p micromegas-core --bench hot_path`; `scripts/bench_report.py` turns the
//! criterion results into the ratio table of BENCHMARKS.md.

use criterion::{criterion_group, criterion_main, Criterion};
use micromegas_core::sink::NullSink;
use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

mod peer {
    use micromegas_tracing::event::EventSink;
    use micromegas_tracing::logs::{LogBlock, LogMetadata, LogStream};
    use micromegas_tracing::metrics::{MetricsBlock, MetricsStream};
    use micromegas_tracing::prelude::ProcessInfo;
    use micromegas_tracing::property_set::DynProperty;
    use micromegas_tracing::spans::{ThreadBlock, ThreadStream};
    use std::fmt;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;

    /// Accepts every log (so the peer really records them) and every block.
    #[derive(Default)]
    pub struct AcceptingSink {
        pub blocks: AtomicU64,
    }

    impl EventSink for AcceptingSink {
        fn on_startup(&self, _: Arc<ProcessInfo>) {}
        fn on_shutdown(&self) {}
        fn on_log_enabled(&self, _: &LogMetadata) -> bool {
            true
        }
        fn on_log(&self, _: &LogMetadata, _: &[DynProperty<'_>], _: i64, _: fmt::Arguments<'_>) {}
        fn on_init_log_stream(&self, _: &LogStream) {}
        fn on_process_log_block(&self, _: Arc<LogBlock>) {
            self.blocks.fetch_add(1, Ordering::Relaxed);
        }
        fn on_init_metrics_stream(&self, _: &MetricsStream) {}
        fn on_process_metrics_block(&self, _: Arc<MetricsBlock>) {
            self.blocks.fetch_add(1, Ordering::Relaxed);
        }
        fn on_init_thread_stream(&self, _: &ThreadStream) {}
        fn on_process_thread_block(&self, _: Arc<ThreadBlock>) {
            self.blocks.fetch_add(1, Ordering::Relaxed);
        }
        fn is_busy(&self) -> bool {
            false
        }
    }
}

static PEER_BLOCKS: AtomicU64 = AtomicU64::new(0);

/// Times `op` in the calling thread in chunks small enough for the thread's ring, letting the
/// flusher drain between chunks (not timed): the cost of an event when the pipeline keeps up.
/// Without the pause, a loop that does nothing but emit outruns any single flusher thread
/// and the numbers would mix in the cost of counting drops.
fn iter_drained(b: &mut criterion::Bencher<'_>, mut op: impl FnMut()) {
    const CHUNK: u64 = 8192;
    b.iter_custom(|iters| {
        let mut total = std::time::Duration::ZERO;
        let mut done = 0;
        while done < iters {
            let n = CHUNK.min(iters - done);
            let t = std::time::Instant::now();
            for _ in 0..n {
                op();
            }
            total += t.elapsed();
            done += n;
            micromegas_core::flush(std::time::Duration::from_secs(5));
        }
        total
    })
}

fn bench(c: &mut Criterion) {
    // Ours, with default options.
    let guard =
        micromegas_core::init(Arc::new(NullSink), micromegas_core::Options::default()).unwrap();
    micromegas_core::metadata::set_max_level(micromegas_core::metadata::Level::Trace);
    // The peer, recording everything.
    let peer_sink = Arc::new(peer::AcceptingSink::default());
    let _peer_guard = micromegas_tracing::guards::TracingSystemGuard::new(
        10 << 20,
        1 << 20,
        10 << 20,
        peer_sink.clone(),
        Default::default(),
        true,
    );
    let _peer_thread = micromegas_tracing::guards::TracingThreadGuard::new();
    micromegas_tracing::levels::set_max_level(micromegas_tracing::levels::LevelFilter::Trace);

    let mut g = c.benchmark_group("floor");
    g.bench_function("tsc_read", |b| {
        b.iter(|| black_box(micromegas_core::time::now()))
    });
    g.finish();

    let mut g = c.benchmark_group("span_scope");
    g.bench_function("micromegas_core", |b| {
        iter_drained(b, || {
            micromegas_core::span_scope!("bench");
        })
    });
    g.bench_function("micromegas_tracing", |b| {
        b.iter(|| {
            micromegas_tracing::span_scope!("bench");
        })
    });
    g.finish();

    let mut g = c.benchmark_group("log_static");
    g.bench_function("micromegas_core", |b| {
        iter_drained(b, || micromegas_core::info!("request done"))
    });
    g.bench_function("micromegas_tracing", |b| {
        b.iter(|| micromegas_tracing::info!("request done"))
    });
    // In a scope, the log carries the scope's and trace's ids (three more words).
    g.bench_function("micromegas_core_in_scope", |b| {
        micromegas_core::span_scope!("request");
        iter_drained(b, || micromegas_core::info!("request done"))
    });
    g.finish();

    let n = black_box(42u64);
    let user = black_box("alice");
    let ok = black_box(true);
    let mut g = c.benchmark_group("log_1_arg");
    g.bench_function("micromegas_core", |b| {
        iter_drained(b, || micromegas_core::info!("took {} ms", n))
    });
    g.bench_function("micromegas_tracing", |b| {
        b.iter(|| micromegas_tracing::info!("took {} ms", n))
    });
    g.finish();

    let mut g = c.benchmark_group("log_3_args");
    g.bench_function("micromegas_core", |b| {
        iter_drained(b, || {
            micromegas_core::info!("user {} took {} ms, ok={}", user, n, ok)
        })
    });
    g.bench_function("micromegas_tracing", |b| {
        b.iter(|| micromegas_tracing::info!("user {} took {} ms, ok={}", user, n, ok))
    });
    g.finish();

    let mut g = c.benchmark_group("int_metric");
    g.bench_function("micromegas_core", |b| {
        iter_drained(b, || micromegas_core::imetric!("queue.depth", "count", n))
    });
    g.bench_function("micromegas_tracing", |b| {
        b.iter(|| micromegas_tracing::imetric!("queue.depth", "count", n))
    });
    g.finish();

    let stats = guard.shutdown();
    PEER_BLOCKS.store(peer_sink.blocks.load(Ordering::Relaxed), Ordering::Relaxed);
    eprintln!(
        "micromegas_core: delivered {} events in {} blocks, dropped {:?}; peer blocks: {}",
        stats.delivered_events,
        stats.delivered_blocks,
        stats.dropped,
        PEER_BLOCKS.load(Ordering::Relaxed)
    );
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(std::time::Duration::from_secs(1))
        .measurement_time(std::time::Duration::from_secs(3));
    targets = bench
}
criterion_main!(benches);

//! Sustained throughput: producer threads emit span scopes (a begin and an end event each)
//! as fast as they can while the flusher encodes, compresses and hands blocks to a sink that
//! counts them. Reports events/s, drops and encoded bytes per event.
//!
//! `cargo bench -p micromegas-core --bench throughput -- [SECONDS]` (default 10 s per point).

use micromegas_core::sink::{Sink, SinkError};
use micromegas_core::transit::batch::Batch;
use micromegas_core::{init, Options};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Default)]
struct CountingSink {
    bytes: AtomicU64,
    span_events: AtomicU64,
    span_bytes: AtomicU64,
}

impl Sink for CountingSink {
    fn write_batch(&self, batch: &Batch) -> Result<(), SinkError> {
        for b in &batch.blocks {
            self.bytes
                .fetch_add(b.encoded_len() as u64, Ordering::Relaxed);
            if batch
                .stream_of(b)
                .is_some_and(|s| s.kind == micromegas_core::model::StreamKind::Spans)
            {
                self.span_events
                    .fetch_add(b.header.event_count as u64, Ordering::Relaxed);
                self.span_bytes
                    .fetch_add(b.encoded_len() as u64, Ordering::Relaxed);
            }
        }
        Ok(())
    }
}

fn run(producers: usize, seconds: f64) {
    let sink = Arc::new(CountingSink::default());
    let guard = init(sink.clone(), Options::default()).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let handles: Vec<_> = (0..producers)
        .map(|_| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    for _ in 0..1024 {
                        micromegas_core::span_scope!("work");
                    }
                    n += 2048;
                }
                n
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs_f64(seconds));
    stop.store(true, Ordering::Relaxed);
    let emitted: u64 = handles.into_iter().map(|h| h.join().unwrap()).sum();
    let elapsed = start.elapsed().as_secs_f64();
    let stats = guard.shutdown();
    let span_events = sink.span_events.load(Ordering::Relaxed);
    let span_bytes = sink.span_bytes.load(Ordering::Relaxed);
    println!(
        "| {producers} | {:.1} | {:.1} | {} | {:.4}% | {:.2} |",
        emitted as f64 / elapsed / 1e6,
        stats.delivered_events as f64 / elapsed / 1e6,
        stats.total_dropped(),
        100.0 * stats.total_dropped() as f64 / emitted.max(1) as f64,
        span_bytes as f64 / span_events.max(1) as f64,
    );
}

fn main() {
    let seconds: f64 = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(10.0);
    println!("| producers | emitted M events/s | delivered M events/s | dropped | drop rate | encoded B/event |");
    println!("|---|---|---|---|---|---|");
    for producers in [1, 2, 4] {
        run(producers, seconds);
    }
}

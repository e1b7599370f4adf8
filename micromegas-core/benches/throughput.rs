//! Sustained throughput: producer threads emit span scopes (a begin and an end event each)
//! as fast as they can while the flusher encodes, compresses and hands blocks to a sink that
//! counts them. Reports events/s, drops and encoded bytes per event.
//!
//! `cargo bench -p micromegas-core --bench throughput -- [SECONDS]` (default 10 s per point).
//! Environment: `PACE` (events/s of the paced run, default 20e6), `RING` (ring bytes, default
//! the library's), `TRACE_DROPS=1` (print the drop counters every 250 ms).

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

/// Runs `producers` threads for `seconds`, each paced at `rate` events/s (unpaced if None).
fn run(producers: usize, seconds: f64, rate: Option<f64>) {
    let sink = Arc::new(CountingSink::default());
    let mut options = Options::default();
    if let Some(ring) = std::env::var("RING").ok().and_then(|v| v.parse().ok()) {
        options = options.ring_bytes(ring);
    }
    let guard = init(sink.clone(), options).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let handles: Vec<_> = (0..producers)
        .map(|_| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut n = 0u64;
                let t0 = Instant::now();
                while !stop.load(Ordering::Relaxed) {
                    for _ in 0..1024 {
                        micromegas_core::span_scope!("work");
                    }
                    n += 2048;
                    if let Some(rate) = rate {
                        while (t0.elapsed().as_secs_f64() * rate) < n as f64 {
                            std::hint::spin_loop();
                        }
                    }
                }
                n
            })
        })
        .collect();
    if std::env::var("TRACE_DROPS").is_ok() {
        let mut t = 0.0;
        while t < seconds {
            std::thread::sleep(Duration::from_millis(250));
            t += 0.25;
            eprintln!("t={t:.2} {:?}", guard.stats().dropped);
        }
    } else {
        std::thread::sleep(Duration::from_secs_f64(seconds));
    }
    stop.store(true, Ordering::Relaxed);
    let emitted: u64 = handles.into_iter().map(|h| h.join().unwrap()).sum();
    let elapsed = start.elapsed().as_secs_f64();
    let stats = guard.shutdown();
    let span_events = sink.span_events.load(Ordering::Relaxed);
    let span_bytes = sink.span_bytes.load(Ordering::Relaxed);
    let mode = match rate {
        Some(r) => format!("paced {:.0} M/s", r / 1e6),
        None => "flat out".to_owned(),
    };
    println!(
        "| {producers} | {mode} | {seconds:.0} | {:.1} | {:.1} | {} | {:.4}% | {:.2} |",
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
    println!("| producers | mode | seconds | emitted M events/s | delivered M events/s | dropped | drop rate | encoded B/event |");
    println!("|---|---|---|---|---|---|---|---|");
    let paced: f64 = std::env::var("PACE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20e6);
    run(1, seconds, Some(paced));
    for producers in [1, 2, 4] {
        run(producers, seconds, None);
    }
}

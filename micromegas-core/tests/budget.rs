//! Bounded memory and exact accounting: whatever the sink does, every emitted event is either
//! delivered or counted as dropped with a reason, and the drops are themselves reported.

mod common;

use common::{serial, Decoded};
use micromegas_core::read::Event;
use micromegas_core::sink::{MemorySink, Sink, SinkError};
use micromegas_core::transit::batch::Batch;
use micromegas_core::{init, DropReason, Options};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

struct Refuse {
    retryable: bool,
    calls: AtomicU64,
}

impl Sink for Refuse {
    fn write_batch(&self, _batch: &Batch) -> Result<(), SinkError> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        if self.retryable {
            Err(SinkError::Retryable("collector down".into()))
        } else {
            Err(SinkError::Rejected("no".into()))
        }
    }
}

fn emit(threads: u64, per_thread: u64) -> u64 {
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            std::thread::spawn(move || {
                for i in 0..per_thread {
                    match i % 3 {
                        0 => micromegas_core::imetric!("n", "count", i),
                        1 => micromegas_core::info!("event {} of {}", i, t),
                        _ => {
                            micromegas_core::span_scope!("s");
                        }
                    }
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    // A span scope is two events.
    threads
        * (0..per_thread)
            .map(|i| if i % 3 == 2 { 2 } else { 1 })
            .sum::<u64>()
}

#[test]
fn a_sink_that_is_down_costs_at_most_the_budget_and_every_drop_is_counted() {
    let _s = serial();
    let sink = Arc::new(Refuse {
        retryable: true,
        calls: AtomicU64::new(0),
    });
    let options = Options::default()
        .budget_bytes(64 << 10)
        .flush_period(Duration::from_millis(50))
        .shutdown_timeout(Duration::from_millis(500));
    let guard = init(sink.clone(), options).unwrap();
    let emitted = emit(4, 200_000);
    // While it runs, what waits for the sink stays under the budget.
    for _ in 0..10 {
        assert!(guard.stats().pending_bytes <= 64 << 10);
        std::thread::sleep(Duration::from_millis(20));
    }
    let stats = guard.shutdown();
    assert!(sink.calls.load(Ordering::Relaxed) > 0);
    assert_eq!(stats.delivered_events, 0);
    assert!(stats.dropped(DropReason::BudgetExceeded) > 0, "{stats:?}");
    assert_eq!(
        emitted + stats.self_events,
        stats.delivered_events + stats.total_dropped(),
        "{stats:?}"
    );
}

#[test]
fn a_sink_that_rejects_everything_balances_the_books() {
    let _s = serial();
    let sink = Arc::new(Refuse {
        retryable: false,
        calls: AtomicU64::new(0),
    });
    let guard = init(
        sink.clone(),
        Options::default().flush_period(Duration::from_millis(50)),
    )
    .unwrap();
    let emitted = emit(3, 100_000);
    let stats = guard.shutdown();
    assert_eq!(stats.delivered_events, 0);
    assert!(stats.dropped(DropReason::SinkRejected) > 0);
    assert_eq!(
        emitted + stats.self_events,
        stats.total_dropped(),
        "{stats:?}"
    );
}

/// Rejects the first batch, accepts the rest: the drop must show up as a metric of the
/// process in what is delivered afterwards.
struct RejectFirst {
    inner: MemorySink,
    calls: AtomicU64,
}

impl Sink for RejectFirst {
    fn write_batch(&self, batch: &Batch) -> Result<(), SinkError> {
        if self.calls.fetch_add(1, Ordering::Relaxed) == 0 {
            return Err(SinkError::Rejected("first one".into()));
        }
        self.inner.write_batch(batch)
    }
}

#[test]
fn drops_are_reported_as_metrics_of_the_process() {
    let _s = serial();
    let sink = Arc::new(RejectFirst {
        inner: MemorySink::new(),
        calls: AtomicU64::new(0),
    });
    let guard = init(sink.clone(), Options::default()).unwrap();
    let first = emit(1, 30);
    assert!(guard.flush(Duration::from_secs(5)));
    let second = emit(1, 30);
    let stats = guard.shutdown();
    assert_eq!(stats.dropped(DropReason::SinkRejected), first);
    assert_eq!(
        first + second + stats.self_events,
        stats.delivered_events + stats.total_dropped()
    );
    let decoded = Decoded::of(&sink.inner.batches());
    let reported: Vec<_> = decoded
        .all_events()
        .filter_map(|e| match e {
            Event::Measure(m) if m.location.name == "micromegas.dropped_events" => {
                Some((m.value, m.properties.clone()))
            }
            _ => None,
        })
        .collect();
    assert_eq!(
        reported,
        [(
            first as f64,
            vec![("reason".to_owned(), "sink_rejected".to_owned())]
        )]
    );
}

/// A sink so slow that the flusher, stuck in it, falls behind the producers.
struct Slow {
    inner: MemorySink,
}

impl Sink for Slow {
    fn write_batch(&self, batch: &Batch) -> Result<(), SinkError> {
        std::thread::sleep(Duration::from_millis(100));
        self.inner.write_batch(batch)
    }
}

#[test]
fn full_rings_drop_and_count_instead_of_blocking() {
    let _s = serial();
    let slow = Arc::new(Slow {
        inner: MemorySink::new(),
    });
    let options = Options::default()
        .ring_bytes(4096)
        .max_ring_bytes(4096)
        .shutdown_timeout(Duration::from_secs(30));
    let guard = init(slow.clone(), options).unwrap();
    let emitted = emit(2, 100_000);
    let stats = guard.shutdown();
    assert!(stats.dropped(DropReason::RingFull) > 0, "{stats:?}");
    assert_eq!(
        emitted + stats.self_events,
        stats.delivered_events + stats.total_dropped(),
        "{stats:?}"
    );
    let delivered_in_sink: u64 = slow.inner.batches().iter().map(|b| b.event_count()).sum();
    assert_eq!(delivered_in_sink, stats.delivered_events);
}

//! A property test of the whole pipeline against its accounting rules. Random bursts of logs
//! from several threads, with flushes between some of them, go to a sink that follows a random
//! script (accept, fail for now, refuse for good), under a random byte budget. Whatever the
//! script, each run must keep the books:
//!
//! - every event emitted (the pipeline's own drop reports included) was delivered or counted
//!   as dropped, with a reason;
//! - what the sink accepted is exactly what the pipeline counts as delivered;
//! - each thread's events arrive once, in the order it emitted them, and each stream's blocks
//!   in sequence order (drops leave gaps, never repeats);
//! - a reason appears only when its cause did: no refusal counted without a refusing sink, and
//!   no budget or shutdown drop with a sink that accepts everything under a large budget.

mod common;

use common::serial;
use micromegas_core::read::{decode_block, Event};
use micromegas_core::sink::{MemorySink, Sink, SinkError};
use micromegas_core::transit::batch::Batch;
use micromegas_core::{init, DropReason, Options};
use proptest::prelude::*;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// What the sink does on one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Accept,
    /// `SinkError::Retryable`: the pipeline keeps the batch and tries again after a backoff.
    Fail,
    /// `SinkError::Rejected`: the pipeline drops the batch and counts it.
    Refuse,
}

/// At most this many failures per run: each costs a backoff (100 ms, doubling) when a flush
/// or the shutdown waits for it.
const MAX_FAILURES: usize = 3;

/// A sink that follows its script call by call, then accepts everything.
struct Scripted {
    script: Vec<Outcome>,
    calls: AtomicUsize,
    accepted: MemorySink,
}

impl Sink for Scripted {
    fn write_batch(&self, batch: &Batch) -> Result<(), SinkError> {
        let call = self.calls.fetch_add(1, Ordering::Relaxed);
        match self.script.get(call).copied().unwrap_or(Outcome::Accept) {
            Outcome::Accept => self.accepted.write_batch(batch),
            Outcome::Fail => Err(SinkError::Retryable("scripted failure".into())),
            Outcome::Refuse => Err(SinkError::Rejected("scripted refusal".into())),
        }
    }
}

/// One burst: `threads` threads each log `events` entries, then (if `flush`) the app flushes.
#[derive(Debug, Clone, Copy)]
struct Burst {
    threads: u64,
    events: u64,
    flush: bool,
}

fn script() -> impl Strategy<Value = Vec<Outcome>> {
    let outcome = prop_oneof![
        6 => Just(Outcome::Accept),
        2 => Just(Outcome::Fail),
        1 => Just(Outcome::Refuse),
    ];
    prop::collection::vec(outcome, 0..16).prop_map(|mut script| {
        let mut failures = 0;
        for o in &mut script {
            if *o == Outcome::Fail {
                failures += 1;
                if failures > MAX_FAILURES {
                    *o = Outcome::Accept;
                }
            }
        }
        script
    })
}

fn bursts() -> impl Strategy<Value = Vec<Burst>> {
    let burst = (1u64..=3, 1u64..3000, any::<bool>()).prop_map(|(threads, events, flush)| Burst {
        threads,
        events,
        flush,
    });
    prop::collection::vec(burst, 1..8)
}

/// Runs the bursts; returns the number of events emitted.
fn emit(bursts: &[Burst], guard: &micromegas_core::Guard) -> u64 {
    let mut emitted = 0;
    for (b, burst) in bursts.iter().enumerate() {
        let handles: Vec<_> = (0..burst.threads)
            .map(|t| {
                let events = burst.events;
                std::thread::spawn(move || {
                    for i in 0..events {
                        micromegas_core::info!("burst {} thread {} event {}", b, t, i);
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().expect("emitting thread");
        }
        emitted += burst.threads * burst.events;
        if burst.flush {
            // A flush may end at its timeout while the sink fails: what is left stays queued.
            guard.flush(Duration::from_secs(2));
        }
    }
    emitted
}

/// `(burst, thread, event)` of a log message of [`emit`].
fn numbers(msg: &str) -> Option<(u64, u64, u64)> {
    let mut words = msg.split(' ');
    let mut next = |word: &str| -> Option<u64> {
        (words.next()? == word).then_some(())?;
        words.next()?.parse().ok()
    };
    Some((next("burst")?, next("thread")?, next("event")?))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn the_books_balance_whatever_the_sink_does(
        script in script(),
        bursts in bursts(),
        budget in prop_oneof![Just(2usize << 10), Just(32 << 10), Just(16 << 20)],
    ) {
        let _serial = serial();
        let sink = std::sync::Arc::new(Scripted {
            script: script.clone(),
            calls: AtomicUsize::new(0),
            accepted: MemorySink::new(),
        });
        let options = Options::default()
            .service_name("pipeline-model")
            .budget_bytes(budget)
            .flush_period(Duration::from_millis(20))
            .shutdown_timeout(Duration::from_secs(3));
        let guard = init(sink.clone(), options).expect("init");
        let emitted = emit(&bursts, &guard);
        let stats = guard.shutdown();

        // Every event delivered or counted as dropped.
        prop_assert_eq!(
            emitted + stats.self_events,
            stats.delivered_events + stats.total_dropped(),
            "{:?}", stats
        );

        // What the sink holds is what was counted as delivered; each stream's blocks come in
        // sequence order, and each thread's events once and in order.
        let batches = sink.accepted.batches();
        let in_sink: u64 = batches.iter().map(|b| b.event_count()).sum();
        prop_assert_eq!(in_sink, stats.delivered_events);
        let mut last_block: HashMap<uuid::Uuid, u64> = HashMap::new();
        let mut last_event: HashMap<(u64, u64), u64> = HashMap::new();
        let mut user_events = 0;
        for batch in &batches {
            for block in &batch.blocks {
                let stream = batch.stream_of(block).expect("the block's stream");
                let seq = block.header.sequence;
                if let Some(previous) = last_block.insert(stream.stream_id, seq) {
                    prop_assert!(seq > previous, "block {} after {}", seq, previous);
                }
                for event in decode_block(&batch.process, stream, block).expect("decode") {
                    let Event::Log(log) = event else { continue };
                    let (b, t, i) = numbers(&log.msg).expect("a message of the test");
                    user_events += 1;
                    if let Some(previous) = last_event.insert((b, t), i) {
                        prop_assert!(i > previous, "{}: after event {}", log.msg, previous);
                    }
                }
            }
        }
        prop_assert!(user_events <= emitted);

        // A reason only with its cause.
        if !script.contains(&Outcome::Refuse) {
            prop_assert_eq!(stats.dropped(DropReason::SinkRejected), 0);
        }
        if script.iter().all(|o| *o == Outcome::Accept) && budget == 16 << 20 {
            prop_assert_eq!(stats.dropped(DropReason::BudgetExceeded), 0, "{:?}", stats);
            prop_assert_eq!(stats.dropped(DropReason::ShutdownTimeout), 0, "{:?}", stats);
        }
        prop_assert_eq!(stats.dropped(DropReason::Unreadable), 0);
        prop_assert_eq!(stats.dropped(DropReason::Reentrant), 0);
    }
}

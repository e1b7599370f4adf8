//! Many threads at once: everything arrives, per-thread order is kept, async spans may begin
//! and end on different threads, idle and exiting threads are flushed without help.

mod common;

use common::{serial, start, Decoded};
use micromegas_core::model::StreamKind;
use micromegas_core::read::{async_spans, Event};
use micromegas_core::sink::MemorySink;
use micromegas_core::transit::batch::Batch;
use micromegas_core::{init, Options};
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[test]
fn eight_threads_of_a_million_events_arrive_complete_and_in_order() {
    let _s = serial();
    const THREADS: u64 = 8;
    const EVENTS: u64 = 1_000_000;
    let sink = Arc::new(MemorySink::new());
    // Small rings that may grow large enough to hold a whole thread's output: each thread
    // switches rings a dozen times (order must survive that), and nothing can be dropped
    // whatever the scheduling of 8 producers on this machine's cores.
    let options = Options::default()
        .ring_bytes(16 << 10)
        .max_ring_bytes(64 << 20)
        .budget_bytes(1 << 30);
    let guard = init(sink.clone(), options).unwrap();
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            std::thread::Builder::new()
                .name(format!("producer-{t}"))
                .spawn(move || {
                    for i in 0..EVENTS {
                        micromegas_core::imetric!("seq", "count", t * EVENTS + i);
                    }
                })
                .unwrap()
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let stats = guard.shutdown();
    assert_eq!(stats.total_dropped(), 0, "{stats:?}");
    assert_eq!(stats.delivered_events, THREADS * EVENTS + stats.self_events);

    // Decode through the layouts only, without building strings per event.
    let batches: Vec<Batch> = sink.batches();
    let mut per_stream: std::collections::HashMap<uuid::Uuid, Vec<(u64, Vec<u64>)>> =
        Default::default();
    for batch in &batches {
        for block in &batch.blocks {
            let stream = batch.stream_of(block).unwrap();
            if stream.kind != StreamKind::Metrics {
                continue;
            }
            let payload = block.decode_payload().unwrap();
            let mut values = Vec::with_capacity(block.header.event_count as usize);
            for ev in payload.events(stream) {
                let ev = ev.unwrap();
                if ev.dep("meta").unwrap().get("name") == Some("seq") {
                    values.push(ev.u64("value").unwrap());
                }
            }
            per_stream
                .entry(stream.stream_id)
                .or_default()
                .push((block.header.sequence, values));
        }
    }
    let mut seen_threads = std::collections::BTreeSet::new();
    let mut total = 0;
    for (_, mut blocks) in per_stream {
        blocks.sort_by_key(|(seq, _)| *seq);
        let values: Vec<u64> = blocks.into_iter().flat_map(|(_, v)| v).collect();
        if values.is_empty() {
            continue;
        }
        let t = values[0] / EVENTS;
        assert!(seen_threads.insert(t), "two streams for thread {t}");
        let expected: Vec<u64> = (t * EVENTS..(t + 1) * EVENTS).collect();
        if values != expected {
            let first = values.iter().zip(&expected).position(|(a, b)| a != b);
            eprintln!(
                "thread {t}: {} events, first difference at {first:?}",
                values.len()
            );
        }
        assert!(
            values == expected,
            "thread {t}: events missing or out of order"
        );
        total += values.len() as u64;
    }
    assert_eq!(total, THREADS * EVENTS);
}

#[test]
fn an_async_span_can_begin_and_end_on_different_threads() {
    let _s = serial();
    let (sink, guard) = start(Options::default());
    let (tx, rx) = std::sync::mpsc::channel();
    let fut = micromegas_core::async_span!("moving", async {
        // Pending once, so that the second poll happens on the other thread.
        let mut first = true;
        std::future::poll_fn(move |cx| {
            if first {
                first = false;
                cx.waker().wake_by_ref();
                std::task::Poll::Pending
            } else {
                std::task::Poll::Ready(())
            }
        })
        .await
    });
    std::thread::spawn(move || {
        let mut fut = Box::pin(fut);
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        assert!(fut.as_mut().poll(&mut cx).is_pending());
        tx.send(fut).unwrap();
    })
    .join()
    .unwrap();
    std::thread::spawn(move || {
        let mut fut = rx.recv().unwrap();
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        assert!(fut.as_mut().poll(&mut cx).is_ready());
    })
    .join()
    .unwrap();
    guard.shutdown();

    let decoded = Decoded::of(&sink.batches());
    let spans: Vec<_> = decoded.of_kind(StreamKind::Spans).collect();
    assert_eq!(spans.len(), 2, "one span stream per thread");
    let begin_stream = spans
        .iter()
        .find(|(_, evs)| evs.iter().any(|e| matches!(e, Event::Span(s) if s.begin)))
        .unwrap();
    let end_stream = spans
        .iter()
        .find(|(_, evs)| evs.iter().any(|e| matches!(e, Event::Span(s) if !s.begin)))
        .unwrap();
    assert_ne!(begin_stream.0.stream_id, end_stream.0.stream_id);
    let joined = async_spans(decoded.all_events());
    assert_eq!(joined.len(), 1);
    assert_eq!(joined[0].name, "moving");
    assert!(joined[0].end_ticks >= joined[0].begin_ticks);
}

#[test]
fn async_request_spans_on_a_multi_thread_runtime() {
    let _s = serial();
    let (sink, guard) = start(Options::default());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_time()
        .build()
        .unwrap();
    rt.block_on(async {
        let tasks: Vec<_> = (0..50)
            .map(|_| {
                tokio::spawn(micromegas_core::async_span!("request", async {
                    for _ in 0..3 {
                        micromegas_core::async_span!(
                            "step",
                            tokio::time::sleep(Duration::from_millis(1))
                        )
                        .await;
                        tokio::task::yield_now().await;
                    }
                }))
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
    });
    drop(rt);
    guard.shutdown();
    let decoded = Decoded::of(&sink.batches());
    let spans = async_spans(decoded.all_events());
    let requests: Vec<_> = spans.iter().filter(|s| s.name == "request").collect();
    let steps: Vec<_> = spans.iter().filter(|s| s.name == "step").collect();
    assert_eq!(requests.len(), 50);
    assert_eq!(steps.len(), 150);
    for r in &requests {
        let children: Vec<_> = steps.iter().filter(|s| s.parent == r.id).collect();
        assert_eq!(children.len(), 3, "each request has its three steps");
        for c in children {
            assert!(r.begin_ticks <= c.begin_ticks && c.end_ticks <= r.end_ticks);
        }
    }
}

fn wait_for_log(sink: &MemorySink, msg: &str, limit: Duration) -> Option<Duration> {
    let start = Instant::now();
    while start.elapsed() < limit {
        let found = Decoded::of(&sink.batches())
            .all_events()
            .any(|e| matches!(e, Event::Log(l) if l.msg == msg));
        if found {
            return Some(start.elapsed());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

#[test]
fn an_idle_thread_is_flushed_every_period() {
    let _s = serial();
    let (sink, guard) = start(Options::default().flush_period(Duration::from_millis(200)));
    let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
    let idle = std::thread::spawn(move || {
        micromegas_core::info!("one event then silence");
        let _ = stop_rx.recv(); // stays alive and idle
    });
    let waited = wait_for_log(&sink, "one event then silence", Duration::from_secs(10));
    assert!(
        waited.is_some(),
        "the idle thread's event never reached the sink"
    );
    stop_tx.send(()).unwrap();
    idle.join().unwrap();
    guard.shutdown();
}

#[test]
fn thread_exit_flushes_its_buffer() {
    let _s = serial();
    let sink = Arc::new(MemorySink::new());
    // A flush period far beyond the wait below: only the thread's exit can deliver the event.
    let guard = init(
        sink.clone(),
        Options::default().flush_period(Duration::from_secs(3600)),
    )
    .unwrap();
    std::thread::spawn(|| micromegas_core::info!("last words"))
        .join()
        .unwrap();
    assert!(wait_for_log(&sink, "last words", Duration::from_secs(10)).is_some());
    guard.shutdown();
}

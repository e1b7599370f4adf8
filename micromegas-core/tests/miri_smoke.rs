//! A small run of the whole pipeline for Miri (`cargo +nightly miri test --test miri_smoke`):
//! the rings, the thread-local streams, the tail writer and the flusher are the unsafe code of
//! this crate, and this touches all of them, including a nested log and an async span that
//! changes threads. It also runs as an ordinary test.

mod common;

use common::Decoded;
use micromegas_core::model::StreamKind;
use micromegas_core::read::{async_spans, thread_scopes, Event};
use micromegas_core::sink::MemorySink;
use micromegas_core::{init, DropReason, Guard, Options};
use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// The pipeline is process-wide: the tests take turns.
fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// Miri runs this thousands of times slower than native: no timeout must fire.
fn options() -> Options {
    Options::default()
        .shutdown_timeout(Duration::from_secs(3600))
        .panic_hook(false)
}

struct Nested;
impl fmt::Display for Nested {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        micromegas_core::info!("nested, refused");
        micromegas_core::imetric!("inside", "count", 1);
        f.write_str("nested")
    }
}

#[test]
fn the_whole_pipeline_once() {
    let _s = serial();
    let sink = Arc::new(MemorySink::new());
    let guard = init(sink.clone(), options()).unwrap();
    let fut = std::thread::spawn(|| {
        micromegas_core::span_scope!("outer");
        micromegas_core::info!("static");
        micromegas_core::warn!("args {} {} {} {} {}", 1u8, -2i64, 0.5f64, true, "str");
        micromegas_core::info!("display {}", Nested);
        micromegas_core::imetric!("m", "count", 3, "k" => "v");
        micromegas_core::fmetric!("f", "s", 1.5);
        let mut fut = Box::pin(micromegas_core::async_span!("moving", async {
            let mut first = true;
            std::future::poll_fn(move |_| {
                if std::mem::take(&mut first) {
                    std::task::Poll::Pending
                } else {
                    std::task::Poll::Ready(())
                }
            })
            .await
        }));
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        assert!(fut.as_mut().poll(&mut cx).is_pending());
        fut
    })
    .join()
    .unwrap();
    std::thread::spawn(move || {
        let mut fut = fut;
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        assert!(fut.as_mut().poll(&mut cx).is_ready());
    })
    .join()
    .unwrap();
    let stats = guard.shutdown();
    assert_eq!(stats.dropped(DropReason::Reentrant), 1, "{stats:?}");
    // 2 span + 4 log + 3 metric + 2 async events were emitted; one log was refused.
    assert_eq!(
        11 + stats.self_events,
        stats.delivered_events + stats.total_dropped()
    );

    let decoded = Decoded::of(&sink.batches());
    let process = decoded.process.as_ref().unwrap();
    let scopes: Vec<_> = decoded
        .of_kind(StreamKind::Spans)
        .flat_map(|(stream, events)| thread_scopes(process, stream, events))
        .collect();
    assert_eq!(
        decoded.log_messages(),
        ["static", "args 1 -2 0.5 true str", "display nested"]
    );
    assert_eq!(scopes.len(), 1);
    assert_eq!(async_spans(decoded.all_events()).len(), 1);
    let inside = decoded
        .all_events()
        .any(|e| matches!(e, Event::Measure(m) if m.location.name == "inside"));
    assert!(
        inside,
        "a metric emitted while formatting a log goes to its own stream"
    );
}

static RUNNING: Mutex<Option<Guard>> = Mutex::new(None);

/// Shuts the pipeline down while a log's argument is being formatted, then writes a metric
/// (another stream of the same thread).
struct StopsThePipeline;
impl fmt::Display for StopsThePipeline {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let guard = RUNNING.lock().unwrap().take();
        if let Some(guard) = guard {
            guard.shutdown();
        }
        micromegas_core::imetric!("after_stop", "count", 1);
        f.write_str("stopped")
    }
}

#[test]
fn a_shutdown_while_formatting_leaves_the_outer_write_its_streams() {
    let _s = serial();
    let guard = init(Arc::new(MemorySink::new()), options()).unwrap();
    *RUNNING.lock().unwrap() = Some(guard);
    // The metric must not detach the thread's streams (the log being written still uses
    // them); under Miri, a use after free here is reported.
    std::thread::spawn(|| micromegas_core::info!("outer {}", StopsThePipeline))
        .join()
        .unwrap();
    assert!(RUNNING.lock().unwrap().is_none(), "the fill ran");

    // A new pipeline afterwards records normally.
    let sink = Arc::new(MemorySink::new());
    let guard = init(sink.clone(), options()).unwrap();
    std::thread::spawn(|| micromegas_core::info!("after"))
        .join()
        .unwrap();
    let stats = guard.shutdown();
    assert_eq!(stats.total_dropped(), 0, "{stats:?}");
    let logs = Decoded::of(&sink.batches()).log_messages();
    assert_eq!(logs.iter().filter(|m| *m == "after").count(), 1);
}

//! Every event kind goes through the real pipeline (rings, flusher, LZ4, wire encoding) and is
//! read back with nothing but the streams' descriptions.

mod common;

use common::{serial, start, Decoded};
use micromegas_core::metadata::{set_max_level, Level};
use micromegas_core::model::StreamKind;
use micromegas_core::read::{async_spans, thread_scopes, Event};
use micromegas_core::Options;
use std::fmt;
use std::future::Future;

struct Point(i32, i32);
impl fmt::Display for Point {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "({}, {})", self.0, self.1)
    }
}

#[test]
fn every_event_kind_round_trips() {
    let _s = serial();
    set_max_level(Level::Debug);
    let (sink, guard) = start(
        Options::default()
            .service_name("round-trip")
            .property("env", "test"),
    );
    std::thread::Builder::new()
        .name("worker".into())
        .spawn(|| {
            micromegas_core::span_scope!("outer");
            {
                micromegas_core::span_scope!("inner");
                micromegas_core::info!("static message");
                let user = String::from("alice");
                micromegas_core::warn!(
                    target: "auth",
                    "user {} failed {} times, ratio {} locked={} at {} via {}",
                    user, 3u8, 0.25f64, true, Point(1, -2), "web"
                );
                micromegas_core::debug!("negative {}", -42i64);
                micromegas_core::trace!("filtered out {}", 1); // below max level
            }
            micromegas_core::imetric!("queue.depth", "count", 17);
            micromegas_core::fmetric!("cpu.load", "ratio", 0.5);
            micromegas_core::imetric!("request.bytes", "bytes", 512, "route" => "/api", "status" => 200);
            micromegas_core::fmetric!("latency", "ms", 1.5, "ok" => true);
        })
        .unwrap()
        .join()
        .unwrap();
    let stats = guard.shutdown();
    assert_eq!(stats.total_dropped(), 0, "{stats:?}");

    let decoded = Decoded::of(&sink.batches());
    let process = decoded.process.clone().unwrap();
    assert_eq!(process.service_name, "round-trip");
    assert_eq!(
        process.properties,
        vec![("env".to_owned(), "test".to_owned())]
    );
    assert!(process.calibration.ticks_per_second > 0);

    let (logs_stream, logs) = decoded.of_kind(StreamKind::Logs).next().unwrap();
    assert_eq!(logs_stream.thread_name, "worker");
    let logs: Vec<_> = logs
        .iter()
        .map(|e| match e {
            Event::Log(l) => l.clone(),
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(logs.len(), 3);
    assert_eq!(logs[0].msg, "static message");
    assert_eq!(logs[0].level, Level::Info);
    assert_eq!(logs[0].location.target, "round_trip");
    assert!(logs[0].location.file.ends_with("round_trip.rs"));
    assert_eq!(
        logs[1].msg,
        "user alice failed 3 times, ratio 0.25 locked=true at (1, -2) via web"
    );
    assert_eq!(logs[1].level, Level::Warn);
    assert_eq!(logs[1].location.target, "auth");
    assert_eq!(logs[2].msg, "negative -42");
    assert!(logs[0].time_unix_nanos > process.calibration.start_unix_nanos);
    assert!(logs[0].ticks <= logs[1].ticks && logs[1].ticks <= logs[2].ticks);

    let (spans_stream, spans) = decoded.of_kind(StreamKind::Spans).next().unwrap();
    let scopes = thread_scopes(&process, spans_stream, spans);
    let names: Vec<_> = scopes.iter().map(|s| (s.name.as_str(), s.depth)).collect();
    assert_eq!(names, [("inner", 1), ("outer", 0)]);
    assert_eq!(scopes[0].parent, scopes[1].id);
    assert!(
        scopes[1].begin_ticks <= scopes[0].begin_ticks
            && scopes[0].end_ticks <= scopes[1].end_ticks
    );
    // The logs happened inside "inner".
    assert!(scopes[0].begin_ticks <= logs[0].ticks && logs[2].ticks <= scopes[0].end_ticks);
    // ... and name it by the id the reader gives it; "outer" is the root of their trace.
    assert_eq!(scopes[1].parent, 0);
    for log in logs.iter() {
        assert_eq!(
            (log.span_id, log.trace_id),
            (scopes[0].id, scopes[1].id.into())
        );
    }

    let measures: Vec<_> = decoded
        .all_events()
        .filter_map(|e| match e {
            Event::Measure(m) if m.location.name != "micromegas.dropped_events" => Some(m.clone()),
            _ => None,
        })
        .collect();
    let summary: Vec<_> = measures
        .iter()
        .map(|m| {
            (
                m.location.name.as_str(),
                m.unit.as_str(),
                m.value,
                m.properties.clone(),
            )
        })
        .collect();
    let p = |k: &str, v: &str| (k.to_owned(), v.to_owned());
    assert_eq!(
        summary,
        [
            ("queue.depth", "count", 17.0, vec![]),
            ("cpu.load", "ratio", 0.5, vec![]),
            (
                "request.bytes",
                "bytes",
                512.0,
                vec![p("route", "/api"), p("status", "200")]
            ),
            ("latency", "ms", 1.5, vec![p("ok", "true")]),
        ]
    );
    set_max_level(Level::Info);
}

#[test]
fn async_span_ids_link_parent_and_child() {
    let _s = serial();
    let (sink, guard) = start(Options::default());
    std::thread::spawn(|| {
        let waker = std::task::Waker::noop();
        let mut cx = std::task::Context::from_waker(waker);
        let fut = micromegas_core::async_span!("parent", async {
            micromegas_core::async_span!("child", async { 7 }).await
        });
        let mut fut = std::pin::pin!(fut);
        assert_eq!(fut.as_mut().poll(&mut cx), std::task::Poll::Ready(7));
    })
    .join()
    .unwrap();
    guard.shutdown();
    let decoded = Decoded::of(&sink.batches());
    let spans = async_spans(decoded.all_events());
    assert_eq!(spans.len(), 2);
    let parent = spans.iter().find(|s| s.name == "parent").unwrap();
    let child = spans.iter().find(|s| s.name == "child").unwrap();
    assert_eq!(parent.parent, 0);
    assert_eq!(child.parent, parent.id);
    assert_ne!(parent.id, child.id);
    assert!(parent.begin_ticks <= child.begin_ticks && child.end_ticks <= parent.end_ticks);
}

/// The scopes the reader rebuilds have the ids the logs made in them carry, and the outermost
/// scope of an async span's poll is that span's child.
#[test]
fn scopes_in_an_async_span_are_its_children_and_name_their_logs() {
    let _s = serial();
    let (sink, guard) = start(Options::default());
    std::thread::spawn(|| {
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        let fut = micromegas_core::async_span!("task", async {
            micromegas_core::span_scope!("step");
            {
                micromegas_core::span_scope!("sub");
                micromegas_core::info!("in sub");
            }
            micromegas_core::info!("in step");
        });
        let mut fut = std::pin::pin!(fut);
        assert!(fut.as_mut().poll(&mut cx).is_ready());
    })
    .join()
    .unwrap();
    guard.shutdown();
    let decoded = Decoded::of(&sink.batches());
    let process = decoded.process.clone().unwrap();
    let task = async_spans(decoded.all_events()).pop().unwrap();
    let (stream, events) = decoded.of_kind(StreamKind::Spans).next().unwrap();
    let scopes = thread_scopes(&process, stream, events);
    let names: Vec<_> = scopes.iter().map(|s| (s.name.as_str(), s.depth)).collect();
    assert_eq!(names, [("sub", 1), ("step", 0)]);
    let (sub, step) = (&scopes[0], &scopes[1]);
    assert_eq!(step.parent, task.id);
    assert_eq!(sub.parent, step.id);
    let logs: Vec<_> = decoded
        .all_events()
        .filter_map(|e| match e {
            Event::Log(l) => Some((l.msg.as_str(), l.span_id)),
            _ => None,
        })
        .collect();
    assert_eq!(logs, [("in sub", sub.id), ("in step", step.id)]);
}

#[test]
fn long_arguments_are_truncated_not_lost() {
    let _s = serial();
    let (sink, guard) = start(Options::default());
    let long = "x".repeat(10_000);
    std::thread::spawn(move || {
        micromegas_core::info!("long {} then {}", long.as_str(), 5);
        micromegas_core::info!("after");
    })
    .join()
    .unwrap();
    guard.shutdown();
    let decoded = Decoded::of(&sink.batches());
    let msgs = decoded.log_messages();
    assert_eq!(msgs.len(), 2);
    assert!(msgs[0].starts_with("long xxxx"));
    assert!(
        msgs[0].len() < 4096 && msgs[0].len() > 3000,
        "{}",
        msgs[0].len()
    );
    assert!(
        msgs[0].ends_with('…'),
        "a truncation marker ends the message"
    );
    assert_eq!(msgs[1], "after");
}

#[test]
fn a_log_emitted_while_formatting_another_is_counted_not_interleaved() {
    let _s = serial();
    struct Noisy;
    impl fmt::Display for Noisy {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            micromegas_core::info!("nested");
            f.write_str("noisy")
        }
    }
    let (sink, guard) = start(Options::default());
    std::thread::spawn(|| micromegas_core::info!("outer {}", Noisy))
        .join()
        .unwrap();
    let stats = guard.shutdown();
    assert_eq!(stats.dropped(micromegas_core::DropReason::Reentrant), 1);
    let decoded = Decoded::of(&sink.batches());
    let msgs = decoded.log_messages();
    assert_eq!(msgs, ["outer noisy"]);
}

#[test]
fn ticks_far_apart_are_exact_across_block_cuts() {
    let _s = serial();
    let (sink, guard) =
        start(Options::default().flush_period(std::time::Duration::from_secs(3600)));
    let t0 = std::time::Instant::now();
    std::thread::spawn(|| {
        micromegas_core::info!("before");
        // Longer than an i32 tick delta at any clock rate under 1.4 GHz... and over 0.7 s at
        // 3 GHz: the flusher must cut the block rather than wrap the delta.
        std::thread::sleep(std::time::Duration::from_millis(1600));
        micromegas_core::info!("after");
    })
    .join()
    .unwrap();
    let waited = t0.elapsed();
    guard.shutdown();
    let decoded = Decoded::of(&sink.batches());
    let logs: Vec<_> = decoded
        .all_events()
        .filter_map(|e| match e {
            Event::Log(l) => Some(l.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(logs.len(), 2);
    let gap = (logs[1].time_unix_nanos - logs[0].time_unix_nanos) as f64 / 1e9;
    assert!(
        gap >= 1.5 && gap <= waited.as_secs_f64() + 0.05,
        "gap {gap} s"
    );
}

/// Data of an earlier version: a log made in an async span was a `log_in_span` record whose
/// `trace_or_root_ticks` held the low half of the async span's trace (the fields, in the same
/// order, that `log_in_async` now names `trace_id`). Readers give such a log the same span and
/// trace as the current record.
#[test]
fn logs_in_async_spans_read_the_same_in_the_earlier_layout() {
    use micromegas_core::transit::batch::Batch;
    use std::sync::Arc;

    let _s = serial();
    let (sink, guard) = start(Options::default().service_name("earlier-layout"));
    std::thread::spawn(|| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(micromegas_core::async_span!("task", async {
            micromegas_core::info!("in task");
            micromegas_core::span_scope!("step");
            micromegas_core::info!("in step {}", 1);
        }));
    })
    .join()
    .unwrap();
    guard.shutdown();
    let batches = sink.batches();
    let logs = |batches: &[Batch]| -> Vec<(String, u64, u128)> {
        Decoded::of(batches)
            .all_events()
            .filter_map(|e| match e {
                Event::Log(l) => Some((l.msg.clone(), l.span_id, l.trace_id)),
                _ => None,
            })
            .collect()
    };
    let now = logs(&batches);
    let names: Vec<&str> = now.iter().map(|(m, _, _)| m.as_str()).collect();
    assert_eq!(names, ["in task", "in step 1"]);
    assert!(now.iter().all(|(_, span, trace)| *span != 0 && *trace != 0));
    assert_ne!(now[0].1, now[1].1, "the step is its own span");
    assert_eq!(now[0].2, now[1].2, "one trace");

    // The same bytes, described as the earlier version described them.
    let mut rewritten = 0;
    let earlier: Vec<Batch> = batches
        .iter()
        .map(|b| {
            let mut b = b.clone();
            b.streams = b
                .streams
                .iter()
                .map(|s| {
                    let mut s = (**s).clone();
                    for l in &mut s.layouts {
                        l.name = match l.name.as_str() {
                            "log_in_async" => "log_in_span".to_owned(),
                            "log_args_in_async" => "log_args_in_span".to_owned(),
                            _ => continue,
                        };
                        for f in &mut l.fields {
                            if f.name == "trace_id" {
                                f.name = "trace_or_root_ticks".to_owned();
                            }
                        }
                        rewritten += 1;
                    }
                    Arc::new(s)
                })
                .collect();
            b
        })
        .collect();
    assert!(rewritten >= 2, "the logs stream describes both records");
    assert_eq!(logs(&earlier), now);
}

/// A span closed after its last exit is read as ending at that exit. A block holding only such
/// closes (whose records have no time of their own) is dated when it is cut, not at 0.
#[test]
fn a_span_closed_after_its_last_exit_ends_at_that_exit() {
    let _s = serial();
    let (sink, guard) = start(Options::default());
    let exit = micromegas_core::time::now();
    std::thread::spawn(move || micromegas_core::events::span_close_ended(7, exit))
        .join()
        .unwrap();
    guard.shutdown();
    let batches = sink.batches();
    let spans_blocks: Vec<_> = batches
        .iter()
        .flat_map(|b| b.blocks.iter().map(move |block| (b, block)))
        .filter(|(b, block)| b.stream_of(block).unwrap().kind == StreamKind::Spans)
        .collect();
    assert_eq!(spans_blocks.len(), 1);
    let header = &spans_blocks[0].1.header;
    assert!(header.begin_ticks >= exit && header.end_ticks >= header.begin_ticks);
    let decoded = Decoded::of(&batches);
    let closes: Vec<_> = decoded
        .all_events()
        .filter_map(|e| match e {
            Event::SpanUpdate(u) => Some((u.change, u.span_id, u.ticks)),
            _ => None,
        })
        .collect();
    assert_eq!(
        closes,
        vec![(micromegas_core::read::SpanChange::Close, 7, exit)]
    );
}

//! MicromegasLayer in a real `Registry`, beside `fmt` and `EnvFilter`.

mod common;

use common::{events, serial, start};
use micromegas_core::read::{Event, SpanChange, SpanUpdate};
use std::io::Write;
use std::sync::{Arc, Mutex};
use tracing::instrument::WithSubscriber;
use tracing::Instrument;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::Layer;

#[derive(Clone, Default)]
struct Buffer(Arc<Mutex<Vec<u8>>>);

impl Write for Buffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Buffer {
    type Writer = Buffer;
    fn make_writer(&'a self) -> Buffer {
        self.clone()
    }
}

fn workload() {
    let span = tracing::info_span!("request", id = 42u64, path = "/pay");
    let _e = span.enter();
    tracing::info!(
        amount = 12.5f64,
        ok = true,
        "payment accepted for {}",
        "bob"
    );
    {
        let inner = tracing::debug_span!("db", table = "orders");
        let _i = inner.enter();
        tracing::debug!(rows = 3i64, "query done");
        inner.record("table", "orders_v2");
    }
    tracing::warn!("slow request");
}

fn fmt_output(with_ours: Option<micromegas_tracing_layer::MicromegasLayer>) -> String {
    let buf = Buffer::default();
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(buf.clone())
        .without_time()
        .with_ansi(false);
    let filter = tracing_subscriber::EnvFilter::new("debug");
    let subscriber = tracing_subscriber::registry()
        .with(filter)
        .with(fmt)
        .with(with_ours);
    tracing::subscriber::with_default(subscriber, workload);
    let out = buf.0.lock().unwrap().clone();
    String::from_utf8(out).unwrap()
}

#[test]
fn fmt_output_is_unchanged_by_our_layer() {
    let _s = serial();
    let (sink, layer, guard) = start();
    let without = fmt_output(None);
    let with = fmt_output(Some(layer));
    guard.shutdown();
    assert!(without.contains("payment accepted for bob"), "{without}");
    assert_eq!(without, with);
    // ... and ours saw the same events.
    let logs = events(&sink)
        .into_iter()
        .filter(|e| matches!(e, Event::Log(_)))
        .count();
    assert_eq!(logs, 3);
}

#[test]
fn span_tree_and_log_correlation_decode_exactly() {
    let _s = serial();
    let (sink, layer, guard) = start();
    let subscriber = tracing_subscriber::registry().with(layer);
    tracing::subscriber::with_default(subscriber, workload);
    guard.shutdown();
    let evs = events(&sink);
    let news = created(&evs);
    assert_eq!(news.len(), 2);
    let (request, db) = (news[0], news[1]);
    assert_eq!(request.location.as_ref().unwrap().name, "request");
    assert_eq!(request.level.as_deref(), Some("INFO"));
    assert_eq!(request.parent_span_id, 0);
    assert_eq!(request.trace_id, u128::from(request.span_id));
    let s = |k: &str, v: &str| (k.to_owned(), v.to_owned());
    assert_eq!(request.fields, vec![s("id", "42"), s("path", "/pay")]);
    assert_eq!(db.location.as_ref().unwrap().name, "db");
    assert_eq!(db.parent_span_id, request.span_id);
    assert_eq!(db.trace_id, u128::from(request.span_id));
    assert_eq!(db.fields, vec![s("table", "orders")]);

    let changes: Vec<(SpanChange, u64)> = evs
        .iter()
        .filter_map(|e| match e {
            Event::SpanUpdate(u) => Some((u.change, u.span_id)),
            _ => None,
        })
        .collect();
    let (r, d) = (request.span_id, db.span_id);
    use SpanChange::*;
    assert_eq!(
        changes,
        [
            (New, r),
            (Enter, r),
            (New, d),
            (Enter, d),
            (Record, d),
            (Exit, d),
            (Close, d),
            (Exit, r),
            (Close, r)
        ]
    );
    let recorded = evs.iter().find_map(|e| match e {
        Event::SpanUpdate(u) if u.change == Record => Some(u.fields.clone()),
        _ => None,
    });
    assert_eq!(recorded, Some(vec![s("table", "orders_v2")]));

    let logs: Vec<_> = evs
        .iter()
        .filter_map(|e| match e {
            Event::Log(l) => Some(l),
            _ => None,
        })
        .collect();
    assert_eq!(logs.len(), 3);
    assert_eq!(logs[0].msg, "payment accepted for bob");
    assert_eq!(
        logs[0].properties,
        vec![s("amount", "12.5"), s("ok", "true")]
    );
    assert_eq!((logs[0].span_id, logs[0].trace_id), (r, r.into()));
    assert_eq!(logs[0].level, micromegas_core::metadata::Level::Info);
    assert!(logs[0].location.file.ends_with("layer.rs"));
    assert_eq!(logs[1].msg, "query done");
    assert_eq!(logs[1].properties, vec![s("rows", "3")]);
    assert_eq!((logs[1].span_id, logs[1].trace_id), (d, r.into()));
    assert_eq!(logs[2].msg, "slow request");
    assert_eq!(logs[2].level, micromegas_core::metadata::Level::Warn);
    assert_eq!(logs[2].span_id, r);
}

#[test]
fn a_per_layer_filter_applies_to_our_layer_only() {
    let _s = serial();
    let (sink, layer, guard) = start();
    let buf = Buffer::default();
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(buf.clone())
        .without_time()
        .with_ansi(false)
        .with_filter(LevelFilter::TRACE);
    let subscriber = tracing_subscriber::registry()
        .with(fmt)
        .with(layer.with_filter(LevelFilter::WARN));
    tracing::subscriber::with_default(subscriber, workload);
    guard.shutdown();
    let fmt_lines = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
    assert_eq!(
        fmt_lines.lines().count(),
        3,
        "fmt sees everything: {fmt_lines}"
    );
    let evs = events(&sink);
    let msgs: Vec<_> = evs
        .iter()
        .filter_map(|e| match e {
            Event::Log(l) => Some(l.msg.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(msgs, ["slow request"]);
    assert!(
        !evs.iter().any(|e| matches!(e, Event::SpanUpdate(_))),
        "INFO/DEBUG spans filtered out"
    );
}

#[test]
fn async_requests_across_a_multi_thread_runtime_keep_their_trees() {
    let _s = serial();
    let (sink, layer, guard) = start();
    let subscriber = tracing_subscriber::registry().with(layer);
    let dispatch = tracing::Dispatch::new(subscriber);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_time()
        .build()
        .unwrap();
    {
        let _d = tracing::dispatcher::set_default(&dispatch);
        rt.block_on(async {
            let tasks: Vec<_> = (0..20u64)
                .map(|i| {
                    let span = tracing::info_span!("request", i);
                    tokio::spawn(
                        async move {
                            for step in 0..3u64 {
                                async {
                                    tokio::time::sleep(std::time::Duration::from_millis(1)).await;
                                    tracing::info!(step, "step done");
                                }
                                .instrument(tracing::info_span!("step", step))
                                .await;
                                tokio::task::yield_now().await;
                            }
                        }
                        .instrument(span)
                        .with_subscriber(dispatch.clone()),
                    )
                })
                .collect();
            for t in tasks {
                t.await.unwrap();
            }
        });
    }
    drop(rt);
    guard.shutdown();
    let evs = events(&sink);
    let news = created(&evs);
    let requests: Vec<_> = news
        .iter()
        .filter(|u| u.location.as_ref().unwrap().name == "request")
        .collect();
    let steps: Vec<_> = news
        .iter()
        .filter(|u| u.location.as_ref().unwrap().name == "step")
        .collect();
    assert_eq!(requests.len(), 20);
    assert_eq!(steps.len(), 60);
    for r in &requests {
        let mine: Vec<_> = steps
            .iter()
            .filter(|s| s.parent_span_id == r.span_id)
            .collect();
        assert_eq!(mine.len(), 3);
        assert!(mine.iter().all(|s| s.trace_id == u128::from(r.span_id)));
        let logs = evs
            .iter()
            .filter(
                |e| matches!(e, Event::Log(l) if l.trace_id == u128::from(r.span_id) && l.msg == "step done"),
            )
            .count();
        assert_eq!(
            logs, 3,
            "each step's log is correlated with its request's trace"
        );
    }
    // Every span was entered as often as it was exited, whatever thread polled it.
    for u in &news {
        let count = |c: SpanChange| {
            evs.iter()
                .filter(|e| matches!(e, Event::SpanUpdate(x) if x.change == c && x.span_id == u.span_id))
                .count()
        };
        assert!(count(SpanChange::Enter) >= 1);
        assert_eq!(count(SpanChange::Enter), count(SpanChange::Exit));
        assert_eq!(count(SpanChange::Close), 1);
        // It ends at its last exit, on whichever worker that was.
        assert_eq!(
            ticks_of(&evs, SpanChange::Close, u.span_id).first(),
            ticks_of(&evs, SpanChange::Exit, u.span_id).iter().max(),
        );
    }
}

/// The ticks of a span's changes of one kind, in stream order.
fn ticks_of(evs: &[Event], change: SpanChange, span_id: u64) -> Vec<u64> {
    evs.iter()
        .filter_map(|e| match e {
            Event::SpanUpdate(x) if x.change == change && x.span_id == span_id => Some(x.ticks),
            _ => None,
        })
        .collect()
}

#[test]
fn a_span_ends_at_its_last_exit_or_when_it_closes_if_never_entered() {
    let _s = serial();
    let (sink, layer, guard) = start();
    let subscriber = tracing_subscriber::registry().with(layer);
    // More live spans than the shared table holds: some keep their ids in the registry's
    // extensions, and end the same way.
    const LIVE: u64 = 20_000;
    tracing::subscriber::with_default(subscriber, || {
        let kept = tracing::info_span!("kept");
        kept.in_scope(|| {});
        kept.in_scope(|| {});
        std::thread::sleep(std::time::Duration::from_millis(20));
        drop(kept);
        let never_entered = tracing::info_span!("never_entered");
        std::thread::sleep(std::time::Duration::from_millis(20));
        drop(never_entered);
        let many: Vec<_> = (0..LIVE).map(|i| tracing::info_span!("many", i)).collect();
        for span in &many {
            span.in_scope(|| {});
        }
    });
    guard.shutdown();
    let evs = events(&sink);
    let news = created(&evs);
    let kept = named(&news, "kept");
    let exits = ticks_of(&evs, SpanChange::Exit, kept.span_id);
    assert_eq!(exits.len(), 2);
    assert_eq!(
        ticks_of(&evs, SpanChange::Close, kept.span_id),
        vec![exits[1]],
        "a span kept after its work ends at its last exit, not 20 ms later at its close"
    );
    let never = named(&news, "never_entered");
    let closes = ticks_of(&evs, SpanChange::Close, never.span_id);
    assert_eq!(closes.len(), 1);
    let freq = 1e-9 * micromegas_core::time::calibrate().ticks_per_second as f64;
    assert!(
        closes[0] - never.ticks >= (19e6 * freq) as u64,
        "a span never entered ends at its close"
    );
    // Each of the many: (exits, closes).
    let mut ends: std::collections::HashMap<u64, (Vec<u64>, Vec<u64>)> = news
        .iter()
        .filter(|u| u.location.as_ref().unwrap().name == "many")
        .map(|u| (u.span_id, Default::default()))
        .collect();
    assert_eq!(ends.len() as u64, LIVE);
    for e in &evs {
        if let Event::SpanUpdate(x) = e {
            match (x.change, ends.get_mut(&x.span_id)) {
                (SpanChange::Exit, Some(end)) => end.0.push(x.ticks),
                (SpanChange::Close, Some(end)) => end.1.push(x.ticks),
                _ => {}
            }
        }
    }
    for (exits, closes) in ends.values() {
        assert_eq!(exits.len(), 1);
        assert_eq!(closes, exits);
    }
}

#[test]
fn a_traceparent_field_continues_a_remote_trace() {
    let _s = serial();
    let (sink, layer, guard) = start();
    let subscriber = tracing_subscriber::registry().with(layer);
    let header = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    tracing::subscriber::with_default(subscriber, || {
        let root = tracing::info_span!("handle", traceparent = %header);
        root.in_scope(|| {
            tracing::info_span!("query").in_scope(|| tracing::info!("inside"));
        });
        // A malformed header leaves the span a local root.
        tracing::info_span!("other", traceparent = "garbage").in_scope(|| {});
    });
    guard.shutdown();
    let evs = events(&sink);
    let news = created(&evs);
    let trace = 0x4bf92f3577b34da6a3ce929d0e0e4736u128;
    assert_eq!(news.len(), 3);
    assert_eq!(
        (news[0].parent_span_id, news[0].trace_id),
        (0x00f067aa0ba902b7, trace)
    );
    assert_eq!(
        (news[1].parent_span_id, news[1].trace_id),
        (news[0].span_id, trace)
    );
    assert_eq!(
        (news[2].parent_span_id, news[2].trace_id),
        (0, news[2].span_id.into())
    );
    let log = evs
        .iter()
        .find_map(|e| match e {
            Event::Log(l) => Some(l),
            _ => None,
        })
        .unwrap();
    assert_eq!((log.span_id, log.trace_id), (news[1].span_id, trace));
}

#[test]
fn the_current_traceparent_lets_a_called_service_continue_the_trace() {
    use micromegas_tracing_layer::current_traceparent;
    let _s = serial();
    let (sink, layer, guard) = start();
    let subscriber = tracing_subscriber::registry().with(layer);
    let (outside, sent, inside_future) = tracing::subscriber::with_default(subscriber, || {
        let outside = current_traceparent();
        // The caller, in a span, sends its header; the service called starts from it.
        let sent = tracing::info_span!("call").in_scope(current_traceparent);
        let header = sent.clone().unwrap_or_default();
        tracing::info_span!(parent: None, "serve", traceparent = header.as_str()).in_scope(|| {});
        // An instrumented future's span is current while it is polled.
        use tracing::Instrument;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let inside_future = runtime
            .block_on(async { current_traceparent() }.instrument(tracing::info_span!("task")));
        (outside, sent, inside_future)
    });
    guard.shutdown();
    let evs = events(&sink);
    let news = created(&evs);
    let [call, serve, task] = &news[..] else {
        panic!("three spans expected: {news:?}");
    };
    assert_eq!(outside, None);
    assert_eq!(
        sent.as_deref(),
        Some(format!("00-{:032x}-{:016x}-01", call.trace_id, call.span_id).as_str())
    );
    assert_eq!(
        (serve.parent_span_id, serve.trace_id),
        (call.span_id, call.trace_id)
    );
    assert_eq!(
        inside_future,
        Some(format!(
            "00-{:032x}-{:016x}-01",
            task.trace_id, task.span_id
        ))
    );
}

#[test]
fn a_span_under_a_hidden_parent_takes_the_nearest_visible_ancestor() {
    let _s = serial();
    let (sink, layer, guard) = start();
    // fmt sees every span, so the INFO span exists in the registry, hidden from our layer only.
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::sink)
        .with_filter(LevelFilter::TRACE);
    let subscriber = tracing_subscriber::registry()
        .with(fmt)
        .with(layer.with_filter(LevelFilter::WARN));
    tracing::subscriber::with_default(subscriber, || {
        let outer = tracing::warn_span!("outer").entered();
        tracing::warn!("in outer");
        let hidden = tracing::info_span!("hidden").entered();
        tracing::warn!("in hidden");
        tracing::warn_span!("under_hidden").in_scope(|| {});
        // An explicit parent: the hidden span, then a visible one.
        tracing::warn_span!(parent: hidden.id(), "explicit_hidden").in_scope(|| {});
        tracing::warn_span!(parent: outer.id(), "explicit_outer").in_scope(|| {});
        drop(hidden);
        tracing::warn_span!("under_outer").in_scope(|| {});
        drop(outer);
        tracing::warn_span!("root").in_scope(|| {});
    });
    guard.shutdown();
    let evs = events(&sink);
    let news = created(&evs);
    let names: Vec<&str> = news
        .iter()
        .map(|u| u.location.as_ref().unwrap().name.as_str())
        .collect();
    assert_eq!(
        names,
        [
            "outer",
            "under_hidden",
            "explicit_hidden",
            "explicit_outer",
            "under_outer",
            "root"
        ]
    );
    let outer = news[0].span_id;
    for child in &news[1..5] {
        assert_eq!(child.parent_span_id, outer, "{:?}", child.location);
        assert_eq!(child.trace_id, u128::from(outer));
    }
    assert_eq!(news[5].parent_span_id, 0);
    assert_eq!(news[5].trace_id, u128::from(news[5].span_id));
    // Events inside the hidden span belong to the nearest visible one.
    let logs = logs(&evs);
    let o = (outer, u128::from(outer));
    assert_eq!(logs, [("in outer", o.0, o.1), ("in hidden", o.0, o.1)]);
}

#[test]
fn two_subscribers_keep_spans_with_the_same_id_apart_on_other_threads() {
    let _s = serial();
    let (sink, layer, guard) = start();
    // Two registries, one layer value: `tracing` ids are per subscriber, and two fresh
    // registries give the first span of a thread the same id.
    let first = tracing_core::Dispatch::new(tracing_subscriber::registry().with(layer));
    let second = tracing_core::Dispatch::new(tracing_subscriber::registry().with(layer));
    let a = tracing_core::dispatcher::with_default(&first, || tracing::info_span!("a"));
    let b = tracing_core::dispatcher::with_default(&second, || tracing::info_span!("b"));
    assert_eq!(a.id(), b.id(), "the case this test is about");
    // Entered and closed on threads that did not create them: their ids come from the table
    // shared by all threads, where each subscriber's spans are kept apart.
    std::thread::scope(|s| {
        for (span, dispatch, msg) in [(a, &first, "in a"), (b, &second, "in b")] {
            s.spawn(move || {
                tracing_core::dispatcher::with_default(dispatch, || {
                    span.in_scope(|| tracing::info!("{msg}"));
                    drop(span);
                })
            });
        }
    });
    guard.shutdown();
    let evs = events(&sink);
    let news = created(&evs);
    let (a, b) = (named(&news, "a").span_id, named(&news, "b").span_id);
    assert_ne!(a, b);
    let mut logs = logs(&evs);
    logs.sort();
    assert_eq!(logs, [("in a", a, a.into()), ("in b", b, b.into())]);
    let mut changes: Vec<(SpanChange, u64)> = evs
        .iter()
        .filter_map(|e| match e {
            Event::SpanUpdate(u) if u.change != SpanChange::New => Some((u.change, u.span_id)),
            _ => None,
        })
        .collect();
    changes.sort_by_key(|(c, id)| (*id, *c as u8));
    use SpanChange::*;
    let mut expected = [
        (Enter, a),
        (Exit, a),
        (Close, a),
        (Enter, b),
        (Exit, b),
        (Close, b),
    ];
    expected.sort_by_key(|(c, id)| (*id, *c as u8));
    assert_eq!(changes, expected);
}

#[test]
fn the_current_span_follows_nested_subscribers_and_out_of_order_exits() {
    let _s = serial();
    let (sink, layer, guard) = start();
    let outer = tracing_core::Dispatch::new(tracing_subscriber::registry().with(layer));
    let inner = tracing_core::Dispatch::new(tracing_subscriber::registry().with(layer));
    tracing_core::dispatcher::with_default(&outer, || {
        let a = tracing::info_span!("a").entered();
        // Another subscriber inside `a`: its events and spans are not in `a`.
        tracing_core::dispatcher::with_default(&inner, || {
            tracing::info!("inner root");
            tracing::info_span!("inner").in_scope(|| tracing::info!("in inner"));
        });
        tracing::info!("back in a");
        let b = tracing::info_span!("b").entered();
        // `a` exited before `b`: `b` stays current.
        drop(a);
        tracing::info!("in b");
        tracing::info_span!("under_b").in_scope(|| {});
        drop(b);
        tracing::info!("in none");
    });
    guard.shutdown();
    let evs = events(&sink);
    let news = created(&evs);
    let span = |name: &str| named(&news, name);
    let (a, b, inner) = (span("a").span_id, span("b").span_id, span("inner").span_id);
    assert_eq!(span("inner").parent_span_id, 0);
    assert_eq!(span("b").parent_span_id, a);
    assert_eq!(span("under_b").parent_span_id, b);
    let logs: Vec<(&str, u64)> = logs(&evs).into_iter().map(|(m, s, _)| (m, s)).collect();
    assert_eq!(
        logs,
        [
            ("inner root", 0),
            ("in inner", inner),
            ("back in a", a),
            ("in b", b),
            ("in none", 0)
        ]
    );
}

/// The log entries among `evs`, in order: message, span id and trace id.
fn logs(evs: &[Event]) -> Vec<(&str, u64, u128)> {
    evs.iter()
        .filter_map(|e| match e {
            Event::Log(l) => Some((l.msg.as_str(), l.span_id, l.trace_id)),
            _ => None,
        })
        .collect()
}

/// The creation of the span called `name` among `news`.
fn named<'a>(news: &[&'a SpanUpdate], name: &str) -> &'a SpanUpdate {
    news.iter()
        .find(|u| u.location.as_ref().unwrap().name == name)
        .copied()
        .unwrap()
}

/// The span creations among `evs`, in order.
fn created(evs: &[Event]) -> Vec<&SpanUpdate> {
    evs.iter()
        .filter_map(|e| match e {
            Event::SpanUpdate(u) if u.change == SpanChange::New => Some(u),
            _ => None,
        })
        .collect()
}

/// An event's message without arguments travels once per block, as a dependency, not in each
/// record. A static message too long to be named that way, and a message with arguments, are
/// copied into their records. All read back as written.
#[test]
fn a_static_message_travels_once_per_block() {
    const SAID: &str = "a message said a hundred times";
    let _s = serial();
    let (sink, layer, guard) = start();
    /// A static message longer than a reference can name (511 bytes).
    macro_rules! long_text {
        () => {
            concat!(
                "a static message of more than 511 bytes, too long for a reference to name: ",
                "0123456789012345678901234567890123456789012345678901234567890123456789",
                "0123456789012345678901234567890123456789012345678901234567890123456789",
                "0123456789012345678901234567890123456789012345678901234567890123456789",
                "0123456789012345678901234567890123456789012345678901234567890123456789",
                "0123456789012345678901234567890123456789012345678901234567890123456789",
                "0123456789012345678901234567890123456789012345678901234567890123456789",
                "0123456789012345678901234567890123456789012345678901234567890123456789",
            )
        };
    }
    let long = long_text!();
    assert!(long.len() > 511);
    let subscriber = tracing_subscriber::registry().with(layer);
    tracing::subscriber::with_default(subscriber, || {
        for i in 0..100u64 {
            tracing::info!(i, "a message said a hundred times");
        }
        tracing::info!(long_text!());
        tracing::warn!(n = 7, "{} with arguments", "formatted");
    });
    guard.shutdown();

    let logs: Vec<(String, Vec<(String, String)>)> = events(&sink)
        .into_iter()
        .filter_map(|e| match e {
            Event::Log(l) => Some((l.msg, l.properties)),
            _ => None,
        })
        .collect();
    assert_eq!(logs.len(), 102);
    for (i, (msg, props)) in logs.iter().take(100).enumerate() {
        assert_eq!(msg, SAID);
        assert_eq!(props, &[("i".to_owned(), i.to_string())]);
    }
    assert_eq!(logs[100], (long.to_owned(), vec![]));
    assert_eq!(
        logs[101],
        (
            "formatted with arguments".to_owned(),
            vec![("n".to_owned(), "7".to_owned())]
        )
    );

    // In the blocks: the text once among each block's dependencies, never in the records.
    let mut blocks_with_it = 0;
    let mut long_copied = false;
    for batch in sink.batches() {
        for block in &batch.blocks {
            let payload = block.decode_payload().unwrap();
            let texts = payload
                .dependencies()
                .values()
                .filter(|d| d.get("text") == Some(SAID))
                .count();
            assert!(texts <= 1);
            blocks_with_it += texts;
            let h = &block.header;
            let raw =
                lz4_flex::block::decompress(&block.payload, h.uncompressed_len as usize).unwrap();
            let records = &raw[..h.events_len as usize];
            let holds = |text: &str| records.windows(text.len()).any(|w| w == text.as_bytes());
            assert!(!holds(SAID), "a record holds the static text");
            long_copied |= holds(long);
        }
    }
    assert!(blocks_with_it >= 1, "the text is a dependency");
    assert!(long_copied, "the long text is in its record");
}

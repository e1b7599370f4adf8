//! The `log` bridge and the `metrics` recorder, through the facades' own macros.

mod common;

use common::{events, serial, start};
use micromegas_core::metadata::Level;
use micromegas_core::read::{Event, SpanChange};
use micromegas_tracing_layer::{LogBridge, MicromegasRecorder};
use tracing_subscriber::layer::SubscriberExt;

/// Two call sites on one line, differing only by their target.
#[rustfmt::skip]
fn two_targets_on_one_line() {
    for t in [true, false] { if t { log::error!(target: "alpha", "{}", 1) } else { log::error!(target: "gamma", "{}", 1) } }
}

/// The id the reader gives the native scope named `name` (derived from its thread and begin
/// ticks).
fn native_scope_id(sink: &micromegas_core::sink::MemorySink, name: &str) -> u64 {
    for batch in sink.batches() {
        for block in &batch.blocks {
            let stream = batch.stream_of(block).unwrap();
            for ev in micromegas_core::read::decode_block(&batch.process, stream, block).unwrap() {
                if let Event::Span(s) = ev {
                    if s.begin && s.span_id.is_none() && s.location.name == name {
                        return micromegas_core::read::scope_span_id(
                            &batch.process,
                            stream.thread_id,
                            s.ticks,
                        );
                    }
                }
            }
        }
    }
    panic!("no native scope {name}")
}

#[test]
fn log_records_keep_level_target_file_line_and_message() {
    let _s = serial();
    let (sink, layer, guard) = start();
    LogBridge::install(log::LevelFilter::Debug).unwrap();
    assert!(
        LogBridge::install(log::LevelFilter::Debug).is_err(),
        "a second logger is refused"
    );
    std::thread::spawn(move || {
        for i in 0..3 {
            log::info!("static message");
            log::warn!(target: "payments", "card {} declined after {} tries", "visa", i);
        }
        log::debug!("debug is on");
        log::trace!("trace is below the max level");
        two_targets_on_one_line();
        // Structured key-values become properties.
        log::info!(user = 42, ok = true, ratio = 0.5, name = "ann"; "logged in");
        log::warn!(attempt = -2; "retry {}", "db");
        // Records made in a span of the layer carry its ids.
        let subscriber = tracing_subscriber::registry().with(layer);
        tracing::subscriber::with_default(subscriber, || {
            tracing::info_span!("request").in_scope(|| {
                log::info!(rows = 3; "in the request");
                tracing::info_span!("db").in_scope(|| log::error!("query {} failed", 3));
            });
            log::info!("after the request");
        });
        // Records made in a native scope, outside any span of the layer, carry its ids.
        micromegas_core::span_scope!("native");
        log::info!("in a native scope");
    })
    .join()
    .unwrap();
    guard.shutdown();
    let all = events(&sink);
    let native = native_scope_id(&sink, "native");
    let span_ids: Vec<(u64, u128)> = all
        .iter()
        .filter_map(|e| match e {
            Event::SpanUpdate(u) if u.change == SpanChange::New => Some((u.span_id, u.trace_id)),
            _ => None,
        })
        .collect();
    let failed: Vec<u64> = all
        .iter()
        .filter_map(|e| match e {
            Event::SpanUpdate(u) if u.change == SpanChange::Failed => Some(u.span_id),
            _ => None,
        })
        .collect();
    let mut logs: Vec<_> = all
        .into_iter()
        .filter_map(|e| match e {
            Event::Log(l) => Some(l),
            _ => None,
        })
        .collect();
    let in_spans: Vec<_> = logs
        .split_off(11)
        .into_iter()
        .map(|l| (l.level, l.msg, (l.span_id, l.trace_id), l.properties))
        .collect();
    let [(request, trace), (db, db_trace)] = span_ids[..] else {
        panic!("two spans expected: {span_ids:?}");
    };
    assert_eq!(db_trace, trace);
    assert_eq!(
        in_spans,
        [
            (
                Level::Info,
                "in the request".to_owned(),
                (request, trace),
                vec![("rows".to_owned(), "3".to_owned())]
            ),
            (
                Level::Error,
                "query 3 failed".to_owned(),
                (db, trace),
                vec![]
            ),
            (Level::Info, "after the request".to_owned(), (0, 0), vec![]),
            (
                Level::Info,
                "in a native scope".to_owned(),
                (native, native.into()),
                vec![]
            ),
        ]
    );
    assert!(logs.iter().all(|l| (l.span_id, l.trace_id) == (0, 0)));
    // Each error marks the innermost span of its thread failed: `db`, and none for the two
    // errors outside any span (no span named, no scope open).
    assert_eq!(failed, [0, 0, db]);
    let summary: Vec<_> = logs
        .iter()
        .map(|l| (l.level, l.location.target.as_str(), l.msg.as_str()))
        .collect();
    assert_eq!(
        summary,
        [
            (Level::Info, "bridges", "static message"),
            (Level::Warn, "payments", "card visa declined after 0 tries"),
            (Level::Info, "bridges", "static message"),
            (Level::Warn, "payments", "card visa declined after 1 tries"),
            (Level::Info, "bridges", "static message"),
            (Level::Warn, "payments", "card visa declined after 2 tries"),
            (Level::Debug, "bridges", "debug is on"),
            (Level::Error, "alpha", "1"),
            (Level::Error, "gamma", "1"),
            (Level::Info, "bridges", "logged in"),
            (Level::Warn, "bridges", "retry db"),
        ]
    );
    let pairs = |p: &[(&str, &str)]| -> Vec<(String, String)> {
        p.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    assert_eq!(
        logs[9].properties,
        pairs(&[
            ("user", "42"),
            ("ok", "true"),
            ("ratio", "0.5"),
            ("name", "ann")
        ])
    );
    assert_eq!(logs[10].properties, pairs(&[("attempt", "-2")]));
    assert!(logs[..9].iter().all(|l| l.properties.is_empty()));
    assert!(logs[0].location.file.ends_with("bridges.rs"));
    assert!(logs[0].location.line > 0);
}

#[test]
fn metrics_counters_gauges_and_histograms_with_labels() {
    let _s = serial();
    let (sink, _layer, guard) = start();
    let recorder = MicromegasRecorder::new();
    std::thread::spawn(move || {
        metrics::with_local_recorder(&recorder, || {
            metrics::describe_histogram!("latency", metrics::Unit::Seconds, "request latency");
            for i in 0..5u64 {
                metrics::counter!("requests", "route" => "/pay", "status" => "200").increment(1);
                metrics::gauge!("queue.depth").set(i as f64);
                metrics::histogram!("latency", "route" => "/pay").record(0.01 * (i + 1) as f64);
            }
            let c = metrics::counter!("bytes");
            c.increment(100);
            c.increment(50);
            metrics::gauge!("queue.depth").increment(10.0);
        })
    })
    .join()
    .unwrap();
    guard.shutdown();
    let measures: Vec<_> = events(&sink)
        .into_iter()
        .filter_map(|e| match e {
            Event::Measure(m) if m.location.name != "micromegas.dropped_events" => Some(m),
            _ => None,
        })
        .collect();
    let of = |name: &str| -> Vec<f64> {
        measures
            .iter()
            .filter(|m| m.location.name == name)
            .map(|m| m.value)
            .collect()
    };
    // Counters are recorded as the amount added since the flusher's previous visit.
    let sum = |name: &str| of(name).iter().sum::<f64>();
    assert_eq!(sum("requests"), 5.0);
    assert_eq!(sum("bytes"), 150.0);
    assert!(of("requests").iter().chain(&of("bytes")).all(|v| *v > 0.0));
    assert_eq!(of("queue.depth"), [0.0, 1.0, 2.0, 3.0, 4.0, 14.0]);
    assert_eq!(of("latency"), [0.01, 0.02, 0.03, 0.04, 0.05]);
    let requests = measures
        .iter()
        .find(|m| m.location.name == "requests")
        .unwrap();
    let p = |k: &str, v: &str| (k.to_owned(), v.to_owned());
    assert_eq!(
        requests.properties,
        vec![p("route", "/pay"), p("status", "200")]
    );
    let latency = measures
        .iter()
        .find(|m| m.location.name == "latency")
        .unwrap();
    assert_eq!(latency.unit, "s");
    assert_eq!(
        latency.properties,
        vec![p("route", "/pay"), p("otel.description", "request latency")]
    );
}

#[test]
fn label_sets_past_the_cardinality_limit_share_the_overflow_series() {
    let _s = serial();
    let (sink, _layer, guard) = start();
    let recorder = MicromegasRecorder::new().with_cardinality_limit(3);
    std::thread::spawn(move || {
        metrics::with_local_recorder(&recorder, || {
            for user in 0..10 {
                let user = user.to_string();
                metrics::counter!("logins", "user" => user.clone()).increment(1);
                metrics::histogram!("latency", "user" => user).record(1.0);
            }
            // A label set registered before the limit keeps its series.
            metrics::counter!("logins", "user" => "0").increment(5);
            // Another name has series of its own.
            metrics::counter!("logouts", "user" => "9").increment(1);
        })
    })
    .join()
    .unwrap();
    guard.shutdown();
    let mut by_series: std::collections::BTreeMap<(String, Vec<(String, String)>), f64> =
        Default::default();
    let mut samples = 0;
    for e in events(&sink) {
        if let Event::Measure(m) = e {
            if m.location.name == "latency" {
                samples += 1;
            }
            *by_series
                .entry((m.location.name.clone(), m.properties.clone()))
                .or_default() += m.value;
        }
    }
    let series = |name: &str, k: &str, v: &str| {
        by_series
            .get(&(name.to_owned(), vec![(k.to_owned(), v.to_owned())]))
            .copied()
    };
    let overflow = micromegas_tracing_layer::OVERFLOW_LABEL;
    for user in ["0", "1", "2"] {
        let expected = if user == "0" { 6.0 } else { 1.0 };
        assert_eq!(
            series("logins", "user", user),
            Some(expected),
            "user {user}"
        );
        assert_eq!(series("latency", "user", user), Some(1.0), "user {user}");
    }
    assert_eq!(series("logins", "user", "3"), None);
    assert_eq!(series("logins", overflow, "true"), Some(7.0));
    assert_eq!(series("latency", overflow, "true"), Some(7.0));
    assert_eq!(samples, 10, "every histogram sample is kept");
    assert_eq!(series("logouts", "user", "9"), Some(1.0));
    let logins: Vec<_> = by_series.keys().filter(|(n, _)| n == "logins").collect();
    assert_eq!(
        logins.len(),
        4,
        "three label sets and the overflow: {logins:?}"
    );
}

#[test]
fn counters_are_recorded_as_what_was_added_at_each_flush() {
    let _s = serial();
    let (sink, _layer, guard) = start();
    let recorder = MicromegasRecorder::new();
    let flush = || assert!(micromegas_core::flush(std::time::Duration::from_secs(5)));
    metrics::with_local_recorder(&recorder, || {
        let jobs = metrics::counter!("jobs", "queue" => "emails");
        jobs.increment(3);
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for _ in 0..1000 {
                        metrics::with_local_recorder(&recorder, || {
                            metrics::counter!("jobs", "queue" => "emails").increment(1)
                        });
                    }
                });
            }
        });
        flush();
        // Nothing added: nothing recorded.
        flush();
        jobs.increment(2);
        // A lower absolute value is ignored, a higher one moves the total.
        jobs.absolute(1);
        flush();
        jobs.absolute(4010);
    });
    guard.shutdown();
    let mut samples: Vec<(u64, f64, String)> = events(&sink)
        .into_iter()
        .filter_map(|e| match e {
            Event::Measure(m) if m.location.name == "jobs" => Some((m.ticks, m.value, m.kind)),
            _ => None,
        })
        .collect();
    // The last sample is taken at shutdown, in another stream: order by time.
    samples.sort_by_key(|s| s.0);
    let values: Vec<f64> = samples.iter().map(|s| s.1).collect();
    assert_eq!(values, [4003.0, 2.0, 5.0]);
    assert!(samples.iter().all(|s| s.2 == "counter"));
}

/// Each thread counts in its own handle; a handle passed to other threads, threads that end
/// and keys built at run time (the same text at other addresses, or other label values) all
/// land in the right counter, with nothing lost.
#[test]
fn counters_are_exact_across_threads_handles_and_run_time_keys() {
    let _s = serial();
    let (sink, _layer, guard) = start();
    let recorder = MicromegasRecorder::new();
    metrics::with_local_recorder(&recorder, || {
        let shared = metrics::counter!("hits", "route" => "/a");
        std::thread::scope(|s| {
            for t in 0..4u64 {
                let shared = shared.clone();
                let recorder = &recorder;
                s.spawn(move || {
                    metrics::with_local_recorder(recorder, || {
                        for i in 0..10_000u64 {
                            shared.increment(1);
                            metrics::counter!("hits", "route" => "/a").increment(2);
                            let route = format!("/{}", ["a", "b"][(i % 2) as usize]);
                            metrics::counter!(String::from("hits"), "route" => route).increment(t);
                        }
                    })
                });
            }
        });
        shared.increment(5);
    });
    guard.shutdown();
    let mut sums = std::collections::BTreeMap::new();
    for e in events(&sink) {
        if let Event::Measure(m) = e {
            if m.location.name == "hits" {
                *sums.entry(m.properties[0].1.clone()).or_insert(0.0) += m.value;
            }
        }
    }
    // Route /a: 4 × 10,000 × (1 + 2) + 5, plus (0 + 1 + 2 + 3) × 5,000; /b: 6 × 5,000.
    assert_eq!(sums.get("/a"), Some(&(120_005.0 + 30_000.0)));
    assert_eq!(sums.get("/b"), Some(&30_000.0));
}

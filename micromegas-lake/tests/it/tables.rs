//! Blocks written by micromegas-core (native macros and the tracing layer) land in every
//! table with exactly the expected rows.

use crate::common::{capture, memory_lake, rows, serial, PENDING_BLOCKS};
use micromegas_core::{fmetric, imetric, info, span_scope, warn};
use micromegas_lake::{Lake, LakeOptions};
use tracing_subscriber::layer::SubscriberExt;

fn native_work() {
    std::thread::Builder::new()
        .name("worker".into())
        .spawn(|| {
            {
                span_scope!("outer");
                {
                    span_scope!("inner");
                    info!("value {} and {}", 42, "text");
                }
                warn!("static warning");
            }
            imetric!("requests", "count", 7, "route" => "/a");
            fmetric!("ratio", "ratio", 0.5);
            futures::executor::block_on(micromegas_core::async_span!("task", async {
                info!("in task");
            }));
        })
        .unwrap()
        .join()
        .unwrap();
}

fn layer_work() {
    let subscriber =
        tracing_subscriber::registry().with(micromegas_tracing_layer::MicromegasLayer::new());
    tracing::subscriber::with_default(subscriber, || {
        let span = tracing::info_span!("request", id = 42u64, path = "/pay");
        let _e = span.enter();
        tracing::info!(amount = 12.5f64, "payment accepted for {}", "bob");
        let inner = tracing::debug_span!("db", table = "orders");
        let _i = inner.enter();
        inner.record("table", "orders_v2");
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_table_has_exactly_the_rows_written() {
    let batches = {
        let _serial = serial();
        capture("svc", || {
            native_work();
            layer_work();
        })
    };
    let lake = Lake::open("memory://", LakeOptions::default())
        .await
        .unwrap();
    let outcome = lake.write_batches(&batches).await.unwrap();
    assert!(outcome.blocks_written > 0);
    assert_eq!(outcome.blocks_skipped, 0);

    assert_eq!(
        rows(
            &lake,
            "SELECT service_name, exe <> '', start_time > TIMESTAMP '2020-01-01' FROM processes"
        )
        .await,
        ["svc|true|true"]
    );
    let logs = rows(
        &lake,
        "SELECT thread_name, level, severity_number, msg, target, \
         property_get(properties, 'amount'), span_id IS NULL, trace_id IS NULL \
         FROM log_entries ORDER BY time",
    )
    .await;
    let thread = std::thread::current().name().unwrap_or("").to_owned();
    assert_eq!(
        logs,
        [
            "worker|INFO|9|value 42 and text|it::tables|NULL|false|false".to_owned(),
            "worker|WARN|13|static warning|it::tables|NULL|false|false".to_owned(),
            "worker|INFO|9|in task|it::tables|NULL|false|false".to_owned(),
            format!("{thread}|INFO|9|payment accepted for bob|it::tables|12.5|false|false"),
        ]
    );
    assert_eq!(
        rows(
            &lake,
            "SELECT name, unit, kind, value, property_get(properties, 'route') FROM measures ORDER BY time"
        )
        .await,
        ["requests|count|gauge|7.0|/a", "ratio|ratio|gauge|0.5|NULL"]
    );
    let spans = rows(
        &lake,
        "SELECT s.name, p.name, s.thread_name, s.duration_ns >= 0, s.end_time >= s.start_time, \
         s.trace_id = COALESCE(p.trace_id, s.trace_id), \
         property_get(s.attributes, 'table'), property_get(s.attributes, 'id') \
         FROM spans s LEFT JOIN spans p ON s.parent_span_id = p.span_id ORDER BY s.start_time",
    )
    .await;
    assert_eq!(
        spans,
        [
            "outer|NULL|worker|true|true|true|NULL|NULL".to_owned(),
            "inner|outer|worker|true|true|true|NULL|NULL".to_owned(),
            "task|NULL|worker|true|true|true|NULL|NULL".to_owned(),
            format!("request|NULL|{thread}|true|true|true|NULL|42"),
            format!("db|request|{thread}|true|true|true|orders_v2|NULL"),
        ]
    );
    // `duration_ns` is computed from the times when read, alone, with other columns, or in
    // a filter.
    assert_eq!(
        rows(
            &lake,
            "SELECT COUNT(*), COUNT(duration_ns), \
             SUM(CASE WHEN duration_ns = CAST(end_time AS BIGINT) - CAST(start_time AS BIGINT) \
             THEN 1 ELSE 0 END) FROM spans"
        )
        .await,
        ["5|5|5"]
    );
    assert_eq!(
        rows(&lake, "SELECT COUNT(*) FROM spans WHERE duration_ns >= 0").await,
        ["5"]
    );
    assert_eq!(
        rows(&lake, "SELECT MIN(duration_ns) >= 0 FROM spans").await,
        ["true"]
    );
    // Each log carries the ids of the span it was emitted in: native or the layer's.
    assert_eq!(
        rows(
            &lake,
            "SELECT l.msg, s.name FROM log_entries l JOIN spans s \
             ON l.span_id = s.span_id AND l.trace_id = s.trace_id ORDER BY l.time"
        )
        .await,
        [
            "value 42 and text|inner",
            "static warning|outer",
            "in task|task",
            "payment accepted for bob|request"
        ]
    );
    // Catalog tables.
    assert_eq!(
        rows(
            &lake,
            "SELECT kind, COUNT(*) > 0 FROM streams GROUP BY kind ORDER BY kind"
        )
        .await,
        ["logs|true", "metrics|true", "spans|true"]
    );
    assert_eq!(rows(&lake, PENDING_BLOCKS).await, ["0"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeated_write_changes_nothing() {
    let batches = {
        let _serial = serial();
        capture("idem", native_work)
    };
    let lake = Lake::open("memory://", LakeOptions::default())
        .await
        .unwrap();
    let first = lake.write_batches(&batches).await.unwrap();
    let before = rows(&lake, "SELECT COUNT(*) FROM log_entries").await;
    let objects_before = lake.catalog().counts().await.unwrap();
    let again = lake.write_batches(&batches).await.unwrap();
    assert_eq!(again.blocks_written, 0);
    assert_eq!(again.blocks_skipped, first.blocks_written);
    assert_eq!(again.object_bytes, 0, "nothing new: no object written");
    assert_eq!(lake.catalog().counts().await.unwrap(), objects_before);
    assert_eq!(
        rows(&lake, "SELECT COUNT(*) FROM log_entries").await,
        before
    );
    assert_eq!(before, ["3"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn histogram_samples_answer_quantiles() {
    let lake = memory_lake("hist", || {
        let recorder = micromegas_tracing_layer::MicromegasRecorder::new();
        metrics::with_local_recorder(&recorder, || {
            for v in 1..=100 {
                metrics::histogram!("latency", "route" => "/pay").record(v as f64);
            }
            metrics::counter!("hits").increment(3);
        });
    })
    .await;
    assert_eq!(
        rows(
            &lake,
            "SELECT kind, property_get(properties, 'route'), COUNT(*), median(value), \
             approx_percentile_cont(0.99) WITHIN GROUP (ORDER BY value) \
             FROM measures WHERE name = 'latency' GROUP BY 1, 2"
        )
        .await,
        ["histogram|/pay|100|50.5|99.5"]
    );
    assert_eq!(
        rows(
            &lake,
            "SELECT kind, SUM(value) FROM measures WHERE name = 'hits' GROUP BY 1"
        )
        .await,
        ["counter|3.0"]
    );
}

/// A span entered twice on this thread and twice on another, with a child entered twice.
pub(crate) fn entered_on_two_threads() {
    let subscriber =
        tracing_subscriber::registry().with(micromegas_tracing_layer::MicromegasLayer::new());
    let dispatch = tracing::Dispatch::new(subscriber);
    tracing::dispatcher::with_default(&dispatch, || {
        let job = tracing::info_span!("job");
        job.in_scope(|| {
            let step = tracing::info_span!("step");
            step.in_scope(|| std::hint::black_box(()));
            step.in_scope(|| std::hint::black_box(()));
        });
        let (d, handle) = (dispatch.clone(), job.clone());
        std::thread::Builder::new()
            .name("helper".into())
            .spawn(move || {
                tracing::dispatcher::with_default(&d, || {
                    handle.in_scope(|| std::hint::black_box(()));
                    handle.in_scope(|| std::hint::black_box(()));
                })
            })
            .unwrap()
            .join()
            .unwrap();
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn span_intervals_hold_each_enter_on_its_thread() {
    let lake = memory_lake("busy", entered_on_two_threads).await;
    let thread = std::thread::current().name().unwrap_or("").to_owned();
    let mut expected = vec![
        format!("job|{thread}|1"),
        "job|helper|2".to_owned(),
        format!("step|{thread}|2"),
    ];
    expected.sort();
    assert_eq!(
        rows(
            &lake,
            "SELECT s.name, i.thread_name, COUNT(*) FROM span_intervals i \
             JOIN spans s ON i.span_id = s.span_id \
             GROUP BY s.name, i.thread_name ORDER BY s.name, i.thread_name"
        )
        .await,
        expected
    );
    // Each interval lies within its span, and a span is busy no longer than it lives.
    assert_eq!(
        rows(
            &lake,
            "SELECT s.name, \
             MIN(i.begin_time) >= MIN(s.start_time), MAX(i.end_time) <= MAX(s.end_time), \
             SUM(i.duration_ns) <= MAX(s.duration_ns), \
             BOOL_AND(i.duration_ns = CAST(i.end_time AS BIGINT) - CAST(i.begin_time AS BIGINT)) \
             FROM span_intervals i JOIN spans s ON i.span_id = s.span_id \
             GROUP BY s.name ORDER BY s.name"
        )
        .await,
        ["job|true|true|true|true", "step|true|true|true|true"]
    );
    // Busy and idle time per span, and its threads, as the README asks for them.
    assert_eq!(
        rows(
            &lake,
            "SELECT s.name, SUM(i.duration_ns) AS busy_ns, \
             s.duration_ns - SUM(i.duration_ns) AS idle_ns, COUNT(DISTINCT i.thread_name) \
             FROM spans s JOIN span_intervals i ON i.span_id = s.span_id \
             GROUP BY s.span_id, s.name, s.duration_ns ORDER BY s.name"
        )
        .await
        .iter()
        .map(|r| {
            let f: Vec<&str> = r.split('|').collect();
            let (busy, idle): (i64, i64) = (f[1].parse().unwrap(), f[2].parse().unwrap());
            format!("{}|{}|{}|{}", f[0], busy > 0, idle >= 0, f[3])
        })
        .collect::<Vec<_>>(),
        ["job|true|true|2", "step|true|true|1"]
    );
    // Materialized with the spans, from the same blocks: nothing is left pending.
    assert_eq!(rows(&lake, PENDING_BLOCKS).await, ["0"]);
    assert_eq!(
        rows(
            &lake,
            "SELECT table_name, COUNT(*) FROM partitions GROUP BY 1 ORDER BY 1"
        )
        .await
        .into_iter()
        .filter(|r| r.starts_with("span"))
        .collect::<Vec<_>>(),
        ["span_intervals|1", "spans|1"]
    );
}

/// Async request spans on a multi-thread tokio runtime: each is entered once per poll, on
/// whichever worker polls it, and its busy time never exceeds its duration.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_spans_are_entered_once_per_poll_on_the_workers() {
    use tracing::Instrument;
    let lake = memory_lake("async", || {
        std::thread::spawn(|| {
            let subscriber = tracing_subscriber::registry()
                .with(micromegas_tracing_layer::MicromegasLayer::new());
            let dispatch = tracing::Dispatch::new(subscriber);
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .thread_name("worker")
                .on_thread_start({
                    let dispatch = dispatch.clone();
                    // Each worker keeps the subscriber as its default for its whole life.
                    move || std::mem::forget(tracing::dispatcher::set_default(&dispatch))
                })
                .build()
                .unwrap();
            let _default = tracing::dispatcher::set_default(&dispatch);
            runtime.block_on(async {
                let tasks: Vec<_> = (0..20u64)
                    .map(|i| {
                        let span = tracing::info_span!(parent: None, "request", id = i);
                        tokio::spawn(
                            async {
                                for _ in 0..3 {
                                    tokio::task::yield_now().await;
                                }
                            }
                            .instrument(span),
                        )
                    })
                    .collect();
                for t in tasks {
                    t.await.unwrap();
                }
            });
        })
        .join()
        .unwrap();
    })
    .await;
    // Five enters each: four polls (the first, and one after each of the three yields), and
    // the drop of the future, which `Instrumented` also runs inside its span.
    assert_eq!(
        rows(
            &lake,
            "SELECT COUNT(*), COUNT(DISTINCT s.span_id), MIN(n), MAX(n), BOOL_AND(busy <= d) \
             FROM (SELECT s.span_id, COUNT(*) AS n, SUM(i.duration_ns) AS busy, \
             MAX(s.duration_ns) AS d FROM spans s JOIN span_intervals i \
             ON i.span_id = s.span_id GROUP BY s.span_id) s"
        )
        .await,
        ["20|20|5|5|true"]
    );
    assert_eq!(
        rows(&lake, "SELECT DISTINCT thread_name FROM span_intervals").await,
        ["worker"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_take_names_kinds_and_statuses_from_tracing_opentelemetry_fields() {
    use tracing::field::Empty;
    let lake = memory_lake("otel-fields", || {
        let subscriber =
            tracing_subscriber::registry().with(micromegas_tracing_layer::MicromegasLayer::new());
        tracing::subscriber::with_default(subscriber, || {
            let route = "/users/{id}";
            let server = tracing::info_span!(
                "request",
                otel.name = format!("GET {route}").as_str(),
                otel.kind = "server",
                otel.status_code = Empty,
                user = 7u64,
            );
            server.in_scope(|| {
                tracing::error!("first attempt failed");
                tracing::info_span!("query", otel.kind = "Client").in_scope(|| {
                    tracing::error!("connection reset");
                    tracing::error!("connection reset again");
                });
                tracing::info_span!("cache", otel.kind = "sideways").in_scope(|| {
                    tracing::warn!("a warning is not a failure");
                    tracing::error!(parent: None, "an error outside any span");
                });
                let publish = tracing::info_span!(
                    "publish",
                    otel.kind = "producer",
                    otel.status_code = Empty,
                    otel.status_description = Empty,
                );
                publish.record("otel.status_description", "queue full");
            });
            // The request says it succeeded in the end, over its own error event.
            server.record("otel.status_code", "OK");
        });
    })
    .await;
    assert_eq!(
        rows(
            &lake,
            "SELECT name, kind, status_code, COALESCE(status_message, '-'), \
             array_to_string(map_keys(attributes), ',') FROM spans ORDER BY start_time"
        )
        .await,
        [
            "GET /users/{id}|SERVER|OK|-|user",
            "query|CLIENT|ERROR|-|",
            "cache|INTERNAL|UNSET|-|otel.kind",
            "publish|PRODUCER|ERROR|queue full|",
        ]
    );
}

/// Native logs made in native spans carry the ids of the innermost one and of its trace: a
/// scope (nested or not, on any thread), or the async span being polled (or a scope begun in
/// its poll); logs outside any span carry none. `error!` and `fatal!` mark that span failed; a
/// warning, or an error outside any span, marks nothing. An async span first polled in a scope
/// is the scope's child.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn native_logs_and_errors_belong_to_their_span() {
    use micromegas_core::{async_span, error, fatal};
    let lake = memory_lake("native-log-spans", || {
        std::thread::spawn(|| {
            info!("outside");
            {
                span_scope!("outer");
                info!("in outer");
                {
                    span_scope!("inner");
                    error!("disk {} failed", "sda");
                }
                warn!("outer again");
            }
            {
                span_scope!("clean");
                info!("fine");
            }
            error!("outside any span");
            futures::executor::block_on(async_span!("task", async {
                info!("in task");
                {
                    span_scope!("step");
                    info!("in step of {}", "task");
                }
                fatal!("task lost");
            }));
            {
                span_scope!("around");
                futures::executor::block_on(async_span!("polled", async {
                    info!("in polled");
                    {
                        span_scope!("in_poll");
                        error!("in a scope of the polled task");
                    }
                }));
                info!("around again");
            }
            std::thread::spawn(|| {
                span_scope!("other");
                info!("on another thread");
            })
            .join()
            .unwrap();
            info!("outside again");
        })
        .join()
        .unwrap();
    })
    .await;
    // Each log's span (matched on span and trace ids) and the root of its trace.
    assert_eq!(
        rows(
            &lake,
            "SELECT l.msg, COALESCE(s.name, '-'), COALESCE(r.name, '-'), \
             l.span_id IS NULL, l.trace_id IS NULL \
             FROM log_entries l \
             LEFT JOIN spans s ON s.span_id = l.span_id AND s.trace_id = l.trace_id \
             LEFT JOIN spans r ON r.trace_id = l.trace_id AND r.parent_span_id IS NULL \
             ORDER BY l.time"
        )
        .await,
        [
            "outside|-|-|true|true",
            "in outer|outer|outer|false|false",
            "disk sda failed|inner|outer|false|false",
            "outer again|outer|outer|false|false",
            "fine|clean|clean|false|false",
            "outside any span|-|-|true|true",
            "in task|task|task|false|false",
            "in step of task|step|task|false|false",
            "task lost|task|task|false|false",
            "in polled|polled|around|false|false",
            "in a scope of the polled task|in_poll|around|false|false",
            "around again|around|around|false|false",
            "on another thread|other|other|false|false",
            "outside again|-|-|true|true",
        ]
    );
    // The tree, and which spans failed.
    assert_eq!(
        rows(
            &lake,
            "SELECT s.name, COALESCE(p.name, '-'), s.trace_id = p.trace_id, s.status_code, \
             array_to_string(map_keys(s.attributes), ',') \
             FROM spans s LEFT JOIN spans p ON p.span_id = s.parent_span_id \
             ORDER BY s.start_time"
        )
        .await,
        [
            "outer|-|NULL|UNSET|",
            "inner|outer|true|ERROR|",
            "clean|-|NULL|UNSET|",
            "task|-|NULL|ERROR|",
            "step|task|true|UNSET|",
            "around|-|NULL|UNSET|",
            "polled|around|true|UNSET|",
            "in_poll|polled|true|ERROR|",
            "other|-|NULL|UNSET|",
        ]
    );
}

/// Native spans and logs made in spans of the `tracing` layer, and `tracing` spans and events
/// made in native spans, are one tree: each takes the innermost span of its thread, whichever
/// API made it, as parent, and its trace (a W3C trace continued by a `tracing` span too).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn native_and_tracing_spans_nest_in_one_tree() {
    use micromegas_core::{async_span, error};
    let lake = memory_lake("mixed-spans", || {
        std::thread::spawn(|| {
            let subscriber = tracing_subscriber::registry()
                .with(micromegas_tracing_layer::MicromegasLayer::new());
            tracing::subscriber::with_default(subscriber, || {
                tracing::info_span!("handler").in_scope(|| {
                    info!("native in handler");
                    {
                        span_scope!("parse");
                        info!("native in parse");
                        tracing::info!("tracing in parse");
                        tracing::info_span!("validate").in_scope(|| {
                            info!("native in validate");
                            error!("invalid field");
                        });
                    }
                    futures::executor::block_on(async_span!("fetch", async {
                        tracing::info!("tracing in fetch");
                    }));
                });
                let header = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
                tracing::info_span!("continued", traceparent = header).in_scope(|| {
                    span_scope!("native_step");
                    info!("native in continued");
                    futures::executor::block_on(async_span!("native_task", async {
                        info!("in native task");
                    }));
                });
                {
                    span_scope!("job");
                    tracing::info_span!("job_step").in_scope(|| tracing::info!("in job step"));
                    tracing::warn!("tracing in job");
                    tracing::info_span!(parent: None, "detached").in_scope(|| {
                        tracing::info!("in detached");
                    });
                }
                tracing::info!("outside");
            });
        })
        .join()
        .unwrap();
    })
    .await;
    const W3C: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
    // Each log's span (matched on span and trace ids) and the root of its trace (none in the
    // lake for the continued trace, whose root is a remote span: its id is given instead).
    assert_eq!(
        rows(
            &lake,
            &format!(
                "SELECT l.msg, COALESCE(s.name, '-'), \
                 COALESCE(r.name, CASE WHEN l.trace_id = '{W3C}' THEN 'w3c' END, '-') \
                 FROM log_entries l \
                 LEFT JOIN spans s ON s.span_id = l.span_id AND s.trace_id = l.trace_id \
                 LEFT JOIN spans r ON r.trace_id = l.trace_id AND r.parent_span_id IS NULL \
                 ORDER BY l.time"
            )
        )
        .await,
        [
            "native in handler|handler|handler",
            "native in parse|parse|handler",
            "tracing in parse|parse|handler",
            "native in validate|validate|handler",
            "invalid field|validate|handler",
            "tracing in fetch|fetch|handler",
            "native in continued|native_step|w3c",
            "in native task|native_task|w3c",
            "in job step|job_step|job",
            "tracing in job|job|job",
            "in detached|detached|detached",
            "outside|-|-",
        ]
    );
    // The tree, the traces and which spans failed.
    assert_eq!(
        rows(
            &lake,
            &format!(
                "SELECT s.name, COALESCE(p.name, '-'), \
                 CASE WHEN s.trace_id = '{W3C}' THEN 'w3c' \
                 ELSE CAST(s.trace_id = p.trace_id AS VARCHAR) END, s.status_code \
                 FROM spans s LEFT JOIN spans p ON p.span_id = s.parent_span_id \
                 ORDER BY s.start_time"
            )
        )
        .await,
        [
            "handler|-|NULL|UNSET",
            "parse|handler|true|UNSET",
            "validate|parse|true|ERROR",
            "fetch|handler|true|UNSET",
            "continued|-|w3c|UNSET",
            "native_step|continued|w3c|UNSET",
            "native_task|native_step|w3c|UNSET",
            "job|-|NULL|UNSET",
            "job_step|job|true|UNSET",
            "detached|-|NULL|UNSET",
        ]
    );
}

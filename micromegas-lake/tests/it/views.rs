//! SQL-defined views: a view's rows equal its query run on the raw table, after late data for
//! an old hour arrives too, and they stay after retention deletes the raw partitions; views
//! are defined, listed, queried and dropped from `micromegas-sql`.

use crate::common::{capture, rows, serial, shifted};
use micromegas_core::{error, fmetric, info, warn};
use micromegas_lake::{Lake, LakeOptions};
use std::process::Command;

fn work() {
    for i in 0..300u32 {
        match i % 10 {
            0 => error!("request {} failed", i),
            1 | 2 => warn!("request {} slow", i),
            _ => info!("request {} ok", i),
        }
        fmetric!("latency", "ms", f64::from(i % 37), "route" => "/a");
    }
}

const RAW_LOG_STATS: &str = "SELECT date_bin(INTERVAL '1 minute', time) AS time, service_name, \
    level, COUNT(*) AS count FROM log_entries GROUP BY 1, 2, 3 ORDER BY 1, 2, 3";
const VIEW_LOG_STATS: &str =
    "SELECT time, service_name, level, count FROM log_stats ORDER BY 1, 2, 3";
const RAW_MEASURE_STATS: &str = "SELECT date_bin(INTERVAL '1 minute', time) AS time, \
    service_name, name, COUNT(*), SUM(value), MIN(value), MAX(value) FROM measures \
    GROUP BY 1, 2, 3 ORDER BY 1, 2, 3";
const VIEW_MEASURE_STATS: &str =
    "SELECT time, service_name, name, count, sum, min, max FROM measure_stats ORDER BY 1, 2, 3";

fn sql(lake: &std::path::Path, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_micromegas-sql"))
        .arg("--lake")
        .arg(lake)
        .args(args)
        .env_remove("MICROMEGAS_LAKE")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn views_follow_the_raw_data_late_data_and_retention() {
    let (now, late) = {
        let _serial = serial();
        (capture("views", work), capture("views-late", work))
    };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("lake");
    let lake = Lake::open(path.to_str().unwrap(), LakeOptions::default())
        .await
        .unwrap();
    lake.write_batches(&now).await.unwrap();
    lake.write_batches(&shifted(&now, 5)).await.unwrap();

    // Built-in views equal their query on the raw tables.
    let raw = rows(&lake, RAW_LOG_STATS).await;
    assert!(raw.len() >= 6, "{raw:?}");
    assert_eq!(rows(&lake, VIEW_LOG_STATS).await, raw);
    assert_eq!(
        rows(&lake, VIEW_MEASURE_STATS).await,
        rows(&lake, RAW_MEASURE_STATS).await
    );
    // Nothing changed: a second refresh computes nothing.
    assert_eq!(lake.refresh_views(None).await.unwrap().hours_computed, 0);

    // Late data for the old hour: that hour is computed again.
    let view_files = || -> std::collections::BTreeSet<String> {
        crate::common::walk(&path.join("views"))
            .into_iter()
            .collect()
    };
    let before = view_files();
    lake.write_batches(&shifted(&late, 5)).await.unwrap();
    let refresh = lake.refresh_views(None).await.unwrap();
    assert!(refresh.hours_computed >= 2, "{refresh:?}");
    // The files replaced stay for queries that planned with them (deleted after a grace),
    // and garbage collection deletes them once nothing refers to them.
    let after = view_files();
    assert!(after.is_superset(&before), "{before:?} {after:?}");
    let garbage = lake
        .collect_garbage(std::time::Duration::ZERO)
        .await
        .unwrap();
    assert!(garbage.objects_deleted >= 2, "{garbage:?}");
    assert_eq!(
        view_files().len(),
        after.len() - garbage.objects_deleted as usize
    );
    let raw = rows(&lake, RAW_LOG_STATS).await;
    assert_eq!(rows(&lake, VIEW_LOG_STATS).await, raw);
    assert_eq!(
        rows(&lake, VIEW_MEASURE_STATS).await,
        rows(&lake, RAW_MEASURE_STATS).await
    );

    // Retention deletes the old raw partitions; the view keeps the old hour.
    lake.expire(std::time::Duration::from_secs(2 * 3600))
        .await
        .unwrap();
    assert_eq!(
        rows(&lake, "SELECT COUNT(DISTINCT process_id) FROM log_entries").await,
        ["1"]
    );
    assert_eq!(rows(&lake, VIEW_LOG_STATS).await, raw);
    let old = rows(
        &lake,
        "SELECT SUM(count) FROM log_stats WHERE time < now() - INTERVAL '4 hours'",
    )
    .await;
    assert_eq!(old, ["600"], "both old processes' 300 logs each");
    drop(lake);

    // A view defined from the command line.
    let define = "SELECT date_bin(INTERVAL '5 minutes', time) AS time, service_name, \
                  COUNT(*) AS errors FROM log_entries WHERE level = 'ERROR' GROUP BY 1, 2";
    sql(&path, &["view", "create", "errors_5m", "--sql", define]);
    let listed = sql(&path, &["view", "list"]);
    assert!(
        listed.contains("log_stats\tbuilt-in\tlog_entries"),
        "{listed}"
    );
    assert!(
        listed.contains("errors_5m\tdefined\tlog_entries"),
        "{listed}"
    );
    let errors = sql(
        &path,
        &[
            "--format",
            "csv",
            "-c",
            "SELECT service_name, SUM(errors) AS n FROM errors_5m GROUP BY 1",
        ],
    );
    assert_eq!(errors, "service_name,n\nviews,30\n");
    // Bad definitions are refused with a reason.
    for (name, bad, why) in [
        ("x", "SELECT 1 AS time", "exactly one of"),
        ("y", "SELECT level FROM log_entries", "column `time`"),
        ("spans", define, "table of the lake"),
        ("errors_5m", define, "already exists"),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_micromegas-sql"))
            .arg("--lake")
            .arg(&path)
            .args(["view", "create", name, "--sql", bad])
            .output()
            .unwrap();
        assert!(!out.status.success());
        let said = String::from_utf8_lossy(&out.stderr);
        assert!(said.contains(why), "{name}: {said}");
    }
    sql(&path, &["view", "drop", "errors_5m"]);
    assert!(!sql(&path, &["view", "list"]).contains("errors_5m"));
}

/// A view over `span_intervals`: busy time per thread and minute equals the same query on the
/// table.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_view_over_span_intervals_sums_busy_time() {
    let lake = crate::common::memory_lake("busy", crate::tables::entered_on_two_threads).await;
    let per_minute = "SELECT date_bin(INTERVAL '1 minute', begin_time) AS time, thread_name, \
        COUNT(*) AS intervals, SUM(duration_ns) AS busy_ns FROM span_intervals GROUP BY 1, 2";
    lake.create_view("busy_1m", per_minute).await.unwrap();
    let from_view = rows(
        &lake,
        "SELECT thread_name, SUM(intervals), SUM(busy_ns) FROM busy_1m GROUP BY 1 ORDER BY 1",
    )
    .await;
    let from_table = rows(
        &lake,
        "SELECT thread_name, COUNT(*), SUM(duration_ns) FROM span_intervals GROUP BY 1 ORDER BY 1",
    )
    .await;
    assert_eq!(from_view.len(), 2, "{from_view:?}");
    assert_eq!(from_view, from_table);
}

//! DuckDB, an independent Parquet reader, reads the lake's partitions and returns the same
//! counts and values as our SQL: the files are standard Parquet.

use crate::common::{capture, python, rows, serial, shifted};
use micromegas_core::{fmetric, imetric, info, span_scope, warn};
use micromegas_lake::{Lake, LakeOptions};
use std::path::PathBuf;
use std::process::Command;

/// Runs `sql` in DuckDB, with `{log_entries}`, `{measures}`, `{spans}` and `{span_intervals}`
/// replaced by the partitions of that table; rows as `|`-separated text.
fn duckdb(python: &PathBuf, lake: &std::path::Path, sql: &str) -> Vec<String> {
    let mut sql = sql.to_owned();
    for t in ["log_entries", "measures", "spans", "span_intervals"] {
        let files = format!(
            "read_parquet('{}/tables/{t}/*/*/*.parquet')",
            lake.display()
        );
        sql = sql.replace(&format!("{{{t}}}"), &files);
    }
    let script = "import duckdb, sys\n\
        for row in duckdb.connect().sql(sys.argv[1]).fetchall():\n\
        \x20   print('|'.join('NULL' if v is None else str(v) for v in row))\n";
    let out = Command::new(python)
        .args(["-c", script, &sql])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "duckdb failed on {sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

fn work() {
    for i in 0..50u64 {
        span_scope!("request");
        {
            span_scope!("db");
            if i % 10 == 0 {
                warn!("slow query {} took {} ms", i, 100 + i);
            } else {
                info!("query {} done", i);
            }
        }
        imetric!("bytes", "bytes", i * 10, "route" => "/a");
        fmetric!("ratio", "ratio", i as f64 / 100.0);
    }
    crate::tables::entered_on_two_threads();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duckdb_reads_the_partitions_with_the_same_results() {
    let Some(python) = python("duckdb") else {
        return;
    };
    let batches = {
        let _serial = serial();
        capture("duck", work)
    };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("lake");
    let lake = Lake::open(path.to_str().unwrap(), LakeOptions::default())
        .await
        .unwrap();
    lake.write_batches(&batches).await.unwrap();
    lake.write_batches(&shifted(&batches, 5)).await.unwrap();
    lake.materialize_all().await.unwrap();

    // (our SQL, DuckDB's SQL): same question, each dialect's spelling.
    let pairs = [
        (
            "SELECT level, COUNT(*), MIN(msg), MAX(msg) FROM log_entries GROUP BY level ORDER BY level",
            "SELECT level, COUNT(*), MIN(msg), MAX(msg) FROM {log_entries} GROUP BY level ORDER BY level",
        ),
        (
            "SELECT COUNT(DISTINCT process_id), MIN(CAST(time AS BIGINT)), MAX(CAST(time AS BIGINT)) FROM log_entries",
            "SELECT COUNT(DISTINCT process_id), MIN(epoch_ns(time)), MAX(epoch_ns(time)) FROM {log_entries}",
        ),
        (
            "SELECT name, unit, COUNT(*), SUM(value), SUM(cardinality(properties)) FROM measures GROUP BY name, unit ORDER BY name",
            "SELECT name, unit, COUNT(*), SUM(value), SUM(cardinality(properties)) FROM {measures} GROUP BY name, unit ORDER BY name",
        ),
        (
            "SELECT name, COUNT(*), COUNT(DISTINCT trace_id), SUM(duration_ns), SUM(CAST(end_time AS BIGINT) - CAST(start_time AS BIGINT)) FROM spans GROUP BY name ORDER BY name",
            // `duration_ns` is computed when our engine reads, not stored in the files.
            "SELECT name, COUNT(*), COUNT(DISTINCT trace_id), SUM(epoch_ns(end_time) - epoch_ns(start_time)), SUM(epoch_ns(end_time) - epoch_ns(start_time)) FROM {spans} GROUP BY name ORDER BY name",
        ),
        (
            "SELECT thread_name, COUNT(*), COUNT(DISTINCT span_id), SUM(duration_ns), MIN(CAST(begin_time AS BIGINT)), MAX(CAST(end_time AS BIGINT)) FROM span_intervals GROUP BY thread_name ORDER BY thread_name",
            // `duration_ns` is computed when our engine reads, as for spans.
            "SELECT thread_name, COUNT(*), COUNT(DISTINCT span_id), SUM(epoch_ns(end_time) - epoch_ns(begin_time)), MIN(epoch_ns(begin_time)), MAX(epoch_ns(end_time)) FROM {span_intervals} GROUP BY thread_name ORDER BY thread_name",
        ),
        (
            "SELECT COUNT(*) FROM spans c JOIN spans p ON c.parent_span_id = p.span_id AND c.trace_id = p.trace_id",
            "SELECT COUNT(*) FROM {spans} c JOIN {spans} p ON c.parent_span_id = p.span_id AND c.trace_id = p.trace_id",
        ),
    ];
    for (ours, theirs) in pairs {
        let a = rows(&lake, ours).await;
        let b = duckdb(&python, &path, theirs);
        assert!(!a.is_empty());
        assert_eq!(a, b, "{ours}");
    }
    // And the values are what was written.
    assert_eq!(
        rows(
            &lake,
            "SELECT level, COUNT(*) FROM log_entries GROUP BY level ORDER BY level"
        )
        .await,
        ["INFO|90", "WARN|10"]
    );
    assert_eq!(
        duckdb(
            &python,
            &path,
            "SELECT properties['route'] FROM {measures} WHERE name = 'bytes' LIMIT 1"
        ),
        ["/a"]
    );
}

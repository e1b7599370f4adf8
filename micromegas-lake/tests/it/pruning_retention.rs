//! Time-range filters prune partitions before any file is opened (and materialize only what
//! the range needs); retention deletes old objects and rows; the embedded sink writes a lake.

use crate::common::{capture, rows, serial, shifted, sql_cli, walk, PENDING_BLOCKS};
use micromegas_core::{imetric, info, span_scope};
use micromegas_lake::sink::LakeSink;
use micromegas_lake::{Lake, LakeOptions};
use std::collections::BTreeSet;

fn work() {
    for i in 0..10 {
        span_scope!("step");
        info!("step {}", i);
        imetric!("steps", "count", i);
    }
}

async fn three_hours_apart() -> (Lake, tempfile::TempDir) {
    let now = {
        let _serial = serial();
        capture("prune", work)
    };
    let dir = tempfile::tempdir().unwrap();
    let lake = Lake::open(
        dir.path().join("lake").to_str().unwrap(),
        LakeOptions::default(),
    )
    .await
    .unwrap();
    lake.count_object_reads(true);
    lake.write_batches(&shifted(&now, 4)).await.unwrap();
    lake.write_batches(&shifted(&now, 2)).await.unwrap();
    lake.write_batches(&now).await.unwrap();
    (lake, dir)
}

/// Raw objects held by the local lake in `dir`: files under `raw/` and objects whose bytes the
/// SQLite catalog holds.
fn raw_objects(dir: &std::path::Path) -> usize {
    let files = walk(dir)
        .into_iter()
        .filter(|p| p.contains("/raw/"))
        .count();
    let catalog = rusqlite::Connection::open_with_flags(
        dir.join("catalog.sqlite"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap();
    let in_catalog: i64 = catalog
        .query_row("SELECT COUNT(*) FROM object_bytes", [], |r| r.get(0))
        .unwrap();
    files + in_catalog as usize
}

fn partition_reads(lake: &Lake, table: &str) -> BTreeSet<String> {
    let prefix = format!("tables/{table}/");
    lake.take_object_reads()
        .into_keys()
        .filter(|k| k.starts_with(&prefix))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn time_filters_prune_partitions_and_materialize_only_their_range() {
    let (lake, _dir) = three_hours_apart().await;
    let recent = "SELECT COUNT(*) FROM log_entries WHERE time >= now() - INTERVAL '1 hour'";

    // On demand: only the last hour's blocks are materialized.
    assert_eq!(rows(&lake, recent).await, ["10"]);
    assert_eq!(
        rows(
            &lake,
            "SELECT COUNT(*) FROM blocks WHERE kind = 'logs' AND partition_id IS NULL"
        )
        .await,
        ["2"],
        "the two older log blocks stay raw"
    );

    // Everything, then the recent range again: only the recent partition is opened.
    assert_eq!(
        rows(&lake, "SELECT COUNT(*) FROM log_entries").await,
        ["30"]
    );
    let all = rows(
        &lake,
        "SELECT file_path FROM partitions WHERE table_name = 'log_entries' ORDER BY min_time",
    )
    .await;
    assert_eq!(all.len(), 3, "{all:?}");
    lake.take_object_reads();
    assert_eq!(rows(&lake, recent).await, ["10"]);
    let read = partition_reads(&lake, "log_entries");
    assert_eq!(read, BTreeSet::from([all[2].clone()]));

    // Both bounds, on spans: the middle hour only.
    lake.take_object_reads();
    let middle = "SELECT COUNT(*) FROM spans \
        WHERE start_time >= now() - INTERVAL '3 hours' AND end_time <= now() - INTERVAL '1 hour'";
    assert_eq!(rows(&lake, middle).await, ["10"]);
    let span_files = rows(
        &lake,
        "SELECT file_path FROM partitions WHERE table_name = 'spans' ORDER BY min_time",
    )
    .await;
    lake.take_object_reads();
    assert_eq!(rows(&lake, middle).await, ["10"]);
    assert_eq!(
        partition_reads(&lake, "spans"),
        BTreeSet::from([span_files[1].clone()])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_deletes_old_objects_and_rows() {
    let (lake, dir) = three_hours_apart().await;
    lake.materialize_all().await.unwrap();
    let count_files = || {
        let partitions = walk(&dir.path().join("lake"))
            .into_iter()
            .filter(|p| p.contains("/tables/"))
            .count();
        raw_objects(&dir.path().join("lake")) + partitions
    };
    let before = count_files();
    // 3 raw objects and 3 partitions of each of 3 tables.
    assert_eq!(before, 12);

    let report = lake
        .expire(std::time::Duration::from_secs(3 * 3600))
        .await
        .unwrap();
    assert_eq!(
        report.objects_deleted, 4,
        "one raw object, three partitions"
    );
    assert_eq!(count_files(), 8);
    assert_eq!(
        rows(&lake, "SELECT COUNT(*) FROM log_entries").await,
        ["20"]
    );
    assert_eq!(rows(&lake, "SELECT COUNT(*) FROM measures").await, ["20"]);
    assert_eq!(rows(&lake, "SELECT COUNT(*) FROM spans").await, ["20"]);
    assert_eq!(rows(&lake, "SELECT COUNT(*) FROM processes").await, ["2"]);
    assert_eq!(rows(&lake, "SELECT COUNT(*) FROM blocks").await, ["6"]);

    // The command does the same.
    sql_cli(dir.path(), &["retention", "--older-than", "90m"]);
    assert_eq!(count_files(), 4);
    assert_eq!(
        rows(&lake, "SELECT COUNT(*) FROM log_entries").await,
        ["10"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_retention_deletes_only_fully_materialized_objects() {
    let (lake, dir) = three_hours_apart().await;
    let raw_files = || raw_objects(&dir.path().join("lake"));
    let counts = "SELECT (SELECT COUNT(*) FROM log_entries) AS l, \
                  (SELECT COUNT(*) FROM measures) AS m, (SELECT COUNT(*) FROM spans) AS s, \
                  (SELECT COUNT(*) FROM blocks) AS b";
    assert_eq!(
        raw_files(),
        3,
        "one object per write, each with the three kinds"
    );
    let zero = std::time::Duration::ZERO;

    // Only the recent logs are materialized: every object still holds a pending block.
    let recent = "time >= now() - INTERVAL '1 hour'";
    let q = format!("SELECT COUNT(*) FROM log_entries WHERE {recent}");
    assert_eq!(rows(&lake, &q).await, ["10"]);
    assert_eq!(
        lake.drop_materialized_raw(zero)
            .await
            .unwrap()
            .objects_deleted,
        0
    );

    // The recent hour of every table: its object may go, but not before the age.
    let q = format!("SELECT COUNT(*) FROM measures WHERE {recent}");
    assert_eq!(rows(&lake, &q).await, ["10"]);
    let q = "SELECT COUNT(*) FROM spans WHERE start_time >= now() - INTERVAL '1 hour'";
    assert_eq!(rows(&lake, q).await, ["10"]);
    let hour = std::time::Duration::from_secs(3600);
    assert_eq!(
        lake.drop_materialized_raw(hour)
            .await
            .unwrap()
            .objects_deleted,
        0
    );
    assert_eq!(
        lake.drop_materialized_raw(zero)
            .await
            .unwrap()
            .objects_deleted,
        1
    );
    assert_eq!(raw_files(), 2);

    // The older hours are still materialized from their objects; results are complete.
    assert_eq!(rows(&lake, counts).await, ["30|30|30|9"]);

    // The command does the same for what is left; results do not change.
    let stderr = sql_cli(dir.path(), &["retention", "--raw-older-than", "0s"]);
    assert!(
        stderr.contains("deleted 2 materialized raw objects"),
        "{stderr}"
    );
    assert_eq!(raw_files(), 0);
    assert_eq!(rows(&lake, counts).await, ["30|30|30|9"]);
    assert_eq!(rows(&lake, PENDING_BLOCKS).await, ["0"]);
}

#[test]
fn the_embedded_sink_writes_a_queryable_lake() {
    let dir = tempfile::tempdir().unwrap();
    let url = dir.path().join("lake").display().to_string();
    {
        let _serial = serial();
        let sink = std::sync::Arc::new(LakeSink::open(&url, LakeOptions::default()).unwrap());
        let guard = micromegas_core::init(
            sink,
            micromegas_core::Options::default().service_name("embedded"),
        )
        .unwrap();
        work();
        assert_eq!(guard.shutdown().total_dropped(), 0);
    }
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let lake = Lake::open(&url, LakeOptions::default()).await.unwrap();
        assert_eq!(
            rows(
                &lake,
                "SELECT service_name, COUNT(*) FROM log_entries GROUP BY 1"
            )
            .await,
            ["embedded|10"]
        );
        assert_eq!(
            rows(
                &lake,
                "SELECT SUM(value) FROM measures WHERE name = 'steps'"
            )
            .await,
            ["45.0"]
        );
    });
}

/// An embedded sink opened in async code, whose guard is dropped there too (as at the end of
/// `#[tokio::main] async fn main`): what was logged is stored, and neither the opening, the
/// drop nor the events logged there afterwards (whose thread lets go of the pipeline's last
/// reference) panic: the sink and its runtime are let go of on the flusher thread.
#[test]
fn the_embedded_sink_can_be_let_go_of_inside_async_code() {
    let dir = tempfile::tempdir().unwrap();
    let url = dir.path().join("lake").display().to_string();
    {
        let _serial = serial();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let sink = std::sync::Arc::new(LakeSink::open(&url, LakeOptions::default()).unwrap());
            let guard = micromegas_core::init(
                sink,
                micromegas_core::Options::default().service_name("async-app"),
            )
            .unwrap();
            info!("from async code");
            assert_eq!(guard.shutdown().total_dropped(), 0);
            info!("after the guard");
        });
    }
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let lake = Lake::open(&url, LakeOptions::default()).await.unwrap();
        assert_eq!(
            rows(&lake, "SELECT service_name, msg FROM log_entries").await,
            ["async-app|from async code"]
        );
    });
}

/// Raw retention deletes the raw objects the SQLite catalog holds with their rows; `vacuum`
/// then gives their space back to the file system, and the data stays queryable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_retention_and_vacuum_shrink_the_catalog() {
    // 20 processes of 200 events: 20 small raw objects.
    let batches: Vec<_> = {
        let _serial = serial();
        (0..20)
            .flat_map(|_| {
                capture("vacuum", || {
                    for i in 0..200 {
                        // Random text: the raw blocks do not compress away.
                        info!("{} {}", i, uuid::Uuid::new_v4());
                    }
                })
            })
            .collect()
    };
    let dir = tempfile::tempdir().unwrap();
    let lake_dir = dir.path().join("lake");
    let lake = Lake::open(lake_dir.to_str().unwrap(), LakeOptions::default())
        .await
        .unwrap();
    for b in &batches {
        lake.write_batches(std::slice::from_ref(b)).await.unwrap();
    }
    let catalog_size = || {
        ["catalog.sqlite", "catalog.sqlite-wal"]
            .iter()
            .map(|f| std::fs::metadata(lake_dir.join(f)).map_or(0, |m| m.len()))
            .sum::<u64>()
    };
    let held = raw_objects(&lake_dir)
        - walk(&lake_dir)
            .iter()
            .filter(|p| p.contains("/raw/"))
            .count();
    assert!(held > 0, "some raw objects are in the catalog");
    let raw_bytes = lake.catalog().raw_object_bytes().await.unwrap() as u64;
    assert!(raw_bytes > 100_000, "{raw_bytes}");
    lake.materialize_all().await.unwrap();
    lake.drop_materialized_raw(std::time::Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(raw_objects(&lake_dir), 0);
    let before = catalog_size();
    lake.catalog().vacuum().await.unwrap();
    let after = catalog_size();
    assert!(
        after + raw_bytes / 2 < before,
        "vacuum gave back {} of {raw_bytes} raw bytes ({before} -> {after})",
        before.saturating_sub(after)
    );
    assert_eq!(
        rows(
            &lake,
            "SELECT COUNT(*) FROM log_entries WHERE service_name = 'vacuum'"
        )
        .await,
        ["4000"]
    );
}

//! The background loop materializes new blocks by itself; compaction merges the partitions of
//! a past hour without changing any row.

use crate::common::{capture, rows, serial, shifted, PENDING_BLOCKS};
use futures::StreamExt;
use micromegas_core::{imetric, info, span_scope};
use micromegas_lake::maintenance::{CompactionOptions, MaintenanceOptions};
use micromegas_lake::{Lake, LakeOptions};
use object_store::ObjectStoreExt;
use std::time::Duration;

fn work() {
    for i in 0..5 {
        span_scope!("step");
        info!("step {}", i);
        imetric!("steps", "count", i);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_merges_a_past_hour_and_keeps_every_row() {
    let now = {
        let _serial = serial();
        capture("compact", || {
            work();
            crate::tables::entered_on_two_threads();
        })
    };
    let lake = Lake::open("memory://", LakeOptions::default())
        .await
        .unwrap();
    for _ in 0..3 {
        lake.write_batches(&shifted(&now, 2)).await.unwrap();
        lake.materialize_all().await.unwrap();
    }
    let count = "SELECT table_name, COUNT(*) FROM partitions GROUP BY 1 ORDER BY 1";
    assert_eq!(
        rows(&lake, count).await,
        ["log_entries|3", "measures|3", "span_intervals|3", "spans|3"]
    );
    let content = "SELECT (SELECT COUNT(*) FROM log_entries) AS logs, \
        (SELECT SUM(value) FROM measures) AS measures, (SELECT COUNT(*) FROM spans) AS spans, \
        (SELECT COUNT(*) FROM span_intervals) AS intervals, \
        (SELECT SUM(duration_ns) FROM span_intervals) AS busy";
    let before = rows(&lake, content).await;
    // 5 native spans and 2 of the tracing layer (with 5 intervals) per copy.
    assert!(before[0].starts_with("15|30.0|21|15|"), "{before:?}");

    let report = lake.compact_with_grace(Duration::ZERO).await.unwrap();
    assert_eq!(report.partitions_replaced, 12);
    assert_eq!(report.partitions_written, 4);
    assert_eq!(
        rows(&lake, count).await,
        ["log_entries|1", "measures|1", "span_intervals|1", "spans|1"]
    );
    assert_eq!(rows(&lake, content).await, before);
    let files = lake
        .store()
        .list(Some(&"tables".into()))
        .collect::<Vec<_>>()
        .await;
    assert_eq!(files.len(), 4, "replaced files are deleted");
    // Nothing left to merge.
    assert_eq!(
        lake.compact_with_grace(Duration::ZERO).await.unwrap(),
        Default::default()
    );
}

/// What the rows of a partition file take in memory, as compaction reads them.
async fn rows_in_memory(lake: &Lake, file: &str) -> usize {
    let bytes = lake
        .store()
        .get(&file.into())
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(bytes)
        .unwrap()
        .build()
        .unwrap()
        .map(|b| b.unwrap().get_array_memory_size())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_merges_within_its_memory_and_reads_full_partitions_once() {
    let now = {
        let _serial = serial();
        capture("compact-memory", work)
    };
    let lake = Lake::open("memory://", LakeOptions::default())
        .await
        .unwrap();
    for _ in 0..6 {
        lake.write_batches(&shifted(&now, 2)).await.unwrap();
        lake.materialize_all().await.unwrap();
    }
    let spans = "SELECT row_count FROM partitions WHERE table_name = 'spans' ORDER BY 1";
    assert_eq!(rows(&lake, spans).await, ["5"; 6]);
    let file = "SELECT file_path FROM partitions WHERE table_name = 'spans' LIMIT 1";
    let one = rows_in_memory(&lake, &rows(&lake, file).await[0]).await;
    let content = "SELECT (SELECT COUNT(*) FROM log_entries) AS logs, \
        (SELECT SUM(value) FROM measures) AS measures, (SELECT COUNT(*) FROM spans) AS spans, \
        (SELECT COUNT(DISTINCT span_id) FROM spans) AS ids";
    let before = rows(&lake, content).await;

    // Room for two and a half spans partitions: a merge reads three (it stops once the rows
    // read take the memory), so the six become two.
    let options = CompactionOptions {
        grace: Duration::ZERO,
        memory: one * 5 / 2,
    };
    lake.compact_with(options).await.unwrap();
    assert_eq!(rows(&lake, spans).await, ["15", "15"]);
    assert_eq!(rows(&lake, content).await, before);

    // Those two are full: the next pass does not read them again.
    lake.count_object_reads(true);
    let report = lake.compact_with(options).await.unwrap();
    let spans_read: Vec<String> = lake
        .take_object_reads()
        .into_keys()
        .filter(|k| k.starts_with("tables/spans/"))
        .collect();
    assert_eq!(spans_read, Vec::<String>::new(), "{report:?}");
    assert_eq!(rows(&lake, spans).await, ["15", "15"]);
    assert_eq!(rows(&lake, content).await, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_background_loop_materializes_new_blocks() {
    let batches = {
        let _serial = serial();
        capture("fresh", work)
    };
    let lake = Lake::open("memory://", LakeOptions::default())
        .await
        .unwrap();
    let loop_ = lake.spawn_maintenance(
        MaintenanceOptions {
            period: Duration::from_millis(100),
            compaction_period: Duration::from_millis(100),
            raw_retention: Some(Duration::ZERO),
            ..Default::default()
        },
        |e| panic!("maintenance failed: {e}"),
    );
    lake.write_batches(&batches).await.unwrap();
    let pending = PENDING_BLOCKS;
    let left = poll_until(vec!["0".to_owned()], || rows(&lake, pending)).await;
    assert_eq!(left, ["0"], "the loop did not materialize within 10 s");
    assert_eq!(
        rows(&lake, "SELECT SUM(row_count) FROM partitions").await,
        ["15"]
    );
    // Raw retention: once materialized, the raw object goes; results stay.
    let raw_objects = || async {
        let prefix = object_store::path::Path::from("raw");
        lake.store()
            .list(Some(&prefix))
            .collect::<Vec<_>>()
            .await
            .len()
    };
    let raw = poll_until(0, raw_objects).await;
    assert_eq!(
        raw, 0,
        "raw retention did not delete the raw object within 10 s"
    );
    assert_eq!(rows(&lake, "SELECT COUNT(*) FROM log_entries").await, ["5"]);
    loop_.stop().await;
}

/// Calls `probe` every 100 ms, at most 100 times, until it returns `want`; returns its last
/// value.
async fn poll_until<T: PartialEq, F: std::future::Future<Output = T>>(
    want: T,
    probe: impl Fn() -> F,
) -> T {
    let mut last = probe().await;
    for _ in 0..100 {
        if last == want {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        last = probe().await;
    }
    last
}

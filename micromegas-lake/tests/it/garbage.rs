//! Garbage collection deletes the objects no catalog row refers to, once unreferenced (and
//! unmodified) for the grace period, and nothing else: referenced objects, files outside the
//! lake's prefixes, and query results stay.

use crate::common::{capture, rows, serial, shifted, sql_cli, walk};
use micromegas_core::{imetric, info, span_scope};
use micromegas_lake::{Lake, LakeOptions};
use object_store::path::Path;
use object_store::ObjectStoreExt;
use std::time::{Duration, SystemTime};

const HOUR: Duration = Duration::from_secs(3600);
const CONTENT: &str = "SELECT (SELECT COUNT(*) FROM log_entries) AS logs, \
    (SELECT SUM(value) FROM measures) AS measures, (SELECT COUNT(*) FROM spans) AS spans";

fn work() {
    for i in 0..5 {
        span_scope!("step");
        info!("step {}", i);
        imetric!("steps", "count", i);
    }
}

/// A local lake under `dir` with two hours ago's data written and materialized three times
/// (three partitions per table in that hour).
async fn lake_with_a_past_hour(dir: &std::path::Path) -> Lake {
    let batches = {
        let _serial = serial();
        capture("garbage", work)
    };
    let lake = Lake::open(dir.join("lake").to_str().unwrap(), LakeOptions::default())
        .await
        .unwrap();
    for _ in 0..3 {
        lake.write_batches(&shifted(&batches, 2)).await.unwrap();
        lake.materialize_all().await.unwrap();
    }
    lake
}

/// Sets the modification time of the file `key` of the lake under `dir` to `age` ago.
fn age_file(dir: &std::path::Path, key: &str, age: Duration) {
    let file = std::fs::File::options()
        .write(true)
        .open(dir.join("lake").join(key))
        .unwrap();
    file.set_modified(SystemTime::now() - age).unwrap();
}

/// Moves back by `age` when every noted unreferenced object was first seen, as if the pass
/// that noted them had run that long ago.
fn note_earlier(dir: &std::path::Path, age: Duration) {
    let catalog = rusqlite::Connection::open(dir.join("lake/catalog.sqlite")).unwrap();
    catalog
        .execute(
            "UPDATE unreferenced_objects SET first_seen = first_seen - ?1",
            [age.as_nanos() as i64],
        )
        .unwrap();
}

fn lake_files(dir: &std::path::Path) -> Vec<String> {
    let root = dir.join("lake").display().to_string();
    let mut files: Vec<String> = walk(&dir.join("lake"))
        .into_iter()
        .map(|f| f[root.len() + 1..].to_owned())
        .filter(|f| !f.starts_with("catalog.sqlite"))
        .collect();
    files.sort();
    files
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreferenced_objects_are_deleted_after_the_grace_and_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let lake = lake_with_a_past_hour(dir.path()).await;
    let before = rows(&lake, CONTENT).await;
    let referenced = lake_files(dir.path());

    // What a process stopped between an object's write and its commit leaves, under each
    // prefix; a file of someone else's beside the lake; a staging file of an interrupted
    // partition write.
    let orphans = [
        "raw/2026-12-01/10/0f0f0f0f0f0f4f0f8f0f0f0f0f0f0f0f.arrows",
        "tables/spans/2026-12-01/10/1e1e1e1e1e1e4e1e8e1e1e1e1e1e1e1e.parquet",
        "views/errors/2026-12-01/10/2d2d2d2d2d2d4d2d8d2d2d2d2d2d2d2d.parquet",
    ];
    for key in orphans.iter().chain(&["notes/readme.txt"]) {
        lake.store()
            .put(&Path::from(*key), b"left behind".to_vec().into())
            .await
            .unwrap();
        age_file(dir.path(), key, 2 * HOUR);
    }
    let staging = "tables/spans/2026-12-01/10/3c3c3c3c3c3c4c3c8c3c3c3c3c3c3c3c.parquet#1";
    std::fs::write(dir.path().join("lake").join(staging), b"partial").unwrap();
    age_file(dir.path(), staging, 2 * HOUR);

    // First pass: the orphans are old, but were never seen unreferenced before; only the
    // staging file (which nothing can ever refer to) goes.
    let report = lake.collect_garbage(HOUR).await.unwrap();
    assert_eq!(report.objects_listed, referenced.len() as u64 + 3);
    assert_eq!(report.unreferenced, 3);
    assert_eq!(report.objects_deleted, 0);
    assert_eq!(report.staging_files_deleted, 1);
    assert!(!dir.path().join("lake").join(staging).exists());

    // Still within the grace: kept.
    note_earlier(dir.path(), HOUR / 2);
    assert_eq!(lake.collect_garbage(HOUR).await.unwrap().objects_deleted, 0);

    // Unreferenced for longer than the grace: deleted, with their bytes counted.
    note_earlier(dir.path(), HOUR);
    let report = lake.collect_garbage(HOUR).await.unwrap();
    assert_eq!(report.objects_deleted, 3);
    assert_eq!(report.bytes_deleted, 3 * b"left behind".len() as u64);
    let mut expected = referenced.clone();
    expected.push("notes/readme.txt".into());
    expected.sort();
    assert_eq!(lake_files(dir.path()), expected);
    // Directories left empty go with their last file.
    for emptied in ["raw/2026-12-01", "tables/spans/2026-12-01", "views"] {
        assert!(!dir.path().join("lake").join(emptied).exists(), "{emptied}");
    }
    assert_eq!(rows(&lake, CONTENT).await, before);
    assert_eq!(
        rows(&lake, "SELECT COUNT(*) FROM log_entries").await,
        ["15"],
        "three copies of 5 logs"
    );

    // Nothing is noted any more, and a new pass finds nothing.
    let report = lake.collect_garbage(HOUR).await.unwrap();
    assert_eq!((report.unreferenced, report.objects_deleted), (0, 0));

    // The CLI runs a pass; with a zero grace every unreferenced object goes at once.
    let key = "raw/2026-12-01/11/4b4b4b4b4b4b4b4b8b4b4b4b4b4b4b4b.arrows";
    lake.store()
        .put(&Path::from(key), b"x".to_vec().into())
        .await
        .unwrap();
    let stderr = sql_cli(dir.path(), &["collect-garbage", "--grace", "0s"]);
    assert!(
        stderr.contains("1 unreferenced: 1 deleted (1 bytes)"),
        "{stderr}"
    );
    assert_eq!(lake_files(dir.path()), expected);
}

/// A compaction whose process stops before the deferred deletion of the partitions it
/// replaced leaves them behind. They are old files, but they were referenced until the
/// compaction, and a query planned before it may still read them: a pass keeps them for the
/// grace after it first sees them unreferenced, then deletes them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partitions_left_by_compaction_go_a_grace_after_they_were_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let lake = lake_with_a_past_hour(dir.path()).await;
    let before = rows(&lake, CONTENT).await;
    let partitions = || {
        lake_files(dir.path())
            .into_iter()
            .filter(|f| f.starts_with("tables/"))
            .collect::<Vec<_>>()
    };
    let replaced = partitions();
    // The deletion is deferred by a day: it never runs in this test, as in a process that
    // stopped meanwhile.
    let report = lake.compact_with_grace(24 * HOUR).await.unwrap();
    assert_eq!(report.partitions_replaced, replaced.len() as u64);
    let written = report.partitions_written;
    assert_eq!(partitions().len(), replaced.len() + written as usize);
    for key in &replaced {
        age_file(dir.path(), key, 3 * HOUR);
    }

    let report = lake.collect_garbage(HOUR).await.unwrap();
    assert_eq!(report.unreferenced, replaced.len() as u64);
    assert_eq!(
        report.objects_deleted, 0,
        "replaced just now: kept for the grace"
    );
    note_earlier(dir.path(), 2 * HOUR);
    let report = lake.collect_garbage(HOUR).await.unwrap();
    assert_eq!(report.objects_deleted, replaced.len() as u64);
    let left = partitions();
    assert_eq!(left.len(), written as usize, "{left:?}");
    assert!(left.iter().all(|f| !replaced.contains(f)), "{left:?}");
    assert_eq!(rows(&lake, CONTENT).await, before);
}

/// A background pass runs at once when started, and stopping the handle ends it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_background_collection_runs_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let lake = lake_with_a_past_hour(dir.path()).await;
    let key = "raw/2026-12-01/12/5a5a5a5a5a5a4a5a8a5a5a5a5a5a5a5a.arrows";
    lake.store()
        .put(&Path::from(key), b"x".to_vec().into())
        .await
        .unwrap();
    let (tx, mut passes) = tokio::sync::mpsc::unbounded_channel();
    let gc = lake.spawn_garbage_collection(HOUR, Duration::ZERO, move |outcome| {
        let _ = tx.send(outcome.map_err(|e| e.to_string()));
    });
    let first = tokio::time::timeout(Duration::from_secs(30), passes.recv())
        .await
        .expect("a pass within 30 s")
        .expect("a report")
        .expect("the pass succeeded");
    assert_eq!((first.unreferenced, first.objects_deleted), (1, 1));
    gc.stop().await;
    assert!(!dir.path().join("lake").join(key).exists());
}

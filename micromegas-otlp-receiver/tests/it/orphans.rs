//! The collector looks for objects no catalog row refers to when it starts (and every
//! `--orphan-scan-period`), and deletes those unreferenced for longer than `--orphan-grace`.

use crate::common::{collector_command, free_port, wait_for_port, Killed};
use micromegas_lake::{Lake, LakeOptions};
use std::time::{Duration, Instant, SystemTime};

const HOUR: Duration = Duration::from_secs(3600);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_collector_deletes_orphans_at_startup() {
    let dir = tempfile::tempdir().unwrap();
    let lake_dir = dir.path().join("lake");
    let lake = Lake::open(lake_dir.to_str().unwrap(), LakeOptions::default())
        .await
        .unwrap();
    // Two objects no row refers to: one a pass saw unreferenced two hours ago, one seen
    // only now (it waits for its grace).
    let (due, waiting) = (
        "raw/2026-12-01/10/0f0f0f0f0f0f4f0f8f0f0f0f0f0f0f0f.arrows",
        "raw/2026-12-01/10/1e1e1e1e1e1e4e1e8e1e1e1e1e1e1e1e.arrows",
    );
    for key in [due, waiting] {
        let file = lake_dir.join(key);
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(&file, b"left behind").unwrap();
        std::fs::File::options()
            .write(true)
            .open(&file)
            .unwrap()
            .set_modified(SystemTime::now() - 2 * HOUR)
            .unwrap();
    }
    let two_hours_ago = micromegas_lake::catalog::now_nanos() - 2 * HOUR.as_nanos() as i64;
    lake.catalog()
        .note_unreferenced(&[due.to_owned()], two_hours_ago)
        .await
        .unwrap();
    lake.catalog().close().await;

    let grpc = free_port();
    let collector = Killed(
        collector_command(&lake_dir, grpc)
            .args(["--orphan-grace", "1h"])
            .spawn()
            .unwrap(),
    );
    wait_for_port(grpc, 30, "the collector").await;
    // The pass deletes the due orphan, then forgets its note: wait for both.
    let lake = Lake::open(lake_dir.to_str().unwrap(), LakeOptions::default())
        .await
        .unwrap();
    let started = Instant::now();
    loop {
        let noted = lake.catalog().noted_unreferenced().await.unwrap();
        if !lake_dir.join(due).exists() && noted.keys().eq([waiting]) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the orphan was not deleted within 30 s of the start: {noted:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(lake_dir.join(waiting).exists(), "within its grace: kept");
    drop(collector);
}

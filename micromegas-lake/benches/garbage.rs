//! Garbage collection: how long a pass takes over a local lake (files and a SQLite catalog)
//! holding OBJECTS raw objects that the catalog refers to and ORPHANS that it does not. The
//! first pass lists everything and notes the orphans; the second (zero grace) lists again and
//! deletes them; the third finds nothing to do.
//!
//! `cargo bench -p micromegas-lake --bench garbage` (env: OBJECTS=100000, ORPHANS=10000).

use micromegas_lake::{Lake, LakeOptions};
use std::time::{Duration, Instant};

fn env_or<T: std::str::FromStr>(key: &str, default: T) -> T {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The key of raw object `i`, 1000 per hour directory.
fn key(i: usize, tag: &str) -> String {
    format!(
        "raw/2026-12-{:02}/{:02}/{tag}{i:027}.arrows",
        1 + i / 24_000,
        (i / 1000) % 24
    )
}

#[tokio::main]
async fn main() {
    let objects: usize = env_or("OBJECTS", 100_000);
    let orphans: usize = env_or("ORPHANS", 10_000);
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("lake");
    let lake = Lake::open(root.to_str().expect("utf-8 path"), LakeOptions::default())
        .await
        .expect("open the lake");
    lake.catalog().close().await;

    let started = Instant::now();
    let catalog = rusqlite::Connection::open(root.join("catalog.sqlite")).expect("catalog");
    catalog
        .execute_batch("BEGIN")
        .expect("begin the catalog transaction");
    {
        let mut insert = catalog
            .prepare(
                "INSERT INTO objects (object_path, min_time, max_time, size, insert_time) \
                 VALUES (?1, 0, 0, 1, 0)",
            )
            .expect("prepare");
        for i in 0..objects {
            insert.execute([key(i, "")]).expect("insert an object row");
        }
    }
    catalog.execute_batch("COMMIT").expect("commit");
    drop(catalog);
    for (n, tag) in [(objects, ""), (orphans, "f")] {
        for i in 0..n {
            let path = root.join(key(i, tag));
            if i % 1000 == 0 {
                std::fs::create_dir_all(path.parent().expect("parent")).expect("directory");
            }
            std::fs::write(&path, b"x").expect("file");
        }
    }
    eprintln!(
        "set up {objects} referenced objects and {orphans} orphans in {:.1?}",
        started.elapsed()
    );

    let lake = Lake::open(root.to_str().expect("utf-8 path"), LakeOptions::default())
        .await
        .expect("open the lake");
    println!("| pass | listed | unreferenced | deleted | time | objects listed per second |");
    println!("|---|---|---|---|---|---|");
    for (pass, grace) in [
        ("notes the orphans", Duration::from_secs(3600)),
        ("deletes them", Duration::ZERO),
        ("nothing to do", Duration::ZERO),
    ] {
        let started = Instant::now();
        let r = lake.collect_garbage(grace).await.expect("a pass");
        let took = started.elapsed();
        println!(
            "| {pass} | {} | {} | {} | {:.2} s | {:.0} |",
            r.objects_listed,
            r.unreferenced,
            r.objects_deleted,
            took.as_secs_f64(),
            r.objects_listed as f64 / took.as_secs_f64()
        );
    }
}

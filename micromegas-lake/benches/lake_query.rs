//! Query benchmark: N log entries and N spans generated through the micromegas-core API,
//! spread over one day, materialized into the lake; then, in one run, our SQL and DuckDB
//! time the same three queries over the same Parquet files.
//!
//! `cargo bench -p micromegas-lake --bench lake_query` (env: EVENTS=10000000, RUNS=7,
//! LAKE=target/bench-lake, REUSE=1 to query an existing lake, PYTHON=.venv/bin/python).

use micromegas_core::metadata::Level;
use micromegas_core::sink::MemorySink;
use micromegas_core::transit::batch::Batch;
use micromegas_core::{debug, error, info, span_scope, warn};
use micromegas_lake::{Lake, LakeOptions};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

const HOURS: i64 = 24;
const NANOS_PER_HOUR: i64 = 3_600_000_000_000;
const THREADS: u64 = 4;

fn env_or<T: std::str::FromStr>(key: &str, default: T) -> T {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// One request: 5 spans (a root and 4 children) and 5 log entries.
fn request(id: u64) {
    span_scope!("request");
    {
        span_scope!("auth");
        debug!("token checked for user {}", id % 10_000);
    }
    {
        span_scope!("parse");
        info!("request {} parsed: {} bytes", id, 200 + id % 1800);
    }
    {
        span_scope!("db");
        if id.is_multiple_of(50) {
            warn!("slow query for request {}: {} ms", id, 100 + id % 900);
        } else {
            info!("query for request {} returned {} rows", id, id % 37);
        }
    }
    {
        span_scope!("render");
        if id.is_multiple_of(997) {
            error!(
                "render failed for request {}: template {} missing",
                id,
                id % 13
            );
        } else {
            info!("rendered {} items", id % 50);
        }
    }
    info!("request {} served in {} us", id, 150 + id % 5000);
}

/// Captures `requests` requests on THREADS threads.
fn capture(hour: i64, requests: u64) -> Vec<Batch> {
    let sink = Arc::new(MemorySink::new());
    let options = micromegas_core::Options::default()
        .service_name(format!("bench-{}", hour % 4))
        .budget_bytes(1 << 30)
        .max_ring_bytes(32 << 20);
    micromegas_core::metadata::set_max_level(Level::Debug);
    let guard = micromegas_core::init(sink.clone(), options).expect("init");
    let per_thread = requests / THREADS;
    let threads: Vec<_> = (0..THREADS)
        .map(|t| {
            std::thread::Builder::new()
                .name(format!("worker-{t}"))
                .spawn(move || {
                    for i in 0..per_thread {
                        request(t * per_thread + i);
                    }
                })
                .expect("spawn")
        })
        .collect();
    for t in threads {
        t.join().expect("worker");
    }
    let stats = guard.shutdown();
    assert_eq!(
        stats.total_dropped(),
        0,
        "generation dropped events: {stats:?}"
    );
    sink.batches()
}

/// Moves a capture into hour `hour` of the day starting at `day_start`, stretching its
/// (sub-second) duration over the hour: synthetic but evenly spread timestamps.
fn warp(batches: Vec<Batch>, day_start: i64, hour: i64) -> Vec<Batch> {
    let Some(first) = batches.first() else {
        return batches;
    };
    let end_ticks = batches
        .iter()
        .flat_map(|b| b.blocks.iter().map(|k| k.header.end_ticks))
        .max()
        .unwrap_or(0);
    let mut process = (*first.process).clone();
    let c = &mut process.calibration;
    let real =
        (end_ticks.saturating_sub(c.start_ticks) as f64 / c.ticks_per_second as f64).max(1e-3);
    c.ticks_per_second = ((c.ticks_per_second as f64 * real / 3599.0) as u64).max(1);
    c.start_unix_nanos = day_start + hour * NANOS_PER_HOUR;
    let process = Arc::new(process);
    batches
        .into_iter()
        .map(|b| Batch {
            process: process.clone(),
            streams: b.streams,
            blocks: b
                .blocks
                .iter()
                .map(|k| {
                    let mut k = (**k).clone();
                    k.header.begin_unix_nanos = process.ticks_to_unix_nanos(k.header.begin_ticks);
                    k.header.end_unix_nanos = process.ticks_to_unix_nanos(k.header.end_ticks);
                    Arc::new(k)
                })
                .collect(),
        })
        .collect()
}

fn dir_size(dir: &std::path::Path) -> u64 {
    let mut total = 0;
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            total += if p.is_dir() {
                dir_size(&p)
            } else {
                e.metadata().map_or(0, |m| m.len())
            };
        }
    }
    total
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

async fn generate(lake: &Lake, events: u64, day_start: i64) -> (u64, Duration) {
    let requests_per_hour = events / 5 / HOURS as u64;
    let mut native_events = 0;
    let mut write_time = Duration::ZERO;
    for hour in 0..HOURS {
        let batches = warp(capture(hour, requests_per_hour), day_start, hour);
        native_events += batches.iter().map(Batch::event_count).sum::<u64>();
        let started = Instant::now();
        for group in batches.chunks(64) {
            lake.write_batches(group).await.expect("write");
        }
        write_time += started.elapsed();
    }
    (native_events, write_time)
}

/// Seconds from an acknowledged write to its blocks being materialized by the background
/// loop, for a few small writes.
async fn freshness(lake: &Lake) -> Vec<f64> {
    let maintenance = lake.spawn_maintenance(
        micromegas_lake::maintenance::MaintenanceOptions::default(),
        |e| eprintln!("maintenance: {e}"),
    );
    let mut out = Vec::new();
    for i in 0..5 {
        let batches = capture(100 + i, 40);
        let started = Instant::now();
        lake.write_batches(&batches).await.expect("write");
        let ids: Vec<String> = batches
            .iter()
            .flat_map(|b| b.blocks.iter().map(|k| k.header.block_id.to_string()))
            .collect();
        loop {
            let pending = lake
                .catalog()
                .blocks(None)
                .await
                .expect("blocks")
                .into_iter()
                .filter(|b| ids.contains(&b.block_id) && b.partition_id.is_none())
                .count();
            if pending == 0 || started.elapsed() > Duration::from_secs(30) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        out.push(started.elapsed().as_secs_f64());
    }
    maintenance.stop().await;
    out
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    if std::env::args().any(|a| a == "--list" || a == "--test") {
        return; // `cargo test --benches` and `--list`: nothing to list.
    }
    let events: u64 = env_or("EVENTS", 10_000_000);
    let runs: usize = env_or("RUNS", 7);
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let lake_dir = std::path::PathBuf::from(env_or("LAKE", format!("{root}/target/bench-lake")));
    let python = env_or("PYTHON", format!("{root}/.venv/bin/python"));
    let reuse = std::env::var_os("REUSE").is_some() && lake_dir.join("catalog.sqlite").exists();
    let day_start =
        (micromegas_lake::catalog::now_nanos().div_euclid(NANOS_PER_HOUR) - HOURS) * NANOS_PER_HOUR;
    if !reuse {
        let _ = std::fs::remove_dir_all(&lake_dir);
    }
    let lake = Lake::open(
        lake_dir.to_str().expect("utf-8 path"),
        LakeOptions::default(),
    )
    .await
    .expect("open lake");
    if !reuse {
        let started = Instant::now();
        let (native_events, write_time) = generate(&lake, events, day_start).await;
        let generated = started.elapsed();
        // Raw objects of a local lake with a SQLite catalog are in the catalog file.
        let raw = lake.catalog().raw_object_bytes().await.expect("raw bytes") as u64;
        let started = Instant::now();
        let m = lake.materialize_all().await.expect("materialize");
        let c = lake
            .compact_with_grace(Duration::ZERO)
            .await
            .expect("compact");
        let etl = started.elapsed();
        println!("## generation\n");
        println!(
            "{native_events} native events generated and written in {:.1} s (lake writes {:.1} s)",
            generated.as_secs_f64(),
            write_time.as_secs_f64()
        );
        println!(
            "materialized {} blocks into {} rows in {:.1} s ({:.2} M rows/s), then compacted \
             {} partitions into {}",
            m.blocks,
            m.rows,
            etl.as_secs_f64(),
            m.rows as f64 / etl.as_secs_f64() / 1e6,
            c.partitions_replaced,
            c.partitions_written
        );
        let tables = dir_size(&lake_dir.join("tables"));
        let catalog = dir_size(&lake_dir).saturating_sub(raw + tables);
        println!("\n| storage | bytes | bytes per native event | bytes per row |");
        println!("|---|---|---|---|");
        println!(
            "| raw blocks (LZ4) | {raw} | {:.2} | |",
            raw as f64 / native_events as f64
        );
        println!(
            "| Parquet partitions (zstd) | {tables} | {:.2} | {:.2} |",
            tables as f64 / native_events as f64,
            tables as f64 / m.rows as f64
        );
        for t in ["log_entries", "spans"] {
            let size = dir_size(&lake_dir.join("tables").join(t));
            let n: u64 = lake
                .catalog()
                .partitions(t, None)
                .await
                .expect("partitions")
                .iter()
                .map(|p| p.row_count as u64)
                .sum();
            println!(
                "| - {t}: {n} rows | {size} | | {:.2} |",
                size as f64 / n as f64
            );
        }
        println!("| catalog (SQLite, beyond the raw blocks it holds) | {catalog} | | |");
    }

    let freshness = freshness(&lake).await;
    let ctx = lake.session().await.expect("session");
    let trace: String = {
        let b = ctx
            .sql("SELECT trace_id FROM spans WHERE name = 'request' ORDER BY trace_id LIMIT 1 OFFSET 1000")
            .await
            .expect("sql")
            .collect()
            .await
            .expect("trace");
        let column = b[0].column(0);
        let text =
            arrow::util::display::ArrayFormatter::try_new(column.as_ref(), &Default::default())
                .expect("fmt")
                .value(0)
                .to_string();
        text
    };
    let hour = day_start + 13 * NANOS_PER_HOUR;
    let ts = |ns: i64| {
        chrono::DateTime::from_timestamp_nanos(ns)
            .format("%Y-%m-%dT%H:%M:%S%.fZ")
            .to_string()
    };
    let queries: BTreeMap<&str, String> = BTreeMap::from([
        (
            "1 spans of one trace by id",
            format!("SELECT * FROM {{spans}} WHERE trace_id = '{trace}'"),
        ),
        (
            "2 last 100 logs <= WARN in one hour",
            format!(
                "SELECT time, level, msg FROM {{log_entries}} WHERE time >= TIMESTAMPTZ '{}' \
                 AND time < TIMESTAMPTZ '{}' AND severity_number >= 13 \
                 ORDER BY time DESC LIMIT 100",
                ts(hour),
                ts(hour + NANOS_PER_HOUR)
            ),
        ),
        (
            "3 log counts per level per minute, one day",
            format!(
                "SELECT date_trunc('minute', time) AS minute, level, COUNT(*) AS n \
                 FROM {{log_entries}} WHERE time >= TIMESTAMPTZ '{}' AND time < TIMESTAMPTZ '{}' \
                 GROUP BY 1, 2",
                ts(day_start),
                ts(day_start + HOURS * NANOS_PER_HOUR)
            ),
        ),
    ]);

    // Ours: each run plans against the catalog, prunes partitions and scans.
    let mut ours: BTreeMap<&str, (f64, usize)> = BTreeMap::new();
    for (name, sql) in &queries {
        let sql = sql
            .replace("{spans}", "spans")
            .replace("{log_entries}", "log_entries");
        let mut times = Vec::new();
        let mut rows = 0;
        for run in 0..=runs {
            let started = Instant::now();
            let batches = ctx
                .sql(&sql)
                .await
                .expect("sql")
                .collect()
                .await
                .expect("run");
            let elapsed = started.elapsed().as_secs_f64();
            rows = batches.iter().map(|b| b.num_rows()).sum();
            if run > 0 {
                times.push(elapsed); // run 0 is the warm-up
            }
        }
        ours.insert(name, (median(times), rows));
    }

    // DuckDB, same files, same machine, same run.
    let json = serde_json::to_string(&queries).expect("json");
    let theirs: Option<serde_json::Value> = (|| {
        let mut child = std::process::Command::new(&python)
            .arg(format!("{root}/scripts/duckdb_bench.py"))
            .arg(lake_dir.canonicalize().ok()?)
            .arg(runs.to_string())
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .ok()?;
        use std::io::Write;
        child.stdin.take()?.write_all(json.as_bytes()).ok()?;
        let out = child.wait_with_output().ok()?;
        serde_json::from_slice(&out.stdout).ok()
    })();
    if theirs.is_none() {
        eprintln!("DuckDB not available ({python}); run scripts/test.sh once to create .venv");
    }

    println!(
        "\nfreshness: a write is materialized by the background loop (period 1 s) after \
         {:.0} ms (median of {}; max {:.0} ms)",
        median(freshness.clone()) * 1e3,
        freshness.len(),
        freshness.iter().cloned().fold(0.0, f64::max) * 1e3
    );
    println!("\n## queries (median of {runs} warm runs, seconds)\n");
    println!("| query | rows | micromegas | DuckDB | ratio |");
    println!("|---|---|---|---|---|");
    for (name, (ours, rows)) in &ours {
        let duck = theirs.as_ref().and_then(|t| {
            let s: Vec<f64> = t[*name]["seconds"]
                .as_array()?
                .iter()
                .filter_map(|v| v.as_f64())
                .collect();
            Some((median(s), t[*name]["rows"].as_u64()?))
        });
        match duck {
            Some((d, drows)) => {
                assert_eq!(drows as usize, *rows, "{name}: row counts differ");
                println!(
                    "| {name} | {rows} | {:.4} | {:.4} | {:.2}x |",
                    ours,
                    d,
                    ours / d
                );
            }
            None => println!("| {name} | {rows} | {ours:.4} | n/a | n/a |"),
        }
    }
}

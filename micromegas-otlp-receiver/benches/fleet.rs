//! Fleet-scale load simulation (SCALING.md): N simulated processes, each with its own process
//! and stream metadata and a few blocks (logs, metrics, spans), sent as native batches through
//! two collectors into one lake, for N = 1k, 10k, 100k. Reports, per point: catalog rows and
//! objects written per million events, ingest rate, and the latency of a time-range query over
//! the last minute (first run, which materializes, and a second one). The processes' data is
//! spread over time, `PER_MINUTE` processes a minute (the newest minute ends about when the
//! run starts), so that the queried minute holds the same data at every point while the
//! catalog holds 1k, 10k or 100k processes: what grows is everything outside the range.
//!
//! `cargo bench -p micromegas-otlp-receiver --bench fleet` (env: POINTS=1000,10000,100000;
//! CATALOG_ADMIN=postgres://user@host/postgres to use a fresh PostgreSQL database per point,
//! else a SQLite catalog; DIR=target/bench-fleet; REPEAT=1 runs of each point, the median
//! reported). Loopback only; stops by itself.

use micromegas_core::transit::batch::{as_another_process, Batch};
use micromegas_lake::arrow::array::Int64Array;
use micromegas_lake::{Lake, LakeOptions};
use micromegas_otlp_receiver::{Collector, CollectorOptions};
use micromegas_tracing_layer::network::{NetworkOptions, NetworkSink};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Sending threads (each alternates between the two collectors).
const SENDERS: usize = 4;

/// Simulated processes whose data falls in each minute.
const PER_MINUTE: usize = 1000;

const MINUTE_NANOS: i64 = 60_000_000_000;

fn now_nanos() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64
}

/// One process's worth of blocks: a few requests with spans, logs and metrics.
fn template() -> Vec<Batch> {
    let sink = Arc::new(micromegas_core::sink::MemorySink::new());
    let guard = micromegas_core::init(
        sink.clone(),
        micromegas_core::Options::default().service_name("fleet"),
    )
    .unwrap();
    for i in 0..20u64 {
        micromegas_core::span_scope!("request");
        micromegas_core::info!("request {} served", i);
        micromegas_core::imetric!("request.bytes", "bytes", 100 + i);
    }
    guard.shutdown();
    sink.batches()
}

struct Point {
    processes: usize,
    events: u64,
    ingest_secs: f64,
    counts: Vec<(String, i64)>,
    first_query_ms: f64,
    second_query_ms: f64,
    /// Log entries the last-minute query counted.
    in_range: i64,
}

async fn catalog_for(point: usize) -> Option<String> {
    use sqlx::Connection;
    let admin = std::env::var("CATALOG_ADMIN").ok()?;
    let name = format!("fleet_{point}_{}", uuid::Uuid::new_v4().simple());
    let mut conn = sqlx::PgConnection::connect(&admin).await.unwrap();
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .await
        .unwrap();
    Some(format!("{}/{name}", admin.rsplit_once('/').unwrap().0))
}

async fn run(processes: usize, template: &[Batch], dir: &std::path::Path) -> Point {
    let lake_dir = dir.join(format!("lake-{processes}"));
    let _ = std::fs::remove_dir_all(&lake_dir);
    let options = LakeOptions {
        catalog: catalog_for(processes).await,
        ..Default::default()
    };
    let url = lake_dir.to_str().unwrap().to_owned();
    let mut addresses = Vec::new();
    for _ in 0..2 {
        let lake = Lake::open(&url, options.clone()).await.unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        addresses.push(format!("http://{}", listener.local_addr().unwrap()));
        tokio::spawn(micromegas_otlp_receiver::grpc::serve(
            Collector::new(lake, CollectorOptions::default()),
            listener,
            None,
            std::future::pending(),
        ));
    }
    // Encode every process's batches first, so that the timing is the collectors' work.
    let begin = template
        .iter()
        .flat_map(|b| b.blocks.iter().map(|k| k.header.begin_unix_nanos))
        .min()
        .unwrap();
    let shift = now_nanos() - begin;
    let events_per_process: u64 = template.iter().map(|b| b.event_count()).sum();
    // Process i's data is (i / PER_MINUTE) minutes older than the newest.
    let encoded: Vec<bytes::Bytes> = (0..processes)
        .flat_map(|i| as_another_process(template, shift - (i / PER_MINUTE) as i64 * MINUTE_NANOS))
        .map(|b| bytes::Bytes::from(b.encode()))
        .collect();
    let last_minute = (begin + shift, begin + shift + MINUTE_NANOS);
    let started = Instant::now();
    let chunks: Vec<Vec<bytes::Bytes>> = (0..SENDERS)
        .map(|s| encoded.iter().skip(s).step_by(SENDERS).cloned().collect())
        .collect();
    let senders: Vec<_> = chunks
        .into_iter()
        .enumerate()
        .map(|(s, chunk)| {
            let addresses = addresses.clone();
            tokio::task::spawn_blocking(move || {
                let sinks: Vec<NetworkSink> = addresses
                    .iter()
                    .map(|a| NetworkSink::connect(a, NetworkOptions::default()).unwrap())
                    .collect();
                for (i, batch) in chunk.into_iter().enumerate() {
                    sinks[(s + i) % 2].send(batch).unwrap();
                }
            })
        })
        .collect();
    for s in senders {
        s.await.unwrap();
    }
    let ingest_secs = started.elapsed().as_secs_f64();
    let query = Lake::open(&url, options).await.unwrap();
    let counts = query.catalog().counts().await.unwrap();
    let sql = format!(
        "SELECT COUNT(*) FROM log_entries WHERE time >= to_timestamp_nanos({}) \
         AND time < to_timestamp_nanos({})",
        last_minute.0, last_minute.1
    );
    let mut times = Vec::new();
    let mut in_range = 0;
    for _ in 0..2 {
        let t = Instant::now();
        let ctx = query.session().await.unwrap();
        let batches = ctx.sql(&sql).await.unwrap().collect().await.unwrap();
        times.push(t.elapsed().as_secs_f64() * 1000.0);
        in_range = batches[0]
            .column(0)
            .as_any()
            .downcast_ref::<Int64Array>()
            .unwrap()
            .value(0);
    }
    Point {
        processes,
        events: events_per_process * processes as u64,
        ingest_secs,
        counts,
        first_query_ms: times[0],
        second_query_ms: times[1],
        in_range,
    }
}

fn main() {
    let points: Vec<usize> = std::env::var("POINTS")
        .unwrap_or_else(|_| "1000,10000,100000".into())
        .split(',')
        .filter_map(|p| p.trim().parse().ok())
        .collect();
    let dir = std::path::PathBuf::from(std::env::var("DIR").unwrap_or_else(|_| {
        concat!(env!("CARGO_MANIFEST_DIR"), "/../target/bench-fleet").to_owned()
    }));
    std::fs::create_dir_all(&dir).unwrap();
    let template = template();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let repeat: usize = std::env::var("REPEAT")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(1)
        .max(1);
    println!(
        "| processes | events | ingest s | events/s | µs per event | catalog rows per M events \
         | objects per M events | rows in the queried minute | query (1st, materializes) ms \
         | query (2nd) ms |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for n in points {
        // The run with the median ingest time.
        let mut runs: Vec<Point> = (0..repeat)
            .map(|_| runtime.block_on(run(n, &template, &dir)))
            .collect();
        for r in &runs {
            eprintln!(
                "{n} processes: ingest {:.1} s, queries {:.0} / {:.0} ms",
                r.ingest_secs, r.first_query_ms, r.second_query_ms
            );
        }
        runs.sort_by(|a, b| a.ingest_secs.total_cmp(&b.ingest_secs));
        let p = runs.swap_remove(runs.len() / 2);
        let per_m = |name: &str| {
            let rows: i64 = p
                .counts
                .iter()
                .filter(|(t, _)| name == "all" || t == name)
                .map(|(_, n)| n)
                .sum();
            rows as f64 * 1e6 / p.events as f64
        };
        println!(
            "| {} | {} | {:.1} | {:.0} | {:.1} | {:.0} | {:.1} | {} | {:.0} | {:.0} |",
            p.processes,
            p.events,
            p.ingest_secs,
            p.events as f64 / p.ingest_secs,
            p.ingest_secs * 1e6 / p.events as f64,
            per_m("all"),
            per_m("objects"),
            p.in_range,
            p.first_query_ms,
            p.second_query_ms
        );
        eprintln!("catalog rows: {:?}", p.counts);
        std::thread::sleep(Duration::from_millis(100));
    }
}

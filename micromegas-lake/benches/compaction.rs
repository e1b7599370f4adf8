//! Compaction: how long merging the partitions of a past hour takes, and how much memory it
//! needs. A local lake gets SPANS spans of one past hour (traces of 8 spans, 4 attributes
//! each) in PARTITIONS partitions; one compaction pass then merges them. The memory figure is
//! the growth of the process's peak resident size during the pass (its peak is reset just
//! before).
//!
//! With `BACKLOG=1`, it measures materialization instead: the same spans are written as
//! PARTITIONS row blocks first, then one `Lake::materialize` turns that backlog into
//! partitions (as when a query or a restarted collector finds many blocks waiting).
//!
//! `cargo bench -p micromegas-lake --bench compaction` (env: SPANS=2000000, PARTITIONS=40,
//! BACKLOG=0).

use micromegas_lake::catalog::ProcessRow;
use micromegas_lake::row_blocks::RowBlock;
use micromegas_lake::tables::{span_batch, SpanRow};
use micromegas_lake::{Lake, LakeOptions, ViewTable};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn env_or<T: std::str::FromStr>(key: &str, default: T) -> T {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A field of /proc/self/status, in KiB.
fn status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|l| {
            l.strip_prefix(field)?
                .trim()
                .strip_suffix("kB")?
                .trim()
                .parse()
                .ok()
        })
        .unwrap_or(0)
}

/// Resets the peak resident size (VmHWM) to the current one.
fn reset_peak() {
    std::fs::write("/proc/self/clear_refs", "5").expect("reset the peak resident size");
}

const NANOS_PER_HOUR: i64 = 3_600_000_000_000;

fn spans(first: usize, n: usize, hour_start: i64, service: &Arc<str>) -> Vec<SpanRow> {
    let process: Arc<str> = "4b1c5e1e-0000-4000-8000-000000000001".into();
    (first..first + n)
        .map(|i| {
            let trace = i / 8;
            // Spread over the hour, a trace's spans close together.
            let start = hour_start + (i as i64 * 1_000_003) % (NANOS_PER_HOUR - 1_000_000_000);
            SpanRow {
                trace_id: Some(format!(
                    "{:032x}",
                    (trace as u128).wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835)
                )),
                span_id: format!("{:016x}", (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15)),
                parent_span_id: (i % 8 != 0).then(|| {
                    format!(
                        "{:016x}",
                        ((i - 1) as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15)
                    )
                }),
                name: ["GET /users", "SELECT users", "cache.get", "render"][i % 4].to_owned(),
                target: "frontend".to_owned(),
                service_name: service.clone(),
                process_id: process.clone(),
                thread_name: String::new(),
                start_time: start,
                end_time: start + 50_000 + (i as i64 % 997) * 1000,
                kind: "server".to_owned(),
                status_code: "ok".to_owned(),
                status_message: None,
                attributes: vec![
                    ("http.method".to_owned(), "GET".to_owned()),
                    ("http.route".to_owned(), format!("/users/{}", i % 100)),
                    ("http.status_code".to_owned(), "200".to_owned()),
                    (
                        "net.peer.ip".to_owned(),
                        format!("10.0.{}.{}", i % 7, i % 251),
                    ),
                ],
                level: None,
                file: String::new(),
                line: None,
            }
        })
        .collect()
}

#[tokio::main]
async fn main() {
    let total: usize = env_or("SPANS", 2_000_000);
    let partitions: usize = env_or("PARTITIONS", 40);
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("lake");
    let lake = Lake::open(root.to_str().expect("utf-8 path"), LakeOptions::default())
        .await
        .expect("open the lake");
    let now = chrono::Utc::now().timestamp_nanos_opt().expect("time");
    let hour_start = (now / NANOS_PER_HOUR - 48) * NANOS_PER_HOUR;
    let service: Arc<str> = "compaction-bench".into();
    let process = ProcessRow {
        process_id: "4b1c5e1e-0000-4000-8000-000000000001".to_owned(),
        service_name: service.to_string(),
        exe: String::new(),
        username: String::new(),
        hostname: String::new(),
        start_time: hour_start,
        tsc_frequency: 0,
        properties: Vec::new(),
        insert_time: now,
    };
    let backlog = env_or("BACKLOG", 0) == 1;
    let started = Instant::now();
    let per_partition = total.div_ceil(partitions);
    for p in 0..partitions {
        let first = p * per_partition;
        let n = per_partition.min(total.saturating_sub(first));
        let rows = span_batch(&spans(first, n, hour_start, &service)).expect("spans batch");
        let block = RowBlock {
            block_id: uuid::Uuid::new_v4(),
            process: process.clone(),
            table: ViewTable::Spans,
            rows,
        };
        lake.write_row_blocks(&[block]).await.expect("write");
        if !backlog {
            lake.materialize(ViewTable::Spans, None)
                .await
                .expect("materialize");
        }
    }
    let count = |sql: &'static str| {
        let lake = lake.clone();
        async move {
            let ctx = lake.session().await.expect("session");
            let batches = ctx
                .sql(sql)
                .await
                .expect("sql")
                .collect()
                .await
                .expect("run");
            arrow::util::pretty::pretty_format_batches(&batches)
                .expect("format")
                .to_string()
        }
    };
    let parts = "SELECT COUNT(*) AS partitions, SUM(row_count) AS rows, SUM(file_size) AS bytes \
                 FROM partitions WHERE table_name = 'spans'";
    eprintln!(
        "set up {total} spans in {partitions} {} in {:.1?}\n{}",
        if backlog { "row blocks" } else { "partitions" },
        started.elapsed(),
        count(parts).await
    );
    if backlog {
        let rss_before = status_kib("VmRSS:");
        reset_peak();
        let started = Instant::now();
        let report = lake
            .materialize(ViewTable::Spans, None)
            .await
            .expect("materialize");
        let elapsed = started.elapsed();
        let growth = status_kib("VmHWM:").saturating_sub(rss_before);
        eprintln!("{}", count(parts).await);
        println!("| spans | blocks → partitions | time | peak resident growth | per span |");
        println!("|---|---|---|---|---|");
        println!(
            "| {total} | {} → {} | {:.2} s | {} MiB | {} B |",
            report.blocks,
            report.partitions,
            elapsed.as_secs_f64(),
            growth / 1024,
            growth * 1024 / total as u64
        );
        return;
    }

    let rss_before = status_kib("VmRSS:");
    reset_peak();
    let started = Instant::now();
    let report = lake
        .compact_with_grace(Duration::ZERO)
        .await
        .expect("compaction");
    let elapsed = started.elapsed();
    let peak = status_kib("VmHWM:");
    eprintln!("{}", count(parts).await);
    println!("| spans | partitions before → after | time | peak resident growth | per span |");
    println!("|---|---|---|---|---|");
    let growth = peak.saturating_sub(rss_before);
    println!(
        "| {total} | {} → {} | {:.2} s | {} MiB | {} B |",
        report.partitions_replaced,
        report.partitions_written,
        elapsed.as_secs_f64(),
        growth / 1024,
        growth * 1024 / total as u64
    );
}

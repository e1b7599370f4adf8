//! Prints what a directory of batches (written by `DirectorySink`) holds: processes, streams,
//! event counts per kind, span statistics and the last log entries.
//!
//! `cargo run --example dump -- [DIR] [--logs N]` (defaults: `./micromegas-blocks`, 10).

use micromegas_core::model::{ProcessInfo, StreamInfo};
use micromegas_core::read::{decode_block, thread_scopes, Event};
use micromegas_core::sink::DirectorySink;
use micromegas_core::transit::batch::Batch;
use std::collections::BTreeMap;
use std::sync::Arc;

/// A stream's process, its description and its decoded blocks with their sequence numbers.
type StreamBlocks = (Arc<ProcessInfo>, Arc<StreamInfo>, Vec<(u64, Vec<Event>)>);

fn main() {
    let mut dir = "micromegas-blocks".to_owned();
    let mut logs_to_show = 10usize;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--logs" => logs_to_show = args.next().and_then(|n| n.parse().ok()).unwrap_or(10),
            "-h" | "--help" => {
                println!("usage: dump [DIR] [--logs N]");
                return;
            }
            other => dir = other.to_owned(),
        }
    }
    let files = match DirectorySink::read_all(&dir) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("cannot read {dir}: {e} (run the quickstart example first)");
            std::process::exit(1);
        }
    };
    let mut per_stream: BTreeMap<String, StreamBlocks> = BTreeMap::new();
    let mut processes = BTreeMap::new();
    let mut errors = 0;
    for bytes in &files {
        let batch = match Batch::decode(bytes) {
            Ok(b) => b,
            Err(e) => {
                eprintln!("skipping a batch: {e}");
                errors += 1;
                continue;
            }
        };
        processes.insert(batch.process.process_id.to_string(), batch.process.clone());
        for block in &batch.blocks {
            let Some(stream) = batch.stream_of(block) else {
                continue;
            };
            match decode_block(&batch.process, stream, block) {
                Ok(events) => per_stream
                    .entry(stream.stream_id.to_string())
                    .or_insert_with(|| (batch.process.clone(), stream.clone(), vec![]))
                    .2
                    .push((block.header.sequence, events)),
                Err(e) => {
                    eprintln!("skipping block {}: {e}", block.header.block_id);
                    errors += 1;
                }
            }
        }
    }
    for p in processes.values() {
        println!(
            "process {} service={} exe={} host={}",
            p.process_id, p.service_name, p.exe, p.hostname
        );
    }
    let mut logs = Vec::new();
    let mut span_stats: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    let mut measures: BTreeMap<String, (u64, f64)> = BTreeMap::new();
    let freq = processes
        .values()
        .next()
        .map_or(1, |p| p.calibration.ticks_per_second);
    for (process, stream, blocks) in per_stream.values_mut() {
        blocks.sort_by_key(|(seq, _)| *seq);
        let events: Vec<Event> = blocks.drain(..).flat_map(|(_, e)| e).collect();
        let name = format!("{} {}", stream.thread_name, stream.kind.as_str());
        println!("stream {name}: {} events", events.len());
        for s in thread_scopes(process, stream, &events) {
            let e = span_stats.entry(s.name).or_default();
            e.0 += 1;
            e.1 += micromegas_core::time::ticks_to_nanos(s.end_ticks - s.begin_ticks, freq);
        }
        for ev in events {
            match ev {
                Event::Log(l) => logs.push(l),
                Event::Measure(m) => {
                    let e = measures
                        .entry(format!("{} ({})", m.location.name, m.unit))
                        .or_default();
                    e.0 += 1;
                    e.1 += m.value;
                }
                _ => {}
            }
        }
    }
    println!("\nspans: name, count, mean duration");
    for (name, (n, total)) in &span_stats {
        println!(
            "  {name:<20} {n:>8} {:>12.1} µs",
            *total as f64 / *n as f64 / 1000.0
        );
    }
    println!("\nmeasures: name, count, mean");
    for (name, (n, total)) in &measures {
        println!("  {name:<32} {n:>8} {:>14.3}", total / *n as f64);
    }
    logs.sort_by_key(|l| l.time_unix_nanos);
    println!(
        "\nlast {} of {} log entries:",
        logs_to_show.min(logs.len()),
        logs.len()
    );
    for l in logs.iter().rev().take(logs_to_show).rev() {
        let t = l.time_unix_nanos;
        println!(
            "  {}.{:09} {:<5} {} {}",
            t.div_euclid(1_000_000_000),
            t.rem_euclid(1_000_000_000),
            l.level.as_str(),
            l.location.target,
            l.msg
        );
    }
    if errors > 0 {
        eprintln!("{errors} items could not be decoded");
        std::process::exit(2);
    }
}

//! Instruments a small simulated service with the native API for a few seconds and writes
//! what it records into a lake (the embedded sink), ready to query with `micromegas-sql`.
//!
//! `cargo run --release --example quickstart -- [LAKE] [SECONDS]`
//! (defaults: `./micromegas-lake`, 3 s). With `--collector URL` it sends to a running
//! `micromegas-collector` instead (e.g. `--collector http://127.0.0.1:4317`, through the
//! network sink; `MICROMEGAS_AUTH_TOKEN` is its bearer token), and with `--blocks DIR` it
//! writes transit files to a directory (read them with the `dump` example).

use micromegas_core::sink::{DirectorySink, Sink};
use micromegas_core::{fmetric, imetric, info, span_scope, warn};
use micromegas_lake::sink::LakeSink;
use micromegas_lake::LakeOptions;
use micromegas_tracing_layer::network::{NetworkOptions, NetworkSink};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn handle_request(id: u64) {
    span_scope!("handle_request");
    let started = Instant::now();
    {
        span_scope!("parse");
        std::hint::black_box(id.wrapping_mul(2654435761));
    }
    {
        span_scope!("query_db");
        std::thread::sleep(Duration::from_micros(50 + id % 200));
    }
    if id.is_multiple_of(97) {
        warn!(
            "request {} is slow: cache miss on key {}",
            id,
            format!("user:{}", id % 1000)
        );
    } else {
        info!("request {} served", id);
    }
    imetric!("request.duration", "ns", started.elapsed().as_nanos() as u64, "route" => "/api/user");
    fmetric!(
        "cache.hit_ratio",
        "ratio",
        if id.is_multiple_of(97) { 0.0 } else { 1.0 }
    );
}

fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let mode = match args.first().map(String::as_str) {
        Some("--blocks") | Some("--collector") => args.remove(0),
        _ => String::new(),
    };
    let mut args = args.into_iter();
    let default = match mode.as_str() {
        "--blocks" => "micromegas-blocks",
        "--collector" => "http://127.0.0.1:4317",
        _ => micromegas_lake::DEFAULT_LAKE,
    };
    let dir = args.next().unwrap_or_else(|| default.to_owned());
    let seconds: f64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(3.0);
    let sink: Arc<dyn Sink> = match mode.as_str() {
        "--blocks" => match DirectorySink::new(&dir) {
            Ok(s) => Arc::new(s),
            Err(e) => {
                eprintln!("cannot create {dir}: {e}");
                std::process::exit(1);
            }
        },
        "--collector" => {
            let options = NetworkOptions {
                token: std::env::var("MICROMEGAS_AUTH_TOKEN").ok(),
                ..Default::default()
            };
            match NetworkSink::connect(&dir, options) {
                Ok(s) => Arc::new(s),
                Err(e) => {
                    eprintln!("{e}");
                    std::process::exit(1);
                }
            }
        }
        _ => match LakeSink::open(&dir, LakeOptions::default()) {
            Ok(s) => Arc::new(s),
            Err(e) => {
                eprintln!("cannot open the lake at {dir}: {e}");
                std::process::exit(1);
            }
        },
    };
    let options = micromegas_core::Options::default().service_name("quickstart");
    let guard = micromegas_core::init(sink, options).expect("micromegas already initialized");
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    let workers: Vec<_> = (0..4u64)
        .map(|w| {
            std::thread::Builder::new()
                .name(format!("worker-{w}"))
                .spawn(move || {
                    let mut id = w;
                    while Instant::now() < deadline {
                        handle_request(id);
                        id += 4;
                    }
                })
                .expect("spawn worker")
        })
        .collect();
    for w in workers {
        let _ = w.join();
    }
    let stats = guard.shutdown();
    println!(
        "recorded {} events in {} blocks ({} bytes), dropped {}",
        stats.delivered_events,
        stats.delivered_blocks,
        stats.delivered_bytes,
        stats.total_dropped()
    );
    if mode == "--blocks" {
        println!("wrote {dir}; inspect it with: cargo run --example dump -- {dir}");
    } else if mode == "--collector" {
        println!("sent to the collector at {dir}");
    } else {
        println!(
            "wrote the lake {dir}; query it with: cargo run --release -p micromegas-lake \
             --bin micromegas-sql -- --lake {dir} -c \"SELECT level, COUNT(*) FROM log_entries GROUP BY level\""
        );
    }
}

//! Instruments a small simulated service with the native API for a few seconds, writes what
//! it records to a directory in the transit format, then reads it back and prints a summary.
//!
//! `cargo run --release --example quickstart -- [DIR] [SECONDS]`
//! (defaults: `./micromegas-blocks`, 3 s).

use micromegas_core::sink::DirectorySink;
use micromegas_core::{fmetric, imetric, info, span_scope, warn};
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
    let mut args = std::env::args().skip(1);
    let dir = args
        .next()
        .unwrap_or_else(|| "micromegas-blocks".to_owned());
    let seconds: f64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(3.0);
    let sink = match DirectorySink::new(&dir) {
        Ok(s) => Arc::new(s),
        Err(e) => {
            eprintln!("cannot create {dir}: {e}");
            std::process::exit(1);
        }
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
    println!("wrote {dir}; inspect it with: cargo run --example dump -- {dir}");
}

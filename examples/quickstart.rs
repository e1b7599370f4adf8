//! The demo traffic generator: instruments a small simulated service (four routes, slow
//! requests, failures, latency and cache metrics) with the native API for a few seconds and writes
//! what it records into a lake (the embedded sink), ready to query with `micromegas-sql`.
//!
//! `cargo run --release --example quickstart -- [LAKE] [SECONDS]`
//! (defaults: `./micromegas-lake`, 3 s). With `--collector URL` it sends to a running
//! `micromegas-collector` instead (e.g. `--collector http://127.0.0.1:4317`, through the
//! network sink; `MICROMEGAS_AUTH_TOKEN` is its bearer token), and with `--blocks DIR` it
//! writes transit files to a directory (read them with the `dump` example).

use micromegas_core::sink::{DirectorySink, Sink};
use micromegas_core::{error, fmetric, imetric, info, span_scope, warn};
use micromegas_examples::Destination;
use std::sync::Arc;
use std::time::{Duration, Instant};

const ROUTES: [&str; 4] = ["/api/user", "/api/cart", "/api/search", "/api/checkout"];

/// One request: parse, query, and sometimes a slow cache miss or a failure.
fn handle_request(id: u64) {
    span_scope!("handle_request");
    let started = Instant::now();
    let route = ROUTES[(id % 4) as usize];
    {
        span_scope!("parse");
        std::hint::black_box(id.wrapping_mul(2654435761));
    }
    {
        span_scope!("query_db");
        std::thread::sleep(Duration::from_micros(50 + id % 200));
    }
    let status = if id.is_multiple_of(113) {
        error!(
            "request {} on {} failed: upstream timeout after {} ms",
            id, route, 250
        );
        503
    } else if id.is_multiple_of(97) {
        warn!(
            "request {} is slow: cache miss on key {}",
            id,
            format!("user:{}", id % 1000)
        );
        200
    } else {
        info!("request {} served", id);
        200
    };
    imetric!("request.duration", "ns", started.elapsed().as_nanos() as u64, "route" => route, "status" => status);
    fmetric!(
        "cache.hit_ratio",
        "ratio",
        if id.is_multiple_of(97) { 0.0 } else { 1.0 }
    );
}

fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let seconds: f64 = match args.last().and_then(|s| s.parse().ok()) {
        Some(s) if args.len() > 1 || !args[0].starts_with('-') => {
            args.pop();
            s
        }
        _ => 3.0,
    };
    let blocks = args.first().is_some_and(|a| a == "--blocks");
    let (sink, description): (Arc<dyn Sink>, String) = if blocks {
        let dir = args
            .get(1)
            .cloned()
            .unwrap_or_else(|| "micromegas-blocks".to_owned());
        match DirectorySink::new(&dir) {
            Ok(s) => (
                Arc::new(s),
                format!("{dir}; inspect it with: cargo run --example dump -- {dir}"),
            ),
            Err(e) => {
                eprintln!("cannot create {dir}: {e}");
                std::process::exit(1);
            }
        }
    } else {
        let d = Destination::from_args(args);
        (d.sink, d.description)
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
        "recorded {} events in {} blocks ({} bytes), dropped {}; sent to {description}",
        stats.delivered_events,
        stats.delivered_blocks,
        stats.delivered_bytes,
        stats.total_dropped()
    );
}

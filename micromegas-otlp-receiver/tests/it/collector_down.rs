//! Collector down: an app emits a million events through the network sink while its collector
//! is unreachable, then the collector comes up. The app never waits on the network, the
//! blocks it keeps stay within its byte budget, and afterwards every event is either stored or
//! counted as dropped, exactly; with a budget large enough nothing is dropped.
//!
//! The outage lasts `MICROMEGAS_TEST_OUTAGE_SECS` seconds (default 30). The figures printed
//! (per-event cost in the calling thread during the outage and after it) go in RELIABILITY.md.

use crate::common::{rows, serial};
use micromegas_lake::{Lake, LakeOptions};
use micromegas_tracing_layer::network::{NetworkOptions, NetworkSink};
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

const EVENTS: u64 = 1_000_000;
const CHUNK: u64 = 10_000;

struct Outcome {
    stats: micromegas_core::Stats,
    max_pending: u64,
    /// Nanoseconds per event of each chunk emitted while the collector was down / up.
    down_ns: Vec<f64>,
    up_ns: Vec<f64>,
}

/// Emits `EVENTS` logs as the service `service` over `outage`, then starts a collector process
/// on the lake `lake_dir` and waits for the pipeline to deliver what it kept. The collector is
/// a process of its own, so that nothing but the app's events goes through the app's pipeline.
async fn run(service: &'static str, budget: usize, outage: Duration, lake_dir: &Path) -> Outcome {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}");
    let sink = NetworkSink::connect(&url, NetworkOptions::default()).unwrap();
    let options = micromegas_core::Options::default()
        .service_name(service)
        .budget_bytes(budget);
    let emitter = tokio::task::spawn_blocking(move || {
        let _serial = serial();
        let guard = micromegas_core::init(Arc::new(sink), options).unwrap();
        let started = Instant::now();
        let mut max_pending = 0;
        let (mut down_ns, mut up_ns) = (Vec::new(), Vec::new());
        for chunk in 0..EVENTS / CHUNK {
            let t = Instant::now();
            for i in 0..CHUNK {
                micromegas_core::info!("event {} of chunk {}", i, chunk);
            }
            let ns = t.elapsed().as_nanos() as f64 / CHUNK as f64;
            if started.elapsed() < outage {
                down_ns.push(ns);
            } else {
                up_ns.push(ns);
            }
            max_pending = max_pending.max(guard.stats().pending_bytes);
            // Spread the events over the outage and a little after it.
            let pace = outage.mul_f64(1.2) / (EVENTS / CHUNK) as u32;
            std::thread::sleep(pace.saturating_sub(t.elapsed()));
        }
        // Wait (bounded) for what was kept to be delivered, then flush the rest.
        let deadline = Instant::now() + Duration::from_secs(60);
        while guard.stats().pending_bytes > 0 && Instant::now() < deadline {
            max_pending = max_pending.max(guard.stats().pending_bytes);
            std::thread::sleep(Duration::from_millis(50));
        }
        let stats = guard.shutdown();
        (stats, max_pending, down_ns, up_ns)
    });
    tokio::time::sleep(outage).await;
    let mut collector = Command::new(env!("CARGO_BIN_EXE_micromegas-collector"))
        .arg("--lake")
        .arg(lake_dir)
        .args(["--grpc-addr", &format!("127.0.0.1:{port}")])
        .args([
            "--http-addr",
            "127.0.0.1:0",
            "--no-flightsql",
            "--no-self-telemetry",
        ])
        .env_remove("MICROMEGAS_LAKE")
        .spawn()
        .unwrap();
    let (stats, max_pending, down_ns, up_ns) = emitter.await.unwrap();
    Command::new("kill")
        .args(["-TERM", &collector.id().to_string()])
        .status()
        .unwrap();
    assert!(collector.wait().unwrap().success());
    Outcome {
        stats,
        max_pending,
        down_ns,
        up_ns,
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

fn max(v: &[f64]) -> f64 {
    v.iter().copied().fold(0.0, f64::max)
}

/// Stored events of `service`: its log entries and its own metrics.
async fn stored(lake: &Lake, service: &str) -> (u64, u64) {
    let count = |sql: String| {
        let lake = lake.clone();
        async move { rows(&lake, &sql).await[0].parse::<u64>().unwrap() }
    };
    (
        count(format!(
            "SELECT COUNT(*) FROM log_entries WHERE service_name = '{service}'"
        ))
        .await,
        count(format!(
            "SELECT COUNT(*) FROM measures WHERE service_name = '{service}'"
        ))
        .await,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn app_never_waits_and_every_event_is_stored_or_counted() {
    let outage = Duration::from_secs(
        std::env::var("MICROMEGAS_TEST_OUTAGE_SECS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(30),
    );
    let dir = tempfile::tempdir().unwrap();
    let lake_dir = dir.path().join("lake");

    // A budget large enough for the whole outage: nothing is dropped.
    let budget = 64 << 20;
    let a = run("down-large-budget", budget, outage, &lake_dir).await;
    let b_run = run("down-small-budget", 256 << 10, outage / 3, &lake_dir);
    let b = b_run.await;
    let lake = Lake::open(lake_dir.to_str().unwrap(), LakeOptions::default())
        .await
        .unwrap();
    assert_eq!(a.stats.total_dropped(), 0, "{:?}", a.stats);
    assert!(
        a.max_pending > 0 && a.max_pending <= budget as u64,
        "{}",
        a.max_pending
    );
    let (logs, metrics) = stored(&lake, "down-large-budget").await;
    assert_eq!(logs, EVENTS);
    assert_eq!(logs + metrics, a.stats.delivered_events);

    // A budget too small for the outage: drops, each counted; stored + dropped = emitted.
    let small = 256 << 10;
    assert!(b.stats.total_dropped() > 0, "{:?}", b.stats);
    assert!(b.max_pending <= small as u64, "{}", b.max_pending);
    let (logs, metrics) = stored(&lake, "down-small-budget").await;
    assert_eq!(logs + metrics, b.stats.delivered_events);
    assert_eq!(
        EVENTS + b.stats.self_events,
        b.stats.delivered_events + b.stats.total_dropped(),
        "{:?}",
        b.stats
    );
    assert!(logs < EVENTS);

    eprintln!(
        "outage {outage:?}, 1M events: large budget: max kept {} KiB, 0 dropped; per event in the \
         calling thread: median {:.0} ns down / {:.0} ns up, worst chunk {:.0} ns down / {:.0} ns up. \
         Small budget ({} KiB): max kept {} KiB, {} logs stored, {} events dropped ({:?})",
        a.max_pending >> 10,
        median(a.down_ns.clone()),
        median(a.up_ns.clone()),
        max(&a.down_ns),
        max(&a.up_ns),
        small >> 10,
        b.max_pending >> 10,
        logs,
        b.stats.total_dropped(),
        b.stats.dropped,
    );
}

//! Collector down: an app emits a million events through the network sink while its collector
//! is unreachable, then the collector comes up. The app never waits on the network, the
//! blocks it keeps stay within its byte budget, and afterwards every event is either stored or
//! counted as dropped, exactly; with a budget large enough nothing is dropped.
//!
//! The outage lasts `MICROMEGAS_TEST_OUTAGE_SECS` seconds (default 30). The figures printed
//! (per-event cost in the calling thread during the outage and after it) go in RELIABILITY.md.

use crate::common::{collector_command, rows};
use micromegas_lake::{Lake, LakeOptions};
use micromegas_tracing_layer::network::{NetworkOptions, NetworkSink};
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

const EVENTS: u64 = 1_000_000;
const CHUNK: u64 = 10_000;

struct Outcome {
    delivered: u64,
    dropped: u64,
    self_events: u64,
    max_pending: u64,
    /// Nanoseconds per event of each chunk emitted while the collector was down / up.
    down_ns: Vec<f64>,
    up_ns: Vec<f64>,
    /// Drops by reason, as the app reported them.
    drops: String,
}

/// The app: run in a process of its own (this test binary, started again on this ignored
/// test), so that nothing but its events goes through its pipeline. Prints what it saw.
#[test]
#[ignore = "the app process of app_never_waits_and_every_event_is_stored_or_counted"]
fn down_app() {
    let Ok(config) = std::env::var("MICROMEGAS_DOWN_APP") else {
        return;
    };
    let parts: Vec<&str> = config.split(',').collect();
    let [url, service, budget, outage_ms] = parts.as_slice() else {
        panic!("MICROMEGAS_DOWN_APP={config}");
    };
    let outage = Duration::from_millis(outage_ms.parse().unwrap());
    let sink = NetworkSink::connect(url, NetworkOptions::default()).unwrap();
    let options = micromegas_core::Options::default()
        .service_name(*service)
        .budget_bytes(budget.parse().unwrap());
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
    let list = |v: &[f64]| {
        v.iter()
            .map(|x| format!("{x:.0}"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let reasons: Vec<String> = micromegas_core::DropReason::ALL
        .iter()
        .filter(|&&r| stats.dropped(r) > 0)
        .map(|&r| format!("{}={}", r.as_str(), stats.dropped(r)))
        .collect();
    println!(
        "DOWN-APP {} {} {} {max_pending}\nDOWN-NS {}\nUP-NS {}\nDROPS {}",
        stats.delivered_events,
        stats.total_dropped(),
        stats.self_events,
        list(&down_ns),
        list(&up_ns),
        reasons.join(" ")
    );
}

/// Runs the app (emitting `EVENTS` logs as `service` over `outage`) while no collector
/// listens, then starts a collector process on the lake `lake_dir` and waits for the app to
/// deliver what it kept and exit.
async fn run(service: &'static str, budget: usize, outage: Duration, lake_dir: &Path) -> Outcome {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}");
    let app = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "collector_down::down_app",
            "--ignored",
            "--nocapture",
        ])
        .env(
            "MICROMEGAS_DOWN_APP",
            format!("{url},{service},{budget},{}", outage.as_millis()),
        )
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let app = tokio::task::spawn_blocking(move || app.wait_with_output().unwrap());
    tokio::time::sleep(outage).await;
    let mut collector = collector_command(lake_dir, port).spawn().unwrap();
    let out = app.await.unwrap();
    Command::new("kill")
        .args(["-TERM", &collector.id().to_string()])
        .status()
        .unwrap();
    assert!(collector.wait().unwrap().success());
    assert!(out.status.success(), "the app failed");
    let text = String::from_utf8(out.stdout).unwrap();
    let line = |tag: &str| -> Vec<f64> {
        text.lines()
            .find_map(|l| l.strip_prefix(tag))
            .unwrap_or_else(|| panic!("no {tag} in {text}"))
            .split_whitespace()
            .map(|x| x.parse().unwrap())
            .collect()
    };
    let head = line("DOWN-APP ");
    Outcome {
        delivered: head[0] as u64,
        dropped: head[1] as u64,
        self_events: head[2] as u64,
        max_pending: head[3] as u64,
        down_ns: line("DOWN-NS "),
        up_ns: line("UP-NS "),
        drops: text
            .lines()
            .find_map(|l| l.strip_prefix("DROPS"))
            .unwrap_or_default()
            .trim()
            .to_owned(),
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
    assert_eq!(a.dropped, 0, "drops by reason: {}", a.drops);
    assert!(
        a.max_pending > 0 && a.max_pending <= budget as u64,
        "{}",
        a.max_pending
    );
    let (logs, metrics) = stored(&lake, "down-large-budget").await;
    assert_eq!(logs, EVENTS);
    assert_eq!(logs + metrics, a.delivered);

    // A budget too small for the outage: drops, each counted; stored + dropped = emitted.
    let small = 256 << 10;
    assert!(b.dropped > 0);
    assert!(b.max_pending <= small as u64, "{}", b.max_pending);
    let (logs, metrics) = stored(&lake, "down-small-budget").await;
    assert_eq!(logs + metrics, b.delivered);
    assert_eq!(EVENTS + b.self_events, b.delivered + b.dropped);
    assert!(logs < EVENTS);

    eprintln!(
        "outage {outage:?}, 1M events: large budget: max kept {} KiB, 0 dropped; per event in the \
         calling thread: median {:.0} ns down / {:.0} ns up, worst chunk {:.0} ns down / {:.0} ns up. \
         Small budget ({} KiB): max kept {} KiB, {} logs stored, {} events dropped",
        a.max_pending >> 10,
        median(a.down_ns.clone()),
        median(a.up_ns.clone()),
        max(&a.down_ns),
        max(&a.up_ns),
        small >> 10,
        b.max_pending >> 10,
        logs,
        b.dropped,
    );
}

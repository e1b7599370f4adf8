//! The system monitor (one builder call) records the process's and the machine's health as
//! ordinary metrics, which land in `measures` with plausible values, beside the pipeline's
//! own counters.

use crate::common::{rows, serial};
use micromegas_core::sink::MemorySink;
use micromegas_lake::{Lake, LakeOptions};
use micromegas_tracing_layer::MicromegasLayer;
use std::sync::Arc;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn system_metrics_land_in_measures_with_plausible_values() {
    let batches = tokio::task::spawn_blocking(|| {
        let _serial = serial();
        let sink = Arc::new(MemorySink::new());
        let (_layer, guard) = MicromegasLayer::builder()
            .service_name("sysmon")
            .sink(sink.clone())
            .system_monitor(Duration::from_millis(200))
            .build()
            .unwrap();
        // Some work to measure: a few threads and files.
        let files: Vec<_> = (0..5).map(|_| tempfile::tempfile().unwrap()).collect();
        let spin = std::time::Instant::now();
        while spin.elapsed() < Duration::from_millis(900) {
            std::hint::black_box(spin.elapsed());
        }
        drop(files);
        let stats = guard.shutdown();
        assert_eq!(stats.total_dropped(), 0, "{stats:?}");
        sink.batches()
    })
    .await
    .unwrap();
    let lake = Lake::open("memory://", LakeOptions::default())
        .await
        .unwrap();
    lake.write_batches(&batches).await.unwrap();

    let samples = rows(
        &lake,
        "SELECT name, unit, COUNT(*), MIN(value), MAX(value) FROM measures \
         WHERE name LIKE 'process.%' OR name LIKE 'system.%' GROUP BY name, unit ORDER BY name",
    )
    .await;
    let names: Vec<&str> = samples
        .iter()
        .map(|r| r.split('|').next().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "process.cpu_usage",
            "process.open_files",
            "process.resident_memory",
            "process.threads",
            "process.virtual_memory",
            "system.load_average",
            "system.memory_total",
            "system.memory_used",
        ]
    );
    let value = |name: &str, col: usize| -> f64 {
        let row = samples
            .iter()
            .find(|r| r.starts_with(&format!("{name}|")))
            .unwrap();
        row.split('|').nth(col).unwrap().parse().unwrap()
    };
    // Sampled every 200 ms for about a second.
    assert!(value("process.resident_memory", 2) >= 3.0);
    let cpus = std::thread::available_parallelism().unwrap().get() as f64;
    assert!(
        value("process.cpu_usage", 4) > 0.0 && value("process.cpu_usage", 4) <= 100.0 * cpus + 1.0
    );
    assert!(
        value("process.resident_memory", 3) > 1e6 && value("process.resident_memory", 4) < 1e12
    );
    assert!(value("process.virtual_memory", 3) >= value("process.resident_memory", 3));
    assert!(
        value("process.threads", 3) >= 2.0,
        "the test thread and the flusher at least"
    );
    assert!(
        value("process.open_files", 4) >= 8.0,
        "stdio and the five temp files"
    );
    assert!(value("system.memory_total", 3) >= value("system.memory_used", 4));
    assert!(value("system.load_average", 3) >= 0.0);
    // The pipeline's counters, one series per drop reason, all zero here.
    assert_eq!(
        rows(
            &lake,
            "SELECT COUNT(DISTINCT property_get(properties, 'reason')), MAX(value) \
             FROM measures WHERE name = 'micromegas.dropped_events_total'"
        )
        .await,
        ["6|0.0"]
    );
    assert_eq!(
        rows(
            &lake,
            "SELECT COUNT(*) > 0 FROM measures WHERE name = 'micromegas.pending_bytes'"
        )
        .await,
        ["true"]
    );
}

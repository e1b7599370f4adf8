//! The network sink's own work — the `tracing` events of its HTTP/2 client, on the pipeline's
//! flusher thread and on the sink's runtime thread — is not recorded by the app that uses it,
//! even when the app's global subscriber takes every level of every target: otherwise each
//! flush would send the events of the previous one, for ever. A test binary of its own, since
//! it installs a global subscriber.

#[path = "it/common.rs"]
#[allow(dead_code)]
mod common;

use micromegas_lake::{Lake, LakeOptions};
use micromegas_tracing_layer::network::{NetworkOptions, NetworkSink};
use micromegas_tracing_layer::MicromegasLayer;
use std::sync::Arc;
use std::time::Duration;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

#[test]
fn the_network_sink_does_not_record_its_own_work() {
    let dir = tempfile::tempdir().unwrap();
    let lake_dir = dir.path().join("lake");
    let grpc = common::free_port();
    let collector = common::Killed(common::collector_command(&lake_dir, grpc).spawn().unwrap());
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(common::wait_for_port(grpc, 60, "the collector"));

    let url = format!("http://127.0.0.1:{grpc}");
    let sink = NetworkSink::connect(&url, NetworkOptions::default()).unwrap();
    let (layer, guard) = MicromegasLayer::builder()
        .service_name("feedback")
        .sink(Arc::new(sink))
        .flush_period(Duration::from_millis(20))
        .build()
        .unwrap();
    // Every level of every target, h2's and hyper's included.
    tracing_subscriber::registry().with(layer).init();
    tracing::info!("the only event of the app");
    // About fifty flushes, each of which would send what the previous one emitted.
    std::thread::sleep(Duration::from_secs(1));
    let stats = guard.shutdown();
    assert_eq!(stats.total_dropped(), 0, "{stats:?}");
    assert!(stats.delivered_events > 0, "{stats:?}");
    // Everything acknowledged is durable: the collector can go.
    drop(collector);

    let lake = runtime
        .block_on(Lake::open(
            lake_dir.to_str().unwrap(),
            LakeOptions::default(),
        ))
        .unwrap();
    let logs = runtime.block_on(common::rows(
        &lake,
        "SELECT target, msg FROM log_entries WHERE service_name = 'feedback'",
    ));
    assert_eq!(logs, ["sink_feedback|the only event of the app"]);
}

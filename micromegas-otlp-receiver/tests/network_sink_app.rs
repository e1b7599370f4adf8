//! An app's side of the network sink, in a test binary of its own (the pipeline and a
//! `tracing` subscriber are global to the process):
//! - the sink's own work — the `tracing` events of its HTTP/2 client, on the pipeline's flusher
//!   thread and on the sink's runtime thread — is not recorded, even when the app's global
//!   subscriber takes every level of every target: otherwise each flush would send the events
//!   of the previous one, for ever;
//! - the guard can be dropped inside async code (the end of `#[tokio::main] async fn main`),
//!   and events logged there afterwards do no harm: the sink, whose runtime would panic if
//!   dropped there, is let go of on the pipeline's flusher thread.

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
    let _serial = common::serial();
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
    assert_eq!(logs, ["network_sink_app|the only event of the app"]);
}

/// An app's pipeline sending to a collector that is not there (its shutdown gives up quickly).
fn pipeline_to_nowhere(service: &str) -> micromegas_core::Guard {
    let sink = NetworkSink::connect(
        &format!("http://127.0.0.1:{}", common::free_port()),
        NetworkOptions::default(),
    )
    .unwrap();
    let options = micromegas_core::Options::default()
        .service_name(service)
        .shutdown_timeout(Duration::from_millis(300));
    let (_layer, guard) = MicromegasLayer::builder()
        .options(options)
        .sink(Arc::new(sink))
        .build()
        .unwrap();
    guard
}

#[test]
fn the_guard_can_be_dropped_inside_async_code() {
    let _serial = common::serial();
    for runtime in [
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap(),
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap(),
    ] {
        runtime.block_on(async {
            let guard = pipeline_to_nowhere("async-drop");
            micromegas_core::info!("from async code");
            tokio::spawn(async { micromegas_core::info!("from a task") })
                .await
                .unwrap();
            let stats = guard.shutdown();
            // Nothing could be delivered, and that is counted.
            assert!(stats.total_dropped() > 0, "{stats:?}");
            // The threads that logged hold the pipeline's last references: their next event
            // lets go of it, here in async code.
            micromegas_core::info!("after the guard");
            tokio::spawn(async { micromegas_core::info!("from a task, after") })
                .await
                .unwrap();
        });
    }
}

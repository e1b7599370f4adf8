//! An application that already routes `log` through `tracing_log::LogTracer`: records reach
//! MicromegasLayer once, as tracing events, and the log bridge refuses to be installed on top
//! (so a record can never be captured twice or loop between the two).

mod common;

use common::{events, serial, start};
use micromegas_core::read::Event;
use micromegas_tracing_layer::LogBridge;
use tracing_subscriber::layer::SubscriberExt;

#[test]
fn log_records_through_log_tracer_are_captured_once() {
    let _s = serial();
    let (sink, layer, guard) = start();
    tracing_log::LogTracer::init().unwrap();
    assert!(
        LogBridge::install(log::LevelFilter::Trace).is_err(),
        "the bridge must not stack on LogTracer"
    );
    let subscriber = tracing_subscriber::registry().with(layer);
    tracing::subscriber::with_default(subscriber, || {
        log::info!("from log {}", 1);
        tracing::info!("from tracing");
    });
    guard.shutdown();
    let msgs: Vec<_> = events(&sink)
        .into_iter()
        .filter_map(|e| match e {
            Event::Log(l) => Some(l.msg),
            _ => None,
        })
        .collect();
    assert_eq!(msgs, ["from log 1", "from tracing"]);
}

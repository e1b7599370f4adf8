//! Shared by the integration tests: the pipeline is process-wide, so tests take turns.
#![allow(dead_code)]

use micromegas_core::read::{decode_block, Event};
use micromegas_core::sink::MemorySink;
use std::sync::{Arc, Mutex, MutexGuard};

pub fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// Every event the sink received, stream after stream, in block order.
pub fn events(sink: &MemorySink) -> Vec<Event> {
    let mut blocks = Vec::new();
    for batch in sink.batches() {
        for block in &batch.blocks {
            let stream = batch.stream_of(block).unwrap().clone();
            blocks.push((
                stream.stream_id,
                block.header.sequence,
                batch.process.clone(),
                stream,
                block.clone(),
            ));
        }
    }
    blocks.sort_by_key(|(s, q, ..)| (*s, *q));
    blocks
        .into_iter()
        .flat_map(|(_, _, p, s, b)| decode_block(&p, &s, &b).unwrap())
        .collect()
}

pub fn start() -> (
    Arc<MemorySink>,
    micromegas_tracing_layer::MicromegasLayer,
    micromegas_core::Guard,
) {
    let sink = Arc::new(MemorySink::new());
    let (layer, guard) = micromegas_tracing_layer::MicromegasLayer::builder()
        .service_name("layer-test")
        .sink(sink.clone())
        .build()
        .unwrap();
    (sink, layer, guard)
}

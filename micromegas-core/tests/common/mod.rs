//! Helpers shared by the integration tests: decode what a sink received.
#![allow(dead_code)]

use micromegas_core::model::{ProcessInfo, StreamInfo, StreamKind};
use micromegas_core::read::{decode_block, Event};
use micromegas_core::transit::batch::Batch;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use uuid::Uuid;

/// A sink and a running pipeline with `options`, for tests that share the serial lock.
pub fn start(
    options: micromegas_core::Options,
) -> (
    Arc<micromegas_core::sink::MemorySink>,
    micromegas_core::Guard,
) {
    let sink = Arc::new(micromegas_core::sink::MemorySink::new());
    let guard = micromegas_core::init(sink.clone(), options).expect("init");
    (sink, guard)
}

/// Tests of one binary share the process-wide pipeline: run them one at a time.
pub fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// Every stream of the batches, with its events decoded in block order.
pub struct Decoded {
    pub process: Option<Arc<ProcessInfo>>,
    pub streams: BTreeMap<Uuid, (Arc<StreamInfo>, Vec<Event>)>,
}

impl Decoded {
    pub fn of(batches: &[Batch]) -> Self {
        let mut blocks: BTreeMap<Uuid, Vec<(u64, Vec<Event>)>> = BTreeMap::new();
        let mut infos = BTreeMap::new();
        let mut process = None;
        for batch in batches {
            process = Some(batch.process.clone());
            for block in &batch.blocks {
                let stream = batch.stream_of(block).expect("block without stream");
                let events = decode_block(&batch.process, stream, block).expect("decode");
                infos.insert(stream.stream_id, stream.clone());
                blocks
                    .entry(stream.stream_id)
                    .or_default()
                    .push((block.header.sequence, events));
            }
        }
        let streams = blocks
            .into_iter()
            .map(|(id, mut bs)| {
                bs.sort_by_key(|(seq, _)| *seq);
                for (i, (seq, _)) in bs.iter().enumerate() {
                    assert_eq!(*seq, i as u64, "block sequence gap in stream {id}");
                }
                let events = bs.into_iter().flat_map(|(_, e)| e).collect();
                (id, (infos[&id].clone(), events))
            })
            .collect();
        Self { process, streams }
    }

    pub fn of_kind(
        &self,
        kind: StreamKind,
    ) -> impl Iterator<Item = &(Arc<StreamInfo>, Vec<Event>)> {
        self.streams.values().filter(move |(s, _)| s.kind == kind)
    }

    pub fn all_events(&self) -> impl Iterator<Item = &Event> {
        self.streams.values().flat_map(|(_, e)| e.iter())
    }

    /// Messages of every log entry, stream by stream.
    pub fn log_messages(&self) -> Vec<String> {
        self.all_events()
            .filter_map(|e| match e {
                Event::Log(l) => Some(l.msg.clone()),
                _ => None,
            })
            .collect()
    }
}

//! Guard, panic hook, re-initialization and the directory sink.

mod common;

use common::{serial, start, Decoded};
use micromegas_core::sink::{DirectorySink, MemorySink};
use micromegas_core::transit::batch::Batch;
use micromegas_core::{init, InitError, Options};
use std::sync::Arc;
use std::time::Duration;

fn messages(batches: &[Batch]) -> Vec<String> {
    Decoded::of(batches).log_messages()
}

#[test]
fn a_panic_flushes_before_the_thread_dies() {
    let _s = serial();
    let (sink, guard) = start(Options::default().flush_period(Duration::from_secs(3600)));
    let r = std::thread::spawn(|| {
        micromegas_core::info!("about to fail");
        panic!("boom {}", 7);
    })
    .join();
    assert!(r.is_err());
    // No flush, no shutdown: the hook did it.
    let msgs = messages(&sink.batches());
    assert!(msgs.contains(&"about to fail".to_owned()), "{msgs:?}");
    assert!(
        msgs.iter()
            .any(|m| m.starts_with("panic: ") && m.contains("boom 7")),
        "{msgs:?}"
    );
    drop(guard);
}

#[test]
fn init_twice_is_an_error_and_reinit_after_drop_works() {
    let _s = serial();
    let first = Arc::new(MemorySink::new());
    let guard = init(first.clone(), Options::default()).unwrap();
    assert!(matches!(
        init(first.clone(), Options::default()),
        Err(InitError::AlreadyInitialized)
    ));
    // The same thread emits before and after a re-init: each event goes to its own pipeline.
    let (tx, rx) = std::sync::mpsc::channel::<u32>();
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    let worker = std::thread::spawn(move || {
        while let Ok(n) = rx.recv() {
            micromegas_core::info!("event {}", n);
            done_tx.send(()).unwrap();
        }
    });
    tx.send(1).unwrap();
    done_rx.recv().unwrap();
    drop(guard);
    let second = Arc::new(MemorySink::new());
    let guard = init(second.clone(), Options::default()).unwrap();
    tx.send(2).unwrap();
    done_rx.recv().unwrap();
    drop(tx);
    worker.join().unwrap();
    drop(guard);
    assert_eq!(messages(&first.batches()), ["event 1"]);
    assert_eq!(messages(&second.batches()), ["event 2"]);
}

#[test]
fn events_before_init_are_ignored_without_harm() {
    let _s = serial();
    std::thread::spawn(|| micromegas_core::info!("nobody listens"))
        .join()
        .unwrap();
    assert!(micromegas_core::stats().is_none());
}

#[test]
fn directory_sink_writes_decodable_batch_files() {
    let _s = serial();
    let dir = std::env::temp_dir().join(format!("mm-dir-sink-{}", uuid::Uuid::new_v4()));
    let sink = Arc::new(DirectorySink::new(&dir).unwrap());
    let guard = init(sink, Options::default()).unwrap();
    std::thread::spawn(|| {
        for i in 0..1000 {
            micromegas_core::info!("line {}", i);
        }
    })
    .join()
    .unwrap();
    let stats = guard.shutdown();
    let files = DirectorySink::read_all(&dir).unwrap();
    assert!(!files.is_empty());
    let batches: Vec<Batch> = files.iter().map(|f| Batch::decode(f).unwrap()).collect();
    let msgs = messages(&batches);
    assert_eq!(msgs.len(), 1000);
    assert_eq!(msgs[999], "line 999");
    assert_eq!(
        stats.delivered_events,
        batches.iter().map(|b| b.event_count()).sum::<u64>()
    );
    // No temporary file is left behind.
    let leftovers = std::fs::read_dir(&dir)
        .unwrap()
        .flat_map(|d| std::fs::read_dir(d.unwrap().path()).unwrap())
        .filter(|f| {
            f.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".tmp")
        })
        .count();
    assert_eq!(leftovers, 0);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A sink whose own work emits events, as a network client's `tracing` events would.
struct Chatty(Arc<MemorySink>);

impl micromegas_core::sink::Sink for Chatty {
    fn write_batch(&self, batch: &Batch) -> Result<(), micromegas_core::sink::SinkError> {
        micromegas_core::info!("sending a batch");
        micromegas_core::imetric!("sink.batches", "count", 1);
        self.0.write_batch(batch)
    }
    fn flush(&self, _timeout: Duration) -> Result<(), micromegas_core::sink::SinkError> {
        micromegas_core::info!("flushing");
        Ok(())
    }
}

#[test]
fn what_the_sink_and_unrecorded_threads_emit_is_neither_stored_nor_dropped() {
    let _s = serial();
    let memory = Arc::new(MemorySink::new());
    let guard = init(Arc::new(Chatty(memory.clone())), Options::default()).unwrap();
    std::thread::spawn(|| {
        micromegas_core::info!("before");
        micromegas_core::unrecorded(|| micromegas_core::info!("inside unrecorded"));
        micromegas_core::info!("after");
    })
    .join()
    .unwrap();
    std::thread::spawn(|| {
        micromegas_core::unrecorded_thread();
        micromegas_core::info!("on an unrecorded thread");
    })
    .join()
    .unwrap();
    // Several flushes: each would send what the previous one emitted.
    for _ in 0..3 {
        assert!(guard.flush(Duration::from_secs(5)));
    }
    let stats = guard.shutdown();
    assert_eq!(messages(&memory.batches()), ["before", "after"]);
    assert_eq!(stats.total_dropped(), 0, "{stats:?}");
    let names: Vec<String> = Decoded::of(&memory.batches())
        .all_events()
        .filter_map(|e| match e {
            micromegas_core::read::Event::Measure(m) => Some(m.location.name.clone()),
            _ => None,
        })
        .collect();
    assert!(!names.contains(&"sink.batches".to_owned()), "{names:?}");
}

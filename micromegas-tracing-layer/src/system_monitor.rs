//! The system monitor: a background thread that records the process's health as ordinary
//! metrics every period — CPU usage, resident and virtual memory, threads, open file
//! descriptors, the machine's load and memory — with the event pipeline's own counters
//! (bytes waiting for the sink, events dropped by reason) beside them.
//!
//! It reads `/proc` (and the other systems' equivalents) through `sysinfo`, on its own thread,
//! never on the application's. It stops by itself when the pipeline is shut down.

use micromegas_core::{fmetric, imetric, DropReason};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use sysinfo::{Pid, ProcessRefreshKind, ProcessesToUpdate, System};

/// The default sampling period.
pub const DEFAULT_PERIOD: Duration = Duration::from_secs(5);

static RUNNING: AtomicBool = AtomicBool::new(false);

/// Starts the monitor thread, sampling every `period` (the first sample at once) while the
/// pipeline runs. Does nothing if a monitor is already running.
pub fn start(period: Duration) -> std::io::Result<()> {
    if RUNNING.swap(true, Ordering::SeqCst) {
        return Ok(());
    }
    let spawned = std::thread::Builder::new()
        .name("micromegas-sysmon".into())
        .spawn(move || {
            run(period.max(Duration::from_millis(100)));
            RUNNING.store(false, Ordering::SeqCst);
        });
    if spawned.is_err() {
        RUNNING.store(false, Ordering::SeqCst);
    }
    spawned.map(|_| ())
}

fn run(period: Duration) {
    let Ok(pid) = sysinfo::get_current_pid() else {
        return;
    };
    let mut system = System::new();
    let mut next = Instant::now();
    while micromegas_core::stats().is_some() {
        if Instant::now() >= next {
            sample(&mut system, pid);
            next += period;
        }
        // Short naps, so that the thread notices a shutdown soon.
        std::thread::sleep(Duration::from_millis(50).min(period));
    }
}

fn sample(system: &mut System, pid: Pid) {
    let what = ProcessRefreshKind::nothing()
        .with_cpu()
        .with_memory()
        .with_tasks();
    system.refresh_processes_specifics(ProcessesToUpdate::Some(&[pid]), true, what);
    system.refresh_memory();
    if let Some(p) = system.process(pid) {
        fmetric!("process.cpu_usage", "percent", p.cpu_usage());
        imetric!("process.resident_memory", "bytes", p.memory());
        imetric!("process.virtual_memory", "bytes", p.virtual_memory());
        if let Some(tasks) = p.tasks() {
            // The main thread is the process itself, not one of its tasks.
            imetric!("process.threads", "count", tasks.len().max(1));
        }
        if let Some(files) = p.open_files() {
            imetric!("process.open_files", "count", files);
        }
    }
    let load = System::load_average();
    fmetric!("system.load_average", "load", load.one, "window" => "1m");
    fmetric!("system.load_average", "load", load.five, "window" => "5m");
    imetric!("system.memory_used", "bytes", system.used_memory());
    imetric!("system.memory_total", "bytes", system.total_memory());
    if let Some(stats) = micromegas_core::stats() {
        imetric!("micromegas.pending_bytes", "bytes", stats.pending_bytes);
        for reason in DropReason::ALL {
            imetric!(
                "micromegas.dropped_events_total",
                "count",
                stats.dropped(reason),
                "reason" => reason.as_str()
            );
        }
    }
}

//! Samplers: functions the flusher calls before it seals blocks, so that values kept in memory
//! between events (aggregated counters) are written as ordinary events first.

use std::sync::Mutex;

static SAMPLERS: Mutex<Vec<fn()>> = Mutex::new(Vec::new());

/// Registers `sampler`, which the flusher then calls on its own thread before every periodic
/// flush, every explicit [`flush`](crate::flush), and at shutdown (before the last blocks are
/// sealed), for every later [`init`](crate::init) of this process too. A sampler records what
/// it holds with the ordinary event API (for example
/// [`events::metric_u64`](crate::events::metric_u64)); those events travel in the flusher
/// thread's streams. Registering the same function twice calls it twice: register once.
pub fn register_sampler(sampler: fn()) {
    SAMPLERS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(sampler);
}

/// Calls every registered sampler.
pub(super) fn run_samplers() {
    let samplers: Vec<fn()> = SAMPLERS.lock().unwrap_or_else(|e| e.into_inner()).clone();
    for sample in samplers {
        sample();
    }
}

//! A `metrics` 0.24 recorder: counters, gauges and histograms as micromegas metric events.

use metrics::{
    Counter, CounterFn, Gauge, GaugeFn, Histogram, HistogramFn, Key, KeyName, Metadata, Recorder,
    SharedString, Unit,
};
use micromegas_core::events;
use micromegas_core::metadata::{
    encode_dependency, foreign_callsite_id, register_describer, DependencyKind,
};
use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Once, OnceLock};

/// A metric interned at registration: name, unit, kind and labels travel once per block as the
/// dependency of its events.
struct MetricSite {
    name: String,
    unit: String,
    kind: &'static str,
    labels: Vec<(String, String)>,
}

/// # Safety
/// `ptr` must point to a leaked `MetricSite`.
unsafe fn describe_site(ptr: *const (), id: u64, out: &mut Vec<u8>) {
    // SAFETY: per this function's contract, upheld by `MetricSite::id`.
    let s: &MetricSite = unsafe { &*(ptr as *const MetricSite) };
    let labels: Vec<(String, &str)> = s
        .labels
        .iter()
        .map(|(k, v)| (format!("label.{k}"), v.as_str()))
        .collect();
    let mut entries: Vec<(&str, &str)> = vec![
        ("name", &s.name),
        ("unit", &s.unit),
        ("target", "metrics"),
        ("kind", s.kind),
    ];
    entries.extend(labels.iter().map(|(k, v)| (k.as_str(), *v)));
    encode_dependency(out, id, DependencyKind::MetricCallsite, &entries);
}

impl MetricSite {
    /// Interns the metric; `None` if no describer could be registered (255 foreign describers
    /// already exist in this process), in which case the metric is not recorded.
    fn leak(key: &Key, unit: Option<Unit>, kind: &'static str) -> Option<u64> {
        static TAG: OnceLock<u8> = OnceLock::new();
        // SAFETY: `describe_site` reads exactly what is passed below: a leaked `MetricSite`.
        let tag = *TAG.get_or_init(|| unsafe { register_describer(describe_site) }.unwrap_or(0));
        if tag == 0 {
            return None;
        }
        let site: &'static MetricSite = Box::leak(Box::new(MetricSite {
            name: key.name().to_owned(),
            unit: unit
                .map(|u| u.as_canonical_label().to_owned())
                .unwrap_or_default(),
            kind,
            labels: key
                .labels()
                .map(|l| (l.key().to_owned(), l.value().to_owned()))
                .collect(),
        }));
        Some(foreign_callsite_id(
            tag,
            site as *const MetricSite as *const (),
        ))
    }
}

/// A counter's running total. Increments only add to it (one atomic add, no timestamp); the
/// flusher records what was added since its last visit as one event, before each periodic
/// flush, explicit flush and shutdown (see [`sample_counters`]).
struct CounterCell {
    id: u64,
    total: AtomicU64,
}

/// Every counter ever registered, with its total at the last sample, for [`sample_counters`].
/// Cells are leaked like the metric's description: one per registered key and recorder.
static COUNTERS: Mutex<Vec<(&'static CounterCell, u64)>> = Mutex::new(Vec::new());

/// Records, for each counter that moved since the last call, what was added as one metric
/// event. Registered with the core as a sampler, so it runs on the flusher thread before each
/// flush and at shutdown.
fn sample_counters() {
    let mut cells = COUNTERS.lock().unwrap_or_else(|e| e.into_inner());
    for (cell, sampled) in cells.iter_mut() {
        let total = cell.total.load(Ordering::Relaxed);
        if total != *sampled {
            events::metric_u64(cell.id, total.wrapping_sub(*sampled));
            *sampled = total;
        }
    }
}

impl CounterCell {
    fn leak(id: u64) -> &'static CounterCell {
        static SAMPLER: Once = Once::new();
        SAMPLER.call_once(|| micromegas_core::register_sampler(sample_counters));
        let cell: &'static CounterCell = Box::leak(Box::new(CounterCell {
            id,
            total: AtomicU64::new(0),
        }));
        COUNTERS
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((cell, 0));
        cell
    }
}

struct CounterHandle(&'static CounterCell);
impl CounterFn for CounterHandle {
    fn increment(&self, value: u64) {
        self.0.total.fetch_add(value, Ordering::Relaxed);
    }
    fn absolute(&self, value: u64) {
        // A counter never goes down: a lower absolute value is ignored.
        self.0.total.fetch_max(value, Ordering::Relaxed);
    }
}

struct GaugeHandle {
    id: u64,
    value: AtomicU64,
}
impl GaugeHandle {
    fn update(&self, f: impl Fn(f64) -> f64) {
        let mut new = 0.0;
        let _ = self
            .value
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |bits| {
                new = f(f64::from_bits(bits));
                Some(new.to_bits())
            });
        events::metric_f64(self.id, new);
    }
}
impl GaugeFn for GaugeHandle {
    fn increment(&self, value: f64) {
        self.update(|v| v + value);
    }
    fn decrement(&self, value: f64) {
        self.update(|v| v - value);
    }
    fn set(&self, value: f64) {
        self.update(|_| value);
    }
}

struct HistogramHandle(u64);
impl HistogramFn for HistogramHandle {
    fn record(&self, value: f64) {
        // Every sample is kept, so any quantile can be computed exactly at query time.
        events::metric_f64(self.0, value);
    }
}

#[derive(Clone)]
enum Handle {
    Counter(Arc<CounterHandle>),
    Gauge(Arc<GaugeHandle>),
    Histogram(Arc<HistogramHandle>),
    /// The metric could not be interned: its operations do nothing.
    Unrecorded,
}

type Registered = HashMap<(Key, u8), Handle>;

/// Entries of the per-thread handle cache (direct-mapped by the key's precomputed hash).
const HANDLE_WAYS: usize = 64;

thread_local! {
    /// Per-thread cache of registered handles: `counter!` registers its key at every call,
    /// and this answers without a lock.
    static CACHE: RefCell<[Option<(u8, Key, Handle)>; HANDLE_WAYS]> =
        const { RefCell::new([const { None }; HANDLE_WAYS]) };
}

fn handle_way(key: &Key, kind: u8) -> usize {
    let h = (key.get_hash() ^ kind as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    (h >> (64 - HANDLE_WAYS.trailing_zeros())) as usize
}

/// Records `metrics` counters, gauges (resulting values) and histograms (every sample) as
/// micromegas metric events. Keys and labels are interned at registration. A gauge or
/// histogram operation is one append to the calling thread's ring; a counter increment is one
/// atomic add, and the flusher records each counter's growth since its previous visit as one
/// event (kind `counter`, the value is the amount added) before every periodic flush
/// (`flush_period`, 1 s by default), explicit flush and shutdown: `SUM(value)` over a time
/// range is the count in that range. Units given with `describe_*` are kept.
#[derive(Default)]
pub struct MicromegasRecorder {
    units: Mutex<HashMap<String, Unit>>,
    registered: Mutex<Registered>,
}

impl MicromegasRecorder {
    /// A recorder (install it with [`MicromegasRecorder::install`] or
    /// `metrics::set_global_recorder`).
    pub fn new() -> Self {
        Self::default()
    }

    /// Installs a recorder as the global `metrics` recorder.
    pub fn install() -> Result<(), metrics::SetRecorderError<Self>> {
        metrics::set_global_recorder(Self::new())
    }

    fn describe(&self, key: KeyName, unit: Option<Unit>) {
        if let (Some(unit), Ok(mut units)) = (unit, self.units.lock()) {
            units.insert(key.as_str().to_owned(), unit);
        }
    }

    fn handle(&self, key: &Key, kind: u8, make: impl FnOnce(u64) -> Handle) -> Handle {
        let way = handle_way(key, kind);
        let cached = CACHE
            .try_with(|c| match &c.borrow()[way] {
                // `Key`'s equality compares the precomputed hashes first.
                Some((k, cached, h)) if *k == kind && cached == key => Some(h.clone()),
                _ => None,
            })
            .ok()
            .flatten();
        if let Some(h) = cached {
            return h;
        }
        let h = {
            let mut reg = self.registered.lock().unwrap_or_else(|e| e.into_inner());
            reg.entry((key.clone(), kind))
                .or_insert_with(|| {
                    let unit = self
                        .units
                        .lock()
                        .ok()
                        .and_then(|u| u.get(key.name()).copied());
                    let kind_name = match kind {
                        0 => "counter",
                        1 => "gauge",
                        _ => "histogram",
                    };
                    match MetricSite::leak(key, unit, kind_name) {
                        Some(id) => make(id),
                        None => Handle::Unrecorded,
                    }
                })
                .clone()
        };
        // Each thread gets its own `Arc` for counters (over the shared running total) and
        // histograms, so that the reference counting `counter!` does at every call stays on
        // this thread's cache lines. Gauges share theirs (they keep the current value).
        let h = match h {
            Handle::Counter(c) => Handle::Counter(Arc::new(CounterHandle(c.0))),
            Handle::Histogram(c) => Handle::Histogram(Arc::new(HistogramHandle(c.0))),
            shared => shared,
        };
        let _ = CACHE.try_with(|c| c.borrow_mut()[way] = Some((kind, key.clone(), h.clone())));
        h
    }
}

impl Recorder for MicromegasRecorder {
    fn describe_counter(&self, key: KeyName, unit: Option<Unit>, _description: SharedString) {
        self.describe(key, unit);
    }
    fn describe_gauge(&self, key: KeyName, unit: Option<Unit>, _description: SharedString) {
        self.describe(key, unit);
    }
    fn describe_histogram(&self, key: KeyName, unit: Option<Unit>, _description: SharedString) {
        self.describe(key, unit);
    }

    fn register_counter(&self, key: &Key, _metadata: &Metadata<'_>) -> Counter {
        match self.handle(key, 0, |id| {
            Handle::Counter(Arc::new(CounterHandle(CounterCell::leak(id))))
        }) {
            Handle::Counter(c) => Counter::from_arc(c),
            _ => Counter::noop(),
        }
    }

    fn register_gauge(&self, key: &Key, _metadata: &Metadata<'_>) -> Gauge {
        let make = |id| {
            Handle::Gauge(Arc::new(GaugeHandle {
                id,
                value: AtomicU64::new(0f64.to_bits()),
            }))
        };
        match self.handle(key, 1, make) {
            Handle::Gauge(g) => Gauge::from_arc(g),
            _ => Gauge::noop(),
        }
    }

    fn register_histogram(&self, key: &Key, _metadata: &Metadata<'_>) -> Histogram {
        match self.handle(key, 2, |id| {
            Handle::Histogram(Arc::new(HistogramHandle(id)))
        }) {
            Handle::Histogram(h) => Histogram::from_arc(h),
            _ => Histogram::noop(),
        }
    }
}

//! A `metrics` 0.24 recorder: counters, gauges and histograms as micromegas metric events.

use metrics::{
    Counter, CounterFn, Gauge, GaugeFn, Histogram, HistogramFn, Key, KeyName, Metadata, Recorder,
    SharedString, Unit,
};
use micromegas_core::events;
use micromegas_core::metadata::{
    encode_dependency, foreign_callsite_id, CallsiteId, DependencyKind, LazyDescriber,
};
use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Once};

/// A metric interned at registration: name, unit, kind and labels travel once per block as the
/// dependency of its events.
struct MetricSite {
    name: String,
    unit: String,
    kind: &'static str,
    labels: Vec<(String, String)>,
    /// Given with `describe_*`; empty if none.
    description: String,
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
    if !s.description.is_empty() {
        entries.push(("description", &s.description));
    }
    encode_dependency(out, id, DependencyKind::MetricCallsite, &entries);
}

impl MetricSite {
    /// Interns the metric; `None` if no describer could be registered (255 foreign describers
    /// already exist in this process), in which case the metric is not recorded.
    fn leak(key: &Key, described: Described, kind: &'static str) -> Option<CallsiteId> {
        // SAFETY: `describe_site` reads exactly what is passed below: a leaked `MetricSite`.
        static DESCRIBER: LazyDescriber = unsafe { LazyDescriber::new(describe_site) };
        let tag = DESCRIBER.tag()?;
        let site: &'static MetricSite = Box::leak(Box::new(MetricSite {
            name: key.name().to_owned(),
            unit: described
                .unit
                .map(|u| u.as_canonical_label().to_owned())
                .unwrap_or_default(),
            description: described.description,
            kind,
            labels: key
                .labels()
                .map(|l| (l.key().to_owned(), l.value().to_owned()))
                .collect(),
        }));
        let ptr = site as *const MetricSite as *const ();
        // SAFETY: `tag` is the tag of `describe_site`, which reads the leaked `MetricSite` at
        // `ptr`.
        Some(unsafe { foreign_callsite_id(tag, ptr) })
    }
}

/// What `describe_*` said of a metric name: its unit and description, kept with the metric
/// when it is registered (so describe it first, as the `metrics` crate advises).
#[derive(Debug, Clone, Default)]
struct Described {
    unit: Option<Unit>,
    description: String,
}

/// A counter's running total: the sum of [`CounterCell::shared`] and of each per-thread
/// handle's own count. The flusher records what was added since its last visit as one event,
/// before each periodic flush, explicit flush and shutdown (see [`sample_counters`]).
struct CounterCell {
    id: CallsiteId,
    /// Adds made through a handle on a thread other than the one it was made for, raises by
    /// `absolute`, and the counts of the per-thread handles dropped since.
    shared: AtomicU64,
    /// The live per-thread handles of this counter (this list holds one reference of each).
    handles: Mutex<Vec<Arc<CounterHandle>>>,
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
        let total = cell.fold_and_total();
        if total != *sampled {
            events::metric_u64(cell.id, total.wrapping_sub(*sampled));
            *sampled = total;
        }
    }
}

impl CounterCell {
    fn leak(id: CallsiteId) -> &'static CounterCell {
        static SAMPLER: Once = Once::new();
        SAMPLER.call_once(|| micromegas_core::register_sampler(sample_counters));
        let cell: &'static CounterCell = Box::leak(Box::new(CounterCell {
            id,
            shared: AtomicU64::new(0),
            handles: Mutex::new(Vec::new()),
        }));
        COUNTERS
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((cell, 0));
        cell
    }

    fn handles(&self) -> std::sync::MutexGuard<'_, Vec<Arc<CounterHandle>>> {
        self.handles.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The calling thread's handle of this counter: the one it already has if any, else a new
    /// one.
    fn handle_of_this_thread(&'static self) -> Arc<CounterHandle> {
        // A thread whose tag cannot be read (in its teardown) owns nothing: its adds go to the
        // shared total.
        let owner = match thread_tag() {
            0 => NO_THREAD,
            tag => tag,
        };
        let mut handles = self.handles();
        if let Some(h) = handles
            .iter()
            .find(|h| h.owner == owner && owner != NO_THREAD)
        {
            return Arc::clone(h);
        }
        let h = Arc::new(CounterHandle {
            cell: self,
            owner,
            own: AtomicU64::new(0),
        });
        handles.push(Arc::clone(&h));
        h
    }

    /// The running total. The counts of handles nobody holds any more (their thread ended, or
    /// dropped them) move into `shared` and the handles are released.
    fn fold_and_total(&self) -> u64 {
        let mut handles = self.handles();
        handles.retain_mut(|h| match Arc::get_mut(h) {
            // Unique: no other reference exists, so no increment can come any more (and
            // `get_mut` synchronizes with the last one).
            Some(dead) => {
                let own = *dead.own.get_mut();
                self.shared.fetch_add(own, Ordering::Relaxed);
                false
            }
            None => true,
        });
        self.sum(&handles)
    }

    fn sum(&self, handles: &[Arc<CounterHandle>]) -> u64 {
        handles
            .iter()
            .fold(self.shared.load(Ordering::Relaxed), |sum, h| {
                sum.wrapping_add(h.own.load(Ordering::Relaxed))
            })
    }

    /// Raises the total to `value` if it is lower (a counter never goes down). Increments
    /// made meanwhile on other threads are added on top.
    fn raise_to(&self, value: u64) {
        let handles = self.handles();
        let total = self.sum(&handles);
        if value > total {
            self.shared.fetch_add(value - total, Ordering::Relaxed);
        }
    }
}

/// The owner of a handle no thread owns ([`thread_tag`] never gives it).
const NO_THREAD: u64 = u64::MAX;

/// A number for the calling thread, unique in the process and never reused (0 if it cannot
/// be read, during the thread's teardown).
fn thread_tag() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    thread_local! {
        static TAG: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
    }
    TAG.try_with(|t| match t.get() {
        0 => {
            let tag = NEXT.fetch_add(1, Ordering::Relaxed);
            t.set(tag);
            tag
        }
        tag => tag,
    })
    .unwrap_or(0)
}

/// A counter's handle for one thread. That thread adds to `own` with a plain load and store
/// (no locked instruction: it is the only writer); a handle passed to another thread adds
/// there to the counter's shared total, atomically.
struct CounterHandle {
    cell: &'static CounterCell,
    /// The [`thread_tag`] of the thread this handle was made for, or [`NO_THREAD`].
    owner: u64,
    own: AtomicU64,
}

impl CounterFn for CounterHandle {
    #[inline]
    fn increment(&self, value: u64) {
        if thread_tag() == self.owner {
            let own = self.own.load(Ordering::Relaxed);
            self.own.store(own.wrapping_add(value), Ordering::Relaxed);
        } else {
            self.cell.shared.fetch_add(value, Ordering::Relaxed);
        }
    }
    fn absolute(&self, value: u64) {
        self.cell.raise_to(value);
    }
}

struct GaugeHandle {
    id: CallsiteId,
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
        // A plain store: what increments race with is replaced either way, and they retry
        // from the stored value.
        self.value.store(value.to_bits(), Ordering::Relaxed);
        events::metric_f64(self.id, value);
    }
}

struct HistogramHandle(CallsiteId);
impl HistogramFn for HistogramHandle {
    fn record(&self, value: f64) {
        // Every sample is kept, so any quantile can be computed exactly at query time.
        events::metric_f64(self.0, value);
    }
}

/// A metric as registered once per recorder.
#[derive(Clone)]
enum Interned {
    Counter(&'static CounterCell),
    Gauge(Arc<GaugeHandle>),
    Histogram(CallsiteId),
    /// The metric could not be interned: its operations do nothing.
    Unrecorded,
}

/// A metric's handle for the calling thread. Each thread gets its own `Arc` for counters and
/// histograms, so that the reference counting `counter!` does at every call stays on this
/// thread's cache lines; gauges share theirs (they keep the current value).
#[derive(Clone)]
enum Handle {
    Counter(Arc<CounterHandle>),
    Gauge(Arc<GaugeHandle>),
    Histogram(Arc<HistogramHandle>),
    Unrecorded,
}

impl Interned {
    fn handle_of_this_thread(&self) -> Handle {
        match self {
            Interned::Counter(cell) => Handle::Counter(cell.handle_of_this_thread()),
            Interned::Gauge(g) => Handle::Gauge(Arc::clone(g)),
            Interned::Histogram(id) => Handle::Histogram(Arc::new(HistogramHandle(*id))),
            Interned::Unrecorded => Handle::Unrecorded,
        }
    }
}

/// Kinds of metric, as keys of the registry.
const COUNTER: u8 = 0;
const GAUGE: u8 = 1;
const HISTOGRAM: u8 = 2;

/// Default most label sets a metric (one name and kind) gets its own series for; further label
/// sets share the metric's overflow series. 2000, as OpenTelemetry SDKs' default cardinality
/// limit.
pub const DEFAULT_CARDINALITY_LIMIT: usize = 2000;

/// The label of a metric's overflow series, as OpenTelemetry SDKs name it.
pub const OVERFLOW_LABEL: &str = "otel.metric.overflow";

/// The metrics registered with a recorder, per kind (indexed by [`COUNTER`], [`GAUGE`],
/// [`HISTOGRAM`]).
#[derive(Default)]
struct Registered {
    /// Each registered key.
    interned: [HashMap<Key, Interned>; 3],
    /// Label sets registered per metric name (the overflow series not counted).
    series: [HashMap<String, usize>; 3],
}

impl Registered {
    /// The metric of `key`: interned already, else interned now with `intern` if its name has
    /// fewer than `limit` series, else the name's overflow series (label
    /// [`OVERFLOW_LABEL`]` = "true"`), so that memory stays bounded while totals stay exact.
    fn get_or_intern(
        &mut self,
        key: &Key,
        kind: u8,
        limit: usize,
        intern: impl FnOnce(&Key) -> Interned,
    ) -> Interned {
        let (interned, series) = (
            &mut self.interned[kind as usize],
            &mut self.series[kind as usize],
        );
        if let Some(i) = interned.get(key) {
            return i.clone();
        }
        let count = match series.get_mut(key.name()) {
            Some(count) => count,
            None => series.entry(key.name().to_owned()).or_insert(0),
        };
        let key = if *count < limit {
            *count += 1;
            key.clone()
        } else {
            let overflow = vec![metrics::Label::new(OVERFLOW_LABEL, "true")];
            Key::from_parts(key.name().to_owned(), overflow)
        };
        interned.entry(key).or_insert_with_key(intern).clone()
    }
}

/// Entries of the per-thread handle cache (direct-mapped by the key's precomputed hash).
const HANDLE_WAYS: usize = 64;

/// A registered handle in the per-thread cache, with what a lookup compares first: the
/// addresses and lengths of its key's name and labels (those of the static key of a
/// `counter!` with literal strings, which the cached clone shares), so that a hit calls no
/// accessor of the cached key.
struct Cached {
    kind: u8,
    name: (*const u8, usize),
    labels: (*const metrics::Label, usize),
    handle: Handle,
    key: Key,
}

impl Cached {
    fn new(kind: u8, key: Key, handle: Handle) -> Self {
        let (name, labels) = (key.name(), key.labels().as_slice());
        Self {
            kind,
            name: (name.as_ptr(), name.len()),
            labels: (labels.as_ptr(), labels.len()),
            handle,
            key,
        }
    }

    /// Whether this is the handle of `key` (of `kind`): by address first, else by content.
    #[inline]
    fn is_for(&self, key: &Key, kind: u8) -> bool {
        if self.kind != kind || self.key.get_hash() != key.get_hash() {
            return false;
        }
        let (name, labels) = (key.name(), key.labels().as_slice());
        if (name.as_ptr(), name.len()) == self.name
            && (labels.as_ptr(), labels.len()) == self.labels
        {
            return true;
        }
        // A key built at each call, with strings of its own: compare the text (labels in
        // another order only cost a registration, which finds the same series).
        name == self.key.name() && labels == self.key.labels().as_slice()
    }
}

thread_local! {
    /// Per-thread cache of registered handles: `counter!` registers its key at every call,
    /// and this answers without a lock.
    static CACHE: RefCell<[Option<Cached>; HANDLE_WAYS]> =
        const { RefCell::new([const { None }; HANDLE_WAYS]) };
}

fn handle_way(key: &Key, kind: u8) -> usize {
    let h = (key.get_hash() ^ kind as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    (h >> (64 - HANDLE_WAYS.trailing_zeros())) as usize
}

/// Records `metrics` counters, gauges (resulting values) and histograms (every sample) as
/// micromegas metric events. Keys and labels are interned at registration. A gauge or
/// histogram operation is one append to the calling thread's ring; a counter increment adds to
/// the calling thread's count of it (a plain load and store, no locked instruction), and the
/// flusher records each counter's growth since its previous visit as one event (kind
/// `counter`, the value is the amount added) before every periodic flush (`flush_period`, 1 s
/// by default), explicit flush and shutdown: `SUM(value)` over a time range is the count in
/// that range. Units and descriptions given with `describe_*` before a metric is first used
/// are kept (the lake's `unit` column, and the property `otel.description` as for OTLP
/// metrics).
///
/// Each metric name gets its own series for at most [`DEFAULT_CARDINALITY_LIMIT`] label sets
/// per kind (see [`MicromegasRecorder::with_cardinality_limit`]); the values of further label
/// sets go to the name's overflow series, labelled [`OVERFLOW_LABEL`]` = "true"` as in
/// OpenTelemetry SDKs, so that a label with unbounded values (a user id) cannot grow memory
/// without bound, and a counter's total stays exact.
pub struct MicromegasRecorder {
    /// What `describe_*` said of each metric name.
    described: Mutex<HashMap<String, Described>>,
    /// Boxed, so that the recorder stays small (`install` returns it in its error).
    registered: Mutex<Box<Registered>>,
    cardinality_limit: usize,
}

impl Default for MicromegasRecorder {
    fn default() -> Self {
        Self {
            described: Mutex::default(),
            registered: Mutex::default(),
            cardinality_limit: DEFAULT_CARDINALITY_LIMIT,
        }
    }
}

impl MicromegasRecorder {
    /// A recorder (install it with [`MicromegasRecorder::install`] or
    /// `metrics::set_global_recorder`).
    pub fn new() -> Self {
        Self::default()
    }

    /// Gives each metric name its own series for at most `limit` label sets per kind (at
    /// least 1); the values of further label sets go to the name's overflow series.
    pub fn with_cardinality_limit(mut self, limit: usize) -> Self {
        self.cardinality_limit = limit.max(1);
        self
    }

    /// Series per metric name and kind before the overflow series.
    pub fn cardinality_limit(&self) -> usize {
        self.cardinality_limit
    }

    /// Installs a recorder as the global `metrics` recorder.
    pub fn install() -> Result<(), metrics::SetRecorderError<Self>> {
        metrics::set_global_recorder(Self::new())
    }

    fn describe(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        let mut described = self.described.lock().unwrap_or_else(|e| e.into_inner());
        let d = described.entry(key.as_str().to_owned()).or_default();
        d.unit = unit.or(d.unit);
        if !description.is_empty() {
            d.description = description.into_owned();
        }
    }

    /// The facade's handle of `key` (of `kind`), made by `make` from this thread's handle
    /// (which clones only the reference of the one kind it expects).
    #[inline]
    fn handle<T>(&self, key: &Key, kind: u8, make: impl Fn(&Handle) -> T) -> T {
        let way = handle_way(key, kind);
        let cached = CACHE
            .try_with(|c| match &c.borrow()[way] {
                Some(cached) if cached.is_for(key, kind) => Some(make(&cached.handle)),
                _ => None,
            })
            .ok()
            .flatten();
        match cached {
            Some(handle) => handle,
            None => make(&self.register(key, kind, way)),
        }
    }

    /// This thread's handle of `key`, registered in the recorder and kept in the cache.
    #[cold]
    #[inline(never)]
    fn register(&self, key: &Key, kind: u8, way: usize) -> Handle {
        let interned = self
            .registered
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_or_intern(key, kind, self.cardinality_limit, |key| {
                self.intern(key, kind)
            });
        let h = interned.handle_of_this_thread();
        let _ = CACHE
            .try_with(|c| c.borrow_mut()[way] = Some(Cached::new(kind, key.clone(), h.clone())));
        h
    }

    fn intern(&self, key: &Key, kind: u8) -> Interned {
        let described = self
            .described
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(key.name())
            .cloned()
            .unwrap_or_default();
        let kind_name = match kind {
            COUNTER => "counter",
            GAUGE => "gauge",
            _ => "histogram",
        };
        let Some(id) = MetricSite::leak(key, described, kind_name) else {
            return Interned::Unrecorded;
        };
        match kind {
            COUNTER => Interned::Counter(CounterCell::leak(id)),
            GAUGE => Interned::Gauge(Arc::new(GaugeHandle {
                id,
                value: AtomicU64::new(0f64.to_bits()),
            })),
            _ => Interned::Histogram(id),
        }
    }
}

impl Recorder for MicromegasRecorder {
    fn describe_counter(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.describe(key, unit, description);
    }
    fn describe_gauge(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.describe(key, unit, description);
    }
    fn describe_histogram(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.describe(key, unit, description);
    }

    fn register_counter(&self, key: &Key, _metadata: &Metadata<'_>) -> Counter {
        self.handle(key, COUNTER, |h| match h {
            Handle::Counter(c) => Counter::from_arc(Arc::clone(c)),
            _ => Counter::noop(),
        })
    }

    fn register_gauge(&self, key: &Key, _metadata: &Metadata<'_>) -> Gauge {
        self.handle(key, GAUGE, |h| match h {
            Handle::Gauge(g) => Gauge::from_arc(Arc::clone(g)),
            _ => Gauge::noop(),
        })
    }

    fn register_histogram(&self, key: &Key, _metadata: &Metadata<'_>) -> Histogram {
        self.handle(key, HISTOGRAM, |h| match h {
            Handle::Histogram(h) => Histogram::from_arc(Arc::clone(h)),
            _ => Histogram::noop(),
        })
    }
}

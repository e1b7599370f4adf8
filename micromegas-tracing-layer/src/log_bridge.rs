//! A `log::Log` that records `log` records as micromegas log entries.

use log::kv::{self, Key, Value, VisitSource, VisitValue};
use micromegas_core::events::{self, TailWriter};
use micromegas_core::metadata::{Level, LogMetadata};
use std::cell::Cell;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

/// Records `log::Record`s: level, target, module, file, line, message and structured
/// key-values (`log::info!(user = 42; "logged in")`, as properties). A record whose
/// message has no arguments costs a static log (its text travels once per block); otherwise
/// the message is formatted once, in the calling thread, as `log` hands it over. A record
/// made inside a span that [`crate::MicromegasLayer`] saw entered on this thread, or inside a
/// native span (`span_scope!`, `async_span!`), carries the ids of the innermost of those spans
/// and of its trace, as the layer's own events do; an `error!` record there marks that span
/// failed, as an `ERROR` event of `tracing` does.
///
/// Each call site is interned on first use (one small allocation per call site, kept for the
/// life of the process). It must not be combined with `tracing_log::LogTracer`: only one
/// `log` logger can be installed, and [`LogBridge::install`] reports the conflict.
#[derive(Debug)]
pub struct LogBridge {
    max: log::LevelFilter,
}

/// A call site of `log`'s macros: addresses of its static file name, message and target
/// (the target's only when it is provably static: the module path), line and level.
#[derive(Clone, Copy, PartialEq, Eq)]
struct SiteKey {
    file: usize,
    msg: usize,
    target: usize,
    target_len: usize,
    line: u32,
    level: u8,
}

/// Entries of the per-thread call-site cache (direct-mapped).
const SITE_WAYS: usize = 64;

thread_local! {
    static SITES: [Cell<Option<(SiteKey, &'static LogMetadata)>>; SITE_WAYS] =
        const { [const { Cell::new(None) }; SITE_WAYS] };
}

impl SiteKey {
    #[inline(always)]
    fn of(record: &log::Record<'_>, static_msg: Option<&'static str>) -> Option<Self> {
        let file = record.file_static()?;
        let target = record.target();
        let static_target = record
            .module_path_static()
            .is_some_and(|m| std::ptr::eq(m, target));
        Some(Self {
            file: file.as_ptr() as usize,
            msg: static_msg.map_or(0, |m| m.as_ptr() as usize),
            target: if static_target {
                target.as_ptr() as usize
            } else {
                0
            },
            target_len: target.len(),
            line: record.line().unwrap_or(0),
            level: record.level() as u8,
        })
    }

    #[inline(always)]
    fn way(&self) -> usize {
        let h = (self.msg as u64 ^ (self.line as u64) << 32 ^ self.file as u64 ^ self.level as u64)
            .wrapping_mul(0x9E37_79B9_7F4A_7C15);
        (h >> (64 - SITE_WAYS.trailing_zeros())) as usize
    }
}

/// Target, file, line, level and message of a call site.
type SharedKey = (String, String, u32, u8, String);

static SHARED_SITES: Mutex<Option<HashMap<SharedKey, &'static LogMetadata>>> = Mutex::new(None);

fn level_of(level: log::Level) -> Level {
    match level {
        log::Level::Error => Level::Error,
        log::Level::Warn => Level::Warn,
        log::Level::Info => Level::Info,
        log::Level::Debug => Level::Debug,
        log::Level::Trace => Level::Trace,
    }
}

fn leak(s: &str) -> &'static str {
    Box::leak(s.to_owned().into_boxed_str())
}

/// The interned callsite of a record (process-wide, so each site is leaked once).
fn intern(record: &log::Record<'_>, fmt: &str) -> &'static LogMetadata {
    let key = (
        record.target().to_owned(),
        record.file().unwrap_or("").to_owned(),
        record.line().unwrap_or(0),
        record.level() as u8,
        fmt.to_owned(),
    );
    let mut shared = SHARED_SITES.lock().unwrap_or_else(|e| e.into_inner());
    let map = shared.get_or_insert_with(HashMap::new);
    if let Some(m) = map.get(&key) {
        return m;
    }
    let meta: &'static LogMetadata = Box::leak(Box::new(LogMetadata::new(
        level_of(record.level()),
        leak(record.target()),
        leak(fmt),
        leak(record.file().unwrap_or("")),
        record.line().unwrap_or(0),
    )));
    map.insert(key, meta);
    meta
}

impl LogBridge {
    /// A bridge recording records up to `max`.
    pub const fn new(max: log::LevelFilter) -> Self {
        Self { max }
    }

    /// Installs the bridge as the `log` logger and sets `log`'s max level (forgetting that
    /// silently drops everything, since it defaults to `Off`).
    pub fn install(max: log::LevelFilter) -> Result<(), log::SetLoggerError> {
        log::set_boxed_logger(Box::new(Self::new(max)))?;
        log::set_max_level(max);
        Ok(())
    }

    #[inline(always)]
    fn site(record: &log::Record<'_>, static_msg: Option<&'static str>) -> &'static LogMetadata {
        // Records from `log`'s macros carry static file and message pointers: a fast,
        // thread-local key. Others go through the shared map.
        let Some(key) = SiteKey::of(record, static_msg) else {
            return intern(record, static_msg.unwrap_or("{}"));
        };
        let way = key.way();
        if let Some((k, m)) = SITES.with(|s| s[way].get()) {
            // A target that is not provably static is compared by its text.
            if k == key && (key.target != 0 || m.target == record.target()) {
                return m;
            }
        }
        let meta = intern(record, static_msg.unwrap_or("{}"));
        SITES.with(|s| s[way].set(Some((key, meta))));
        meta
    }
}

/// A record with structured key-values (`log::info!(user = 42; "logged in")`): its message as
/// any record's, and each pair as a named value (a property of the log entry), numbers and
/// booleans kept binary. Out of line: records without pairs pay one count.
#[cold]
#[inline(never)]
fn log_with_key_values(record: &log::Record<'_>, meta: &'static LogMetadata, formatted: bool) {
    events::log_args(meta, |w| {
        if formatted {
            w.formatted(None, *record.args());
        }
        let _ = record.key_values().visit(&mut PairWriter(w));
    });
}

/// Writes a record's key-value pairs as named values.
struct PairWriter<'w>(&'w mut TailWriter);

impl<'kvs> VisitSource<'kvs> for PairWriter<'_> {
    fn visit_pair(&mut self, key: Key<'kvs>, value: Value<'kvs>) -> Result<(), kv::Error> {
        value.visit(ValueWriter(self.0, key.as_str()))
    }
}

/// Writes one value under its key: numbers, booleans and strings as they are, anything else
/// through its `Display`.
struct ValueWriter<'w, 'k>(&'w mut TailWriter, &'k str);

impl<'v> VisitValue<'v> for ValueWriter<'_, '_> {
    fn visit_any(&mut self, value: Value<'_>) -> Result<(), kv::Error> {
        self.0.display(Some(self.1), &value);
        Ok(())
    }
    fn visit_u64(&mut self, value: u64) -> Result<(), kv::Error> {
        self.0.u64(Some(self.1), value);
        Ok(())
    }
    fn visit_i64(&mut self, value: i64) -> Result<(), kv::Error> {
        self.0.i64(Some(self.1), value);
        Ok(())
    }
    fn visit_f64(&mut self, value: f64) -> Result<(), kv::Error> {
        self.0.f64(Some(self.1), value);
        Ok(())
    }
    fn visit_bool(&mut self, value: bool) -> Result<(), kv::Error> {
        self.0.bool(Some(self.1), value);
        Ok(())
    }
    fn visit_str(&mut self, value: &str) -> Result<(), kv::Error> {
        self.0.str(Some(self.1), value);
        Ok(())
    }
}

impl log::Log for LogBridge {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() <= self.max
    }

    fn log(&self, record: &log::Record<'_>) {
        if record.level() > self.max {
            return;
        }
        let static_msg = record.args().as_str();
        let meta = Self::site(record, static_msg);
        // The native log path: in a span (of `MicromegasLayer`, which makes its entered spans
        // the thread's, or native), the entry carries the span's and trace's ids.
        if record.key_values().count() > 0 {
            log_with_key_values(record, meta, static_msg.is_none());
        } else if static_msg.is_some() {
            events::log_static(meta);
        } else {
            events::log_args(meta, |w| w.formatted(None, *record.args()));
        }
        if record.level() == log::Level::Error {
            // Marks the innermost span failed, as an `ERROR` event of `tracing` does.
            events::scope_error();
        }
    }

    fn flush(&self) {
        micromegas_core::flush(Duration::from_secs(5));
    }
}

//! A `log::Log` that records `log` records as micromegas log entries.

use crate::fasthash::FastMap;
use micromegas_core::events;
use micromegas_core::metadata::{Level, LogMetadata};
use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

/// Records `log::Record`s: level, target, module, file, line and message. A record whose
/// message has no arguments costs a static log (its text travels once per block); otherwise
/// the message is formatted once, in the calling thread, as `log` hands it over.
///
/// Each call site is interned on first use (one small allocation per call site, kept for the
/// life of the process). It must not be combined with `tracing_log::LogTracer`: only one
/// `log` logger can be installed, and [`LogBridge::install`] reports the conflict.
#[derive(Debug)]
pub struct LogBridge {
    max: log::LevelFilter,
}

type SiteKey = (usize, u32, u8, usize);

thread_local! {
    static SITES: RefCell<FastMap<SiteKey, &'static LogMetadata>> = RefCell::default();
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
    pub fn new(max: log::LevelFilter) -> Self {
        Self { max }
    }

    /// Installs the bridge as the `log` logger and sets `log`'s max level (forgetting that
    /// silently drops everything, since it defaults to `Off`).
    pub fn install(max: log::LevelFilter) -> Result<(), log::SetLoggerError> {
        log::set_boxed_logger(Box::new(Self::new(max)))?;
        log::set_max_level(max);
        Ok(())
    }

    fn site(record: &log::Record<'_>, static_msg: Option<&'static str>) -> &'static LogMetadata {
        // Records from `log`'s macros carry static file and message pointers: a fast,
        // thread-local key. Others go through the shared map.
        let fast_key = record.file_static().map(|f| {
            (
                f.as_ptr() as usize,
                record.line().unwrap_or(0),
                record.level() as u8,
                static_msg.map_or(0, |m| m.as_ptr() as usize),
            )
        });
        if let Some(key) = fast_key {
            if let Ok(Some(m)) = SITES.try_with(|s| s.borrow().get(&key).copied()) {
                return m;
            }
        }
        let meta = intern(record, static_msg.unwrap_or("{}"));
        if let Some(key) = fast_key {
            let _ = SITES.try_with(|s| s.borrow_mut().insert(key, meta));
        }
        meta
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
        if static_msg.is_some() {
            events::log_static(meta);
        } else {
            events::log_args(meta, |w| w.display(None, record.args()));
        }
    }

    fn flush(&self) {
        micromegas_core::flush(Duration::from_secs(5));
    }
}

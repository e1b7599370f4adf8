//! Static callsite metadata. Each macro callsite owns one `static` of these; events refer to it
//! by address, and the flusher sends its content once per block as a dependency.
//!
//! Every metadata struct is `#[repr(C)]` and starts with a [`Describe`] function, so the
//! flusher can describe any callsite from its address alone, whatever crate defined it.

pub use crate::transit::block::{encode_dependency, DependencyKind};
use std::sync::atomic::{AtomicPtr, AtomicU8, Ordering};

/// Writes the dependency describing a callsite. Receives the callsite's address, the id the
/// block's events use for it, and the output buffer.
pub type Describe = unsafe fn(*const (), u64, &mut Vec<u8>);

/// Implemented by callsite metadata that events refer to by address.
///
/// # Safety
/// The type must be `#[repr(C)]` with a [`Describe`] as its first field, and that function
/// must read the callsite as `Self`.
pub unsafe trait Callsite: Sync + 'static {
    /// The id events carry: the callsite's address.
    #[inline(always)]
    fn id(&'static self) -> CallsiteId {
        CallsiteId((self as *const Self).expose_provenance() as u64)
    }
}

/// The id a record carries for its callsite: the address of a native callsite
/// ([`Callsite::id`]), of a foreign one with its describer's tag ([`foreign_callsite_id`]), or
/// a static text ([`static_text_id`]). The flusher reads the callsite through it, so it is only
/// made from values that live for the rest of the process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CallsiteId(u64);

impl CallsiteId {
    /// The id as records carry it.
    #[inline(always)]
    pub fn get(self) -> u64 {
        self.0
    }
}

/// Describers of callsites defined by other crates (for example `tracing::Metadata`), chosen
/// by the top byte of a callsite id; slot 0 is unused (native callsites start with their own
/// [`Describe`]).
static DESCRIBERS: [AtomicPtr<()>; 256] = [const { AtomicPtr::new(std::ptr::null_mut()) }; 256];
static NEXT_DESCRIBER: AtomicU8 = AtomicU8::new(1);
const TAG_SHIFT: u32 = 56;

/// Registers a describer for callsites of a foreign type and returns its tag for
/// [`foreign_callsite_id`]. Call it once per type (at most 255 registrations per process).
///
/// # Safety
/// `describe` must accept the address of any value the caller later passes to
/// [`foreign_callsite_id`] with this tag, and those values must live for `'static`.
pub unsafe fn register_describer(describe: Describe) -> Option<u8> {
    let tag = NEXT_DESCRIBER.fetch_add(1, Ordering::Relaxed);
    if tag == 0 {
        NEXT_DESCRIBER.store(0, Ordering::Relaxed);
        return None;
    }
    DESCRIBERS[tag as usize].store(describe as *mut (), Ordering::Release);
    Some(tag)
}

/// The id events carry for a foreign callsite at `ptr`, described by the describer `tag`.
///
/// # Safety
/// `tag` must come from [`register_describer`], whose describer must accept `ptr`, and the
/// value at `ptr` must live for the rest of the process: the flusher describes it from the id.
#[inline(always)]
pub unsafe fn foreign_callsite_id(tag: u8, ptr: *const ()) -> CallsiteId {
    let addr = ptr.expose_provenance() as u64;
    debug_assert!(
        addr >> TAG_SHIFT == 0,
        "callsite address {addr:#x} uses the tag byte"
    );
    CallsiteId(((tag as u64) << TAG_SHIFT) | addr)
}

/// A describer registered with [`register_describer`] on its first use, in a `static`; its tag
/// is then one atomic load away, as the hot path needs it.
pub struct LazyDescriber {
    describe: Describe,
    /// The tag once registered; 0 before, and after a registration that failed.
    tag: AtomicU8,
    init: std::sync::Once,
}

impl LazyDescriber {
    /// A describer to register on first use.
    ///
    /// # Safety
    /// As for [`register_describer`]: `describe` must accept the address of any value later
    /// passed to [`foreign_callsite_id`] with this describer's tag, and those values must live
    /// for `'static`.
    pub const unsafe fn new(describe: Describe) -> Self {
        Self {
            describe,
            tag: AtomicU8::new(0),
            init: std::sync::Once::new(),
        }
    }

    /// The describer's tag, registering it the first time; `None` if it could not be
    /// registered (255 foreign describers already exist in this process).
    #[inline(always)]
    pub fn tag(&self) -> Option<u8> {
        match self.tag.load(Ordering::Acquire) {
            0 => self.register(),
            t => Some(t),
        }
    }

    #[cold]
    #[inline(never)]
    fn register(&self) -> Option<u8> {
        self.init.call_once(|| {
            // SAFETY: per the contract of `new`.
            let t = unsafe { register_describer(self.describe) }.unwrap_or(0);
            self.tag.store(t, Ordering::Release);
        });
        match self.tag.load(Ordering::Acquire) {
            0 => None,
            t => Some(t),
        }
    }
}

/// Address bits of a static text's id; the length takes the bits above, up to the tag.
const TEXT_ADDR_BITS: u32 = 47;
/// The longest static text an id can name.
const TEXT_MAX_LEN: usize = (1 << (TAG_SHIFT - TEXT_ADDR_BITS)) - 1;

/// Describes a static text from its id: address and length packed by [`static_text_id`].
///
/// # Safety
/// `ptr` must come from [`static_text_id`].
unsafe fn describe_text(ptr: *const (), id: u64, out: &mut Vec<u8>) {
    // Read as u64, so that the shifts hold on any pointer width (ids are only packed where
    // the packed value fits a pointer).
    let packed = ptr.addr() as u64;
    let len = (packed >> TEXT_ADDR_BITS) as usize;
    let start = ptr.with_addr((packed & ((1 << TEXT_ADDR_BITS) - 1)) as usize) as *const u8;
    // SAFETY: `static_text_id` packed the address and length of a `&'static str`: `len`
    // bytes of UTF-8 at `start`, alive for the rest of the process.
    let text = unsafe { std::str::from_utf8_unchecked(std::slice::from_raw_parts(start, len)) };
    encode_dependency(out, id, DependencyKind::Other, &[("text", text)]);
}

/// The describer of static texts.
// SAFETY: `describe_text` reads exactly what `static_text_id` passes with this tag.
static TEXTS: LazyDescriber = unsafe { LazyDescriber::new(describe_text) };

/// The id a record carries for a static text (an event's message without arguments), which
/// the flusher then sends once per block as a dependency with one entry, `text`, instead of
/// the text in every record. `None` if the text is longer than 511 bytes, lies above the
/// 47-bit address space, or no describer could be registered: write it as a value then.
#[inline(always)]
pub fn static_text_id(text: &'static str) -> Option<CallsiteId> {
    let start = text.as_ptr().cast::<()>();
    let addr = start.addr() as u64;
    if text.len() > TEXT_MAX_LEN || addr >> TEXT_ADDR_BITS != 0 {
        return None;
    }
    let tag = TEXTS.tag()?;
    let packed = usize::try_from(addr | (text.len() as u64) << TEXT_ADDR_BITS).ok()?;
    let packed = start.with_addr(packed);
    // SAFETY: the tag's describer, `describe_text`, reads the `&'static str` packed here.
    Some(unsafe { foreign_callsite_id(tag, packed) })
}

/// Describes the callsite at address `addr` as dependency `id`, by calling the [`Describe`]
/// function it starts with or, for a tagged id, its registered describer.
///
/// # Safety
/// `addr` must be the id of a live `'static` value of a type implementing [`Callsite`], or a
/// [`foreign_callsite_id`] honouring the contract of [`register_describer`].
pub(crate) unsafe fn describe_callsite(addr: u64, id: u64, out: &mut Vec<u8>) {
    let tag = (addr >> TAG_SHIFT) as usize;
    if tag != 0 {
        let ptr: *const () =
            std::ptr::with_exposed_provenance((addr & ((1 << TAG_SHIFT) - 1)) as usize);
        let f = DESCRIBERS[tag].load(Ordering::Acquire);
        if !f.is_null() {
            // SAFETY: only `register_describer` stores into DESCRIBERS, and it stores `Describe`
            // function pointers (kept as pointers, with their provenance).
            let describe: Describe = unsafe { std::mem::transmute::<*mut (), Describe>(f) };
            // SAFETY: per the contract of `register_describer`.
            unsafe { describe(ptr, id, out) };
        } else {
            encode_dependency(
                out,
                id,
                DependencyKind::Other,
                &[("name", "unknown callsite")],
            );
        }
        return;
    }
    let ptr: *const () = std::ptr::with_exposed_provenance(addr as usize);
    // SAFETY: per this function's contract `ptr` points to a `#[repr(C)]` callsite whose
    // first field is a `Describe` function pointer.
    let describe = unsafe { *(ptr as *const Describe) };
    // SAFETY: the function was stored by the callsite's own constructor for its own type.
    unsafe { describe(ptr, id, out) }
}

/// Severity of a log entry, ordered from most to least severe.
#[repr(u8)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    /// Unrecoverable failure.
    Fatal = 1,
    /// An error.
    Error = 2,
    /// Something unexpected that is not an error.
    Warn = 3,
    /// Normal operation.
    Info = 4,
    /// Detail for debugging.
    Debug = 5,
    /// Fine-grained detail.
    Trace = 6,
}

impl Level {
    /// `Error` or `Fatal`: a log at this level marks the span it is made in failed.
    #[inline(always)]
    pub const fn is_error(self) -> bool {
        (self as u8) <= (Level::Error as u8)
    }

    /// The upper-case name used in the lake (`INFO`, `WARN`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Fatal => "FATAL",
            Level::Error => "ERROR",
            Level::Warn => "WARN",
            Level::Info => "INFO",
            Level::Debug => "DEBUG",
            Level::Trace => "TRACE",
        }
    }

    /// Parses a level name, case-insensitively (`warning` is accepted for `WARN`).
    pub fn parse(name: &str) -> Option<Level> {
        Some(match name.to_ascii_uppercase().as_str() {
            "FATAL" => Level::Fatal,
            "ERROR" => Level::Error,
            "WARN" | "WARNING" => Level::Warn,
            "INFO" => Level::Info,
            "DEBUG" => Level::Debug,
            "TRACE" => Level::Trace,
            _ => return None,
        })
    }

    /// Inverse of `level as u8`.
    pub fn from_u8(value: u8) -> Option<Level> {
        Some(match value {
            1 => Level::Fatal,
            2 => Level::Error,
            3 => Level::Warn,
            4 => Level::Info,
            5 => Level::Debug,
            6 => Level::Trace,
            _ => return None,
        })
    }

    /// OpenTelemetry severity number of the level (TRACE=1 ... FATAL=21).
    pub fn severity_number(self) -> i32 {
        match self {
            Level::Trace => 1,
            Level::Debug => 5,
            Level::Info => 9,
            Level::Warn => 13,
            Level::Error => 17,
            Level::Fatal => 21,
        }
    }
}

static MAX_LEVEL: AtomicU8 = AtomicU8::new(Level::Info as u8);

/// Sets the most verbose level the native log macros record (default: `Info`).
pub fn set_max_level(level: Level) {
    MAX_LEVEL.store(level as u8, Ordering::Relaxed);
}

/// The most verbose level the native log macros record.
pub fn max_level() -> Level {
    Level::from_u8(MAX_LEVEL.load(Ordering::Relaxed)).unwrap_or(Level::Info)
}

/// True when a log of `level` passes the global filter. One relaxed load.
#[inline(always)]
pub fn level_enabled(level: Level) -> bool {
    level as u8 <= MAX_LEVEL.load(Ordering::Relaxed)
}

/// Where a span scope is declared.
#[repr(C)]
pub struct SpanMetadata {
    /// How the flusher describes this callsite; set by the constructor.
    pub describe: Describe,
    /// Span name.
    pub name: &'static str,
    /// Target, by default the module path.
    pub target: &'static str,
    /// Source file.
    pub file: &'static str,
    /// Source line.
    pub line: u32,
}

/// Where a log statement is declared, with its format string.
#[repr(C)]
pub struct LogMetadata {
    /// How the flusher describes this callsite; set by the constructor.
    pub describe: Describe,
    /// Severity.
    pub level: Level,
    /// Target, by default the module path.
    pub target: &'static str,
    /// The message, or the format string whose `{}` are filled with the stored arguments.
    pub fmt: &'static str,
    /// Source file.
    pub file: &'static str,
    /// Source line.
    pub line: u32,
}

/// Where a metric is declared.
#[repr(C)]
pub struct MetricMetadata {
    /// How the flusher describes this callsite; set by the constructor.
    pub describe: Describe,
    /// Metric name.
    pub name: &'static str,
    /// Unit (`ns`, `bytes`, `count`, ...).
    pub unit: &'static str,
    /// Target, by default the module path.
    pub target: &'static str,
    /// Source file.
    pub file: &'static str,
    /// Source line.
    pub line: u32,
}

impl SpanMetadata {
    /// A span callsite.
    pub const fn new(
        name: &'static str,
        target: &'static str,
        file: &'static str,
        line: u32,
    ) -> Self {
        Self {
            describe: Self::describe_erased,
            name,
            target,
            file,
            line,
        }
    }

    unsafe fn describe_erased(ptr: *const (), id: u64, out: &mut Vec<u8>) {
        // SAFETY: only stored in `Self::describe`, so `ptr` is a `Self`.
        let m = unsafe { &*(ptr as *const Self) };
        let line = m.line.to_string();
        encode_dependency(
            out,
            id,
            DependencyKind::SpanCallsite,
            &[
                ("name", m.name),
                ("target", m.target),
                ("file", m.file),
                ("line", &line),
            ],
        );
    }
}

// SAFETY: `#[repr(C)]` with `describe` first, set to `describe_erased` for `Self`.
unsafe impl Callsite for SpanMetadata {}

impl std::fmt::Debug for SpanMetadata {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpanMetadata")
            .field("target", &self.target)
            .field("file", &self.file)
            .field("line", &self.line)
            .finish()
    }
}

impl LogMetadata {
    /// A log callsite.
    pub const fn new(
        level: Level,
        target: &'static str,
        fmt: &'static str,
        file: &'static str,
        line: u32,
    ) -> Self {
        Self {
            describe: Self::describe_erased,
            level,
            target,
            fmt,
            file,
            line,
        }
    }

    unsafe fn describe_erased(ptr: *const (), id: u64, out: &mut Vec<u8>) {
        // SAFETY: only stored in `Self::describe`, so `ptr` is a `Self`.
        let m = unsafe { &*(ptr as *const Self) };
        let line = m.line.to_string();
        encode_dependency(
            out,
            id,
            DependencyKind::LogCallsite,
            &[
                ("level", m.level.as_str()),
                ("target", m.target),
                ("fmt", m.fmt),
                ("file", m.file),
                ("line", &line),
            ],
        );
    }
}

// SAFETY: `#[repr(C)]` with `describe` first, set to `describe_erased` for `Self`.
unsafe impl Callsite for LogMetadata {}

impl std::fmt::Debug for LogMetadata {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogMetadata")
            .field("target", &self.target)
            .field("file", &self.file)
            .field("line", &self.line)
            .finish()
    }
}

impl MetricMetadata {
    /// A metric callsite.
    pub const fn new(
        name: &'static str,
        unit: &'static str,
        target: &'static str,
        file: &'static str,
        line: u32,
    ) -> Self {
        Self {
            describe: Self::describe_erased,
            name,
            unit,
            target,
            file,
            line,
        }
    }

    unsafe fn describe_erased(ptr: *const (), id: u64, out: &mut Vec<u8>) {
        // SAFETY: only stored in `Self::describe`, so `ptr` is a `Self`.
        let m = unsafe { &*(ptr as *const Self) };
        let line = m.line.to_string();
        encode_dependency(
            out,
            id,
            DependencyKind::MetricCallsite,
            &[
                ("name", m.name),
                ("unit", m.unit),
                ("target", m.target),
                ("file", m.file),
                ("line", &line),
            ],
        );
    }
}

// SAFETY: `#[repr(C)]` with `describe` first, set to `describe_erased` for `Self`.
unsafe impl Callsite for MetricMetadata {}

impl std::fmt::Debug for MetricMetadata {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetricMetadata")
            .field("target", &self.target)
            .field("file", &self.file)
            .field("line", &self.line)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn described(id: CallsiteId) -> Vec<u8> {
        let mut out = Vec::new();
        // SAFETY: `id` comes from `static_text_id`.
        unsafe { describe_callsite(id.get(), 7, &mut out) };
        out
    }

    #[test]
    fn a_static_text_is_described_from_its_id_alone() {
        let text: &'static str = "request done";
        let id = static_text_id(text).expect("an id");
        let mut expected = Vec::new();
        encode_dependency(&mut expected, 7, DependencyKind::Other, &[("text", text)]);
        assert_eq!(described(id), expected);
        // Other texts have other ids, even of the same length; the empty text has one too.
        assert_ne!(static_text_id("request made"), Some(id));
        assert_ne!(static_text_id("request"), Some(id));
        let mut empty = Vec::new();
        encode_dependency(&mut empty, 7, DependencyKind::Other, &[("text", "")]);
        assert_eq!(described(static_text_id("").expect("an id")), empty);
    }

    #[test]
    fn texts_longer_than_an_id_can_name_have_none() {
        static LONGEST: [u8; TEXT_MAX_LEN] = [b'x'; TEXT_MAX_LEN];
        static LONGER: [u8; TEXT_MAX_LEN + 1] = [b'x'; TEXT_MAX_LEN + 1];
        let longest = std::str::from_utf8(&LONGEST).expect("UTF-8");
        let id = static_text_id(longest).expect("an id");
        let mut expected = Vec::new();
        encode_dependency(
            &mut expected,
            7,
            DependencyKind::Other,
            &[("text", longest)],
        );
        assert_eq!(described(id), expected);
        let longer = std::str::from_utf8(&LONGER).expect("UTF-8");
        assert_eq!(static_text_id(longer), None);
    }
}

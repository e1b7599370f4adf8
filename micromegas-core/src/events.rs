//! The functions the native macros call: one per event kind. Each reads the tick counter and
//! appends one record to the calling thread's ring.

use crate::dispatch::local::{next_span_id, write_variable, write_words};
use crate::metadata::{Callsite, CallsiteId, LogMetadata, MetricMetadata, SpanMetadata};
use crate::model::StreamKind;
use crate::transit::layout::native::*;
use crate::transit::values::{KEYED, TAG_BOOL, TAG_F64, TAG_I64, TAG_STR, TAG_TRUNCATED, TAG_U64};
use std::fmt;

/// Largest record with a tail (log with arguments, metric with properties), in bytes.
pub const MAX_VARIABLE_RECORD: usize = 4096;

#[inline(always)]
unsafe fn put_u64(dst: *mut u8, offset: usize, v: u64) {
    // SAFETY: the caller reserved at least `offset + 8` bytes at `dst`.
    unsafe { std::ptr::write_unaligned(dst.add(offset) as *mut [u8; 8], v.to_le_bytes()) };
}

/// Records the beginning of a synchronous scope on this thread; returns the thread's innermost
/// and outermost scopes before it, for [`end_scope`].
#[inline(always)]
pub fn begin_scope(meta: &'static SpanMetadata) -> (u64, u64) {
    let current = crate::spans::current();
    let ticks = crate::time::now();
    if current.async_span == 0 {
        write_words(StreamKind::Spans, BEGIN_SCOPE, [meta.id().get(), ticks]);
    } else {
        // Inside an async span's poll: the scope's parent is that span (the reader takes it
        // for the outermost scope of the poll only).
        write_words(
            StreamKind::Spans,
            BEGIN_SCOPE_IN_ASYNC,
            [
                meta.id().get(),
                ticks,
                current.async_span,
                current.async_trace[0],
                current.async_trace[1],
            ],
        );
    }
    let root = if current.scope == 0 && current.async_span == 0 {
        ticks
    } else {
        current.root
    };
    crate::spans::set_scopes((ticks, root));
    (current.scope, current.root)
}

/// Records the end of a synchronous scope on this thread; `outer` is what [`begin_scope`]
/// returned.
#[inline(always)]
pub fn end_scope(meta: &'static SpanMetadata, outer: (u64, u64)) {
    write_words(
        StreamKind::Spans,
        END_SCOPE,
        [meta.id().get(), crate::time::now()],
    );
    crate::spans::set_scopes(outer);
}

/// Records the beginning of an async span under `parent` (0 for a root) of trace
/// `parent_trace`; returns its id and its trace (its own id for a root).
#[inline]
pub fn begin_async(meta: &'static SpanMetadata, parent: u64, parent_trace: u128) -> (u64, u128) {
    let id = next_span_id();
    let trace = if parent == 0 { id.into() } else { parent_trace };
    let ticks = crate::time::now();
    write_words(
        StreamKind::Spans,
        BEGIN_ASYNC,
        [
            meta.id().get(),
            ticks,
            id,
            parent,
            trace as u64,
            (trace >> 64) as u64,
        ],
    );
    (id, trace)
}

/// Records the end of an async span.
#[inline]
pub fn end_async(meta: &'static SpanMetadata, span_id: u64, parent_span_id: u64) {
    let ticks = crate::time::now();
    write_words(
        StreamKind::Spans,
        END_ASYNC,
        [meta.id().get(), ticks, span_id, parent_span_id],
    );
}

/// Records a log entry whose message is the callsite's static text, in the native span the
/// thread is in, if any.
#[inline(always)]
pub fn log_static(meta: &'static LogMetadata) {
    let c = crate::spans::current();
    let ticks = crate::time::now();
    if c.is_none() {
        write_words(StreamKind::Logs, LOG_STATIC, [meta.id().get(), ticks]);
    } else if c.async_span == 0 {
        write_words(
            StreamKind::Logs,
            LOG_STATIC_IN_SPAN,
            [meta.id().get(), ticks, c.scope, c.root],
        );
    } else {
        let [low, high] = c.async_trace;
        write_words(
            StreamKind::Logs,
            LOG_STATIC_IN_ASYNC,
            [meta.id().get(), ticks, c.scope, c.async_span, low, high],
        );
    }
}

/// Marks the innermost native span of this thread failed (an `error!` or `fatal!` was logged in
/// it): the scope open on this thread, or the async span being polled. Out of line: only error
/// logs pay it.
#[cold]
#[inline(never)]
pub fn scope_error() {
    let span = crate::spans::current_async_span();
    write_words(StreamKind::Spans, SCOPE_ERROR, [crate::time::now(), span]);
}

/// Records a log entry with arguments, stored binary by `args` and formatted when read, in the
/// native span the thread is in, if any.
#[inline(always)]
pub fn log_args(meta: &'static LogMetadata, args: impl FnOnce(&mut TailWriter)) {
    let c = crate::spans::current();
    if c.is_none() {
        variable(StreamKind::Logs, LOG_ARGS, [meta.id().get(), 0], 1, args);
    } else if c.async_span == 0 {
        let words = [meta.id().get(), 0, c.scope, c.root];
        variable(StreamKind::Logs, LOG_ARGS_IN_SPAN, words, 1, args);
    } else {
        let [low, high] = c.async_trace;
        let words = [meta.id().get(), 0, c.scope, c.async_span, low, high];
        variable(StreamKind::Logs, LOG_ARGS_IN_ASYNC, words, 1, args);
    }
}

/// Records an integer metric value.
#[inline(always)]
pub fn int_metric(meta: &'static MetricMetadata, value: u64) {
    write_words(
        StreamKind::Metrics,
        INT_METRIC,
        [meta.id().get(), crate::time::now(), value],
    );
}

/// Records a float metric value.
#[inline(always)]
pub fn float_metric(meta: &'static MetricMetadata, value: f64) {
    let ticks = crate::time::now();
    write_words(
        StreamKind::Metrics,
        FLOAT_METRIC,
        [meta.id().get(), ticks, value.to_bits()],
    );
}

/// Records an integer metric value with properties written by `props`.
#[inline]
pub fn int_metric_props(
    meta: &'static MetricMetadata,
    value: u64,
    props: impl FnOnce(&mut TailWriter),
) {
    variable(
        StreamKind::Metrics,
        INT_METRIC_PROPS,
        [meta.id().get(), 0, value],
        1,
        props,
    );
}

/// Records a float metric value with properties written by `props`.
#[inline]
pub fn float_metric_props(
    meta: &'static MetricMetadata,
    value: f64,
    props: impl FnOnce(&mut TailWriter),
) {
    variable(
        StreamKind::Metrics,
        FLOAT_METRIC_PROPS,
        [meta.id().get(), 0, value.to_bits()],
        1,
        props,
    );
}

/// Writes a record of `W` words followed by a tail. `ticks_at` is the index of the word that
/// receives the tick count, read here rather than by the caller.
#[inline(always)]
fn variable<const W: usize>(
    kind: StreamKind,
    ty: u8,
    words: [u64; W],
    ticks_at: usize,
    tail: impl FnOnce(&mut TailWriter),
) {
    variable_with_text(kind, ty, words, ticks_at, None, tail)
}

/// [`variable`], where word `text_at`, if given, may be replaced by the tail's writer with the
/// id of the record's static message ([`TailWriter::static_message`]).
#[inline(always)]
fn variable_with_text<const W: usize>(
    kind: StreamKind,
    ty: u8,
    mut words: [u64; W],
    ticks_at: usize,
    text_at: Option<usize>,
    tail: impl FnOnce(&mut TailWriter),
) {
    words[ticks_at] = crate::time::now();
    let fixed = 1 + 8 * W;
    write_variable(kind, MAX_VARIABLE_RECORD, fixed, |dst| {
        // SAFETY: `write_variable` hands MAX_VARIABLE_RECORD writable bytes, more than the
        // fixed part (at most 1 + 8 * 6) and the 2-byte tail length.
        unsafe {
            *dst = ty;
            for (i, w) in words.iter().enumerate() {
                put_u64(dst, 1 + 8 * i, *w);
            }
        }
        let mut w = TailWriter {
            // SAFETY: in bounds, see above.
            ptr: unsafe { dst.add(fixed + 2) },
            len: 0,
            cap: MAX_VARIABLE_RECORD - fixed - 2,
            truncated: false,
            index: None,
            // SAFETY: word `i < W` lies inside the fixed part written above.
            text_slot: text_at.map_or(std::ptr::null_mut(), |i| unsafe { dst.add(1 + 8 * i) }),
        };
        tail(&mut w);
        let len = w.finish();
        // SAFETY: the length slot is inside the reserved bytes.
        unsafe {
            std::ptr::write_unaligned(dst.add(fixed) as *mut [u8; 2], (len as u16).to_le_bytes())
        };
        fixed + 2 + len
    });
}

/// Records an integer value of the metric callsite `meta` (a [`Callsite::id`] or
/// [`crate::metadata::foreign_callsite_id`]).
#[inline(always)]
pub fn metric_u64(meta: CallsiteId, value: u64) {
    write_words(
        StreamKind::Metrics,
        INT_METRIC,
        [meta.get(), crate::time::now(), value],
    );
}

/// Records a float value of the metric callsite `meta`.
#[inline(always)]
pub fn metric_f64(meta: CallsiteId, value: f64) {
    write_words(
        StreamKind::Metrics,
        FLOAT_METRIC,
        [meta.get(), crate::time::now(), value.to_bits()],
    );
}

/// A fresh process-unique span id (never 0), for spans created outside the native macros.
#[inline]
pub fn new_span_id() -> u64 {
    next_span_id()
}

/// Records the creation of a span with an id. `meta` is a callsite id ([`Callsite::id`] or
/// [`crate::metadata::foreign_callsite_id`]); `fields` writes the span's fields.
#[inline]
pub fn span_new(
    meta: CallsiteId,
    span_id: u64,
    parent_span_id: u64,
    trace_id: u128,
    fields: impl FnOnce(&mut TailWriter),
) {
    variable(
        StreamKind::Spans,
        SPAN_NEW,
        [
            meta.get(),
            0,
            span_id,
            parent_span_id,
            trace_id as u64,
            (trace_id >> 64) as u64,
        ],
        1,
        fields,
    );
}

/// The field a span is given (true) when an event of level `ERROR` happens in it: the lake
/// then reports the span's `status_code` as `ERROR`, as `tracing-opentelemetry` does, unless its
/// `otel.status_code` field is `ok`.
pub const ERROR_EVENT_FIELD: &str = "otel.error_event";

/// Records fields added to a span after its creation (`meta` is the span's callsite, or that of
/// the event that added them).
#[inline]
pub fn span_record(meta: CallsiteId, span_id: u64, fields: impl FnOnce(&mut TailWriter)) {
    variable(
        StreamKind::Spans,
        SPAN_RECORD,
        [meta.get(), 0, span_id],
        1,
        fields,
    );
}

/// Records that this thread enters a span.
#[inline(always)]
pub fn span_enter(span_id: u64) {
    write_words(StreamKind::Spans, SPAN_ENTER, [span_id, crate::time::now()]);
}

/// Records that this thread exits a span; returns the ticks recorded (give the last of them
/// to [`span_close_ended`]).
#[inline(always)]
pub fn span_exit(span_id: u64) -> u64 {
    let ticks = crate::time::now();
    write_words(StreamKind::Spans, SPAN_EXIT, [span_id, ticks]);
    ticks
}

/// Records that a span is closed, and ends now: for a span never exited.
#[inline(always)]
pub fn span_close(span_id: u64) {
    write_words(StreamKind::Spans, SPAN_CLOSE, [span_id, crate::time::now()]);
}

/// Records that a span is closed, having ended at its last exit, whose ticks
/// [`span_exit`] returned: the work of a span ends when it is last exited, not when the last
/// handle to it goes (a span kept by a finished task's handle, or by a struct, does not look
/// longer than its work). Reads no clock.
#[inline(always)]
pub fn span_close_ended(span_id: u64, end_ticks: u64) {
    write_words(StreamKind::Spans, SPAN_CLOSE_ENDED, [span_id, end_ticks]);
}

/// Records that `span_id` follows from `follows_span_id`.
#[inline]
pub fn span_follows(span_id: u64, follows_span_id: u64) {
    let ticks = crate::time::now();
    write_words(
        StreamKind::Spans,
        SPAN_FOLLOWS,
        [span_id, ticks, follows_span_id],
    );
}

/// Records a log entry with fields, in span `span_id` of trace `trace_id` (0 for none).
#[inline]
pub fn log_fields(
    meta: CallsiteId,
    span_id: u64,
    trace_id: u128,
    fields: impl FnOnce(&mut TailWriter),
) {
    let (low, high) = (trace_id as u64, (trace_id >> 64) as u64);
    match crate::metadata::static_text_id("") {
        Some(none) => variable_with_text(
            StreamKind::Logs,
            LOG_FIELDS_TEXT,
            [meta.get(), 0, span_id, low, high, none.get()],
            1,
            Some(5),
            fields,
        ),
        None => variable(
            StreamKind::Logs,
            LOG_FIELDS,
            [meta.get(), 0, span_id, low, high],
            1,
            fields,
        ),
    }
}

/// Appends tagged values to the tail of the record being written. Values that do not fit are
/// replaced by one truncation marker.
pub struct TailWriter {
    ptr: *mut u8,
    len: usize,
    cap: usize,
    truncated: bool,
    /// Field index that keys the next value, set by [`TailWriter::field`].
    index: Option<u8>,
    /// The fixed word that names the record's static message, for records that have one
    /// ([`log_fields`]); null otherwise.
    text_slot: *mut u8,
}

impl TailWriter {
    /// Room for `n` more bytes, keeping one for the truncation marker.
    #[inline(always)]
    fn room(&mut self, n: usize) -> Option<*mut u8> {
        if self.truncated || self.len + n + 1 > self.cap {
            self.truncated = true;
            return None;
        }
        // SAFETY: len + n < cap, inside the reserved record.
        let p = unsafe { self.ptr.add(self.len) };
        self.len += n;
        Some(p)
    }

    /// Makes `text` the record's message by reference, so that the text travels once per
    /// block rather than in each record: for records of [`log_fields`], when the text can be
    /// named ([`crate::metadata::static_text_id`]). Returns `false`, writing nothing, otherwise:
    /// write the message as a value then.
    #[inline(always)]
    pub fn static_message(&mut self, text: &'static str) -> bool {
        if self.text_slot.is_null() {
            return false;
        }
        match crate::metadata::static_text_id(text) {
            Some(id) => {
                // SAFETY: `text_slot` is a fixed word of the record being written.
                unsafe { put_u64(self.text_slot, 0, id.get()) };
                true
            }
            None => false,
        }
    }

    /// Keys the next value by its index in the callsite's field list instead of a name.
    #[inline(always)]
    pub fn field(&mut self, index: u8) -> &mut Self {
        self.index = Some(index);
        self
    }

    #[inline(always)]
    fn tag_key(&mut self, tag: u8, key: Option<&str>, value_len: usize) -> Option<*mut u8> {
        if let Some(i) = self.index.take() {
            let p = self.room(2 + value_len)?;
            // SAFETY: `room` reserved 2 + value_len bytes at `p`.
            unsafe {
                *p = tag | crate::transit::values::KEY_INDEX;
                *p.add(1) = i;
                return Some(p.add(2));
            }
        }
        let key = key.map(|k| crate::transit::wire::truncate_str(k, 255));
        let klen = key.map_or(0, |k| 1 + k.len());
        let p = self.room(1 + klen + value_len)?;
        // SAFETY: `room` reserved 1 + klen + value_len bytes at `p`.
        unsafe {
            match key {
                Some(k) => {
                    *p = tag | KEYED;
                    *p.add(1) = k.len() as u8;
                    std::ptr::copy_nonoverlapping(k.as_ptr(), p.add(2), k.len());
                }
                None => *p = tag,
            }
            Some(p.add(1 + klen))
        }
    }

    /// A signed integer.
    #[inline(always)]
    pub fn i64(&mut self, key: Option<&str>, v: i64) {
        if let Some(p) = self.tag_key(TAG_I64, key, 8) {
            // SAFETY: 8 bytes reserved.
            unsafe { put_u64(p, 0, v as u64) };
        }
    }
    /// An unsigned integer.
    #[inline(always)]
    pub fn u64(&mut self, key: Option<&str>, v: u64) {
        if let Some(p) = self.tag_key(TAG_U64, key, 8) {
            // SAFETY: 8 bytes reserved.
            unsafe { put_u64(p, 0, v) };
        }
    }
    /// A float.
    #[inline(always)]
    pub fn f64(&mut self, key: Option<&str>, v: f64) {
        if let Some(p) = self.tag_key(TAG_F64, key, 8) {
            // SAFETY: 8 bytes reserved.
            unsafe { put_u64(p, 0, v.to_bits()) };
        }
    }
    /// A boolean.
    #[inline(always)]
    pub fn bool(&mut self, key: Option<&str>, v: bool) {
        if let Some(p) = self.tag_key(TAG_BOOL, key, 1) {
            // SAFETY: 1 byte reserved.
            unsafe { *p = v as u8 };
        }
    }
    /// A string, cut at a char boundary if it does not fit.
    #[inline(always)]
    pub fn str(&mut self, key: Option<&str>, v: &str) {
        let klen = key.map_or(0, |k| 1 + k.len().min(255));
        let avail = self.cap.saturating_sub(self.len + 1 + klen + 2 + 1);
        let s = crate::transit::wire::truncate_str(v, avail);
        if let Some(p) = self.tag_key(TAG_STR, key, 2 + s.len()) {
            // SAFETY: 2 + s.len() bytes reserved.
            unsafe {
                std::ptr::write_unaligned(p as *mut [u8; 2], (s.len() as u16).to_le_bytes());
                copy_bytes(s.as_bytes(), p.add(2));
            }
            if s.len() < v.len() {
                self.truncated = true;
            }
        }
    }
    /// A value formatted with `Display` now (the fallback for types that are not primitive).
    pub fn display(&mut self, key: Option<&str>, v: &dyn fmt::Display) {
        self.formatted(key, format_args!("{v}"))
    }

    /// A value formatted with `Debug` now (for values that offer nothing else).
    pub fn debug(&mut self, key: Option<&str>, v: &dyn fmt::Debug) {
        self.formatted(key, format_args!("{v:?}"))
    }

    /// The text of `args`, as a string value.
    pub fn formatted(&mut self, key: Option<&str>, args: fmt::Arguments<'_>) {
        let Some(p) = self.tag_key(TAG_STR, key, 2) else {
            return;
        };
        let start = self.len;
        let mut out = DisplayWriter {
            w: self,
            cut: false,
        };
        let _ = fmt::write(&mut out, args);
        let cut = out.cut;
        let n = self.len - start;
        // SAFETY: `p` is the 2-byte length slot reserved above.
        unsafe { std::ptr::write_unaligned(p as *mut [u8; 2], (n as u16).to_le_bytes()) };
        if cut {
            self.truncated = true;
        }
    }

    /// Writes the truncation marker if needed; returns the tail length.
    fn finish(mut self) -> usize {
        if self.truncated {
            // SAFETY: `room` always keeps one byte free for this marker.
            unsafe { *self.ptr.add(self.len) = TAG_TRUNCATED };
            self.len += 1;
            self.truncated = false;
        }
        self.len
    }
}

/// Copies `src` to `dst`; strings of up to 16 bytes (most messages' words, keys and values)
/// with two overlapping loads and stores instead of a call to `memcpy`.
///
/// # Safety
/// `dst` must be valid for `src.len()` bytes of writes and not overlap `src`.
#[inline(always)]
unsafe fn copy_bytes(src: &[u8], dst: *mut u8) {
    let n = src.len();
    let s = src.as_ptr();
    // SAFETY (all arms): reads stay inside `src` (offsets + widths <= n), writes inside the
    // `n` bytes at `dst` (caller contract); unaligned accesses are used throughout.
    unsafe {
        if (8..=16).contains(&n) {
            let a = std::ptr::read_unaligned(s as *const u64);
            let b = std::ptr::read_unaligned(s.add(n - 8) as *const u64);
            std::ptr::write_unaligned(dst as *mut u64, a);
            std::ptr::write_unaligned(dst.add(n - 8) as *mut u64, b);
        } else if (4..8).contains(&n) {
            let a = std::ptr::read_unaligned(s as *const u32);
            let b = std::ptr::read_unaligned(s.add(n - 4) as *const u32);
            std::ptr::write_unaligned(dst as *mut u32, a);
            std::ptr::write_unaligned(dst.add(n - 4) as *mut u32, b);
        } else if n < 4 {
            for i in 0..n {
                *dst.add(i) = *s.add(i);
            }
        } else {
            std::ptr::copy_nonoverlapping(s, dst, n);
        }
    }
}

struct DisplayWriter<'a> {
    w: &'a mut TailWriter,
    cut: bool,
}

impl fmt::Write for DisplayWriter<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        if self.cut {
            return Ok(());
        }
        let avail = self.w.cap.saturating_sub(self.w.len + 1);
        let part = crate::transit::wire::truncate_str(s, avail.min(u16::MAX as usize));
        // SAFETY: len + part.len() < cap, inside the reserved record.
        unsafe { copy_bytes(part.as_bytes(), self.w.ptr.add(self.w.len)) };
        self.w.len += part.len();
        if part.len() < s.len() {
            self.cut = true;
        }
        Ok(())
    }
}

/// Wraps a macro argument so that primitive types are stored binary and anything else falls
/// back to `Display` (method resolution picks [`EncodeArg`] before [`EncodeArgDisplay`]).
#[doc(hidden)]
pub struct ArgWrap<'a, T: ?Sized>(pub &'a T);

/// Stores a primitive argument binary.
#[doc(hidden)]
pub trait EncodeArg {
    fn encode_arg(&self, key: Option<&str>, w: &mut TailWriter);
}

/// Stores any `Display` argument as its formatted text.
#[doc(hidden)]
pub trait EncodeArgDisplay {
    fn encode_arg(&self, key: Option<&str>, w: &mut TailWriter);
}

impl<T: fmt::Display + ?Sized> EncodeArgDisplay for &ArgWrap<'_, T> {
    #[inline]
    fn encode_arg(&self, key: Option<&str>, w: &mut TailWriter) {
        w.display(key, &self.0)
    }
}

macro_rules! encode_prim {
    ($method:ident as $as:ty: $($t:ty),*) => {$(
        impl EncodeArg for ArgWrap<'_, $t> {
            #[inline(always)]
            fn encode_arg(&self, key: Option<&str>, w: &mut TailWriter) { w.$method(key, *self.0 as $as) }
        }
        impl EncodeArg for ArgWrap<'_, &$t> {
            #[inline(always)]
            fn encode_arg(&self, key: Option<&str>, w: &mut TailWriter) { w.$method(key, **self.0 as $as) }
        }
    )*};
}
encode_prim!(i64 as i64: i8, i16, i32, i64, isize);
encode_prim!(u64 as u64: u8, u16, u32, u64, usize);
encode_prim!(f64 as f64: f32, f64);

impl EncodeArg for ArgWrap<'_, bool> {
    #[inline(always)]
    fn encode_arg(&self, key: Option<&str>, w: &mut TailWriter) {
        w.bool(key, *self.0)
    }
}
impl EncodeArg for ArgWrap<'_, str> {
    #[inline(always)]
    fn encode_arg(&self, key: Option<&str>, w: &mut TailWriter) {
        w.str(key, self.0)
    }
}
impl EncodeArg for ArgWrap<'_, &str> {
    #[inline(always)]
    fn encode_arg(&self, key: Option<&str>, w: &mut TailWriter) {
        w.str(key, self.0)
    }
}
impl EncodeArg for ArgWrap<'_, String> {
    #[inline(always)]
    fn encode_arg(&self, key: Option<&str>, w: &mut TailWriter) {
        w.str(key, self.0)
    }
}
impl EncodeArg for ArgWrap<'_, &String> {
    #[inline(always)]
    fn encode_arg(&self, key: Option<&str>, w: &mut TailWriter) {
        w.str(key, self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::copy_bytes;

    #[test]
    fn copy_bytes_copies_every_length_exactly() {
        let src: Vec<u8> = (1..=40).collect();
        for n in 0..=src.len() {
            let mut dst = vec![0u8; n + 2];
            // SAFETY: `dst` has n + 2 bytes, a separate allocation.
            unsafe { copy_bytes(&src[..n], dst.as_mut_ptr().add(1)) };
            assert_eq!(dst[0], 0);
            assert_eq!(&dst[1..=n], &src[..n]);
            assert_eq!(dst[n + 1], 0, "wrote past {n} bytes");
        }
    }
}

//! Field values stored binary: numbers stay numbers, strings are copied, and only values that
//! offer nothing but `Debug` are formatted in the calling thread. Fields are keyed by their
//! index in the callsite's field set, so their names travel once per block.

use micromegas_core::events::TailWriter;
use std::fmt;
use tracing_core::field::{Field, Visit};

pub(crate) struct FieldWriter<'a>(pub(crate) &'a mut TailWriter);

impl FieldWriter<'_> {
    #[inline]
    fn key<'f>(&mut self, field: &'f Field) -> Option<&'f str> {
        match u8::try_from(field.index()) {
            Ok(i) => {
                self.0.field(i);
                None
            }
            Err(_) => Some(field.name()),
        }
    }
}

impl Visit for FieldWriter<'_> {
    fn record_f64(&mut self, field: &Field, value: f64) {
        let key = self.key(field);
        self.0.f64(key, value);
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        let key = self.key(field);
        self.0.i64(key, value);
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        let key = self.key(field);
        self.0.u64(key, value);
    }
    fn record_i128(&mut self, field: &Field, value: i128) {
        match i64::try_from(value) {
            Ok(v) => self.record_i64(field, v),
            Err(_) => self.record_debug(field, &value),
        }
    }
    fn record_u128(&mut self, field: &Field, value: u128) {
        match u64::try_from(value) {
            Ok(v) => self.record_u64(field, v),
            Err(_) => self.record_debug(field, &value),
        }
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        let key = self.key(field);
        self.0.bool(key, value);
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        let key = self.key(field);
        self.0.str(key, value);
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        let key = self.key(field);
        self.0.display(key, &value);
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        match as_arguments(field, value) {
            // A message without arguments: an event's names its static text, which travels once
            // per block; elsewhere the text is copied. Neither is formatted.
            Some(args) => match args.as_str() {
                Some(text) if field.name() == "message" && self.0.static_message(text) => {}
                Some(text) => {
                    let key = self.key(field);
                    self.0.str(key, text)
                }
                None => {
                    let key = self.key(field);
                    self.0.formatted(key, *args)
                }
            },
            None => {
                let key = self.key(field);
                self.0.debug(key, value)
            }
        }
    }
}

/// `value` as the `fmt::Arguments` it is, when it is one: `tracing` hands an event's message
/// (`format_args!`) to `record_debug` as `&dyn Debug`. Recognized by its vtable, compared to
/// the one `tracing` uses (see [`arguments_vtable`]); vtables are not always unique to a type,
/// so a copy made elsewhere is not recognized, and the value is then formatted through
/// `Debug`, like any other.
#[inline(always)]
fn as_arguments<'a>(field: &Field, value: &'a dyn fmt::Debug) -> Option<&'a fmt::Arguments<'a>> {
    let ptr = value as *const dyn fmt::Debug;
    let probe = arguments_vtable(field)?.0.with_addr(ptr.addr());
    #[allow(ambiguous_wide_pointer_comparisons)]
    let same = std::ptr::eq(ptr, probe);
    // SAFETY: equal vtables mean the value's `Debug` is the one `tracing` made for
    // `fmt::Arguments`. A vtable holds the type's size, alignment, drop and `fmt` functions; a
    // vtable shared with another type would need that type's `fmt` to be the very function of
    // `fmt::Arguments` (identical code folded into one), reading its value as an
    // `fmt::Arguments`. `ptr` is then the address of a live `fmt::Arguments`, borrowed for `'a`
    // like `value`.
    same.then(|| unsafe { &*(ptr as *const fmt::Arguments<'a>) })
}

/// A pointer whose vtable is the one `tracing` gives an `fmt::Arguments` seen as `Debug`.
#[derive(Clone, Copy)]
struct ArgumentsVtable(*const (dyn fmt::Debug + 'static));
// SAFETY: only the vtable is ever used, never the address.
unsafe impl Send for ArgumentsVtable {}
// SAFETY: as above.
unsafe impl Sync for ArgumentsVtable {}

/// The vtable `tracing` uses for messages, captured the first time by recording a message
/// through `tracing`'s own `Value` implementation (with any field: only the vtable is kept).
#[inline(always)]
fn arguments_vtable(field: &Field) -> Option<ArgumentsVtable> {
    static VTABLE: std::sync::OnceLock<Option<ArgumentsVtable>> = std::sync::OnceLock::new();
    *VTABLE.get_or_init(|| {
        struct Capture(Option<ArgumentsVtable>);
        impl Visit for Capture {
            fn record_debug(&mut self, _: &Field, value: &dyn fmt::Debug) {
                let ptr = value as *const dyn fmt::Debug;
                // SAFETY: only the lifetime bound changes; the address is never used.
                let ptr: *const (dyn fmt::Debug + 'static) = unsafe { std::mem::transmute(ptr) };
                self.0 = Some(ArgumentsVtable(ptr));
            }
        }
        let mut capture = Capture(None);
        let message: &dyn tracing_core::field::Value = &format_args!("message");
        message.record(field, &mut capture);
        capture.0
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing_core::field::Value;

    /// What `record_debug` receives: whether it took it for `fmt::Arguments`, and its text.
    struct Probe(Vec<(bool, String)>);
    impl Visit for Probe {
        fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
            let text = match as_arguments(field, value) {
                Some(args) => (true, args.to_string()),
                None => (false, format!("{value:?}")),
            };
            self.0.push(text);
        }
    }

    #[test]
    fn messages_are_recognized_and_other_debug_values_are_not() {
        use tracing_core::Callsite;
        let callsite = tracing::callsite! {
            name: "probe",
            kind: tracing::metadata::Kind::EVENT,
            fields: message
        };
        let field = callsite.metadata().fields().field("message").unwrap();
        let mut probe = Probe(Vec::new());
        let n = 42;
        let displayed = format!("displayed {n}");
        let values: [&dyn Value; 5] = [
            &format_args!("static text"),
            &format_args!("n = {n}"),
            &tracing::field::debug(()),
            &tracing::field::debug("a str"),
            &tracing::field::display(&displayed),
        ];
        for v in values {
            v.record(&field, &mut probe);
        }
        // Miri makes a new vtable at every coercion: nothing is recognized there, which is the
        // documented fallback (formatted through `Debug`, same text).
        let recognized = !cfg!(miri);
        let expected = [
            (recognized, "static text"),
            (recognized, "n = 42"),
            (false, "()"),
            (false, "\"a str\""),
            (false, "displayed 42"),
        ];
        let got: Vec<(bool, &str)> = probe.0.iter().map(|(a, t)| (*a, t.as_str())).collect();
        assert_eq!(got, expected);
    }
}

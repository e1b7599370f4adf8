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
        let key = self.key(field);
        self.0.debug(key, value);
    }
}

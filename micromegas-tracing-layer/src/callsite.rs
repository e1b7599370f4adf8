//! `tracing` callsites as micromegas dependencies: events carry the address of the callsite's
//! `&'static Metadata`, tagged so that the flusher describes it with [`describe_metadata`],
//! once per block. Nothing is copied or looked up per event.

use micromegas_core::metadata::{
    encode_dependency, foreign_callsite_id, CallsiteId, DependencyKind, LazyDescriber,
};
use tracing_core::{Level, Metadata};

/// Level names as the lake spells them.
pub(crate) fn level_name(level: &Level) -> &'static str {
    match *level {
        Level::ERROR => "ERROR",
        Level::WARN => "WARN",
        Level::INFO => "INFO",
        Level::DEBUG => "DEBUG",
        Level::TRACE => "TRACE",
    }
}

/// Writes the dependency of a `tracing` callsite.
///
/// # Safety
/// `ptr` must point to a `Metadata<'static>` that lives for the rest of the process.
unsafe fn describe_metadata(ptr: *const (), id: u64, out: &mut Vec<u8>) {
    // SAFETY: per this function's contract, upheld by `metadata_id`.
    let m: &Metadata<'static> = unsafe { &*(ptr as *const Metadata<'static>) };
    let fields: Vec<&str> = m.fields().iter().map(|f| f.name()).collect();
    let fields = fields.join(",");
    let line = m.line().map(|l| l.to_string()).unwrap_or_default();
    let kind = if m.is_span() {
        DependencyKind::SpanCallsite
    } else {
        DependencyKind::LogCallsite
    };
    encode_dependency(
        out,
        id,
        kind,
        &[
            ("name", m.name()),
            ("target", m.target()),
            ("level", level_name(m.level())),
            ("file", m.file().unwrap_or("")),
            ("line", &line),
            ("module", m.module_path().unwrap_or("")),
            ("fields", &fields),
        ],
    );
}

/// The describer of `tracing` callsites.
// SAFETY: `describe_metadata` reads exactly what `metadata_id` passes: the address of a
// `&'static Metadata<'static>`.
static DESCRIBER: LazyDescriber = unsafe { LazyDescriber::new(describe_metadata) };

/// The callsite id events carry for `metadata`, or `None` if no describer could be
/// registered (255 foreign describers already exist in this process): events are then not
/// recorded rather than mislabelled.
#[inline]
pub(crate) fn metadata_id(metadata: &'static Metadata<'static>) -> Option<CallsiteId> {
    let t = DESCRIBER.tag()?;
    let ptr = metadata as *const Metadata<'static> as *const ();
    // SAFETY: `t` is the tag of `describe_metadata`, which reads a `Metadata<'static>` at `ptr`,
    // and `metadata` lives for `'static`.
    Some(unsafe { foreign_callsite_id(t, ptr) })
}

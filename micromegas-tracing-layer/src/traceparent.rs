//! W3C trace context (`traceparent`): read from a span field as the remote parent of a root
//! span, and written for the current span so that a service called next continues the trace.

use tracing_core::field::{Field, Visit};
use tracing_core::span::Attributes;

/// Name of the field read.
pub const FIELD: &str = "traceparent";

/// The remote parent span id and trace id of a span with a valid `traceparent` field.
pub fn remote_parent(attrs: &Attributes<'_>) -> Option<(u64, u128)> {
    attrs.metadata().fields().field(FIELD)?;
    let mut v = Find(None);
    attrs.record(&mut v);
    parse(v.0.as_deref()?)
}

struct Find(Option<String>);

impl Visit for Find {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == FIELD {
            self.0 = Some(value.to_owned());
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == FIELD {
            self.0 = Some(format!("{value:?}").trim_matches('"').to_owned());
        }
    }
}

/// Parses `version-traceid-parentid-flags` (W3C Trace Context, level 1). All-zero ids and the
/// invalid version `ff` are refused; later versions are read by their first four fields.
pub fn parse(header: &str) -> Option<(u64, u128)> {
    let mut parts = header.trim().split('-');
    let (version, trace, parent, flags) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    let hex = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_hexdigit());
    if !hex(version, 2) || version.eq_ignore_ascii_case("ff") || !hex(flags, 2) {
        return None;
    }
    if version == "00" && parts.next().is_some() {
        return None;
    }
    if !hex(trace, 32) || !hex(parent, 16) {
        return None;
    }
    let trace = u128::from_str_radix(trace, 16).ok()?;
    let parent = u64::from_str_radix(parent, 16).ok()?;
    (trace != 0 && parent != 0).then_some((parent, trace))
}

/// The W3C `traceparent` of this thread's current span: the innermost span that
/// [`crate::MicromegasLayer`] saw entered on this thread (an instrumented future's span while
/// it is polled), or a native span begun in it or outside any (`span_scope!`, `async_span!`).
/// Send it with an outgoing request (the `traceparent` HTTP header, or gRPC
/// metadata) so that the service called, instrumented with OpenTelemetry or with micromegas,
/// continues the trace: its spans then have this span as parent, in the same trace. `None`
/// outside any span.
///
/// ```
/// # fn send(_: &str, _: Option<(&str, String)>) {}
/// let header = micromegas_tracing_layer::current_traceparent();
/// send("https://inventory.internal/reserve", header.map(|h| ("traceparent", h)));
/// ```
pub fn current() -> Option<String> {
    let (span_id, trace_id) = micromegas_core::spans::innermost_span()?;
    Some(format(trace_id, span_id))
}

/// `00-<trace id>-<span id>-01` (version 0, sampled).
fn format(trace_id: u128, span_id: u64) -> String {
    format!("00-{trace_id:032x}-{span_id:016x}-01")
}

#[cfg(test)]
mod tests {
    use super::{format, parse};

    #[test]
    fn a_written_header_reads_back() {
        let header = format(0x4bf92f3577b34da6a3ce929d0e0e4736, 0x00f067aa0ba902b7);
        assert_eq!(
            header,
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        );
        assert_eq!(
            parse(&header),
            Some((0x00f067aa0ba902b7, 0x4bf92f3577b34da6a3ce929d0e0e4736))
        );
        // A native root span's trace id is its 64-bit span id.
        assert_eq!(
            format(7, 7),
            "00-00000000000000000000000000000007-0000000000000007-01"
        );
    }

    #[test]
    fn parses_valid_and_refuses_invalid_headers() {
        assert_eq!(
            parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
            Some((0x00f067aa0ba902b7, 0x4bf92f3577b34da6a3ce929d0e0e4736))
        );
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00-4bf92f3577b34da6a3ce929d0e0e473x-00f067aa0ba902b7-01",
        ] {
            assert_eq!(parse(bad), None, "{bad}");
        }
        assert!(parse("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-future").is_some());
    }
}

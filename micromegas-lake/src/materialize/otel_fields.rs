//! The span fields that `tracing-opentelemetry` gives a meaning to, read the same way for
//! native spans: an app that moves from tracing-opentelemetry to `MicromegasLayer` (or uses
//! both) keeps its span names, kinds and statuses in the `spans` table's columns, where OTLP
//! spans have theirs.
//!
//! | field | column | values |
//! |---|---|---|
//! | `otel.name` | `name` (instead of the callsite's) | any text |
//! | `otel.kind` | `kind` | `server`, `client`, `producer`, `consumer`, `internal` (any case) |
//! | `otel.status_code` | `status_code` | `ok`, `error`, `unset` (any case) |
//! | `otel.status_description` (or `otel.status_message`) | `status_message`; the status is `ERROR` unless `otel.status_code` is `ok` | any text |
//! | `otel.error_event` (written by the layer when an `ERROR` event happens in the span) | `status_code` is `ERROR` unless `otel.status_code` is `ok` | |
//!
//! A field taken into a column is left out of `attributes`; one whose value means nothing
//! (`otel.kind = "sideways"`) stays there and the column keeps its default.

use micromegas_core::events::ERROR_EVENT_FIELD;

const NAME: &str = "otel.name";
const KIND: &str = "otel.kind";
const STATUS_CODE: &str = "otel.status_code";
const STATUS_DESCRIPTION: &str = "otel.status_description";
const STATUS_MESSAGE: &str = "otel.status_message";

/// What a span's fields say about its name, kind and status.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct OtelFields<'a> {
    /// `otel.name`.
    pub name: Option<&'a str>,
    /// `otel.kind`, as the `kind` column writes it.
    pub kind: Option<&'static str>,
    /// `otel.status_code`, as the `status_code` column writes it.
    status: Option<&'static str>,
    /// `otel.status_description` or `otel.status_message`.
    pub status_message: Option<&'a str>,
    /// An `ERROR` event happened in the span.
    error_event: bool,
    /// Some field is taken into a column (the attributes need filtering).
    any: bool,
}

impl<'a> OtelFields<'a> {
    /// Reads `fields` (in the order recorded; a later value of a key replaces an earlier one).
    pub fn of(fields: &'a [(String, String)]) -> Self {
        let mut found = Self::default();
        for (key, value) in fields {
            if !key.starts_with("otel.") {
                continue;
            }
            match key.as_str() {
                NAME => found.name = Some(value),
                KIND => found.kind = kind(value).or(found.kind),
                STATUS_CODE => found.status = status(value).or(found.status),
                STATUS_DESCRIPTION | STATUS_MESSAGE => found.status_message = Some(value),
                ERROR_EVENT_FIELD => found.error_event = true,
                _ => continue,
            }
            found.any = true;
        }
        found
    }

    /// The `status_code` column: `otel.status_code` when it is `OK` or `ERROR`, else `ERROR`
    /// after a status description or an `ERROR` event, else `UNSET` (as tracing-opentelemetry
    /// decides, whatever the order of the fields and events).
    pub fn status_code(&self) -> &'static str {
        match self.status {
            Some(code @ ("OK" | "ERROR")) => code,
            _ if self.error_event || self.status_message.is_some() => "ERROR",
            _ => "UNSET",
        }
    }

    /// Whether the field `key = value` is in a column rather than in `attributes`.
    pub fn takes(&self, key: &str, value: &str) -> bool {
        self.any
            && match key {
                NAME | STATUS_DESCRIPTION | STATUS_MESSAGE | ERROR_EVENT_FIELD => true,
                KIND => kind(value).is_some(),
                STATUS_CODE => status(value).is_some(),
                _ => false,
            }
    }
}

fn kind(value: &str) -> Option<&'static str> {
    ["SERVER", "CLIENT", "PRODUCER", "CONSUMER", "INTERNAL"]
        .into_iter()
        .find(|k| k.eq_ignore_ascii_case(value))
}

fn status(value: &str) -> Option<&'static str> {
    ["OK", "ERROR", "UNSET"]
        .into_iter()
        .find(|s| s.eq_ignore_ascii_case(value))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn spans_without_otel_fields_keep_their_defaults() {
        let f = fields(&[("user", "7"), ("otelx", "1")]);
        let found = OtelFields::of(&f);
        assert_eq!(found, OtelFields::default());
        assert_eq!(found.status_code(), "UNSET");
        assert!(!found.takes("user", "7"));
    }

    #[test]
    fn names_kinds_and_statuses_are_read_in_any_case() {
        let f = fields(&[
            ("otel.name", "GET /users"),
            ("otel.kind", "Server"),
            ("otel.status_code", "ok"),
        ]);
        let found = OtelFields::of(&f);
        assert_eq!(found.name, Some("GET /users"));
        assert_eq!(found.kind, Some("SERVER"));
        assert_eq!(found.status_code(), "OK");
        assert!(f.iter().all(|(k, v)| found.takes(k, v)));
    }

    #[test]
    fn values_that_mean_nothing_stay_attributes() {
        let f = fields(&[("otel.kind", "sideways"), ("otel.status_code", "maybe")]);
        let found = OtelFields::of(&f);
        assert_eq!(found.kind, None);
        assert_eq!(found.status_code(), "UNSET");
        assert!(!found.takes("otel.kind", "sideways"));
        assert!(!found.takes("otel.status_code", "maybe"));
    }

    #[test]
    fn a_description_or_an_error_event_means_error_unless_the_code_says_otherwise() {
        let described = fields(&[("otel.status_description", "timed out")]);
        let found = OtelFields::of(&described);
        assert_eq!(
            (found.status_code(), found.status_message),
            ("ERROR", Some("timed out"))
        );
        let failed = fields(&[(ERROR_EVENT_FIELD, "true")]);
        assert_eq!(OtelFields::of(&failed).status_code(), "ERROR");
        let overruled = fields(&[(ERROR_EVENT_FIELD, "true"), ("otel.status_code", "OK")]);
        assert_eq!(OtelFields::of(&overruled).status_code(), "OK");
        // `unset` says nothing against an error.
        let unset = fields(&[("otel.status_code", "unset"), (ERROR_EVENT_FIELD, "true")]);
        assert_eq!(OtelFields::of(&unset).status_code(), "ERROR");
    }

    #[test]
    fn a_later_value_replaces_an_earlier_one() {
        let f = fields(&[
            ("otel.kind", "client"),
            ("otel.kind", "producer"),
            ("otel.kind", "nonsense"),
        ]);
        assert_eq!(OtelFields::of(&f).kind, Some("PRODUCER"));
    }
}

//! Runnable examples: see the `[[example]]` entries of this package. The OpenTelemetry one
//! lives here as a library module so that a test runs it against a real collector.

pub mod otel_shop;

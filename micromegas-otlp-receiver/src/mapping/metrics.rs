//! OTLP metrics → `measures` rows. Gauges and sums give one row per data point; histograms
//! one row per point whose value is the sum, with count, min, max, bucket counts and bounds
//! kept in the properties (`otel.*`) so that quantiles can be computed; exponential histograms
//! likewise with scale, zero count and offset buckets; summaries one row per quantile.

use super::common::{attributes, process, time};
use super::Mapped;
use micromegas_lake::tables::MeasureRow;
use micromegas_lake::ViewTable;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::metrics::v1::{metric::Data, number_data_point, Metric};
use std::sync::Arc;

fn join<T: ToString>(values: &[T]) -> String {
    values
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

fn temporality(t: i32) -> &'static str {
    match t {
        1 => "delta",
        2 => "cumulative",
        _ => "unspecified",
    }
}

struct Ctx<'a> {
    pid: &'a Arc<str>,
    svc: &'a Arc<str>,
    target: &'a str,
    metric: &'a Metric,
}

impl Ctx<'_> {
    fn row(
        &self,
        t: u64,
        kind: &str,
        value: f64,
        attrs: &[KeyValue],
        extra: Vec<(String, String)>,
    ) -> MeasureRow {
        let mut properties = attributes(attrs);
        properties.extend(extra);
        if !self.metric.description.is_empty() {
            properties.push(("otel.description".into(), self.metric.description.clone()));
        }
        MeasureRow {
            time: time(t),
            process_id: Arc::clone(self.pid),
            service_name: Arc::clone(self.svc),
            thread_name: Arc::from(""),
            name: self.metric.name.clone(),
            unit: self.metric.unit.clone(),
            kind: kind.into(),
            value,
            target: self.target.to_owned(),
            properties,
        }
    }
}

fn opt(key: &str, v: Option<f64>) -> Option<(String, String)> {
    v.map(|v| (key.to_owned(), v.to_string()))
}

fn rows(ctx: &Ctx<'_>, out: &mut Vec<MeasureRow>) -> Result<(), String> {
    let Some(data) = &ctx.metric.data else {
        return Err(format!("metric {} has no data", ctx.metric.name));
    };
    match data {
        Data::Gauge(g) => {
            for p in &g.data_points {
                let v = number(p.value.as_ref(), &ctx.metric.name)?;
                out.push(ctx.row(p.time_unix_nano, "gauge", v, &p.attributes, Vec::new()));
            }
        }
        Data::Sum(s) => {
            let kind = if s.is_monotonic { "counter" } else { "sum" };
            for p in &s.data_points {
                let v = number(p.value.as_ref(), &ctx.metric.name)?;
                let extra = vec![(
                    "otel.temporality".into(),
                    temporality(s.aggregation_temporality).into(),
                )];
                out.push(ctx.row(p.time_unix_nano, kind, v, &p.attributes, extra));
            }
        }
        Data::Histogram(h) => {
            for p in &h.data_points {
                if !p.bucket_counts.is_empty()
                    && p.bucket_counts.len() != p.explicit_bounds.len() + 1
                {
                    return Err(format!(
                        "histogram {} has {} buckets for {} bounds",
                        ctx.metric.name,
                        p.bucket_counts.len(),
                        p.explicit_bounds.len()
                    ));
                }
                let mut extra = vec![
                    (
                        "otel.temporality".into(),
                        temporality(h.aggregation_temporality).into(),
                    ),
                    ("otel.count".into(), p.count.to_string()),
                    ("otel.bucket_counts".into(), join(&p.bucket_counts)),
                    ("otel.explicit_bounds".into(), join(&p.explicit_bounds)),
                ];
                extra.extend(opt("otel.min", p.min));
                extra.extend(opt("otel.max", p.max));
                let v = p.sum.unwrap_or(f64::NAN);
                out.push(ctx.row(p.time_unix_nano, "histogram", v, &p.attributes, extra));
            }
        }
        Data::ExponentialHistogram(h) => {
            for p in &h.data_points {
                let mut extra = vec![
                    (
                        "otel.temporality".into(),
                        temporality(h.aggregation_temporality).into(),
                    ),
                    ("otel.count".into(), p.count.to_string()),
                    ("otel.scale".into(), p.scale.to_string()),
                    ("otel.zero_count".into(), p.zero_count.to_string()),
                    ("otel.zero_threshold".into(), p.zero_threshold.to_string()),
                ];
                for (side, b) in [("positive", &p.positive), ("negative", &p.negative)] {
                    if let Some(b) = b {
                        extra.push((format!("otel.{side}_offset"), b.offset.to_string()));
                        extra.push((format!("otel.{side}_bucket_counts"), join(&b.bucket_counts)));
                    }
                }
                extra.extend(opt("otel.min", p.min));
                extra.extend(opt("otel.max", p.max));
                let v = p.sum.unwrap_or(f64::NAN);
                out.push(ctx.row(
                    p.time_unix_nano,
                    "exponential_histogram",
                    v,
                    &p.attributes,
                    extra,
                ));
            }
        }
        Data::Summary(s) => {
            for p in &s.data_points {
                for q in &p.quantile_values {
                    let extra = vec![
                        ("quantile".into(), q.quantile.to_string()),
                        ("otel.count".into(), p.count.to_string()),
                        ("otel.sum".into(), p.sum.to_string()),
                    ];
                    out.push(ctx.row(p.time_unix_nano, "summary", q.value, &p.attributes, extra));
                }
            }
        }
    }
    Ok(())
}

fn number(v: Option<&number_data_point::Value>, name: &str) -> Result<f64, String> {
    match v {
        Some(number_data_point::Value::AsDouble(d)) => Ok(*d),
        Some(number_data_point::Value::AsInt(i)) => Ok(*i as f64),
        None => Err(format!("data point of {name} has no value")),
    }
}

/// Number of data points in a metric (what `rejected_data_points` counts).
fn points(m: &Metric) -> u64 {
    match &m.data {
        Some(Data::Gauge(g)) => g.data_points.len() as u64,
        Some(Data::Sum(s)) => s.data_points.len() as u64,
        Some(Data::Histogram(h)) => h.data_points.len() as u64,
        Some(Data::ExponentialHistogram(h)) => h.data_points.len() as u64,
        Some(Data::Summary(s)) => s.data_points.len() as u64,
        None => 1,
    }
}

/// Maps a request: one group of rows per resource; a metric with an invalid data point is
/// rejected whole (its points counted).
pub fn map(req: &ExportMetricsServiceRequest) -> Mapped<Vec<MeasureRow>> {
    let mut out = Mapped::new(ViewTable::Measures);
    for rm in &req.resource_metrics {
        let process = process(rm.resource.as_ref());
        let pid: Arc<str> = process.process_id.as_str().into();
        let svc: Arc<str> = process.service_name.as_str().into();
        let mut all = Vec::new();
        for sm in &rm.scope_metrics {
            let target = sm
                .scope
                .as_ref()
                .map(|s| s.name.as_str())
                .unwrap_or_default();
            for metric in &sm.metrics {
                let ctx = Ctx {
                    pid: &pid,
                    svc: &svc,
                    target,
                    metric,
                };
                let mut rows_of_metric = Vec::new();
                match rows(&ctx, &mut rows_of_metric) {
                    Ok(()) => all.extend(rows_of_metric),
                    Err(e) => {
                        for _ in 1..points(metric) {
                            out.reject(e.clone());
                        }
                        out.reject(e);
                    }
                }
            }
        }
        out.push(process, all);
    }
    out
}

//! OTLP metrics → `measures` rows. Gauges and sums give one row per data point; histograms
//! one row per point whose value is the sum, with count, min, max, bucket counts and bounds
//! kept in the properties (`otel.*`) so that quantiles can be computed; exponential histograms
//! likewise with scale, zero count and offset buckets; summaries one row per quantile, or one
//! row whose value is the sum for a point without quantiles.

use super::common::{
    attributes_json, double_json, hex, json_array, process, time, write_attribute, Double, Scope,
};
use super::wire::WireError;
use super::Mapped;
use micromegas_lake::tables::{AttributeWriter, MeasureColumns, MeasureText};
use micromegas_lake::ViewTable;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::metrics::v1::{
    exemplar, metric::Data, number_data_point, DataPointFlags, Exemplar, Metric, NumberDataPoint,
};
use prost::Message;
use std::fmt::Display;

/// Writes `values` comma-separated.
fn join<T: Display>(
    out: &mut AttributeWriter<'_>,
    key: &str,
    values: impl ExactSizeIterator<Item = T>,
) {
    let mut text = String::with_capacity(values.len() * 4);
    for (i, v) in values.enumerate() {
        if i > 0 {
            text.push(',');
        }
        // Writing into a String cannot fail.
        let _ = std::fmt::Write::write_fmt(&mut text, format_args!("{v}"));
    }
    out.entry(key, &text);
}

fn temporality(t: i32) -> &'static str {
    match t {
        1 => "delta",
        2 => "cumulative",
        _ => "unspecified",
    }
}

/// What every row of one metric shares.
struct Ctx<'a> {
    pid: &'a str,
    svc: &'a str,
    scope: &'a Scope,
    metric: &'a Metric,
    /// The metric's metadata as JSON, written on each of its rows.
    metadata: Option<String>,
}

impl Ctx<'_> {
    /// Appends one row: the point's attributes and start time, then what `extra` writes, then
    /// the metric's description and metadata, then what the scope says.
    fn row(
        &self,
        out: &mut MeasureColumns,
        (start, t, kind, value): (u64, u64, &str, f64),
        attrs: &[KeyValue],
        extra: impl FnOnce(&mut AttributeWriter<'_>),
    ) {
        let text = MeasureText {
            time: time(t),
            process_id: self.pid,
            service_name: self.svc,
            thread_name: "",
            name: &self.metric.name,
            unit: &self.metric.unit,
            kind,
            value,
            target: &self.scope.name,
        };
        out.append(&text, |p| {
            for kv in attrs {
                write_attribute(p, &kv.key, kv.value.as_ref());
            }
            if start != 0 {
                // Where a cumulative series began (it restarts when this changes).
                p.entry(
                    "otel.start_time_unix_nano",
                    itoa::Buffer::new().format(start),
                );
            }
            extra(p);
            if !self.metric.description.is_empty() {
                p.entry("otel.description", &self.metric.description);
            }
            if let Some(metadata) = &self.metadata {
                p.entry("otel.metadata", metadata);
            }
            self.scope.write(p);
        });
    }
}

fn opt(out: &mut AttributeWriter<'_>, key: &str, v: Option<f64>) {
    if let Some(v) = v {
        out.entry_fmt(key, format_args!("{}", Double(v)));
    }
}

/// Why a metric cannot be stored (it is then rejected whole), if it cannot.
fn check(metric: &Metric) -> Result<(), String> {
    let name = &metric.name;
    let numbers = match &metric.data {
        None => return Err(format!("metric {name} has no data")),
        Some(Data::Gauge(g)) => &g.data_points,
        Some(Data::Sum(s)) => &s.data_points,
        Some(Data::Histogram(h)) => {
            for p in &h.data_points {
                if !p.bucket_counts.is_empty()
                    && p.bucket_counts.len() != p.explicit_bounds.len() + 1
                {
                    return Err(format!(
                        "histogram {name} has {} buckets for {} bounds",
                        p.bucket_counts.len(),
                        p.explicit_bounds.len()
                    ));
                }
            }
            return Ok(());
        }
        Some(_) => return Ok(()),
    };
    match numbers
        .iter()
        .any(|p| p.value.is_none() && !no_recorded_value(p.flags))
    {
        true => Err(format!("data point of {name} has no value")),
        false => Ok(()),
    }
}

/// Whether a data point's flags say it has no recorded value: a series that went missing
/// (Prometheus' staleness marker). Such a point is kept, its value `NaN`, with the property
/// `otel.no_recorded_value` = `true`.
fn no_recorded_value(flags: u32) -> bool {
    flags & DataPointFlags::NoRecordedValueMask as u32 != 0
}

/// What any data point may carry: the mark of a point without recorded value, and its
/// exemplars (measurements sampled with the trace and span they were taken in) as JSON under
/// `otel.exemplars`.
fn point_extras(out: &mut AttributeWriter<'_>, flags: u32, exemplars: &[Exemplar]) {
    if no_recorded_value(flags) {
        out.entry("otel.no_recorded_value", "true");
    }
    let json = json_array(exemplars, |e| {
        let value = match e.value {
            Some(exemplar::Value::AsDouble(d)) => double_json(d),
            Some(exemplar::Value::AsInt(i)) => i.into(),
            None => serde_json::Value::Null,
        };
        serde_json::json!({
            "time_unix_nano": e.time_unix_nano,
            "value": value,
            "trace_id": hex(&e.trace_id),
            "span_id": hex(&e.span_id),
            "filtered_attributes": attributes_json(&e.filtered_attributes),
        })
    });
    if let Some(json) = json {
        out.entry("otel.exemplars", &json);
    }
}

/// The value of a number data point ([`check`] made sure it has one, or is marked as having
/// none).
fn number(p: &NumberDataPoint) -> f64 {
    if no_recorded_value(p.flags) {
        return f64::NAN;
    }
    match &p.value {
        Some(number_data_point::Value::AsDouble(d)) => *d,
        Some(number_data_point::Value::AsInt(i)) => *i as f64,
        None => f64::NAN,
    }
}

/// The value of a row that stands for a histogram or summary point: its sum, `NaN` when it
/// has none or is marked as having no recorded value.
fn sum_value(flags: u32, sum: Option<f64>) -> f64 {
    match sum {
        Some(sum) if !no_recorded_value(flags) => sum,
        _ => f64::NAN,
    }
}

/// The sum a histogram point marked as having no recorded value carries anyway (its row's
/// value is `NaN`, see [`sum_value`]), kept as `otel.sum`.
fn stale_sum(out: &mut AttributeWriter<'_>, flags: u32, sum: Option<f64>) {
    if no_recorded_value(flags) {
        opt(out, "otel.sum", sum);
    }
}

/// Appends the rows of a metric that passed [`check`].
fn rows(ctx: &Ctx<'_>, out: &mut MeasureColumns) {
    let Some(data) = &ctx.metric.data else {
        return;
    };
    match data {
        Data::Gauge(g) => {
            for p in &g.data_points {
                let v = number(p);
                ctx.row(
                    out,
                    (p.start_time_unix_nano, p.time_unix_nano, "gauge", v),
                    &p.attributes,
                    |e| point_extras(e, p.flags, &p.exemplars),
                );
            }
        }
        Data::Sum(s) => {
            let kind = if s.is_monotonic { "counter" } else { "sum" };
            let temporality = temporality(s.aggregation_temporality);
            for p in &s.data_points {
                let v = number(p);
                ctx.row(
                    out,
                    (p.start_time_unix_nano, p.time_unix_nano, kind, v),
                    &p.attributes,
                    |e| {
                        e.entry("otel.temporality", temporality);
                        point_extras(e, p.flags, &p.exemplars);
                    },
                );
            }
        }
        Data::Histogram(h) => {
            let temporality = temporality(h.aggregation_temporality);
            for p in &h.data_points {
                let v = sum_value(p.flags, p.sum);
                ctx.row(
                    out,
                    (p.start_time_unix_nano, p.time_unix_nano, "histogram", v),
                    &p.attributes,
                    |e| {
                        e.entry("otel.temporality", temporality);
                        stale_sum(e, p.flags, p.sum);
                        e.entry("otel.count", itoa::Buffer::new().format(p.count));
                        join(e, "otel.bucket_counts", p.bucket_counts.iter());
                        join(
                            e,
                            "otel.explicit_bounds",
                            p.explicit_bounds.iter().map(|b| Double(*b)),
                        );
                        opt(e, "otel.min", p.min);
                        opt(e, "otel.max", p.max);
                        point_extras(e, p.flags, &p.exemplars);
                    },
                );
            }
        }
        Data::ExponentialHistogram(h) => {
            let temporality = temporality(h.aggregation_temporality);
            for p in &h.data_points {
                let v = sum_value(p.flags, p.sum);
                let point = (
                    p.start_time_unix_nano,
                    p.time_unix_nano,
                    "exponential_histogram",
                    v,
                );
                ctx.row(out, point, &p.attributes, |e| {
                    e.entry("otel.temporality", temporality);
                    stale_sum(e, p.flags, p.sum);
                    e.entry("otel.count", itoa::Buffer::new().format(p.count));
                    e.entry("otel.scale", itoa::Buffer::new().format(p.scale));
                    e.entry("otel.zero_count", itoa::Buffer::new().format(p.zero_count));
                    e.entry_fmt(
                        "otel.zero_threshold",
                        format_args!("{}", Double(p.zero_threshold)),
                    );
                    for (side, b) in [("positive", &p.positive), ("negative", &p.negative)] {
                        if let Some(b) = b {
                            let offset = itoa::Buffer::new().format(b.offset).to_owned();
                            e.entry(&format!("otel.{side}_offset"), &offset);
                            join(
                                e,
                                &format!("otel.{side}_bucket_counts"),
                                b.bucket_counts.iter(),
                            );
                        }
                    }
                    opt(e, "otel.min", p.min);
                    opt(e, "otel.max", p.max);
                    point_extras(e, p.flags, &p.exemplars);
                });
            }
        }
        Data::Summary(s) => {
            for p in &s.data_points {
                let common = |e: &mut AttributeWriter<'_>| {
                    e.entry("otel.count", itoa::Buffer::new().format(p.count));
                    e.entry_fmt("otel.sum", format_args!("{}", Double(p.sum)));
                    point_extras(e, p.flags, &[]);
                };
                for q in &p.quantile_values {
                    let point = (p.start_time_unix_nano, p.time_unix_nano, "summary", q.value);
                    ctx.row(out, point, &p.attributes, |e| {
                        e.entry_fmt("quantile", format_args!("{}", Double(q.quantile)));
                        common(e);
                    });
                }
                if p.quantile_values.is_empty() {
                    // Count and sum only: one row, its value the sum, as for histograms.
                    let point = (
                        p.start_time_unix_nano,
                        p.time_unix_nano,
                        "summary",
                        sum_value(p.flags, Some(p.sum)),
                    );
                    ctx.row(out, point, &p.attributes, common);
                }
            }
        }
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

/// Rows of a metric, as many as its data points (summaries: one per quantile).
fn rows_of(m: &Metric) -> usize {
    match &m.data {
        Some(Data::Summary(s)) => s
            .data_points
            .iter()
            .map(|p| p.quantile_values.len().max(1))
            .sum(),
        _ => points(m) as usize,
    }
}

/// A metrics request mapped from its bytes.
#[derive(Debug)]
pub struct MappedMetrics {
    /// The `measures` rows, per resource, and what was rejected.
    pub mapped: Mapped,
    /// The request's identity: a hash of its bytes (a retried request has the same).
    pub identity: u128,
}

/// Maps an `ExportMetricsServiceRequest` from its protobuf bytes (decoded by prost: data
/// points come in many shapes), with the hash of the bytes as its identity. Bytes that prost
/// does not decode as a request are an error, and nothing of them is kept.
pub fn map_protobuf(bytes: &[u8]) -> Result<MappedMetrics, WireError> {
    let req = ExportMetricsServiceRequest::decode(bytes)?;
    Ok(MappedMetrics {
        mapped: map(&req),
        identity: xxhash_rust::xxh3::xxh3_128(bytes),
    })
}

/// Maps a request: one batch of the `measures` table per resource, straight into its columns;
/// a metric with an invalid data point is rejected whole (its points counted).
pub fn map(req: &ExportMetricsServiceRequest) -> Mapped {
    let mut out = Mapped::new(ViewTable::Measures);
    for rm in &req.resource_metrics {
        let process = process(rm.resource.as_ref(), &rm.schema_url);
        let metrics = rm.scope_metrics.iter().flat_map(|sm| &sm.metrics);
        let mut columns = MeasureColumns::with_capacity(metrics.map(rows_of).sum());
        for sm in &rm.scope_metrics {
            let scope = Scope::new(sm.scope.as_ref(), &sm.schema_url);
            for metric in &sm.metrics {
                if let Err(e) = check(metric) {
                    for _ in 1..points(metric) {
                        out.reject(e.clone());
                    }
                    out.reject(e);
                    continue;
                }
                let ctx = Ctx {
                    pid: &process.process_id,
                    svc: &process.service_name,
                    scope: &scope,
                    metric,
                    metadata: (!metric.metadata.is_empty())
                        .then(|| attributes_json(&metric.metadata).to_string()),
                };
                rows(&ctx, &mut columns);
            }
        }
        out.push_columns(
            process,
            columns,
            MeasureColumns::len,
            MeasureColumns::finish,
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use micromegas_lake::arrow::array::{Array, AsArray};
    use micromegas_lake::arrow::datatypes::Float64Type;
    use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, InstrumentationScope};
    use opentelemetry_proto::tonic::metrics::v1::{
        exponential_histogram_data_point::Buckets, summary_data_point::ValueAtQuantile,
        ExponentialHistogram, ExponentialHistogramDataPoint, Gauge, Histogram, HistogramDataPoint,
        ResourceMetrics, ScopeMetrics, Summary, SummaryDataPoint,
    };
    use opentelemetry_proto::tonic::resource::v1::Resource;

    /// A request of `metrics`, in scope `scope` of a resource without attributes.
    fn request(metrics: Vec<Metric>) -> ExportMetricsServiceRequest {
        ExportMetricsServiceRequest {
            resource_metrics: vec![ResourceMetrics {
                scope_metrics: vec![ScopeMetrics {
                    scope: Some(InstrumentationScope {
                        name: "scope".into(),
                        ..Default::default()
                    }),
                    metrics,
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
    }

    fn metric(name: &str, description: &str, data: Option<Data>) -> Metric {
        Metric {
            name: name.into(),
            description: description.into(),
            unit: "u".into(),
            data,
            ..Default::default()
        }
    }

    fn number(value: Option<number_data_point::Value>) -> NumberDataPoint {
        NumberDataPoint {
            attributes: vec![KeyValue {
                key: "k".into(),
                value: Some(AnyValue {
                    value: Some(any_value::Value::IntValue(7)),
                }),
                ..Default::default()
            }],
            time_unix_nano: 1_000,
            value,
            ..Default::default()
        }
    }

    /// Each row as `name|kind|value|key=value;…` in row order.
    fn lines(mapped: &Mapped) -> Vec<String> {
        let mut out = Vec::new();
        for (_, b) in &mapped.groups {
            let text = |name: &str| {
                b.column_by_name(name)
                    .expect(name)
                    .as_string::<i32>()
                    .clone()
            };
            let (names, kinds) = (text("name"), text("kind"));
            let values = b
                .column_by_name("value")
                .expect("value")
                .as_primitive::<Float64Type>();
            let props = b.column_by_name("properties").expect("properties").as_map();
            for row in 0..b.num_rows() {
                let entries = props.value(row);
                let (k, v) = (
                    entries.column(0).as_string::<i32>(),
                    entries.column(1).as_string::<i32>(),
                );
                let map: Vec<String> = (0..entries.len())
                    .map(|i| format!("{}={}", k.value(i), v.value(i)))
                    .collect();
                out.push(format!(
                    "{}|{}|{}|{}",
                    names.value(row),
                    kinds.value(row),
                    values.value(row),
                    map.join(";")
                ));
            }
        }
        out
    }

    #[test]
    fn every_kind_of_metric_maps_with_its_properties_and_invalid_ones_are_rejected_whole() {
        let exponential = ExponentialHistogramDataPoint {
            time_unix_nano: 2_000,
            count: 5,
            sum: Some(10.5),
            scale: -2,
            zero_count: 1,
            zero_threshold: 0.25,
            positive: Some(Buckets {
                offset: 3,
                bucket_counts: vec![1, 2],
            }),
            min: Some(0.5),
            ..Default::default()
        };
        let summary = SummaryDataPoint {
            time_unix_nano: 3_000,
            count: 4,
            sum: 8.0,
            quantile_values: vec![ValueAtQuantile {
                quantile: 0.5,
                value: 2.0,
            }],
            ..Default::default()
        };
        let metrics = vec![
            metric(
                "g",
                "a gauge",
                Some(Data::Gauge(Gauge {
                    data_points: vec![
                        number(Some(number_data_point::Value::AsInt(3))),
                        number(Some(number_data_point::Value::AsDouble(1.5))),
                    ],
                })),
            ),
            metric(
                "e",
                "",
                Some(Data::ExponentialHistogram(ExponentialHistogram {
                    data_points: vec![exponential],
                    aggregation_temporality: 1,
                })),
            ),
            metric(
                "s",
                "",
                Some(Data::Summary(Summary {
                    data_points: vec![summary],
                })),
            ),
            // A point without a value: the whole metric (2 points) is rejected.
            metric(
                "bad",
                "",
                Some(Data::Gauge(Gauge {
                    data_points: vec![
                        number(Some(number_data_point::Value::AsInt(1))),
                        number(None),
                    ],
                })),
            ),
            metric("empty", "", None),
        ];
        let req = request(metrics);
        let bytes = req.encode_to_vec();
        let mapped = map_protobuf(&bytes).expect("decodes");
        assert_eq!(mapped.identity, xxhash_rust::xxh3::xxh3_128(&bytes));
        assert_eq!(
            lines(&mapped.mapped),
            [
                "g|gauge|3|k=7;otel.description=a gauge",
                "g|gauge|1.5|k=7;otel.description=a gauge",
                "e|exponential_histogram|10.5|otel.temporality=delta;otel.count=5;otel.scale=-2;\
                 otel.zero_count=1;otel.zero_threshold=0.25;otel.positive_offset=3;\
                 otel.positive_bucket_counts=1,2;otel.min=0.5",
                "s|summary|2|quantile=0.5;otel.count=4;otel.sum=8",
            ]
        );
        assert_eq!(mapped.mapped.rejected, 3);
        assert_eq!(
            mapped.mapped.first_error.as_deref(),
            Some("data point of bad has no value")
        );
        assert!(map_protobuf(&bytes[..bytes.len() - 1]).is_err());
    }

    /// A point flagged as having no recorded value (a series that went missing) is valid:
    /// kept, its value NaN (a histogram's or summary's sum kept as `otel.sum`), and marked; exemplars are kept as JSON; a summary without
    /// quantiles keeps its count and sum.
    #[test]
    fn points_without_recorded_value_exemplars_and_summaries_without_quantiles_are_kept() {
        let stale = NumberDataPoint {
            flags: 1,
            ..number(None)
        };
        let stale_with_value = NumberDataPoint {
            flags: 1,
            ..number(Some(number_data_point::Value::AsInt(9)))
        };
        let histogram = HistogramDataPoint {
            time_unix_nano: 1_000,
            flags: 1,
            sum: Some(2.5),
            exemplars: vec![Exemplar {
                filtered_attributes: number(None).attributes,
                time_unix_nano: 5,
                span_id: vec![2; 8],
                trace_id: vec![1; 16],
                value: Some(exemplar::Value::AsDouble(f64::INFINITY)),
            }],
            ..Default::default()
        };
        let summary = SummaryDataPoint {
            time_unix_nano: 1_000,
            count: 3,
            sum: 7.5,
            ..Default::default()
        };
        let stale_summary = SummaryDataPoint {
            flags: 1,
            ..summary.clone()
        };
        let req = request(vec![
            metric(
                "g",
                "",
                Some(Data::Gauge(Gauge {
                    data_points: vec![stale, stale_with_value],
                })),
            ),
            metric(
                "h",
                "",
                Some(Data::Histogram(Histogram {
                    data_points: vec![histogram],
                    aggregation_temporality: 2,
                })),
            ),
            metric(
                "s",
                "",
                Some(Data::Summary(Summary {
                    data_points: vec![summary, stale_summary],
                })),
            ),
        ]);
        let mapped = map(&req);
        assert_eq!(mapped.rejected, 0, "{:?}", mapped.first_error);
        assert_eq!(
            lines(&mapped),
            [
                "g|gauge|NaN|k=7;otel.no_recorded_value=true",
                "g|gauge|NaN|k=7;otel.no_recorded_value=true",
                "h|histogram|NaN|otel.temporality=cumulative;otel.sum=2.5;otel.count=0;\
                 otel.bucket_counts=;otel.explicit_bounds=;otel.no_recorded_value=true;otel.exemplars=[{\
                 \"filtered_attributes\":{\"k\":\"7\"},\"span_id\":\"0202020202020202\",\
                 \"time_unix_nano\":5,\"trace_id\":\"01010101010101010101010101010101\",\
                 \"value\":\"Infinity\"}]",
                "s|summary|7.5|otel.count=3;otel.sum=7.5",
                "s|summary|NaN|otel.count=3;otel.sum=7.5;otel.no_recorded_value=true",
            ]
        );
        assert_eq!(mapped.row_count(), 5);
    }

    /// What the scope, the resource and the metric say beside the points is kept: a point's
    /// start time, the scope's version, attributes and schema URL on each row, the metric's
    /// metadata as JSON, and the resource's schema URL and dropped attribute count on the
    /// process.
    #[test]
    fn scopes_resources_and_metric_metadata_are_kept() {
        let mut req = request(vec![Metric {
            metadata: number(None).attributes,
            ..metric(
                "g",
                "",
                Some(Data::Gauge(Gauge {
                    data_points: vec![NumberDataPoint {
                        start_time_unix_nano: 500,
                        ..number(Some(number_data_point::Value::AsInt(1)))
                    }],
                })),
            )
        }]);
        let rm = &mut req.resource_metrics[0];
        rm.schema_url = "https://opentelemetry.io/schemas/1.26.0".into();
        rm.resource = Some(Resource {
            dropped_attributes_count: 2,
            ..Default::default()
        });
        let sm = &mut rm.scope_metrics[0];
        sm.schema_url = "https://opentelemetry.io/schemas/1.24.0".into();
        let scope = sm.scope.as_mut().expect("the scope of `request`");
        scope.version = "0.48b0".into();
        scope.attributes = number(None).attributes;
        let mapped = map(&req);
        assert_eq!(
            lines(&mapped),
            [
                "g|gauge|1|k=7;otel.start_time_unix_nano=500;otel.metadata={\"k\":\"7\"};otel.scope.version=0.48b0;\
              otel.scope.attributes={\"k\":\"7\"};\
              otel.scope.schema_url=https://opentelemetry.io/schemas/1.24.0"
            ]
        );
        let (process, _) = &mapped.groups[0];
        assert_eq!(
            process.properties,
            [
                ("otel.dropped_attributes_count".into(), "2".into()),
                (
                    "otel.schema_url".into(),
                    "https://opentelemetry.io/schemas/1.26.0".into()
                ),
            ]
        );
    }
}

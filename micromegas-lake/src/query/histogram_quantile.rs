//! `histogram_quantile(q, properties)`: a quantile of the OTLP histograms (explicit buckets or
//! exponential) that an aggregation's rows of `measures` hold in their `otel.*` properties.
//!
//! The rows' buckets are merged, then the quantile is interpolated linearly inside the bucket
//! where it falls, as Prometheus' `histogram_quantile` does. A delta row adds its counts. A
//! cumulative series (its non-`otel.*` properties and its start time) adds what it grew by
//! between its first and its last point among the rows (counts only grow, so these are the
//! points of least and most total count), or, when the rows hold one of its points, that
//! point's counts (all since the series began). Buckets of different bounds merge by their
//! upper bounds. The result is bounded by the rows' `otel.min` and `otel.max` when they have
//! them.

use arrow::array::{Array, ArrayRef, AsArray, MapArray};
use arrow::datatypes::{DataType, Field, FieldRef};
use datafusion::common::{exec_err, plan_err, Result, ScalarValue};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{
    Accumulator, AggregateUDFImpl, DocSection, Documentation, Signature, TypeSignature, Volatility,
};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, LazyLock};

/// Bucket counts by upper bound (as ordered bits, see [`key`]).
type Buckets = BTreeMap<i64, u64>;

/// An `f64` as an `i64` whose order is the numbers' order (for finite values and infinities).
fn key(x: f64) -> i64 {
    let bits = x.to_bits() as i64;
    if bits < 0 {
        bits ^ i64::MAX
    } else {
        bits
    }
}

/// The inverse of [`key`].
fn unkey(k: i64) -> f64 {
    let bits = if k < 0 { k ^ i64::MAX } else { k };
    f64::from_bits(bits as u64)
}

/// One histogram point read from a row's properties.
#[derive(Debug, Default, PartialEq)]
struct Point {
    buckets: Buckets,
    total: u64,
    min: Option<f64>,
    max: Option<f64>,
    /// For a cumulative point, its series; `None` for a delta point.
    series: Option<String>,
}

/// The properties that describe a point rather than its series.
fn is_point_property(k: &str) -> bool {
    k.starts_with("otel.") && k != "otel.start_time_unix_nano"
}

fn numbers<T: std::str::FromStr>(text: &str, what: &str) -> Result<Vec<T>> {
    if text.is_empty() {
        return Ok(Vec::new());
    }
    text.split(',')
        .map(|n| n.trim().parse::<T>())
        .collect::<Result<_, _>>()
        .or_else(|_| exec_err!("histogram_quantile: {what} is not a list of numbers: '{text}'"))
}

fn number<T: std::str::FromStr>(text: &str, what: &str) -> Result<T> {
    text.trim()
        .parse()
        .or_else(|_| exec_err!("histogram_quantile: {what} is not a number: '{text}'"))
}

impl Point {
    /// The histogram of a row, `None` for a row that holds none (a gauge, a point with no
    /// recorded value).
    fn of(entries: &[(&str, &str)]) -> Result<Option<Point>> {
        let get = |k: &str| entries.iter().find(|(key, _)| *key == k).map(|(_, v)| *v);
        if get("otel.no_recorded_value") == Some("true") {
            return Ok(None);
        }
        let mut point = Point::default();
        if let Some(counts) = get("otel.bucket_counts") {
            let counts: Vec<u64> = numbers(counts, "otel.bucket_counts")?;
            let bounds: Vec<f64> = numbers(
                get("otel.explicit_bounds").unwrap_or(""),
                "otel.explicit_bounds",
            )?;
            if !counts.is_empty() && counts.len() != bounds.len() + 1 {
                return exec_err!(
                    "histogram_quantile: {} bucket counts for {} bounds (one more count than \
                     bounds expected)",
                    counts.len(),
                    bounds.len()
                );
            }
            let uppers = bounds.iter().copied().chain([f64::INFINITY]);
            for (upper, count) in uppers.zip(counts) {
                point.add(upper, count);
            }
        } else if let Some(scale) = get("otel.scale") {
            let scale: i32 = number(scale, "otel.scale")?;
            if !(-10..=20).contains(&scale) {
                return exec_err!("histogram_quantile: otel.scale {scale} is out of -10..=20");
            }
            let base = 2f64.powf(2f64.powi(-scale));
            let zero_count: u64 = number(get("otel.zero_count").unwrap_or("0"), "otel.zero_count")?;
            let threshold: f64 = number(
                get("otel.zero_threshold").unwrap_or("0"),
                "otel.zero_threshold",
            )?;
            if zero_count > 0 {
                if threshold != 0.0 {
                    point.add(-threshold.abs(), 0);
                }
                point.add(threshold.abs(), zero_count);
            }
            for (side, sign) in [("positive", 1.0), ("negative", -1.0)] {
                let counts = get(&format!("otel.{side}_bucket_counts")).unwrap_or("");
                let counts: Vec<u64> = numbers(counts, "bucket counts")?;
                if counts.is_empty() {
                    continue;
                }
                let offset: i64 = number(
                    get(&format!("otel.{side}_offset")).unwrap_or("0"),
                    "bucket offset",
                )?;
                // Bucket `index` holds (base^index, base^(index+1)]; its negative twin holds
                // [-base^(index+1), -base^index). The side's outer bound, with no count,
                // begins its first bucket.
                let edge = |index: i64| sign * base.powf(index as f64);
                let (first, last) = (offset, offset + counts.len() as i64);
                point.add(if sign > 0.0 { edge(first) } else { edge(last) }, 0);
                for (i, count) in counts.into_iter().enumerate() {
                    let index = offset + i as i64;
                    point.add(edge(if sign > 0.0 { index + 1 } else { index }), count);
                }
            }
        } else {
            return Ok(None);
        }
        point.min = get("otel.min").map(|m| number(m, "otel.min")).transpose()?;
        point.max = get("otel.max").map(|m| number(m, "otel.max")).transpose()?;
        if get("otel.temporality") == Some("cumulative") {
            let mut series = String::new();
            for (k, v) in entries.iter().filter(|(k, _)| !is_point_property(k)) {
                series.push_str(k);
                series.push('\u{1}');
                series.push_str(v);
                series.push('\u{2}');
            }
            point.series = Some(series);
        }
        Ok(Some(point))
    }

    /// Adds `count` to the bucket ending at `upper`. Buckets without a count are kept: the
    /// next bucket begins at their bound.
    fn add(&mut self, upper: f64, count: u64) {
        if !upper.is_nan() {
            *self.buckets.entry(key(upper)).or_default() += count;
            self.total += count;
        }
    }
}

/// The first and the last point of a cumulative series among the rows seen.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Series {
    first: (u64, Buckets),
    last: (u64, Buckets),
}

/// What the rows seen so far add up to.
#[derive(Debug, Default, Serialize, Deserialize)]
struct State {
    q: Option<f64>,
    delta: Buckets,
    series: HashMap<String, Series>,
    min: Option<f64>,
    max: Option<f64>,
}

fn add_all(into: &mut Buckets, from: &Buckets) {
    for (k, n) in from {
        *into.entry(*k).or_default() += n;
    }
}

impl State {
    fn add(&mut self, point: Point) {
        self.min = combine(self.min, point.min, f64::min);
        self.max = combine(self.max, point.max, f64::max);
        match point.series {
            None => add_all(&mut self.delta, &point.buckets),
            Some(key) => {
                let p = (point.total, point.buckets);
                self.merge_series(
                    key,
                    Series {
                        first: p.clone(),
                        last: p,
                    },
                );
            }
        }
    }

    fn merge_series(&mut self, key: String, s: Series) {
        match self.series.get_mut(&key) {
            None => {
                self.series.insert(key, s);
            }
            Some(known) => {
                if s.first.0 < known.first.0 {
                    known.first = s.first;
                }
                if s.last.0 > known.last.0 {
                    known.last = s.last;
                }
            }
        }
    }

    fn merge(&mut self, other: State) {
        self.q = self.q.or(other.q);
        add_all(&mut self.delta, &other.delta);
        for (k, s) in other.series {
            self.merge_series(k, s);
        }
        self.min = combine(self.min, other.min, f64::min);
        self.max = combine(self.max, other.max, f64::max);
    }

    /// Every bucket: the delta counts, and what each cumulative series grew by.
    fn buckets(&self) -> Buckets {
        let mut all = self.delta.clone();
        for s in self.series.values() {
            if s.first.0 == s.last.0 {
                add_all(&mut all, &s.last.1);
                continue;
            }
            for (k, n) in &s.last.1 {
                let before = s.first.1.get(k).copied().unwrap_or(0);
                *all.entry(*k).or_default() += n.saturating_sub(before);
            }
        }
        all
    }

    fn quantile(&self, q: f64) -> Option<f64> {
        quantile(&self.buckets(), q, self.min, self.max)
    }
}

/// `pick` of the two when both are known, else the one known.
fn combine(a: Option<f64>, b: Option<f64>, pick: fn(f64, f64) -> f64) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(pick(a, b)),
        (a, b) => a.or(b),
    }
}

/// The `q` quantile of `buckets`, interpolated linearly inside its bucket. The lower edge of
/// the first bucket is `min` if known, else 0 when the bucket's upper bound is positive (as in
/// Prometheus), else its upper bound; the upper edge of a `+Inf` bucket is `max` if known,
/// else the largest finite bound. `None` when the buckets are empty.
fn quantile(buckets: &Buckets, q: f64, min: Option<f64>, max: Option<f64>) -> Option<f64> {
    let total: u64 = buckets.values().sum();
    if total == 0 {
        return None;
    }
    let rank = q * total as f64;
    let mut below = 0u64;
    let mut lower: Option<f64> = None;
    let mut last_finite: Option<f64> = None;
    for (k, &count) in buckets {
        let upper = unkey(*k);
        let lo = match lower {
            Some(l) => l,
            None => match min {
                Some(m) if m <= upper => m,
                _ if upper > 0.0 && upper.is_finite() => 0.0,
                _ => upper,
            },
        };
        if (below + count) as f64 >= rank && count > 0 {
            let hi = if upper.is_finite() {
                upper
            } else {
                max.or(last_finite).unwrap_or(lo)
            };
            let lo = if lo.is_finite() { lo } else { hi };
            let within = (rank - below as f64) / count as f64;
            let v = lo + (hi - lo) * within.clamp(0.0, 1.0);
            let v = min.map_or(v, |m| v.max(m));
            return Some(max.map_or(v, |m| v.min(m)));
        }
        below += count;
        lower = Some(upper);
        if upper.is_finite() {
            last_finite = Some(upper);
        }
    }
    max.or(last_finite)
}

/// The aggregate function.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct HistogramQuantile {
    signature: Signature,
}

impl Default for HistogramQuantile {
    fn default() -> Self {
        Self {
            signature: Signature::one_of(
                vec![
                    TypeSignature::Exact(vec![DataType::Float64, crate::tables::map_type()]),
                    TypeSignature::Any(2),
                ],
                Volatility::Immutable,
            ),
        }
    }
}

static DOC: LazyLock<Documentation> = LazyLock::new(|| {
    Documentation::builder(
        DocSection {
            include: true,
            label: "Micromegas functions",
            description: None,
        },
        "Aggregate: the q quantile (0 to 1) of the OTLP histograms (explicit buckets or \
         exponential) in the properties of the rows of measures it aggregates, interpolated \
         inside the bucket where it falls, as Prometheus' histogram_quantile. Delta points add \
         their counts; a cumulative series adds what it grew by between its first and last \
         point among the rows (all its counts if it has one point there). Rows that hold no \
         histogram are left out; NULL when no bucket has a count.",
        "histogram_quantile(q, properties)",
    )
    .with_argument("q", "The quantile, from 0 to 1 (0.99 for p99).")
    .with_argument("properties", "The properties column of measures.")
    .with_sql_example(
        "SELECT name, histogram_quantile(0.99, properties) AS p99 FROM measures \
         WHERE kind = 'histogram' AND time > now() - INTERVAL '1 hour' GROUP BY name",
    )
    .build()
});

impl AggregateUDFImpl for HistogramQuantile {
    fn name(&self) -> &str {
        "histogram_quantile"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn documentation(&self) -> Option<&Documentation> {
        Some(&DOC)
    }

    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        match args {
            [q, DataType::Map(_, _)] if q.is_numeric() => Ok(DataType::Float64),
            _ => plan_err!(
                "histogram_quantile(q, properties) takes a number from 0 to 1 and the \
                 properties column of measures, not {args:?}"
            ),
        }
    }

    fn accumulator(&self, _args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        Ok(Box::<QuantileAccumulator>::default())
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        Ok(vec![Arc::new(Field::new(
            format!("{}[histograms]", args.name),
            DataType::Utf8,
            true,
        ))])
    }
}

#[derive(Debug, Default)]
struct QuantileAccumulator {
    state: State,
}

/// The entries of row `row` of a map column, as text.
fn entries<'a>(
    map: &'a MapArray,
    keys: &'a ArrayRef,
    values: &'a ArrayRef,
    row: usize,
) -> Vec<(&'a str, &'a str)> {
    let (keys, values) = (keys.as_string::<i32>(), values.as_string::<i32>());
    let offsets = map.value_offsets();
    (offsets[row] as usize..offsets[row + 1] as usize)
        .filter(|&i| !keys.is_null(i) && !values.is_null(i))
        .map(|i| (keys.value(i), values.value(i)))
        .collect()
}

impl Accumulator for QuantileAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let [q, map] = values else {
            return exec_err!("histogram_quantile takes 2 arguments");
        };
        let q = arrow::compute::cast(q, &DataType::Float64)?;
        let q = q.as_primitive::<arrow::datatypes::Float64Type>();
        let map = map.as_map();
        let keys = arrow::compute::cast(map.keys(), &DataType::Utf8)?;
        let values = arrow::compute::cast(map.values(), &DataType::Utf8)?;
        for row in 0..map.len() {
            if map.is_null(row) || q.is_null(row) {
                continue;
            }
            let qv = q.value(row);
            if !(0.0..=1.0).contains(&qv) {
                return exec_err!("histogram_quantile: q must be from 0 to 1, not {qv}");
            }
            self.state.q.get_or_insert(qv);
            if let Some(point) = Point::of(&entries(map, &keys, &values, row))? {
                self.state.add(point);
            }
        }
        Ok(())
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let Some(states) = states.first() else {
            return Ok(());
        };
        let states = arrow::compute::cast(states, &DataType::Utf8)?;
        for text in states.as_string::<i32>().iter().flatten() {
            let other: State = serde_json::from_str(text)
                .or_else(|e| exec_err!("histogram_quantile: unreadable partial state: {e}"))?;
            self.state.merge(other);
        }
        Ok(())
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        let text = serde_json::to_string(&self.state)
            .or_else(|e| exec_err!("histogram_quantile: cannot keep its state: {e}"))?;
        Ok(vec![ScalarValue::Utf8(Some(text))])
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        let q = self.state.q.unwrap_or(0.5);
        Ok(ScalarValue::Float64(self.state.quantile(q)))
    }

    fn size(&self) -> usize {
        let series: usize = self
            .state
            .series
            .iter()
            .map(|(k, s)| k.len() + (s.first.1.len() + s.last.1.len()) * 48 + 64)
            .sum();
        std::mem::size_of_val(self) + self.state.delta.len() * 48 + series
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(props: &[(&str, &str)]) -> Point {
        Point::of(props).unwrap().unwrap()
    }

    #[test]
    fn keys_order_like_the_numbers() {
        let xs = [
            f64::NEG_INFINITY,
            -5.0,
            -0.5,
            0.0,
            0.25,
            1.0,
            1e300,
            f64::INFINITY,
        ];
        let keys: Vec<i64> = xs.iter().map(|&x| key(x)).collect();
        assert!(keys.windows(2).all(|w| w[0] < w[1]), "{keys:?}");
        assert!(xs.iter().all(|&x| unkey(key(x)) == x));
    }

    #[test]
    fn explicit_buckets_interpolate_like_prometheus() {
        // 10 in (0, 1], 10 in (1, 5], 0 above 5.
        let p = point(&[
            ("otel.bucket_counts", "10,10,0"),
            ("otel.explicit_bounds", "1,5"),
        ]);
        let mut s = State::default();
        s.add(p);
        assert_eq!(s.quantile(0.25), Some(0.5));
        assert_eq!(s.quantile(0.5), Some(1.0));
        assert_eq!(s.quantile(0.75), Some(3.0));
        assert_eq!(s.quantile(1.0), Some(5.0));
    }

    #[test]
    fn min_and_max_bound_the_open_buckets() {
        let p = point(&[
            ("otel.bucket_counts", "0,2,2"),
            ("otel.explicit_bounds", "10,20"),
            ("otel.min", "12"),
            ("otel.max", "40"),
        ]);
        let mut s = State::default();
        s.add(p);
        // First bucket with a count is (10, 20]; the +Inf bucket ends at max.
        assert_eq!(s.quantile(0.25), Some(15.0));
        assert_eq!(s.quantile(1.0), Some(40.0));
        assert_eq!(s.quantile(0.0), Some(12.0), "never below min");
    }

    #[test]
    fn exponential_buckets_have_their_powers_of_the_base_as_bounds() {
        // scale 0: base 2; positive offset 1: buckets (2, 4], (4, 8]; one zero.
        let p = point(&[
            ("otel.scale", "0"),
            ("otel.zero_count", "1"),
            ("otel.zero_threshold", "0"),
            ("otel.positive_offset", "1"),
            ("otel.positive_bucket_counts", "1,2"),
            ("otel.negative_offset", "0"),
            ("otel.negative_bucket_counts", "1"),
        ]);
        let bounds: Vec<(f64, u64)> = p.buckets.iter().map(|(k, n)| (unkey(*k), *n)).collect();
        assert_eq!(
            bounds,
            [(-2.0, 0), (-1.0, 1), (0.0, 1), (2.0, 0), (4.0, 1), (8.0, 2)]
        );
        let mut s = State::default();
        s.add(p);
        assert_eq!(s.quantile(1.0), Some(8.0));
        assert_eq!(s.quantile(0.5), Some(3.0), "the middle of (2, 4]");
        assert_eq!(s.quantile(0.0), Some(-2.0));
    }

    #[test]
    fn cumulative_series_count_their_growth_and_delta_points_add_up() {
        let cumulative = |counts: &str, start: &str, route: &str| {
            point(&[
                ("route", route),
                ("otel.temporality", "cumulative"),
                ("otel.start_time_unix_nano", start),
                ("otel.bucket_counts", counts),
                ("otel.explicit_bounds", "1,2"),
            ])
        };
        let mut s = State::default();
        // Series a grows by (0, 4, 0) between its first and last point, whatever the order.
        s.add(cumulative("5,1,0", "100", "a"));
        s.add(cumulative("5,5,0", "100", "a"));
        s.add(cumulative("5,3,0", "100", "a"));
        // Series b has one point here: all of it counts. A restart is another series.
        s.add(cumulative("0,0,2", "100", "b"));
        s.add(cumulative("0,0,2", "200", "a"));
        let delta = point(&[
            ("otel.temporality", "delta"),
            ("otel.bucket_counts", "2,0,0"),
            ("otel.explicit_bounds", "1,2"),
        ]);
        s.add(delta);
        let got: Vec<(f64, u64)> = s.buckets().iter().map(|(k, n)| (unkey(*k), *n)).collect();
        assert_eq!(got, [(1.0, 2), (2.0, 4), (f64::INFINITY, 4)]);

        // Partial states merge to the same answer, in any split.
        let mut a = State::default();
        a.add(cumulative("5,5,0", "100", "a"));
        let mut b = State::default();
        b.add(cumulative("5,1,0", "100", "a"));
        let text = serde_json::to_string(&b).unwrap();
        a.merge(serde_json::from_str(&text).unwrap());
        let got: Vec<(f64, u64)> = a.buckets().iter().map(|(k, n)| (unkey(*k), *n)).collect();
        assert_eq!(got, [(1.0, 0), (2.0, 4), (f64::INFINITY, 0)]);
    }

    #[test]
    fn rows_without_histograms_are_left_out_and_bad_ones_are_errors() {
        assert_eq!(Point::of(&[("route", "a")]).unwrap(), None);
        assert_eq!(
            Point::of(&[
                ("otel.no_recorded_value", "true"),
                ("otel.bucket_counts", "")
            ])
            .unwrap(),
            None
        );
        let e = Point::of(&[("otel.bucket_counts", "1,x"), ("otel.explicit_bounds", "1")]);
        assert!(e.unwrap_err().to_string().contains("not a list of numbers"));
        let e = Point::of(&[
            ("otel.bucket_counts", "1,2,3"),
            ("otel.explicit_bounds", "1"),
        ]);
        assert!(e
            .unwrap_err()
            .to_string()
            .contains("3 bucket counts for 1 bounds"));
        assert_eq!(State::default().quantile(0.5), None);
    }
}

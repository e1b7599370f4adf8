//! Ingest benchmark, one run: OTLP trace requests of 512 spans mapped from their protobuf bytes
//! and written durably into a local lake (what the collector does per request), next to prost
//! decode-only of the same requests (the floor) and the mapping without the write; the same ingest with
//! several clients sending at once; bytes on disk per span next to the zstd-compressed OTLP
//! protobuf of the same spans; and native transit batches written into a lake.
//!
//! Then the same for OTLP logs (`support/logs.rs`) and metrics (`support/metrics.rs`):
//! decode-only, mapping, and ingest with several clients.
//!
//! `cargo bench -p micromegas-otlp-receiver --bench ingest` (env: REQUESTS=400 of 512 spans,
//! NATIVE_EVENTS=4000000, RUNS=3, CLIENTS=8, LOG_REQUESTS=200 of 512 records,
//! METRIC_REQUESTS=200 of 400 data points, DIR=target/bench-ingest).
//!
//! Rates are given per wall second on a single-threaded async runtime and per CPU second of
//! the whole process (all threads, from /proc/self/stat), the latter being "per core".

use micromegas_core::sink::MemorySink;
use micromegas_core::transit::batch::Batch;
use micromegas_lake::{Lake, LakeOptions};
use micromegas_otlp_receiver::export;
use micromegas_otlp_receiver::mapping::traces;
use micromegas_otlp_receiver::otlp_json::{to_protobuf, Signal as JsonSignal};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{
    span, status, ResourceSpans, ScopeSpans, Span, Status,
};
use prost::Message;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The allocator of `micromegas-collector`, so that every measure here (the decode-only floor
/// included) runs as in the collector.
#[path = "support/logs.rs"]
mod logs_bench;
#[path = "support/metrics.rs"]
mod metrics_bench;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const SPANS_PER_REQUEST: usize = 512;

fn env_or<T: std::str::FromStr>(key: &str, default: T) -> T {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

fn kv(k: &str, v: any_value::Value) -> KeyValue {
    KeyValue {
        key: k.into(),
        value: Some(AnyValue { value: Some(v) }),
        ..Default::default()
    }
}

fn text(v: &str) -> any_value::Value {
    any_value::Value::StringValue(v.into())
}

const ROUTES: [&str; 6] = [
    "/api/orders",
    "/api/orders/{id}",
    "/api/cart",
    "/api/users/{id}",
    "/health",
    "/api/search",
];

const CHILDREN: [(&str, span::SpanKind); 7] = [
    ("SELECT orders", span::SpanKind::Client),
    ("SELECT users", span::SpanKind::Client),
    ("redis GET", span::SpanKind::Client),
    ("redis SET", span::SpanKind::Client),
    ("POST payments", span::SpanKind::Client),
    ("render", span::SpanKind::Internal),
    ("serialize", span::SpanKind::Internal),
];

fn child_attributes(name: &str, c: usize) -> Vec<KeyValue> {
    let mut attributes = vec![kv("thread.id", any_value::Value::IntValue(c as i64))];
    if name.starts_with("SELECT") {
        attributes.push(kv("db.system", text("postgresql")));
        attributes.push(kv("db.namespace", text("shop")));
        attributes.push(kv("db.query.text", text(&format!("{name} WHERE id = $1"))));
    } else if name.starts_with("redis") {
        attributes.push(kv("db.system", text("redis")));
        attributes.push(kv("server.address", text("cache-1")));
    } else if name.starts_with("POST") {
        attributes.push(kv("http.request.method", text("POST")));
        attributes.push(kv("server.address", text("payments.internal")));
    }
    attributes
}

/// One trace of 8 spans: an HTTP server span and its client, database and internal children,
/// with the usual semantic-convention attributes.
fn trace(rng: &mut Rng, start: u64, spans: &mut Vec<Span>) {
    let trace_id: Vec<u8> = [rng.next(), rng.next()]
        .iter()
        .flat_map(|w| w.to_le_bytes())
        .collect();
    let root_id = rng.next().to_le_bytes().to_vec();
    let route = ROUTES[(rng.next() % 6) as usize];
    let error = rng.next().is_multiple_of(50);
    let client = format!("10.0.{}.{}", rng.next() % 256, rng.next() % 256);
    spans.push(Span {
        trace_id: trace_id.clone(),
        span_id: root_id.clone(),
        name: format!("GET {route}"),
        kind: span::SpanKind::Server as i32,
        start_time_unix_nano: start,
        end_time_unix_nano: start + 2_000_000 + rng.next() % 40_000_000,
        attributes: vec![
            kv("http.request.method", text("GET")),
            kv("http.route", text(route)),
            kv(
                "http.response.status_code",
                any_value::Value::IntValue(if error { 500 } else { 200 }),
            ),
            kv("url.scheme", text("https")),
            kv("server.address", text("api.example.com")),
            kv("client.address", text(&client)),
        ],
        status: error.then(|| Status {
            code: status::StatusCode::Error as i32,
            message: "upstream timeout".into(),
        }),
        ..Default::default()
    });
    for (c, (name, kind)) in CHILDREN.iter().enumerate() {
        let s = start + 100_000 * (c as u64 + 1) + rng.next() % 100_000;
        spans.push(Span {
            trace_id: trace_id.clone(),
            span_id: rng.next().to_le_bytes().to_vec(),
            parent_span_id: root_id.clone(),
            name: (*name).into(),
            kind: *kind as i32,
            start_time_unix_nano: s,
            end_time_unix_nano: s + 50_000 + rng.next() % 2_000_000,
            attributes: child_attributes(name, c),
            ..Default::default()
        });
    }
}

/// The resource of the benchmark's service: its first `attributes` attributes (of 7), as a
/// Java SDK describes a service.
fn resource(attributes: usize) -> Option<Resource> {
    let all = [
        ("service.name", "checkout"),
        ("service.version", "2.14.1"),
        ("host.name", "node-7"),
        ("deployment.environment", "prod"),
        ("telemetry.sdk.language", "java"),
        ("telemetry.sdk.name", "opentelemetry"),
        ("telemetry.sdk.version", "1.44.0"),
    ];
    Some(Resource {
        attributes: all[..attributes.min(all.len())]
            .iter()
            .map(|(k, v)| kv(k, text(v)))
            .collect(),
        ..Default::default()
    })
}

/// A request as an SDK's batch processor sends it: one service, one scope, 512 spans.
fn request(n: u64, rng: &mut Rng, t0: u64) -> ExportTraceServiceRequest {
    let mut spans = Vec::with_capacity(SPANS_PER_REQUEST);
    for t in 0..(SPANS_PER_REQUEST / 8) as u64 {
        let start = t0 + (n * 64 + t) * 1_000_000 + rng.next() % 1_000_000;
        trace(rng, start, &mut spans);
    }
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: resource(7),
            scope_spans: vec![ScopeSpans {
                scope: Some(InstrumentationScope {
                    name: "io.opentelemetry.tomcat-10.0".into(),
                    version: "2.10.0".into(),
                    ..Default::default()
                }),
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

/// CPU time of the whole process (user + system, all threads).
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<u64> = after
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    // utime and stime (fields 14 and 15 of the file, 12 and 13 after the command name), in
    // clock ticks of 1/100 s on Linux.
    let ticks = f.get(11).copied().unwrap_or(0) + f.get(12).copied().unwrap_or(0);
    Duration::from_millis(ticks * 10)
}

fn dir_bytes(path: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(path) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| {
            let p = e.path();
            if p.is_dir() {
                dir_bytes(&p)
            } else {
                e.metadata().map(|m| m.len()).unwrap_or(0)
            }
        })
        .sum()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

struct Run {
    wall: Duration,
    cpu: Duration,
}

impl Run {
    fn measure(f: impl FnOnce()) -> Self {
        let (c0, w0) = (cpu_time(), Instant::now());
        f();
        Run {
            wall: w0.elapsed(),
            cpu: cpu_time().saturating_sub(c0),
        }
    }
}

/// (per wall second, per CPU second), medians.
fn rates(runs: &[Run], n: u64) -> (f64, f64) {
    let wall = runs.iter().map(|r| n as f64 / r.wall.as_secs_f64());
    let cpu = runs
        .iter()
        .map(|r| n as f64 / r.cpu.as_secs_f64().max(0.01));
    (median(wall.collect()), median(cpu.collect()))
}

fn fresh_lake(rt: &tokio::runtime::Runtime, dir: &Path) -> Lake {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).expect("bench dir");
    rt.block_on(Lake::open(
        dir.to_str().expect("utf-8 path"),
        LakeOptions::default(),
    ))
    .expect("lake")
}

/// Sends `wire` into a fresh lake in `dir` from `clients` clients at once, each sending its
/// share of the requests one after the other (writes that meet are committed together);
/// `ingest` stores one request.
fn concurrent_run(
    rt: &tokio::runtime::Runtime,
    dir: &Path,
    wire: &[Vec<u8>],
    clients: usize,
    ingest: impl AsyncFn(&Lake, &[u8]),
) -> Run {
    let lake = fresh_lake(rt, dir);
    let ingest = &ingest;
    Run::measure(|| {
        rt.block_on(futures::future::join_all((0..clients).map(|c| {
            let lake = &lake;
            async move {
                for w in wire.iter().skip(c).step_by(clients) {
                    ingest(lake, w).await;
                }
            }
        })));
    })
}

/// Native batches of spans, logs and metrics from two threads, encoded for the wire.
/// One OTLP signal's part of the benchmark.
struct Signal<'a> {
    /// Its name in the results (`logs`, `metrics`).
    name: &'a str,
    /// What its items are called (`records`, `points`).
    items: &'a str,
    /// Its requests' protobuf bytes.
    wire: &'a [Vec<u8>],
    /// Items per request.
    per_request: u64,
}

impl Signal<'_> {
    /// Measures prost decode-only (`decode`, the floor), the mapping without the write
    /// (`map`), and the durable ingest with `clients` clients at once (`ingest`), and prints
    /// their rows of the results table.
    fn run(
        &self,
        rt: &tokio::runtime::Runtime,
        root: &Path,
        (runs, clients): (usize, usize),
        decode: impl Fn(&[u8]),
        map: impl Fn(&[u8]),
        ingest: impl AsyncFn(&Lake, &[u8]),
    ) {
        let (name, items) = (self.name, self.items);
        let n = self.wire.len() as u64 * self.per_request;
        let (mut decoded, mut mapped) = (Vec::new(), Vec::new());
        for _ in 0..runs.max(3) {
            decoded.push(Run::measure(|| self.wire.iter().for_each(|w| decode(w))));
            mapped.push(Run::measure(|| self.wire.iter().for_each(|w| map(w))));
        }
        let concurrent: Vec<Run> = (0..runs)
            .map(|run| {
                let dir = root.join(format!("{name}-concurrent-{run}"));
                concurrent_run(rt, &dir, self.wire, clients, &ingest)
            })
            .collect();
        let (floor, _) = rates(&decoded, n);
        let (map_rate, _) = rates(&mapped, n);
        let (_, ingest_cpu) = rates(&concurrent, n);
        let bytes: usize = self.wire.iter().map(Vec::len).sum();
        println!(
            "| OTLP {name}: {} requests x {} {items}, protobuf bytes per item | {:.1} |",
            self.wire.len(),
            self.per_request,
            bytes as f64 / n as f64
        );
        println!("| {name}: prost decode only (floor), {items}/s on one thread | {floor:.0} |");
        println!(
            "| {name}: mapped into rows (no write), {items}/s on one thread | {map_rate:.0} ({:.2} of decode-only) |",
            map_rate / floor
        );
        println!(
            "| {name}: ingest, {clients} clients at once, {items} per CPU second (per core) | {ingest_cpu:.0} ({:.2} of decode-only) |",
            ingest_cpu / floor
        );
    }
}

fn native_batches(events_wanted: u64) -> (Vec<Vec<u8>>, u64) {
    let sink = Arc::new(MemorySink::new());
    let options = micromegas_core::Options::default()
        .service_name("native-bench")
        .budget_bytes(1 << 30)
        .ring_bytes(32 << 20)
        .max_ring_bytes(128 << 20)
        .flush_period(Duration::from_millis(10));
    let guard = micromegas_core::init(sink.clone(), options).expect("init");
    // 4 events per iteration: scope begin and end, a log, a metric.
    let per_thread = events_wanted / 2 / 4;
    let workers: Vec<_> = (0..2u64)
        .map(|w| {
            std::thread::spawn(move || {
                for i in 0..per_thread {
                    micromegas_core::span_scope!("handle");
                    micromegas_core::info!("request {} served by worker {}", i, w);
                    micromegas_core::imetric!("latency", "ns", 1000 + i % 977);
                    if i % 10_000 == 9_999 {
                        // Bursts with pauses: the flusher makes batches of tens of thousands
                        // of events, as a busy app's network sink sends them.
                        std::thread::sleep(Duration::from_millis(20));
                    }
                }
            })
        })
        .collect();
    for w in workers {
        w.join().expect("worker");
    }
    let stats = guard.shutdown();
    if stats.total_dropped() > 0 {
        // Flat-out producers can outrun the flusher; only delivered events are ingested.
        eprintln!(
            "note: {} events dropped while generating",
            stats.total_dropped()
        );
    }
    let batches: Vec<Batch> = sink.batches();
    let events = batches.iter().map(Batch::event_count).sum();
    (batches.iter().map(Batch::encode).collect(), events)
}

fn main() {
    let requests: u64 = env_or("REQUESTS", 400);
    let native_events: u64 = env_or("NATIVE_EVENTS", 4_000_000);
    let runs: usize = env_or("RUNS", 3).max(1);
    let clients: usize = env_or("CLIENTS", 8).max(1);
    let default_dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../target/bench-ingest");
    let root = PathBuf::from(env_or("DIR", default_dir.to_string()));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");

    // The requests, as they come over the wire.
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let t0 = micromegas_lake::catalog::now_nanos() as u64 - 3_600_000_000_000;
    let wire: Vec<Vec<u8>> = (0..requests)
        .map(|n| request(n, &mut rng, t0).encode_to_vec())
        .collect();
    let spans = requests * SPANS_PER_REQUEST as u64;
    let proto_bytes: u64 = wire.iter().map(|w| w.len() as u64).sum();
    let zstd_bytes: u64 = wire
        .iter()
        .map(|w| zstd::encode_all(&w[..], 3).expect("zstd").len() as u64)
        .sum();

    // The same requests as OTLP/JSON, as the reference writer (opentelemetry-proto's serde)
    // spells them.
    let json: Vec<Vec<u8>> = (0..requests.min(env_or("JSON_REQUESTS", 100)))
        .map(|n| {
            serde_json::to_vec(
                &ExportTraceServiceRequest::decode(&wire[n as usize][..]).expect("decode"),
            )
            .expect("json")
        })
        .collect();
    let json_spans = json.len() as u64 * SPANS_PER_REQUEST as u64;

    // The floor, prost decode only, and the mapping from the bytes into the Arrow batch the
    // row block stores, without the write (how much of the ingest cost is the mapping), alternated run
    // by run, before any lake exists (an ingest run leaves writeback and threads behind that
    // would slow a measurement taken right after it).
    let (mut decode, mut map_only) = (Vec::new(), Vec::new());
    for _ in 0..runs.max(3) {
        decode.push(Run::measure(|| {
            for w in &wire {
                let r = ExportTraceServiceRequest::decode(&w[..]).expect("decode");
                std::hint::black_box(&r);
            }
        }));
        map_only.push(Run::measure(|| {
            for w in &wire {
                let mapped = traces::map_protobuf(w).expect("map");
                std::hint::black_box(mapped);
            }
        }));
    }

    // Decode + map + durable write, request after request (as the collector answers them).
    let mut ingest = Vec::new();
    let (mut raw_bytes, mut parquet_bytes, mut kept_bytes) = (0, 0, 0);
    let mut materialize = None;
    for run in 0..runs {
        let dir = root.join(format!("otlp-{run}"));
        let lake = fresh_lake(&rt, &dir);
        ingest.push(Run::measure(|| {
            rt.block_on(async {
                for w in &wire {
                    let mapped = traces::map_protobuf(w).expect("map");
                    export::traces(lake.clone(), mapped).await.expect("ingest");
                }
            })
        }));
        if run == 0 {
            // Raw objects of a local lake with a SQLite catalog are in the catalog file.
            let raw_objects = || {
                let bytes = rt.block_on(lake.catalog().raw_object_bytes());
                bytes.expect("raw bytes") as u64
            };
            raw_bytes = raw_objects();
            materialize = Some(Run::measure(|| {
                rt.block_on(lake.materialize_all()).expect("materialize");
            }));
            parquet_bytes = dir_bytes(&dir.join("tables").join("spans"));
            // With raw retention at 0s: what stays on disk once everything is materialized.
            rt.block_on(lake.drop_materialized_raw(std::time::Duration::ZERO))
                .expect("raw retention");
            kept_bytes = raw_objects() + dir_bytes(&dir.join("tables"));
        }
    }

    // The same with `clients` requests in flight, as several SDKs exporting at once: each
    // client sends its share of the requests one after the other (writes that meet are
    // committed together).
    let concurrent: Vec<Run> = (0..runs)
        .map(|run| {
            let dir = root.join(format!("otlp-concurrent-{run}"));
            concurrent_run(&rt, &dir, &wire, clients, async |lake, w| {
                let mapped = traces::map_protobuf(w).expect("map");
                export::traces(lake.clone(), mapped).await.expect("ingest");
            })
        })
        .collect();

    // Native blocks.
    let (native, events) = native_batches(native_events);
    let native_wire: u64 = native.iter().map(|b| b.len() as u64).sum();
    let native_runs: Vec<Run> = (0..runs)
        .map(|run| {
            let lake = fresh_lake(&rt, &root.join(format!("native-{run}")));
            Run::measure(|| {
                rt.block_on(async {
                    for b in &native {
                        lake.write_encoded(b).await.expect("native ingest");
                    }
                })
            })
        })
        .collect();

    // OTLP/JSON into rows: the transcoder to protobuf bytes, and the typed serde decode
    // encoded again (how JSON was read before the transcoder), alternated run by run; last, so
    // that their allocations do not weigh on the measures above.
    let (mut json_typed, mut json_transcoded) = (Vec::new(), Vec::new());
    for _ in 0..runs.max(3) {
        json_transcoded.push(Run::measure(|| {
            for j in &json {
                let bytes = to_protobuf(JsonSignal::Traces, j).expect("json");
                std::hint::black_box(traces::map_protobuf(&bytes).expect("map"));
            }
        }));
        json_typed.push(Run::measure(|| {
            for j in &json {
                let r: ExportTraceServiceRequest = serde_json::from_slice(j).expect("json");
                std::hint::black_box(traces::map_protobuf(&r.encode_to_vec()).expect("map"));
            }
        }));
    }

    let (floor_wall, _) = rates(&decode, spans);
    let (ingest_wall, ingest_cpu) = rates(&ingest, spans);
    let (map_wall, _) = rates(&map_only, spans);
    let (json_transcoded_wall, _) = rates(&json_transcoded, json_spans);
    let (json_typed_wall, _) = rates(&json_typed, json_spans);
    let json_bytes: u64 = json.iter().map(|j| j.len() as u64).sum();
    let (concurrent_wall, concurrent_cpu) = rates(&concurrent, spans);
    let (native_wall, native_cpu) = rates(&native_runs, events);
    let (materialize_wall, materialize_cpu) = rates(materialize.as_slice(), spans);
    let per_span = |b: u64| b as f64 / spans as f64;
    println!(
        "ingest benchmark: {requests} OTLP requests x {SPANS_PER_REQUEST} spans = {spans} \
         spans; {events} native events in {} batches; medians of {runs} runs",
        native.len()
    );
    println!("| measure | value |");
    println!("|---|---|");
    println!("| prost decode only (floor), spans/s on one thread | {floor_wall:.0} |");
    println!(
        "| bytes mapped into the Arrow batch (no write), spans/s on one thread | {map_wall:.0} ({:.2} of decode-only) |",
        map_wall / floor_wall
    );
    println!(
        "| OTLP/JSON ({:.0} bytes/span) mapped (no write), spans/s on one thread | {json_transcoded_wall:.0} \
         ({:.2}x through the typed serde decode: {json_typed_wall:.0}) |",
        json_bytes as f64 / json_spans.max(1) as f64,
        json_transcoded_wall / json_typed_wall
    );
    println!(
        "| OTLP ingest (map + durable write), spans/s, wall, one async thread | {ingest_wall:.0} |"
    );
    println!("| OTLP ingest, spans per CPU second of the process (per core) | {ingest_cpu:.0} |");
    println!(
        "| OTLP ingest per core / decode-only | {:.3} |",
        ingest_cpu / floor_wall
    );
    println!(
        "| materialization of the first run's spans into Parquet, spans/s, wall | {materialize_wall:.0} |"
    );
    println!(
        "| materialization, spans per CPU second of the process (per core) | {materialize_cpu:.0} |"
    );
    println!("| OTLP ingest, {clients} clients at once, spans/s, wall, one async thread | {concurrent_wall:.0} |");
    println!(
        "| OTLP ingest, {clients} clients at once, spans per CPU second (per core) | {concurrent_cpu:.0} |"
    );
    println!(
        "| OTLP ingest, {clients} clients at once, per core / decode-only | {:.3} |",
        concurrent_cpu / floor_wall
    );
    println!(
        "| OTLP protobuf, bytes/span | {:.1} |",
        per_span(proto_bytes)
    );
    println!(
        "| OTLP protobuf zstd(3) per request, bytes/span | {:.1} |",
        per_span(zstd_bytes)
    );
    println!(
        "| raw row blocks on disk, bytes/span (ratio to zstd OTLP) | {:.1} ({:.2}x) |",
        per_span(raw_bytes),
        raw_bytes as f64 / zstd_bytes as f64
    );
    println!(
        "| spans Parquet on disk, bytes/span (ratio to zstd OTLP) | {:.1} ({:.2}x) |",
        per_span(parquet_bytes),
        parquet_bytes as f64 / zstd_bytes as f64
    );
    println!(
        "| on disk after raw retention (raw + every table), bytes/span (ratio to zstd OTLP) | {:.1} ({:.2}x) |",
        per_span(kept_bytes),
        kept_bytes as f64 / zstd_bytes as f64
    );
    println!(
        "| native transit on the wire, bytes/event | {:.2} |",
        native_wire as f64 / events as f64
    );
    println!("| native ingest, events/s, wall, one async thread | {native_wall:.0} |");
    println!(
        "| native ingest, events per CPU second of the process (per core) | {native_cpu:.0} |"
    );
    let log_requests: u64 = env_or("LOG_REQUESTS", 200);
    if log_requests > 0 {
        logs_bench::run(&rt, &root, log_requests, runs, clients);
    }
    let metric_requests: u64 = env_or("METRIC_REQUESTS", 200);
    if metric_requests > 0 {
        metrics_bench::run(&rt, &root, metric_requests, runs, clients);
    }
}

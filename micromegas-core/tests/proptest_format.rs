//! Property tests of the format: random event sequences come back exactly as emitted, and
//! random corruptions of valid input never make a decoder panic.

mod common;

use common::{serial, Decoded};
use micromegas_core::model::StreamKind;
use micromegas_core::read::{decode_block, scope_span_id, thread_scopes, Event};
use micromegas_core::sink::MemorySink;
use micromegas_core::transit::batch::Batch;
use micromegas_core::{init, Options};
use proptest::prelude::*;
use std::collections::HashMap;
use std::sync::Arc;

#[derive(Debug, Clone)]
enum Op {
    Static,
    Int(i64),
    Mixed(u64, String, bool),
    Float(f64),
    IMetric(u64),
    FMetric(f64),
    Tagged(u32, String),
    Scope(Vec<Op>),
}

fn op() -> impl Strategy<Value = Op> {
    let leaf = prop_oneof![
        Just(Op::Static),
        any::<i64>().prop_map(Op::Int),
        (any::<u64>(), ".{0,40}", any::<bool>()).prop_map(|(a, b, c)| Op::Mixed(a, b, c)),
        (-1e12f64..1e12).prop_map(Op::Float),
        any::<u64>().prop_map(Op::IMetric),
        (-1e12f64..1e12).prop_map(Op::FMetric),
        (any::<u32>(), "[a-z]{0,12}").prop_map(|(a, b)| Op::Tagged(a, b)),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        prop::collection::vec(inner, 0..8).prop_map(Op::Scope)
    })
}

#[derive(Debug, Clone, PartialEq)]
enum Expected {
    /// A log's message, and the ordinals (in order of beginning, from 1) of the innermost and
    /// outermost scopes open when it was made.
    Log(String, Option<u32>, Option<u32>),
    Measure(String, f64, Vec<(String, String)>),
    Scope(String, u32),
}

/// What `run` records while it emits events.
#[derive(Default)]
struct Expectations {
    logs: Vec<Expected>,
    measures: Vec<Expected>,
    scopes: Vec<Expected>,
    /// Scopes begun so far.
    begun: u32,
    /// Ordinals of the open scopes, outermost first.
    open: Vec<u32>,
}

impl Expectations {
    fn log(&mut self, msg: String) {
        let innermost = self.open.last().copied();
        self.logs
            .push(Expected::Log(msg, innermost, self.open.first().copied()));
    }
}

fn run(ops: &[Op], depth: u32, x: &mut Expectations) {
    for op in ops {
        match op {
            Op::Static => {
                micromegas_core::info!("static text");
                x.log("static text".into());
            }
            Op::Int(v) => {
                micromegas_core::info!("int {}", *v);
                x.log(format!("int {v}"));
            }
            Op::Mixed(a, b, c) => {
                micromegas_core::warn!("mixed {} [{}] {}", *a, b.as_str(), *c);
                x.log(format!("mixed {a} [{b}] {c}"));
            }
            Op::Float(v) => {
                micromegas_core::error!("float {}", *v);
                x.log(format!("float {v}"));
            }
            Op::IMetric(v) => {
                micromegas_core::imetric!("im", "count", *v);
                x.measures
                    .push(Expected::Measure("im".into(), *v as f64, vec![]));
            }
            Op::FMetric(v) => {
                micromegas_core::fmetric!("fm", "s", *v);
                x.measures.push(Expected::Measure("fm".into(), *v, vec![]));
            }
            Op::Tagged(v, tag) => {
                micromegas_core::imetric!("tagged", "count", *v, "tag" => tag.as_str());
                x.measures.push(Expected::Measure(
                    "tagged".into(),
                    *v as f64,
                    vec![("tag".into(), tag.clone())],
                ));
            }
            Op::Scope(inner) => {
                micromegas_core::span_scope!("scope");
                x.begun += 1;
                x.open.push(x.begun);
                run(inner, depth + 1, x);
                x.open.pop();
                x.scopes.push(Expected::Scope("scope".into(), depth));
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn random_event_sequences_round_trip(ops in prop::collection::vec(op(), 0..40)) {
        let _s = serial();
        let sink = Arc::new(MemorySink::new());
        let guard = init(sink.clone(), Options::default().panic_hook(false)).unwrap();
        let x = std::thread::spawn(move || {
            let mut x = Expectations::default();
            run(&ops, 0, &mut x);
            x
        }).join().unwrap();
        let (logs, measures, scopes) = (x.logs, x.measures, x.scopes);
        let stats = guard.shutdown();
        prop_assert_eq!(stats.total_dropped(), 0);
        let decoded = Decoded::of(&sink.batches());
        // The ids the reader gives the scopes, by ordinal of beginning.
        let ordinals: HashMap<u64, u32> = match &decoded.process {
            Some(process) => decoded.of_kind(StreamKind::Spans)
                .flat_map(|(stream, e)| e.iter().map(move |e| (stream.thread_id, e)))
                .filter_map(|(thread, e)| match e {
                    Event::Span(s) if s.begin && s.span_id.is_none() => Some((thread, s.ticks)),
                    _ => None,
                })
                .zip(1..)
                .map(|((thread, ticks), n)| (scope_span_id(process, thread, ticks), n))
                .collect(),
            None => HashMap::new(),
        };
        let ordinal = |id: u64| (id != 0).then(|| ordinals.get(&id).copied().unwrap_or(0));
        let got_logs: Vec<_> = decoded.of_kind(StreamKind::Logs).flat_map(|(_, e)| e).map(|e| match e {
            Event::Log(l) => Expected::Log(
                l.msg.clone(),
                ordinal(l.span_id),
                ordinal(u64::try_from(l.trace_id).unwrap()),
            ),
            other => panic!("{other:?}"),
        }).collect();
        prop_assert_eq!(got_logs, logs);
        let got_measures: Vec<_> = decoded.of_kind(StreamKind::Metrics).flat_map(|(_, e)| e).filter_map(|e| match e {
            Event::Measure(m) if m.location.name != "micromegas.dropped_events" =>
                Some(Expected::Measure(m.location.name.clone(), m.value, m.properties.clone())),
            _ => None,
        }).collect();
        prop_assert_eq!(got_measures, measures);
        let got_scopes: Vec<_> = decoded.of_kind(StreamKind::Spans)
            .flat_map(|(stream, e)| {
                thread_scopes(decoded.process.as_ref().expect("a process"), stream, e)
            })
            .map(|s| Expected::Scope(s.name, s.depth))
            .collect();
        prop_assert_eq!(got_scopes, scopes);
    }
}

/// A valid batch with every event kind, to corrupt.
fn sample_batch() -> Vec<u8> {
    static SAMPLE: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    SAMPLE
        .get_or_init(|| {
            let _s = serial();
            let sink = Arc::new(MemorySink::new());
            let guard = init(sink.clone(), Options::default().panic_hook(false)).unwrap();
            std::thread::spawn(|| {
                micromegas_core::span_scope!("outer");
                micromegas_core::info!("hello {} {}", 1, "two");
                micromegas_core::imetric!("m", "count", 3, "k" => "v");
                micromegas_core::fmetric!("f", "s", 0.5);
            })
            .join()
            .unwrap();
            guard.shutdown();
            // Merge all batches' blocks into one so that the sample has every stream.
            let batches = sink.batches();
            let mut merged: Batch = batches[0].clone();
            for b in &batches[1..] {
                merged.streams.extend(b.streams.iter().cloned());
                merged.blocks.extend(b.blocks.iter().cloned());
            }
            merged.streams.sort_by_key(|s| s.stream_id);
            merged.streams.dedup_by_key(|s| s.stream_id);
            merged.encode()
        })
        .clone()
}

/// Decodes as deeply as possible; only errors are allowed, never a panic.
fn decode_everything(bytes: &[u8]) -> usize {
    let Ok(batch) = Batch::decode(bytes) else {
        return 0;
    };
    let mut n = 0;
    for block in &batch.blocks {
        let Some(stream) = batch.stream_of(block) else {
            continue;
        };
        if let Ok(events) = decode_block(&batch.process, stream, block) {
            n += events.len();
        }
    }
    n
}

#[test]
fn the_sample_decodes() {
    let sample = sample_batch();
    assert!(decode_everything(&sample) >= 5);
    // `MICROMEGAS_FUZZ_SEED=path cargo test --test proptest_format the_sample` writes the
    // seed of the fuzz corpus.
    if let Ok(path) = std::env::var("MICROMEGAS_FUZZ_SEED") {
        std::fs::write(path, &sample).unwrap();
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn bit_flips_never_panic(flips in prop::collection::vec((any::<prop::sample::Index>(), 0u8..8), 1..6)) {
        let mut bytes = sample_batch();
        for (i, bit) in flips {
            let i = i.index(bytes.len());
            bytes[i] ^= 1 << bit;
        }
        decode_everything(&bytes);
    }

    #[test]
    fn truncations_never_panic(cut in any::<prop::sample::Index>()) {
        let bytes = sample_batch();
        let cut = cut.index(bytes.len());
        prop_assert_eq!(decode_everything(&bytes[..cut]), 0);
    }

    #[test]
    fn random_bytes_never_panic(mut bytes in prop::collection::vec(any::<u8>(), 0..512), prefix in any::<bool>()) {
        if prefix {
            let mut v = b"MMTB\x01".to_vec();
            v.append(&mut bytes);
            bytes = v;
        }
        decode_everything(&bytes);
    }

    #[test]
    fn overwritten_ranges_never_panic(at in any::<prop::sample::Index>(), junk in prop::collection::vec(any::<u8>(), 1..16)) {
        let mut bytes = sample_batch();
        let at = at.index(bytes.len());
        for (k, b) in junk.iter().enumerate() {
            if at + k < bytes.len() {
                bytes[at + k] = *b;
            }
        }
        decode_everything(&bytes);
    }
}

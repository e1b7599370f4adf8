//! The seeds of the collector's fuzz targets (`micromegas-otlp-receiver/fuzz`): requests with
//! every kind of field, checked here to round-trip through the encodings the endpoints accept.
//! `MICROMEGAS_FUZZ_CORPUS=DIR cargo test --test it fuzz_seeds` writes them under
//! `DIR/otlp_mapping` and `DIR/native_ingest`.

use crate::common::capture;
use micromegas_core::transit::batch::Batch;
use micromegas_tracing_layer::network::proto::WriteRequest;
use prost::Message;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::path::Path;

/// Writes `bytes` as the seed `name` of `target` when a corpus directory is given.
fn seed(target: &str, name: &str, bytes: &[u8]) {
    if let Some(dir) = std::env::var_os("MICROMEGAS_FUZZ_CORPUS") {
        let dir = Path::new(&dir).join(target);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(name), bytes).unwrap();
    }
}

/// Checks that `req` round-trips as protobuf and as OTLP/JSON and writes both as seeds of
/// `otlp_mapping`, whose first byte selects the signal (`signal << 1`) and JSON (bit 0).
fn otlp_seeds<T>(signal: u8, name: &str, req: &T)
where
    T: Message + Default + Serialize + DeserializeOwned + PartialEq + std::fmt::Debug,
{
    let protobuf = req.encode_to_vec();
    assert_eq!(&T::decode(protobuf.as_slice()).unwrap(), req);
    let json = serde_json::to_vec(req).unwrap();
    assert_eq!(&serde_json::from_slice::<T>(&json).unwrap(), req);
    for (encoding, body) in [(0u8, protobuf), (1, json)] {
        let mut input = vec![signal << 1 | encoding];
        input.extend_from_slice(&body);
        let kind = ["protobuf", "json"][encoding as usize];
        seed("otlp_mapping", &format!("{name}-{kind}"), &input);
    }
}

#[test]
fn fuzz_seeds_round_trip() {
    otlp_seeds(0, "traces", &crate::grpc::traces());
    otlp_seeds(1, "logs", &crate::grpc::logs());
    otlp_seeds(2, "metrics", &crate::grpc::metrics());

    let batch = capture("fuzz-seed", || {
        micromegas_core::span_scope!("outer");
        micromegas_core::info!("request {} took {} ms ok={}", "GET /", 1.5, true);
        {
            micromegas_core::span_scope!("inner");
            micromegas_core::warn!(target: "seed", "slow");
        }
        micromegas_core::imetric!("requests", "count", 3);
        micromegas_core::fmetric!("latency", "ms", 1.5);
    });
    let request = WriteRequest {
        batch: batch.encode().into(),
    };
    let body = request.encode_to_vec();
    let decoded = Batch::decode(&WriteRequest::decode(body.as_slice()).unwrap().batch).unwrap();
    assert_eq!(decoded.blocks.len(), batch.blocks.len());
    assert!(
        decoded.streams.len() >= 3,
        "spans, logs and metrics streams"
    );
    seed("native_ingest", "spans-logs-metrics", &body);
}

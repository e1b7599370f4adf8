//! # micromegas-otlp-receiver
//!
//! The collector of micromegas: OpenTelemetry traces, logs and metrics (OTLP over gRPC and
//! HTTP, protobuf or JSON) and native transit blocks (from the tracing layer's network sink)
//! into the lake, in the same tables. A request is answered only once its rows are durable;
//! retries are stored once. [`Collector`] holds what the servers share (the lake, the message
//! size limit, bearer tokens, the in-flight budget that turns overload into UNAVAILABLE /
//! 503 with a retry delay, and the write deadline past which a request is refused the same
//! way while its write goes on: [`Collector::write`]); [`grpc::serve`] and [`http::serve`] serve it; [`mapping`] turns
//! OTLP into rows and can be used alone; [`otlp_json`] turns OTLP/JSON bodies into the
//! protobuf bytes of the same request, so both encodings share one mapping. Trace and logs
//! requests are mapped straight from their protobuf bytes ([`mapping::traces::map_protobuf`],
//! [`mapping::logs::map_protobuf`]: no decoded message in between); [`mapping::traces::map`]
//! takes a decoded request:
//!
//! ```
//! use micromegas_otlp_receiver::mapping::traces;
//! use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
//! use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
//!
//! let span = Span {
//!     trace_id: vec![1; 16],
//!     span_id: vec![2; 8],
//!     name: "GET /".into(),
//!     start_time_unix_nano: 10,
//!     end_time_unix_nano: 20,
//!     ..Default::default()
//! };
//! let req = ExportTraceServiceRequest {
//!     resource_spans: vec![ResourceSpans {
//!         scope_spans: vec![ScopeSpans { spans: vec![span], ..Default::default() }],
//!         ..Default::default()
//!     }],
//! };
//! let mapped = traces::map(&req);
//! assert_eq!(mapped.row_count(), 1);
//! let batch = &mapped.groups[0].1; // the `spans` rows of the first resource, as Arrow
//! let trace_ids = batch.column_by_name("trace_id").unwrap();
//! let trace_ids = trace_ids.as_any().downcast_ref::<micromegas_lake::arrow::array::StringArray>();
//! assert_eq!(trace_ids.unwrap().value(0), "01010101010101010101010101010101");
//!
//! // The same from the bytes a client sends; bytes that are not a request are an error.
//! use prost::Message;
//! let from_bytes = traces::map_protobuf(&req.encode_to_vec()).unwrap();
//! assert_eq!(from_bytes.mapped.row_count(), 1);
//! assert!(traces::map_protobuf(&[0x0a, 0x05]).is_err());
//! ```
#![warn(missing_docs)]

pub mod admission;
pub mod bytes_service;
pub use micromegas_lake::auth;
pub mod collector;
pub mod export;
pub mod grpc;
pub mod http;
pub mod ingest;
pub mod mapping;
pub mod native;
pub mod otlp_json;
pub mod rpc_status;
pub mod telemetry;

pub use collector::{Collector, CollectorOptions};

//! Integration tests of micromegas-otlp-receiver, one binary (each test file of a crate linked with
//! DataFusion would be a binary of its own, about a gigabyte in a debug build).

mod auth;
mod bad_input;
mod collector_down;
#[allow(dead_code)]
mod common;
mod crash;
mod fuzz_seeds;
mod grpc;
mod http;
mod native_sink;
mod orphans;
mod otlp_bytes;
mod python_sdk;
mod scale_out;
mod security;
mod shutdown;
mod soak;
mod storage_down;

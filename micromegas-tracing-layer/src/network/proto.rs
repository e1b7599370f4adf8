//! The native ingest protocol: one gRPC method taking a transit batch.
//!
//! ```text
//! package micromegas.ingest.v1;
//! service NativeIngest { rpc Write(WriteRequest) returns (WriteReply); }
//! message WriteRequest { bytes batch = 1; }   // Batch::encode(): streams + lz4 blocks
//! message WriteReply { uint64 blocks_written = 1; uint64 blocks_skipped = 2; }
//! ```
//!
//! Blocks carry their own ids, so a batch sent twice (a retry after a lost reply) is written
//! once: the second time its blocks are counted as skipped.

/// The gRPC service name.
pub const SERVICE: &str = "micromegas.ingest.v1.NativeIngest";
/// The method name.
pub const METHOD: &str = "Write";
/// The request path of `NativeIngest/Write`.
pub const WRITE_PATH: &str = "/micromegas.ingest.v1.NativeIngest/Write";

/// A transit batch, as [`micromegas_core::transit::batch::Batch::encode`] writes it.
#[derive(Clone, PartialEq, prost::Message)]
pub struct WriteRequest {
    /// The encoded batch.
    #[prost(bytes = "bytes", tag = "1")]
    pub batch: bytes::Bytes,
}

/// What the collector did with a batch; sent once the blocks are durable in its lake.
#[derive(Clone, Copy, PartialEq, Eq, prost::Message)]
pub struct WriteReply {
    /// Blocks written now.
    #[prost(uint64, tag = "1")]
    pub blocks_written: u64,
    /// Blocks the lake already had (a retry).
    #[prost(uint64, tag = "2")]
    pub blocks_skipped: u64,
}

//! `google.rpc.Status` and `google.rpc.RetryInfo`: the error body of OTLP/HTTP and the details
//! of a gRPC UNAVAILABLE that tell the client when to retry.

use prost::Message;
use std::time::Duration;

/// `google.rpc.Status`.
#[derive(Clone, PartialEq, prost::Message, serde::Serialize)]
pub struct RpcStatus {
    /// The gRPC code.
    #[prost(int32, tag = "1")]
    pub code: i32,
    /// What went wrong, and what to do.
    #[prost(string, tag = "2")]
    pub message: String,
    /// Typed details (`RetryInfo`).
    #[prost(message, repeated, tag = "3")]
    #[serde(skip)]
    pub details: Vec<Any>,
}

/// `google.protobuf.Any`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Any {
    /// Type of `value`.
    #[prost(string, tag = "1")]
    pub type_url: String,
    /// The encoded message.
    #[prost(bytes = "vec", tag = "2")]
    pub value: Vec<u8>,
}

/// `google.rpc.RetryInfo`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct RetryInfo {
    /// How long to wait before retrying.
    #[prost(message, optional, tag = "1")]
    pub retry_delay: Option<ProtoDuration>,
}

/// `google.protobuf.Duration`.
#[derive(Clone, Copy, PartialEq, prost::Message)]
pub struct ProtoDuration {
    /// Whole seconds.
    #[prost(int64, tag = "1")]
    pub seconds: i64,
    /// Nanoseconds on top.
    #[prost(int32, tag = "2")]
    pub nanos: i32,
}

const RETRY_INFO_TYPE: &str = "type.googleapis.com/google.rpc.RetryInfo";

/// A gRPC UNAVAILABLE carrying `RetryInfo` with `delay`, as OTLP clients expect for
/// backpressure.
pub fn unavailable_retry_after(message: String, delay: Duration) -> tonic::Status {
    let retry = RetryInfo {
        retry_delay: Some(ProtoDuration {
            seconds: delay.as_secs() as i64,
            nanos: delay.subsec_nanos() as i32,
        }),
    };
    let status = RpcStatus {
        code: tonic::Code::Unavailable as i32,
        message: message.clone(),
        details: vec![Any {
            type_url: RETRY_INFO_TYPE.into(),
            value: retry.encode_to_vec(),
        }],
    };
    tonic::Status::with_details(
        tonic::Code::Unavailable,
        message,
        status.encode_to_vec().into(),
    )
}

/// The retry delay of a status made by [`unavailable_retry_after`] (or any status carrying
/// `RetryInfo`).
pub fn retry_delay(status: &tonic::Status) -> Option<Duration> {
    let rpc = RpcStatus::decode(status.details()).ok()?;
    let any = rpc.details.iter().find(|a| a.type_url == RETRY_INFO_TYPE)?;
    let d = RetryInfo::decode(&any.value[..]).ok()?.retry_delay?;
    Some(Duration::new(
        d.seconds.max(0) as u64,
        d.nanos.max(0) as u32,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_info_round_trips() {
        let s = unavailable_retry_after("busy".into(), Duration::from_millis(1500));
        assert_eq!(s.code(), tonic::Code::Unavailable);
        assert_eq!(retry_delay(&s), Some(Duration::from_millis(1500)));
    }
}

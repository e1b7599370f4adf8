//! Any body of a native ingest request (`NativeIngest/Write`) must be refused as invalid or
//! stored; what is stored must materialize without error (blocks the materializer cannot
//! read are set aside and counted, never an error that would stop the table), and sending
//! the same request again stores nothing new.
#![no_main]

use libfuzzer_sys::fuzz_target;
use micromegas_lake::{Lake, LakeOptions};
use micromegas_otlp_receiver::{native, Collector, CollectorOptions};
use micromegas_tracing_layer::network::proto::WriteRequest;
use prost::Message;
use std::sync::OnceLock;

fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a tokio runtime starts")
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(request) = WriteRequest::decode(data) else {
        return;
    };
    runtime().block_on(async {
        let lake = Lake::open("memory://", LakeOptions::default())
            .await
            .expect("an in-memory lake opens");
        let collector = Collector::new(lake.clone(), CollectorOptions::default());
        match native::write(&collector, request.clone()).await {
            Ok(first) => {
                let again = native::write(&collector, request)
                    .await
                    .expect("a request the collector took once is taken again");
                assert_eq!(
                    again.blocks_written, 0,
                    "a retried request stored blocks twice"
                );
                assert_eq!(
                    again.blocks_skipped,
                    first.blocks_written + first.blocks_skipped
                );
                lake.materialize_all()
                    .await
                    .expect("stored blocks materialize (unreadable ones are set aside)");
            }
            Err(status) => assert_eq!(
                status.code(),
                tonic::Code::InvalidArgument,
                "bad input must be refused as invalid, not as a failure of the lake: {status:?}"
            ),
        }
        lake.catalog().close().await;
    });
});

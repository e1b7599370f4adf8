//! An app already instrumented with `tracing` and logging to the terminal through `fmt`:
//! adding `MicromegasLayer` to its subscriber captures the same spans and events, with their
//! fields, into micromegas; the terminal output does not change.
//!
//! `cargo run --example tracing_app -- [--collector URL | LAKE]` (default `./micromegas-lake`;
//! `RUST_LOG` filters both layers, default `info`)

use micromegas_examples::Destination;
use micromegas_tracing_layer::MicromegasLayer;
use std::time::Duration;
use tracing::{info, info_span, warn, Instrument};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::EnvFilter;

async fn lookup(user: u64) -> Option<&'static str> {
    tokio::time::sleep(Duration::from_millis(1)).await;
    match user % 4 {
        0 => None,
        1 => Some("alice"),
        2 => Some("bob"),
        _ => Some("carol"),
    }
}

async fn serve(request: u64) {
    let user = request * 3;
    let name = lookup(user)
        .instrument(info_span!("db.lookup", db.table = "users", user))
        .await;
    match name {
        Some(name) => info!(user, name, status = 200, "served profile"),
        None => warn!(user, status = 404, "no such user"),
    }
}

fn main() {
    let destination = Destination::from_args(std::env::args().skip(1));
    let (layer, guard) = MicromegasLayer::builder()
        .service_name("tracing_app")
        .sink(destination.sink.clone())
        .build()
        .expect("micromegas is initialized once per process");
    // The app's existing subscriber (filter + fmt), with one more layer.
    tracing_subscriber::registry()
        .with(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")))
        .with(tracing_subscriber::fmt::layer())
        .with(layer)
        .init();

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()
        .expect("tokio runtime");
    runtime.block_on(async {
        let requests: Vec<_> = (0..8u64)
            .map(|r| {
                let span = info_span!(
                    "http.request",
                    method = "GET",
                    route = "/profile",
                    request = r
                );
                tokio::spawn(serve(r).instrument(span))
            })
            .collect();
        for r in requests {
            r.await.expect("request task");
        }
    });
    destination.report(&guard.shutdown());
}

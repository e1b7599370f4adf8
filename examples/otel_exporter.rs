//! A service instrumented with the OpenTelemetry Rust SDK (no micromegas code) sending traces,
//! logs and metrics over OTLP/gRPC to a micromegas-collector:
//!
//! `cargo run --example otel_exporter -- [ENDPOINT]` (default: `OTEL_EXPORTER_OTLP_ENDPOINT`, or
//! `http://127.0.0.1:4317`).

#[tokio::main]
async fn main() {
    let endpoint = std::env::args()
        .nth(1)
        .or_else(|| std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT").ok())
        .unwrap_or_else(|| "http://127.0.0.1:4317".to_owned());
    let sent = {
        let endpoint = endpoint.clone();
        tokio::task::spawn_blocking(move || {
            micromegas_examples::otel_exporter::run(&endpoint, "rust-shop")
                .map_err(|e| e.to_string())
        })
        .await
    };
    match sent {
        Ok(Ok(())) => println!("sent traces, logs and metrics to {endpoint}"),
        Ok(Err(e)) => {
            eprintln!("export to {endpoint} failed: {e}");
            std::process::exit(1);
        }
        Err(e) => {
            eprintln!("the exporting task failed: {e}");
            std::process::exit(1);
        }
    }
}

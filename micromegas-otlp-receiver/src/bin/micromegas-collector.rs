//! `micromegas-collector`: OTLP/gRPC into a micromegas lake, keeping it materialized.

use anyhow::Context;
use clap::Parser;
use micromegas_lake::maintenance::MaintenanceOptions;
use micromegas_lake::{Lake, LakeOptions, S3Options, DEFAULT_LAKE};
use std::time::Duration;

/// The micromegas collector: receives OpenTelemetry traces and logs over OTLP/gRPC and writes
/// them into a lake (acknowledged only once durable), which it keeps materialized, compacted
/// and, if asked, trimmed to a retention age.
#[derive(Debug, Parser)]
#[command(name = "micromegas-collector", version, about, long_about)]
struct Args {
    /// The lake: a directory, file://DIR, s3://bucket/prefix or memory://.
    #[arg(long, env = "MICROMEGAS_LAKE", default_value = DEFAULT_LAKE)]
    lake: String,

    /// Catalog database (postgres://user:password@host/db); default: SQLite inside a local
    /// lake.
    #[arg(long, env = "MICROMEGAS_CATALOG", hide_env_values = true)]
    catalog: Option<String>,

    /// S3 endpoint, e.g. http://127.0.0.1:8333 (default: AWS_ENDPOINT_URL).
    #[arg(long, env = "MICROMEGAS_S3_ENDPOINT")]
    s3_endpoint: Option<String>,

    /// Address of the OTLP/gRPC server.
    #[arg(long, env = "MICROMEGAS_GRPC_ADDR", default_value = "127.0.0.1:4317")]
    grpc_addr: String,

    /// Largest request accepted, in MiB, after decompression.
    #[arg(long, env = "MICROMEGAS_MAX_MESSAGE_MIB", default_value_t = 64)]
    max_message_mib: usize,

    /// Delete data older than this age (e.g. 30d, 12h); default: keep everything.
    #[arg(long, env = "MICROMEGAS_RETENTION", value_parser = micromegas_lake::retention::parse_age)]
    retention: Option<Duration>,
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let options = LakeOptions {
        catalog: args.catalog.clone(),
        s3: S3Options {
            endpoint: args.s3_endpoint.clone(),
            ..Default::default()
        },
    };
    let lake = Lake::open(&args.lake, options)
        .await
        .with_context(|| format!("cannot open the lake at {}", args.lake))?;
    let maintenance = lake.spawn_maintenance(
        MaintenanceOptions {
            retention: args.retention,
            ..Default::default()
        },
        |e| eprintln!("maintenance: {e}"),
    );
    let listener = tokio::net::TcpListener::bind(&args.grpc_addr)
        .await
        .with_context(|| format!("cannot listen on {} (--grpc-addr)", args.grpc_addr))?;
    eprintln!(
        "micromegas-collector: OTLP/gRPC on {}, lake {}",
        listener.local_addr()?,
        args.lake
    );
    micromegas_otlp_receiver::grpc::serve(
        lake,
        listener,
        args.max_message_mib << 20,
        shutdown_signal(),
    )
    .await
    .context("gRPC server failed")?;
    eprintln!("micromegas-collector: stopping; requests in flight were answered");
    maintenance.stop().await;
    Ok(())
}

//! `micromegas-collector`: OTLP/gRPC into a micromegas lake, keeping it materialized.

use anyhow::Context;
use clap::Parser;
use micromegas_lake::maintenance::MaintenanceOptions;
use micromegas_lake::Lake;
use std::time::Duration;

/// The micromegas collector: receives OpenTelemetry traces, logs and metrics over OTLP (gRPC
/// and HTTP, protobuf or JSON) and native blocks (HTTP POST /v1/native), and writes them into
/// a lake (acknowledged only once durable), which it keeps materialized, compacted
/// and, if asked, trimmed to a retention age.
#[derive(Debug, Parser)]
#[command(name = "micromegas-collector", version, about, long_about)]
struct Args {
    #[command(flatten)]
    lake: micromegas_lake::cli::LakeArgs,

    /// Address of the OTLP/gRPC server.
    #[arg(long, env = "MICROMEGAS_GRPC_ADDR", default_value = "127.0.0.1:4317")]
    grpc_addr: String,

    /// Address of the OTLP/HTTP server (also native blocks at /v1/native and /health).
    #[arg(long, env = "MICROMEGAS_HTTP_ADDR", default_value = "127.0.0.1:4318")]
    http_addr: String,

    /// Largest request accepted, in MiB, after decompression.
    #[arg(long, env = "MICROMEGAS_MAX_MESSAGE_MIB", default_value_t = 64)]
    max_message_mib: usize,

    /// Require `Authorization: Bearer <token>` on ingest, with one of these tokens (repeat
    /// the flag, or separate with commas in the variable). Default: no authentication.
    #[arg(
        long = "auth-token",
        env = "MICROMEGAS_AUTH_TOKENS",
        value_delimiter = ',',
        hide_env_values = true
    )]
    auth_tokens: Vec<String>,

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
    let lake = Lake::open(&args.lake.lake, args.lake.options())
        .await
        .with_context(|| format!("cannot open the lake at {}", args.lake.lake))?;
    let maintenance = lake.spawn_maintenance(
        MaintenanceOptions {
            retention: args.retention,
            ..Default::default()
        },
        |e| eprintln!("maintenance: {e}"),
    );
    let grpc = tokio::net::TcpListener::bind(&args.grpc_addr)
        .await
        .with_context(|| format!("cannot listen on {} (--grpc-addr)", args.grpc_addr))?;
    let http = tokio::net::TcpListener::bind(&args.http_addr)
        .await
        .with_context(|| format!("cannot listen on {} (--http-addr)", args.http_addr))?;
    eprintln!(
        "micromegas-collector: OTLP/gRPC on {}, OTLP/HTTP and native blocks on {}, lake {}",
        grpc.local_addr()?,
        http.local_addr()?,
        args.lake.lake
    );
    let (stop, stopping) = tokio::sync::watch::channel(false);
    let wait = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let max = args.max_message_mib << 20;
    let tokens = micromegas_otlp_receiver::auth::Tokens::new(args.auth_tokens.clone());
    if tokens.is_open() {
        eprintln!(
            "micromegas-collector: no --auth-token: ingest is open to anyone who can connect"
        );
    }
    let grpc_server = tokio::spawn(micromegas_otlp_receiver::grpc::serve(
        lake.clone(),
        grpc,
        max,
        tokens.clone(),
        wait(stopping.clone()),
    ));
    let http_server = tokio::spawn(micromegas_otlp_receiver::http::serve(
        lake,
        http,
        max,
        tokens,
        wait(stopping),
    ));
    shutdown_signal().await;
    let _ = stop.send(true);
    grpc_server
        .await
        .context("gRPC server task")?
        .context("gRPC server failed")?;
    http_server
        .await
        .context("HTTP server task")?
        .context("HTTP server failed")?;
    eprintln!("micromegas-collector: stopping; requests in flight were answered");
    maintenance.stop().await;
    Ok(())
}

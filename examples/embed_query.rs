//! A small HTTP service that embeds the lake's query engine: `POST /sql` with SQL as the body
//! answers a JSON array of rows (read-only: writes are refused with 403); `GET /health`.
//!
//! `cargo run --example embed_query -- [LAKE] [--addr 127.0.0.1:8080] [--exit-after N]`
//!
//! ```text
//! curl -s --data "SELECT level, COUNT(*) AS n FROM log_entries GROUP BY level" localhost:8080/sql
//! ```
//!
//! `--exit-after N` stops after answering N queries (used by the tests).

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::Router;
use micromegas_lake::{Lake, LakeError, LakeOptions};
use std::sync::Arc;
use tokio::sync::Notify;

struct App {
    lake: Lake,
    answered: std::sync::atomic::AtomicU64,
    exit_after: Option<u64>,
    done: Notify,
}

/// Runs `sql` on the lake and renders the rows as a JSON array of objects.
async fn run(lake: &Lake, sql: &str) -> Result<Vec<u8>, LakeError> {
    let batches = lake.query(sql).await?.collect().await?;
    let mut writer = micromegas_lake::arrow::json::ArrayWriter::new(Vec::new());
    writer.write_batches(&batches.iter().collect::<Vec<_>>())?;
    writer.finish()?;
    let mut body = writer.into_inner();
    if body.is_empty() {
        body = b"[]".to_vec();
    }
    Ok(body)
}

async fn sql(State(app): State<Arc<App>>, sql: String) -> (StatusCode, Vec<u8>) {
    let answer = match run(&app.lake, &sql).await {
        Ok(json) => (StatusCode::OK, json),
        Err(e @ LakeError::ReadOnly(_)) => (StatusCode::FORBIDDEN, e.to_string().into_bytes()),
        Err(e @ LakeError::Query(_)) => (StatusCode::BAD_REQUEST, e.to_string().into_bytes()),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            e.to_string().into_bytes(),
        ),
    };
    let n = app
        .answered
        .fetch_add(1, std::sync::atomic::Ordering::SeqCst)
        + 1;
    if app.exit_after.is_some_and(|max| n >= max) {
        app.done.notify_one();
    }
    answer
}

#[tokio::main]
async fn main() {
    let mut lake_url = micromegas_lake::DEFAULT_LAKE.to_owned();
    let mut addr = "127.0.0.1:8080".to_owned();
    let mut exit_after = None;
    let mut args = std::env::args().skip(1);
    let usage = || -> ! {
        eprintln!("usage: embed_query [LAKE] [--addr ADDR] [--exit-after N]");
        std::process::exit(2)
    };
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--addr" => addr = args.next().unwrap_or_else(|| usage()),
            "--exit-after" => {
                exit_after = Some(
                    args.next()
                        .and_then(|v| v.parse().ok())
                        .unwrap_or_else(|| usage()),
                )
            }
            lake if !lake.starts_with('-') => lake_url = lake.to_owned(),
            _ => usage(),
        }
    }
    // A query service reads a lake that writers made; a wrong path is an error, not an empty lake.
    let lake = match Lake::open(&lake_url, LakeOptions::default().existing_only()).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("cannot open the lake at {lake_url}: {e}");
            std::process::exit(1);
        }
    };
    let app = Arc::new(App {
        lake,
        answered: Default::default(),
        exit_after,
        done: Notify::new(),
    });
    let router = Router::new()
        .route("/sql", post(sql))
        .route("/health", get(|| async { "ok" }))
        .with_state(app.clone());
    let listener = match tokio::net::TcpListener::bind(&addr).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("cannot listen on {addr}: {e}");
            std::process::exit(1);
        }
    };
    println!(
        "embed_query: POST SQL to http://{}/sql (lake {lake_url})",
        listener.local_addr().unwrap_or_else(|_| unreachable!())
    );
    let stop = async move {
        tokio::select! {
            _ = app.done.notified() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    };
    if let Err(e) = axum::serve(listener, router)
        .with_graceful_shutdown(stop)
        .await
    {
        eprintln!("server failed: {e}");
        std::process::exit(1);
    }
}

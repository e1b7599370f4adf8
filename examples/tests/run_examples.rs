//! Every example runs to completion as a user would run it, and what it recorded is in the
//! lake with the expected values. The binaries are the ones `cargo test` builds before running
//! the tests (`cargo test --test run_examples` alone does not rebuild them); the OpenTelemetry
//! one runs as a library function against a collector served in the test.

use micromegas_lake::arrow::util::display::{ArrayFormatter, FormatOptions};
use micromegas_lake::{Lake, LakeOptions};
use micromegas_otlp_receiver::{Collector, CollectorOptions};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

/// The example's binary, built by `cargo test` beside the test binaries.
fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().parent().unwrap().join("examples");
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: build the examples first (`cargo test` does, or `cargo build --examples`)",
        path.display()
    );
    path
}

fn run(name: &str, args: &[&str]) -> Output {
    let out = Command::new(example(name))
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{name} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

async fn rows(lake: &Lake, sql: &str) -> Vec<String> {
    let ctx = lake.session().await.unwrap();
    let batches = ctx.sql(sql).await.unwrap().collect().await.unwrap();
    let options = FormatOptions::default().with_null("NULL");
    let mut out = Vec::new();
    for b in &batches {
        let f: Vec<_> = b
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &options).unwrap())
            .collect();
        for r in 0..b.num_rows() {
            let cells: Vec<String> = f.iter().map(|f| f.value(r).to_string()).collect();
            out.push(cells.join("|"));
        }
    }
    out
}

async fn open(path: &Path) -> Lake {
    Lake::open(path.to_str().unwrap(), LakeOptions::default())
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn native_api_example() {
    let dir = tempfile::tempdir().unwrap();
    let lake_dir = dir.path().join("lake");
    run("native_api", &[lake_dir.to_str().unwrap()]);
    let lake = open(&lake_dir).await;
    assert_eq!(
        rows(
            &lake,
            "SELECT service_name, property_get(properties, 'version') FROM processes"
        )
        .await,
        ["native_api|1.4.2"]
    );
    // Async spans and the sync scopes they run nest under the order, in one trace per order.
    assert_eq!(
        rows(
            &lake,
            "SELECT s.name, p.name, COUNT(*) FROM spans s LEFT JOIN spans p \
             ON s.parent_span_id = p.span_id AND s.trace_id = p.trace_id \
             GROUP BY 1, 2 ORDER BY 1"
        )
        .await,
        [
            "order|NULL|12",
            "price|validate|12",
            "reserve_stock|order|12",
            "validate|order|12",
        ]
    );
    assert_eq!(
        rows(
            &lake,
            "SELECT level, target, COUNT(*), MIN(msg) FROM log_entries GROUP BY 1, 2 ORDER BY 1"
        )
        .await,
        [
            "ERROR|shop::payments|1|order 11 failed: card declined (12.5 USD)",
            "INFO|shop::orders|11|order 0 placed: 10 USD, reserved true",
            "WARN|shop::stock|2|order 11 waits: item 77 out of stock",
        ]
    );
    assert_eq!(
        rows(
            &lake,
            "SELECT name, unit, COUNT(*), SUM(value), MIN(property_get(properties, 'currency')) \
             FROM measures GROUP BY 1, 2 ORDER BY 1"
        )
        .await,
        [
            "order.amount|usd|12|172.5|USD",
            "orders.handled|count|12|12.0|NULL",
            "orders.pending|count|1|0.0|NULL",
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tracing_app_example() {
    let dir = tempfile::tempdir().unwrap();
    let lake_dir = dir.path().join("lake");
    let out = run("tracing_app", &[lake_dir.to_str().unwrap()]);
    // The app's fmt output is still there.
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(stdout.matches("served profile").count(), 6, "{stdout}");
    let lake = open(&lake_dir).await;
    assert_eq!(
        rows(
            &lake,
            "SELECT s.name, p.name, COUNT(*), MIN(property_get(s.attributes, 'route')), \
             MIN(property_get(s.attributes, 'db.table')) FROM spans s LEFT JOIN spans p \
             ON s.parent_span_id = p.span_id AND s.trace_id = p.trace_id GROUP BY 1, 2 ORDER BY 1"
        )
        .await,
        [
            "db.lookup|http.request|8|NULL|users",
            "http.request|NULL|8|/profile|NULL"
        ]
    );
    // Events are logs with their fields, inside their request's trace.
    assert_eq!(
        rows(
            &lake,
            "SELECT l.level, l.msg, COUNT(*), COUNT(DISTINCT l.trace_id), \
             MIN(property_get(l.properties, 'status')) FROM log_entries l \
             JOIN spans s ON l.span_id = s.span_id AND l.trace_id = s.trace_id \
             WHERE s.name = 'http.request' GROUP BY 1, 2 ORDER BY 1"
        )
        .await,
        ["INFO|served profile|6|6|200", "WARN|no such user|2|2|404"]
    );
    // Where the requests ran: each request span was entered on a runtime worker more than
    // once (its task was polled again after the lookup's sleep), and the sleep is idle time,
    // not busy time.
    assert_eq!(
        rows(
            &lake,
            "SELECT COUNT(*), MIN(n) >= 2, BOOL_AND(busy < d) FROM \
             (SELECT s.span_id, COUNT(*) AS n, SUM(i.duration_ns) AS busy, \
             MAX(s.duration_ns) AS d FROM spans s JOIN span_intervals i \
             ON i.span_id = s.span_id WHERE s.name = 'http.request' GROUP BY s.span_id)"
        )
        .await,
        ["8|true|true"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_app_example() {
    let dir = tempfile::tempdir().unwrap();
    let lake_dir = dir.path().join("lake");
    run("metrics_app", &[lake_dir.to_str().unwrap()]);
    let lake = open(&lake_dir).await;
    assert_eq!(
        rows(
            &lake,
            "SELECT name, kind, COUNT(*), SUM(value), MIN(value), MAX(value) FROM measures \
             WHERE kind <> 'counter' GROUP BY 1, 2 ORDER BY 1"
        )
        .await,
        [
            "job.duration_ms|histogram|50|197.0|1.0|7.0",
            "queue.backlog|gauge|50|1225.0|0.0|49.0",
        ]
    );
    // Counters are recorded as what was added since the previous flush: their sum is the count.
    assert_eq!(
        rows(
            &lake,
            "SELECT name, property_get(properties, 'outcome'), SUM(value) FROM measures \
             WHERE kind = 'counter' GROUP BY 1, 2 ORDER BY 1, 2"
        )
        .await,
        ["jobs.processed|error|5.0", "jobs.processed|ok|45.0"]
    );
    // The last backlog reading is 0.
    assert_eq!(
        rows(
            &lake,
            "SELECT value FROM measures WHERE name = 'queue.backlog' ORDER BY time DESC LIMIT 1"
        )
        .await,
        ["0.0"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embed_query_example() {
    let dir = tempfile::tempdir().unwrap();
    let lake_dir = dir.path().join("lake");
    run("native_api", &[lake_dir.to_str().unwrap()]);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut server = Command::new(example("embed_query"))
        .arg(&lake_dir)
        .args(["--addr", &format!("127.0.0.1:{port}"), "--exit-after", "3"])
        .spawn()
        .unwrap();
    let client = reqwest::Client::new();
    let url = format!("http://127.0.0.1:{port}");
    let mut up = false;
    for _ in 0..200 {
        if client.get(format!("{url}/health")).send().await.is_ok() {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(up, "embed_query did not answer /health within 10 s");
    let ask = |sql: &'static str| {
        let client = client.clone();
        let url = format!("{url}/sql");
        async move {
            let r = client.post(url).body(sql).send().await.unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        }
    };
    let (status, body) =
        ask("SELECT level, COUNT(*) AS n FROM log_entries GROUP BY level ORDER BY level").await;
    assert_eq!(status, 200, "{body}");
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        json,
        serde_json::json!([
            {"level": "ERROR", "n": 1},
            {"level": "INFO", "n": 11},
            {"level": "WARN", "n": 2}
        ])
    );
    let (status, body) = ask("CREATE TABLE t AS SELECT 1").await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("read-only"), "{body}");
    let (status, body) = ask("SELEC 1").await;
    assert_eq!(status, 400, "{body}");
    // It stops by itself after the third query.
    let mut exited = None;
    for _ in 0..200 {
        if let Some(s) = server.try_wait().unwrap() {
            exited = Some(s);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let Some(status) = exited else {
        let _ = server.kill();
        panic!("embed_query did not exit after --exit-after 3");
    };
    assert!(status.success());
}

/// The OpenTelemetry Rust SDK's OTLP/gRPC exporter against a real collector on loopback:
/// traces, logs and metrics come back from SQL with exact values.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn otel_exporter_example() {
    let lake = Lake::open("memory://", LakeOptions::default())
        .await
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(micromegas_otlp_receiver::grpc::serve(
        Collector::new(lake.clone(), CollectorOptions::default()),
        listener,
        None,
        std::future::pending(),
    ));
    tokio::task::spawn_blocking(move || {
        micromegas_examples::otel_exporter::run(&endpoint, "rust-shop").map_err(|e| e.to_string())
    })
    .await
    .unwrap()
    .unwrap();

    assert_eq!(
        rows(
            &lake,
            "SELECT service_name, property_get(properties, 'deployment.environment'), \
             property_get(properties, 'telemetry.sdk.language') FROM processes"
        )
        .await,
        ["rust-shop|test|rust"]
    );
    assert_eq!(
        rows(
            &lake,
            "SELECT s.name, p.name, s.target, s.kind, s.status_code, s.status_message, \
             property_get(s.attributes, 'cart.items'), \
             property_get(s.attributes, 'otel.events') LIKE '%cart.validated%', \
             length(s.trace_id), s.trace_id = p.trace_id \
             FROM spans s LEFT JOIN spans p ON s.parent_span_id = p.span_id ORDER BY s.start_time"
        )
        .await,
        [
            "checkout|NULL|shop.checkout|INTERNAL|UNSET|NULL|3|true|32|NULL",
            "charge_card|checkout|shop.checkout|CLIENT|ERROR|card declined|NULL|NULL|32|true",
        ]
    );
    assert_eq!(
        rows(
            &lake,
            "SELECT l.level, l.severity_number, l.msg, l.target, s.name FROM log_entries l \
             LEFT JOIN spans s ON l.span_id = s.span_id AND l.trace_id = s.trace_id ORDER BY l.time"
        )
        .await,
        [
            "ERROR|17|payment failed for order 42|shop.payments|charge_card",
            "WARN|13|retrying payment|shop.payments|checkout",
        ]
    );
    assert_eq!(
        rows(
            &lake,
            "SELECT name, unit, kind, value, property_get(properties, 'route'), \
             property_get(properties, 'item'), property_get(properties, 'otel.count'), \
             property_get(properties, 'otel.min'), property_get(properties, 'otel.max') \
             FROM measures ORDER BY name"
        )
        .await,
        [
            "checkout.latency|ms|histogram|145.0|/pay|NULL|4|5|100",
            "orders|{orders}|counter|3.0|/pay|NULL|NULL|NULL|NULL",
            "stock|{items}|gauge|17.0|NULL|apple|NULL|NULL|NULL",
        ]
    );
}

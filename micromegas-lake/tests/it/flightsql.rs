//! `micromegas-sql --serve` answers FlightSQL clients: pyarrow's Flight client (Basic-auth
//! handshake, hand-packed FlightSQL commands) and the ADBC flightsql driver (bearer token)
//! get the same rows as `micromegas-sql -c`, list the tables with their schemas, stream large
//! results in several batches, and are refused without a token or when writing.

use crate::common::{free_port, local_lake, python, wait_for_port};
use micromegas_core::{imetric, info, span_scope, warn};
use serde_json::Value;
use std::process::{Child, Command};

const TOKEN: &str = "flight-test-token";

fn work() {
    for i in 0..20_000u64 {
        span_scope!("request");
        if i % 100 == 0 {
            warn!("slow request {} took {} ms", i, 100 + i % 7);
        } else {
            info!("request {} done", i);
        }
        if i % 1000 == 0 {
            imetric!("queue_depth", "items", i / 1000, "queue" => "ingest");
        }
    }
}

/// Kills the server when the test ends, passed or not.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn sql_json(lake: &std::path::Path, sql: &str) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_micromegas-sql"))
        .arg("--lake")
        .arg(lake)
        .args(["--format", "json", "-c", sql])
        .env_remove("MICROMEGAS_LAKE")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pyarrow_and_adbc_query_the_flightsql_server() {
    let Some(python) = python("adbc_driver_flightsql") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (path, lake) = local_lake(dir.path(), "flight", work).await;
    drop(lake);

    let port = free_port();
    let _server = Server(
        Command::new(env!("CARGO_BIN_EXE_micromegas-sql"))
            .arg("--lake")
            .arg(&path)
            .arg("--serve")
            .args(["--flightsql-addr", &format!("127.0.0.1:{port}")])
            .args(["--query-token", TOKEN])
            .env_remove("MICROMEGAS_LAKE")
            .spawn()
            .unwrap(),
    );
    wait_for_port(port, "micromegas-sql --serve");

    let queries = [
        "select 1",
        "SELECT level, COUNT(*) AS n FROM log_entries GROUP BY level ORDER BY level",
        "SELECT msg FROM log_entries WHERE level = 'WARN' ORDER BY time LIMIT 3",
        "SELECT name, COUNT(*) AS n, COUNT(DISTINCT trace_id) AS traces FROM spans GROUP BY name",
        "SELECT name, unit, value, property_get(properties, 'queue') AS queue FROM measures ORDER BY value",
    ];
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/python/flightsql_clients.py"
    );
    let out = Command::new(&python)
        .arg(script)
        .arg(port.to_string())
        .arg(TOKEN)
        .arg(serde_json::to_string(&queries).unwrap())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "FlightSQL clients failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let seen: Value = serde_json::from_slice(&out.stdout).unwrap();

    // Both clients get exactly the rows of micromegas-sql.
    for (i, sql) in queries.iter().enumerate() {
        let expected = sql_json(&path, sql);
        assert_eq!(seen["pyarrow"]["queries"][i], expected, "pyarrow: {sql}");
        assert_eq!(seen["adbc"]["queries"][i], expected, "ADBC: {sql}");
    }
    assert_eq!(seen["pyarrow"]["queries"][1][0]["n"], 19_800);
    assert_eq!(seen["pyarrow"]["queries"][4].as_array().unwrap().len(), 20);
    assert_eq!(seen["adbc"]["prepared"][0]["n"], 20_000);

    // The handshake hands back the bearer token; large results arrive in several batches.
    assert_eq!(
        seen["pyarrow"]["handshake_header"],
        serde_json::json!(["authorization", format!("Bearer {TOKEN}")])
    );
    assert_eq!(seen["pyarrow"]["batches"]["rows"], 20_000);
    assert!(
        seen["pyarrow"]["batches"]["record_batches"]
            .as_u64()
            .unwrap()
            > 1
    );

    // Tables, as Grafana lists them (BASE TABLE, with schemas), and through ADBC.
    let tables = seen["pyarrow"]["tables"].as_object().unwrap();
    let mut names: Vec<&str> = tables.keys().map(String::as_str).collect();
    names.sort();
    let mut expected_names = micromegas_lake::query::table_names();
    expected_names.sort();
    assert_eq!(names, expected_names);
    // ADBC lists views too.
    let mut with_views = expected_names.clone();
    with_views.extend(["log_stats", "measure_stats"]);
    with_views.sort();
    assert_eq!(seen["adbc"]["objects"], serde_json::json!(with_views));
    let spans = &tables["spans"];
    assert_eq!(spans["catalog"], "datafusion");
    assert_eq!(spans["schema"], "public");
    assert_eq!(spans["type"], "BASE TABLE");
    let columns: Vec<String> = micromegas_lake::ViewTable::Spans
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    assert_eq!(spans["columns"], serde_json::json!(columns));
    assert_eq!(seen["adbc"]["spans_columns"], serde_json::json!(columns));
    assert!(seen["pyarrow"]["sql_info_rows"].as_u64().unwrap() >= 5);

    // Refusals: no token, a wrong token, writes and settings, bad SQL with its message.
    let refusals = &seen["refusals"];
    assert_eq!(refusals["no_token"], "unauthenticated");
    assert_eq!(refusals["wrong_token"], "unauthenticated");
    for write in ["ddl", "copy", "set"] {
        let text = refusals[write].as_str().unwrap();
        assert!(text.contains("read-only"), "{write}: {text}");
    }
    let syntax = refusals["syntax"].as_str().unwrap();
    assert!(syntax.contains("SELEC"), "{syntax}");
}

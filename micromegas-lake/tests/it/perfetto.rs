//! `micromegas-sql export-perfetto` writes a trace that Perfetto's own protobuf schema decodes,
//! whose slices are the lake's spans (count, times, nesting) and whose instants are its logs.

use crate::common::{local_lake, python, rows};
use micromegas_core::{info, span_scope, warn};
use serde_json::Value;
use std::collections::BTreeMap;
use std::process::Command;

fn request(i: u32) {
    span_scope!("request");
    info!("request {} started", i);
    {
        span_scope!("parse");
    }
    {
        span_scope!("query");
        {
            span_scope!("fetch_rows");
            if i.is_multiple_of(3) {
                warn!("slow fetch for request {}", i);
            }
        }
    }
}

fn work() {
    let threads: Vec<_> = (0..3)
        .map(|t| {
            std::thread::Builder::new()
                .name(format!("worker-{t}"))
                .spawn(move || (0..10).for_each(|i| request(t * 10 + i)))
                .unwrap()
        })
        .collect();
    threads.into_iter().for_each(|t| t.join().unwrap());
}

fn export(lake: &std::path::Path, args: &[&str], file: &std::path::Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_micromegas-sql"))
        .arg("--lake")
        .arg(lake)
        .arg("export-perfetto")
        .args(args)
        .arg("-o")
        .arg(file)
        .env_remove("MICROMEGAS_LAKE")
        .output()
        .unwrap()
}

/// The file decoded with Perfetto's own schema: its tracks, slices and instants.
fn decode(python: &std::path::Path, file: &std::path::Path) -> Value {
    let decoded = Command::new(python)
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/python/perfetto_slices.py"
        ))
        .arg(file)
        .output()
        .unwrap();
    assert!(
        decoded.status.success(),
        "Perfetto's schema could not decode the file: {}",
        String::from_utf8_lossy(&decoded.stderr)
    );
    serde_json::from_slice(&decoded.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exported_trace_decodes_and_matches_the_spans() {
    let Some(python) = python("perfetto.protos.perfetto.trace.perfetto_trace_pb2") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (path, lake) = local_lake(dir.path(), "perfetto", work).await;
    let process = rows(&lake, "SELECT process_id FROM processes").await;
    let process = process[0].clone();

    let file = dir.path().join("trace.pftrace");
    let out = export(&path, &["--process", &process], &file);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("120 slices, 40 log instants"), "{said}");

    let trace = decode(&python, &file);

    // Slices are the spans: same names, start and end times (ns), one each.
    let spans = rows(
        &lake,
        "SELECT span_id, name, CAST(start_time AS BIGINT), CAST(end_time AS BIGINT), \
         COALESCE(parent_span_id, ''), thread_name FROM spans ORDER BY span_id",
    )
    .await;
    assert_eq!(spans.len(), 120);
    let slices = trace["slices"].as_array().unwrap();
    let tracks = trace["tracks"].as_object().unwrap();
    let mut from_file: Vec<String> = slices
        .iter()
        .map(|s| {
            let thread = tracks[&s["track"].to_string()]["thread"].as_str().unwrap();
            format!(
                "{}|{}|{}|{}|{}|{thread}",
                s["span_id"].as_str().unwrap(),
                s["name"].as_str().unwrap(),
                s["start"],
                s["end"],
                s["annotations"]["parent_span_id"].as_str().unwrap_or(""),
            )
        })
        .collect();
    from_file.sort();
    assert_eq!(from_file, spans);

    // Nesting: a slice's enclosing slice is its parent span; depths follow the code.
    for s in slices {
        assert_eq!(s["parent"], s["annotations"]["parent_span_id"], "{s}");
    }
    let mut depths: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for s in slices {
        depths
            .entry(s["name"].as_str().unwrap().to_owned())
            .or_default()
            .push(s["depth"].as_u64().unwrap());
    }
    for (name, depth) in [
        ("request", 0),
        ("parse", 1),
        ("query", 1),
        ("fetch_rows", 2),
    ] {
        assert!(
            depths[name].iter().all(|d| *d == depth),
            "{name}: {:?}",
            depths[name]
        );
        assert_eq!(depths[name].len(), 30);
    }

    // One process track and one track per thread; no extra lane for properly nested spans.
    let threads: Vec<&str> = tracks
        .values()
        .filter_map(|t| t["thread"].as_str())
        .collect();
    assert_eq!(threads.len(), 3, "{tracks:?}");
    assert_eq!(
        tracks.values().filter(|t| t["process"].is_string()).count(),
        1
    );

    // Logs are instants on their thread, with their level.
    let instants = trace["instants"].as_array().unwrap();
    assert_eq!(instants.len(), 40);
    let warns = instants
        .iter()
        .filter(|i| i["annotations"]["level"] == "WARN")
        .count();
    assert_eq!(warns, 10);

    // One trace: only its spans.
    let trace_id = rows(
        &lake,
        "SELECT trace_id FROM spans WHERE name = 'request' LIMIT 1",
    )
    .await;
    let one = dir.path().join("one.pftrace");
    let out = export(&path, &["--trace", &trace_id[0]], &one);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains(": 4 slices"));

    // Bad ids and a missing choice are refused with a message.
    let out = export(&path, &["--trace", "x' OR '1'='1"], &one);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not 32 hex digits"));
    let out = export(&path, &[], &one);
    assert!(!out.status.success());
}

/// The spans of the tracing layer are slices on the thread that created them, and each time
/// one was entered is a slice on the thread it ran on, inside its span when that is the same
/// thread.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entered_intervals_are_slices_on_their_thread() {
    let Some(python) = python("perfetto.protos.perfetto.trace.perfetto_trace_pb2") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (path, lake) =
        local_lake(dir.path(), "entered", crate::tables::entered_on_two_threads).await;
    let process = rows(&lake, "SELECT process_id FROM processes").await;
    let file = dir.path().join("entered.pftrace");
    let out = export(&path, &["--process", &process[0]], &file);
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{said}");
    assert!(said.contains("7 slices"), "2 spans and 5 intervals: {said}");

    let trace = decode(&python, &file);
    let tracks = trace["tracks"].as_object().unwrap();
    let slices = trace["slices"].as_array().unwrap();
    let main = std::thread::current().name().unwrap_or("").to_owned();
    let mut seen: Vec<String> = slices
        .iter()
        .map(|s| {
            let thread = tracks[&s["track"].to_string()]["thread"].as_str().unwrap();
            let thread = if thread == main { "main" } else { thread };
            let entered = s["annotations"]["entered"].is_string();
            format!(
                "{thread}|{}|{}|{entered}",
                s["name"].as_str().unwrap(),
                s["depth"]
            )
        })
        .collect();
    seen.sort();
    assert_eq!(
        seen,
        [
            "helper|job|0|true",
            "helper|job|0|true",
            "main|job|0|false",
            "main|job|1|true",
            "main|step|2|false",
            "main|step|3|true",
            "main|step|3|true",
        ]
    );
    // The entered slices are the table's intervals, to the nanosecond.
    let mut from_file: Vec<String> = slices
        .iter()
        .filter(|s| s["annotations"]["entered"].is_string())
        .map(|s| {
            format!(
                "{}|{}|{}",
                s["span_id"].as_str().unwrap(),
                s["start"],
                s["end"]
            )
        })
        .collect();
    from_file.sort();
    let intervals = rows(
        &lake,
        "SELECT span_id, CAST(begin_time AS BIGINT), CAST(end_time AS BIGINT) \
         FROM span_intervals ORDER BY 1, 2",
    )
    .await;
    assert_eq!(from_file, intervals);
}

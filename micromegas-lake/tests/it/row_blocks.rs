//! Rows shaped for a table (what the collector makes of OTLP) land in the same tables as
//! native blocks: one query sees a trace that crosses both.

use crate::common::{capture, rows, serial};
use micromegas_lake::catalog::ProcessRow;
use micromegas_lake::maintenance::MaintenanceOptions;
use micromegas_lake::row_blocks::RowBlock;
use micromegas_lake::tables::{log_batch, span_batch, LogRow, SpanRow};
use micromegas_lake::{Lake, LakeError, LakeOptions, ViewTable};
use std::sync::Arc;
use tracing_subscriber::layer::SubscriberExt;

fn otel_process() -> ProcessRow {
    ProcessRow {
        process_id: "6d1f1c1e-0000-4000-8000-00000000abcd".into(),
        service_name: "checkout-py".into(),
        exe: String::new(),
        username: String::new(),
        hostname: "host-1".into(),
        start_time: micromegas_lake::catalog::now_nanos() - 1_000_000_000,
        tsc_frequency: 0,
        properties: vec![("telemetry.sdk.language".into(), "python".into())],
        insert_time: 0,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn row_blocks_and_native_blocks_share_tables() {
    // A native request span from the tracing layer.
    let batches = {
        let _serial = serial();
        capture("gateway", || {
            let subscriber = tracing_subscriber::registry()
                .with(micromegas_tracing_layer::MicromegasLayer::new());
            tracing::subscriber::with_default(subscriber, || {
                let span = tracing::info_span!("gateway_request");
                let _e = span.enter();
                tracing::info!("forwarding to checkout");
            });
        })
    };
    let lake = Lake::open("memory://", LakeOptions::default())
        .await
        .unwrap();
    lake.write_batches(&batches).await.unwrap();
    let native = rows(&lake, "SELECT trace_id, span_id FROM spans").await;
    let (trace, parent) = native[0].split_once('|').unwrap();

    // The downstream service's span and log, as the collector maps them from OTLP.
    let process = otel_process();
    let pid: Arc<str> = process.process_id.as_str().into();
    let svc: Arc<str> = process.service_name.as_str().into();
    let now = micromegas_lake::catalog::now_nanos();
    let span = SpanRow {
        trace_id: Some(trace.to_owned()),
        span_id: "00000000000000aa".into(),
        parent_span_id: Some(parent.to_owned()),
        name: "POST /checkout".into(),
        target: "opentelemetry.instrumentation.flask".into(),
        service_name: svc.clone(),
        process_id: pid.clone(),
        thread_name: String::new(),
        start_time: now - 5_000_000,
        end_time: now,
        kind: "SERVER".into(),
        status_code: "ERROR".into(),
        status_message: Some("card declined".into()),
        attributes: vec![("http.status_code".into(), "402".into())],
        level: None,
        file: String::new(),
        line: None,
    };
    let log = LogRow {
        time: now - 1_000_000,
        process_id: pid.clone(),
        service_name: svc.clone(),
        thread_name: "".into(),
        level: "ERROR",
        severity_number: 17,
        target: "checkout".into(),
        msg: "payment failed".into(),
        trace_id: Some(trace.to_owned()),
        span_id: Some("00000000000000aa".into()),
        properties: vec![],
        file: String::new(),
        line: None,
    };
    let blocks = vec![
        RowBlock {
            block_id: uuid::Uuid::new_v4(),
            process: process.clone(),
            table: ViewTable::Spans,
            rows: span_batch(&[span]).unwrap(),
        },
        RowBlock {
            block_id: uuid::Uuid::new_v4(),
            process: process.clone(),
            table: ViewTable::LogEntries,
            rows: log_batch(&[log]).unwrap(),
        },
    ];
    let first = lake.write_row_blocks(&blocks).await.unwrap();
    assert_eq!(first.blocks_written, 2);
    let again = lake.write_row_blocks(&blocks).await.unwrap();
    assert_eq!((again.blocks_written, again.blocks_skipped), (0, 2));

    // One query sees the trace across both services.
    let q = format!(
        "SELECT s.service_name, s.name, p.name, s.kind, s.status_code, \
         property_get(s.attributes, 'http.status_code') FROM spans s \
         LEFT JOIN spans p ON s.parent_span_id = p.span_id \
         WHERE s.trace_id = '{trace}' ORDER BY s.start_time"
    );
    assert_eq!(
        rows(&lake, &q).await,
        [
            "gateway|gateway_request|NULL|INTERNAL|UNSET|NULL",
            "checkout-py|POST /checkout|gateway_request|SERVER|ERROR|402"
        ]
    );
    assert_eq!(
        rows(
            &lake,
            &format!("SELECT service_name, msg FROM log_entries WHERE trace_id = '{trace}' ORDER BY time")
        )
        .await,
        ["gateway|forwarding to checkout", "checkout-py|payment failed"]
    );
    assert_eq!(
        rows(
            &lake,
            "SELECT service_name, hostname, property_get(properties, 'telemetry.sdk.language') \
             FROM processes ORDER BY service_name"
        )
        .await[0],
        "checkout-py|host-1|python"
    );

    // Rows that do not fit their table are refused, and nothing is written.
    let wrong = RowBlock {
        block_id: uuid::Uuid::new_v4(),
        process,
        table: ViewTable::Measures,
        rows: log_batch(&[]).unwrap(),
    };
    let err = lake.write_row_blocks(&[wrong]).await.unwrap_err();
    assert!(matches!(err, LakeError::InvalidRows(_)), "{err}");
}

#[tokio::test]
async fn a_damaged_row_block_costs_its_own_rows_only() {
    use object_store::{path::Path, ObjectStoreExt};
    let lake = Lake::open("memory://", LakeOptions::default())
        .await
        .unwrap();
    let process = otel_process();
    let now = micromegas_lake::catalog::now_nanos();
    let span = |id: &str| SpanRow {
        trace_id: Some("4bf92f3577b34da6a3ce929d0e0e4736".into()),
        span_id: id.into(),
        parent_span_id: None,
        name: format!("span {id}"),
        target: "checkout".into(),
        service_name: process.service_name.as_str().into(),
        process_id: process.process_id.as_str().into(),
        thread_name: String::new(),
        start_time: now - 2_000,
        end_time: now,
        kind: "SERVER".into(),
        status_code: "UNSET".into(),
        status_message: None,
        attributes: vec![],
        level: None,
        file: String::new(),
        line: None,
    };
    // Two writes, two objects.
    let mut ids = Vec::new();
    for id in ["00000000000000a1", "00000000000000b2"] {
        let block = RowBlock {
            block_id: uuid::Uuid::new_v4(),
            process: process.clone(),
            table: ViewTable::Spans,
            rows: span_batch(&[span(id)]).unwrap(),
        };
        ids.push(block.block_id.to_string());
        lake.write_row_blocks(&[block]).await.unwrap();
    }
    let q = format!(
        "SELECT object_path FROM blocks WHERE block_id = '{}'",
        ids[0]
    );
    let path = Path::from(rows(&lake, &q).await[0].as_str());
    // One bit of the first object changes (a disk error, say).
    let mut bytes = lake
        .store()
        .get(&path)
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap()
        .to_vec();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x10;
    lake.store().put(&path, bytes.into()).await.unwrap();

    // The maintenance loop materializes the other block and reports the damaged one, once.
    let reported = Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = reported.clone();
    let maintenance = lake.spawn_maintenance(
        MaintenanceOptions {
            period: std::time::Duration::from_millis(50),
            ..Default::default()
        },
        move |e| sink.lock().unwrap().push(e.to_string()),
    );
    let pending = "SELECT COUNT(*) FROM blocks WHERE partition_id IS NULL";
    for _ in 0..200 {
        if rows(&lake, pending).await == ["0"] {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    maintenance.stop().await;
    let reported = reported.lock().unwrap().clone();
    assert_eq!(reported.len(), 1, "{reported:?}");
    assert!(
        reported[0].starts_with("corrupt data in raw block"),
        "{reported:?}"
    );
    assert!(reported[0].contains(&ids[0]), "{reported:?}");
    assert!(
        reported[0].contains("checksum does not match"),
        "{reported:?}"
    );
    assert_eq!(
        rows(&lake, "SELECT span_id, name FROM spans").await,
        ["00000000000000b2|span 00000000000000b2"]
    );
}

//! The catalog's write path: a SQLite file (its own write connection) and a private in-memory
//! SQLite (the sqlx pool) give the same answers for the same writes.

use micromegas_lake::catalog::{BlockRow, Catalog, ProcessRow, StreamRow, WriteRows, FORMAT_ARROW};

fn rows(blocks: &[&str]) -> WriteRows {
    let process = ProcessRow {
        process_id: "p1".into(),
        service_name: "svc".into(),
        exe: "exe".into(),
        username: "user".into(),
        hostname: "host".into(),
        start_time: 1,
        tsc_frequency: 0,
        properties: vec![("k".into(), "v".into())],
        insert_time: 2,
    };
    let stream = StreamRow {
        stream_id: "s1".into(),
        process_id: "p1".into(),
        kind: "logs".into(),
        thread_id: 0,
        thread_name: String::new(),
        properties: vec![],
        insert_time: 2,
    };
    let block = |id: &&str| BlockRow {
        block_id: (*id).into(),
        stream_id: "s1".into(),
        process_id: "p1".into(),
        kind: "logs".into(),
        sequence: 0,
        begin_time: 10,
        end_time: 20,
        event_count: 3,
        payload_size: 100,
        object_path: "raw/o.arrow".into(),
        object_offset: 0,
        object_len: 100,
        insert_time: 2,
        partition_id: None,
        format: FORMAT_ARROW.into(),
    };
    WriteRows {
        // Repeated rows are inserted once.
        processes: vec![process.clone(), process],
        streams: vec![stream],
        blocks: blocks.iter().map(block).collect(),
        object: Some(("raw/o.arrow".into(), 10, 20, 100)),
    }
}

async fn writes_and_reads(catalog: &Catalog) {
    assert_eq!(catalog.insert(&rows(&["a", "b"])).await.unwrap(), 2);
    // A retried write adds nothing; a new block beside known ones is added alone.
    assert_eq!(catalog.insert(&rows(&["a", "b"])).await.unwrap(), 0);
    assert_eq!(catalog.insert(&rows(&["b", "c", "c"])).await.unwrap(), 1);
    let ids: Vec<String> = ["a", "c", "z"].iter().map(|s| s.to_string()).collect();
    let mut known: Vec<String> = catalog
        .existing_blocks(&ids)
        .await
        .unwrap()
        .into_iter()
        .collect();
    known.sort();
    assert_eq!(known, ["a", "c"]);
    let processes = catalog.processes().await.unwrap();
    assert_eq!(processes.len(), 1);
    assert_eq!(
        processes[0].properties,
        [("k".to_string(), "v".to_string())]
    );
    assert_eq!(catalog.streams().await.unwrap().len(), 1);
    let blocks = catalog.blocks(None).await.unwrap();
    assert_eq!(blocks.len(), 3);
    assert_eq!(blocks[0], rows(&["a"]).blocks[0]);
    let counts = catalog.counts().await.unwrap();
    assert!(counts.contains(&("objects".to_string(), 1)), "{counts:?}");
    catalog.close().await;
    let closed = catalog.insert(&rows(&["d"])).await.unwrap_err();
    assert!(closed.to_string().contains("closed"), "{closed}");
    assert!(closed.is_retryable());
}

#[tokio::test]
async fn sqlite_file_catalog_writes_through_its_own_connection() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("c.sqlite").display()
    );
    writes_and_reads(&Catalog::connect(&url).await.unwrap()).await;
    // What was committed is in the file for the next process.
    let again = Catalog::connect(&url).await.unwrap();
    assert_eq!(again.blocks(None).await.unwrap().len(), 3);
}

#[tokio::test]
async fn memory_catalog_gives_the_same_answers() {
    let url = "sqlite:file:catalog-it?mode=memory&cache=shared";
    writes_and_reads(&Catalog::connect(url).await.unwrap()).await;
}

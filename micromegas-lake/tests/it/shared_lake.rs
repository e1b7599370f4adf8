//! A lake shared by several nodes: S3 (a real SeaweedFS server) and a PostgreSQL catalog
//! (a real server), both started by `scripts/services.sh`. Without them the test says so and
//! passes, unless MICROMEGAS_TEST_REQUIRE_SERVICES is set (as the test script does).

use crate::common::{capture, rows, serial, shifted};
use futures::StreamExt;
use micromegas_core::{imetric, info, span_scope};
use micromegas_lake::{Lake, LakeOptions, S3Options};
use object_store::ObjectStoreExt;
use sqlx::Connection;

struct Services {
    postgres: String,
    s3_endpoint: String,
    bucket: String,
}

fn services() -> Option<Services> {
    let get = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    match (
        get("MICROMEGAS_TEST_POSTGRES"),
        get("MICROMEGAS_TEST_S3_ENDPOINT"),
        get("MICROMEGAS_TEST_S3_BUCKET"),
    ) {
        (Some(postgres), Some(s3_endpoint), Some(bucket)) => Some(Services {
            postgres,
            s3_endpoint,
            bucket,
        }),
        _ => {
            assert!(
                std::env::var_os("MICROMEGAS_TEST_REQUIRE_SERVICES").is_none(),
                "PostgreSQL and S3 are required: run `eval $(scripts/services.sh start)`"
            );
            eprintln!("skipped: PostgreSQL/S3 not configured (eval $(scripts/services.sh start))");
            None
        }
    }
}

/// A fresh database on the test server, so runs never see each other's rows.
async fn fresh_database(admin_url: &str) -> String {
    let name = format!("lake_{}", uuid::Uuid::new_v4().simple());
    let mut admin = sqlx::PgConnection::connect(admin_url).await.unwrap();
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut admin)
        .await
        .unwrap();
    let base = admin_url.rsplit_once('/').unwrap().0;
    format!("{base}/{name}")
}

fn work() {
    for i in 0..20 {
        span_scope!("request");
        info!("request {}", i);
        imetric!("bytes", "bytes", 100 + i);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_share_an_s3_lake_with_a_postgres_catalog() {
    let Some(svc) = services() else { return };
    std::env::set_var("AWS_ACCESS_KEY_ID", "micromegas");
    std::env::set_var("AWS_SECRET_ACCESS_KEY", "micromegas");
    std::env::set_var("AWS_REGION", "us-east-1");
    let batches = {
        let _serial = serial();
        capture("shared", work)
    };
    let older = shifted(&batches, 3);
    let catalog = fresh_database(&svc.postgres).await;
    let prefix = format!("run-{}", uuid::Uuid::new_v4().simple());
    let url = format!("s3://{}/{prefix}", svc.bucket);
    let options = LakeOptions {
        catalog: Some(catalog.clone()),
        s3: S3Options {
            endpoint: Some(svc.s3_endpoint.clone()),
            ..Default::default()
        },
        ..Default::default()
    };
    // A reader finds no lake in the empty catalog, and creates none.
    let reader = options.clone().existing_only();
    let missing = Lake::open(&url, reader.clone()).await.unwrap_err();
    assert!(
        matches!(missing, micromegas_lake::LakeError::NotFound(_)),
        "{missing}"
    );
    assert!(missing.to_string().contains("holds no lake"), "{missing}");
    let mut conn = sqlx::PgConnection::connect(&catalog).await.unwrap();
    let tables: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = 'public'",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_eq!(tables, 0);

    let a = Lake::open(&url, options.clone()).await.unwrap();
    let b = Lake::open(&url, reader).await.unwrap();
    assert_eq!(
        a.catalog().backend(),
        micromegas_lake::catalog::Backend::Postgres
    );

    // Both nodes write; node b also retries node a's write: nothing is duplicated.
    let wa = a.write_batches(&batches).await.unwrap();
    let wb = b.write_batches(&older).await.unwrap();
    let retry = b.write_batches(&batches).await.unwrap();
    assert_eq!(retry.blocks_written, 0);
    assert_eq!(retry.blocks_skipped, wa.blocks_written);
    assert!(wb.blocks_written > 0);

    // Both materialize at once: every block lands in exactly one partition.
    let (ra, rb) = tokio::join!(a.materialize_all(), b.materialize_all());
    let (ra, rb) = (ra.unwrap(), rb.unwrap());
    assert_eq!(
        ra.blocks + rb.blocks,
        wa.blocks_written + wb.blocks_written,
        "{ra:?} {rb:?} {wa:?} {wb:?}"
    );
    assert_eq!(ra.rows + rb.rows, 120, "40 logs, 40 measures, 40 spans");

    // A third node queries.
    let q = Lake::open(&url, options.clone()).await.unwrap();
    assert_eq!(
        rows(
            &q,
            "SELECT COUNT(*), COUNT(DISTINCT process_id) FROM log_entries"
        )
        .await,
        ["40|2"]
    );
    assert_eq!(
        rows(&q, "SELECT SUM(value) FROM measures").await,
        [format!("{}.0", 2 * (100..120).sum::<i32>())]
    );
    assert_eq!(
        rows(&q, "SELECT COUNT(DISTINCT span_id) FROM spans").await,
        ["40"]
    );

    // Retention on S3: the older process's objects go, the recent stay.
    let report = q
        .expire(std::time::Duration::from_secs(2 * 3600))
        .await
        .unwrap();
    assert_eq!(
        report.objects_deleted, 4,
        "one raw object and three partitions"
    );
    assert_eq!(rows(&q, "SELECT COUNT(*) FROM log_entries").await, ["20"]);
    let left = q.store().list(None).collect::<Vec<_>>().await;
    assert_eq!(left.len(), 4, "{left:?}");
    // Raw retention (PostgreSQL catalog, S3 objects): the materialized raw object goes,
    // query results stay.
    let report = q
        .drop_materialized_raw(std::time::Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(report.objects_deleted, 1);
    let left = q.store().list(None).collect::<Vec<_>>().await;
    assert_eq!(left.len(), 3, "{left:?}");
    assert_eq!(rows(&q, "SELECT COUNT(*) FROM log_entries").await, ["20"]);
    // Garbage collection on S3 with a PostgreSQL catalog: objects no row refers to are
    // noted by a first pass, deleted by a later one once their grace is over; the lake's
    // own objects and query results stay.
    for key in [
        "raw/2026-12-01/10/0f0f0f0f0f0f4f0f8f0f0f0f0f0f0f0f.mmtb",
        "tables/log_entries/2026-12-01/10/1e1e1e1e1e1e4e1e8e1e1e1e1e1e1e1e.parquet",
    ] {
        q.store()
            .put(&key.into(), b"left behind".to_vec().into())
            .await
            .unwrap();
    }
    let report = q
        .collect_garbage(std::time::Duration::from_secs(3600))
        .await
        .unwrap();
    assert_eq!((report.objects_listed, report.unreferenced), (5, 2));
    assert_eq!(
        report.objects_deleted, 0,
        "just written: kept for the grace"
    );
    let report = q.collect_garbage(std::time::Duration::ZERO).await.unwrap();
    assert_eq!(report.objects_deleted, 2);
    let left = q.store().list(None).collect::<Vec<_>>().await;
    assert_eq!(left.len(), 3, "{left:?}");
    assert_eq!(rows(&q, "SELECT COUNT(*) FROM log_entries").await, ["20"]);
    // `vacuum` runs on PostgreSQL too (space made reusable), and changes no result.
    q.catalog().vacuum().await.unwrap();
    assert_eq!(rows(&q, "SELECT COUNT(*) FROM log_entries").await, ["20"]);
    q.expire(std::time::Duration::ZERO).await.unwrap();
    let left = q.store().list(None).collect::<Vec<_>>().await;
    assert!(left.is_empty(), "{left:?}");
}

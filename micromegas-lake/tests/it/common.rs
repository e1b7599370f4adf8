//! Helpers shared by the lake's integration tests.

use arrow::array::RecordBatch;
use micromegas_core::sink::MemorySink;
use micromegas_core::transit::batch::Batch;
use micromegas_lake::Lake;
use std::sync::{Arc, Mutex, MutexGuard};

/// Tests of one binary share the process-wide pipeline: run them one at a time.
pub fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// Runs `work` with the pipeline capturing into memory and returns the batches.
pub fn capture(service: &str, work: impl FnOnce()) -> Vec<Batch> {
    let sink = Arc::new(MemorySink::new());
    let options = micromegas_core::Options::default().service_name(service);
    let guard = micromegas_core::init(sink.clone(), options).expect("init");
    work();
    let stats = guard.shutdown();
    assert_eq!(stats.total_dropped(), 0, "{stats:?}");
    sink.batches()
}

/// Runs `sql` and returns the rows as text lines (`|`-separated), in result order.
pub async fn rows(lake: &Lake, sql: &str) -> Vec<String> {
    let ctx = lake.session().await.expect("session");
    let batches = ctx
        .sql(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .collect()
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    lines(&batches)
}

/// Rows of batches as `|`-separated text.
pub fn lines(batches: &[RecordBatch]) -> Vec<String> {
    let options = arrow::util::display::FormatOptions::default().with_null("NULL");
    let mut out = Vec::new();
    for b in batches {
        let formatters: Vec<_> = b
            .columns()
            .iter()
            .map(|c| arrow::util::display::ArrayFormatter::try_new(c.as_ref(), &options).unwrap())
            .collect();
        for row in 0..b.num_rows() {
            let cells: Vec<String> = formatters
                .iter()
                .map(|f| f.value(row).to_string())
                .collect();
            out.push(cells.join("|"));
        }
    }
    out
}

/// Copies of `batches` as if written by another process `hours` earlier (new process, stream
/// and block ids; every time shifted).
pub fn shifted(batches: &[Batch], hours: i64) -> Vec<Batch> {
    micromegas_core::transit::batch::as_another_process(batches, -hours * 3_600_000_000_000)
}

/// The test venv's Python, if it can import `module` (scripts/test.sh installs it); `None`
/// (test skipped) outside CI, a failure when the services are required.
pub fn python(module: &str) -> Option<std::path::PathBuf> {
    use std::process::Command;
    let venv = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin/python");
    let ok = venv.exists()
        && Command::new(&venv)
            .args(["-c", &format!("import {module}")])
            .status()
            .is_ok_and(|s| s.success());
    if !ok {
        assert!(
            std::env::var_os("MICROMEGAS_TEST_REQUIRE_SERVICES").is_none(),
            "Python module {module} is required: scripts/test.sh installs it in .venv"
        );
        eprintln!("skipped: no .venv with {module} (scripts/test.sh creates it)");
        return None;
    }
    Some(venv)
}

/// Counts the blocks not yet materialized.
pub const PENDING_BLOCKS: &str = "SELECT COUNT(*) FROM blocks WHERE partition_id IS NULL";

/// An in-memory lake holding what `work` records as the service `service`.
pub async fn memory_lake(service: &str, work: impl FnOnce()) -> Lake {
    let batches = {
        let _serial = serial();
        capture(service, work)
    };
    let lake = Lake::open("memory://", micromegas_lake::LakeOptions::default())
        .await
        .unwrap();
    lake.write_batches(&batches).await.unwrap();
    lake
}

/// A local lake at `dir/lake` holding what `work` records as the service `service`.
pub async fn local_lake(
    dir: &std::path::Path,
    service: &str,
    work: impl FnOnce(),
) -> (std::path::PathBuf, Lake) {
    let batches = {
        let _serial = serial();
        capture(service, work)
    };
    let path = dir.join("lake");
    let lake = Lake::open(
        path.to_str().unwrap(),
        micromegas_lake::LakeOptions::default(),
    )
    .await
    .unwrap();
    lake.write_batches(&batches).await.unwrap();
    (path, lake)
}

#[path = "ports.rs"]
mod ports;
pub use ports::free_port;

/// Waits (10 s at most) until something listens on the loopback `port`.
pub fn wait_for_port(port: u16, what: &str) {
    for _ in 0..200 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    panic!("{what} did not listen on port {port} within 10 s");
}

/// Runs `micromegas-sql` on the lake under `dir`, checks that it succeeded, returns its stderr.
pub fn sql_cli(dir: &std::path::Path, args: &[&str]) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_micromegas-sql"))
        .args(["--lake", dir.join("lake").to_str().unwrap()])
        .args(args)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{stderr}");
    stderr
}

/// Every file under `dir`, recursively.
pub fn walk(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p.display().to_string());
            }
        }
    }
    out
}

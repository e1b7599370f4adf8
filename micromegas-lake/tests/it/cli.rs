//! `micromegas-sql` used like a user would: one-shot commands, files, formats, the prompt,
//! and errors as messages with a non-zero exit code.

use crate::common::{capture, serial};
use micromegas_core::info;
use micromegas_lake::{Lake, LakeOptions};
use std::io::Write;
use std::process::{Command, Output, Stdio};

fn sql(lake: &std::path::Path, args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_micromegas-sql"))
        .arg("--lake")
        .arg(lake)
        .args(args)
        .env_remove("MICROMEGAS_LAKE")
        .env("HOME", lake)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run micromegas-sql");
    let mut input = child.stdin.take().unwrap();
    if let Some(text) = stdin {
        input.write_all(text.as_bytes()).unwrap();
    }
    drop(input);
    child.wait_with_output().unwrap()
}

fn stdout(o: &Output) -> String {
    assert!(
        o.status.success(),
        "failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout.clone()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_shot_formats_files_prompt_and_errors() {
    let batches = {
        let _serial = serial();
        capture("cli", || {
            info!("first {}", 1);
            info!("second {}", 2);
        })
    };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("lake");
    let lake = Lake::open(path.to_str().unwrap(), LakeOptions::default())
        .await
        .unwrap();
    lake.write_batches(&batches).await.unwrap();
    drop(lake);

    let q = "SELECT msg, severity_number FROM log_entries ORDER BY time";
    let csv = stdout(&sql(&path, &["-c", q, "--format", "csv"], None));
    assert_eq!(csv, "msg,severity_number\nfirst 1,9\nsecond 2,9\n");
    let json = stdout(&sql(&path, &["-c", q, "--format", "json"], None));
    assert_eq!(
        json.trim(),
        r#"[{"msg":"first 1","severity_number":9},{"msg":"second 2","severity_number":9}]"#
    );
    let ndjson = stdout(&sql(&path, &["-c", q, "--format", "ndjson"], None));
    assert_eq!(
        ndjson,
        "{\"msg\":\"first 1\",\"severity_number\":9}\n{\"msg\":\"second 2\",\"severity_number\":9}\n"
    );
    let table = stdout(&sql(&path, &["-c", q], None));
    assert!(table.contains("| first 1  | 9               |"), "{table}");

    // Row limit: one row shown, a note on stderr.
    let limited = sql(
        &path,
        &["-c", q, "--format", "csv", "--max-rows", "1"],
        None,
    );
    assert_eq!(stdout(&limited), "msg,severity_number\nfirst 1,9\n");
    assert!(String::from_utf8_lossy(&limited.stderr).contains("first 1 rows"));

    // Several statements from a file.
    let file = dir.path().join("q.sql");
    std::fs::write(
        &file,
        "SELECT 1 AS a;\nSELECT COUNT(*) AS n FROM log_entries;\n",
    )
    .unwrap();
    let out = stdout(&sql(
        &path,
        &["-f", file.to_str().unwrap(), "--format", "csv"],
        None,
    ));
    assert_eq!(out, "a\n1\nn\n2\n");

    // The prompt: a statement over two lines, \d, \d TABLE, \q.
    let out = stdout(&sql(
        &path,
        &["--format", "csv"],
        Some("SELECT COUNT(*)\n AS n FROM log_entries;\n\\d\n\\d measures\n\\q\nSELECT 99;\n"),
    ));
    assert!(out.starts_with("n\n2\n"), "{out}");
    assert!(out.contains("log_entries,BASE TABLE"), "{out}");
    assert!(out.contains("unit,Utf8,NO"), "{out}");
    assert!(!out.contains("99"), "\\q stops the prompt: {out}");
    assert!(path.join(".micromegas_sql_history").exists());

    // Errors: a message and a non-zero exit code, never a panic.
    for args in [
        &["-c", "SELECT * FROM nope"][..],
        &["-c", "SELEC 1"],
        &["-c", ""],
        &["-f", "/nonexistent.sql"],
    ] {
        let o = sql(&path, args, None);
        assert!(!o.status.success(), "{args:?} should fail");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.starts_with("error: "), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{err}");
    }
    let o = sql(std::path::Path::new("s3://"), &["-c", "SELECT 1"], None);
    assert!(String::from_utf8_lossy(&o.stderr).contains("names no bucket"));
}

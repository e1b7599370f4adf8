//! `micromegas-sql` used like a user would: one-shot commands, files, formats, the prompt,
//! and errors as messages with a non-zero exit code.

use crate::common::local_lake;
use micromegas_core::info;
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
    let dir = tempfile::tempdir().unwrap();
    let (path, lake) = local_lake(dir.path(), "cli", || {
        info!("first {}", 1);
        info!("second {}", 2);
    })
    .await;
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

/// Long operations draw a progress line on a terminal (forced here with
/// `MICROMEGAS_PROGRESS=always`), erased before the final report; never in a pipe by default.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_operations_show_progress_on_a_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let (path, lake) = local_lake(dir.path(), "progress", || {
        for i in 0..100 {
            micromegas_core::span_scope!("step");
            info!("step {}", i);
        }
    })
    .await;
    drop(lake);
    let run = |args: &[&str], progress: Option<&str>| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_micromegas-sql"));
        cmd.arg("--lake")
            .arg(&path)
            .args(args)
            .env_remove("MICROMEGAS_LAKE");
        match progress {
            Some(p) => cmd.env("MICROMEGAS_PROGRESS", p),
            None => cmd.env_remove("MICROMEGAS_PROGRESS"),
        };
        let out = cmd.output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stderr).unwrap()
    };
    let shown = run(&["materialize"], Some("always"));
    assert!(
        shown.contains("\r\x1b[Kmaterializing log_entries: 1 blocks, 100 rows, 1 partitions"),
        "{shown:?}"
    );
    assert!(
        shown.contains("\r\x1b[Klog_entries: 1 blocks, 100 rows"),
        "{shown:?}"
    );
    let out = dir.path().join("p.pftrace");
    let process = stdout(&sql(
        &path,
        &["--format", "csv", "-c", "SELECT process_id FROM processes"],
        None,
    ));
    let process = process.lines().nth(1).unwrap().to_owned();
    let args = [
        "export-perfetto",
        "--process",
        &process,
        "-o",
        out.to_str().unwrap(),
    ];
    let shown = run(&args, Some("always"));
    assert!(shown.contains("\r\x1b[Kexporting: "), "{shown:?}");
    assert!(shown.contains("100 slices, 100 log instants"), "{shown:?}");
    // Not a terminal, not forced: the report only.
    let quiet = run(&["retention", "--older-than", "1d"], None);
    assert_eq!(quiet, "deleted 0 objects\n");
}

#[test]
fn a_missing_lake_is_an_error_and_is_not_created() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-lake");
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    for (lake, says) in [
        (&missing, "does not exist"),
        (&empty, "has no catalog.sqlite"),
    ] {
        for args in [&["-c", "SELECT 1"][..], &["stats"], &["materialize"]] {
            let out = sql(lake, args, None);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(!out.status.success(), "{args:?} on {}", lake.display());
            assert!(stderr.contains("no lake"), "{stderr}");
            assert!(stderr.contains(says), "{stderr}");
            assert!(stderr.contains("micromegas-collector --lake"), "{stderr}");
        }
    }
    assert!(!missing.exists());
    assert_eq!(std::fs::read_dir(&empty).unwrap().count(), 0);
}

/// The flags and prompt commands of datafusion-cli work the same here.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flags_and_prompt_commands_of_datafusion_cli() {
    let dir = tempfile::tempdir().unwrap();
    let (path, lake) = local_lake(dir.path(), "cli-df", || {
        info!("first {}", 1);
        info!("second {}", 2);
    })
    .await;
    drop(lake);
    let q = "SELECT msg, severity_number FROM log_entries ORDER BY time";

    // --maxrows (datafusion-cli's spelling) and `inf`; tsv and nd-json.
    let tsv = sql(&path, &["-c", q, "--format", "tsv", "--maxrows", "1"], None);
    assert_eq!(stdout(&tsv), "msg\tseverity_number\nfirst 1\t9\n");
    assert!(String::from_utf8_lossy(&tsv.stderr).contains("--max-rows inf shows all"));
    let all = sql(
        &path,
        &["-c", q, "--format", "nd-json", "--max-rows", "inf"],
        None,
    );
    assert_eq!(stdout(&all).lines().count(), 2);
    assert!(
        all.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&all.stderr)
    );
    let bad = sql(&path, &["-c", q, "--max-rows", "many"], None);
    assert!(String::from_utf8_lossy(&bad.stderr).contains("not a number of rows"));

    // The lake's own function is documented and listed.
    let listed = stdout(&sql(
        &path,
        &[
            "-c",
            "SHOW FUNCTIONS LIKE 'property_get'",
            "--format",
            "csv",
        ],
        None,
    ));
    assert!(listed.contains("property_get(properties, key)"), "{listed}");

    // At the prompt: \pset, \i, \h, \quiet; a row count and time after each statement.
    let file = dir.path().join("count.sql");
    std::fs::write(&file, "SELECT COUNT(*) AS n FROM log_entries;").unwrap();
    let script = format!(
        "\\pset format csv\n\\pset maxrows 1\n{q};\n\\i {}\n\\h property_get\n\\h\n\
         \\pset format yaml\n\\quiet on\nSELECT 7 AS seven;\n\\x\n",
        file.display()
    );
    let out = sql(&path, &[], Some(&script));
    let (text, err) = (stdout(&out), String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("format csv, maxrows 40"), "{text}");
    assert!(text.contains("format csv, maxrows 1"), "{text}");
    assert!(text.contains("msg,severity_number\nfirst 1,9\n"), "{text}");
    assert!(err.contains("\\pset maxrows inf shows all"), "{err}");
    assert!(text.contains("n\n2\n"), "{text}");
    assert!(err.contains("1 row in "), "{err}");
    assert!(text.contains("property_get (scalar function)"), "{text}");
    assert!(
        text.contains("syntax: property_get(properties, key)"),
        "{text}"
    );
    let in_list = |f: &str| text.lines().any(|l| l.split(' ').any(|w| w == f));
    assert!(
        in_list("abs") && in_list("property_get"),
        "\\h lists all functions: {text}"
    );
    assert!(err.contains("unknown format 'yaml'"), "{err}");
    assert!(text.contains("quiet: on"), "{text}");
    assert!(text.contains("seven\n7\n"), "{text}");
    assert_eq!(
        err.matches(" row in ").count() + err.matches(" rows in ").count(),
        2,
        "{err}"
    );
    assert!(err.contains("unknown command \\x"), "{err}");
}

/// `-c` and `-f` take backslash commands too, on lines of their own; `-c` may be repeated.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scripts_take_backslash_commands() {
    let dir = tempfile::tempdir().unwrap();
    let (path, lake) = local_lake(dir.path(), "cli-scripts", || info!("one {}", 1)).await;
    drop(lake);

    let tables = stdout(&sql(&path, &["-c", "\\d", "--format", "csv"], None));
    assert!(tables.contains("log_entries,BASE TABLE"), "{tables}");

    // Repeated -c run in order.
    let out = stdout(&sql(
        &path,
        &[
            "-c",
            "\\d measures",
            "-c",
            "SELECT 1 AS one",
            "--format",
            "csv",
        ],
        None,
    ));
    let (columns, one) = (out.find("unit,Utf8,NO"), out.find("one\n1\n"));
    assert!(columns.is_some() && one.is_some() && columns < one, "{out}");

    // A file: statements, a setting changed between them, \q ends the script.
    let file = dir.path().join("script.sql");
    std::fs::write(
        &file,
        "SELECT 1 AS a;\n\\pset format json\nSELECT COUNT(*) AS n\n  FROM log_entries;\n\\q\nSELECT 3 AS c;\n",
    )
    .unwrap();
    let out = stdout(&sql(
        &path,
        &["-f", file.to_str().unwrap(), "--format", "csv"],
        None,
    ));
    assert_eq!(out, "a\n1\nformat json, maxrows inf\n[{\"n\":1}]\n");

    // A failing command fails the script, with its message and a non-zero exit code.
    for (args, message) in [
        (&["-c", "\\x"][..], "unknown command \\x"),
        (&["-c", "\\d nope"], "nope"),
        (
            &["-c", "SELECT 1;\n\\i /nonexistent.sql"],
            "cannot read SQL file",
        ),
    ] {
        let o = sql(&path, args, None);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "{args:?} should fail");
        assert!(
            err.starts_with("error: ") && err.contains(message),
            "{args:?}: {err}"
        );
    }
}

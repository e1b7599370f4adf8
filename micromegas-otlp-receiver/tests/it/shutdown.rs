//! A stopping collector waits for its connections no longer than its write deadline and a
//! margin: a client that holds a connection open and sends nothing does not keep it up.

use crate::common::{collector_command, free_port, wait_for_port, Killed};
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_that_send_nothing_do_not_keep_a_stopping_collector_up() {
    let dir = tempfile::tempdir().unwrap();
    let grpc = free_port();
    let mut collector = Killed(
        collector_command(dir.path().join("lake"), grpc)
            .args(["--write-timeout", "1s"])
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    wait_for_port(grpc, 60, "the collector").await;
    // One connection silent from the start, one stopped halfway through the HTTP/2 preface.
    let silent = std::net::TcpStream::connect(("127.0.0.1", grpc)).unwrap();
    let mut halfway = std::net::TcpStream::connect(("127.0.0.1", grpc)).unwrap();
    halfway.write_all(b"PRI * HTTP/2.0\r\n").unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;

    let asked = Instant::now();
    let pid = collector.0.id().to_string();
    Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    let exited = loop {
        if let Some(status) = collector.0.try_wait().unwrap() {
            break status;
        }
        assert!(
            asked.elapsed() < Duration::from_secs(20),
            "the collector did not exit within 20 s of SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let took = asked.elapsed();
    assert!(exited.success(), "collector exit status {exited}");
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut collector.0.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(
        stderr.contains("connections still open at the drain deadline"),
        "{stderr}"
    );
    // The write deadline (1 s) and the margin (2 s), not the clients, decided when it ended.
    assert!(
        took >= Duration::from_secs(3),
        "stopped after {took:?}: {stderr}"
    );
    drop((silent, halfway));
}

//! Loopback ports for servers that tests start (shared by the lake's and the collector's
//! integration tests).

use std::sync::atomic::{AtomicU32, Ordering};

/// Ports are chosen from here up to the start of the kernel's ephemeral range.
const LOWEST: u16 = 10_000;

/// The kernel's ephemeral port range (`bind(:0)` and outgoing connections take their ports
/// there), Linux's default when it cannot be read.
fn ephemeral_range() -> (u16, u16) {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|text| {
            let mut bounds = text.split_whitespace().map(|n| n.parse::<u16>().ok());
            Some((bounds.next()??, bounds.next()??))
        })
        .unwrap_or((32_768, 60_999))
}

/// A loopback port free now, outside the kernel's ephemeral range: no server bound to `:0` and
/// no outgoing connection of the test run can take it between this check and the bind of the
/// server it is meant for, or while that server restarts on it. Successive calls in a process
/// try different ports, from a start that differs between processes.
pub fn free_port() -> u16 {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let (ephemeral_low, _) = ephemeral_range();
    let span = u32::from(ephemeral_low.saturating_sub(LOWEST)).max(1);
    let start = std::process::id().wrapping_mul(2_654_435_761) % span;
    for _ in 0..span {
        let offset = (start + NEXT.fetch_add(1, Ordering::Relaxed)) % span;
        let port = LOWEST + offset as u16;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free loopback port between {LOWEST} and {ephemeral_low}");
}

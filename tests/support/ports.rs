//! Loopback ports for the servers a test starts.
//!
//! A port taken with `bind(0)` and released is in the kernel's ephemeral range: until the
//! gateway binds it, any outgoing connection or any other `bind(0)` in the suite (the test
//! upstreams use one) may be handed the same port, and the gateway then fails to start. These
//! ports come from below that range instead, from a counter shared by every test of the process,
//! so no two tests of one binary, and no ephemeral socket, ever get the same one.

use std::net::TcpListener;
use std::sync::atomic::{AtomicU32, Ordering};

/// The first port handed out (below it: well-known and registered services).
const FIRST: u32 = 10_000;

/// The lower end of the kernel's ephemeral range (Linux default when it can't be read).
fn ephemeral_low() -> u32 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(32_768)
}

/// A free loopback port outside the ephemeral range, never handed out twice in this process.
pub fn free_port() -> u16 {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let low = ephemeral_low();
    if low <= FIRST + 1_000 {
        // An unusual range leaves no room below it: fall back to the kernel's choice.
        return TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");
    }
    let span = low - FIRST;
    // Test binaries run one after another; each starts at its own offset so a port that a
    // previous one left in TIME_WAIT is unlikely to come up first.
    let start = (std::process::id().wrapping_mul(7_919)) % span;
    for _ in 0..span {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = FIRST + (start + n) % span;
        if let Ok(l) = TcpListener::bind(("127.0.0.1", port as u16)) {
            drop(l);
            return port as u16;
        }
    }
    panic!("no free loopback port in {FIRST}..{low}");
}

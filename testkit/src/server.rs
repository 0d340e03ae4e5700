//! Starting the harness's helper servers (nats-server, PostgreSQL, the registry, relays run as
//! processes): a port to listen on, and waiting until one takes connections, with its log in the
//! failure when it does not.

use std::net::TcpListener;
use std::path::Path;
use std::time::{Duration, Instant};

/// A loopback port nobody listens on right now (a server started on it a moment later).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}

/// Asks `ready` every `every` until it says yes; after `within`, fails saying that `what` did
/// not start, followed by the server's log at `log`.
pub(crate) fn wait_started(
    what: &str,
    within: Duration,
    every: Duration,
    log: &Path,
    mut ready: impl FnMut() -> bool,
) {
    let deadline = Instant::now() + within;
    while !ready() {
        if Instant::now() > deadline {
            let log = std::fs::read_to_string(log).unwrap_or_default();
            panic!("{what} did not start within {within:?}; its log:\n{log}");
        }
        std::thread::sleep(every);
    }
}

//! Test harness for end-to-end tests and benchmarks: a real relay on port 0 with a temporary
//! SQLite file, agents running in-process against the real Docker engine, and throwaway
//! containers made from the locally imported busybox image. Everything is torn down on drop.

mod agent;
pub mod build;
pub mod docker;
pub mod nats;
pub mod postgres;
pub mod process;
pub mod pty;
pub mod registry;
mod relay;
mod served;
mod server;
pub mod throttle;
pub mod tls;
pub mod wire;

pub use agent::{AgentBuilder, TestAgent};
pub use docker::{TestContainers, require_docker};
pub use nats::TestNats;
pub use postgres::TestPostgres;
pub use relay::{RelayBuilder, StoppedRelay, TestRelay};
pub use served::Served;
pub use server::free_port;
pub use tls::TestPki;

/// Password of the users [`TestRelay::login`] creates.
pub const TEST_PASSWORD: &str = "test-password-1";

/// What an agent says of itself on enrolling, for tests that enrol one straight in the store.
pub fn agent_info() -> zedops_protocol::AgentInfo {
    zedops_protocol::AgentInfo {
        version: "1".into(),
        os: "linux".into(),
        arch: "x86_64".into(),
        ..Default::default()
    }
}

/// Logs to the test output once (`RUST_LOG=debug cargo test …` to see more).
pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_test_writer()
        .try_init();
}

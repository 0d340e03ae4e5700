//! [`Served`]: the usual start of a test that reads a container through the whole chain — the
//! test's container on the real engine, a fresh relay, one real agent that sees the container,
//! and a viewer signed in — opened with [`Served::open`].

use zedops_protocol::Role;

use crate::{TestAgent, TestContainers, TestRelay, require_docker};

/// What a test talks to, alive until its end: a viewer's client of a relay, the viewer's device
/// token (to run the CLI as the same user), an agent on the relay, and the test's containers.
/// Fields drop in order, so the containers are removed last, after the agent stopped.
pub struct Served {
    pub relay: TestRelay,
    pub client: zedops_client::Client,
    pub token: String,
    pub agent: TestAgent,
    pub containers: TestContainers,
}

impl Served {
    /// Opens a test: requires Docker (`None` when it is missing outside CI: the test skips; see
    /// [`require_docker`]), has `make` create the test's containers, then starts a relay and an
    /// agent named `agent` that sees them from its first listing, with a viewer signed in.
    /// Returns what `make` returned (the containers' names) beside the rest.
    pub async fn open<T>(
        agent: &str,
        make: impl AsyncFnOnce(&mut TestContainers) -> T,
    ) -> Option<(Self, T)> {
        let docker = require_docker().await?;
        let mut containers = TestContainers::new(&docker);
        let container = make(&mut containers).await;
        let relay = TestRelay::builder().start().await;
        let agent = TestAgent::builder(&relay).name(agent).online().await;
        let token = relay.login("viewer", Role::Viewer).await;
        let client = relay.client_with(&token).await;
        let served = Self {
            relay,
            client,
            token,
            agent,
            containers,
        };
        Some((served, container))
    }
}

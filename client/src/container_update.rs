//! Updating one container, typed: `container.update` as a stream of [`ContainerUpdateFrame`]s
//! (steps, pull progress, the pre-update hook's outcome, then the end with `updated` or, with
//! `UPDATE_ROLLED_BACK`, `rolledBack`). The relay checks the role (operator); this only asks.

use zedops_protocol::{ClientRequest, ContainerUpdateFrame, ContainerUpdateRequest};

use crate::client::Client;
use crate::error::ClientError;
use crate::streams::StreamReader;

/// The frames of one container update, the last with `end`.
pub type ContainerUpdate = StreamReader<ContainerUpdateFrame>;

/// What to update a container to and how long to wait for it; `Default` is the container's own
/// image reference pulled again, the agent's default health timeout (60 s) and stable time
/// (10 s).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UpdateOptions {
    /// Another image reference to move to.
    pub image: Option<String>,
    /// Seconds the new container gets to become healthy (1 to 3600).
    pub health_timeout_secs: Option<u32>,
    /// For a container without a health check: seconds it must run without restarting.
    pub stable_secs: Option<u32>,
    /// Recreate even when the pulled image is the one it already runs.
    pub force: bool,
}

impl Client {
    /// Updates `container` on `agent` (operator): the agent pulls, recreates it with its full
    /// configuration on the new image, waits until it is healthy and removes the old one, or
    /// puts the old one back (`UPDATE_ROLLED_BACK` in the end). A refusal (unknown container,
    /// role, agent offline) arrives as the first item of the stream. Dropping the stream does
    /// not stop an update once the old container has been touched.
    pub async fn update_container(
        &self,
        agent: &str,
        container: &str,
        options: UpdateOptions,
    ) -> Result<ContainerUpdate, ClientError> {
        let request = ContainerUpdateRequest {
            agent_id: agent.into(),
            container_id: container.into(),
            image: options.image,
            health_timeout_secs: options.health_timeout_secs,
            stable_secs: options.stable_secs,
            force: options.force,
        };
        self.open_stream(ClientRequest::ContainerUpdate(request))
            .await
    }
}

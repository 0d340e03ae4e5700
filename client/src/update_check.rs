//! Update available, typed: the relay's latest update state of one agent or all (any role), and
//! asking agents to check their images' registries now (operator), answered with fresh states.

use zedops_protocol::{
    ClientRequest, UPDATE_CHECK_TIMEOUT, UpdateCheckRequest, UpdateListRequest, UpdateListResponse,
};

use crate::client::{Client, REQUEST_GRACE};
use crate::error::ClientError;

impl Client {
    /// The containers with a newer image, as each agent last reported them: one agent (name or
    /// id) or every agent that has reported.
    pub async fn updates(&self, agent: Option<&str>) -> Result<UpdateListResponse, ClientError> {
        let request = UpdateListRequest {
            agent_id: agent.map(|a| a.into()),
        };
        self.quick_request(ClientRequest::UpdatesList(request))
            .await
    }

    /// Asks one agent (name or id), or every connected agent, to check its images now, and
    /// waits for the fresh states (operator). With every agent, the ones that could not check
    /// are in `failed`; with one, its failure is the error.
    pub async fn check_updates(
        &self,
        agent: Option<&str>,
    ) -> Result<UpdateListResponse, ClientError> {
        let request = UpdateCheckRequest {
            agent_id: agent.map(|a| a.into()),
        };
        self.request(
            ClientRequest::UpdatesCheck(request),
            UPDATE_CHECK_TIMEOUT + REQUEST_GRACE,
        )
        .await
    }
}

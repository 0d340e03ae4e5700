//! Client requests addressed to one agent by id or name: the relay finds the agent from the
//! reference and forwards the same request with the agent's id in its place.

use zedops_protocol::{
    AttachRequest, ContainerActionRequest, ContainerListRequest, ContainerRemoveRequest,
    ContainerUpdateRequest, ExecRequest, FileGetRequest, FilePathRequest, FilePutRequest,
    ImageListRequest, ImagePullRequest, ImageRemoveRequest, LogsRequest, SendRequest, StatsRequest,
};

use crate::hub::AgentLink;

/// A request naming its agent in `agentId`.
pub(crate) trait Addressed: Sized {
    /// The agent as the client named it (its id or its name).
    fn reference(&self) -> &str;
    /// The request as the agent gets it: `agentId` is `link`'s id.
    fn addressed_to(self, link: &AgentLink) -> Self;
}

macro_rules! addressed {
    ($($request:ty),+ $(,)?) => {
        $(impl Addressed for $request {
            fn reference(&self) -> &str {
                self.agent_id.as_str()
            }

            fn addressed_to(mut self, link: &AgentLink) -> Self {
                self.agent_id = link.id.as_str().into();
                self
            }
        })+
    };
}

addressed!(
    AttachRequest,
    ContainerActionRequest,
    ContainerListRequest,
    ContainerRemoveRequest,
    ContainerUpdateRequest,
    ExecRequest,
    FileGetRequest,
    FilePathRequest,
    FilePutRequest,
    ImageListRequest,
    ImagePullRequest,
    ImageRemoveRequest,
    LogsRequest,
    SendRequest,
    StatsRequest,
);

//! The Docker requests the relay sends an agent (decoded by [`crate::session`] from
//! [`zedops_protocol::AgentRequest`]), and the answers Docker's results turn into.

use zedops_protocol::{
    ContainerActionRequest, ContainerListResponse, ContainerRef, Envelope, ErrorCode, ErrorReply,
    Operation, OperationError, OperationSuccess, ProtocolError, subject,
};

use crate::docker::{DockerClient, DockerError};

/// One request from the relay, decoded and validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// `container.list`
    List,
    /// `container.inspect` of a container id, id prefix or name.
    Inspect { container_id: ContainerRef },
    /// `container.start|stop|restart` of a container id, id prefix or name.
    Action {
        operation: Operation,
        container_id: ContainerRef,
    },
    /// `container.remove`
    Remove(zedops_protocol::ContainerRemoveRequest),
    /// `image.list`
    Images,
    /// `image.remove`
    RemoveImage(zedops_protocol::ImageRemoveRequest),
}

impl Request {
    /// `container.start|stop|restart` as `operation` names it.
    pub fn action(operation: Operation, request: ContainerActionRequest) -> Self {
        Self::Action {
            operation,
            container_id: request.container_id,
        }
    }

    /// The subject that asked for this.
    pub fn subject(&self) -> &'static str {
        match self {
            Self::List => subject::CONTAINER_LIST,
            Self::Inspect { .. } => subject::CONTAINER_INSPECT,
            Self::Action { operation, .. } => operation.subject(),
            Self::Remove(_) => subject::CONTAINER_REMOVE,
            Self::Images => subject::IMAGE_LIST,
            Self::RemoveImage(_) => subject::IMAGE_REMOVE,
        }
    }

    /// Carries the request out and returns the answer frame for `inbox`.
    pub async fn answer(self, docker: &DockerClient, inbox: &str) -> String {
        match self {
            Self::List => list(docker, inbox).await,
            Self::Inspect { container_id } => inspect(docker, &container_id, inbox).await,
            Self::Remove(request) => crate::deploy::remove(docker, request, inbox).await,
            Self::Images => crate::deploy::images(docker, inbox).await,
            Self::RemoveImage(request) => crate::deploy::remove_image(docker, request, inbox).await,
            Self::Action {
                operation,
                container_id,
            } => act(docker, operation, container_id, inbox).await,
        }
    }
}

async fn list(docker: &DockerClient, inbox: &str) -> String {
    match docker.list().await {
        Ok(containers) => {
            let count = containers.len();
            Envelope::new(inbox, ContainerListResponse { containers, count }).to_json()
        }
        Err(err) => {
            log_failure(&err, "listing containers failed");
            let code = match err.code() {
                ErrorCode::DockerNotAvailable => ErrorCode::DockerNotAvailable,
                _ => ErrorCode::DockerListFailed,
            };
            Envelope::new(inbox, ErrorReply::new(code, err.to_string())).to_json()
        }
    }
}

async fn inspect(docker: &DockerClient, container_id: &str, inbox: &str) -> String {
    match docker.inspect(container_id).await {
        Ok(detail) => Envelope::new(inbox, detail).to_json(),
        Err(err) => {
            log_failure(&err, "inspecting a container failed");
            Envelope::new(inbox, ErrorReply::from(err)).to_json()
        }
    }
}

async fn act(
    docker: &DockerClient,
    operation: Operation,
    container_id: ContainerRef,
    inbox: &str,
) -> String {
    let result = match operation {
        Operation::Start => docker.start(&container_id).await,
        Operation::Stop => docker.stop(&container_id).await,
        Operation::Restart => docker.restart(&container_id).await,
    };
    let _span = tracing::info_span!("container", id = %container_id, %operation).entered();
    match result {
        Ok(()) => {
            tracing::info!("container operation done");
            let success = OperationSuccess {
                success: true,
                container_id,
                operation,
            };
            Envelope::new(inbox, success).to_json()
        }
        Err(err) => {
            log_failure(&err, "container operation failed");
            let error_code = err.code();
            let failure = OperationError {
                success: false,
                container_id,
                operation,
                error: err.to_string(),
                error_code,
            };
            Envelope::new(inbox, failure).to_json()
        }
    }
}

/// Docker being down is logged once by the Docker module, not again for every request.
fn log_failure(err: &DockerError, what: &str) {
    if err.code() == ErrorCode::DockerNotAvailable {
        tracing::debug!(%err, "{what}");
    } else {
        tracing::warn!(%err, "{what}");
    }
}

/// The answer to a frame that could not be handled: to its inbox when it has one, else as an
/// `error` frame.
pub fn refusal(reply: Option<&str>, err: &ProtocolError) -> String {
    Envelope::new(reply.unwrap_or(subject::ERROR), err.to_reply()).to_json()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_name_their_subject() {
        let request = |c: &str| ContainerActionRequest {
            agent_id: "a".into(),
            container_id: c.into(),
        };
        assert_eq!(Request::List.subject(), subject::CONTAINER_LIST);
        let stop = Request::action(Operation::Stop, request("web"));
        assert_eq!(
            stop,
            Request::Action {
                operation: Operation::Stop,
                container_id: "web".into()
            }
        );
        assert_eq!(stop.subject(), subject::CONTAINER_STOP);
    }

    #[test]
    fn refusals_go_to_the_inbox_or_as_an_error_frame() {
        let err = ProtocolError::invalid("subject", "not a request this agent handles");
        let to_inbox: serde_json::Value =
            serde_json::from_str(&refusal(Some("_INBOX.7"), &err)).unwrap();
        assert_eq!(to_inbox["subject"], "_INBOX.7");
        assert_eq!(to_inbox["data"]["errorCode"], "INVALID_REQUEST");
        let frame: serde_json::Value = serde_json::from_str(&refusal(None, &err)).unwrap();
        assert_eq!(frame["subject"], "error");
        assert!(frame.get("reply").is_none());
    }
}

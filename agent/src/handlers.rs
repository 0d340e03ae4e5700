//! The requests the relay sends an agent, and the answers Docker's results turn into.

use zedops_protocol::{
    ContainerActionRequest, ContainerListRequest, ContainerListResponse, Envelope, ErrorCode,
    ErrorReply, Frame, Operation, OperationError, OperationSuccess, ProtocolError, subject,
};

use crate::docker::{DockerClient, DockerError};

/// One request from the relay, decoded and validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// `container.list`
    List,
    /// `container.inspect` of a container id, id prefix or name.
    Inspect { container_id: String },
    /// `container.start|stop|restart` of a container id, id prefix or name.
    Action {
        operation: Operation,
        container_id: String,
    },
}

impl Request {
    /// Decodes `frame` strictly; anything else the relay might send is refused.
    pub fn parse(frame: &Frame) -> Result<Self, ProtocolError> {
        if frame.subject == subject::CONTAINER_LIST {
            frame.payload::<ContainerListRequest>()?;
            return Ok(Self::List);
        }
        if frame.subject == subject::CONTAINER_INSPECT {
            let request: ContainerActionRequest = frame.payload()?;
            return Ok(Self::Inspect {
                container_id: request.container_id,
            });
        }
        let operation = Operation::from_subject(&frame.subject)
            .ok_or_else(|| ProtocolError::invalid("subject", "not a request this agent handles"))?;
        let request: ContainerActionRequest = frame.payload()?;
        Ok(Self::Action {
            operation,
            container_id: request.container_id,
        })
    }

    /// Carries the request out and returns the answer frame for `inbox`.
    pub async fn answer(self, docker: &DockerClient, inbox: &str) -> String {
        match self {
            Self::List => list(docker, inbox).await,
            Self::Inspect { container_id } => inspect(docker, &container_id, inbox).await,
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
            Envelope::new(inbox, ErrorReply::new(err.code(), err.to_string())).to_json()
        }
    }
}

async fn act(
    docker: &DockerClient,
    operation: Operation,
    container_id: String,
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

    fn parse(text: &str) -> Result<Request, ProtocolError> {
        Request::parse(&Frame::decode(text).unwrap())
    }

    #[test]
    fn parses_requests_strictly() {
        assert_eq!(
            parse(r#"{"subject":"container.list","reply":"_INBOX.1","data":{"agentId":"a"}}"#)
                .unwrap(),
            Request::List
        );
        assert_eq!(
            parse(r#"{"subject":"container.stop","reply":"_INBOX.1","data":{"agentId":"a","containerId":"web"}}"#)
                .unwrap(),
            Request::Action { operation: Operation::Stop, container_id: "web".into() }
        );
        assert!(
            parse(r#"{"subject":"container.remove","reply":"_INBOX.1","data":{"agentId":"a"}}"#)
                .is_err()
        );
        assert!(
            parse(r#"{"subject":"container.list","data":{"agentId":"a","all":true}}"#).is_err()
        );
        assert!(
            parse(r#"{"subject":"container.start","data":{"agentId":"a","containerId":"../x"}}"#)
                .is_err()
        );
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

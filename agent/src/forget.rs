//! `agent.forget`: an enrolled agent asks the relay to forget it (used by `zedops-agent
//! uninstall --purge` before it deletes the credentials), so the relay marks it revoked and its
//! name can be enrolled again. The agent authenticates with its own credentials and can only
//! ever forget itself.

use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use zedops_protocol::{AgentForgetRequest, AgentForgotten, Envelope, ErrorReply, subject};
use zedops_transport::{RelayUrl, TransportError};

use crate::credentials::Credentials;
use crate::docker::DockerClient;
use crate::session::Identity;

/// How long the whole exchange may take: uninstall must not hang on an unreachable relay.
pub const FORGET_TIMEOUT: Duration = Duration::from_secs(15);

/// Why forgetting did not happen.
#[derive(Debug, thiserror::Error)]
pub enum ForgetError {
    /// The relay could not be reached or did not answer: it still knows the agent.
    #[error("cannot reach the relay at {relay}: {reason}")]
    Unreachable { relay: String, reason: String },
    /// The relay answered with a refusal (for example the agent was already revoked).
    #[error("the relay refused ({0})")]
    Refused(ErrorReply),
    #[error("{0:#}")]
    Other(anyhow::Error),
}

/// Connects to `relay_url` as the agent in `credentials` and asks to be forgotten. Returns
/// the relay's answer (the agent's id and name).
pub async fn forget(
    credentials: &Credentials,
    relay_url: &str,
    ca_file: Option<&Path>,
    insecure: bool,
) -> Result<AgentForgotten, ForgetError> {
    // With several relays (a cluster), the first one: they share one database.
    let first = relay_url.split(',').next().unwrap_or(relay_url).trim();
    let relay = RelayUrl::parse(first, insecure)
        .context("check the relay URL")
        .map_err(ForgetError::Other)?;
    let tls = zedops_transport::client_config(ca_file)
        .context("check the CA file")
        .map_err(ForgetError::Other)?;
    let unreachable = |reason: String| ForgetError::Unreachable {
        relay: relay.canonical(),
        reason,
    };
    let exchange = async {
        // The running agent's hello. No container is touched here: the relay only records
        // what the hello says.
        let (mut writer, mut reader, _) = crate::session::hello(
            &relay.ws("/ws/agent"),
            &tls,
            &Identity::Enrolled(credentials.clone()),
            &DockerClient::connect(None).await,
        )
        .await?;
        let inbox = zedops_protocol::new_inbox_suffix(std::process::id());
        writer
            .send(&Envelope::request(
                subject::AGENT_FORGET,
                &inbox,
                &AgentForgetRequest {},
            ))
            .await?;
        // Requests the relay forwards meanwhile are not answered: this connection only forgets.
        loop {
            let Some(frame) = reader.recv().await? else {
                return Err(TransportError::Closed);
            };
            if frame.subject == inbox || frame.subject == subject::ERROR {
                writer.close().await;
                return Ok(frame);
            }
        }
    };
    let frame = match tokio::time::timeout(FORGET_TIMEOUT, exchange).await {
        Err(_) => {
            return Err(unreachable(format!(
                "no answer within {} s",
                FORGET_TIMEOUT.as_secs()
            )));
        }
        Ok(Err(TransportError::Refused(reply))) => return Err(ForgetError::Refused(reply)),
        Ok(Err(err)) => return Err(unreachable(err.to_string())),
        Ok(Ok(frame)) => frame,
    };
    // A failed answer is recognised by its errorCode (an AgentForgotten has none).
    if let Ok(reply) = frame.payload::<ErrorReply>() {
        return Err(ForgetError::Refused(reply));
    }
    match frame.payload::<AgentForgotten>() {
        Ok(forgotten) => Ok(forgotten),
        Err(err) => Err(ForgetError::Other(anyhow::anyhow!(
            "the relay's answer to agent.forget could not be read: {err}"
        ))),
    }
}

/// [`forget`] from synchronous code (the installer), on a runtime of its own in a thread of its
/// own, so it works whether or not the caller already runs inside a runtime.
pub fn forget_blocking(
    credentials: Credentials,
    relay_url: String,
    ca_file: Option<std::path::PathBuf>,
    insecure: bool,
) -> Result<AgentForgotten, ForgetError> {
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| ForgetError::Other(e.into()))?;
        runtime.block_on(forget(
            &credentials,
            &relay_url,
            ca_file.as_deref(),
            insecure,
        ))
    })
    .join()
    .unwrap_or_else(|_| {
        Err(ForgetError::Other(anyhow::anyhow!(
            "the forget task panicked"
        )))
    })
}

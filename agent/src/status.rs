//! `<data-dir>/status.json`: what the agent last knew about its link to the relay (connected,
//! retrying, or refused for good with the relay's reason), written by the running agent so that
//! `zedops-agent install` can wait for the service to enrol and say why it could not.

use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

const FILE_NAME: &str = "status.json";
/// Longest message kept: the relay's reasons are short; the file must stay small.
const MAX_MESSAGE: usize = 1024;

/// The agent's link to the relay, as last seen by the agent process `pid`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Status {
    /// `connected`, `retrying` or `refused`.
    pub state: String,
    /// The relay's error code for `refused` (`UNAUTHORIZED`, `NAME_TAKEN`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// What happened, for a person.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The agent's name and id at the relay, once connected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<String>,
    /// The process that wrote it, so a reader can tell a fresh status from a previous run's.
    pub pid: u32,
}

impl Status {
    pub const CONNECTED: &'static str = "connected";
    pub const RETRYING: &'static str = "retrying";
    pub const REFUSED: &'static str = "refused";

    fn new(state: &str) -> Self {
        Self {
            state: state.to_string(),
            code: None,
            message: None,
            name: None,
            agent_id: None,
            pid: std::process::id(),
        }
    }

    pub fn connected(name: &str, agent_id: &str) -> Self {
        Self {
            name: Some(name.to_string()),
            agent_id: Some(agent_id.to_string()),
            ..Self::new(Self::CONNECTED)
        }
    }

    pub fn retrying(message: &str) -> Self {
        Self {
            message: Some(bounded(message)),
            ..Self::new(Self::RETRYING)
        }
    }

    pub fn refused(code: &str, message: &str) -> Self {
        Self {
            code: Some(bounded(code)),
            message: Some(bounded(message)),
            ..Self::new(Self::REFUSED)
        }
    }
}

fn bounded(text: &str) -> String {
    let mut text = text.to_string();
    crate::text::truncate(&mut text, MAX_MESSAGE);
    text
}

/// Where the status of the agent using `dir` lives.
pub fn path(dir: &Path) -> PathBuf {
    dir.join(FILE_NAME)
}

/// Replaces the status file (temp file and rename, so a reader never sees half of it). A failure
/// is logged and otherwise ignored: the status is a courtesy to the installer, never a reason
/// for the agent to stop.
pub fn write(dir: &Path, status: &Status) {
    let attempt = || -> std::io::Result<()> {
        let json = serde_json::to_vec(status).map_err(std::io::Error::other)?;
        crate::replace::replace(&path(dir), &json, None)
    };
    if let Err(err) = attempt() {
        tracing::debug!(%err, dir = %dir.display(), "cannot write the status file");
    }
}

/// The status last written, if any is there and readable.
pub fn read(dir: &Path) -> Option<Status> {
    let text = fs::read(path(dir)).ok()?;
    serde_json::from_slice(&text).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_bounds_messages() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read(dir.path()), None);
        write(
            dir.path(),
            &Status::refused("UNAUTHORIZED", &"é".repeat(2000)),
        );
        let back = read(dir.path()).unwrap();
        assert_eq!(back.state, Status::REFUSED);
        assert_eq!(back.code.as_deref(), Some("UNAUTHORIZED"));
        assert!(back.message.unwrap().len() <= MAX_MESSAGE);
        assert_eq!(back.pid, std::process::id());
        write(dir.path(), &Status::connected("web-1", "id-1"));
        assert_eq!(read(dir.path()).unwrap().state, Status::CONNECTED);
    }
}

//! `container.inspect`: one container in detail (command, environment with secrets masked,
//! mounts, ports, restart policy, health log), for a detail view and `zedops inspect`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::payload::{Port, Validate};

/// Words in an environment variable's name that mark its value as secret. Matched
/// case-insensitively anywhere in the name (`DB_PASSWORD`, `steamApiKey`, `RCON_PASS`).
pub const SECRET_NAME_PARTS: &[&str] = &[
    "PASS",
    "PWD",
    "SECRET",
    "TOKEN",
    "KEY",
    "CREDENTIAL",
    "PRIVATE",
    "AUTH",
    "SESSION",
    "COOKIE",
    "CERT",
    "DSN",
];

/// True when an environment variable called `name` probably holds a secret.
pub fn looks_secret(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    SECRET_NAME_PARTS.iter().any(|part| upper.contains(part))
}

/// One environment variable. A value that looks secret never leaves the agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EnvVar {
    pub name: String,
    /// `None` when masked (or the variable has no `=`).
    #[serde(default)]
    pub value: Option<String>,
    /// True when the value was withheld because the name looks secret.
    #[serde(default)]
    pub masked: bool,
}

impl EnvVar {
    /// `NAME=value` from Docker, masked when the name looks secret.
    pub fn from_docker(entry: &str) -> Self {
        let (name, value) = match entry.split_once('=') {
            Some((name, value)) => (name, Some(value)),
            None => (entry, None),
        };
        let masked = looks_secret(name);
        Self {
            name: name.to_string(),
            value: if masked {
                None
            } else {
                value.map(str::to_string)
            },
            masked,
        }
    }
}

/// A volume, bind mount or tmpfs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Mount {
    /// `bind`, `volume`, `tmpfs`, …
    #[serde(rename = "type")]
    pub kind: String,
    /// Host path or volume name.
    pub source: String,
    /// Path inside the container.
    pub destination: String,
    pub read_only: bool,
}

/// One run of the health check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HealthCheck {
    pub start: String,
    pub end: String,
    pub exit_code: i64,
    pub output: String,
}

/// The health check's state and its last runs (Docker keeps five).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Health {
    /// `healthy`, `unhealthy` or `starting`.
    pub status: String,
    pub failing_streak: i64,
    pub log: Vec<HealthCheck>,
}

/// `container.inspect` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ContainerDetail {
    pub id: String,
    /// Without Docker's leading `/`.
    pub name: String,
    pub image: String,
    /// The image's id (`sha256:…`).
    pub image_id: String,
    /// Entrypoint and command, as run.
    pub command: Vec<String>,
    /// RFC 3339.
    pub created: String,
    pub state: String,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    /// The last exit code (0 while it has never exited).
    pub exit_code: Option<i64>,
    /// `no`, `always`, `unless-stopped`, `on-failure` (with `:N` for a retry limit).
    pub restart_policy: String,
    pub restart_count: i64,
    pub env: Vec<EnvVar>,
    pub mounts: Vec<Mount>,
    pub ports: Vec<Port>,
    pub labels: BTreeMap<String, String>,
    pub health: Option<Health>,
}

impl Validate for ContainerDetail {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_looking_values_are_masked() {
        for secret in [
            "DB_PASSWORD=hunter2",
            "steamApiKey=abc",
            "RCON_PASS=x",
            "GITHUB_TOKEN=ghp_x",
            "AWS_SECRET_ACCESS_KEY=y",
        ] {
            let var = EnvVar::from_docker(secret);
            assert!(var.masked && var.value.is_none(), "{secret} was not masked");
            assert!(
                !serde_json::to_string(&var)
                    .unwrap()
                    .contains(secret.split_once('=').unwrap().1)
            );
        }
        let plain = EnvVar::from_docker("SERVER_NAME=pz=eu");
        assert_eq!(
            (plain.name.as_str(), plain.value.as_deref(), plain.masked),
            ("SERVER_NAME", Some("pz=eu"), false)
        );
        let bare = EnvVar::from_docker("DEBUG");
        assert_eq!((bare.value, bare.masked), (None, false));
    }
}

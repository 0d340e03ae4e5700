//! Logins to private image registries: admins store them at the relay (`registry.add`,
//! `registry.list`, `registry.remove`), the relay keeps them encrypted and hands the whole set to
//! each agent over its connection (`registry.logins`), and agents use the one whose server
//! matches an image for its pulls and update checks. A password travels only client → relay in
//! `registry.add` and relay → agent in `registry.logins`; no answer to a client carries one, and
//! the types holding one print it redacted.

use serde::{Deserialize, Serialize};

use crate::error::ProtocolError;
use crate::payload::Validate;

/// Most logins a relay keeps (and sends an agent at once).
pub const MAX_REGISTRY_LOGINS: usize = 64;
/// Longest registry server name (`host[:port]`).
pub const MAX_REGISTRY_SERVER_LEN: usize = 255;
/// Longest user name.
pub const MAX_REGISTRY_USER_LEN: usize = 255;
/// Longest password or access token (cloud registries' tokens run to a few kilobytes).
pub const MAX_REGISTRY_PASSWORD_LEN: usize = 8192;
/// How Docker Hub is named, whatever alias was given (`index.docker.io`, its v1 URL, …).
pub const DOCKER_HUB: &str = "docker.io";

/// `server` in the one form logins are stored and matched under: no scheme, no path, lower
/// case, Docker Hub's aliases as [`DOCKER_HUB`]. Refuses anything but `host[:port]`.
pub fn registry_server(server: &str) -> Result<String, ProtocolError> {
    let bare = server
        .trim()
        .trim_start_matches("https://")
        .trim_start_matches("http://");
    let (bare, path) = bare.split_once('/').unwrap_or((bare, ""));
    // Docker's own config names Docker Hub `https://index.docker.io/v1/`: an API version is
    // the only path a registry's address has. A login covers the whole registry, so a path
    // such as `/myorg` would read as a narrower login than it is.
    if !matches!(path.trim_end_matches('/'), "" | "v1" | "v2") {
        return Err(ProtocolError::invalid(
            "server",
            "a login covers a whole registry: give its host alone, e.g. ghcr.io rather than ghcr.io/myorg",
        ));
    }
    let bare = bare.to_ascii_lowercase();
    let (host, port) = match bare.rsplit_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (bare.as_str(), None),
    };
    let host_ok = !host.is_empty()
        && host.len() <= MAX_REGISTRY_SERVER_LEN
        && !host.starts_with(['.', '-'])
        && !host.ends_with(['.', '-'])
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-');
    let port_ok = port.is_none_or(|p| p.parse::<u16>().is_ok_and(|p| p > 0));
    if !host_ok || !port_ok || bare.len() > MAX_REGISTRY_SERVER_LEN {
        return Err(ProtocolError::invalid(
            "server",
            "must be a registry's host name or address with an optional port, e.g. registry.example.com:5000",
        ));
    }
    Ok(match bare.as_str() {
        "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com" => {
            DOCKER_HUB.to_string()
        }
        _ => bare,
    })
}

/// The registry an image reference is pulled from, by Docker's rule: the first path component
/// when it has a dot or a port or is `localhost`, else Docker Hub.
pub fn registry_of_image(reference: &str) -> String {
    match reference.split_once('/') {
        Some((first, _)) if first.contains(['.', ':']) || first == "localhost" => {
            registry_server(first).unwrap_or_else(|_| first.to_ascii_lowercase())
        }
        _ => DOCKER_HUB.to_string(),
    }
}

fn check_login(server: &str, username: &str, password: &str) -> Result<(), ProtocolError> {
    registry_server(server)?;
    if username.is_empty()
        || username.len() > MAX_REGISTRY_USER_LEN
        || username.contains(':')
        || username.chars().any(char::is_control)
    {
        return Err(ProtocolError::invalid(
            "username",
            "must be 1-255 characters without ':' or control characters",
        ));
    }
    if password.is_empty()
        || password.len() > MAX_REGISTRY_PASSWORD_LEN
        || password.chars().any(char::is_control)
    {
        return Err(ProtocolError::invalid(
            "password",
            "must be 1-8192 bytes without control characters",
        ));
    }
    Ok(())
}

/// `registry.add` (admin): store (or replace) the login for one registry server.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RegistryAddRequest {
    /// `host[:port]`, e.g. `registry.example.com:5000`; `docker.io` for Docker Hub.
    pub server: String,
    pub username: String,
    /// The password or access token. Never logged, never sent back.
    pub password: String,
}

impl std::fmt::Debug for RegistryAddRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryAddRequest")
            .field("server", &self.server)
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

impl Validate for RegistryAddRequest {
    fn validate(&self) -> Result<(), ProtocolError> {
        check_login(&self.server, &self.username, &self.password)
    }
}

/// `registry.add` answer: the server as stored, and whether an older login was replaced.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RegistryAdded {
    pub server: String,
    pub username: String,
    pub replaced: bool,
    /// Connected agents the new set was sent to.
    pub agents: u32,
}

/// `registry.list` (admin).
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RegistryListRequest {}

impl Validate for RegistryListRequest {}

/// One stored login as a client sees it: never its password.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RegistrySummary {
    pub server: String,
    pub username: String,
    pub updated_by: Option<String>,
    /// RFC 3339.
    pub updated_at: String,
}

/// `registry.list` answer, by server.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RegistryListResponse {
    pub registries: Vec<RegistrySummary>,
}

/// `registry.remove` (admin).
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RegistryRemoveRequest {
    pub server: String,
}

impl Validate for RegistryRemoveRequest {
    fn validate(&self) -> Result<(), ProtocolError> {
        registry_server(&self.server).map(drop)
    }
}

/// `registry.remove` answer.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RegistryRemoved {
    pub server: String,
    /// Connected agents the new set was sent to.
    pub agents: u32,
}

/// One login as an agent gets it.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RegistryLogin {
    pub server: String,
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for RegistryLogin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryLogin")
            .field("server", &self.server)
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// `registry.logins` (relay → agent): every login the relay has, replacing what the agent
/// held. Sent when the agent connects and whenever an admin changes them; the agent keeps them
/// in memory only.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RegistryLogins {
    pub logins: Vec<RegistryLogin>,
}

impl Validate for RegistryLogins {
    fn validate(&self) -> Result<(), ProtocolError> {
        if self.logins.len() > MAX_REGISTRY_LOGINS {
            return Err(ProtocolError::invalid("logins", "too many"));
        }
        self.logins
            .iter()
            .try_for_each(|l| check_login(&l.server, &l.username, &l.password))
    }
}

/// `registry.logins` answer: how many the agent now holds.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RegistryLoginsStored {
    pub count: u32,
}

// Answers: checked as the client reads them.
impl Validate for RegistryAdded {}
impl Validate for RegistryRemoved {}
impl Validate for RegistryLoginsStored {}
impl Validate for RegistryListResponse {
    fn validate(&self) -> Result<(), ProtocolError> {
        if self.registries.len() > MAX_REGISTRY_LOGINS {
            return Err(ProtocolError::invalid("registries", "too many"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn servers_are_normalised_and_checked() {
        assert_eq!(
            registry_server("Registry.Example.com:5000").unwrap(),
            "registry.example.com:5000"
        );
        assert_eq!(
            registry_server("https://index.docker.io/v1/").unwrap(),
            DOCKER_HUB
        );
        assert_eq!(registry_server("127.0.0.1:5000").unwrap(), "127.0.0.1:5000");
        assert_eq!(registry_server("https://ghcr.io/v2/").unwrap(), "ghcr.io");
        // A path would read as a login for part of a registry: refused, not dropped.
        for narrower in ["ghcr.io/myorg", "https://registry.example.com/team/"] {
            let err = registry_server(narrower).unwrap_err().to_string();
            assert!(
                err.contains("ghcr.io rather than ghcr.io/myorg"),
                "{narrower}: {err}"
            );
        }
        for bad in [
            "",
            "a b",
            "host:0",
            "host:99999",
            "-x.com",
            "x.com:",
            "x;rm",
            "a@b",
        ] {
            assert!(registry_server(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn images_name_their_registry_as_docker_does() {
        assert_eq!(registry_of_image("nginx:1.27"), DOCKER_HUB);
        assert_eq!(registry_of_image("library/nginx"), DOCKER_HUB);
        assert_eq!(
            registry_of_image("127.0.0.1:5000/zedops/busybox:1"),
            "127.0.0.1:5000"
        );
        assert_eq!(registry_of_image("GHCR.io/o/app@sha256:ab"), "ghcr.io");
        assert_eq!(registry_of_image("localhost/app"), "localhost");
    }

    #[test]
    fn passwords_are_checked_and_never_debug_printed() {
        let add: RegistryAddRequest = serde_json::from_str(
            r#"{"server":"r.example:5000","username":"u","password":"hunter2"}"#,
        )
        .unwrap();
        add.validate().unwrap();
        assert!(!format!("{add:?}").contains("hunter2"));
        let logins = RegistryLogins {
            logins: vec![RegistryLogin {
                server: "r.example".into(),
                username: "u".into(),
                password: "hunter2".into(),
            }],
        };
        logins.validate().unwrap();
        assert!(!format!("{logins:?}").contains("hunter2"));
        let bad = RegistryAddRequest {
            username: "a:b".into(),
            ..add.clone()
        };
        assert!(bad.validate().is_err());
        let bad = RegistryAddRequest {
            password: "x\ny".into(),
            ..add
        };
        assert!(bad.validate().is_err());
    }
}

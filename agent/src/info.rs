//! What the agent reports about its server at every hello, and the name it asks for by default.

use std::time::Duration;

use zedops_protocol::payload::is_valid_name;
use zedops_protocol::{AgentInfo, MAX_INFO_LEN, MAX_NAME_LEN};

use crate::docker::DockerClient;

/// How long the hello waits for Docker's version: a hung engine must not keep the agent from
/// its relay.
const ENGINE_INFO_TIMEOUT: Duration = Duration::from_secs(3);

/// This server's description, asking Docker for its version afresh (it may have been upgraded
/// or come back since the last connection).
pub async fn gather(docker: &DockerClient) -> AgentInfo {
    let engine = tokio::time::timeout(ENGINE_INFO_TIMEOUT, docker.engine_info())
        .await
        .unwrap_or_default();
    AgentInfo {
        version: crate::VERSION.to_string(),
        docker_version: engine.version.map(bounded),
        engine_id: engine.id.map(bounded),
        os: bounded(os_description(
            std::fs::read_to_string("/etc/os-release").ok().as_deref(),
        )),
        arch: std::env::consts::ARCH.to_string(),
        hostname: hostname().map(bounded),
    }
}

/// `linux (Debian GNU/Linux 12 (bookworm))` from `/etc/os-release`, or just `linux`.
fn os_description(os_release: Option<&str>) -> String {
    let pretty = os_release.and_then(|text| {
        text.lines()
            .find_map(|line| line.strip_prefix("PRETTY_NAME="))
            .map(|v| v.trim().trim_matches(|c| c == '"' || c == '\'').to_string())
            .filter(|v| !v.is_empty())
    });
    match pretty {
        Some(pretty) => format!("{} ({pretty})", std::env::consts::OS),
        None => std::env::consts::OS.to_string(),
    }
}

/// The server's host name, read the way `hostname` does on Linux.
pub fn hostname() -> Option<String> {
    ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .find_map(|path| std::fs::read_to_string(path).ok())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|name| name.trim().to_string())
        .filter(|name| !name.is_empty())
}

/// The name to enrol under when the user gives none: the host name made to fit the protocol's
/// name rules (`A-Z a-z 0-9 . _ -`, at most 64, not starting with `.` or `-`).
pub fn default_name(hostname: Option<&str>) -> String {
    let cleaned: String = hostname
        .unwrap_or_default()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '-'
            }
        })
        .collect();
    let mut name = cleaned.trim_start_matches(['.', '-']).to_string();
    name.truncate(MAX_NAME_LEN);
    if is_valid_name(&name) {
        name
    } else {
        "zedops-agent".to_string()
    }
}

/// `value` cut to the protocol's limit on a character boundary, so a long description never gets
/// the whole hello refused.
fn bounded(mut value: String) -> String {
    crate::text::truncate(&mut value, MAX_INFO_LEN);
    value
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_names_follow_the_protocol_rules() {
        assert_eq!(default_name(Some("web-1.example.com")), "web-1.example.com");
        assert_eq!(default_name(Some("My Server (büro)")), "My-Server--b-ro-");
        assert_eq!(default_name(Some("-.-host")), "host");
        assert_eq!(default_name(Some(&"a".repeat(100))), "a".repeat(64));
        assert_eq!(default_name(Some("")), "zedops-agent");
        assert_eq!(default_name(Some("---")), "zedops-agent");
        assert_eq!(default_name(None), "zedops-agent");
        for host in ["x y", "ü", ".hidden", "a;b"] {
            assert!(is_valid_name(&default_name(Some(host))), "{host}");
        }
    }

    #[test]
    fn describes_the_os() {
        let os = std::env::consts::OS;
        let release = "NAME=\"Debian GNU/Linux\"\nPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\n";
        assert_eq!(
            os_description(Some(release)),
            format!("{os} (Debian GNU/Linux 12 (bookworm))")
        );
        assert_eq!(os_description(Some("ID=alpine\n")), os);
        assert_eq!(os_description(None), os);
    }

    #[test]
    fn long_values_are_cut_on_a_char_boundary() {
        let long = "é".repeat(200);
        let cut = bounded(long);
        assert!(cut.len() <= MAX_INFO_LEN && cut.chars().all(|c| c == 'é'));
    }
}

//! The systemd unit and the service's configuration file, rendered from the install inputs.
//!
//! The registration token lives only in the configuration file (0600, read by systemd through
//! `EnvironmentFile=`), never in the unit, which is world-readable, and never on the agent's
//! command line, which `ps` shows to everyone.

use std::fmt::Write as _;

use super::{CONFIG_PATH, DATA_DIR, USER};

/// The unit for an agent binary at `exec`. `packaging/systemd/zedops-agent.service` is this
/// rendered for the Debian package's `/usr/bin/zedops-agent` (a test keeps the two in step).
pub fn render(exec: &str) -> String {
    format!(
        "\
# ZedOps agent: lets a ZedOps relay manage this server's Docker containers.
# Written by `zedops-agent install`; `zedops-agent uninstall` removes it. Its settings, among
# them the registration token, are in {CONFIG_PATH} (0600), never in this file.
[Unit]
Description=ZedOps agent
After=network-online.target docker.service
Wants=network-online.target

[Service]
Type=simple
User={USER}
EnvironmentFile={CONFIG_PATH}
ExecStart={exec} run
Restart=on-failure
RestartSec=5
# 78: refused for good (spent token, revoked agent); restarting would only repeat it.
RestartPreventExitStatus=78

# The agent needs the network, the Docker socket (through the docker group) and its data
# directory; everything else is closed to it.
NoNewPrivileges=yes
ProtectSystem=strict
ReadWritePaths={DATA_DIR}
ProtectHome=yes
PrivateTmp=yes
PrivateDevices=yes
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
ProtectClock=yes
ProtectHostname=yes
ProtectProc=invisible
RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6
RestrictNamespaces=yes
RestrictRealtime=yes
RestrictSUIDSGID=yes
LockPersonality=yes
MemoryDenyWriteExecute=yes
SystemCallArchitectures=native
SystemCallFilter=@system-service
SystemCallFilter=~@privileged @resources
SystemCallErrorNumber=EPERM
CapabilityBoundingSet=
PrivateMounts=yes
RemoveIPC=yes
UMask=0077

[Install]
WantedBy=multi-user.target
"
    )
}

/// What the service is told, as `KEY=value` lines for systemd's `EnvironmentFile=`; the agent
/// reads them as the `ZEDOPS_…` variables its flags accept.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Config {
    pub relay: String,
    pub token: Option<String>,
    pub name: Option<String>,
    pub ca_file: Option<String>,
    pub insecure: bool,
    /// A pinned release key file (`ZEDOPS_TRUSTED_KEY_FILE`).
    pub trusted_key_file: Option<String>,
}

impl Config {
    pub fn render(&self) -> String {
        let mut text = String::from(
            "# ZedOps agent service settings, written by `zedops-agent install`.\n\
             # systemd reads this file (EnvironmentFile=) for zedops-agent.service. Keep it 0600: until\n\
             # the agent has enrolled it holds the single-use registration token; after that the token\n\
             # is spent and the agent uses the credentials in its data directory.\n",
        );
        let mut line = |key: &str, value: &str| {
            let _ = writeln!(text, "{key}={value}");
        };
        line("ZEDOPS_RELAY", &self.relay);
        if let Some(token) = &self.token {
            line("ZEDOPS_TOKEN", token);
        }
        if let Some(name) = &self.name {
            line("ZEDOPS_NAME", name);
        }
        line("ZEDOPS_DATA_DIR", DATA_DIR);
        if let Some(ca) = &self.ca_file {
            line("ZEDOPS_CA_FILE", ca);
        }
        if self.insecure {
            line("ZEDOPS_INSECURE", "true");
        }
        if let Some(key) = &self.trusted_key_file {
            line("ZEDOPS_TRUSTED_KEY_FILE", key);
        }
        text
    }

    /// The value of `key` in a configuration file's text (only what [`render`](Self::render)
    /// writes is understood: no quoting, no continuation lines).
    pub fn lookup<'a>(text: &'a str, key: &str) -> Option<&'a str> {
        text.lines()
            .filter_map(|line| line.split_once('='))
            .find(|(k, _)| k.trim() == key)
            .map(|(_, v)| v.trim())
    }
}

/// Whether `value` can go into the configuration file as is. systemd's environment-file parser
/// gives quotes, backslashes and `$` meanings of their own and ends a value at a newline, and
/// the file should also stay sourceable by `sh` (`set -a; . agent.env`), where `&`, `;`, `~`
/// and friends mean something; so only the characters of URLs, paths, names and tokens pass.
pub fn is_plain_value(value: &str) -> bool {
    !value.is_empty()
        && value.bytes().all(|b| {
            b.is_ascii_alphanumeric()
                || matches!(
                    b,
                    b'-' | b'_'
                        | b'.'
                        | b':'
                        | b'/'
                        | b'@'
                        | b'%'
                        | b'+'
                        | b','
                        | b'='
                        | b'['
                        | b']'
                )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_packaged_unit_is_the_rendered_one() {
        // The Debian package ships this file; `install` writes the same text for its binary path.
        let packaged = include_str!("../../../packaging/systemd/zedops-agent.service");
        assert_eq!(render("/usr/bin/zedops-agent"), packaged);
    }

    #[test]
    fn config_round_trips_and_holds_the_token() {
        let config = Config {
            relay: "https://relay.example.com".into(),
            token: Some("zr_abc-DEF_1".into()),
            name: Some("web-1".into()),
            ca_file: None,
            insecure: false,
            trusted_key_file: Some("/etc/zedops-agent/release-key.pub".into()),
        };
        let text = config.render();
        assert_eq!(
            Config::lookup(&text, "ZEDOPS_RELAY"),
            Some("https://relay.example.com")
        );
        assert_eq!(Config::lookup(&text, "ZEDOPS_TOKEN"), Some("zr_abc-DEF_1"));
        assert_eq!(Config::lookup(&text, "ZEDOPS_DATA_DIR"), Some(DATA_DIR));
        assert_eq!(Config::lookup(&text, "ZEDOPS_INSECURE"), None);
        assert_eq!(
            Config::lookup(&text, "ZEDOPS_TRUSTED_KEY_FILE"),
            Some("/etc/zedops-agent/release-key.pub")
        );
        assert!(!render("/usr/local/bin/zedops-agent").contains("zr_"));
    }

    #[test]
    fn values_that_systemd_or_sh_would_reinterpret_are_not_plain() {
        for bad in [
            "", "a b", "a\nb", "$HOME", "a\"b", "a'b", "a\\b", "`x`", "a;b", "é", "#x", "a&b",
            "~/x", "a|b",
        ] {
            assert!(!is_plain_value(bad), "{bad:?}");
        }
        for good in [
            "https://relay.example.com:8443/zedops",
            "zr_AbC-_09",
            "/etc/zedops-agent/ca.pem",
            "http://[::1]:7878",
        ] {
            assert!(is_plain_value(good), "{good:?}");
        }
    }
}

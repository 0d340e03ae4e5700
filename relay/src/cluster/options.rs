//! How a relay reaches NATS: server URLs, credentials and TLS (`--nats`, `--nats-creds`,
//! `--nats-ca`, `--nats-cert`/`--nats-key`).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};

/// NATS settings of a relay in a cluster.
#[derive(Debug, Clone, Default)]
pub struct ClusterOptions {
    /// `nats://host:4222` (or `tls://`), one or more: any server of the NATS cluster.
    pub urls: Vec<String>,
    /// A NATS credentials file (`.creds`: JWT and NKey seed), the usual way to authenticate.
    pub credentials: Option<PathBuf>,
    /// PEM CA that signed the NATS servers' certificates (a private CA); TLS is then required.
    pub ca: Option<PathBuf>,
    /// PEM client certificate and key, for servers that verify clients.
    pub client_cert: Option<(PathBuf, PathBuf)>,
}

impl ClusterOptions {
    /// Parses `nats://a:4222,nats://b:4222`. A URL with a password is refused unless
    /// `password_allowed` (it came from `ZEDOPS_NATS_URL`, not the command line, which every
    /// user of the machine can read): use a credentials file or the variable instead.
    pub fn from_urls(list: &str, password_allowed: bool) -> anyhow::Result<Self> {
        let urls: Vec<String> = list
            .split(',')
            .map(str::trim)
            .filter(|u| !u.is_empty())
            .map(str::to_string)
            .collect();
        if urls.is_empty() {
            bail!("--nats needs at least one URL, e.g. nats://127.0.0.1:4222");
        }
        for url in &urls {
            let parsed: async_nats::ServerAddr = url.parse().with_context(|| {
                format!("{:?} is not a NATS URL (nats://HOST:PORT)", shown(url))
            })?;
            if parsed.password().is_some() && !password_allowed {
                bail!(
                    "a NATS password in --nats is visible to every user of this machine; put the URL in ZEDOPS_NATS_URL (e.g. a systemd EnvironmentFile) or use --nats-creds"
                );
            }
        }
        Ok(Self {
            urls,
            ..Self::default()
        })
    }

    pub(super) async fn connect_options(&self) -> anyhow::Result<async_nats::ConnectOptions> {
        let mut options = async_nats::ConnectOptions::new();
        if let Some(path) = &self.credentials {
            options = options
                .credentials_file(path)
                .await
                .with_context(|| format!("reading the NATS credentials file {}", path.display()))?;
        }
        if let Some(ca) = &self.ca {
            options = options.add_root_certificates(ca.clone()).require_tls(true);
        }
        if let Some((cert, key)) = &self.client_cert {
            options = options.add_client_certificate(cert.clone(), key.clone());
        }
        Ok(options
            // A relay never needs its own messages back (it serves its own agents directly).
            .no_echo()
            .name("zedops-relay")
            // The relay starts even when NATS is not up yet, and keeps trying, quickly at first.
            .retry_on_initial_connect()
            .max_reconnects(None)
            .connection_timeout(Duration::from_secs(3))
            .ping_interval(Duration::from_secs(5))
            .reconnect_delay_callback(|attempts| {
                Duration::from_millis((100u64 << attempts.min(5)).min(2000))
            }))
    }

    pub(super) fn addresses(&self) -> anyhow::Result<Vec<async_nats::ServerAddr>> {
        self.urls
            .iter()
            .map(|u| {
                u.parse()
                    .with_context(|| format!("{:?} is not a NATS URL", shown(u)))
            })
            .collect()
    }

    /// The URLs as log lines show them (never with credentials).
    pub fn shown(&self) -> String {
        self.urls
            .iter()
            .map(|u| shown(u))
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// What a failed attempt to reach NATS means, in plain words with what to do, from async-nats's
/// short reason (`authorization violation`, `TLS error`, `IO error`, ...). Every server of
/// `shown` is tried again in a moment.
pub(super) fn explain_failure(reason: &str, shown: &str) -> String {
    let what = match reason {
        "authorization violation" | "failed signing nonce" => {
            "NATS refused this relay's credentials: check that --nats-creds (ZEDOPS_NATS_CREDS) is the credentials file of a user of the relays' account, signed by an account the NATS servers trust, and not expired"
        }
        "user authentication expired" => {
            "NATS ended this relay's session: the JWT of its user (--nats-creds, ZEDOPS_NATS_CREDS) expired; put a renewed credentials file in its place and restart the relay, which reads it at start"
        }
        "TLS error" => {
            "the TLS handshake with NATS failed: check --nats-ca (the CA of the servers' certificates), and --nats-cert/--nats-key if the servers verify clients"
        }
        "timed out" | "IO error" | "DNS error" => {
            "NATS cannot be reached: check that nats-server runs and that --nats names its address"
        }
        _ => "connecting to NATS failed",
    };
    format!("{what} (NATS said: {reason}; servers: {shown}); trying again")
}

/// A URL without its user information.
fn shown(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => match rest.rsplit_once('@') {
            Some((_, host)) => format!("{scheme}://{host}"),
            None => url.to_string(),
        },
        None => url.rsplit_once('@').map_or(url, |(_, h)| h).to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_split_and_passwords_refused() {
        let o = ClusterOptions::from_urls("nats://a:4222, nats://b:4222", false).unwrap();
        assert_eq!(o.urls, ["nats://a:4222", "nats://b:4222"]);
        let err = ClusterOptions::from_urls("nats://u:secret@a:4222", false).unwrap_err();
        assert!(err.to_string().contains("ZEDOPS_NATS_URL"), "{err}");
        assert!(!err.to_string().contains("secret"));
        let from_env = ClusterOptions::from_urls("nats://u:secret@a:4222", true).unwrap();
        assert_eq!(from_env.shown(), "nats://a:4222");
        assert!(ClusterOptions::from_urls(" , ", false).is_err());
        assert_eq!(shown("nats://u:p@h:1"), "nats://h:1");
    }

    #[test]
    fn refused_credentials_are_explained() {
        let told = explain_failure("authorization violation", "nats://a:4222");
        assert!(told.contains("--nats-creds"), "{told}");
        assert!(told.contains("nats://a:4222"), "{told}");
        assert!(explain_failure("TLS error", "x").contains("--nats-ca"));
        let expired = explain_failure("user authentication expired", "x");
        assert!(
            expired.contains("expired") && expired.contains("restart"),
            "{expired}"
        );
        assert!(explain_failure("something new", "x").contains("something new"));
    }
}

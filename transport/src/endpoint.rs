//! Relay base URLs: accepted as `http(s)://` or `ws(s)://`, mapped to the WebSocket and HTTP
//! endpoints, with plaintext allowed only to loopback unless the user says `--insecure`.

use std::net::IpAddr;

use url::Url;

use crate::TransportError;

/// A checked relay base URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayUrl {
    base: Url,
    tls: bool,
}

impl RelayUrl {
    /// Parses `input` (`https://relay.example`, `ws://127.0.0.1:7878`, `relay.example:7878`…).
    /// A URL without a scheme is taken as `https://`. Plaintext to a host that is not loopback
    /// is refused unless `insecure` is set, in which case a warning is logged.
    pub fn parse(input: &str, insecure: bool) -> Result<Self, TransportError> {
        let url = Self::parse_any(input)?;
        let host = url.base.host_str().unwrap_or_default().to_string();
        if !url.tls && !host_is_loopback(&host) {
            if !insecure {
                return Err(TransportError::PlaintextRefused {
                    scheme: url.base.scheme().into(),
                    host,
                });
            }
            tracing::warn!(%host, "plaintext connection to a remote relay: tokens are sent unencrypted");
        }
        Ok(url)
    }

    /// Parses without the plaintext policy, for naming a relay (keyring keys, config) rather
    /// than connecting to it.
    pub fn parse_any(input: &str) -> Result<Self, TransportError> {
        let invalid = |reason: &str| TransportError::InvalidUrl {
            url: input.to_string(),
            reason: reason.into(),
        };
        let with_scheme = if input.contains("://") {
            input.to_string()
        } else {
            format!("https://{input}")
        };
        let mut base = Url::parse(&with_scheme).map_err(|e| invalid(&e.to_string()))?;
        let tls = match base.scheme() {
            "https" | "wss" => true,
            "http" | "ws" => false,
            other => {
                return Err(invalid(&format!(
                    "scheme {other}:// is not http(s) or ws(s)"
                )));
            }
        };
        if base.host_str().is_none_or(str::is_empty) {
            return Err(invalid("no host"));
        }
        // Keep any path prefix (a relay behind a reverse proxy at /zedops/), without a trailing slash.
        let path = base.path().trim_end_matches('/').to_string();
        base.set_path(&path);
        base.set_query(None);
        base.set_fragment(None);
        Ok(Self { base, tls })
    }

    /// The WebSocket URL of `path` (`/ws/agent`, `/ws/client`).
    pub fn ws(&self, path: &str) -> String {
        self.join(if self.tls { "wss" } else { "ws" }, path)
    }

    /// The HTTP URL of `path` (`/api/login`, `/healthz`).
    pub fn http(&self, path: &str) -> String {
        self.join(if self.tls { "https" } else { "http" }, path)
    }

    /// Whether the connection is encrypted.
    pub fn is_tls(&self) -> bool {
        self.tls
    }

    /// The URL as the user would write it (`https://host:port/prefix`), used as a key for
    /// stored credentials.
    pub fn canonical(&self) -> String {
        self.http("")
    }

    fn join(&self, scheme: &str, path: &str) -> String {
        let host = self.base.host_str().unwrap_or_default();
        let port = self
            .base
            .port()
            .map(|p| format!(":{p}"))
            .unwrap_or_default();
        format!(
            "{scheme}://{host}{port}{}{path}",
            self.base.path().trim_end_matches('/')
        )
    }
}

/// True for `localhost` and loopback addresses.
pub fn host_is_loopback(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    bare.eq_ignore_ascii_case("localhost")
        || bare.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_schemes_and_paths() {
        let u = RelayUrl::parse("http://127.0.0.1:7878", false).unwrap();
        assert_eq!(u.ws("/ws/agent"), "ws://127.0.0.1:7878/ws/agent");
        assert_eq!(u.http("/api/login"), "http://127.0.0.1:7878/api/login");
        let u = RelayUrl::parse("wss://relay.example/zedops/", false).unwrap();
        assert_eq!(u.ws("/ws/client"), "wss://relay.example/zedops/ws/client");
        assert_eq!(
            u.http("/api/login"),
            "https://relay.example/zedops/api/login"
        );
        let u = RelayUrl::parse("relay.example:8443", false).unwrap();
        assert_eq!(u.canonical(), "https://relay.example:8443");
        let u = RelayUrl::parse("ws://[::1]:1", false).unwrap();
        assert_eq!(u.http("/x"), "http://[::1]:1/x");
    }

    #[test]
    fn refuses_remote_plaintext_unless_insecure() {
        assert!(matches!(
            RelayUrl::parse("http://relay.example", false),
            Err(TransportError::PlaintextRefused { .. })
        ));
        assert!(RelayUrl::parse("http://relay.example", true).is_ok());
        assert!(RelayUrl::parse("ws://localhost:1", false).is_ok());
        assert!(RelayUrl::parse("ftp://x", true).is_err());
    }
}

//! Admin screens' work over `zedops-client`, with no Tauri in sight (so tests drive it against a
//! real relay): registration tokens with the one-line install command ("Add server"), and the
//! audit log. The relay checks the role; these only ask and shape the answers for the UI.

use zedops_client::Client;
use zedops_protocol::AuditListRequest;
use zedops_protocol::install::{install_command, shell_safe_public_url};

use crate::error::{AppError, ErrorCode};
use crate::types::{AuditEntry, RegistrationToken};

/// Shortest and longest registration token lifetimes the app offers (the relay allows 30 days).
pub const MIN_TTL_SECS: u32 = 60;
pub const MAX_TTL_SECS: u32 = 30 * 24 * 3600;
/// How many audit entries the view asks for (the relay's maximum per answer).
pub const AUDIT_LIMIT: u32 = 1000;

/// The address servers reach the relay at, checked for pasting into a shell command with the
/// protocol's [`shell_safe_public_url`] (http(s), no characters a shell would act on), `ws(s)://`
/// mapped to `http(s)://`, without a trailing slash.
pub fn public_url(url: &str) -> Result<String, AppError> {
    let url = url.trim();
    let mapped = if let Some(rest) = url.strip_prefix("wss://") {
        format!("https://{rest}")
    } else if let Some(rest) = url.strip_prefix("ws://") {
        format!("http://{rest}")
    } else {
        url.to_string()
    };
    match shell_safe_public_url(&mapped) {
        Some(checked) => Ok(checked.to_string()),
        None => Err(AppError::new(
            ErrorCode::INVALID_INPUT,
            format!(
                "The relay address {url:?} cannot go into the install command: enter the http:// or \
                 https:// address your servers reach the relay at, e.g. https://relay.example.com."
            ),
        )),
    }
}

/// True when servers elsewhere cannot use this address (it names this computer).
pub fn is_loopback(public_url: &str) -> bool {
    let host = public_url
        .split("://")
        .nth(1)
        .unwrap_or("")
        .split('/')
        .next()
        .unwrap_or("");
    let host = host.rsplit_once('@').map_or(host, |(_, h)| h);
    let host = if host.starts_with('[') {
        host.split(']').next().unwrap_or("").trim_start_matches('[')
    } else {
        host.split(':').next().unwrap_or("")
    };
    host == "localhost"
        || host.ends_with(".localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Creates a single-use registration token valid for `ttl_secs` and the install command for it.
pub async fn create_registration_token(
    client: &Client,
    ttl_secs: u32,
    public: &str,
) -> Result<RegistrationToken, AppError> {
    let public = public_url(public)?;
    if !(MIN_TTL_SECS..=MAX_TTL_SECS).contains(&ttl_secs) {
        return Err(AppError::new(
            ErrorCode::INVALID_INPUT,
            "Choose how long the command stays valid: between 1 minute and 30 days.",
        ));
    }
    let created = client
        .create_token(Some(u64::from(ttl_secs)))
        .await
        .map_err(AppError::from)
        .map_err(forbidden_to_admins("create registration tokens"))?;
    Ok(RegistrationToken {
        install_command: install_command(&public, &created.token),
        loopback: is_loopback(&public),
        token: created.token,
        expires_at: created.expires_at,
        public_url: public,
    })
}

/// The newest audit entries (at most [`AUDIT_LIMIT`]), optionally of one agent (id or name).
pub async fn audit_log(client: &Client, agent: Option<&str>) -> Result<Vec<AuditEntry>, AppError> {
    let agent = agent.map(str::trim).filter(|a| !a.is_empty());
    let query = AuditListRequest {
        agent_id: agent.map(|a| a.into()),
        since: None,
        limit: Some(AUDIT_LIMIT),
    };
    let log = client
        .audit(&query)
        .await
        .map_err(AppError::from)
        .map_err(forbidden_to_admins("read the audit log"))?;
    Ok(log.entries.into_iter().map(AuditEntry::from).collect())
}

/// A refusal by role says who may do it.
fn forbidden_to_admins(what: &'static str) -> impl Fn(AppError) -> AppError {
    move |err| {
        err.when_forbidden(|| format!("Only admins may {what}: ask a ZedOps admin of this relay."))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_urls_are_checked_and_mapped() {
        for (given, mapped) in [
            (" https://relay.example.com/ ", "https://relay.example.com"),
            ("ws://10.0.0.5:7878", "http://10.0.0.5:7878"),
            ("wss://relay.example.com", "https://relay.example.com"),
        ] {
            assert_eq!(public_url(given).unwrap(), mapped, "{given}");
        }
        for bad in [
            "",
            "relay.example.com",
            "ftp://x",
            "https://",
            "https://x/$(reboot)",
            "https://x y",
        ] {
            let err = public_url(bad).unwrap_err();
            assert_eq!(err.code, ErrorCode::INVALID_INPUT, "{bad}");
            assert!(err.message.contains("https://relay.example.com"));
        }
    }

    #[test]
    fn loopback_addresses_are_told_apart() {
        for url in [
            "http://127.0.0.1:7878",
            "http://localhost:7878",
            "http://[::1]:7878",
        ] {
            assert!(is_loopback(url), "{url}");
        }
        for url in ["https://relay.example.com", "http://10.0.0.5:7878"] {
            assert!(!is_loopback(url), "{url}");
        }
    }
}

//! The relay's HTTP endpoints: `POST /api/login` (password → device token) and
//! `POST /api/logout` (ends a device session).

use std::path::Path;
use std::time::Duration;

use zedops_protocol::{LoginRequest, LoginResponse, MAX_INFO_LEN};
use zedops_transport::{RelayUrl, error_chain};

use crate::error::{ClientError, decode_error_answer, from_transport, is_error_answer};

/// Path of the login endpoint.
pub const LOGIN_PATH: &str = "/api/login";
/// Path of the logout endpoint.
pub const LOGOUT_PATH: &str = "/api/logout";
/// How long dialling the relay may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a whole login or logout may take (argon2 at the relay takes a fraction of this).
const HTTP_TIMEOUT: Duration = Duration::from_secs(30);

/// Exchanges a user name and password for a device token. The device label sent along is this
/// machine's host name, so that an admin can tell sessions apart. The password is sent once and
/// kept nowhere.
pub async fn login(
    relay: &str,
    username: &str,
    password: &str,
    ca_file: Option<&Path>,
    insecure: bool,
) -> Result<LoginResponse, ClientError> {
    let body = LoginRequest {
        username: username.to_string(),
        password: password.to_string(),
        device: device_name(),
    };
    let body = &body;
    let (endpoint, response) = first_answer(
        relay,
        LOGIN_PATH,
        ca_file,
        insecure,
        |http, endpoint| async move { http.post(&endpoint).json(body).send().await },
    )
    .await?;
    let status = response.status();
    let text = body_text(&endpoint, response).await?;
    if status.is_success() {
        return serde_json::from_str(&text)
            .map_err(|e| ClientError::protocol(format!("login answer: {e}")));
    }
    Err(match http_error(&endpoint, status, &text) {
        ClientError::Remote(reply) => ClientError::LoginRefused(reply),
        other => other,
    })
}

/// The agent release the relay serves (`GET /download/agent/version`), what `agent.update`
/// installs; `None` when it serves no signed release (404).
pub async fn agent_release(
    relay: &str,
    ca_file: Option<&Path>,
    insecure: bool,
) -> Result<Option<String>, ClientError> {
    let (endpoint, response) = first_answer(
        relay,
        "/download/agent/version",
        ca_file,
        insecure,
        |http, endpoint| async move { http.get(&endpoint).send().await },
    )
    .await?;
    let status = response.status();
    if status == reqwest::StatusCode::NOT_FOUND {
        return Ok(None);
    }
    let text = body_text(&endpoint, response).await?;
    if !status.is_success() {
        return Err(http_error(&endpoint, status, &text));
    }
    let version = text.trim();
    if version.is_empty() || version.len() > MAX_INFO_LEN || version.chars().any(char::is_control) {
        return Err(ClientError::protocol(
            "the relay's agent version is malformed",
        ));
    }
    Ok(Some(version.to_string()))
}

/// Ends the device session of `token` at the relay. An unknown token is `UNAUTHORIZED`.
pub async fn logout(
    relay: &str,
    token: &str,
    ca_file: Option<&Path>,
    insecure: bool,
) -> Result<(), ClientError> {
    let (endpoint, response) = first_answer(
        relay,
        LOGOUT_PATH,
        ca_file,
        insecure,
        |http, endpoint| async move { http.post(&endpoint).bearer_auth(token).send().await },
    )
    .await?;
    let status = response.status();
    if status.is_success() {
        return Ok(());
    }
    let text = body_text(&endpoint, response).await?;
    Err(http_error(&endpoint, status, &text))
}

/// Sends `send` with an HTTP client trusting `ca_file` to `path` of each relay of a
/// comma-separated list in turn (the relays of a cluster share one database, so any can answer)
/// and returns the first relay's answer with the endpoint that gave it. A relay that cannot be
/// reached is passed over; an answer, even a refusal, is final, so a password is never sent
/// twice to relays that both received it. A bad CA file or URL is the same for every relay and
/// is said at once.
///
/// `send` takes the client and the endpoint owned: a future borrowing them would not be `Send`
/// for every lifetime, which the app's commands need.
async fn first_answer<F, Fut>(
    relays: &str,
    path: &str,
    ca_file: Option<&Path>,
    insecure: bool,
    send: F,
) -> Result<(String, reqwest::Response), ClientError>
where
    F: Fn(reqwest::Client, String) -> Fut,
    Fut: Future<Output = Result<reqwest::Response, reqwest::Error>>,
{
    let mut last = None;
    for relay in crate::connection::relay_list(relays) {
        let url = RelayUrl::parse(relay, insecure).map_err(|e| from_transport(e, relay))?;
        let endpoint = url.http(path);
        let http = http_client(ca_file, &endpoint)?;
        match send(http, endpoint.clone()).await {
            Ok(response) => return Ok((endpoint, response)),
            Err(e) => last = Some(unreachable(&endpoint, &e)),
        }
    }
    Err(last.unwrap_or_else(|| ClientError::RelayUnreachable {
        url: relays.to_string(),
        reason: "no relay URL was given".to_string(),
    }))
}

fn http_client(ca_file: Option<&Path>, endpoint: &str) -> Result<reqwest::Client, ClientError> {
    let tls = zedops_transport::client_config(ca_file).map_err(|e| from_transport(e, endpoint))?;
    reqwest::Client::builder()
        .use_preconfigured_tls((*tls).clone())
        // A redirect would carry the password or token somewhere the user did not name.
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(HTTP_TIMEOUT)
        .user_agent(concat!("zedops/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| unreachable(endpoint, &e))
}

/// A failed HTTP answer: the relay's own `ErrorReply` when it sent one, else the status.
fn http_error(endpoint: &str, status: reqwest::StatusCode, body: &str) -> ClientError {
    if is_error_answer(body) {
        return decode_error_answer(body);
    }
    ClientError::RelayUnreachable {
        url: endpoint.to_string(),
        reason: format!("it answered HTTP {status}, which is not a ZedOps relay answer"),
    }
}

/// The body of `response` from `endpoint`, as text.
async fn body_text(endpoint: &str, response: reqwest::Response) -> Result<String, ClientError> {
    response.text().await.map_err(|e| unreachable(endpoint, &e))
}

fn unreachable(endpoint: &str, err: &reqwest::Error) -> ClientError {
    ClientError::RelayUnreachable {
        url: endpoint.to_string(),
        reason: error_chain(err),
    }
}

/// This machine's host name, to label the device session; `None` when the OS will not say.
pub(crate) fn device_name() -> Option<String> {
    let name = whoami::fallible::hostname().ok()?;
    let name = name.trim();
    if name.is_empty() {
        return None;
    }
    let mut end = name.len().min(MAX_INFO_LEN);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    Some(name[..end].to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_errors_prefer_the_relays_own_answer() {
        let err = http_error(
            "https://r/api/login",
            reqwest::StatusCode::TOO_MANY_REQUESTS,
            r#"{"errorCode":"RATE_LIMITED","error":"too many attempts","retryAfterSecs":30}"#,
        );
        assert_eq!(err.code(), "RATE_LIMITED");
        assert_eq!(err.retry_after_secs(), Some(30));
        let err = http_error(
            "https://r/api/login",
            reqwest::StatusCode::BAD_GATEWAY,
            "<html>bad gateway</html>",
        );
        assert_eq!(err.code(), "RELAY_UNREACHABLE");
        assert!(err.to_string().contains("502"), "{err}");
    }

    #[test]
    fn device_name_is_bounded() {
        if let Some(name) = device_name() {
            assert!(!name.is_empty() && name.len() <= MAX_INFO_LEN);
        }
    }
}

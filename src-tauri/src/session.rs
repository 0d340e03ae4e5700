//! Signing in and out, over `zedops-client` with no Tauri in sight (so tests can drive it).
//!
//! The password goes to the relay once and is dropped; the device token it buys goes into the OS
//! keyring (service `zedops`, keyed by the relay's canonical URL), and the config file remembers
//! only the relay and user name, so the next start can sign in silently.

use std::path::PathBuf;

use tokio::task::spawn_blocking;
use zedops_client::store::{self, Config};
use zedops_client::{Client, ClientError, ConnectOptions, login, logout};

use crate::error::{AppError, ErrorCode};
use crate::types::{LastLogin, SessionInfo};

/// Environment variable naming a PEM file with a private CA to trust (as for the CLI).
pub const CA_FILE_ENV: &str = "ZEDOPS_CA_FILE";

/// A live session: the connection and what is needed to end it.
pub struct Session {
    pub client: Client,
    /// The relay URL as used to connect (the keyring key is derived from it).
    pub relay: String,
    token: String,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the token.
        f.debug_struct("Session")
            .field("relay", &self.relay)
            .finish_non_exhaustive()
    }
}

impl Session {
    fn info(&self, keyring_warning: Option<String>) -> SessionInfo {
        SessionInfo {
            relay: self.client.relay(),
            user: self.client.user().to_string(),
            role: self.client.role().to_string(),
            keyring_warning,
        }
    }
}

fn ca_file() -> Option<PathBuf> {
    std::env::var_os(CA_FILE_ENV)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

/// Runs a blocking keyring or config call off the async threads.
async fn blocking<T: Send + 'static>(
    call: impl FnOnce() -> Result<T, ClientError> + Send + 'static,
) -> Result<T, ClientError> {
    spawn_blocking(call).await.unwrap_or_else(|e| {
        Err(ClientError::Keyring {
            reason: format!("the keyring call failed: {e}"),
        })
    })
}

async fn connect(relay: &str, token: &str) -> Result<Client, ClientError> {
    Client::connect(ConnectOptions {
        relay: relay.to_string(),
        token: token.to_string(),
        ca_file: ca_file(),
        insecure: false,
    })
    .await
}

/// Exchanges the password for a device token, keeps the token in the keyring and connects.
/// A keyring that cannot store the token does not stop the sign-in; the answer says that the
/// next start will ask again.
pub async fn sign_in(
    relay: &str,
    user: &str,
    password: &str,
) -> Result<(Session, SessionInfo), AppError> {
    let (relay, user) = (relay.trim(), user.trim());
    if relay.is_empty() || user.is_empty() || password.is_empty() {
        return Err(AppError::new(
            ErrorCode::INVALID_INPUT,
            "Enter the relay URL, your user name and your password.",
        ));
    }
    let answer = login(relay, user, password, ca_file().as_deref(), false).await?;
    let client = match connect(relay, &answer.token).await {
        Ok(client) => client,
        Err(err) => {
            // Do not leave an unused device session behind at the relay.
            let _ = logout(relay, &answer.token, ca_file().as_deref(), false).await;
            return Err(err.into());
        }
    };
    let (r, t) = (relay.to_string(), answer.token.clone());
    let keyring_warning = match blocking(move || store::save_token(&r, &t)).await {
        Ok(()) => None,
        Err(err) => Some(format!(
            "{} Until then you will have to sign in at every start.",
            AppError::from(err).message
        )),
    };
    let config = Config {
        relay: Some(relay.to_string()),
        user: Some(user.to_string()),
    };
    if let Err(err) = blocking(move || store::save_config(&config)).await {
        tracing::warn!(%err, "could not remember the relay for the next start");
    }
    let session = Session {
        client,
        relay: relay.to_string(),
        token: answer.token,
    };
    let info = session.info(keyring_warning);
    Ok((session, info))
}

/// Signs in with the token stored for the last relay; `None` when there is nothing stored.
/// A token the relay no longer accepts is deleted, so the next start goes straight to the form.
pub async fn resume() -> Result<Option<(Session, SessionInfo)>, AppError> {
    let config = blocking(store::load_config).await?;
    let Some(relay) = config.relay else {
        return Ok(None);
    };
    let r = relay.clone();
    let Some(token) = blocking(move || store::load_token(&r)).await? else {
        return Ok(None);
    };
    match connect(&relay, &token).await {
        Ok(client) => {
            let session = Session {
                client,
                relay,
                token,
            };
            let info = session.info(None);
            Ok(Some((session, info)))
        }
        Err(err) if err.error_code() == Some(zedops_client::ErrorCode::Unauthorized) => {
            let _ = blocking(move || store::delete_token(&relay)).await;
            Err(err.into())
        }
        Err(err) => Err(err.into()),
    }
}

/// Ends the session at the relay, closes the connection and deletes the keyring entry. The
/// entry is deleted even when the relay cannot be reached; that failure is then reported.
pub async fn sign_out(session: Session) -> Result<(), AppError> {
    let Session {
        client,
        relay,
        token,
    } = session;
    let ended = logout(&relay, &token, ca_file().as_deref(), false).await;
    client.close().await;
    let r = relay.clone();
    blocking(move || store::delete_token(&r)).await?;
    match ended {
        // Already ended (revoked, expired): the goal is reached.
        Err(err) if err.error_code() == Some(zedops_client::ErrorCode::Unauthorized) => Ok(()),
        Err(err) => Err(AppError::new(
            ErrorCode::from(err.code()),
            format!(
                "Signed out on this computer, but the relay could not be told ({err}). The session ends when it expires, or a relay admin can revoke it."
            ),
        )),
        Ok(()) => Ok(()),
    }
}

/// The last relay and user name, for the sign-in form.
pub async fn last_login() -> Result<LastLogin, AppError> {
    let config = blocking(store::load_config).await?;
    Ok(LastLogin {
        relay: config.relay,
        user: config.user,
    })
}

//! Agent self-update (`agent.update`, issue 17): fetch the build for this platform from the
//! relay, check it, install it beside the packaged binary, restart into it, and come back to the
//! previous build when the new one does not connect in time.
//!
//! What is checked, before anything is replaced, in this order: the order's platform is this
//! agent's, its version is newer (or `allowDowngrade`), one update at a time (the lock); the
//! signature (fetched first: a few hundred bytes) is by a trusted release key and its signed
//! comment names exactly the announced version and this platform; the download is exactly the
//! announced size (never more than [`MAX_AGENT_BUILD_BYTES`]), has the announced SHA-256, and
//! is what the key signed. The SHA-256 and size catch a relay serving another file than it
//! announced; the signature is what makes the relay unable to choose the code an agent runs.
//!
//! The files are in [`store`]; starting, guarding and restarting in [`launch`].

mod fetch;
pub mod keys;
pub mod launch;
pub mod store;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio::sync::mpsc;
use zedops_protocol::{
    AgentId, AgentUpdateOrder, AgentUpdatePhase, AgentUpdateProgress, AgentUpdated, Envelope,
    ErrorCode, ErrorReply, MAX_AGENT_BUILD_BYTES, subject,
};
use zedops_transport::RelayUrl;

use keys::{TrustedKeys, decode_signature, printable, release_comment};
use store::{Installed, STALE_LOCK, Store};

pub use launch::{RESTART_EXIT, guard, launch, restart, watch_first_connection};

/// How long a new build has to connect before the previous one comes back.
pub const DEFAULT_REVERT_AFTER: Duration = Duration::from_secs(60);
/// Largest signature fetched.
const MAX_SIGNATURE_BYTES: u64 = 4096;
/// At most one `downloading` progress per this (4 a second): enough for a live bar, and a fast
/// download of thousands of chunks never floods the relay or the admins' connections.
pub const PROGRESS_EVERY: Duration = Duration::from_millis(250);

/// Where an update's progress goes (the relay, in a running agent; nowhere in most tests).
pub type Report<'a> = &'a (dyn Fn(AgentUpdateProgress) + Send + Sync);

/// Queues a progress push without waiting: progress is worth less than the answers and events
/// sharing the queue, so a full queue drops it.
fn push(tx: &mpsc::Sender<String>, progress: AgentUpdateProgress) {
    let frame = Envelope::new(subject::AGENT_UPDATE_PROGRESS, progress).to_json();
    if tx.try_send(frame).is_err() {
        tracing::debug!("the outgoing queue is full; dropping an update progress push");
    }
}

/// After connecting: tells the relay about a revert it has not heard of yet (the build that
/// was taken back and the reason the guard or launcher recorded), once.
pub(crate) fn report_rollback(data_dir: &Path, tx: &mpsc::Sender<String>) {
    let store = Store::new(data_dir);
    let Some(rollback) = store.rollback().filter(|r| !r.reported) else {
        return;
    };
    let mut said = AgentUpdateProgress::new(AgentUpdatePhase::RolledBack, &rollback.version);
    said.running = Some(crate::VERSION.to_string());
    said.reason = Some(
        rollback
            .reason
            .chars()
            .take(zedops_protocol::MAX_UPDATE_REASON_LEN / 4)
            .collect(),
    );
    // A version text the protocol refuses (a hand-edited file) is not sent.
    if zedops_protocol::Validate::validate(&said).is_ok() {
        push(tx, said);
    }
    if let Err(err) = store.mark_rollback_reported() {
        tracing::warn!(%err, "cannot record that the revert was reported");
    }
}

/// Settings from the agent's local configuration (flags, `agent.env`), never from the relay.
#[derive(Debug, Clone)]
pub struct Settings {
    /// A minisign public key file to trust beside the compiled-in release key.
    pub trusted_key_file: Option<PathBuf>,
    /// How long a new build has to connect.
    pub revert_after: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            trusted_key_file: None,
            revert_after: DEFAULT_REVERT_AFTER,
        }
    }
}

static SETTINGS: OnceLock<Settings> = OnceLock::new();

/// Where this process's agent connects: the relay an update is downloaded from.
#[derive(Debug, Clone)]
struct Connection {
    relay_url: String,
    insecure: bool,
    ca_file: Option<PathBuf>,
    data_dir: PathBuf,
}

static CONNECTION: OnceLock<Connection> = OnceLock::new();

/// Remembers the relay the agent runs against (called by [`crate::run`]).
pub(crate) fn remember_relay(options: &crate::AgentOptions) {
    let _ = CONNECTION.set(Connection {
        relay_url: options.relay_url.clone(),
        insecure: options.insecure,
        ca_file: options.ca_file.clone(),
        data_dir: options.data_dir.clone(),
    });
}

/// Answers `agent.update.install` on `inbox`, in its own task: checks and installs the build,
/// answers, and on success restarts into it once the answer is on its way.
pub(crate) fn start(order: AgentUpdateOrder, inbox: String, tx: &mpsc::Sender<String>) {
    let tx = tx.clone();
    tokio::spawn(async move {
        let result = match CONNECTION.get() {
            Some(c) => match Updater::for_agent(
                &c.relay_url,
                c.insecure,
                c.ca_file.as_deref(),
                &c.data_dir,
            ) {
                Ok(updater) => {
                    let report = |p: AgentUpdateProgress| push(&tx, p);
                    updater.apply_reporting(&order, &report).await
                }
                Err(err) => Err(err),
            },
            None => Err(failed("this agent does not know its relay")),
        };
        let installed = result.is_ok();
        let answer = match result {
            Ok(done) => {
                tracing::info!(from = %done.from, to = %done.to, "agent update installed; restarting into it");
                Envelope::new(&inbox, done).to_json()
            }
            Err(reply) => Envelope::new(&inbox, reply).to_json(),
        };
        if tx.send(answer).await.is_err() {
            tracing::debug!("the connection is gone; dropping the update answer");
        }
        if installed {
            // Time for the connection's writer to put the answer on the wire.
            tokio::time::sleep(Duration::from_millis(500)).await;
            restart();
        }
    });
}

/// Sets the update settings for this process (once, at start, from local configuration).
pub fn configure(settings: Settings) {
    let _ = SETTINGS.set(settings);
}

fn settings() -> Settings {
    SETTINGS.get().cloned().unwrap_or_default()
}

/// `<os>-<arch>` as the relay names builds (`linux-x86_64`).
pub fn platform() -> String {
    format!("{}-{}", std::env::consts::OS, std::env::consts::ARCH)
}

/// Everything an update needs to know about where it runs.
pub struct Updater {
    pub relay: RelayUrl,
    pub tls: Arc<rustls::ClientConfig>,
    pub data_dir: PathBuf,
    pub keys: TrustedKeys,
    pub revert_after: Duration,
    /// The version running now ([`crate::VERSION`]; tests set others).
    pub current: String,
    /// Whether the running build is an installed update (kept as the one to revert to).
    pub running_update: bool,
}

impl Updater {
    /// For the agent connected to `relay_url` with these options, with the process's settings.
    pub fn for_agent(
        relay_url: &str,
        insecure: bool,
        ca_file: Option<&Path>,
        data_dir: &Path,
    ) -> Result<Self, ErrorReply> {
        let settings = settings();
        let relay = RelayUrl::parse(relay_url, insecure)
            .map_err(|err| failed(format!("the relay URL is not usable: {err}")))?;
        let tls = zedops_transport::client_config(ca_file)
            .map_err(|err| failed(format!("cannot set up TLS: {err}")))?;
        let keys = TrustedKeys::load(settings.trusted_key_file.as_deref())
            .map_err(|err| refused(format!("{err:#}")))?;
        Ok(Self {
            relay,
            tls,
            data_dir: data_dir.to_path_buf(),
            keys,
            revert_after: settings.revert_after,
            current: crate::VERSION.to_string(),
            running_update: launch::is_launched(),
        })
    }

    /// Checks and installs the build `order` names; after `Ok` the caller answers the relay and
    /// then calls [`restart`]. On any error nothing was replaced.
    pub async fn apply(&self, order: &AgentUpdateOrder) -> Result<AgentUpdated, ErrorReply> {
        self.apply_reporting(order, &|_| {}).await
    }

    /// [`apply`](Self::apply), telling `report` when the download starts and how far it is
    /// (at most every [`PROGRESS_EVERY`], and at its end) and when the checks start.
    pub async fn apply_reporting(
        &self,
        order: &AgentUpdateOrder,
        report: Report<'_>,
    ) -> Result<AgentUpdated, ErrorReply> {
        let platform = platform();
        if order.platform != platform {
            return Err(refused(format!(
                "the relay offered a build for {}, this agent runs on {platform}",
                printable(&order.platform)
            )));
        }
        check_version(&self.current, &order.version, order.allow_downgrade)?;
        if self.keys.is_empty() {
            return Err(refused(
                "this agent trusts no release key (built without ZEDOPS_RELEASE_KEY and no \
                 --trusted-key-file configured), so it installs no update; install the release \
                 build of the agent",
            ));
        }
        let store = Store::new(&self.data_dir);
        let _lock = store
            .lock(STALE_LOCK)
            .map_err(|err| ErrorReply::new(ErrorCode::UpdateInProgress, err))?;
        tracing::info!(from = %self.current, to = %order.version, "agent update: downloading");

        // The signature first: a few hundred bytes, and without a trusted one nothing else is
        // fetched.
        let mut signature_text = Vec::new();
        fetch::get(
            &self.relay,
            &self.tls,
            &format!("/download/agent/{platform}.minisig"),
            MAX_SIGNATURE_BYTES,
            |chunk| {
                signature_text.extend_from_slice(chunk);
                Ok(())
            },
        )
        .await
        .map_err(failed)?;
        let signature_text =
            String::from_utf8(signature_text).map_err(|_| refused("the signature is not text"))?;
        let signature = decode_signature(&signature_text).map_err(refused)?;
        let mut verifier = self
            .keys
            .verifier(&signature, &release_comment(&order.version, &platform))
            .map_err(refused)?;

        let mut file = store
            .start_download()
            .map_err(|err| failed(format!("cannot write the download: {err}")))?;
        let mut sha256 = ring::digest::Context::new(&ring::digest::SHA256);
        let (mut got, mut said_at) = (0u64, None::<std::time::Instant>);
        let downloading = |bytes: u64| {
            let mut p = AgentUpdateProgress::new(AgentUpdatePhase::Downloading, &order.version);
            p.bytes = Some(bytes.min(order.size));
            p.total = Some(order.size);
            p
        };
        report(downloading(0));
        let received = fetch::get(
            &self.relay,
            &self.tls,
            &format!("/download/agent/{platform}"),
            order.size.min(MAX_AGENT_BUILD_BYTES),
            |chunk| {
                sha256.update(chunk);
                verifier.update(chunk);
                got += chunk.len() as u64;
                if said_at.is_none_or(|at| at.elapsed() >= PROGRESS_EVERY) || got == order.size {
                    said_at = Some(std::time::Instant::now());
                    report(downloading(got));
                }
                file.write_all(chunk)
                    .map_err(|err| format!("cannot write the download: {err}"))
            },
        )
        .await;
        drop(file);
        if received.is_ok() {
            report(AgentUpdateProgress::new(
                AgentUpdatePhase::Verifying,
                &order.version,
            ));
        }
        let checked = match received {
            Err(err) => Err(failed(err)),
            Ok(size) if size != order.size => Err(refused(format!(
                "the download has {size} bytes, the relay announced {}",
                order.size
            ))),
            Ok(_) => {
                let digest = hex(sha256.finish().as_ref());
                if !digest.eq_ignore_ascii_case(&order.sha256) {
                    Err(refused(format!(
                        "the download's SHA-256 is {digest}, the relay announced {}",
                        order.sha256
                    )))
                } else {
                    verifier.finish().map_err(refused)
                }
            }
        };
        if let Err(err) = checked {
            store.discard_download();
            tracing::error!(code = %err.error_code, error = %err.error, "agent update refused; nothing was replaced");
            return Err(err);
        }
        tracing::info!(to = %order.version, "agent update: verified; installing");
        let installed = Installed {
            version: order.version.clone(),
            installed_at: crate::unix_time::now(),
            revert_after_secs: self.revert_after.as_secs(),
            confirmed: false,
            allow_older: order.allow_downgrade,
        };
        store
            .install(&installed, self.running_update)
            .map_err(|err| {
                store.discard_download();
                failed(format!("cannot install the update: {err}"))
            })?;
        Ok(AgentUpdated {
            agent_id: AgentId::default(),
            from: self.current.clone(),
            to: order.version.clone(),
            revert_after_secs: self.revert_after.as_secs(),
        })
    }
}

/// Refuses a version that is not newer, unless a downgrade is allowed.
fn check_version(current: &str, offered: &str, allow_downgrade: bool) -> Result<(), ErrorReply> {
    let offered_v = semver::Version::parse(offered)
        .map_err(|_| refused(format!("{} is not a version", printable(offered))))?;
    let newer = match semver::Version::parse(current) {
        Ok(current) => offered_v > current,
        Err(_) => true,
    };
    if newer || allow_downgrade {
        return Ok(());
    }
    Err(refused(format!(
        "{offered} is not newer than this agent's {current}; pass --allow-downgrade to install it anyway"
    )))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn refused(message: impl Into<String>) -> ErrorReply {
    ErrorReply::new(ErrorCode::UpdateRefused, message)
}

fn failed(message: impl Into<String>) -> ErrorReply {
    ErrorReply::new(ErrorCode::UpdateFailed, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_newer_versions_unless_a_downgrade_is_allowed() {
        assert!(check_version("0.1.0", "0.2.0", false).is_ok());
        assert!(check_version("0.9.0", "0.10.0", false).is_ok());
        let err = check_version("0.2.0", "0.1.0", false).unwrap_err();
        assert_eq!(err.error_code, ErrorCode::UpdateRefused);
        assert!(err.error.contains("--allow-downgrade"), "{}", err.error);
        assert!(check_version("0.2.0", "0.2.0", false).is_err());
        assert!(check_version("0.2.0", "0.1.0", true).is_ok());
        assert!(check_version("0.1.0", "not-a-version", true).is_err());
    }
}

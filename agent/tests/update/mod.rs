//! Shared by the self-update tests: a relay on 127.0.0.1 serving agent builds from a downloads
//! directory, a release key made at run time (never committed) with the signatures
//! `scripts/release` would make. The second real agent build, of another version, is
//! `zedops_testkit::build::stripped_agent`.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use zedops_relay::download::InstallerOptions;
use zedops_relay::server::AppState;
use zedops_relay::{Options, Server, ShutdownHandle, Store, Timeouts};

/// `<os>-<arch>` as the relay names builds.
pub fn platform() -> String {
    format!("{}-{}", std::env::consts::OS, std::env::consts::ARCH)
}

/// A minisign key pair made for this test run.
pub struct ReleaseKey {
    pair: minisign::KeyPair,
}

impl ReleaseKey {
    pub fn generate() -> Self {
        Self {
            pair: minisign::KeyPair::generate_unencrypted_keypair().unwrap(),
        }
    }

    /// The public key as a minisign `.pub` file's text.
    pub fn public_file(&self) -> String {
        format!(
            "untrusted comment: zedops test release key\n{}\n",
            self.pair.pk.to_base64()
        )
    }

    pub fn public_base64(&self) -> String {
        self.pair.pk.to_base64()
    }

    /// The `.minisig` text for `bytes`, with `scripts/release`'s trusted comment.
    pub fn sign(&self, bytes: &[u8], version: &str, platform: &str) -> String {
        self.sign_with_comment(bytes, &format!("zedops-agent {version} {platform}"))
    }

    pub fn sign_with_comment(&self, bytes: &[u8], comment: &str) -> String {
        minisign::sign(
            Some(&self.pair.pk),
            &self.pair.sk,
            std::io::Cursor::new(bytes),
            Some(comment),
            None,
        )
        .unwrap()
        .into_string()
    }
}

/// Puts `bytes` and its signature in `downloads` as this platform's build.
pub fn publish(downloads: &Path, bytes: &[u8], signature: &str) {
    let binary = downloads.join(format!("zedops-agent-{}", platform()));
    std::fs::write(&binary, bytes).unwrap();
    let mut perms = std::fs::metadata(&binary).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
    std::fs::set_permissions(&binary, perms).unwrap();
    std::fs::write(
        downloads.join(format!("zedops-agent-{}.minisig", platform())),
        signature,
    )
    .unwrap();
}

/// A build that is no agent: it starts and never connects (a guard must revert it).
pub const NEVER_CONNECTS: &[u8] = b"#!/bin/sh\n# starts, never connects\nexec sleep 600\n";

/// A new downloads directory holding `bytes` as this platform's build `version`, signed by
/// `key`.
pub fn downloads_with(key: &ReleaseKey, bytes: &[u8], version: &str) -> tempfile::TempDir {
    let downloads = tempfile::tempdir().unwrap();
    publish(
        downloads.path(),
        bytes,
        &key.sign(bytes, version, &platform()),
    );
    downloads
}

/// A relay serving `bytes` as build `version` signed by `key`, with its downloads directory.
pub async fn serve_build(
    key: &ReleaseKey,
    bytes: &[u8],
    version: &str,
) -> (tempfile::TempDir, Relay) {
    let downloads = downloads_with(key, bytes, version);
    let relay = Relay::start(downloads.path()).await;
    (downloads, relay)
}

/// SHA-256 in hex.
pub fn sha256(bytes: &[u8]) -> String {
    ring::digest::digest(&ring::digest::SHA256, bytes)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A relay on 127.0.0.1 serving the builds in `downloads`; stopped on drop.
pub struct Relay {
    pub url: String,
    pub store: Store,
    pub state: Arc<AppState>,
    handle: ShutdownHandle,
    listen: std::net::SocketAddr,
    db: Arc<tempfile::TempDir>,
}

impl Relay {
    pub async fn start(downloads: &Path) -> Self {
        let db = Arc::new(tempfile::tempdir().unwrap());
        Self::serve(downloads, db, "127.0.0.1:0".parse().unwrap()).await
    }

    /// Stops this relay and starts it again on the same address and database, serving the
    /// builds in `downloads` now (a relay reads them at start). Its agents reconnect.
    pub async fn restart_serving(self, downloads: &Path) -> Self {
        let (db, listen) = (self.db.clone(), self.listen);
        drop(self);
        Self::serve(downloads, db, listen).await
    }

    async fn serve(
        downloads: &Path,
        db: Arc<tempfile::TempDir>,
        listen: std::net::SocketAddr,
    ) -> Self {
        let options = || Options {
            listen,
            db: db.path().join("relay.db").display().to_string(),
            tls: None,
            timeouts: Timeouts::default(),
            installer: InstallerOptions {
                downloads: Some(downloads.to_path_buf()),
                public_url: None,
            },
            limits: Default::default(),
        };
        // The old listener of a restarted relay may take a moment to go.
        let mut tries = 0;
        let server = loop {
            match Server::new(options()).await {
                Ok(server) => break server,
                Err(_) if tries < 100 => {
                    tries += 1;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(err) => panic!("relay starts: {err:#}"),
            }
        };
        let listen = server.local_addr();
        let (url, store, state, handle) = (
            server.url(),
            server.store(),
            server.state(),
            server.shutdown_handle(),
        );
        tokio::spawn(async move { server.listen().await.expect("relay serves") });
        Self {
            url,
            store,
            state,
            handle,
            listen,
            db,
        }
    }

    /// Stops serving now (as on drop), e.g. to show what a client does without a relay.
    pub fn shutdown(&self) {
        self.handle.shutdown();
    }

    /// A registration token good for 15 minutes.
    pub async fn registration_token(&self) -> String {
        self.store
            .create_registration_token(Duration::from_secs(900))
            .await
            .unwrap()
    }

    /// The connection of agent `id` now, if it is connected.
    pub fn connection(&self, id: &str) -> Option<u64> {
        self.state.hub.agent(id).map(|link| link.conn_id)
    }

    /// Waits until the one enrolled agent is connected over another connection than `old`
    /// and reported `version` in its hello; returns its id.
    pub async fn wait_version(&self, old: Option<u64>, version: &str, within: Duration) -> String {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let agents = self.store.agents().await.unwrap();
            if let [agent] = agents.as_slice()
                && let Some(conn) = self.connection(&agent.id)
                && Some(conn) != old
                && agent
                    .info
                    .as_ref()
                    .is_some_and(|info| info.version == version)
            {
                return agent.id.clone();
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no agent online with version {version} within {within:?} (agents: {:?})",
                agents
                    .iter()
                    .map(|a| (&a.name, a.info.as_ref().map(|i| &i.version)))
                    .collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.handle.shutdown();
    }
}

/// A work directory with the packaged binary (the tests' own build, as install puts it) and
/// the release key's file; agents' data dirs go in it.
pub struct Site {
    dir: tempfile::TempDir,
    pub launcher: PathBuf,
    pub key_file: PathBuf,
}

impl Site {
    pub fn new(key: &ReleaseKey) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let launcher = dir.path().join("zedops-agent");
        std::fs::copy(env!("CARGO_BIN_EXE_zedops-agent"), &launcher).unwrap();
        let key_file = dir.path().join("release.pub");
        std::fs::write(&key_file, key.public_file()).unwrap();
        Self {
            dir,
            launcher,
            key_file,
        }
    }

    /// The data dir of agent `name` (its log beside it: [`log_text`]).
    pub fn data(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

/// A `zedops-agent run` of the site's packaged binary in the foreground, trusting the site's
/// key, with a 5 s revert deadline; its log appended to `<data>.log`. Killed on drop.
pub struct AgentProcess {
    pub child: tokio::process::Child,
}

impl AgentProcess {
    /// Starts agent `name` on `relay` with data dir `data`, enrolling with `token` if given.
    pub fn spawn(site: &Site, relay: &Relay, name: &str, token: Option<&str>, data: &Path) -> Self {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log_path(data))
            .unwrap();
        let mut command = tokio::process::Command::new(&site.launcher);
        command
            .args(["run", "--relay", &relay.url, "--name", name])
            .arg("--data-dir")
            .arg(data)
            .arg("--trusted-key-file")
            .arg(&site.key_file)
            .args(["--update-revert-after", "5"])
            .env_remove("INVOCATION_ID")
            .env_remove("ZEDOPS_UPDATE_LAUNCHED")
            .env_remove("ZEDOPS_TOKEN")
            .stdout(Stdio::null())
            .stderr(log)
            .kill_on_drop(true);
        if let Some(token) = token {
            command.env("ZEDOPS_TOKEN", token);
        }
        Self {
            child: command.spawn().expect("the agent starts"),
        }
    }

    /// Kills the process and waits for it.
    pub async fn stop(mut self) {
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
    }
}

/// Where the agent with data dir `data` logs.
pub fn log_path(data: &Path) -> PathBuf {
    data.with_extension("log")
}

/// The log of the agent with data dir `data` so far.
pub fn log_text(data: &Path) -> String {
    std::fs::read_to_string(log_path(data)).unwrap_or_default()
}

/// A relay serving a signed agent build 0.99.0, and agent `name` enrolled there and online on
/// the packaged version: where the tests of a real update start.
pub struct Online {
    pub key: ReleaseKey,
    /// The 0.99.0 build the relay serves.
    pub new: Vec<u8>,
    /// The relay's downloads directory, kept while the relay serves from it.
    downloads: tempfile::TempDir,
    pub relay: Relay,
    pub site: Site,
    /// The agent's data dir, `name` in the site.
    pub data: PathBuf,
    pub agent: AgentProcess,
    /// The agent's id at the relay.
    pub id: String,
}

impl Online {
    pub async fn start(name: &str) -> Self {
        let key = ReleaseKey::generate();
        let new = zedops_testkit::build::stripped_agent("0.99.0");
        let (downloads, relay) = serve_build(&key, &new, "0.99.0").await;
        let site = Site::new(&key);
        let data = site.data(name);
        let token = relay.registration_token().await;
        let agent = AgentProcess::spawn(&site, &relay, name, Some(&token), &data);
        let id = relay
            .wait_version(None, env!("CARGO_PKG_VERSION"), Duration::from_secs(60))
            .await;
        Self {
            key,
            new,
            downloads,
            relay,
            site,
            data,
            agent,
            id,
        }
    }
}

/// Waits up to 10 s until the build installed in `data` has confirmed itself (it is kept
/// from then on); the agent's log is the message otherwise.
pub async fn wait_confirmed(data: &Path) {
    let store = zedops_agent::selfupdate::store::Store::new(data);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !store.installed().is_some_and(|i| i.confirmed) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the new build did not confirm itself: {}",
            log_text(data)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Adds `user` with `role` at the relay and signs them in; returns the session's token.
async fn session_token(relay: &Relay, user: &str, role: zedops_protocol::Role) -> String {
    let store = &relay.store;
    store
        .add_user(user, "update-test-pass", role)
        .await
        .unwrap();
    let (_, token) = store
        .login(user, "update-test-pass", None)
        .await
        .unwrap()
        .unwrap();
    token
}

/// A `zedops-client` connection of a new admin `user`, as the CLI and the app have.
pub async fn client(relay: &Relay, user: &str) -> zedops_client::Client {
    client_as(relay, user, zedops_protocol::Role::Admin).await
}

/// A `zedops-client` connection of a new `user` with `role`.
pub async fn client_as(
    relay: &Relay,
    user: &str,
    role: zedops_protocol::Role,
) -> zedops_client::Client {
    let token = session_token(relay, user, role).await;
    zedops_client::Client::connect(zedops_client::ConnectOptions {
        relay: relay.url.clone(),
        token,
        ca_file: None,
        insecure: false,
    })
    .await
    .expect("the client connects")
}

/// An admin's connection to the relay, raw: `client.hello`, then requests by subject.
pub struct Admin {
    writer: zedops_transport::FrameWriter,
    reader: zedops_transport::FrameReader,
    next: u32,
}

impl Admin {
    pub async fn connect(relay: &Relay) -> Self {
        Self::connect_as(relay, "root", zedops_protocol::PROTOCOL_VERSION).await
    }

    /// A new admin `user` whose client says protocol `version` in its hello; the welcome must
    /// answer in that version.
    pub async fn connect_as(relay: &Relay, user: &str, version: u32) -> Self {
        let token = session_token(relay, user, zedops_protocol::Role::Admin).await;
        let url = zedops_transport::RelayUrl::parse(&relay.url, false).unwrap();
        let (mut writer, mut reader) = zedops_transport::connect(
            &url.ws("/ws/client"),
            zedops_transport::client_config(None).unwrap(),
        )
        .await
        .unwrap();
        let welcome: zedops_protocol::ClientWelcome = zedops_transport::hello(
            &mut writer,
            &mut reader,
            zedops_protocol::subject::CLIENT_HELLO,
            &zedops_protocol::ClientHello {
                protocol_version: version,
                token,
            },
            zedops_protocol::subject::CLIENT_WELCOME,
        )
        .await
        .unwrap();
        assert_eq!(welcome.protocol_version, version);
        Self {
            writer,
            reader,
            next: 0,
        }
    }

    /// Sends `agent.update` and returns the answer's data.
    pub async fn update(&mut self, agent: &str) -> serde_json::Value {
        self.next += 1;
        let inbox = format!("_INBOX.update{}", self.next);
        let request = zedops_protocol::AgentUpdateRequest {
            agent_id: agent.into(),
            version: None,
            allow_downgrade: false,
        };
        self.writer
            .send(&zedops_protocol::Envelope {
                subject: zedops_protocol::subject::AGENT_UPDATE,
                reply: Some(&inbox),
                data: &request,
            })
            .await
            .unwrap();
        loop {
            let frame = self
                .reader
                .recv_timeout(Duration::from_secs(120))
                .await
                .unwrap()
                .expect("the relay answers");
            if frame.subject == inbox {
                return serde_json::from_str(frame.data.as_ref().expect("data").get()).unwrap();
            }
        }
    }
}

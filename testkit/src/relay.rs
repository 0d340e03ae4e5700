//! [`TestRelay`]: a real relay on 127.0.0.1 with its own temporary database, made with
//! [`TestRelay::builder`], and the [`StoppedRelay`] it leaves to start again on the same port.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;
use zedops_protocol::Role;
use zedops_relay::server::AppState;
use zedops_relay::{Limits, Options, Server, ShutdownHandle, Store, Timeouts};

use crate::{TEST_PASSWORD, TestPki, init_tracing};

/// A relay serving on 127.0.0.1 with its own temporary database; shut down when dropped.
pub struct TestRelay {
    pub url: String,
    pub addr: SocketAddr,
    pub store: Store,
    pub state: Arc<AppState>,
    dir: Arc<tempfile::TempDir>,
    tls: Option<(PathBuf, PathBuf)>,
    limits: Limits,
    database: Option<String>,
    handle: ShutdownHandle,
    task: Option<JoinHandle<()>>,
}

/// How a [`TestRelay`] is started: `TestRelay::builder().timeouts(..).limits(..).tls(&pki).start()`.
/// Unset, everything is the relay's default and the database and port are fresh.
#[must_use = "a builder starts nothing until .start() is awaited"]
pub struct RelayBuilder {
    timeouts: Timeouts,
    limits: Limits,
    tls: Option<(PathBuf, PathBuf)>,
    listen: SocketAddr,
    dir: Option<Arc<tempfile::TempDir>>,
    database: Option<String>,
    nats: Option<String>,
    downloads: Option<PathBuf>,
}

impl Default for RelayBuilder {
    fn default() -> Self {
        Self {
            timeouts: Timeouts::default(),
            limits: Limits::default(),
            tls: None,
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            dir: None,
            database: None,
            nats: None,
            downloads: None,
        }
    }
}

impl RelayBuilder {
    /// Request and session timeouts (to test TIMEOUT without waiting 30 s).
    pub fn timeouts(mut self, timeouts: Timeouts) -> Self {
        self.timeouts = timeouts;
        self
    }

    /// Rate, in-flight and stream limits.
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Serve wss:// and https:// with the certificate from `pki`.
    pub fn tls(mut self, pki: &TestPki) -> Self {
        self.tls = Some((pki.cert.clone(), pki.key.clone()));
        self
    }

    /// Keep the relay's data in this database instead of a temporary SQLite file: a
    /// PostgreSQL URL, e.g. a fresh [`TestPostgres::database`](crate::TestPostgres::database).
    pub fn database(mut self, url: String) -> Self {
        self.database = Some(url);
        self
    }

    /// Join a cluster through this NATS server (e.g. [`TestNats::url`](crate::TestNats::url));
    /// the relays of a cluster share one [`database`](Self::database).
    pub fn nats(mut self, url: String) -> Self {
        self.nats = Some(url);
        self
    }

    /// Serve the agent builds in this directory (`zedops-agent-<os>-<arch>` and its
    /// `.minisig`), as `zedops-relay --downloads` does: the installer's and self-update's.
    pub fn downloads(mut self, dir: PathBuf) -> Self {
        self.downloads = Some(dir);
        self
    }

    /// Starts the relay and waits until it listens.
    pub async fn start(self) -> TestRelay {
        init_tracing();
        let dir = match self.dir {
            Some(dir) => dir,
            None => Arc::new(tempfile::tempdir().expect("temp dir")),
        };
        let db = match &self.database {
            Some(url) => url.clone(),
            None => dir.path().join("relay.db").display().to_string(),
        };
        let server = Server::new(Options {
            listen: self.listen,
            db,
            tls: self.tls.clone(),
            timeouts: self.timeouts,
            installer: zedops_relay::download::InstallerOptions {
                downloads: self.downloads.clone(),
                public_url: None,
            },
            limits: self.limits,
        })
        .await
        .expect("relay starts");
        if let Some(nats) = &self.nats {
            let options =
                zedops_relay::cluster::ClusterOptions::from_urls(nats, false).expect("NATS URL");
            server
                .join_cluster(&options)
                .await
                .expect("relay joins the cluster");
        }
        let (url, addr, store, state, handle) = (
            server.url(),
            server.local_addr(),
            server.store(),
            server.state(),
            server.shutdown_handle(),
        );
        let task = tokio::spawn(async move {
            server.listen().await.expect("relay serves");
        });
        TestRelay {
            url,
            addr,
            store,
            state,
            dir,
            tls: self.tls,
            limits: self.limits,
            database: self.database,
            handle,
            task: Some(task),
        }
    }
}

/// What is left of a stopped [`TestRelay`]: its database, port and settings, so that the same
/// relay can start again after a pause in which the test changes things.
pub struct StoppedRelay {
    pub dir: Arc<tempfile::TempDir>,
    pub addr: SocketAddr,
    pub timeouts: Timeouts,
    limits: Limits,
    tls: Option<(PathBuf, PathBuf)>,
    database: Option<String>,
}

impl StoppedRelay {
    /// A builder for the same relay again (same port, database, timeouts, limits and TLS),
    /// whose settings can still be changed.
    pub fn builder(&self) -> RelayBuilder {
        RelayBuilder {
            timeouts: self.timeouts.clone(),
            limits: self.limits,
            tls: self.tls.clone(),
            listen: self.addr,
            dir: Some(self.dir.clone()),
            database: self.database.clone(),
            nats: None,
            downloads: None,
        }
    }
}

impl TestRelay {
    /// Drains the relay as `SIGTERM` does (see `zedops_relay::drain`), then it stops.
    pub async fn drain(&self, timeout: Duration) {
        zedops_relay::drain::drain(&self.state, &self.handle, timeout).await;
    }

    /// A builder for a relay on a free port with a fresh database.
    pub fn builder() -> RelayBuilder {
        RelayBuilder::default()
    }

    /// Path of the SQLite file (unused when started with a [`database`](RelayBuilder::database)).
    pub fn db_path(&self) -> PathBuf {
        self.dir.path().join("relay.db")
    }

    /// Stops the relay and waits until it has released its port and database.
    pub async fn stop(mut self) -> StoppedRelay {
        self.handle.shutdown();
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
        StoppedRelay {
            dir: self.dir.clone(),
            addr: self.addr,
            timeouts: self.state.timeouts.clone(),
            limits: self.limits,
            tls: self.tls.clone(),
            database: self.database.clone(),
        }
    }

    /// A new single-use registration token valid for 15 minutes.
    pub async fn registration_token(&self) -> String {
        self.store
            .create_registration_token(Duration::from_secs(900))
            .await
            .expect("token")
    }

    /// Creates a user with `role` (if new) and returns a device token for it.
    pub async fn login(&self, user: &str, role: Role) -> String {
        match self.store.add_user(user, TEST_PASSWORD, role).await {
            Ok(()) | Err(zedops_relay::store::StoreError::UserExists(_)) => {}
            Err(e) => panic!("adding user {user}: {e}"),
        }
        let (_, token) = self
            .store
            .login(user, TEST_PASSWORD, Some("test"))
            .await
            .expect("login")
            .expect("right password");
        token
    }

    /// A client connected as `user` with `role` (created if new), as `zedops` would be.
    pub async fn client(&self, user: &str, role: Role) -> zedops_client::Client {
        let token = self.login(user, role).await;
        self.client_with(&token).await
    }

    /// A client connected with this device token.
    pub async fn client_with(&self, token: &str) -> zedops_client::Client {
        zedops_client::Client::connect(zedops_client::ConnectOptions {
            relay: self.url.clone(),
            token: token.to_string(),
            ca_file: None,
            insecure: false,
        })
        .await
        .expect("client connects")
    }

    /// The newest audit entry of `operation` once it is no longer `pending` (still `pending`
    /// after 10 s: returned as it is, for the caller's assert to show).
    pub async fn settled_audit_entry(&self, operation: &str) -> zedops_relay::store::AuditRow {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let entries = self
                .store
                .audit_list(None, None, 100)
                .await
                .expect("read the audit log");
            let entry = entries
                .into_iter()
                .find(|e| e.operation == operation)
                .unwrap_or_else(|| panic!("no {operation} entry in the audit log"));
            if entry.result != "pending" || std::time::Instant::now() > deadline {
                return entry;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Names of the agents enrolled in the relay's database, online or not, in the store's order.
    pub async fn agent_names(&self) -> Vec<String> {
        let agents = self.store.agents().await.expect("list the enrolled agents");
        agents.into_iter().map(|a| a.name).collect()
    }

    /// Waits until an agent with this name is connected (or not), up to 10 s.
    pub async fn wait_agent(&self, name: &str, online: bool) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while self.state.hub.agent(name).is_some() != online {
            assert!(
                tokio::time::Instant::now() < deadline,
                "agent {name} did not become online={online} within 10 s"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

impl Drop for TestRelay {
    fn drop(&mut self) {
        self.handle.shutdown();
    }
}

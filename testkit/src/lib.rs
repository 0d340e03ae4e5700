//! Test harness for end-to-end tests and benchmarks: a real relay on port 0 with a temporary
//! SQLite file, agents running in-process against the real Docker engine, and throwaway
//! containers made from the locally imported busybox image. Everything is torn down on drop.

pub mod docker;
pub mod registry;
pub mod tls;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;
use zedops_protocol::Role;
use zedops_relay::server::AppState;
use zedops_relay::{Limits, Options, Server, ShutdownHandle, Store, Timeouts};

pub use docker::{TestContainers, require_docker};
pub use tls::TestPki;

/// Password of the users [`TestRelay::login`] creates.
pub const TEST_PASSWORD: &str = "test-password-1";

/// Logs to the test output once (`RUST_LOG=debug cargo test …` to see more).
pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_test_writer()
        .try_init();
}

/// A relay serving on 127.0.0.1 with its own temporary database.
pub struct TestRelay {
    pub url: String,
    pub addr: SocketAddr,
    pub store: Store,
    pub state: Arc<AppState>,
    dir: Arc<tempfile::TempDir>,
    handle: ShutdownHandle,
    task: Option<JoinHandle<()>>,
}

impl TestRelay {
    /// A relay on a free port with a fresh database.
    pub async fn start() -> Self {
        init_tracing();
        let dir = Arc::new(tempfile::tempdir().expect("temp dir"));
        Self::start_on(dir, "127.0.0.1:0".parse().unwrap(), Timeouts::default()).await
    }

    /// A relay with custom timeouts (to test TIMEOUT without waiting 30 s).
    pub async fn start_with_timeouts(timeouts: Timeouts) -> Self {
        init_tracing();
        let dir = Arc::new(tempfile::tempdir().expect("temp dir"));
        Self::start_on(dir, "127.0.0.1:0".parse().unwrap(), timeouts).await
    }

    /// A relay with custom rate and in-flight limits.
    pub async fn start_with_limits(timeouts: Timeouts, limits: Limits) -> Self {
        init_tracing();
        let dir = Arc::new(tempfile::tempdir().expect("temp dir"));
        Self::start_with(dir, "127.0.0.1:0".parse().unwrap(), timeouts, None, limits).await
    }

    /// A relay serving wss:// and https:// with a certificate from `pki`.
    pub async fn start_tls(pki: &TestPki) -> Self {
        init_tracing();
        let dir = Arc::new(tempfile::tempdir().expect("temp dir"));
        let tls = Some((pki.cert.clone(), pki.key.clone()));
        Self::start_with(
            dir,
            "127.0.0.1:0".parse().unwrap(),
            Timeouts::default(),
            tls,
            Limits::default(),
        )
        .await
    }

    /// A relay on `listen` with the database in `dir`: with what [`stop`](Self::stop) returned,
    /// the same relay again after a pause in which the test changes things.
    pub async fn start_on(
        dir: Arc<tempfile::TempDir>,
        listen: SocketAddr,
        timeouts: Timeouts,
    ) -> Self {
        Self::start_with(dir, listen, timeouts, None, Limits::default()).await
    }

    async fn start_with(
        dir: Arc<tempfile::TempDir>,
        listen: SocketAddr,
        timeouts: Timeouts,
        tls: Option<(PathBuf, PathBuf)>,
        limits: Limits,
    ) -> Self {
        let db = dir.path().join("relay.db").display().to_string();
        let server = Server::new(Options {
            listen,
            db,
            tls,
            timeouts,
            installer: Default::default(),
            limits,
        })
        .await
        .expect("relay starts");
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
        Self {
            url,
            addr,
            store,
            state,
            dir,
            handle,
            task: Some(task),
        }
    }

    /// Path of the SQLite file.
    pub fn db_path(&self) -> PathBuf {
        self.dir.path().join("relay.db")
    }

    /// Stops the relay and waits until it has released its port and database.
    pub async fn stop(mut self) -> (Arc<tempfile::TempDir>, SocketAddr, Timeouts) {
        self.handle.shutdown();
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
        (self.dir.clone(), self.addr, self.state.timeouts.clone())
    }

    /// Stops the relay and starts a new one on the same port and database.
    pub async fn restart(self) -> Self {
        let (dir, addr, timeouts) = self.stop().await;
        Self::start_on(dir, addr, timeouts).await
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

/// An agent running in-process, as `zedops-agent run` would.
pub struct TestAgent {
    pub name: String,
    pub data_dir: PathBuf,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<JoinHandle<anyhow::Result<()>>>,
}

impl TestAgent {
    /// Starts an agent that enrols with `token` (or reconnects with what is stored in `data_dir`).
    pub fn spawn(relay_url: &str, token: Option<String>, name: &str, data_dir: &Path) -> Self {
        Self::spawn_inner(relay_url, token, name, data_dir, None)
    }

    /// Like [`spawn`](Self::spawn), with the agent pointed at another Docker engine address.
    pub fn spawn_with_docker_host(
        relay_url: &str,
        token: Option<String>,
        name: &str,
        data_dir: &Path,
        docker_host: &str,
    ) -> Self {
        Self::spawn_inner(
            relay_url,
            token,
            name,
            data_dir,
            Some(docker_host.to_string()),
        )
    }

    fn spawn_inner(
        relay_url: &str,
        token: Option<String>,
        name: &str,
        data_dir: &Path,
        docker_host: Option<String>,
    ) -> Self {
        Self::spawn_options(zedops_agent::AgentOptions {
            relay_url: relay_url.to_string(),
            registration_token: token,
            name: Some(name.to_string()),
            data_dir: data_dir.to_path_buf(),
            docker_host,
            ca_file: None,
            insecure: false,
        })
    }

    /// Like [`spawn`](Self::spawn), with the agent's live-state pushes kept within `budget`
    /// (`zedops-agent run --max-pushes-per-sec`), to match a relay started with lower limits.
    pub fn spawn_paced(
        relay_url: &str,
        token: Option<String>,
        name: &str,
        data_dir: &Path,
        budget: zedops_agent::PushBudget,
    ) -> Self {
        Self::spawn_options_paced(
            zedops_agent::AgentOptions {
                relay_url: relay_url.to_string(),
                registration_token: token,
                name: Some(name.to_string()),
                data_dir: data_dir.to_path_buf(),
                docker_host: None,
                ca_file: None,
                insecure: false,
            },
            budget,
        )
    }

    /// Starts an agent with exactly these options.
    pub fn spawn_options(options: zedops_agent::AgentOptions) -> Self {
        Self::spawn_options_paced(options, zedops_agent::PushBudget::default())
    }

    /// Starts an agent with exactly these options and push budget.
    pub fn spawn_options_paced(
        options: zedops_agent::AgentOptions,
        budget: zedops_agent::PushBudget,
    ) -> Self {
        let (name, data_dir) = (
            options.name.clone().unwrap_or_default(),
            options.data_dir.clone(),
        );
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(zedops_agent::run_paced(options, budget, async move {
            let _ = stopped.await;
        }));
        Self {
            name,
            data_dir,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// Waits until the agent has stored its credentials after enrolling (it saves them once the
    /// relay's welcome arrives, a moment after the relay counts it online), up to 10 s.
    pub async fn wait_credentials(&self) -> PathBuf {
        let path = self.data_dir.join("credentials.json");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while !path.exists() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "no credentials stored in {}",
                self.data_dir.display()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        path
    }

    /// Kills the agent abruptly, as a crash or `kill -9` would: its socket just closes.
    pub async fn kill(mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await;
        }
    }

    /// Asks the agent to shut down and returns how its `run` ended.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match self.task.take() {
            Some(task) => task.await.expect("agent task"),
            None => Ok(()),
        }
    }

    /// Waits for the agent's `run` to return by itself (after a fatal refusal), up to 10 s.
    pub async fn exit(mut self) -> anyhow::Result<()> {
        let task = self.task.take().expect("agent task");
        tokio::time::timeout(Duration::from_secs(10), task)
            .await
            .expect("agent did not exit within 10 s")
            .expect("agent task")
    }
}

impl Drop for TestAgent {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

//! [`TestAgent`]: an agent running in-process against a [`TestRelay`], as `zedops-agent run`
//! would, made with [`TestAgent::builder`].

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::task::JoinHandle;
use zedops_agent::{AgentOptions, PushBudget};

use crate::TestRelay;

/// An agent running in-process; aborted when dropped.
pub struct TestAgent {
    pub name: String,
    pub data_dir: PathBuf,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), zedops_agent::RunError>>>,
    /// The data directory the builder made, when the test named none.
    _own_dir: Option<tempfile::TempDir>,
}

/// Which registration token the agent starts with.
enum Token {
    /// A fresh single-use token from the relay.
    Fresh,
    Given(String),
    /// None: the agent reconnects with the credentials stored in its data directory.
    Stored,
}

/// How a [`TestAgent`] is started:
/// `TestAgent::builder(&relay).name("web-1").docker_host(..).paced(..).spawn().await`.
/// Unset, the agent enrols with a fresh registration token under the name `agent`, keeps its
/// credentials in a temporary directory of its own, and talks to the local Docker engine.
#[must_use = "a builder starts nothing until .spawn() is awaited"]
pub struct AgentBuilder<'a> {
    relay: &'a TestRelay,
    options: AgentOptions,
    token: Token,
    budget: PushBudget,
}

impl TestAgent {
    /// A builder for an agent of `relay`.
    pub fn builder(relay: &TestRelay) -> AgentBuilder<'_> {
        AgentBuilder {
            relay,
            options: AgentOptions {
                relay_url: relay.url.clone(),
                registration_token: None,
                name: Some("agent".into()),
                data_dir: PathBuf::new(),
                docker_host: None,
                ca_file: None,
                insecure: false,
                allow_bind: vec![],
                max_file_size: zedops_protocol::DEFAULT_MAX_FILE_SIZE,
                // Off: tests ask for checks (`updates.check`) when they want one.
                update_check_interval: std::time::Duration::ZERO,
            },
            token: Token::Fresh,
            budget: PushBudget::default(),
        }
    }
}

impl AgentBuilder<'_> {
    /// Another relay (of the same cluster) to try after the first: `--relay A,B`.
    pub fn also_relay(mut self, url: &str) -> Self {
        self.options.relay_url = format!("{},{url}", self.options.relay_url);
        self
    }

    /// Exactly these relays, in order (`--relay URL,URL`), instead of the builder's: e.g. a
    /// relay running as a process of its own first. The builder's relay still issues the
    /// registration token (the relays of a cluster share one database).
    pub fn relays(mut self, list: &str) -> Self {
        self.options.relay_url = list.to_string();
        self
    }

    /// The name it enrols under (and that [`TestRelay::wait_agent`] waits for).
    pub fn name(mut self, name: &str) -> Self {
        self.options.name = Some(name.to_string());
        self
    }

    /// Enrol with this registration token instead of a fresh one.
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.token = Token::Given(token.into());
        self
    }

    /// Start without a registration token: reconnect with what is stored in the data directory.
    pub fn stored_credentials(mut self) -> Self {
        self.token = Token::Stored;
        self
    }

    /// Where the agent keeps its credentials (created by the agent if missing). Unset, a
    /// temporary directory that lives as long as the agent.
    pub fn data_dir(mut self, dir: &Path) -> Self {
        self.options.data_dir = dir.to_path_buf();
        self
    }

    /// Another Docker engine address (`zedops-agent run --docker-host`).
    pub fn docker_host(mut self, host: &str) -> Self {
        self.options.docker_host = Some(host.to_string());
        self
    }

    /// A directory under which created containers may bind-mount (`--allow-bind`).
    pub fn allow_bind(mut self, dir: &Path) -> Self {
        self.options.allow_bind.push(dir.to_path_buf());
        self
    }

    /// A private CA to trust for the relay (`--ca-file`).
    pub fn ca_file(mut self, pem: &Path) -> Self {
        self.options.ca_file = Some(pem.to_path_buf());
        self
    }

    /// Keeps the agent's live-state pushes within `budget` (`--max-pushes-per-sec`), to match a
    /// relay started with lower limits.
    pub fn paced(mut self, budget: PushBudget) -> Self {
        self.budget = budget;
        self
    }

    /// Starts the agent; it connects in the background.
    pub async fn spawn(self) -> TestAgent {
        let Self {
            relay,
            mut options,
            token,
            budget,
        } = self;
        options.registration_token = match token {
            Token::Fresh => Some(relay.registration_token().await),
            Token::Given(token) => Some(token),
            Token::Stored => None,
        };
        let own_dir = options.data_dir.as_os_str().is_empty().then(|| {
            let dir = tempfile::tempdir().expect("temp dir");
            options.data_dir = dir.path().join("agent");
            dir
        });
        let (name, data_dir) = (
            options.name.clone().unwrap_or_default(),
            options.data_dir.clone(),
        );
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(zedops_agent::run_paced(options, budget, async move {
            let _ = stopped.await;
        }));
        TestAgent {
            name,
            data_dir,
            stop: Some(stop),
            task: Some(task),
            _own_dir: own_dir,
        }
    }

    /// Starts the agent and waits until the relay counts it online.
    pub async fn online(self) -> TestAgent {
        let relay = self.relay;
        let agent = self.spawn().await;
        relay.wait_agent(&agent.name, true).await;
        agent
    }
}

impl TestAgent {
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
    pub async fn stop(mut self) -> Result<(), zedops_agent::RunError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match self.task.take() {
            Some(task) => task.await.expect("agent task"),
            None => Ok(()),
        }
    }

    /// Waits for the agent's `run` to return by itself (after a fatal refusal), up to 20 s (it
    /// may first have to notice a restarted relay and reconnect).
    pub async fn exit(mut self) -> Result<(), zedops_agent::RunError> {
        let task = self.task.take().expect("agent task");
        tokio::time::timeout(Duration::from_secs(20), task)
            .await
            .expect("agent did not exit within 20 s")
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

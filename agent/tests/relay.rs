//! The agent's session against the real relay (library, port 0, SQLite file): enrolment stores
//! credentials, requests are answered through the relay, a restarted relay is reconnected to with
//! the stored credentials, and refusals retrying cannot fix end `run` with advice.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use serde_json::Value;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use zedops_agent::AgentOptions;
use zedops_protocol::{
    ClientHello, ClientWelcome, ContainerActionRequest, ContainerListRequest, Envelope,
    PROTOCOL_VERSION, Role, subject,
};
use zedops_relay::{Options, Server, ShutdownHandle, Store, Timeouts};
use zedops_transport::{FrameReader, FrameWriter, RelayUrl};

use common::{Scratch, Spec};

mod common;

/// A relay serving in the background; stopped when dropped.
struct TestRelay {
    addr: SocketAddr,
    store: Store,
    handle: ShutdownHandle,
    serving: Option<JoinHandle<()>>,
}

impl TestRelay {
    async fn start(listen: SocketAddr, db: &Path) -> Self {
        let options = Options {
            listen,
            db: db.display().to_string(),
            tls: None,
            timeouts: Timeouts::default(),
            installer: Default::default(),
            limits: Default::default(),
        };
        let server = Server::new(options).await.expect("relay starts");
        let (addr, store, handle) = (
            server.local_addr(),
            server.store(),
            server.shutdown_handle(),
        );
        let serving = tokio::spawn(async move { server.listen().await.expect("relay serves") });
        Self {
            addr,
            store,
            handle,
            serving: Some(serving),
        }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    async fn stop(mut self) {
        self.handle.shutdown();
        self.serving.take().unwrap().await.unwrap();
    }
}

impl Drop for TestRelay {
    fn drop(&mut self) {
        self.handle.shutdown();
    }
}

/// An agent running `zedops_agent::run` in the background.
struct TestAgent {
    stop: Option<oneshot::Sender<()>>,
    running: JoinHandle<anyhow::Result<()>>,
}

impl TestAgent {
    fn start(relay_url: String, token: Option<String>, name: &str, data_dir: &Path) -> Self {
        let options = AgentOptions {
            relay_url,
            registration_token: token,
            name: Some(name.into()),
            data_dir: data_dir.into(),
            docker_host: None,
            ca_file: None,
            insecure: false,
        };
        let (stop, stopped) = oneshot::channel::<()>();
        let running = tokio::spawn(zedops_agent::run(options, async {
            let _ = stopped.await;
        }));
        Self {
            stop: Some(stop),
            running,
        }
    }

    /// What `run` returned on its own, within `within`.
    async fn outcome(self, within: Duration) -> anyhow::Result<()> {
        tokio::time::timeout(within, self.running)
            .await
            .expect("agent run ends")
            .unwrap()
    }

    async fn shut_down(mut self) -> anyhow::Result<()> {
        let _ = self.stop.take().unwrap().send(());
        self.outcome(Duration::from_secs(5)).await
    }
}

/// A logged-in admin connection to the relay's client endpoint.
struct Admin {
    writer: FrameWriter,
    reader: FrameReader,
    next: u32,
}

impl Admin {
    async fn connect(relay: &TestRelay) -> Self {
        let user = format!("admin{}", rand::random::<u32>());
        relay
            .store
            .add_user(&user, "correct horse", Role::Admin)
            .await
            .unwrap();
        let (_, token) = relay
            .store
            .login(&user, "correct horse", None)
            .await
            .unwrap()
            .unwrap();
        let url = RelayUrl::parse(&relay.url(), false)
            .unwrap()
            .ws("/ws/client");
        let (mut writer, mut reader) =
            zedops_transport::connect(&url, zedops_transport::client_config(None).unwrap())
                .await
                .expect("client connects");
        let hello = ClientHello {
            protocol_version: PROTOCOL_VERSION,
            token,
        };
        let _: ClientWelcome = zedops_transport::hello(
            &mut writer,
            &mut reader,
            subject::CLIENT_HELLO,
            &hello,
            subject::CLIENT_WELCOME,
        )
        .await
        .expect("client welcome");
        Self {
            writer,
            reader,
            next: 0,
        }
    }

    /// Sends one request and returns its inbox.
    async fn send(&mut self, subject: &str, data: impl serde::Serialize) -> String {
        self.next += 1;
        let inbox = format!("_INBOX.test-{}", self.next);
        let frame = Envelope::request(subject, &inbox, data);
        self.writer.send(&frame).await.unwrap();
        inbox
    }

    /// The next answer to any request: its inbox and data (pushes are skipped).
    async fn next_answer(&mut self) -> (String, Value) {
        loop {
            let frame = self
                .reader
                .recv_timeout(Duration::from_secs(20))
                .await
                .unwrap();
            let frame = frame.expect("relay open");
            if subject::is_inbox(&frame.subject) {
                let data = serde_json::from_str(frame.raw_data()).unwrap();
                return (frame.subject, data);
            }
        }
    }

    /// Sends one request and returns the answer's data.
    async fn request(&mut self, subject: &str, data: impl serde::Serialize) -> Value {
        let inbox = self.send(subject, data).await;
        let (answered, data) = self.next_answer().await;
        assert_eq!(answered, inbox);
        data
    }

    /// Lists the agent's containers, waiting for it to come online.
    async fn list_when_online(&mut self, agent: &str) -> Value {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        loop {
            let answer = self
                .request(
                    subject::CONTAINER_LIST,
                    ContainerListRequest {
                        agent_id: agent.into(),
                    },
                )
                .await;
            let offline = matches!(
                answer["errorCode"].as_str(),
                Some("AGENT_OFFLINE" | "NOT_FOUND")
            );
            if !offline || tokio::time::Instant::now() > deadline {
                return answer;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Whether the local engine answers, so answers can be checked for the real thing.
async fn docker_reachable() -> bool {
    zedops_agent::docker::DockerClient::connect(None)
        .await
        .list()
        .await
        .is_ok()
}

fn assert_listed(answer: &Value, docker: bool) {
    if docker {
        assert!(answer["containers"].is_array(), "{answer}");
        assert_eq!(
            answer["count"].as_u64(),
            answer["containers"].as_array().map(|c| c.len() as u64),
            "{answer}"
        );
    } else {
        assert_eq!(answer["errorCode"], "DOCKER_NOT_AVAILABLE", "{answer}");
    }
}

#[tokio::test]
async fn enrols_serves_reconnects_and_stops_when_revoked() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("relay.db");
    let data_dir = dir.path().join("agent");
    let relay = TestRelay::start("127.0.0.1:0".parse().unwrap(), &db).await;
    let token = relay
        .store
        .create_registration_token(Duration::from_secs(900))
        .await
        .unwrap();
    let name = format!("agent-{:08x}", rand::random::<u32>());
    let agent = TestAgent::start(relay.url(), Some(token), &name, &data_dir);
    let docker = docker_reachable().await;

    let mut admin = Admin::connect(&relay).await;
    assert_listed(&admin.list_when_online(&name).await, docker);
    let stored = zedops_agent::credentials::load(&data_dir)
        .unwrap()
        .expect("credentials stored at enrolment");
    assert_eq!(stored.relay, relay.url());
    if docker {
        let missing = ContainerActionRequest {
            agent_id: name.clone(),
            container_id: "zedops-no-such-container".into(),
        };
        let answer = admin.request(subject::CONTAINER_STOP, missing).await;
        assert_eq!(answer["success"], false, "{answer}");
        assert_eq!(answer["errorCode"], "CONTAINER_NOT_FOUND", "{answer}");
        assert_eq!(answer["operation"], "stop", "{answer}");
    }

    // The relay restarts on the same address; the agent comes back with its stored credentials.
    let addr = relay.addr;
    relay.stop().await;
    let relay = TestRelay::start(addr, &db).await;
    let mut admin = Admin::connect(&relay).await;
    assert_listed(&admin.list_when_online(&name).await, docker);

    // Revoked while connected: the next hello is refused, which ends `run` with advice.
    relay.store.revoke_agent(&name).await.unwrap();
    relay.stop().await;
    let _relay = TestRelay::start(addr, &db).await;
    let err = agent
        .outcome(Duration::from_secs(15))
        .await
        .expect_err("revoked agent stops");
    let message = format!("{err:#}");
    assert!(
        message.contains("UNAUTHORIZED") && message.contains("zedops-relay token create"),
        "{message}"
    );
    assert!(message.contains("credentials.json"), "{message}");
}

#[tokio::test]
async fn a_slow_stop_does_not_delay_a_list() {
    let Some(mut scratch) = Scratch::new().await else {
        return;
    };
    // PID 1 shrugs off SIGTERM, so this stop takes the whole grace period.
    let spec = Spec {
        start: true,
        ..Default::default()
    };
    let (container, _) = scratch.create("slow-stop", spec).await;
    let dir = tempfile::tempdir().unwrap();
    let relay =
        TestRelay::start("127.0.0.1:0".parse().unwrap(), &dir.path().join("relay.db")).await;
    let token = relay
        .store
        .create_registration_token(Duration::from_secs(900))
        .await
        .unwrap();
    let name = format!("slow-{}", scratch.suffix);
    let _agent = TestAgent::start(relay.url(), Some(token), &name, &dir.path().join("agent"));
    let mut admin = Admin::connect(&relay).await;
    assert_listed(&admin.list_when_online(&name).await, true);

    let stop = ContainerActionRequest {
        agent_id: name.clone(),
        container_id: container.clone(),
    };
    let stop_inbox = admin.send(subject::CONTAINER_STOP, stop).await;
    let sent = tokio::time::Instant::now();
    let list = ContainerListRequest {
        agent_id: name.clone(),
    };
    let list_inbox = admin.send(subject::CONTAINER_LIST, list).await;
    let (first, answer) = admin.next_answer().await;
    assert_eq!(first, list_inbox, "the list waited for the stop");
    assert!(
        sent.elapsed() < Duration::from_secs(5),
        "list took {:?}",
        sent.elapsed()
    );
    assert_listed(&answer, true);
    let (second, answer) = admin.next_answer().await;
    assert_eq!(second, stop_inbox);
    assert_eq!(answer["success"], true, "{answer}");
    assert!(!scratch.running(&container).await);
}

#[tokio::test]
async fn a_used_token_is_fatal_and_shutdown_is_clean() {
    let dir = tempfile::tempdir().unwrap();
    let relay =
        TestRelay::start("127.0.0.1:0".parse().unwrap(), &dir.path().join("relay.db")).await;
    let token = relay
        .store
        .create_registration_token(Duration::from_secs(900))
        .await
        .unwrap();
    let first = TestAgent::start(
        relay.url(),
        Some(token.clone()),
        "first",
        &dir.path().join("a"),
    );
    let mut admin = Admin::connect(&relay).await;
    admin.list_when_online("first").await;

    let second = TestAgent::start(relay.url(), Some(token), "second", &dir.path().join("b"));
    let err = second
        .outcome(Duration::from_secs(10))
        .await
        .expect_err("a used token is refused");
    let message = format!("{err:#}");
    assert!(
        message.contains("registration token") && message.contains("zedops-relay token create"),
        "{message}"
    );
    assert!(
        zedops_agent::credentials::load(&dir.path().join("b"))
            .unwrap()
            .is_none()
    );

    first.shut_down().await.expect("shutdown is Ok");
}

#[tokio::test]
async fn without_token_or_credentials_run_fails_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let agent = TestAgent::start("http://127.0.0.1:9".into(), None, "x", dir.path());
    let err = agent
        .outcome(Duration::from_secs(5))
        .await
        .expect_err("nothing to enrol with");
    assert!(format!("{err:#}").contains("--token"), "{err:#}");
}

//! The agent's session against the real relay (library, port 0, SQLite file): enrolment stores
//! credentials, requests are answered through the relay, a restarted relay is reconnected to with
//! the stored credentials, and refusals retrying cannot fix end `run` with advice.

use std::time::Duration;

use serde_json::Value;
use zedops_agent::{AgentOptions, RunError};
use zedops_protocol::{
    ClientHello, ClientWelcome, ContainerActionRequest, ContainerListRequest, Envelope, ErrorCode,
    PROTOCOL_VERSION, Role, subject,
};
use zedops_testkit::{TestAgent, TestRelay};
use zedops_transport::{FrameReader, FrameWriter, RelayUrl};

use common::{Scratch, Spec};

mod common;

/// A logged-in admin connection to the relay's client endpoint.
struct Admin {
    writer: FrameWriter,
    reader: FrameReader,
    next: u32,
}

impl Admin {
    async fn connect(relay: &TestRelay) -> Self {
        let token = relay.login("admin", Role::Admin).await;
        let url = RelayUrl::parse(&relay.url, false).unwrap().ws("/ws/client");
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
    let relay = TestRelay::builder().start().await;
    let name = format!("agent-{:08x}", rand::random::<u32>());
    let agent = TestAgent::builder(&relay).name(&name).spawn().await;
    let data_dir = agent.data_dir.clone();
    let docker = docker_reachable().await;

    let mut admin = Admin::connect(&relay).await;
    assert_listed(&admin.list_when_online(&name).await, docker);
    let stored = zedops_agent::credentials::load(&data_dir)
        .unwrap()
        .expect("credentials stored at enrolment");
    assert_eq!(stored.relay, relay.url);
    if docker {
        let missing = ContainerActionRequest {
            agent_id: name.clone().into(),
            container_id: "zedops-no-such-container".into(),
        };
        let answer = admin.request(subject::CONTAINER_STOP, missing).await;
        assert_eq!(answer["success"], false, "{answer}");
        assert_eq!(answer["errorCode"], "CONTAINER_NOT_FOUND", "{answer}");
        assert_eq!(answer["operation"], "stop", "{answer}");
    }

    // The relay restarts on the same address; the agent comes back with its stored credentials.
    let relay = relay.stop().await.builder().start().await;
    let mut admin = Admin::connect(&relay).await;
    assert_listed(&admin.list_when_online(&name).await, docker);

    // Revoked while connected: the next hello is refused, which ends `run` with advice.
    relay.store.revoke_agent(&name).await.unwrap();
    let _relay = relay.stop().await.builder().start().await;
    let err = agent.exit().await.expect_err("revoked agent stops");
    let message = assert_unauthorized(&err, "UNAUTHORIZED");
    assert!(message.contains("credentials.json"), "{message}");
}

/// Asserts `err` is the relay's `UNAUTHORIZED` refusal and its message says `part` and how to
/// get a new registration token; returns the message.
fn assert_unauthorized(err: &RunError, part: &str) -> String {
    assert!(
        matches!(
            err,
            RunError::Refused {
                code: ErrorCode::Unauthorized,
                ..
            }
        ),
        "{err:?}"
    );
    let message = format!("{err:#}");
    assert!(
        message.contains(part) && message.contains("zedops-relay token create"),
        "{message}"
    );
    message
}

#[tokio::test]
async fn a_slow_stop_does_not_delay_a_list() {
    let Some(mut scratch) = Scratch::new().await else {
        return;
    };
    // This stop takes the whole grace period.
    let (container, _) = scratch.create("slow-stop", Spec::SLOW_TO_STOP).await;
    let relay = TestRelay::builder().start().await;
    let name = format!("slow-{}", scratch.suffix);
    let _agent = TestAgent::builder(&relay).name(&name).spawn().await;
    let mut admin = Admin::connect(&relay).await;
    assert_listed(&admin.list_when_online(&name).await, true);

    let stop = ContainerActionRequest {
        agent_id: name.clone().into(),
        container_id: container.clone().into(),
    };
    let stop_inbox = admin.send(subject::CONTAINER_STOP, stop).await;
    let sent = tokio::time::Instant::now();
    let list = ContainerListRequest {
        agent_id: name.clone().into(),
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
    let relay = TestRelay::builder().start().await;
    let token = relay.registration_token().await;
    let first = TestAgent::builder(&relay)
        .name("first")
        .token(token.clone())
        .spawn()
        .await;
    let mut admin = Admin::connect(&relay).await;
    admin.list_when_online("first").await;

    let second = TestAgent::builder(&relay)
        .name("second")
        .token(token)
        .spawn()
        .await;
    let second_dir = second.data_dir.clone();
    let err = second.exit().await.expect_err("a used token is refused");
    let message = assert_unauthorized(&err, "registration token");
    // The relay's own remedy once, and never a token on the command line (`ps` shows it).
    assert_eq!(
        message.matches("zedops-relay token create").count(),
        1,
        "{message}"
    );
    assert!(!message.contains("--token "), "{message}");
    assert!(
        zedops_agent::credentials::load(&second_dir)
            .unwrap()
            .is_none()
    );

    first.stop().await.expect("shutdown is Ok");
}

#[tokio::test]
async fn without_token_or_credentials_run_fails_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let options = AgentOptions {
        relay_url: "http://127.0.0.1:9".into(),
        registration_token: None,
        name: Some("x".into()),
        data_dir: dir.path().into(),
        docker_host: None,
        ca_file: None,
        insecure: false,
        allow_bind: vec![],
        max_file_size: zedops_protocol::DEFAULT_MAX_FILE_SIZE,
        update_check_interval: Duration::ZERO,
    };
    let refusal = |options: AgentOptions| async {
        let run = zedops_agent::run(options, std::future::pending());
        let err = tokio::time::timeout(Duration::from_secs(5), run)
            .await
            .expect("run ends at once")
            .expect_err("nothing to enrol with");
        assert!(matches!(err, RunError::Options(_)), "{err:?}");
        format!("{err:#}")
    };
    // The way out, without a secret on a command line.
    let none = refusal(options.clone()).await;
    assert!(
        none.contains("has no registration token")
            && none.contains("ZEDOPS_TOKEN")
            && none.contains("--token-file")
            && !none.contains("--token "),
        "{none}"
    );
    // An empty ZEDOPS_TOKEN= (an env file left half filled in) is named as such.
    let empty = refusal(AgentOptions {
        registration_token: Some("  ".into()),
        ..options
    })
    .await;
    assert!(
        empty.contains("the registration token given is empty"),
        "{empty}"
    );
}

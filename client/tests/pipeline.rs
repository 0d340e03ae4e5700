//! End to end through the client library: the real relay (port 0, temp SQLite), real agents
//! and the real Docker engine. Enrolment, listing, actions, offline and restart behaviour.

mod support;

use std::time::{Duration, Instant};

use serde_json::json;
use zedops_client::{Client, ClientError};
use zedops_protocol::{Operation, Role};
use zedops_testkit::wire::{client_hello, next_frame, send};
use zedops_testkit::{TestAgent, TestContainers, TestRelay, require_docker};

async fn connect(relay: &TestRelay, role: Role) -> Client {
    let token = relay.login(&format!("{role}-user"), role).await;
    relay.client_with(&token).await
}

fn code(err: &ClientError) -> &'static str {
    err.code().as_str()
}

#[tokio::test]
async fn enrols_lists_and_drives_real_containers() {
    let Some(docker) = require_docker().await else {
        return;
    };
    let mut containers = TestContainers::new(&docker);
    let running = containers.sleeper("run").await;
    let stopped = containers.created_sleeper("stopped").await;

    let relay = TestRelay::builder().start().await;
    // Its data directory, the builder's, is one the agent creates itself, as on a fresh server.
    let agent = TestAgent::builder(&relay).name("server-1").online().await;

    // Credentials are private to the agent's user.
    use std::os::unix::fs::PermissionsExt;
    let creds = std::fs::metadata(agent.wait_credentials().await).expect("credentials stored");
    assert_eq!(creds.permissions().mode() & 0o777, 0o600);
    assert_eq!(
        std::fs::metadata(&agent.data_dir)
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o700
    );

    let client = connect(&relay, Role::Operator).await;
    let agents = client.agents().await.unwrap();
    let me = agents
        .iter()
        .find(|a| a.name == "server-1")
        .expect("agent listed");
    assert!(me.online);
    assert!(me.last_seen.is_some());
    let info = me.info.as_ref().expect("agent info");
    assert!(
        info.docker_version.is_some(),
        "docker version reported: {info:?}"
    );

    // ps: running and stopped containers with the seed's fields.
    let list = client.containers("server-1").await.unwrap();
    let run = list
        .iter()
        .find(|c| c.names == [format!("/{running}")])
        .expect("running container listed");
    assert_eq!(run.state, "running");
    assert_eq!(run.image, zedops_testkit::docker::TEST_IMAGE);
    assert_eq!(run.id.len(), 64);
    assert!(run.status.starts_with("Up"), "{}", run.status);
    assert!(run.created > 1_600_000_000);
    assert_eq!(run.labels.get("zedops-test").map(String::as_str), Some("1"));
    let stop = list
        .iter()
        .find(|c| c.names == [format!("/{stopped}")])
        .expect("stopped container listed");
    assert_eq!(stop.state, "created");

    // The agent id works as well as the name.
    assert_eq!(client.containers(&me.id).await.unwrap().len(), list.len());

    // start / stop / restart change the real container.
    let ok = client
        .action("server-1", &stopped, Operation::Start)
        .await
        .unwrap();
    assert!(ok.success);
    assert_eq!(ok.operation, Operation::Start);
    assert_eq!(containers.state(&stopped).await, "running");

    client
        .action("server-1", &running, Operation::Stop)
        .await
        .unwrap();
    assert_eq!(containers.state(&running).await, "exited");

    let before = containers.started_at(&stopped).await;
    client
        .action("server-1", &stopped, Operation::Restart)
        .await
        .unwrap();
    assert_eq!(containers.state(&stopped).await, "running");
    assert_ne!(
        containers.started_at(&stopped).await,
        before,
        "restart started the container again"
    );

    // An unknown container is a clear error, not a crash.
    let err = client
        .action("server-1", "no-such-container-zz", Operation::Start)
        .await
        .unwrap_err();
    assert_eq!(code(&err), "CONTAINER_NOT_FOUND", "{err}");
    let err = client.containers("no-such-agent").await.unwrap_err();
    assert_eq!(code(&err), "NOT_FOUND", "{err}");

    // Every action was audited, failures included.
    assert!(relay.store.audit_count().await.unwrap() >= 4);
    agent.stop().await.unwrap();
}

#[tokio::test]
async fn a_viewer_may_list_but_not_act() {
    let Some((containers, name, relay, _agent)) =
        support::sleeper_and_agent("view", "viewed").await
    else {
        return;
    };

    let viewer = connect(&relay, Role::Viewer).await;
    assert!(!viewer.containers("viewed").await.unwrap().is_empty());
    let audited = relay.store.audit_count().await.unwrap();
    let err = viewer
        .action("viewed", &name, Operation::Stop)
        .await
        .unwrap_err();
    assert_eq!(code(&err), "FORBIDDEN", "{err}");
    assert_eq!(
        containers.state(&name).await,
        "running",
        "a refused stop changes nothing"
    );
    assert_eq!(
        relay.store.audit_count().await.unwrap(),
        audited + 1,
        "the refusal is audited"
    );

    // On the wire the refusal has the shape of every failed action; so has the relay's own
    // failure (an unknown agent).
    let refused = raw_action(&relay, Role::Viewer, "stop", "viewed", &name).await;
    assert_eq!(refused["errorCode"], "FORBIDDEN", "{refused}");
    assert!(
        refused["error"].as_str().unwrap().contains("operator"),
        "{refused}"
    );
    let failed = raw_action(&relay, Role::Operator, "start", "nobody", &name).await;
    assert_eq!(failed["errorCode"], "NOT_FOUND", "{failed}");
}

/// `container.<operation>` sent by hand as a `role` user; the answer's data, after checking
/// that it has the shape of every failed action: `success`, `containerId` and `operation`
/// beside `errorCode` and `error`.
async fn raw_action(
    relay: &TestRelay,
    role: Role,
    operation: &str,
    agent: &str,
    container: &str,
) -> serde_json::Value {
    let token = relay.login(&format!("{role}-user"), role).await;
    let mut ws = client_hello(relay, &token).await;
    let request = json!({"subject": format!("container.{operation}"), "reply": "_INBOX.raw",
        "data": {"agentId": agent, "containerId": container}});
    send(&mut ws, request).await;
    let answer = next_frame(&mut ws).await.unwrap();
    assert_eq!(answer["subject"], "_INBOX.raw", "{answer}");
    let data = answer["data"].clone();
    assert_eq!(data["success"], false, "{answer}");
    assert_eq!(data["containerId"], container, "{answer}");
    assert_eq!(data["operation"], operation, "{answer}");
    data
}

#[tokio::test]
async fn registration_tokens_are_single_use_and_expire() {
    let relay = TestRelay::builder().start().await;
    let token = relay.registration_token().await;
    let agent = TestAgent::builder(&relay)
        .name("first")
        .token(token.clone())
        .online()
        .await;

    let reused = TestAgent::builder(&relay)
        .name("second")
        .token(token)
        .spawn()
        .await;
    let err = reused.exit().await.expect_err("a reused token is refused");
    assert!(format!("{err:#}").contains("registration token"), "{err:#}");

    let expired = relay
        .store
        .create_registration_token(Duration::ZERO)
        .await
        .unwrap();
    let late = TestAgent::builder(&relay)
        .name("third")
        .token(expired)
        .spawn()
        .await;
    late.exit().await.expect_err("an expired token is refused");

    assert_eq!(relay.agent_names().await, ["first"]);
    agent.stop().await.unwrap();
}

#[tokio::test]
async fn offline_agents_answer_at_once_and_come_back_with_stored_credentials() {
    let Some(docker) = require_docker().await else {
        return;
    };
    let _containers = TestContainers::new(&docker);
    let relay = TestRelay::builder().start().await;
    let data = tempfile::tempdir().unwrap();
    let agent = TestAgent::builder(&relay)
        .name("flaky")
        .data_dir(data.path())
        .online()
        .await;
    let client = connect(&relay, Role::Admin).await;
    let mut events = client.events();

    agent.wait_credentials().await;
    agent.kill().await;
    relay.wait_agent("flaky", false).await;
    let started = Instant::now();
    let err = client.containers("flaky").await.unwrap_err();
    assert_eq!(code(&err), "AGENT_OFFLINE", "{err}");
    // Well under the 10 s list timeout: answered, not waited out.
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "took {:?}",
        started.elapsed()
    );
    let offline = wait_status(&mut events, "flaky", false).await;
    assert!(!offline.online);

    // Started again without a token: reconnects with the stored credentials.
    let agent = TestAgent::builder(&relay)
        .name("flaky")
        .stored_credentials()
        .data_dir(data.path())
        .online()
        .await;
    wait_status(&mut events, "flaky", true).await;
    client
        .containers("flaky")
        .await
        .expect("listing works again");
    assert_eq!(relay.agent_names().await.len(), 1, "no second enrolment");
    agent.stop().await.unwrap();
}

async fn wait_status(
    events: &mut tokio::sync::broadcast::Receiver<zedops_client::ClientEvent>,
    name: &str,
    online: bool,
) -> zedops_protocol::AgentStatus {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, events.recv())
            .await
            .expect("status push within 10 s")
        {
            Ok(zedops_client::ClientEvent::AgentStatus(s))
                if s.name == name && s.online == online =>
            {
                return s;
            }
            Ok(_) => continue,
            Err(e) => panic!("event stream ended: {e}"),
        }
    }
}

#[tokio::test]
async fn agent_and_client_carry_on_across_a_relay_restart() {
    let Some((containers, name, relay, agent)) =
        support::sleeper_and_agent("survivor", "steady").await
    else {
        return;
    };
    let token = relay.login("ops", Role::Operator).await;
    let client = relay.client_with(&token).await;
    let mut events = client.events();

    agent.wait_credentials().await;
    let relay = relay.stop().await.builder().start().await;
    // The agent backs off (1 s, then 2 s, …) and returns with its stored credentials.
    relay.wait_agent("steady", true).await;
    // The client library reconnects by itself with the same device token.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        match tokio::time::timeout(Duration::from_secs(15), events.recv())
            .await
            .expect("reconnect event")
        {
            Ok(zedops_client::ClientEvent::Connected) => break,
            Ok(_) => assert!(Instant::now() < deadline, "client did not reconnect"),
            Err(e) => panic!("event stream ended: {e}"),
        }
    }
    client
        .action("steady", &name, Operation::Stop)
        .await
        .expect("stop after the restart");
    assert_eq!(containers.state(&name).await, "exited");
    agent.stop().await.unwrap();
}

#[tokio::test]
async fn two_agents_are_routed_to_the_right_engine() {
    let Some(_docker) = require_docker().await else {
        return;
    };
    let relay = TestRelay::builder().start().await;
    let a = TestAgent::builder(&relay).name("alpha").spawn().await;
    // Beta's engine is unreachable, so an answer from beta is recognisable.
    let b = TestAgent::builder(&relay)
        .name("beta")
        .docker_host("unix:///nonexistent/docker.sock")
        .spawn()
        .await;
    relay.wait_agent("alpha", true).await;
    relay.wait_agent("beta", true).await;
    let client = connect(&relay, Role::Admin).await;
    let (alpha, beta) = tokio::join!(client.containers("alpha"), client.containers("beta"));
    alpha.expect("alpha lists its engine");
    assert_eq!(code(&beta.unwrap_err()), "DOCKER_NOT_AVAILABLE");
    a.stop().await.unwrap();
    b.stop().await.unwrap();
}

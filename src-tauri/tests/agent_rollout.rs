//! "Update agents" (issue 17) against a real relay and three real agents: a canary whose update
//! fails stops the rollout before the others are asked. The relay here serves no signed agent
//! build, so the canary's `agent.update` is refused (nothing replaced); the other two are
//! reported "not started", are never sent an update, and stay online on their version.

use std::sync::{Arc, Mutex};

use zedops_desktop::update::{self, AgentUpdateEvent, UpdateState};
use zedops_protocol::Role;
use zedops_testkit::{TestAgent, TestRelay};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_canary_stops_the_rollout_before_the_others() {
    let relay = TestRelay::builder().start().await;
    let _canary = TestAgent::builder(&relay).name("roll-a").online().await;
    let _b = TestAgent::builder(&relay).name("roll-b").online().await;
    let _c = TestAgent::builder(&relay).name("roll-c").online().await;
    let client = relay.client("ada", Role::Admin).await;
    let before = client.agents().await.unwrap();
    let id = |name: &str| {
        before
            .iter()
            .find(|a| a.name == name)
            .map(|a| a.id.clone())
            .unwrap()
    };
    let order = [id("roll-a"), id("roll-b"), id("roll-c")];

    let seen: Arc<Mutex<Vec<AgentUpdateEvent>>> = Arc::default();
    let report: update::Report = {
        let seen = seen.clone();
        Arc::new(move |e| seen.lock().unwrap().push(e))
    };
    let err = update::roll_out(&client, &order, 1, 5, report)
        .await
        .unwrap_err();
    assert!(
        err.message.contains("1 failed, 0 updated, 2 not started"),
        "{}",
        err.message
    );

    let seen = seen.lock().unwrap().clone();
    let states = |agent: &str| -> Vec<UpdateState> {
        seen.iter()
            .filter(|e| e.agent_id == agent)
            .map(|e| e.state)
            .collect()
    };
    assert_eq!(
        states(&order[0]),
        [
            UpdateState::Queued,
            UpdateState::Updating,
            UpdateState::Failed
        ]
    );
    let failed = seen
        .iter()
        .find(|e| e.state == UpdateState::Failed)
        .unwrap();
    assert!(
        failed.detail.starts_with("Refused, nothing replaced:"),
        "{}",
        failed.detail
    );
    for other in &order[1..] {
        assert_eq!(
            states(other),
            [UpdateState::Queued, UpdateState::NotStarted],
            "an agent after the failed canary was touched"
        );
    }

    // Nothing changed: every agent is still online on the version it had.
    let after = client.agents().await.unwrap();
    for agent in &before {
        let now = after.iter().find(|a| a.id == agent.id).unwrap();
        assert!(now.online, "{} went offline", agent.name);
        assert_eq!(
            now.info.as_ref().map(|i| &i.version),
            agent.info.as_ref().map(|i| &i.version),
            "{}",
            agent.name
        );
    }
    // Only the canary was asked: no agent.update in the audit log names another agent.
    let audit = zedops_desktop::admin::audit_log(&client, None)
        .await
        .unwrap();
    let others: Vec<_> = audit
        .iter()
        .filter(|e| {
            e.operation == "agent.update"
                && e.agent_id
                    .as_deref()
                    .is_some_and(|a| order[1..].iter().any(|o| o == a))
        })
        .collect();
    assert!(others.is_empty(), "{others:?}");
}

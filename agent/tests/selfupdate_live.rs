//! Agent self-update followed live (issue 17), as `zedops agent update` and the app's "Update
//! agents" follow it (`zedops_client::agent_update`), against a real relay and real agent
//! processes: the states arrive in order (downloading the whole build, verifying, restarting,
//! online with the new version); a signed build that cannot connect is reverted by the agent's
//! guard and shown rolled back with the reason the guard recorded; and a fleet rollout whose
//! canary refuses the relay's build (signed by another key than the one the agents trust)
//! stops before the other agents are asked.

use std::sync::Mutex;
use std::time::Duration;

use update::{
    AgentProcess, NEVER_CONNECTS, Online, ReleaseKey, Site, downloads_with, log_text, serve_build,
    wait_confirmed,
};
use zedops_agent::selfupdate::store::Store;
use zedops_client::agent_update::{self, AgentStep, AgentUpdateOptions};
use zedops_testkit::build::stripped_agent;

mod update;

/// Collects every step reported, per agent.
#[derive(Default)]
struct Seen(Mutex<Vec<(String, AgentStep)>>);

impl Seen {
    fn report(&self) -> impl Fn(&str, AgentStep) + Send + Sync + '_ {
        move |agent: &str, step: AgentStep| self.0.lock().unwrap().push((agent.to_string(), step))
    }

    fn of(&self, agent: &str) -> Vec<AgentStep> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .filter(|(a, _)| a == agent)
            .map(|(_, s)| s.clone())
            .collect()
    }

    fn take(&self) -> Vec<AgentStep> {
        std::mem::take(&mut *self.0.lock().unwrap())
            .into_iter()
            .map(|(_, s)| s)
            .collect()
    }
}

/// The steps with downloading's repeats folded into one (its last), for comparing orders.
fn folded(steps: &[AgentStep]) -> (Vec<&'static str>, Option<(u64, u64)>) {
    let mut names = vec![];
    let mut last_download = None;
    for step in steps {
        let name = match step {
            AgentStep::Queued => "queued",
            AgentStep::Asked => "asked",
            AgentStep::Downloading { bytes, total } => {
                last_download = Some((*bytes, *total));
                "downloading"
            }
            AgentStep::Verifying => "verifying",
            AgentStep::Restarting { .. } => "restarting",
            AgentStep::Online { .. } => "online",
            AgentStep::RolledBack { .. } => "rolled-back",
            AgentStep::Failed { .. } => "failed",
            AgentStep::NotStarted => "not-started",
        };
        if names.last() != Some(&name) {
            names.push(name);
        }
    }
    (names, last_download)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_state_arrives_live_and_a_build_that_cannot_connect_is_shown_rolled_back_with_why() {
    let mut online = Online::start("live-1").await;
    let packaged = env!("CARGO_PKG_VERSION");

    // The update as `zedops agent update live-1` follows it. An operator connected meanwhile
    // is never told (agent updates are the admins').
    let client = update::client(&online.relay, "ann").await;
    let operator = update::client_as(&online.relay, "otto", zedops_protocol::Role::Operator).await;
    let mut operator_events = operator.events();
    let seen = Seen::default();
    let end = agent_update::update_one(
        &client,
        "live-1",
        &AgentUpdateOptions::default(),
        &seen.report(),
    )
    .await;
    assert_eq!(
        end,
        AgentStep::Online {
            version: "0.99.0".into()
        },
        "{}",
        log_text(&online.data)
    );
    let steps = seen.take();
    let (order, download) = folded(&steps);
    assert_eq!(
        order,
        ["asked", "downloading", "verifying", "restarting", "online"],
        "{steps:?}"
    );
    let size = online.new.len() as u64;
    assert_eq!(
        download,
        Some((size, size)),
        "the whole build's download was shown"
    );
    assert!(
        steps.contains(&AgentStep::Restarting {
            from: packaged.into(),
            to: "0.99.0".into()
        }),
        "{steps:?}"
    );
    client.close().await;
    // The same pushes reached every connection at once; a moment for the operator's to arrive.
    tokio::time::sleep(Duration::from_millis(500)).await;
    while let Ok(event) = operator_events.try_recv() {
        assert!(
            !matches!(event, zedops_client::ClientEvent::AgentUpdate(_)),
            "an operator was sent {event:?}"
        );
    }
    operator.close().await;
    // `online` is said at the new build's hello; the build confirms itself (kept from then
    // on) within a second of it. Before that, a lost connection could still revert it.
    wait_confirmed(&online.data).await;

    // A signed build that starts but never connects (0.99.1): the agent installs it and
    // restarts into it; its guard takes it back after 5 s and kills it; started again (as
    // systemd would), the agent is back on 0.99.0 and the update is shown rolled back with the
    // reason the guard recorded.
    let broken_downloads = downloads_with(&online.key, NEVER_CONNECTS, "0.99.1");
    let relay = online.relay.restart_serving(broken_downloads.path()).await;
    relay
        .wait_version(None, "0.99.0", Duration::from_secs(60))
        .await;
    let client = update::client(&relay, "bob").await;
    let supervise = async {
        let status = tokio::time::timeout(Duration::from_secs(40), online.agent.child.wait())
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "the build that cannot connect still runs: {}",
                    log_text(&online.data)
                )
            })
            .unwrap();
        assert!(!status.success(), "{status:?}");
        AgentProcess::spawn(&online.site, &relay, "live-1", None, &online.data)
    };
    let (options, report) = (AgentUpdateOptions::default(), seen.report());
    let (end, restarted) = tokio::join!(
        agent_update::update_one(&client, "live-1", &options, &report),
        supervise
    );
    let steps = seen.take();
    let AgentStep::RolledBack { reason } = &end else {
        panic!("{end:?} {steps:?} {}", log_text(&online.data));
    };
    assert!(reason.starts_with("back on 0.99.0: "), "{reason}");
    // The guard's own words, carried by the agent and the relay.
    assert!(
        reason.contains("did not connect to the relay within 5 s"),
        "{reason}"
    );
    let (order, _) = folded(&steps);
    assert_eq!(
        order,
        [
            "asked",
            "downloading",
            "verifying",
            "restarting",
            "rolled-back"
        ],
        "{steps:?}"
    );
    assert_eq!(
        Store::new(&online.data).rollback().map(|r| r.reported),
        Some(true)
    );
    relay
        .wait_version(None, "0.99.0", Duration::from_secs(10))
        .await;
    client.close().await;
    drop(restarted);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_canary_that_refuses_the_relays_build_stops_the_rollout_before_the_others() {
    // The agents trust one key; the relay serves a build signed by another (a relay that was
    // given, or made, a build the release key did not sign).
    let trusted = ReleaseKey::generate();
    let other = ReleaseKey::generate();
    // Stripped as a release build ships: the test binary's own copy carries its debug
    // information, over the 64 MiB an agent downloads at most (refused for its size first).
    let build = stripped_agent("0.99.0");
    let (_downloads, relay) = serve_build(&other, &build, "0.99.0").await;
    let site = Site::new(&trusted);
    let names = ["fleet-a", "fleet-b", "fleet-c"];
    let mut agents = vec![];
    for name in names {
        let token = relay.registration_token().await;
        agents.push(AgentProcess::spawn(
            &site,
            &relay,
            name,
            Some(&token),
            &site.data(name),
        ));
    }
    let client = update::client(&relay, "cy").await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let agents = client.agents().await.unwrap();
        if agents.iter().filter(|a| a.online).count() == names.len() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "agents not online: {agents:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let seen = Seen::default();
    let order: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    let summary = agent_update::roll_out(
        &client,
        &order,
        1,
        5,
        &AgentUpdateOptions::default(),
        &seen.report(),
    )
    .await;
    assert!(summary.updated.is_empty(), "{summary:?}");
    assert_eq!(summary.not_started, ["fleet-b", "fleet-c"], "{summary:?}");
    let canary = seen.of("fleet-a");
    let Some(AgentStep::Failed { code, reason }) = canary.last() else {
        panic!("{canary:?}");
    };
    assert_eq!(code, "UPDATE_REFUSED", "{reason}");
    // The agent's refusal (the relay forwards it): the signature is by no key it trusts.
    assert!(reason.contains("agent fleet-a did not update"), "{reason}");
    assert!(
        reason.contains("not signed by a release key this agent trusts"),
        "{reason}"
    );
    assert_eq!(
        folded(&canary).0,
        ["queued", "asked", "failed"],
        "{canary:?}"
    );
    for other in ["fleet-b", "fleet-c"] {
        assert_eq!(
            seen.of(other),
            [AgentStep::Queued, AgentStep::NotStarted],
            "{other}"
        );
    }
    // Nothing was replaced anywhere, every agent still runs the packaged version, and only the
    // canary was asked.
    for name in names {
        assert!(Store::new(&site.data(name)).installed().is_none(), "{name}");
        assert!(
            !site.data(name).join("update/zedops-agent").exists(),
            "{name}"
        );
    }
    for agent in client.agents().await.unwrap() {
        assert!(agent.online, "{}", agent.name);
        assert_eq!(
            agent.info.map(|i| i.version).as_deref(),
            Some(env!("CARGO_PKG_VERSION")),
            "{}",
            agent.name
        );
    }
    let audit = relay.store.audit_list(None, None, 50).await.unwrap();
    let asked: Vec<_> = audit
        .iter()
        .filter(|row| row.operation == "agent.update")
        .map(|row| row.agent_id.clone().unwrap_or_default())
        .collect();
    let canary_id = client
        .agents()
        .await
        .unwrap()
        .into_iter()
        .find(|a| a.name == "fleet-a")
        .unwrap()
        .id;
    assert_eq!(asked, [canary_id]);
    client.close().await;
    drop(agents);
}

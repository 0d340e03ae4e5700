//! HAProxy in front of a relay cluster (issue 18), with the configuration the docs ship
//! (`packaging/cluster/haproxy.cfg`, only addresses, ports and the certificate path changed):
//! two relay processes on one PostgreSQL and NATS, a real agent and apps connected only through
//! HAProxy over TLS. The relay holding the agent is killed with SIGKILL: the agent and the apps
//! come back through HAProxy on the other relay. A relay that is alive but not ready (`/readyz`
//! 503) is taken out of the pool for new connections while its existing ones keep working. A
//! relay stopped with SIGTERM drains: what was in flight through it is answered, everyone moves.
//! Real PostgreSQL, `nats-server`, `haproxy` and Docker; under CI=true a missing part fails.

mod cluster_support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use cluster_support::haproxy::TestHaproxy;
use cluster_support::{RelayProcess, http_get, http_status, relay_on};
use zedops_client::{Client, ClientEvent, ConnectOptions};
use zedops_protocol::Operation;
use zedops_protocol::Role;
use zedops_testkit::{TestAgent, TestContainers, TestNats, TestPki, TestPostgres, TestRelay};

/// The tests of this file one at a time: each runs two relays, HAProxy and an agent moving
/// between the relays, and two at once on a loaded machine slowed the agent's reconnection past
/// what the drain test allows (about one run in ten).
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// An app's connection through `proxy`, trusting the test CA.
async fn connect(proxy: &TestHaproxy, token: &str, ca: &std::path::Path) -> Result<Client, String> {
    Client::connect(ConnectOptions {
        relay: proxy.url(),
        token: token.to_string(),
        ca_file: Some(ca.to_path_buf()),
        insecure: false,
    })
    .await
    .map_err(|e| e.to_string())
}

/// Whether `client` lists agent `name` online and lists its containers.
async fn reaches(client: &Client, name: &str) -> Result<(), String> {
    let agents = client.agents().await.map_err(|e| e.to_string())?;
    if !agents.iter().any(|a| a.name == name && a.online) {
        return Err(format!("{name} is not listed online"));
    }
    client
        .containers(name)
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// Two relay processes behind HAProxy (the configuration as shipped) on one PostgreSQL and
/// NATS, and a relay outside HAProxy, in this process, that makes the users and tokens (the
/// database is shared) and is never stopped.
struct Behind {
    nats: TestNats,
    control: TestRelay,
    relays: [RelayProcess; 2],
    pki: TestPki,
    proxy: TestHaproxy,
    _dir: tempfile::TempDir,
}

impl Behind {
    /// `extra`: more options for the relays' `serve`. None where a part is missing (outside CI).
    async fn start(extra: &[&str]) -> Option<Self> {
        zedops_testkit::require_docker().await?;
        let postgres = TestPostgres::shared()?;
        let nats = TestNats::start()?;
        let database = postgres.database();
        let control = relay_on(&database, &nats.url()).await;
        // The relays behind HAProxy trust its address for the clients' own (docs/CLUSTER.md).
        let mut options = vec!["--trusted-proxy", "127.0.0.1"];
        options.extend_from_slice(extra);
        let relays = [
            RelayProcess::start_with(&database, &nats.url(), &options).await,
            RelayProcess::start_with(&database, &nats.url(), &options).await,
        ];
        let dir = tempfile::tempdir().unwrap();
        let pki = TestPki::generate(dir.path());
        let proxy = TestHaproxy::start(&[&relays[0].addr, &relays[1].addr], &pki.cert, &pki.key)?;
        Some(Self {
            nats,
            control,
            relays,
            pki,
            proxy,
            _dir: dir,
        })
    }

    /// The real agent `name`, given only HAProxy's URL, and which of the two relays it is on.
    async fn agent(&self, name: &str) -> (TestAgent, usize) {
        let agent = TestAgent::builder(&self.control)
            .relays(&self.proxy.url())
            .ca_file(&self.pki.ca_cert)
            .name(name)
            .spawn()
            .await;
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let here = [
                self.relays[0].agents_here().await,
                self.relays[1].agents_here().await,
            ];
            if let Some(holder) = here.iter().position(|&n| n == 1) {
                return (agent, holder);
            }
            assert!(
                Instant::now() < deadline,
                "the agent never connected through HAProxy; its log:\n{}",
                self.proxy.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// `n` apps through HAProxy, signed in as the admin whose device token is `token`, each
    /// reaching agent `name`.
    async fn apps(&self, token: &str, n: usize, name: &str) -> Vec<Client> {
        let mut apps = Vec::new();
        for _ in 0..n {
            let app = connect(&self.proxy, token, &self.pki.ca_cert)
                .await
                .expect("an app connects through HAProxy");
            wait_reaches(&app, name).await;
            apps.push(app);
        }
        apps
    }
}

#[tokio::test]
async fn through_haproxy_an_agent_and_apps_move_to_the_other_relay_when_theirs_is_killed() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let Some(mut cluster) = Behind::start(&[]).await else {
        return;
    };
    // Plain HTTP is sent to HTTPS.
    assert_eq!(
        http_status(&cluster.proxy.plain_addr, "/healthz").await,
        302,
        "{}",
        cluster.proxy.log()
    );
    let name = format!("behind-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let (_agent, holder) = cluster.agent(&name).await;
    let other = 1 - holder;

    // Three apps through HAProxy. It balances by least connections, so after the agent's one
    // connection the three land two on one relay and one beside the agent: one app must move.
    let token = cluster.control.login("behind-admin", Role::Admin).await;
    let mut apps: Vec<_> = cluster
        .apps(&token, 3, &name)
        .await
        .into_iter()
        .map(|app| {
            let events = app.events();
            (app, events)
        })
        .collect();
    let Behind {
        nats,
        relays,
        pki,
        proxy,
        ..
    } = &mut cluster;

    // The agent's relay dies with no goodbye.
    relays[holder].kill();
    let killed = Instant::now();
    let deadline = killed + Duration::from_secs(30);
    for (n, (app, _)) in apps.iter().enumerate() {
        loop {
            match reaches(app, &name).await {
                Ok(()) => break,
                Err(e) => assert!(
                    Instant::now() < deadline,
                    "app {n} does not reach the agent again within 30 s of the kill: {e}; HAProxy's log:\n{}",
                    proxy.log()
                ),
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let back = killed.elapsed();
    assert_eq!(
        relays[other].agents_here().await,
        1,
        "the agent is on the other relay"
    );
    // The app that was beside the agent lost its connection and made a new one through
    // HAProxy; the others kept theirs.
    let mut moved = 0;
    for (app, events) in &mut apps {
        let mut seen = Vec::new();
        while let Ok(event) = events.try_recv() {
            seen.push(event);
        }
        let dropped = seen
            .iter()
            .any(|e| matches!(e, ClientEvent::Disconnected { .. }));
        if dropped {
            assert!(
                seen.iter().any(|e| matches!(e, ClientEvent::Connected)),
                "{seen:?}"
            );
            moved += 1;
        }
        assert!(app.is_connected());
    }
    assert_eq!(moved, 1, "exactly the app beside the agent moved");
    eprintln!("{back:?} after the kill, the agent and the apps were answered through HAProxy");

    // HAProxy's health check is /readyz: NATS stops, the remaining relay stays alive (/healthz
    // 200) but is not ready, and HAProxy stops sending it new connections, while the ones it has
    // keep working (the agent is on that relay: no NATS needed).
    let ready_relay = &relays[other];
    nats.stop();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let refused = connect(proxy, &token, &pki.ca_cert).await.err();
        if refused.is_some() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "HAProxy still sends new connections to a relay whose /readyz fails; its log:\n{}",
            proxy.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (healthz, _) = http_get(&ready_relay.addr, "/healthz").await;
    assert_eq!(healthz, 200, "the relay is alive");
    assert_eq!(http_status(&ready_relay.addr, "/readyz").await, 503);
    assert!(
        proxy.log().contains("503"),
        "HAProxy's log names the failed check: {}",
        proxy.log()
    );
    for (n, (app, _)) in apps.iter().enumerate() {
        reaches(app, &name)
            .await
            .unwrap_or_else(|e| panic!("app {n} lost its connection while NATS was down: {e}"));
    }
    // NATS is back: the relay is ready again and HAProxy takes it back.
    nats.resume();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match connect(proxy, &token, &pki.ca_cert).await {
            Ok(app) => {
                reaches(&app, &name)
                    .await
                    .expect("a new app reaches the agent");
                break;
            }
            Err(e) => assert!(
                Instant::now() < deadline,
                "HAProxy did not take the relay back once ready: {e}; its log:\n{}",
                proxy.log()
            ),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Upgrading one relay at a time behind HAProxy (docs/CLUSTER.md): the relay holding the agent
/// is stopped with SIGTERM. It drains: two stops in flight, one asked on that relay and a longer
/// one on the other (crossing over NATS), both finish and are answered; its agent and the apps are
/// sent elsewhere and come back through HAProxy on the other relay (HAProxy takes the
/// draining relay out of the pool: its `/readyz` fails); it exits cleanly. Requests an app on
/// the other relay makes meanwhile wait for the agent to arrive, and none fails.
#[tokio::test]
async fn through_haproxy_a_relay_drained_with_sigterm_finishes_its_requests_and_hands_everyone_over()
 {
    let _turn = ONE_AT_A_TIME.lock().await;
    let Some(mut cluster) = Behind::start(&["--drain-timeout", "20s"]).await else {
        return;
    };
    let docker = zedops_testkit::require_docker()
        .await
        .expect("checked above");
    // Two containers slow to stop (they wait after SIGTERM): the one stopped through the other
    // relay takes longest, so the drain must wait for a request it did not get from a client
    // of its own.
    let mut containers = TestContainers::new(&docker);
    let mut slow = Vec::new();
    for (suffix, secs) in [("slow-here", 1), ("slow-across", 4)] {
        let trap = format!("trap 'echo stopping; sleep {secs}; exit 0' TERM; sleep 100000 & wait");
        slow.push(
            containers
                .create(suffix, &["/bin/sh", "-c", &trap], true)
                .await,
        );
    }
    let name = format!(
        "drained-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );
    let (_agent, holder) = cluster.agent(&name).await;
    let other = 1 - holder;
    let token = cluster.control.login("drain-admin", Role::Admin).await;
    let apps = cluster.apps(&token, 3, &name).await;
    let Behind { relays, proxy, .. } = &mut cluster;
    // Beside them, an app on each relay itself, to ask the stops on a known relay.
    let mut direct = Vec::new();
    for relay in relays.iter() {
        let app = Client::connect(ConnectOptions {
            relay: relay.url.clone(),
            token: token.clone(),
            ca_file: None,
            insecure: false,
        })
        .await
        .expect("an app connects to the relay");
        wait_reaches(&app, &name).await;
        direct.push(app);
    }
    let stops: Vec<_> = [holder, other]
        .into_iter()
        .zip(slow.clone())
        .map(|(on, container)| {
            let (app, agent) = (direct[on].clone(), name.clone());
            tokio::spawn(async move { app.action(&agent, &container, Operation::Stop).await })
        })
        .collect();
    // Both stops have reached Docker (the containers got their SIGTERM; they take 1 s and 4 s
    // more to exit).
    for container in &slow {
        containers.wait_log(container, "stopping").await;
    }
    relays[holder].terminate();
    let stopped = Instant::now();
    // Meanwhile an app on the other relay keeps asking for the agent's containers: while the
    // agent moves its requests wait for it, and none fails.
    let asking = Arc::new(AtomicBool::new(true));
    let asker = {
        let (app, agent, asking) = (direct[other].clone(), name.clone(), asking.clone());
        tokio::spawn(async move {
            let mut answered = 0;
            while asking.load(Ordering::Relaxed) {
                app.containers(&agent).await.map_err(|e| e.to_string())?;
                answered += 1;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Ok::<usize, String>(answered)
        })
    };
    for (stop, on) in stops
        .into_iter()
        .zip(["the draining relay", "the other relay"])
    {
        let answer = stop.await.unwrap();
        assert!(
            answer.is_ok(),
            "a stop asked on {on}, in flight when the drain began, was not answered: {answer:?}\nthe drained relay's log:\n{}",
            relays[holder].log()
        );
    }
    for container in &slow {
        assert_eq!(containers.state(container).await, "exited");
    }

    let status = relays[holder]
        .exited(Duration::from_secs(30))
        .await
        .expect("the drained relay exits within its drain bound");
    assert!(status.success(), "{status:?}\n{}", relays[holder].log());
    assert!(relays[holder].log().contains("draining"));

    let deadline = stopped + Duration::from_secs(30);
    for (n, app) in apps.iter().chain(&direct[other..=other]).enumerate() {
        while let Err(e) = reaches(app, &name).await {
            assert!(
                Instant::now() < deadline,
                "app {n} does not reach the agent again within 30 s of the SIGTERM: {e}; HAProxy's log:\n{}",
                proxy.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    assert_eq!(
        relays[other].agents_here().await,
        1,
        "the agent is on the other relay"
    );
    asking.store(false, Ordering::Relaxed);
    let answered = asker.await.unwrap().unwrap_or_else(|e| {
        panic!("a request on the other relay failed while the agent moved: {e}")
    });
    assert!(answered > 0);
    eprintln!(
        "{:?} after the SIGTERM, the agent and the apps were answered through HAProxy",
        stopped.elapsed()
    );
}

/// Waits up to 10 s until `app` reaches agent `name`.
async fn wait_reaches(app: &Client, name: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while let Err(e) = reaches(app, name).await {
        assert!(
            Instant::now() < deadline,
            "an app does not reach the agent: {e}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

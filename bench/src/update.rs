//! Downtime of one container update: a web server (busybox `httpd`) published on a loopback
//! port is updated through client → relay → agent (`container.update`, forced so the same image
//! is recreated each round), beside the hand-run sequence of the same thing (`docker stop`,
//! `docker rm`, `docker create` + `start` of the same configuration, through bollard), each
//! watched by a prober that sends an HTTP request every 5 ms. Downtime is the longest gap
//! between two answered requests. Once without a health check and once with a 1-second one,
//! alternating the two paths in one run.

use std::time::{Duration, Instant};

use bollard::models::{ContainerCreateBody, HealthConfig, HostConfig, PortBinding};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, CreateImageOptionsBuilder, RemoveContainerOptionsBuilder,
    StartContainerOptions, StopContainerOptions,
};
use futures_util::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;
use zedops_client::UpdateOptions;
use zedops_protocol::Role;
use zedops_testkit::free_port;
use zedops_testkit::registry::TestRegistry;
use zedops_testkit::{TestAgent, TestRelay, require_docker};

use crate::stats::{ms, percentile};

/// How often the prober asks.
const PROBE_EVERY: Duration = Duration::from_millis(5);

pub async fn run(rounds: usize) -> anyhow::Result<()> {
    let docker = require_docker()
        .await
        .ok_or_else(|| anyhow::anyhow!("a Docker engine is needed"))?;
    let registry = TestRegistry::start()
        .await
        .ok_or_else(|| anyhow::anyhow!("docker-registry is needed"))?;
    let image = registry
        .push_test_image(&docker, "zedops/bench-update", "1")
        .await;
    let options = CreateImageOptionsBuilder::new().from_image(&image).build();
    let mut pull = docker.create_image(Some(options), None, None);
    while let Some(step) = pull.next().await {
        step?;
    }
    let relay = TestRelay::builder().start().await;
    let agent = TestAgent::builder(&relay).name("bench").online().await;
    let operator = relay.client("bench-operator", Role::Operator).await;
    for health in [false, true] {
        let (mut through, mut by_hand) = (Vec::new(), Vec::new());
        for round in 0..rounds + 1 {
            let zedops = async {
                let name = format!("zt-bench-update-z{round}");
                let port = free_port();
                start(&docker, &name, &body(&image, port, health)).await?;
                let (stop, probing) = probe(port);
                let started = Instant::now();
                let mut stream = operator
                    .update_container(
                        "bench",
                        &name,
                        UpdateOptions {
                            force: true,
                            stable_secs: Some(1),
                            ..UpdateOptions::default()
                        },
                    )
                    .await?;
                let mut ended = None;
                while let Some(frame) = stream.next().await {
                    if let Some(end) = frame?.end {
                        ended = Some(end);
                    }
                }
                let end = ended.ok_or_else(|| anyhow::anyhow!("the update did not end"))?;
                anyhow::ensure!(end.error_code.is_none(), "update failed: {}", end.reason);
                let total = started.elapsed();
                let _ = stop.send(true);
                let gap = probing.await??;
                remove(&docker, &name).await;
                anyhow::Ok((gap, total))
            };
            let hand = async {
                let name = format!("zt-bench-update-h{round}");
                let port = free_port();
                let body = body(&image, port, health);
                start(&docker, &name, &body).await?;
                let (stop, probing) = probe(port);
                let started = Instant::now();
                docker
                    .stop_container(&name, None::<StopContainerOptions>)
                    .await?;
                docker
                    .remove_container(
                        &name,
                        None::<bollard::query_parameters::RemoveContainerOptions>,
                    )
                    .await?;
                start(&docker, &name, &body).await?;
                wait_serving(port).await;
                let total = started.elapsed();
                let _ = stop.send(true);
                let gap = probing.await??;
                remove(&docker, &name).await;
                anyhow::Ok((gap, total))
            };
            // Alternate which goes first; the first round warms both and is not kept.
            let (z, h) = if round % 2 == 0 {
                (zedops.await?, hand.await?)
            } else {
                let h = hand.await?;
                (zedops.await?, h)
            };
            if round >= 1 {
                through.push(z.0);
                by_hand.push(h.0);
            }
        }
        let (z50, h50) = (
            percentile(&mut through, 50.0),
            percentile(&mut by_hand, 50.0),
        );
        let (zmax, hmax) = (
            percentile(&mut through, 100.0),
            percentile(&mut by_hand, 100.0),
        );
        println!(
            "downtime of one update, {}, {} rounds each, alternating",
            if health {
                "1-second health check"
            } else {
                "no health check"
            },
            through.len()
        );
        println!(
            "  zedops update (client → relay → agent): p50 {}, max {}",
            ms(z50),
            ms(zmax)
        );
        println!(
            "  docker stop; rm; create + start:        p50 {}, max {}",
            ms(h50),
            ms(hmax)
        );
        let extra = z50.saturating_sub(h50);
        println!(
            "  ZedOps adds {} at p50 (target <= 1000 ms: {})",
            ms(extra),
            crate::stats::verdict(extra <= Duration::from_secs(1))
        );
    }
    agent.stop().await?;
    Ok(())
}

/// busybox `httpd` on port 8080 published on `127.0.0.1:port`; stopped with SIGKILL (busybox
/// as PID 1 ignores SIGTERM, which would make both sides wait out Docker's 10 s grace).
fn body(image: &str, port: u16, health: bool) -> ContainerCreateBody {
    ContainerCreateBody {
        image: Some(image.into()),
        cmd: Some(vec![
            "httpd".into(),
            "-f".into(),
            "-p".into(),
            "8080".into(),
        ]),
        stop_signal: Some("SIGKILL".into()),
        exposed_ports: Some([("8080/tcp".to_string(), Default::default())].into()),
        labels: Some([("zedops-test".to_string(), "1".to_string())].into()),
        healthcheck: health.then(|| HealthConfig {
            test: Some(vec!["CMD".into(), "true".into()]),
            interval: Some(1_000_000_000),
            timeout: Some(1_000_000_000),
            retries: Some(1),
            ..Default::default()
        }),
        host_config: Some(HostConfig {
            port_bindings: Some(
                [(
                    "8080/tcp".to_string(),
                    Some(vec![PortBinding {
                        host_ip: Some("127.0.0.1".into()),
                        host_port: Some(port.to_string()),
                    }]),
                )]
                .into(),
            ),
            ..Default::default()
        }),
        ..Default::default()
    }
}

async fn start(
    docker: &bollard::Docker,
    name: &str,
    body: &ContainerCreateBody,
) -> anyhow::Result<()> {
    let options = CreateContainerOptionsBuilder::new().name(name).build();
    docker.create_container(Some(options), body.clone()).await?;
    docker
        .start_container(name, None::<StartContainerOptions>)
        .await?;
    Ok(())
}

async fn remove(docker: &bollard::Docker, name: &str) {
    let options = RemoveContainerOptionsBuilder::new().force(true).build();
    let _ = docker.remove_container(name, Some(options)).await;
}

/// One HTTP request to `127.0.0.1:port`: true when an HTTP answer came back.
async fn ask(port: u16) -> bool {
    let attempt = async {
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
        stream.write_all(b"GET / HTTP/1.0\r\n\r\n").await?;
        let mut head = [0u8; 5];
        stream.read_exact(&mut head).await?;
        std::io::Result::Ok(&head == b"HTTP/")
    };
    matches!(
        tokio::time::timeout(Duration::from_millis(200), attempt).await,
        Ok(Ok(true))
    )
}

async fn wait_serving(port: u16) {
    while !ask(port).await {
        tokio::time::sleep(PROBE_EVERY).await;
    }
}

/// Asks every [`PROBE_EVERY`] until told to stop (and then until answered again); the longest
/// time between two answers.
fn probe(
    port: u16,
) -> (
    watch::Sender<bool>,
    tokio::task::JoinHandle<anyhow::Result<Duration>>,
) {
    let (stop, mut stopped) = watch::channel(false);
    let task = tokio::spawn(async move {
        wait_serving(port).await;
        let mut last_ok = Instant::now();
        let mut longest = Duration::ZERO;
        loop {
            let ok = ask(port).await;
            let now = Instant::now();
            if ok {
                longest = longest.max(now - last_ok);
                last_ok = now;
                if *stopped.borrow_and_update() {
                    return Ok(longest);
                }
            } else if now - last_ok > Duration::from_secs(120) {
                anyhow::bail!("port {port} did not answer for 2 minutes");
            }
            tokio::time::sleep(PROBE_EVERY).await;
        }
    });
    (stop, task)
}

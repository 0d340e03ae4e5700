//! Listing containers through the whole pipeline (client library → relay → agent → Docker)
//! against the same list straight through bollard, alternating the two in one run.

use std::time::{Duration, Instant};

use bollard::query_parameters::ListContainersOptions;
use zedops_protocol::Role;
use zedops_testkit::{TestAgent, TestContainers, TestRelay, require_docker};

use crate::stats::{ms, percentile};

pub async fn run(count: usize, rounds: usize) -> anyhow::Result<()> {
    let docker = require_docker()
        .await
        .ok_or_else(|| anyhow::anyhow!("a Docker engine is needed"))?;
    let mut containers = TestContainers::new(&docker);
    // Created, not started: a list costs Docker the same, and 100 idle processes are not needed.
    for i in 0..count {
        containers.created_sleeper(&format!("b{i}")).await;
    }
    let relay = TestRelay::builder().start().await;
    let agent = TestAgent::builder(&relay).name("bench").online().await;
    let client = relay.client("bench", Role::Viewer).await;

    let options = || {
        Some(ListContainersOptions {
            all: true,
            ..Default::default()
        })
    };
    let (mut through, mut direct) = (Vec::with_capacity(rounds), Vec::with_capacity(rounds));
    // Warm both paths (connections, caches) before measuring.
    for _ in 0..10 {
        client.containers("bench").await?;
        docker.list_containers(options()).await?;
    }
    for round in 0..rounds {
        let pipeline = || async {
            let start = Instant::now();
            let listed = client.containers("bench").await?;
            anyhow::ensure!(listed.len() >= count, "listed {} of {count}", listed.len());
            anyhow::Ok(start.elapsed())
        };
        let bollard = || async {
            let start = Instant::now();
            let listed = docker.list_containers(options()).await?;
            anyhow::ensure!(listed.len() >= count, "listed {} of {count}", listed.len());
            anyhow::Ok(start.elapsed())
        };
        // Alternate which goes first so neither always meets a warmer engine.
        if round % 2 == 0 {
            through.push(pipeline().await?);
            direct.push(bollard().await?);
        } else {
            direct.push(bollard().await?);
            through.push(pipeline().await?);
        }
    }
    report(count, &mut through, &mut direct);
    agent.stop().await?;
    Ok(())
}

fn report(count: usize, through: &mut [Duration], direct: &mut [Duration]) {
    let (t50, d50) = (percentile(through, 50.0), percentile(direct, 50.0));
    let (t99, d99) = (percentile(through, 99.0), percentile(direct, 99.0));
    println!(
        "list {count} containers, {} rounds each, alternating",
        through.len()
    );
    println!(
        "  client → relay → agent → Docker: p50 {}  p99 {}",
        ms(t50),
        ms(t99)
    );
    println!(
        "  bollard → Docker:                p50 {}  p99 {}",
        ms(d50),
        ms(d99)
    );
    let ratio = t50.as_secs_f64() / d50.as_secs_f64();
    println!(
        "  ratio p50 {ratio:.2}x (target <= 1.30x: {})  p99 {:.2}x",
        crate::stats::verdict(ratio <= 1.3),
        t99.as_secs_f64() / d99.as_secs_f64()
    );
}

//! Create-and-start from a template with the image present: client library → relay (template
//! resolved, audited) → agent (local policy, create, start) against the same specification
//! created and started straight through bollard (what `docker run -d` asks the engine, without
//! the CLI's own process start), alternating the two in one run. Each container is removed
//! (not timed) before the next round.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use bollard::models::{ContainerCreateBody, HostConfig, PortBinding};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, RemoveContainerOptionsBuilder, StartContainerOptions,
};
use zedops_protocol::{Role, TemplateBody};
use zedops_testkit::docker::TEST_IMAGE;
use zedops_testkit::{TestAgent, TestRelay, require_docker};

use crate::stats::{ms, percentile};

pub async fn run(rounds: usize) -> anyhow::Result<()> {
    let docker = require_docker()
        .await
        .ok_or_else(|| anyhow::anyhow!("a Docker engine is needed"))?;
    let relay = TestRelay::builder().start().await;
    let agent = TestAgent::builder(&relay).name("bench").online().await;
    let admin = relay.client("bench-admin", Role::Admin).await;
    let operator = relay.client("bench-operator", Role::Operator).await;
    let template: TemplateBody = serde_json::from_value(serde_json::json!({
        "name": "bench",
        "variables": {"GREETING": {"default": "hello"}},
        "spec": {
            "image": TEST_IMAGE,
            "cmd": ["sleep", "300"],
            "env": {"GREETING": "${GREETING}"},
            "ports": [{"container": 8080, "hostIp": "127.0.0.1"}],
            "labels": {"zedops-test": "1"},
            "resources": {"memoryBytes": 67108864},
            "restart": "unless-stopped",
        }
    }))?;
    let _ = admin.add_template(template).await?;
    let remove = |name: String| {
        let docker = docker.clone();
        async move {
            let options = RemoveContainerOptionsBuilder::new().force(true).build();
            let _ = docker.remove_container(&name, Some(options)).await;
        }
    };
    let (mut through, mut direct) = (Vec::with_capacity(rounds), Vec::with_capacity(rounds));
    for round in 0..rounds + 3 {
        let pipeline = || async {
            let name = format!("zt-bench-z{round}");
            let start = Instant::now();
            let mut stream = operator
                .deploy("bench", "bench", &name, BTreeMap::new(), true)
                .await?;
            let mut ended = None;
            while let Some(frame) = stream.next().await {
                if let Some(end) = frame?.end {
                    ended = Some(end);
                }
            }
            let elapsed = start.elapsed();
            let end = ended.ok_or_else(|| anyhow::anyhow!("the deploy did not end"))?;
            anyhow::ensure!(end.error_code.is_none(), "deploy failed: {}", end.reason);
            remove(name).await;
            anyhow::Ok(elapsed)
        };
        let bollard = || async {
            let name = format!("zt-bench-d{round}");
            let start = Instant::now();
            let body = ContainerCreateBody {
                image: Some(TEST_IMAGE.into()),
                cmd: Some(vec!["sleep".into(), "300".into()]),
                env: Some(vec!["GREETING=hello".into()]),
                exposed_ports: Some([("8080/tcp".to_string(), Default::default())].into()),
                labels: Some([("zedops-test".to_string(), "1".to_string())].into()),
                host_config: Some(HostConfig {
                    memory: Some(67108864),
                    port_bindings: Some(
                        [(
                            "8080/tcp".to_string(),
                            Some(vec![PortBinding {
                                host_ip: Some("127.0.0.1".into()),
                                host_port: Some(String::new()),
                            }]),
                        )]
                        .into(),
                    ),
                    ..Default::default()
                }),
                ..Default::default()
            };
            let options = CreateContainerOptionsBuilder::new().name(&name).build();
            docker.create_container(Some(options), body).await?;
            docker
                .start_container(&name, None::<StartContainerOptions>)
                .await?;
            let elapsed = start.elapsed();
            remove(name).await;
            anyhow::Ok(elapsed)
        };
        // Alternate which goes first; the first three rounds warm both paths and are not kept.
        let (t, d) = if round % 2 == 0 {
            (pipeline().await?, bollard().await?)
        } else {
            let d = bollard().await?;
            (pipeline().await?, d)
        };
        if round >= 3 {
            through.push(t);
            direct.push(d);
        }
    }
    report(&mut through, &mut direct);
    agent.stop().await?;
    Ok(())
}

fn report(through: &mut [Duration], direct: &mut [Duration]) {
    let (t50, d50) = (percentile(through, 50.0), percentile(direct, 50.0));
    println!(
        "create and start from a template, image present, {} rounds each, alternating",
        through.len()
    );
    println!("  client → relay → agent → Docker: p50 {}", ms(t50));
    println!("  bollard create + start:          p50 {}", ms(d50));
    let ratio = t50.as_secs_f64() / d50.as_secs_f64();
    println!(
        "  ratio p50 {ratio:.2}x (target <= 1.20x: {})",
        crate::stats::verdict(ratio <= 1.2)
    );
}

//! Cancelling a pull stops Docker's pull: a real relay and agent, the loopback registry behind
//! a throttling proxy (so the pull takes long enough to cancel), the client cancels its stream
//! after the first bytes. The agent drops its bollard stream, which closes its connection to
//! the engine; Docker (20.10 here) then cancels the pull's context and stops downloading: the
//! bytes through the proxy stop well short of the layer and the image is not on the engine.

use std::sync::atomic::Ordering;
use std::time::Duration;

use zedops_protocol::Role;
use zedops_testkit::docker::Cleanup;
use zedops_testkit::registry::docker_and_registry;
use zedops_testkit::throttle::throttling_proxy;
use zedops_testkit::{TestAgent, TestRelay};

/// Bytes of random data in the image's own layer (incompressible, so gzip keeps it big).
const LAYER: usize = 24 * 1024 * 1024;
/// What the proxy lets through from the registry, per second.
const RATE: u64 = 2 * 1024 * 1024;

#[tokio::test]
async fn a_cancelled_pull_stops_dockers_download() {
    let Some((docker, registry)) = docker_and_registry().await else {
        return;
    };
    let mut cleanup = Cleanup::new("zpc");
    let repo = format!("zedops/{}", cleanup.prefix);
    let pushed = registry.push_unique_image(&docker, &repo, "1", LAYER).await;
    let (proxy, through) = throttling_proxy(registry.port(), RATE).await;
    // The same repository through the proxy (the registry does not care about the host name).
    let image = pushed.replace(&registry.host(), &format!("127.0.0.1:{proxy}"));
    cleanup.images.push(image.clone());

    let relay = TestRelay::builder().start().await;
    let _agent = TestAgent::builder(&relay).name("puller").online().await;
    let operator = relay.client("otto", Role::Operator).await;

    let mut stream = operator.pull("puller", &image).await.expect("pull opened");
    // Cancel once bytes of the layer flow.
    let started = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(frame) = stream.next().await {
            let frame = frame.expect("a pull frame");
            assert!(
                frame.end.is_none(),
                "the pull ended before it was cancelled: {frame:?}"
            );
            if frame.progress.is_some_and(|p| p.current > 0) {
                return;
            }
        }
        panic!("the stream ended without progress");
    });
    started.await.expect("progress within 60 s");
    let at_cancel = through.load(Ordering::Relaxed);
    stream.cancel();
    drop(stream);

    // Docker stops downloading: the count settles (the same over 2 s) well short of the layer.
    let mut last = through.load(Ordering::Relaxed);
    let mut settled = false;
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let now = through.load(Ordering::Relaxed);
        if now == last {
            settled = true;
            break;
        }
        last = now;
    }
    assert!(
        settled,
        "bytes kept flowing after the cancel ({last} so far)"
    );
    eprintln!("through the proxy: {at_cancel} bytes at the cancel, {last} in all (layer {LAYER})");
    assert!(
        last < (LAYER as u64) / 2,
        "Docker went on downloading after the cancel: {last} bytes of {LAYER} (at cancel {at_cancel})"
    );
    assert!(
        docker.inspect_image(&image).await.is_err(),
        "the cancelled image is on the engine"
    );

    // The agent's pull slot was given back: the same pull, not cancelled, completes.
    let mut stream = operator.pull("puller", &pushed).await.expect("pull opened");
    cleanup.images.push(pushed.clone());
    let mut end = None;
    while let Some(frame) = stream.next().await {
        if let Some(e) = frame.expect("a pull frame").end {
            end = Some(e);
        }
    }
    let end = end.expect("an end frame");
    assert_eq!(end.error_code, None, "{}", end.reason);
}

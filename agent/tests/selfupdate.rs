//! Agent self-update against a real relay over real HTTP: what the agent checks before it
//! replaces anything (signature by a trusted key, the signed version and platform, size,
//! SHA-256, the update lock, downgrades), and the launcher with two real agent builds that
//! differ in version: an installed update starts in place of the packaged binary and connects
//! reporting its version, and a build that starts but never connects is reverted by the guard
//! within the deadline, after which the agent is back online on the old version.

use std::path::Path;
use std::time::Duration;

use update::{
    Admin, AgentProcess, NEVER_CONNECTS, Online, Relay, ReleaseKey, log_text, platform, publish,
    serve_build, sha256, wait_confirmed,
};
use zedops_agent::selfupdate::keys::TrustedKeys;
use zedops_agent::selfupdate::store::Store;
use zedops_agent::selfupdate::{DEFAULT_REVERT_AFTER, Updater};
use zedops_protocol::{AgentUpdateOrder, ErrorCode, ErrorReply};
use zedops_transport::RelayUrl;

mod update;

/// The agent's updater of data dir `data_dir`, fetching from `relay`, trusting the keys of
/// the `.pub` text `keys`, running version `current`.
fn updater(relay: &Relay, data_dir: &Path, keys: &str, current: &str) -> Updater {
    Updater {
        relay: RelayUrl::parse(&relay.url, false).unwrap(),
        tls: zedops_transport::client_config(None).unwrap(),
        data_dir: data_dir.to_path_buf(),
        keys: TrustedKeys::from_text(keys).unwrap(),
        revert_after: DEFAULT_REVERT_AFTER,
        current: current.to_string(),
        running_update: false,
    }
}

/// The relay's order to install `bytes` as `version` for this platform (its true hash and
/// size).
fn order(bytes: &[u8], version: &str) -> AgentUpdateOrder {
    AgentUpdateOrder {
        version: version.into(),
        platform: platform(),
        sha256: sha256(bytes),
        size: bytes.len() as u64,
        allow_downgrade: false,
    }
}

/// Applies `order` with `updater`, which must refuse it; the refusal must say `part`.
async fn refused(updater: Updater, order: &AgentUpdateOrder, part: &str) -> ErrorReply {
    let err = updater.apply(order).await.unwrap_err();
    assert!(err.error.contains(part), "not {part:?} in: {err}");
    err
}

/// Files in the data dir's update directory other than the lock, with their contents.
fn update_files(data_dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<_> = std::fs::read_dir(data_dir.join("update"))
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_name() != "lock")
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect();
    files.sort();
    files
}

#[tokio::test]
async fn a_build_is_installed_only_when_signed_announced_and_downloaded_exactly() {
    let key = ReleaseKey::generate();
    let other_key = ReleaseKey::generate();
    // Any bytes do as a build here: nothing runs it.
    let build: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let (downloads, relay) = serve_build(&key, &build, "0.99.0").await;
    let trusted = key.public_file();

    // Signed by another key: refused, nothing written.
    let data = tempfile::tempdir().unwrap();
    let err = refused(
        updater(&relay, data.path(), &other_key.public_file(), "0.1.0"),
        &order(&build, "0.99.0"),
        "not signed by a release key",
    )
    .await;
    assert_eq!(err.error_code, ErrorCode::UpdateRefused, "{err}");
    assert!(update_files(data.path()).is_empty());

    // An agent that trusts no key installs nothing.
    refused(
        updater(&relay, data.path(), "", "0.1.0"),
        &order(&build, "0.99.0"),
        "trusts no release key",
    )
    .await;

    // The relay announcing another version than the key signed (a replayed old build sold as
    // new, or the reverse): refused.
    let err = refused(
        updater(&relay, data.path(), &trusted, "0.1.0"),
        &order(&build, "1.0.0"),
        "zedops-agent 0.99.0",
    )
    .await;
    assert_eq!(err.error_code, ErrorCode::UpdateRefused, "{err}");

    // Not newer: refused unless a downgrade is allowed.
    refused(
        updater(&relay, data.path(), &trusted, "1.2.0"),
        &order(&build, "0.99.0"),
        "--allow-downgrade",
    )
    .await;
    assert!(update_files(data.path()).is_empty());

    // A wrong SHA-256 announced: refused after the download, which is discarded.
    let mut wrong = order(&build, "0.99.0");
    wrong.sha256 = sha256(b"something else");
    let err = refused(
        updater(&relay, data.path(), &trusted, "0.1.0"),
        &wrong,
        "SHA-256",
    )
    .await;
    assert_eq!(err.error_code, ErrorCode::UpdateRefused, "{err}");
    assert!(update_files(data.path()).is_empty());

    // A smaller size announced than served: the download stops at the bound.
    let mut short = order(&build, "0.99.0");
    short.size = 1000;
    refused(
        updater(&relay, data.path(), &trusted, "0.1.0"),
        &short,
        "more than the 1000",
    )
    .await;
    assert!(update_files(data.path()).is_empty());

    // Two updates at once: the second is refused by the lock.
    let store = Store::new(data.path());
    let lock = store.lock(Duration::from_secs(600)).unwrap();
    let err = updater(&relay, data.path(), &trusted, "0.1.0")
        .apply(&order(&build, "0.99.0"))
        .await
        .unwrap_err();
    assert_eq!(err.error_code, ErrorCode::UpdateInProgress, "{err}");
    drop(lock);

    // The good case: installed, executable, waiting for its first connection.
    let done = updater(&relay, data.path(), &trusted, "0.1.0")
        .apply(&order(&build, "0.99.0"))
        .await
        .unwrap();
    assert_eq!((done.from.as_str(), done.to.as_str()), ("0.1.0", "0.99.0"));
    assert_eq!(std::fs::read(store.build_path()).unwrap(), build);
    let installed = store.installed().unwrap();
    assert_eq!(installed.version, "0.99.0");
    assert!(!installed.confirmed);
    let before = update_files(data.path());
    // A refusal from here on leaves the installed build as it was.
    let refused_unchanged = async |order: AgentUpdateOrder, part: &str| {
        let err = refused(
            updater(&relay, data.path(), &trusted, "0.1.0"),
            &order,
            part,
        )
        .await;
        assert_eq!(update_files(data.path()), before, "something was replaced");
        err
    };

    // The relay serves a different binary than it announced (replaced on disk after it hashed
    // it at start): the SHA-256 catches it, and the installed build stays as it was.
    let mut forged = build.clone();
    forged[1000] ^= 0xff;
    publish(
        downloads.path(),
        &forged,
        &key.sign(&build, "0.99.0", &platform()),
    );
    refused_unchanged(order(&build, "0.99.0"), "SHA-256").await;

    // Even with the forged file's own SHA-256 and size announced, the signature refuses it.
    refused_unchanged(order(&forged, "0.99.0"), "signature does not match").await;

    // A truncated download (the file cut short after the relay announced it): refused.
    publish(
        downloads.path(),
        &build[..150_000],
        &key.sign(&build, "0.99.0", &platform()),
    );
    let err = refused_unchanged(order(&build, "0.99.0"), "150000 bytes").await;
    assert_eq!(err.error_code, ErrorCode::UpdateRefused, "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_launcher_runs_a_newer_build_and_the_guard_reverts_one_that_cannot_connect() {
    let online = Online::start("updater").await;
    let packaged = env!("CARGO_PKG_VERSION");

    // The update as agent.update installs it, then the restart systemd would do.
    let store = Store::new(&online.data);
    updater(
        &online.relay,
        &online.data,
        &online.key.public_file(),
        packaged,
    )
    .apply(&order(&online.new, "0.99.0"))
    .await
    .unwrap();
    let before = online.relay.connection(&online.id);
    online.agent.stop().await;
    let agent = AgentProcess::spawn(&online.site, &online.relay, "updater", None, &online.data);
    online
        .relay
        .wait_version(before, "0.99.0", Duration::from_secs(60))
        .await;
    wait_confirmed(&online.data).await;

    // A build that starts but never connects, properly signed: the guard puts 0.99.0 back
    // within the deadline (5 s here) and kills it; started again (as systemd does after the
    // kill), the agent is back online on 0.99.0.
    // (A relay reads signatures at start: this one serves only the broken build.)
    let (_broken_downloads, broken_relay) =
        serve_build(&online.key, NEVER_CONNECTS, "0.99.1").await;
    let mut next = updater(
        &broken_relay,
        &online.data,
        &online.key.public_file(),
        "0.99.0",
    );
    next.running_update = true;
    next.revert_after = Duration::from_secs(5);
    next.apply(&order(NEVER_CONNECTS, "0.99.1")).await.unwrap();
    let before = online.relay.connection(&online.id);
    agent.stop().await;
    let started = tokio::time::Instant::now();
    let mut agent = AgentProcess::spawn(&online.site, &online.relay, "updater", None, &online.data);
    let status = tokio::time::timeout(Duration::from_secs(20), agent.child.wait())
        .await
        .unwrap_or_else(|_| {
            panic!(
                "the build that cannot connect is still running after 20 s: {}",
                log_text(&online.data)
            )
        })
        .unwrap();
    let took = started.elapsed();
    assert!(!status.success(), "{status:?}");
    assert!(
        took >= Duration::from_secs(4) && took < Duration::from_secs(12),
        "reverted after {took:?}, the deadline was 5 s"
    );
    let rollback = store.rollback().expect("the revert is recorded");
    assert_eq!(rollback.version, "0.99.1");
    assert!(
        rollback.reason.contains("did not connect"),
        "{}",
        rollback.reason
    );
    assert_eq!(std::fs::read(store.build_path()).unwrap(), online.new);
    let agent = AgentProcess::spawn(&online.site, &online.relay, "updater", None, &online.data);
    online
        .relay
        .wait_version(before, "0.99.0", Duration::from_secs(60))
        .await;
    assert!(
        log_text(&online.data).contains("reverted the agent update"),
        "{}",
        log_text(&online.data)
    );
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_update_over_the_relay_restarts_the_agent_in_place_on_the_new_build() {
    let mut online = Online::start("updater").await;
    let before = online.relay.connection(&online.id);

    let mut admin = Admin::connect(&online.relay).await;
    let answer = admin.update("updater").await;
    assert_eq!(
        answer["agentId"],
        online.id.as_str(),
        "{answer} {}",
        log_text(&online.data)
    );
    assert_eq!(answer["from"], env!("CARGO_PKG_VERSION"), "{answer}");
    assert_eq!(answer["to"], "0.99.0", "{answer}");
    assert_eq!(answer["revertAfterSecs"], 5, "{answer}");
    // Not under systemd: the agent replaced itself (same process) and came back on 0.99.0.
    online
        .relay
        .wait_version(before, "0.99.0", Duration::from_secs(60))
        .await;
    assert!(
        online.agent.child.try_wait().unwrap().is_none(),
        "the agent process ended instead of restarting in place: {}",
        log_text(&online.data)
    );
    wait_confirmed(&online.data).await;

    // Asked again, the agent (now 0.99.0) refuses: not newer.
    let answer = admin.update("updater").await;
    assert_eq!(answer["errorCode"], "UPDATE_REFUSED", "{answer}");
    assert!(
        answer["error"].as_str().unwrap().contains("not newer"),
        "{answer}"
    );

    // Both are in the audit log, with the versions.
    let audit = online.relay.store.audit_list(None, None, 50).await.unwrap();
    let updates: Vec<_> = audit
        .iter()
        .filter(|row| row.operation == "agent.update")
        .map(|row| (row.result.as_str(), row.detail.clone().unwrap_or_default()))
        .collect();
    assert_eq!(
        updates,
        vec![
            ("failed", "0.99.0".to_string()),
            ("ok", format!("{} -> 0.99.0", env!("CARGO_PKG_VERSION"))),
        ]
    );
    online.agent.stop().await;
}

#[tokio::test]
async fn an_agent_and_a_client_of_the_previous_protocol_are_served_and_agent_update_is_refused_for_the_agent()
 {
    use zedops_protocol::{
        AgentInfo, AgentRegister, AgentWelcome, MIN_PROTOCOL_VERSION, PROTOCOL_VERSION, subject,
    };
    assert_eq!(MIN_PROTOCOL_VERSION, PROTOCOL_VERSION - 1);
    let key = ReleaseKey::generate();
    let (_downloads, relay) = serve_build(&key, b"any build", "0.99.0").await;
    let token = relay.registration_token().await;

    // An agent that speaks the previous protocol (as 0.1.0 did): enrolled, answered in its
    // version.
    let url = RelayUrl::parse(&relay.url, false).unwrap();
    let (mut writer, mut reader) = zedops_transport::connect(
        &url.ws("/ws/agent"),
        zedops_transport::client_config(None).unwrap(),
    )
    .await
    .unwrap();
    let welcome: AgentWelcome = zedops_transport::hello(
        &mut writer,
        &mut reader,
        subject::AGENT_REGISTER,
        &AgentRegister {
            protocol_version: MIN_PROTOCOL_VERSION,
            registration_token: token,
            name: "old-agent".into(),
            info: AgentInfo {
                version: "0.1.0".into(),
                os: std::env::consts::OS.into(),
                arch: std::env::consts::ARCH.into(),
                ..Default::default()
            },
        },
        subject::AGENT_WELCOME,
    )
    .await
    .unwrap();
    assert_eq!(welcome.protocol_version, MIN_PROTOCOL_VERSION);

    // A client of the previous protocol signs in too, and the update it asks for is refused
    // at the relay with UNSUPPORTED: the old agent is never sent a subject it does not know.
    let mut admin = Admin::connect_as(&relay, "old-client", MIN_PROTOCOL_VERSION).await;
    let answer = admin.update("old-agent").await;
    assert_eq!(answer["errorCode"], "UNSUPPORTED", "{answer}");
    assert!(
        answer["error"]
            .as_str()
            .unwrap()
            .contains(&format!("speaks protocol {MIN_PROTOCOL_VERSION}")),
        "{answer}"
    );
    if let Ok(Some(frame)) = reader.recv_timeout(Duration::from_millis(500)).await {
        panic!("the old agent was sent {}", frame.subject);
    }
    let audit = relay.store.audit_list(None, None, 10).await.unwrap();
    assert!(
        audit.iter().any(|row| row.operation == "agent.update"
            && row.error_code.as_deref() == Some("UNSUPPORTED")),
        "the refusal is not audited"
    );
}

//! Console sessions and files end to end: the client library, a real relay and an agent against
//! the real engine. Exec output and exit codes, stdin through `cat` (binary, with SHA-256),
//! flow control through the relay, a file round trip, the roles (operators may not exec, viewers
//! none of it) and the audit of exec and uploads.

use std::time::Duration;

use sha2::{Digest, Sha256};
use zedops_client::Client;
use zedops_client::console::ConsoleSession;
use zedops_protocol::{
    AttachRequest, ConsoleStream, ExecRequest, FileGetRequest, FilePutRequest,
    MAX_CONSOLE_CHUNK_BYTES, Role, StreamInput, encode_bytes,
};
use zedops_testkit::{TestAgent, TestContainers, TestRelay, require_docker};

mod support;

const WAIT: Duration = Duration::from_secs(30);

fn exec(container: &str, cmd: &[&str], stdin: bool) -> ExecRequest {
    ExecRequest {
        agent_id: "console-1".into(),
        container_id: container.into(),
        cmd: cmd.iter().map(|s| s.to_string()).collect(),
        tty: false,
        stdin,
        env: vec![],
        working_dir: None,
        size: None,
        window: None,
    }
}

/// Runs a session to its end, writing `input` within the agent's credit and granting output
/// back as it is read; stdout, stderr and the exit code.
async fn run(
    session: &mut ConsoleSession,
    input: Option<&[u8]>,
) -> (Vec<u8>, Vec<u8>, Option<i64>) {
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let mut credit = 0u64;
    let mut rest = input.unwrap_or_default();
    let mut eof_sent = input.is_none();
    loop {
        while !eof_sent && (credit > 0 || rest.is_empty()) {
            let n = rest.len().min(MAX_CONSOLE_CHUNK_BYTES).min(credit as usize);
            credit -= n as u64;
            eof_sent = n == rest.len();
            session
                .input(StreamInput {
                    data: (n > 0).then(|| encode_bytes(&rest[..n])),
                    eof: eof_sent,
                    ..Default::default()
                })
                .await
                .unwrap();
            rest = &rest[n..];
        }
        let frame = tokio::time::timeout(WAIT, session.next())
            .await
            .expect("a frame within 30 s")
            .expect("open")
            .expect("readable");
        if let Some(started) = &frame.started {
            credit += u64::from(started.window);
        }
        credit += u64::from(frame.grant);
        let bytes = frame.bytes().unwrap();
        if !bytes.is_empty() {
            session
                .input(StreamInput {
                    grant: bytes.len() as u32,
                    ..Default::default()
                })
                .await
                .unwrap();
            match frame.stream {
                Some(ConsoleStream::Stderr) => err.extend(bytes),
                _ => out.extend(bytes),
            }
        }
        if let Some(end) = frame.end {
            assert_eq!(end.error_code, None, "{}", end.reason);
            return (out, err, frame.exit.and_then(|e| e.code));
        }
    }
}

struct Setup {
    relay: TestRelay,
    admin: Client,
    container: String,
    _containers: TestContainers,
    _agent: TestAgent,
}

async fn setup() -> Option<Setup> {
    let docker = require_docker().await?;
    let mut containers = TestContainers::new(&docker);
    let container = containers.sleeper("console").await;
    let relay = TestRelay::builder().start().await;
    let agent = TestAgent::builder(&relay).name("console-1").online().await;
    let admin = relay.client("console-admin", Role::Admin).await;
    Some(Setup {
        relay,
        admin,
        container,
        _containers: containers,
        _agent: agent,
    })
}

#[tokio::test]
async fn exec_through_the_relay_keeps_bytes_exit_codes_and_order() {
    let Some(s) = setup().await else {
        return;
    };
    let mut echo = s
        .admin
        .exec(&exec(
            &s.container,
            &["sh", "-c", "echo hi; echo oops >&2; exit 3"],
            false,
        ))
        .await
        .unwrap();
    let (out, err, code) = run(&mut echo, None).await;
    assert_eq!(
        (out.as_slice(), err.as_slice(), code),
        (&b"hi\n"[..], &b"oops\n"[..], Some(3))
    );

    let mut missing = s
        .admin
        .exec(&exec(&s.container, &["sh", "-c", "no-such-command"], false))
        .await
        .unwrap();
    assert_eq!(run(&mut missing, None).await.2, Some(127));

    // 4 MiB of random bytes through cat: more than a window each way, so credit is granted
    // back and forth through the relay many times.
    let data: Vec<u8> = (0..4 * 1024 * 1024).map(|_| rand::random::<u8>()).collect();
    let mut cat = s
        .admin
        .exec(&exec(&s.container, &["cat"], true))
        .await
        .unwrap();
    let (out, _, code) = run(&mut cat, Some(&data)).await;
    assert_eq!(code, Some(0));
    assert_eq!(out.len(), data.len());
    assert_eq!(Sha256::digest(&out), Sha256::digest(&data));
}

#[tokio::test]
async fn files_round_trip_through_the_relay_and_roles_hold() {
    let Some(s) = setup().await else {
        return;
    };
    let text = b"MaxPlayers=16\n";
    let put = FilePutRequest {
        agent_id: "console-1".into(),
        container_id: s.container.clone(),
        path: "/etc/zedops-test.ini".into(),
        size: text.len() as u64,
        mode: None,
    };
    let mut upload = s.admin.file_put(&put).await.unwrap();
    let ready = upload.next().await.unwrap().unwrap();
    assert!(ready.grant as usize >= text.len());
    upload
        .input(StreamInput {
            data: Some(encode_bytes(text)),
            eof: true,
            ..Default::default()
        })
        .await
        .unwrap();
    let last = loop {
        let frame = upload.next().await.unwrap().unwrap();
        if frame.end.is_some() {
            break frame;
        }
    };
    assert_eq!(last.end.unwrap().error_code, None);

    let operator = s.relay.client("console-operator", Role::Operator).await;
    let get = FileGetRequest {
        agent_id: "console-1".into(),
        container_id: s.container.clone(),
        path: "/etc/zedops-test.ini".into(),
        window: None,
    };
    let mut download = operator.file_get(&get).await.unwrap();
    let mut bytes = Vec::new();
    loop {
        let frame = download.next().await.unwrap().unwrap();
        bytes.extend(frame.bytes().unwrap());
        if let Some(end) = frame.end {
            assert_eq!(end.error_code, None, "{}", end.reason);
            break;
        }
    }
    assert_eq!(bytes, text);

    // Operators may read files and attach, not exec or write; viewers none of it.
    let mut refused = operator
        .exec(&exec(&s.container, &["id"], false))
        .await
        .unwrap();
    let err = refused.next().await.unwrap().unwrap_err();
    assert_eq!(err.code(), "FORBIDDEN");
    let mut refused = operator.file_put(&put).await.unwrap();
    assert_eq!(
        refused.next().await.unwrap().unwrap_err().code(),
        "FORBIDDEN"
    );
    let viewer = s.relay.client("console-viewer", Role::Viewer).await;
    let attach = AttachRequest {
        agent_id: "console-1".into(),
        container_id: s.container.clone(),
        stdin: false,
        size: None,
        window: None,
    };
    let mut refused = viewer.attach(&attach).await.unwrap();
    assert_eq!(
        refused.next().await.unwrap().unwrap_err().code(),
        "FORBIDDEN"
    );
    let mut refused = viewer.file_get(&get).await.unwrap();
    assert_eq!(
        refused.next().await.unwrap().unwrap_err().code(),
        "FORBIDDEN"
    );

    // The upload and the refusals are on record, with the path and size.
    let audit = s
        .admin
        .request_raw("audit.list", serde_json::json!({"limit": 50}))
        .await
        .unwrap();
    let text = audit.to_string();
    assert!(
        text.contains("file.put")
            && text.contains("/etc/zedops-test.ini")
            && text.contains("14 bytes"),
        "{text}"
    );
    assert!(
        text.contains("container.exec") || text.contains("exec"),
        "{text}"
    );
}

#[tokio::test]
async fn the_cli_runs_commands_with_their_exit_codes_and_sends_console_lines() {
    let Some(s) = setup().await else {
        return;
    };
    let token = s.relay.login("console-cli", Role::Admin).await;
    let config = tempfile::tempdir().unwrap();
    let zedops = |args: &[&str], stdin: &str| {
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        let (url, token, dir) = (
            s.relay.url.clone(),
            token.clone(),
            config.path().to_path_buf(),
        );
        let stdin = stdin.to_string();
        async move {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            support::headless(&url, &token, &dir, &args, &stdin).await
        }
    };
    let c = s.container.as_str();
    let out = zedops(
        &[
            "exec",
            "--agent",
            "console-1",
            c,
            "--",
            "sh",
            "-c",
            "echo out; echo err >&2; exit 3",
        ],
        "",
    )
    .await;
    assert_eq!(out.status.code(), Some(3), "{}", support::text(&out.stderr));
    assert_eq!(
        (
            support::text(&out.stdout).as_str(),
            support::text(&out.stderr).as_str()
        ),
        ("out\n", "err\n")
    );
    let out = zedops(
        &[
            "exec",
            "--agent",
            "console-1",
            c,
            "--",
            "sh",
            "-c",
            "no-such-command",
        ],
        "",
    )
    .await;
    assert_eq!(out.status.code(), Some(127));
    let out = zedops(
        &["exec", "-i", "--agent", "console-1", c, "--", "cat"],
        "piped\nthrough cat\n",
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", support::text(&out.stderr));
    assert_eq!(support::text(&out.stdout), "piped\nthrough cat\n");
    // A container without an open stdin cannot take a console line: a clear refusal.
    let out = zedops(&["send", "--agent", "console-1", c, "save"], "").await;
    assert!(!out.status.success());
    assert!(
        support::text(&out.stderr).contains("OpenStdin"),
        "{}",
        support::text(&out.stderr)
    );
}

#[tokio::test]
async fn the_cli_lists_uploads_downloads_and_removes_files() {
    let Some(s) = setup().await else {
        return;
    };
    let token = s.relay.login("files-cli", Role::Admin).await;
    let config = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let zedops = |args: Vec<String>| {
        let (url, token, cfg) = (
            s.relay.url.clone(),
            token.clone(),
            config.path().to_path_buf(),
        );
        async move {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            support::headless(&url, &token, &cfg, &args, "").await
        }
    };
    let args = |list: &[&str]| list.iter().map(|a| a.to_string()).collect::<Vec<_>>();
    let c = s.container.as_str();
    // 3 MiB of random bytes up and back down.
    let data: Vec<u8> = (0..3 * 1024 * 1024).map(|_| rand::random::<u8>()).collect();
    let source = dir.path().join("up.bin");
    std::fs::write(&source, &data).unwrap();
    let out = zedops(args(&[
        "files",
        "mkdir",
        "--agent",
        "console-1",
        c,
        "/data",
    ]))
    .await;
    assert!(out.status.success(), "{}", support::text(&out.stderr));
    let out = zedops(args(&[
        "files",
        "put",
        "--agent",
        "console-1",
        c,
        source.to_str().unwrap(),
        "/data/save.bin",
    ]))
    .await;
    assert!(out.status.success(), "{}", support::text(&out.stderr));
    let dest = dir.path().join("down.bin");
    let out = zedops(args(&[
        "files",
        "get",
        "--agent",
        "console-1",
        c,
        "/data/save.bin",
        dest.to_str().unwrap(),
    ]))
    .await;
    assert!(out.status.success(), "{}", support::text(&out.stderr));
    assert_eq!(
        Sha256::digest(std::fs::read(&dest).unwrap()),
        Sha256::digest(&data)
    );
    let out = zedops(args(&["files", "ls", "--agent", "console-1", c, "/data"])).await;
    let listing = support::text(&out.stdout);
    assert!(
        listing.starts_with("-0644      3145728 ") && listing.trim_end().ends_with(" save.bin"),
        "{listing}"
    );
    let out = zedops(args(&["files", "ls", "--agent", "console-1", c, "/../etc"])).await;
    assert!(!out.status.success());
    assert!(
        support::text(&out.stderr).contains("PATH_OUTSIDE"),
        "{}",
        support::text(&out.stderr)
    );
    let out = zedops(args(&["files", "rm", "--agent", "console-1", c, "/data"])).await;
    assert!(out.status.success(), "{}", support::text(&out.stderr));
    let out = zedops(args(&[
        "files",
        "get",
        "--agent",
        "console-1",
        c,
        "/data/save.bin",
    ]))
    .await;
    assert!(
        support::text(&out.stderr).contains("FILE_NOT_FOUND"),
        "{}",
        support::text(&out.stderr)
    );
}

#[tokio::test]
async fn a_remote_yes_stops_at_the_window_through_the_relay() {
    let Some(s) = setup().await else {
        return;
    };
    let mut request = exec(&s.container, &["yes", "zedops-window"], false);
    request.window = Some(100_000);
    let mut yes = s.admin.exec(&request).await.unwrap();
    let mut got = 0usize;
    while got < 100_000 {
        let frame = tokio::time::timeout(WAIT, yes.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert!(frame.end.is_none(), "{frame:?}");
        got += frame.bytes().unwrap().len();
    }
    assert_eq!(got, 100_000, "exactly the window");
    // Nothing more arrives however long `yes` runs: nothing is queued in relay or agent.
    let quiet = tokio::time::timeout(Duration::from_secs(2), yes.next()).await;
    assert!(quiet.is_err(), "a frame beyond the window");
    yes.input(StreamInput {
        grant: 7_000,
        ..Default::default()
    })
    .await
    .unwrap();
    while got < 107_000 {
        got += yes.next().await.unwrap().unwrap().bytes().unwrap().len();
    }
    assert_eq!(got, 107_000);
    yes.cancel();
    let last = loop {
        let frame = tokio::time::timeout(WAIT, yes.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        if frame.end.is_some() {
            break frame;
        }
    };
    assert_eq!(last.end.unwrap().reason, "cancelled");
}

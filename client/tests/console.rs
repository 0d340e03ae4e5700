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
use zedops_relay::Limits;
use zedops_relay::console_limits::ConsoleLimits;
use zedops_testkit::process::{KillOnDrop, rss_kib, seed_database, serve_relay};
use zedops_testkit::{TestAgent, TestContainers, TestRelay, require_docker};

mod support;

use support::{assert_ok, assert_stderr_says};

const WAIT: Duration = Duration::from_secs(30);

/// The CLI's arguments for `command` on `container` of agent `console-1`, then `rest`.
fn on_agent<'a>(command: &[&'a str], container: &'a str, rest: &[&'a str]) -> Vec<&'a str> {
    [command, &["--agent", "console-1", container], rest].concat()
}

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

fn attach_without_stdin(container: &str) -> AttachRequest {
    AttachRequest {
        agent_id: "console-1".into(),
        container_id: container.into(),
        stdin: false,
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
        let frame = next_frame(session).await;
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

/// Sends `data` through `cat` in the test container: it exits 0 and its output is `data`,
/// whole; what it wrote on stderr.
async fn through_cat(s: &Setup, data: &[u8]) -> Vec<u8> {
    let mut cat = s.admin_exec(&["cat"], true).await;
    let (out, err, code) = run(&mut cat, Some(data)).await;
    assert_eq!(code, Some(0));
    assert_eq!(out.len(), data.len());
    assert_eq!(Sha256::digest(&out), Sha256::digest(data));
    err
}

struct Setup {
    relay: TestRelay,
    admin: Client,
    container: String,
    _containers: TestContainers,
    _agent: TestAgent,
}

impl Setup {
    /// `client`'s exec of `cmd` in the test container (with stdin open or not).
    async fn exec_as(&self, client: &Client, cmd: &[&str], stdin: bool) -> ConsoleSession {
        client
            .exec(&exec(&self.container, cmd, stdin))
            .await
            .unwrap()
    }

    /// The admin's exec of `cmd` in the test container.
    async fn admin_exec(&self, cmd: &[&str], stdin: bool) -> ConsoleSession {
        self.exec_as(&self.admin, cmd, stdin).await
    }

    /// The `zedops` CLI logged in as a new admin `user`.
    async fn cli(&self, user: &str) -> support::Zed {
        let token = self.relay.login(user, Role::Admin).await;
        support::Zed::new(&self.relay.url, &token)
    }
}

async fn setup() -> Option<Setup> {
    setup_with(Limits::default()).await
}

async fn setup_with(limits: Limits) -> Option<Setup> {
    let docker = require_docker().await?;
    let mut containers = TestContainers::new(&docker);
    let container = containers.sleeper("console").await;
    let relay = TestRelay::builder().limits(limits).start().await;
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

    let mut missing = s.admin_exec(&["sh", "-c", "no-such-command"], false).await;
    assert_eq!(run(&mut missing, None).await.2, Some(127));

    // 4 MiB of random bytes through cat: more than a window each way, so credit is granted
    // back and forth through the relay many times.
    let data: Vec<u8> = (0..4 * 1024 * 1024).map(|_| rand::random::<u8>()).collect();
    through_cat(&s, &data).await;
}

#[tokio::test]
async fn files_round_trip_through_the_relay_and_roles_hold() {
    let Some(s) = setup().await else {
        return;
    };
    let text = b"MaxPlayers=16\n";
    let put = FilePutRequest {
        agent_id: "console-1".into(),
        container_id: s.container.clone().into(),
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
        container_id: s.container.clone().into(),
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
    let mut refused = s.exec_as(&operator, &["id"], false).await;
    let err = refused.next().await.unwrap().unwrap_err();
    assert_eq!(err.code(), "FORBIDDEN");
    let mut refused = operator.file_put(&put).await.unwrap();
    assert_eq!(
        refused.next().await.unwrap().unwrap_err().code(),
        "FORBIDDEN"
    );
    let viewer = s.relay.client("console-viewer", Role::Viewer).await;
    let attach = attach_without_stdin(&s.container);
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
    let zed = s.cli("console-cli").await;
    let c = s.container.as_str();
    let out = zed
        .run_with(
            &on_agent(
                &["exec"],
                c,
                &["--", "sh", "-c", "echo out; echo err >&2; exit 3"],
            ),
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
    let out = zed
        .run_with(
            &on_agent(&["exec"], c, &["--", "sh", "-c", "no-such-command"]),
            "",
        )
        .await;
    assert_eq!(out.status.code(), Some(127));
    // -t from a script (no terminal on either side): a command that ends before its first
    // resize still gives its output and exit code (the resize used to fail the exec).
    for round in 0..3 {
        let out = zed
            .run_with(&on_agent(&["exec", "-t"], c, &["--", "echo", "quick"]), "")
            .await;
        assert_eq!(
            (out.status.code(), support::text(&out.stdout).trim_end()),
            (Some(0), "quick"),
            "round {round}: {}",
            support::text(&out.stderr)
        );
    }
    let out = zed
        .run_with(
            &on_agent(&["exec", "-i"], c, &["--", "cat"]),
            "piped\nthrough cat\n",
        )
        .await;
    assert_eq!(out.status.code(), Some(0), "{}", support::text(&out.stderr));
    assert_eq!(support::text(&out.stdout), "piped\nthrough cat\n");
    // A container without an open stdin cannot take a console line: a clear refusal.
    let out = zed.run_with(&on_agent(&["send"], c, &["save"]), "").await;
    assert!(!out.status.success());
    assert_stderr_says(&out, "OpenStdin");
}

#[tokio::test]
async fn the_cli_lists_uploads_downloads_and_removes_files() {
    let Some(s) = setup().await else {
        return;
    };
    let zed = s.cli("files-cli").await;
    let dir = tempfile::tempdir().unwrap();
    let c = s.container.as_str();
    // 3 MiB of random bytes up and back down.
    let data: Vec<u8> = (0..3 * 1024 * 1024).map(|_| rand::random::<u8>()).collect();
    let source = dir.path().join("up.bin");
    std::fs::write(&source, &data).unwrap();
    let out = zed.run(&on_agent(&["files", "mkdir"], c, &["/data"])).await;
    assert_ok(&out);
    let out = zed
        .run(&on_agent(
            &["files", "put"],
            c,
            &[source.to_str().unwrap(), "/data/save.bin"],
        ))
        .await;
    assert_ok(&out);
    let dest = dir.path().join("down.bin");
    let out = zed
        .run(&on_agent(
            &["files", "get"],
            c,
            &["/data/save.bin", dest.to_str().unwrap()],
        ))
        .await;
    assert_ok(&out);
    assert_eq!(
        Sha256::digest(std::fs::read(&dest).unwrap()),
        Sha256::digest(&data)
    );
    // Into a directory under the file's own name, as `cp` does; a missing one is said so.
    for (into, says) in [
        ("/data/", "written to /data/up.bin"),
        ("/nodir/", "the directory /nodir does not exist"),
    ] {
        let out = zed
            .run(&on_agent(
                &["files", "put"],
                c,
                &[source.to_str().unwrap(), into],
            ))
            .await;
        assert_stderr_says(&out, says);
    }
    let out = zed
        .run(&on_agent(&["files", "rm"], c, &["/data/up.bin"]))
        .await;
    assert_ok(&out);
    let out = zed.run(&on_agent(&["files", "ls"], c, &["/data"])).await;
    let listing = support::text(&out.stdout);
    assert!(
        listing.starts_with("-0644      3145728 ") && listing.trim_end().ends_with(" save.bin"),
        "{listing}"
    );
    let out = zed.run(&on_agent(&["files", "ls"], c, &["/../etc"])).await;
    assert!(!out.status.success());
    assert_stderr_says(&out, "PATH_OUTSIDE");
    let out = zed.run(&on_agent(&["files", "rm"], c, &["/data"])).await;
    assert_ok(&out);
    let out = zed
        .run(&on_agent(&["files", "get"], c, &["/data/save.bin"]))
        .await;
    assert_stderr_says(&out, "FILE_NOT_FOUND");
    // A failed download into an existing file leaves it as it was, and nothing beside it.
    let out = zed
        .run(&on_agent(
            &["files", "get"],
            c,
            &["/data/save.bin", dest.to_str().unwrap()],
        ))
        .await;
    assert_stderr_says(&out, "FILE_NOT_FOUND");
    assert_eq!(
        Sha256::digest(std::fs::read(&dest).unwrap()),
        Sha256::digest(&data),
        "the failed download changed the file it was to replace"
    );
    let mut left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    left.sort();
    assert_eq!(left, ["down.bin", "up.bin"]);
    // A directory as the destination is refused before anything is asked.
    let out = zed
        .run(&on_agent(
            &["files", "get"],
            c,
            &["/etc/hostname", dir.path().to_str().unwrap()],
        ))
        .await;
    assert_stderr_says(&out, "is a directory");
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
        let frame = next_frame(&mut yes).await;
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
        let frame = next_frame(&mut yes).await;
        if frame.end.is_some() {
            break frame;
        }
    };
    assert_eq!(last.end.unwrap().reason, "cancelled");
}

/// The first frame of a session: `Ok(())` when it started, the error code when refused.
async fn first(session: &mut ConsoleSession) -> Result<(), (String, String)> {
    let frame = tokio::time::timeout(WAIT, session.next())
        .await
        .expect("a first frame within 30 s")
        .expect("open");
    match frame {
        Ok(frame) if frame.started.is_some() => Ok(()),
        Ok(frame) => {
            let end = frame.end.expect("a first frame starts or ends the session");
            Err((
                end.error_code
                    .map(|c| c.as_str().to_string())
                    .unwrap_or_default(),
                end.reason,
            ))
        }
        Err(err) => Err((err.code().as_str().to_string(), err.to_string())),
    }
}

/// The session's next frame (within 30 s, open and readable).
async fn next_frame(session: &mut ConsoleSession) -> zedops_protocol::ConsoleOutput {
    tokio::time::timeout(WAIT, session.next())
        .await
        .expect("a frame within 30 s")
        .expect("open")
        .expect("readable")
}

/// Reads frames until the last one.
async fn last(session: &mut ConsoleSession) -> zedops_protocol::ConsoleOutput {
    loop {
        let frame = next_frame(session).await;
        if frame.end.is_some() {
            return frame;
        }
    }
}

#[tokio::test]
async fn fifty_megabytes_round_trip_through_the_relay_intact() {
    let Some(s) = setup().await else {
        return;
    };
    let mut data = vec![0u8; 50 * 1024 * 1024];
    rand::Rng::fill(&mut rand::thread_rng(), data.as_mut_slice());
    let err = through_cat(&s, &data).await;
    assert_eq!(err.len(), 0);
}

#[tokio::test]
async fn console_sessions_per_user_are_bounded_under_a_flood_and_exit_codes_are_audited() {
    let Some(s) = setup().await else {
        return;
    };
    let limit = zedops_protocol::MAX_CONSOLES_PER_USER;
    // Twelve shells at once from one user: the limit open, the rest refused with a reason.
    let mut open = Vec::new();
    let mut refused = Vec::new();
    for _ in 0..12 {
        let mut session = s.admin_exec(&["cat"], true).await;
        match first(&mut session).await {
            Ok(()) => open.push(session),
            Err(refusal) => refused.push(refusal),
        }
    }
    assert_eq!(open.len(), limit, "{refused:?}");
    assert_eq!(refused.len(), 12 - limit);
    for (code, reason) in &refused {
        assert_eq!(code, "RATE_LIMITED");
        assert!(
            reason.contains(&format!("{limit} console sessions")),
            "{reason}"
        );
    }
    // Attach counts too.
    let attach = attach_without_stdin(&s.container);
    let mut session = s.admin.attach(&attach).await.unwrap();
    assert_eq!(first(&mut session).await.unwrap_err().0, "RATE_LIMITED");
    // Another user is not affected.
    let other = s.relay.client("console-admin-2", Role::Admin).await;
    let mut theirs = other
        .exec(&exec(&s.container, &["cat"], true))
        .await
        .unwrap();
    first(&mut theirs).await.unwrap();
    // One ends: one more may open. Its exit code lands in its audit entry.
    let mut ending = open.pop().unwrap();
    ending
        .input(StreamInput {
            eof: true,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(last(&mut ending).await.exit.unwrap().code, Some(0));
    drop(ending);
    // A secret in the command is not kept in the audit log (the rest of it is).
    let mut again = s
        .admin_exec(&["sh", "-c", "DB_PASSWORD=hunter5 exit 3"], false)
        .await;
    assert_eq!(run(&mut again, None).await.2, Some(3));
    let mut audited = String::new();
    for _ in 0..100 {
        let audit = s
            .admin
            .request_raw("audit.list", serde_json::json!({"limit": 50}))
            .await
            .unwrap();
        audited = audit.to_string();
        if audited.contains("exit=3") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        audited.contains(&format!(
            r#"tty=false cmd=[\"sh\", \"-c\", \"DB_PASSWORD={} exit 3\"] exit=3"#,
            zedops_protocol::MASK
        )),
        "{audited}"
    );
    assert!(!audited.contains("hunter5"), "{audited}");
    // The refusals are on record as failed with their code.
    assert!(audited.contains("RATE_LIMITED"), "{audited}");
}

#[tokio::test]
async fn an_idle_console_session_is_ended_by_the_relay_with_the_reason() {
    let limits = Limits {
        console: ConsoleLimits {
            idle_timeout: Duration::from_secs(2),
            ..Default::default()
        },
        ..Default::default()
    };
    let Some(s) = setup_with(limits).await else {
        return;
    };
    // Typing keeps a session open past its idle timeout…
    let mut busy = s.admin_exec(&["cat"], true).await;
    first(&mut busy).await.unwrap();
    for i in 0..8 {
        busy.input(StreamInput {
            data: Some(encode_bytes(format!("line {i}\n").as_bytes())),
            ..Default::default()
        })
        .await
        .unwrap();
        let frame = next_frame(&mut busy).await;
        assert!(frame.end.is_none(), "ended while in use: {frame:?}");
        let echoed = frame.bytes().unwrap().len() as u32;
        busy.input(StreamInput {
            grant: echoed,
            ..Default::default()
        })
        .await
        .unwrap();
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // …and once nothing moves either way, the relay ends it and says why.
    let end = last(&mut busy).await;
    let end = end.end.unwrap();
    assert_eq!(end.error_code, Some(zedops_protocol::ErrorCode::Timeout));
    assert!(
        end.reason.contains("without input or output") && end.reason.contains("2s"),
        "{}",
        end.reason
    );
    // The idle session's slot is free again, and an attach is cut the same way.
    let attach = attach_without_stdin(&s.container);
    let mut watching = s.admin.attach(&attach).await.unwrap();
    first(&mut watching).await.unwrap();
    let end = last(&mut watching).await.end.unwrap();
    assert_eq!(end.error_code, Some(zedops_protocol::ErrorCode::Timeout));
}

#[tokio::test]
async fn exec_role_operator_opens_exec_to_operators_and_never_to_viewers() {
    let limits = Limits {
        console: ConsoleLimits {
            exec_role: Role::Operator,
            ..Default::default()
        },
        ..Default::default()
    };
    let Some(s) = setup_with(limits).await else {
        return;
    };
    let operator = s.relay.client("exec-operator", Role::Operator).await;
    let mut echo = s.exec_as(&operator, &["echo", "operated"], false).await;
    let (out, _, code) = run(&mut echo, None).await;
    assert_eq!((out.as_slice(), code), (&b"operated\n"[..], Some(0)));
    let viewer = s.relay.client("exec-viewer", Role::Viewer).await;
    let mut refused = s.exec_as(&viewer, &["id"], false).await;
    let err = refused.next().await.unwrap().unwrap_err();
    assert_eq!(err.code(), "FORBIDDEN");
    assert!(err.to_string().contains("operator role"), "{err}");
    // File writes stay admin-only: --exec-role opens exec alone.
    let put = FilePutRequest {
        agent_id: "console-1".into(),
        container_id: s.container.clone().into(),
        path: "/tmp/x".into(),
        size: 1,
        mode: None,
    };
    let mut refused = operator.file_put(&put).await.unwrap();
    assert_eq!(
        refused.next().await.unwrap().unwrap_err().code(),
        "FORBIDDEN"
    );
}

/// The real `zedops` binary under a pseudo-terminal, as a person at a terminal runs it.
#[cfg(unix)]
mod terminal {
    use std::io::Write;
    use std::sync::mpsc;
    use std::time::{Duration, Instant};

    use portable_pty::{Child, CommandBuilder, MasterPty, SlavePty};
    use zedops_testkit::pty::PtyProcess;
    pub use zedops_testkit::pty::size;

    pub struct Pty {
        pub master: Box<dyn MasterPty + Send>,
        // Kept open so the line discipline stays up (and echoes) after zedops has exited.
        _slave: Box<dyn SlavePty + Send>,
        pub child: Box<dyn Child + Send + Sync>,
        writer: Box<dyn Write + Send>,
        output: mpsc::Receiver<Vec<u8>>,
        /// Everything read so far, and how much of it the waits have consumed.
        pub seen: Vec<u8>,
        consumed: usize,
    }

    impl Pty {
        pub fn spawn(args: &[&str], env: &[(&str, &str)], rows: u16, cols: u16) -> Self {
            let mut cmd = CommandBuilder::new(env!("CARGO_BIN_EXE_zedops"));
            cmd.args(args);
            for (key, _) in std::env::vars() {
                if key.starts_with("ZEDOPS_") || key == "RUST_LOG" {
                    cmd.env_remove(key);
                }
            }
            cmd.env("TERM", "xterm");
            for (key, value) in env {
                cmd.env(key, value);
            }
            let pty = PtyProcess::spawn(cmd, rows, cols).unwrap();
            Self {
                master: pty.master,
                _slave: pty.slave,
                child: pty.child,
                writer: pty.writer,
                output: pty.output,
                seen: Vec::new(),
                consumed: 0,
            }
        }

        pub fn type_in(&mut self, bytes: &[u8]) {
            self.writer.write_all(bytes).unwrap();
            self.writer.flush().unwrap();
        }

        /// Waits (up to `within`) for `needle` in the output after what earlier waits consumed.
        pub fn wait_for(&mut self, needle: &str, within: Duration) -> bool {
            let deadline = Instant::now() + within;
            loop {
                let text = String::from_utf8_lossy(&self.seen[self.consumed..]).to_string();
                if let Some(at) = text.find(needle) {
                    self.consumed += text[..at + needle.len()].len();
                    return true;
                }
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return false;
                }
                if let Ok(bytes) = self
                    .output
                    .recv_timeout(left.min(Duration::from_millis(100)))
                {
                    self.seen.extend(bytes);
                }
            }
        }

        /// Types `bytes` again (up to 20 times, half a second apart) until `needle` shows: for
        /// what the keystrokes may overtake (a resize signal, the attach itself).
        pub fn type_until(&mut self, bytes: &[u8], needle: &str) {
            for _ in 0..20 {
                self.type_in(bytes);
                if self.wait_for(needle, Duration::from_millis(500)) {
                    return;
                }
            }
            panic!(
                "{needle:?} not seen; the terminal shows: {:?}",
                String::from_utf8_lossy(&self.seen)
            );
        }

        pub fn expect(&mut self, needle: &str) {
            assert!(
                self.wait_for(needle, Duration::from_secs(30)),
                "{needle:?} not seen; the terminal shows: {:?}",
                String::from_utf8_lossy(&self.seen)
            );
        }

        /// The exit code, once zedops has exited (within 30 s).
        pub fn exit_code(&mut self) -> u32 {
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                if let Some(status) = self.child.try_wait().unwrap() {
                    return status.exit_code();
                }
                assert!(
                    Instant::now() < deadline,
                    "zedops still runs; the terminal shows: {:?}",
                    String::from_utf8_lossy(&self.seen)
                );
                while let Ok(bytes) = self.output.try_recv() {
                    self.seen.extend(bytes);
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }

        /// After zedops has exited: the terminal echoes again, so it is out of raw mode.
        pub fn assert_restored(&mut self) {
            self.type_in(b"echo-check\n");
            self.expect("echo-check");
        }
    }
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_runs_a_terminal_session_under_a_pty_with_size_resize_ctrl_c_and_exit_code() {
    use terminal::{Pty, size};
    let Some(s) = setup().await else {
        return;
    };
    let token = s.relay.login("console-tty", Role::Admin).await;
    let config = tempfile::tempdir().unwrap();
    let (url, container) = (s.relay.url.clone(), s.container.clone());
    let config_dir = config.path().display().to_string();
    let env = move || {
        [
            ("ZEDOPS_TOKEN", token.clone()),
            ("ZEDOPS_RELAY", url.clone()),
            ("ZEDOPS_CONFIG_DIR", config_dir.clone()),
        ]
    };
    let spawn = move |args: Vec<String>| {
        let env = env();
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        Pty::spawn(&args, &env, 30, 100)
    };
    let shell = |c: &str| {
        ["exec", "-it", "--agent", "console-1", c, "--", "sh"]
            .iter()
            .map(|a| a.to_string())
            .collect::<Vec<_>>()
    };
    let c = container.clone();
    tokio::task::spawn_blocking(move || {
        let mut pty = spawn(shell(&c));
        // The size of this terminal at the start.
        pty.type_in(b"busybox stty size\r");
        pty.expect("30 100");
        // A resize reaches the remote terminal (SIGWINCH here, a resize at the agent); typed
        // again until it shows, since the keystrokes may overtake the signal.
        pty.master.resize(size(40, 120)).unwrap();
        pty.type_until(b"busybox stty size\r", "40 120");
        // Ctrl-C goes to the remote process: it ends `sleep`, not zedops.
        pty.type_in(b"busybox sleep 1000\r");
        std::thread::sleep(Duration::from_millis(700));
        pty.type_in(&[0x03]);
        pty.type_in(b"echo after-$((40+2))\r");
        pty.expect("after-42");
        // The remote exit code is zedops's, and the terminal is restored.
        pty.type_in(b"exit 7\r");
        assert_eq!(pty.exit_code(), 7);
        pty.assert_restored();

        // Ended from outside (SIGTERM) in the middle of a session: the terminal is restored too.
        let mut pty = spawn(shell(&c));
        pty.type_in(b"echo ready-$((1+1))\r");
        pty.expect("ready-2");
        let pid = pty.child.process_id().unwrap();
        std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .unwrap();
        assert_eq!(pty.exit_code(), 143);
        pty.assert_restored();
    })
    .await
    .unwrap();
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_attaches_to_a_console_and_detaches_with_the_keys_leaving_it_running() {
    use terminal::Pty;
    let Some(docker) = require_docker().await else {
        return;
    };
    let mut containers = TestContainers::new(&docker);
    // A game server's console, as a template with a terminal and open stdin makes it.
    let body = bollard::models::ContainerCreateBody {
        cmd: Some(vec!["sh".into()]),
        tty: Some(true),
        open_stdin: Some(true),
        ..Default::default()
    };
    let console = containers.create_with("attach", body, true).await;
    let relay = TestRelay::builder().start().await;
    let _agent = TestAgent::builder(&relay).name("console-1").online().await;
    let token = relay.login("console-attach", Role::Operator).await;
    let config = tempfile::tempdir().unwrap();
    let env = [
        ("ZEDOPS_TOKEN", token.clone()),
        ("ZEDOPS_RELAY", relay.url.clone()),
        ("ZEDOPS_CONFIG_DIR", config.path().display().to_string()),
    ];
    let c = console.clone();
    tokio::task::spawn_blocking(move || {
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let mut pty = Pty::spawn(&["attach", "--agent", "console-1", &c], &env, 30, 100);
        // Attached: what is typed reaches the main process, its answer comes back.
        pty.type_until(b"echo attached-$((1+2))\r", "attached-3");
        // ctrl-p ctrl-q: detached, zedops exits 0, the terminal is restored.
        pty.type_in(&[0x10, 0x11]);
        assert_eq!(pty.exit_code(), 0);
        pty.expect("detached");
        pty.assert_restored();
    })
    .await
    .unwrap();
    assert_eq!(containers.state(&console).await, "running");
    // A detach is how an attach is meant to end: audited `ok`, never `interrupted` (the CLI
    // leaves right after its cancel).
    assert_eq!(relay.settled_audit_entry("attach").await.result, "ok");
}

/// A binary of the workspace built beside `zedops` (`cargo test --workspace` builds them all;
/// alone: `cargo build -p zedops-relay -p zedops-agent`). Missing under CI=true fails.
fn sibling_binary(name: &str) -> Option<std::path::PathBuf> {
    let path = std::path::Path::new(env!("CARGO_BIN_EXE_zedops")).with_file_name(name);
    if path.exists() {
        return Some(path);
    }
    let why = format!(
        "{} not built; run `cargo build -p zedops-relay -p zedops-agent` first",
        path.display()
    );
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{why}");
    }
    eprintln!("skipped: {why}");
    None
}

/// The most the relay and the agent may each grow over their resting size while a remote `yes`
/// floods a client that reads slowly, then not at all. What they may hold by design: one
/// window (256 KiB) per direction of the session and one 32 KiB Docker piece, plus frames being
/// encoded and the allocator's slack; a relay or agent that buffered the flood would pass this
/// within a second (`yes` makes hundreds of MiB/s).
const FLOOD_GROWTH_BOUND_MIB: u64 = 48;

#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flooding_exec_and_a_slow_client_leave_the_real_relay_and_agent_within_bounds() {
    let Some(docker) = require_docker().await else {
        return;
    };
    let (Some(relay_bin), Some(agent_bin)) = (
        sibling_binary("zedops-relay"),
        sibling_binary("zedops-agent"),
    ) else {
        return;
    };
    let mut containers = TestContainers::new(&docker);
    let container = containers.sleeper("flood").await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("relay.db").display().to_string();
    let (token, registration) =
        seed_database(&db, "flood-admin", "flood-password-1", Role::Admin).await;
    let (relay, addr) = serve_relay(&relay_bin, &db, WAIT).await;
    let agent = KillOnDrop(
        std::process::Command::new(agent_bin)
            .args([
                "run",
                "--relay",
                &format!("http://{addr}"),
                "--name",
                "flood-1",
            ])
            .arg("--data-dir")
            .arg(dir.path().join("agent"))
            .env("ZEDOPS_TOKEN", &registration)
            .env("RUST_LOG", "error")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("zedops-agent starts"),
    );
    let client = Client::connect(zedops_client::ConnectOptions {
        relay: format!("http://{addr}"),
        token,
        ca_file: None,
        insecure: false,
    })
    .await
    .unwrap();
    let mut request = exec(&container, &["yes", "zedops flood"], false);
    request.agent_id = "flood-1".into();
    // Until the agent has enrolled and connected.
    let mut yes = None;
    for _ in 0..300 {
        let mut session = client.exec(&request).await.unwrap();
        match first(&mut session).await {
            Ok(()) => {
                yes = Some(session);
                break;
            }
            Err((code, _)) if code == "AGENT_OFFLINE" || code == "NOT_FOUND" => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(other) => panic!("{other:?}"),
        }
    }
    let mut yes = yes.expect("the agent connected within 30 s");
    let (relay_pid, agent_pid) = (relay.id(), agent.id());
    let resting = (rss_kib(relay_pid), rss_kib(agent_pid));
    let mut peak = resting;
    let sample = |peak: &mut (u64, u64)| {
        peak.0 = peak.0.max(rss_kib(relay_pid));
        peak.1 = peak.1.max(rss_kib(agent_pid));
    };
    // 8 s of reading slowly (a frame, its grant, a pause)…
    let mut got = 0u64;
    let until = tokio::time::Instant::now() + Duration::from_secs(8);
    while tokio::time::Instant::now() < until {
        let frame = next_frame(&mut yes).await;
        assert!(frame.end.is_none(), "{frame:?}");
        let n = frame.bytes().unwrap().len();
        got += n as u64;
        yes.input(StreamInput {
            grant: n as u32,
            ..Default::default()
        })
        .await
        .unwrap();
        sample(&mut peak);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // …then 4 s of reading nothing while `yes` goes on.
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        sample(&mut peak);
    }
    yes.cancel();
    let growth = (
        peak.0.saturating_sub(resting.0) / 1024,
        peak.1.saturating_sub(resting.1) / 1024,
    );
    eprintln!(
        "flood: {got} bytes read; relay {} -> {} KiB peak, agent {} -> {} KiB peak",
        resting.0, peak.0, resting.1, peak.1
    );
    assert!(got > 1024 * 1024, "the flood flowed: {got} bytes");
    assert!(
        growth.0 < FLOOD_GROWTH_BOUND_MIB && growth.1 < FLOOD_GROWTH_BOUND_MIB,
        "grew by {growth:?} MiB (relay, agent); bound {FLOOD_GROWTH_BOUND_MIB} MiB each"
    );
    client.close().await;
}

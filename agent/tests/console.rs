//! Console sessions of the agent library against the real engine: execs with and without a
//! terminal, exit codes, binary-safe stdin and stdout, the credit bound on output, the process
//! ended when the session is cut off, attach and send. The relay's side is played by a channel:
//! the frames the agent would send to the relay are read from it, `stream.input` frames handed
//! to the registry as the session code would.

use std::sync::Arc;
use std::time::Duration;

use bollard::models::ContainerCreateBody;
use bollard::query_parameters::{CreateContainerOptionsBuilder, StartContainerOptions};
use common::{Scratch, Spec};
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;
use zedops_agent::console::Sessions;
use zedops_agent::docker::DockerClient;
use zedops_protocol::{
    AttachRequest, ConsoleOutput, ConsoleStream, ErrorCode, ExecRequest, Frame,
    MAX_CONSOLE_CHUNK_BYTES, StreamInput, TermSize, encode_bytes,
};
use zedops_testkit::docker::TEST_IMAGE;

mod common;

/// One session as the relay would see it.
struct Client {
    sessions: Arc<Sessions>,
    inbox: String,
    rx: mpsc::Receiver<String>,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
    /// Input credit the agent has granted and this client not used.
    credit: u64,
    /// Grant output back as it is read.
    auto_grant: bool,
}

impl Client {
    fn new(sessions: &Arc<Sessions>, inbox: &str) -> (Self, mpsc::Sender<String>) {
        let (tx, rx) = mpsc::channel(64);
        let client = Self {
            sessions: sessions.clone(),
            inbox: inbox.to_string(),
            rx,
            stdout: vec![],
            stderr: vec![],
            credit: 0,
            auto_grant: true,
        };
        (client, tx)
    }

    /// The next frame, within 20 s.
    async fn next(&mut self) -> ConsoleOutput {
        let text = tokio::time::timeout(Duration::from_secs(20), self.rx.recv())
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "no frame within 20 s; output so far: {:?}",
                    String::from_utf8_lossy(&self.stdout)
                )
            })
            .expect("the session's channel is open");
        let frame = Frame::decode(&text).unwrap();
        assert_eq!(frame.subject, self.inbox);
        let output: ConsoleOutput = frame.payload().unwrap();
        if let Some(started) = &output.started {
            self.credit += u64::from(started.window);
        }
        self.credit += u64::from(output.grant);
        let bytes = output.bytes().unwrap();
        assert!(bytes.len() <= MAX_CONSOLE_CHUNK_BYTES);
        match output.stream {
            Some(ConsoleStream::Stderr) => self.stderr.extend(&bytes),
            _ => self.stdout.extend(&bytes),
        }
        if self.auto_grant && !bytes.is_empty() {
            self.input(StreamInput {
                grant: bytes.len() as u32,
                ..Default::default()
            });
        }
        output
    }

    fn input(&self, mut input: StreamInput) {
        input.inbox = self.inbox.clone();
        self.sessions.input(input);
    }

    /// Sends `bytes` as input at once, without waiting for credit: typed keys (a few bytes) and
    /// chunks already within it.
    fn type_in(&self, bytes: &[u8]) {
        self.input(StreamInput {
            data: Some(encode_bytes(bytes)),
            ..Default::default()
        });
    }

    /// Sends `bytes` within the credit, reading frames (and their grants) while waiting for it;
    /// then closes stdin.
    async fn write_all(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            let n = bytes
                .len()
                .min(MAX_CONSOLE_CHUNK_BYTES)
                .min(self.credit as usize);
            if n == 0 {
                let frame = self.next().await;
                assert!(frame.end.is_none(), "ended while writing: {frame:?}");
                continue;
            }
            self.type_in(&bytes[..n]);
            self.credit -= n as u64;
            bytes = &bytes[n..];
        }
        self.input(StreamInput {
            eof: true,
            ..Default::default()
        });
    }

    /// Reads to the last frame: its exit code and end.
    async fn finish(&mut self) -> (Option<i64>, ConsoleOutput) {
        loop {
            let frame = self.next().await;
            if frame.end.is_some() {
                return (frame.exit.and_then(|e| e.code), frame);
            }
        }
    }
}

fn exec(container: &str, cmd: &[&str]) -> ExecRequest {
    ExecRequest {
        agent_id: "a".into(),
        container_id: container.into(),
        cmd: cmd.iter().map(|s| s.to_string()).collect(),
        tty: false,
        stdin: false,
        env: vec![],
        working_dir: None,
        size: None,
        window: None,
    }
}

async fn setup(role: &str) -> Option<(Scratch, String, Arc<DockerClient>, Arc<Sessions>)> {
    let mut scratch = Scratch::new().await?;
    let (name, _) = scratch.create(role, Spec::RUNNING).await;
    let docker = Arc::new(DockerClient::connect(None).await);
    Some((scratch, name, docker, Arc::new(Sessions::default())))
}

async fn run(
    docker: &Arc<DockerClient>,
    sessions: &Arc<Sessions>,
    request: ExecRequest,
    inbox: &str,
) -> Client {
    let (client, tx) = Client::new(sessions, inbox);
    sessions.start_exec(docker.clone(), request, inbox.into(), tx);
    client
}

/// The processes in `container` whose command line contains `needle`.
async fn processes(docker: &Arc<DockerClient>, container: &str, needle: &str) -> Vec<String> {
    let sessions = Arc::new(Sessions::default());
    let mut ps = run(
        docker,
        &sessions,
        exec(container, &["busybox", "ps", "-o", "pid,args"]),
        "_INBOX.ps",
    )
    .await;
    let (code, _) = ps.finish().await;
    assert_eq!(code, Some(0));
    String::from_utf8_lossy(&ps.stdout)
        .lines()
        .filter(|l| l.contains(needle) && !l.contains("ps -o"))
        .map(str::to_string)
        .collect()
}

#[tokio::test]
async fn echo_exit_codes_and_separate_outputs() {
    let Some((_scratch, name, docker, sessions)) = setup("console-basic").await else {
        return;
    };
    let mut echo = run(
        &docker,
        &sessions,
        exec(&name, &["echo", "hello"]),
        "_INBOX.e",
    )
    .await;
    let first = echo.next().await;
    let started = first
        .started
        .expect("the first frame says the session started");
    assert!(!started.tty);
    assert_eq!(started.window, 0, "no stdin, no input credit");
    let (code, last) = echo.finish().await;
    assert_eq!((code, echo.stdout.as_slice()), (Some(0), &b"hello\n"[..]));
    assert_eq!(last.end.unwrap().error_code, None);

    for (cmd, want) in [
        (vec!["sh", "-c", "exit 3"], 3),
        (vec!["sh", "-c", "nosuchcommand"], 127),
        (vec!["true"], 0),
    ] {
        let mut session = run(&docker, &sessions, exec(&name, &cmd), "_INBOX.x").await;
        let (code, _) = session.finish().await;
        assert_eq!(code, Some(want), "{cmd:?}");
    }

    let mut both = run(
        &docker,
        &sessions,
        exec(&name, &["sh", "-c", "echo out; echo err >&2"]),
        "_INBOX.b",
    )
    .await;
    both.finish().await;
    assert_eq!(
        (both.stdout.as_slice(), both.stderr.as_slice()),
        (&b"out\n"[..], &b"err\n"[..])
    );

    let mut missing = run(
        &docker,
        &sessions,
        exec("zedops-test-nope-x", &["true"]),
        "_INBOX.m",
    )
    .await;
    let (_, last) = missing.finish().await;
    assert_eq!(
        last.end.unwrap().error_code,
        Some(ErrorCode::ContainerNotFound)
    );

    // A stopped container: said with the name given and what to do, not Docker's full id.
    let mut stopped = Scratch::new().await.unwrap();
    let (stopped_name, _) = stopped.create("console-stopped", Spec::STOPPED).await;
    let mut refused = run(
        &docker,
        &sessions,
        exec(&stopped_name, &["true"]),
        "_INBOX.s",
    )
    .await;
    let end = refused.finish().await.1.end.unwrap();
    assert_eq!(end.error_code, Some(ErrorCode::ExecFailed));
    assert_eq!(
        end.reason,
        format!("{stopped_name} is not running; start it first")
    );
}

#[tokio::test]
async fn binary_stdin_round_trips_through_cat() {
    let Some((_scratch, name, docker, sessions)) = setup("console-cat").await else {
        return;
    };
    let data: Vec<u8> = (0..8 * 1024 * 1024).map(|_| rand::random::<u8>()).collect();
    let mut request = exec(&name, &["cat"]);
    request.stdin = true;
    let mut cat = run(&docker, &sessions, request, "_INBOX.cat").await;
    let writing = cat.write_all(&data);
    writing.await;
    let (code, _) = cat.finish().await;
    assert_eq!(code, Some(0));
    assert_eq!(cat.stdout.len(), data.len());
    assert_eq!(Sha256::digest(&cat.stdout), Sha256::digest(&data));
}

#[tokio::test]
async fn output_stops_at_the_granted_window_and_a_cut_session_ends_its_process() {
    let Some((_scratch, name, docker, sessions)) = setup("console-yes").await else {
        return;
    };
    let mut request = exec(&name, &["yes", "zedops-flow"]);
    request.window = Some(100_000);
    let mut yes = run(&docker, &sessions, request, "_INBOX.y").await;
    yes.auto_grant = false;
    // Everything granted arrives, then nothing more however long `yes` runs.
    while yes.stdout.len() < 100_000 {
        assert!(yes.next().await.end.is_none());
    }
    let quiet = tokio::time::timeout(Duration::from_secs(2), yes.rx.recv()).await;
    assert!(quiet.is_err(), "a frame beyond the window: {quiet:?}");
    assert_eq!(yes.stdout.len(), 100_000);
    // A grant lets exactly that much more through.
    yes.input(StreamInput {
        grant: 5000,
        ..Default::default()
    });
    while yes.stdout.len() < 105_000 {
        yes.next().await;
    }
    let quiet = tokio::time::timeout(Duration::from_secs(1), yes.rx.recv()).await;
    assert!(quiet.is_err());
    assert!(!processes(&docker, &name, "zedops-flow").await.is_empty());

    // The client goes away: the agent ends `yes` in the container.
    assert!(sessions.cancel("_INBOX.y"));
    let (code, last) = yes.finish().await;
    assert_eq!(code, None);
    assert_eq!(last.end.unwrap().reason, "cancelled");
    assert_eq!(
        processes(&docker, &name, "zedops-flow").await,
        Vec::<String>::new()
    );

    // The same when the whole connection goes (the registry is dropped).
    let mut sleeper = run(
        &docker,
        &sessions,
        exec(&name, &["sleep", "4242"]),
        "_INBOX.s",
    )
    .await;
    sleeper.next().await;
    assert_eq!(processes(&docker, &name, "sleep 4242").await.len(), 1);
    drop(sleeper);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !processes(&docker, &name, "sleep 4242").await.is_empty() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "sleep still runs 10 s after its client went away"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn a_terminal_has_the_size_sent_and_follows_resizes() {
    let Some((_scratch, name, docker, sessions)) = setup("console-tty").await else {
        return;
    };
    let mut request = exec(&name, &["sh"]);
    request.tty = true;
    request.stdin = true;
    request.size = Some(TermSize {
        cols: 100,
        rows: 30,
    });
    let mut sh = run(&docker, &sessions, request, "_INBOX.t").await;
    let started = sh.next().await.started.unwrap();
    assert!(started.tty);
    sh.type_in(b"busybox stty size\n");
    wait_for(&mut sh, "30 100").await;
    sh.input(StreamInput {
        resize: Some(TermSize {
            cols: 120,
            rows: 40,
        }),
        ..Default::default()
    });
    sh.type_in(b"busybox stty size\n");
    wait_for(&mut sh, "40 120").await;
    // Ctrl-C reaches the foreground process through the terminal.
    sh.type_in(b"sleep 999\n");
    tokio::time::sleep(Duration::from_millis(500)).await;
    sh.type_in(b"\x03");
    sh.type_in(b"echo after-$?\n");
    wait_for(&mut sh, "after-130").await;
    sh.type_in(b"exit 5\n");
    let (code, _) = sh.finish().await;
    assert_eq!(code, Some(5));
}

async fn wait_for(client: &mut Client, text: &str) {
    while !String::from_utf8_lossy(&client.stdout).contains(text) {
        let frame = client.next().await;
        assert!(
            frame.end.is_none(),
            "ended before {text:?}: {}",
            String::from_utf8_lossy(&client.stdout)
        );
    }
}

#[tokio::test]
async fn attach_sees_the_console_and_send_reaches_it() {
    let Some(mut scratch) = Scratch::new().await else {
        return;
    };
    let name = format!("zedops-test-console-attach-{}", scratch.suffix);
    scratch.adopt(&name);
    let body = ContainerCreateBody {
        image: Some(TEST_IMAGE.into()),
        cmd: Some(vec![
            "sh".into(),
            "-c".into(),
            "while read line; do echo \"got:$line\"; done".into(),
        ]),
        open_stdin: Some(true),
        ..Default::default()
    };
    let options = CreateContainerOptionsBuilder::new().name(&name).build();
    scratch
        .docker
        .create_container(Some(options), body)
        .await
        .unwrap();
    scratch
        .docker
        .start_container(&name, None::<StartContainerOptions>)
        .await
        .unwrap();
    let docker = Arc::new(DockerClient::connect(None).await);
    let sessions = Arc::new(Sessions::default());
    let (mut console, tx) = Client::new(&sessions, "_INBOX.a");
    let request = AttachRequest {
        agent_id: "a".into(),
        container_id: name.clone().into(),
        stdin: true,
        size: None,
        window: None,
    };
    sessions.start_attach(docker.clone(), request, "_INBOX.a".into(), tx);
    let started = console.next().await.started.unwrap();
    assert!(!started.tty);
    assert!(started.window > 0);

    let bytes = docker.send_line(&name, "servermsg hello").await.unwrap();
    assert_eq!(bytes, 16);
    wait_for(&mut console, "got:servermsg hello").await;
    console.type_in(b"typed\n");
    wait_for(&mut console, "got:typed").await;
    // Detaching leaves the server running.
    assert!(sessions.cancel("_INBOX.a"));
    console.finish().await;
    assert!(scratch.running(&name).await);

    // A container without an open stdin cannot take a line.
    let (plain, _) = scratch.create("console-plain", Spec::RUNNING).await;
    let refused = docker.send_line(&plain, "save").await.unwrap_err();
    assert_eq!(refused.code(), ErrorCode::ExecFailed);
    assert!(refused.to_string().contains("OpenStdin"), "{refused}");
}

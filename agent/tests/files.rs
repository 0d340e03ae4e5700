//! Files of a container through the agent library against the real engine: listings, text and
//! binary round trips (long names too), owners kept on a replace and taken from the directory
//! on a new file, the size limit, `..` refused, mkdir and remove, the download held at the
//! client's window.

use std::sync::Arc;
use std::time::Duration;

use common::{Scratch, Spec};
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;
use zedops_agent::console::Sessions;
use zedops_agent::docker::DockerClient;
use zedops_agent::files;
use zedops_protocol::{
    ErrorCode, FileChunk, FileEntry, FileGetRequest, FileKind, FilePathRequest, FilePutRequest,
    Frame, MAX_CONSOLE_CHUNK_BYTES, StreamEnd, StreamInput, encode_bytes,
};

mod common;

const LIMIT: u64 = 16 * 1024 * 1024;

struct Fixture {
    _scratch: Scratch,
    name: String,
    docker: Arc<DockerClient>,
    sessions: Arc<Sessions>,
}

async fn fixture(role: &str) -> Option<Fixture> {
    let mut scratch = Scratch::new().await?;
    let (name, _) = scratch.create(role, Spec::RUNNING).await;
    let fixture = Fixture {
        _scratch: scratch,
        name,
        docker: Arc::new(DockerClient::connect(None).await),
        sessions: Arc::new(Sessions::default()),
    };
    // The test image has no /tmp: a directory to write in, made through the archive API too.
    files::mkdir(&fixture.docker, &fixture.path("/work"))
        .await
        .expect("mkdir /work");
    Some(fixture)
}

impl Fixture {
    fn path(&self, path: &str) -> FilePathRequest {
        FilePathRequest {
            agent_id: "a".into(),
            container_id: self.name.clone().into(),
            path: path.into(),
        }
    }

    /// Starts a download of `path` as a client would (`window` bytes before a grant; files over
    /// `limit` refused), its frames sent to `inbox`: the receiving end of them.
    fn start_get(
        &self,
        path: &str,
        window: Option<u32>,
        limit: u64,
        inbox: &str,
    ) -> mpsc::Receiver<String> {
        let (tx, rx) = mpsc::channel(64);
        let request = FileGetRequest {
            agent_id: "a".into(),
            container_id: self.name.clone().into(),
            path: path.into(),
            window,
        };
        self.sessions
            .start_get(self.docker.clone(), request, limit, inbox.to_string(), tx);
        rx
    }

    /// Uploads `bytes` to `path` as a client would; the last frame.
    async fn put(&self, path: &str, bytes: &[u8], mode: Option<u32>, limit: u64) -> FileChunk {
        let inbox = format!("_INBOX.put{}", rand::random::<u32>());
        let (tx, mut rx) = mpsc::channel(64);
        let request = FilePutRequest {
            agent_id: "a".into(),
            container_id: self.name.clone().into(),
            path: path.into(),
            size: bytes.len() as u64,
            mode,
        };
        self.sessions
            .start_put(self.docker.clone(), request, limit, inbox.clone(), tx);
        let mut credit = 0u64;
        let mut rest = bytes;
        let mut sent_eof = false;
        loop {
            // Send what credit allows, then read the agent's frames.
            while !sent_eof && credit > 0 {
                let n = rest.len().min(MAX_CONSOLE_CHUNK_BYTES).min(credit as usize);
                credit -= n as u64;
                sent_eof = n == rest.len();
                self.sessions.input(StreamInput {
                    inbox: inbox.clone(),
                    data: Some(encode_bytes(&rest[..n])),
                    eof: sent_eof,
                    ..Default::default()
                });
                rest = &rest[n..];
            }
            let frame = next(&mut rx).await;
            credit += u64::from(frame.grant);
            if frame.end.is_some() {
                return frame;
            }
        }
    }

    /// Downloads `path`; its entry and bytes, or how it ended.
    async fn get(&self, path: &str) -> Result<(FileEntry, Vec<u8>), StreamEnd> {
        let inbox = format!("_INBOX.get{}", rand::random::<u32>());
        let mut rx = self.start_get(path, None, LIMIT, &inbox);
        let mut entry = None;
        let mut bytes = Vec::new();
        loop {
            let frame = next(&mut rx).await;
            if let Some(e) = frame.entry.clone() {
                entry = Some(e);
            }
            let data = frame.bytes().unwrap();
            if !data.is_empty() {
                self.sessions.input(StreamInput {
                    inbox: inbox.clone(),
                    grant: data.len() as u32,
                    ..Default::default()
                });
                bytes.extend(data);
            }
            if let Some(end) = frame.end {
                return match end.error_code {
                    None => Ok((entry.expect("an entry before the data"), bytes)),
                    Some(_) => Err(end),
                };
            }
        }
    }
}

async fn next(rx: &mut mpsc::Receiver<String>) -> FileChunk {
    let text = tokio::time::timeout(Duration::from_secs(30), rx.recv())
        .await
        .expect("a frame within 30 s")
        .expect("open");
    Frame::decode(&text).unwrap().payload().unwrap()
}

#[tokio::test]
async fn lists_directories_and_refuses_paths_outside() {
    let Some(f) = fixture("files-list").await else {
        return;
    };
    let etc = files::list(&f.docker, &f.path("/etc/")).await.unwrap();
    assert_eq!(etc.path, "/etc");
    let hosts = etc.entries.iter().find(|e| e.name == "hosts").unwrap();
    assert_eq!(hosts.kind, FileKind::File);
    assert!(hosts.size > 0 && hosts.mtime > 0 && hosts.mode & 0o400 != 0);
    let mtab = etc.entries.iter().find(|e| e.name == "mtab").unwrap();
    assert_eq!(
        (mtab.kind, mtab.link_target.as_deref()),
        (FileKind::Symlink, Some("/proc/mounts"))
    );
    assert!(etc.entries.iter().all(|e| !e.name.contains('/')));

    let root = files::list(&f.docker, &f.path("/")).await.unwrap();
    let bin = root
        .entries
        .iter()
        .find(|e| e.name == "bin")
        .unwrap_or_else(|| panic!("no bin in {:?}", root.entries));
    assert_eq!(bin.kind, FileKind::Dir);

    let one = files::list(&f.docker, &f.path("/etc/hosts")).await.unwrap();
    assert_eq!(one.entries.len(), 1);
    assert_eq!(one.entries[0].name, "hosts");

    for (path, code) in [
        ("/../etc", ErrorCode::PathOutside),
        ("../../../../etc/hosts", ErrorCode::PathOutside),
        ("/no/such/dir", ErrorCode::FileNotFound),
    ] {
        let err = files::list(&f.docker, &f.path(path)).await.unwrap_err();
        assert_eq!(err.error_code, code, "{path}: {err}");
    }
    let mut missing = f.path("/etc");
    missing.container_id = "zedops-test-no-such-container".into();
    let err = files::list(&f.docker, &missing).await.unwrap_err();
    assert_eq!(err.error_code, ErrorCode::ContainerNotFound);
}

#[tokio::test]
async fn text_and_binary_files_round_trip() {
    let Some(f) = fixture("files-trip").await else {
        return;
    };
    let text = b"[server]\nPublic=true\nMaxPlayers=16\n";
    let last = f.put("/work/servertest.ini", text, None, LIMIT).await;
    assert_eq!(last.end.as_ref().unwrap().error_code, None, "{last:?}");
    assert_eq!(last.entry.unwrap().size, text.len() as u64);
    let (entry, back) = f.get("/work/servertest.ini").await.unwrap();
    assert_eq!(back, text);
    assert_eq!((entry.name.as_str(), entry.mode), ("servertest.ini", 0o644));

    // Replaced in place by a second upload.
    f.put("/work/servertest.ini", b"MaxPlayers=32\n", None, LIMIT)
        .await;
    assert_eq!(
        f.get("/work/servertest.ini").await.unwrap().1,
        b"MaxPlayers=32\n"
    );

    let binary: Vec<u8> = (0..5 * 1024 * 1024 + 17)
        .map(|_| rand::random::<u8>())
        .collect();
    let long = format!("/work/{}.bin", "n".repeat(140));
    let last = f.put(&long, &binary, Some(0o600), LIMIT).await;
    assert_eq!(last.end.unwrap().error_code, None);
    let (entry, back) = f.get(&long).await.unwrap();
    assert_eq!(entry.mode, 0o600);
    assert_eq!(entry.size, binary.len() as u64);
    assert_eq!(Sha256::digest(&back), Sha256::digest(&binary));

    let empty = f.put("/work/empty", b"", None, LIMIT).await;
    assert_eq!(empty.end.unwrap().error_code, None);
    assert_eq!(f.get("/work/empty").await.unwrap().1, b"");
}

/// `docker exec C busybox ARGS…` (the test image links few applets); its stdout, trimmed.
async fn busybox(container: &str, args: &[&str]) -> String {
    let out = tokio::process::Command::new("docker")
        .args(["exec", container, "busybox"])
        .args(args)
        .output()
        .await
        .expect("docker exec");
    assert!(
        out.status.success(),
        "busybox {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// `uid:gid mode` of `path` in the container.
async fn stat(container: &str, path: &str) -> String {
    busybox(container, &["stat", "-c", "%u:%g %a", path]).await
}

#[tokio::test]
async fn a_replaced_file_keeps_its_owner_and_a_new_one_takes_its_directorys() {
    let Some(f) = fixture("files-owner").await else {
        return;
    };
    let owner = |path| stat(&f.name, path);
    // A config the server's user (uid 1000, as `steam` in game images) owns, saved from the desk.
    let last = f.put("/work/server.ini", b"a=1\n", None, LIMIT).await;
    assert_eq!(last.end.unwrap().error_code, None);
    assert_eq!(
        owner("/work/server.ini").await,
        "0:0 644",
        "/work is root's"
    );
    busybox(&f.name, &["chown", "1000:1000", "/work/server.ini"]).await;
    busybox(&f.name, &["chmod", "640", "/work/server.ini"]).await;
    let last = f
        .put("/work/server.ini", b"a=2\n", Some(0o640), LIMIT)
        .await;
    assert_eq!(last.end.unwrap().error_code, None);
    assert_eq!(owner("/work/server.ini").await, "1000:1000 640");
    assert_eq!(f.get("/work/server.ini").await.unwrap().1, b"a=2\n");

    // New files and directories in the user's directory are the directory owner's.
    files::mkdir(&f.docker, &f.path("/work/steam"))
        .await
        .unwrap();
    busybox(&f.name, &["chown", "1000:1001", "/work/steam"]).await;
    let last = f.put("/work/steam/new.cfg", b"x", None, LIMIT).await;
    assert_eq!(last.end.unwrap().error_code, None);
    assert_eq!(owner("/work/steam/new.cfg").await, "1000:1001 644");
    files::mkdir(&f.docker, &f.path("/work/steam/saves"))
        .await
        .unwrap();
    assert_eq!(owner("/work/steam/saves").await, "1000:1001 755");
    // The directory itself is untouched by what was written in it.
    assert_eq!(owner("/work/steam").await, "1000:1001 755");
}

#[tokio::test]
async fn limits_and_refusals() {
    let Some(f) = fixture("files-limits").await else {
        return;
    };
    // Over the limit: refused before a byte is sent (the test would block otherwise).
    let (tx, mut rx) = mpsc::channel(8);
    let huge = FilePutRequest {
        agent_id: "a".into(),
        container_id: f.name.clone().into(),
        path: "/work/huge".into(),
        size: 300 * 1024 * 1024,
        mode: None,
    };
    f.sessions.start_put(
        f.docker.clone(),
        huge,
        zedops_protocol::DEFAULT_MAX_FILE_SIZE,
        "_INBOX.huge".into(),
        tx,
    );
    let last = next(&mut rx).await;
    assert_eq!(last.end.unwrap().error_code, Some(ErrorCode::FileTooLarge));
    // A download over the limit too.
    let big = vec![7u8; 3000];
    f.put("/work/big", &big, None, LIMIT).await;
    let mut rx = f.start_get("/work/big", None, 1000, "_INBOX.big");
    assert_eq!(
        next(&mut rx).await.end.unwrap().error_code,
        Some(ErrorCode::FileTooLarge)
    );

    let outside = f.put("/../../tmp/x", b"x", None, LIMIT).await;
    assert_eq!(
        outside.end.unwrap().error_code,
        Some(ErrorCode::PathOutside)
    );
    let no_dir = f.put("/nowhere/x", b"x", None, LIMIT).await;
    assert_eq!(
        no_dir.end.unwrap().error_code,
        Some(ErrorCode::FileNotFound)
    );
    let dir = f.get("/etc").await.unwrap_err();
    assert_eq!(dir.error_code, Some(ErrorCode::InvalidRequest));
    assert!(dir.reason.contains("directory"), "{}", dir.reason);
    // `dir/` is not a file to write: refused, and nothing replaced (a missing `/made/` was
    // written as a file `/made`, an existing `/work` refused as a directory).
    for path in ["/made/", "/work/"] {
        let end = f.put(path, b"x", None, LIMIT).await.end.unwrap();
        assert_eq!(end.error_code, Some(ErrorCode::InvalidRequest), "{path}");
        assert!(
            end.reason.contains("give the file's name"),
            "{}",
            end.reason
        );
    }
    let missing = f.get("/made").await.unwrap_err();
    assert_eq!(missing.error_code, Some(ErrorCode::FileNotFound));
    let dir = f.put("/work", b"x", None, LIMIT).await.end.unwrap();
    assert_eq!(dir.error_code, Some(ErrorCode::FileFailed));
    assert!(dir.reason.contains("/work/NAME"), "{}", dir.reason);
}

#[tokio::test]
async fn mkdir_and_remove() {
    let Some(f) = fixture("files-dirs").await else {
        return;
    };
    let made = files::mkdir(&f.docker, &f.path("/srv/../data"))
        .await
        .unwrap();
    assert_eq!(made.path, "/data");
    let again = files::mkdir(&f.docker, &f.path("/data")).await.unwrap_err();
    assert_eq!(again.error_code, ErrorCode::FileFailed);
    let nested = files::mkdir(&f.docker, &f.path("/x/y")).await.unwrap_err();
    assert_eq!(nested.error_code, ErrorCode::FileNotFound);
    f.put("/data/save.txt", b"state", None, LIMIT).await;
    let listed = files::list(&f.docker, &f.path("/data")).await.unwrap();
    assert_eq!(
        listed
            .entries
            .iter()
            .map(|e| e.name.as_str())
            .collect::<Vec<_>>(),
        ["save.txt"]
    );

    files::remove(&f.docker, &f.path("/data/save.txt"))
        .await
        .unwrap();
    let gone = f.get("/data/save.txt").await.unwrap_err();
    assert_eq!(gone.error_code, Some(ErrorCode::FileNotFound));
    files::remove(&f.docker, &f.path("/data")).await.unwrap();
    let gone = files::remove(&f.docker, &f.path("/data"))
        .await
        .unwrap_err();
    assert_eq!(gone.error_code, ErrorCode::FileNotFound);
    let root = files::remove(&f.docker, &f.path("/")).await.unwrap_err();
    assert_eq!(root.error_code, ErrorCode::InvalidRequest);
}

#[tokio::test]
async fn a_download_stops_at_the_window() {
    let Some(f) = fixture("files-window").await else {
        return;
    };
    let data = vec![1u8; 200_000];
    f.put("/work/window", &data, None, LIMIT).await;
    let mut rx = f.start_get("/work/window", Some(50_000), LIMIT, "_INBOX.w");
    let mut got = 0;
    while got < 50_000 {
        got += next(&mut rx).await.bytes().unwrap().len();
    }
    assert_eq!(got, 50_000);
    let quiet = tokio::time::timeout(Duration::from_secs(1), rx.recv()).await;
    assert!(quiet.is_err(), "a frame beyond the window");
    f.sessions.input(StreamInput {
        inbox: "_INBOX.w".into(),
        grant: 150_000,
        ..Default::default()
    });
    loop {
        let frame = next(&mut rx).await;
        got += frame.bytes().unwrap().len();
        if frame.end.is_some() {
            break;
        }
    }
    assert_eq!(got, 200_000);
}

//! The relay's installer routes over real HTTP on port 0: `/install.sh` with the relay's URL
//! (configured, or from Host and X-Forwarded-Proto; a hostile Host is refused), agent binaries
//! and their SHA-256 computed at start, only exact known names (traversal and anything else is
//! 404), and `token create --install-command` printing the one command that enrols a server.

use std::path::Path;
use std::process::Command;

use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use zedops_relay::download::InstallerOptions;
use zedops_relay::{Options, Server, ShutdownHandle, Timeouts};

struct Relay {
    addr: std::net::SocketAddr,
    handle: ShutdownHandle,
    _db: tempfile::TempDir,
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.handle.shutdown();
    }
}

async fn start(installer: InstallerOptions) -> anyhow::Result<Relay> {
    let db = tempfile::tempdir().unwrap();
    let server = Server::new(Options {
        listen: "127.0.0.1:0".parse().unwrap(),
        db: db.path().join("relay.db").display().to_string(),
        tls: None,
        timeouts: Timeouts::default(),
        installer,
        limits: Default::default(),
    })
    .await?;
    let (addr, handle) = (server.local_addr(), server.shutdown_handle());
    tokio::spawn(async move { server.listen().await.expect("relay serves") });
    Ok(Relay {
        addr,
        handle,
        _db: db,
    })
}

struct Reply {
    status: u16,
    headers: String,
    body: Vec<u8>,
}

/// A raw HTTP/1.1 GET, so paths reach the relay exactly as written (no client normalises `..`).
async fn get(relay: &Relay, path: &str, extra_headers: &str) -> Reply {
    let mut stream = tokio::net::TcpStream::connect(relay.addr).await.unwrap();
    let host = if extra_headers.to_ascii_lowercase().contains("host:") {
        String::new()
    } else {
        format!("Host: {}\r\n", relay.addr)
    };
    let request = format!("GET {path} HTTP/1.1\r\n{host}{extra_headers}Connection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.unwrap();
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a complete response");
    let headers = String::from_utf8_lossy(&raw[..split]).to_string();
    let status = headers.split_whitespace().nth(1).unwrap().parse().unwrap();
    Reply {
        status,
        headers: headers.to_ascii_lowercase(),
        body: raw[split + 4..].to_vec(),
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn write_binaries(dir: &Path) -> Vec<u8> {
    // Larger than one streamed chunk, so the body is sent in pieces.
    let binary: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(dir.join("zedops-agent-linux-x86_64"), &binary).unwrap();
    binary
}

#[tokio::test]
async fn serves_the_script_binaries_and_checksums_and_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let binary = write_binaries(dir.path());
    // A file next to the binaries that must never be served.
    std::fs::write(dir.path().join("secret.txt"), "do not serve").unwrap();
    let relay = start(InstallerOptions {
        downloads: Some(dir.path().into()),
        public_url: None,
    })
    .await
    .unwrap();

    let reply = get(&relay, "/download/agent/linux-x86_64", "").await;
    assert_eq!(reply.status, 200);
    assert!(
        reply
            .headers
            .contains(&format!("content-length: {}", binary.len())),
        "{}",
        reply.headers
    );
    assert!(reply.headers.contains("cache-control: no-store"));
    assert_eq!(reply.body, binary);

    let reply = get(&relay, "/download/agent/linux-x86_64.sha256", "").await;
    assert_eq!(reply.status, 200);
    let expected = hex::encode(Sha256::digest(&binary));
    assert_eq!(
        text(&reply.body),
        format!("{expected}  zedops-agent-linux-x86_64\n")
    );

    // A known platform without a binary says what the admin must do.
    let reply = get(&relay, "/download/agent/linux-aarch64", "").await;
    assert_eq!(reply.status, 404);
    assert!(
        text(&reply.body).contains("zedops-agent-linux-aarch64 in the --downloads directory"),
        "{}",
        text(&reply.body)
    );
    assert_eq!(
        get(&relay, "/download/agent/linux-aarch64.sha256", "")
            .await
            .status,
        404
    );

    for path in [
        "/download/agent/../../etc/passwd",
        "/download/agent/..%2F..%2Fetc%2Fpasswd",
        "/download/agent/..%2Fsecret.txt",
        "/download/agent/%2E%2E/secret.txt",
        "/download/agent/secret.txt",
        "/download/agent/zedops-agent-linux-x86_64",
        "/download/agent/linux-x86_64.sha256.sha256",
        "/download/agent/LINUX-X86_64",
        "/download/agent/linux-x86_64/",
        "/download/agent/linux-x86_64%00",
        "/download/agent/linux-riscv64",
        "/download/agent/",
        "/download/agent",
        "/download/secret.txt",
    ] {
        let reply = get(&relay, path, "").await;
        assert_eq!(reply.status, 404, "{path} was served");
        assert!(
            !text(&reply.body).contains("do not serve"),
            "{path} leaked a file"
        );
    }

    // The script names the relay as the request reached it.
    let reply = get(&relay, "/install.sh", "").await;
    assert_eq!(reply.status, 200);
    let script = text(&reply.body);
    assert!(script.starts_with("#!/bin/sh\n"));
    assert!(
        script.contains(&format!("RELAY_URL='http://{}'", relay.addr)),
        "{script}"
    );
    assert!(!script.contains("@ZEDOPS_RELAY_URL@"));
    let reply = get(
        &relay,
        "/install.sh",
        "Host: relay.example.com\r\nX-Forwarded-Proto: https\r\n",
    )
    .await;
    assert!(text(&reply.body).contains("RELAY_URL='https://relay.example.com'"));
    // A Host that would inject shell code is refused, not pasted into the script.
    let reply = get(&relay, "/install.sh", "Host: x'$(reboot)'\r\n").await;
    assert_eq!(reply.status, 400);
    assert!(text(&reply.body).contains("--public-url"));
}

#[tokio::test]
async fn a_configured_public_url_wins_and_bad_settings_stop_the_start() {
    let dir = tempfile::tempdir().unwrap();
    write_binaries(dir.path());
    let relay = start(InstallerOptions {
        downloads: Some(dir.path().into()),
        public_url: Some("https://relay.example.com/zedops/".into()),
    })
    .await
    .unwrap();
    let reply = get(&relay, "/install.sh", "Host: other.example.com\r\n").await;
    assert!(text(&reply.body).contains("RELAY_URL='https://relay.example.com/zedops'"));

    let err = start(InstallerOptions {
        downloads: Some(dir.path().join("missing")),
        public_url: None,
    })
    .await
    .err()
    .unwrap();
    assert!(format!("{err:#}").contains("does not exist"), "{err:#}");
    let err = start(InstallerOptions {
        downloads: None,
        public_url: Some("https://x'; rm -rf /".into()),
    })
    .await
    .err()
    .unwrap();
    assert!(format!("{err:#}").contains("not usable"), "{err:#}");

    // Without --downloads the script is still served, and downloads say what is missing.
    let bare = start(InstallerOptions::default()).await.unwrap();
    assert_eq!(get(&bare, "/install.sh", "").await.status, 200);
    assert_eq!(
        get(&bare, "/download/agent/linux-x86_64", "").await.status,
        404
    );
}

#[test]
fn token_create_prints_the_install_command() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("relay.db").display().to_string();
    // `zedops-relay token create --install-command`, with `--public-url URL` when given.
    let install_command = |public_url: Option<&str>| {
        Command::new(env!("CARGO_BIN_EXE_zedops-relay"))
            .arg("--db")
            .arg(&db)
            .args(["token", "create", "--install-command"])
            .args(
                public_url
                    .map(|url| ["--public-url", url])
                    .into_iter()
                    .flatten(),
            )
            .env_remove("ZEDOPS_PUBLIC_URL")
            .output()
            .unwrap()
    };
    let out = install_command(Some("https://relay.example.com/"));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let line = text(&out.stdout);
    let token = line
        .trim_end()
        .strip_prefix("curl -fsSL https://relay.example.com/install.sh | ZEDOPS_TOKEN=")
        .unwrap_or_else(|| panic!("not the install command: {line:?}"));
    let token = token
        .strip_suffix(" sh")
        .unwrap_or_else(|| panic!("not the install command: {line:?}"));
    assert!(token.starts_with("zr_") && !token.contains(' '), "{line:?}");
    assert_eq!(line.lines().count(), 1, "the command alone on stdout");

    // Whether the command succeeded as `success` says, and its stderr says `part`.
    let says = |public_url: Option<&str>, success: bool, part: &str| {
        let out = install_command(public_url);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.success(), success, "{stderr}");
        assert!(stderr.contains(part), "not {part:?} in: {stderr}");
    };
    says(None, false, "--public-url");
    says(Some("relay.example.com"), false, "http:// or https://");
    says(Some("http://10.0.0.5:7878"), true, "plaintext");
}

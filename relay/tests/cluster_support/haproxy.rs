//! HAProxy (Debian package `haproxy`) in front of relays, running the configuration the docs
//! ship (`packaging/cluster/haproxy.cfg`) with only its addresses, ports and certificate path
//! changed for loopback. Under `CI=true` a missing `haproxy` fails the test.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The configuration shipped in packaging/ (and shown by docs/CLUSTER.md).
const SHIPPED: &str = include_str!("../../../packaging/cluster/haproxy.cfg");

/// A running `haproxy`, killed when dropped.
pub struct TestHaproxy {
    child: Child,
    dir: tempfile::TempDir,
    /// `127.0.0.1:PORT` of the TLS frontend (`bind :443` in the shipped file).
    pub tls_addr: String,
    /// `127.0.0.1:PORT` of the plain frontend (`bind :80`), which redirects to HTTPS.
    pub plain_addr: String,
}

impl TestHaproxy {
    /// HAProxy in front of `relays` (`127.0.0.1:PORT` each, at most three: the shipped file
    /// names three), serving `cert` and `key` (PEM) on its TLS frontend. `None` (after saying
    /// why) when haproxy is not installed outside CI.
    pub fn start(relays: &[&str], cert: &Path, key: &Path) -> Option<Self> {
        let bin = find_bin()?;
        let dir = tempfile::tempdir().expect("temp dir");
        // HAProxy takes the certificate and its key in one file.
        let pem = dir.path().join("relay.pem");
        let both = format!(
            "{}{}",
            std::fs::read_to_string(cert).expect("certificate"),
            std::fs::read_to_string(key).expect("key")
        );
        std::fs::write(&pem, both).expect("write the PEM for haproxy");
        let (tls, plain) = (super::free_port(), super::free_port());
        let tls_addr = format!("127.0.0.1:{tls}");
        let plain_addr = format!("127.0.0.1:{plain}");
        let config = templated(relays, &tls_addr, &plain_addr, &pem);
        let path = dir.path().join("haproxy.cfg");
        std::fs::write(&path, &config).expect("write haproxy.cfg");

        let check = Command::new(&bin)
            .args(["-c", "-n", "4000", "-f"])
            .arg(&path)
            .output()
            .expect("run haproxy -c");
        assert!(
            check.status.success(),
            "haproxy refuses the shipped configuration:\n{}{}\n{config}",
            String::from_utf8_lossy(&check.stdout),
            String::from_utf8_lossy(&check.stderr)
        );
        let log = std::fs::File::create(dir.path().join("haproxy.log")).expect("log");
        let child = Command::new(&bin)
            // -db: in the foreground, so the test owns (and kills) the process. -n: the shipped
            // `maxconn 100000` needs 200,020 descriptors, more than test machines allow (20,000
            // here); a few thousand connections are plenty for a test.
            .args(["-db", "-n", "4000", "-f"])
            .arg(&path)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start haproxy");
        let proxy = Self {
            child,
            dir,
            tls_addr,
            plain_addr,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(&proxy.tls_addr).is_err() {
            assert!(
                Instant::now() < deadline,
                "haproxy did not listen within 10 s; its log:\n{}",
                proxy.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(proxy)
    }

    /// `https://127.0.0.1:PORT`: what agents and apps are given.
    pub fn url(&self) -> String {
        format!("https://{}", self.tls_addr)
    }

    /// What haproxy logged so far (requests, and servers going down and up).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("haproxy.log")).unwrap_or_default()
    }
}

impl Drop for TestHaproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The shipped file with loopback addresses: the frontends on `tls` and `plain`, the servers
/// at `relays` (the shipped file's servers beyond those are left out), the certificate at
/// `pem`, and the log to stderr (no syslog here). Panics when the shipped file no longer has
/// a line this replaces, so the test never runs a configuration other than the shipped one.
fn templated(relays: &[&str], tls: &str, plain: &str, pem: &Path) -> String {
    let mut config = SHIPPED.to_string();
    let mut replace = |from: &str, to: &str| {
        assert_eq!(
            config.matches(from).count(),
            1,
            "packaging/cluster/haproxy.cfg no longer has {from:?} once; update the test with it"
        );
        config = config.replace(from, to);
    };
    replace("log /dev/log local0", "log stderr format raw local0");
    replace(
        "bind :443 ssl crt /etc/haproxy/relay.example.com.pem",
        &format!("bind {tls} ssl crt {}", pem.display()),
    );
    replace("bind :80\n", &format!("bind {plain}\n"));
    assert!(relays.len() <= 3, "the shipped file names three relays");
    for n in 1..=3 {
        let server = format!("    server relay-{n} relay-{n}.internal:7878 check\n");
        match relays.get(n - 1) {
            Some(addr) => replace(&server, &format!("    server relay-{n} {addr} check\n")),
            None => replace(&server, ""),
        }
    }
    config
}

/// `haproxy` on the PATH or in /usr/sbin (Debian); `None` (after saying why) when it is not
/// installed outside CI.
fn find_bin() -> Option<PathBuf> {
    let path = std::env::var("PATH").unwrap_or_default();
    let found = std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin")])
        .map(|dir| dir.join("haproxy"))
        .find(|bin| bin.is_file());
    if found.is_none() {
        let problem = "haproxy is not installed (Debian package haproxy); run scripts/setup";
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("{problem}");
        }
        eprintln!("skipping: {problem}");
    }
    found
}

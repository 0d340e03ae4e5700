//! A real PostgreSQL server for tests: Debian's `postgresql` binaries run `initdb` in a temporary
//! directory and `postgres` on a free loopback port, as the `postgres` user when the tests run
//! as root (initdb refuses root). The server stops when this is dropped, and also when the test
//! process dies: it runs under a shell that stops it once the test's pipe to that shell closes.
//! Under `CI=true` a missing PostgreSQL fails the test.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use crate::server::{free_port, wait_started};

/// Where Debian installs the server binaries (`/usr/lib/postgresql/<major>/bin`).
const DEBIAN_DIR: &str = "/usr/lib/postgresql";
/// The superuser initdb creates; local connections need no password (`trust`).
pub const SUPERUSER: &str = "postgres";

/// Runs `postgres` in the background and stops it (fast shutdown) when a line arrives on stdin
/// or stdin closes. Unless the line was `keep` (a stop before a restart), the whole directory
/// goes too: the shared server is never dropped, and this cleans up after it.
const KEEPER: &str = r#"bin="$1"; top="$2"; shift 2
"$bin/postgres" "$@" &
pid=$!
read -r line
kill -INT "$pid" 2>/dev/null
wait "$pid"
[ "$line" = keep ] || rm -rf "$top""#;

/// A running PostgreSQL server in a temporary directory.
pub struct TestPostgres {
    bin: PathBuf,
    dir: tempfile::TempDir,
    port: u16,
    tls: bool,
    as_postgres: bool,
    keeper: Mutex<Option<Child>>,
    databases: AtomicU32,
}

impl TestPostgres {
    /// A new server of its own (for a test that stops it), or `None` (after saying why) when
    /// PostgreSQL is not installed outside CI.
    pub fn start() -> Option<Self> {
        Self::launch(None)
    }

    /// Like [`start`](Self::start), accepting TLS connections only (with `pki`'s
    /// `localhost`/`127.0.0.1` certificate): a plain connection is refused by pg_hba.conf.
    pub fn start_with_tls(pki: &crate::TestPki) -> Option<Self> {
        Self::launch(Some(pki))
    }

    fn launch(tls: Option<&crate::TestPki>) -> Option<Self> {
        let Some(bin) = find_bin() else {
            let problem = format!(
                "PostgreSQL is not installed (no {DEBIAN_DIR}/*/bin/initdb); run scripts/setup"
            );
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("{problem} (CI=true: the PostgreSQL tests need a real server)");
            }
            eprintln!("SKIPPED: {problem}");
            return None;
        };
        let as_postgres = running_as_root();
        let dir = tempfile::Builder::new()
            .prefix("zedops-pg-")
            .tempdir()
            .expect("a temp dir for PostgreSQL");
        if as_postgres {
            run(Command::new("chown")
                .arg(format!("{SUPERUSER}:{SUPERUSER}"))
                .arg(dir.path()));
        }
        let data = dir.path().join("data");
        let mut initdb = command(as_postgres, &bin.join("initdb"));
        initdb.arg("-D").arg(&data).args([
            "-U",
            SUPERUSER,
            "--auth=trust",
            "--no-sync",
            "-E",
            "UTF8",
        ]);
        run(&mut initdb);
        if let Some(pki) = tls {
            // The server reads its key only when the key is its own and private.
            for (from, name) in [(&pki.cert, "server.crt"), (&pki.key, "server.key")] {
                let to = data.join(name);
                std::fs::copy(from, &to).expect("copy the test certificate");
                run(Command::new("chmod").arg("600").arg(&to));
                if as_postgres {
                    run(Command::new("chown")
                        .arg(format!("{SUPERUSER}:{SUPERUSER}"))
                        .arg(&to));
                }
            }
            std::fs::write(
                data.join("pg_hba.conf"),
                "local all all trust\nhostssl all all 127.0.0.1/32 trust\n",
            )
            .expect("write pg_hba.conf");
        }
        let server = Self {
            bin,
            dir,
            port: free_port(),
            tls: tls.is_some(),
            as_postgres,
            keeper: Mutex::new(None),
            databases: AtomicU32::new(0),
        };
        server.resume();
        Some(server)
    }

    /// One server for the whole test binary (each test takes its own [`database`]), or `None`
    /// as [`start`](Self::start) says.
    ///
    /// [`database`]: Self::database
    pub fn shared() -> Option<&'static TestPostgres> {
        static SHARED: OnceLock<Option<TestPostgres>> = OnceLock::new();
        SHARED.get_or_init(Self::start).as_ref()
    }

    /// The loopback port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// URL of database `name` on this server.
    pub fn url(&self, name: &str) -> String {
        format!("postgres://{SUPERUSER}@127.0.0.1:{}/{name}", self.port)
    }

    /// Creates a new, empty database and returns its URL.
    pub fn database(&self) -> String {
        let n = self.databases.fetch_add(1, Ordering::Relaxed);
        let name = format!("zedops_{}_{n}", std::process::id());
        self.psql(&format!("CREATE DATABASE {name}"));
        self.url(&name)
    }

    /// Runs SQL as the superuser in the `postgres` database; panics when it fails.
    pub fn psql(&self, sql: &str) {
        run(Command::new(self.bin.join("psql"))
            .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1"])
            .args([
                "-p",
                &self.port.to_string(),
                "-U",
                SUPERUSER,
                "-d",
                "postgres",
                "-c",
                sql,
            ]));
    }

    /// Stops the server (fast shutdown: open connections are cut) and waits until it is gone.
    pub fn stop(&self) {
        let Some(mut keeper) = self.keeper.lock().unwrap().take() else {
            return;
        };
        if let Some(mut stdin) = keeper.stdin.take() {
            let _ = stdin.write_all(b"keep\n");
        }
        let _ = keeper.wait();
    }

    /// Starts the server again on the same port and data after [`stop`](Self::stop); waits
    /// until it accepts connections.
    pub fn resume(&self) {
        let mut keeper = self.keeper.lock().unwrap();
        if keeper.is_some() {
            return;
        }
        let log = std::fs::File::create(self.dir.path().join("postgres.log"))
            .expect("the PostgreSQL log file");
        let mut command = command(self.as_postgres, Path::new("sh"));
        command
            .args(["-c", KEEPER, "keeper"])
            .arg(&self.bin)
            .arg(self.dir.path())
            .arg("-D")
            .arg(self.dir.path().join("data"))
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-k"])
            .arg(self.dir.path())
            // A test server: durability is not wanted, speed is.
            .args(["-c", "fsync=off", "-c", "synchronous_commit=off"])
            .args(["-c", "full_page_writes=off", "-c", "max_connections=300"])
            .args(if self.tls {
                &[
                    "-c",
                    "ssl=on",
                    "-c",
                    "ssl_cert_file=server.crt",
                    "-c",
                    "ssl_key_file=server.key",
                ][..]
            } else {
                &[][..]
            })
            .stdin(Stdio::piped())
            .stdout(log.try_clone().expect("log"))
            .stderr(log);
        *keeper = Some(command.spawn().expect("start postgres"));
        drop(keeper);
        wait_started(
            "PostgreSQL",
            Duration::from_secs(60),
            Duration::from_millis(100),
            &self.dir.path().join("postgres.log"),
            || {
                Command::new(self.bin.join("pg_isready"))
                    .args(["-q", "-h", "127.0.0.1", "-p", &self.port.to_string()])
                    .status()
                    .is_ok_and(|s| s.success())
            },
        );
    }
}

impl Drop for TestPostgres {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The newest `/usr/lib/postgresql/<major>/bin` with initdb, or `ZEDOPS_PG_BIN`.
fn find_bin() -> Option<PathBuf> {
    if let Ok(dir) = std::env::var("ZEDOPS_PG_BIN") {
        return Some(PathBuf::from(dir));
    }
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir(DEBIAN_DIR)
        .ok()?
        .filter_map(|e| {
            let e = e.ok()?;
            let major = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((major, bin))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, bin)| bin)
}

fn running_as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.trim_ascii() == b"0")
}

/// `program` as the `postgres` user when `as_postgres`, else as ourselves.
fn command(as_postgres: bool, program: &Path) -> Command {
    if as_postgres {
        let mut c = Command::new("runuser");
        c.args(["-u", SUPERUSER, "--"]).arg(program);
        c
    } else {
        Command::new(program)
    }
}

fn run(command: &mut Command) {
    let out = command
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{command:?}: {e}"));
    if !out.status.success() {
        let _ = std::io::stderr().write_all(&out.stderr);
        panic!("{command:?} failed: {}", out.status);
    }
}

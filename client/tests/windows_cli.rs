//! The Windows `zedops.exe`, cross-built with mingw-w64 and run under Wine against a real relay,
//! a real agent and the real Docker engine on loopback: `login` keeps the device token in
//! Windows Credential Manager (Wine's, checked in its registry, not in plaintext), `agents`, `ps`,
//! `stop` and `start` run on the stored token, `logout` deletes the credential, the config file
//! lands in %APPDATA%, and errors print exactly as the Linux binary prints them.
//!
//! Needs `x86_64-w64-mingw32-gcc` (Debian: gcc-mingw-w64-x86-64), `wine64` (8.0) and the Rust
//! target x86_64-pc-windows-gnu; scripts/setup and scripts/check-cross install them. Under CI=true
//! a missing one fails the test; otherwise it is skipped with the reason. The exe is built into
//! target/cross (or $ZEDOPS_CROSS_TARGET_DIR) so the main target directory is not locked.
//!
//! Wine 8.0 lacks bcryptprimitives.dll, whose `ProcessPrng` every Rust program for Windows
//! imports: the test builds a replacement from packaging/wine-shim/processprng.c into the
//! temporary Wine prefix's system32 (real Windows has its own).

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;
use support::{json, run, text};
use zedops_protocol::Role;
use zedops_testkit::{TEST_PASSWORD, TestAgent, TestContainers, TestRelay, require_docker};

const TARGET: &str = "x86_64-pc-windows-gnu";
const MINGW_GCC: &str = "x86_64-w64-mingw32-gcc";

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// Says why the test cannot run here: a failure under CI=true, a loud skip otherwise.
fn missing(what: &str) -> Option<std::convert::Infallible> {
    let message = format!("{what}; run scripts/setup and scripts/check-cross");
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("CI=true and {message}");
    }
    eprintln!("SKIPPED Windows CLI under Wine: {message}");
    None
}

fn on_path(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(name))
            .find(|path| path.is_file())
    })
}

/// Debian's wine64 package puts the 64-bit loader in /usr/lib/wine, not on PATH.
fn find_wine() -> Option<PathBuf> {
    on_path("wine64")
        .or_else(|| Some(PathBuf::from("/usr/lib/wine/wine64")).filter(|p| p.is_file()))
        .or_else(|| on_path("wine"))
}

/// A Wine prefix of this test only, with the ProcessPrng shim and zedops.exe in it.
struct Wine {
    wine: PathBuf,
    prefix: tempfile::TempDir,
    exe: PathBuf,
}

impl Wine {
    fn command(&self) -> Command {
        let mut cmd = Command::new(&self.wine);
        self.environment(&mut cmd);
        cmd
    }

    fn environment(&self, cmd: &mut Command) {
        for (key, _) in std::env::vars() {
            if key.starts_with("ZEDOPS_") || key.starts_with("WINE") {
                cmd.env_remove(key);
            }
        }
        cmd.env("WINEPREFIX", self.prefix.path())
            // Wine's own fixme/err lines would mix with the program's stderr.
            .env("WINEDEBUG", "-all")
            // No Mono or Gecko installer prompts when the prefix is created.
            .env("WINEDLLOVERRIDES", "mscoree,mshtml=")
            .env_remove("RUST_LOG")
            .env_remove("DISPLAY");
    }

    /// `zedops.exe ARGS` with `env` added and `stdin` written.
    async fn zedops(&self, env: &[(&str, &str)], args: &[&str], stdin: &str) -> Output {
        let mut cmd = tokio::process::Command::from(self.command());
        cmd.arg(&self.exe).args(args);
        for (key, value) in env {
            cmd.env(key, value);
        }
        let mut output = run(&mut cmd, stdin).await;
        output.stderr = without_wine_lines(&output.stderr);
        output
    }

    /// Waits until this prefix's wineserver has exited, which writes the registry to disk.
    fn settle(&self) {
        let server = self.wine.with_file_name("wineserver");
        let server = if server.is_file() {
            server
        } else {
            PathBuf::from("wineserver")
        };
        let mut cmd = Command::new(server);
        self.environment(&mut cmd);
        let status = cmd.arg("-w").status().expect("wineserver -w");
        assert!(status.success());
    }

    /// The current user's registry file (HKEY_CURRENT_USER) as Wine saved it.
    fn user_registry(&self) -> String {
        self.settle();
        std::fs::read_to_string(self.prefix.path().join("user.reg")).expect("user.reg")
    }

    /// Names of the generic credentials in Wine's Credential Manager.
    fn credentials(&self) -> Vec<String> {
        let out = self
            .command()
            .args(["reg", "query", r"HKCU\Software\Wine\Credential Manager"])
            .output()
            .expect("wine reg query");
        text(&out.stdout)
            .lines()
            .filter_map(|line| line.trim().split_once(r"Credential Manager\"))
            .map(|(_, name)| name.to_string())
            .collect()
    }

    /// The config file the CLI wrote under the Windows user's %APPDATA%.
    fn appdata_config(&self) -> Option<PathBuf> {
        let users = self.prefix.path().join("drive_c/users");
        std::fs::read_dir(users)
            .ok()?
            .filter_map(Result::ok)
            .map(|user| {
                user.path()
                    .join("AppData/Roaming/zedops/config/config.json")
            })
            .find(|path| path.is_file())
    }
}

impl Drop for Wine {
    fn drop(&mut self) {
        // Only this prefix's wineserver: WINEPREFIX selects it.
        let server = self.wine.with_file_name("wineserver");
        let mut cmd = Command::new(if server.is_file() {
            server
        } else {
            PathBuf::from("wineserver")
        });
        self.environment(&mut cmd);
        let _ = cmd.arg("-k").status();
    }
}

/// Builds zedops.exe and the shim, creates the prefix. None (after saying why) when a tool is
/// missing outside CI.
fn prepare() -> Option<Wine> {
    let Some(wine) = find_wine() else {
        missing("wine64 is not installed (Debian: wine64)")?;
        unreachable!()
    };
    if on_path(MINGW_GCC).is_none() {
        missing(&format!(
            "{MINGW_GCC} is not installed (Debian: gcc-mingw-w64-x86-64)"
        ))?;
    }
    let sysroot = Command::new("rustc")
        .args(["--print", "sysroot"])
        .output()
        .expect("rustc runs");
    let sysroot = PathBuf::from(text(&sysroot.stdout).trim());
    if !sysroot.join("lib/rustlib").join(TARGET).is_dir() {
        missing(&format!(
            "the Rust target {TARGET} is not installed (`rustup target add {TARGET}`)"
        ))?;
    }
    let root = workspace();
    let target_dir = std::env::var_os("ZEDOPS_CROSS_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target/cross"));
    let build = Command::new(env!("CARGO"))
        .current_dir(&root)
        .env("CARGO_TARGET_DIR", &target_dir)
        .args([
            "build",
            "-p",
            "zedops-client",
            "--bin",
            "zedops",
            "--target",
            TARGET,
        ])
        .status()
        .expect("cargo runs");
    assert!(
        build.success(),
        "cross-building zedops.exe failed (is the target installed? `rustup target add {TARGET}`)"
    );
    let built = target_dir.join(TARGET).join("debug/zedops.exe");

    let prefix = tempfile::tempdir().unwrap();
    let mut wine = Wine {
        wine,
        prefix,
        exe: PathBuf::new(),
    };
    let boot = wine
        .command()
        .args(["wineboot", "--init"])
        .output()
        .expect("wineboot runs");
    assert!(boot.status.success(), "wineboot: {}", text(&boot.stderr));
    let system32 = wine.prefix.path().join("drive_c/windows/system32");
    assert!(system32.is_dir(), "wineboot made no system32");
    let shim = Command::new(MINGW_GCC)
        .args(["-shared", "-O2", "-Wall", "-Werror", "-o"])
        .arg(system32.join("bcryptprimitives.dll"))
        .arg(root.join("packaging/wine-shim/processprng.c"))
        .args(["-lbcrypt", "-Wl,--kill-at"])
        .output()
        .expect("mingw gcc runs");
    assert!(shim.status.success(), "shim: {}", text(&shim.stderr));
    let dir = wine.prefix.path().join("drive_c/zedops");
    std::fs::create_dir_all(&dir).unwrap();
    wine.exe = dir.join("zedops.exe");
    std::fs::copy(built, &wine.exe).unwrap();
    Some(wine)
}

/// `stderr` without the lines Wine itself writes there. WINEDEBUG silences its debug channels,
/// but not the client library's own complaints about its wineserver connection (under load,
/// e.g. "wine client error:10c: sendmsg: Socket operation on non-socket" as the process exits);
/// they are Wine's, not the program's.
fn without_wine_lines(stderr: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(stderr);
    text.split_inclusive('\n')
        .filter(|line| !line.starts_with("wine client error:"))
        .collect::<String>()
        .into_bytes()
}

/// The Linux binary with a clean environment and `token` headless, for comparing error lines.
async fn linux(relay: &str, token: &str, args: &[&str]) -> Output {
    let config = tempfile::tempdir().unwrap();
    support::headless(relay, token, config.path(), args, "").await
}

/// Same exit code, same stdout and same stderr on both systems.
fn same_output(windows: &Output, linux: &Output, what: &str) {
    assert_eq!(
        (
            windows.status.code(),
            text(&windows.stdout),
            text(&windows.stderr)
        ),
        (
            linux.status.code(),
            text(&linux.stdout),
            text(&linux.stderr)
        ),
        "{what}: Windows (left) and Linux (right) differ"
    );
}

#[tokio::test]
async fn the_windows_cli_keeps_its_token_in_credential_manager_and_drives_containers() {
    let Some(docker) = require_docker().await else {
        return;
    };
    let Some(wine) = tokio::task::spawn_blocking(prepare).await.unwrap() else {
        return;
    };
    // The loader's errors on, to name a missing DLL if the exe cannot start.
    let version = wine
        .zedops(&[("WINEDEBUG", "-all,err+module")], &["--version"], "")
        .await;
    assert!(
        version.status.success(),
        "zedops.exe does not start under Wine: {}",
        text(&version.stderr)
    );
    assert_eq!(
        text(&version.stdout),
        format!("zedops {}\n", env!("CARGO_PKG_VERSION"))
    );

    let mut containers = TestContainers::new(&docker);
    let web = containers.sleeper("wine-web").await;
    let relay = TestRelay::builder().start().await;
    let agent = TestAgent::builder(&relay).name("win-host").online().await;
    // Creates the user "ops" with the test password (its token is for the Linux binary).
    let linux_token = relay.login("ops", Role::Operator).await;
    let canonical = zedops_client::store::keyring_user(&relay.url).unwrap();

    // Login: the password from stdin, the token into Credential Manager.
    let login = wine
        .zedops(
            &[],
            &[
                "--relay",
                &relay.url,
                "login",
                "--user",
                "ops",
                "--password-stdin",
            ],
            &format!("{TEST_PASSWORD}\n"),
        )
        .await;
    assert!(login.status.success(), "login: {}", text(&login.stderr));
    assert_eq!(
        text(&login.stderr),
        format!("Logged in to {canonical} as ops (operator)\n")
    );
    assert!(login.stdout.is_empty(), "the token is not printed");
    // keyring's Windows store names the generic credential `<user>.<service>`.
    let credential = format!(
        "Generic: {canonical}.{}",
        zedops_client::store::KEYRING_SERVICE
    );
    assert_eq!(wine.credentials(), vec![credential.clone()]);
    let registry = wine.user_registry();
    assert!(
        registry.contains(&format!(
            "[Software\\\\Wine\\\\Credential Manager\\\\{credential}]"
        )),
        "the credential is not in the registry file"
    );
    assert!(
        !registry.contains("zd_"),
        "the device token is in Wine's registry in plaintext"
    );
    // The config file (no secret) in %APPDATA%\zedops\config.
    let config = wine.appdata_config().expect("config.json under %APPDATA%");
    let config: Value = serde_json::from_str(&std::fs::read_to_string(config).unwrap()).unwrap();
    assert_eq!(config["relay"], canonical.as_str());
    assert_eq!(config["user"], "ops");

    // The stored token and the remembered relay: no ZEDOPS_TOKEN, no --relay.
    let agents = json(&wine.zedops(&[], &["agents", "--json"], "").await);
    assert_eq!(agents["count"], 1, "{agents}");
    assert_eq!(agents["agents"][0]["name"], "win-host");
    assert_eq!(agents["agents"][0]["online"], true);

    let table = wine.zedops(&[], &["ps", "--agent", "win-host"], "").await;
    assert!(table.status.success(), "{}", text(&table.stderr));
    let table = text(&table.stdout);
    assert!(table.starts_with("ID"), "{table}");
    let row = table
        .lines()
        .find(|l| l.contains(&web))
        .unwrap_or_else(|| panic!("no row for {web}: {table}"));
    assert!(row.contains("running"), "{row}");

    let stop = wine
        .zedops(&[], &["stop", "--agent", "win-host", &web], "")
        .await;
    assert!(stop.status.success(), "{}", text(&stop.stderr));
    assert_eq!(text(&stop.stderr), format!("stopped {web} on win-host\n"));
    assert_eq!(containers.state(&web).await, "exited");
    let start = json(
        &wine
            .zedops(&[], &["start", "--agent", "win-host", &web, "--json"], "")
            .await,
    );
    assert_eq!(start["success"], true, "{start}");
    assert_eq!(containers.state(&web).await, "running");

    // Errors: the same lines and exit codes as the Linux binary.
    for args in [
        &["ps", "--agent", "nowhere"][..],
        &["stop", "--agent", "win-host", "no-such-box"][..],
        &["ps", "--bogus"][..],
        &["restart", "--agent", "win-host"][..],
    ] {
        // The Linux binary is given the relay as ZEDOPS_RELAY (clap's usage lines show it), and
        // its own token as ZEDOPS_TOKEN; the Windows one keeps using its stored token.
        let windows = wine.zedops(&[("ZEDOPS_RELAY", &relay.url)], args, "").await;
        let linux = linux(&relay.url, &linux_token, args).await;
        assert_ne!(windows.status.code(), Some(0), "{args:?}");
        same_output(&windows, &linux, &args.join(" "));
    }
    // A forged token is refused the same way.
    let forged = [("ZEDOPS_TOKEN", "zd_forged"), ("ZEDOPS_RELAY", &relay.url)];
    same_output(
        &wine.zedops(&forged, &["agents"], "").await,
        &linux(&relay.url, "zd_forged", &["agents"]).await,
        "forged token",
    );
    // An unreachable relay: the same sentence around the system's own words for the refusal
    // (Windows: "Connection refused. (os error 10061)", Linux: "… (os error 111)").
    let unreachable = "http://127.0.0.1:1";
    let windows = wine
        .zedops(
            &[("ZEDOPS_TOKEN", "zd_x")],
            &["--relay", unreachable, "agents"],
            "",
        )
        .await;
    let windows_err = text(&windows.stderr);
    let linux_err = text(&linux(unreachable, "zd_x", &["agents"]).await.stderr);
    let head = "error: RELAY_UNREACHABLE: cannot reach the relay at ws://127.0.0.1:1/ws/client: ";
    let tail = "; check the URL, your network, and that the relay is running\n";
    assert_eq!(windows.status.code(), Some(1));
    for err in [&windows_err, &linux_err] {
        assert!(err.starts_with(head) && err.ends_with(tail), "{err}");
    }

    // Logout ends the session and deletes the credential.
    let logout = wine.zedops(&[], &["logout"], "").await;
    assert!(logout.status.success(), "{}", text(&logout.stderr));
    assert_eq!(text(&logout.stderr), format!("Logged out of {canonical}\n"));
    assert_eq!(wine.credentials(), Vec::<String>::new());
    assert!(!wine.user_registry().contains(&credential));
    let after = wine.zedops(&[], &["agents"], "").await;
    assert_eq!(after.status.code(), Some(1), "{}", text(&after.stderr));
    assert_eq!(
        text(&after.stderr),
        format!(
            "error: NOT_LOGGED_IN: {}\n",
            zedops_client::ClientError::NotLoggedIn {
                relay: Some(canonical.clone())
            }
        )
    );
    // Another session of the same user is untouched.
    let other = linux(&relay.url, &linux_token, &["agents"]).await;
    assert!(other.status.success(), "{}", text(&other.stderr));

    agent.kill().await;
}

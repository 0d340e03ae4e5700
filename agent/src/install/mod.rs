//! `zedops-agent install` and `uninstall`: put the agent on a Linux server as a hardened systemd
//! service running as its own user (in the `docker` group, never root), or take it off again.
//!
//! Everything is declarative: install makes the files what the inputs say and compares before
//! writing, so running it twice with the same inputs changes nothing. `root` installs into a
//! prefix (packaging, tests): paths land under it, nothing outside it is touched, and the
//! commands that would change the system are printed instead of run.

mod files;
mod system;
pub mod unit;

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use zedops_protocol::MAX_TOKEN_LEN;
use zedops_protocol::payload::is_valid_name;
use zedops_transport::RelayUrl;

use files::Owner;
use system::System;
use unit::Config;

use crate::status::{self, Status};

/// The service's system user; it owns the data directory and the configuration file.
pub const USER: &str = "zedops-agent";
/// The group whose members may use the Docker socket.
pub const DOCKER_GROUP: &str = "docker";
/// The unit's name.
pub const SERVICE: &str = "zedops-agent.service";
/// Where install copies the binary.
pub const BIN_PATH: &str = "/usr/local/bin/zedops-agent";
/// Where a package manager puts the binary; used in place, and never removed by uninstall.
pub const PACKAGED_BIN_PATH: &str = "/usr/bin/zedops-agent";
/// The unit file (the administrator's unit directory, which overrides a packaged unit).
pub const UNIT_PATH: &str = "/etc/systemd/system/zedops-agent.service";
/// Configuration: the settings file and a copy of a private CA.
pub const CONFIG_DIR: &str = "/etc/zedops-agent";
pub const CONFIG_PATH: &str = "/etc/zedops-agent/agent.env";
pub const CA_PATH: &str = "/etc/zedops-agent/ca.pem";
/// A release key pinned at install (`--trusted-key`): agent updates signed by it are accepted
/// beside those signed by the key built in. Root's, readable by the service.
pub const TRUSTED_KEY_PATH: &str = "/etc/zedops-agent/release-key.pub";
/// The agent's data directory: its permanent credentials after enrolment.
pub const DATA_DIR: &str = "/var/lib/zedops-agent";
/// How long install waits for the started service to enrol and connect, by default.
pub const DEFAULT_WAIT: Duration = Duration::from_secs(60);
/// Journal lines shown when the service did not connect.
const JOURNAL_LINES: u32 = 20;

/// What `zedops-agent install` was asked for.
pub struct InstallOptions {
    /// Relay base URL.
    pub relay: String,
    /// Single-use registration token; may be left out when the agent has enrolled already.
    pub token: Option<String>,
    /// Name to enrol under (the host name when left out).
    pub name: Option<String>,
    /// Install into this prefix instead of the live system.
    pub root: Option<PathBuf>,
    /// Enable and start the service (or restart it when something changed).
    pub start: bool,
    /// A private CA certificate (PEM) the relay's certificate is signed by; copied into the
    /// configuration directory, since the service cannot read home directories.
    pub ca_file: Option<PathBuf>,
    /// Allow plaintext to a relay that is not on this machine.
    pub insecure: bool,
    /// A minisign public key file to pin as a trusted release key (copied to
    /// [`TRUSTED_KEY_PATH`] and named in the configuration).
    pub trusted_key: Option<PathBuf>,
    /// The binary to install (normally the running one).
    pub binary: PathBuf,
    /// How long to wait for the started service to enrol and connect (zero: do not wait).
    pub wait: Duration,
}

impl std::fmt::Debug for InstallOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InstallOptions")
            .field("relay", &self.relay)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("name", &self.name)
            .field("root", &self.root)
            .field("start", &self.start)
            .field("ca_file", &self.ca_file)
            .field("insecure", &self.insecure)
            .field("trusted_key", &self.trusted_key)
            .field("binary", &self.binary)
            .field("wait", &self.wait)
            .finish()
    }
}

/// What `zedops-agent uninstall` was asked for.
#[derive(Debug)]
pub struct UninstallOptions {
    /// Uninstall from this prefix instead of the live system.
    pub root: Option<PathBuf>,
    /// Also remove the configuration, the credentials and (live) the user.
    pub purge: bool,
    /// Stop and disable the service first.
    pub stop: bool,
}

/// The paths of an installation, on the live system or under a prefix.
struct Target {
    root: Option<PathBuf>,
}

impl Target {
    /// The target under `root` (the system when none) and the system to run commands on; a
    /// live system needs root, and `refusal` says so and what to do instead.
    fn with_system(root: &Option<PathBuf>, refusal: &str) -> anyhow::Result<(Self, System)> {
        let system = System::new(root.is_none());
        if system.is_live() {
            ensure!(is_root(), "{refusal}");
        }
        Ok((Self { root: root.clone() }, system))
    }

    /// Where the file the system knows as `path` is written.
    fn path(&self, path: &str) -> PathBuf {
        match &self.root {
            Some(root) => root.join(path.trim_start_matches('/')),
            None => PathBuf::from(path),
        }
    }
}

/// Installs (or updates) the service. Returns whether anything changed.
pub fn install(options: &InstallOptions) -> anyhow::Result<bool> {
    let (target, system) = Target::with_system(
        &options.root,
        "installing a system service needs root: run it with sudo, or pass --root DIR to \
         install into a directory",
    )?;

    // Several relays of a cluster are comma-separated; each is checked, and kept in order.
    let relay = options
        .relay
        .split(',')
        .map(|url| RelayUrl::parse(url.trim(), options.insecure).map(|r| r.canonical()))
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| "check --relay")?
        .join(",");
    ensure!(
        unit::is_plain_value(&relay),
        "the relay URL {relay:?} has characters the service configuration cannot hold; use a \
         URL of letters, digits and - _ . : / @ % + , = [ ]"
    );
    if let Some(name) = &options.name {
        ensure!(
            is_valid_name(name),
            "invalid --name {name:?}: use 1 to 64 of A-Z a-z 0-9 . _ -, not starting with . or -"
        );
    }
    let token = registration_token(options, &target)?;
    let ca_pem = match &options.ca_file {
        Some(source) => {
            let pem = fs::read(source)
                .with_context(|| format!("cannot read --ca-file {}", source.display()))?;
            ensure!(
                String::from_utf8_lossy(&pem).contains("-----BEGIN CERTIFICATE-----"),
                "--ca-file {} holds no PEM certificate; give the relay's CA certificate",
                source.display()
            );
            Some(pem)
        }
        None => None,
    };

    let key_text = match &options.trusted_key {
        Some(source) => {
            let text = fs::read_to_string(source)
                .with_context(|| format!("cannot read --trusted-key {}", source.display()))?;
            crate::selfupdate::keys::TrustedKeys::from_text(&text)
                .ok()
                .filter(|keys| !keys.is_empty())
                .with_context(|| {
                    format!(
                        "--trusted-key {} holds no minisign public key (a line of 56 \
                         characters starting with RW)",
                        source.display()
                    )
                })?;
            Some(text)
        }
        None => None,
    };

    // The user first: the files below are given to it.
    let owner = ensure_user(&system)?;
    let mut changed = owner.1;
    let owner = owner.0;

    let data_dir = target.path(DATA_DIR);
    changed |= note(
        files::dir(&data_dir, 0o700, owner)?,
        &data_dir,
        "data directory",
    );
    if let Some(owner) = owner
        && files::chown_tree(&data_dir, owner)?
    {
        eprintln!("gave the contents of {} to {USER}", data_dir.display());
        changed = true;
    }

    let config_dir = target.path(CONFIG_DIR);
    changed |= note(
        files::dir(&config_dir, 0o755, None)?,
        &config_dir,
        "configuration directory",
    );
    let ca_file = optional_file(
        &target,
        CA_PATH,
        ca_pem.as_deref(),
        "CA certificate",
        &mut changed,
    )?;
    let trusted_key_file = optional_file(
        &target,
        TRUSTED_KEY_PATH,
        key_text.as_ref().map(String::as_bytes),
        "trusted release key",
        &mut changed,
    )?;
    let config = Config {
        relay,
        token,
        name: options.name.clone(),
        ca_file,
        insecure: options.insecure,
        trusted_key_file,
    };
    let config_path = target.path(CONFIG_PATH);
    // Root's: systemd reads it (EnvironmentFile=) before dropping to the service user, who
    // never needs the registration token in it.
    let config_owner = owner.map(|_| (0, 0));
    let config_changed = files::write(
        &config_path,
        config.render().as_bytes(),
        0o600,
        config_owner,
    )?;
    changed |= note(config_changed, &config_path, "configuration (0600)");

    let exec = install_binary(options, &target, &mut changed)?;

    let unit_path = target.path(UNIT_PATH);
    create_parent(&unit_path)?;
    let unit_changed = files::write(&unit_path, unit::render(&exec).as_bytes(), 0o644, None)?;
    changed |= note(unit_changed, &unit_path, "systemd unit");

    start_service(
        &system,
        options.start,
        unit_changed,
        changed,
        &data_dir,
        options.wait,
    )?;
    if !changed {
        eprintln!("zedops-agent is installed as configured; nothing changed");
    }
    Ok(changed)
}

/// Takes the service off. Returns whether anything was removed.
pub fn uninstall(options: &UninstallOptions) -> anyhow::Result<bool> {
    let (target, system) = Target::with_system(
        &options.root,
        "removing a system service needs root: run it with sudo, or pass --root DIR",
    )?;
    let unit_path = target.path(UNIT_PATH);
    if options.stop && unit_path.exists() && (system.has_systemd() || !system.is_live()) {
        system
            .run("systemctl", &["disable", "--now", SERVICE])
            .context("stop it with `systemctl disable --now zedops-agent` and run again, or pass --no-stop")?;
    }
    let mut removed_any = false;
    let mut gone = Vec::new();
    if files::remove_file(&unit_path)? {
        eprintln!("removed {}", unit_path.display());
        gone.push(unit_path.clone());
        removed_any = true;
        if system.has_systemd() || !system.is_live() {
            system.run("systemctl", &["daemon-reload"])?;
            // A unit that had failed would stay listed by `systemctl --failed` without its file.
            system.run_quietly("systemctl", &["reset-failed", SERVICE]);
        }
    }
    let bin_path = target.path(BIN_PATH);
    if files::remove_file(&bin_path)? {
        eprintln!("removed {}", bin_path.display());
        gone.push(bin_path);
        removed_any = true;
    }
    if options.purge {
        // Before the credentials go: they are what lets the relay know it is this agent asking.
        forget_at_relay(&target);
        for dir in [target.path(CONFIG_DIR), target.path(DATA_DIR)] {
            if files::remove_tree(&dir)? {
                eprintln!("removed {} and everything in it", dir.display());
                gone.push(dir);
                removed_any = true;
            }
        }
        if !system.is_live() {
            system.run("userdel", &[USER])?;
        } else if system.user_ids(USER)?.is_some() {
            system.run("userdel", &[USER])?;
            removed_any = true;
        }
    } else {
        eprintln!(
            "kept {CONFIG_DIR} and {DATA_DIR} (the agent's credentials): install again to \
             reconnect as the same agent, or uninstall --purge to remove them"
        );
    }
    if let Some(root) = &options.root {
        // In a prefix, the directories install created go too; on a live system /usr/local/bin
        // and /etc/systemd/system are not ours to remove.
        for path in &gone {
            files::prune_empty_parents(path, root);
        }
    }
    if options.purge && system.is_live() && Path::new(PACKAGED_BIN_PATH).exists() {
        eprintln!(
            "{PACKAGED_BIN_PATH} belongs to the zedops-agent package: remove it with `apt remove zedops-agent`"
        );
    }
    if !removed_any {
        eprintln!("zedops-agent was not installed here; nothing removed");
    }
    Ok(removed_any)
}

/// Asks the relay to forget this agent (`agent.forget`, with the agent's own credentials), so
/// that it no longer lists it and its name can be enrolled again. Never fails the uninstall:
/// when the relay cannot be told, says so and prints the command that revokes the agent there.
fn forget_at_relay(target: &Target) {
    let data_dir = target.path(DATA_DIR);
    let credentials = match crate::credentials::load(&data_dir) {
        Ok(Some(credentials)) => credentials,
        Ok(None) => return,
        Err(err) => {
            eprintln!(
                "warning: cannot read this agent's credentials ({err:#}); the relay was not told to forget it"
            );
            return;
        }
    };
    let config = fs::read_to_string(target.path(CONFIG_PATH)).unwrap_or_default();
    let relay = Config::lookup(&config, "ZEDOPS_RELAY")
        .map(str::to_string)
        .unwrap_or_else(|| credentials.relay.clone());
    let ca_file = Config::lookup(&config, "ZEDOPS_CA_FILE").map(|path| target.path(path));
    let insecure = Config::lookup(&config, "ZEDOPS_INSECURE") == Some("true");
    let name = status::read(&data_dir)
        .and_then(|s| s.name)
        .unwrap_or_else(|| credentials.agent_id.to_string());
    let id = credentials.agent_id.clone();
    eprintln!("asking the relay at {relay} to forget this agent ({id})");
    match crate::forget::forget_blocking(credentials, relay.clone(), ca_file, insecure) {
        Ok(forgotten) => eprintln!(
            "the relay forgot agent {} ({}); the name can be enrolled again",
            forgotten.name, forgotten.agent_id
        ),
        Err(crate::forget::ForgetError::Refused(reply))
            if reply.error_code == zedops_protocol::ErrorCode::Unauthorized =>
        {
            eprintln!(
                "the relay no longer accepts this agent's credentials (it was revoked already); \
                 nothing to forget there"
            )
        }
        Err(err) => eprintln!(
            "warning: could not tell the relay to forget this agent: {err}. It still lists \
             {name}; an admin removes it with `zedops agent revoke {name}` (or `zedops-relay agent \
             revoke {id}` on the relay's machine)"
        ),
    }
}

/// The token to write: the one given, else the one already configured while the agent has not
/// enrolled yet. None once it has enrolled: the token is spent, and the stored credentials are
/// what the agent uses.
fn registration_token(options: &InstallOptions, target: &Target) -> anyhow::Result<Option<String>> {
    if let Some(token) = &options.token {
        let token = token.trim();
        ensure!(
            !token.is_empty() && token.len() <= MAX_TOKEN_LEN && unit::is_plain_value(token),
            "the registration token is malformed; copy it again from `zedops-relay token create`"
        );
        return Ok(Some(token.to_string()));
    }
    let enrolled = crate::credentials::path(&target.path(DATA_DIR)).exists();
    if enrolled {
        return Ok(None);
    }
    let configured = fs::read_to_string(target.path(CONFIG_PATH))
        .ok()
        .and_then(|text| Config::lookup(&text, "ZEDOPS_TOKEN").map(str::to_string));
    match configured {
        Some(token) => Ok(Some(token)),
        None => bail!(
            "this server has not enrolled yet, so it needs a registration token: create one on \
             the relay's machine with `zedops-relay token create` and pass it with --token-file \
             (or --token)"
        ),
    }
}

/// Makes sure the service user exists and is in the docker group. Returns its ids (`None` in a
/// prefix, where ownership is left as is) and whether anything changed.
fn ensure_user(system: &System) -> anyhow::Result<(Option<Owner>, bool)> {
    let add_user = [
        "--system",
        "--user-group",
        "--home-dir",
        DATA_DIR,
        "--no-create-home",
        "--shell",
        system::nologin(),
        "--comment",
        "ZedOps agent",
        USER,
    ];
    if !system.is_live() {
        system.run("useradd", &add_user)?;
        system.run("usermod", &["--append", "--groups", DOCKER_GROUP, USER])?;
        eprintln!("would run: chown {USER}: {DATA_DIR}");
        return Ok((None, false));
    }
    let mut changed = false;
    if system.user_ids(USER)?.is_none() {
        system.run("useradd", &add_user)?;
        changed = true;
    }
    if system.group_exists(DOCKER_GROUP)? {
        if !system.in_group(USER, DOCKER_GROUP)? {
            system.run("usermod", &["--append", "--groups", DOCKER_GROUP, USER])?;
            changed = true;
        }
    } else {
        eprintln!(
            "warning: there is no {DOCKER_GROUP} group, so the agent cannot reach Docker yet: \
             install Docker, then run `usermod -aG {DOCKER_GROUP} {USER}` and \
             `systemctl restart zedops-agent`"
        );
    }
    let ids = system
        .user_ids(USER)?
        .with_context(|| format!("user {USER} is still missing after useradd"))?;
    Ok((Some(ids), changed))
}

/// Puts the binary in place and returns the path the unit runs. A binary already at the
/// installed or the packaged path is used where it is.
fn install_binary(
    options: &InstallOptions,
    target: &Target,
    changed: &mut bool,
) -> anyhow::Result<String> {
    let source = fs::canonicalize(&options.binary)
        .with_context(|| format!("cannot find the agent binary {}", options.binary.display()))?;
    if target.root.is_none()
        && (source == Path::new(BIN_PATH) || source == Path::new(PACKAGED_BIN_PATH))
    {
        return Ok(source.display().to_string());
    }
    let content = fs::read(&source).with_context(|| format!("cannot read {}", source.display()))?;
    let bin_path = target.path(BIN_PATH);
    create_parent(&bin_path)?;
    *changed |= note(
        files::write(&bin_path, &content, 0o755, None)?,
        &bin_path,
        "agent binary",
    );
    Ok(BIN_PATH.to_string())
}

/// Tells systemd about the unit and starts the service, or restarts it when something it runs
/// with changed. With nothing changed this is a no-op for a running service.
fn start_service(
    system: &System,
    start: bool,
    unit_changed: bool,
    changed: bool,
    data_dir: &Path,
    wait: Duration,
) -> anyhow::Result<()> {
    if system.is_live() && !system.has_systemd() {
        eprintln!(
            "warning: systemd is not running on this machine (no /run/systemd/system), so the \
             service was installed but not started; where there is no systemd, run the agent in \
             a container (see packaging/docker-compose.example.yml)"
        );
        return Ok(());
    }
    if unit_changed {
        system.run("systemctl", &["daemon-reload"])?;
    }
    if !start {
        eprintln!("not started (--no-start): start it with `systemctl enable --now zedops-agent`");
        return Ok(());
    }
    system.run("systemctl", &["enable", SERVICE])?;
    // A changed binary, configuration or group membership takes effect only on a restart.
    let action = if changed { "restart" } else { "start" };
    let started_at = crate::unix_time::now().saturating_sub(1);
    if system.is_live() {
        // A process that will start now writes a new status; an old one (a refusal from the
        // last attempt) must not be mistaken for its answer.
        let running = system.unit_state(SERVICE)?.active == "active";
        if changed || !running {
            let _ = fs::remove_file(status::path(data_dir));
        }
        // A unit that failed last time starts afresh, its restart counter and state cleared.
        system.run_quietly("systemctl", &["reset-failed", SERVICE]);
    }
    system
        .run("systemctl", &[action, SERVICE])
        .context("the service did not start; see `journalctl -u zedops-agent`")?;
    if !system.is_live() {
        return Ok(());
    }
    if wait.is_zero() {
        eprintln!("zedops-agent is started; follow it with `journalctl -u zedops-agent -f`");
        return Ok(());
    }
    wait_connected(system, data_dir, wait, started_at)
}

/// Waits until the service's agent process says it is connected to the relay, or has been
/// refused, or the service stopped, or `wait` is over. A failure says why, with the relay's
/// reason when there is one and the last lines of the service's journal.
fn wait_connected(
    system: &System,
    data_dir: &Path,
    wait: Duration,
    started_at: u64,
) -> anyhow::Result<()> {
    eprintln!(
        "waiting up to {} s for the agent to enrol and connect to the relay…",
        wait.as_secs()
    );
    let deadline = Instant::now() + wait;
    let journal = || system.journal(SERVICE, started_at, JOURNAL_LINES);
    loop {
        let unit = system.unit_state(SERVICE)?;
        let status = status::read(data_dir);
        match &status {
            Some(s)
                if s.state == Status::CONNECTED
                    && s.pid == unit.main_pid
                    && unit.active == "active" =>
            {
                eprintln!(
                    "zedops-agent is running and connected to the relay as {} (id {}); follow it with `journalctl -u zedops-agent -f`",
                    s.name.as_deref().unwrap_or("?"),
                    s.agent_id.as_deref().unwrap_or("?")
                );
                return Ok(());
            }
            Some(s) if s.state == Status::REFUSED => {
                bail!(
                    "zedops-agent could not enrol ({}): {}\n\
                     Run the install again once that is fixed; a registration token works once, so \
                     a spent or wrong one needs a new command from `zedops-relay token create \
                     --install-command`.\n\
                     Last lines of its journal:\n{}",
                    s.code.as_deref().unwrap_or("REFUSED"),
                    s.message.as_deref().unwrap_or("the relay refused it"),
                    journal()
                );
            }
            _ => {}
        }
        if unit.active == "failed" || (unit.active == "inactive" && unit.main_pid == 0) {
            bail!(
                "zedops-agent stopped (exit status {}) before it connected to the relay.\n\
                 Last lines of its journal:\n{}",
                unit.exit_status,
                journal()
            );
        }
        if Instant::now() >= deadline {
            let last = match &status {
                Some(s) if s.state == Status::RETRYING => s.message.clone().unwrap_or_default(),
                _ => "no word from the agent yet".to_string(),
            };
            bail!(
                "zedops-agent did not connect to the relay within {} s ({last}); the service keeps \
                 trying in the background. Check that this server reaches the relay, then see \
                 `journalctl -u zedops-agent`.\nLast lines of its journal:\n{}",
                wait.as_secs(),
                journal()
            );
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// Creates the directories a file goes into (in a prefix, none exist yet).
fn create_parent(path: &Path) -> anyhow::Result<()> {
    let dir = path.parent().context("an installed file has a directory")?;
    fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))
}

/// Writes `content` (readable by all, root's) to `path` in `target`, or removes the file there
/// when there is no content, so a setting dropped since the last install leaves nothing behind;
/// returns `path` for the configuration when the file is there.
fn optional_file(
    target: &Target,
    path: &str,
    content: Option<&[u8]>,
    what: &str,
    changed: &mut bool,
) -> anyhow::Result<Option<String>> {
    let file = target.path(path);
    match content {
        Some(content) => {
            *changed |= note(files::write(&file, content, 0o644, None)?, &file, what);
            Ok(Some(path.to_string()))
        }
        None => {
            *changed |= removed(files::remove_file(&file)?, &file);
            Ok(None)
        }
    }
}

/// Prints what changed and passes the flag on.
fn note(changed: bool, path: &Path, what: &str) -> bool {
    if changed {
        eprintln!("wrote {what}: {}", path.display());
    }
    changed
}

fn removed(was_there: bool, path: &Path) -> bool {
    if was_there {
        eprintln!("removed {}", path.display());
    }
    was_there
}

/// Whether the effective user is root, read from `/proc` to avoid unsafe code for one syscall.
pub fn is_root() -> bool {
    fs::read_to_string("/proc/self/status").is_ok_and(|status| {
        status
            .lines()
            .find_map(|line| line.strip_prefix("Uid:"))
            .and_then(|ids| ids.split_whitespace().nth(1).map(|euid| euid == "0"))
            .unwrap_or(false)
    })
}

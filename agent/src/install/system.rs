//! The commands an install runs on the live system (useradd, systemctl…), or, when installing
//! into a prefix, only prints.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, bail};

use super::files::Owner;

/// Runs system commands, or says what it would run.
pub struct System {
    live: bool,
}

impl System {
    /// `live == false` is an install into a prefix: nothing outside it may change.
    pub fn new(live: bool) -> Self {
        Self { live }
    }

    pub fn is_live(&self) -> bool {
        self.live
    }

    /// Whether systemd manages this machine (its runtime directory exists), so `systemctl` works.
    pub fn has_systemd(&self) -> bool {
        self.live && Path::new("/run/systemd/system").is_dir()
    }

    /// Runs `program args…`, failing with its output when it fails. In a prefix, prints it.
    pub fn run(&self, program: &str, args: &[&str]) -> anyhow::Result<()> {
        let shown = shown(program, args);
        if !self.live {
            eprintln!("would run: {shown}");
            return Ok(());
        }
        eprintln!("running: {shown}");
        let output = Command::new(program)
            .args(args)
            .output()
            .with_context(|| format!("cannot run `{shown}`: is {program} installed?"))?;
        if !output.status.success() {
            let stderr = String::from_utf8_lossy(&output.stderr);
            bail!("`{shown}` failed ({}): {}", output.status, stderr.trim());
        }
        Ok(())
    }

    /// Runs `program args…` and ignores a failure (cleanup that may find nothing to do).
    pub fn run_quietly(&self, program: &str, args: &[&str]) {
        let shown = shown(program, args);
        if !self.live {
            eprintln!("would run: {shown}");
            return;
        }
        let _ = Command::new(program).args(args).output();
    }

    /// What systemd says about `unit` now.
    pub fn unit_state(&self, unit: &str) -> anyhow::Result<UnitState> {
        let text = query(
            "systemctl",
            &[
                "show",
                "--property=ActiveState,MainPID,ExecMainStatus",
                unit,
            ],
        )?
        .with_context(|| format!("`systemctl show {unit}` failed"))?;
        let value = |key: &str| {
            text.lines()
                .find_map(|line| line.strip_prefix(key)?.strip_prefix('='))
                .unwrap_or_default()
                .trim()
                .to_string()
        };
        Ok(UnitState {
            active: value("ActiveState"),
            main_pid: value("MainPID").parse().unwrap_or(0),
            exit_status: value("ExecMainStatus").parse().unwrap_or(0),
        })
    }

    /// The last `lines` journal lines of `unit` since `since` (Unix seconds), control
    /// characters replaced, for a person to read; a sentence when there is no journal.
    pub fn journal(&self, unit: &str, since: u64, lines: u32) -> String {
        let since = format!("@{since}");
        let lines = lines.to_string();
        let args = [
            "--unit",
            unit,
            "--since",
            since.as_str(),
            "--lines",
            lines.as_str(),
            "--no-pager",
            "--output",
            "short-iso",
        ];
        match query("journalctl", &args) {
            Ok(Some(text)) if !text.trim().is_empty() => text
                .chars()
                .map(|c| {
                    if c.is_control() && c != '\n' && c != '\t' {
                        '?'
                    } else {
                        c
                    }
                })
                .collect(),
            _ => format!("(no journal lines; see `journalctl -u {unit}`)\n"),
        }
    }

    /// The uid and primary gid of `user`, or `None` if there is no such user.
    pub fn user_ids(&self, user: &str) -> anyhow::Result<Option<Owner>> {
        let (Some(uid), Some(gid)) = (query("id", &["-u", user])?, query("id", &["-g", user])?)
        else {
            return Ok(None);
        };
        let parse = |text: String| {
            text.trim()
                .parse::<u32>()
                .with_context(|| format!("`id` printed {text:?} for user {user}"))
        };
        Ok(Some((parse(uid)?, parse(gid)?)))
    }

    /// Whether `user` is a member of `group`.
    pub fn in_group(&self, user: &str, group: &str) -> anyhow::Result<bool> {
        Ok(query("id", &["-nG", user])?
            .is_some_and(|groups| groups.split_whitespace().any(|g| g == group)))
    }

    /// Whether `group` exists.
    pub fn group_exists(&self, group: &str) -> anyhow::Result<bool> {
        Ok(query("getent", &["group", group])?.is_some())
    }
}

/// A unit's state, from `systemctl show`.
#[derive(Debug, Clone, Default)]
pub struct UnitState {
    /// `active`, `activating`, `failed`, `inactive`, …
    pub active: String,
    /// The main process, 0 when none runs.
    pub main_pid: u32,
    /// The last exit status of the main process.
    pub exit_status: i32,
}

/// What a query command printed, or `None` when it said no (non-zero exit).
fn query(program: &str, args: &[&str]) -> anyhow::Result<Option<String>> {
    let output = Command::new(program)
        .args(args)
        .output()
        .with_context(|| format!("cannot run `{}`", shown(program, args)))?;
    Ok(output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).into_owned()))
}

fn shown(program: &str, args: &[&str]) -> String {
    std::iter::once(program)
        .chain(args.iter().copied())
        .map(|word| {
            if word.contains(' ') {
                format!("'{word}'")
            } else {
                word.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The shell that refuses logins, wherever this distribution keeps it.
pub fn nologin() -> &'static str {
    ["/usr/sbin/nologin", "/sbin/nologin"]
        .into_iter()
        .find(|path| Path::new(path).exists())
        .unwrap_or("/bin/false")
}

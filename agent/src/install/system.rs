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

//! Running the installed build, watching its first connection, and taking it back when it does
//! not connect in time.
//!
//! `zedops-agent run` in the packaged binary is the launcher: before anything else it reverts an
//! update that is past its deadline unconfirmed, then replaces itself (`exec`, same process id,
//! so systemd and a container runtime see no change) with the installed build, if one is there
//! and newer than itself. For a build that has not connected yet it first starts a guard
//! (`zedops-agent update-guard`, the packaged binary again): when the deadline passes without
//! the build confirming, the guard puts the previous build back and kills the new one, which
//! systemd (`Restart=on-failure`) starts again through the launcher, now on the old build. A
//! build that does connect confirms itself (it watches its own `status.json`), and a build that
//! is ours but cannot connect also exits by itself at the deadline, which is what brings the old
//! one back in a container, where the guard cannot signal process 1.

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use super::store::{Installed, Store};
use crate::status::{self, Status};
use crate::unix_time::now;

/// Set in the installed build's environment by the launcher, to the launcher's path: tells the
/// build that it is the update (it must not launch again) and where to restart through.
pub const LAUNCHED_ENV: &str = "ZEDOPS_UPDATE_LAUNCHED";
/// Exit status that asks for a restart (EX_TEMPFAIL): not in the unit's
/// `RestartPreventExitStatus=`, so systemd's `Restart=on-failure` starts the agent again.
pub const RESTART_EXIT: i32 = 75;
/// How often the guard and the confirmation watch look at the files.
const POLL: Duration = Duration::from_secs(1);

/// Whether this process is an installed build started by the launcher.
pub fn is_launched() -> bool {
    std::env::var_os(LAUNCHED_ENV).is_some()
}

/// The launcher's step at the start of `run` (see the module docs). Returns when this binary
/// is the one to run; otherwise it does not return.
pub fn launch(data_dir: &Path) {
    if is_launched() {
        return;
    }
    let store = Store::new(data_dir);
    let Some(mut installed) = store.installed() else {
        return;
    };
    if installed.overdue(now()) {
        revert(
            &store,
            &format!(
                "it did not connect to the relay within {} s of its install",
                installed.revert_after_secs
            ),
        );
        match store.installed() {
            Some(previous) => installed = previous,
            None => return,
        }
    }
    if !should_run(&installed, crate::VERSION) {
        tracing::info!(
            installed = %installed.version,
            packaged = crate::VERSION,
            "the packaged agent is newer than the installed update; running the packaged one"
        );
        return;
    }
    let launcher = match std::env::current_exe() {
        Ok(path) => path,
        Err(err) => {
            tracing::error!(%err, "cannot find the running binary; not starting the installed update");
            return;
        }
    };
    if !installed.confirmed {
        let spawned = Command::new(&launcher)
            .arg("update-guard")
            .arg("--data-dir")
            .arg(data_dir)
            .arg("--pid")
            .arg(std::process::id().to_string())
            .env_remove(LAUNCHED_ENV)
            .spawn();
        if let Err(err) = spawned {
            // Without a guard the deadline is still kept at the next start and by the build.
            tracing::warn!(%err, "cannot start the update guard");
        }
    }
    tracing::info!(version = %installed.version, "starting the installed update");
    let err = Command::new(store.build_path())
        .args(std::env::args_os().skip(1))
        .env(LAUNCHED_ENV, &launcher)
        .exec();
    // Still here: the build cannot even be started (not executable, another architecture).
    revert(&store, &format!("it cannot be started: {err}"));
    if let Some(previous) = store.installed()
        && should_run(&previous, crate::VERSION)
    {
        let err = Command::new(store.build_path())
            .args(std::env::args_os().skip(1))
            .env(LAUNCHED_ENV, &launcher)
            .exec();
        tracing::error!(%err, "cannot start the previous build either; running the packaged one");
    }
}

/// Whether the installed build should run instead of a packaged binary of version `packaged`:
/// it is newer, or it was installed as a deliberate downgrade.
fn should_run(installed: &Installed, packaged: &str) -> bool {
    if installed.allow_older {
        return true;
    }
    match (
        semver::Version::parse(&installed.version),
        semver::Version::parse(packaged),
    ) {
        (Ok(installed), Ok(packaged)) => installed > packaged,
        _ => false,
    }
}

fn revert(store: &Store, reason: &str) {
    match store.revert(reason) {
        Ok(Some(version)) => {
            tracing::error!(%version, reason, "reverted the agent update; the previous build runs again");
        }
        Ok(None) => {}
        Err(err) => tracing::error!(%err, "cannot revert the agent update"),
    }
}

/// `zedops-agent update-guard`: waits for the build installed now to confirm; at its deadline
/// without that, reverts it and kills `pid` (the build, whose parent the guard is) so that it is
/// restarted on the previous build. Ends at once when the build confirms, when another update
/// replaces it, or when `pid` is no longer its parent (the build ended by itself).
pub fn guard(data_dir: &Path, pid: u32) {
    let store = Store::new(data_dir);
    let Some(watched) = store.installed() else {
        return;
    };
    let same = |other: &Installed| {
        other.version == watched.version && other.installed_at == watched.installed_at
    };
    loop {
        std::thread::sleep(POLL);
        let parent_alive = rustix::process::getppid()
            .is_some_and(|parent| parent.as_raw_nonzero().get() as u32 == pid);
        match store.installed() {
            Some(now_installed) if same(&now_installed) => {
                if now_installed.confirmed {
                    return;
                }
                if now_installed.overdue(now()) {
                    revert(
                        &store,
                        &format!(
                            "it did not connect to the relay within {} s",
                            now_installed.revert_after_secs
                        ),
                    );
                    if parent_alive {
                        kill(pid);
                    }
                    return;
                }
                if !parent_alive {
                    // The build ended; the launcher checks the deadline at the next start.
                    return;
                }
            }
            _ => return,
        }
    }
}

fn kill(pid: u32) {
    let Some(pid) = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
    else {
        return;
    };
    if let Err(err) = rustix::process::kill_process(pid, rustix::process::Signal::KILL) {
        tracing::error!(%err, "cannot stop the update that did not connect; it is reverted at its next start");
    }
}

/// In an installed build that has not connected yet: returns a watch that confirms the build
/// once this process is connected to the relay (its `status.json` says so), or exits with
/// [`RESTART_EXIT`] at the deadline so that the launcher brings the previous build back. `None`
/// when there is nothing to watch. Call it before connecting: it marks the status file as this
/// start's first (the process id survives `exec`, so the old build's "connected" would pass).
pub fn watch_first_connection(
    data_dir: std::path::PathBuf,
) -> Option<impl std::future::Future<Output = ()>> {
    if !is_launched() {
        return None;
    }
    let store = Store::new(&data_dir);
    let installed = store.installed()?;
    if installed.confirmed || installed.version != crate::VERSION {
        return None;
    }
    status::write(&data_dir, &Status::retrying("starting an agent update"));
    Some(async move {
        loop {
            tokio::time::sleep(POLL).await;
            let Some(installed) = store.installed() else {
                return;
            };
            if installed.confirmed || installed.version != crate::VERSION {
                return;
            }
            let connected = status::read(&data_dir).is_some_and(|status: Status| {
                status.state == Status::CONNECTED && status.pid == std::process::id()
            });
            if connected {
                match store.confirm() {
                    Ok(()) => tracing::info!(
                        version = crate::VERSION,
                        "agent update confirmed: connected to the relay"
                    ),
                    Err(err) => {
                        tracing::error!(%err, "cannot confirm the agent update; it will be reverted")
                    }
                }
                return;
            }
            if installed.overdue(now()) {
                tracing::error!(
                    version = crate::VERSION,
                    "this update did not connect to the relay in time; exiting so that the \
                     previous build comes back"
                );
                std::process::exit(RESTART_EXIT);
            }
        }
    })
}

/// Restarts into the build just installed: under systemd by exiting with [`RESTART_EXIT`]
/// (`Restart=on-failure` starts it again through the launcher); in the foreground or in a
/// container by replacing this process with the launcher, same arguments, same process id.
pub fn restart() -> ! {
    if std::env::var_os("INVOCATION_ID").is_some() {
        tracing::info!("restarting into the update (systemd starts the agent again)");
        std::process::exit(RESTART_EXIT);
    }
    let launcher = std::env::var_os(LAUNCHED_ENV)
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::current_exe().ok());
    if let Some(launcher) = launcher {
        tracing::info!(launcher = %launcher.display(), "restarting into the update");
        let err = Command::new(&launcher)
            .args(std::env::args_os().skip(1))
            .env_remove(LAUNCHED_ENV)
            .exec();
        tracing::error!(%err, "cannot restart in place; exiting for the supervisor to restart");
    }
    std::process::exit(RESTART_EXIT);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_installed_build_runs_only_when_newer_or_a_chosen_downgrade() {
        let mut installed = Installed {
            version: "0.2.0".into(),
            installed_at: 0,
            revert_after_secs: 60,
            confirmed: true,
            allow_older: false,
        };
        assert!(should_run(&installed, "0.1.0"));
        assert!(!should_run(&installed, "0.2.0"));
        assert!(!should_run(&installed, "0.10.0"));
        installed.allow_older = true;
        assert!(should_run(&installed, "0.10.0"));
        installed.allow_older = false;
        installed.version = "garbage".into();
        assert!(!should_run(&installed, "0.1.0"));
    }
}

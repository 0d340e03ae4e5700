//! The relay's own bounds on console sessions (`container.exec`, `container.attach`): which
//! role may exec (`--exec-role`), how many sessions one user may have open at once
//! (`--max-console-sessions`), and how long a session may sit without a byte either way before
//! the relay ends it (`--console-idle-timeout`). Also where the exit code of an exec reaches
//! its audit entry.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;
use zedops_protocol::{
    CONSOLE_IDLE_TIMEOUT_SECS, ClientRequestKind, ErrorReply, MAX_CONSOLES_PER_USER, Need, Role,
};

/// Console bounds, part of [`crate::Limits`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConsoleLimits {
    /// The least role that may `container.exec`: admin (default) or operator.
    pub exec_role: Role,
    /// Console sessions (exec and attach together) one user may have open at once.
    pub sessions_per_user: usize,
    /// A session with no input and no output for this long is ended by the relay.
    pub idle_timeout: Duration,
}

impl Default for ConsoleLimits {
    fn default() -> Self {
        Self {
            exec_role: Role::Admin,
            sessions_per_user: MAX_CONSOLES_PER_USER,
            idle_timeout: Duration::from_secs(CONSOLE_IDLE_TIMEOUT_SECS),
        }
    }
}

/// `zedops-relay serve` flags for [`ConsoleLimits`].
#[derive(Debug, Clone, clap::Args)]
pub struct ConsoleArgs {
    /// The least role that may open a shell or run commands in containers (`container.exec`):
    /// admin or operator
    #[arg(long, env = "ZEDOPS_EXEC_ROLE", default_value = "admin", value_parser = parse_exec_role)]
    pub exec_role: Role,
    /// Console sessions (exec and attach together) one user may have open at once
    #[arg(long, env = "ZEDOPS_MAX_CONSOLE_SESSIONS", default_value_t = MAX_CONSOLES_PER_USER,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=1000))]
    pub max_console_sessions: usize,
    /// A console session with no input and no output for this long is closed (e.g. 15m, 2h)
    #[arg(long, env = "ZEDOPS_CONSOLE_IDLE_TIMEOUT", default_value = "15m", value_parser = positive_duration)]
    pub console_idle_timeout: Duration,
}

impl ConsoleArgs {
    pub fn into_limits(self) -> ConsoleLimits {
        ConsoleLimits {
            exec_role: self.exec_role,
            sessions_per_user: self.max_console_sessions,
            idle_timeout: self.console_idle_timeout,
        }
    }
}

fn parse_exec_role(s: &str) -> Result<Role, String> {
    match s {
        "admin" => Ok(Role::Admin),
        "operator" => Ok(Role::Operator),
        _ => Err("must be admin or operator (viewers may never exec)".into()),
    }
}

fn positive_duration(s: &str) -> Result<Duration, String> {
    match humantime::parse_duration(s) {
        Ok(d) if d.is_zero() => Err("must be more than zero".into()),
        Ok(d) => Ok(d),
        Err(e) => Err(format!("{e} (e.g. 15m, 1h)")),
    }
}

/// What `kind` needs under these limits: `container.exec` needs what `--exec-role` says, every
/// other request what it declares.
pub fn need(kind: ClientRequestKind, limits: &ConsoleLimits) -> Need {
    if kind == ClientRequestKind::ContainerExec && limits.exec_role == Role::Operator {
        return Need::Operate;
    }
    kind.need()
}

/// Open console sessions per user, over all their connections.
#[derive(Default)]
pub struct ConsoleCounts {
    counts: Arc<Mutex<HashMap<String, usize>>>,
}

impl ConsoleCounts {
    /// Takes one of the console sessions `user` may have, or refuses with how many that is.
    pub fn slot(&self, user: &str, limits: &ConsoleLimits) -> Result<ConsoleSlot, ErrorReply> {
        let mut counts = self.counts.lock().expect("console counts lock");
        let open = counts.entry(user.to_string()).or_default();
        if *open >= limits.sessions_per_user {
            tracing::warn!(
                user = ?user,
                limit = limits.sessions_per_user,
                "refused a console session: at the user's limit"
            );
            return Err(crate::failure::rate_limited(
                format!(
                    "you already have {} console sessions (exec or attach) open; close one (exit its shell or detach) and retry",
                    limits.sessions_per_user
                ),
                5,
            ));
        }
        *open += 1;
        Ok(ConsoleSlot {
            user: user.to_string(),
            counts: self.counts.clone(),
            activity: Arc::new(Activity::new()),
            idle_timeout: limits.idle_timeout,
            exit_code: Mutex::new(None),
            released: std::sync::atomic::AtomicBool::new(false),
        })
    }
}

/// One open console session: counted against its user until dropped, with the time of its last
/// byte either way and, for an exec, the exit code its last frame carried.
pub struct ConsoleSlot {
    user: String,
    counts: Arc<Mutex<HashMap<String, usize>>>,
    pub activity: Arc<Activity>,
    pub idle_timeout: Duration,
    exit_code: Mutex<Option<i64>>,
    released: std::sync::atomic::AtomicBool,
}

impl ConsoleSlot {
    /// Gives the user's slot back (once; dropping the slot does it too). Called before the
    /// session's last frame goes to the client, so that a client told "ended" may open the next
    /// session at once.
    pub fn release(&self) {
        if self.released.swap(true, Ordering::AcqRel) {
            return;
        }
        let mut counts = self.counts.lock().expect("console counts lock");
        if let Some(n) = counts.get_mut(&self.user) {
            *n -= 1;
            if *n == 0 {
                counts.remove(&self.user);
            }
        }
    }

    pub fn set_exit_code(&self, code: i64) {
        *self.exit_code.lock().expect("exit code lock") = Some(code);
    }

    pub fn exit_code(&self) -> Option<i64> {
        *self.exit_code.lock().expect("exit code lock")
    }

    /// When the session is idle from, if nothing happens before.
    pub fn idle_deadline(&self) -> Instant {
        self.activity.last() + self.idle_timeout
    }

    /// The last frame when the session was idle too long.
    pub fn idle_reason(&self) -> String {
        format!(
            "closed by the relay after {} without input or output (its --console-idle-timeout); open a new session to go on",
            humantime::format_duration(self.idle_timeout)
        )
    }
}

impl Drop for ConsoleSlot {
    fn drop(&mut self) {
        self.release();
    }
}

/// The time of a session's last byte either way, touched by its input and its output.
pub struct Activity {
    start: Instant,
    /// Milliseconds after `start`.
    last_ms: AtomicU64,
}

impl Activity {
    fn new() -> Self {
        Self {
            start: Instant::now(),
            last_ms: AtomicU64::new(0),
        }
    }

    pub fn touch(&self) {
        let ms = self.start.elapsed().as_millis() as u64;
        self.last_ms.fetch_max(ms, Ordering::Relaxed);
    }

    pub fn last(&self) -> Instant {
        self.start + Duration::from_millis(self.last_ms.load(Ordering::Relaxed))
    }
}

/// Adds the exit code of an exec to its audit entry's detail (`… exit=3`).
pub async fn audit_exit_code(store: &crate::store::Store, id: i64, code: i64) {
    let updated = store
        .audit_append_detail(id, &format!(" exit={code}"))
        .await;
    if let Err(e) = updated {
        tracing::error!(%e, id, "could not record an exec's exit code in the audit log");
    }
}

#[cfg(test)]
mod tests {
    use zedops_protocol::ErrorCode;

    use super::*;

    #[test]
    fn exec_needs_what_the_exec_role_says() {
        let mut limits = ConsoleLimits::default();
        assert_eq!(need(ClientRequestKind::ContainerExec, &limits), Need::Admin);
        limits.exec_role = Role::Operator;
        assert_eq!(
            need(ClientRequestKind::ContainerExec, &limits),
            Need::Operate
        );
        // Nothing else moves with it.
        assert_eq!(
            need(ClientRequestKind::FilePut, &limits),
            ClientRequestKind::FilePut.need()
        );
        assert!(parse_exec_role("viewer").is_err());
    }

    #[test]
    fn a_user_gets_at_most_the_limit_of_sessions_and_a_slot_back_when_one_ends() {
        let limits = ConsoleLimits {
            sessions_per_user: 2,
            ..Default::default()
        };
        let counts = ConsoleCounts::default();
        let a = counts.slot("ann", &limits).unwrap();
        let _b = counts.slot("ann", &limits).unwrap();
        let refused = counts.slot("ann", &limits).err().unwrap();
        assert_eq!(refused.error_code, ErrorCode::RateLimited);
        assert!(refused.error.contains("2 console sessions"));
        // Another user is not affected.
        let _c = counts.slot("bob", &limits).unwrap();
        drop(a);
        assert!(counts.slot("ann", &limits).is_ok());
    }
}

//! Brute-force protection for `POST /api/login`: failed attempts are counted per user name and
//! per client address in a sliding window; past the limit, logins are refused with
//! `RATE_LIMITED` and the number of seconds until one may succeed, before any password is checked.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Window over which failures are counted.
pub const WINDOW: Duration = Duration::from_secs(300);
/// Failed logins for one user name per window.
pub const PER_USER: usize = 5;
/// Failed logins from one address per window (several people may share an address).
pub const PER_ADDRESS: usize = 20;
/// Keys remembered at most; beyond this the oldest-looking entries are dropped, so a flood of
/// made-up user names cannot grow memory without bound.
const MAX_KEYS: usize = 10_000;

#[derive(Default)]
struct Failures {
    users: HashMap<String, VecDeque<Instant>>,
    addresses: HashMap<IpAddr, VecDeque<Instant>>,
}

/// Counts failed logins.
#[derive(Default)]
pub struct LoginLimiter {
    failures: Mutex<Failures>,
}

fn prune(times: &mut VecDeque<Instant>, now: Instant) {
    while times
        .front()
        .is_some_and(|t| now.duration_since(*t) >= WINDOW)
    {
        times.pop_front();
    }
}

/// Seconds until the oldest failure leaves the window, if `times` is at `limit`.
fn blocked_for(times: Option<&mut VecDeque<Instant>>, limit: usize, now: Instant) -> Option<u64> {
    let times = times?;
    prune(times, now);
    if times.len() < limit {
        return None;
    }
    let oldest = *times.front()?;
    Some(
        (WINDOW.saturating_sub(now.duration_since(oldest)))
            .as_secs()
            .max(1),
    )
}

impl LoginLimiter {
    /// `Some(seconds)` when a login for `user` from `address` must be refused now.
    pub fn check(&self, user: &str, address: IpAddr) -> Option<u64> {
        let now = Instant::now();
        let mut f = self.failures.lock().expect("limiter lock");
        let by_user = blocked_for(f.users.get_mut(user), PER_USER, now);
        let by_address = blocked_for(f.addresses.get_mut(&address), PER_ADDRESS, now);
        by_user.max(by_address)
    }

    /// Records a failed login.
    pub fn failed(&self, user: &str, address: IpAddr) {
        let now = Instant::now();
        let mut f = self.failures.lock().expect("limiter lock");
        if f.users.len() >= MAX_KEYS {
            f.users.retain(|_, times| {
                times
                    .back()
                    .is_some_and(|t| now.duration_since(*t) < WINDOW)
            });
        }
        if f.addresses.len() >= MAX_KEYS {
            f.addresses.retain(|_, times| {
                times
                    .back()
                    .is_some_and(|t| now.duration_since(*t) < WINDOW)
            });
        }
        f.users.entry(user.to_string()).or_default().push_back(now);
        f.addresses.entry(address).or_default().push_back(now);
    }

    /// Forgets a user's failures after a successful login.
    pub fn succeeded(&self, user: &str) {
        self.failures
            .lock()
            .expect("limiter lock")
            .users
            .remove(user);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_a_user_after_repeated_failures_and_success_resets() {
        let limiter = LoginLimiter::default();
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        for _ in 0..PER_USER {
            assert_eq!(limiter.check("alice", ip), None);
            limiter.failed("alice", ip);
        }
        let wait = limiter.check("alice", ip).expect("blocked");
        assert!(wait > 0 && wait <= WINDOW.as_secs());
        assert_eq!(
            limiter.check("bob", "10.0.0.2".parse().unwrap()),
            None,
            "others are unaffected"
        );
        limiter.succeeded("alice");
        assert_eq!(limiter.check("alice", "10.0.0.3".parse().unwrap()), None);
    }

    #[test]
    fn blocks_an_address_trying_many_names() {
        let limiter = LoginLimiter::default();
        let ip: IpAddr = "10.0.0.9".parse().unwrap();
        for i in 0..PER_ADDRESS {
            limiter.failed(&format!("user{i}"), ip);
        }
        assert!(limiter.check("someone-new", ip).is_some());
        assert!(
            limiter
                .check("someone-new", "10.0.0.10".parse().unwrap())
                .is_none()
        );
    }
}

//! Brute-force and exhaustion protection for `POST /api/login`.
//!
//! - Failures are counted per (user name, client address): after [`FREE_FAILURES`] each further
//!   attempt from that address for that user waits a delay that doubles with every failure, up to
//!   [`MAX_DELAY`]. Nobody can lock a user out from other addresses, and the right password
//!   always works from an address that has not been guessing.
//! - Failures per client address (any user name) are capped at [`PER_ADDRESS`] per [`WINDOW`]:
//!   an address spraying one password over many names is refused.
//! - An attempt counts from the moment it starts (before its password is checked) and is taken
//!   back only when it succeeds, so concurrent guesses cannot slip past the count.
//! - At most [`LoginLimiter::max_checks`] passwords are checked at once (each argon2 check holds
//!   about 19 MiB for tens of milliseconds); more are refused at once, never queued. Each
//!   check computes in a buffer kept for the next one, so the relay holds at most that many.
//!
//! IPv6 addresses are counted per /64, the block one subscriber usually holds.
//!
//! In a cluster each relay tells the others how its logins ended (`zedops.cluster.login`), and
//! counts theirs as its own ([`LoginLimiter::failed_elsewhere`]): spreading guesses over the
//! relays behind a load balancer buys no more of them than one relay allows.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Window over which an address's failures are counted, and after which a quiet (user, address)
/// pair is forgotten.
pub const WINDOW: Duration = Duration::from_secs(300);
/// Failures for one user name from one address before delays start.
pub const FREE_FAILURES: u32 = 5;
/// Delay after the first failure past [`FREE_FAILURES`]; doubles with each further failure.
pub const FIRST_DELAY: Duration = Duration::from_secs(1);
/// Longest delay between attempts for one user name from one address.
pub const MAX_DELAY: Duration = Duration::from_secs(300);
/// Failed logins from one address per window, whatever the user names (several people may
/// share an address).
pub const PER_ADDRESS: usize = 20;
/// Keys remembered at most in each map; beyond this the stalest are dropped, so a flood of
/// made-up user names or addresses cannot grow memory without bound.
const MAX_KEYS: usize = 10_000;

/// Concurrent password checks: twice the cores (argon2 runs on one core for each check; more at
/// once would only queue in memory).
pub fn default_max_checks() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get()) * 2
}

#[derive(Debug, Clone, Copy)]
struct Pair {
    /// Attempts counted as failures (including ones still being checked).
    failures: u32,
    last: Instant,
}

#[derive(Default)]
struct Failures {
    pairs: HashMap<(String, IpAddr), Pair>,
    addresses: HashMap<IpAddr, VecDeque<Instant>>,
}

impl Failures {
    /// Counts a failure of the pair `key` (user, address) at `now`, making room in the tables
    /// when they are full; returns the address's failure times, which the caller adds `now` to
    /// (or not, past the cap).
    fn count(&mut self, key: (String, IpAddr), now: Instant) -> &mut VecDeque<Instant> {
        let address = key.1;
        if !self.pairs.contains_key(&key) {
            make_room(&mut self.pairs, |p| p.last, now);
        }
        let pair = self.pairs.entry(key).or_insert(Pair {
            failures: 0,
            last: now,
        });
        pair.failures += 1;
        pair.last = now;
        if !self.addresses.contains_key(&address) {
            make_room(&mut self.addresses, |t| *t.back().unwrap_or(&now), now);
        }
        self.addresses.entry(address).or_default()
    }
}

/// Why a login is refused before its password is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Too many failures for this user from this address, or from this address: retry after
    /// this many seconds.
    TooManyFailures(u64),
    /// Every password-check slot is busy: retry after this many seconds.
    Busy(u64),
}

/// Counts login attempts and bounds concurrent password checks.
pub struct LoginLimiter {
    failures: Mutex<Failures>,
    checks: Arc<Semaphore>,
    max_checks: usize,
    /// Working memory of finished checks, reused by the next ones: at most `max_checks` buffers.
    memory: Arc<Mutex<Vec<Vec<argon2::Block>>>>,
}

/// A password-check slot: the right to run one check now, and the memory to run it in. Both go
/// back when it is dropped.
pub struct CheckSlot {
    _permit: OwnedSemaphorePermit,
    memory: Vec<argon2::Block>,
    pool: Arc<Mutex<Vec<Vec<argon2::Block>>>>,
}

impl AsMut<Vec<argon2::Block>> for CheckSlot {
    fn as_mut(&mut self) -> &mut Vec<argon2::Block> {
        &mut self.memory
    }
}

impl Drop for CheckSlot {
    fn drop(&mut self) {
        let memory = std::mem::take(&mut self.memory);
        if !memory.is_empty() {
            self.pool.lock().expect("memory pool lock").push(memory);
        }
    }
}

impl Default for LoginLimiter {
    fn default() -> Self {
        Self::new(default_max_checks())
    }
}

/// The key an address is counted under: IPv6 per /64, IPv4 (and IPv4-mapped) as is.
fn address_key(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let mut segments = v6.segments();
                segments[4..].fill(0);
                IpAddr::V6(segments.into())
            }
        },
        v4 => v4,
    }
}

/// Delay required after `failures` failures (zero up to [`FREE_FAILURES`]).
fn delay_after(failures: u32) -> Duration {
    if failures < FREE_FAILURES {
        return Duration::ZERO;
    }
    let doublings = (failures - FREE_FAILURES).min(16);
    (FIRST_DELAY * 2u32.pow(doublings)).min(MAX_DELAY)
}

fn prune(times: &mut VecDeque<Instant>, now: Instant) {
    while times
        .front()
        .is_some_and(|t| now.duration_since(*t) >= WINDOW)
    {
        times.pop_front();
    }
}

fn seconds(d: Duration) -> u64 {
    d.as_secs_f64().ceil().max(1.0) as u64
}

/// One login attempt, counted as a failure from [`LoginLimiter::begin`] on. It holds a
/// password-check slot until dropped; [`succeeded`](Attempt::succeeded) takes the failure back.
pub struct Attempt<'a> {
    limiter: &'a LoginLimiter,
    user: String,
    address: IpAddr,
    permit: Option<CheckSlot>,
}

impl Attempt<'_> {
    /// The password-check slot, to hold for as long as the check runs (also when the request
    /// that started it is gone).
    pub fn take_permit(&mut self) -> CheckSlot {
        self.permit.take().expect("the permit is taken once")
    }

    /// The password was right: forget this pair's failures and this attempt's count.
    pub fn succeeded(self) {
        let mut f = self.limiter.failures.lock().expect("limiter lock");
        f.pairs.remove(&(self.user.clone(), self.address));
        if let Some(times) = f.addresses.get_mut(&self.address) {
            times.pop_back();
        }
    }
}

impl LoginLimiter {
    /// A limiter allowing `max_checks` concurrent password checks (at least one).
    pub fn new(max_checks: usize) -> Self {
        let max_checks = max_checks.max(1);
        Self {
            failures: Default::default(),
            checks: Arc::new(Semaphore::new(max_checks)),
            max_checks,
            memory: Default::default(),
        }
    }

    /// How many passwords may be checked at once.
    pub fn max_checks(&self) -> usize {
        self.max_checks
    }

    /// Starts a login attempt for `user` from `address`, or says why it must wait. The attempt
    /// counts as a failure until [`Attempt::succeeded`].
    pub fn begin(&self, user: &str, address: IpAddr) -> Result<Attempt<'_>, Refusal> {
        let address = address_key(address);
        let now = Instant::now();
        let mut f = self.failures.lock().expect("limiter lock");
        let key = (user.to_string(), address);
        if let Some(pair) = f.pairs.get(&key) {
            if now.duration_since(pair.last) >= WINDOW.max(MAX_DELAY) {
                f.pairs.remove(&key);
            } else {
                let wait = delay_after(pair.failures).saturating_sub(now.duration_since(pair.last));
                if !wait.is_zero() {
                    return Err(Refusal::TooManyFailures(seconds(wait)));
                }
            }
        }
        if let Some(times) = f.addresses.get_mut(&address) {
            prune(times, now);
            if times.len() >= PER_ADDRESS {
                let oldest = *times.front().expect("at the limit, so not empty");
                let wait = WINDOW.saturating_sub(now.duration_since(oldest));
                return Err(Refusal::TooManyFailures(seconds(wait)));
            }
        }
        // A slot is taken last, so refused attempts never hold one.
        let Ok(permit) = self.checks.clone().try_acquire_owned() else {
            return Err(Refusal::Busy(1));
        };
        f.count(key, now).push_back(now);
        let memory = self
            .memory
            .lock()
            .expect("memory pool lock")
            .pop()
            .unwrap_or_default();
        Ok(Attempt {
            limiter: self,
            user: user.to_string(),
            address,
            permit: Some(CheckSlot {
                _permit: permit,
                memory,
                pool: self.memory.clone(),
            }),
        })
    }
}

impl LoginLimiter {
    /// A login for `user` from `address` failed on another relay of the cluster: counted as if
    /// it had failed here.
    pub fn failed_elsewhere(&self, user: &str, address: IpAddr) {
        let address = address_key(address);
        let now = Instant::now();
        let mut f = self.failures.lock().expect("limiter lock");
        let key = (user.to_string(), address);
        let times = f.count(key, now);
        prune(times, now);
        // Bounded like the local count: past the cap an address is refused anyway.
        if times.len() < PER_ADDRESS {
            times.push_back(now);
        }
    }

    /// Failures counted for `user` from `address` (including checks still running), as the
    /// delays see them.
    pub fn failures(&self, user: &str, address: IpAddr) -> u32 {
        let f = self.failures.lock().expect("limiter lock");
        f.pairs
            .get(&(user.to_string(), address_key(address)))
            .map_or(0, |p| p.failures)
    }

    /// A login for `user` from `address` succeeded on another relay: its failures for that
    /// user are forgotten here too, as they would be after a success here.
    pub fn succeeded_elsewhere(&self, user: &str, address: IpAddr) {
        let address = address_key(address);
        let mut f = self.failures.lock().expect("limiter lock");
        f.pairs.remove(&(user.to_string(), address));
    }
}

/// Keeps `map` under [`MAX_KEYS`]: drops entries quiet for a window, then the stalest one.
fn make_room<K: Clone + Eq + std::hash::Hash, V>(
    map: &mut HashMap<K, V>,
    last: impl Fn(&V) -> Instant,
    now: Instant,
) {
    if map.len() < MAX_KEYS {
        return;
    }
    map.retain(|_, v| now.duration_since(last(v)) < WINDOW.max(MAX_DELAY));
    if map.len() >= MAX_KEYS
        && let Some(stalest) = map
            .iter()
            .min_by_key(|(_, v)| last(v))
            .map(|(k, _)| k.clone())
    {
        map.remove(&stalest);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn a_user_guessed_from_one_address_still_logs_in_from_another() {
        let limiter = LoginLimiter::new(4);
        for _ in 0..FREE_FAILURES {
            drop(
                limiter
                    .begin("alice", ip("10.0.0.1"))
                    .expect("free attempts"),
            );
        }
        let Err(Refusal::TooManyFailures(wait)) = limiter.begin("alice", ip("10.0.0.1")) else {
            panic!("the guessing address must wait");
        };
        assert!(wait >= 1 && wait <= MAX_DELAY.as_secs());
        let attempt = limiter
            .begin("alice", ip("10.0.0.2"))
            .expect("another address is not held back");
        attempt.succeeded();
        assert!(limiter.begin("bob", ip("10.0.0.3")).is_ok());
    }

    #[test]
    fn delays_grow_and_are_capped() {
        assert_eq!(delay_after(FREE_FAILURES - 1), Duration::ZERO);
        assert_eq!(delay_after(FREE_FAILURES), FIRST_DELAY);
        assert_eq!(delay_after(FREE_FAILURES + 1), FIRST_DELAY * 2);
        assert_eq!(delay_after(FREE_FAILURES + 40), MAX_DELAY);
    }

    #[test]
    fn an_attempt_counts_from_its_start() {
        let limiter = LoginLimiter::new(64);
        // Attempts still being checked count: the sixth concurrent one for the pair waits.
        let held: Vec<_> = (0..FREE_FAILURES)
            .map(|_| limiter.begin("alice", ip("10.0.0.1")).unwrap())
            .collect();
        assert!(matches!(
            limiter.begin("alice", ip("10.0.0.1")),
            Err(Refusal::TooManyFailures(_))
        ));
        drop(held);
    }

    #[test]
    fn password_checks_are_bounded_and_slots_come_back() {
        let limiter = LoginLimiter::new(2);
        let a = limiter.begin("a", ip("10.0.0.1")).unwrap();
        let _b = limiter.begin("b", ip("10.0.0.2")).unwrap();
        assert_eq!(
            limiter.begin("c", ip("10.0.0.3")).err(),
            Some(Refusal::Busy(1))
        );
        a.succeeded();
        assert!(limiter.begin("c", ip("10.0.0.3")).is_ok());
    }

    #[test]
    fn an_address_trying_many_names_is_refused_and_ipv6_counts_per_64() {
        let limiter = LoginLimiter::new(4);
        for i in 0..PER_ADDRESS {
            drop(
                limiter
                    .begin(&format!("user{i}"), ip("2001:db8::1"))
                    .unwrap(),
            );
        }
        assert!(limiter.begin("someone-new", ip("2001:db8::ffff")).is_err());
        assert!(limiter.begin("someone-new", ip("2001:db8:0:1::1")).is_ok());
    }
}

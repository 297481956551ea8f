//! Drops expired cache entries when they expire, not at their next lookup.
//!
//! One process-wide thread (`envseal-cache-sweep`), started when a cache
//! first reports an expiry, sleeps on a condition variable until the
//! earliest expiry any cache has reported, then asks each cache that is due
//! to drop its expired entries under its own lock ([`Sweep::sweep`]); their
//! keys are wiped as they drop (or, for a data key still in use, when the
//! last message using it ends). A cache's sweeps are at least
//! [`CACHE_SWEEP_INTERVAL`] apart, so an entry is dropped at most
//! [`CACHE_SWEEP_INTERVAL`] after it expires (plus the time the thread takes to
//! be scheduled). It is a plain thread, so it works with or without a
//! tokio runtime, from any runtime.
//!
//! The sweeper holds caches by `Weak` reference: it never keeps a cache
//! alive, and a dropped cache leaves the table. Reporting an expiry
//! ([`Registration::expires`]) is O(1) (a lock and a map update), done when
//! an entry is stored (a miss, after a keyring call), never on a hit. A
//! sweep visits the due cache's entries (O(entries) under that cache's
//! lock, at most once per [`CACHE_SWEEP_INTERVAL`] per cache).

use std::collections::HashMap;
use std::sync::{Condvar, Mutex, MutexGuard, OnceLock, Weak};
use std::time::{Duration, Instant};

/// The least time between two sweeps of one cache, and so the most time an
/// expired entry stays resident (plus scheduling delay).
pub const CACHE_SWEEP_INTERVAL: Duration = Duration::from_millis(50);

/// Test support: the most time from an entry's expiry to its sweep that
/// the tests accept, the documented bound plus slack for a loaded two-core
/// machine.
#[cfg(test)]
pub(crate) const SWEPT_WITHIN: Duration = CACHE_SWEEP_INTERVAL.saturating_add(Duration::from_millis(450));

/// Test support: waits until `weak` (`what`, an entry that expired at
/// `expired_at`) is freed; panics once [`SWEPT_WITHIN`] has passed.
#[cfg(test)]
pub(crate) fn wait_swept<T>(weak: &Weak<T>, expired_at: Instant, what: &str) {
    while weak.upgrade().is_some() {
        assert!(
            Instant::now() < expired_at + SWEPT_WITHIN,
            "{what} still resident {SWEPT_WITHIN:?} after its expiry"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// A cache the sweeper can clean.
pub(crate) trait Sweep: Send + Sync {
    /// Drops the entries expired at `now`; returns the earliest expiry of
    /// the entries left (`None`: nothing left to expire).
    fn sweep(&self, now: Instant) -> Option<Instant>;
}

/// A cache's place in the sweeper's table; leaves it when dropped. Kept
/// inside the cache it names.
pub(crate) struct Registration {
    id: u64,
}

impl Registration {
    /// Registers `cache` (held weakly) with the process-wide sweeper.
    pub(crate) fn new(cache: Weak<dyn Sweep>) -> Self {
        let mut state = sweeper().lock();
        let id = state.next_id;
        state.next_id += 1;
        state.caches.insert(
            id,
            Entry {
                cache,
                due: None,
                last: None,
            },
        );
        Registration { id }
    }

    /// Tells the sweeper that an entry of this cache expires at `at`: the
    /// cache is swept by `at` + [`CACHE_SWEEP_INTERVAL`].
    pub(crate) fn expires(&self, at: Instant) {
        let table = sweeper();
        let mut state = table.lock();
        let Some(entry) = state.caches.get_mut(&self.id) else {
            return;
        };
        entry.due = Some(entry.due.map_or(at, |due| due.min(at)));
        let wake = entry.wake_at();
        match state.thread {
            Thread::NotStarted => {
                // Without the thread (it could not start), entries still
                // expire at their next lookup or eviction, as before.
                let started = std::thread::Builder::new()
                    .name("envseal-cache-sweep".into())
                    .spawn(|| run(sweeper()));
                state.thread = if started.is_ok() {
                    Thread::Running
                } else {
                    Thread::Failed
                };
            }
            Thread::Idle => table.wake.notify_one(),
            Thread::Until(until) if wake.is_some_and(|w| w < until) => table.wake.notify_one(),
            // Running: it reads the table again before it sleeps.
            Thread::Until(_) | Thread::Running | Thread::Failed => {}
        }
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        sweeper().lock().caches.remove(&self.id);
    }
}

struct Sweeper {
    state: Mutex<State>,
    wake: Condvar,
}

impl Sweeper {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Every update is a single map operation or assignment: a poisoned
        // lock holds no half-made state.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

struct State {
    caches: HashMap<u64, Entry>,
    next_id: u64,
    thread: Thread,
}

/// What the sweeper thread is doing.
#[derive(Clone, Copy)]
enum Thread {
    NotStarted,
    /// It could not be started.
    Failed,
    /// Sweeping, or about to read the table.
    Running,
    /// Asleep with nothing to expire.
    Idle,
    /// Asleep until this instant.
    Until(Instant),
}

struct Entry {
    cache: Weak<dyn Sweep>,
    /// The earliest expiry reported since the last sweep.
    due: Option<Instant>,
    /// When it was last swept.
    last: Option<Instant>,
}

impl Entry {
    /// When this cache is next swept: its earliest expiry, but not sooner
    /// than [`CACHE_SWEEP_INTERVAL`] after the last sweep.
    fn wake_at(&self) -> Option<Instant> {
        let due = self.due?;
        Some(
            match self.last.and_then(|l| l.checked_add(CACHE_SWEEP_INTERVAL)) {
                Some(earliest) => due.max(earliest),
                None => due,
            },
        )
    }
}

fn sweeper() -> &'static Sweeper {
    static SWEEPER: OnceLock<Sweeper> = OnceLock::new();
    SWEEPER.get_or_init(|| Sweeper {
        state: Mutex::new(State {
            caches: HashMap::new(),
            next_id: 0,
            thread: Thread::NotStarted,
        }),
        wake: Condvar::new(),
    })
}

/// The sweeper thread: sweeps the due caches, then sleeps until the next
/// one is due (or, with nothing to expire, until an expiry is reported).
fn run(sweeper: &'static Sweeper) {
    let mut state = sweeper.lock();
    loop {
        let now = Instant::now();
        let mut due = Vec::new();
        let mut next: Option<Instant> = None;
        for (&id, entry) in state.caches.iter_mut() {
            match entry.wake_at() {
                Some(at) if at <= now => {
                    entry.due = None;
                    entry.last = Some(now);
                    due.push((id, entry.cache.clone()));
                }
                Some(at) => next = Some(next.map_or(at, |n| n.min(at))),
                None => {}
            }
        }
        if due.is_empty() {
            state = match next {
                Some(at) => {
                    state.thread = Thread::Until(at);
                    sweeper
                        .wake
                        .wait_timeout(state, at.saturating_duration_since(now))
                        .unwrap_or_else(|p| p.into_inner())
                        .0
                }
                None => {
                    state.thread = Thread::Idle;
                    sweeper.wake.wait(state).unwrap_or_else(|p| p.into_inner())
                }
            };
            state.thread = Thread::Running;
            continue;
        }
        // Sweep without the table's lock: a cache's lock is never taken
        // under it, and a cache dropped here (its last handle was the one
        // upgraded) takes it to leave the table.
        drop(state);
        let mut swept = Vec::with_capacity(due.len());
        for (id, cache) in due {
            if let Some(cache) = cache.upgrade() {
                swept.push((id, cache.sweep(now)));
            }
        }
        state = sweeper.lock();
        for (id, next) in swept {
            if let (Some(entry), Some(next)) = (state.caches.get_mut(&id), next) {
                // An expiry reported during the sweep may be earlier.
                entry.due = Some(entry.due.map_or(next, |due| due.min(next)));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    /// A cache of bare expiries that records when it is swept.
    struct Fake {
        expiries: Mutex<Vec<Instant>>,
        sweeps: Mutex<Vec<Instant>>,
    }

    impl Sweep for Fake {
        fn sweep(&self, now: Instant) -> Option<Instant> {
            self.sweeps.lock().unwrap().push(now);
            let mut expiries = self.expiries.lock().unwrap();
            expiries.retain(|&at| at > now);
            expiries.iter().copied().min()
        }
    }

    /// Expiries 2 ms apart are swept in coalesced sweeps at least
    /// CACHE_SWEEP_INTERVAL apart, each entry within the interval of its
    /// expiry; a dropped cache leaves the table.
    #[test]
    fn sweeps_are_coalesced_and_bounded() {
        let fake = Arc::new(Fake {
            expiries: Mutex::new(Vec::new()),
            sweeps: Mutex::new(Vec::new()),
        });
        let weak: Weak<dyn Sweep> = Arc::downgrade(&fake) as Weak<Fake>;
        let registration = Registration::new(weak);
        let start = Instant::now() + Duration::from_millis(20);
        let expiries: Vec<Instant> = (0..40).map(|i| start + Duration::from_millis(2 * i)).collect();
        for &at in &expiries {
            fake.expiries.lock().unwrap().push(at);
            registration.expires(at);
        }
        let last = *expiries.last().unwrap();
        while !fake.expiries.lock().unwrap().is_empty() {
            assert!(Instant::now() < last + SWEPT_WITHIN, "not swept in time");
            std::thread::sleep(Duration::from_millis(2));
        }
        let sweeps = fake.sweeps.lock().unwrap().clone();
        // 80 ms of expiries: at most three sweeps (fewer if the thread is
        // scheduled late), not forty.
        assert!((1..=3).contains(&sweeps.len()), "{} sweeps", sweeps.len());
        for pair in sweeps.windows(2) {
            assert!(pair[1] - pair[0] >= CACHE_SWEEP_INTERVAL, "sweeps too close");
        }
        assert!(sweeps[0] >= start, "swept before the first expiry");

        let id = registration.id;
        drop(fake);
        assert!(
            sweeper().lock().caches.contains_key(&id),
            "until the cache drops its registration"
        );
        drop(registration);
        assert!(!sweeper().lock().caches.contains_key(&id));
    }
}

//! Refresh ahead: starting a background load of an entry's successor,
//! and running it (queued behind at most a quarter of the fan-out cap).

use std::hash::Hash;
use std::sync::Arc;

use tokio::sync::OnceCell;
use tokio::time::Instant;

use super::counters::Event;
use super::{finish, Cache, Flight, Load, LoadError, Origin, Slot};

impl<K, V, E> Cache<K, V, E>
where
    K: Hash + Eq + Copy + Send + 'static,
    V: Send + Sync + 'static,
    E: LoadError,
{
    /// A new background load for `slot`, unless one is under way or a
    /// failed one was tried too recently.
    pub(super) fn start_refresh(&self, slot: &mut Slot<V, E>, now: Instant) -> Option<Flight<V, E>> {
        if slot.flight.is_some() || slot.next.is_some() || slot.retry_at.is_some_and(|at| now < at) {
            return None;
        }
        // Refreshes run on the caller's tokio runtime. Not inside a
        // blocking client's call: its runtime runs tasks only during its
        // calls, and a caller on another runtime sharing the cache would
        // wait on a refresh parked there. Without a runtime (an entry used
        // outside any), entries are reloaded when unusable.
        if NO_REFRESH.with(std::cell::Cell::get) {
            return None;
        }
        tokio::runtime::Handle::try_current().ok()?;
        let flight: Flight<V, E> = Arc::new(OnceCell::new());
        slot.flight = Some(Arc::clone(&flight));
        slot.refreshing = true;
        Some(flight)
    }

    /// Runs a background refresh: one of at most a quarter of the fan-out
    /// cap at once (the others queue, in the order they fell due), loading
    /// under a permit of the cap, then lands. A caller that finds the entry
    /// unusable while its refresh still queues leads the load itself.
    pub(super) fn spawn_refresh<Fut>(&self, key: K, flight: Flight<V, E>, load: Fut)
    where
        Fut: std::future::Future<Output = std::result::Result<Load<V>, E>> + Send + 'static,
    {
        self.inner.counters.add(Event::Refresh, 1);
        let cache = Arc::downgrade(&self.inner);
        let refreshing = Arc::clone(&self.inner.refreshing);
        let loads = Arc::clone(&self.inner.loads);
        let policy = self.inner.policy;
        let counters = Arc::clone(&self.inner.counters);
        let refresh_counters = Arc::clone(&counters);
        tokio::spawn(async move {
            let Ok(ticket) = refreshing.acquire_owned().await else {
                return; // never closed
            };
            let mut ran = false;
            let outcome = flight
                .get_or_init(|| {
                    ran = true;
                    async move {
                        // The permit is taken inside the load, never held
                        // while waiting on a caller that took this flight
                        // over (with one permit, that caller would wait on
                        // it forever).
                        let permit = loads.acquire().await;
                        let loaded = load.await;
                        drop(permit);
                        finish(loaded, &policy, &counters)
                    }
                })
                .await
                .clone();
            drop(ticket);
            if !ran {
                // A caller led it and landed it.
                return;
            }
            if outcome.is_err() {
                refresh_counters.add(Event::RefreshFailed, 1);
            }
            if let Some(inner) = cache.upgrade() {
                Cache { inner }.land(&key, &flight, &outcome, Origin::Refresh);
            }
        });
    }
}

thread_local! {
    /// Set while a blocking client runs a call on this thread.
    static NO_REFRESH: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `f` (a blocking client's `block_on`) with no refresh ahead
/// started on this thread: the client's runtime is driven only during its
/// calls, so a refresh spawned there could sit unpolled while a caller on
/// another runtime sharing the cache waits for it.
pub(crate) fn without_refresh<R>(f: impl FnOnce() -> R) -> R {
    struct Reset(bool);
    impl Drop for Reset {
        fn drop(&mut self) {
            NO_REFRESH.with(|c| c.set(self.0));
        }
    }
    let _reset = Reset(NO_REFRESH.with(|c| c.replace(true)));
    f()
}

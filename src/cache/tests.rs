//! Tests of the cache engine on tokio's paused clock: refresh ahead,
//! single flight, the fan-out cap, jitter, stale-if-error, wiping.

use std::sync::atomic::{AtomicU64, AtomicUsize};
use std::sync::Mutex as StdMutex;

use super::*;
use crate::error::aws::{AwsError, AwsErrorKind, AwsOperation, TimeoutKind};
use crate::Error;

type TestCache = Cache<u32, u64, Error>;
type LoadFuture = std::pin::Pin<Box<dyn std::future::Future<Output = Result<Load<u64>, Error>> + Send>>;

const TTL: Duration = Duration::from_secs(100);

fn cache(policy: CachePolicy) -> TestCache {
    Cache::new("test", NonZeroUsize::new(16).unwrap(), policy)
}

fn policy() -> CachePolicyBuilder {
    CachePolicy::builder().jitter(0.0)
}

fn aws(kind: AwsErrorKind) -> Error {
    Error::Aws(Box::new(AwsError::new(kind, AwsOperation::Decrypt, "key")))
}

/// A loader that counts its calls, takes `latency` (on the paused clock),
/// and answers with the next of `script` (then `Ok(call number)`).
#[derive(Clone, Default)]
struct Loader {
    calls: Arc<AtomicUsize>,
    running: Arc<AtomicUsize>,
    most_running: Arc<AtomicUsize>,
    latency: Duration,
    script: Arc<StdMutex<Vec<Option<Error>>>>,
}

impl Loader {
    fn with_latency(latency: Duration) -> Self {
        Loader {
            latency,
            ..Loader::default()
        }
    }

    /// The next loads fail with these errors (`None`: succeed), in order.
    fn then(&self, outcomes: impl IntoIterator<Item = Option<Error>>) {
        let mut script = self.script.lock().unwrap();
        script.extend(outcomes);
    }

    fn calls(&self) -> usize {
        self.calls.load(Relaxed)
    }

    fn load(&self) -> impl Fn(Origin) -> LoadFuture + '_ {
        move |_origin| {
            let n = self.calls.fetch_add(1, Relaxed) as u64 + 1;
            let running = Arc::clone(&self.running);
            let most = Arc::clone(&self.most_running);
            let latency = self.latency;
            let outcome = {
                let mut script = self.script.lock().unwrap();
                if script.is_empty() {
                    None
                } else {
                    script.remove(0)
                }
            };
            Box::pin(async move {
                let now = running.fetch_add(1, Relaxed) + 1;
                most.fetch_max(now, Relaxed);
                tokio::time::sleep(latency).await;
                running.fetch_sub(1, Relaxed);
                match outcome {
                    Some(e) => Err(e),
                    None => Ok(Load::new(n, TTL)),
                }
            })
        }
    }
}

fn fresh(_: &u64) -> Usage {
    Usage::Fresh
}

/// Lets spawned refreshes run to completion (the paused clock advances
/// through their sleeps).
async fn settle() {
    tokio::time::sleep(Duration::from_millis(1)).await;
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
}

#[tokio::test(start_paused = true)]
async fn refresh_starts_in_the_grace_window_and_not_before() {
    let cache = cache(policy().grace(0.1).build().unwrap());
    let loader = Loader::default();
    let first = cache.get(1, TTL, fresh, loader.load()).await.unwrap();
    assert_eq!((first.value, loader.calls()), (1, 1));
    assert_eq!(first.refresh_at() - first.loaded(), Duration::from_secs(90));

    tokio::time::advance(Duration::from_millis(89_900)).await;
    for _ in 0..100 {
        assert_eq!(cache.get(1, TTL, fresh, loader.load()).await.unwrap().value, 1);
    }
    settle().await;
    assert_eq!(loader.calls(), 1, "no refresh before the grace window");

    tokio::time::advance(Duration::from_millis(200)).await;
    // In the window: served the current entry, one refresh started.
    for _ in 0..100 {
        assert_eq!(cache.get(1, TTL, fresh, loader.load()).await.unwrap().value, 1);
    }
    settle().await;
    assert_eq!(loader.calls(), 2, "one refresh for 100 lookups in the window");
    let current = cache.get(1, TTL, fresh, loader.load()).await.unwrap();
    assert_eq!(current.value, 1, "the current entry serves until it expires");
    // At its expiry the successor takes over: no load, no wait.
    tokio::time::advance(Duration::from_millis(10_000)).await;
    let start = Instant::now();
    let after = cache.get(1, TTL, fresh, loader.load()).await.unwrap();
    assert_eq!((after.value, Instant::now()), (2, start));
    assert_eq!(loader.calls(), 2);
    let stats = cache.snapshot();
    assert_eq!(
        (stats.refreshes, stats.misses, stats.waits, stats.hits),
        (1, 1, 0, 202)
    );
}

#[tokio::test(start_paused = true)]
async fn no_caller_waits_while_a_usable_entry_exists() {
    let cache = cache(policy().build().unwrap());
    let loader = Loader::with_latency(Duration::from_secs(30));
    cache.get(1, TTL, fresh, loader.load()).await.unwrap();
    tokio::time::advance(Duration::from_secs(95)).await;
    // A slow refresh (30 s) is under way; every lookup returns at once on
    // the paused clock (no time passes while they run).
    let start = Instant::now();
    for _ in 0..1000 {
        let entry = cache.get(1, TTL, fresh, loader.load()).await.unwrap();
        assert_eq!(entry.value, 1);
    }
    assert_eq!(Instant::now(), start, "a lookup waited");
    assert_eq!(loader.calls(), 2, "the first load and one refresh");
    assert_eq!(cache.snapshot().waits, 0);
    // The refresh lands after its 30 s; the entry expired at 100 s was
    // never needed.
    tokio::time::sleep(Duration::from_secs(31)).await;
    assert_eq!(cache.get(1, TTL, fresh, loader.load()).await.unwrap().value, 2);
}

#[tokio::test(start_paused = true)]
async fn concurrent_callers_on_a_cold_key_make_one_load() {
    let cache = cache(policy().build().unwrap());
    let loader = Loader::with_latency(Duration::from_secs(1));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..64 {
        let cache = cache.clone();
        let loader = loader.clone();
        tasks.spawn(async move { cache.get(7, TTL, fresh, loader.load()).await.unwrap().value });
    }
    while let Some(v) = tasks.join_next().await {
        assert_eq!(v.unwrap(), 1);
    }
    assert_eq!(loader.calls(), 1);
    let stats = cache.snapshot();
    assert_eq!((stats.misses, stats.waits, stats.hits), (1, 63, 0));
}

#[tokio::test(start_paused = true)]
async fn a_cancelled_leader_hands_the_load_to_a_waiter() {
    let cache = cache(policy().build().unwrap());
    let loader = Loader::with_latency(Duration::from_secs(1));
    let leader = {
        let (cache, loader) = (cache.clone(), loader.clone());
        tokio::spawn(async move { cache.get(1, TTL, fresh, loader.load()).await.map(|e| e.value) })
    };
    tokio::task::yield_now().await;
    let waiter = {
        let (cache, loader) = (cache.clone(), loader.clone());
        tokio::spawn(async move { cache.get(1, TTL, fresh, loader.load()).await.map(|e| e.value) })
    };
    tokio::task::yield_now().await;
    leader.abort();
    assert_eq!(waiter.await.unwrap().unwrap(), 2, "the waiter loaded itself");
    assert_eq!(loader.calls(), 2);
}

#[tokio::test(start_paused = true)]
async fn the_fan_out_cap_holds_across_keys() {
    let cache = cache(policy().max_loads(3).build().unwrap());
    let loader = Loader::with_latency(Duration::from_secs(1));
    let mut tasks = tokio::task::JoinSet::new();
    for key in 0..12 {
        let (cache, loader) = (cache.clone(), loader.clone());
        tasks.spawn(async move { cache.get(key, TTL, fresh, loader.load()).await.is_ok() });
    }
    let start = Instant::now();
    while let Some(ok) = tasks.join_next().await {
        assert!(ok.unwrap());
    }
    assert_eq!(loader.calls(), 12);
    assert_eq!(loader.most_running.load(Relaxed), 3, "at most 3 loads at once");
    assert_eq!(
        Instant::now() - start,
        Duration::from_secs(4),
        "12 loads, 3 at a time"
    );
}

#[tokio::test(start_paused = true)]
async fn jittered_lifetimes_spread_over_the_band() {
    let cache: TestCache = Cache::new(
        "test",
        NonZeroUsize::new(1000).unwrap(),
        CachePolicy::builder().jitter(0.1).grace(0.1).build().unwrap(),
    );
    let loader = Loader::default();
    let mut shares = Vec::new();
    for key in 0..1000 {
        let e = cache.get(key, TTL, fresh, loader.load()).await.unwrap();
        let life = (e.expires() - e.loaded()).as_secs_f64() / TTL.as_secs_f64();
        let refresh = (e.refresh_at() - e.loaded()).as_secs_f64() / TTL.as_secs_f64();
        assert!((0.9..=1.0).contains(&life), "lifetime {life} outside the band");
        assert!(
            (refresh / life - 0.9).abs() < 1e-6,
            "grace starts at 90 % of the jittered life"
        );
        shares.push(life);
    }
    // Ten bins of the band: each holds about 100 of the 1000 (binomial
    // sd about 9.5); 50 fails only for a broken draw.
    let mut bins = [0usize; 10];
    for s in &shares {
        bins[(((1.0 - s) / 0.01) as usize).min(9)] += 1;
    }
    assert!(bins.iter().all(|&n| n >= 50), "uneven spread: {bins:?}");

    let exact = cache_with(policy().build().unwrap());
    let e = exact.get(1, TTL, fresh, loader.load()).await.unwrap();
    assert_eq!(e.expires() - e.loaded(), TTL, "jitter 0: the TTL exactly");
}

fn cache_with(policy: CachePolicy) -> TestCache {
    cache(policy)
}

#[tokio::test(start_paused = true)]
async fn a_shorter_max_age_reloads_without_dropping_others_entry() {
    let cache = cache(policy().refresh_ahead(false).build().unwrap());
    let loader = Loader::default();
    cache.get(1, TTL, fresh, loader.load()).await.unwrap();
    tokio::time::advance(Duration::from_secs(20)).await;
    let short = cache
        .get(1, Duration::from_secs(10), fresh, loader.load())
        .await
        .unwrap();
    assert_eq!(short.value, 2, "too old for a 10 s TTL: loaded again");
    assert_eq!(cache.get(1, TTL, fresh, loader.load()).await.unwrap().value, 2);
}

#[test]
fn evicted_and_expired_entries_are_wiped() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let cache: TestCache = Cache::new("test", NonZeroUsize::new(2).unwrap(), policy().build().unwrap());
    let ttl = Duration::from_millis(80);
    let load = |v: u64| move |_| async move { Ok::<_, Error>(Load::new(v, ttl)) };
    let first = rt.block_on(cache.get(1, TTL, fresh, load(1))).unwrap();
    let weak_first = Arc::downgrade(&first);
    drop(first);
    rt.block_on(cache.get(2, TTL, fresh, load(2))).unwrap();
    rt.block_on(cache.get(3, TTL, fresh, load(3))).unwrap();
    assert!(weak_first.upgrade().is_none(), "evicted and dropped");
    let stats = cache.snapshot();
    assert_eq!((stats.evicted, stats.wiped, stats.entries), (1, 1, 2));

    let second = rt.block_on(cache.get(2, TTL, fresh, load(2))).unwrap();
    let expires = second.expires().into_std();
    let weak_second = Arc::downgrade(&second);
    drop(second);
    crate::cache::sweep::wait_swept(&weak_second, expires, "an expired entry");
    let stats = cache.snapshot();
    assert!(stats.expired >= 1 && stats.wiped >= 2, "{stats:?}");
}

/// The counters reach the metrics facade by cache and event, the same
/// numbers as the snapshot.
#[cfg(feature = "metrics")]
#[test]
fn counters_are_metrics_by_cache_and_event() {
    use crate::observe::testing::{counter, recorded};
    let got = recorded(|| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap();
        rt.block_on(async {
            let cache = cache(policy().stale_if_error(Duration::from_secs(60)).build().unwrap());
            let loader = Loader::default();
            cache.get(1, TTL, fresh, loader.load()).await.unwrap();
            cache.get(1, TTL, fresh, loader.load()).await.unwrap();
            tokio::time::advance(Duration::from_secs(95)).await;
            cache.get(1, TTL, fresh, loader.load()).await.unwrap(); // refresh ahead
            settle().await;
            tokio::time::advance(Duration::from_secs(6)).await;
            cache.get(1, TTL, fresh, loader.load()).await.unwrap(); // successor
            loader.then([Some(aws(AwsErrorKind::Throttled))]);
            tokio::time::advance(Duration::from_secs(100)).await;
            cache.get(1, TTL, fresh, loader.load()).await.unwrap(); // stale
            let s = cache.snapshot();
            assert_eq!(
                (
                    s.hits,
                    s.misses,
                    s.refreshes,
                    s.loads,
                    s.load_failures,
                    s.stale_uses,
                    s.expired
                ),
                (3, 2, 1, 2, 1, 1, 1),
                "{s:?}"
            );
        });
    });
    let events = |event: &str| {
        counter(
            &got,
            "envseal_cache_events_total",
            &[("cache", "test"), ("event", event)],
        )
    };
    for (event, n) in [
        ("hit", 3),
        ("miss", 2),
        ("refresh_ahead", 1),
        ("load", 2),
        ("load_failed", 1),
        ("stale_use", 1),
        ("expired", 1),
    ] {
        assert_eq!(events(event), Some(n), "{event}");
    }
    assert!(events("wiped").unwrap_or(0) >= 1, "the replaced entry was wiped");
}

#[test]
fn retry_delays_double_up_to_half_the_lifetime() {
    let policy = policy().build().unwrap();
    let ttl = Duration::from_secs(100);
    let delays: Vec<u64> = (1..=8).map(|n| policy.retry_delay(ttl, n).as_secs()).collect();
    // A fifth of the 10 s grace window, doubled per failure, capped at 50 s.
    assert_eq!(delays, [2, 4, 8, 16, 32, 50, 50, 50]);
    assert_eq!(policy.retry_delay(ttl, u32::MAX), Duration::from_secs(50));
    let short = Duration::from_millis(30);
    assert_eq!(
        policy.retry_delay(short, 5),
        Duration::from_millis(15),
        "half of a short life"
    );
}

/// Refreshes that keep failing back off: over 50 s past the grace window
/// start, far fewer attempts than one per interval.
#[tokio::test(start_paused = true)]
async fn failing_refreshes_back_off() {
    let cache = cache(policy().stale_if_error(Duration::from_secs(600)).build().unwrap());
    let loader = Loader::default();
    cache.get(1, TTL, fresh, loader.load()).await.unwrap();
    loader.then((0..1000).map(|_| Some(aws(AwsErrorKind::Throttled))));
    tokio::time::advance(Duration::from_secs(90)).await;
    for _ in 0..500 {
        tokio::time::advance(Duration::from_millis(100)).await;
        assert_eq!(cache.get(1, TTL, fresh, loader.load()).await.unwrap().value, 1);
        settle().await;
    }
    // 50 s at 2 s per attempt would be 25; doubling (2, 4, 8, 16, ... with
    // up to half again at random) leaves at most 6.
    let refreshes = loader.calls() - 1;
    assert!((3..=6).contains(&refreshes), "{refreshes} refreshes in 50 s");
}

/// A caller that takes over a background refresh's flight (its entry was
/// invalidated before the refresh task ran) does not wait forever on the
/// only load permit.
#[tokio::test(start_paused = true)]
async fn a_caller_taking_over_a_refresh_gets_the_permit() {
    let cache = cache(policy().max_loads(1).build().unwrap());
    let loader = Loader::with_latency(Duration::from_millis(10));
    cache.get(1, TTL, fresh, loader.load()).await.unwrap();
    tokio::time::advance(Duration::from_secs(95)).await;
    // Serves the entry and spawns a refresh, which has not run yet.
    assert_eq!(cache.get(1, TTL, fresh, loader.load()).await.unwrap().value, 1);
    assert!(cache.invalidate_if(&1, |_| true));
    let got = tokio::time::timeout(Duration::from_secs(60), cache.get(1, TTL, fresh, loader.load())).await;
    // Loader values number the loads made: the refresh's (2) never ran.
    assert_eq!(got.expect("the caller waited forever").unwrap().value, 3);
    settle().await;
    // The refresh task found the flight done: the caller's load stands.
    assert_eq!(cache.get(1, TTL, fresh, loader.load()).await.unwrap().value, 3);
}

/// Refreshes that fall due together run at most a quarter of the loads at
/// once; the others queue and run in turn, every entry serving meanwhile,
/// and each successor takes over at its entry's expiry.
#[tokio::test(start_paused = true)]
async fn refreshes_due_together_trickle() {
    let cache = cache(policy().max_loads(8).build().unwrap());
    let fast = Loader::default();
    for key in 0..12 {
        cache.get(key, TTL, fresh, fast.load()).await.unwrap();
    }
    tokio::time::advance(Duration::from_secs(90)).await;
    let slow = Loader::with_latency(Duration::from_secs(1));
    for key in 0..12 {
        assert_eq!(
            cache.get(key, TTL, fresh, slow.load()).await.unwrap().value,
            key as u64 + 1
        );
    }
    settle().await;
    assert_eq!(cache.snapshot().refreshes, 12, "every refresh due is queued");
    assert_eq!(slow.running.load(Relaxed), 2, "a quarter of 8 loads at once");
    tokio::time::sleep(Duration::from_secs(7)).await;
    assert_eq!((slow.calls(), slow.most_running.load(Relaxed)), (12, 2));
    // Past the entries' expiry: the successors serve, no caller loads.
    tokio::time::advance(Duration::from_secs(4)).await;
    let mut values = Vec::new();
    for key in 0..12 {
        values.push(cache.get(key, TTL, fresh, slow.load()).await.unwrap().value);
    }
    values.sort_unstable();
    assert_eq!(values, (1..=12).collect::<Vec<u64>>());
    let stats = cache.snapshot();
    assert_eq!(
        (slow.calls(), stats.misses, stats.waits),
        (12, 12, 0),
        "{stats:?}"
    );
}

/// A blocking client's call (its runtime driven only during its calls)
/// starts no refresh, so no caller on another runtime sharing the cache can
/// wait on one parked there: entries are reloaded when unusable.
#[test]
fn a_blocking_call_starts_no_refresh_to_park() {
    let rt = || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    };
    let (a, b) = (rt(), rt());
    let ttl = Duration::from_millis(300);
    let cache: TestCache = Cache::new(
        "test",
        NonZeroUsize::new(4).unwrap(),
        policy().grace(0.5).build().unwrap(),
    );
    let calls = Arc::new(AtomicUsize::new(0));
    let load = |latency: Duration| {
        let calls = Arc::clone(&calls);
        move |_: Origin| {
            let n = calls.fetch_add(1, Relaxed) as u64 + 1;
            async move {
                tokio::time::sleep(latency).await;
                Ok::<_, Error>(Load::new(n, ttl))
            }
        }
    };
    without_refresh(|| a.block_on(cache.get(1, TTL, fresh, load(Duration::ZERO)))).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    // In the grace window, inside a blocking call: served, no refresh.
    without_refresh(|| {
        a.block_on(async {
            cache
                .get(1, TTL, fresh, load(Duration::from_secs(30)))
                .await
                .unwrap();
            for _ in 0..10 {
                tokio::task::yield_now().await;
            }
        })
    });
    assert_eq!(cache.snapshot().refreshes, 0, "no refresh from a blocking call");
    std::thread::sleep(Duration::from_millis(200));
    // Expired now: a caller on `b` loads at once.
    let got = b.block_on(async {
        tokio::time::timeout(
            Duration::from_secs(5),
            cache.get(1, TTL, fresh, load(Duration::ZERO)),
        )
        .await
    });
    assert_eq!(got.expect("waited on a parked refresh").unwrap().value, 2);
}

/// Concurrent waiters of one load reserve its uses under the lock: a data
/// key good for 10 messages serves 10, not more, however many wake at once.
#[test]
fn waiters_of_one_load_never_overrun_its_uses() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .unwrap();
    let cache = cache(policy().refresh_ahead(false).build().unwrap());
    let uses: Arc<StdMutex<std::collections::HashMap<u64, u64>>> = Arc::default();
    let loader = Loader::with_latency(Duration::from_millis(50));
    rt.block_on(async {
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..200 {
            let (cache, loader, uses) = (cache.clone(), loader.clone(), Arc::clone(&uses));
            tasks.spawn(async move {
                // The data-key cache's check: read, compare, then store.
                let usage = |v: &u64| {
                    let n = uses.lock().unwrap().get(v).copied().unwrap_or(0);
                    if n >= 10 {
                        return Usage::Spent;
                    }
                    std::thread::yield_now();
                    uses.lock().unwrap().insert(*v, n + 1);
                    Usage::Fresh
                };
                cache.get(1, TTL, usage, loader.load()).await.unwrap().value
            });
        }
        while let Some(r) = tasks.join_next().await {
            r.unwrap();
        }
    });
    let uses = uses.lock().unwrap();
    assert!(
        uses.values().all(|&n| n <= 10),
        "a key overran its uses: {uses:?}"
    );
    assert_eq!(uses.values().sum::<u64>(), 200);
}

#[test]
fn policy_settings_are_bounded() {
    let year = Duration::from_secs(366 * 24 * 3600);
    assert!(CachePolicy::builder().stale_if_error(year).build().is_err());
    assert!(CachePolicy::builder().retry_interval(year).build().is_err());
    assert!(CachePolicy::builder()
        .retry_interval(Duration::ZERO)
        .build()
        .is_err());
    assert!(CachePolicy::builder().grace(1.0).build().is_err());
    assert!(CachePolicy::builder().jitter(-0.1).build().is_err());
    assert!(CachePolicy::builder().max_loads(0).build().is_err());
    assert!(CachePolicy::builder()
        .stale_if_error(Duration::from_secs(3600))
        .build()
        .is_ok());
}

/// A companion entry lives and dies with the entry it was seeded from,
/// is never refreshed ahead, never evicts an entry and never shortens
/// one that lives longer.
#[tokio::test(start_paused = true)]
async fn seeded_companions_live_with_their_entry_and_evict_nothing() {
    let cache: TestCache = Cache::new("test", NonZeroUsize::new(2).unwrap(), policy().build().unwrap());
    let loader = Loader::default();
    let source = cache.get(1, TTL, fresh, loader.load()).await.unwrap();
    assert!(cache.seed(2, 42, &source));
    let seeded = cache.get(2, TTL, fresh, loader.load()).await.unwrap();
    assert_eq!(seeded.value, 42, "a hit, not a load");
    assert_eq!(
        (seeded.loaded(), seeded.expires()),
        (source.loaded(), source.expires())
    );
    assert_eq!(loader.calls(), 1);

    // In the grace window the source refreshes ahead; its companion does not.
    tokio::time::advance(Duration::from_secs(95)).await;
    assert_eq!(cache.get(2, TTL, fresh, loader.load()).await.unwrap().value, 42);
    settle().await;
    assert_eq!(loader.calls(), 1, "no refresh of a companion");
    // It expires with its source: a lookup after that loads.
    tokio::time::advance(Duration::from_secs(6)).await;
    assert_eq!(cache.get(2, TTL, fresh, loader.load()).await.unwrap().value, 2);

    // Full (two keys held): a companion for a third key is not stored.
    let now = cache.get(1, TTL, fresh, loader.load()).await.unwrap();
    assert!(!cache.seed(3, 7, &now), "stored in a full cache");
    assert_eq!(cache.snapshot().evicted, 0);
    // A key whose entry lives at least as long keeps it.
    assert!(
        !cache.seed(2, 7, &source),
        "an older companion replaced a newer entry"
    );
    assert_eq!(cache.get(2, TTL, fresh, loader.load()).await.unwrap().value, 2);
    let stats = cache.snapshot();
    assert_eq!((stats.loads, stats.refreshes), (3, 0), "{stats:?}");
}

mod stale;

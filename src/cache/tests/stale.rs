//! Stale-if-error: which failures an expired entry rides out, for how
//! long, and that a refresh slower than its window is ridden out too.

use super::*;

/// Loads once, lets the entry expire, then the reload fails with `error`:
/// whether the lookup is served stale.
async fn served_stale_after(error: Error, refresh_ahead: bool) -> (bool, TestCache) {
    let cache = cache(
        policy()
            .refresh_ahead(refresh_ahead)
            .stale_if_error(Duration::from_secs(30))
            .build()
            .unwrap(),
    );
    let loader = Loader::default();
    cache.get(1, TTL, fresh, loader.load()).await.unwrap();
    tokio::time::advance(TTL + Duration::from_secs(1)).await;
    loader.then([Some(error)]);
    let served = cache.get(1, TTL, fresh, loader.load()).await;
    (served.is_ok_and(|e| e.value == 1), cache)
}

#[tokio::test(start_paused = true)]
async fn stale_if_error_serves_after_transient_failures_only() {
    let transient = [
        aws(AwsErrorKind::Throttled),
        aws(AwsErrorKind::Timeout(TimeoutKind::Deadline)),
        aws(AwsErrorKind::ServerError),
        aws(AwsErrorKind::Connection),
        // The credential provider down: nothing said about the key.
        aws(AwsErrorKind::Credentials),
    ];
    for e in transient {
        let what = e.to_string();
        let (stale, cache) = served_stale_after(e, false).await;
        assert!(stale, "not served stale after {what}");
        assert_eq!(cache.snapshot().stale_uses, 1);
    }
    let revoking = [
        aws(AwsErrorKind::AccessDenied),
        aws(AwsErrorKind::Disabled),
        aws(AwsErrorKind::NotFound),
        aws(AwsErrorKind::InvalidCiphertext),
        Error::Decrypt,
    ];
    for e in revoking {
        let what = e.to_string();
        let (stale, cache) = served_stale_after(e, false).await;
        assert!(!stale, "served stale after {what}");
        let stats = cache.snapshot();
        assert_eq!((stats.stale_uses, stats.entries), (0, 0), "after {what}");
    }
}

#[tokio::test(start_paused = true)]
async fn stale_if_error_is_bounded_and_off_by_default() {
    // Off by default: an expired entry never serves.
    let cache_off = cache(policy().refresh_ahead(false).build().unwrap());
    let loader = Loader::default();
    cache_off.get(1, TTL, fresh, loader.load()).await.unwrap();
    tokio::time::advance(TTL).await;
    loader.then([Some(aws(AwsErrorKind::Throttled))]);
    assert!(cache_off.get(1, TTL, fresh, loader.load()).await.is_err());

    let (stale, cache) = served_stale_after(aws(AwsErrorKind::Throttled), false).await;
    assert!(stale);
    let loader = Loader::default();
    // Within the retry interval: served stale with no new load.
    loader.then([Some(aws(AwsErrorKind::Throttled))]);
    assert_eq!(cache.get(1, TTL, fresh, loader.load()).await.unwrap().value, 1);
    settle().await;
    // Past the interval: one background retry per interval, callers served.
    let interval = cache.policy().retry_interval(TTL);
    let mut at = Duration::ZERO;
    while at < Duration::from_secs(28) {
        loader.then([Some(aws(AwsErrorKind::Throttled))]);
        tokio::time::advance(interval).await;
        at += interval;
        assert_eq!(cache.get(1, TTL, fresh, loader.load()).await.unwrap().value, 1);
        settle().await;
    }
    assert!(
        loader.calls() <= 28_000 / interval.as_millis() as usize + 2,
        "{} retries",
        loader.calls()
    );
    // Past the stale limit (30 s after expiry): the failure reaches the caller.
    tokio::time::advance(Duration::from_secs(3)).await;
    loader.then([Some(aws(AwsErrorKind::Throttled))]);
    assert!(
        cache.get(1, TTL, fresh, loader.load()).await.is_err(),
        "served past max"
    );
}

#[tokio::test(start_paused = true)]
async fn a_failed_refresh_ahead_keeps_serving_and_then_serves_stale() {
    let cache = cache(policy().stale_if_error(Duration::from_secs(60)).build().unwrap());
    let loader = Loader::default();
    cache.get(1, TTL, fresh, loader.load()).await.unwrap();
    loader.then((0..1000).map(|_| Some(aws(AwsErrorKind::Throttled))));
    tokio::time::advance(Duration::from_secs(85)).await;
    // Grace window, then expiry, then 50 s more: every lookup served at
    // once, refreshes retried once per interval, never in a tight loop.
    let start = Instant::now();
    for _ in 0..150 {
        tokio::time::advance(Duration::from_millis(400)).await;
        let e = cache.get(1, TTL, fresh, loader.load()).await.unwrap();
        assert_eq!(e.value, 1);
        settle().await;
    }
    let interval = cache.policy().retry_interval(TTL);
    let elapsed = (Instant::now() - start).as_millis() as usize;
    let stats = cache.snapshot();
    assert!(stats.stale_uses > 0 && stats.refresh_failures > 0);
    assert!(
        loader.calls() - 1 <= elapsed / interval.as_millis() as usize + 1,
        "{} refreshes in {elapsed} ms",
        loader.calls() - 1
    );
    assert_eq!(stats.waits + stats.misses, 1, "only the first lookup waited");
}

#[tokio::test(start_paused = true)]
async fn a_revoking_refresh_drops_the_entry_at_once() {
    let cache = cache(policy().stale_if_error(Duration::from_secs(60)).build().unwrap());
    let loader = Loader::default();
    let held = Arc::downgrade(&cache.get(1, TTL, fresh, loader.load()).await.unwrap());
    tokio::time::advance(Duration::from_secs(95)).await;
    loader.then([
        Some(aws(AwsErrorKind::AccessDenied)),
        Some(aws(AwsErrorKind::AccessDenied)),
    ]);
    assert!(
        cache.get(1, TTL, fresh, loader.load()).await.is_ok(),
        "served during the refresh"
    );
    settle().await;
    assert!(held.upgrade().is_none(), "dropped and wiped after AccessDenied");
    assert_eq!(cache.snapshot().revoked, 1);
    assert!(
        cache.get(1, TTL, fresh, loader.load()).await.is_err(),
        "the next lookup loads and fails"
    );
}

#[tokio::test(start_paused = true)]
async fn usage_limits_refresh_ahead_and_are_never_served_stale() {
    let cache = cache(policy().stale_if_error(Duration::from_secs(60)).build().unwrap());
    let loader = Loader::default();
    let uses = AtomicU64::new(0);
    // A data key good for 10 uses, refreshed ahead from its 9th.
    let usage = |_: &u64| match uses.fetch_add(1, Relaxed) + 1 {
        n if n > 10 => Usage::Spent,
        9 | 10 => Usage::Low,
        _ => Usage::Fresh,
    };
    cache.get(1, TTL, usage, loader.load()).await.unwrap();
    for _ in 0..7 {
        cache.get(1, TTL, usage, loader.load()).await.unwrap();
    }
    settle().await;
    assert_eq!(loader.calls(), 1);
    cache.get(1, TTL, usage, loader.load()).await.unwrap();
    settle().await;
    assert_eq!(
        (loader.calls(), cache.snapshot().refreshes),
        (2, 1),
        "refreshed at the 9th use"
    );

    // Spent, and the reload fails transiently: not served stale.
    uses.store(100, Relaxed);
    loader.then([Some(aws(AwsErrorKind::Throttled))]);
    assert!(cache.get(1, TTL, usage, loader.load()).await.is_err());
    assert_eq!(cache.snapshot().stale_uses, 0);
}

/// An entry whose refresh ahead is still under way at its expiry serves
/// stale under `stale_if_error` (counted) instead of making callers wait
/// on the slow load; without it, callers wait for the load.
#[tokio::test(start_paused = true)]
async fn a_refresh_slower_than_the_window_is_ridden_out_stale() {
    for stale in [true, false] {
        let mut builder = policy().grace(0.1);
        if stale {
            builder = builder.stale_if_error(Duration::from_secs(30));
        }
        let cache = cache(builder.build().unwrap());
        let fast = Loader::default();
        cache.get(1, TTL, fresh, fast.load()).await.unwrap();
        // In the window: a refresh that takes 20 s starts (done at 115 s).
        tokio::time::advance(Duration::from_secs(95)).await;
        let slow = Loader::with_latency(Duration::from_secs(20));
        cache.get(1, TTL, fresh, slow.load()).await.unwrap();
        settle().await;
        assert_eq!(slow.calls(), 1);
        tokio::time::advance(Duration::from_secs(6)).await; // expired at 100 s
        let asked = Instant::now();
        let got = cache.get(1, TTL, fresh, slow.load()).await.unwrap();
        let waited = Instant::now() - asked;
        let stats = cache.snapshot();
        if stale {
            assert_eq!((got.value, waited, stats.stale_uses), (1, Duration::ZERO, 1));
        } else {
            assert_eq!(got.value, 1, "the refresh's value (the loader's first call)");
            assert!(waited >= Duration::from_secs(13), "{waited:?}");
            assert_eq!(stats.stale_uses, 0);
        }
        assert_eq!(slow.calls(), 1, "no second load");
        tokio::time::sleep(Duration::from_secs(15)).await;
        assert_eq!(cache.get(1, TTL, fresh, slow.load()).await.unwrap().value, 1);
        assert_eq!(cache.snapshot().loads, 2, "the refresh landed");
    }
}

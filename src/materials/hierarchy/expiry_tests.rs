//! The branch key cache drops expired keys without another lookup.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{entry_id, BranchKeyCache};
use crate::cache::sweep::wait_swept;
use crate::cache::Origin;
use crate::keystore::BranchKeyMaterials;

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap()
}

/// A branch key cached with a 50 ms TTL is freed (its key wiped) within
/// the sweep bound after it expires, with no lookup; one with a long TTL
/// in the same cache stays.
#[test]
fn an_expired_branch_key_is_dropped_without_a_lookup() {
    let rt = rt();
    let cache = BranchKeyCache::default();
    let ttl = Duration::from_millis(50);
    let load = |id: &'static str| {
        move |_: Origin| {
            let m = BranchKeyMaterials::for_tests(id, [1; 16], [2; 32]);
            async move { Ok(m) }
        }
    };
    let short = rt
        .block_on(cache.get(entry_id(b"p", "s", "short", None), ttl, |_| {}, load("short")))
        .unwrap();
    let expires = Instant::now() + ttl;
    let long = rt
        .block_on(cache.get(
            entry_id(b"p", "s", "long", None),
            Duration::from_secs(600),
            |_| {},
            load("long"),
        ))
        .unwrap();
    let (short, long) = {
        let weak = (Arc::downgrade(&short), Arc::downgrade(&long));
        drop((short, long));
        weak
    };
    assert!(short.upgrade().is_some(), "held by the cache");
    wait_swept(&short, expires, "the branch key");
    assert_eq!(cache.len(), 1);
    assert!(long.upgrade().is_some(), "not expired: kept");
}

/// A dropped cache is not kept alive by the sweeper: its keys go with it.
#[test]
fn the_sweeper_does_not_keep_a_cache_alive() {
    let rt = rt();
    let cache = BranchKeyCache::default();
    let held = rt
        .block_on(cache.get(
            entry_id(b"p", "s", "bk", None),
            Duration::from_secs(600),
            |_| {},
            |_| async { Ok(BranchKeyMaterials::for_tests("bk", [1; 16], [2; 32])) },
        ))
        .unwrap();
    let key = Arc::downgrade(&held);
    drop(held);
    drop(cache);
    assert!(key.upgrade().is_none(), "freed with the cache");
}

/// An entry is its loader's for expiry: a keyring with a longer TTL does
/// not use it past the loader's TTL (it loads again), and a keyring with a
/// shorter TTL does not use it past its own.
#[tokio::test(start_paused = true)]
async fn an_entry_expires_with_its_loaders_ttl() {
    let cache = BranchKeyCache::default();
    let loads = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let load = |_: Origin| {
        let loads = Arc::clone(&loads);
        async move {
            loads.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Ok(BranchKeyMaterials::for_tests("bk", [1; 16], [2; 32]))
        }
    };
    let count = || loads.load(std::sync::atomic::Ordering::SeqCst);
    let id = entry_id(b"p", "s", "bk", None);
    let (second, long) = (Duration::from_secs(1), Duration::from_secs(600));
    cache.get(id, second, |_| {}, load).await.unwrap();
    tokio::time::advance(Duration::from_millis(100)).await;
    cache.get(id, long, |_| {}, load).await.unwrap();
    assert_eq!(count(), 1, "within its loader's TTL");
    cache
        .get(id, Duration::from_millis(50), |_| {}, load)
        .await
        .unwrap();
    assert_eq!(count(), 2, "past the caller's TTL: loaded again");
    tokio::time::advance(Duration::from_millis(1100)).await;
    cache.get(id, long, |_| {}, load).await.unwrap();
    assert_eq!(count(), 3, "past its loader's TTL: loaded again");
}

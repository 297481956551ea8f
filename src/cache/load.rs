//! What a cache's caller gives the engine: a load's result and lifetime,
//! who it is for, how an entry stands for a lookup, and what a load's
//! error means for the entry.

use std::time::Duration;

/// What the engine needs to know about a load's error.
pub(crate) trait LoadError: Send + Sync + 'static {
    /// Transient (throttled, timed out, 5xx, connection): an expired entry
    /// may serve stale after it, and the entry is kept.
    fn is_transient(&self) -> bool;
    /// Whether callers that waited on the load share this outcome; when
    /// not (it depends on the leader's own input), they load themselves.
    fn is_shared(&self) -> bool {
        true
    }
}

impl LoadError for crate::Error {
    /// An AWS failure the call engine retries (throttled, timed out, 5xx,
    /// connection), or a list of failures that are all such: a KMS or
    /// DynamoDB outage, not an answer about the key.
    fn is_transient(&self) -> bool {
        match self {
            // Credentials that could not be loaded say nothing about the
            // key either: an outage of the credential provider.
            crate::Error::Aws(e) => {
                e.is_retryable() || e.kind == crate::error::aws::AwsErrorKind::Credentials
            }
            crate::Error::Keyrings(all) => !all.is_empty() && all.iter().all(LoadError::is_transient),
            _ => false,
        }
    }

    /// A failed cryptographic check depends on the leader's own message
    /// (an RSA key is checked against its header), not on the entry.
    fn is_shared(&self) -> bool {
        !self.has_failed_check()
    }
}

/// How an entry stands for one lookup, beyond its age (the data-key
/// cache's message and byte limits); the check may reserve its use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Usage {
    /// Usable, well within its limits (use reserved).
    Fresh,
    /// Usable, in its grace window: refresh ahead (use reserved).
    Low,
    /// Not usable for this lookup (nothing reserved).
    Spent,
}

/// What a load returns: the value and how long it may be used.
pub(crate) struct Load<V> {
    pub value: V,
    /// Its lifetime before jitter.
    pub ttl: Duration,
    /// When to refresh it, from its load (before jitter); `None`: the
    /// policy's grace window.
    pub refresh_after: Option<Duration>,
}

impl<V> Load<V> {
    /// A value living `ttl`, refreshed in the policy's grace window.
    pub(crate) fn new(value: V, ttl: Duration) -> Self {
        Load {
            value,
            ttl,
            refresh_after: None,
        }
    }
}

/// Who a load is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Origin {
    /// A caller that waits for it (bounded by the caller's own deadline).
    Caller,
    /// A background refresh (bounded by a deadline of its own).
    Refresh,
}

tokio::task_local! {
    /// When the lookup whose load this task runs began.
    static LOOKUP_BEGAN: std::time::Instant;
}

/// When the cache lookup a caller's load runs for began (`None` outside
/// one, and in a background refresh). A keyring operation's deadline counts
/// from then, so a caller's wait for a permit of the fan-out cap is part of
/// its deadline, not added to it.
pub(crate) fn lookup_began() -> Option<std::time::Instant> {
    LOOKUP_BEGAN.try_with(|at| *at).ok()
}

/// Runs `load` as the load of a lookup that began at `began`, unless it
/// already runs inside one (the outermost lookup's start counts).
pub(crate) async fn within_lookup<F: std::future::Future>(began: std::time::Instant, load: F) -> F::Output {
    if lookup_began().is_some() {
        load.await
    } else {
        LOOKUP_BEGAN.scope(began, load).await
    }
}

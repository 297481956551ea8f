//! Work handed to the rayon pool while the calling thread does the I/O: a
//! stream seals or opens one batch of frames in the background while the
//! caller reads the next batch and writes the previous one.
//!
//! A job is waited for by blocking ([`Job::wait`], the sync streams) or
//! polled ([`Job::poll_ready`], the async streams, whose task is woken when
//! the job is done instead of blocking a runtime thread).

use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};

use crate::error::{Error, Result};

struct Slot<T> {
    value: Option<T>,
    finished: bool,
    waker: Option<Waker>,
}

struct Shared<T> {
    slot: Mutex<Slot<T>>,
    done: Condvar,
}

impl<T> Shared<T> {
    fn new(value: Option<T>, finished: bool) -> Arc<Self> {
        Arc::new(Shared {
            slot: Mutex::new(Slot {
                value,
                finished,
                waker: None,
            }),
            done: Condvar::new(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Slot<T>> {
        self.slot.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Marks the job finished (with or without a value) when the task ends,
/// even by unwinding, and wakes whoever waits.
struct Finish<T>(Arc<Shared<T>>, Option<T>);

impl<T> Finish<T> {
    /// The task's result: stored, then the waiters are told (on drop).
    fn complete(mut self, value: T) {
        self.1 = Some(value);
    }
}

impl<T> Drop for Finish<T> {
    fn drop(&mut self) {
        let waker = {
            let mut slot = self.0.lock();
            slot.value = self.1.take();
            slot.finished = true;
            slot.waker.take()
        };
        self.0.done.notify_all();
        if let Some(w) = waker {
            w.wake();
        }
    }
}

/// A task on the rayon pool whose result comes back to the thread (or the
/// async task) that waits for it. Dropped before it is done, the result,
/// buffers included, is dropped (and wiped) on the pool.
pub(crate) struct Job<T>(Arc<Shared<T>>);

#[cfg(test)]
thread_local! {
    /// Test support: jobs this thread handed to the pool.
    pub(crate) static SPAWNED: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

impl<T: Send + 'static> Job<T> {
    /// Starts `task` on the pool.
    pub(crate) fn spawn(task: impl FnOnce() -> T + Send + 'static) -> Self {
        let shared = Shared::new(None, false);
        let finish = Finish(Arc::clone(&shared), None);
        #[cfg(test)]
        SPAWNED.with(|n| n.set(n.get() + 1));
        rayon::spawn(move || finish.complete(task()));
        Job(shared)
    }

    /// A job already done with `value` (work that was cheaper to do on
    /// the calling thread than to hand over).
    pub(crate) fn ready(value: T) -> Self {
        Job(Shared::new(Some(value), true))
    }

    /// Blocks until the task is done.
    pub(crate) fn wait(self) -> Result<T> {
        let mut slot = self.0.lock();
        while !slot.finished {
            slot = self.0.done.wait(slot).unwrap_or_else(PoisonError::into_inner);
        }
        slot.value
            .take()
            .ok_or(Error::Internal("a background task ended without a result"))
    }

    /// Whether the task is done (then [`Job::wait`] does not block).
    pub(crate) fn is_finished(&self) -> bool {
        self.0.lock().finished
    }

    /// Ready once the task is done (then [`Job::wait`] does not block);
    /// until then the task of `cx` is woken when it is.
    #[cfg_attr(not(feature = "tokio"), allow(dead_code))]
    pub(crate) fn poll_ready(&self, cx: &mut Context<'_>) -> Poll<()> {
        let mut slot = self.0.lock();
        if slot.finished {
            return Poll::Ready(());
        }
        match &mut slot.waker {
            Some(w) => w.clone_from(cx.waker()),
            None => slot.waker = Some(cx.waker().clone()),
        }
        Poll::Pending
    }
}

/// Ready unless `job` is a task still running (see [`Job::poll_ready`]):
/// the async streams' check that a stream's next step will not wait.
#[cfg_attr(not(feature = "tokio"), allow(dead_code))]
pub(crate) fn poll_idle<T: Send + 'static>(job: Option<&Job<T>>, cx: &mut Context<'_>) -> Poll<()> {
    match job {
        Some(job) => job.poll_ready(cx),
        None => Poll::Ready(()),
    }
}

/// The most bytes an async stream seals, opens or wipes on its runtime's
/// thread rather than on the pool: about 40 µs of AES-GCM (or a few µs of
/// memset), less than a hand-off to the pool and back costs the stream,
/// and short enough not to stall the runtime.
#[cfg_attr(not(feature = "tokio"), allow(dead_code))]
pub(crate) const ON_RUNTIME_BYTES: usize = 256 << 10;

/// Most batches a stream keeps in the background: none unless it hands
/// batches to the pool at all ([`background`], asked on each call: a
/// stream may move between threads), one for a signing suite (the
/// signature's hash takes the batches in order), two otherwise (so that the
/// pool does not idle while the stream's thread hands over the next).
pub(crate) fn depth(threads: usize, signed: bool) -> usize {
    match (background(threads), signed) {
        (false, _) => 0,
        (true, true) => 1,
        (true, false) => 2,
    }
}

/// Whether a stream with `threads` threads hands batches to the pool and
/// waits for them: only with several threads, and never from a pool worker
/// (workers blocked on each other's queued tasks could deadlock the pool).
pub(crate) fn background(threads: usize) -> bool {
    threads > 1 && rayon::current_thread_index().is_none()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_job_returns_its_result_and_pool_workers_stay_inline() {
        let job = Job::spawn(|| (rayon::current_thread_index().is_some(), 42));
        assert_eq!(job.wait().unwrap(), (true, 42));
        assert!(background(2));
        assert!(!background(1));
        let inside = rayon::scope(|_| background(2));
        assert!(!inside);
    }

    #[test]
    fn a_polled_job_wakes_its_task_when_done() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        use std::task::Wake;
        struct Count(AtomicUsize);
        impl Wake for Count {
            fn wake(self: Arc<Self>) {
                self.0.fetch_add(1, Ordering::SeqCst);
            }
        }
        let wakes = Arc::new(Count(AtomicUsize::new(0)));
        let waker = Waker::from(Arc::clone(&wakes));
        let mut cx = Context::from_waker(&waker);
        let (go, gate) = std::sync::mpsc::channel::<()>();
        let job = Job::spawn(move || {
            gate.recv().unwrap();
            7
        });
        assert!(job.poll_ready(&mut cx).is_pending());
        assert_eq!(wakes.0.load(Ordering::SeqCst), 0);
        go.send(()).unwrap();
        let start = std::time::Instant::now();
        while wakes.0.load(Ordering::SeqCst) == 0 {
            assert!(
                start.elapsed() < std::time::Duration::from_secs(10),
                "never woken"
            );
            std::thread::yield_now();
        }
        assert!(job.poll_ready(&mut cx).is_ready());
        assert_eq!(job.wait().unwrap(), 7);
    }
}

//! Work handed to the rayon pool while the calling thread does the I/O: a
//! stream seals or opens one batch of frames in the background while the
//! caller reads the next batch and writes the previous one.

use std::sync::mpsc;

use crate::error::{Error, Result};

/// A task on the rayon pool whose result comes back to the thread that
/// waits for it.
pub(crate) struct Job<T>(mpsc::Receiver<T>);

impl<T: Send + 'static> Job<T> {
    /// Starts `task` on the pool.
    pub(crate) fn spawn(task: impl FnOnce() -> T + Send + 'static) -> Self {
        let (tx, rx) = mpsc::sync_channel(1);
        rayon::spawn(move || {
            // The receiver may be gone (the stream was dropped): the
            // result, buffers included, is dropped (and wiped) here.
            let _ = tx.send(task());
        });
        Job(rx)
    }

    /// Blocks until the task is done.
    pub(crate) fn wait(self) -> Result<T> {
        self.0
            .recv()
            .map_err(|_| Error::Internal("a background task ended without a result"))
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
}

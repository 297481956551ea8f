//! No plaintext left on disk when a signal ends the process.
//!
//! Output files are written to a temporary file beside the destination and
//! renamed onto it on success; a failed run drops (deletes) it. A signal
//! would skip that drop, so every such file is registered here while it
//! exists, and SIGINT, SIGTERM and SIGHUP are handled on a thread of their
//! own (signal-hook; the handler itself only wakes that thread): it deletes
//! the registered files and exits with 128 + the signal number (also for
//! SIGQUIT, SIGALRM, SIGUSR1/2, SIGXCPU, SIGXFSZ, SIGVTALRM and SIGPROF,
//! which end a process by default too). The
//! registry's lock is held across creating, renaming and deleting a file,
//! so a signal never races a rename, and never leaves a file that was
//! created but not yet registered. Only SIGKILL (or a power cut) can leave
//! a temporary file behind.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};

use tempfile::NamedTempFile;

/// Temporary output files that exist now.
static LIVE: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

/// Outputs written in place (stdout redirected to a regular file), with
/// the length each had before this run: cut back to it on failure.
static IN_PLACE: Mutex<Vec<(u64, fs::File, u64)>> = Mutex::new(Vec::new());

fn in_place() -> MutexGuard<'static, Vec<(u64, fs::File, u64)>> {
    IN_PLACE.lock().unwrap_or_else(PoisonError::into_inner)
}

fn live() -> MutexGuard<'static, Vec<PathBuf>> {
    // Every update is one push or retain: a panic cannot leave it torn.
    LIVE.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Starts the thread that cleans up on SIGINT, SIGTERM, SIGHUP and the
/// other terminating signals.
pub fn install() -> io::Result<()> {
    #[cfg(unix)]
    {
        use signal_hook::consts::{
            SIGALRM, SIGHUP, SIGINT, SIGPROF, SIGQUIT, SIGTERM, SIGUSR1, SIGUSR2, SIGVTALRM, SIGXCPU, SIGXFSZ,
        };
        // Every signal whose default action ends the process and that a
        // process may catch (SIGPIPE is ignored by Rust's runtime: writes
        // fail and the normal cleanup runs).
        let mut signals = signal_hook::iterator::Signals::new([
            SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGALRM, SIGUSR1, SIGUSR2, SIGXCPU, SIGXFSZ, SIGVTALRM, SIGPROF,
        ])?;
        std::thread::Builder::new()
            .name("envseal-signals".into())
            .spawn(move || {
                if let Some(signal) = signals.forever().next() {
                    let files = live();
                    for path in files.iter() {
                        let _ = fs::remove_file(path);
                    }
                    let cuts = in_place();
                    for (_, file, len) in cuts.iter() {
                        let _ = file.set_len(*len);
                    }
                    // Exits with the lock held: nothing is renamed into
                    // place after the files are gone.
                    std::process::exit(128 + signal);
                }
            })?;
    }
    Ok(())
}

/// A temporary file beside an output, registered for cleanup while it
/// exists; deleted on drop.
pub struct TempOutput {
    file: Option<NamedTempFile>,
}

impl TempOutput {
    /// Creates `.envseal-XXXXXX.tmp` in `dir`.
    pub fn create_in(dir: &Path) -> io::Result<Self> {
        let mut files = live();
        let file = tempfile::Builder::new()
            .prefix(".envseal-")
            .suffix(".tmp")
            .tempfile_in(dir)?;
        files.push(file.path().to_owned());
        Ok(TempOutput { file: Some(file) })
    }

    fn file(&mut self) -> io::Result<&mut NamedTempFile> {
        self.file
            .as_mut()
            .ok_or_else(|| io::Error::other("temporary output already closed"))
    }

    /// Flushes the file's data to disk.
    pub fn sync(&mut self) -> io::Result<()> {
        self.file()?.as_file().sync_all()
    }

    /// Sets the file's permissions.
    pub fn set_permissions(&mut self, permissions: std::fs::Permissions) -> io::Result<()> {
        self.file()?.as_file().set_permissions(permissions)
    }

    /// Sets the file's owner and group.
    #[cfg(unix)]
    pub fn chown(&mut self, uid: u32, gid: u32) -> io::Result<()> {
        std::os::unix::fs::fchown(self.file()?.as_file(), Some(uid), Some(gid))
    }

    /// The file opened again, for reading from the start.
    pub fn reopen(&mut self) -> io::Result<std::fs::File> {
        self.file()?.reopen()
    }

    /// Flushes the file to disk and renames it onto `dest` (refusing an
    /// existing `dest` unless `overwrite`). On failure the file is deleted
    /// when `self` drops.
    pub fn persist(mut self, dest: &Path, overwrite: bool) -> io::Result<()> {
        self.file()?.as_file().sync_all()?;
        let mut files = live();
        let file = self
            .file
            .take()
            .ok_or_else(|| io::Error::other("temporary output already closed"))?;
        let path = file.path().to_owned();
        let result = if overwrite {
            file.persist(dest)
        } else {
            file.persist_noclobber(dest)
        };
        match result {
            Ok(_) => {
                files.retain(|p| *p != path);
                Ok(())
            }
            Err(e) => {
                self.file = Some(e.file);
                Err(e.error)
            }
        }
    }
}

impl Drop for TempOutput {
    fn drop(&mut self) {
        if let Some(file) = self.file.take() {
            let mut files = live();
            let path = file.path().to_owned();
            drop(file);
            files.retain(|p| *p != path);
        }
    }
}

impl Write for TempOutput {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.file()?.write(buf)
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.file()?.write_all(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file()?.flush()
    }
}

/// A regular file written in place (stdout redirected to it), registered
/// so that a failure or a signal cuts it back to its length before this
/// run: what was there stays, nothing of this run's output does.
pub struct InPlace {
    id: u64,
}

impl InPlace {
    /// Registers `file`, now `len` bytes long and about to be appended to.
    pub fn register(file: &fs::File, len: u64) -> io::Result<Self> {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let id = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        in_place().push((id, file.try_clone()?, len));
        Ok(InPlace { id })
    }

    /// The output is complete: it stays.
    pub fn keep(self) {
        in_place().retain(|(id, _, _)| *id != self.id);
        std::mem::forget(self);
    }
}

impl Drop for InPlace {
    fn drop(&mut self) {
        let mut cuts = in_place();
        if let Some(i) = cuts.iter().position(|(id, _, _)| *id == self.id) {
            let (_, file, len) = cuts.remove(i);
            let _ = file.set_len(len);
        }
    }
}

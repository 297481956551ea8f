//! Input and output: path checks, the output sink (temporary file
//! renamed on success, spool for unverified plaintext on a stream), the
//! copy loop.

use std::fs::{self, File};
use std::io::{self, BufRead, BufReader, BufWriter, Read, Seek, Write};
use std::path::{Path, PathBuf};

use crate::cleanup::{InPlace, TempOutput};
use crate::error::Failure;

/// Buffer size for reading the input and writing the output.
pub(crate) const IO_BUFFER: usize = 256 * 1024;

pub(crate) fn is_stdio(p: &Path) -> bool {
    p.as_os_str() == "-"
}

/// Whether `a` and `b` name the same existing file.
pub(crate) fn same_file(a: &Path, b: &Path) -> bool {
    if let (Ok(ca), Ok(cb)) = (a.canonicalize(), b.canonicalize()) {
        if ca == cb {
            return true;
        }
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        if let (Ok(ma), Ok(mb)) = (fs::metadata(a), fs::metadata(b)) {
            return ma.dev() == mb.dev() && ma.ino() == mb.ino();
        }
    }
    false
}

/// Where the output goes.
#[derive(Clone)]
pub(crate) enum Target {
    /// `-`.
    Stdout,
    /// An existing character device or FIFO (e.g. `/dev/null`): written in
    /// place, never replaced.
    Stream(PathBuf),
    /// A regular file, written through a temporary file and a rename.
    File(PathBuf),
    /// An input file replaced in place (`reencrypt --in-place`), through a
    /// temporary file beside it and a rename.
    Replace(PathBuf),
}

/// Whether an existing output is a stream written in place (character
/// device or FIFO) rather than a file replaced on success.
pub(crate) fn is_stream(meta: &fs::Metadata) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        let t = meta.file_type();
        t.is_char_device() || t.is_fifo()
    }
    #[cfg(not(unix))]
    {
        let _ = meta;
        false
    }
}

/// Checks the input/output pair before anything is read or written, and
/// resolves where the output goes.
pub(crate) fn check_paths(input: &Path, output: &Path, force: bool) -> Result<Target, Failure> {
    if !is_stdio(input) {
        match fs::metadata(input) {
            Ok(m) if m.is_dir() => {
                return Err(Failure::UnreadableInput(format!(
                    "input {} is a directory",
                    input.display()
                )));
            }
            Ok(_) => {}
            Err(e) => {
                return Err(Failure::UnreadableInput(format!(
                    "cannot open input {}: {e}",
                    input.display()
                )));
            }
        }
    }
    if is_stdio(output) {
        return Ok(Target::Stdout);
    }
    let meta = fs::metadata(output);
    if let Ok(m) = &meta {
        if m.is_dir() {
            return Err(Failure::BadOutput(format!(
                "output {} is a directory",
                output.display()
            )));
        }
        if is_stream(m) {
            return Ok(Target::Stream(output.to_owned()));
        }
        if !m.is_file() {
            return Err(Failure::BadOutput(format!(
                "output {} is not a regular file",
                output.display()
            )));
        }
    }
    // An output that does not exist (even as a dangling link: `meta`
    // follows links) cannot be the input.
    if !is_stdio(input) && meta.is_ok() && same_file(input, output) {
        return Err(Failure::Usage(format!(
            "input and output are the same file ({}); the input is never modified",
            input.display()
        )));
    }
    if !force && fs::symlink_metadata(output).is_ok() {
        return Err(Failure::OutputExists(output.to_owned()));
    }
    // An existing symlink is followed: the file it names is replaced.
    let dest = match meta {
        Ok(_) => output.canonicalize().unwrap_or_else(|_| output.to_owned()),
        Err(_) => output.to_owned(),
    };
    Ok(Target::File(dest))
}

pub(crate) fn open_input(path: &Path) -> Result<BufReader<Box<dyn Read>>, Failure> {
    open_metered(path, Meter::default(), None)
}

/// As [`open_input`], every byte read counted by `meter`. `len`, the
/// file's length if known, sizes the buffer: it is zero-filled once, so a
/// small file gets a small one.
pub(crate) fn open_metered(
    path: &Path,
    meter: Meter,
    len: Option<u64>,
) -> Result<BufReader<Box<dyn Read>>, Failure> {
    let capacity = len.map_or(IO_BUFFER, |len| {
        usize::try_from(len)
            .unwrap_or(usize::MAX)
            .saturating_add(1)
            .clamp(8 << 10, IO_BUFFER)
    });
    let inner: Box<dyn Read> = if is_stdio(path) {
        Box::new(Metered {
            inner: io::stdin(),
            meter,
        })
    } else {
        let file = File::open(path)
            .map_err(|e| Failure::UnreadableInput(format!("cannot open input {}: {e}", path.display())))?;
        Box::new(Metered { inner: file, meter })
    };
    Ok(BufReader::with_capacity(capacity, inner))
}

/// Counts the bytes a reader delivers (and moves the progress bar).
#[derive(Clone, Default)]
pub(crate) struct Meter {
    bytes: std::sync::Arc<std::sync::atomic::AtomicU64>,
    bar: Option<indicatif::ProgressBar>,
}

impl Meter {
    pub(crate) fn new(bar: Option<indicatif::ProgressBar>) -> Self {
        Meter {
            bytes: Default::default(),
            bar,
        }
    }

    /// Bytes read so far.
    pub(crate) fn bytes(&self) -> u64 {
        self.bytes.load(std::sync::atomic::Ordering::Relaxed)
    }
}

struct Metered<R> {
    inner: R,
    meter: Meter,
}

impl<R: Read> Read for Metered<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.meter
            .bytes
            .fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
        if let Some(bar) = &self.meter.bar {
            bar.inc(n as u64);
        }
        Ok(n)
    }
}

/// Stdout as a file, when it is a regular file positioned at its end (a
/// `>` redirect), with its length: decrypted output can go straight into
/// it and be cut back on failure. `None` for a terminal, a pipe, or a file
/// opened elsewhere than at its end (or with `>>`, whose offset is 0).
fn stdout_file() -> Option<(File, u64)> {
    #[cfg(unix)]
    {
        use std::os::fd::AsFd;
        let fd = io::stdout().as_fd().try_clone_to_owned().ok()?;
        let mut file = File::from(fd);
        let meta = file.metadata().ok()?;
        if !meta.is_file() {
            return None;
        }
        let pos = file.stream_position().ok()?;
        (pos == meta.len()).then_some((file, pos))
    }
    #[cfg(not(unix))]
    {
        None
    }
}

pub(crate) fn open_stream(path: &Path) -> Result<File, Failure> {
    fs::OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(|e| Failure::UnwritableOutput(format!("cannot open output {}: {e}", path.display())))
}

/// Where the output goes until it is committed.
pub(crate) enum Sink {
    /// Encrypted output streamed straight to stdout.
    Stdout(BufWriter<io::StdoutLock<'static>>),
    /// Encrypted output streamed straight to a device or FIFO.
    Stream(BufWriter<File>),
    /// Decrypted output spooled until verified, then copied to stdout
    /// (`dest` = `None`) or to a device or FIFO.
    Spool {
        writer: BufWriter<File>,
        dest: Option<PathBuf>,
    },
    /// Decrypted output written straight into stdout, a regular file
    /// (redirected), which is cut back to its length before the run unless
    /// the run succeeds.
    InPlace { writer: BufWriter<File>, guard: InPlace },
    /// A temporary file next to `dest`, renamed onto it on success.
    Temp {
        writer: BufWriter<TempOutput>,
        dest: PathBuf,
        force: bool,
    },
}

impl Sink {
    /// `spool`: hold everything back until [`Sink::commit`] unless the
    /// output is a file (a temporary file is deleted on failure anyway).
    pub(crate) fn open(target: Target, force: bool, spool: bool) -> Result<Self, Failure> {
        if spool && matches!(target, Target::Stdout) {
            if let Some((file, len)) = stdout_file() {
                let guard = InPlace::register(&file, len)
                    .map_err(|e| Failure::UnwritableOutput(format!("cannot write output: {e}")))?;
                return Ok(Sink::InPlace {
                    writer: BufWriter::with_capacity(IO_BUFFER, file),
                    guard,
                });
            }
        }
        let dest = match target {
            Target::Stdout | Target::Stream(_) if spool => {
                let dest = match target {
                    Target::Stream(p) => Some(p),
                    _ => None,
                };
                let file = tempfile::tempfile()
                    .map_err(|e| Failure::UnwritableOutput(format!("cannot create a temporary file: {e}")))?;
                return Ok(Sink::Spool {
                    writer: BufWriter::with_capacity(IO_BUFFER, file),
                    dest,
                });
            }
            Target::Stdout => {
                return Ok(Sink::Stdout(BufWriter::with_capacity(
                    IO_BUFFER,
                    io::stdout().lock(),
                )));
            }
            Target::Stream(p) => {
                return Ok(Sink::Stream(BufWriter::with_capacity(
                    IO_BUFFER,
                    open_stream(&p)?,
                )));
            }
            Target::File(dest) => dest,
            Target::Replace(dest) => return Sink::temp_for(dest, true),
        };
        Sink::temp_for(dest, force)
    }

    /// A temporary file beside `dest`, renamed onto it by [`Sink::commit`].
    fn temp_for(dest: PathBuf, force: bool) -> Result<Self, Failure> {
        let parent = match dest.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        let tmp = TempOutput::create_in(parent).map_err(|e| {
            Failure::UnwritableOutput(format!(
                "cannot create a temporary file in {}: {e}",
                parent.display()
            ))
        })?;
        Ok(Sink::Temp {
            writer: BufWriter::with_capacity(IO_BUFFER, tmp),
            dest,
            force,
        })
    }

    /// The output written so far, flushed and synced to disk, opened again
    /// to be read back; `None` unless it goes to a temporary file.
    pub(crate) fn written(&mut self) -> Result<Option<File>, Failure> {
        let Sink::Temp { writer, .. } = self else {
            return Ok(None);
        };
        let werr = |e: io::Error| Failure::UnwritableOutput(format!("writing output: {e}"));
        writer.flush().map_err(werr)?;
        let tmp = writer.get_mut();
        tmp.sync().map_err(werr)?;
        tmp.reopen().map(Some).map_err(werr)
    }

    /// Sets the temporary output's permissions (before it is renamed into
    /// place); nothing for other outputs.
    #[cfg_attr(not(feature = "kms"), allow(dead_code))]
    pub(crate) fn set_permissions(&mut self, permissions: fs::Permissions) -> Result<(), Failure> {
        let Sink::Temp { writer, .. } = self else {
            return Ok(());
        };
        writer
            .get_mut()
            .set_permissions(permissions)
            .map_err(|e| Failure::UnwritableOutput(format!("setting the output's mode: {e}")))
    }

    /// Gives the temporary output the permissions and, where it may, the
    /// owner of `path` (a file it replaces in place keeps them).
    pub(crate) fn keep_permissions_of(&mut self, path: &Path) -> Result<(), Failure> {
        let Sink::Temp { writer, .. } = self else {
            return Ok(());
        };
        let werr = |e: io::Error| Failure::UnwritableOutput(format!("{}: {e}", path.display()));
        let meta = fs::metadata(path).map_err(werr)?;
        let tmp = writer.get_mut();
        tmp.set_permissions(meta.permissions()).map_err(werr)?;
        // Its owner too, where this process may give it (root, or the
        // owner itself): otherwise the file becomes the caller's.
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt;
            let _ = tmp.chown(meta.uid(), meta.gid());
        }
        Ok(())
    }

    /// Flushes and puts the output in place.
    pub(crate) fn commit(self) -> Result<(), Failure> {
        let werr = |e: io::Error| Failure::UnwritableOutput(format!("writing output: {e}"));
        match self {
            Sink::Stdout(mut w) => w.flush().map_err(werr),
            Sink::InPlace { writer, guard } => {
                let file = writer.into_inner().map_err(|e| werr(e.into_error()))?;
                drop(file);
                guard.keep();
                Ok(())
            }
            Sink::Stream(mut w) => w.flush().map_err(werr),
            Sink::Spool { writer, dest } => {
                let mut file = writer.into_inner().map_err(|e| werr(e.into_error()))?;
                file.rewind().map_err(werr)?;
                // File to stdout or to a device: `io::copy` moves the bytes
                // in the kernel (copy_file_range, sendfile or splice) where
                // it can.
                match dest {
                    None => {
                        let mut out = io::stdout().lock();
                        io::copy(&mut file, &mut out).map_err(werr)?;
                        out.flush().map_err(werr)
                    }
                    Some(p) => {
                        let mut out = open_stream(&p)?;
                        io::copy(&mut file, &mut out).map_err(werr)?;
                        out.flush().map_err(werr)
                    }
                }
            }
            Sink::Temp { writer, dest, force } => {
                let tmp = writer.into_inner().map_err(|e| werr(e.into_error()))?;
                tmp.persist(&dest, force).map_err(|e| {
                    if e.kind() == io::ErrorKind::AlreadyExists {
                        Failure::OutputExists(dest.clone())
                    } else {
                        Failure::UnwritableOutput(format!("cannot write output {}: {e}", dest.display()))
                    }
                })
            }
        }
    }
}

impl Sink {
    pub(crate) fn writer(&mut self) -> &mut dyn Write {
        match self {
            Sink::Stdout(w) => w,
            Sink::Stream(w) => w,
            Sink::Spool { writer, .. } => writer,
            Sink::InPlace { writer, .. } => writer,
            Sink::Temp { writer, .. } => writer,
        }
    }
}

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.writer().write(buf)
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.writer().write_all(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.writer().flush()
    }
}

/// A reader that remembers whether a read failed, so an error coming back
/// through the encrypting writer is told apart from a write error.
pub(crate) struct Tracked<R> {
    pub(crate) inner: R,
    pub(crate) failed: bool,
}

impl<R: Read> Read for Tracked<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read(buf).inspect_err(|e| {
            if e.kind() != io::ErrorKind::Interrupted {
                self.failed = true;
            }
        })
    }
}

/// A writer that counts the bytes written through it.
pub(crate) struct Counted<W> {
    pub(crate) inner: W,
    pub(crate) bytes: u64,
}

impl<W> Counted<W> {
    pub(crate) fn new(inner: W) -> Self {
        Counted { inner, bytes: 0 }
    }
}

impl<W: Write> Write for Counted<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.bytes += n as u64;
        Ok(n)
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.inner.write_all(buf)?;
        self.bytes += buf.len() as u64;
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Copies verified plaintext from `reader` to `writer` straight from the
/// reader's buffer (a batch at a time, no copy in between), telling read
/// errors from write errors.
pub(crate) fn pump<R: BufRead, W: Write>(
    reader: &mut R,
    writer: &mut W,
    read_err: impl Fn(io::Error) -> Failure,
    write_err: impl Fn(io::Error) -> Failure,
) -> Result<(), Failure> {
    loop {
        let chunk = match reader.fill_buf() {
            Ok([]) => return Ok(()),
            Ok(chunk) => chunk,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(read_err(e)),
        };
        let n = chunk.len();
        writer.write_all(chunk).map_err(&write_err)?;
        reader.consume(n);
    }
}

/// Base64 text without its whitespace (line breaks, spaces): what
/// `--decode` feeds the base64 decoder, which takes none.
pub(crate) struct SkipWhitespace<R> {
    pub(crate) inner: R,
}

impl<R: BufRead> Read for SkipWhitespace<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if out.is_empty() {
            return Ok(0);
        }
        loop {
            let buf = self.inner.fill_buf()?;
            if buf.is_empty() {
                return Ok(0);
            }
            let (mut n, mut used) = (0, 0);
            for &b in buf {
                if n == out.len() {
                    break;
                }
                used += 1;
                if !b.is_ascii_whitespace() {
                    out[n] = b;
                    n += 1;
                }
            }
            self.inner.consume(used);
            if n > 0 {
                return Ok(n);
            }
        }
    }
}

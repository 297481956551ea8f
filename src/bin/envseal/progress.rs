//! The progress bar on stderr (indicatif): drawn only when stderr is a
//! terminal, the work is long (a large file or many files) and `--quiet`
//! is not given. Messages printed while it is drawn go above it.

use std::io::{self, IsTerminal, Write};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::files::Plan;
use crate::output::Meter;

/// Inputs at least this large get a bar.
const LARGE_BYTES: u64 = 64 << 20;
/// Runs of at least this many files get a bar.
const MANY_FILES: usize = 20;

pub(crate) struct Progress {
    bar: Option<ProgressBar>,
    files: usize,
    done: usize,
    done_bytes: u64,
}

impl Progress {
    pub(crate) fn new(quiet: bool, plan: &Plan) -> Self {
        let total = plan.total_bytes();
        let files = plan.jobs.len();
        let long = files >= MANY_FILES || total.is_some_and(|t| t >= LARGE_BYTES);
        let bar = (!quiet && long && io::stderr().is_terminal()).then(|| {
            let bar = ProgressBar::with_draw_target(total, ProgressDrawTarget::stderr());
            let template = if total.is_some() {
                "{elapsed_precise} [{wide_bar}] {binary_bytes}/{binary_total_bytes} {binary_bytes_per_sec} {msg}"
            } else {
                "{elapsed_precise} {binary_bytes} {binary_bytes_per_sec} {msg}"
            };
            if let Ok(style) = ProgressStyle::with_template(template) {
                bar.set_style(style.progress_chars("=> "));
            }
            if plan.many {
                bar.set_message(format!("files 0/{files}"));
            }
            bar.enable_steady_tick(Duration::from_millis(200));
            bar
        });
        Progress {
            bar,
            files,
            done: 0,
            done_bytes: 0,
        }
    }

    /// Counts what an input reads into the bar.
    pub(crate) fn meter(&self) -> Meter {
        Meter::new(self.bar.clone())
    }

    /// Makes meters on other threads (see [`Progress::meter`]).
    pub(crate) fn meters(&self) -> impl Fn() -> Meter + Send + Sync + 'static {
        let bar = self.bar.clone();
        move || Meter::new(bar.clone())
    }

    /// One file done (or failed): the bar moves to the end of its bytes.
    pub(crate) fn file_done(&mut self, len: Option<u64>) {
        self.done += 1;
        self.done_bytes += len.unwrap_or(0);
        if let Some(bar) = &self.bar {
            bar.set_position(self.done_bytes);
            if self.files > 1 {
                bar.set_message(format!("files {}/{}", self.done, self.files));
            }
        }
    }

    /// Prints `line` on stderr, above the bar if one is drawn.
    pub(crate) fn eprintln(&self, line: &str) {
        let print = || {
            let _ = writeln!(io::stderr(), "{line}");
        };
        match &self.bar {
            Some(bar) => bar.suspend(print),
            None => print(),
        }
    }

    /// Removes the bar.
    pub(crate) fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.finish();
    }
}

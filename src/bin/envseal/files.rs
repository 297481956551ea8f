//! Which files a run reads and where each one's output goes: one input to
//! one output, or several files (a list, a directory tree with
//! `--recursive`) into an output directory, each under its own name plus
//! the suffix.

use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};

use crate::cli::CommonArgs;
use crate::error::Failure;
use crate::output::{check_paths, is_stdio, same_file, Target};

/// One message to write: an input (a path, or `-`) and its output.
pub(crate) struct Job {
    pub(crate) input: PathBuf,
    pub(crate) target: Target,
    /// The input's length when it is a regular file.
    pub(crate) len: Option<u64>,
}

impl Job {
    /// The output as the metadata and messages name it.
    pub(crate) fn output_name(&self) -> String {
        match &self.target {
            Target::Stdout => "-".to_owned(),
            Target::Stream(p) | Target::File(p) | Target::Replace(p) => p.display().to_string(),
        }
    }
}

/// One message written.
pub(crate) struct Done {
    pub(crate) input_bytes: u64,
    pub(crate) output_bytes: u64,
    /// The `header` and `header_auth` objects, for `--metadata-output`.
    pub(crate) headers: Option<(serde_json::Value, serde_json::Value)>,
    /// The KMS and cache counters before and after the message's keyring
    /// step, for `--metadata-output`.
    pub(crate) counters: Option<(Counters, Counters)>,
}

/// The KMS and cache counters at one moment of a run.
pub(crate) struct Counters {
    #[cfg(feature = "kms")]
    pub(crate) kms: Option<envseal::kms::AwsStats>,
    pub(crate) cache: Option<envseal::CacheStats>,
}

/// What one run does.
pub(crate) struct Plan {
    pub(crate) jobs: Vec<Job>,
    /// Several files into a directory: a failed file is reported and the
    /// others go on. Otherwise the one job's failure is the run's.
    pub(crate) many: bool,
    /// Entries of an input tree left alone, and why.
    pub(crate) skipped: Vec<(PathBuf, &'static str)>,
    /// Directories of an input tree that could not be listed.
    pub(crate) unreadable: Vec<(PathBuf, String)>,
}

impl Plan {
    /// One input to one output.
    fn single(job: Job) -> Self {
        Plan {
            jobs: vec![job],
            many: false,
            skipped: Vec::new(),
            unreadable: Vec::new(),
        }
    }

    /// The bytes the run reads, when every input is a file.
    pub(crate) fn total_bytes(&self) -> Option<u64> {
        self.jobs.iter().map(|j| j.len).sum()
    }
}

/// Resolves the inputs and outputs of a run from `--input`, `--output`,
/// `--recursive` and `suffix`.
pub(crate) fn plan(common: &CommonArgs, suffix: &str) -> Result<Plan, Failure> {
    let output = common
        .output
        .as_deref()
        .ok_or_else(|| Failure::Usage("--output is required".into()))?;
    let out_dir = !is_stdio(output) && fs::metadata(output).is_ok_and(|m| m.is_dir());
    let dirs: Vec<&PathBuf> = common
        .input
        .iter()
        .filter(|p| !is_stdio(p) && fs::metadata(p).is_ok_and(|m| m.is_dir()))
        .collect();
    if let Some(d) = dirs.first() {
        if !common.recursive {
            return Err(Failure::Usage(format!(
                "input {} is a directory (use --recursive to take the files under it)",
                d.display()
            )));
        }
    }
    if common.input.len() > 1 && common.input.iter().any(|p| is_stdio(p)) {
        return Err(Failure::Usage("- (stdin) cannot be one of several inputs".into()));
    }
    let many = common.input.len() > 1 || !dirs.is_empty();
    if !many {
        let input = &common.input[0];
        if out_dir {
            if is_stdio(input) {
                return Err(Failure::Usage(format!(
                    "output {} is a directory: name the output file for stdin",
                    output.display()
                )));
            }
            let dest = output.join(suffixed(input.file_name().unwrap_or_default(), suffix));
            return Ok(Plan::single(file_job(input.clone(), dest)));
        }
        let target = check_paths(input, output, common.force)?;
        return Ok(Plan::single(Job {
            input: input.clone(),
            target,
            len: file_len(input),
        }));
    }
    if is_stdio(output) {
        return Err(Failure::Usage(
            "several input files need an output directory, not - (stdout)".into(),
        ));
    }
    if !out_dir {
        if fs::symlink_metadata(output).is_ok() {
            return Err(Failure::Usage(format!(
                "output {} is not a directory (several input files need one)",
                output.display()
            )));
        }
        fs::create_dir_all(output).map_err(|e| {
            Failure::UnwritableOutput(format!(
                "cannot create output directory {}: {e}",
                output.display()
            ))
        })?;
    }
    let out_canon = output.canonicalize().map_err(|e| {
        Failure::UnwritableOutput(format!("cannot open output directory {}: {e}", output.display()))
    })?;
    let mut plan = Plan {
        jobs: Vec::new(),
        many: true,
        skipped: Vec::new(),
        unreadable: Vec::new(),
    };
    for input in &common.input {
        match fs::metadata(input) {
            Ok(m) if m.is_dir() => walk(input, output, &out_canon, suffix, &mut plan),
            // Named on the command line: taken as it is (a missing or
            // unreadable file fails when it is opened).
            _ => plan.jobs.push(file_job(
                input.clone(),
                output.join(suffixed(input.file_name().unwrap_or_default(), suffix)),
            )),
        }
    }
    Ok(plan)
}

/// The jobs of `reencrypt --in-place`: each input file (named, or under a
/// directory with `--recursive`) is its own output, replaced on success.
/// Symbolic links are left alone: replacing one would put a file in the
/// place of the link (the file it names is taken in its own right when it
/// is in the tree).
pub(crate) fn plan_in_place(common: &CommonArgs) -> Result<Plan, Failure> {
    if common.input.iter().any(|p| is_stdio(p)) {
        return Err(Failure::Usage(
            "--in-place replaces input files; - (stdin) is not one".into(),
        ));
    }
    let mut plan = Plan {
        jobs: Vec::new(),
        many: common.input.len() > 1,
        skipped: Vec::new(),
        unreadable: Vec::new(),
    };
    for input in &common.input {
        let meta = fs::symlink_metadata(input)
            .map_err(|e| Failure::UnreadableInput(format!("cannot open input {}: {e}", input.display())))?;
        if meta.is_dir() {
            if !common.recursive {
                return Err(Failure::Usage(format!(
                    "input {} is a directory (use --recursive to take the files under it)",
                    input.display()
                )));
            }
            plan.many = true;
            let canon = input.canonicalize().unwrap_or_else(|_| input.clone());
            walk(input, input, &canon, "", &mut plan);
        } else if meta.file_type().is_symlink() {
            plan.skipped
                .push((input.clone(), "symbolic link (not replaced in place)"));
        } else if !meta.is_file() {
            return Err(Failure::UnreadableInput(format!(
                "input {} is not a regular file",
                input.display()
            )));
        } else {
            plan.jobs.push(file_job(input.clone(), input.clone()));
        }
    }
    let mut skipped = Vec::new();
    let mut seen = std::collections::HashSet::new();
    plan.jobs.retain_mut(|job| {
        use std::os::unix::fs::MetadataExt;
        let Ok(meta) = fs::symlink_metadata(&job.input) else {
            return true;
        };
        if meta.file_type().is_symlink() {
            skipped.push((job.input.clone(), "symbolic link (not replaced in place)"));
            return false;
        }
        // Replacing one name of a file with several would leave the others
        // under the old keys.
        if meta.nlink() > 1 {
            skipped.push((
                job.input.clone(),
                "hard link (its other names would keep the old keys)",
            ));
            return false;
        }
        // A file named twice (or inside a tree also named) is done once.
        if !seen.insert((meta.dev(), meta.ino())) {
            return false;
        }
        let Target::File(dest) = &job.target else {
            return true;
        };
        job.target = Target::Replace(dest.clone());
        true
    });
    plan.skipped.extend(skipped);
    if plan.jobs.is_empty() && !plan.many {
        return Err(Failure::Usage("no input file to re-encrypt in place".into()));
    }
    Ok(plan)
}

fn suffixed(name: &std::ffi::OsStr, suffix: &str) -> OsString {
    let mut name = name.to_owned();
    name.push(suffix);
    name
}

/// The length of a regular file (`None` for stdin, a device, a FIFO).
fn file_len(path: &Path) -> Option<u64> {
    if is_stdio(path) {
        return None;
    }
    fs::metadata(path).ok().filter(|m| m.is_file()).map(|m| m.len())
}

fn file_job(input: PathBuf, dest: PathBuf) -> Job {
    Job {
        len: file_len(&input),
        input,
        target: Target::File(dest),
    }
}

/// Adds a job for every file under `root` (sorted, depth first), its output
/// at the same relative path under `out`. Symbolic links are followed only
/// to regular files inside the tree; the output directory, when it is
/// inside the tree, is not entered.
fn walk(root: &Path, out: &Path, out_canon: &Path, suffix: &str, plan: &mut Plan) {
    let root_canon = match root.canonicalize() {
        Ok(c) => c,
        Err(e) => {
            plan.unreadable.push((root.to_owned(), e.to_string()));
            return;
        }
    };
    let mut stack: Vec<PathBuf> = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let dir = root.join(&rel);
        let mut entries: Vec<fs::DirEntry> = match fs::read_dir(&dir).and_then(Iterator::collect) {
            Ok(e) => e,
            Err(e) => {
                plan.unreadable.push((dir, e.to_string()));
                continue;
            }
        };
        entries.sort_by_key(fs::DirEntry::file_name);
        let mut subdirs = Vec::new();
        for entry in entries {
            let path = entry.path();
            let rel_path = rel.join(entry.file_name());
            let Ok(kind) = entry.file_type() else {
                plan.skipped.push((path, "cannot be examined"));
                continue;
            };
            if kind.is_symlink() {
                match path.canonicalize() {
                    Ok(target) if !target.starts_with(&root_canon) => {
                        plan.skipped.push((path, "symbolic link out of the tree"));
                        continue;
                    }
                    Ok(target) if target.is_dir() => {
                        plan.skipped.push((path, "symbolic link to a directory"));
                        continue;
                    }
                    Ok(target) if target.is_file() => {}
                    Ok(_) => {
                        plan.skipped.push((path, "not a regular file"));
                        continue;
                    }
                    Err(_) => {
                        plan.skipped.push((path, "dangling symbolic link"));
                        continue;
                    }
                }
            } else if kind.is_dir() {
                if path.canonicalize().is_ok_and(|c| c == out_canon) {
                    continue;
                }
                subdirs.push(rel_path);
                continue;
            } else if !kind.is_file() {
                plan.skipped.push((path, "not a regular file"));
                continue;
            }
            let mut dest = out.join(&rel_path);
            dest.set_file_name(suffixed(entry.file_name().as_os_str(), suffix));
            plan.jobs.push(file_job(path, dest));
        }
        // Depth first, in name order.
        stack.extend(subdirs.into_iter().rev());
    }
}

/// Before a job of a many-file run writes: the same checks `check_paths`
/// makes for one file, and the output's missing parent directories
/// created. Returns the directories created (deepest last), for
/// [`remove_created`] when the file fails.
pub(crate) fn prepare(job: &Job, force: bool) -> Result<Vec<PathBuf>, Failure> {
    let Target::File(dest) = &job.target else {
        return Ok(Vec::new());
    };
    // One stat for the usual case, a destination that does not exist yet
    // (and so cannot be the input).
    let existing = fs::symlink_metadata(dest);
    if existing.is_ok() && same_file(&job.input, dest) {
        return Err(Failure::BadOutput(format!(
            "input and output are the same file ({}); the input is never modified",
            job.input.display()
        )));
    }
    match existing {
        Ok(m) if m.is_dir() => {
            return Err(Failure::BadOutput(format!(
                "output {} is a directory",
                dest.display()
            )));
        }
        Ok(_) if !force => {
            return Err(Failure::OutputExists(dest.clone()));
        }
        _ => {}
    }
    let mut created = Vec::new();
    let mut missing = Vec::new();
    let mut dir = dest.parent();
    while let Some(d) = dir.filter(|d| !d.as_os_str().is_empty() && fs::symlink_metadata(d).is_err()) {
        missing.push(d.to_owned());
        dir = d.parent();
    }
    for d in missing.into_iter().rev() {
        if let Err(e) = fs::create_dir(&d) {
            if e.kind() != std::io::ErrorKind::AlreadyExists {
                remove_created(&created);
                return Err(Failure::UnwritableOutput(format!(
                    "cannot create output directory {}: {e}",
                    d.display()
                )));
            }
        } else {
            created.push(d);
        }
    }
    Ok(created)
}

/// Removes the directories [`prepare`] created for a file that failed,
/// deepest first, where they are still empty.
pub(crate) fn remove_created(dirs: &[PathBuf]) {
    for d in dirs.iter().rev() {
        let _ = fs::remove_dir(d);
    }
}

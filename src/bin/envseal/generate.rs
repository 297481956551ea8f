//! `envseal completions SHELL` and `envseal man`: shell completion scripts
//! and man pages, generated from the clap definitions the parser uses.

use std::io::{self, Write};
use std::path::Path;

use crate::cleanup::TempOutput;
use crate::cli::{command, CompletionsArgs, ManArgs};
use crate::error::Failure;

/// Prints the completion script of `args.shell` on stdout.
pub(crate) fn completions(args: &CompletionsArgs) -> Result<(), Failure> {
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut command(), "envseal", &mut script);
    write_stdout(&script)
}

/// Prints `envseal.1` on stdout, or writes it and a page per subcommand
/// (`envseal-encrypt.1`, `envseal-key-store-create-key.1`, ...) into
/// `--out-dir`.
pub(crate) fn man(args: &ManArgs) -> Result<(), Failure> {
    let command = command();
    match &args.out_dir {
        Some(dir) => write_pages(command, dir),
        None => {
            let mut page = Vec::new();
            clap_mangen::Man::new(command)
                .render(&mut page)
                .map_err(|e| Failure::Internal(format!("rendering the man page: {e}")))?;
            write_stdout(&page)
        }
    }
}

/// Every page, each rendered whole and then renamed into a directory that
/// exists (a failure leaves no partial page).
fn write_pages(command: clap::Command, dir: &Path) -> Result<(), Failure> {
    if !dir.is_dir() {
        return Err(Failure::Usage(format!(
            "--out-dir {}: not a directory",
            dir.display()
        )));
    }
    // As clap_mangen::generate_to: built (so that subcommands get their
    // display names, `envseal-encrypt`), without clap's `help` subcommand.
    let mut command = command.disable_help_subcommand(true);
    command.build();
    let mut pages = Vec::new();
    collect(command, &mut pages);
    for man in pages {
        let path = dir.join(man.get_filename());
        let unwritable = |e: io::Error| Failure::UnwritableOutput(format!("{}: {e}", path.display()));
        let mut page = Vec::new();
        man.render(&mut page)
            .map_err(|e| Failure::Internal(format!("rendering the man page: {e}")))?;
        let mut file = TempOutput::create_in(dir).map_err(unwritable)?;
        file.write_all(&page).map_err(unwritable)?;
        // Readable by everyone, as man pages are (not the temporary
        // file's 0600).
        {
            use std::os::unix::fs::PermissionsExt;
            file.set_permissions(std::fs::Permissions::from_mode(0o644))
                .map_err(unwritable)?;
        }
        // Installing pages replaces the ones there (an older version's).
        file.persist(&path, true).map_err(unwritable)?;
    }
    Ok(())
}

/// The page of `command` and of each visible subcommand, at any depth.
fn collect(command: clap::Command, pages: &mut Vec<clap_mangen::Man>) {
    for sub in command.get_subcommands().filter(|s| !s.is_hide_set()).cloned() {
        collect(sub, pages);
    }
    pages.push(clap_mangen::Man::new(command));
}

fn write_stdout(bytes: &[u8]) -> Result<(), Failure> {
    let mut out = io::stdout().lock();
    out.write_all(bytes)
        .and_then(|()| out.flush())
        .map_err(|e| Failure::UnwritableOutput(format!("writing output: {e}")))
}

//! `envseal aws-encryption-cli ...`, and `envseal` run under the name
//! `aws-encryption-cli` (a symbolic link): AWS's aws-encryption-cli 4.3
//! argument language and behaviour on envseal, so that scripts written for
//! it run unchanged. docs/aws-encryption-cli.md has the table of arguments
//! and the differences.

mod argfile;
mod args;
#[cfg(feature = "kms")]
mod pyjson;
#[cfg(feature = "kms")]
mod run;

use std::ffi::OsString;
use std::io::Write;
use std::process::ExitCode;

use args::Stop;
#[cfg(feature = "kms")]
use run::End;

/// The peer's version, and envseal's.
const VERSION: &str = concat!(
    "aws-encryption-sdk-cli/4.3.0 (envseal ",
    env!("CARGO_PKG_VERSION"),
    ")"
);

const USAGE: &str = "usage: aws-encryption-cli [-h] (--version | [-e | -d | --decrypt-unsigned])\n\
    \x20                         (-S | --metadata-output METADATA_OUTPUT) [--overwrite-metadata]\n\
    \x20                         -w WRAPPING_KEYS [WRAPPING_KEYS ...] [--commitment-policy POLICY]\n\
    \x20                         [--caching CACHING [CACHING ...]] [-b] -i INPUT -o OUTPUT\n\
    \x20                         [--encode] [--decode] [-c ENCRYPTION_CONTEXT [ENCRYPTION_CONTEXT ...]]\n\
    \x20                         [--algorithm ALGORITHM] [--frame-length FRAME_LENGTH]\n\
    \x20                         [--max-length MAX_LENGTH] [--max-encrypted-data-keys N]\n\
    \x20                         [--suffix [SUFFIX]] [--interactive] [--no-overwrite] [-r] [-v] [-q]\n";

const HELP: &str = "\nEncrypt or decrypt data using the AWS Encryption SDK (aws-encryption-cli 4.3's\n\
    arguments, run by envseal: see docs/aws-encryption-cli.md for each argument and the differences)\n";

/// Runs the drop-in on `argv` (the arguments after the program name, or
/// after `aws-encryption-cli`).
pub(crate) fn main(argv: Vec<OsString>) -> ExitCode {
    let argv = match argfile::expand(argv) {
        Ok(a) => a,
        Err(argfile::ArgfileError::Unreadable(m)) => return usage_error(&m),
        Err(argfile::ArgfileError::Unsplittable(m)) => {
            return unexpected(&format!("ValueError(\"{m}\")"));
        }
    };
    let mut args = Vec::with_capacity(argv.len());
    for a in argv {
        match a.into_string() {
            Ok(s) => args.push(s),
            Err(a) => return usage_error(&format!("argument is not valid UTF-8: {}", a.to_string_lossy())),
        }
    }
    let parsed = match args::parse(&args) {
        Ok(p) => p,
        Err(Stop::Help) => {
            print!("{USAGE}{HELP}");
            return ExitCode::SUCCESS;
        }
        Err(Stop::Version) => {
            println!("{VERSION}");
            return ExitCode::SUCCESS;
        }
        Err(Stop::Usage(m)) => return usage_error(&m),
    };
    #[cfg(not(feature = "kms"))]
    {
        let _ = parsed;
        let _ = writeln!(
            std::io::stderr(),
            "aws-encryption-cli: its wrapping keys are AWS KMS keys, and this envseal was built without the `kms` feature"
        );
        ExitCode::from(1)
    }
    #[cfg(feature = "kms")]
    match run::run(parsed) {
        End::Ok => ExitCode::SUCCESS,
        End::Usage(m) => usage_error(&m),
        End::Failed(m) => {
            let _ = writeln!(std::io::stderr(), "{m}");
            ExitCode::from(1)
        }
        End::Unexpected(m) => unexpected(&m),
    }
}

fn usage_error(message: &str) -> ExitCode {
    let _ = writeln!(std::io::stderr(), "{USAGE}aws-encryption-cli: error: {message}");
    ExitCode::from(2)
}

/// The peer's report of an error it did not expect (its SDK's): a fixed
/// first line, then what happened.
fn unexpected(message: &str) -> ExitCode {
    let _ = writeln!(
        std::io::stderr(),
        "Encountered unexpected error: increase verbosity to see details.\n{}",
        crate::error::one_line(message)
    );
    ExitCode::from(1)
}

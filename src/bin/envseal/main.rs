//! `envseal`: encrypt and decrypt files in the AWS Encryption SDK message
//! format with AWS KMS keys, branch keys of the AWS KMS Hierarchical
//! keyring, and raw AES and raw RSA wrapping keys.
//!
//! Output files are written to a temporary file next to the destination and
//! renamed into place only on success, so a failed run never leaves a
//! partial (or unverified) output behind. Decrypted plaintext sent to stdout
//! is spooled to a temporary file first and released only once the whole
//! message has verified. SIGINT, SIGTERM, SIGHUP (and the other terminating signals) delete the temporary
//! file before the process exits (see `cleanup`).
#![forbid(unsafe_code)]

use std::io::{self, Write};
use std::process::ExitCode;

use clap::{ArgMatches, FromArgMatches};

mod awscli;
mod cleanup;
mod cli;
mod commands;
mod error;
mod files;
mod generate;
mod keys;
mod keystore;
mod kms;
mod metadata;
mod output;
mod parse;
mod progress;
mod reencrypt;

use cli::{Cli, Command};
use commands::{decrypt, encrypt};
use error::{clap_one_line, one_line, Failure};
use keys::ordered_keys;
use kms::doctor;

fn main() -> ExitCode {
    if let Err(e) = cleanup::install() {
        let _ = writeln!(
            io::stderr(),
            "envseal: cannot handle signals: {}",
            one_line(&e.to_string())
        );
        return ExitCode::from(1);
    }
    std::panic::set_hook(Box::new(|info| {
        let msg = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown".into());
        let _ = writeln!(io::stderr(), "envseal: internal error: {}", one_line(&msg));
    }));
    // AWS's aws-encryption-cli argument language: as a subcommand, or
    // when run under that name (a symbolic link).
    let mut argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let called = argv
        .first()
        .and_then(|a| std::path::Path::new(a).file_name())
        .is_some_and(|n| n == "aws-encryption-cli");
    if called {
        return awscli::main(argv.split_off(1));
    }
    if argv.get(1).is_some_and(|a| a == "aws-encryption-cli") {
        return awscli::main(argv.split_off(2));
    }
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            let mut err = io::stderr().lock();
            let _ = writeln!(err, "envseal: {}", one_line(&failure.to_string()));
            if let Some(hint) = failure.hint() {
                let _ = writeln!(err, "hint: {}", one_line(&hint));
            }
            ExitCode::from(failure.exit_code())
        }
    }
}

fn parse_args() -> Result<(Cli, ArgMatches), Failure> {
    use clap::error::ErrorKind;
    let matches = match cli::command().try_get_matches() {
        Ok(m) => m,
        Err(e) => match e.kind() {
            ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
                let _ = e.print();
                std::process::exit(0);
            }
            ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand | ErrorKind::MissingSubcommand
                if std::env::args().nth(1).as_deref() == Some("key-store") =>
            {
                return Err(Failure::Usage(
                    "key-store needs a subcommand: create-table, create-key, version-key, list-versions or describe (see envseal key-store --help)"
                        .into(),
                ));
            }
            ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand | ErrorKind::MissingSubcommand => {
                return Err(Failure::Usage(
                    "a subcommand is required: encrypt, decrypt, reencrypt, inspect, doctor, key-store, aws-encryption-cli, completions or man (see envseal --help)"
                        .into(),
                ));
            }
            // The message names the values the option takes.
            ErrorKind::InvalidValue | ErrorKind::ValueValidation => {
                return Err(Failure::Usage(clap_one_line(&e)))
            }
            _ => return Err(args_failure(&e)),
        },
    };
    let cli = Cli::from_arg_matches(&matches).map_err(|e| args_failure(&e))?;
    Ok((cli, matches))
}

/// A command line clap refused, with the (sub)command it was for.
fn args_failure(e: &clap::Error) -> Failure {
    let mut command = cli::command();
    let mut names: Vec<String> = Vec::new();
    for arg in std::env::args().skip(1) {
        let Some(sub) = command.find_subcommand(&arg).cloned() else {
            break;
        };
        names.push(sub.get_name().to_owned());
        command = sub;
    }
    Failure::Args {
        message: clap_one_line(e),
        command: (!names.is_empty()).then(|| names.join(" ")),
    }
}

fn run() -> Result<(), Failure> {
    let (cli, matches) = parse_args()?;
    let sub = matches.subcommand().map(|(_, m)| m).ok_or_else(|| {
        Failure::Usage(
            "a subcommand is required: encrypt, decrypt, reencrypt, inspect, doctor, key-store, completions or man"
                .into(),
        )
    })?;
    if cli.fips {
        kms::require_fips()?;
    }
    match cli.command {
        Command::Encrypt(args) => {
            let specs = ordered_keys(&args.common, sub);
            encrypt(&args, specs)
        }
        Command::Decrypt(args) => {
            let specs = ordered_keys(&args.common, sub);
            decrypt(&args, specs)
        }
        Command::Inspect(args) => metadata::inspect(&args),
        Command::Doctor(args) => doctor(&args),
        Command::KeyStore(cmd) => keystore::run(&cmd),
        Command::Reencrypt(args) => {
            let old = ordered_keys(&args.common, sub);
            let new = keys::ordered_new_keys(&args.new, sub);
            reencrypt::reencrypt(&args, old, new)
        }
        // Taken before clap parses (see `main`); here only for its help.
        Command::AwsEncryptionCli(args) => match awscli::main(args.args) {
            code if code == ExitCode::SUCCESS => Ok(()),
            _ => std::process::exit(1),
        },
        Command::Completions(args) => generate::completions(&args),
        Command::Man(args) => generate::man(&args),
    }
}

//! `envseal completions` and `envseal man`: generated in the test run and
//! used as a shell and `man` would use them.

use std::fs;
use std::process::{Command, Output};

use tempfile::TempDir;

const BIN: &str = env!("CARGO_BIN_EXE_envseal");

fn envseal(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().expect("spawn envseal")
}

#[track_caller]
fn stdout_of(out: &Output) -> String {
    assert!(
        out.status.success(),
        "envseal failed: {:?}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.stderr.is_empty(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).expect("UTF-8")
}

/// What bash's programmable completion offers for the words typed so far
/// (the last one being completed), with the script envseal printed.
fn bash_complete(script: &str, words: &[&str]) -> Vec<String> {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("envseal.bash");
    fs::write(&path, script).unwrap();
    let quoted: Vec<String> = words.iter().map(|w| format!("'{w}'")).collect();
    let probe = format!(
        "source '{}'\nCOMP_WORDS=({})\nCOMP_CWORD={}\nCOMP_LINE='{}'\nCOMP_POINT=${{#COMP_LINE}}\n\
         _envseal envseal '{}' '{}'\nprintf '%s\\n' \"${{COMPREPLY[@]}}\"\n",
        path.display(),
        quoted.join(" "),
        words.len() - 1,
        words.join(" "),
        words[words.len() - 1],
        words[words.len() - 2],
    );
    let out = Command::new("bash").arg("-c").arg(probe).output().expect("bash");
    assert!(
        out.status.success(),
        "bash: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

#[test]
fn bash_completion_offers_subcommands_and_flags() {
    let script = stdout_of(&envseal(&["completions", "bash"]));
    let check = Command::new("bash")
        .arg("-n")
        .arg("-c")
        .arg(&script)
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "bash -n: {}",
        String::from_utf8_lossy(&check.stderr)
    );

    let subcommands = bash_complete(&script, &["envseal", ""]);
    for name in [
        "encrypt",
        "decrypt",
        "inspect",
        "doctor",
        "key-store",
        "completions",
        "man",
    ] {
        assert!(
            subcommands.iter().any(|s| s == name),
            "{name} not in {subcommands:?}"
        );
    }
    assert_eq!(bash_complete(&script, &["envseal", "enc"]), ["encrypt"]);
    let new_keys = bash_complete(&script, &["envseal", "reencrypt", "--new-kms"]);
    assert_eq!(
        new_keys,
        [
            "--new-kms-key",
            "--new-kms-rsa-key",
            "--new-kms-rsa-padding",
            "--new-kms-rsa-public-key",
            "--new-kms-ecdh-static"
        ]
    );
    let flags = bash_complete(&script, &["envseal", "encrypt", "--raw-a"]);
    assert_eq!(flags, ["--raw-aes-key"]);
    let nested = bash_complete(&script, &["envseal", "key-store", "ver"]);
    assert_eq!(nested, ["version-key"]);
}

#[test]
fn completions_for_every_shell_name_the_subcommands() {
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let script = stdout_of(&envseal(&["completions", shell]));
        for name in [
            "encrypt",
            "decrypt",
            "key-store",
            "version-key",
            "--metadata-output",
        ] {
            assert!(script.contains(name), "{shell}: {name} missing");
        }
    }
    let out = envseal(&["completions", "tcsh"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("invalid value 'tcsh'"), "{err}");
}

#[test]
fn man_page_on_stdout_renders() {
    let page = stdout_of(&envseal(&["man"]));
    assert!(page.contains(".TH envseal 1"), "{page}");
    for name in ["encrypt", "decrypt", "key\\-store", "completions"] {
        assert!(page.contains(name), "{name} missing");
    }
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("envseal.1");
    fs::write(&path, &page).unwrap();
    let rendered = Command::new("man")
        .args(["-l", "-P", "cat"])
        .arg(&path)
        .env("MANWIDTH", "100")
        .output()
        .expect("man");
    assert!(
        rendered.status.success(),
        "{}",
        String::from_utf8_lossy(&rendered.stderr)
    );
    let text = String::from_utf8_lossy(&rendered.stdout);
    assert!(text.contains("NAME") && text.contains("SUBCOMMANDS"), "{text}");
}

#[test]
fn man_out_dir_writes_a_page_per_subcommand() {
    let dir = TempDir::new().unwrap();
    // An older page there is replaced.
    fs::write(dir.path().join("envseal-encrypt.1"), "old").unwrap();
    let out = envseal(&["man", "--out-dir", dir.path().to_str().unwrap()]);
    assert!(stdout_of(&out).is_empty());
    let mut names: Vec<String> = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "envseal-aws-encryption-cli.1",
            "envseal-completions.1",
            "envseal-decrypt.1",
            "envseal-doctor.1",
            "envseal-encrypt.1",
            "envseal-inspect.1",
            "envseal-key-store-create-key.1",
            "envseal-key-store-create-table.1",
            "envseal-key-store-describe.1",
            "envseal-key-store-list-versions.1",
            "envseal-key-store-version-key.1",
            "envseal-key-store.1",
            "envseal-man.1",
            "envseal-reencrypt.1",
            "envseal.1",
        ]
    );
    // Readable by everyone, as installed man pages are.
    use std::os::unix::fs::PermissionsExt;
    let mode = fs::metadata(dir.path().join("envseal.1"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o644);
    let encrypt = fs::read_to_string(dir.path().join("envseal-encrypt.1")).unwrap();
    assert!(encrypt.contains(".TH envseal-encrypt 1"), "{encrypt}");
    assert!(encrypt.contains("raw\\-aes\\-key"), "{encrypt}");

    let missing = dir.path().join("absent");
    let out = envseal(&["man", "--out-dir", missing.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a directory"));
    assert!(!missing.exists());
}

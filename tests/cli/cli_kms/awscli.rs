//! `envseal aws-encryption-cli` against AWS's aws-encryption-cli 4.3 (its
//! own venv, as the CLI peer benchmark installs it), both on one moto:
//! command lines from its documentation and `--help`, each run by both
//! tools with the same argv in twin directories. Same exit code (one
//! deliberate difference: a decrypt whose `-c` does not match, which the
//! peer ends with 0), the same files written, each tool decrypts what the
//! other wrote, and the same metadata lines (keys, and every value that is
//! not random).

use super::*;

use std::collections::BTreeMap;
use std::path::PathBuf;

/// The peer: `ENVSEAL_AWS_ENCRYPTION_CLI` (set by scripts/test), else the
/// CLI peer venv scripts/cli-peer-venv makes.
fn peer() -> PathBuf {
    if let Some(p) = std::env::var_os("ENVSEAL_AWS_ENCRYPTION_CLI") {
        return PathBuf::from(p);
    }
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv-cli-peer/bin/aws-encryption-cli");
    assert!(
        venv.exists(),
        "aws-encryption-cli 4.3 is needed: run scripts/test (it installs it) or set ENVSEAL_AWS_ENCRYPTION_CLI"
    );
    venv
}

/// Which tool runs a command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Tool {
    Peer,
    Ours,
}

fn run_tool(tool: Tool, dir: &Path, argv: &[String], stdin: Option<&[u8]>) -> Output {
    use std::io::Write as _;
    let url = moto().url.clone();
    let mut c = match tool {
        Tool::Peer => Command::new(peer()),
        Tool::Ours => {
            let mut c = Command::new(BIN);
            c.arg("aws-encryption-cli");
            c
        }
    };
    test_env(c.args(argv).current_dir(dir), dir)
        .env("AWS_ENDPOINT_URL_KMS", &url)
        .env("AWS_REGION", "us-east-1")
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().expect("spawn");
    let input = stdin.unwrap_or(&[]).to_vec();
    let mut pipe = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || {
        let _ = pipe.write_all(&input);
    });
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    out
}

/// Every file under `dir` (relative path → bytes), but the tool's home
/// files.
fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p.strip_prefix(dir).unwrap().display().to_string();
                out.insert(rel, std::fs::read(&p).unwrap());
            }
        }
    }
    out
}

/// The twin directories' common start: plaintext files, a tree, empty
/// output directories, messages made by envseal under `$K1` (and `$K2`),
/// and argument files.
fn fixture(dir: &Path, k1: &str, k2: &str) {
    let w = |p: &str, b: &[u8]| {
        let p = dir.join(p);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, b).unwrap();
    };
    w("hello.txt", b"Hello World\n");
    w("testdir/cool-new-thing.py", b"print('cool')\n");
    w("testdir/employees.csv", b"name,dept\nann,IT\n");
    w("testdir/hello.txt", b"Hello World\n");
    w("testdir/a.xml", b"<a/>\n");
    w("testdir/b.xml", b"<b/>\n");
    w("testdir/sub/deep.xml", &vec![7u8; 70_000]);
    for d in ["out", "testenc", "testdec", "archive"] {
        std::fs::create_dir_all(dir.join(d)).unwrap();
    }
    let native = |args: &[&str]| ok(&envseal_ddb(dir, args));
    let hello = dir.join("hello.txt").display().to_string();
    let msg = |name: &str| dir.join(name).display().to_string();
    native(&[
        "encrypt",
        "-i",
        &hello,
        "-o",
        &msg("hello.enc"),
        "--kms-key",
        k1,
        "-c",
        "purpose=test",
        "-c",
        "dept=IT",
        "-q",
    ]);
    native(&[
        "encrypt",
        "-i",
        &hello,
        "-o",
        &msg("un.enc"),
        "--kms-key",
        k1,
        "--suite",
        "0x0478",
        "-q",
    ]);
    native(&[
        "encrypt",
        "-i",
        &hello,
        "-o",
        &msg("multi.enc"),
        "--kms-key",
        k1,
        "--kms-key",
        k2,
        "-q",
    ]);
    native(&[
        "encrypt",
        "-i",
        &hello,
        "-o",
        &msg("hello.b64"),
        "--kms-key",
        k1,
        "--encode",
        "-q",
    ]);
    let tree = dir.join("testdir").display().to_string();
    native(&[
        "encrypt",
        "-r",
        "-i",
        &tree,
        "-o",
        &msg("enctree"),
        "--kms-key",
        k1,
        "-c",
        "dept=IT",
        "-q",
    ]);
    w(
        "cmk.conf",
        format!("--wrapping-keys key={k1}\n--wrapping-keys key={k2}\n").as_bytes(),
    );
    w(
        "encrypt.conf",
        format!(
            "# Archive Files\n--encrypt\n--output archive   # where\n--recursive\n\
             --encryption-context class=unclassified \"dept=IT ops\"\n--suffix  # No suffix\n\
             -S\n@caching.conf  # Use limited caching\n-w key={k1}#trailing comment\n"
        )
        .as_bytes(),
    );
    w(
        "caching.conf",
        b"--caching capacity=10 max_age=60.0 max_messages_encrypted=15\n",
    );
}

/// What a case expects of the exit codes.
enum Expect {
    /// The same code from both.
    Same(i32),
    /// The peer's code, then envseal's (the documented difference).
    Differ(i32, i32),
}

struct Case {
    name: &'static str,
    argv: &'static str,
    stdin: Option<&'static [u8]>,
    expect: Expect,
}

const CASES: &[Case] = &[
    // Docs, "Encrypt a file": metadata inside the output directory is
    // refused, both ways.
    Case { name: "docs encrypt file, metadata in the output dir", argv: "--encrypt --input hello.txt --wrapping-keys key=$K1 --metadata-output ./metadata --encryption-context purpose=test --commitment-policy require-encrypt-require-decrypt --output .", stdin: None, expect: Expect::Same(1) },
    Case { name: "docs encrypt file", argv: "--encrypt --input hello.txt --wrapping-keys key=$K1 --metadata-output metadata --encryption-context purpose=test --commitment-policy require-encrypt-require-decrypt --output out", stdin: None, expect: Expect::Same(0) },
    Case { name: "docs decrypt file", argv: "--decrypt --input hello.enc --wrapping-keys key=$K1 --commitment-policy require-encrypt-require-decrypt --encryption-context purpose=test --metadata-output metadata --max-encrypted-data-keys 1 --buffer --output out", stdin: None, expect: Expect::Same(0) },
    Case { name: "docs encrypt directory", argv: "--encrypt --input testdir --recursive --wrapping-keys key=$K1 --encryption-context dept=IT --commitment-policy require-encrypt-require-decrypt --metadata-output metadata --output testenc", stdin: None, expect: Expect::Same(0) },
    Case { name: "docs decrypt directory", argv: "--decrypt --input enctree --recursive --wrapping-keys key=$K1 --encryption-context dept=IT --commitment-policy require-encrypt-require-decrypt --metadata-output metadata --max-encrypted-data-keys 1 --buffer --output testdec --interactive", stdin: None, expect: Expect::Same(0) },
    Case { name: "docs stdin encrypt, base64", argv: "--encrypt -S --input - --output - --encode --wrapping-keys key=$K1", stdin: Some(b"Hello World\n"), expect: Expect::Same(0) },
    Case { name: "docs stdin decrypt, stray dash", argv: "--decrypt --wrapping-keys discovery=true --input - --output - --decode - --buffer -S", stdin: Some(b"x"), expect: Expect::Same(2) },
    Case { name: "examples decrypt_command_line.sh", argv: "--decrypt --suppress-metadata --input hello.b64 --output - --decode --buffer --wrapping-keys discovery=true", stdin: None, expect: Expect::Same(0) },
    Case { name: "docs multiple keys, empty suffix", argv: "--encrypt --input hello.txt --output archive --suffix --encryption-context class=log --metadata-output metadata --wrapping-keys key=$K1 key=$K2", stdin: None, expect: Expect::Same(0) },
    Case { name: "docs decrypt with a suffix", argv: "--decrypt --input multi.enc --wrapping-keys key=$K1 --output out --suffix .clear --metadata-output metadata --max-encrypted-data-keys 2 --buffer", stdin: None, expect: Expect::Same(0) },
    Case { name: "too many data keys", argv: "--decrypt --input multi.enc --wrapping-keys key=$K1 --output out -S --max-encrypted-data-keys 1", stdin: None, expect: Expect::Same(1) },
    Case { name: "docs caching over a tree", argv: "--encrypt --input testdir --recursive --output testenc --suffix .archive --wrapping-keys key=$K1 --encryption-context class=log --suppress-metadata --caching capacity=1 max_age=10 max_messages_encrypted=10", stdin: None, expect: Expect::Same(0) },
    Case { name: "how-to config file, two providers", argv: "-e @cmk.conf -i hello.txt -o testdir -S", stdin: None, expect: Expect::Same(0) },
    Case { name: "how-to config file without -S", argv: "-e @cmk.conf -i hello.txt -o testdir", stdin: None, expect: Expect::Same(2) },
    Case { name: "how-to encrypt.conf: comments, quotes, nested @file", argv: "-i testdir @encrypt.conf", stdin: None, expect: Expect::Same(0) },
    Case { name: "missing argument file", argv: "-e @nosuch.args -i hello.txt -o out -S", stdin: None, expect: Expect::Same(2) },
    Case { name: "readme required key and pair", argv: "-d -i hello.enc -o out -w key=$K1 --encryption-context purpose dept=IT --metadata-output metadata", stdin: None, expect: Expect::Same(0) },
    Case { name: "context mismatch (the documented difference)", argv: "-d -i hello.enc -o out -w key=$K1 -c purpose=prod --metadata-output metadata", stdin: None, expect: Expect::Differ(0, 1) },
    Case { name: "discovery filter refuses the account", argv: "--decrypt --wrapping-keys discovery=true discovery-partition=aws discovery-account=111122223333 -i hello.enc -o out -S", stdin: None, expect: Expect::Same(1) },
    Case { name: "discovery filter with the account", argv: "--decrypt --wrapping-keys discovery=true discovery-partition=aws discovery-account=$ACCOUNT -i hello.enc -o out -S", stdin: None, expect: Expect::Same(0) },
    Case { name: "key plus discovery", argv: "--decrypt --wrapping-keys key=$K1 --wrapping-keys discovery=true -i hello.enc -o out -S", stdin: None, expect: Expect::Same(0) },
    Case { name: "unknown provider", argv: "--decrypt --wrapping-keys provider=myProvider key=100101 -i hello.enc -o - -S", stdin: None, expect: Expect::Same(1) },
    Case { name: "decrypt-unsigned on an unsigned message", argv: "--decrypt-unsigned -i un.enc -o out -w key=$K1 --metadata-output metadata", stdin: None, expect: Expect::Same(0) },
    Case { name: "decrypt-unsigned on a signed message", argv: "--decrypt-unsigned -i hello.enc -o out -w key=$K1 -S", stdin: None, expect: Expect::Same(1) },
    Case { name: "forbid-encrypt: a version 1 message", argv: "-e -i hello.txt -o out -w key=$K1 --commitment-policy=forbid-encrypt-allow-decrypt --metadata-output metadata", stdin: None, expect: Expect::Same(0) },
    Case { name: "help -c and -w", argv: "-e -i hello.txt -o out -w provider=aws-kms key=$K1 -c key1=value1 key2=value2 --metadata-output metadata", stdin: None, expect: Expect::Same(0) },
    Case { name: "algorithm and frame length", argv: "-e -i testdir/sub/deep.xml -o out -w key=$K1 -S --algorithm AES_256_GCM_HKDF_SHA512_COMMIT_KEY --frame-length 1024", stdin: None, expect: Expect::Same(0) },
    Case { name: "glob", argv: "-e -i testdir/*.xml -o out -w key=$K1 --metadata-output metadata", stdin: None, expect: Expect::Same(0) },
    Case { name: "glob of several into a file", argv: "-e -i testdir/*.xml -o one.enc -w key=$K1 -S", stdin: None, expect: Expect::Same(1) },
    Case { name: "directory without -r", argv: "-e -i testdir -o testenc -w key=$K1 -S", stdin: None, expect: Expect::Same(0) },
    Case { name: "no overwrite", argv: "-e -i hello.txt -o hello.enc -w key=$K1 -S --no-overwrite", stdin: None, expect: Expect::Same(0) },
    Case { name: "an existing output, --interactive, answered n", argv: "-e -i hello.txt -o hello.enc -w key=$K1 -S --interactive", stdin: Some(b"n\n"), expect: Expect::Same(0) },
    Case { name: "an existing output, --interactive, answered y", argv: "-e -i hello.txt -o hello.enc -w key=$K1 -S --interactive", stdin: Some(b"yes\n"), expect: Expect::Same(0) },
    Case { name: "an existing output, overwritten by default", argv: "-e -i hello.txt -o hello.enc -w key=$K1 -S", stdin: None, expect: Expect::Same(0) },
    Case { name: "decrypt to base64 (--encode on -d)", argv: "-d -i hello.enc -o - -w key=$K1 -S --encode", stdin: None, expect: Expect::Same(0) },
    Case { name: "caching with huge limits", argv: "-e -i hello.txt -o out -w key=$K1 -S --caching capacity=1000000000000000000 max_age=1e300", stdin: None, expect: Expect::Same(0) },
    Case { name: "invalid: -e -d", argv: "-e -d -i hello.txt -o out -w key=$K1 -S", stdin: None, expect: Expect::Same(2) },
    Case { name: "invalid: no metadata choice", argv: "-e -i hello.txt -o out -w key=$K1", stdin: None, expect: Expect::Same(2) },
    Case { name: "invalid: -w without =", argv: "-e -i hello.txt -o out -w key -S", stdin: None, expect: Expect::Same(2) },
    Case { name: "invalid: caching without max_age", argv: "-e -i hello.txt -o out -w key=$K1 -S --caching capacity=10", stdin: None, expect: Expect::Same(2) },
    Case { name: "invalid: discovery on encrypt", argv: "-e -i hello.txt -o out -w key=$K1 discovery=true -S", stdin: None, expect: Expect::Same(2) },
    Case { name: "invalid: missing input", argv: "-e -i nosuch.txt -o out -w key=$K1 -S", stdin: None, expect: Expect::Same(1) },
    Case { name: "invalid: same input and output", argv: "-e -i hello.txt -o hello.txt -w key=$K1 -S", stdin: None, expect: Expect::Same(1) },
];

fn copy_tree(from: &Path, to: &Path) {
    for (rel, bytes) in files(from) {
        let p = to.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, bytes).unwrap();
    }
    for d in ["out", "testenc", "testdec", "archive"] {
        std::fs::create_dir_all(to.join(d)).unwrap();
    }
}

/// Whether `bytes` is an ESDK message (version 1 or 2), or the base64 of
/// one.
fn is_message(bytes: &[u8]) -> bool {
    matches!(bytes.first(), Some(1 | 2)) || bytes.starts_with(b"AYA") || bytes.starts_with(b"AgV")
}

/// `message` decrypted by `tool` in `dir` (any KMS key, base64 or not).
fn decrypted(tool: Tool, dir: &Path, message: &[u8]) -> Vec<u8> {
    std::fs::write(dir.join("check.msg"), message).unwrap();
    let mut argv = vec![
        "-d",
        "-S",
        "-i",
        "check.msg",
        "-o",
        "-",
        "-w",
        "discovery=true",
        "--commitment-policy",
        "require-encrypt-allow-decrypt",
    ];
    if !matches!(message.first(), Some(1 | 2)) {
        argv.push("--decode");
    }
    let argv: Vec<String> = argv.iter().map(|s| (*s).to_owned()).collect();
    let out = run_tool(tool, dir, &argv, None);
    std::fs::remove_file(dir.join("check.msg")).unwrap();
    assert!(
        out.status.success(),
        "{tool:?} could not decrypt: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// A metadata line without its random values, paths relative to `dir`.
fn normalized(line: &str, dir: &Path) -> serde_json::Value {
    let text = line
        .replace(&format!("{}/", dir.display()), "<dir>/")
        .replace(&dir.display().to_string(), "<dir>");
    let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let header = &mut v["header"];
    for k in ["message_id", "commitment_key"] {
        if !header[k].is_null() {
            header[k] = "<random>".into();
        }
    }
    if let Some(edks) = header["encrypted_data_keys"].as_array_mut() {
        for e in edks {
            e["encrypted_data_key"] = "<random>".into();
        }
    }
    if header["encryption_context"]
        .get("aws-crypto-public-key")
        .is_some()
    {
        header["encryption_context"]["aws-crypto-public-key"] = "<random>".into();
    }
    if v.get("header_auth").is_some() {
        v["header_auth"]["tag"] = "<random>".into();
    }
    v
}

#[tokio::test]
async fn command_lines_from_its_documentation_behave_as_aws_encryption_cli_does() {
    let k1 = create_key("us-east-1").await;
    let k2 = create_key("us-east-1").await;
    let base = tempfile::tempdir().unwrap();
    let template = base.path().join("template");
    std::fs::create_dir_all(&template).unwrap();
    fixture(&template, &k1, &k2);
    let before = files(&template);
    assert!(CASES.len() >= 20);
    for (n, case) in CASES.iter().enumerate() {
        let argv: Vec<String> = case
            .argv
            .split_whitespace()
            .map(|w| {
                w.replace("$K1", &k1)
                    .replace("$K2", &k2)
                    .replace("$ACCOUNT", ACCOUNT)
            })
            .collect();
        let dirs = [Tool::Peer, Tool::Ours].map(|t| {
            let d = base.path().join(format!("{n}-{t:?}"));
            copy_tree(&template, &d);
            d
        });
        let outs = [Tool::Peer, Tool::Ours].map(|t| {
            let d = &dirs[if t == Tool::Peer { 0 } else { 1 }];
            run_tool(t, d, &argv, case.stdin)
        });
        let codes = outs.each_ref().map(|o| o.status.code());
        let why = |i: usize| String::from_utf8_lossy(&outs[i].stderr).into_owned();
        let want = match case.expect {
            Expect::Same(c) => [Some(c), Some(c)],
            Expect::Differ(p, o) => [Some(p), Some(o)],
        };
        assert_eq!(
            codes,
            want,
            "{}: exit codes\npeer: {}\nours: {}",
            case.name,
            why(0),
            why(1)
        );
        let after = dirs.each_ref().map(|d| files(d));
        let names = after.each_ref().map(|f| f.keys().cloned().collect::<Vec<_>>());
        assert_eq!(names[0], names[1], "{}: the files written", case.name);
        if codes[0] != Some(0) || codes[1] != Some(0) {
            // A refusal writes nothing (metadata aside).
            for (i, a) in after.iter().enumerate() {
                for (name, bytes) in a {
                    if name != "metadata" {
                        assert_eq!(
                            before.get(name),
                            Some(bytes),
                            "{}: {name} written by {}",
                            case.name,
                            ["peer", "envseal"][i]
                        );
                    }
                }
            }
        }
        for name in &names[0] {
            let (p, o) = (&after[0][name], &after[1][name]);
            if before.get(name) == Some(p) && before.get(name) == Some(o) {
                continue;
            }
            if name == "metadata" {
                let lines = [p, o].map(|b| String::from_utf8(b.clone()).unwrap());
                let count = lines.each_ref().map(|l| l.lines().count());
                assert_eq!(
                    count[0], count[1],
                    "{}: metadata lines\n{}\n{}",
                    case.name, lines[0], lines[1]
                );
                // The same lines; a tree's in any order (the peer walks
                // directories unsorted).
                let sorted = |i: usize| {
                    let mut v: Vec<String> = lines[i]
                        .lines()
                        .map(|l| normalized(l, &dirs[i]).to_string())
                        .collect();
                    v.sort();
                    v
                };
                assert_eq!(sorted(0), sorted(1), "{}: the metadata lines", case.name);
            } else if is_message(p) {
                // Each decrypts what the other wrote, to the same bytes.
                let plain = decrypted(Tool::Ours, &dirs[0], p);
                assert_eq!(decrypted(Tool::Peer, &dirs[1], o), plain, "{}: {name}", case.name);
            } else {
                assert_eq!(p, o, "{}: {name}", case.name);
            }
        }
        let stdout = outs.each_ref().map(|o| o.stdout.clone());
        if is_message(&stdout[0]) {
            let plain = decrypted(Tool::Ours, &dirs[0], &stdout[0]);
            assert_eq!(
                decrypted(Tool::Peer, &dirs[1], &stdout[1]),
                plain,
                "{}: stdout",
                case.name
            );
        } else {
            assert_eq!(stdout[0], stdout[1], "{}: stdout", case.name);
        }
    }
}

/// Run through a symbolic link named aws-encryption-cli, envseal speaks
/// the peer's language without the subcommand.
#[tokio::test]
async fn runs_under_the_name_aws_encryption_cli() {
    let k1 = create_key("us-east-1").await;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let link = d.join("aws-encryption-cli");
    std::os::unix::fs::symlink(BIN, &link).unwrap();
    std::fs::write(d.join("hello.txt"), b"Hello World\n").unwrap();
    let url = moto().url.clone();
    let run = |args: &[&str]| {
        Command::new(&link)
            .args(args)
            .current_dir(d)
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("AWS_ENDPOINT_URL_KMS", &url)
            .env("AWS_REGION", "us-east-1")
            .output()
            .unwrap()
    };
    let version = run(&["--version"]);
    assert!(version.status.success());
    assert!(String::from_utf8_lossy(&version.stdout).starts_with("aws-encryption-sdk-cli/4.3.0 (envseal "));
    let refused = run(&["-e", "-i", "hello.txt", "-o", "out"]);
    assert_eq!(refused.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&refused.stderr)
        .contains("aws-encryption-cli: error: the following arguments are required: -w/--wrapping-keys"));
    let key = format!("key={k1}");
    let enc = run(&["-e", "-i", "hello.txt", "-o", ".", "-w", &key, "-S"]);
    assert!(enc.status.success(), "{}", String::from_utf8_lossy(&enc.stderr));
    let dec = run(&["-d", "-i", "hello.txt.encrypted", "-o", "-", "-w", &key, "-S"]);
    assert!(dec.status.success(), "{}", String::from_utf8_lossy(&dec.stderr));
    assert_eq!(dec.stdout, b"Hello World\n");
}

/// `-w ... profile=NAME` takes the credentials and the region from that
/// profile of the shared files (nothing in the environment).
#[tokio::test]
async fn a_profile_gives_the_credentials_and_the_region() {
    let k1 = create_key("us-east-1").await;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("hello.txt"), b"Hello World\n").unwrap();
    std::fs::write(d.join("config"), "[profile other]\nregion = us-east-1\n").unwrap();
    std::fs::write(
        d.join("credentials"),
        "[other]\naws_access_key_id = testing\naws_secret_access_key = testing\n",
    )
    .unwrap();
    let url = moto().url.clone();
    let run = |profile: &str, out: &str| {
        Command::new(BIN)
            .args([
                "aws-encryption-cli",
                "-e",
                "-i",
                "hello.txt",
                "-o",
                out,
                "-S",
                "-w",
            ])
            .arg(format!("key={k1}"))
            .arg(format!("profile={profile}"))
            .current_dir(d)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", d)
            .env("AWS_CONFIG_FILE", d.join("config"))
            .env("AWS_SHARED_CREDENTIALS_FILE", d.join("credentials"))
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("AWS_ENDPOINT_URL_KMS", &url)
            .output()
            .unwrap()
    };
    let out = run("other", "a.enc");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(is_message(&std::fs::read(d.join("a.enc")).unwrap()));
    // Keys in the environment do not shadow a named profile: an unknown
    // one fails even with keys and a region there.
    let shadowed = Command::new(BIN)
        .args([
            "aws-encryption-cli",
            "-e",
            "-i",
            "hello.txt",
            "-o",
            "c.enc",
            "-S",
            "-w",
        ])
        .arg(format!("key={k1}"))
        .arg("profile=nosuch")
        .current_dir(d)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", d)
        .env("AWS_CONFIG_FILE", d.join("config"))
        .env("AWS_SHARED_CREDENTIALS_FILE", d.join("credentials"))
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_ENDPOINT_URL_KMS", &url)
        .output()
        .unwrap();
    assert_eq!(
        shadowed.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&shadowed.stderr)
    );
    assert!(!d.join("c.enc").exists());
    let out = run("nosuch", "b.enc");
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!d.join("b.enc").exists());
}

/// Outputs go where the peer's `open(path, "wb")` puts them: through a
/// symbolic link (the link stays), into a device or FIFO in place (never
/// replaced), and a new file gets the umask's mode (0644 under 022) while
/// an existing one keeps its own.
#[tokio::test]
async fn outputs_through_links_and_devices_with_the_peers_modes() {
    use std::os::unix::fs::{FileTypeExt, PermissionsExt};
    let k1 = create_key("us-east-1").await;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("hello.txt"), b"Hello World\n").unwrap();
    let key = format!("key={k1}");
    let run = |out: &str| {
        let argv: Vec<String> = ["-e", "-i", "hello.txt", "-o", out, "-S", "-w", &key]
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
        run_tool(Tool::Ours, d, &argv, None)
    };
    // /dev/null stays the device.
    let out = run("/dev/null");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(std::fs::metadata("/dev/null")
        .unwrap()
        .file_type()
        .is_char_device());
    // Through a link: the file it names is written, the link stays.
    std::fs::write(d.join("real.enc"), b"old").unwrap();
    std::fs::set_permissions(d.join("real.enc"), std::fs::Permissions::from_mode(0o640)).unwrap();
    std::os::unix::fs::symlink(d.join("real.enc"), d.join("link.enc")).unwrap();
    let out = run("link.enc");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(std::fs::symlink_metadata(d.join("link.enc"))
        .unwrap()
        .file_type()
        .is_symlink());
    let real = std::fs::read(d.join("real.enc")).unwrap();
    assert!(is_message(&real));
    assert_eq!(
        std::fs::metadata(d.join("real.enc"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o640
    );
    // A new file: the umask's mode (this test process's umask, inherited).
    let out = run("new.enc");
    assert!(out.status.success());
    let umask = std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| {
            l.strip_prefix("Umask:")
                .map(|v| u32::from_str_radix(v.trim(), 8).unwrap())
        })
        .unwrap();
    assert_eq!(
        std::fs::metadata(d.join("new.enc")).unwrap().permissions().mode() & 0o777,
        0o666 & !umask
    );
    // A FIFO is written in place: a reader gets the message.
    let fifo = d.join("fifo");
    assert!(Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    let reader = {
        let fifo = fifo.clone();
        std::thread::spawn(move || std::fs::read(fifo).unwrap())
    };
    let out = run("fifo");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(is_message(&reader.join().unwrap()));
    assert!(std::fs::metadata(&fifo).unwrap().file_type().is_fifo());
}

/// `--caching` on encrypt: files of a run share one data key (one KMS
/// call), as with the peer's caching CMM.
#[tokio::test]
async fn caching_shares_a_data_key_across_files() {
    let k1 = create_key("us-east-1").await;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir_all(d.join("in")).unwrap();
    std::fs::create_dir_all(d.join("out")).unwrap();
    for n in ["a", "b", "c"] {
        std::fs::write(d.join("in").join(n), n.repeat(100)).unwrap();
    }
    let argv: Vec<String> = [
        "-e",
        "-r",
        "-i",
        "in",
        "-o",
        "out",
        "-S",
        "--caching",
        "capacity=10",
        "max_age=60",
        "-w",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .chain([format!("key={k1}")])
    .collect();
    let out = run_tool(Tool::Ours, d, &argv, None);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let edks: Vec<String> = ["a", "b", "c"]
        .iter()
        .map(|n| {
            let msg = d.join("out").join(format!("{n}.encrypted"));
            let out = Command::new(BIN)
                .args(["inspect", "-i"])
                .arg(&msg)
                .output()
                .unwrap();
            let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
            v["header"]["encrypted_data_keys"][0]["encrypted_data_key"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(edks[0], edks[1]);
    assert_eq!(edks[1], edks[2]);
}

/// With no region configured anywhere, key ARNs name theirs: both tools
/// encrypt and decrypt (a key id would need a region).
#[tokio::test]
async fn key_arns_need_no_configured_region() {
    let k1 = create_key("us-east-1").await;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("hello.txt"), b"Hello World\n").unwrap();
    let url = moto().url.clone();
    let run = |tool: Tool, args: &[&str]| {
        let mut c = match tool {
            Tool::Peer => Command::new(peer()),
            Tool::Ours => {
                let mut c = Command::new(BIN);
                c.arg("aws-encryption-cli");
                c
            }
        };
        test_env(c.args(args).arg(format!("key={k1}")).current_dir(d), d)
            .env("AWS_ENDPOINT_URL_KMS", &url)
            .output()
            .unwrap()
    };
    for (tool, name) in [(Tool::Peer, "peer"), (Tool::Ours, "ours")] {
        let enc = format!("{name}.enc");
        let out = run(tool, &["-e", "-i", "hello.txt", "-o", &enc, "-S", "-w"]);
        assert!(
            out.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let out = run(tool, &["-d", "-i", &enc, "-o", "-", "-S", "-w"]);
        assert!(
            out.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(out.stdout, b"Hello World\n", "{name}");
    }
}

//! Integration tests of the `envseal` command-line tool.

use crate::common;

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use tempfile::TempDir;

const BIN: &str = env!("CARGO_BIN_EXE_envseal");

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

fn rsa_public() -> String {
    data("rsa-4096-public.pem").display().to_string()
}

fn rsa_private() -> String {
    data("rsa-4096-private.pem").display().to_string()
}

/// Runs envseal with `args`, feeding `stdin` (empty if `None`).
fn run<S: AsRef<std::ffi::OsStr>>(args: &[S], stdin: Option<&[u8]>) -> Output {
    let mut child = Command::new(BIN)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn envseal");
    let input = stdin.unwrap_or(&[]).to_vec();
    let mut pipe = child.stdin.take().expect("stdin");
    let writer = std::thread::spawn(move || {
        // The process may exit before reading everything (e.g. on an error).
        let _ = pipe.write_all(&input);
    });
    let out = child.wait_with_output().expect("wait envseal");
    writer.join().expect("stdin writer");
    out
}

fn stderr_of(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[track_caller]
fn assert_ok(out: &Output) {
    assert!(
        out.status.success(),
        "envseal failed: {:?}\nstderr: {}",
        out.status,
        stderr_of(out)
    );
    assert!(out.stderr.is_empty(), "unexpected stderr: {}", stderr_of(out));
}

/// Asserts the failure contract (`envseal: <message>` on one line, then
/// at most a `hint: <what to do>` line) and returns the message line.
#[track_caller]
fn assert_fail(out: &Output) -> String {
    let err = stderr_of(out);
    assert!(
        !out.status.success(),
        "expected failure, got success; stderr: {err}"
    );
    assert_ne!(out.status.code(), Some(0));
    assert!(
        out.status.code().is_some(),
        "killed by a signal: {:?}",
        out.status
    );
    assert!(!err.contains("panicked"), "panic: {err}");
    assert!(
        err.starts_with("envseal: "),
        "stderr must start with 'envseal: ': {err:?}"
    );
    assert!(err.ends_with('\n'), "stderr must end with a newline: {err:?}");
    let lines: Vec<&str> = err.lines().collect();
    assert!(
        lines.len() == 1 || (lines.len() == 2 && lines[1].starts_with("hint: ")),
        "stderr must be one line, then at most a hint line: {err:?}"
    );
    lines[0].to_owned()
}

#[track_caller]
fn assert_fail_code(out: &Output, code: i32) -> String {
    let msg = assert_fail(out);
    assert_eq!(out.status.code(), Some(code), "{msg}");
    msg
}

/// Deterministic test bytes.
fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u32).wrapping_mul(2_654_435_761).to_be_bytes()[0] ^ seed)
        .collect()
}

/// Sorted names in `dir`.
fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

struct Fixture {
    dir: TempDir,
}

impl Fixture {
    fn new() -> Self {
        Fixture {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn p(&self, name: &str) -> String {
        self.path(name).display().to_string()
    }

    fn write(&self, name: &str, bytes: &[u8]) -> String {
        fs::write(self.path(name), bytes).unwrap();
        self.p(name)
    }

    fn read(&self, name: &str) -> Vec<u8> {
        fs::read(self.path(name)).unwrap()
    }

    /// Writes an AES key of `len` bytes and returns `NAMESPACE:NAME:FILE`.
    fn aes_key(&self, ns: &str, name: &str, len: usize, seed: u8) -> String {
        let file = self.write(&format!("{ns}-{name}.key"), &pattern(len, seed));
        format!("{ns}:{name}:{file}")
    }
}

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

/// Encrypts `input` to `output` with `extra` flags; asserts success.
fn encrypt_file(input: &str, output: &str, extra: &[String]) {
    let mut a = args(&["encrypt", "--input", input, "--output", output]);
    a.extend_from_slice(extra);
    assert_ok(&run(&a, None));
}

fn decrypt_cmd(input: &str, output: &str, extra: &[String]) -> Output {
    let mut a = args(&["decrypt", "--input", input, "--output", output]);
    a.extend_from_slice(extra);
    run(&a, None)
}

fn aes_flag(spec: &str) -> Vec<String> {
    vec!["--raw-aes-key".into(), spec.into()]
}

fn rsa_flag(ns: &str, name: &str, padding: &str, pem: &str) -> Vec<String> {
    vec!["--raw-rsa-key".into(), format!("{ns}:{name}:{padding}:{pem}")]
}

/// (message version, suite ID, provider IDs of the encrypted data keys).
fn header_info(msg: &[u8]) -> (u8, u16, Vec<String>) {
    let u16_at = |i: usize| u16::from_be_bytes([msg[i], msg[i + 1]]);
    let (version, suite, mut pos) = match msg[0] {
        1 => (1, u16_at(2), 4 + 16),
        2 => (2, u16_at(1), 3 + 32),
        v => panic!("unknown version {v}"),
    };
    pos += 2 + usize::from(u16_at(pos));
    let count = usize::from(u16_at(pos));
    pos += 2;
    let mut ids = Vec::new();
    for _ in 0..count {
        let len = usize::from(u16_at(pos));
        ids.push(String::from_utf8(msg[pos + 2..pos + 2 + len].to_vec()).unwrap());
        pos += 2 + len;
        pos += 2 + usize::from(u16_at(pos));
        pos += 2 + usize::from(u16_at(pos));
    }
    (version, suite, ids)
}

const ALL_SUITES: [(&str, u16, bool); 11] = [
    ("AES_128_GCM_IV12_TAG16_NO_KDF", 0x0014, false),
    ("AES_192_GCM_IV12_TAG16_NO_KDF", 0x0046, false),
    ("AES_256_GCM_IV12_TAG16_NO_KDF", 0x0078, false),
    ("AES_128_GCM_IV12_TAG16_HKDF_SHA256", 0x0114, false),
    ("AES_192_GCM_IV12_TAG16_HKDF_SHA256", 0x0146, false),
    ("AES_256_GCM_IV12_TAG16_HKDF_SHA256", 0x0178, false),
    ("AES_128_GCM_IV12_TAG16_HKDF_SHA256_ECDSA_P256", 0x0214, false),
    ("AES_192_GCM_IV12_TAG16_HKDF_SHA384_ECDSA_P384", 0x0346, false),
    ("AES_256_GCM_IV12_TAG16_HKDF_SHA384_ECDSA_P384", 0x0378, false),
    ("AES_256_GCM_HKDF_SHA512_COMMIT_KEY", 0x0478, true),
    ("AES_256_GCM_HKDF_SHA512_COMMIT_KEY_ECDSA_P384", 0x0578, true),
];

#[test]
fn raw_aes_round_trips_for_every_key_size() {
    let fx = Fixture::new();
    let plain = pattern(10_000, 1);
    let input = fx.write("plain", &plain);
    for len in [16, 24, 32] {
        let key = aes_flag(&fx.aes_key("ns", &format!("k{len}"), len, len as u8));
        let ct = fx.p(&format!("ct{len}"));
        let back = fx.p(&format!("back{len}"));
        encrypt_file(&input, &ct, &key);
        let msg = fx.read(&format!("ct{len}"));
        assert_eq!(
            header_info(&msg),
            (2, 0x0578, vec!["ns".to_owned()]),
            "default suite"
        );
        assert_ok(&decrypt_cmd(&ct, &back, &key));
        assert_eq!(fx.read(&format!("back{len}")), plain);
    }
}

#[test]
fn raw_rsa_round_trips_for_every_padding() {
    let fx = Fixture::new();
    let plain = pattern(5_000, 2);
    let input = fx.write("plain", &plain);
    for padding in ["oaep-sha1", "oaep-sha256", "oaep-sha384", "oaep-sha512", "pkcs1"] {
        let ct = fx.p(&format!("ct-{padding}"));
        let back = fx.p(&format!("back-{padding}"));
        encrypt_file(
            &input,
            &ct,
            &rsa_flag("rsa-ns", "rsa-key", padding, &rsa_public()),
        );
        assert_ok(&decrypt_cmd(
            &ct,
            &back,
            &rsa_flag("rsa-ns", "rsa-key", padding, &rsa_private()),
        ));
        assert_eq!(fx.read(&format!("back-{padding}")), plain, "{padding}");
    }
}

#[test]
fn every_suite_with_frame_lengths_0_1_4096() {
    let fx = Fixture::new();
    let plain = pattern(3_000, 3);
    let input = fx.write("plain", &plain);
    let key = aes_flag(&fx.aes_key("ns", "k", 32, 9));
    for (i, (name, id, committing)) in ALL_SUITES.iter().enumerate() {
        for frame in [0u32, 1, 4096] {
            // Alternate between the name and the hex ID.
            let suite_arg = if i % 2 == 0 {
                name.to_string()
            } else {
                format!("0x{id:04x}")
            };
            let mut flags = key.clone();
            flags.extend(args(&[
                "--suite",
                &suite_arg,
                "--frame-length",
                &frame.to_string(),
            ]));
            let mut dflags = key.clone();
            if !committing {
                flags.extend(args(&["--commitment-policy", "forbid-encrypt-allow-decrypt"]));
                dflags.extend(args(&["--commitment-policy", "forbid-encrypt-allow-decrypt"]));
            }
            let ct = fx.p(&format!("ct-{id:04x}-{frame}"));
            let back = fx.p(&format!("back-{id:04x}-{frame}"));
            encrypt_file(&input, &ct, &flags);
            let msg = fx.read(&format!("ct-{id:04x}-{frame}"));
            let (version, suite, _) = header_info(&msg);
            assert_eq!(suite, *id, "{name}");
            assert_eq!(version, if *committing { 2 } else { 1 }, "{name}");
            let out = decrypt_cmd(&ct, &back, &dflags);
            assert_ok(&out);
            assert_eq!(
                fx.read(&format!("back-{id:04x}-{frame}")),
                plain,
                "{name} frame {frame}"
            );
        }
    }
}

/// Decrypting to stdout redirected to a regular file (`> file`) writes
/// straight into it; a failure cuts the file back to what it held before
/// the run, so nothing of an unverified message stays, and what was there
/// does.
#[test]
fn stdout_redirected_to_a_file_is_cut_back_on_failure() {
    use std::io::{Seek, SeekFrom};
    let fx = Fixture::new();
    let key = aes_flag(&fx.aes_key("ns", "k", 32, 3));
    let plain = pattern(3 << 20, 9);
    let input = fx.write("plain", &plain);
    let ct = fx.p("ct");
    for suite in ["0x0478", "0x0578"] {
        let mut flags = key.clone();
        flags.extend(args(&["--suite", suite]));
        let _ = std::fs::remove_file(&ct);
        encrypt_file(&input, &ct, &flags);
        let good = std::fs::read(&ct).unwrap();
        let mut bad = good.clone();
        let at = bad.len() - 200;
        bad[at] ^= 1;
        let bad = fx.write("bad", &bad);
        for (msg, ok) in [(&ct, true), (&bad, false)] {
            let out = fx.write("out", b"kept line\n");
            let mut file = std::fs::OpenOptions::new().write(true).open(&out).unwrap();
            file.seek(SeekFrom::End(0)).unwrap();
            let mut cmd = Command::new(BIN);
            cmd.args(["decrypt", "--input", msg.as_str(), "--output", "-"])
                .args(&key)
                .stdout(Stdio::from(file))
                .stderr(Stdio::piped());
            let res = cmd.output().unwrap();
            let got = fx.read("out");
            if ok {
                assert_ok(&res);
                assert!(
                    got.starts_with(b"kept line\n") && got[10..] == plain[..],
                    "{suite}"
                );
            } else {
                assert_fail(&res);
                assert_eq!(got, b"kept line\n", "{suite}: output left behind");
            }
        }
    }
}

#[test]
fn stdin_stdout_piping() {
    let fx = Fixture::new();
    let key = aes_flag(&fx.aes_key("ns", "k", 32, 4));
    // A few frames and more than one copy chunk / pipe buffer.
    let plain = pattern(300_000, 5);
    let mut a = args(&["encrypt", "--input", "-", "--output", "-"]);
    a.extend_from_slice(&key);
    let enc = run(&a, Some(&plain));
    assert_ok(&enc);
    assert!(enc.stdout.len() > plain.len());
    let mut a = args(&["decrypt", "-i", "-", "-o", "-"]);
    a.extend_from_slice(&key);
    let dec = run(&a, Some(&enc.stdout));
    assert_ok(&dec);
    assert_eq!(dec.stdout, plain);

    // Mixed: file in, stdout out; stdin in, file out.
    let ct = fx.write("ct", &enc.stdout);
    let dec = decrypt_cmd(&ct, "-", &key);
    assert_ok(&dec);
    assert_eq!(dec.stdout, plain);
    let out = fx.p("from-stdin");
    let mut a = args(&["decrypt", "-i", "-", "-o", &out]);
    a.extend_from_slice(&key);
    assert_ok(&run(&a, Some(&enc.stdout)));
    assert_eq!(fx.read("from-stdin"), plain);
}

#[test]
fn empty_input_round_trips() {
    let fx = Fixture::new();
    let key = aes_flag(&fx.aes_key("ns", "k", 16, 6));
    let input = fx.write("empty", b"");
    for frame in ["0", "4096"] {
        let ct = fx.p(&format!("ct{frame}"));
        let back = fx.p(&format!("back{frame}"));
        let mut flags = key.clone();
        flags.extend(args(&["--frame-length", frame]));
        encrypt_file(&input, &ct, &flags);
        assert_ok(&decrypt_cmd(&ct, &back, &key));
        assert_eq!(fx.read(&format!("back{frame}")), b"");
    }
    let mut a = args(&["encrypt", "-i", "-", "-o", "-"]);
    a.extend_from_slice(&key);
    let enc = run(&a, None);
    assert_ok(&enc);
    let mut a = args(&["decrypt", "-i", "-", "-o", "-"]);
    a.extend_from_slice(&key);
    let dec = run(&a, Some(&enc.stdout));
    assert_ok(&dec);
    assert!(dec.stdout.is_empty());
}

#[test]
fn existing_output_needs_force() {
    let fx = Fixture::new();
    let key = aes_flag(&fx.aes_key("ns", "k", 32, 7));
    let plain = pattern(1_000, 8);
    let input = fx.write("plain", &plain);
    let ct = fx.p("ct");
    encrypt_file(&input, &ct, &key);
    let original_ct = fx.read("ct");

    // Encrypt onto an existing file: refused, file unchanged, no leftovers.
    let before = listing(fx.dir.path());
    let mut a = args(&["encrypt", "-i", &input, "-o", &ct]);
    a.extend_from_slice(&key);
    let msg = assert_fail_code(&run(&a, None), 1);
    assert!(msg.contains("already exists") && msg.contains("--force"), "{msg}");
    assert_eq!(fx.read("ct"), original_ct);
    assert_eq!(listing(fx.dir.path()), before);

    // Decrypt onto an existing file: refused, unchanged.
    let existing = fx.write("existing", b"keep me");
    let before = listing(fx.dir.path());
    let msg = assert_fail(&decrypt_cmd(&ct, &existing, &key));
    assert!(msg.contains("already exists"), "{msg}");
    assert_eq!(fx.read("existing"), b"keep me");
    assert_eq!(listing(fx.dir.path()), before);

    // With --force both overwrite.
    let mut flags = key.clone();
    flags.push("--force".into());
    assert_ok(&decrypt_cmd(&ct, &existing, &flags));
    assert_eq!(fx.read("existing"), plain);
    encrypt_file(&input, &ct, &flags);
    assert_ne!(fx.read("ct"), original_ct);
    assert_ok(&decrypt_cmd(&ct, &fx.p("back"), &key));
    assert_eq!(fx.read("back"), plain);
    assert_eq!(
        listing(fx.dir.path()),
        ["back", "ct", "existing", "ns-k.key", "plain"]
    );
}

#[test]
fn failed_decrypt_leaves_no_output() {
    let fx = Fixture::new();
    let key = aes_flag(&fx.aes_key("ns", "k", 32, 10));
    let wrong = aes_flag(&fx.aes_key("ns", "k-wrong", 32, 11));
    let wrong_same_name = format!("ns:k:{}", fx.p("ns-k-wrong.key"));
    // Signed (default) and unsigned committing suite.
    let plain = pattern(20_000, 12);
    let input = fx.write("plain", &plain);
    let out_dir = fx.path("out");
    fs::create_dir(&out_dir).unwrap();
    let out = out_dir.join("plain.out").display().to_string();

    for suite in ["0x0578", "0x0478"] {
        let ct_name = format!("ct-{suite}");
        let ct = fx.p(&ct_name);
        let mut flags = key.clone();
        flags.extend(args(&["--suite", suite]));
        encrypt_file(&input, &ct, &flags);
        let good = fx.read(&ct_name);

        let mut tampered = good.clone();
        let mid = tampered.len() / 2;
        tampered[mid] ^= 0x01;
        let mut tampered_end = good.clone();
        let last = tampered_end.len() - 1;
        tampered_end[last] ^= 0x01;
        let mut trailing = good.clone();
        trailing.push(0);
        let cases: Vec<(&str, Vec<u8>, Vec<String>)> = vec![
            ("wrong key", good.clone(), wrong.clone()),
            ("wrong key same name", good.clone(), aes_flag(&wrong_same_name)),
            ("tampered middle", tampered, key.clone()),
            ("tampered last byte", tampered_end, key.clone()),
            ("truncated", good[..good.len() - 7].to_vec(), key.clone()),
            ("truncated mid", good[..good.len() / 2].to_vec(), key.clone()),
            ("trailing byte", trailing, key.clone()),
            ("garbage", pattern(5_000, 13), key.clone()),
            ("empty", Vec::new(), key.clone()),
        ];
        for (what, bytes, k) in cases {
            let bad = fx.write("bad", &bytes);
            let res = decrypt_cmd(&bad, &out, &k);
            let msg = assert_fail_code(&res, 1);
            assert!(
                listing(&out_dir).is_empty(),
                "{suite} {what}: leftovers {:?}",
                listing(&out_dir)
            );
            // To stdout: nothing released.
            let res = decrypt_cmd(&bad, "-", &k);
            assert_fail(&res);
            assert!(res.stdout.is_empty(), "{suite} {what}: plaintext reached stdout");
            if what == "wrong key" {
                assert!(msg.contains("no keyring could decrypt"), "{msg}");
            }
            if what == "wrong key same name" {
                // The EDK is for this key name but does not unwrap: that reads
                // like every other failed cryptographic check.
                assert_eq!(msg, "envseal: authentication failed");
            }
        }
    }
}

#[test]
fn input_is_never_modified() {
    let fx = Fixture::new();
    let key = aes_flag(&fx.aes_key("ns", "k", 32, 14));
    let plain = pattern(50_000, 15);
    let input = fx.write("plain", &plain);
    let ct = fx.p("ct");
    let mtime = |name: &str| fs::metadata(fx.path(name)).unwrap().modified().unwrap();
    let before = mtime("plain");
    std::thread::sleep(std::time::Duration::from_millis(20));
    encrypt_file(&input, &ct, &key);
    assert_eq!(fx.read("plain"), plain);
    assert_eq!(mtime("plain"), before);

    let ct_bytes = fx.read("ct");
    let ct_before = mtime("ct");
    std::thread::sleep(std::time::Duration::from_millis(20));
    assert_ok(&decrypt_cmd(&ct, &fx.p("back"), &key));
    assert_eq!(fx.read("ct"), ct_bytes);
    assert_eq!(mtime("ct"), ct_before);
}

#[test]
fn same_file_input_and_output_refused() {
    let fx = Fixture::new();
    let key = aes_flag(&fx.aes_key("ns", "k", 32, 16));
    let plain = pattern(1_000, 17);
    let input = fx.write("plain", &plain);
    let ct = fx.p("ct");
    encrypt_file(&input, &ct, &key);
    let ct_bytes = fx.read("ct");

    let mut forced = key.clone();
    forced.push("--force".into());
    // Same path, a different spelling of it, with and without --force.
    let dotted = fx.dir.path().join(".").join("plain").display().to_string();
    for (inp, outp) in [(&input, &input), (&input, &dotted)] {
        for flags in [&key, &forced] {
            let mut a = args(&["encrypt", "-i", inp, "-o", outp]);
            a.extend_from_slice(flags);
            let msg = assert_fail_code(&run(&a, None), 2);
            assert!(msg.contains("same file"), "{msg}");
        }
    }
    let msg = assert_fail(&decrypt_cmd(&ct, &ct, &forced));
    assert!(msg.contains("same file"), "{msg}");
    assert_eq!(fx.read("plain"), plain);
    assert_eq!(fx.read("ct"), ct_bytes);

    #[cfg(unix)]
    {
        // A hard link and a symlink name the same file too.
        fs::hard_link(fx.path("plain"), fx.path("hard")).unwrap();
        std::os::unix::fs::symlink(fx.path("plain"), fx.path("soft")).unwrap();
        for other in ["hard", "soft"] {
            let mut a = args(&["encrypt", "-i", &input, "-o", &fx.p(other)]);
            a.extend_from_slice(&forced);
            let msg = assert_fail(&run(&a, None));
            assert!(msg.contains("same file"), "{other}: {msg}");
        }
        assert_eq!(fx.read("plain"), plain);
    }
}

#[test]
fn encryption_context_on_decrypt() {
    let fx = Fixture::new();
    let aes = aes_flag(&fx.aes_key("ns", "k", 32, 18));
    let rsa_enc = rsa_flag("rsa", "r", "oaep-sha256", &rsa_public());
    let rsa_dec = rsa_flag("rsa", "r", "oaep-sha256", &rsa_private());
    let plain = pattern(2_000, 19);
    let input = fx.write("plain", &plain);
    let ctx = args(&["--context", "tenant=acme", "--context", "purpose=a=b"]);

    for (name, enc_key, dec_key) in [("aes", &aes, &aes), ("rsa", &rsa_enc, &rsa_dec)] {
        let ct = fx.p(&format!("ct-{name}"));
        let mut flags = enc_key.clone();
        flags.extend_from_slice(&ctx);
        encrypt_file(&input, &ct, &flags);
        let back = fx.p(&format!("back-{name}"));

        // Matching (all pairs, one pair, none).
        for given in [ctx.clone(), args(&["-c", "purpose=a=b"]), vec![]] {
            let mut flags = dec_key.clone();
            flags.extend(given);
            flags.push("--force".into());
            assert_ok(&decrypt_cmd(&ct, &back, &flags));
            assert_eq!(fx.read(&format!("back-{name}")), plain);
        }
        fs::remove_file(fx.path(&format!("back-{name}"))).unwrap();

        // Different value for a stored key.
        let mut flags = dec_key.clone();
        flags.extend(args(&["--context", "tenant=evil"]));
        let msg = assert_fail_code(&decrypt_cmd(&ct, &back, &flags), 1);
        assert!(
            msg.contains("encryption context does not match") && msg.contains("tenant"),
            "{msg}"
        );

        // A pair the message does not store.
        let mut flags = dec_key.clone();
        flags.extend(args(&["--context", "tenant=acme", "--context", "extra=1"]));
        let msg = assert_fail_code(&decrypt_cmd(&ct, &back, &flags), 1);
        assert!(
            msg.contains("does not store context key \"extra\""),
            "{name}: {msg}"
        );
        assert!(!fx.path(&format!("back-{name}")).exists());
    }

    // Bad syntax and duplicates are usage errors.
    let mut a = args(&["encrypt", "-i", &input, "-o", &fx.p("x"), "--context", "novalue"]);
    a.extend_from_slice(&aes);
    assert_fail_code(&run(&a, None), 2);
    let mut a = args(&[
        "encrypt",
        "-i",
        &input,
        "-o",
        &fx.p("x"),
        "-c",
        "a=1",
        "-c",
        "a=2",
    ]);
    a.extend_from_slice(&aes);
    assert_fail_code(&run(&a, None), 2);
    // Reserved key prefix.
    let mut a = args(&["encrypt", "-i", &input, "-o", &fx.p("x"), "-c", "aws-crypto-x=1"]);
    a.extend_from_slice(&aes);
    assert_fail(&run(&a, None));
    assert!(!fx.path("x").exists());
}

#[test]
fn multiple_keys_in_command_line_order() {
    let fx = Fixture::new();
    let aes = aes_flag(&fx.aes_key("aes-ns", "k", 32, 20));
    let rsa_enc = rsa_flag("rsa-ns", "r", "oaep-sha1", &rsa_public());
    let rsa_dec = rsa_flag("rsa-ns", "r", "oaep-sha1", &rsa_private());
    let plain = pattern(4_000, 21);
    let input = fx.write("plain", &plain);

    // RSA first: RSA generates (its data key comes first in the header).
    let ct1 = fx.p("ct1");
    encrypt_file(&input, &ct1, &[rsa_enc.clone(), aes.clone()].concat());
    assert_eq!(header_info(&fx.read("ct1")).2, ["rsa-ns", "aes-ns"]);
    // AES first.
    let ct2 = fx.p("ct2");
    encrypt_file(&input, &ct2, &[aes.clone(), rsa_enc.clone()].concat());
    assert_eq!(header_info(&fx.read("ct2")).2, ["aes-ns", "rsa-ns"]);

    // Each key alone decrypts; so do both.
    for (i, key) in [&aes, &rsa_dec].into_iter().enumerate() {
        let back = format!("back-{i}");
        assert_ok(&decrypt_cmd(&ct1, &fx.p(&back), key));
        assert_eq!(fx.read(&back), plain);
    }
    assert_ok(&decrypt_cmd(
        &ct2,
        &fx.p("back-both"),
        &[rsa_dec.clone(), aes.clone()].concat(),
    ));
    assert_eq!(fx.read("back-both"), plain);

    // Limits on the number of encrypted data keys.
    let mut flags = [aes.clone(), rsa_enc.clone()].concat();
    flags.extend(args(&["--max-encrypted-data-keys", "1"]));
    let mut a = args(&["encrypt", "-i", &input, "-o", &fx.p("ct3")]);
    a.extend(flags);
    assert_fail(&run(&a, None));
    assert!(!fx.path("ct3").exists());
    let mut flags = aes.clone();
    flags.extend(args(&["--max-encrypted-data-keys", "1"]));
    let msg = assert_fail(&decrypt_cmd(&ct1, &fx.p("back-3"), &flags));
    assert!(msg.contains("encrypted data keys"), "{msg}");
}

#[test]
fn unknown_namespace_is_a_clear_error() {
    let fx = Fixture::new();
    let key = aes_flag(&fx.aes_key("ns", "k", 32, 22));
    let other = aes_flag(&format!("other-ns:k:{}", fx.p("ns-k.key")));
    let input = fx.write("plain", b"secret");
    let ct = fx.p("ct");
    encrypt_file(&input, &ct, &key);
    let msg = assert_fail_code(&decrypt_cmd(&ct, "-", &other), 1);
    assert!(
        msg.contains("no keyring could decrypt") && msg.contains("\"ns\""),
        "{msg}"
    );
}

#[test]
fn commitment_policy() {
    let fx = Fixture::new();
    let key = aes_flag(&fx.aes_key("ns", "k", 32, 23));
    let plain = pattern(1_500, 24);
    let input = fx.write("plain", &plain);
    let ct = fx.p("ct-v1");
    let mut flags = key.clone();
    flags.extend(args(&["--commitment-policy", "forbid-encrypt-allow-decrypt"]));
    encrypt_file(&input, &ct, &flags);
    assert_eq!(header_info(&fx.read("ct-v1")).0, 1);

    // Default policy refuses the v1 message.
    let msg = assert_fail_code(&decrypt_cmd(&ct, &fx.p("back"), &key), 1);
    assert!(msg.contains("commitment policy"), "{msg}");
    assert!(!fx.path("back").exists());
    // The allow-decrypt policies read it (also in SCREAMING_SNAKE form).
    for policy in ["require-encrypt-allow-decrypt", "FORBID_ENCRYPT_ALLOW_DECRYPT"] {
        let mut flags = key.clone();
        flags.extend(args(&["--commitment-policy", policy, "--force"]));
        assert_ok(&decrypt_cmd(&ct, &fx.p("back"), &flags));
        assert_eq!(fx.read("back"), plain);
    }
    // A non-committing suite under the default policy is a usage error;
    // a committing suite under forbid too.
    let mut a = args(&["encrypt", "-i", &input, "-o", &fx.p("x"), "--suite", "0x0178"]);
    a.extend_from_slice(&key);
    let msg = assert_fail_code(&run(&a, None), 2);
    assert!(msg.contains("commitment policy"), "{msg}");
    let mut a = args(&["encrypt", "-i", &input, "-o", &fx.p("x"), "--suite", "0x0478"]);
    a.extend_from_slice(&flags);
    assert_fail_code(&run(&a, None), 2);
    let mut a = args(&[
        "encrypt",
        "-i",
        &input,
        "-o",
        &fx.p("x"),
        "--commitment-policy",
        "nope",
    ]);
    a.extend_from_slice(&key);
    assert_fail_code(&run(&a, None), 2);
    assert!(!fx.path("x").exists());
}

#[test]
fn key_file_errors() {
    let fx = Fixture::new();
    let input = fx.write("plain", b"data");
    let out = fx.p("out");
    let encrypt_with = |flags: Vec<String>| {
        let mut a = args(&["encrypt", "-i", &input, "-o", &out]);
        a.extend(flags);
        run(&a, None)
    };

    // Private key given to encrypt.
    let msg = assert_fail(&encrypt_with(rsa_flag("n", "k", "oaep-sha256", &rsa_private())));
    assert!(msg.contains("private key") && msg.contains("public key"), "{msg}");
    // Public key given to decrypt.
    let ct = fx.p("ct");
    encrypt_file(&input, &ct, &rsa_flag("n", "k", "oaep-sha256", &rsa_public()));
    let msg = assert_fail(&decrypt_cmd(
        &ct,
        &out,
        &rsa_flag("n", "k", "oaep-sha256", &rsa_public()),
    ));
    assert!(msg.contains("private key"), "{msg}");
    // Unknown padding, bad spec.
    assert_fail_code(&encrypt_with(rsa_flag("n", "k", "oaep-md5", &rsa_public())), 2);
    assert_fail_code(&encrypt_with(args(&["--raw-rsa-key", "n:k:pkcs1"])), 2);
    assert_fail_code(&encrypt_with(args(&["--raw-aes-key", "just-a-file"])), 2);
    // Wrong AES key length, missing key file, not a PEM.
    let short = fx.write("short.key", &[1u8; 20]);
    let msg = assert_fail_code(&encrypt_with(aes_flag(&format!("n:k:{short}"))), 1);
    assert!(msg.contains("16, 24 or 32"), "{msg}");
    assert_fail_code(
        &encrypt_with(aes_flag(&format!("n:k:{}", fx.p("missing.key")))),
        1,
    );
    assert_fail(&encrypt_with(rsa_flag("n", "k", "pkcs1", &short)));
    // Reserved namespace.
    let good = fx.write("good.key", &[2u8; 32]);
    assert_fail(&encrypt_with(aes_flag(&format!("aws-kms:k:{good}"))));
    assert!(!fx.path("out").exists());

    // FILE may contain colons: split at the first two.
    let colon_dir = fx.path("a:b");
    fs::create_dir(&colon_dir).unwrap();
    let colon_key = colon_dir.join("c:d.key");
    fs::write(&colon_key, [3u8; 24]).unwrap();
    let spec = aes_flag(&format!("n:k:{}", colon_key.display()));
    encrypt_file(&input, &out, &spec);
    assert_ok(&decrypt_cmd(&out, &fx.p("back"), &spec));
    assert_eq!(fx.read("back"), b"data");
}

#[test]
fn usage_errors() {
    let fx = Fixture::new();
    let input = fx.write("plain", b"data");
    let key = aes_flag(&fx.aes_key("ns", "k", 32, 25));

    // No key.
    let msg = assert_fail_code(&run(&["encrypt", "-i", &input, "-o", &fx.p("out")], None), 2);
    assert!(msg.contains("at least one key"), "{msg}");
    assert_fail_code(&run(&["decrypt", "-i", &input, "-o", &fx.p("out")], None), 2);
    // Missing arguments, unknown flags, no subcommand, bad values.
    let msg = assert_fail_code(&run(&["encrypt"], None), 2);
    assert!(msg.contains("--input"), "{msg}");
    assert_fail_code(&run(&["encrypt", "--bogus"], None), 2);
    assert_fail_code(&run::<&str>(&[], None), 2);
    assert_fail_code(&run(&["frobnicate"], None), 2);
    let mut a = args(&["encrypt", "-i", &input, "-o", &fx.p("out"), "--suite", "AES_999"]);
    a.extend_from_slice(&key);
    assert_fail_code(&run(&a, None), 2);
    let mut a = args(&[
        "encrypt",
        "-i",
        &input,
        "-o",
        &fx.p("out"),
        "--frame-length",
        "-1",
    ]);
    a.extend_from_slice(&key);
    assert_fail_code(&run(&a, None), 2);
    let mut a = args(&["decrypt", "-i", &input, "-o", &fx.p("out"), "--suite", "0x0478"]);
    a.extend_from_slice(&key);
    assert_fail_code(&run(&a, None), 2);
    // Missing input file; output in a missing directory; output a directory.
    let mut a = args(&["encrypt", "-i", &fx.p("nope"), "-o", &fx.p("out")]);
    a.extend_from_slice(&key);
    assert_fail_code(&run(&a, None), 1);
    let mut a = args(&["encrypt", "-i", &input, "-o", &fx.p("no-dir/out")]);
    a.extend_from_slice(&key);
    assert_fail_code(&run(&a, None), 1);
    let mut a = args(&[
        "encrypt",
        "-i",
        &input,
        "-o",
        &fx.dir.path().display().to_string(),
        "-f",
    ]);
    a.extend_from_slice(&key);
    // An output directory takes the input's name plus the suffix.
    assert_ok(&run(&a, None));
    assert!(fx.path("plain.encrypted").is_file());
    assert!(!fx.path("out").exists());

    // --help and --version succeed on stdout.
    for flag in [
        &["--help"][..],
        &["--version"],
        &["encrypt", "--help"],
        &["decrypt", "-h"],
    ] {
        let out = run(flag, None);
        assert_ok(&out);
        assert!(!out.stdout.is_empty());
    }
    let help = run(&["encrypt", "--help"], None);
    let help = String::from_utf8_lossy(&help.stdout);
    for flag in [
        "--raw-aes-key",
        "--raw-rsa-key",
        "--context",
        "--suite",
        "--frame-length",
        "--force",
    ] {
        assert!(help.contains(flag), "help lacks {flag}");
    }
}

#[test]
fn decrypt_limits() {
    let fx = Fixture::new();
    let key = aes_flag(&fx.aes_key("ns", "k", 32, 26));
    let input = fx.write("plain", &pattern(10_000, 27));
    let ct = fx.p("ct");
    let mut flags = key.clone();
    flags.extend(args(&["--frame-length", "8192"]));
    encrypt_file(&input, &ct, &flags);
    let mut flags = key.clone();
    flags.extend(args(&["--max-frame-length", "4096"]));
    let msg = assert_fail(&decrypt_cmd(&ct, &fx.p("back"), &flags));
    assert!(msg.contains("frame length"), "{msg}");
    let mut flags = key.clone();
    flags.extend(args(&["--max-header-size", "64"]));
    let msg = assert_fail(&decrypt_cmd(&ct, &fx.p("back"), &flags));
    assert!(msg.contains("header"), "{msg}");

    let ct0 = fx.p("ct0");
    let mut flags = key.clone();
    flags.extend(args(&["--frame-length", "0"]));
    encrypt_file(&input, &ct0, &flags);
    let mut flags = key.clone();
    flags.extend(args(&["--max-body-size", "1000"]));
    let msg = assert_fail(&decrypt_cmd(&ct0, &fx.p("back"), &flags));
    assert!(msg.contains("body"), "{msg}");
    assert!(!fx.path("back").exists());
}

#[test]
fn larger_input_streams() {
    let fx = Fixture::new();
    let key = aes_flag(&fx.aes_key("ns", "k", 32, 28));
    let plain = pattern(3 << 20, 29);
    let input = fx.write("plain", &plain);
    let ct = fx.p("ct");
    encrypt_file(&input, &ct, &key);
    let mut a = args(&["decrypt", "-i", "-", "-o", "-"]);
    a.extend_from_slice(&key);
    let dec = run(&a, Some(&fx.read("ct")));
    assert_ok(&dec);
    assert!(dec.stdout == plain);
    assert_ok(&decrypt_cmd(&ct, &fx.p("back"), &key));
    assert!(fx.read("back") == plain);
}

/// An existing FIFO (like a character device such as `/dev/null`) is
/// written in place, never replaced by a rename; decrypted output reaches it
/// only after the message verified.
#[cfg(unix)]
#[test]
fn fifo_output_is_written_in_place() {
    use std::os::unix::fs::FileTypeExt;
    let fx = Fixture::new();
    let fifo = fx.path("fifo");
    match Command::new("mkfifo").arg(&fifo).status() {
        Ok(s) if s.success() => {}
        _ => {
            eprintln!("mkfifo unavailable; skipping");
            return;
        }
    }
    let key = aes_flag(&fx.aes_key("ns", "k", 32, 30));
    let plain = pattern(100_000, 31);
    let input = fx.write("plain", &plain);
    let ct = fx.p("ct");
    encrypt_file(&input, &ct, &key);
    let mut tampered = fx.read("ct");
    let last = tampered.len() - 1;
    tampered[last] ^= 1;
    let bad = fx.write("bad", &tampered);

    // Reads the FIFO while envseal runs; unblocks the reader if envseal
    // never opened it.
    let through_fifo = |args: Vec<String>| -> (Output, Vec<u8>) {
        let path = fifo.clone();
        let reader = std::thread::spawn(move || fs::read(path).unwrap());
        let out = run(&args, None);
        if !out.status.success() {
            drop(fs::OpenOptions::new().write(true).open(&fifo).unwrap());
        }
        (out, reader.join().unwrap())
    };
    let fifo_s = fifo.display().to_string();

    let (out, got) = through_fifo([args(&["decrypt", "-i", &ct, "-o", &fifo_s]), key.clone()].concat());
    assert_ok(&out);
    assert!(got == plain);
    let (out, got) = through_fifo([args(&["decrypt", "-i", &bad, "-o", &fifo_s]), key.clone()].concat());
    assert_fail(&out);
    assert!(got.is_empty(), "unverified plaintext reached the FIFO");
    let (out, got) = through_fifo([args(&["encrypt", "-i", &input, "-o", &fifo_s]), key.clone()].concat());
    assert_ok(&out);
    let ct2 = fx.write("ct2", &got);
    assert_ok(&decrypt_cmd(&ct2, &fx.p("back"), &key));
    assert!(fx.read("back") == plain);

    assert!(fs::metadata(&fifo).unwrap().file_type().is_fifo());
    assert_eq!(
        listing(fx.dir.path()),
        ["back", "bad", "ct", "ct2", "fifo", "ns-k.key", "plain"]
    );
}

/// With --force, an output symlink is followed: the file it names is
/// replaced and the link stays.
#[cfg(unix)]
#[test]
fn output_symlink_is_followed() {
    let fx = Fixture::new();
    let key = aes_flag(&fx.aes_key("ns", "k", 32, 32));
    let input = fx.write("plain", b"through a link");
    let target = fx.write("target", b"old");
    std::os::unix::fs::symlink(&target, fx.path("link")).unwrap();
    let link = fx.p("link");
    let mut a = args(&["encrypt", "-i", &input, "-o", &link]);
    a.extend_from_slice(&key);
    assert_fail(&run(&a, None));
    assert_eq!(fx.read("target"), b"old");
    a.push("--force".into());
    assert_ok(&run(&a, None));
    assert!(fs::symlink_metadata(fx.path("link"))
        .unwrap()
        .file_type()
        .is_symlink());
    assert_ok(&decrypt_cmd(&target, "-", &key));
    let out = decrypt_cmd(&link, "-", &key);
    assert_ok(&out);
    assert_eq!(out.stdout, b"through a link");
}

/// A message for `[RSA key A, AES]` decrypts with `[RSA key B (same
/// namespace and name), AES]`: B's failure lets the AES key try, for every
/// padding. B alone fails with the opaque "authentication failed" and
/// leaves no output.
#[test]
fn rsa_wrong_key_falls_through_to_the_next_key() {
    let fx = Fixture::new();
    let plain = pattern(10_000, 9);
    let input = fx.write("plain", &plain);
    let aes = fx.aes_key("aes-ns", "aes-key", 32, 4);
    let b_private = data("rsa-4096-b-private.pem").display().to_string();
    for padding in ["pkcs1", "oaep-sha1", "oaep-sha256", "oaep-sha384", "oaep-sha512"] {
        let ct = fx.p(&format!("ct-{padding}"));
        let mut flags = rsa_flag("rsa-ns", "rsa-key", padding, &rsa_public());
        flags.extend(aes_flag(&aes));
        encrypt_file(&input, &ct, &flags);
        let mut flags = rsa_flag("rsa-ns", "rsa-key", padding, &b_private);
        flags.extend(aes_flag(&aes));
        let back = format!("back-{padding}");
        assert_ok(&decrypt_cmd(&ct, &fx.p(&back), &flags));
        assert_eq!(fx.read(&back), plain, "{padding}");
        let alone = format!("alone-{padding}");
        let out = decrypt_cmd(
            &ct,
            &fx.p(&alone),
            &rsa_flag("rsa-ns", "rsa-key", padding, &b_private),
        );
        let msg = assert_fail(&out);
        assert!(msg.contains("authentication failed"), "{padding}: {msg}");
        assert!(!fx.path(&alone).exists(), "{padding}: output left behind");
    }
}

/// SIGINT, SIGTERM and SIGQUIT in the middle of a decrypt into a file, on signed and
/// unsigned messages: the process exits non-zero and leaves nothing in the
/// output directory (no temporary file holding unverified plaintext).
#[cfg(unix)]
#[test]
fn a_signal_mid_decrypt_leaves_no_file() {
    let fx = Fixture::new();
    let plain = pattern(8 << 20, 3);
    let input = fx.write("plain", &plain);
    let aes = fx.aes_key("aes-ns", "aes-key", 32, 5);
    for (suite, policy) in [
        ("0x0578", "require-encrypt-require-decrypt"),
        ("0x0478", "require-encrypt-require-decrypt"),
    ] {
        let ct = fx.p(&format!("ct-{suite}"));
        let mut flags = aes_flag(&aes);
        flags.extend(args(&["--suite", suite, "--commitment-policy", policy]));
        encrypt_file(&input, &ct, &flags);
        let message = fx.read(&format!("ct-{suite}"));
        for signal in ["INT", "TERM", "QUIT"] {
            let out_dir = fx.path(&format!("out-{suite}-{signal}"));
            fs::create_dir(&out_dir).unwrap();
            let mut child = Command::new(BIN)
                .args(["decrypt", "--input", "-", "--output"])
                .arg(out_dir.join("plain"))
                .args(aes_flag(&aes))
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn envseal");
            let mut stdin = child.stdin.take().unwrap();
            // Feed the message, all but its last 64 KiB, until verified
            // plaintext has reached a file in the output directory.
            let mut sent = 0;
            let written = |dir: &Path| {
                fs::read_dir(dir)
                    .unwrap()
                    .any(|e| e.unwrap().metadata().map(|m| m.len() > 0).unwrap_or(false))
            };
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
            while !written(&out_dir) {
                assert!(std::time::Instant::now() < deadline, "no output appeared");
                let end = (sent + (256 << 10)).min(message.len() - (64 << 10));
                if end > sent {
                    stdin.write_all(&message[sent..end]).unwrap();
                    sent = end;
                } else {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
            }
            assert!(!listing(&out_dir).is_empty());
            let status = Command::new("kill")
                .arg(format!("-{signal}"))
                .arg(child.id().to_string())
                .status()
                .unwrap();
            assert!(status.success());
            let out = child.wait_with_output().unwrap();
            drop(stdin);
            // Exits through envseal's handler, with 128 + the signal number.
            let code = match signal {
                "INT" => 130,
                "QUIT" => 131,
                _ => 143,
            };
            assert_eq!(
                out.status.code(),
                Some(code),
                "{suite} SIG{signal}: {:?}",
                out.status
            );
            assert_eq!(
                listing(&out_dir),
                Vec::<String>::new(),
                "{suite} SIG{signal}: files left in the output directory"
            );
        }
    }
}

#[test]
fn required_context_keys_are_needed_again_to_decrypt() {
    let fx = Fixture::new();
    let input = fx.write("plain", b"required pairs");
    let key = aes_flag(&fx.aes_key("ns", "k", 32, 5));
    let ct = fx.p("ct");
    let mut enc = key.clone();
    enc.extend(args(&[
        "--suite",
        "0x0478",
        "--context",
        "tenant=acme",
        "--context",
        "purpose=test",
        "--required-context-key",
        "tenant",
    ]));
    encrypt_file(&input, &ct, &enc);
    let msg = fx.read("ct");
    assert!(
        !msg.windows(4).any(|w| w == b"acme"),
        "the required pair is not stored"
    );
    // Without the pair: the header does not authenticate, and no output.
    let back = fx.p("back");
    let err = assert_fail(&decrypt_cmd(&ct, &back, &key));
    assert!(err.contains("authentication failed"), "{err}");
    assert!(!Path::new(&back).exists());
    let mut dec = key.clone();
    dec.extend(args(&["--context", "tenant=acme"]));
    assert_ok(&decrypt_cmd(&ct, &back, &dec));
    assert_eq!(fx.read("back"), b"required pairs");
    // A required key without its --context pair is a usage error.
    let mut bad = key.clone();
    bad.extend(args(&["--required-context-key", "tenant"]));
    let mut a = args(&["encrypt", "--input", &input, "--output", &fx.p("ct2")]);
    a.extend(bad);
    let err = assert_fail_code(&run(&a, None), 2);
    assert!(
        err.contains("--required-context-key \"tenant\" needs its pair in --context"),
        "{err}"
    );
}

#[test]
fn raw_ecdh_keys_on_the_command_line() {
    let fx = Fixture::new();
    let input = fx.write("plain", &pattern(5000, 9));
    let key = |curve: &str, who: &str, part: &str| {
        data(&format!("ecdh-{curve}-{who}-{part}")).display().to_string()
    };
    for curve in ["p256", "p384", "p521"] {
        let stat = |me: &str, them: &str, format: &str| {
            vec![
                "--raw-ecdh-static".to_owned(),
                format!(
                    "{curve}:{}:{}",
                    key(curve, me, "private.pem"),
                    key(curve, them, &format!("public.{format}"))
                ),
            ]
        };
        let disc = |me: &str| {
            vec![
                "--raw-ecdh-discovery".to_owned(),
                format!("{curve}:{}", key(curve, me, "private.pem")),
            ]
        };
        let ct = fx.p(&format!("{curve}.ct"));
        // A raw AES key first (it generates), then ECDH static A -> B.
        let mut enc = aes_flag(&fx.aes_key("ns", "k", 32, 1));
        enc.extend(stat("a", "b", "der"));
        encrypt_file(&input, &ct, &enc);
        let (_, _, ids) = header_info(&fx.read(&format!("{curve}.ct")));
        assert_eq!(ids, ["ns", "raw-ecdh"]);
        for reader in [stat("b", "a", "pem"), disc("b"), stat("a", "b", "pem")] {
            let back = fx.p(&format!("{curve}.back"));
            let mut dec = args(&["--force"]);
            dec.extend(reader);
            assert_ok(&decrypt_cmd(&ct, &back, &dec));
            assert_eq!(fx.read(&format!("{curve}.back")), pattern(5000, 9));
        }
        let eph = vec![
            "--raw-ecdh-ephemeral".to_owned(),
            format!("{curve}:{}", key(curve, "b", "public.pem")),
        ];
        let ct2 = fx.p(&format!("{curve}-eph.ct"));
        encrypt_file(&input, &ct2, &eph);
        assert_ok(&decrypt_cmd(
            &ct2,
            &fx.p(&format!("{curve}-eph.back")),
            &disc("b"),
        ));
        // The sender's own discovery key is not the recipient's.
        let err = assert_fail(&decrypt_cmd(&ct2, &fx.p("none"), &disc("a")));
        assert!(err.contains("raw-ecdh"), "{err}");
        // Each scheme only where it works.
        assert_fail_code(&decrypt_cmd(&ct2, &fx.p("none"), &eph), 2);
        let mut a = args(&["encrypt", "--input", &input, "--output", &fx.p("none")]);
        a.extend(disc("b"));
        assert_fail_code(&run(&a, None), 2);
    }
    // A key of another curve: one line naming the file, no output.
    let wrong = key("p256", "b", "public.der");
    let mut a = args(&["encrypt", "--input", &input, "--output", &fx.p("wrong")]);
    a.extend(["--raw-ecdh-ephemeral".to_owned(), format!("p384:{wrong}")]);
    let err = assert_fail(&run(&a, None));
    assert!(err.contains(&wrong) && err.contains("p384"), "{err}");
    assert!(!Path::new(&fx.p("wrong")).exists());
    let mut a = args(&["encrypt", "--input", &input, "--output", &fx.p("wrong")]);
    a.extend(["--raw-ecdh-ephemeral".to_owned(), "p999:x".to_owned()]);
    assert_fail_code(&run(&a, None), 2);
}

/// A message the Python MPL's required encryption context CMM wrote
/// decrypts with the required pairs as --context, and fails without them.
#[test]
fn python_required_context_messages_need_the_pairs_as_context() {
    let fx = Fixture::new();
    let key = fx.aes_key("ns", "k", 32, 6);
    let plain = fx.write("plain", b"from python");
    let ctx = fx.write("ctx.json", br#"{"tenant": "acme", "purpose": "cli"}"#);
    let msg = fx.p("py.msg");
    let job = args(&[
        "encrypt",
        "--input",
        &plain,
        "--output",
        &msg,
        "--raw-aes-key",
        &key,
        "--suite",
        "0478",
        "--required-context-key",
        "tenant",
        "--context-json",
        &ctx,
    ]);
    let results = common::reference("mpl_ref.py", fx.dir.path(), &[job], &[]);
    results[0].as_ref().expect("Python encrypt");
    let back = fx.p("back");
    let err = assert_fail(&decrypt_cmd(&msg, &back, &aes_flag(&key)));
    assert!(err.contains("authentication failed"), "{err}");
    assert!(!Path::new(&back).exists());
    let mut with = aes_flag(&key);
    with.extend(args(&["--context", "tenant=acme"]));
    assert_ok(&decrypt_cmd(&msg, &back, &with));
    assert_eq!(fx.read("back"), b"from python");
}

/// `envseal inspect` prints, without any key, the header the Python
/// reference parses, field for field (aws-encryption-cli's metadata shape),
/// for every vector message: versions 1 and 2, framed and non-framed,
/// signed, several data keys; marked "authenticated": false. A message the
/// reference cannot parse is a one-line error here too.
#[test]
fn inspect_prints_the_header_the_python_reference_parses() {
    let dir = TempDir::new().unwrap();
    let mut messages: Vec<PathBuf> = Vec::new();
    for set in ["python-4.0.7", "js-5.0.2"] {
        let d = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/vectors")
            .join(set)
            .join("ciphertexts");
        let mut files: Vec<PathBuf> = fs::read_dir(&d).unwrap().map(|e| e.unwrap().path()).collect();
        files.sort();
        messages.extend(files);
    }
    assert!(messages.len() > 100, "{} vector messages", messages.len());
    let jobs: Vec<Vec<String>> = messages
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let out = dir.path().join(format!("{i}.json"));
            args(&[
                "header",
                "--input",
                &m.display().to_string(),
                "--output",
                &out.display().to_string(),
            ])
        })
        .collect();
    let results = common::reference("esdk_ref.py", dir.path(), &jobs, &[]);
    let (mut same, mut refused) = (0, 0);
    let mut versions = std::collections::BTreeSet::new();
    for (i, (m, r)) in messages.iter().zip(&results).enumerate() {
        let out = run(&["inspect", "--input", &m.display().to_string()], None);
        if r.is_err() {
            // Not a header the reference reads (a malformed context, an
            // unknown content type): envseal refuses it too, in one line.
            assert_fail_code(&out, 1);
            refused += 1;
            continue;
        }
        assert_ok(&out);
        let got: serde_json::Value = serde_json::from_slice(&out.stdout).expect("inspect prints JSON");
        let want: serde_json::Value =
            serde_json::from_slice(&fs::read(dir.path().join(format!("{i}.json"))).unwrap()).unwrap();
        assert_eq!(got["header"], want["header"], "{}", m.display());
        assert_eq!(got["header_auth"], want["header_auth"], "{}", m.display());
        assert_eq!(got["authenticated"], false);
        let suite =
            u16::from_str_radix(got["algorithm_id"].as_str().unwrap().trim_start_matches("0x"), 16).unwrap();
        let suite = envseal::AlgorithmSuite::from_id(suite).unwrap();
        assert_eq!(got["algorithm_name"], suite.name());
        assert_eq!(got["signed"], suite.is_signed());
        assert_eq!(
            got["keys"].as_array().unwrap().len(),
            want["header"]["encrypted_data_keys"].as_array().unwrap().len()
        );
        versions.insert(want["header"]["version"].as_str().unwrap().to_owned());
        same += 1;
    }
    println!("{same} headers as the reference parses them, {refused} refused by it");
    assert!(same > 100, "{same}");
    assert_eq!(versions.into_iter().collect::<Vec<_>>(), ["1.0", "2.0"]);
}

/// `inspect` on stdin, on something that is not a message, and on a missing file.
#[test]
fn inspect_reads_stdin_and_refuses_what_is_not_a_message() {
    let fx = Fixture::new();
    let key = fx.aes_key("ns", "k", 32, 1);
    let plain = fx.write("plain", b"inspect me");
    let msg = fx.p("msg");
    encrypt_file(&plain, &msg, &args(&["--raw-aes-key", &key, "-c", "tenant=acme"]));
    let out = run(&["inspect", "--input", "-"], Some(&fs::read(&msg).unwrap()));
    assert_ok(&out);
    let got: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(got["header"]["encryption_context"]["tenant"], "acme");
    assert_eq!(got["keys"][0]["provider_id"], "ns");
    assert_eq!(
        got["header"]["algorithm"],
        "AES_256_GCM_HKDF_SHA512_COMMIT_KEY_ECDSA_P384"
    );
    let err = assert_fail(&run(&["inspect", "--input", "-"], Some(b"not a message at all")));
    assert!(!err.contains("panicked"), "{err}");
    let err = assert_fail(&run(&["inspect", "--input", &fx.p("missing")], None));
    assert!(err.contains("cannot open input"), "{err}");
}

/// `--encode` writes base64 (and only base64), `--decode` reads it back,
/// line breaks or not; the decoded bytes are a message the Python reference
/// decrypts. Without `--decode`, base64 is refused cleanly.
#[test]
fn encode_and_decode_round_trip_and_python_reads_the_decoded_message() {
    use base64::Engine as _;
    let fx = Fixture::new();
    let key = fx.aes_key("ns", "k", 32, 3);
    let plain = pattern(300_000, 9);
    let input = fx.write("plain", &plain);
    for (suite, frame) in [("0x0478", "4096"), ("0x0578", "1000"), ("0x0478", "0")] {
        let b64 = fx.p("msg.b64");
        let mut flags = aes_flag(&key);
        flags.extend(args(&[
            "--suite",
            suite,
            "--frame-length",
            frame,
            "--encode",
            "-f",
        ]));
        encrypt_file(&input, &b64, &flags);
        let text = fx.read("msg.b64");
        assert!(
            text.iter()
                .all(|b| b.is_ascii_alphanumeric() || b"+/=".contains(b)),
            "--encode writes base64 only"
        );
        let bytes = base64::engine::general_purpose::STANDARD.decode(&text).unwrap();
        assert!(bytes.len() > plain.len());
        // Decoded, it is an ordinary message: the Python reference reads it.
        let raw = fx.write("msg.bin", &bytes);
        let py_out = fx.p("py.out");
        let job = args(&[
            "decrypt",
            "--input",
            &raw,
            "--output",
            &py_out,
            "--raw-aes-key",
            &key,
        ]);
        let results = common::reference("esdk_ref.py", fx.dir.path(), &[job], &[]);
        results[0].as_ref().expect("Python decrypts the decoded message");
        assert!(fx.read("py.out") == plain, "{suite} {frame}");
        fs::remove_file(fx.path("py.out")).unwrap();
        // --decode, as written and wrapped at 76 columns with CRLF.
        let wrapped: Vec<u8> = text.chunks(76).flat_map(|l| [l, b"\r\n"].concat()).collect();
        let wrapped = fx.write("wrapped.b64", &wrapped);
        for source in [&b64, &wrapped] {
            let back = fx.p("back");
            let mut flags = aes_flag(&key);
            flags.extend(args(&["--decode", "-f"]));
            assert_ok(&decrypt_cmd(source, &back, &flags));
            assert!(fx.read("back") == plain, "{suite} {frame} {source}");
        }
        // Base64 without --decode, and a message with --decode: clean failures.
        let back = fx.p("nothing");
        assert_fail_code(&decrypt_cmd(&b64, &back, &aes_flag(&key)), 1);
        let mut flags = aes_flag(&key);
        flags.push("--decode".into());
        assert_fail_code(&decrypt_cmd(&raw, &back, &flags), 1);
        assert!(!fx.path("nothing").exists());
    }
    // stdin to stdout.
    let mut flags = args(&["encrypt", "--input", "-", "--output", "-", "--encode"]);
    flags.extend(aes_flag(&key));
    let out = run(&flags, Some(b"through pipes"));
    assert_ok(&out);
    let mut flags = args(&["decrypt", "--input", "-", "--output", "-", "--decode"]);
    flags.extend(aes_flag(&key));
    let back = run(&flags, Some(&out.stdout));
    assert_ok(&back);
    assert_eq!(back.stdout, b"through pipes");
}

/// `--decrypt-unsigned` refuses a signed message before any key is used
/// and leaves no output; unsigned messages decrypt as usual.
#[test]
fn decrypt_unsigned_refuses_signed_messages() {
    let fx = Fixture::new();
    let key = fx.aes_key("ns", "k", 32, 4);
    let input = fx.write("plain", b"signed or not");
    let signed = fx.p("signed.msg");
    let mut flags = aes_flag(&key);
    flags.extend(args(&["--suite", "0x0578"]));
    encrypt_file(&input, &signed, &flags);
    let unsigned = fx.p("unsigned.msg");
    let mut flags = aes_flag(&key);
    flags.extend(args(&["--suite", "0x0478"]));
    encrypt_file(&input, &unsigned, &flags);
    let out = fx.p("out");
    let mut flags = aes_flag(&key);
    flags.push("--decrypt-unsigned".into());
    let err = assert_fail_code(&decrypt_cmd(&signed, &out, &flags), 1);
    assert!(err.contains("signed") && err.contains("0x0578"), "{err}");
    assert!(!fx.path("out").exists());
    // Refused before any key: a wrong key gives the same answer.
    let other = fx.aes_key("ns", "other", 32, 5);
    let mut flags = aes_flag(&other);
    flags.push("--decrypt-unsigned".into());
    assert_eq!(assert_fail_code(&decrypt_cmd(&signed, &out, &flags), 1), err);
    let mut flags = aes_flag(&key);
    flags.push("--decrypt-unsigned".into());
    assert_ok(&decrypt_cmd(&unsigned, &out, &flags));
    assert_eq!(fx.read("out"), b"signed or not");
}

/// Every file under `dir`, relative, sorted (symbolic links as files).
fn tree(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let t = e.file_type().unwrap();
            if t.is_dir() {
                stack.push(e.path());
            } else {
                out.push(e.path().strip_prefix(dir).unwrap().display().to_string());
            }
        }
    }
    out.sort();
    out
}

/// Asserts a many-file run failed: exit 1, one line per failure naming
/// the file, and a last summary line naming them all. Returns stderr.
#[track_caller]
fn assert_many_failed(out: &Output, failed: &[&str]) -> String {
    let err = stderr_of(out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    let lines: Vec<&str> = err.lines().collect();
    assert!(lines.iter().all(|l| l.starts_with("envseal: ")), "{err}");
    let summary = lines.last().unwrap();
    assert!(
        summary.contains(&format!("{} of ", failed.len())) && summary.contains("failed"),
        "{err}"
    );
    for f in failed {
        assert!(summary.contains(f), "summary must name {f}: {err}");
        assert!(
            lines[..lines.len() - 1].iter().any(|l| l.contains(f)),
            "a line for {f}: {err}"
        );
    }
    err
}

/// A tree: nested folders, an empty file, links in and out of the tree,
/// a file whose output cannot be written; then decrypted back with one
/// corrupted message among them.
#[test]
fn directory_trees_file_by_file() {
    let fx = Fixture::new();
    let key = fx.aes_key("ns", "k", 32, 7);
    let outside = fx.write("outside.txt", b"not in the tree");
    let input = fx.path("in");
    fs::create_dir_all(input.join("a/c")).unwrap();
    fs::create_dir_all(input.join("z")).unwrap();
    let files: Vec<(&str, Vec<u8>)> = vec![
        ("top.txt", b"top".to_vec()),
        ("empty.txt", Vec::new()),
        ("a/b.txt", pattern(70_000, 3)),
        ("a/c/d.bin", pattern(5_000, 4)),
        ("z/blocked.txt", b"its output is a directory".to_vec()),
    ];
    for (name, bytes) in &files {
        fs::write(input.join(name), bytes).unwrap();
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::symlink;
        symlink("a/b.txt", input.join("link-in")).unwrap();
        symlink(&outside, input.join("link-out")).unwrap();
        symlink("a", input.join("link-dir")).unwrap();
        symlink("nowhere", input.join("dangling")).unwrap();
    }
    let before = tree(&input);
    let out = fx.path("out");
    // z/blocked.txt cannot be written: its output name is a directory.
    fs::create_dir_all(out.join("z/blocked.txt.encrypted")).unwrap();

    let mut a = args(&[
        "encrypt",
        "--recursive",
        "-i",
        &fx.p("in"),
        "-o",
        &fx.p("out"),
        "--frame-length",
        "4096",
    ]);
    a.extend(aes_flag(&key));
    let res = run(&a, None);
    let err = assert_many_failed(&res, &["blocked.txt"]);
    assert!(err.contains("encrypted 5"), "{err}");
    #[cfg(unix)]
    for skipped in ["link-out", "link-dir", "dangling"] {
        assert!(
            err.contains(&format!("skipped {}", input.join(skipped).display())),
            "{err}"
        );
    }
    let mut want: Vec<String> = ["top.txt", "empty.txt", "a/b.txt", "a/c/d.bin"]
        .iter()
        .map(|f| format!("{f}.encrypted"))
        .collect();
    #[cfg(unix)]
    want.push("link-in.encrypted".into());
    want.sort();
    assert_eq!(tree(&out), want, "{err}");
    // Inputs untouched; nothing temporary left.
    assert_eq!(tree(&input), before);
    for (name, bytes) in &files {
        assert_eq!(&fs::read(input.join(name)).unwrap(), bytes);
    }

    // Decrypt the tree back, one message corrupted: it alone fails.
    let bad = out.join("a/c/d.bin.encrypted");
    let mut msg = fs::read(&bad).unwrap();
    let n = msg.len();
    msg[n - 20] ^= 1;
    fs::write(&bad, &msg).unwrap();
    let mut a = args(&["decrypt", "-r", "-i", &fx.p("out"), "-o", &fx.p("dec")]);
    a.extend(aes_flag(&key));
    let res = run(&a, None);
    assert_many_failed(&res, &["d.bin.encrypted"]);
    let dec = fx.path("dec");
    // The failed file's folder (created for it alone) is gone too.
    let mut want = vec![
        "a/b.txt.encrypted.decrypted",
        "empty.txt.encrypted.decrypted",
        "top.txt.encrypted.decrypted",
    ];
    #[cfg(unix)]
    want.insert(2, "link-in.encrypted.decrypted");
    assert_eq!(tree(&dec), want);
    assert!(!dec.join("a/c").exists());
    for (name, bytes) in &files[..3] {
        assert_eq!(
            &fs::read(dec.join(format!("{name}.encrypted.decrypted"))).unwrap(),
            bytes,
            "{name}"
        );
    }

    // All good: exit 0 and one summary line; a rerun without --force fails
    // file by file and changes nothing.
    fs::remove_file(&bad).unwrap();
    let res = run(&[a.clone(), vec!["--force".into()]].concat(), None);
    assert!(res.status.success(), "{}", stderr_of(&res));
    let read: u64 = tree(&out)
        .iter()
        .map(|f| fs::metadata(out.join(f)).unwrap().len())
        .sum();
    assert_eq!(
        stderr_of(&res),
        format!("envseal: decrypted 4 files ({read} bytes)\n")
    );
    let quiet = run(
        &[a.clone(), vec!["--quiet".into(), "--force".into()]].concat(),
        None,
    );
    assert_ok(&quiet);
    let again = run(&a, None);
    let err = stderr_of(&again);
    assert_eq!(again.status.code(), Some(1), "{err}");
    assert!(err.contains("already exists"), "{err}");
    assert!(err.lines().last().unwrap().contains("4 of 4 failed"), "{err}");
}

/// Several inputs, --suffix, a single file into a directory, the output
/// directory inside the tree, and the usage errors of many-file runs.
#[test]
fn several_inputs_suffix_and_many_file_usage_errors() {
    let fx = Fixture::new();
    let key = fx.aes_key("ns", "k", 32, 9);
    let f1 = fx.write("one.txt", b"one");
    let f2 = fx.write("two.txt", b"two");
    fs::create_dir(fx.path("outdir")).unwrap();
    let key_args = aes_flag(&key);

    let mut a = args(&[
        "encrypt",
        "-i",
        &f1,
        &f2,
        "-o",
        &fx.p("outdir"),
        "--suffix",
        ".esdk",
    ]);
    a.extend(key_args.clone());
    let res = run(&a, None);
    assert!(res.status.success(), "{}", stderr_of(&res));
    assert_eq!(listing(&fx.path("outdir")), ["one.txt.esdk", "two.txt.esdk"]);
    // One file into an existing directory: its name plus the suffix.
    let mut a = args(&[
        "decrypt",
        "-i",
        &fx.p("outdir/one.txt.esdk"),
        "-o",
        &fx.p("outdir"),
    ]);
    a.extend(key_args.clone());
    assert_ok(&run(&a, None));
    assert_eq!(fx.read("outdir/one.txt.esdk.decrypted"), b"one");
    // An empty suffix keeps the name.
    let mut a = args(&[
        "decrypt",
        "-i",
        &fx.p("outdir/two.txt.esdk"),
        "-o",
        &fx.p("plain"),
        "--suffix",
        "",
    ]);
    fs::create_dir(fx.path("plain")).unwrap();
    a.extend(key_args.clone());
    assert_ok(&run(&a, None));
    assert_eq!(fx.read("plain/two.txt.esdk"), b"two");

    // The output directory inside the input tree is not entered.
    let tree_dir = fx.path("t");
    fs::create_dir(&tree_dir).unwrap();
    fs::write(tree_dir.join("x"), b"x").unwrap();
    for _ in 0..2 {
        let mut a = args(&["encrypt", "-r", "-i", &fx.p("t"), "-o", &fx.p("t/enc"), "--force"]);
        a.extend(key_args.clone());
        let res = run(&a, None);
        assert_eq!(stderr_of(&res), "envseal: encrypted 1 file (1 bytes)\n");
        assert_eq!(tree(&tree_dir), ["enc/x.encrypted", "x"]);
    }

    let usage = |extra: &[&str], want: &str| {
        let mut a = args(&["encrypt"]);
        a.extend(extra.iter().map(|s| s.to_string()));
        a.extend(key_args.clone());
        let msg = assert_fail_code(&run(&a, None), 2);
        assert!(msg.contains(want), "{msg}");
    };
    usage(&["-i", &fx.p("t"), "-o", &fx.p("o2")], "use --recursive");
    usage(&["-i", &f1, "-", "-o", &fx.p("o2")], "stdin");
    usage(&["-i", &f1, &f2, "-o", "-"], "output directory");
    usage(&["-i", &f1, &f2, "-o", &f1], "not a directory");
    usage(&["-i", "-", "-o", &fx.p("outdir")], "name the output file");
    usage(
        &["-i", &f1, "-o", &fx.p("o3"), "--cache-max-messages", "5"],
        "--cache-max-age-s",
    );
    usage(
        &["-i", &f1, "-o", "-", "--metadata-output", "-"],
        "both be stdout",
    );
    assert!(!fx.path("o2").exists());
}

/// `--metadata-output`: a JSON line per message, matching the message (the
/// header as the Python reference parses it), appended to unless
/// `--overwrite-metadata`; `-` writes to stdout.
#[test]
fn metadata_output_lines_match_the_messages() {
    let fx = Fixture::new();
    let key = fx.aes_key("ns", "k", 32, 11);
    let input = fx.path("in");
    fs::create_dir_all(input.join("sub")).unwrap();
    let files = [
        ("a", pattern(10_000, 1)),
        ("sub/b", pattern(100, 2)),
        ("sub/c", Vec::new()),
    ];
    for (name, bytes) in &files {
        fs::write(input.join(name), bytes).unwrap();
    }
    let meta = fx.p("meta.jsonl");
    let mut a = args(&[
        "encrypt",
        "-r",
        "-i",
        &fx.p("in"),
        "-o",
        &fx.p("out"),
        "--metadata-output",
        &meta,
        "--context",
        "team=blue",
        "--frame-length",
        "1024",
    ]);
    a.extend(aes_flag(&key));
    let res = run(&a, None);
    assert!(res.status.success(), "{}", stderr_of(&res));
    let lines: Vec<serde_json::Value> = fs::read_to_string(&meta)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    assert_eq!(lines.len(), files.len());
    let dir = TempDir::new().unwrap();
    let mut jobs = Vec::new();
    for (i, ((name, bytes), line)) in files.iter().zip(&lines).enumerate() {
        let output = fx.path("out").join(format!("{name}.encrypted"));
        assert_eq!(line["mode"], "encrypt");
        assert_eq!(line["input"], input.join(name).display().to_string());
        assert_eq!(line["output"], output.display().to_string());
        assert_eq!(line["input_bytes"], bytes.len() as u64);
        assert_eq!(line["output_bytes"], fs::metadata(&output).unwrap().len());
        assert_eq!(line["kms"], serde_json::Value::Null);
        assert_eq!(line["cache"], serde_json::Value::Null);
        assert_eq!(line["header"]["encryption_context"]["team"], "blue");
        assert_eq!(line["header"]["frame_length"], 1024);
        let json = dir.path().join(format!("{i}.json"));
        jobs.push(args(&[
            "header",
            "--input",
            &output.display().to_string(),
            "--output",
            &json.display().to_string(),
        ]));
    }
    // The Python reference parses each message's header to the same fields.
    let results = common::reference("esdk_ref.py", dir.path(), &jobs, &[]);
    for (i, (r, line)) in results.iter().zip(&lines).enumerate() {
        r.as_ref().expect("the reference parses the header");
        let want: serde_json::Value =
            serde_json::from_slice(&fs::read(dir.path().join(format!("{i}.json"))).unwrap()).unwrap();
        assert_eq!(line["header"], want["header"]);
        assert_eq!(line["header_auth"], want["header_auth"]);
    }

    // Decrypt one to stdout's neighbour: metadata to stdout, appended and overwritten.
    let msg = fx.path("out/a.encrypted").display().to_string();
    let mut a = args(&[
        "decrypt",
        "-i",
        &msg,
        "-o",
        &fx.p("a.dec"),
        "--metadata-output",
        "-",
    ]);
    a.extend(aes_flag(&key));
    let res = run(&a, None);
    assert_ok(&res);
    let line: serde_json::Value = serde_json::from_slice(&res.stdout).unwrap();
    assert_eq!(line["mode"], "decrypt");
    assert_eq!(line["header"], lines[0]["header"]);
    assert_eq!(line["header_auth"], lines[0]["header_auth"]);
    assert_eq!(line["output_bytes"], 10_000);
    let mut a = args(&[
        "decrypt",
        "-i",
        &msg,
        "-o",
        &fx.p("a2.dec"),
        "--metadata-output",
        &meta,
    ]);
    a.extend(aes_flag(&key));
    assert_ok(&run(&a, None));
    assert_eq!(fs::read_to_string(&meta).unwrap().lines().count(), 4);
    a.extend(args(&["--overwrite-metadata", "--force"]));
    assert_ok(&run(&a, None));
    assert_eq!(fs::read_to_string(&meta).unwrap().lines().count(), 1);
}

/// The progress bar: drawn on a terminal for a long run (here 40 files),
/// never into a pipe, never with --quiet.
#[test]
fn progress_is_drawn_on_a_terminal_only() {
    let fx = Fixture::new();
    let key = fx.aes_key("ns", "k", 32, 13);
    let input = fx.path("in");
    fs::create_dir(&input).unwrap();
    for i in 0..40 {
        fs::write(input.join(format!("f{i:02}")), pattern(200_000, i)).unwrap();
    }
    let encrypt = |out: &str, extra: &[&str]| {
        let mut a = args(&["encrypt", "-r", "-i", &fx.p("in"), "-o", &fx.p(out)]);
        a.extend(aes_flag(&key));
        a.extend(args(extra));
        a
    };
    let on_pty = |a: &[String]| -> String {
        let out = Command::new(common::python())
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop/pty_stderr.py"))
            .arg(BIN)
            .args(a)
            .output()
            .expect("run pty_stderr.py");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };

    let term = on_pty(&encrypt("o1", &[]));
    assert!(
        term.contains("files 0/40") && term.contains("files 1/40"),
        "no bar: {term:?}"
    );
    assert!(
        term.contains("/7.63 MiB") && term.contains("B/s"),
        "bytes and rate: {term:?}"
    );
    assert!(term.contains('\x1b'), "terminal control sequences: {term:?}");
    // The summary is still printed, after the bar is cleared.
    assert!(
        term.trim_end()
            .ends_with("envseal: encrypted 40 files (8000000 bytes)"),
        "{term:?}"
    );
    assert_eq!(listing(&fx.path("o1")).len(), 40);

    let quiet = on_pty(&encrypt("o2", &["--quiet"]));
    assert_eq!(quiet, "", "--quiet draws nothing");
    // stderr a pipe: the summary line alone.
    let piped = run(&encrypt("o3", &[]), None);
    assert_eq!(stderr_of(&piped), "envseal: encrypted 40 files (8000000 bytes)\n");
}

/// Usage and error output, exactly (tests/cmd/*.trycmd; regenerate with
/// `TRYCMD=overwrite cargo test --test cli snapshots` and review the diff).
#[test]
fn usage_and_error_output_snapshots() {
    trycmd::TestCases::new()
        .register_bin("envseal", Path::new(BIN))
        .case("tests/cmd/*.trycmd");
}

/// The builds this repository makes seed aws-lc's random generator from
/// the OS alone (`.cargo/config.toml`: `AWS_LC_SYS_NO_JITTER_ENTROPY`): no
/// CPU Jitter Entropy source, 10-50 ms of CPU at every process's first
/// random number, is linked into the CLI. (A build without the setting
/// links `jent_entropy_init`, as the release binary did before it.)
#[cfg(feature = "aws-lc")]
#[test]
fn the_cli_links_no_jitter_entropy_source() {
    let binary = fs::read(BIN).expect("read the envseal binary");
    assert!(
        memchr::memmem::find(&binary, b"jent_entropy_init").is_none(),
        "the CLI links aws-lc's CPU Jitter Entropy source"
    );
}

/// `--jobs N`: files of a tree run N at a time, each complete or absent;
/// failure lines and `--metadata-output` lines come in plan order whatever
/// order files finish in, and with a data key cache each line counts its
/// own lookup (one miss in all, then hits).
#[test]
fn jobs_run_files_at_once_in_plan_order() {
    let fx = Fixture::new();
    let key = fx.aes_key("ns", "k", 32, 21);
    let input = fx.path("in");
    let mut names = Vec::new();
    for i in 0..60usize {
        let dir = format!("d{}", i % 4);
        fs::create_dir_all(input.join(&dir)).unwrap();
        let name = format!("{dir}/f{i:02}");
        // Mixed sizes, so that files finish out of order.
        fs::write(input.join(&name), pattern([10, 70_000, 3_000][i % 3], i as u8)).unwrap();
        names.push(name);
    }
    names.sort();
    let out = fx.path("out");
    // One output cannot be written: its name is a directory.
    fs::create_dir_all(out.join("d1/f05.encrypted")).unwrap();
    let meta = fx.p("meta.jsonl");
    let mut a = args(&[
        "encrypt",
        "-r",
        "-i",
        &fx.p("in"),
        "-o",
        &fx.p("out"),
        "--jobs",
        "4",
        "--metadata-output",
        &meta,
        "--cache-max-age-s",
        "60",
    ]);
    a.extend(aes_flag(&key));
    let res = run(&a, None);
    let err = assert_many_failed(&res, &["f05"]);
    assert!(err.contains("encrypted 59"), "{err}");
    let lines: Vec<serde_json::Value> = fs::read_to_string(&meta)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).expect("a complete JSON line"))
        .collect();
    let ok: Vec<&String> = names.iter().filter(|n| n.as_str() != "d1/f05").collect();
    assert_eq!(lines.len(), ok.len());
    let (mut misses, mut hits) = (0, 0);
    for (line, name) in lines.iter().zip(&ok) {
        assert_eq!(
            line["input"],
            input.join(name).display().to_string(),
            "plan order"
        );
        let cache = &line["cache"];
        let (m, h) = (cache["misses"].as_u64().unwrap(), cache["hits"].as_u64().unwrap());
        assert_eq!(m + h, 1, "one lookup per file: {line}");
        (misses, hits) = (misses + m, hits + h);
    }
    assert_eq!((misses, hits), (1, 58));

    // Decrypted back three at a time: every file as it was.
    fs::remove_dir(out.join("d1/f05.encrypted")).unwrap();
    let mut a = args(&[
        "decrypt",
        "-r",
        "-i",
        &fx.p("out"),
        "-o",
        &fx.p("dec"),
        "--jobs",
        "3",
    ]);
    a.extend(aes_flag(&key));
    let res = run(&a, None);
    assert_eq!(
        stderr_of(&res).lines().last().unwrap_or(""),
        format!(
            "envseal: decrypted 59 files ({} bytes)",
            ok.iter()
                .map(|n| fs::metadata(out.join(format!("{n}.encrypted"))).unwrap().len())
                .sum::<u64>()
        )
    );
    for name in &ok {
        let back = fs::read(fx.path("dec").join(format!("{name}.encrypted.decrypted"))).unwrap();
        assert_eq!(back, fs::read(input.join(name)).unwrap(), "{name}");
    }
    // --jobs takes 1 to 1024.
    for bad in ["0", "1025", "x"] {
        let mut a = args(&[
            "encrypt",
            "-r",
            "-i",
            &fx.p("in"),
            "-o",
            &fx.p("o2"),
            "--jobs",
            bad,
        ]);
        a.extend(aes_flag(&key));
        assert_fail_code(&run(&a, None), 2);
    }
}

//! `envseal reencrypt` with raw keys: files, stdout, trees and --in-place;
//! the context carried; failures that name the file and leave nothing;
//! and no plaintext file at any moment of a run.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use tempfile::TempDir;

const BIN: &str = env!("CARGO_BIN_EXE_envseal");

fn envseal(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().expect("spawn envseal")
}

#[track_caller]
fn ok(out: &Output) {
    assert!(
        out.status.success(),
        "envseal failed: {:?}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A line of text repeated: easy to find in any file that holds it.
const MARKER: &[u8] = b"PLAINTEXT-MARKER-0123456789-";

fn plaintext(len: usize) -> Vec<u8> {
    MARKER.iter().copied().cycle().take(len).collect()
}

fn holds_plaintext(bytes: &[u8]) -> bool {
    bytes.windows(MARKER.len()).any(|w| w == MARKER)
}

struct Keys {
    dir: TempDir,
}

impl Keys {
    fn new() -> Self {
        let dir = TempDir::new().unwrap();
        fs::write(dir.path().join("old.key"), [1u8; 32]).unwrap();
        fs::write(dir.path().join("new.key"), [2u8; 32]).unwrap();
        Keys { dir }
    }
    fn old(&self) -> String {
        format!("app:old:{}", self.dir.path().join("old.key").display())
    }
    fn new_key(&self) -> String {
        format!("app:new:{}", self.dir.path().join("new.key").display())
    }
    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Encrypts `plain` to `msg` under the old key with `extra` flags.
fn seal(k: &Keys, plain: &Path, msg: &Path, extra: &[&str]) {
    let old = k.old();
    let mut args = vec![
        "encrypt",
        "-i",
        s(plain),
        "-o",
        s(msg),
        "--raw-aes-key",
        &old,
        "-q",
    ];
    args.extend(extra);
    ok(&envseal(&args));
}

fn inspect(msg: &Path) -> serde_json::Value {
    let out = envseal(&["inspect", "-i", s(msg)]);
    ok(&out);
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn one_file_keeps_suite_frame_and_context_under_the_new_key_only() {
    let k = Keys::new();
    let (plain, msg, out, back) = (k.path("plain"), k.path("msg"), k.path("out"), k.path("back"));
    fs::write(&plain, plaintext(100_000)).unwrap();
    seal(
        &k,
        &plain,
        &msg,
        &["-c", "tenant=acme", "--suite", "0x0478", "--frame-length", "1024"],
    );
    let (old, new) = (k.old(), k.new_key());
    ok(&envseal(&[
        "reencrypt",
        "-i",
        s(&msg),
        "-o",
        s(&out),
        "--raw-aes-key",
        &old,
        "--new-raw-aes-key",
        &new,
    ]));
    let header = inspect(&out);
    assert_eq!(header["algorithm_id"], "0x0478");
    assert_eq!(header["header"]["frame_length"], 1024);
    assert_eq!(
        header["header"]["encryption_context"],
        serde_json::json!({"tenant": "acme"})
    );
    // The new key reads it, with the context; the old one no longer does.
    ok(&envseal(&[
        "decrypt",
        "-i",
        s(&out),
        "-o",
        s(&back),
        "--raw-aes-key",
        &new,
        "-c",
        "tenant=acme",
    ]));
    assert_eq!(fs::read(&back).unwrap(), fs::read(&plain).unwrap());
    let refused = envseal(&[
        "decrypt",
        "-i",
        s(&out),
        "-o",
        s(&k.path("no")),
        "--raw-aes-key",
        &old,
    ]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(!k.path("no").exists());

    // Options: another suite and frame length, a pair added; to stdout.
    let piped = envseal(&[
        "reencrypt",
        "-i",
        s(&msg),
        "-o",
        "-",
        "--raw-aes-key",
        &old,
        "--new-raw-aes-key",
        &new,
        "--suite",
        "0x0578",
        "--frame-length",
        "4096",
        "--add-context",
        "stage=2",
    ]);
    ok(&piped);
    fs::write(k.path("piped"), &piped.stdout).unwrap();
    let header = inspect(&k.path("piped"));
    assert_eq!(header["algorithm_id"], "0x0578");
    assert_eq!(header["header"]["frame_length"], 4096);
    let context = &header["header"]["encryption_context"];
    assert_eq!(
        (&context["tenant"], &context["stage"]),
        (&"acme".into(), &"2".into())
    );
    // Changing a pair is refused before anything is written.
    let changed = envseal(&[
        "reencrypt",
        "-i",
        s(&msg),
        "-o",
        s(&k.path("changed")),
        "--raw-aes-key",
        &old,
        "--new-raw-aes-key",
        &new,
        "--add-context",
        "tenant=other",
    ]);
    assert_eq!(
        changed.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&changed.stderr)
    );
    assert!(!k.path("changed").exists());
}

#[test]
fn a_tampered_file_fails_named_and_leaves_nothing_in_place_or_not() {
    let k = Keys::new();
    let tree = k.path("tree");
    fs::create_dir_all(tree.join("sub")).unwrap();
    for (i, name) in ["a", "sub/b", "sub/c"].iter().enumerate() {
        fs::write(k.path(&format!("p{i}")), plaintext(50_000 + i)).unwrap();
        seal(&k, &k.path(&format!("p{i}")), &tree.join(name), &[]);
    }
    // A bit flipped in the middle of sub/b's body.
    let bad = tree.join("sub/b");
    let mut bytes = fs::read(&bad).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 1;
    fs::write(&bad, &bytes).unwrap();
    let before: Vec<Vec<u8>> = ["a", "sub/b", "sub/c"]
        .iter()
        .map(|n| fs::read(tree.join(n)).unwrap())
        .collect();
    let (old, new) = (k.old(), k.new_key());

    let out = k.path("out");
    let run = envseal(&[
        "reencrypt",
        "-r",
        "-i",
        s(&tree),
        "-o",
        s(&out),
        "--raw-aes-key",
        &old,
        "--new-raw-aes-key",
        &new,
    ]);
    assert_eq!(run.status.code(), Some(1));
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(err.contains(&format!("envseal: {}: ", bad.display())), "{err}");
    assert!(err.contains("1 of 3 failed"), "{err}");
    assert!(out.join("a").exists() && out.join("sub/c").exists());
    assert!(!out.join("sub/b").exists(), "nothing for the tampered file");
    let leftovers: Vec<_> = fs::read_dir(out.join("sub"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(leftovers, ["c"], "no temporary file left");

    // In place: the good files are replaced, the tampered one is left as
    // it was, byte for byte.
    let run = envseal(&[
        "reencrypt",
        "-r",
        "-i",
        s(&tree),
        "--in-place",
        "--raw-aes-key",
        &old,
        "--new-raw-aes-key",
        &new,
    ]);
    assert_eq!(run.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&run.stderr).contains(&format!("envseal: {}: ", bad.display())));
    assert_eq!(
        fs::read(&bad).unwrap(),
        before[1],
        "the tampered input is untouched"
    );
    assert_ne!(fs::read(tree.join("a")).unwrap(), before[0]);
    let names: Vec<_> = fs::read_dir(tree.join("sub"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names.len(), 2, "no temporary file left: {names:?}");
    let back = k.path("back");
    ok(&envseal(&[
        "decrypt",
        "-i",
        s(&tree.join("a")),
        "-o",
        s(&back),
        "--raw-aes-key",
        &new,
    ]));
    assert_eq!(fs::read(&back).unwrap(), plaintext(50_000));
}

#[test]
fn in_place_keeps_the_mode_and_refuses_stdin_and_output() {
    use std::os::unix::fs::PermissionsExt;
    let k = Keys::new();
    let (plain, msg) = (k.path("plain"), k.path("msg"));
    fs::write(&plain, plaintext(10_000)).unwrap();
    seal(&k, &plain, &msg, &[]);
    fs::set_permissions(&msg, fs::Permissions::from_mode(0o640)).unwrap();
    let (old, new) = (k.old(), k.new_key());
    ok(&envseal(&[
        "reencrypt",
        "-i",
        s(&msg),
        "--in-place",
        "--raw-aes-key",
        &old,
        "--new-raw-aes-key",
        &new,
    ]));
    assert_eq!(fs::metadata(&msg).unwrap().permissions().mode() & 0o777, 0o640);
    let out = envseal(&[
        "reencrypt",
        "-i",
        s(&msg),
        "--in-place",
        "-o",
        s(&k.path("x")),
        "--raw-aes-key",
        &new,
        "--new-raw-aes-key",
        &old,
    ]);
    assert_eq!(out.status.code(), Some(2));
    let out = envseal(&[
        "reencrypt",
        "-i",
        "-",
        "--in-place",
        "--raw-aes-key",
        &new,
        "--new-raw-aes-key",
        &old,
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("stdin"));
    let out = envseal(&[
        "reencrypt",
        "-i",
        s(&msg),
        "-o",
        s(&k.path("y")),
        "--raw-aes-key",
        &new,
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--new-raw-aes-key"));
}

/// Files of the tree `dir` (any depth) whose first `look` bytes hold the
/// plaintext marker (a file of plaintext, written from its start, shows it
/// at once).
fn plaintext_files(dir: &Path, look: u64) -> Vec<PathBuf> {
    use std::io::Read;
    let mut found = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = fs::read_dir(&d) else { continue };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let mut head = Vec::new();
                let read = fs::File::open(&p).and_then(|f| f.take(look).read_to_end(&mut head));
                if read.is_ok() && holds_plaintext(&head) {
                    found.push(p);
                }
            }
        }
    }
    found
}

/// While a run re-encrypts a tree (into a directory, then in place), every
/// file in the directories it writes, temporary ones included, is looked
/// at again and again: none ever holds plaintext.
#[test]
fn no_plaintext_file_at_any_moment_of_a_run() {
    let k = Keys::new();
    let (tree, plain) = (k.path("tree"), k.path("plain"));
    fs::create_dir_all(&tree).unwrap();
    fs::write(&plain, plaintext(1 << 20)).unwrap();
    for i in 0..48 {
        seal(&k, &plain, &tree.join(format!("f{i}")), &["--suite", "0x0478"]);
    }
    fs::remove_file(&plain).unwrap();
    let out = k.path("out");
    let (old, new) = (k.old(), k.new_key());
    for in_place in [false, true] {
        let mut args = vec![
            "reencrypt",
            "-r",
            "-i",
            s(&tree),
            "--raw-aes-key",
            &old,
            "--new-raw-aes-key",
            &new,
            "-q",
            "--jobs",
            "1",
        ];
        let watched = if in_place {
            args.push("--in-place");
            tree.clone()
        } else {
            args.extend(["-o", s(&out)]);
            out.clone()
        };
        let mut child = Command::new(BIN)
            .args(&args)
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut looks = 0;
        let status = loop {
            assert_eq!(plaintext_files(&watched, 4096), Vec::<PathBuf>::new());
            looks += 1;
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
        };
        assert!(status.success(), "in place: {in_place}");
        assert!(looks > 3, "the run was watched while it ran ({looks} looks)");
        assert_eq!(plaintext_files(&watched, u64::MAX), Vec::<PathBuf>::new());
        assert_eq!(
            fs::read_dir(&watched).unwrap().count(),
            48,
            "the messages, nothing else"
        );
    }
}

/// `--in-place` needs new keys that decrypt (it reads each new message back
/// first): a public key is refused before anything is read. Hard links are
/// left alone, a file named twice is done once, and the owner is kept.
#[test]
fn in_place_refuses_keys_that_cannot_read_back_and_keeps_links_and_owners() {
    use std::os::unix::fs::MetadataExt;
    let k = Keys::new();
    let (plain, msg) = (k.path("plain"), k.path("msg"));
    fs::write(&plain, plaintext(5_000)).unwrap();
    seal(&k, &plain, &msg, &[]);
    let before = fs::read(&msg).unwrap();
    let (old, new) = (k.old(), k.new_key());
    let public = format!(
        "app:rsa:oaep-sha256:{}",
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data/rsa-4096-public.pem")
            .display()
    );
    let out = envseal(&[
        "reencrypt",
        "-i",
        s(&msg),
        "--in-place",
        "--raw-aes-key",
        &old,
        "--new-raw-rsa-key",
        &public,
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("is a public key"));
    assert_eq!(fs::read(&msg).unwrap(), before);
    // A suite the policy forbids is a usage error up front.
    let out = envseal(&[
        "reencrypt",
        "-i",
        s(&msg),
        "-o",
        s(&k.path("x")),
        "--raw-aes-key",
        &old,
        "--new-raw-aes-key",
        &new,
        "--suite",
        "0x0178",
    ]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!k.path("x").exists());

    // Named twice: done once, exit 0.
    ok(&envseal(&[
        "reencrypt",
        "-i",
        s(&msg),
        s(&msg),
        "--in-place",
        "--raw-aes-key",
        &old,
        "--new-raw-aes-key",
        &new,
        "-q",
    ]));
    let back = k.path("back");
    ok(&envseal(&[
        "decrypt",
        "-i",
        s(&msg),
        "-o",
        s(&back),
        "--raw-aes-key",
        &new,
    ]));
    assert_eq!(fs::read(&back).unwrap(), plaintext(5_000));

    // A hard link is skipped, both names untouched.
    let other = k.path("other-name");
    fs::hard_link(&msg, &other).unwrap();
    let linked = fs::read(&msg).unwrap();
    let msg2 = k.path("msg2");
    fs::copy(&msg, &msg2).unwrap();
    let out = envseal(&[
        "reencrypt",
        "-i",
        s(&msg),
        s(&msg2),
        "--in-place",
        "--raw-aes-key",
        &new,
        "--new-raw-aes-key",
        &old,
    ]);
    ok(&out);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("skipped") && err.contains("hard link"), "{err}");
    assert_eq!(fs::read(&msg).unwrap(), linked);
    assert_ne!(fs::read(&msg2).unwrap(), linked, "the other file is re-encrypted");
    fs::remove_file(&other).unwrap();

    // The owner is kept (when run as root, who may give it).
    if is_root() {
        std::os::unix::fs::chown(&msg, Some(1234), Some(1234)).unwrap();
        ok(&envseal(&[
            "reencrypt",
            "-i",
            s(&msg),
            "--in-place",
            "--raw-aes-key",
            &new,
            "--new-raw-aes-key",
            &old,
        ]));
        let meta = fs::metadata(&msg).unwrap();
        assert_eq!((meta.uid(), meta.gid()), (1234, 1234));
    }
}

/// Whether this process runs as root (from /proc, without libc).
fn is_root() -> bool {
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                l.strip_prefix("Uid:")
                    .map(|v| v.split_whitespace().next() == Some("0"))
            })
        })
        .unwrap_or(false)
}

//! `envseal reencrypt` between AWS keys against moto: a tree under a raw
//! AES key and a KMS key moved to a branch key of the hierarchical keyring
//! and back, each file readable under the new keys only, the context
//! carried, the KMS and DynamoDB calls counted.

use super::*;

fn run(dir: &Path, args: &[String]) -> Output {
    envseal_ddb(dir, &args.iter().map(String::as_str).collect::<Vec<_>>())
}

fn strs(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

#[tokio::test]
async fn a_tree_moves_from_raw_aes_and_kms_to_a_branch_key_and_back() {
    let kms_key = create_key("us-east-1").await;
    let f = Files::new();
    let d = f.path();
    let table = format!("cli-reencrypt-{}", std::process::id());
    ok(&run(
        d,
        &strs(&["key-store", "create-table", "--key-store-table", &table]),
    ));
    let out = run(d, &key_store_args("create-key", &table, &kms_key, &[]));
    ok(&out);
    let branch = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    let aes = format!("app:aes:{}", f.p("aes.key"));

    // Five files under the raw AES key and the KMS key, with a context.
    let plain = d.join("tree");
    std::fs::create_dir_all(plain.join("sub")).unwrap();
    let names = ["a", "b", "sub/c", "sub/d", "sub/e"];
    for (i, n) in names.iter().enumerate() {
        std::fs::write(plain.join(n), vec![i as u8 + 1; 10_000 * (i + 1)]).unwrap();
    }
    let (enc, hier, back) = (f.p("enc"), f.p("hier"), f.p("back"));
    ok(&run(
        d,
        &strs(&[
            "encrypt",
            "-r",
            "-i",
            plain.to_str().unwrap(),
            "-o",
            &enc,
            "--suffix",
            "",
            "--raw-aes-key",
            &aes,
            "--kms-key",
            &kms_key,
            "-c",
            "tenant=t1",
            "-q",
        ]),
    ));

    // To the branch key: the old side reads with the raw AES key alone.
    let meta = f.p("meta.jsonl");
    let store = [
        "--key-store-table",
        table.as_str(),
        "--key-store-kms-key",
        kms_key.as_str(),
    ];
    let new_store = [
        "--new-key-store-table",
        table.as_str(),
        "--new-key-store-kms-key",
        kms_key.as_str(),
    ];
    let mut args = strs(&[
        "reencrypt",
        "-r",
        "-i",
        &enc,
        "-o",
        &hier,
        "--raw-aes-key",
        &aes,
        "--new-branch-key-id",
        &branch,
    ]);
    args.extend(strs(&new_store));
    args.extend(strs(&["--metadata-output", &meta, "--kms-stats", "-q"]));
    let out = run(d, &args);
    let err = ok(&out);
    assert!(
        err.contains("dynamodb: calls=1 (GetItem=1"),
        "one branch key read for the run: {err}"
    );
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&meta)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 5);
    for line in &lines {
        assert_eq!(line["mode"], "reencrypt");
        let edks = line["header"]["encrypted_data_keys"].as_array().unwrap();
        assert_eq!(edks.len(), 1, "{line}");
        assert_eq!(line["header"]["encryption_context"]["tenant"], "t1");
    }

    let decrypt = |dir: &str, n: &str, keys: &[&str]| {
        let mut a = strs(&[
            "decrypt",
            "-i",
            &format!("{dir}/{n}"),
            "-o",
            "-",
            "-c",
            "tenant=t1",
        ]);
        a.extend(strs(keys));
        run(d, &a)
    };
    let branch_keys: Vec<&str> = [&["--branch-key-id", branch.as_str()][..], &store[..]].concat();
    for (i, n) in names.iter().enumerate() {
        let out = decrypt(&hier, n, &branch_keys);
        ok(&out);
        assert_eq!(out.stdout, vec![i as u8 + 1; 10_000 * (i + 1)], "{n}");
        // Under the new keyring only.
        assert!(
            !decrypt(&hier, n, &["--raw-aes-key", &aes]).status.success(),
            "{n}"
        );
        assert!(
            !decrypt(&hier, n, &["--kms-key", &kms_key]).status.success(),
            "{n}"
        );
    }

    // And back, to the raw AES key and the KMS key (the KMS key
    // generates), from the branch key.
    let mut args = strs(&[
        "reencrypt",
        "-r",
        "-i",
        &hier,
        "-o",
        &back,
        "--branch-key-id",
        &branch,
    ]);
    args.extend(strs(&store));
    args.extend(strs(&[
        "--new-kms-key",
        &kms_key,
        "--new-raw-aes-key",
        &aes,
        "-q",
    ]));
    ok(&run(d, &args));
    for (i, n) in names.iter().enumerate() {
        for keys in [
            &["--raw-aes-key", aes.as_str()][..],
            &["--kms-key", kms_key.as_str()][..],
        ] {
            let out = decrypt(&back, n, keys);
            ok(&out);
            assert_eq!(out.stdout, vec![i as u8 + 1; 10_000 * (i + 1)], "{n}");
        }
        assert!(!decrypt(&back, n, &branch_keys).status.success(), "{n}");
    }
}

/// To a KMS RSA key (`--new-kms-rsa-key`, encrypting with its public key):
/// an unsigned message moves and decrypts through KMS; a signed one is
/// refused (the RSA keyring takes unsigned suites only) unless
/// `--suite 0x0478` changes the suite.
#[tokio::test]
async fn to_a_kms_rsa_key() {
    use envseal::kms::aws_sdk_kms::types::{KeySpec, KeyUsageType};
    let f = Files::new();
    let d = f.path();
    let admin = common::moto::admin("us-east-1");
    let created = admin
        .create_key()
        .key_spec(KeySpec::Rsa2048)
        .key_usage(KeyUsageType::EncryptDecrypt)
        .send()
        .await
        .unwrap();
    let rsa = created.key_metadata().unwrap().arn().unwrap().to_owned();
    let der = admin.get_public_key().key_id(&rsa).send().await.unwrap();
    let b64 = {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(der.public_key().unwrap().as_ref())
    };
    let lines: Vec<&str> = b64
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    std::fs::write(
        d.join("rsa.pem"),
        format!(
            "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
            lines.join("\n")
        ),
    )
    .unwrap();
    let aes = format!("app:aes:{}", f.p("aes.key"));
    let plain = f.p("plain");
    for (suite, extra, ok_expected) in [
        ("0x0478", None, true),
        ("0x0578", None, false),
        ("0x0578", Some("0x0478"), true),
    ] {
        let (msg, moved, back) = (f.p("msg"), f.p("moved"), f.p("back"));
        for p in [&msg, &moved, &back] {
            let _ = std::fs::remove_file(p);
        }
        ok(&run(
            d,
            &strs(&[
                "encrypt",
                "-i",
                &plain,
                "-o",
                &msg,
                "--raw-aes-key",
                &aes,
                "--suite",
                suite,
                "-q",
            ]),
        ));
        let mut args = strs(&["reencrypt", "-i", &msg, "-o", &moved, "--raw-aes-key", &aes]);
        args.extend(strs(&[
            "--new-kms-rsa-key",
            &rsa,
            "--new-kms-rsa-padding",
            "oaep-sha256",
        ]));
        args.extend(strs(&["--new-kms-rsa-public-key", &f.p("rsa.pem")]));
        if let Some(s) = extra {
            args.extend(strs(&["--suite", s]));
        }
        let out = run(d, &args);
        if !ok_expected {
            fails(&out);
            assert!(!Path::new(&moved).exists(), "{suite}: nothing written");
            continue;
        }
        ok(&out);
        let dec = strs(&[
            "decrypt",
            "-i",
            &moved,
            "-o",
            &back,
            "--kms-rsa-key",
            &rsa,
            "--kms-rsa-padding",
            "oaep-sha256",
        ]);
        ok(&run(d, &dec));
        assert_eq!(
            std::fs::read(&back).unwrap(),
            b"kms via the command line",
            "{suite}"
        );
    }
}

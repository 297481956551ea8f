//! `envseal key-store list-versions` and `describe` on tables written by
//! envseal and by the Python Material Providers Library
//! (tests/interop/hierarchy_ref.py), against moto through the DynamoDB
//! checker.

use super::*;

/// Runs hierarchy_ref.py jobs in one process against the same moto.
fn reference(dir: &Path, jobs: &[Vec<String>]) -> Vec<Result<String, String>> {
    common::hierarchy_reference(dir, jobs)
}

fn strings(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

/// envseal's stdout for `args`, which must succeed.
fn stdout(dir: &Path, args: &[String]) -> String {
    let out = envseal_ddb(dir, &args.iter().map(String::as_str).collect::<Vec<_>>());
    ok(&out);
    String::from_utf8(out.stdout).unwrap()
}

/// One listed version: (version, create_time, active).
type Listed = (String, String, bool);

/// `list-versions` as lines and as JSON, checked to agree; the versions.
fn list(dir: &Path, table: &str, kms_key: &str, id: &str) -> Vec<Listed> {
    let text = stdout(
        dir,
        &key_store_args("list-versions", table, kms_key, &["--branch-key-id", id]),
    );
    let lines: Vec<Listed> = text
        .lines()
        .map(|line| {
            let fields: Vec<&str> = line.split(' ').collect();
            assert!(
                fields.len() == 2 || (fields.len() == 3 && fields[2] == "ACTIVE"),
                "{line:?}"
            );
            assert_eq!(fields[0].len(), 36, "a UUID: {line:?}");
            (fields[0].to_owned(), fields[1].to_owned(), fields.len() == 3)
        })
        .collect();
    let json = stdout(
        dir,
        &key_store_args(
            "list-versions",
            table,
            kms_key,
            &["--branch-key-id", id, "--json"],
        ),
    );
    assert_eq!(json.lines().count(), 1, "one JSON array: {json:?}");
    let array: Vec<serde_json::Value> = serde_json::from_str(&json).unwrap();
    let from_json: Vec<Listed> = array
        .iter()
        .map(|v| {
            let o = v.as_object().unwrap();
            assert_eq!(o.len(), 3, "{v}");
            (
                o["version"].as_str().unwrap().to_owned(),
                o["create_time"].as_str().unwrap().to_owned(),
                o["active"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(lines, from_json);
    // Oldest first, exactly one ACTIVE.
    assert!(lines.windows(2).all(|w| w[0].1 <= w[1].1), "{lines:?}");
    assert_eq!(lines.iter().filter(|v| v.2).count(), 1, "{lines:?}");
    lines
}

#[tokio::test]
async fn list_versions_and_describe_on_envseal_and_mpl_tables() {
    let kms_key = create_key("us-east-1").await;
    let f = Files::new();
    let d = f.path();
    let ours = format!("cli-list-{}", std::process::id());
    let theirs = format!("cli-list-mpl-{}", std::process::id());

    // envseal's table: a key versioned three times; each new version is
    // listed, the newest ACTIVE.
    stdout(
        d,
        &strings(&["key-store", "create-table", "--key-store-table", &ours]),
    );
    let id = stdout(d, &key_store_args("create-key", &ours, &kms_key, &[]))
        .trim()
        .to_owned();
    let mut made = Vec::new();
    for _ in 0..3 {
        let v = stdout(
            d,
            &key_store_args("version-key", &ours, &kms_key, &["--branch-key-id", &id]),
        );
        made.push(v.trim().to_owned());
    }
    let listed = list(d, &ours, &kms_key, &id);
    assert_eq!(listed.len(), 4, "{listed:?}");
    let versions: Vec<&str> = listed.iter().map(|v| v.0.as_str()).collect();
    assert_eq!(
        versions[1..],
        made.iter().map(String::as_str).collect::<Vec<_>>()[..]
    );
    assert_eq!(listed.iter().find(|v| v.2).unwrap().0, made[2]);

    // The MPL's table and key, versioned three times by the MPL: the
    // ACTIVE version listed is the one the MPL reads as active, and every
    // version listed is one the MPL reads.
    let store = |cmd: &str| strings(&[cmd, "--table", &theirs, "--kms-key", &kms_key]);
    let mut jobs = vec![
        strings(&["create-table", "--table", &theirs]),
        store("create-key"),
    ];
    let created = reference(d, &jobs);
    assert!(created.iter().all(Result::is_ok), "{created:?}");
    let mpl_id = created[1].clone().unwrap();
    jobs.clear();
    for _ in 0..3 {
        let mut job = store("version-key");
        job.extend(strings(&["--branch-key-id", &mpl_id]));
        jobs.push(job);
    }
    let mut active = store("get-active");
    active.extend(strings(&["--branch-key-id", &mpl_id]));
    jobs.push(active);
    let done = reference(d, &jobs);
    assert!(done.iter().all(Result::is_ok), "{done:?}");
    let mpl_active: serde_json::Value = serde_json::from_str(done[3].as_ref().unwrap()).unwrap();
    let listed = list(d, &theirs, &kms_key, &mpl_id);
    assert_eq!(listed.len(), 4, "{listed:?}");
    assert_eq!(
        listed.iter().find(|v| v.2).unwrap().0,
        mpl_active["version"].as_str().unwrap()
    );
    let reads: Vec<Vec<String>> = listed
        .iter()
        .map(|(version, _, _)| {
            let mut job = store("get-version");
            job.extend(strings(&["--branch-key-id", &mpl_id, "--version", version]));
            job
        })
        .collect();
    let read = reference(d, &reads);
    for (r, (version, _, _)) in read.iter().zip(&listed) {
        let m: serde_json::Value = serde_json::from_str(r.as_ref().unwrap()).unwrap();
        assert_eq!(m["version"].as_str().unwrap(), version);
    }

    // Every Query was checked by DynamoDB's validators, none refused.
    for t in [&ours, &theirs] {
        let counts = common::moto::ddb_checked(t);
        assert_eq!(counts.get("Query"), Some(&(2, 0)), "{t}: {counts:?}");
    }

    // An unknown branch key: one line naming the call, exit 1, nothing on
    // stdout; --kms-stats counts the Query.
    let args = key_store_args("list-versions", &ours, &kms_key, &["--branch-key-id", "nope"]);
    let out = envseal_ddb(d, &args.iter().map(String::as_str).collect::<Vec<_>>());
    let err = fails(&out);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    assert!(
        err.contains("DynamoDB Query branch key nope: not found after 1 attempt in ")
            && err.contains(&format!("no items in table {ours} (no such branch key)")),
        "{err}"
    );
    let mut args = args;
    args.push("--kms-stats".into());
    let out = envseal_ddb(d, &args.iter().map(String::as_str).collect::<Vec<_>>());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(
            "dynamodb: calls=1 (GetItem=0 TransactWriteItems=0 DescribeTable=0 CreateTable=0 Query=1)"
        ),
        "{err}"
    );

    // describe: the MPL's GetKeyStoreInfo, field for field, for the same
    // id, table, logical name, KMS key and grant tokens.
    let info = |json: bool| {
        let mut more = vec!["--key-store-id", "store-7", "--key-store-name", "logical-7"];
        more.extend(["--grant-token", "gt-1", "--grant-token", "gt-2"]);
        if json {
            more.push("--json");
        }
        stdout(d, &key_store_args("describe", &theirs, &kms_key, &more))
    };
    let ours_info: serde_json::Value = serde_json::from_str(&info(true)).unwrap();
    let mut job = store("get-info");
    job.extend(strings(&["--id", "store-7", "--logical-name", "logical-7"]));
    job.extend(strings(&["--grant-token", "gt-1", "--grant-token", "gt-2"]));
    let theirs_info = reference(d, &[job]);
    let theirs_info: serde_json::Value = serde_json::from_str(theirs_info[0].as_ref().unwrap()).unwrap();
    assert_eq!(ours_info, theirs_info);
    assert_eq!(
        info(false),
        format!(
            "key_store_id: store-7\nkey_store_name: {theirs}\nlogical_key_store_name: logical-7\n\
             kms_key_arn: {kms_key}\ngrant_tokens: gt-1 gt-2\n"
        )
    );
}

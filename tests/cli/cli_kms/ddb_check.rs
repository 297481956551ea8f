//! `envseal key-store` against moto through the DynamoDB checker
//! (tests/common/moto.rs): the CLI's DynamoDB requests pass DynamoDB's own
//! validation, and the checker's counts show they were checked.

use super::*;

/// create-table, create-key (a random id, and a chosen id with a context)
/// and version-key: every DynamoDB request checked, none refused (before
/// the key store wrote its conditions with placeholders, create-key's
/// TransactWriteItems was refused as real DynamoDB refuses it).
#[tokio::test]
async fn key_store_commands_pass_dynamodb_validation() {
    let kms_key = create_key("us-east-1").await;
    let f = Files::new();
    let table = format!("cli-checked-{}", std::process::id());
    let t = table.as_str();
    ok(&envseal_ddb(
        f.path(),
        &["key-store", "create-table", "--key-store-table", t],
    ));
    let run = |args: Vec<String>| {
        let out = envseal_ddb(f.path(), &args.iter().map(String::as_str).collect::<Vec<_>>());
        ok(&out);
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    };
    let random = run(key_store_args("create-key", t, &kms_key, &[]));
    assert_eq!(random.len(), 36, "{random:?}");
    let chosen = run(key_store_args(
        "create-key",
        t,
        &kms_key,
        &["--branch-key-id", "cli-checked", "--context", "tenant=cli"],
    ));
    assert_eq!(chosen, "cli-checked");
    for id in [random.as_str(), "cli-checked"] {
        let version = run(key_store_args(
            "version-key",
            t,
            &kms_key,
            &["--branch-key-id", id],
        ));
        assert_eq!(version.len(), 36, "{version:?}");
    }
    let counts = common::moto::ddb_checked(t);
    let n = |op: &str| counts.get(op).copied().unwrap_or((0, 0));
    assert_eq!(n("CreateTable"), (1, 0), "{counts:?}");
    assert_eq!(n("TransactWriteItems"), (4, 0), "{counts:?}");
    assert!(n("GetItem").0 >= 2 && n("GetItem").1 == 0, "{counts:?}");
    assert!(counts.values().all(|(_, refused)| *refused == 0), "{counts:?}");
}

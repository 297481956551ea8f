//! Every DynamoDB request of the key store flow passes DynamoDB's own
//! validation: the tests reach moto through the DynamoDB checker
//! (tests/ddb-check/proxy.js, dynalite's validators), which refuses what
//! real DynamoDB refuses (moto accepts it). These tests assert that the
//! requests were checked (the checker's counts for the test's table), that
//! the Python Material Providers Library's own requests pass (the checker
//! is right), and that an inline attribute name with a hyphen is refused
//! with DynamoDB's message (the check can fail).

use std::collections::BTreeMap;

use aws_sdk_dynamodb as ddb;
use ddb::error::ProvideErrorMetadata;
use ddb::types::{AttributeValue, Put, TransactWriteItem};

use super::*;

/// The checker's counts for `table`, with no request refused.
fn checked_none_refused(table: &str) -> BTreeMap<String, u64> {
    let counts = moto::ddb_checked(table);
    for (op, (_, refused)) in &counts {
        assert_eq!(*refused, 0, "{op} requests on {table} refused: {counts:?}");
    }
    counts.into_iter().map(|(op, (n, _))| (op, n)).collect()
}

fn at_least(counts: &BTreeMap<String, u64>, op: &str, n: u64) {
    let got = counts.get(op).copied().unwrap_or(0);
    assert!(got >= n, "{op}: {got} requests checked, want >= {n}: {counts:?}");
}

/// envseal's whole key store flow, and messages both ways with the Python
/// MPL on its keys: create the table, a branch key with a random id and one
/// with a chosen id and an encryption context, version both, encrypt and
/// decrypt. Every DynamoDB request is checked and none refused (before the
/// fix, the create_key TransactWriteItems was refused: `Invalid
/// ConditionExpression: Syntax error; token: "-", near: "branch-key"`).
#[tokio::test]
async fn the_key_store_flow_passes_dynamodb_validation() {
    let kms_key = create_key(REGION).await;
    let t = table("checked");
    let store = store(&t, &kms_key).await;
    let random = store.create_key(None, &EncryptionContext::new()).await.unwrap();
    let chosen = store
        .create_key(
            Some("checked-tenant"),
            &EncryptionContext::from([("tenant", "acme")]),
        )
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for id in [&random, &chosen] {
        let before = store.get_active_branch_key(id).await.unwrap();
        let version = store.version_key(id).await.unwrap();
        assert_ne!(version, before.version());
        assert_eq!(store.get_active_branch_key(id).await.unwrap().version(), version);
        let keyring = keyring(&store, id, Duration::from_secs(60));
        let message = seal(&keyring, b"checked").await.unwrap();
        assert_eq!(edk_versions(&message), [(id.clone(), version_bytes(&version))]);
        assert_eq!(*open(&keyring, &message).await.unwrap().plaintext, b"checked");
        write_with_context(&d.join(format!("{id}.msg")), &message);
        write_with_context(&d.join(format!("{id}.plain")), b"from python");
    }
    let mut jobs = Vec::new();
    for id in [&random, &chosen] {
        let file = |ext: &str| d.join(format!("{id}.{ext}"));
        jobs.push(crypt_job(
            "decrypt",
            &t,
            &kms_key,
            id,
            &file("msg"),
            &file("out"),
            None,
        ));
        jobs.push(crypt_job(
            "encrypt",
            &t,
            &kms_key,
            id,
            &file("plain"),
            &file("py"),
            Some("0478"),
        ));
    }
    for (n, r) in reference(d, &jobs).into_iter().enumerate() {
        r.unwrap_or_else(|e| panic!("reference job {n}: {e}"));
    }
    for id in [&random, &chosen] {
        assert_eq!(std::fs::read(d.join(format!("{id}.out"))).unwrap(), b"checked");
        let keyring = keyring(&store, id, Duration::from_secs(60));
        let py = std::fs::read(d.join(format!("{id}.py"))).unwrap();
        assert_eq!(*open(&keyring, &py).await.unwrap().plaintext, b"from python");
    }
    let counts = checked_none_refused(&t);
    at_least(&counts, "DescribeTable", 1);
    at_least(&counts, "CreateTable", 1);
    // Two creates and two versions; GetItem: ACTIVE and version reads of
    // both sides.
    at_least(&counts, "TransactWriteItems", 4);
    at_least(&counts, "GetItem", 8);
}

/// The Python MPL's own flow (its CreateKeyStore, CreateKey with a random
/// and a chosen id, VersionKey, GetActiveBranchKey, GetBranchKeyVersion)
/// through the same checker: accepted, so the checker refuses only what
/// DynamoDB refuses.
#[tokio::test]
async fn the_python_material_providers_library_passes_the_checker() {
    let kms_key = create_key(REGION).await;
    let t = table("py-checked");
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let random = python_keys(d, &t, &kms_key, "py-checked", &["tenant=py"]);
    let mut jobs = Vec::new();
    for id in [random.as_str(), "py-checked"] {
        jobs.push(store_args("version-key", &t, &kms_key, id));
        jobs.push(store_args("get-active", &t, &kms_key, id));
    }
    let out = reference(d, &jobs);
    assert!(out.iter().all(Result::is_ok), "{out:?}");
    for r in [&out[1], &out[3]] {
        let json: Value = serde_json::from_str(r.as_ref().unwrap()).unwrap();
        let id = json["branch_key_id"].as_str().unwrap();
        let version = json["version"].as_str().unwrap();
        let read = reference(
            d,
            &[{
                let mut v = store_args("get-version", &t, &kms_key, id);
                v.extend(args(&["--version", version]));
                v
            }],
        );
        let again: Value = serde_json::from_str(read[0].as_ref().unwrap()).unwrap();
        assert_eq!(again["branch_key_hex"], json["branch_key_hex"]);
    }
    let counts = checked_none_refused(&t);
    at_least(&counts, "DescribeTable", 1);
    at_least(&counts, "CreateTable", 1);
    at_least(&counts, "TransactWriteItems", 4);
    at_least(&counts, "GetItem", 6);
}

/// The condition envseal wrote before the fix, `attribute_not_exists(
/// branch-key-id)`, sent with the plain SDK client: refused by the checker
/// with DynamoDB's ValidationException text, counted as refused, and never
/// written (moto would have accepted it).
#[tokio::test]
async fn an_inline_hyphenated_attribute_name_is_refused_as_dynamodb_does() {
    let kms_key = create_key(REGION).await;
    let t = table("refused");
    store(&t, &kms_key).await;
    let client = ddb::Client::new(&moto::sdk_config(REGION, &moto().url));
    let item = |id: &str| {
        [
            ("branch-key-id", AttributeValue::S(id.to_owned())),
            ("type", AttributeValue::S("branch:ACTIVE".to_owned())),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect::<std::collections::HashMap<_, _>>()
    };
    let want = "Invalid ConditionExpression: Syntax error; token: \"-\", near: \"branch-key\"";

    let put = Put::builder()
        .table_name(&t)
        .set_item(Some(item("inline")))
        .condition_expression("attribute_not_exists(branch-key-id)")
        .build()
        .unwrap();
    let err = client
        .transact_write_items()
        .transact_items(TransactWriteItem::builder().put(put).build())
        .send()
        .await
        .unwrap_err();
    let err = err.into_service_error();
    assert_eq!(err.code(), Some("ValidationException"), "{err:?}");
    assert_eq!(err.message(), Some(want), "{err:?}");

    let err = client
        .put_item()
        .table_name(&t)
        .set_item(Some(item("inline")))
        .condition_expression("attribute_exists(branch-key-id) AND enc = :encOld")
        .expression_attribute_values(":encOld", AttributeValue::B(vec![1, 2].into()))
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert_eq!(err.code(), Some("ValidationException"), "{err:?}");
    assert_eq!(err.message(), Some(want), "{err:?}");

    // The same write with placeholders, as the key store writes it, passes.
    let put = Put::builder()
        .table_name(&t)
        .set_item(Some(item("placeholders")))
        .condition_expression("attribute_not_exists(#BranchKeyIdentifierField)")
        .expression_attribute_names("#BranchKeyIdentifierField", "branch-key-id")
        .build()
        .unwrap();
    client
        .transact_write_items()
        .transact_items(TransactWriteItem::builder().put(put).build())
        .send()
        .await
        .unwrap();

    let got = client
        .get_item()
        .table_name(&t)
        .key("branch-key-id", AttributeValue::S("inline".to_owned()))
        .key("type", AttributeValue::S("branch:ACTIVE".to_owned()))
        .send()
        .await
        .unwrap();
    assert!(got.item.is_none(), "a refused request never reaches moto");
    let counts = moto::ddb_checked(&t);
    assert_eq!(counts["TransactWriteItems"], (2, 1), "{counts:?}");
    assert_eq!(counts["PutItem"], (1, 1), "{counts:?}");
}

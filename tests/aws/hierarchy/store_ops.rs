//! The branch key store's remaining operations (spec
//! `framework/branch-key-store.md`): CreateKeyStore on a table that exists
//! with key attributes of the wrong types, GetBeaconKey and
//! GetKeyStoreInfo, each against the Python Material Providers Library on
//! the same moto tables; and branch key bytes that stay in one heap
//! allocation.

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
};

use super::*;

/// A table made with the plain SDK: `branch-key-id` hash and `type` range
/// keys of the given attribute types.
async fn raw_table(name: &str, id_type: ScalarAttributeType, type_type: ScalarAttributeType) {
    let ddb = aws_sdk_dynamodb::Client::new(&moto::sdk_config(REGION, &moto().url));
    let key = |n: &str, k: KeyType| {
        KeySchemaElement::builder()
            .attribute_name(n)
            .key_type(k)
            .build()
            .unwrap()
    };
    let def = |n: &str, t: ScalarAttributeType| {
        AttributeDefinition::builder()
            .attribute_name(n)
            .attribute_type(t)
            .build()
            .unwrap()
    };
    ddb.create_table()
        .table_name(name)
        .key_schema(key("branch-key-id", KeyType::Hash))
        .key_schema(key("type", KeyType::Range))
        .attribute_definitions(def("branch-key-id", id_type))
        .attribute_definitions(def("type", type_type))
        .billing_mode(BillingMode::PayPerRequest)
        .send()
        .await
        .unwrap();
}

/// CreateKeyStore on an existing table checks the key attributes' types
/// too: a `branch-key-id` of type N or a `type` of type B is refused (as
/// the Python library refuses it), two strings are accepted.
#[tokio::test]
async fn create_table_refuses_key_attributes_that_are_not_strings() {
    use ScalarAttributeType::{B, N, S};
    let cases = [
        ("n-id", N, S, false),
        ("b-type", S, B, false),
        ("right", S, S, true),
    ];
    let dir = tempfile::tempdir().unwrap();
    let mut jobs = Vec::new();
    for (name, id_type, type_type, ok) in cases {
        let t = table(name);
        raw_table(&t, id_type, type_type).await;
        let store = KeyStore::table_builder(&t)
            .kms_client(kms_client(AwsBounds::default()).await)
            .build()
            .await
            .unwrap();
        let got = store.create_table().await;
        if ok {
            assert!(got.unwrap().ends_with(&format!("table/{t}")), "{name}");
        } else {
            let err = got.unwrap_err();
            assert!(
                matches!(&err, Error::Config { setting, .. } if *setting == "key store table"),
                "{name}: {err:?}"
            );
        }
        jobs.push(args(&["create-table", "--table", &t]));
    }
    let python: Vec<bool> = reference(dir.path(), &jobs).iter().map(Result::is_ok).collect();
    assert_eq!(python, [false, false, true], "the Python library agrees");
}

/// A Python job's JSON output.
fn json(out: &Result<String, String>) -> Value {
    serde_json::from_str(out.as_ref().unwrap()).unwrap()
}

fn context_of(v: &Value) -> EncryptionContext {
    v.as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
        .collect()
}

/// GetBeaconKey reads the beacon keys both sides write, alike: the Python
/// library's (random id, and its own id with a context) read by envseal,
/// envseal's read by Python, the same 32 bytes, id and custom context.
/// The key stays in one heap allocation on its way out of the store.
#[tokio::test]
async fn beacon_keys_read_alike_by_envseal_and_python() {
    let kms_key = create_key(REGION).await;
    let t = table("beacon");
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let py_random = python_keys(d, &t, &kms_key, "py-beacon", &["tenant=py"]);
    let store = store(&t, &kms_key).await;
    let rs_random = store.create_key(None, &EncryptionContext::new()).await.unwrap();
    let rs_custom = store
        .create_key(Some("rs-beacon"), &EncryptionContext::from([("tenant", "rs")]))
        .await
        .unwrap();
    let ids = [py_random, "py-beacon".to_owned(), rs_random, rs_custom];
    let contexts = [
        EncryptionContext::new(),
        EncryptionContext::from([("tenant", "py")]),
        EncryptionContext::new(),
        EncryptionContext::from([("tenant", "rs")]),
    ];
    let mut jobs = Vec::new();
    for id in &ids {
        jobs.push(store_args("get-beacon", &t, &kms_key, id));
        jobs.push(store_args("get-active", &t, &kms_key, id));
    }
    let python = reference(d, &jobs);
    for (k, id) in ids.iter().enumerate() {
        let (py, py_branch) = (json(&python[2 * k]), json(&python[2 * k + 1]));
        let ours = store.get_beacon_key(id).await.unwrap();
        assert_eq!(py["beacon_key_hex"], hex::encode(ours.expose_secret()), "{id}");
        assert_eq!(py["beacon_key_id"], id.as_str());
        assert_eq!(ours.beacon_key_id(), id);
        assert_eq!(context_of(&py["encryption_context"]), contexts[k], "{id}");
        assert_eq!(ours.encryption_context(), &contexts[k], "{id}");
        assert_ne!(
            py_branch["branch_key_hex"], py["beacon_key_hex"],
            "{id}: the beacon key is its own key"
        );
        assert!(!format!("{ours:?}").contains(&hex::encode(ours.expose_secret())));
    }

    // No beacon item: NotFound from GetItem. Another logical name: the
    // `tablename` in the KMS context differs and KMS refuses the item.
    let err = store.get_beacon_key("no-such-key").await.unwrap_err();
    let Error::Aws(e) = &err else { panic!("{err}") };
    assert_eq!(
        (e.kind.clone(), e.operation),
        (AwsErrorKind::NotFound, AwsOperation::GetItem)
    );
    let renamed = KeyStore::builder(&t, &kms_key)
        .logical_name("another-name")
        .kms_client(kms_client(AwsBounds::default()).await)
        .build()
        .await
        .unwrap();
    let err = renamed.get_beacon_key(&ids[0]).await.unwrap_err();
    let Error::Aws(e) = &err else { panic!("{err}") };
    assert_eq!(e.operation, AwsOperation::Decrypt, "{err}");

    // One heap allocation from the store to a cache: the bytes do not move
    // when the materials do.
    let branch = store.get_active_branch_key(&ids[2]).await.unwrap();
    let at = branch.expose_secret().as_ptr();
    let cached = Arc::new(*Box::new(branch));
    assert_eq!(cached.expose_secret().as_ptr(), at);
    let beacon = store.get_beacon_key(&ids[2]).await.unwrap();
    let at = beacon.expose_secret().as_ptr();
    let cached = Arc::new(*Box::new(beacon));
    assert_eq!(cached.expose_secret().as_ptr(), at);
}

/// GetKeyStoreInfo on both sides of one configuration agrees on
/// everything; a default id is a new version 4 UUID per store, on both
/// sides.
#[tokio::test]
async fn key_store_info_agrees_with_python() {
    let kms_key = create_key(REGION).await;
    let t = table("info");
    let dir = tempfile::tempdir().unwrap();
    let base = args(&[
        "get-info",
        "--table",
        &t,
        "--kms-key",
        &kms_key,
        "--logical-name",
        "logical-x",
    ]);
    let mut configured = base.clone();
    configured.extend(args(&[
        "--id",
        "ks-shared",
        "--grant-token",
        "gt-1",
        "--grant-token",
        "gt-2",
    ]));
    let python = reference(dir.path(), &[configured, base.clone(), base]);
    let build = |id: Option<&str>| {
        let (t, kms_key) = (t.clone(), kms_key.clone());
        let id = id.map(str::to_owned);
        async move {
            let mut b = KeyStore::builder(&t, &kms_key)
                .logical_name("logical-x")
                .kms_client(kms_client(AwsBounds::default()).await);
            if let Some(id) = id {
                b = b.id(id).grant_tokens(vec!["gt-1".to_owned(), "gt-2".to_owned()]);
            }
            b.build().await.unwrap().key_store_info()
        }
    };
    let ours = build(Some("ks-shared")).await;
    let py = json(&python[0]);
    assert_eq!(py["key_store_id"], ours.key_store_id.as_str());
    assert_eq!(ours.key_store_id, "ks-shared");
    assert_eq!(py["key_store_name"], ours.table_name.as_str());
    assert_eq!(ours.table_name, t);
    assert_eq!(py["logical_key_store_name"], ours.logical_name.as_str());
    assert_eq!(ours.logical_name, "logical-x");
    assert_eq!(py["grant_tokens"], serde_json::json!(ours.grant_tokens));
    assert_eq!(ours.grant_tokens, ["gt-1", "gt-2"]);
    assert_eq!(
        py["kms_configuration"],
        serde_json::json!({ "kms_key_arn": kms_key })
    );
    assert_eq!(
        ours.kms_configuration,
        Some(envseal::keystore::KmsConfiguration::KmsKeyArn(kms_key.clone()))
    );
    let debug = format!("{ours:?}");
    assert!(
        !debug.contains("gt-1") && debug.contains("<2 redacted>"),
        "{debug}"
    );

    let uuid_v4 = |id: &str| id.len() == 36 && id.as_bytes()[14] == b'4' && id.matches('-').count() == 4;
    let (a, b) = (build(None).await, build(None).await);
    let (pa, pb) = (json(&python[1]), json(&python[2]));
    let (pa, pb) = (
        pa["key_store_id"].as_str().unwrap(),
        pb["key_store_id"].as_str().unwrap(),
    );
    for id in [a.key_store_id.as_str(), b.key_store_id.as_str(), pa, pb] {
        assert!(uuid_v4(id), "{id}");
    }
    assert_ne!(a.key_store_id, b.key_store_id);
    assert_ne!(pa, pb);
    assert_eq!(pa.len(), a.key_store_id.len());
    assert!(a.grant_tokens.is_empty());
    assert_eq!(tokens_of(&python[1]), Vec::<String>::new());
    let table_only = KeyStore::table_builder(&t)
        .kms_client(kms_client(AwsBounds::default()).await)
        .build()
        .await
        .unwrap();
    assert_eq!(table_only.key_store_info().kms_configuration, None);
}

fn tokens_of(out: &Result<String, String>) -> Vec<String> {
    serde_json::from_value(json(out)["grant_tokens"].clone()).unwrap()
}

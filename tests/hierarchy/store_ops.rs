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
            .kms_client(kms_client(KmsBounds::default()).await)
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

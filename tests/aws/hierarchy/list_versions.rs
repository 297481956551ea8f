//! `KeyStore::list_versions`: a branch key's versions from one paged,
//! consistent Query (through the DynamoDB checker), with the ACTIVE one
//! marked; items of other types skipped; items that break the record
//! format, another KMS key's items and a dangling ACTIVE refused.

use std::collections::HashMap;

use aws_sdk_dynamodb as ddb;
use ddb::types::AttributeValue;

use super::*;

fn raw_client() -> ddb::Client {
    ddb::Client::new(&moto::sdk_config(REGION, &moto().url))
}

fn key(id: &str, sort_key: &str) -> HashMap<String, AttributeValue> {
    HashMap::from([
        ("branch-key-id".to_owned(), AttributeValue::S(id.to_owned())),
        ("type".to_owned(), AttributeValue::S(sort_key.to_owned())),
    ])
}

/// Puts a 390 KB item of a type that is not a version (as a newer
/// library's records in the same partition would be).
async fn put_bulky_other_item(t: &str, id: &str, n: usize) {
    let mut item = key(id, &format!("branch:MUTATION_INDEX:{n}"));
    item.insert("blob".into(), AttributeValue::B(vec![7u8; 390_000].into()));
    raw_client()
        .put_item()
        .table_name(t)
        .set_item(Some(item))
        .send()
        .await
        .unwrap();
}

#[tokio::test]
async fn versions_listed_over_pages_with_the_active_one_marked() {
    let f = fixture("list").await;
    let mut made = Vec::new();
    for _ in 0..2 {
        made.push(f.store.version_key(&f.id).await.unwrap());
    }
    // Over 1 MB of other items in the partition: the Query takes several
    // pages (DynamoDB's and moto's page limit), and skips them.
    for n in 0..4 {
        put_bulky_other_item(&f.table, &f.id, n).await;
    }
    let before = f.store.stats().query_calls;
    let listed = f.store.list_versions(&f.id).await.unwrap();
    let pages = f.store.stats().query_calls - before;
    assert!(pages >= 2, "{pages} pages");
    assert_eq!(listed.len(), 3, "{listed:?}");
    assert_eq!(listed[1].version, made[0]);
    assert_eq!(listed[2].version, made[1]);
    let active: Vec<bool> = listed.iter().map(|v| v.active).collect();
    assert_eq!(active, [false, false, true]);
    assert!(listed.windows(2).all(|w| w[0].create_time <= w[1].create_time));
    // The active one is the one the store reads as active.
    let materials = f.store.get_active_branch_key(&f.id).await.unwrap();
    assert_eq!(materials.version(), made[1]);
    let counts = common::moto::ddb_checked(&f.table);
    assert_eq!(counts.get("Query").map(|c| c.1), Some(0), "{counts:?}");
    assert_eq!(counts["Query"].0, pages, "every page checked: {counts:?}");

    // No such branch key: NotFound, naming the table.
    let err = f.store.list_versions("nope").await.unwrap_err();
    let Error::Aws(e) = &err else { panic!("{err}") };
    assert_eq!(
        (e.kind.clone(), e.operation),
        (AwsErrorKind::NotFound, AwsOperation::Query),
        "{err}"
    );
    assert!(err.to_string().contains(&f.table), "{err}");
}

#[tokio::test]
async fn hostile_items_are_refused() {
    let f = fixture("list-bad").await;
    let second = f.store.version_key(&f.id).await.unwrap();
    let invalid = |err: Error| {
        let Error::Aws(e) = &err else { panic!("{err}") };
        assert_eq!(
            (e.kind.clone(), e.operation),
            (AwsErrorKind::InvalidResponse, AwsOperation::Query),
            "{err}"
        );
        err.to_string()
    };

    // A store on the same table with another KMS key: its key's items are
    // not this store's.
    let other_key = create_key(REGION).await;
    let other = store(&f.table, &other_key).await;
    let msg = invalid(other.list_versions(&f.id).await.unwrap_err());
    assert!(msg.contains("is not the key store's KMS key"), "{msg}");

    // A version item without `enc`: the record format's checks.
    let client = raw_client();
    let version_item = format!("branch:version:{second}");
    let got = client
        .get_item()
        .table_name(&f.table)
        .set_key(Some(key(&f.id, &version_item)))
        .send()
        .await
        .unwrap()
        .item
        .unwrap();
    let mut broken = got.clone();
    broken.remove("enc");
    client
        .put_item()
        .table_name(&f.table)
        .set_item(Some(broken))
        .send()
        .await
        .unwrap();
    let msg = invalid(f.store.list_versions(&f.id).await.unwrap_err());
    assert!(
        msg.contains(&format!("item {version_item}")) && msg.contains("enc"),
        "{msg}"
    );

    // The ACTIVE item names a version that has no version item.
    client
        .delete_item()
        .table_name(&f.table)
        .set_key(Some(key(&f.id, &version_item)))
        .send()
        .await
        .unwrap();
    let msg = invalid(f.store.list_versions(&f.id).await.unwrap_err());
    assert!(
        msg.contains(&format!("names version {second}, which has no version item")),
        "{msg}"
    );

    // Restored, the listing works again.
    client
        .put_item()
        .table_name(&f.table)
        .set_item(Some(got))
        .send()
        .await
        .unwrap();
    let listed = f.store.list_versions(&f.id).await.unwrap();
    assert_eq!(listed.iter().map(|v| v.active).collect::<Vec<_>>(), [false, true]);
}

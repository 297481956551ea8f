//! The key store's DynamoDB calls, each run by the call engine under the
//! same bounds as KMS calls, and the conversion between the SDK's item
//! maps and [`Item`].

use std::collections::HashMap;
use std::time::{Duration, Instant};

use aws_sdk_dynamodb as ddb;
use ddb::primitives::Blob;
use ddb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType, Put, ScalarAttributeType,
    TransactWriteItem,
};

use super::items::{Attr, Item, BRANCH_KEY_ID, ENC, TYPE};
use crate::kms::{bounded_config, AwsError, AwsErrorKind, AwsOperation, Call, Deadline, Engine};

bounded_config!(aws_sdk_dynamodb);

/// What a read answered (an item from `GetItem`, the items of a `Query`),
/// with the calls' operation, attempts and time (for the errors of checks
/// made on it).
pub(super) struct Fetched<T = Item> {
    pub(super) item: T,
    op: AwsOperation,
    attempts: u32,
    elapsed: Duration,
}

impl<T> Fetched<T> {
    /// An error about what was read, as a failure of the call that read it.
    pub(super) fn error(&self, kind: AwsErrorKind, branch_key_id: &str, message: String) -> AwsError {
        let mut e = AwsError::new(kind, self.op, branch_key_id).with_message(message);
        e.attempts = self.attempts;
        e.elapsed = self.elapsed;
        e
    }
}

/// A conditional put of one item in a transaction.
pub(super) struct ConditionalPut {
    pub(super) item: Item,
    pub(super) condition: Condition,
}

/// The condition of a put, as DynamoDB takes it: attribute names only
/// through `ExpressionAttributeNames` placeholders (in DynamoDB's
/// expression grammar the hyphen of `branch-key-id` is the minus operator,
/// so the inline name is refused with `Invalid ConditionExpression: Syntax
/// error; token: "-"`), values only through `ExpressionAttributeValues`.
/// The placeholder of the partition key is the Material Providers
/// Library's, `#BranchKeyIdentifierField` (its DDBKeystoreOperations).
///
/// Spec: `framework/branch-key-store.md` (CreateKey, VersionKey) and
/// `framework/key-store/dynamodb-key-storage.md`.
pub(super) enum Condition {
    /// No item with the put's key yet: `attribute_not_exists(branch-key-id)`
    /// (every CreateKey item, and VersionKey's new version item).
    NotExists,
    /// The item exists and its `enc` is still this, the ciphertext read
    /// (VersionKey's ACTIVE item): `attribute_exists(branch-key-id) AND
    /// enc = :encOld`.
    EncUnchanged(Vec<u8>),
}

const BRANCH_KEY_ID_NAME: &str = "#BranchKeyIdentifierField";
const BRANCH_KEY_ID_VALUE: &str = ":branchKeyId";
const ENC_NAME: &str = "#EncField";
const ENC_OLD_VALUE: &str = ":encOld";

impl Condition {
    /// The `ConditionExpression`, which names attributes and values only
    /// by their placeholders.
    fn expression(&self) -> String {
        match self {
            Self::NotExists => format!("attribute_not_exists({BRANCH_KEY_ID_NAME})"),
            Self::EncUnchanged(_) => {
                format!("attribute_exists({BRANCH_KEY_ID_NAME}) AND {ENC_NAME} = {ENC_OLD_VALUE}")
            }
        }
    }

    /// `ExpressionAttributeNames`: every placeholder the expression uses
    /// (DynamoDB refuses unused ones too).
    fn names(&self) -> HashMap<String, String> {
        let mut names = HashMap::from([(BRANCH_KEY_ID_NAME.to_owned(), BRANCH_KEY_ID.to_owned())]);
        if let Self::EncUnchanged(_) = self {
            names.insert(ENC_NAME.to_owned(), ENC.to_owned());
        }
        names
    }

    /// `ExpressionAttributeValues`, `None` when the expression has none
    /// (DynamoDB refuses an empty map).
    fn values(self) -> Option<HashMap<String, AttributeValue>> {
        match self {
            Self::NotExists => None,
            Self::EncUnchanged(old) => Some(HashMap::from([(
                ENC_OLD_VALUE.to_owned(),
                AttributeValue::B(Blob::new(old)),
            )])),
        }
    }
}

/// The DynamoDB client of one key store and the engine its calls run on.
pub(super) struct Table {
    pub(super) client: ddb::Client,
    pub(super) engine: Engine,
    pub(super) name: String,
    pub(super) region: Option<String>,
}

fn to_sdk(item: Item) -> HashMap<String, AttributeValue> {
    item.into_iter()
        .map(|(k, v)| {
            let v = match v {
                Attr::S(s) => AttributeValue::S(s),
                Attr::N(n) => AttributeValue::N(n),
                Attr::B(b) => AttributeValue::B(Blob::new(b)),
            };
            (k, v)
        })
        .collect()
}

/// The SDK's item as [`Item`]; attributes of other types are refused (the
/// record format has none, and each one would be authenticated).
fn from_sdk(item: HashMap<String, AttributeValue>) -> Result<Item, String> {
    item.into_iter()
        .map(|(k, v)| {
            let v = match v {
                AttributeValue::S(s) => Attr::S(s),
                AttributeValue::N(n) => Attr::N(n),
                AttributeValue::B(b) => Attr::B(b.into_inner()),
                _ => {
                    return Err(format!(
                        "attribute `{k}` has a type the record format does not use"
                    ))
                }
            };
            Ok((k, v))
        })
        .collect()
}

impl Table {
    fn call<'a>(&'a self, op: AwsOperation, target: &'a str, deadline: Deadline) -> Call<'a> {
        Call {
            op,
            target,
            region: self.region.as_deref(),
            deadline,
        }
    }

    /// `GetItem(branch-key-id, type)`: the item, or a `NotFound` error
    /// (with the call's attempts and time) when there is none.
    pub(super) async fn get_item(
        &self,
        branch_key_id: &str,
        sort_key: &str,
        deadline: Deadline,
    ) -> Result<Fetched, AwsError> {
        let op = AwsOperation::GetItem;
        let request = self
            .client
            .get_item()
            .table_name(&self.name)
            .key(BRANCH_KEY_ID, AttributeValue::S(branch_key_id.to_owned()))
            .key(TYPE, AttributeValue::S(sort_key.to_owned()));
        let call = self.call(op, branch_key_id, deadline);
        let started = Instant::now();
        let (out, attempts) = self
            .engine
            .run_counted(&call, |cfg: ddb::config::Builder| {
                request.clone().customize().config_override(cfg).send()
            })
            .await;
        let fetched = Fetched {
            item: Item::new(),
            op,
            attempts,
            elapsed: started.elapsed(),
        };
        let what = match sort_key {
            super::items::TYPE_ACTIVE => "no such branch key",
            super::items::TYPE_BEACON => "no beacon key for this branch key",
            _ => "no such branch key version",
        };
        match out?.item {
            None => Err(fetched.error(
                AwsErrorKind::NotFound,
                branch_key_id,
                format!("no item {sort_key} in table {} ({what})", self.name),
            )),
            Some(item) => match from_sdk(item) {
                Ok(item) => Ok(Fetched { item, ..fetched }),
                Err(m) => Err(fetched.error(AwsErrorKind::InvalidResponse, branch_key_id, m)),
            },
        }
    }

    /// `Query` of one branch key's partition (`#BranchKeyIdentifierField =
    /// :branchKeyId`, placeholders as in the puts), with strongly
    /// consistent reads (a version just made is listed) and every page
    /// (each at most 1 MB), all under one deadline: every item of the
    /// branch key, in `type` order, with the pages' attempts and time.
    pub(super) async fn query_branch_key(
        &self,
        branch_key_id: &str,
        deadline: Deadline,
    ) -> Result<Fetched<Vec<Item>>, AwsError> {
        let op = AwsOperation::Query;
        let query = self
            .client
            .query()
            .table_name(&self.name)
            .key_condition_expression(format!("{BRANCH_KEY_ID_NAME} = {BRANCH_KEY_ID_VALUE}"))
            .expression_attribute_names(BRANCH_KEY_ID_NAME, BRANCH_KEY_ID)
            .expression_attribute_values(BRANCH_KEY_ID_VALUE, AttributeValue::S(branch_key_id.to_owned()))
            .consistent_read(true);
        let started = Instant::now();
        let mut fetched = Fetched {
            item: Vec::new(),
            op,
            attempts: 0,
            elapsed: Duration::ZERO,
        };
        let mut start: Option<HashMap<String, AttributeValue>> = None;
        loop {
            let request = query.clone().set_exclusive_start_key(start.clone());
            let call = self.call(op, branch_key_id, deadline);
            let (out, attempts) = self
                .engine
                .run_counted(&call, |cfg: ddb::config::Builder| {
                    request.clone().customize().config_override(cfg).send()
                })
                .await;
            let out = out?;
            fetched.attempts += attempts;
            fetched.elapsed = started.elapsed();
            for item in out.items.unwrap_or_default() {
                let item = from_sdk(item)
                    .map_err(|m| fetched.error(AwsErrorKind::InvalidResponse, branch_key_id, m))?;
                fetched.item.push(item);
            }
            match out.last_evaluated_key {
                Some(next) if !next.is_empty() => {
                    // A page must move on: the same key again would loop
                    // until the deadline.
                    if start.as_ref() == Some(&next) {
                        let m = "a Query page ended where it started".into();
                        return Err(fetched.error(AwsErrorKind::InvalidResponse, branch_key_id, m));
                    }
                    start = Some(next);
                }
                _ => return Ok(fetched),
            }
        }
    }

    /// `TransactWriteItems` of conditional puts, all or none.
    pub(super) async fn put_all(
        &self,
        branch_key_id: &str,
        puts: Vec<ConditionalPut>,
        deadline: Deadline,
    ) -> Result<(), AwsError> {
        let op = AwsOperation::TransactWriteItems;
        let invalid = |m: String| AwsError::new(AwsErrorKind::Other, op, branch_key_id).with_message(m);
        let mut request = self.client.transact_write_items();
        for put in puts {
            let put = Put::builder()
                .table_name(&self.name)
                .set_item(Some(to_sdk(put.item)))
                .condition_expression(put.condition.expression())
                .set_expression_attribute_names(Some(put.condition.names()))
                .set_expression_attribute_values(put.condition.values())
                .build()
                .map_err(|e| invalid(e.to_string()))?;
            request = request.transact_items(TransactWriteItem::builder().put(put).build());
        }
        let call = self.call(op, branch_key_id, deadline);
        self.engine
            .run(&call, |cfg: ddb::config::Builder| {
                request.clone().customize().config_override(cfg).send()
            })
            .await
            .map_err(|mut e| {
                if e.kind == AwsErrorKind::ConditionFailed && e.message.is_none() {
                    e.message = Some(
                        "a conditional check failed: the branch key exists already, or its ACTIVE item \
                         changed since it was read"
                            .into(),
                    );
                }
                e
            })?;
        Ok(())
    }

    /// `DescribeTable`: the table's ARN and whether its key schema is the
    /// key store's (`branch-key-id` hash and `type` range keys, both of
    /// type `S`); `None` when there is no such table.
    pub(super) async fn describe(&self, deadline: Deadline) -> Result<Option<(String, bool)>, AwsError> {
        let request = self.client.describe_table().table_name(&self.name);
        let call = self.call(AwsOperation::DescribeTable, &self.name, deadline);
        let out = self
            .engine
            .run(&call, |cfg: ddb::config::Builder| {
                request.clone().customize().config_override(cfg).send()
            })
            .await;
        let out = match out {
            Ok(out) => out,
            Err(e) if e.kind == AwsErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let Some(table) = out.table else {
            return Ok(None);
        };
        let schema: Vec<(&str, &KeyType)> = table
            .key_schema()
            .iter()
            .map(|k| (k.attribute_name(), k.key_type()))
            .collect();
        // Spec (branch-key-store.md "KeySchema"): both key attributes are
        // strings; other attribute definitions (an index's) may be there.
        let defs: Vec<(&str, &ScalarAttributeType)> = table
            .attribute_definitions()
            .iter()
            .map(|d| (d.attribute_name(), d.attribute_type()))
            .collect();
        let matches = schema.len() == 2
            && schema.contains(&(BRANCH_KEY_ID, &KeyType::Hash))
            && schema.contains(&(TYPE, &KeyType::Range))
            && defs.contains(&(BRANCH_KEY_ID, &ScalarAttributeType::S))
            && defs.contains(&(TYPE, &ScalarAttributeType::S));
        Ok(Some((table.table_arn.unwrap_or_default(), matches)))
    }

    /// `CreateTable` with the key store's key schema (on-demand capacity);
    /// returns the table's ARN.
    #[allow(clippy::result_large_err)] // as `Engine::finish`: made once per failed call
    pub(super) async fn create(&self, deadline: Deadline) -> Result<String, AwsError> {
        let op = AwsOperation::CreateTable;
        let invalid = |m: String| AwsError::new(AwsErrorKind::Other, op, &self.name).with_message(m);
        let key = |name: &str, kind: KeyType| {
            KeySchemaElement::builder()
                .attribute_name(name)
                .key_type(kind)
                .build()
                .map_err(|e| invalid(e.to_string()))
        };
        let def = |name: &str| {
            AttributeDefinition::builder()
                .attribute_name(name)
                .attribute_type(ScalarAttributeType::S)
                .build()
                .map_err(|e| invalid(e.to_string()))
        };
        let request = self
            .client
            .create_table()
            .table_name(&self.name)
            .key_schema(key(BRANCH_KEY_ID, KeyType::Hash)?)
            .key_schema(key(TYPE, KeyType::Range)?)
            .attribute_definitions(def(BRANCH_KEY_ID)?)
            .attribute_definitions(def(TYPE)?)
            .billing_mode(BillingMode::PayPerRequest);
        let call = self.call(op, &self.name, deadline);
        let out = self
            .engine
            .run(&call, |cfg: ddb::config::Builder| {
                request.clone().customize().config_override(cfg).send()
            })
            .await?;
        Ok(out
            .table_description
            .and_then(|t| t.table_arn)
            .unwrap_or_default())
    }
}

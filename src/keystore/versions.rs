//! The versions of a branch key, read from its items without unwrapping
//! any: which versions it has, when each was made and which is ACTIVE
//! (`envseal key-store list-versions`). The Material Providers Library has
//! no such operation; this one reads the items its key store writes
//! (spec: `framework/branch-key-store.md`, "Record Format").

use super::items::{check_item, ItemType, CREATE_TIME, TYPE, TYPE_ACTIVE, VERSION_PREFIX};
use super::{Attr, KeyStore};
use crate::error::{Error, Result};
use crate::kms::AwsErrorKind;

/// One version of a branch key, as its items record it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct BranchKeyVersion {
    /// The version: a UUID, as stored (`branch:version:<uuid>`).
    pub version: String,
    /// When the version was made: its item's `create-time` (ISO 8601,
    /// UTC), as stored.
    pub create_time: String,
    /// Whether it is the ACTIVE version, the one new messages use (exactly
    /// one version is).
    pub active: bool,
}

impl KeyStore {
    /// Every version of a branch key, oldest first (by `create-time`, then
    /// version), with the ACTIVE one marked: one DynamoDB `Query` of the
    /// branch key's items (page after page, strongly consistent), bounded
    /// like every call and under one deadline. No KMS call is made.
    ///
    /// Each version item and the ACTIVE item must pass the checks a read
    /// makes (record format, branch key id, this store's KMS key). They are
    /// not authenticated: [`KeyStore::get_branch_key_version`] unwraps a
    /// version through KMS, which authenticates it. Items of other types in
    /// the branch key's partition (the beacon key, a newer library's
    /// records) are not versions and are skipped.
    ///
    /// # Errors
    /// [`Error::Aws`]: no such branch key (`NotFound`), an item that fails
    /// its checks, no ACTIVE item or one that names a version with no
    /// version item (`InvalidResponse`), or a failed call.
    pub async fn list_versions(&self, branch_key_id: &str) -> Result<Vec<BranchKeyVersion>> {
        let deadline = self.deadline();
        let fetched = self.inner.table.query_branch_key(branch_key_id, deadline).await?;
        let items = &fetched.item;
        let error = |kind, message: String| -> Error { fetched.error(kind, branch_key_id, message).into() };
        let table = self.table_name();
        if items.is_empty() {
            return Err(error(
                AwsErrorKind::NotFound,
                format!("no items in table {table} (no such branch key)"),
            ));
        }
        let kms_key = self.key()?;
        let mut versions = Vec::new();
        let mut active = None;
        for item in items {
            let Some(Attr::S(sort_key)) = item.get(TYPE) else {
                return Err(error(
                    AwsErrorKind::InvalidResponse,
                    format!("an item in table {table} has no string `{TYPE}`"),
                ));
            };
            let want = match sort_key.strip_prefix(VERSION_PREFIX) {
                Some(version) => ItemType::Version(version),
                None if sort_key == TYPE_ACTIVE => ItemType::Active,
                None => continue,
            };
            let bad = |m: String| error(AwsErrorKind::InvalidResponse, format!("item {sort_key}: {m}"));
            let checked = check_item(item, branch_key_id, want, &self.inner.logical_name)
                .map_err(|e| bad(e.to_string()))?;
            if checked.kms_arn != kms_key {
                return Err(bad(format!(
                    "its kms-arn {} is not the key store's KMS key {kms_key}",
                    checked.kms_arn
                )));
            }
            // Both kinds carry a version (check_item requires it).
            let version = checked.version.unwrap_or_default();
            match want {
                ItemType::Active => active = Some(version),
                _ => {
                    let Some(Attr::S(create_time)) = item.get(CREATE_TIME) else {
                        return Err(bad(format!("no string `{CREATE_TIME}`")));
                    };
                    versions.push(BranchKeyVersion {
                        version,
                        create_time: create_time.clone(),
                        active: false,
                    });
                }
            }
        }
        let Some(active) = active else {
            return Err(error(
                AwsErrorKind::InvalidResponse,
                format!("no {TYPE_ACTIVE} item in table {table}"),
            ));
        };
        match versions.iter_mut().find(|v| v.version == active) {
            Some(v) => v.active = true,
            None => {
                return Err(error(
                    AwsErrorKind::InvalidResponse,
                    format!("the {TYPE_ACTIVE} item names version {active}, which has no version item"),
                ))
            }
        }
        versions.sort_by(|a, b| (&a.create_time, &a.version).cmp(&(&b.create_time, &b.version)));
        Ok(versions)
    }
}

//! AWS KMS key identifiers and ARNs as the ESDK reads them.
//! Spec: `framework/aws-kms/aws-kms-key-arn.md`, `aws-kms-mrk-match-for-decrypt.md`,
//! `aws-kms-mrk-are-unique.md`.

use std::fmt;
use std::str::FromStr;

/// A parsed AWS KMS ARN: `arn:PARTITION:kms:REGION:ACCOUNT:TYPE/ID`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct KmsArn {
    partition: String,
    region: String,
    account: String,
    resource_type: String,
    resource_id: String,
}

/// Why a string is not a KMS ARN.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("not a valid AWS KMS ARN: {0}")]
pub struct InvalidArn(&'static str);

impl FromStr for KmsArn {
    type Err = InvalidArn;

    fn from_str(s: &str) -> Result<Self, InvalidArn> {
        let mut parts = s.splitn(6, ':');
        let mut next = |what| parts.next().filter(|p| !p.is_empty()).ok_or(InvalidArn(what));
        if next("must start with arn")? != "arn" {
            return Err(InvalidArn("must start with arn"));
        }
        let partition = next("empty partition")?;
        if next("empty service")? != "kms" {
            return Err(InvalidArn("service must be kms"));
        }
        let region = next("empty region")?;
        let account = next("empty account")?;
        let resource = next("empty resource")?;
        let (resource_type, resource_id) = resource
            .split_once('/')
            .ok_or(InvalidArn("resource must be TYPE/ID"))?;
        if resource_type != "key" && resource_type != "alias" {
            return Err(InvalidArn("resource type must be key or alias"));
        }
        if resource_id.is_empty() {
            return Err(InvalidArn("empty resource id"));
        }
        Ok(KmsArn {
            partition: partition.to_owned(),
            region: region.to_owned(),
            account: account.to_owned(),
            resource_type: resource_type.to_owned(),
            resource_id: resource_id.to_owned(),
        })
    }
}

impl fmt::Display for KmsArn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "arn:{}:kms:{}:{}:{}/{}",
            self.partition, self.region, self.account, self.resource_type, self.resource_id
        )
    }
}

impl KmsArn {
    /// The partition (`aws`, `aws-cn`, ...).
    pub fn partition(&self) -> &str {
        &self.partition
    }
    /// The region.
    pub fn region(&self) -> &str {
        &self.region
    }
    /// The account id.
    pub fn account(&self) -> &str {
        &self.account
    }
    /// `key` or `alias`.
    pub fn resource_type(&self) -> &str {
        &self.resource_type
    }
    /// The key id or alias name.
    pub fn resource_id(&self) -> &str {
        &self.resource_id
    }
    /// Whether this is a multi-Region key (`key/mrk-…`; an alias never is).
    pub fn is_multi_region(&self) -> bool {
        self.resource_type == "key" && self.resource_id.starts_with("mrk-")
    }
    /// The same ARN in another region (for multi-Region key replicas).
    pub fn with_region(&self, region: &str) -> KmsArn {
        KmsArn {
            region: region.to_owned(),
            ..self.clone()
        }
    }
}

/// Whether `id` is a valid KMS identifier: an ARN, `alias/NAME` or a key id.
pub(crate) fn check_identifier(id: &str) -> Result<(), InvalidArn> {
    if id.is_empty() {
        return Err(InvalidArn("empty key identifier"));
    }
    if id.starts_with("arn:") {
        id.parse::<KmsArn>().map(|_| ())
    } else if id.contains(':') {
        Err(InvalidArn("a key id without arn: cannot contain ':'"))
    } else {
        Ok(())
    }
}

/// Spec: "Identifying an AWS KMS multi-Region identifier".
pub(crate) fn is_multi_region_identifier(id: &str) -> bool {
    if id.starts_with("arn:") {
        id.parse::<KmsArn>().is_ok_and(|a| a.is_multi_region())
    } else {
        !id.starts_with("alias/") && id.starts_with("mrk-")
    }
}

/// Spec: "AWS KMS MRK Match for Decrypt": identical, or both multi-Region
/// ARNs equal in everything but the region.
pub(crate) fn mrk_match(configured: &str, stored: &str) -> bool {
    if configured == stored {
        return true;
    }
    if !is_multi_region_identifier(configured) || !is_multi_region_identifier(stored) {
        return false;
    }
    match (configured.parse::<KmsArn>(), stored.parse::<KmsArn>()) {
        (Ok(a), Ok(b)) => a.with_region("") == b.with_region(""),
        _ => false,
    }
}

/// Spec: "AWS KMS MRK are unique": no two configured identifiers may be
/// replicas of one multi-Region key. Returns the offending identifiers.
pub(crate) fn duplicate_multi_region_keys(ids: &[String]) -> Vec<&str> {
    let resource = |id: &str| -> Option<String> {
        if !is_multi_region_identifier(id) {
            return None;
        }
        Some(match id.parse::<KmsArn>() {
            Ok(arn) => arn.resource_id,
            Err(_) => id.to_owned(),
        })
    };
    let mrks: Vec<(&str, String)> = ids
        .iter()
        .filter_map(|id| resource(id).map(|r| (id.as_str(), r)))
        .collect();
    mrks.iter()
        .filter(|(_, r)| mrks.iter().filter(|(_, r2)| r2 == r).count() > 1)
        .map(|(id, _)| *id)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MRK_E: &str = "arn:aws:kms:us-east-1:111122223333:key/mrk-80bd8ecdcd4342aebd84b7dc9da498a7";
    const MRK_W: &str = "arn:aws:kms:us-west-2:111122223333:key/mrk-80bd8ecdcd4342aebd84b7dc9da498a7";
    const SRK_E: &str = "arn:aws:kms:us-east-1:111122223333:key/b3537ef1-d8dc-4780-9f5a-55776cbb2f7f";

    #[test]
    fn parses_and_prints() {
        let arn: KmsArn = MRK_E.parse().unwrap();
        assert_eq!(arn.partition(), "aws");
        assert_eq!(arn.region(), "us-east-1");
        assert_eq!(arn.account(), "111122223333");
        assert!(arn.is_multi_region());
        assert_eq!(arn.to_string(), MRK_E);
        assert_eq!(arn.with_region("us-west-2").to_string(), MRK_W);
        let alias: KmsArn = "arn:aws:kms:us-east-1:1:alias/mrk-x".parse().unwrap();
        assert!(!alias.is_multi_region());
        let slashy: KmsArn = "arn:aws:kms:r:1:alias/a/b".parse().unwrap();
        assert_eq!(slashy.resource_id(), "a/b");
    }

    #[test]
    fn rejects_invalid() {
        for bad in [
            "",
            "arn",
            "arn:aws:kms:us-east-1:1",
            "arn:aws:s3:us-east-1:1:key/x",
            "arn::kms:us-east-1:1:key/x",
            "arn:aws:kms::1:key/x",
            "arn:aws:kms:r::key/x",
            "arn:aws:kms:r:1:key",
            "arn:aws:kms:r:1:key/",
            "arn:aws:kms:r:1:grant/x",
            "nra:aws:kms:r:1:key/x",
        ] {
            assert!(bad.parse::<KmsArn>().is_err(), "{bad:?}");
        }
        assert!(check_identifier("alias/x").is_ok());
        assert!(check_identifier("mrk-1").is_ok());
        assert!(check_identifier("arn:aws:kms:r:1:grant/x").is_err());
        assert!(check_identifier("").is_err());
    }

    #[test]
    fn mrk_matching() {
        assert!(mrk_match(MRK_E, MRK_W));
        assert!(mrk_match(SRK_E, SRK_E));
        assert!(!mrk_match(SRK_E, &SRK_E.replace("us-east-1", "us-west-2")));
        assert!(!mrk_match(MRK_E, &MRK_W.replace("111122223333", "444455556666")));
        assert!(!mrk_match("mrk-80bd8ecdcd4342aebd84b7dc9da498a7", MRK_W));
        assert!(is_multi_region_identifier("mrk-1"));
        assert!(!is_multi_region_identifier("alias/mrk-1"));
    }

    #[test]
    fn duplicate_mrks_are_reported() {
        let ids = vec![MRK_E.to_owned(), SRK_E.to_owned(), MRK_W.to_owned()];
        assert_eq!(duplicate_multi_region_keys(&ids), vec![MRK_E, MRK_W]);
        let fine = vec![MRK_E.to_owned(), SRK_E.to_owned()];
        assert!(duplicate_multi_region_keys(&fine).is_empty());
    }
}

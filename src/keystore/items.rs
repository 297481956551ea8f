//! Branch key items as the official key store writes them, without the SDK:
//! their attributes, the KMS encryption context built from them, and the
//! checks an item read back must pass. Spec: `framework/branch-key-store.md`
//! ("Record Format", "Encryption Context", "Branch Key Materials From
//! Authenticated Encryption Context").

use std::collections::BTreeMap;

use crate::format::EncryptionContext;

pub(crate) const BRANCH_KEY_ID: &str = "branch-key-id";
pub(crate) const TYPE: &str = "type";
pub(crate) const ENC: &str = "enc";
pub(crate) const VERSION: &str = "version";
pub(crate) const CREATE_TIME: &str = "create-time";
pub(crate) const KMS_ARN: &str = "kms-arn";
pub(crate) const HIERARCHY_VERSION: &str = "hierarchy-version";
/// The KMS encryption context's key for the logical key store name (not an
/// item attribute).
pub(crate) const TABLE_NAME: &str = "tablename";
/// Custom encryption context pairs are stored as attributes with this prefix.
pub(crate) const CUSTOM_PREFIX: &str = "aws-crypto-ec:";

pub(crate) const TYPE_ACTIVE: &str = "branch:ACTIVE";
pub(crate) const TYPE_BEACON: &str = "beacon:ACTIVE";
pub(crate) const VERSION_PREFIX: &str = "branch:version:";
/// The only hierarchy version there is.
pub(crate) const HIERARCHY_VERSION_1: &str = "1";

/// One attribute value of a branch key item: the three types the record
/// format uses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Attr {
    S(String),
    N(String),
    B(Vec<u8>),
}

/// A branch key item: attribute name to value.
pub(crate) type Item = BTreeMap<String, Attr>;

/// Which of a branch key's items.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ItemType<'a> {
    /// The decrypt-only copy of a version (`branch:version:<uuid>`).
    Version(&'a str),
    /// The active version's copy (`branch:ACTIVE`).
    Active,
    /// The beacon key (`beacon:ACTIVE`), written for compatibility.
    Beacon,
}

impl ItemType<'_> {
    pub(crate) fn sort_key(self) -> String {
        match self {
            ItemType::Version(v) => format!("{VERSION_PREFIX}{v}"),
            ItemType::Active => TYPE_ACTIVE.to_owned(),
            ItemType::Beacon => TYPE_BEACON.to_owned(),
        }
    }
}

/// The attributes of a new item, all but `enc` (which KMS makes from the
/// context these attributes give).
pub(crate) struct NewItem<'a> {
    pub(crate) branch_key_id: &'a str,
    pub(crate) item_type: ItemType<'a>,
    /// The version's UUID, for the ACTIVE item's `version` attribute.
    pub(crate) version: &'a str,
    pub(crate) create_time: &'a str,
    pub(crate) kms_arn: &'a str,
    pub(crate) custom: &'a EncryptionContext,
}

impl NewItem<'_> {
    /// The item's attributes without `enc`.
    pub(crate) fn attributes(&self) -> Item {
        let mut item = Item::new();
        item.insert(BRANCH_KEY_ID.into(), Attr::S(self.branch_key_id.into()));
        item.insert(TYPE.into(), Attr::S(self.item_type.sort_key()));
        if self.item_type == ItemType::Active {
            item.insert(
                VERSION.into(),
                Attr::S(format!("{VERSION_PREFIX}{}", self.version)),
            );
        }
        item.insert(CREATE_TIME.into(), Attr::S(self.create_time.into()));
        item.insert(KMS_ARN.into(), Attr::S(self.kms_arn.into()));
        item.insert(HIERARCHY_VERSION.into(), Attr::N(HIERARCHY_VERSION_1.into()));
        for (k, v) in self.custom.iter() {
            item.insert(format!("{CUSTOM_PREFIX}{k}"), Attr::S(v.into()));
        }
        item
    }
}

/// Why an item read back (or about to be written) breaks the record
/// format. Display names the attribute and the value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum ItemError {
    /// A required attribute is absent, or not of the type it must have.
    Missing {
        /// The attribute.
        name: &'static str,
        /// The type it must have, when absence is told apart by type
        /// (`hierarchy-version` numeric, `enc` binary and non-empty).
        kind: Option<AttrKind>,
    },
    /// An attribute of a type the record format does not allow there.
    WrongType {
        /// The attribute.
        name: String,
        /// What it must be.
        want: AttrKind,
    },
    /// The item has an attribute it must not have: `tablename` (the KMS
    /// context adds it), or `version` on an item other than ACTIVE.
    Forbidden(&'static str),
    /// The item is for another branch key.
    OtherBranchKey(String),
    /// The item's `type` is not the one read.
    OtherType(String),
    /// A `hierarchy-version` other than 1.
    HierarchyVersion(String),
    /// A version without the `branch:version:` prefix.
    VersionPrefix(String),
    /// A version that is not a UUID.
    VersionNotUuid(String),
}

/// The type an attribute must have.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum AttrKind {
    /// `S`.
    String,
    /// `S` or `N` (what the KMS encryption context takes).
    StringOrNumber,
    /// `N`.
    Numeric,
    /// `B`.
    Binary,
}

impl std::fmt::Display for ItemError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ItemError::Missing { name, kind: None } => write!(f, "the item has no `{name}` attribute"),
            ItemError::Missing {
                name,
                kind: Some(AttrKind::Numeric),
            } => write!(f, "the item has no numeric `{name}`"),
            ItemError::Missing {
                name,
                kind: Some(AttrKind::Binary),
            } => write!(f, "the item has no binary `{name}`"),
            ItemError::Missing { name, kind: Some(_) } => write!(f, "the item has no string `{name}`"),
            ItemError::WrongType {
                name,
                want: AttrKind::StringOrNumber,
            } => write!(f, "attribute `{name}` is binary, not a string or number"),
            ItemError::WrongType { name, .. } => write!(f, "attribute `{name}` is not a string"),
            ItemError::Forbidden(name) if *name == VERSION => {
                write!(
                    f,
                    "the item has a `{VERSION}` attribute (only {TYPE_ACTIVE} has one)"
                )
            }
            ItemError::Forbidden(name) => write!(f, "the item has a `{name}` attribute"),
            ItemError::OtherBranchKey(id) => write!(f, "the item is for branch key `{id}`"),
            ItemError::OtherType(t) => write!(f, "the item's type is `{t}`"),
            ItemError::HierarchyVersion(n) => write!(f, "unsupported hierarchy-version {n}"),
            ItemError::VersionPrefix(text) => {
                write!(f, "the version `{text}` does not start with `{VERSION_PREFIX}`")
            }
            ItemError::VersionNotUuid(v) => write!(f, "the version `{v}` is not a UUID"),
        }
    }
}

/// The KMS encryption context of an item: every attribute but `enc`
/// (numbers as their text), plus `tablename` = the logical key store name.
/// An attribute of another type, or a `tablename` attribute, is refused.
pub(crate) fn kms_context(item: &Item, logical_name: &str) -> Result<EncryptionContext, ItemError> {
    let mut ctx = EncryptionContext::new();
    for (name, value) in item {
        if name == ENC {
            continue;
        }
        if name == TABLE_NAME {
            return Err(ItemError::Forbidden(TABLE_NAME));
        }
        match value {
            Attr::S(s) | Attr::N(s) => ctx.insert(name.clone(), s.clone()),
            Attr::B(_) => {
                return Err(ItemError::WrongType {
                    name: name.clone(),
                    want: AttrKind::StringOrNumber,
                })
            }
        };
    }
    ctx.insert(TABLE_NAME, logical_name);
    Ok(ctx)
}

/// An item read back, checked against the record format.
#[derive(Debug)]
pub(crate) struct CheckedItem {
    pub(crate) branch_key_id: String,
    /// The version's UUID, in its 36-character form (`None` for the beacon
    /// key, which has no version).
    pub(crate) version: Option<String>,
    pub(crate) kms_arn: String,
    pub(crate) enc: Vec<u8>,
    /// The custom encryption context, prefix removed.
    pub(crate) custom: EncryptionContext,
    /// The KMS encryption context (all attributes but `enc`, plus `tablename`).
    pub(crate) kms_context: EncryptionContext,
}

fn string_attr<'i>(item: &'i Item, name: &'static str) -> Result<&'i str, ItemError> {
    match item.get(name) {
        Some(Attr::S(s)) => Ok(s),
        Some(_) => Err(ItemError::WrongType {
            name: name.to_owned(),
            want: AttrKind::String,
        }),
        None => Err(ItemError::Missing { name, kind: None }),
    }
}

/// Checks an item read for `branch_key_id` and `want` (the record format;
/// the version is the `type`'s or, for ACTIVE, the `version` attribute's;
/// only an ACTIVE item has a `version` attribute: spec "ACTIVE / DECRYPT_ONLY
/// / Beacon Key Encryption Context", and the MPL's `BranchKeyItem?`).
pub(crate) fn check_item(
    item: &Item,
    branch_key_id: &str,
    want: ItemType<'_>,
    logical_name: &str,
) -> Result<CheckedItem, ItemError> {
    let id = string_attr(item, BRANCH_KEY_ID)?;
    if id != branch_key_id {
        return Err(ItemError::OtherBranchKey(id.to_owned()));
    }
    let item_type = string_attr(item, TYPE)?;
    if item_type != want.sort_key() {
        return Err(ItemError::OtherType(item_type.to_owned()));
    }
    string_attr(item, CREATE_TIME)?;
    let kms_arn = string_attr(item, KMS_ARN)?.to_owned();
    match item.get(HIERARCHY_VERSION) {
        Some(Attr::N(n)) if n == HIERARCHY_VERSION_1 => {}
        Some(Attr::N(n)) => return Err(ItemError::HierarchyVersion(n.clone())),
        _ => {
            return Err(ItemError::Missing {
                name: HIERARCHY_VERSION,
                kind: Some(AttrKind::Numeric),
            })
        }
    }
    let enc = match item.get(ENC) {
        Some(Attr::B(b)) if !b.is_empty() => b.clone(),
        _ => {
            return Err(ItemError::Missing {
                name: ENC,
                kind: Some(AttrKind::Binary),
            })
        }
    };
    let version_text = match want {
        ItemType::Active => Some(string_attr(item, VERSION)?),
        ItemType::Version(_) | ItemType::Beacon if item.contains_key(VERSION) => {
            return Err(ItemError::Forbidden(VERSION))
        }
        ItemType::Version(_) => Some(item_type),
        ItemType::Beacon => None,
    };
    let version = match version_text {
        None => None,
        Some(text) => {
            let version = text
                .strip_prefix(VERSION_PREFIX)
                .ok_or_else(|| ItemError::VersionPrefix(text.to_owned()))?;
            if parse_version(version).is_none() {
                return Err(ItemError::VersionNotUuid(version.to_owned()));
            }
            Some(version.to_owned())
        }
    };
    let mut custom = EncryptionContext::new();
    for (name, value) in item {
        if let Some(key) = name.strip_prefix(CUSTOM_PREFIX) {
            match value {
                Attr::S(s) => custom.insert(key, s.clone()),
                _ => {
                    return Err(ItemError::WrongType {
                        name: name.clone(),
                        want: AttrKind::String,
                    })
                }
            };
        }
    }
    Ok(CheckedItem {
        branch_key_id: id.to_owned(),
        version,
        kms_arn,
        enc,
        custom,
        kms_context: kms_context(item, logical_name)?,
    })
}

/// A version's 16 bytes from its UUID text (any case, hyphenated).
pub(crate) fn parse_version(version: &str) -> Option<[u8; 16]> {
    if version.len() != 36 {
        return None;
    }
    uuid::Uuid::try_parse(version).ok().map(|u| *u.as_bytes())
}

/// A version's UUID text (lower case, hyphenated) from its 16 bytes.
pub(crate) fn format_version(bytes: [u8; 16]) -> String {
    uuid::Uuid::from_bytes(bytes).hyphenated().to_string()
}

/// A version 4 UUID from 16 random bytes.
pub(crate) fn uuid_v4(random: [u8; 16]) -> String {
    uuid::Builder::from_random_bytes(random)
        .into_uuid()
        .hyphenated()
        .to_string()
}

/// `create-time`: ISO 8601 in UTC to the microsecond, as the official
/// library writes it (`2026-12-01T16:35:53.395075Z`).
pub(crate) fn create_time(now: std::time::SystemTime) -> String {
    let format = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z"
    );
    time::OffsetDateTime::from(now)
        .format(format)
        .unwrap_or_else(|_| "1970-01-01T00:00:00.000000Z".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn custom() -> EncryptionContext {
        EncryptionContext::from([("tenant", "t-1")])
    }

    fn active_item(version: &str) -> Item {
        item(ItemType::Active, version)
    }

    /// An item of `item_type` as `NewItem` writes it, with an `enc`.
    fn item(item_type: ItemType<'_>, version: &str) -> Item {
        let ctx = custom();
        let mut item = NewItem {
            branch_key_id: "bk",
            item_type,
            version,
            create_time: "2026-12-01T16:35:53.395075Z",
            kms_arn: "arn:aws:kms:us-west-2:111122223333:key/k",
            custom: &ctx,
        }
        .attributes();
        item.insert(ENC.into(), Attr::B(vec![1, 2, 3]));
        item
    }

    #[test]
    fn new_items_carry_the_record_format_and_their_context() {
        let v = "0f7a3a5e-3c2b-4c1e-9b8a-1d2e3f4a5b6c";
        let item = active_item(v);
        let ctx = kms_context(&item, "logical").unwrap();
        let pairs: Vec<(&str, &str)> = ctx.iter().collect();
        assert_eq!(
            pairs,
            [
                ("aws-crypto-ec:tenant", "t-1"),
                ("branch-key-id", "bk"),
                ("create-time", "2026-12-01T16:35:53.395075Z"),
                ("hierarchy-version", "1"),
                ("kms-arn", "arn:aws:kms:us-west-2:111122223333:key/k"),
                ("tablename", "logical"),
                ("type", "branch:ACTIVE"),
                ("version", "branch:version:0f7a3a5e-3c2b-4c1e-9b8a-1d2e3f4a5b6c"),
            ]
        );
        let checked = check_item(&item, "bk", ItemType::Active, "logical").unwrap();
        assert_eq!(checked.version.as_deref(), Some(v));
        assert_eq!(checked.custom, custom());
        assert_eq!(checked.kms_context, ctx);
        assert_eq!(checked.enc, [1, 2, 3]);
    }

    #[test]
    fn items_that_break_the_record_format_are_refused() {
        let v = "0f7a3a5e-3c2b-4c1e-9b8a-1d2e3f4a5b6c";
        let breakers: [(&str, Option<Attr>); 7] = [
            (ENC, None),
            (KMS_ARN, None),
            (HIERARCHY_VERSION, Some(Attr::N("2".into()))),
            (HIERARCHY_VERSION, Some(Attr::S("1".into()))),
            (VERSION, Some(Attr::S("0f7a3a5e".into()))),
            (TABLE_NAME, Some(Attr::S("x".into()))),
            ("aws-crypto-ec:tenant", Some(Attr::B(vec![0]))),
        ];
        for (name, value) in breakers {
            let mut item = active_item(v);
            match value {
                Some(a) => item.insert(name.into(), a),
                None => item.remove(name),
            };
            assert!(
                check_item(&item, "bk", ItemType::Active, "logical").is_err(),
                "{name}"
            );
        }
        assert!(check_item(&active_item(v), "other", ItemType::Active, "logical").is_err());
        assert!(check_item(&active_item(v), "bk", ItemType::Version(v), "logical").is_err());
    }

    /// Each break of the record format is its own error; Display keeps
    /// the texts the key store's errors showed before.
    #[test]
    fn item_errors_name_the_attribute_and_what_is_wrong() {
        let v = "0f7a3a5e-3c2b-4c1e-9b8a-1d2e3f4a5b6c";
        let broken = |name: &str, value: Option<Attr>| {
            let mut item = active_item(v);
            match value {
                Some(a) => item.insert(name.into(), a),
                None => item.remove(name),
            };
            check_item(&item, "bk", ItemType::Active, "logical").unwrap_err()
        };
        let cases = [
            (broken(KMS_ARN, None), "the item has no `kms-arn` attribute"),
            (broken(ENC, None), "the item has no binary `enc`"),
            (
                broken(HIERARCHY_VERSION, Some(Attr::S("1".into()))),
                "the item has no numeric `hierarchy-version`",
            ),
            (
                broken(HIERARCHY_VERSION, Some(Attr::N("2".into()))),
                "unsupported hierarchy-version 2",
            ),
            (
                broken(KMS_ARN, Some(Attr::N("1".into()))),
                "attribute `kms-arn` is not a string",
            ),
            (
                broken("aws-crypto-ec:tenant", Some(Attr::B(vec![0]))),
                "attribute `aws-crypto-ec:tenant` is not a string",
            ),
            (
                broken(VERSION, Some(Attr::S("0f7a3a5e".into()))),
                "the version `0f7a3a5e` does not start with `branch:version:`",
            ),
            (
                broken(VERSION, Some(Attr::S(format!("{VERSION_PREFIX}0f7a3a5e")))),
                "the version `0f7a3a5e` is not a UUID",
            ),
            (
                broken(TABLE_NAME, Some(Attr::S("x".into()))),
                "the item has a `tablename` attribute",
            ),
        ];
        for (err, text) in &cases {
            assert_eq!(err.to_string(), *text, "{err:?}");
        }
        assert_eq!(
            cases[1].0,
            ItemError::Missing {
                name: ENC,
                kind: Some(AttrKind::Binary)
            }
        );
        assert_eq!(cases[3].0, ItemError::HierarchyVersion("2".into()));
        assert_eq!(cases[8].0, ItemError::Forbidden(TABLE_NAME));
        let mut binary = active_item(v);
        binary.insert("x".into(), Attr::B(vec![1]));
        assert_eq!(
            kms_context(&binary, "logical").unwrap_err().to_string(),
            "attribute `x` is binary, not a string or number"
        );
        let other = check_item(&active_item(v), "other", ItemType::Active, "logical").unwrap_err();
        assert_eq!(other, ItemError::OtherBranchKey("bk".into()));
        let beacon = check_item(&active_item(v), "bk", ItemType::Beacon, "logical").unwrap_err();
        assert_eq!(beacon.to_string(), "the item's type is `branch:ACTIVE`");
        let mut versioned = item(ItemType::Beacon, v);
        versioned.insert(VERSION.into(), Attr::S(format!("{VERSION_PREFIX}{v}")));
        assert_eq!(
            check_item(&versioned, "bk", ItemType::Beacon, "logical")
                .unwrap_err()
                .to_string(),
            "the item has a `version` attribute (only branch:ACTIVE has one)"
        );
    }

    /// A beacon item passes its checks (it has no version); only an ACTIVE
    /// item may have a `version` attribute.
    #[test]
    fn beacon_items_are_checked_and_only_active_items_have_a_version() {
        let v = "0f7a3a5e-3c2b-4c1e-9b8a-1d2e3f4a5b6c";
        let beacon = item(ItemType::Beacon, v);
        let checked = check_item(&beacon, "bk", ItemType::Beacon, "logical").unwrap();
        assert_eq!(checked.version, None);
        assert_eq!(checked.custom, custom());
        assert_eq!(checked.kms_context.get(TYPE), Some(TYPE_BEACON));
        assert_eq!(checked.kms_context.get(TABLE_NAME), Some("logical"));
        assert!(check_item(&beacon, "bk", ItemType::Active, "logical").is_err());
        assert!(check_item(&active_item(v), "bk", ItemType::Beacon, "logical").is_err());
        let version = item(ItemType::Version(v), v);
        assert_eq!(
            check_item(&version, "bk", ItemType::Version(v), "logical")
                .unwrap()
                .version
                .as_deref(),
            Some(v)
        );
        for (mut bad, want) in [(beacon, ItemType::Beacon), (version, ItemType::Version(v))] {
            bad.insert(VERSION.into(), Attr::S(format!("{VERSION_PREFIX}{v}")));
            assert!(check_item(&bad, "bk", want, "logical").is_err(), "{want:?}");
        }
    }

    #[test]
    fn versions_and_times_have_the_official_text_forms() {
        let v = uuid_v4([0xab; 16]);
        assert_eq!(v, "abababab-abab-4bab-abab-abababababab");
        let bytes = parse_version(&v).unwrap();
        assert_eq!(format_version(bytes), v);
        assert_eq!(parse_version(&v.to_uppercase()), Some(bytes));
        assert_eq!(parse_version("abababababab4babababababababababab"), None);
        let t = std::time::UNIX_EPOCH + std::time::Duration::from_micros(1_764_606_953_395_075);
        assert_eq!(create_time(t), "2025-12-01T16:35:53.395075Z");
    }
}

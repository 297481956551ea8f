//! The AWS KMS ECDH keyring. Spec: `framework/aws-kms/aws-kms-ecdh-keyring.md`.
//!
//! As the raw ECDH keyring (same fixed info, key derivation, wrap and EDK
//! layout; provider id `aws-kms-ecdh`), with this side's private key in
//! KMS: the shared secret comes from KMS `DeriveSharedSecret`, the KMS
//! key's public key from `GetPublicKey` when the keyring is made. Two
//! schemes: a KMS key to a static public key (both ways), and KMS
//! public-key discovery (decrypt only). Every KMS call runs on the call
//! engine, bounded like every other.

use async_trait::async_trait;

use super::raw_ecdh::{parse_provider_info, unwrap, wrap, KMS_ECDH_PROVIDER_ID, RAW_ECDH_PROVIDER_ID};
use super::{DecryptionMaterials, EncryptionMaterials, Keyring};
use crate::crypto::{DataKey, EcdhPublicKey};
use crate::error::{Error, Result};
use crate::format::{EncryptedDataKey, EncryptionContext};
use crate::kms::{AwsError, AwsErrorKind, AwsOperation, CallArgs, Deadline, KmsArn, KmsClient};
use crate::suite::Curve;

#[derive(Debug)]
enum Scheme {
    /// The KMS key (sender) to a static public key (recipient).
    Static {
        sender_arn: String,
        sender_public: EcdhPublicKey,
        recipient: EcdhPublicKey,
    },
    /// Whatever was sent to the KMS key's public key (decrypt only).
    Discovery {
        recipient_arn: String,
        recipient_public: EcdhPublicKey,
    },
}

/// ECDH with a KMS key agreement key (`ECC_NIST_P256/P384/P521`,
/// `KEY_AGREEMENT`): its private key never leaves KMS.
pub struct KmsEcdhKeyring {
    client: KmsClient,
    curve: Curve,
    scheme: Scheme,
    grant_tokens: Vec<String>,
}

// Grant tokens are bearer credentials for a grant: counted, never shown.
impl std::fmt::Debug for KmsEcdhKeyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KmsEcdhKeyring")
            .field("curve", &self.curve)
            .field("scheme", &self.scheme)
            .field("grant_tokens", &self.grant_tokens.len())
            .field("client", &self.client)
            .finish()
    }
}

fn check_arn(arn: &str) -> Result<()> {
    match arn.parse::<KmsArn>() {
        Ok(a) if a.resource_type() == "key" => Ok(()),
        _ => Err(Error::config(
            "KMS ECDH key",
            format!("{arn:?} is not a KMS key ARN"),
        )),
    }
}

/// The KMS key's public key, checked: the response names the key by its
/// ARN, the key is for key agreement, and it is on `curve`.
async fn kms_public_key(client: &KmsClient, arn: &str, curve: Curve) -> Result<EcdhPublicKey> {
    check_arn(arn)?;
    let empty = EncryptionContext::new();
    let args = CallArgs {
        key_id: arn,
        context: &empty,
        grant_tokens: &[],
        deadline: client.deadline(),
    };
    let out = client.get_public_key(args).await?;
    let invalid = |m: String| -> Error {
        AwsError::new(AwsErrorKind::InvalidResponse, AwsOperation::GetPublicKey, arn)
            .with_message(m)
            .into()
    };
    if out.key_id.as_deref() != Some(arn) {
        return Err(invalid("the response KeyId is not the key's ARN".into()));
    }
    if out.key_usage.as_deref() != Some("KEY_AGREEMENT") {
        return Err(invalid(format!(
            "the key's usage is {}, not KEY_AGREEMENT",
            out.key_usage.as_deref().unwrap_or("not given")
        )));
    }
    EcdhPublicKey::from_bytes(curve, &out.der).map_err(|e| invalid(format!("its public key: {e}")))
}

/// Which ECDH scheme a [`KmsEcdhKeyringBuilder`] was given.
enum SchemeChoice {
    Static {
        sender_arn: String,
        recipient: EcdhPublicKey,
    },
    Discovery {
        curve: Curve,
        recipient_arn: String,
    },
}

/// Builds a [`KmsEcdhKeyring`]; see [`KmsEcdhKeyring::builder`].
pub struct KmsEcdhKeyringBuilder {
    client: KmsClient,
    scheme: Option<SchemeChoice>,
    grant_tokens: Vec<String>,
}

// Grant tokens are bearer credentials for a grant: counted, never shown.
impl std::fmt::Debug for KmsEcdhKeyringBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let scheme = match &self.scheme {
            Some(SchemeChoice::Static { sender_arn, .. }) => Some(format!("static from {sender_arn}")),
            Some(SchemeChoice::Discovery { recipient_arn, .. }) => {
                Some(format!("discovery to {recipient_arn}"))
            }
            None => None,
        };
        f.debug_struct("KmsEcdhKeyringBuilder")
            .field("scheme", &scheme)
            .field("grant_tokens", &self.grant_tokens.len())
            .finish_non_exhaustive()
    }
}

impl KmsEcdhKeyringBuilder {
    /// The KMS key `sender_kms_arn` to `recipient`'s public key: encrypts,
    /// and decrypts messages between the two in either direction.
    pub fn static_keys(mut self, sender_kms_arn: impl Into<String>, recipient: EcdhPublicKey) -> Self {
        self.scheme = Some(SchemeChoice::Static {
            sender_arn: sender_kms_arn.into(),
            recipient,
        });
        self
    }

    /// Decrypts what any sender sent to the KMS key `recipient_kms_arn`'s
    /// public key on `curve` (raw or KMS ECDH).
    pub fn discovery(mut self, curve: Curve, recipient_kms_arn: impl Into<String>) -> Self {
        self.scheme = Some(SchemeChoice::Discovery {
            curve,
            recipient_arn: recipient_kms_arn.into(),
        });
        self
    }

    /// Grant tokens for the `DeriveSharedSecret` calls (default: none).
    pub fn grant_tokens(mut self, tokens: impl IntoIterator<Item = String>) -> Self {
        self.grant_tokens = tokens.into_iter().collect();
        self
    }

    /// Builds the keyring: calls KMS `GetPublicKey` once for the KMS key.
    ///
    /// # Errors
    /// [`Error::Config`] without a scheme ([`Self::static_keys`] or
    /// [`Self::discovery`]), for a bad ARN or keys on different curves;
    /// [`Error::Aws`] when `GetPublicKey` fails or its answer does not fit.
    pub async fn build(self) -> Result<KmsEcdhKeyring> {
        let client = self.client;
        let (curve, scheme) =
            match self.scheme {
                Some(SchemeChoice::Static {
                    sender_arn,
                    recipient,
                }) => {
                    let curve = recipient.curve();
                    let sender_public = kms_public_key(&client, &sender_arn, curve).await?;
                    let scheme = Scheme::Static {
                        sender_arn,
                        sender_public,
                        recipient,
                    };
                    (curve, scheme)
                }
                Some(SchemeChoice::Discovery { curve, recipient_arn }) => {
                    let recipient_public = kms_public_key(&client, &recipient_arn, curve).await?;
                    let scheme = Scheme::Discovery {
                        recipient_arn,
                        recipient_public,
                    };
                    (curve, scheme)
                }
                None => return Err(Error::config(
                    "KMS ECDH scheme",
                    "give static keys (a sender KMS key and a recipient) or a discovery recipient KMS key",
                )),
            };
        Ok(KmsEcdhKeyring {
            client,
            curve,
            scheme,
            grant_tokens: self.grant_tokens,
        })
    }
}

impl KmsEcdhKeyring {
    /// A builder over `client`; choose the scheme with
    /// [`KmsEcdhKeyringBuilder::static_keys`] or
    /// [`KmsEcdhKeyringBuilder::discovery`].
    pub fn builder(client: KmsClient) -> KmsEcdhKeyringBuilder {
        KmsEcdhKeyringBuilder {
            client,
            scheme: None,
            grant_tokens: Vec::new(),
        }
    }

    /// The KMS key's public key (the sender's, or the discovery recipient's).
    pub fn kms_public_key(&self) -> &EcdhPublicKey {
        match &self.scheme {
            Scheme::Static { sender_public, .. } => sender_public,
            Scheme::Discovery { recipient_public, .. } => recipient_public,
        }
    }

    fn name(&self) -> String {
        match &self.scheme {
            Scheme::Static { sender_arn, .. } => format!("AWS KMS ECDH {} static {sender_arn}", self.curve),
            Scheme::Discovery { recipient_arn, .. } => {
                format!("AWS KMS ECDH {} discovery {recipient_arn}", self.curve)
            }
        }
    }

    /// `DeriveSharedSecret` of `arn` with `peer`, checked.
    async fn shared_secret(
        &self,
        arn: &str,
        peer: &EcdhPublicKey,
        deadline: Deadline,
    ) -> Result<zeroize::Zeroizing<Vec<u8>>> {
        let empty = EncryptionContext::new();
        let args = CallArgs {
            key_id: arn,
            context: &empty,
            grant_tokens: &self.grant_tokens,
            deadline,
        };
        let out = self.client.derive_shared_secret(args, &peer.to_der()).await?;
        let invalid = |m: &str| -> Error {
            AwsError::new(
                AwsErrorKind::InvalidResponse,
                AwsOperation::DeriveSharedSecret,
                arn,
            )
            .with_message(m)
            .into()
        };
        if out.key_id.as_deref() != Some(arn) {
            return Err(invalid("KMS answered for another key"));
        }
        if out.plaintext.len() != self.curve.field_len() {
            return Err(invalid("the shared secret does not fit the curve"));
        }
        Ok(out.plaintext)
    }
}

#[async_trait]
impl Keyring for KmsEcdhKeyring {
    async fn on_encrypt(&self, materials: &mut EncryptionMaterials) -> Result<()> {
        let Scheme::Static {
            sender_arn,
            sender_public,
            recipient,
        } = &self.scheme
        else {
            return Err(Error::keyring(
                self.name(),
                "a discovery keyring only decrypts; encrypt with the static scheme",
            ));
        };
        let shared = self
            .shared_secret(sender_arn, recipient, self.client.deadline())
            .await?;
        if materials.data_key().is_none() {
            materials.generate_data_key()?;
        }
        let backend = materials.backend();
        let (sender, recipient) = (sender_public.compressed(), recipient.compressed());
        let ciphertext = wrap(backend, materials, self.curve, &shared, sender, recipient)?;
        materials.add_encrypted_data_key(EncryptedDataKey {
            provider_id: KMS_ECDH_PROVIDER_ID.to_owned(),
            provider_info: super::raw_ecdh::provider_info(recipient, sender),
            ciphertext,
        });
        Ok(())
    }

    async fn on_decrypt(
        &self,
        materials: &DecryptionMaterials,
        edks: &[EncryptedDataKey],
    ) -> Result<Option<DataKey>> {
        let deadline = self.client.deadline();
        let mut failures = Vec::new();
        for edk in edks {
            if edk.provider_id != RAW_ECDH_PROVIDER_ID && edk.provider_id != KMS_ECDH_PROVIDER_ID {
                continue;
            }
            let Some((recipient, sender)) = parse_provider_info(self.curve, &edk.provider_info) else {
                continue;
            };
            let (arn, peer) = match &self.scheme {
                Scheme::Static {
                    sender_arn,
                    sender_public,
                    recipient: peer,
                } => {
                    let (mine, theirs) = (sender_public.compressed(), peer.compressed());
                    if !((sender == mine && recipient == theirs) || (sender == theirs && recipient == mine)) {
                        continue;
                    }
                    (sender_arn, peer.clone())
                }
                Scheme::Discovery {
                    recipient_arn,
                    recipient_public,
                } => {
                    if recipient_public.compressed() != recipient {
                        continue;
                    }
                    // A sender key that is no point comes from the message's
                    // bytes: an opaque failed check, with no KMS call.
                    let Ok(peer) = EcdhPublicKey::from_bytes(self.curve, sender) else {
                        failures.push(Error::Decrypt);
                        continue;
                    };
                    (recipient_arn, peer)
                }
            };
            let shared = match self.shared_secret(arn, &peer, deadline).await {
                Ok(s) => s,
                Err(e) => {
                    let out_of_time = e.is_past_deadline();
                    failures.push(e);
                    if out_of_time {
                        break;
                    }
                    continue;
                }
            };
            match unwrap(materials, self.curve, &shared, sender, recipient, &edk.ciphertext)? {
                Some(key) => return Ok(Some(key)),
                None => failures.push(Error::Decrypt),
            }
        }
        // Spec (aws-kms-ecdh-keyring.md, OnDecrypt): every EDK's failure.
        match Error::collected(failures) {
            Some(e) => Err(e),
            None => Ok(None),
        }
    }
}

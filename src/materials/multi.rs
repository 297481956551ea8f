//! Multi-keyring. Spec: `framework/multi-keyring.md`.

use std::sync::Arc;

use async_trait::async_trait;

use super::{DecryptionMaterials, EncryptionMaterials, Keyring};
use crate::crypto::DataKey;
use crate::error::{Error, Result};
use crate::format::EncryptedDataKey;

/// A generator keyring plus children. Encrypt: the generator makes the data
/// key, then every child wraps it too. Decrypt: the generator, then each
/// child, until one unwraps the data key; a child's failure lets the next
/// one try, and when no child unwraps it the error carries each failure
/// ([`Error::Keyrings`], in order; a single failure comes back as itself).
#[derive(Clone)]
pub struct MultiKeyring {
    generator: Option<Arc<dyn Keyring>>,
    children: Vec<Arc<dyn Keyring>>,
}

impl std::fmt::Debug for MultiKeyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MultiKeyring")
            .field("generator", &self.generator.is_some())
            .field("children", &self.children.len())
            .finish()
    }
}

impl MultiKeyring {
    /// A multi-keyring with an optional generator and children.
    ///
    /// # Errors
    /// [`Error::Config`] when there is neither a generator nor a child.
    pub fn new(generator: Option<Arc<dyn Keyring>>, children: Vec<Arc<dyn Keyring>>) -> Result<Self> {
        if generator.is_none() && children.is_empty() {
            return Err(Error::config(
                "keyrings",
                "a multi-keyring needs a generator or a child",
            ));
        }
        Ok(MultiKeyring { generator, children })
    }

    /// The first keyring generates, every one wraps: the usual setup.
    ///
    /// # Errors
    /// [`Error::Config`] when `keyrings` is empty.
    pub fn from_keyrings(keyrings: Vec<Arc<dyn Keyring>>) -> Result<Self> {
        let mut it = keyrings.into_iter();
        let generator = it.next();
        Self::new(generator, it.collect())
    }
}

#[async_trait]
impl Keyring for MultiKeyring {
    async fn on_encrypt(&self, materials: &mut EncryptionMaterials) -> Result<()> {
        match &self.generator {
            Some(generator) => {
                if materials.data_key().is_some() {
                    return Err(Error::Misuse(
                        "multi-keyring generator called with a data key already present".into(),
                    ));
                }
                generator.on_encrypt(materials).await?;
                if materials.data_key().is_none() {
                    return Err(Error::keyring(
                        "multi",
                        "the generator did not produce a data key",
                    ));
                }
            }
            None if materials.data_key().is_none() => {
                return Err(Error::keyring("multi", "no generator and no data key"));
            }
            None => {}
        }
        for child in &self.children {
            child.on_encrypt(materials).await?;
        }
        Ok(())
    }

    async fn on_decrypt(
        &self,
        materials: &DecryptionMaterials,
        edks: &[EncryptedDataKey],
    ) -> Result<Option<DataKey>> {
        // Spec (framework/multi-keyring.md, OnDecrypt): a child's failure
        // is collected and the next child tried; when none succeeds, the
        // failure contains every collected one (a nested list joins it).
        let mut failures = Vec::new();
        for keyring in self.generator.iter().chain(self.children.iter()) {
            match keyring.on_decrypt(materials, edks).await {
                Ok(Some(key)) => return Ok(Some(key)),
                Ok(None) => {}
                Err(e) => failures.push(e),
            }
        }
        match Error::collected(failures) {
            Some(e) => Err(e),
            None => Ok(None),
        }
    }
}

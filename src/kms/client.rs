//! The bounded KMS client and its builder: the SDK client, bounds, retry
//! partition, credential cache and counters, and the KMS operations envseal
//! makes (each request is built here and run by the engine, `engine.rs`).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use aws_sdk_kms as sdk;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::display::DisplayErrorContext;
use sdk::config::{BehaviorVersion, Region};
use sdk::error::ProvideErrorMetadata;
use sdk::primitives::Blob;
use zeroize::Zeroizing;

use super::credentials::{
    default_chain, warn_if_shadowed, CachedProvider, CredentialCache, CredentialOptions, CredentialSources,
};
use super::endpoints::{configured_url, default_tls, EndpointSettings, ServiceEndpoint};
use super::engine::{Call, Engine};
use super::stats::{AwsCounters, AwsStats};
use super::KmsArn;
use crate::error::aws::{AwsError, AwsErrorKind, AwsOperation, AwsService};
use crate::error::Error;

pub(crate) use super::bounds::Deadline;
pub use super::bounds::{AwsBounds, RetryMode};

/// A data key from `GenerateDataKey`.
pub(crate) struct GeneratedKey {
    pub(crate) plaintext: Zeroizing<Vec<u8>>,
    pub(crate) ciphertext: Vec<u8>,
    pub(crate) key_id: Option<String>,
}

/// A data key wrapped by `Encrypt`.
pub(crate) struct WrappedKey {
    pub(crate) ciphertext: Vec<u8>,
    pub(crate) key_id: Option<String>,
}

/// A data key unwrapped by `Decrypt`.
pub(crate) struct UnwrappedKey {
    pub(crate) plaintext: Zeroizing<Vec<u8>>,
    pub(crate) key_id: Option<String>,
}

/// What `GetPublicKey` answered.
pub(crate) struct PublicKeyOut {
    pub(crate) der: Vec<u8>,
    pub(crate) key_id: Option<String>,
    pub(crate) key_usage: Option<String>,
}

/// The parameters every keyring call shares.
pub(crate) struct CallArgs<'a> {
    pub(crate) key_id: &'a str,
    pub(crate) context: &'a crate::EncryptionContext,
    pub(crate) grant_tokens: &'a [String],
    pub(crate) deadline: Deadline,
}

impl CallArgs<'_> {
    fn context_map(&self) -> HashMap<String, String> {
        self.context
            .iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect()
    }

    fn grant_tokens(&self) -> Option<Vec<String>> {
        (!self.grant_tokens.is_empty()).then(|| self.grant_tokens.to_vec())
    }
}

pub(super) struct ClientInner {
    pub(super) client: sdk::Client,
    /// Bounds, counters, retry partition and credential cache of the calls.
    pub(super) engine: Engine,
    /// STS with the same credentials, for [`KmsClient::doctor`].
    pub(super) sts: Option<aws_sdk_sts::Client>,
    /// The shared AWS configuration the client was built from, for the
    /// clients of other services (DynamoDB) that share its credentials.
    #[cfg_attr(not(feature = "hierarchy"), allow(dead_code))] // read by the key store
    pub(super) sdk_config: Option<aws_config::SdkConfig>,
    /// The FIPS endpoint setting, configured URLs and TLS provider.
    pub(super) endpoints: EndpointSettings,
}

/// A KMS client whose every call is bounded, classified, counted and traced.
///
/// Cheap to clone; clones share the SDK client, the retry partition (its
/// retry quota and adaptive rate limiter) and the counters. Build one per
/// application and clone it: the SDK keeps every retry partition for the
/// life of the process.
#[derive(Clone)]
pub struct KmsClient {
    pub(super) inner: Arc<ClientInner>,
    pub(super) region: Option<String>,
}

impl std::fmt::Debug for KmsClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KmsClient")
            .field("region", &self.region)
            .field("bounds", &self.inner.engine.bounds)
            .finish_non_exhaustive()
    }
}

/// Builds a [`KmsClient`]; see [`KmsClient::builder`].
#[derive(Debug, Default)]
pub struct KmsClientBuilder {
    bounds: AwsBounds,
    region: Option<String>,
    endpoint_url: Option<String>,
    sdk_config: Option<aws_config::SdkConfig>,
    stats: Option<Arc<AwsCounters>>,
    credentials: CredentialOptions,
    sts_endpoint_url: Option<String>,
    profile: Option<String>,
    use_fips_endpoint: Option<bool>,
}

impl KmsClientBuilder {
    /// The bounds for every call (default: [`AwsBounds::default`]).
    pub fn bounds(mut self, bounds: AwsBounds) -> Self {
        self.bounds = bounds;
        self
    }

    /// The region, overriding `AWS_REGION` and the profile.
    pub fn region(mut self, region: impl Into<String>) -> Self {
        self.region = Some(region.into());
        self
    }

    /// A named profile of the shared config and credentials files, as
    /// `AWS_PROFILE` names one: its credentials and region (an explicit
    /// [`KmsClientBuilder::region`] still wins). Keys in the environment
    /// (`AWS_ACCESS_KEY_ID`) do not shadow it; the container and instance
    /// roles still follow it in the chain. Not used with
    /// [`KmsClientBuilder::sdk_config`].
    pub fn profile(mut self, name: impl Into<String>) -> Self {
        self.profile = Some(name.into());
        self
    }

    /// Calls go to the services' FIPS endpoints (`kms-fips.REGION...`,
    /// `sts-fips`, `dynamodb-fips`), as `AWS_USE_FIPS_ENDPOINT=true` or a
    /// profile's `use_fips_endpoint` asks (the default: what they say). An
    /// endpoint configured by URL is used as given (a FIPS VPC endpoint is
    /// named that way): AWS's endpoint rules do not combine the two.
    pub fn use_fips_endpoint(mut self, use_fips: bool) -> Self {
        self.use_fips_endpoint = Some(use_fips);
        self
    }

    /// An explicit endpoint (a VPC endpoint, a local KMS), overriding
    /// `AWS_ENDPOINT_URL_KMS` and `AWS_ENDPOINT_URL`.
    pub fn endpoint_url(mut self, url: impl Into<String>) -> Self {
        self.endpoint_url = Some(url.into());
        self
    }

    /// An explicit STS endpoint for [`KmsClient::doctor`], overriding
    /// `AWS_ENDPOINT_URL_STS`.
    pub fn sts_endpoint_url(mut self, url: impl Into<String>) -> Self {
        self.sts_endpoint_url = Some(url.into());
        self
    }

    /// Start from this shared AWS configuration (credentials, region,
    /// endpoint) instead of loading one from the environment.
    pub fn sdk_config(mut self, config: aws_config::SdkConfig) -> Self {
        self.sdk_config = Some(config);
        self
    }

    /// How credentials are loaded and refreshed (default:
    /// [`CredentialOptions::default`]: refresh 5 minutes before expiry,
    /// IMDS retrying connect timeouts).
    pub fn credentials(mut self, options: CredentialOptions) -> Self {
        self.credentials = options;
        self
    }

    /// Count into these counters (to share them between clients).
    pub fn counters(mut self, counters: Arc<AwsCounters>) -> Self {
        self.stats = Some(counters);
        self
    }

    /// Builds the client, loading the AWS configuration from the environment
    /// (credential chain, region, `AWS_ENDPOINT_URL_KMS`) unless one was given.
    ///
    /// # Errors
    /// [`Error::Config`] for invalid bounds or when no region is configured.
    pub async fn build(mut self) -> Result<KmsClient, Error> {
        self.bounds.validate()?;
        self.credentials.validate()?;
        let stats = self.stats.take().unwrap_or_default();
        let given_config = self.sdk_config.is_some();
        let (sdk_config, cache) = match self.sdk_config.take() {
            Some(c) => {
                let cache = c.credentials_provider().map(|p| {
                    Arc::new(CredentialCache::new(
                        p,
                        None,
                        &self.credentials,
                        Arc::clone(&stats),
                    ))
                });
                (c, cache)
            }
            None => {
                let sources = CredentialSources::from_env();
                warn_if_shadowed(&sources);
                let region = self.region.clone().map(Region::new);
                let profile = self.profile.as_deref();
                let (chain, slot) =
                    default_chain(&self.credentials, region.clone(), profile, self.use_fips_endpoint).await;
                let cache = Arc::new(CredentialCache::new(
                    chain,
                    Some(slot),
                    &self.credentials,
                    Arc::clone(&stats),
                ));
                let mut loader = aws_config::defaults(BehaviorVersion::latest())
                    .credentials_provider(CachedProvider(Arc::clone(&cache)));
                if let Some(p) = profile {
                    loader = loader.profile_name(p);
                }
                if let Some(r) = region {
                    loader = loader.region(r);
                }
                if let Some(f) = self.use_fips_endpoint {
                    loader = loader.use_fips(f);
                }
                #[cfg(feature = "fips")]
                {
                    loader = loader.http_client(super::endpoints::fips_https_client());
                }
                (loader.load().await, Some(cache))
            }
        };
        let engine = Engine::new(AwsService::Kms, self.bounds, stats, cache.clone());
        let mut conf = sdk::config::Builder::from(&sdk_config)
            .behavior_version(BehaviorVersion::latest())
            .timeout_config(engine.bounds.timeout_config(engine.bounds.deadline))
            .retry_config(engine.bounds.retry_config())
            .retry_partition(engine.partition());
        if let Some(r) = &self.region {
            conf = conf.region(Region::new(r.clone()));
        }
        let use_fips = self.use_fips_endpoint.or(sdk_config.use_fips()).unwrap_or(false);
        let kms_url = self
            .endpoint_url
            .clone()
            .or_else(|| configured_url(&sdk_config, "KMS"));
        let sts_url = self
            .sts_endpoint_url
            .clone()
            .or_else(|| configured_url(&sdk_config, "STS"));
        let dynamodb_url = configured_url(&sdk_config, "DynamoDB");
        // A configured URL is used as given (see `use_fips_endpoint`).
        conf = conf.use_fips(use_fips && kms_url.is_none());
        if let Some(url) = &self.endpoint_url {
            conf = conf.endpoint_url(url.clone());
        }
        if let Some(cache) = &cache {
            conf = conf
                .credentials_provider(CachedProvider(Arc::clone(cache)))
                .identity_cache(sdk::config::IdentityCache::no_cache());
        }
        let conf = conf.build();
        let region = conf.region().map(|r| r.as_ref().to_owned());
        let mut sts = aws_sdk_sts::config::Builder::from(&sdk_config)
            .behavior_version(BehaviorVersion::latest())
            .retry_config(aws_sdk_sts::config::retry::RetryConfig::disabled())
            .use_fips(use_fips && sts_url.is_none());
        if let Some(r) = &region {
            sts = sts.region(aws_sdk_sts::config::Region::new(r.clone()));
        }
        if let Some(url) = &self.sts_endpoint_url {
            sts = sts.endpoint_url(url.clone());
        }
        if let Some(cache) = &cache {
            sts = sts
                .credentials_provider(CachedProvider(Arc::clone(cache)))
                .identity_cache(aws_sdk_sts::config::IdentityCache::no_cache());
        }
        let sts = aws_sdk_sts::Client::from_conf(sts.build());
        if region.is_none() {
            return Err(Error::config(
                "region",
                "no AWS region for KMS: set AWS_REGION or pass a region",
            ));
        }
        Ok(KmsClient {
            inner: Arc::new(ClientInner {
                client: sdk::Client::from_conf(conf),
                engine,
                sts: Some(sts),
                sdk_config: Some(sdk_config),
                endpoints: EndpointSettings {
                    use_fips,
                    kms: kms_url,
                    sts: sts_url,
                    dynamodb: dynamodb_url,
                    tls: if given_config {
                        "the HTTPS client of the given SdkConfig"
                    } else {
                        default_tls()
                    },
                },
            }),
            region,
        })
    }
}

impl KmsClient {
    /// A builder: bounds, region, endpoint, shared configuration, counters.
    pub fn builder() -> KmsClientBuilder {
        KmsClientBuilder::default()
    }

    /// Wraps a client the caller built. envseal's bounds, retry rules and
    /// counters still apply: they are set on every call. The client keeps
    /// its own credentials provider and identity cache (the SDK does not
    /// hand them out), so envseal's refresh ahead of expiry and retry after
    /// `ExpiredTokenException` need [`KmsClientBuilder::sdk_config`] instead.
    ///
    /// # Errors
    /// [`Error::Config`] for invalid bounds.
    pub fn from_sdk_client(client: sdk::Client, bounds: AwsBounds) -> Result<Self, Error> {
        bounds.validate()?;
        let region = client.config().region().map(|r| r.as_ref().to_owned());
        Ok(KmsClient {
            inner: Arc::new(ClientInner {
                client,
                engine: Engine::new(AwsService::Kms, bounds, Arc::default(), None),
                sts: None,
                sdk_config: None,
                endpoints: EndpointSettings {
                    use_fips: false,
                    kms: None,
                    sts: None,
                    dynamodb: None,
                    tls: "the HTTPS client of the given SDK client",
                },
            }),
            region,
        })
    }

    /// Where the calls go: KMS, STS (for [`KmsClient::doctor`]) and, with
    /// feature `hierarchy`, DynamoDB (for a key store on this client's
    /// configuration), each resolved for the client's region and FIPS
    /// endpoint setting, or the URL configured in its place. For a client
    /// from [`KmsClient::from_sdk_client`] the SDK client's own settings
    /// are not visible: the default endpoints are reported.
    pub async fn endpoints(&self) -> Vec<ServiceEndpoint> {
        super::endpoints::endpoints(&self.inner.endpoints, self.region.as_deref()).await
    }

    /// Whether the client asks for the services' FIPS endpoints.
    pub fn uses_fips_endpoints(&self) -> bool {
        self.inner.endpoints.use_fips
    }

    /// The TLS provider of the client's HTTPS connections: in the FIPS
    /// build (feature `fips`), rustls on the FIPS module's provider.
    pub fn tls_provider(&self) -> &'static str {
        self.inner.endpoints.tls
    }

    /// The provider that supplied the credentials in use (e.g.
    /// `EcsContainer`), or that failed last; `None` before the first load.
    pub fn credentials_provider(&self) -> Option<&'static str> {
        self.inner.engine.credentials.as_ref().and_then(|c| c.provider())
    }

    /// Resolves credentials through the client's cache (loading them if
    /// needed): the provider's name, the access key id and the expiry.
    /// Never returns the secret.
    ///
    /// # Errors
    /// The provider's failure, as text naming it.
    pub async fn resolve_credentials(&self) -> Result<CredentialInfo, String> {
        let Some(cache) = &self.inner.engine.credentials else {
            return Err("the KMS client has no credentials provider".into());
        };
        match cache.credentials().await {
            Ok(c) => Ok(CredentialInfo {
                provider: cache
                    .provider()
                    .unwrap_or(super::credentials::PROVIDER_CONFIGURED),
                access_key_id: c.access_key_id().to_owned(),
                expiry: c.expiry(),
                account_id: c.account_id().map(|a| a.as_str().to_owned()),
            }),
            Err(e) => Err(DisplayErrorContext(&e).to_string()),
        }
    }

    /// The client's region (calls naming a key ARN go to the ARN's region).
    pub fn region(&self) -> Option<&str> {
        self.region.as_deref()
    }

    /// The same client, sharing counters and retry state, defaulting to
    /// another region.
    pub fn with_region(&self, region: impl Into<String>) -> Self {
        KmsClient {
            inner: Arc::clone(&self.inner),
            region: Some(region.into()),
        }
    }

    /// The bounds applied to every call.
    pub fn bounds(&self) -> &AwsBounds {
        &self.inner.engine.bounds
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> AwsStats {
        self.inner.engine.stats.snapshot()
    }

    /// The live counters (shared with clones).
    pub fn counters(&self) -> Arc<AwsCounters> {
        Arc::clone(&self.inner.engine.stats)
    }

    /// Starts the clock for one keyring operation: now, or when the cache
    /// lookup it loads for began (its wait for a load permit counts).
    pub(crate) fn deadline(&self) -> Deadline {
        // validate() caps the deadline at 24 h, so this cannot overflow.
        let start = crate::cache::lookup_began().unwrap_or_else(Instant::now);
        Deadline(
            start
                .checked_add(self.inner.engine.bounds.deadline)
                .unwrap_or(start),
        )
    }

    /// The engine the client's calls run on (the key store's DynamoDB
    /// client takes its bounds, counters and credentials from it).
    #[cfg_attr(not(feature = "hierarchy"), allow(dead_code))] // used by the key store
    pub(crate) fn engine(&self) -> &Engine {
        &self.inner.engine
    }

    /// The shared AWS configuration the client was built from (`None` for
    /// [`KmsClient::from_sdk_client`]).
    #[cfg_attr(not(feature = "hierarchy"), allow(dead_code))] // used by the key store
    pub(crate) fn sdk_config(&self) -> Option<&aws_config::SdkConfig> {
        self.inner.sdk_config.as_ref()
    }

    /// Runs one KMS call on the engine, to the region of `args.key_id`.
    async fn run<T, E, F, Fut>(&self, op: AwsOperation, args: &CallArgs<'_>, send: F) -> Result<T, AwsError>
    where
        F: Fn(sdk::config::Builder) -> Fut,
        Fut: std::future::Future<Output = Result<T, SdkError<E, HttpResponse>>>,
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        self.run_counted(op, args, send).await.0
    }

    /// [`Self::run`], also returning the attempts made.
    pub(super) async fn run_counted<T, E, F, Fut>(
        &self,
        op: AwsOperation,
        args: &CallArgs<'_>,
        send: F,
    ) -> (Result<T, AwsError>, u32)
    where
        F: Fn(sdk::config::Builder) -> Fut,
        Fut: std::future::Future<Output = Result<T, SdkError<E, HttpResponse>>>,
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        let region = self.region_for(args.key_id);
        let call = Call {
            op,
            target: args.key_id,
            region: region.as_deref(),
            deadline: args.deadline,
        };
        self.inner.engine.run_counted(&call, send).await
    }

    /// The region a call naming `key_id` goes to: the ARN's, else the client's.
    pub(super) fn region_for(&self, key_id: &str) -> Option<String> {
        match key_id.parse::<KmsArn>() {
            Ok(arn) => Some(arn.region().to_owned()),
            Err(_) => self.region.clone(),
        }
    }

    pub(crate) async fn generate_data_key(
        &self,
        args: CallArgs<'_>,
        number_of_bytes: usize,
    ) -> Result<GeneratedKey, AwsError> {
        let op = AwsOperation::GenerateDataKey;
        let bytes = i32::try_from(number_of_bytes)
            .map_err(|_| AwsError::new(AwsErrorKind::Other, op, args.key_id).with_message("key too long"))?;
        let request = self
            .inner
            .client
            .generate_data_key()
            .key_id(args.key_id)
            .number_of_bytes(bytes)
            .set_encryption_context(Some(args.context_map()))
            .set_grant_tokens(args.grant_tokens());
        let out = self
            .run(op, &args, |cfg| {
                request.clone().customize().config_override(cfg).send()
            })
            .await?;
        Ok(GeneratedKey {
            plaintext: Zeroizing::new(out.plaintext.map(Blob::into_inner).unwrap_or_default()),
            ciphertext: required_blob(out.ciphertext_blob).ok_or_else(|| missing_blob(op, args.key_id))?,
            key_id: out.key_id,
        })
    }

    pub(crate) async fn encrypt(&self, args: CallArgs<'_>, plaintext: &[u8]) -> Result<WrappedKey, AwsError> {
        let request = self
            .inner
            .client
            .encrypt()
            .key_id(args.key_id)
            .plaintext(Blob::new(plaintext))
            .set_encryption_context(Some(args.context_map()))
            .set_grant_tokens(args.grant_tokens());
        let out = self
            .run(AwsOperation::Encrypt, &args, |cfg| {
                request.clone().customize().config_override(cfg).send()
            })
            .await?;
        Ok(WrappedKey {
            ciphertext: required_blob(out.ciphertext_blob)
                .ok_or_else(|| missing_blob(AwsOperation::Encrypt, args.key_id))?,
            key_id: out.key_id,
        })
    }

    pub(crate) async fn decrypt(
        &self,
        args: CallArgs<'_>,
        ciphertext: &[u8],
    ) -> Result<UnwrappedKey, AwsError> {
        let request = self
            .inner
            .client
            .decrypt()
            .key_id(args.key_id)
            .ciphertext_blob(Blob::new(ciphertext))
            .set_encryption_context(Some(args.context_map()))
            .set_grant_tokens(args.grant_tokens());
        let out = self
            .run(AwsOperation::Decrypt, &args, |cfg| {
                request.clone().customize().config_override(cfg).send()
            })
            .await?;
        Ok(UnwrappedKey {
            plaintext: Zeroizing::new(out.plaintext.map(Blob::into_inner).unwrap_or_default()),
            key_id: out.key_id,
        })
    }

    /// `GenerateDataKeyWithoutPlaintext`: a new key that only KMS can
    /// unwrap (a branch key).
    #[cfg_attr(not(feature = "hierarchy"), allow(dead_code))] // used by the key store
    pub(crate) async fn generate_data_key_without_plaintext(
        &self,
        args: CallArgs<'_>,
        number_of_bytes: i32,
    ) -> Result<Vec<u8>, AwsError> {
        let op = AwsOperation::GenerateDataKeyWithoutPlaintext;
        let request = self
            .inner
            .client
            .generate_data_key_without_plaintext()
            .key_id(args.key_id)
            .number_of_bytes(number_of_bytes)
            .set_encryption_context(Some(args.context_map()))
            .set_grant_tokens(args.grant_tokens());
        let out = self
            .run(op, &args, |cfg| {
                request.clone().customize().config_override(cfg).send()
            })
            .await?;
        required_blob(out.ciphertext_blob).ok_or_else(|| missing_blob(op, args.key_id))
    }

    /// `ReEncrypt` from `args.key_id` under `args.context` to the same key
    /// under `destination` (the ACTIVE copy of a branch key; with the same
    /// context, authenticating an item).
    #[cfg_attr(not(feature = "hierarchy"), allow(dead_code))] // used by the key store
    pub(crate) async fn re_encrypt(
        &self,
        args: CallArgs<'_>,
        destination: &crate::EncryptionContext,
        ciphertext: &[u8],
    ) -> Result<Vec<u8>, AwsError> {
        let op = AwsOperation::ReEncrypt;
        let destination: HashMap<String, String> = destination
            .iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        let request = self
            .inner
            .client
            .re_encrypt()
            .source_key_id(args.key_id)
            .destination_key_id(args.key_id)
            .ciphertext_blob(Blob::new(ciphertext))
            .set_source_encryption_context(Some(args.context_map()))
            .set_destination_encryption_context(Some(destination))
            .set_grant_tokens(args.grant_tokens());
        let out = self
            .run(op, &args, |cfg| {
                request.clone().customize().config_override(cfg).send()
            })
            .await?;
        required_blob(out.ciphertext_blob).ok_or_else(|| missing_blob(op, args.key_id))
    }

    /// `Decrypt` of an RSA ciphertext (the KMS RSA keyring): the
    /// encryption algorithm, no encryption context.
    pub(crate) async fn decrypt_rsa(
        &self,
        args: CallArgs<'_>,
        ciphertext: &[u8],
        algorithm: &str,
    ) -> Result<UnwrappedKey, AwsError> {
        let request = self
            .inner
            .client
            .decrypt()
            .key_id(args.key_id)
            .ciphertext_blob(Blob::new(ciphertext))
            .encryption_algorithm(sdk::types::EncryptionAlgorithmSpec::from(algorithm))
            .set_grant_tokens(args.grant_tokens());
        let out = self
            .run(AwsOperation::Decrypt, &args, |cfg| {
                request.clone().customize().config_override(cfg).send()
            })
            .await?;
        Ok(UnwrappedKey {
            plaintext: Zeroizing::new(out.plaintext.map(Blob::into_inner).unwrap_or_default()),
            key_id: out.key_id,
        })
    }

    /// `GetPublicKey`: the DER SubjectPublicKeyInfo, the key id KMS names,
    /// and the key usage.
    pub(crate) async fn get_public_key(&self, args: CallArgs<'_>) -> Result<PublicKeyOut, AwsError> {
        let op = AwsOperation::GetPublicKey;
        let request = self
            .inner
            .client
            .get_public_key()
            .key_id(args.key_id)
            .set_grant_tokens(args.grant_tokens());
        let out = self
            .run(op, &args, |cfg| {
                request.clone().customize().config_override(cfg).send()
            })
            .await?;
        Ok(PublicKeyOut {
            der: required_blob(out.public_key).ok_or_else(|| {
                AwsError::new(AwsErrorKind::InvalidResponse, op, args.key_id)
                    .with_message("the response has no PublicKey")
            })?,
            key_id: out.key_id,
            key_usage: out.key_usage.map(|u| u.as_str().to_owned()),
        })
    }

    /// `DeriveSharedSecret` (ECDH) of the KMS key with `peer_der` (a DER
    /// SubjectPublicKeyInfo): the shared secret and the key id KMS names.
    pub(crate) async fn derive_shared_secret(
        &self,
        args: CallArgs<'_>,
        peer_der: &[u8],
    ) -> Result<UnwrappedKey, AwsError> {
        let request = self
            .inner
            .client
            .derive_shared_secret()
            .key_id(args.key_id)
            .key_agreement_algorithm(sdk::types::KeyAgreementAlgorithmSpec::Ecdh)
            .public_key(Blob::new(peer_der))
            .set_grant_tokens(args.grant_tokens());
        let out = self
            .run(AwsOperation::DeriveSharedSecret, &args, |cfg| {
                request.clone().customize().config_override(cfg).send()
            })
            .await?;
        Ok(UnwrappedKey {
            plaintext: Zeroizing::new(out.shared_secret.map(Blob::into_inner).unwrap_or_default()),
            key_id: out.key_id,
        })
    }

    pub(crate) fn sts_client(&self) -> Option<&aws_sdk_sts::Client> {
        self.inner.sts.as_ref()
    }
}

/// What [`KmsClient::resolve_credentials`] reports: never the secret.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct CredentialInfo {
    /// The provider that supplied them (e.g. `EcsContainer`).
    pub provider: &'static str,
    /// The access key id (not secret; identifies the key or session).
    pub access_key_id: String,
    /// When they expire, if they do.
    pub expiry: Option<std::time::SystemTime>,
    /// The account, when the provider says.
    pub account_id: Option<String>,
}

/// A wrapped key KMS must return: missing or empty is an invalid response
/// (an empty EDK would make a message no one can decrypt).
fn required_blob(blob: Option<Blob>) -> Option<Vec<u8>> {
    blob.map(Blob::into_inner).filter(|b| !b.is_empty())
}

fn missing_blob(op: AwsOperation, key_id: &str) -> AwsError {
    AwsError::new(AwsErrorKind::InvalidResponse, op, key_id)
        .with_message("the response has no CiphertextBlob")
}

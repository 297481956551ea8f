//! The default credential chain, each provider named, with an IMDS client
//! that retries connect timeouts.

use std::sync::{Arc, Mutex};

use aws_config::ecs::EcsCredentialsProvider;
use aws_config::environment::EnvironmentVariableCredentialsProvider;
use aws_config::imds::credentials::ImdsCredentialsProvider;
use aws_config::meta::credentials::CredentialsProviderChain;
use aws_config::profile::ProfileFileCredentialsProvider;
use aws_config::provider_config::ProviderConfig;
use aws_config::web_identity_token::WebIdentityTokenCredentialsProvider;
use aws_credential_types::provider::{future, ProvideCredentials, SharedCredentialsProvider};
use aws_credential_types::Credentials;

use super::*;

/// The provider last asked for credentials, written by [`Named`].
pub(crate) type Slot = Arc<Mutex<Option<&'static str>>>;

/// A chain member that records its name when the chain asks it.
#[derive(Debug)]
pub(crate) struct Named<P> {
    name: &'static str,
    slot: Slot,
    inner: P,
}

impl<P: ProvideCredentials> ProvideCredentials for Named<P> {
    fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        *self.slot.lock().unwrap_or_else(|p| p.into_inner()) = Some(self.name);
        self.inner.provide_credentials()
    }

    fn fallback_on_interrupt(&self) -> Option<Credentials> {
        self.inner.fallback_on_interrupt()
    }
}

/// The default chain (environment, profile, web identity, container, IMDS)
/// built from aws-config's own providers, each named, with envseal's IMDS
/// client.
pub(crate) async fn default_chain(
    options: &CredentialOptions,
    region: Option<aws_config::Region>,
    profile: Option<&str>,
    use_fips: Option<bool>,
) -> (SharedCredentialsProvider, Slot) {
    let region = match region {
        Some(r) => Some(r),
        None => {
            let mut chain = aws_config::default_provider::region::DefaultRegionChain::builder();
            if let Some(p) = profile {
                chain = chain.profile_name(p);
            }
            chain.build().region().await
        }
    };
    let conf = ProviderConfig::default().with_region(region);
    // The providers' own STS calls (web identity, a profile's role) follow
    // the FIPS endpoint setting (the builder's, else the environment's or
    // the profile's) and, in the FIPS build, the FIPS HTTPS client.
    let use_fips = match use_fips {
        Some(f) => Some(f),
        None => aws_config::default_provider::use_fips::use_fips_provider(&conf).await,
    };
    let conf = conf.with_use_fips(use_fips);
    #[cfg(feature = "fips")]
    let conf = conf.with_http_client(crate::kms::endpoints::fips_https_client());
    let slot = Slot::default();
    let named = |name, inner| Named {
        name,
        slot: Arc::clone(&slot),
        inner,
    };
    let from_profile = named(
        PROVIDER_PROFILE,
        SharedCredentialsProvider::new({
            let mut b = ProfileFileCredentialsProvider::builder().configure(&conf);
            if let Some(p) = profile {
                b = b.profile_name(p);
            }
            b.build()
        }),
    );
    // A profile named explicitly is not shadowed by keys in the
    // environment (as botocore drops its environment provider then).
    let chain = match profile {
        Some(_) => CredentialsProviderChain::first_try(PROVIDER_PROFILE, from_profile),
        None => CredentialsProviderChain::first_try(
            PROVIDER_ENVIRONMENT,
            named(
                PROVIDER_ENVIRONMENT,
                SharedCredentialsProvider::new(EnvironmentVariableCredentialsProvider::new()),
            ),
        )
        .or_else(PROVIDER_PROFILE, from_profile),
    };
    let chain = chain
        .or_else(
            PROVIDER_WEB_IDENTITY,
            named(
                PROVIDER_WEB_IDENTITY,
                SharedCredentialsProvider::new(
                    WebIdentityTokenCredentialsProvider::builder()
                        .configure(&conf)
                        .build(),
                ),
            ),
        )
        .or_else(
            PROVIDER_CONTAINER,
            named(
                PROVIDER_CONTAINER,
                SharedCredentialsProvider::new(EcsCredentialsProvider::builder().configure(&conf).build()),
            ),
        )
        .or_else(
            PROVIDER_IMDS,
            named(
                PROVIDER_IMDS,
                SharedCredentialsProvider::new(
                    ImdsCredentialsProvider::builder()
                        .configure(&conf)
                        .imds_client(options.imds_client(&conf))
                        .build(),
                ),
            ),
        );
    (SharedCredentialsProvider::new(chain), slot)
}

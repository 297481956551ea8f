//! Where the AWS clients' calls go, for `envseal doctor` and logs: each
//! service's endpoint as the SDK resolves it for the client's region and
//! FIPS setting (`use_fips_endpoint`, `AWS_USE_FIPS_ENDPOINT`), or the URL
//! configured in its place; and the TLS provider of the HTTPS client.
//!
//! A configured endpoint (an endpoint option, `AWS_ENDPOINT_URL_<SERVICE>`
//! or `AWS_ENDPOINT_URL`) is used as given, FIPS setting or not: AWS's
//! endpoint rules refuse FIPS with a custom endpoint ("FIPS and custom
//! endpoint are not supported"), and a FIPS VPC endpoint is named by its
//! URL. The report then also names the FIPS endpoint the region has.

use std::fmt;

/// One service's endpoint, from [`KmsClient::endpoints`](super::KmsClient::endpoints).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ServiceEndpoint {
    /// `KMS`, `STS` or `DynamoDB`.
    pub service: &'static str,
    /// The URL the calls go to (`None`: no region to resolve one for).
    pub url: Option<String>,
    /// Whether `url` is the service's FIPS endpoint, chosen by the FIPS
    /// setting.
    pub fips: bool,
    /// The URL was configured in place of the resolved endpoint; the FIPS
    /// setting does not apply to it.
    pub configured: bool,
    /// With `configured` and the FIPS setting on: the FIPS endpoint the
    /// region has, which the configured URL stands in for.
    pub fips_url: Option<String>,
}

impl fmt::Display for ServiceEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let url = self.url.as_deref().unwrap_or("(no region)");
        match (self.configured, self.fips, &self.fips_url) {
            (true, _, Some(fips)) => write!(
                f,
                "{}: {url} (configured; the FIPS endpoint would be {fips})",
                self.service
            ),
            (true, _, None) => write!(f, "{}: {url} (configured)", self.service),
            (false, true, _) => write!(f, "{}: {url} (FIPS endpoint)", self.service),
            (false, false, _) => write!(f, "{}: {url}", self.service),
        }
    }
}

/// The endpoint settings a client was built with.
#[derive(Clone, Debug, Default)]
pub(crate) struct EndpointSettings {
    /// `use_fips_endpoint` as the client resolved it (builder, else the
    /// shared config: `AWS_USE_FIPS_ENDPOINT`, the profile's `use_fips_endpoint`).
    pub(crate) use_fips: bool,
    /// URLs configured for KMS, STS and DynamoDB.
    pub(crate) kms: Option<String>,
    pub(crate) sts: Option<String>,
    #[cfg_attr(not(feature = "hierarchy"), allow(dead_code))] // reported with the key store
    pub(crate) dynamodb: Option<String>,
    /// The HTTPS client's TLS provider, as [`KmsClient::tls_provider`](super::KmsClient::tls_provider) names it.
    pub(crate) tls: &'static str,
}

/// The URL configured for a service in `config`, looked up as the SDK's
/// service config does it (`AWS_ENDPOINT_URL_<SERVICE>`, the profile's
/// `[services]` `endpoint_url`, honouring
/// `AWS_IGNORE_CONFIGURED_ENDPOINT_URLS`), else the config's global
/// endpoint (`AWS_ENDPOINT_URL`, the profile's `endpoint_url`).
/// `service_id`: `KMS`, `STS`, `DynamoDB`, as the SDKs name themselves.
pub(crate) fn configured_url(config: &aws_config::SdkConfig, service_id: &str) -> Option<String> {
    let key = aws_types::service_config::ServiceConfigKey::builder()
        .service_id(service_id)
        .env("AWS_ENDPOINT_URL")
        .profile("endpoint_url")
        .build()
        .ok()?;
    config
        .service_config()
        .and_then(|c| c.load_config(key))
        .or_else(|| config.endpoint_url().map(str::to_owned))
}

/// Resolves an SDK's default endpoint for `region` with FIPS on or off.
macro_rules! resolve {
    ($sdk:ident, $region:expr, $fips:expr) => {{
        use $sdk::config::endpoint::{DefaultResolver, Params, ResolveEndpoint};
        match Params::builder()
            .region($region)
            .use_fips($fips)
            .use_dual_stack(false)
            .build()
        {
            Ok(params) => DefaultResolver::new()
                .resolve_endpoint(&params)
                .await
                .ok()
                .map(|e| e.url().to_owned()),
            Err(_) => None,
        }
    }};
}

/// The endpoint of one service: the configured URL, or the resolved one.
fn endpoint(
    service: &'static str,
    configured: Option<&str>,
    use_fips: bool,
    resolved: Option<String>,
    fips_url: Option<String>,
) -> ServiceEndpoint {
    match configured {
        Some(url) => ServiceEndpoint {
            service,
            url: Some(url.to_owned()),
            fips: false,
            configured: true,
            fips_url: fips_url.filter(|_| use_fips),
        },
        None => ServiceEndpoint {
            service,
            url: resolved,
            fips: use_fips,
            configured: false,
            fips_url: None,
        },
    }
}

/// Every service's endpoint for `region` under `settings`.
pub(crate) async fn endpoints(settings: &EndpointSettings, region: Option<&str>) -> Vec<ServiceEndpoint> {
    let fips = settings.use_fips;
    let mut out = Vec::new();
    let (kms, kms_fips) = match region {
        Some(r) => (resolve!(aws_sdk_kms, r, fips), resolve!(aws_sdk_kms, r, true)),
        None => (None, None),
    };
    out.push(endpoint("KMS", settings.kms.as_deref(), fips, kms, kms_fips));
    let (sts, sts_fips) = match region {
        Some(r) => (resolve!(aws_sdk_sts, r, fips), resolve!(aws_sdk_sts, r, true)),
        None => (None, None),
    };
    out.push(endpoint("STS", settings.sts.as_deref(), fips, sts, sts_fips));
    #[cfg(feature = "hierarchy")]
    {
        let (ddb, ddb_fips) = match region {
            Some(r) => (
                resolve!(aws_sdk_dynamodb, r, fips),
                resolve!(aws_sdk_dynamodb, r, true),
            ),
            None => (None, None),
        };
        out.push(endpoint(
            "DynamoDB",
            settings.dynamodb.as_deref(),
            fips,
            ddb,
            ddb_fips,
        ));
    }
    out
}

/// The TLS provider of the HTTPS client envseal builds: rustls on the
/// FIPS module's provider in the FIPS build, rustls on aws-lc-rs (the
/// SDK's default HTTPS client) elsewhere.
pub(crate) const fn default_tls() -> &'static str {
    if cfg!(feature = "fips") {
        "rustls on aws-lc-rs, the FIPS provider (AWS-LC-FIPS)"
    } else {
        "rustls on aws-lc-rs (the AWS SDK's default HTTPS client)"
    }
}

/// The HTTPS client of the FIPS build: hyper and rustls with rustls's FIPS
/// crypto provider (`default_fips_provider`: AWS-LC-FIPS, FIPS-approved
/// cipher suites and key exchanges only), for KMS, STS and DynamoDB.
#[cfg(feature = "fips")]
pub(crate) fn fips_https_client() -> aws_smithy_runtime_api::client::http::SharedHttpClient {
    use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode};
    aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(CryptoMode::AwsLcFips))
        .build_https()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(use_fips: bool, kms: Option<&str>) -> EndpointSettings {
        EndpointSettings {
            use_fips,
            kms: kms.map(str::to_owned),
            sts: None,
            dynamodb: None,
            tls: default_tls(),
        }
    }

    /// The SDKs' endpoint rules, resolved offline: FIPS names with the
    /// setting on, the regular ones without, and a configured URL kept
    /// with the FIPS endpoint it stands in for.
    #[tokio::test]
    async fn fips_setting_picks_the_services_fips_endpoints() {
        let on = endpoints(&settings(true, None), Some("us-west-2")).await;
        assert_eq!(
            on[0].url.as_deref(),
            Some("https://kms-fips.us-west-2.amazonaws.com")
        );
        assert!(on[0].fips && !on[0].configured);
        assert_eq!(
            on[1].url.as_deref(),
            Some("https://sts-fips.us-west-2.amazonaws.com")
        );
        #[cfg(feature = "hierarchy")]
        assert_eq!(
            on[2].url.as_deref(),
            Some("https://dynamodb-fips.us-west-2.amazonaws.com")
        );
        assert_eq!(
            on[0].to_string(),
            "KMS: https://kms-fips.us-west-2.amazonaws.com (FIPS endpoint)"
        );

        let off = endpoints(&settings(false, None), Some("us-west-2")).await;
        assert_eq!(off[0].url.as_deref(), Some("https://kms.us-west-2.amazonaws.com"));
        assert!(!off[0].fips);

        let local = endpoints(&settings(true, Some("http://127.0.0.1:4566")), Some("eu-west-1")).await;
        assert_eq!(local[0].url.as_deref(), Some("http://127.0.0.1:4566"));
        assert!(local[0].configured && !local[0].fips);
        assert_eq!(
            local[0].to_string(),
            "KMS: http://127.0.0.1:4566 (configured; the FIPS endpoint would be https://kms-fips.eu-west-1.amazonaws.com)"
        );
        let none = endpoints(&settings(true, None), None).await;
        assert_eq!(none[0].url, None);
    }
}

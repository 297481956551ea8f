//! Which credential sources the environment configures, and which of them
//! environment keys shadow.

use std::sync::Once;
use std::time::Duration;

use aws_config::imds;
use aws_config::provider_config::ProviderConfig;

use super::*;

/// Which credential sources the environment configures, in the default
/// chain's order. Environment keys come first in the chain, so when they are
/// set every role source after them is ignored: a container or instance role
/// silently *shadowed* by keys someone left in the environment.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CredentialSources {
    /// `AWS_ACCESS_KEY_ID` (and `AWS_SECRET_ACCESS_KEY`) are set.
    pub env_keys: bool,
    /// `AWS_PROFILE`, when set.
    pub profile: Option<String>,
    /// `AWS_WEB_IDENTITY_TOKEN_FILE` and `AWS_ROLE_ARN` are set.
    pub web_identity: bool,
    /// The container credentials variable that is set
    /// (`AWS_CONTAINER_CREDENTIALS_RELATIVE_URI` or `…_FULL_URI`).
    pub container: Option<&'static str>,
    /// `AWS_EC2_METADATA_DISABLED=true`: IMDS is not consulted.
    pub imds_disabled: bool,
}

impl CredentialSources {
    /// Reads the process environment.
    pub fn from_env() -> Self {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads variables through `lookup` (a map in tests).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Self {
        let set = |name: &str| lookup(name).is_some_and(|v| !v.trim().is_empty());
        let container = [
            "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
            "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        ]
        .into_iter()
        .find(|name| set(name));
        CredentialSources {
            env_keys: set("AWS_ACCESS_KEY_ID"),
            profile: lookup("AWS_PROFILE").filter(|v| !v.trim().is_empty()),
            web_identity: set("AWS_WEB_IDENTITY_TOKEN_FILE") && set("AWS_ROLE_ARN"),
            container,
            imds_disabled: lookup("AWS_EC2_METADATA_DISABLED")
                .is_some_and(|v| v.trim().eq_ignore_ascii_case("true")),
        }
    }

    /// The role sources the environment keys hide, as `(provider, why)`;
    /// empty when no keys are set or nothing else is configured. IMDS is not
    /// listed: whether an instance role exists takes a network call (see
    /// `envseal doctor`).
    pub fn shadowed(&self) -> Vec<(&'static str, String)> {
        if !self.env_keys {
            return Vec::new();
        }
        let mut out = Vec::new();
        if let Some(p) = &self.profile {
            out.push((PROVIDER_PROFILE, format!("AWS_PROFILE={p}")));
        }
        if self.web_identity {
            out.push((PROVIDER_WEB_IDENTITY, "AWS_WEB_IDENTITY_TOKEN_FILE".to_owned()));
        }
        if let Some(var) = self.container {
            out.push((PROVIDER_CONTAINER, var.to_owned()));
        }
        out
    }

    /// One line for logs and diagnostics when keys shadow a role source.
    pub fn shadowing_warning(&self) -> Option<String> {
        let shadowed = self.shadowed();
        if shadowed.is_empty() {
            return None;
        }
        let list: Vec<String> = shadowed.iter().map(|(p, why)| format!("{p} ({why})")).collect();
        Some(format!(
            "AWS_ACCESS_KEY_ID in the environment shadows {}: the static keys are used and the role is ignored",
            list.join(", ")
        ))
    }
}

/// Asks IMDS, once and within `bound`, which instance role the host has
/// (`None`: no role, IMDS disabled or not reachable). Used by `envseal
/// doctor` to tell whether environment keys hide an instance role; never
/// called on the encrypt path.
pub(crate) async fn probe_instance_role(bound: Duration) -> Option<String> {
    let conf = ProviderConfig::default();
    let client = imds::Client::builder()
        .configure(&conf)
        .max_attempts(1)
        .connect_timeout(bound)
        .read_timeout(bound)
        .operation_attempt_timeout(bound)
        .operation_timeout(bound)
        .build();
    let listing = tokio::time::timeout(bound, client.get("/latest/meta-data/iam/security-credentials/"))
        .await
        .ok()?
        .ok()?;
    let role = listing.as_ref().lines().next()?.trim().to_owned();
    (!role.is_empty()).then_some(role)
}

/// Warns once per process, through `tracing`, when environment keys shadow
/// a role source.
pub(crate) fn warn_if_shadowed(sources: &CredentialSources) {
    static WARNED: Once = Once::new();
    if let Some(line) = sources.shadowing_warning() {
        WARNED.call_once(|| tracing::warn!(target: "envseal::credentials", "{line}"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn sources(vars: &[(&str, &str)]) -> CredentialSources {
        let map: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        CredentialSources::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn shadowing() {
        let keys = ("AWS_ACCESS_KEY_ID", "AKIAEXAMPLE");
        let container = ("AWS_CONTAINER_CREDENTIALS_FULL_URI", "http://127.0.0.1:1/creds");
        assert!(sources(&[keys]).shadowed().is_empty());
        assert!(sources(&[container]).shadowed().is_empty());
        let s = sources(&[keys, container]);
        assert_eq!(s.container, Some("AWS_CONTAINER_CREDENTIALS_FULL_URI"));
        assert_eq!(s.shadowed().len(), 1);
        assert_eq!(s.shadowed()[0].0, PROVIDER_CONTAINER);
        let line = s.shadowing_warning().unwrap();
        assert!(
            line.contains("EcsContainer") && line.contains("FULL_URI"),
            "{line}"
        );
        let s = sources(&[
            keys,
            ("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "/v2/creds"),
            ("AWS_WEB_IDENTITY_TOKEN_FILE", "/t"),
            ("AWS_ROLE_ARN", "arn:aws:iam::1:role/r"),
            ("AWS_PROFILE", "dev"),
        ]);
        let names: Vec<_> = s.shadowed().into_iter().map(|(p, _)| p).collect();
        assert_eq!(
            names,
            [PROVIDER_PROFILE, PROVIDER_WEB_IDENTITY, PROVIDER_CONTAINER]
        );
        // A token file without a role is not a web identity source; empty is unset.
        let s = sources(&[keys, ("AWS_WEB_IDENTITY_TOKEN_FILE", "/t"), ("AWS_PROFILE", " ")]);
        assert!(s.shadowed().is_empty());
        assert!(sources(&[("AWS_EC2_METADATA_DISABLED", "TRUE")]).imds_disabled);
        assert!(!sources(&[("AWS_EC2_METADATA_DISABLED", "false")]).imds_disabled);
    }
}

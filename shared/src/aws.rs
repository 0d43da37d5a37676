//! How every function starts and builds its SDK configuration, once, at init.
//!
//! In AWS nearly every invocation of an eddo function is a cold start, so init is latency and
//! cost users see. Two choices keep it near a bare `lambda_runtime` function's (BENCHMARKS.md,
//! "Cold starts"), each without changing what the SDK trusts or which settings it honours:
//!
//! - **One CA bundle.** The SDK's HTTPS client loads the platform's root certificates when the
//!   first client is built: the distribution's bundle file and then every file in its
//!   certificate directories, the same roots again. [`start`] points it at the bundle alone
//!   (`SSL_CERT_FILE`, which rustls-native-certs honours), unless `SSL_CERT_FILE` or
//!   `SSL_CERT_DIR` is already set: then the user's choice stands.
//! - **Lambda's region and credentials, read directly.** Lambda gives every function its region
//!   and credentials as environment variables, which the SDK's default chains would find first
//!   anyway; [`load`] reads them there instead of building the chains (an STS client for web
//!   identity, IMDS, SSO, profile providers) that would never answer. Everything else (timeouts
//!   here; endpoint URLs, FIPS and dual-stack endpoints, retry mode, from the environment)
//!   still goes through aws-config's loader.
//! - **One HTTPS client for every SDK client.** Left to itself, each SDK client (DynamoDB,
//!   EventBridge, SSM, ...) builds its own HTTPS client, and each of those its own TLS
//!   configuration with its own copy of the root store, parsed again. [`load`] gives the
//!   configuration one, built exactly as the SDK builds its default (rustls with aws-lc, the
//!   proxy settings from the environment), so every client shares it.

use std::future::Future;
use std::time::Duration;

use aws_config::environment::EnvironmentVariableCredentialsProvider;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_smithy_http_client::proxy::ProxyConfig;
use aws_smithy_http_client::{Builder, ConnectorBuilder, tls};
use aws_smithy_runtime_api::client::http::SharedHttpClient;

/// Runs a function's `main` on a single-threaded Tokio runtime (a Lambda environment handles
/// one event at a time), after choosing the one CA bundle the SDK loads ([`ca_bundle`]).
#[allow(unsafe_code)]
pub fn start<F>(main: F) -> Result<(), lambda_runtime::Error>
where
    F: Future<Output = Result<(), lambda_runtime::Error>>,
{
    if let Some(bundle) = ca_bundle() {
        // SAFETY: this runs first in `main`, before the runtime below is built: the process has
        // one thread, so nothing can read the environment while it changes.
        unsafe { std::env::set_var("SSL_CERT_FILE", bundle) };
    }
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(main)
}

/// The CA bundle file the SDK should load on its own: the first of the distributions' bundle
/// files that exists, in openssl-probe's order (the file rustls-native-certs reads first, before
/// the directories), or `None` when `SSL_CERT_FILE` or `SSL_CERT_DIR` is set or no bundle exists
/// (the SDK then probes as it always does).
pub fn ca_bundle() -> Option<std::path::PathBuf> {
    ca_bundle_unless_chosen(|k| std::env::var_os(k))
}

fn ca_bundle_unless_chosen(
    var: impl Fn(&str) -> Option<std::ffi::OsString>,
) -> Option<std::path::PathBuf> {
    if ["SSL_CERT_FILE", "SSL_CERT_DIR"]
        .iter()
        .any(|k| var(k).is_some())
    {
        return None;
    }
    openssl_probe::probe().cert_file
}

/// Loads region and credentials from the Lambda environment. Timeouts are bounded so a slow AWS
/// call fails (and is retried) well inside a webhook sender's 10 s window and the function's own
/// timeout. `AWS_ENDPOINT_URL` (set by the local stack) points every client at an emulator.
pub async fn load() -> SdkConfig {
    let loader = aws_config::defaults(BehaviorVersion::latest()).timeout_config(
        TimeoutConfig::builder()
            .connect_timeout(Duration::from_secs(1))
            .operation_attempt_timeout(Duration::from_secs(2))
            .operation_timeout(Duration::from_secs(5))
            .build(),
    );
    let loader = loader.http_client(https_client());
    match lambda_region(|k| std::env::var(k).ok()) {
        Some(region) => loader
            .region(Region::new(region))
            .credentials_provider(EnvironmentVariableCredentialsProvider::new()),
        None => loader,
    }
    .load()
    .await
}

/// The HTTPS client the SDK would build for each client (aws-smithy-runtime's
/// `default_https_client` for the current behavior version: rustls with aws-lc, the proxy
/// settings of the environment, the client's connector settings and sleep), built once.
fn https_client() -> SharedHttpClient {
    Builder::new().build_with_connector_fn(|settings, components| {
        let mut connector = ConnectorBuilder::default().tls_provider(tls::Provider::Rustls(
            tls::rustls_provider::CryptoMode::AwsLc,
        ));
        connector.set_connector_settings(settings.cloned());
        if let Some(components) = components {
            connector.set_sleep_impl(components.sleep_impl());
        }
        connector.set_proxy_config(Some(ProxyConfig::from_env()));
        connector.build()
    })
}

/// The region, when the environment holds what Lambda puts there: `AWS_REGION` and a key pair.
/// The default chains would take the same values first (environment before profiles, web
/// identity, containers and IMDS); anywhere else they run in full.
fn lambda_region(var: impl Fn(&str) -> Option<String>) -> Option<String> {
    let set = |k| var(k).filter(|v| !v.is_empty());
    set("AWS_ACCESS_KEY_ID")?;
    set("AWS_SECRET_ACCESS_KEY")?;
    set("AWS_REGION")
}

/// An SDK client built the first time a path needs it, not at init: a client costs its endpoint
/// rules and runtime plugins (BENCHMARKS.md, "Cold starts"), and some serve only rare paths (a
/// scan's confirmation, an alarm's). Cloning shares the one client.
pub struct LazyClient<C> {
    sdk: SdkConfig,
    build: fn(&SdkConfig) -> C,
    client: std::sync::Arc<std::sync::OnceLock<C>>,
}

impl<C> Clone for LazyClient<C> {
    fn clone(&self) -> Self {
        LazyClient {
            sdk: self.sdk.clone(),
            build: self.build,
            client: self.client.clone(),
        }
    }
}

impl<C> LazyClient<C> {
    /// A client `build` makes from `sdk` at its first use.
    pub fn new(sdk: &SdkConfig, build: fn(&SdkConfig) -> C) -> LazyClient<C> {
        LazyClient {
            sdk: sdk.clone(),
            build,
            client: std::sync::Arc::default(),
        }
    }

    /// This one, already built as `client` (one that counts its calls, in tests).
    pub fn with(&self, client: C) -> LazyClient<C> {
        LazyClient {
            sdk: self.sdk.clone(),
            build: self.build,
            client: std::sync::Arc::new(std::sync::OnceLock::from(client)),
        }
    }

    /// The client, built now if this is its first use.
    pub fn get(&self) -> &C {
        self.client.get_or_init(|| (self.build)(&self.sdk))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(pairs: &'a [(&str, &str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |k| {
            pairs
                .iter()
                .find(|(name, _)| *name == k)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn a_users_own_trust_store_stands() {
        for chosen in ["SSL_CERT_FILE", "SSL_CERT_DIR"] {
            let var = |k: &str| (k == chosen).then(|| "/etc/my-ca".into());
            assert_eq!(ca_bundle_unless_chosen(var), None, "{chosen}");
        }
        // Otherwise, where the platform has a bundle, that file alone.
        if let Some(file) = ca_bundle_unless_chosen(|_| None) {
            let text = std::fs::read_to_string(&file).unwrap();
            assert!(text.contains("-----BEGIN CERTIFICATE-----"), "{file:?}");
        }
    }

    #[test]
    fn lambdas_region_and_keys_are_read_directly() {
        let lambda = [
            ("AWS_REGION", "eu-west-1"),
            ("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE"),
            ("AWS_SECRET_ACCESS_KEY", "secret"),
            ("AWS_SESSION_TOKEN", "token"),
        ];
        assert_eq!(lambda_region(env(&lambda)).as_deref(), Some("eu-west-1"));
    }

    #[test]
    fn anything_short_of_lambdas_environment_takes_the_default_chains() {
        // A profile, a container or web identity: no keys in the environment.
        assert_eq!(lambda_region(env(&[("AWS_REGION", "eu-west-1")])), None);
        assert_eq!(
            lambda_region(env(&[
                ("AWS_REGION", "eu-west-1"),
                ("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE"),
                ("AWS_SECRET_ACCESS_KEY", ""),
            ])),
            None
        );
        // Keys but no region: the region chain (profile, IMDS) decides.
        assert_eq!(
            lambda_region(env(&[
                ("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE"),
                ("AWS_SECRET_ACCESS_KEY", "secret"),
            ])),
            None
        );
    }
}

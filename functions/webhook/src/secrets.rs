//! The webhook secrets, from Secrets Manager, cached for a TTL.
//!
//! The secret is a JSON object with one key per provider (`github`, `gitlab`, `gitlab_signing`,
//! `standard_webhooks`). Both the `AWSCURRENT` and the `AWSPREVIOUS` versions are accepted, so a
//! rotation never rejects deliveries signed with the old value while senders are updated.

use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_secretsmanager::operation::get_secret_value::GetSecretValueError;
use serde::Deserialize;
use tokio::sync::Mutex;

use eddo::Error;

/// One version of the secret document. Unknown keys are ignored; an absent or empty key means the
/// provider is not configured, and its deliveries are refused.
#[derive(Default, Deserialize)]
pub struct WebhookSecrets {
    #[serde(default)]
    pub github: Option<String>,
    #[serde(default)]
    pub gitlab: Option<String>,
    #[serde(default)]
    pub gitlab_signing: Option<String>,
    #[serde(default)]
    pub standard_webhooks: Option<String>,
}

// Never print secret values, not even in a debug log.
impl std::fmt::Debug for WebhookSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let set = |v: &Option<String>| v.as_deref().is_some_and(|s| !s.is_empty());
        f.debug_struct("WebhookSecrets")
            .field("github", &set(&self.github))
            .field("gitlab", &set(&self.gitlab))
            .field("gitlab_signing", &set(&self.gitlab_signing))
            .field("standard_webhooks", &set(&self.standard_webhooks))
            .finish()
    }
}

/// The secrets a delivery may be signed with: the current version, then the previous one.
#[derive(Debug, Default)]
pub struct SecretSet {
    pub versions: Vec<WebhookSecrets>,
}

impl SecretSet {
    /// The non-empty values of one key across versions.
    pub fn values(&self, key: fn(&WebhookSecrets) -> &Option<String>) -> Vec<&[u8]> {
        self.versions
            .iter()
            .filter_map(|v| key(v).as_deref())
            .filter(|s| !s.is_empty())
            .map(str::as_bytes)
            .collect()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// Secrets Manager could not be reached or answered with a fault: the sender should retry.
    #[error(transparent)]
    Unavailable(Error),
    /// The secret is missing or not the expected document: every delivery is refused.
    #[error("{0}")]
    Unusable(String),
}

pub struct SecretCache {
    client: aws_sdk_secretsmanager::Client,
    secret_id: String,
    ttl: Duration,
    cached: Mutex<Option<(Instant, Arc<SecretSet>)>>,
}

impl SecretCache {
    pub fn new(
        client: aws_sdk_secretsmanager::Client,
        secret_id: impl Into<String>,
        ttl: Duration,
    ) -> Self {
        SecretCache {
            client,
            secret_id: secret_id.into(),
            ttl,
            cached: Mutex::new(None),
        }
    }

    /// The secrets, fetched on first use and again once the TTL has passed. If a refresh fails
    /// for a transient reason the last good value is kept, so a Secrets Manager blip does not
    /// turn into rejected deliveries.
    pub async fn get(&self) -> Result<Arc<SecretSet>, SecretError> {
        let mut cached = self.cached.lock().await;
        if let Some((at, set)) = cached.as_ref()
            && at.elapsed() < self.ttl
        {
            return Ok(set.clone());
        }
        match self.fetch().await {
            Ok(set) => {
                let set = Arc::new(set);
                *cached = Some((Instant::now(), set.clone()));
                Ok(set)
            }
            Err(SecretError::Unavailable(e)) if cached.is_some() => {
                tracing::warn!(error = %e, "could not refresh the webhook secret; using the cached value");
                Ok(cached.as_ref().map(|(_, s)| s.clone()).unwrap_or_default())
            }
            Err(e) => Err(e),
        }
    }

    async fn fetch(&self) -> Result<SecretSet, SecretError> {
        let (current, previous) =
            tokio::join!(self.version("AWSCURRENT"), self.version("AWSPREVIOUS"));
        let current = current?.ok_or_else(|| {
            SecretError::Unusable(format!("secret {} has no AWSCURRENT value", self.secret_id))
        })?;
        let mut versions = vec![current];
        // A missing previous version is normal (never rotated); a failure to read it is not fatal.
        match previous {
            Ok(Some(p)) => versions.push(p),
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(error = %e, "could not read the previous webhook secret; accepting the current one only")
            }
        }
        Ok(SecretSet { versions })
    }

    async fn version(&self, stage: &str) -> Result<Option<WebhookSecrets>, SecretError> {
        let out = self
            .client
            .get_secret_value()
            .secret_id(&self.secret_id)
            .version_stage(stage)
            .send()
            .await;
        let out = match out {
            Ok(out) => out,
            Err(e)
                if matches!(
                    e.as_service_error(),
                    Some(GetSecretValueError::ResourceNotFoundException(_))
                ) =>
            {
                return Ok(None);
            }
            Err(e) => {
                let err = Error::aws("SecretsManager", "GetSecretValue", e);
                return Err(if err.is_retryable() {
                    SecretError::Unavailable(err)
                } else {
                    SecretError::Unusable(err.to_string())
                });
            }
        };
        let text = out.secret_string().unwrap_or_default();
        if text.trim().is_empty() {
            return Err(SecretError::Unusable(format!(
                "secret {} ({stage}) is empty",
                self.secret_id
            )));
        }
        serde_json::from_str(text).map(Some).map_err(|_| {
            SecretError::Unusable(format!(
                "secret {} ({stage}) is not a JSON object with github, gitlab, gitlab_signing or standard_webhooks keys",
                self.secret_id
            ))
        })
    }
}

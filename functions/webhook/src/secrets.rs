//! The webhook secrets, from Secrets Manager, cached for a TTL.
//!
//! The secret is a JSON object with one key per provider (`github`, `gitlab`, `gitlab_signing`,
//! `standard_webhooks`). The `AWSPREVIOUS` version is accepted beside `AWSCURRENT` for a grace
//! period after a rotation (the current version's creation), so a rotation never rejects
//! deliveries signed with the old value while senders are updated, and revoking a leaked value
//! takes one rotation and the grace period, not two rotations.

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
    /// One Standard Webhooks key per signal sender (`/signals/<name>`), by name.
    #[serde(default)]
    pub senders: std::collections::BTreeMap<String, String>,
    /// One bearer token per CDEvents sender that cannot sign (`/cdevents/<name>`), by name.
    #[serde(default)]
    pub tokens: std::collections::BTreeMap<String, String>,
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
            .field("senders", &self.senders.keys().collect::<Vec<_>>())
            .field("tokens", &self.tokens.keys().collect::<Vec<_>>())
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

    /// The keys of sender `name` (signals, CDEvents) across versions (current, then previous).
    pub fn sender(&self, name: &str) -> Vec<&[u8]> {
        self.named(|v| &v.senders, name)
    }

    /// The bearer tokens of CDEvents sender `name` across versions (current, then previous).
    pub fn token(&self, name: &str) -> Vec<&[u8]> {
        self.named(|v| &v.tokens, name)
    }

    fn named(
        &self,
        map: fn(&WebhookSecrets) -> &std::collections::BTreeMap<String, String>,
        name: &str,
    ) -> Vec<&[u8]> {
        self.versions
            .iter()
            .filter_map(|v| map(v).get(name))
            .filter(|s| !s.is_empty())
            .map(String::as_bytes)
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

/// After a failed refresh, how long the last good value is used before trying again, so an
/// outage costs one slow call every half minute rather than one per delivery.
const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(30);

/// How long after a rotation the previous version is accepted, unless the setting says otherwise.
pub const PREVIOUS_GRACE: Duration = Duration::from_secs(24 * 3600);

pub struct SecretCache {
    client: aws_sdk_secretsmanager::Client,
    secret_id: String,
    ttl: Duration,
    previous_grace: Duration,
    /// The secrets and when to fetch them again.
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
            previous_grace: PREVIOUS_GRACE,
            cached: Mutex::new(None),
        }
    }

    /// Accepts the previous version for `grace` after a rotation.
    pub fn with_previous_grace(mut self, grace: Duration) -> Self {
        self.previous_grace = grace;
        self
    }

    /// The secrets, fetched on first use and again once the TTL has passed. If a refresh fails
    /// for a transient reason the last good value is kept, so a Secrets Manager blip does not
    /// turn into rejected deliveries.
    pub async fn get(&self) -> Result<Arc<SecretSet>, SecretError> {
        let mut cached = self.cached.lock().await;
        if let Some((refresh_at, set)) = cached.as_ref()
            && Instant::now() < *refresh_at
        {
            return Ok(set.clone());
        }
        match (self.fetch().await, cached.take()) {
            (Ok(set), _) => {
                let set = Arc::new(set);
                *cached = Some((Instant::now() + self.ttl, set.clone()));
                Ok(set)
            }
            (Err(SecretError::Unavailable(e)), Some((_, stale))) => {
                tracing::warn!(error = %e, "could not refresh the webhook secret; using the cached value");
                *cached = Some((Instant::now() + RETRY_AFTER_FAILURE, stale.clone()));
                Ok(stale)
            }
            // Unusable: the secret was changed into something wrong; failing closed beats
            // trusting an old value the operator meant to replace.
            (Err(e), _) => Err(e),
        }
    }

    async fn fetch(&self) -> Result<SecretSet, SecretError> {
        let (current, previous) =
            tokio::join!(self.version("AWSCURRENT"), self.version("AWSPREVIOUS"));
        let (current, rotated_at) = current?.ok_or_else(|| {
            SecretError::Unusable(format!("secret {} has no AWSCURRENT value", self.secret_id))
        })?;
        let mut versions = vec![current];
        // The previous version only within the grace period after the rotation that made the
        // current one (an unknown rotation time: the previous version is not accepted).
        let in_grace = rotated_at
            .and_then(|at| std::time::SystemTime::now().duration_since(at).ok())
            .is_some_and(|since| since < self.previous_grace);
        // A missing previous version is normal (never rotated); a failure to read it is not fatal.
        match previous {
            Ok(Some((p, _))) if in_grace => versions.push(p),
            Ok(Some(_)) => {
                tracing::debug!(
                    "the previous webhook secret's grace period has ended; accepting the current one only"
                )
            }
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(error = %e, "could not read the previous webhook secret; accepting the current one only")
            }
        }
        Ok(SecretSet { versions })
    }

    /// The version at `stage`, and when it was created.
    async fn version(
        &self,
        stage: &str,
    ) -> Result<Option<(WebhookSecrets, Option<std::time::SystemTime>)>, SecretError> {
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
        let created = out
            .created_date()
            .and_then(|d| std::time::SystemTime::try_from(*d).ok());
        let text = out.secret_string().unwrap_or_default();
        if text.trim().is_empty() {
            return Err(SecretError::Unusable(format!(
                "secret {} ({stage}) is empty",
                self.secret_id
            )));
        }
        serde_json::from_str(text)
            .map(|v| Some((v, created)))
            .map_err(|_| {
            SecretError::Unusable(format!(
                "secret {} ({stage}) is not a JSON object with github, gitlab, gitlab_signing or standard_webhooks keys",
                self.secret_id
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_secretsmanager::operation::get_secret_value::GetSecretValueOutput;
    use aws_sdk_secretsmanager::types::error::ResourceNotFoundException;
    use aws_smithy_mocks::{Rule, RuleMode, mock, mock_client};

    fn stage(
        name: &'static str,
    ) -> impl Fn(&aws_sdk_secretsmanager::operation::get_secret_value::GetSecretValueInput) -> bool
    {
        move |r| r.version_stage() == Some(name)
    }

    fn value(json: &'static str) -> Rule {
        mock!(aws_sdk_secretsmanager::Client::get_secret_value)
            .match_requests(stage("AWSCURRENT"))
            .then_output(move || GetSecretValueOutput::builder().secret_string(json).build())
    }

    /// The current version, created (rotated in) `ago`.
    fn rotated(json: &'static str, ago: Duration) -> Rule {
        let at =
            aws_sdk_secretsmanager::primitives::DateTime::from(std::time::SystemTime::now() - ago);
        mock!(aws_sdk_secretsmanager::Client::get_secret_value)
            .match_requests(stage("AWSCURRENT"))
            .then_output(move || {
                GetSecretValueOutput::builder()
                    .secret_string(json)
                    .created_date(at)
                    .build()
            })
    }

    fn old_value() -> Rule {
        mock!(aws_sdk_secretsmanager::Client::get_secret_value)
            .match_requests(stage("AWSPREVIOUS"))
            .then_output(|| {
                GetSecretValueOutput::builder()
                    .secret_string(r#"{"github":"old"}"#)
                    .build()
            })
    }

    fn no_previous() -> Rule {
        mock!(aws_sdk_secretsmanager::Client::get_secret_value)
            .match_requests(stage("AWSPREVIOUS"))
            .then_error(|| {
                GetSecretValueError::ResourceNotFoundException(
                    ResourceNotFoundException::builder().build(),
                )
            })
    }

    fn cache(rules: &[&Rule], ttl: Duration) -> SecretCache {
        let client = mock_client!(aws_sdk_secretsmanager, RuleMode::MatchAny, rules);
        SecretCache::new(
            client,
            "arn:aws:secretsmanager:us-east-1:123456789012:secret:eddo",
            ttl,
        )
    }

    #[tokio::test]
    async fn fetched_once_per_ttl_and_without_a_previous_version() {
        let current = value(r#"{"github":"s3cret"}"#);
        let previous = no_previous();
        let c = cache(&[&current, &previous], Duration::from_secs(300));
        for _ in 0..3 {
            let set = c.get().await.unwrap();
            assert_eq!(set.values(|s| &s.github), vec![b"s3cret".as_slice()]);
        }
        assert_eq!((current.num_calls(), previous.num_calls()), (1, 1));
    }

    #[tokio::test]
    async fn both_versions_during_rotation() {
        let current = rotated(r#"{"github":"new"}"#, Duration::from_secs(3600));
        let previous = old_value();
        let c = cache(&[&current, &previous], Duration::from_secs(300));
        let set = c.get().await.unwrap();
        assert_eq!(
            set.values(|s| &s.github),
            vec![b"new".as_slice(), b"old".as_slice()]
        );
    }

    /// A leaked value is revoked by one rotation: past the grace period (or with no known
    /// rotation time) the previous version is no longer accepted.
    #[tokio::test]
    async fn the_previous_version_only_within_its_grace_period() {
        for (current, grace, accepted) in [
            (
                rotated(r#"{"github":"new"}"#, Duration::from_secs(25 * 3600)),
                PREVIOUS_GRACE,
                1,
            ),
            (
                rotated(r#"{"github":"new"}"#, Duration::from_secs(3600)),
                Duration::from_secs(1800),
                1,
            ),
            (
                rotated(r#"{"github":"new"}"#, Duration::from_secs(3600)),
                Duration::from_secs(7200),
                2,
            ),
            (value(r#"{"github":"new"}"#), PREVIOUS_GRACE, 1),
        ] {
            let previous = old_value();
            let c =
                cache(&[&current, &previous], Duration::from_secs(300)).with_previous_grace(grace);
            let set = c.get().await.unwrap();
            assert_eq!(set.values(|s| &s.github).len(), accepted, "{grace:?}");
            assert_eq!(set.values(|s| &s.github)[0], b"new".as_slice());
        }
    }

    #[tokio::test]
    async fn a_malformed_secret_is_unusable_and_never_quoted() {
        let current = value("github=hunter2");
        let previous = no_previous();
        let c = cache(&[&current, &previous], Duration::from_secs(300));
        let err = c.get().await.unwrap_err();
        assert!(matches!(err, SecretError::Unusable(_)));
        assert!(!err.to_string().contains("hunter2"), "{err}");
        let blank = value("  ");
        let c = cache(&[&blank, &previous], Duration::from_secs(300));
        assert!(c.get().await.unwrap_err().to_string().contains("is empty"));
    }

    #[tokio::test]
    async fn a_missing_secret_is_unusable() {
        let none = mock!(aws_sdk_secretsmanager::Client::get_secret_value).then_error(|| {
            GetSecretValueError::ResourceNotFoundException(
                ResourceNotFoundException::builder().build(),
            )
        });
        let c = cache(&[&none], Duration::from_secs(300));
        assert!(matches!(
            c.get().await.unwrap_err(),
            SecretError::Unusable(_)
        ));
    }

    #[tokio::test]
    async fn an_outage_keeps_the_last_good_value_and_backs_off() {
        let throttled =
            Some(r#"{"__type":"InternalServiceError","message":"try later"}"#.to_string());
        let current = mock!(aws_sdk_secretsmanager::Client::get_secret_value)
            .match_requests(stage("AWSCURRENT"))
            .sequence()
            .output(|| {
                GetSecretValueOutput::builder()
                    .secret_string(r#"{"github":"s3cret"}"#)
                    .build()
            })
            .http_status(500, throttled)
            .repeatedly()
            .build();
        let previous = no_previous();
        // A zero TTL: every get wants a refresh.
        let c = cache(&[&current, &previous], Duration::ZERO);
        assert_eq!(c.get().await.unwrap().values(|s| &s.github).len(), 1);
        let calls = current.num_calls();
        let stale = c.get().await.unwrap();
        assert_eq!(stale.values(|s| &s.github), vec![b"s3cret".as_slice()]);
        assert!(current.num_calls() > calls, "a refresh was attempted");
        // Backing off: the next deliveries use the stale value without calling again.
        let after_failure = current.num_calls();
        for _ in 0..3 {
            assert_eq!(c.get().await.unwrap().values(|s| &s.github).len(), 1);
        }
        assert_eq!(
            current.num_calls(),
            after_failure,
            "no call during the back-off"
        );
        // With no cached value, the same outage is Unavailable (the sender is told to retry).
        let fresh = cache(&[&current, &previous], Duration::ZERO);
        assert!(matches!(
            fresh.get().await.unwrap_err(),
            SecretError::Unavailable(_)
        ));
    }
}

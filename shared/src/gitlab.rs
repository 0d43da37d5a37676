//! GitLab's commit statuses (`POST /projects/:id/statuses/:sha`): what a merge request and the
//! commit page show. A project or group access token (scope `api`) in Secrets Manager, read again
//! after [`SECRET_TTL_SECS`](crate::forge::SECRET_TTL_SECS), so a rotated token is in use within
//! minutes; a token GitLab refuses is read again at once.
//!
//! GitLab keeps a status per name and moves it by transitions: a `pending` or `running` status
//! set again to the same state is refused ("Cannot transition status via :run from :running"),
//! which here means it already is so; a finished one set again is a new status, the old one
//! marked retried.

use std::sync::Arc;

use serde::Serialize;

use crate::forge::{CachedSecret, Failure, Forge, Transport};

/// GitLab.com's API, unless the template names another (a self-managed GitLab, the stand-in).
pub const API: &str = "https://gitlab.com/api/v4";

/// The most characters GitLab keeps of a status's description.
pub const MAX_DESCRIPTION: usize = 255;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    Pending,
    Running,
    Success,
    Failed,
    Canceled,
}

/// A commit status as eddo sets it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CommitStatus {
    pub state: State,
    pub name: String,
    /// Within [`MAX_DESCRIPTION`] characters ([`CommitStatus::new`] cuts it, saying so).
    pub description: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_url: Option<String>,
}

impl CommitStatus {
    pub fn new(state: State, name: &str, description: &str) -> CommitStatus {
        let description = if description.chars().count() <= MAX_DESCRIPTION {
            description.to_string()
        } else {
            let mut cut: String = description.chars().take(MAX_DESCRIPTION - 8).collect();
            cut.push_str(" … (cut)");
            cut
        };
        CommitStatus {
            state,
            name: name.to_string(),
            description,
            target_url: None,
        }
    }
}

/// What setting a status did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Set {
    Set,
    /// GitLab shows that state already (its description may be the earlier one).
    AlreadySo,
}

/// Where the token comes from: Secrets Manager (`{"token": "glpat-..."}`), or given (tests).
pub enum TokenSource {
    Secret(CachedSecret<String>),
    Given(Arc<str>),
}

/// GitLab's API as eddo's token reaches it.
#[derive(Clone)]
pub struct GitLab {
    pub transport: Transport,
    source: Arc<TokenSource>,
}

#[derive(serde::Deserialize)]
struct TokenSecret {
    token: String,
}

impl GitLab {
    pub fn new(transport: Transport, source: TokenSource) -> GitLab {
        GitLab {
            transport,
            source: Arc::new(source),
        }
    }

    /// GitLab from the function's settings: `EDDO_GITLAB_TOKEN_SECRET` (the secret's ARN or
    /// name) and `EDDO_GITLAB_API` (default [`API`]). `None` when statuses are off.
    pub fn from_env(
        env: &crate::config::Env,
        sdk: &aws_config::SdkConfig,
        clock: fn() -> u64,
    ) -> Result<Option<GitLab>, crate::config::ConfigError> {
        let forge = crate::forge::from_env(
            env,
            Forge::GitLab,
            "EDDO_GITLAB_TOKEN_SECRET",
            "EDDO_GITLAB_API",
            API,
            clock,
        )?;
        Ok(forge.map(|(transport, secret_id)| {
            GitLab::new(
                transport,
                TokenSource::Secret(CachedSecret::new(
                    Forge::GitLab,
                    aws_sdk_secretsmanager::Client::new(sdk),
                    secret_id,
                )),
            )
        }))
    }

    async fn token(&self, fresh: bool) -> Result<Arc<str>, Failure> {
        let secret = match &*self.source {
            TokenSource::Given(t) => return Ok(t.clone()),
            TokenSource::Secret(secret) => secret,
        };
        // The value is never quoted in an error: it is the token.
        let read = |json: &str| {
            serde_json::from_str::<TokenSecret>(json)
                .map(|s| s.token)
                .map_err(|_| {
                    Failure::config(
                        Forge::GitLab,
                        "the GitLab token secret is not {\"token\": \"...\"} JSON",
                    )
                })
        };
        let token = secret.get(self.transport.now(), fresh, read).await?;
        Ok(Arc::from(token.as_str()))
    }

    /// Sets `status` on commit `sha` of `project` (its path, `group/project`).
    pub async fn set_status(
        &self,
        project: &str,
        sha: &str,
        status: &CommitStatus,
    ) -> Result<Set, Failure> {
        let path = format!("/projects/{}/statuses/{sha}", crate::forge::encode(project));
        let body = serde_json::to_value(status).expect("a status is JSON");
        let mut refused = false;
        loop {
            let token = self.token(refused).await?;
            match self
                .transport
                .call(http::Method::POST, &path, &token, Some(&body))
                .await
            {
                Ok(_) => return Ok(Set::Set),
                Err(f) if f.status == Some(400) && f.message.contains("Cannot transition") => {
                    return Ok(Set::AlreadySo);
                }
                // A rotated token: read the secret again, once.
                Err(Failure {
                    status: Some(401), ..
                }) if !refused => refused = true,
                Err(f) => return Err(f),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_description_over_gitlab_s_limit_is_cut_and_says_so() {
        let s = CommitStatus::new(State::Failed, "eddo/gate", &"reason ".repeat(100));
        assert_eq!(s.description.chars().count(), MAX_DESCRIPTION);
        assert!(s.description.ends_with("… (cut)"));
        let short = CommitStatus::new(State::Running, "eddo/gate", "waiting");
        assert_eq!(short.description, "waiting");
        assert_eq!(
            serde_json::to_value(&short).unwrap(),
            serde_json::json!({"state": "running", "name": "eddo/gate", "description": "waiting"})
        );
    }
}

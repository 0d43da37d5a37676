//! GitHub's REST API as a GitHub App uses it: [`auth`] (the App's JWT and installation tokens),
//! [`checks`] (check runs), [`deployments`] (custom deployment protection rules), over [`crate::forge`]'s client.

pub mod auth;
pub mod checks;
pub mod deployments;

use std::sync::Arc;

use bytes::Bytes;

pub use crate::forge::{Failure, Transport};
pub use auth::{AppKey, Credentials, KeySource};
pub use checks::{CheckRun, Conclusion, Output, Status};
pub use deployments::{Review, ReviewState};

/// GitHub's API, unless the template names another (GitHub Enterprise Server, the stand-in).
pub const API: &str = "https://api.github.com";

/// GitHub's API as one App sees it: where it is, and the App's credentials.
#[derive(Clone)]
pub struct App {
    pub transport: Transport,
    pub credentials: Arc<Credentials>,
}

impl App {
    pub fn new(transport: Transport, source: KeySource) -> App {
        App {
            transport,
            credentials: Arc::new(Credentials::new(source)),
        }
    }

    /// The App from the function's settings: `EDDO_GITHUB_APP_SECRET` (the secret's ARN or
    /// name) and `EDDO_GITHUB_API` (default [`API`]). `None` when the App mode is off.
    pub fn from_env(
        env: &crate::config::Env,
        sdk: &aws_config::SdkConfig,
        clock: fn() -> u64,
    ) -> Result<Option<App>, crate::config::ConfigError> {
        let forge = crate::forge::from_env(
            env,
            crate::forge::Forge::GitHub,
            "EDDO_GITHUB_APP_SECRET",
            "EDDO_GITHUB_API",
            API,
            clock,
        )?;
        Ok(forge.map(|(transport, secret_id)| {
            App::new(
                transport,
                KeySource::secret(aws_sdk_secretsmanager::Client::new(sdk), &secret_id),
            )
        }))
    }

    /// A call on `repo` as its installation: the token held or a new one; a token GitHub
    /// refuses (401) is dropped and the call made once more with a new one.
    pub async fn call(
        &self,
        repo: &str,
        method: http::Method,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<(u16, Bytes), Failure> {
        let now = self.transport.now();
        let installation = self
            .credentials
            .installation(&self.transport, repo, now)
            .await?;
        let mut refused = false;
        loop {
            let token = self
                .credentials
                .token(&self.transport, installation, now)
                .await?;
            match self
                .transport
                .call(method.clone(), path, &token.value, body)
                .await
            {
                Err(Failure {
                    status: Some(401), ..
                }) if !refused => {
                    refused = true;
                    self.credentials.forget(installation).await;
                }
                answer => return answer,
            }
        }
    }
}

//! GitHub's REST API as a GitHub App uses it: [`auth`] (the App's JWT and installation tokens),
//! [`checks`] (check runs). One HTTPS client (rustls with aws-lc, the roots the SDK trusts), built
//! at the first call, so a function that never calls GitHub pays nothing at init.
//!
//! A call fails with a [`Failure`] that says whether doing it again can succeed, and when: GitHub
//! down (5xx, a timeout) and its rate limits (403 or 429 with `retry-after`, or an exhausted
//! `x-ratelimit-remaining` with its reset) are retryable; anything else is the request's fault.

pub mod auth;
pub mod checks;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use serde::de::DeserializeOwned;
use tokio::sync::OnceCell;

pub use auth::{AppKey, Credentials, KeySource};
pub use checks::{CheckRun, Conclusion, Output, Status};

/// GitHub's API, unless the template names another (GitHub Enterprise Server, the stand-in).
pub const API: &str = "https://api.github.com";

/// The REST API version eddo's calls are written against.
pub const API_VERSION: &str = "2022-11-28";

/// How long one call may take before it counts as GitHub down.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// A call to GitHub that did not succeed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("GitHub {}{message}", status.map(|s| format!("answered {s}: ")).unwrap_or_default())]
pub struct Failure {
    /// GitHub's status, if it answered.
    pub status: Option<u16>,
    pub message: String,
    /// Whether the same call later can succeed.
    pub retryable: bool,
    /// How long GitHub asked to wait first (its rate limit), in seconds.
    pub retry_after: Option<u64>,
}

impl Failure {
    fn config(message: impl Into<String>) -> Failure {
        Failure {
            status: None,
            message: message.into(),
            retryable: false,
            retry_after: None,
        }
    }

    fn secret(message: String, retryable: bool) -> Failure {
        Failure {
            status: None,
            message: format!("the GitHub App's secret could not be read: {message}"),
            retryable,
            retry_after: None,
        }
    }

    fn answer(message: impl Into<String>) -> Failure {
        Failure {
            status: None,
            message: message.into(),
            retryable: true,
            retry_after: None,
        }
    }

    /// GitHub's answer `status` with `headers`, judged: when it is a rate limit, how long to
    /// wait (`now` reads the reset header).
    pub fn of_answer(status: u16, headers: &http::HeaderMap, message: String, now: u64) -> Failure {
        let header = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
        };
        let exhausted = header("x-ratelimit-remaining") == Some(0);
        let retry_after = header("retry-after").or_else(|| {
            exhausted
                .then(|| header("x-ratelimit-reset").map(|reset| reset.saturating_sub(now)))
                .flatten()
        });
        let limited = matches!(status, 403 | 429) && (retry_after.is_some() || exhausted);
        Failure {
            status: Some(status),
            message,
            retryable: limited || status >= 500 || status == 408,
            retry_after: if limited {
                retry_after.or(Some(60))
            } else {
                None
            },
        }
    }
}

/// GitHub's `message` in an answer `bytes` to `path`, short: never the request, which may carry
/// what a log must not.
pub(crate) fn message(path: &str, bytes: &[u8]) -> String {
    let said = serde_json::from_slice::<serde_json::Value>(bytes)
        .ok()
        .and_then(|v| v["message"].as_str().map(str::to_string))
        .unwrap_or_default();
    crate::report::clip(&format!("{path}: {said}"), 300).into_owned()
}

type Client = hyper_util::client::legacy::Client<
    hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
    Full<Bytes>,
>;

/// The HTTPS client and where the API is.
#[derive(Clone)]
pub struct Transport {
    base: Arc<str>,
    client: Arc<OnceCell<Client>>,
    clock: fn() -> u64,
}

impl Transport {
    /// The API at `base` (`https://api.github.com`, `https://ghe.example.com/api/v3`). Plain
    /// HTTP only on a loopback address (the local stand-in): a token never crosses a network
    /// in the clear.
    pub fn new(base: &str, clock: fn() -> u64) -> Result<Transport, String> {
        let uri: http::Uri = base
            .parse()
            .map_err(|e| format!("{base:?} is not a URL: {e}"))?;
        let loopback = matches!(uri.host(), Some("127.0.0.1" | "localhost" | "[::1]"));
        match uri.scheme_str() {
            Some("https") => {}
            Some("http") if loopback => {}
            _ => return Err(format!("{base:?} is not an https:// URL")),
        }
        Ok(Transport {
            base: base.trim_end_matches('/').into(),
            client: Arc::new(OnceCell::new()),
            clock,
        })
    }

    pub fn now(&self) -> u64 {
        (self.clock)()
    }

    async fn client(&self) -> Result<&Client, Failure> {
        self.client
            .get_or_try_init(|| async {
                let https = hyper_rustls::HttpsConnectorBuilder::new()
                    .with_native_roots()
                    .map_err(|e| Failure::config(format!("no CA certificates to trust: {e}")))?
                    .https_or_http()
                    .enable_http1()
                    .build();
                Ok(
                    hyper_util::client::legacy::Client::builder(
                        hyper_util::rt::TokioExecutor::new(),
                    )
                    .build(https),
                )
            })
            .await
    }

    /// One call: `method` on `path` with `bearer`, `body` as JSON; the answer's status and body.
    pub async fn call(
        &self,
        method: http::Method,
        path: &str,
        bearer: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<(u16, Bytes), Failure> {
        let payload = body.map(|b| b.to_string()).unwrap_or_default();
        let mut request = http::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base))
            .header("accept", "application/vnd.github+json")
            .header("x-github-api-version", API_VERSION)
            .header(
                "user-agent",
                concat!("eddo/", env!("CARGO_PKG_VERSION"), " (+github-app)"),
            )
            .header("authorization", format!("Bearer {bearer}"));
        if body.is_some() {
            request = request.header("content-type", "application/json");
        }
        let request = request
            .body(Full::new(Bytes::from(payload)))
            .map_err(|e| Failure::config(format!("bad request to {path}: {e}")))?;
        let client = self.client().await?;
        let answer = tokio::time::timeout(CALL_TIMEOUT, async {
            let response = client.request(request).await?;
            let (parts, body) = response.into_parts();
            let bytes = body.collect().await?.to_bytes();
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>((parts, bytes))
        })
        .await;
        let (parts, bytes) = match answer {
            Err(_) => {
                return Err(Failure::answer(format!(
                    "{path}: no answer within {}s",
                    CALL_TIMEOUT.as_secs()
                )));
            }
            Ok(Err(e)) => return Err(Failure::answer(format!("{path}: {e}"))),
            Ok(Ok(answer)) => answer,
        };
        let status = parts.status.as_u16();
        if parts.status.is_success() || status == 422 {
            return Ok((status, bytes));
        }
        let message = message(path, &bytes);
        Err(Failure::of_answer(
            status,
            &parts.headers,
            message,
            self.now(),
        ))
    }

    /// [`Transport::call`], its successful answer read as `T` (a 422 is a failure here).
    pub async fn json<T: DeserializeOwned>(
        &self,
        method: http::Method,
        path: &str,
        bearer: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<T, Failure> {
        let (status, bytes) = self.call(method, path, bearer, body).await?;
        if status == 422 {
            return Err(Failure {
                status: Some(422),
                message: format!("{path}: the request was refused as invalid"),
                retryable: false,
                retry_after: None,
            });
        }
        serde_json::from_slice(&bytes)
            .map_err(|e| Failure::answer(format!("{path}: an answer eddo cannot read: {e}")))
    }
}

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
        let Some(secret_id) = env.optional("EDDO_GITHUB_APP_SECRET") else {
            return Ok(None);
        };
        let base = env.optional("EDDO_GITHUB_API").unwrap_or(API);
        let transport = Transport::new(base, clock)
            .map_err(|why| crate::config::ConfigError::new("EDDO_GITHUB_API", why))?;
        Ok(Some(App::new(
            transport,
            KeySource::Secret {
                client: aws_sdk_secretsmanager::Client::new(sdk),
                secret_id: secret_id.to_string(),
            },
        )))
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

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> http::HeaderMap {
        pairs
            .iter()
            .map(|(k, v)| (http::HeaderName::from_static(k), v.parse().unwrap()))
            .collect()
    }

    #[test]
    fn rate_limits_wait_as_github_asks() {
        let f = Failure::of_answer(429, &headers(&[("retry-after", "30")]), String::new(), 0);
        assert!(f.retryable);
        assert_eq!(f.retry_after, Some(30));
        let reset = headers(&[
            ("x-ratelimit-remaining", "0"),
            ("x-ratelimit-reset", "1100"),
        ]);
        let f = Failure::of_answer(403, &reset, String::new(), 1000);
        assert_eq!((f.retryable, f.retry_after), (true, Some(100)));
        // A 403 that is no rate limit (the App lacks a permission) is the request's fault.
        let f = Failure::of_answer(403, &headers(&[]), String::new(), 0);
        assert!(!f.retryable);
        assert!(Failure::of_answer(502, &headers(&[]), String::new(), 0).retryable);
        assert!(!Failure::of_answer(404, &headers(&[]), String::new(), 0).retryable);
    }

    #[test]
    fn tokens_cross_the_network_encrypted() {
        let clock = || 0;
        assert!(Transport::new("https://api.github.com", clock).is_ok());
        assert!(Transport::new("http://127.0.0.1:8080", clock).is_ok());
        assert!(Transport::new("http://api.github.com", clock).is_err());
        assert!(Transport::new("ftp://x", clock).is_err());
    }
}

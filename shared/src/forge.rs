//! The HTTPS client eddo calls GitHub's and GitLab's REST APIs with: rustls with aws-lc and the
//! roots the SDK trusts, built at the first call, so a function that never calls a forge pays
//! nothing at init. A call fails with a [`Failure`] that says whether doing it again can succeed,
//! and when: the forge down (5xx, a timeout) and its rate limits (403 or 429 with `retry-after`,
//! or an exhausted `x-ratelimit-remaining` / `ratelimit-remaining` with its reset) are retryable;
//! anything else is the request's fault.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use serde::de::DeserializeOwned;
use tokio::sync::OnceCell;

/// The GitHub REST API version eddo's calls are written against.
pub const GITHUB_API_VERSION: &str = "2022-11-28";

/// Which forge an API is: what its calls carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forge {
    GitHub,
    GitLab,
}

/// How long one call may take before it counts as the forge down.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// A call to a forge that did not succeed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{forge:?} {}{message}", status.map(|s| format!("answered {s}: ")).unwrap_or_default())]
pub struct Failure {
    pub forge: Forge,
    /// The forge's status, if it answered.
    pub status: Option<u16>,
    pub message: String,
    /// Whether the same call later can succeed.
    pub retryable: bool,
    /// How long the forge asked to wait first (its rate limit), in seconds.
    pub retry_after: Option<u64>,
}

impl Failure {
    pub(crate) fn config(forge: Forge, message: impl Into<String>) -> Failure {
        Failure {
            forge,
            status: None,
            message: message.into(),
            retryable: false,
            retry_after: None,
        }
    }

    pub(crate) fn secret(forge: Forge, message: String, retryable: bool) -> Failure {
        Failure {
            forge,
            status: None,
            message: format!("its secret could not be read: {message}"),
            retryable,
            retry_after: None,
        }
    }

    pub(crate) fn answer(forge: Forge, message: impl Into<String>) -> Failure {
        Failure {
            forge,
            status: None,
            message: message.into(),
            retryable: true,
            retry_after: None,
        }
    }

    /// The forge's answer `status` with `headers`, judged: when it is a rate limit, how long to
    /// wait (`now` reads the reset header).
    pub fn of_answer(
        forge: Forge,
        status: u16,
        headers: &http::HeaderMap,
        message: String,
        now: u64,
    ) -> Failure {
        let header = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
        };
        // GitHub's names, and GitLab's (without the x-).
        let exhausted =
            header("x-ratelimit-remaining").or(header("ratelimit-remaining")) == Some(0);
        let retry_after = header("retry-after").or_else(|| {
            exhausted
                .then(|| {
                    header("x-ratelimit-reset")
                        .or(header("ratelimit-reset"))
                        .map(|reset| reset.saturating_sub(now))
                })
                .flatten()
        });
        let limited = matches!(status, 403 | 429) && (retry_after.is_some() || exhausted);
        Failure {
            forge,
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

/// The forge's `message` (GitHub's; GitLab's, or its `error`) in an answer `bytes` to `path`, short: never the request, which may carry
/// what a log must not.
pub(crate) fn message(path: &str, bytes: &[u8]) -> String {
    let said = serde_json::from_slice::<serde_json::Value>(bytes)
        .ok()
        .and_then(|v| {
            v["message"]
                .as_str()
                .or(v["error"].as_str())
                .map(str::to_string)
                .or_else(|| (!v["message"].is_null()).then(|| v["message"].to_string()))
        })
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
    forge: Forge,
    base: Arc<str>,
    client: Arc<OnceCell<Client>>,
    clock: fn() -> u64,
}

impl Transport {
    /// GitHub's API at `base` (`https://api.github.com`, `https://ghe.example.com/api/v3`).
    pub fn github(base: &str, clock: fn() -> u64) -> Result<Transport, String> {
        Transport::new(Forge::GitHub, base, clock)
    }

    /// GitLab's API at `base` (`https://gitlab.com/api/v4`).
    pub fn gitlab(base: &str, clock: fn() -> u64) -> Result<Transport, String> {
        Transport::new(Forge::GitLab, base, clock)
    }

    /// The API of `forge` at `base`. Plain HTTP only on a loopback address (the local
    /// stand-in): a token never crosses a network in the clear.
    fn new(forge: Forge, base: &str, clock: fn() -> u64) -> Result<Transport, String> {
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
            forge,
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
                    .map_err(|e| {
                        Failure::config(self.forge, format!("no CA certificates to trust: {e}"))
                    })?
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

    /// One call: `method` on `path` with `token` (GitHub: a bearer token, the App's JWT or an
    /// installation's; GitLab: an access token), `body` as JSON; the answer's status and body.
    pub async fn call(
        &self,
        method: http::Method,
        path: &str,
        token: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<(u16, Bytes), Failure> {
        let payload = body.map(|b| b.to_string()).unwrap_or_default();
        let mut request = http::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base))
            .header("user-agent", concat!("eddo/", env!("CARGO_PKG_VERSION")));
        request = match self.forge {
            Forge::GitHub => request
                .header("accept", "application/vnd.github+json")
                .header("x-github-api-version", GITHUB_API_VERSION)
                .header("authorization", format!("Bearer {token}")),
            Forge::GitLab => request
                .header("accept", "application/json")
                .header("private-token", token),
        };
        if body.is_some() {
            request = request.header("content-type", "application/json");
        }
        let request = request
            .body(Full::new(Bytes::from(payload)))
            .map_err(|e| Failure::config(self.forge, format!("bad request to {path}: {e}")))?;
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
                return Err(Failure::answer(
                    self.forge,
                    format!("{path}: no answer within {}s", CALL_TIMEOUT.as_secs()),
                ));
            }
            Ok(Err(e)) => return Err(Failure::answer(self.forge, format!("{path}: {e}"))),
            Ok(Ok(answer)) => answer,
        };
        let status = parts.status.as_u16();
        if parts.status.is_success() {
            return Ok((status, bytes));
        }
        let message = message(path, &bytes);
        Err(Failure::of_answer(
            self.forge,
            status,
            &parts.headers,
            message,
            self.now(),
        ))
    }

    /// [`Transport::call`], its answer read as `T`.
    pub async fn json<T: DeserializeOwned>(
        &self,
        method: http::Method,
        path: &str,
        token: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<T, Failure> {
        let (_, bytes) = self.call(method, path, token, body).await?;
        self.read(path, &bytes)
    }

    /// An answer to `path` read as `T`.
    pub fn read<T: DeserializeOwned>(&self, path: &str, bytes: &[u8]) -> Result<T, Failure> {
        serde_json::from_slice(bytes).map_err(|e| {
            Failure::answer(
                self.forge,
                format!("{path}: an answer eddo cannot read: {e}"),
            )
        })
    }
}

/// How long a secret (the App's key, the GitLab token) is used before Secrets Manager is asked
/// again: a rotation is in use this long after it.
pub const SECRET_TTL_SECS: u64 = 5 * 60;

/// A secret of the forge's, read from Secrets Manager and kept [`SECRET_TTL_SECS`] as `T`.
pub struct CachedSecret<T> {
    forge: Forge,
    client: aws_sdk_secretsmanager::Client,
    secret_id: String,
    held: tokio::sync::Mutex<Option<Held<T>>>,
}

struct Held<T> {
    value: Arc<T>,
    read_at: u64,
}

impl<T> CachedSecret<T> {
    pub fn new(
        forge: Forge,
        client: aws_sdk_secretsmanager::Client,
        secret_id: impl Into<String>,
    ) -> CachedSecret<T> {
        CachedSecret {
            forge,
            client,
            secret_id: secret_id.into(),
            held: tokio::sync::Mutex::new(None),
        }
    }

    /// The secret as `read` makes it, the one held unless it is older than the TTL or `fresh`
    /// is asked for (the forge refused it: a rotation). `read` never quotes the value.
    pub async fn get(
        &self,
        now: u64,
        fresh: bool,
        read: impl FnOnce(&str) -> Result<T, Failure>,
    ) -> Result<Arc<T>, Failure> {
        let mut held = self.held.lock().await;
        if let Some(h) = held.as_ref()
            && !fresh
            && now < h.read_at + SECRET_TTL_SECS
        {
            return Ok(h.value.clone());
        }
        let out = self
            .client
            .get_secret_value()
            .secret_id(&self.secret_id)
            .send()
            .await
            .map_err(|e| {
                let missing = matches!(
                    e.as_service_error(),
                    Some(
                        aws_sdk_secretsmanager::operation::get_secret_value::GetSecretValueError::ResourceNotFoundException(_)
                    )
                );
                Failure::secret(
                    self.forge,
                    aws_smithy_types::error::display::DisplayErrorContext(&e).to_string(),
                    !missing,
                )
            })?;
        let value = Arc::new(read(out.secret_string().unwrap_or_default())?);
        *held = Some(Held {
            value: value.clone(),
            read_at: now,
        });
        Ok(value)
    }
}

/// Where a forge is and which secret reaches it, from the function's settings: the secret's
/// variable (its ARN or name) and the API's (default `default_api`). `None` when the secret's
/// variable is unset: the forge is off.
pub fn from_env(
    env: &crate::config::Env,
    forge: Forge,
    secret_variable: &str,
    api_variable: &str,
    default_api: &str,
    clock: fn() -> u64,
) -> Result<Option<(Transport, String)>, crate::config::ConfigError> {
    let Some(secret_id) = env.optional(secret_variable) else {
        return Ok(None);
    };
    let base = env.optional(api_variable).unwrap_or(default_api);
    let transport = Transport::new(forge, base, clock)
        .map_err(|why| crate::config::ConfigError::new(api_variable, why))?;
    Ok(Some((transport, secret_id.to_string())))
}

/// `s` as one path segment or query value: every byte but the unreserved ones percent-encoded.
pub fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
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
        let f = Failure::of_answer(
            Forge::GitHub,
            429,
            &headers(&[("retry-after", "30")]),
            String::new(),
            0,
        );
        assert!(f.retryable);
        assert_eq!(f.retry_after, Some(30));
        // GitLab's names (GitHub's carry an x-).
        let reset = headers(&[("ratelimit-remaining", "0"), ("ratelimit-reset", "1100")]);
        let f = Failure::of_answer(Forge::GitLab, 403, &reset, String::new(), 1000);
        assert_eq!((f.retryable, f.retry_after), (true, Some(100)));
        // A 403 that is no rate limit (the App lacks a permission) is the request's fault.
        let f = Failure::of_answer(Forge::GitHub, 403, &headers(&[]), String::new(), 0);
        assert!(!f.retryable);
        assert!(Failure::of_answer(Forge::GitHub, 502, &headers(&[]), String::new(), 0).retryable);
        assert!(!Failure::of_answer(Forge::GitHub, 404, &headers(&[]), String::new(), 0).retryable);
    }

    #[test]
    fn names_are_encoded_for_a_path_or_query() {
        assert_eq!(encode("eddo gate"), "eddo%20gate");
        assert_eq!(encode("group/sub/project"), "group%2Fsub%2Fproject");
    }

    #[test]
    fn tokens_cross_the_network_encrypted() {
        let clock = || 0;
        assert!(Transport::github("https://api.github.com", clock).is_ok());
        assert!(Transport::github("http://127.0.0.1:8080", clock).is_ok());
        assert!(Transport::github("http://api.github.com", clock).is_err());
        assert!(Transport::github("ftp://x", clock).is_err());
    }
}

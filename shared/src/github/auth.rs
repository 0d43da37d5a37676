//! A GitHub App's identity: its private key signs a short JWT (RS256), which GitHub exchanges for
//! an installation token (an hour's access to the repositories of one installation). The key and
//! the App's id come from Secrets Manager, read again after
//! [`SECRET_TTL_SECS`](crate::forge::SECRET_TTL_SECS), so a rotated key (GitHub lets an App hold
//! two at once) is in use within minutes, as the webhook secret is.

use std::collections::HashMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;

use super::{Failure, Transport};
use crate::forge::Forge;

/// How long a JWT lasts: GitHub refuses one over 10 minutes.
pub const JWT_SECS: u64 = 9 * 60;

/// How far back a JWT's `iat` is set, for a clock of GitHub's behind ours (GitHub's advice).
pub const JWT_SKEW_SECS: u64 = 60;

/// An installation token is used until this long before it expires, then exchanged anew: a call
/// begun with it must not meet its expiry on the way.
pub const TOKEN_MARGIN_SECS: u64 = 5 * 60;

/// The App's credentials as its secret holds them: `{"app_id": "123", "private_key": "-----BEGIN
/// RSA PRIVATE KEY-----..."}`, or `client_id` (GitHub's newer issuer) in place of `app_id`.
#[derive(Deserialize)]
pub struct AppSecret {
    #[serde(default, deserialize_with = "string_or_number")]
    pub app_id: Option<String>,
    #[serde(default)]
    pub client_id: Option<String>,
    pub private_key: String,
}

// Never print the key, not even in a debug log.
impl std::fmt::Debug for AppSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppSecret")
            .field("app_id", &self.app_id)
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

fn string_or_number<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(match Option::<serde_json::Value>::deserialize(d)? {
        Some(serde_json::Value::String(s)) => Some(s),
        Some(serde_json::Value::Number(n)) => Some(n.to_string()),
        _ => None,
    })
}

/// The App, able to sign: its issuer (client id, or app id) and key.
pub struct AppKey {
    pub issuer: String,
    key: jsonwebtoken::EncodingKey,
}

impl std::fmt::Debug for AppKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppKey")
            .field("issuer", &self.issuer)
            .finish_non_exhaustive()
    }
}

#[derive(Serialize)]
struct Claims<'a> {
    iat: u64,
    exp: u64,
    iss: &'a str,
}

impl AppKey {
    /// The App from its secret's JSON: a clear error (never the key) when it is not one.
    pub fn from_secret(json: &str) -> Result<AppKey, Failure> {
        let secret: AppSecret = serde_json::from_str(json).map_err(|e| {
            Failure::config(
                Forge::GitHub,
                format!(
                    "the GitHub App secret is not {{\"app_id\", \"private_key\"}} JSON: {}",
                    e.classify_name()
                ),
            )
        })?;
        let issuer = secret
            .client_id
            .filter(|c| !c.is_empty())
            .or(secret.app_id.filter(|a| !a.is_empty()))
            .ok_or_else(|| {
                Failure::config(
                    Forge::GitHub,
                    "the GitHub App secret names neither app_id nor client_id",
                )
            })?;
        let key = jsonwebtoken::EncodingKey::from_rsa_pem(secret.private_key.as_bytes()).map_err(
            |e| {
                Failure::config(
                    Forge::GitHub,
                    format!("the GitHub App secret's private_key is not an RSA key in PEM: {e}"),
                )
            },
        )?;
        Ok(AppKey { issuer, key })
    }

    /// A JWT for the App, issued at `now` (less [`JWT_SKEW_SECS`]) and good for [`JWT_SECS`].
    pub fn jwt(&self, now: u64) -> Result<String, Failure> {
        let claims = Claims {
            iat: now.saturating_sub(JWT_SKEW_SECS),
            exp: now + JWT_SECS,
            iss: &self.issuer,
        };
        jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256),
            &claims,
            &self.key,
        )
        .map_err(|e| {
            Failure::config(
                Forge::GitHub,
                format!("could not sign the GitHub App's JWT: {e}"),
            )
        })
    }
}

trait ClassifyName {
    fn classify_name(&self) -> &'static str;
}

impl ClassifyName for serde_json::Error {
    // serde_json's message can quote the input: the key. Say only what kind of mistake it is.
    fn classify_name(&self) -> &'static str {
        match self.classify() {
            serde_json::error::Category::Io => "unreadable",
            serde_json::error::Category::Syntax => "a syntax error",
            serde_json::error::Category::Data => "a field missing or of the wrong type",
            serde_json::error::Category::Eof => "cut short",
        }
    }
}

/// An installation token and when it expires (epoch seconds).
#[derive(Clone)]
pub struct Token {
    pub value: Arc<str>,
    pub expires_at: u64,
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Token")
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

impl Token {
    /// Whether it may still be used at `now` (until [`TOKEN_MARGIN_SECS`] before it expires).
    pub fn fresh(&self, now: u64) -> bool {
        now + TOKEN_MARGIN_SECS < self.expires_at
    }
}

/// Where the App's key comes from: Secrets Manager (in AWS), or a key given directly (tests).
pub enum KeySource {
    Secret(crate::forge::CachedSecret<AppKey>),
    Given(Arc<AppKey>),
}

impl KeySource {
    /// The App's key in the secret `secret_id`.
    pub fn secret(client: aws_sdk_secretsmanager::Client, secret_id: &str) -> KeySource {
        KeySource::Secret(crate::forge::CachedSecret::new(
            Forge::GitHub,
            client,
            secret_id,
        ))
    }
}

/// The App's key and installation tokens, each kept while it is good: shared by every call a
/// warm function makes.
pub struct Credentials {
    source: KeySource,
    tokens: Mutex<HashMap<u64, Token>>,
    installations: Mutex<HashMap<String, u64>>,
}

#[derive(Deserialize)]
struct IssuedToken {
    token: String,
    expires_at: String,
}

#[derive(Deserialize)]
struct Installation {
    id: u64,
}

impl Credentials {
    pub fn new(source: KeySource) -> Credentials {
        Credentials {
            source,
            tokens: Mutex::new(HashMap::new()),
            installations: Mutex::new(HashMap::new()),
        }
    }

    async fn key(&self, now: u64) -> Result<Arc<AppKey>, Failure> {
        match &self.source {
            KeySource::Given(key) => Ok(key.clone()),
            KeySource::Secret(secret) => secret.get(now, false, AppKey::from_secret).await,
        }
    }

    /// The installation of the App on `repo` (`owner/name`), asked once per repository.
    pub async fn installation(
        &self,
        http: &Transport,
        repo: &str,
        now: u64,
    ) -> Result<u64, Failure> {
        if let Some(id) = self.installations.lock().await.get(repo) {
            return Ok(*id);
        }
        let jwt = self.key(now).await?.jwt(now)?;
        let found: Installation = http
            .json(
                http::Method::GET,
                &format!("/repos/{repo}/installation"),
                &jwt,
                None,
            )
            .await?;
        self.installations
            .lock()
            .await
            .insert(repo.to_string(), found.id);
        Ok(found.id)
    }

    /// A token of `installation` good at `now`: the one held, or a new one.
    pub async fn token(
        &self,
        http: &Transport,
        installation: u64,
        now: u64,
    ) -> Result<Token, Failure> {
        let mut tokens = self.tokens.lock().await;
        if let Some(t) = tokens.get(&installation)
            && t.fresh(now)
        {
            return Ok(t.clone());
        }
        let jwt = self.key(now).await?.jwt(now)?;
        let issued: IssuedToken = http
            .json(
                http::Method::POST,
                &format!("/app/installations/{installation}/access_tokens"),
                &jwt,
                Some(&serde_json::json!({})),
            )
            .await?;
        let expires_at = crate::time::parse_rfc3339(&issued.expires_at).ok_or_else(|| {
            Failure::answer(
                Forge::GitHub,
                "an installation token's expires_at is not a timestamp",
            )
        })?;
        let token = Token {
            value: issued.token.into(),
            expires_at,
        };
        tokens.insert(installation, token.clone());
        Ok(token)
    }

    /// Forgets `installation`'s token (GitHub refused it: revoked, or the clocks disagree).
    pub async fn forget(&self, installation: u64) {
        self.tokens.lock().await.remove(&installation);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_that_is_not_an_app_says_so_without_quoting_it() {
        let e = AppKey::from_secret(r#"{"app_id": 1, "private_key": "hunter2-not-a-key"}"#)
            .unwrap_err();
        assert!(e.to_string().contains("not an RSA key in PEM"), "{e}");
        assert!(!e.to_string().contains("hunter2"), "{e}");
        let e = AppKey::from_secret("hunter2").unwrap_err();
        assert!(!e.to_string().contains("hunter2"), "{e}");
        let e = AppKey::from_secret(r#"{"private_key": "x"}"#).unwrap_err();
        assert!(e.to_string().contains("neither app_id"), "{e}");
    }

    #[test]
    fn a_token_is_used_until_minutes_before_it_expires() {
        let t = Token {
            value: "t".into(),
            expires_at: 10_000,
        };
        assert!(t.fresh(10_000 - TOKEN_MARGIN_SECS - 1));
        assert!(!t.fresh(10_000 - TOKEN_MARGIN_SECS));
        assert!(!format!("{t:?}").contains("\"t\""));
    }
}

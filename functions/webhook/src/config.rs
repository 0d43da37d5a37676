//! The webhook function's settings, parsed once at start; a bad value stops it at init with one
//! line naming the variable.

use std::time::Duration;

use eddo::config::{CommonConfig, ConfigError, Env};

use crate::normalise::Forward;

/// The webhook function's settings, from the environment the template sets.
#[derive(Debug, Clone)]
pub struct Config {
    pub common: CommonConfig,
    /// `EDDO_WEBHOOK_SECRET_ARN`: the Secrets Manager secret holding the provider secrets.
    pub secret_id: String,
    /// `EDDO_SECRET_CACHE_SECONDS` (default 300): how long a fetched secret is trusted.
    pub secret_ttl: Duration,
    /// `EDDO_PREVIOUS_SECRET_GRACE_HOURS` (default 24, 0 to 720): how long after a rotation (the
    /// current version's creation) the previous version is still accepted; then only the current
    /// one, so revoking a leaked value takes one rotation.
    pub previous_secret_grace: Duration,
    /// `EDDO_MAX_BODY_BYTES` (default 1 MiB): larger deliveries answer 413.
    pub max_body_bytes: usize,
    /// `EDDO_WEBHOOK_FORWARD` (default `standard_webhooks:*`): events published raw.
    pub forward: Forward,
    /// `EDDO_IDEMPOTENCY_HOURS` (default 72, at least 24): how long a delivery id is remembered.
    /// GitHub lets a delivery be redelivered for 3 days.
    pub idempotency_retention: Duration,
    /// `EDDO_WEBHOOK_TOLERANCE_SECONDS` (default 300): Standard Webhooks timestamp tolerance.
    pub tolerance_secs: u64,
}

impl Config {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let forward_spec = env
            .optional("EDDO_WEBHOOK_FORWARD")
            .unwrap_or("standard_webhooks:*");
        let forward = Forward::parse(forward_spec)
            .map_err(|p| ConfigError::new("EDDO_WEBHOOK_FORWARD", p))?;
        let max_body_bytes: usize = env.parse_or("EDDO_MAX_BODY_BYTES", 1024 * 1024)?;
        // A function URL carries at most 6 MB; a larger limit could never be reached.
        if !(1024..=6 * 1024 * 1024).contains(&max_body_bytes) {
            return Err(ConfigError::new(
                "EDDO_MAX_BODY_BYTES",
                format!("{max_body_bytes} is outside 1024..=6291456"),
            ));
        }
        Ok(Config {
            common: CommonConfig::from_env(env)?,
            secret_id: env.required("EDDO_WEBHOOK_SECRET_ARN")?.to_string(),
            secret_ttl: env.seconds_or("EDDO_SECRET_CACHE_SECONDS", 300, 0, 3600)?,
            previous_secret_grace: env
                .seconds_or("EDDO_PREVIOUS_SECRET_GRACE_HOURS", 24, 0, 720)
                .map(|h| h * 3600)?,
            max_body_bytes,
            forward,
            idempotency_retention: env
                .seconds_or("EDDO_IDEMPOTENCY_HOURS", 72, 24, 24 * 30)
                .map(|h| h * 3600)?,
            tolerance_secs: env
                .seconds_or("EDDO_WEBHOOK_TOLERANCE_SECONDS", 300, 1, 3600)?
                .as_secs(),
        })
    }
}

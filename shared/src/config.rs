//! Deployment-time settings, read once from the environment at init.
//!
//! A missing or malformed value stops the function with one line naming the variable, so a bad
//! deployment fails at its first cold start rather than at its first event.

use std::collections::HashMap;
use std::str::FromStr;
use std::time::Duration;

/// The PutEvents entry limit AWS documented for years; AWS now accepts up to 1 MiB, so it is a
/// setting (`EDDO_MAX_ENTRY_BYTES`).
pub const DEFAULT_MAX_ENTRY_BYTES: usize = 256 * 1024;
/// The largest PutEvents entry EventBridge accepts at all.
pub const MAX_ENTRY_BYTES_CEILING: usize = 1024 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{variable}: {problem}")]
pub struct ConfigError {
    pub variable: String,
    pub problem: String,
}

impl ConfigError {
    pub fn new(variable: &str, problem: impl Into<String>) -> Self {
        ConfigError {
            variable: variable.to_string(),
            problem: problem.into(),
        }
    }
}

/// Where settings come from: the process environment, or a map in tests.
pub struct Env {
    vars: HashMap<String, String>,
}

impl Env {
    pub fn from_process() -> Self {
        Env {
            vars: std::env::vars().collect(),
        }
    }

    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        Env {
            vars: pairs
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    /// A value that may be absent; an empty value counts as absent.
    pub fn optional(&self, name: &str) -> Option<&str> {
        self.vars
            .get(name)
            .map(|v| v.trim())
            .filter(|v| !v.is_empty())
    }

    pub fn required(&self, name: &str) -> Result<&str, ConfigError> {
        self.optional(name)
            .ok_or_else(|| ConfigError::new(name, "is not set (the template sets it)"))
    }

    pub fn parse_or<T>(&self, name: &str, default: T) -> Result<T, ConfigError>
    where
        T: FromStr,
        T::Err: std::fmt::Display,
    {
        match self.optional(name) {
            None => Ok(default),
            Some(raw) => raw
                .parse()
                .map_err(|e| ConfigError::new(name, format!("{raw:?} is not valid: {e}"))),
        }
    }

    /// A whole number of seconds within `min..=max`.
    pub fn seconds_or(
        &self,
        name: &str,
        default: u64,
        min: u64,
        max: u64,
    ) -> Result<Duration, ConfigError> {
        let secs: u64 = self.parse_or(name, default)?;
        if !(min..=max).contains(&secs) {
            return Err(ConfigError::new(
                name,
                format!("{secs} is outside {min}..={max} seconds"),
            ));
        }
        Ok(Duration::from_secs(secs))
    }
}

/// What every eddo function needs: where to publish and where its state lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommonConfig {
    pub event_bus_name: String,
    pub table_name: String,
    pub max_entry_bytes: usize,
    /// Whether decisions are also said as CDEvents (`EDDO_CDEVENTS`: `on` or `off`, the
    /// default): the template turns it on when a CDEvents sink is named, or asked for.
    pub cdevents: bool,
}

impl CommonConfig {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let max_entry_bytes: usize =
            env.parse_or("EDDO_MAX_ENTRY_BYTES", DEFAULT_MAX_ENTRY_BYTES)?;
        if !(1024..=MAX_ENTRY_BYTES_CEILING).contains(&max_entry_bytes) {
            return Err(ConfigError::new(
                "EDDO_MAX_ENTRY_BYTES",
                format!(
                    "{max_entry_bytes} is outside 1024..={MAX_ENTRY_BYTES_CEILING} (EventBridge's ceiling)"
                ),
            ));
        }
        Ok(CommonConfig {
            event_bus_name: env.required("EDDO_EVENT_BUS_NAME")?.to_string(),
            table_name: env.required("EDDO_TABLE_NAME")?.to_string(),
            max_entry_bytes,
            cdevents: match env.optional("EDDO_CDEVENTS") {
                None | Some("off") => false,
                Some("on") => true,
                Some(other) => {
                    return Err(ConfigError::new(
                        "EDDO_CDEVENTS",
                        format!("{other:?} is neither on nor off"),
                    ));
                }
            },
        })
    }
}

/// What a function driven by the policy needs: the common settings and where the policy
/// document is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyConfig {
    pub common: CommonConfig,
    /// The SSM parameter (`EDDO_POLICY_PARAMETER`) or the S3 object (`EDDO_POLICY_OBJECT`,
    /// `s3://bucket/key`) holding the policy: exactly one is set.
    pub policy: crate::policy::PolicyStore,
    /// How long a read of the policy is used before the parameter is read again
    /// (`EDDO_POLICY_TTL_SECS`, 1 to 3600 seconds, 60 by default).
    pub policy_ttl: Duration,
}

impl PolicyConfig {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        Ok(PolicyConfig {
            common: CommonConfig::from_env(env)?,
            policy: policy_store(env)?,
            policy_ttl: env.seconds_or("EDDO_POLICY_TTL_SECS", 60, 1, 3600)?,
        })
    }
}

/// Where the policy is kept: the parameter or the object the template set, never both.
fn policy_store(env: &Env) -> Result<crate::policy::PolicyStore, ConfigError> {
    use crate::policy::PolicyStore;
    match (
        env.optional("EDDO_POLICY_PARAMETER"),
        env.optional("EDDO_POLICY_OBJECT"),
    ) {
        (Some(_), Some(_)) => Err(ConfigError::new(
            "EDDO_POLICY_OBJECT",
            "is set with EDDO_POLICY_PARAMETER; the policy is kept in one of them",
        )),
        (None, Some(object)) => match PolicyStore::parse(object) {
            Ok(store @ PolicyStore::Object { .. }) => Ok(store),
            Ok(_) => Err(ConfigError::new(
                "EDDO_POLICY_OBJECT",
                "is not s3://bucket/key",
            )),
            Err(why) => Err(ConfigError::new("EDDO_POLICY_OBJECT", why)),
        },
        (Some(name), None) if !name.starts_with("s3://") => {
            Ok(PolicyStore::Parameter(name.to_string()))
        }
        (Some(_), None) => Err(ConfigError::new(
            "EDDO_POLICY_PARAMETER",
            "names an S3 object; set EDDO_POLICY_OBJECT for that",
        )),
        (None, None) => Err(ConfigError::new(
            "EDDO_POLICY_PARAMETER",
            "is not set, nor EDDO_POLICY_OBJECT (the template sets one)",
        )),
    }
}

/// The invocation's deadline (the runtime's `Lambda-Runtime-Deadline-Ms`, a wall-clock time) as
/// a point on tokio's clock; `None` when it is already past or unknown (0).
pub fn deadline(at: std::time::SystemTime) -> Option<tokio::time::Instant> {
    let left = at.duration_since(std::time::SystemTime::now()).ok()?;
    (at > std::time::UNIX_EPOCH).then(|| tokio::time::Instant::now() + left)
}

/// Prints the one line that names the bad variable and ends the process: Lambda reports the init
/// failure with that line in the function's log.
pub fn exit_on_error<T>(result: Result<T, ConfigError>) -> T {
    result.unwrap_or_else(|e| {
        eprintln!("eddo: configuration error: {e}");
        std::process::exit(1)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> Vec<(&'static str, &'static str)> {
        vec![
            ("EDDO_EVENT_BUS_NAME", "eddo"),
            ("EDDO_TABLE_NAME", "eddo-state"),
        ]
    }

    #[test]
    fn the_policy_is_kept_in_a_parameter_or_an_object_never_both() {
        use crate::policy::PolicyStore;
        let with = |extra: &[(&'static str, &'static str)]| {
            let mut pairs = base();
            pairs.extend_from_slice(extra);
            PolicyConfig::from_env(&Env::from_pairs(pairs)).map(|c| c.policy)
        };
        assert_eq!(
            with(&[("EDDO_POLICY_PARAMETER", "/eddo/policy")]),
            Ok(PolicyStore::Parameter("/eddo/policy".into()))
        );
        assert_eq!(
            with(&[("EDDO_POLICY_OBJECT", "s3://acme-eddo/eddo/policy.yaml")]),
            Ok(PolicyStore::Object {
                bucket: "acme-eddo".into(),
                key: "eddo/policy.yaml".into()
            })
        );
        for bad in [
            vec![],
            vec![
                ("EDDO_POLICY_PARAMETER", "/eddo/policy"),
                ("EDDO_POLICY_OBJECT", "s3://acme-eddo/eddo/policy.yaml"),
            ],
            vec![("EDDO_POLICY_OBJECT", "acme-eddo/eddo/policy.yaml")],
            vec![("EDDO_POLICY_PARAMETER", "s3://acme-eddo/eddo/policy.yaml")],
        ] {
            assert!(with(&bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn reads_the_common_settings_with_defaults() {
        let cfg = CommonConfig::from_env(&Env::from_pairs(base())).unwrap();
        assert_eq!(cfg.event_bus_name, "eddo");
        assert_eq!(cfg.table_name, "eddo-state");
        assert_eq!(cfg.max_entry_bytes, 256 * 1024);
    }

    #[test]
    fn a_missing_variable_is_named() {
        let err = CommonConfig::from_env(&Env::from_pairs([("EDDO_EVENT_BUS_NAME", "eddo")]))
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "EDDO_TABLE_NAME: is not set (the template sets it)"
        );
        let err = CommonConfig::from_env(&Env::from_pairs([
            ("EDDO_EVENT_BUS_NAME", "  "),
            ("EDDO_TABLE_NAME", "t"),
        ]))
        .unwrap_err();
        assert_eq!(err.variable, "EDDO_EVENT_BUS_NAME");
    }

    #[test]
    fn a_malformed_or_out_of_range_value_is_named() {
        let mut pairs = base();
        pairs.push(("EDDO_MAX_ENTRY_BYTES", "lots"));
        let err = CommonConfig::from_env(&Env::from_pairs(pairs.clone())).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("EDDO_MAX_ENTRY_BYTES: \"lots\" is not valid"),
            "{err}"
        );
        pairs.pop();
        pairs.push(("EDDO_MAX_ENTRY_BYTES", "2000000"));
        let err = CommonConfig::from_env(&Env::from_pairs(pairs)).unwrap_err();
        assert!(err.to_string().contains("outside 1024..=1048576"), "{err}");
    }

    #[test]
    fn seconds_are_bounded() {
        let env = Env::from_pairs([("T", "5")]);
        assert_eq!(
            env.seconds_or("T", 300, 1, 60).unwrap(),
            Duration::from_secs(5)
        );
        assert_eq!(
            env.seconds_or("U", 300, 1, 600).unwrap(),
            Duration::from_secs(300)
        );
        assert_eq!(env.seconds_or("T", 300, 10, 60).unwrap_err().variable, "T");
    }
}

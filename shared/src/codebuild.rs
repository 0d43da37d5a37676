//! The two things every eddo function does with CodeBuild: start a project's build with eddo's
//! values as environment overrides and an idempotency token, and read a project's `CodeBuild
//! Build State Change` when it finishes. (Feature `codebuild`.)

use aws_lambda_events::event::codebuild::CodeBuildEvent;
use aws_sdk_codebuild::types::{EnvironmentVariable, EnvironmentVariableType};
use serde::Deserialize;
use serde_json::Value;

use crate::Error;

/// A build's state change, as eddo reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildState {
    pub project: String,
    pub build_id: String,
    /// `IN_PROGRESS`, `SUCCEEDED`, `FAILED`, `FAULT`, `STOPPED` or `TIMED_OUT`.
    pub status: String,
    /// The first phase that did not succeed.
    pub failed_phase: Option<String>,
    /// The console link to the build's logs.
    pub logs_url: Option<String>,
    pub source_version: Option<String>,
    /// The build's environment variables, overrides included (plaintext values only).
    pub environment: Vec<(String, String)>,
    /// The variables its buildspec exported (`env: exported-variables`).
    pub exported: Vec<(String, String)>,
}

impl BuildState {
    /// Reads a whole EventBridge event. `Err` says why it is not a build state change.
    pub fn read(event: &Value) -> Result<BuildState, String> {
        let e = CodeBuildEvent::deserialize(event)
            .map_err(|err| format!("not a CodeBuild state change: {err}"))?;
        let d = e.detail;
        let info = d.additional_information;
        let pairs = |list: Option<&Vec<Value>>| -> Vec<(String, String)> {
            list.into_iter()
                .flatten()
                .filter_map(|v| {
                    Some((
                        v["name"].as_str()?.to_string(),
                        v["value"].as_str()?.to_string(),
                    ))
                })
                .collect()
        };
        Ok(BuildState {
            project: d.project_name.unwrap_or_default(),
            build_id: d.build_id.unwrap_or_default(),
            status: d.build_status.unwrap_or_default(),
            failed_phase: info
                .phases
                .iter()
                .find(|p| p.phase_status.as_deref().is_some_and(|s| s != "SUCCEEDED"))
                .map(|p| p.phase_type.clone()),
            logs_url: info.logs.deep_link,
            source_version: info.source_version,
            environment: info
                .environment
                .environment_variables
                .into_iter()
                .filter(|v| v.type_.as_deref().is_none_or(|t| t == "PLAINTEXT"))
                .filter_map(|v| Some((v.name?, v.value?)))
                .collect(),
            // `aws_lambda_events` does not type them.
            exported: pairs(
                event["detail"]["additional-information"]["exported-environment-variables"]
                    .as_array(),
            ),
        })
    }

    /// The build's id as StartBuild returns it (`project:uuid`); the event carries its ARN.
    pub fn id(&self) -> &str {
        build_id(&self.build_id)
    }

    pub fn finished(&self) -> bool {
        self.status != "IN_PROGRESS"
    }

    pub fn succeeded(&self) -> bool {
        self.status == "SUCCEEDED"
    }

    /// An environment variable (the last one wins, as in the build).
    pub fn env(&self, name: &str) -> Option<&str> {
        find(&self.environment, name)
    }

    /// An exported variable.
    pub fn exported(&self, name: &str) -> Option<&str> {
        find(&self.exported, name)
    }

    /// "ended FAILED in phase BUILD", for the reasons people read.
    pub fn ending(&self) -> String {
        format!(
            "ended {}{}",
            self.status,
            self.failed_phase
                .as_ref()
                .map(|p| format!(" in phase {p}"))
                .unwrap_or_default()
        )
    }
}

/// `project:uuid` from a build ARN (`arn:aws:codebuild:...:build/project:uuid`) or the id itself.
pub fn build_id(arn_or_id: &str) -> &str {
    arn_or_id
        .split_once(":build/")
        .map_or(arn_or_id, |(_, id)| id)
}

fn find<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .rev()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// Why a build did not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A retry can fix it (throttling, an outage): fail the invocation.
    #[error(transparent)]
    Retryable(Error),
    /// The project is missing or refuses the call: report it, a retry cannot fix it.
    #[error(transparent)]
    Refused(Error),
}

/// Starts `project` with `variables` as plaintext environment overrides. The same `token` within
/// CodeBuild's five minutes returns the same build; eddo's own records guard beyond that.
pub async fn start(
    client: &aws_sdk_codebuild::Client,
    project: &str,
    token: &str,
    variables: &[(&str, &str)],
    timeout_minutes: Option<u32>,
) -> Result<String, StartError> {
    let mut start = client
        .start_build()
        .project_name(project)
        .idempotency_token(token)
        .set_timeout_in_minutes_override(timeout_minutes.and_then(|m| i32::try_from(m).ok()));
    for (name, value) in variables {
        start = start.environment_variables_override(
            EnvironmentVariable::builder()
                .name(*name)
                .value(*value)
                .r#type(EnvironmentVariableType::Plaintext)
                .build()
                .map_err(|e| StartError::Refused(Error::InvalidEvent(e.to_string())))?,
        );
    }
    match start.send().await {
        Ok(out) => out.build_value.and_then(|b| b.id).ok_or_else(|| {
            StartError::Retryable(Error::InvalidEvent("StartBuild answered no build".into()))
        }),
        Err(e) => {
            let err = Error::aws("CodeBuild", "StartBuild", e);
            if err.is_retryable() {
                Err(StartError::Retryable(err))
            } else {
                Err(StartError::Refused(err))
            }
        }
    }
}

/// An idempotency token for StartBuild: `prefix` and a hash of what makes the start unique.
pub fn token(prefix: &str, unique: &str) -> String {
    use sha2::Digest as _;
    let hash = sha2::Sha256::digest(unique.as_bytes());
    let hex: String = hash[..16].iter().map(|b| format!("{b:02x}")).collect();
    format!("{prefix}-{hex}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn corpus() -> Value {
        crate::corpus::json("aws/codebuild-build-state-change.json")
    }

    #[test]
    fn the_corpus_build_reads_with_its_environment() {
        let b = BuildState::read(&corpus()).unwrap();
        assert_eq!(b.project, "my-sample-project");
        assert_eq!(b.env("TEST"), Some("TEST"));
        assert!(b.succeeded() && b.finished());
        assert_eq!(b.failed_phase, None);
        assert!(
            b.logs_url
                .as_deref()
                .unwrap()
                .starts_with("https://console.aws.amazon.com")
        );
        assert_eq!(b.ending(), "ended SUCCEEDED");
        assert_eq!(
            b.id(),
            "my-sample-project:8745a7a9-c340-456a-9166-edf953571bEX"
        );
        assert_eq!(build_id("p:1"), "p:1");
    }

    #[test]
    fn a_failed_phase_is_named() {
        let mut e = corpus();
        e["detail"]["build-status"] = "FAILED".into();
        e["detail"]["additional-information"]["phases"][6]["phase-status"] = "FAILED".into();
        e["detail"]["additional-information"]["exported-environment-variables"] =
            serde_json::json!([{"name": "TENANT_URL", "value": "https://a.example"}]);
        let b = BuildState::read(&e).unwrap();
        assert_eq!(b.ending(), "ended FAILED in phase BUILD");
        assert_eq!(b.exported("TENANT_URL"), Some("https://a.example"));
        assert!(BuildState::read(&serde_json::json!({"detail": 1})).is_err());
    }

    #[test]
    fn tokens_are_stable_and_distinct() {
        assert_eq!(token("eddo-rollback", "a"), token("eddo-rollback", "a"));
        assert_ne!(token("eddo-rollback", "a"), token("eddo-rollback", "b"));
        assert!(token("eddo-rollback", "a").len() <= 64);
    }
}

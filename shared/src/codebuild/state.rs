//! A build as eddo reads it: from a `CodeBuild Build State Change`, or from CodeBuild itself
//! (BatchGetBuilds), which is the authority for what an event claims.

use aws_lambda_events::event::codebuild::CodeBuildEvent;
use aws_sdk_codebuild::types::{EnvironmentVariable, EnvironmentVariableType};
use serde::Deserialize;
use serde_json::Value;

use super::{DECISION_VARIABLE, TOKEN_VARIABLE};
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
    /// The commit CodeBuild checked out (`resolvedSourceVersion`), as only CodeBuild itself
    /// reports it ([`described`]); an event does not carry it.
    pub resolved_commit: Option<String>,
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
            resolved_commit: None,
        })
    }

    /// The build as CodeBuild's `BatchGetBuilds` describes it.
    pub fn from_build(b: &aws_sdk_codebuild::types::Build) -> BuildState {
        let plain = |v: &&EnvironmentVariable| {
            v.r#type()
                .is_none_or(|t| *t == EnvironmentVariableType::Plaintext)
        };
        BuildState {
            project: b.project_name().unwrap_or_default().to_string(),
            build_id: b.arn().or(b.id()).unwrap_or_default().to_string(),
            status: b
                .build_status()
                .map(|s| s.as_str().to_string())
                .unwrap_or_default(),
            failed_phase: b
                .phases()
                .iter()
                .find(|p| p.phase_status().is_some_and(|s| s.as_str() != "SUCCEEDED"))
                .and_then(|p| p.phase_type().map(|t| t.as_str().to_string())),
            logs_url: b.logs().and_then(|l| l.deep_link()).map(str::to_string),
            source_version: b.source_version().map(str::to_string),
            environment: b
                .environment()
                .map(|e| e.environment_variables())
                .unwrap_or_default()
                .iter()
                .filter(plain)
                .map(|v| (v.name().to_string(), v.value().to_string()))
                .collect(),
            exported: b
                .exported_environment_variables()
                .iter()
                .filter_map(|v| Some((v.name()?.to_string(), v.value()?.to_string())))
                .collect(),
            resolved_commit: b.resolved_source_version().map(str::to_string),
        }
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

    /// What eddo started the build for (`deploy`, `rollback`, `tenant`), for a build that
    /// carries out a decision: the kind its token names. A project can leave the policy while
    /// its build runs (an operator moves a service's deploy to another project); the build's
    /// own variables still say whose it is, and the decision it names is what its completion
    /// is matched against, never this alone.
    pub fn decided_kind(&self) -> Option<&str> {
        self.env(DECISION_VARIABLE)?;
        let (kind, hash) = self
            .env(TOKEN_VARIABLE)?
            .strip_prefix("eddo-")?
            .rsplit_once('-')?;
        let hex = hash.len() == 32 && hash.bytes().all(|b| b.is_ascii_hexdigit());
        (hex && !kind.is_empty()).then_some(kind)
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

/// What CodeBuild itself says of the build `id` (an ARN or `project:uuid`): the authority for
/// what a `CodeBuild Build State Change` claims, which anyone who may put events or invoke a
/// function can forge. `None`: CodeBuild knows no such build.
pub async fn described(
    client: &aws_sdk_codebuild::Client,
    id: &str,
) -> Result<Option<BuildState>, Error> {
    let out = client
        .batch_get_builds()
        .ids(build_id(id))
        .send()
        .await
        .map_err(|e| Error::aws("CodeBuild", "BatchGetBuilds", e))?;
    Ok(out.builds().first().map(BuildState::from_build))
}

/// Why CodeBuild's own account of a build contradicts the event that claims it, if it does.
pub fn contradiction(claimed: &BuildState, confirmed: &BuildState) -> Option<String> {
    let id = claimed.id();
    if confirmed.project != claimed.project {
        return Some(format!(
            "CodeBuild says build {id} is of project {}, not {}",
            confirmed.project, claimed.project
        ));
    }
    if confirmed.status != claimed.status {
        return Some(format!(
            "CodeBuild says build {id} is {}, not {}",
            confirmed.status, claimed.status
        ));
    }
    None
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

    /// The corpus build with these plaintext variables added.
    fn with_env(vars: &[(&str, &str)]) -> BuildState {
        let mut e = corpus();
        let env =
            &mut e["detail"]["additional-information"]["environment"]["environment-variables"];
        for (name, value) in vars {
            env.as_array_mut()
                .unwrap()
                .push(serde_json::json!({"name": name, "type": "PLAINTEXT", "value": value}));
        }
        BuildState::read(&e).unwrap()
    }

    #[test]
    fn a_decided_build_names_its_kind_by_its_token() {
        let token = super::super::token("eddo-deploy", "decision\nd-1");
        let b = with_env(&[(TOKEN_VARIABLE, &token), (DECISION_VARIABLE, "d-1")]);
        assert_eq!(b.decided_kind(), Some("deploy"));
        let token = super::super::token("eddo-tenant", "decision\nd-2");
        let b = with_env(&[(TOKEN_VARIABLE, &token), (DECISION_VARIABLE, "d-2")]);
        assert_eq!(b.decided_kind(), Some("tenant"));
        // No decision, a token of another shape, or none: not a decided build.
        assert_eq!(with_env(&[(TOKEN_VARIABLE, &token)]).decided_kind(), None);
        for bad in [
            "eddo-deploy-xyz",
            "deploy-0123456789abcdef0123456789abcdef",
            "eddo--0",
        ] {
            let b = with_env(&[(TOKEN_VARIABLE, bad), (DECISION_VARIABLE, "d")]);
            assert_eq!(b.decided_kind(), None, "{bad}");
        }
        assert_eq!(with_env(&[(DECISION_VARIABLE, "d")]).decided_kind(), None);
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
}

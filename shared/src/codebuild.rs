//! The two things every eddo function does with CodeBuild: start a project's build with eddo's
//! values as environment overrides and an idempotency token, and read a project's `CodeBuild
//! Build State Change` when it finishes. (Feature `codebuild`.)

use aws_lambda_events::event::codebuild::CodeBuildEvent;
use aws_sdk_codebuild::operation::start_build::StartBuildError;
use aws_sdk_codebuild::types::{EnvironmentVariable, EnvironmentVariableType, SortOrderType};
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

/// The environment variable that carries a build's token, so eddo can find the build again.
pub const TOKEN_VARIABLE: &str = "EDDO_BUILD_TOKEN";

/// The environment variable that carries the id of the decision a build carries out, so its
/// completion finds the decision whatever was recorded of its start.
pub const DECISION_VARIABLE: &str = "EDDO_DECISION_ID";

/// How far before the decision eddo reads a project's builds when it looks for one it started:
/// a margin for clocks, not for work (a build starts after its decision).
const FIND_MARGIN_SECS: i64 = 300;

/// A build eddo starts: fixed when the decision it carries out is written ([`BuildRequest::decided`]
/// and stored with the decision), so every attempt to carry out one decision sends the same
/// request with the same token, whatever the policy or the record says by then.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BuildRequest {
    /// What the build does for eddo (`deploy`, `rollback`, `tenant`): the token's prefix.
    kind: String,
    project: String,
    variables: Vec<(String, String)>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    timeout_minutes: Option<u32>,
    /// The decision the build carries out: the token is derived from it alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    decision: Option<String>,
}

impl BuildRequest {
    pub fn new(kind: &str, project: &str) -> BuildRequest {
        BuildRequest {
            kind: kind.to_string(),
            project: project.to_string(),
            variables: Vec::new(),
            timeout_minutes: None,
            decision: None,
        }
    }

    /// A plaintext environment override.
    pub fn var(mut self, name: &str, value: &str) -> BuildRequest {
        self.variables.push((name.to_string(), value.to_string()));
        self
    }

    /// An override when there is a value.
    pub fn var_opt(self, name: &str, value: Option<&str>) -> BuildRequest {
        match value {
            Some(v) => self.var(name, v),
            None => self,
        }
    }

    pub fn timeout(mut self, minutes: Option<u32>) -> BuildRequest {
        self.timeout_minutes = minutes;
        self
    }

    /// The request as the decision `id` froze it: its token is the decision's, and the build
    /// carries the id ([`DECISION_VARIABLE`]).
    pub fn decided(mut self, id: &str) -> BuildRequest {
        self.decision = Some(id.to_string());
        self
    }

    pub fn project(&self) -> &str {
        &self.project
    }

    pub fn variables(&self) -> &[(String, String)] {
        &self.variables
    }

    pub fn timeout_minutes(&self) -> Option<u32> {
        self.timeout_minutes
    }

    /// The decision it carries out, if it was frozen by one.
    pub fn decision(&self) -> Option<&str> {
        self.decision.as_deref()
    }

    /// `eddo-<kind>-` and a hash of the decision it carries out; for a request no decision froze,
    /// of everything it sends: the same request, the same token.
    pub fn token(&self) -> String {
        let prefix = format!("eddo-{}", self.kind);
        if let Some(decision) = &self.decision {
            return token(&prefix, &format!("decision\n{decision}"));
        }
        let mut unique = format!("{}\n{:?}\n", self.project, self.timeout_minutes);
        for (k, v) in &self.variables {
            unique.push_str(&format!("{}={}\n", k.len(), k));
            unique.push_str(&format!("{}={}\n", v.len(), v));
        }
        token(&prefix, &unique)
    }

    /// Everything the build gets as overrides: the request's variables, its token and its
    /// decision.
    fn overrides(&self) -> Vec<(String, String)> {
        let mut all = self.variables.clone();
        all.push((TOKEN_VARIABLE.to_string(), self.token()));
        if let Some(d) = &self.decision {
            all.push((DECISION_VARIABLE.to_string(), d.clone()));
        }
        all
    }
}

/// When a resumed start looks for the build an earlier attempt may have started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attempt {
    /// The first attempt of this invocation's own decision: CodeBuild's token covers a retry.
    First,
    /// Another invocation's work, decided at this epoch second: it may have started the build
    /// and died, so every build of the project back to then is read first.
    Resume { decided_at: u64 },
}

/// Starts the build `request` describes, or finds the one that request already started.
///
/// The same token within CodeBuild's five minutes returns the same build. A token CodeBuild
/// refuses as used with other parameters (an earlier eddo version) is not a refusal: the build it
/// started is read back. Past the five minutes only eddo's own records guard; a resumed attempt
/// (finishing another invocation's work, which may have started the build and died) looks for
/// the build, across every page back to its decision, before starting one.
pub async fn start(
    client: &aws_sdk_codebuild::Client,
    request: &BuildRequest,
    attempt: Attempt,
) -> Result<String, StartError> {
    let token = request.token();
    let since = match attempt {
        Attempt::First => None,
        Attempt::Resume { decided_at } => Some(decided_at),
    };
    if let Some(since) = since
        && let Some(build) = find_build(client, request.project(), &token, since).await?
    {
        return Ok(build);
    }
    let mut start = client
        .start_build()
        .project_name(request.project())
        .idempotency_token(&token)
        .set_timeout_in_minutes_override(
            request.timeout_minutes.and_then(|m| i32::try_from(m).ok()),
        );
    for (name, value) in request.overrides() {
        start = start.environment_variables_override(
            EnvironmentVariable::builder()
                .name(name)
                .value(value)
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
            let token_used = matches!(
                e.as_service_error(),
                Some(StartBuildError::InvalidInputException(_))
            );
            let err = Error::aws("CodeBuild", "StartBuild", e);
            if token_used
                && let Some(build) =
                    find_build(client, request.project(), &token, since.unwrap_or(0)).await?
            {
                return Ok(build);
            }
            if err.is_retryable() {
                Err(StartError::Retryable(err))
            } else {
                Err(StartError::Refused(err))
            }
        }
    }
}

/// The build of `project` that carries `token`, among every build of it started since `since`
/// (epoch seconds, less a margin for clocks; 0 reads only the latest page), newest first, page
/// by page.
pub async fn find_build(
    client: &aws_sdk_codebuild::Client,
    project: &str,
    token: &str,
    since: u64,
) -> Result<Option<String>, StartError> {
    let classify = |err: Error| {
        if err.is_retryable() {
            StartError::Retryable(err)
        } else {
            StartError::Refused(err)
        }
    };
    let oldest = i64::try_from(since).unwrap_or(i64::MAX) - FIND_MARGIN_SECS;
    let mut next: Option<String> = None;
    loop {
        let page = client
            .list_builds_for_project()
            .project_name(project)
            .sort_order(SortOrderType::Descending)
            .set_next_token(next.take())
            .send()
            .await
            .map_err(|e| classify(Error::aws("CodeBuild", "ListBuildsForProject", e)))?;
        let ids = page.ids.unwrap_or_default();
        if ids.is_empty() {
            return Ok(None);
        }
        for chunk in ids.chunks(FIND_BATCH) {
            let builds = client
                .batch_get_builds()
                .set_ids(Some(chunk.to_vec()))
                .send()
                .await
                .map_err(|e| classify(Error::aws("CodeBuild", "BatchGetBuilds", e)))?
                .builds
                .unwrap_or_default();
            if let Some(found) = builds.iter().find(|b| carries(b, token)) {
                return Ok(found.id.clone());
            }
            // Newest first: once a page reaches builds started before the decision, no older
            // one can be its.
            let reached = builds
                .iter()
                .filter_map(|b| b.start_time.map(|t| t.secs()))
                .any(|t| t < oldest);
            if since == 0 || reached {
                return Ok(None);
            }
        }
        match page.next_token {
            Some(t) => next = Some(t),
            None => return Ok(None),
        }
    }
}

/// How many builds one `BatchGetBuilds` reads (its limit).
pub const FIND_BATCH: usize = 100;

/// Whether the build carries `token` among its environment overrides.
fn carries(b: &aws_sdk_codebuild::types::Build, token: &str) -> bool {
    b.environment
        .as_ref()
        .and_then(|e| e.environment_variables.as_ref())
        .is_some_and(|vars| {
            vars.iter()
                .any(|v| v.name() == TOKEN_VARIABLE && v.value() == token)
        })
}

/// An idempotency token: `prefix` and a hash of what makes the start unique.
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

    fn deploy() -> BuildRequest {
        BuildRequest::new("deploy", "eddo-deploy")
            .var("EDDO_SERVICE", "hello-world")
            .var("EDDO_COMMIT_SHA", "abc")
    }

    #[test]
    fn the_token_is_the_request_s() {
        assert_eq!(deploy().token(), deploy().token());
        assert_ne!(deploy().token(), deploy().var("EDDO_X", "1").token());
        assert_ne!(deploy().token(), deploy().timeout(Some(5)).token());
        assert_ne!(
            BuildRequest::new("deploy", "p").var("A", "b=c").token(),
            BuildRequest::new("deploy", "p").var("A=b", "c").token()
        );
        assert!(deploy().token().starts_with("eddo-deploy-"));
        assert!(deploy().token().len() <= 64);
    }

    fn mismatch() -> aws_smithy_mocks::Rule {
        use aws_sdk_codebuild::types::error::InvalidInputException;
        aws_smithy_mocks::mock!(aws_sdk_codebuild::Client::start_build).then_error(|| {
            StartBuildError::InvalidInputException(
                InvalidInputException::builder()
                    .message("parameter mismatch")
                    .build(),
            )
        })
    }

    fn listed(token: &'static str) -> [aws_smithy_mocks::Rule; 2] {
        use aws_sdk_codebuild::operation::batch_get_builds::BatchGetBuildsOutput;
        use aws_sdk_codebuild::operation::list_builds_for_project::ListBuildsForProjectOutput;
        use aws_sdk_codebuild::types::{Build, ComputeType, EnvironmentType, ProjectEnvironment};
        let list = aws_smithy_mocks::mock!(aws_sdk_codebuild::Client::list_builds_for_project)
            .then_output(|| {
                ListBuildsForProjectOutput::builder()
                    .ids("eddo-deploy:2")
                    .ids("eddo-deploy:1")
                    .build()
            });
        let get = aws_smithy_mocks::mock!(aws_sdk_codebuild::Client::batch_get_builds).then_output(
            move || {
                let build = |id: &str, t: &str| {
                    Build::builder()
                        .id(id)
                        .environment(
                            ProjectEnvironment::builder()
                                .r#type(EnvironmentType::LinuxContainer)
                                .image("i")
                                .compute_type(ComputeType::BuildGeneral1Small)
                                .environment_variables(
                                    EnvironmentVariable::builder()
                                        .name(TOKEN_VARIABLE)
                                        .value(t)
                                        .build()
                                        .unwrap(),
                                )
                                .build()
                                .unwrap(),
                        )
                        .build()
                };
                BatchGetBuildsOutput::builder()
                    .builds(build("eddo-deploy:2", "eddo-other"))
                    .builds(build("eddo-deploy:1", token))
                    .build()
            },
        );
        [list, get]
    }

    #[tokio::test]
    async fn a_token_used_before_reads_its_build_back() {
        use aws_smithy_mocks::{RuleMode, mock_client};
        let token: &'static str = Box::leak(deploy().token().into_boxed_str());
        let [list, get] = listed(token);
        let start = mismatch();
        let client = mock_client!(aws_sdk_codebuild, RuleMode::MatchAny, [&start, &list, &get]);
        let build = super::start(&client, &deploy(), Attempt::First)
            .await
            .unwrap();
        assert_eq!(build, "eddo-deploy:1");
        assert_eq!(start.num_calls(), 1);
    }

    #[tokio::test]
    async fn a_mismatch_without_the_build_is_a_refusal() {
        use aws_smithy_mocks::{RuleMode, mock_client};
        let [list, get] = listed("eddo-not-this-one");
        let start = mismatch();
        let client = mock_client!(aws_sdk_codebuild, RuleMode::MatchAny, [&start, &list, &get]);
        let err = super::start(&client, &deploy(), Attempt::First)
            .await
            .unwrap_err();
        assert!(matches!(err, StartError::Refused(_)), "{err:?}");
    }

    #[tokio::test]
    async fn resuming_finds_the_build_before_starting_one() {
        use aws_smithy_mocks::{RuleMode, mock_client};
        let token: &'static str = Box::leak(deploy().token().into_boxed_str());
        let [list, get] = listed(token);
        let start = mismatch();
        let client = mock_client!(aws_sdk_codebuild, RuleMode::MatchAny, [&start, &list, &get]);
        let build = super::start(&client, &deploy(), Attempt::Resume { decided_at: 0 })
            .await
            .unwrap();
        assert_eq!(build, "eddo-deploy:1");
        assert_eq!(start.num_calls(), 0, "found, not started");
    }

    #[test]
    fn tokens_are_stable_and_distinct() {
        assert_eq!(token("eddo-rollback", "a"), token("eddo-rollback", "a"));
        assert_ne!(token("eddo-rollback", "a"), token("eddo-rollback", "b"));
        assert!(token("eddo-rollback", "a").len() <= 64);
    }
}

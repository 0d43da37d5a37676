//! The two things every eddo function does with CodeBuild: start a project's build with eddo's
//! values as environment overrides and an idempotency token, and read a project's `CodeBuild
//! Build State Change` when it finishes. (Feature `codebuild`.)

mod state;

pub use state::{BuildState, build_id, contradiction, described};

use aws_sdk_codebuild::error::ProvideErrorMetadata;
use aws_sdk_codebuild::operation::start_build::StartBuildError;
use aws_sdk_codebuild::types::{EnvironmentVariable, EnvironmentVariableType, SortOrderType};

use crate::Error;

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
    /// What the build does for eddo: its project's `eddo:role` (`deploy`, `rollback`, `tenant`),
    /// and the token's prefix.
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
            let denied = e
                .as_service_error()
                .and_then(|s| s.code())
                .is_some_and(|c| c == "AccessDeniedException");
            let mut err = Error::aws("CodeBuild", "StartBuild", e);
            if denied && let Error::Aws { message, .. } = &mut err {
                // The template grants StartBuild by the project's tag: say which one is missing.
                message.push_str(&format!(
                    " (eddo starts only projects tagged {}={}: tag {} so)",
                    crate::projects::ROLE_TAG,
                    request.kind,
                    request.project()
                ));
            }
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

//! The detail of eddo's Git events (`source: eddo.webhook`): one shape whatever the provider, so
//! rules and consumers never branch on GitHub versus GitLab.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Provider {
    Github,
    Gitlab,
    StandardWebhooks,
}

impl Provider {
    pub const fn as_str(self) -> &'static str {
        match self {
            Provider::Github => "github",
            Provider::Gitlab => "gitlab",
            Provider::StandardWebhooks => "standard_webhooks",
        }
    }
}

/// A normalised webhook delivery.
///
/// The core fields (`ref` to `actor`) are always present, `null` when they do not apply, so an
/// EventBridge pattern can match on them uniformly; the kind-specific blocks appear only on their
/// kind of event.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GitEvent {
    pub provider: Provider,
    pub delivery_id: String,
    /// The provider's own event name (`push`, `Merge Request Hook`, ...).
    pub event: String,
    /// The normalised action (`opened`, `synchronized`, `merged`, `closed`, `completed`, ...).
    pub action: Option<String>,
    pub repository: Option<Repository>,
    #[serde(rename = "ref")]
    pub git_ref: Option<String>,
    pub branch: Option<String>,
    pub tag: Option<String>,
    pub commit_sha: Option<String>,
    pub actor: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub push: Option<Push>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pull_request: Option<PullRequest>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release: Option<Release>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check: Option<Check>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protection_rule: Option<ProtectionRule>,
    /// The provider's payload as it arrived, on `Git Provider Event` only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw: Option<Box<RawValue>>,
    /// Set when `raw` was left out to keep the entry under the PutEvents size limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw_omitted: Option<RawOmitted>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Repository {
    /// `owner/name` on GitHub, `group/subgroup/project` on GitLab.
    pub full_name: String,
    pub name: String,
    pub owner: Option<String>,
    pub url: Option<String>,
    pub clone_url: Option<String>,
    pub default_branch: Option<String>,
    pub private: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Push {
    pub before: Option<String>,
    pub created: bool,
    pub forced: bool,
    pub commit_count: u64,
    /// The head commit's message, at most 1,024 characters.
    pub head_commit_message: Option<String>,
    pub compare_url: Option<String>,
    /// When the head commit was made, as the provider says it (RFC 3339): where lead time for
    /// changes starts.
    #[serde(default)]
    pub head_commit_time: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PullRequest {
    pub number: u64,
    pub title: String,
    pub url: Option<String>,
    pub state: String,
    pub draft: bool,
    pub merged: bool,
    pub merge_commit_sha: Option<String>,
    pub head_ref: Option<String>,
    pub head_sha: Option<String>,
    pub base_ref: Option<String>,
    pub base_sha: Option<String>,
    pub author: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Release {
    pub tag: String,
    pub name: Option<String>,
    pub url: Option<String>,
    pub draft: bool,
    pub prerelease: bool,
    pub target: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckKind {
    CheckRun,
    CheckSuite,
    WorkflowRun,
    Pipeline,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Check {
    pub kind: CheckKind,
    pub id: Option<u64>,
    pub name: Option<String>,
    pub status: Option<String>,
    /// `success`, `failure`, `cancelled`, `skipped`, `timed_out`, ... as the provider says it.
    pub conclusion: Option<String>,
    pub head_branch: Option<String>,
    pub head_sha: Option<String>,
    pub url: Option<String>,
    /// The app that ran it: its slug (`github-actions`).
    pub app: Option<String>,
    /// The app's numeric id, as GitHub gives it on a check run or suite.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_id: Option<u64>,
    /// A workflow run's workflow file (`.github/workflows/codeql.yml`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workflow_path: Option<String>,
    /// The event that triggered a workflow run (`push`, `pull_request`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trigger: Option<String>,
}

/// A GitHub Actions job waiting on an environment whose custom deployment protection rule is
/// eddo's App: answered by `POST /repos/{repository}/actions/runs/{run_id}/deployment_protection_rule`.
/// Only the run id is taken from the delivery's callback URL (checked to name the delivery's own
/// repository); the host the answer goes to is the deployment's own GitHub API, never the
/// payload's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProtectionRule {
    /// The environment the job waits on (`production`).
    pub environment: String,
    /// The workflow run the job belongs to.
    pub run_id: u64,
    /// The event that triggered the workflow run (`push`, `workflow_dispatch`, ...).
    pub trigger: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RawOmitted {
    pub reason: String,
    pub raw_bytes: usize,
    pub limit_bytes: usize,
}

/// Cuts `s` to at most `max` characters, on a character boundary, marking the cut.
pub fn truncate(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        None => s.to_string(),
        Some((at, _)) => format!("{}…", &s[..at]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncates_on_character_boundaries() {
        assert_eq!(truncate("héllo", 10), "héllo");
        assert_eq!(truncate("héllo", 2), "hé…");
        assert_eq!(truncate("♥♥♥", 1), "♥…");
    }
}

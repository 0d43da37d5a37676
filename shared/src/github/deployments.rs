//! Custom deployment protection rules: the App approves or rejects the GitHub Actions jobs
//! waiting on an environment whose rule it is. (REST: `POST /repos/{owner}/{repo}/actions/runs/
//! {run_id}/deployment_protection_rule`, operation `actions/review-custom-gates-for-run`,
//! answered 204; `GET /repos/{owner}/{repo}/actions/runs/{run_id}` to learn whether a run still
//! waits.)

use serde::{Deserialize, Serialize};

use super::{App, Failure};

/// What the App says of an environment's waiting jobs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReviewState {
    Approved,
    Rejected,
}

/// An answer to a protection rule: its state and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Review {
    pub state: ReviewState,
    pub comment: String,
}

#[derive(Serialize)]
struct Request<'a> {
    environment_name: &'a str,
    state: ReviewState,
    comment: &'a str,
}

#[derive(Deserialize)]
struct Run {
    status: Option<String>,
}

impl App {
    /// Answers the rule of `environment` for workflow run `run_id` of `repo` (`owner/name`).
    /// The comment is cut to [`super::checks::MAX_OUTPUT_CHARS`], saying so.
    pub async fn review_protection_rule(
        &self,
        repo: &str,
        run_id: u64,
        environment: &str,
        review: &Review,
    ) -> Result<(), Failure> {
        let comment = super::checks::fit(&review.comment);
        let body = serde_json::to_value(Request {
            environment_name: environment,
            state: review.state,
            comment: &comment,
        })
        .expect("a review is JSON");
        self.call(
            repo,
            http::Method::POST,
            &format!("/repos/{repo}/actions/runs/{run_id}/deployment_protection_rule"),
            Some(&body),
        )
        .await
        .map(|_| ())
    }

    /// Workflow run `run_id`'s status as GitHub has it (`waiting` while a protection rule holds
    /// one of its jobs; `in_progress`, `completed`, ... after).
    pub async fn workflow_run_status(&self, repo: &str, run_id: u64) -> Result<String, Failure> {
        let (_, bytes) = self
            .call(
                repo,
                http::Method::GET,
                &format!("/repos/{repo}/actions/runs/{run_id}"),
                None,
            )
            .await?;
        let run: Run = self.transport.read("a workflow run", &bytes)?;
        Ok(run.status.unwrap_or_default())
    }
}

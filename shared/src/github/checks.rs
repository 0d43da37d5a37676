//! Check runs: what a commit's page and its pull request show. One per candidate, found again by
//! its `external_id` when the answer to its creation was lost, so there is never a second.
//! (REST: `POST /repos/{owner}/{repo}/check-runs`, `PATCH .../check-runs/{check_run_id}`,
//! `GET /repos/{owner}/{repo}/commits/{ref}/check-runs`.)

use serde::{Deserialize, Serialize};

use super::{App, Failure};

/// The most characters GitHub takes in a check run's `output.summary` and `output.text`.
pub const MAX_OUTPUT_CHARS: usize = 65_535;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Queued,
    InProgress,
    Completed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Conclusion {
    Success,
    Failure,
    Neutral,
    Cancelled,
    TimedOut,
    ActionRequired,
    Skipped,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Output {
    pub title: String,
    pub summary: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
}

impl Output {
    /// The output with `summary` and `text` within [`MAX_OUTPUT_CHARS`], each cut one saying so.
    pub fn new(title: String, summary: &str, text: Option<&str>) -> Output {
        Output {
            title,
            summary: fit(summary),
            text: text.map(fit),
        }
    }
}

/// `s` within [`MAX_OUTPUT_CHARS`] characters: cut, and saying it was, when it is longer.
pub fn fit(s: &str) -> String {
    if s.chars().count() <= MAX_OUTPUT_CHARS {
        return s.to_string();
    }
    let note =
        "\n\n… (cut to GitHub's limit of 65,535 characters; the events on the eddo bus say it all)";
    let keep = MAX_OUTPUT_CHARS - note.chars().count();
    let mut out: String = s.chars().take(keep).collect();
    out.push_str(note);
    out
}

/// A check run as eddo writes it, every time in full: the same request creates it or brings it
/// up to date.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckRun {
    pub name: String,
    pub head_sha: String,
    /// What finds it again: the candidate it shows.
    pub external_id: String,
    pub status: Status,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub conclusion: Option<Conclusion>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub completed_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub details_url: Option<String>,
    pub output: Output,
}

#[derive(Deserialize)]
struct Created {
    id: u64,
}

#[derive(Deserialize)]
struct Listed {
    check_runs: Vec<Listing>,
}

#[derive(Deserialize)]
struct Listing {
    id: u64,
    #[serde(default)]
    external_id: Option<String>,
}

impl App {
    /// Creates `run` on `repo` (`owner/name`); its id.
    pub async fn create_check_run(&self, repo: &str, run: &CheckRun) -> Result<u64, Failure> {
        let body = serde_json::to_value(run).expect("a check run is JSON");
        let (_, bytes) = self
            .call(
                repo,
                http::Method::POST,
                &format!("/repos/{repo}/check-runs"),
                Some(&body),
            )
            .await?;
        let created: Created = self.transport.read("a created check run", &bytes)?;
        Ok(created.id)
    }

    /// Brings check run `id` on `repo` to `run` (all but its name and commit, which stay).
    pub async fn update_check_run(
        &self,
        repo: &str,
        id: u64,
        run: &CheckRun,
    ) -> Result<(), Failure> {
        let mut body = serde_json::to_value(run).expect("a check run is JSON");
        if let Some(o) = body.as_object_mut() {
            o.remove("head_sha");
        }
        self.call(
            repo,
            http::Method::PATCH,
            &format!("/repos/{repo}/check-runs/{id}"),
            Some(&body),
        )
        .await
        .map(|_| ())
    }

    /// The check run named `name` on commit `sha` of `repo` whose `external_id` is `external_id`:
    /// the one a creation whose answer was lost made.
    pub async fn find_check_run(
        &self,
        repo: &str,
        sha: &str,
        name: &str,
        external_id: &str,
    ) -> Result<Option<u64>, Failure> {
        let name: String = crate::forge::encode(name);
        let (_, bytes) = self
            .call(
                repo,
                http::Method::GET,
                &format!(
                    "/repos/{repo}/commits/{sha}/check-runs?check_name={name}&filter=all&per_page=100"
                ),
                None,
            )
            .await?;
        let listed: Listed = self.transport.read("a list of check runs", &bytes)?;
        Ok(listed
            .check_runs
            .into_iter()
            .find(|r| r.external_id.as_deref() == Some(external_id))
            .map(|r| r.id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_longer_than_github_takes_is_cut_and_says_so() {
        let long = "x".repeat(MAX_OUTPUT_CHARS + 10);
        let o = Output::new("t".into(), &long, Some(&long));
        assert_eq!(o.summary.chars().count(), MAX_OUTPUT_CHARS);
        assert!(
            o.summary
                .ends_with("the events on the eddo bus say it all)")
        );
        assert_eq!(o.text.unwrap().chars().count(), MAX_OUTPUT_CHARS);
        let short = Output::new("t".into(), "fine", None);
        assert_eq!(short.summary, "fine");
    }
}

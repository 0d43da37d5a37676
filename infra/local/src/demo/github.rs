//! What developers see on GitHub during the demo: the gate's check run on a release's commit,
//! read from the GitHub stand-in (when the template has the App mode: template.yaml does).

use std::time::Duration;

use super::*;
use crate::github::GitHub;

/// The repository of the example service's check runs (its policy's `checks.github`).
const REPO: &str = "Codertocat/Hello-World";

/// The gate's check run on `commit` ends `state` (`completed/success`, ...) titled `title`, one
/// check run however many signals and updates.
pub(super) async fn check_run_shows(
    s: &mut Scene<'_>,
    commit: &str,
    state: &str,
    title: &str,
) -> Result<(), LocalError> {
    let Some(github) = s.github else {
        s.t.step(true, "no GitHub App in this template", "", "");
        return Ok(());
    };
    let shown = |g: &GitHub| {
        let runs = g.check_runs(REPO, commit);
        runs.len() == 1
            && runs[0].states.last().map(String::as_str) == Some(state)
            && runs[0].output["title"] == title
    };
    let arrived = s
        .watch
        .until(s.stack, &mut s.t, Duration::from_secs(10), |_, _| {
            shown(github)
        })
        .await?;
    let runs = github.check_runs(REPO, commit);
    s.t.step(
        arrived,
        &format!("GitHub shows the check run: {title}"),
        "scan-gate",
        match runs.first() {
            Some(r) => format!(
                "'{}' on {} {}: {} ({} check run(s), {} GitHub call(s) so far)",
                r.name,
                REPO,
                &commit[..7],
                r.states.join(" -> "),
                runs.len(),
                github.calls().len()
            ),
            None => "no check run".into(),
        },
    );
    Ok(())
}

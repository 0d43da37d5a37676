//! What developers see on GitHub during the demo: the gate's check run on a release's commit,
//! and the deploy job of its workflow waiting on the environment `production` until eddo
//! answers, read from the GitHub stand-in (when the template has the App mode: template.yaml
//! does).

use std::time::Duration;

use super::*;
use crate::github::GitHub;

/// The repository of the example service's check runs (its policy's `checks.github`).
const REPO: &str = "Codertocat/Hello-World";

/// The environment the demo's workflow deploys to, with eddo's App as its protection rule.
pub(crate) const ENVIRONMENT: &str = "production";

/// The workflow run whose deploy job waits on it.
const RUN: u64 = 30_433_642;

/// GitHub Actions' deploy job of `commit` waits on [`ENVIRONMENT`]: GitHub delivers
/// `deployment_protection_rule` to eddo's webhook (signed, as the App's webhook sends it).
pub(super) async fn job_waits(s: &mut Scene<'_>, commit: &str) -> Result<(), LocalError> {
    let Some(github) = s.github else {
        return Ok(());
    };
    github.wait_on(REPO, RUN, ENVIRONMENT);
    let body = crate::fixtures::protection_rule(commit, RUN, ENVIRONMENT);
    let (status, answer) = deliver(
        s.url,
        LOCAL_GITHUB_SECRET,
        "deployment_protection_rule",
        "0b9c2a4e-7f3d-11ef-8a5d-eddo000000d1",
        &body,
    )
    .await;
    s.t.step(
        status == 202,
        "GitHub Actions' deploy job waits on production for eddo",
        &s.who,
        format!("deployment_protection_rule: HTTP {status} {answer}"),
    );
    Ok(())
}

/// The job waiting on [`ENVIRONMENT`] was answered `state`, once.
pub(super) async fn job_answered(s: &mut Scene<'_>, state: &str) -> Result<(), LocalError> {
    let Some(github) = s.github else {
        s.t.step(true, "no GitHub App in this template", "", "");
        return Ok(());
    };
    let answered = s
        .watch
        .until(s.stack, &mut s.t, Duration::from_secs(10), |_, _| {
            github.run(RUN).is_some_and(|r| !r.reviews.is_empty())
        })
        .await?;
    let run = github.run(RUN);
    let reviews = run.as_ref().map(|r| r.reviews.clone()).unwrap_or_default();
    s.t.step(
        answered && reviews.len() == 1 && reviews[0].1 == state,
        &format!("GitHub: the job waiting on production {state}"),
        "scan-gate",
        match (reviews.first(), run) {
            (Some((_, state, comment)), Some(run)) => {
                format!("{state}: \"{comment}\" (the run is {})", run.status)
            }
            _ => "no answer".into(),
        },
    );
    Ok(())
}

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

//! GitHub's deliveries, by `X-GitHub-Event`.

use eddo::DetailType;
use eddo::git::{
    Check, CheckKind, GitEvent, ProtectionRule, Provider, PullRequest, Push, Release, Repository,
    truncate,
};
use serde::Deserialize;
use serde::de::IgnoredAny;

use super::{
    Forward, Normalised, PayloadError, TEXT_LIMIT, base, commit_time, generic, parse, real_sha,
    set_ref,
};

#[derive(Deserialize)]
pub(super) struct GhRepo {
    id: Option<u64>,
    full_name: String,
    name: String,
    owner: Option<GhOwner>,
    html_url: Option<String>,
    clone_url: Option<String>,
    default_branch: Option<String>,
    private: Option<bool>,
}

impl GhRepo {
    pub(super) fn into_repository(self) -> Repository {
        Repository {
            full_name: self.full_name,
            name: self.name,
            owner: self.owner.and_then(|o| o.login.or(o.name)),
            url: self.html_url,
            clone_url: self.clone_url,
            default_branch: self.default_branch,
            private: self.private,
        }
    }
}

#[derive(Deserialize)]
pub(super) struct GhOwner {
    login: Option<String>,
    name: Option<String>,
}

#[derive(Deserialize)]
pub(super) struct GhUser {
    pub(super) login: String,
}

#[derive(Deserialize)]
pub(super) struct GhGeneric {
    pub(super) action: Option<String>,
    pub(super) repository: Option<GhRepo>,
    pub(super) sender: Option<GhUser>,
}

#[derive(Deserialize)]
struct GhPush {
    #[serde(rename = "ref")]
    git_ref: String,
    before: Option<String>,
    after: Option<String>,
    #[serde(default)]
    created: bool,
    #[serde(default)]
    deleted: bool,
    #[serde(default)]
    forced: bool,
    compare: Option<String>,
    #[serde(default)]
    commits: Vec<IgnoredAny>,
    head_commit: Option<GhCommit>,
    repository: GhRepo,
    sender: Option<GhUser>,
    pusher: Option<GhPusher>,
}

#[derive(Deserialize)]
struct GhCommit {
    message: Option<String>,
    timestamp: Option<String>,
}

#[derive(Deserialize)]
struct GhPusher {
    name: Option<String>,
}

#[derive(Deserialize)]
struct GhPullRequestEvent {
    action: String,
    number: u64,
    pull_request: GhPullRequest,
    repository: GhRepo,
    sender: Option<GhUser>,
}

#[derive(Deserialize)]
struct GhPullRequest {
    title: String,
    html_url: Option<String>,
    state: String,
    draft: Option<bool>,
    merged: Option<bool>,
    merge_commit_sha: Option<String>,
    head: GhBranchRef,
    base: GhBranchRef,
    user: Option<GhUser>,
}

#[derive(Deserialize)]
struct GhBranchRef {
    #[serde(rename = "ref")]
    git_ref: String,
    sha: String,
}

#[derive(Deserialize)]
struct GhReleaseEvent {
    action: String,
    release: GhRelease,
    repository: GhRepo,
    sender: Option<GhUser>,
}

#[derive(Deserialize)]
struct GhRelease {
    tag_name: String,
    name: Option<String>,
    html_url: Option<String>,
    #[serde(default)]
    draft: bool,
    #[serde(default)]
    prerelease: bool,
    target_commitish: Option<String>,
}

#[derive(Deserialize)]
struct GhApp {
    id: Option<u64>,
    slug: Option<String>,
    name: Option<String>,
}

impl GhApp {
    /// Its slug (or name), and its numeric id.
    fn identity(app: Option<GhApp>) -> (Option<String>, Option<u64>) {
        app.map_or((None, None), |a| (a.slug.or(a.name), a.id))
    }
}

#[derive(Deserialize)]
struct GhCheckRunEvent {
    action: String,
    check_run: GhCheckRun,
    repository: GhRepo,
    sender: Option<GhUser>,
}

#[derive(Deserialize)]
struct GhCheckRun {
    id: u64,
    name: Option<String>,
    status: Option<String>,
    conclusion: Option<String>,
    head_sha: String,
    html_url: Option<String>,
    app: Option<GhApp>,
    check_suite: Option<GhCheckSuiteRef>,
}

#[derive(Deserialize)]
struct GhCheckSuiteRef {
    head_branch: Option<String>,
}

#[derive(Deserialize)]
struct GhCheckSuiteEvent {
    action: String,
    check_suite: GhCheckSuite,
    repository: GhRepo,
    sender: Option<GhUser>,
}

#[derive(Deserialize)]
struct GhCheckSuite {
    id: u64,
    status: Option<String>,
    conclusion: Option<String>,
    head_sha: String,
    head_branch: Option<String>,
    url: Option<String>,
    app: Option<GhApp>,
}

#[derive(Deserialize)]
struct GhWorkflowRunEvent {
    action: String,
    workflow_run: GhWorkflowRun,
    workflow: Option<GhWorkflow>,
    repository: GhRepo,
    sender: Option<GhUser>,
}

#[derive(Deserialize)]
struct GhWorkflowRun {
    id: u64,
    name: Option<String>,
    status: Option<String>,
    conclusion: Option<String>,
    head_branch: Option<String>,
    head_sha: String,
    html_url: Option<String>,
    path: Option<String>,
    event: Option<String>,
}

#[derive(Deserialize)]
struct GhWorkflow {
    name: Option<String>,
}

#[derive(Deserialize)]
struct GhProtectionRuleEvent {
    action: String,
    environment: Option<String>,
    event: Option<String>,
    deployment_callback_url: Option<String>,
    deployment: Option<GhDeployment>,
    repository: GhRepo,
    sender: Option<GhUser>,
}

#[derive(Deserialize)]
struct GhDeployment {
    sha: String,
    #[serde(rename = "ref")]
    git_ref: Option<String>,
}

/// A GitHub delivery: `event` is the `X-GitHub-Event` header, `body` the JSON payload.
pub fn github(
    event: &str,
    delivery_id: &str,
    body: &str,
    forward: &Forward,
) -> Result<Normalised, PayloadError> {
    let p = Provider::Github;
    match event {
        "ping" => Ok(Normalised::Ping),
        "push" => {
            let push: GhPush = parse(p, event, body)?;
            let mut e = base(
                p,
                delivery_id,
                event,
                None,
                Some(push.repository.into_repository()),
            );
            set_ref(&mut e, &push.git_ref);
            e.actor = push
                .sender
                .map(|s| s.login)
                .or(push.pusher.and_then(|p| p.name));
            let detail_type = if push.deleted {
                e.action = Some("deleted".into());
                DetailType::GitRefDeleted
            } else {
                e.action = Some(if push.created { "created" } else { "pushed" }.into());
                DetailType::GitPush
            };
            e.commit_sha = real_sha(push.after.as_deref());
            e.push = Some(Push {
                before: real_sha(push.before.as_deref()),
                created: push.created,
                forced: push.forced,
                commit_count: push.commits.len() as u64,
                head_commit_time: push
                    .head_commit
                    .as_ref()
                    .and_then(|c| commit_time(c.timestamp.as_deref())),
                head_commit_message: push
                    .head_commit
                    .and_then(|c| c.message)
                    .map(|m| truncate(&m, TEXT_LIMIT)),
                compare_url: push.compare,
            });
            Ok(Normalised::Publish(detail_type, Box::new(e)))
        }
        "pull_request" => {
            let ev: GhPullRequestEvent = parse(p, event, body)?;
            let pr = ev.pull_request;
            let merged = pr.merged.unwrap_or(false);
            let action = match (ev.action.as_str(), merged) {
                ("opened", _) => "opened",
                ("reopened", _) => "reopened",
                ("synchronize", _) => "synchronized",
                ("ready_for_review", _) => "ready_for_review",
                ("closed", true) => "merged",
                ("closed", false) => "closed",
                (other, _) => {
                    return Ok(Normalised::Ignored(format!(
                        "pull_request action {other:?} is not one eddo acts on"
                    )));
                }
            };
            let mut e = base(
                p,
                delivery_id,
                event,
                Some(action),
                Some(ev.repository.into_repository()),
            );
            e.actor = ev.sender.map(|s| s.login);
            // The commit a pipeline would build: the merge commit once merged, else the head.
            if merged {
                set_ref(&mut e, &format!("refs/heads/{}", pr.base.git_ref));
                e.commit_sha = real_sha(pr.merge_commit_sha.as_deref());
            } else {
                set_ref(&mut e, &format!("refs/heads/{}", pr.head.git_ref));
                e.commit_sha = real_sha(Some(&pr.head.sha));
            }
            e.pull_request = Some(PullRequest {
                number: ev.number,
                title: truncate(&pr.title, TEXT_LIMIT),
                url: pr.html_url,
                state: pr.state,
                draft: pr.draft.unwrap_or(false),
                merged,
                merge_commit_sha: pr.merge_commit_sha,
                head_ref: Some(pr.head.git_ref),
                head_sha: Some(pr.head.sha),
                base_ref: Some(pr.base.git_ref),
                base_sha: Some(pr.base.sha),
                author: pr.user.map(|u| u.login),
            });
            Ok(Normalised::Publish(DetailType::PullRequest, Box::new(e)))
        }
        "release" => {
            let ev: GhReleaseEvent = parse(p, event, body)?;
            if ev.action == "edited" {
                return Ok(Normalised::Ignored(
                    "release action \"edited\" is not one eddo acts on".into(),
                ));
            }
            let r = ev.release;
            let mut e = base(
                p,
                delivery_id,
                event,
                Some(&ev.action),
                Some(ev.repository.into_repository()),
            );
            e.actor = ev.sender.map(|s| s.login);
            set_ref(&mut e, &format!("refs/tags/{}", r.tag_name));
            e.commit_sha = r
                .target_commitish
                .as_deref()
                .filter(|t| is_sha(t))
                .map(str::to_string);
            e.release = Some(Release {
                tag: r.tag_name,
                name: r.name.filter(|n| !n.is_empty()),
                url: r.html_url,
                draft: r.draft,
                prerelease: r.prerelease,
                target: r.target_commitish,
            });
            Ok(Normalised::Publish(DetailType::Release, Box::new(e)))
        }
        "check_run" => {
            let ev: GhCheckRunEvent = parse(p, event, body)?;
            if ev.action != "completed" {
                return Ok(ignored_action(event, &ev.action));
            }
            let c = ev.check_run;
            let head_branch = c.check_suite.and_then(|s| s.head_branch);
            let (app, app_id) = GhApp::identity(c.app);
            let check = Check {
                kind: CheckKind::CheckRun,
                id: Some(c.id),
                name: c.name,
                status: c.status,
                conclusion: c.conclusion,
                head_branch,
                head_sha: Some(c.head_sha),
                url: c.html_url,
                app,
                app_id,
                workflow_path: None,
                trigger: None,
            };
            Ok(completed(
                base(
                    p,
                    delivery_id,
                    event,
                    None,
                    Some(ev.repository.into_repository()),
                ),
                ev.sender.map(|s| s.login),
                heads(&check.head_branch),
                DetailType::CheckRunCompleted,
                check,
            ))
        }
        "check_suite" => {
            let ev: GhCheckSuiteEvent = parse(p, event, body)?;
            if ev.action != "completed" {
                return Ok(ignored_action(event, &ev.action));
            }
            let c = ev.check_suite;
            let (app, app_id) = GhApp::identity(c.app);
            let check = Check {
                kind: CheckKind::CheckSuite,
                id: Some(c.id),
                name: None,
                status: c.status,
                conclusion: c.conclusion,
                head_branch: c.head_branch,
                head_sha: Some(c.head_sha),
                url: c.url,
                app,
                app_id,
                workflow_path: None,
                trigger: None,
            };
            Ok(completed(
                base(
                    p,
                    delivery_id,
                    event,
                    None,
                    Some(ev.repository.into_repository()),
                ),
                ev.sender.map(|s| s.login),
                heads(&check.head_branch),
                DetailType::CheckSuiteCompleted,
                check,
            ))
        }
        "workflow_run" => {
            let ev: GhWorkflowRunEvent = parse(p, event, body)?;
            if ev.action != "completed" {
                return Ok(ignored_action(event, &ev.action));
            }
            let w = ev.workflow_run;
            let check = Check {
                kind: CheckKind::WorkflowRun,
                id: Some(w.id),
                name: w
                    .name
                    .filter(|n| !n.is_empty())
                    .or(ev.workflow.and_then(|wf| wf.name)),
                status: w.status,
                conclusion: w.conclusion,
                head_branch: w.head_branch,
                head_sha: Some(w.head_sha),
                url: w.html_url,
                app: Some("github-actions".into()),
                app_id: None,
                workflow_path: w.path,
                trigger: w.event,
            };
            Ok(completed(
                base(
                    p,
                    delivery_id,
                    event,
                    None,
                    Some(ev.repository.into_repository()),
                ),
                ev.sender.map(|s| s.login),
                heads(&check.head_branch),
                DetailType::WorkflowRunCompleted,
                check,
            ))
        }
        "deployment_protection_rule" => protection_rule(delivery_id, body),
        _ => generic(p, delivery_id, event, body, forward),
    }
}

/// A workflow job waiting on an environment whose protection rule is eddo's App. Everything the
/// answer needs must be there and agree with itself: the run id is taken from the callback URL
/// only when that URL names the delivery's own repository.
fn protection_rule(delivery_id: &str, body: &str) -> Result<Normalised, PayloadError> {
    let event = "deployment_protection_rule";
    let ev: GhProtectionRuleEvent = parse(Provider::Github, event, body)?;
    if ev.action != "requested" {
        return Ok(ignored_action(event, &ev.action));
    }
    let wrong = |problem: &str| PayloadError {
        provider: Provider::Github.as_str(),
        event: event.to_string(),
        problem: problem.to_string(),
    };
    let environment = ev
        .environment
        .filter(|e| !e.is_empty())
        .ok_or_else(|| wrong("it names no environment"))?;
    let deployment = ev
        .deployment
        .ok_or_else(|| wrong("it names no deployment"))?;
    let commit = real_sha(Some(&deployment.sha))
        .ok_or_else(|| wrong("its deployment's sha is not a commit"))?;
    let run_id = ev
        .deployment_callback_url
        .as_deref()
        .and_then(|url| run_of(url, &ev.repository))
        .ok_or_else(|| {
            wrong(
                "its deployment_callback_url is not a workflow run's review URL in its repository",
            )
        })?;
    let mut e = base(
        Provider::Github,
        delivery_id,
        event,
        Some("requested"),
        Some(ev.repository.into_repository()),
    );
    e.actor = ev.sender.map(|s| s.login);
    // A deployment's ref may be a branch, a tag or a commit by its short name: only a full ref
    // says which, and only a full ref is kept.
    if let Some(r) = deployment.git_ref.filter(|r| r.starts_with("refs/")) {
        set_ref(&mut e, &r);
    }
    e.commit_sha = Some(commit);
    e.protection_rule = Some(ProtectionRule {
        environment: truncate(&environment, 255),
        run_id,
        trigger: ev.event,
    });
    Ok(Normalised::Publish(
        DetailType::DeploymentProtectionRule,
        Box::new(e),
    ))
}

/// The workflow run a review URL names: `…/repos/{owner}/{repo}/actions/runs/{id}/deployment_protection_rule`
/// for the repository itself, or `…/repositories/{repository id}/actions/runs/{id}/…`.
fn run_of(url: &str, repo: &GhRepo) -> Option<u64> {
    let path = url.split_once("://")?.1.split_once('/')?.1;
    let path = path.split(['?', '#']).next()?;
    let rest = path.strip_suffix("/deployment_protection_rule")?;
    let (owner_part, run) = rest.rsplit_once("/actions/runs/")?;
    let run: u64 = run.parse().ok().filter(|&r| r > 0)?;
    // A GitHub Enterprise Server API lives under /api/v3.
    let owner_part = owner_part.strip_prefix("api/v3/").unwrap_or(owner_part);
    let named = if let Some(full) = owner_part.strip_prefix("repos/") {
        full.eq_ignore_ascii_case(&repo.full_name)
    } else if let Some(id) = owner_part.strip_prefix("repositories/") {
        repo.id.is_some_and(|r| id == r.to_string())
    } else {
        false
    };
    named.then_some(run)
}

/// `refs/heads/<branch>` for a check's head branch.
fn heads(branch: &Option<String>) -> Option<String> {
    branch.as_ref().map(|b| format!("refs/heads/{b}"))
}

/// A completed check, run or pipeline: its ref and commit are the check's own.
pub(super) fn completed(
    mut e: GitEvent,
    actor: Option<String>,
    git_ref: Option<String>,
    detail_type: DetailType,
    check: Check,
) -> Normalised {
    e.action = Some("completed".into());
    e.actor = actor;
    if let Some(r) = &git_ref {
        set_ref(&mut e, r);
    }
    e.commit_sha = check.head_sha.clone();
    e.check = Some(check);
    Normalised::Publish(detail_type, Box::new(e))
}

fn ignored_action(event: &str, action: &str) -> Normalised {
    Normalised::Ignored(format!("{event} action {action:?} is not one eddo acts on"))
}

fn is_sha(s: &str) -> bool {
    s.len() == 40 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

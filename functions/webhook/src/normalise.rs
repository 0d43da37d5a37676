//! From a provider's payload to one provider-independent [`GitEvent`], or a reason not to publish.
//!
//! Payloads are parsed into small typed structs holding only what eddo reads; everything else in
//! the body is skipped unparsed. Errors name a position, never the payload's content.

use eddo::DetailType;
use eddo::git::{
    Check, CheckKind, GitEvent, Provider, PullRequest, Push, Release, Repository, truncate,
};
use serde::Deserialize;
use serde::de::{DeserializeOwned, IgnoredAny};
use serde_json::value::RawValue;

/// The most of a title or commit message an event carries.
const TEXT_LIMIT: usize = 1024;
const ZERO_SHA: &str = "0000000000000000000000000000000000000000";

/// What a delivery becomes.
#[derive(Debug)]
pub enum Normalised {
    /// GitHub's hook check: answered 200, nothing published.
    Ping,
    /// An event or action eddo does not act on: answered 202, nothing published.
    Ignored(String),
    Publish(DetailType, Box<GitEvent>),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the {event} payload is not what {provider} sends: {problem}")]
pub struct PayloadError {
    pub provider: &'static str,
    pub event: String,
    pub problem: String,
}

/// Which events without a normalised form are still published, as `Git Provider Event` with the
/// raw payload: `EDDO_WEBHOOK_FORWARD`, comma-separated `provider:event` patterns, `*` for any
/// event (`github:issues, github:deployment_status, standard_webhooks:*`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Forward {
    patterns: Vec<(Provider, Option<String>)>,
}

impl Forward {
    pub fn parse(spec: &str) -> Result<Self, String> {
        let mut patterns = Vec::new();
        for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (provider, event) = item
                .split_once(':')
                .ok_or_else(|| format!("{item:?} is not provider:event"))?;
            let provider = match provider.trim() {
                "github" => Provider::Github,
                "gitlab" => Provider::Gitlab,
                "standard_webhooks" => Provider::StandardWebhooks,
                other => {
                    return Err(format!(
                        "{other:?} is not github, gitlab or standard_webhooks"
                    ));
                }
            };
            let event = event.trim();
            if event.is_empty() {
                return Err(format!("{item:?} names no event (use * for any)"));
            }
            patterns.push((provider, (event != "*").then(|| event.to_string())));
        }
        Ok(Forward { patterns })
    }

    pub fn allows(&self, provider: Provider, event: &str) -> bool {
        self.patterns
            .iter()
            .any(|(p, e)| *p == provider && e.as_deref().is_none_or(|e| e == event))
    }
}

fn parse<T: DeserializeOwned>(
    provider: Provider,
    event: &str,
    body: &str,
) -> Result<T, PayloadError> {
    serde_json::from_str(body).map_err(|e| PayloadError {
        provider: provider.as_str(),
        event: event.to_string(),
        problem: format!(
            "{} at line {} column {}",
            describe(&e),
            e.line(),
            e.column()
        ),
    })
}

fn describe(e: &serde_json::Error) -> &'static str {
    match e.classify() {
        serde_json::error::Category::Syntax | serde_json::error::Category::Eof => "invalid JSON",
        serde_json::error::Category::Data => "a field is missing or of the wrong type",
        serde_json::error::Category::Io => "unreadable body",
    }
}

fn base(
    provider: Provider,
    delivery_id: &str,
    event: &str,
    action: Option<&str>,
    repository: Option<Repository>,
) -> GitEvent {
    GitEvent {
        provider,
        delivery_id: delivery_id.to_string(),
        event: event.to_string(),
        action: action.map(str::to_string),
        repository,
        git_ref: None,
        branch: None,
        tag: None,
        commit_sha: None,
        actor: None,
        push: None,
        pull_request: None,
        release: None,
        check: None,
        raw: None,
        raw_omitted: None,
    }
}

/// Sets `ref` and, by its prefix, `branch` or `tag`.
fn set_ref(e: &mut GitEvent, git_ref: &str) {
    e.git_ref = Some(git_ref.to_string());
    if let Some(b) = git_ref.strip_prefix("refs/heads/") {
        e.branch = Some(b.to_string());
    } else if let Some(t) = git_ref.strip_prefix("refs/tags/") {
        e.tag = Some(t.to_string());
    }
}

/// A commit the payload names, if it is one: a full commit id (checked, so what the push rule
/// hands CodeBuild as source version is a commit), not the zero id of a created or deleted ref.
fn real_sha(sha: Option<&str>) -> Option<String> {
    sha.filter(|s| *s != ZERO_SHA)
        .and_then(|s| eddo::names::CommitSha::parse(s).ok())
        .map(|c| c.as_str().to_string())
}

fn generic(
    provider: Provider,
    delivery_id: &str,
    event: &str,
    body: &str,
    forward: &Forward,
) -> Result<Normalised, PayloadError> {
    if !forward.allows(provider, event) {
        return Ok(Normalised::Ignored(format!(
            "{} event {event:?} is not one eddo acts on",
            provider.as_str()
        )));
    }
    let raw: Box<RawValue> = parse(provider, event, body)?;
    let mut out = match provider {
        Provider::Github => {
            let g: GhGeneric = parse(provider, event, body)?;
            let mut e = base(
                provider,
                delivery_id,
                event,
                g.action.as_deref(),
                g.repository.map(GhRepo::into_repository),
            );
            e.actor = g.sender.map(|s| s.login);
            e
        }
        Provider::Gitlab => {
            let g: GlGeneric = parse(provider, event, body)?;
            let mut e = base(
                provider,
                delivery_id,
                event,
                None,
                g.project.map(GlProject::into_repository),
            );
            e.actor = g.user.and_then(|u| u.username).or(g.user_username);
            e
        }
        Provider::StandardWebhooks => base(provider, delivery_id, event, None, None),
    };
    out.raw = Some(raw);
    Ok(Normalised::Publish(
        DetailType::GitProviderEvent,
        Box::new(out),
    ))
}

// ---------------------------------------------------------------------------------------------
// GitHub

#[derive(Deserialize)]
struct GhRepo {
    full_name: String,
    name: String,
    owner: Option<GhOwner>,
    html_url: Option<String>,
    clone_url: Option<String>,
    default_branch: Option<String>,
    private: Option<bool>,
}

impl GhRepo {
    fn into_repository(self) -> Repository {
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
struct GhOwner {
    login: Option<String>,
    name: Option<String>,
}

#[derive(Deserialize)]
struct GhUser {
    login: String,
}

#[derive(Deserialize)]
struct GhGeneric {
    action: Option<String>,
    repository: Option<GhRepo>,
    sender: Option<GhUser>,
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
        _ => generic(p, delivery_id, event, body, forward),
    }
}

/// `refs/heads/<branch>` for a check's head branch.
fn heads(branch: &Option<String>) -> Option<String> {
    branch.as_ref().map(|b| format!("refs/heads/{b}"))
}

/// A completed check, run or pipeline: its ref and commit are the check's own.
fn completed(
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

// ---------------------------------------------------------------------------------------------
// GitLab

#[derive(Deserialize)]
struct GlProject {
    path_with_namespace: String,
    name: String,
    namespace: Option<String>,
    web_url: Option<String>,
    git_http_url: Option<String>,
    default_branch: Option<String>,
    visibility_level: Option<u8>,
}

impl GlProject {
    fn into_repository(self) -> Repository {
        Repository {
            full_name: self.path_with_namespace,
            name: self.name,
            owner: self.namespace,
            url: self.web_url,
            clone_url: self.git_http_url,
            default_branch: self.default_branch,
            // GitLab: 0 private, 10 internal, 20 public.
            private: self.visibility_level.map(|v| v < 20),
        }
    }
}

#[derive(Deserialize)]
struct GlUser {
    username: Option<String>,
}

#[derive(Deserialize)]
struct GlGeneric {
    project: Option<GlProject>,
    user: Option<GlUser>,
    user_username: Option<String>,
}

#[derive(Deserialize)]
struct GlPush {
    #[serde(rename = "ref")]
    git_ref: String,
    before: Option<String>,
    after: Option<String>,
    checkout_sha: Option<String>,
    user_username: Option<String>,
    project: GlProject,
    total_commits_count: Option<u64>,
    #[serde(default)]
    commits: Vec<GlCommit>,
}

#[derive(Deserialize)]
struct GlCommit {
    id: String,
    message: Option<String>,
}

#[derive(Deserialize)]
struct GlMergeRequestEvent {
    user: Option<GlUser>,
    project: GlProject,
    object_attributes: GlMergeRequest,
}

#[derive(Deserialize)]
struct GlMergeRequest {
    iid: u64,
    title: String,
    url: Option<String>,
    state: String,
    action: Option<String>,
    source_branch: String,
    target_branch: String,
    last_commit: Option<GlCommit>,
    merge_commit_sha: Option<String>,
    draft: Option<bool>,
    work_in_progress: Option<bool>,
    oldrev: Option<String>,
}

#[derive(Deserialize)]
struct GlReleaseEvent {
    action: String,
    tag: String,
    name: Option<String>,
    url: Option<String>,
    project: GlProject,
    commit: Option<GlCommit>,
}

#[derive(Deserialize)]
struct GlPipelineEvent {
    user: Option<GlUser>,
    project: GlProject,
    object_attributes: GlPipeline,
}

#[derive(Deserialize)]
struct GlPipeline {
    id: u64,
    #[serde(rename = "ref")]
    git_ref: Option<String>,
    #[serde(default)]
    tag: bool,
    sha: String,
    status: String,
    name: Option<String>,
    url: Option<String>,
}

/// A GitLab delivery: `event` is the `X-Gitlab-Event` header (`Push Hook`, ...).
pub fn gitlab(
    event: &str,
    delivery_id: &str,
    body: &str,
    forward: &Forward,
) -> Result<Normalised, PayloadError> {
    let p = Provider::Gitlab;
    match event {
        "Push Hook" | "Tag Push Hook" => {
            let push: GlPush = parse(p, event, body)?;
            let after = real_sha(push.after.as_deref());
            let before = real_sha(push.before.as_deref());
            let head = push.checkout_sha.clone().or(after.clone());
            let head_message = push
                .commits
                .iter()
                .find(|c| Some(&c.id) == head.as_ref())
                .and_then(|c| c.message.as_deref());
            let mut e = base(
                p,
                delivery_id,
                event,
                None,
                Some(push.project.into_repository()),
            );
            set_ref(&mut e, &push.git_ref);
            e.actor = push.user_username;
            let detail_type = if after.is_none() {
                e.action = Some("deleted".into());
                DetailType::GitRefDeleted
            } else {
                e.action = Some(
                    if before.is_none() {
                        "created"
                    } else {
                        "pushed"
                    }
                    .into(),
                );
                DetailType::GitPush
            };
            e.commit_sha = head.filter(|h| h != ZERO_SHA);
            e.push = Some(Push {
                created: before.is_none() && after.is_some(),
                before,
                forced: false,
                commit_count: push
                    .total_commits_count
                    .unwrap_or(push.commits.len() as u64),
                head_commit_message: head_message.map(|m| truncate(m, TEXT_LIMIT)),
                compare_url: None,
            });
            Ok(Normalised::Publish(detail_type, Box::new(e)))
        }
        "Merge Request Hook" => {
            let ev: GlMergeRequestEvent = parse(p, event, body)?;
            let mr = ev.object_attributes;
            let action = match (mr.action.as_deref(), mr.oldrev.is_some()) {
                (Some("open"), _) => "opened",
                (Some("reopen"), _) => "reopened",
                (Some("update"), true) => "synchronized",
                (Some("merge"), _) => "merged",
                (Some("close"), _) => "closed",
                (other, _) => {
                    return Ok(Normalised::Ignored(format!(
                        "merge request action {:?} is not one eddo acts on",
                        other.unwrap_or("none")
                    )));
                }
            };
            let merged = action == "merged";
            let head_sha = mr.last_commit.map(|c| c.id);
            let mut e = base(
                p,
                delivery_id,
                event,
                Some(action),
                Some(ev.project.into_repository()),
            );
            e.actor = ev.user.and_then(|u| u.username);
            if merged {
                set_ref(&mut e, &format!("refs/heads/{}", mr.target_branch));
                e.commit_sha = real_sha(mr.merge_commit_sha.as_deref());
            } else {
                set_ref(&mut e, &format!("refs/heads/{}", mr.source_branch));
                e.commit_sha = real_sha(head_sha.as_deref());
            }
            e.pull_request = Some(PullRequest {
                number: mr.iid,
                title: truncate(&mr.title, TEXT_LIMIT),
                url: mr.url,
                state: mr.state,
                draft: mr.draft.or(mr.work_in_progress).unwrap_or(false),
                merged,
                merge_commit_sha: mr.merge_commit_sha,
                head_ref: Some(mr.source_branch),
                head_sha,
                base_ref: Some(mr.target_branch),
                base_sha: None,
                author: e.actor.clone(),
            });
            Ok(Normalised::Publish(DetailType::PullRequest, Box::new(e)))
        }
        "Release Hook" => {
            let ev: GlReleaseEvent = parse(p, event, body)?;
            let action = match ev.action.as_str() {
                "create" => "published",
                "delete" => "deleted",
                other => {
                    return Ok(Normalised::Ignored(format!(
                        "release action {other:?} is not one eddo acts on"
                    )));
                }
            };
            let mut e = base(
                p,
                delivery_id,
                event,
                Some(action),
                Some(ev.project.into_repository()),
            );
            set_ref(&mut e, &format!("refs/tags/{}", ev.tag));
            e.commit_sha = ev.commit.map(|c| c.id);
            e.release = Some(Release {
                tag: ev.tag,
                name: ev.name.filter(|n| !n.is_empty()),
                url: ev.url,
                draft: false,
                prerelease: false,
                target: e.commit_sha.clone(),
            });
            Ok(Normalised::Publish(DetailType::Release, Box::new(e)))
        }
        "Pipeline Hook" => {
            let ev: GlPipelineEvent = parse(p, event, body)?;
            let pl = ev.object_attributes;
            let conclusion = match pl.status.as_str() {
                "success" => "success",
                "failed" => "failure",
                "canceled" => "cancelled",
                "skipped" => "skipped",
                other => {
                    return Ok(Normalised::Ignored(format!(
                        "pipeline status {other:?} is not a completion"
                    )));
                }
            };
            let git_ref = pl
                .git_ref
                .as_ref()
                .map(|r| format!("refs/{}/{r}", if pl.tag { "tags" } else { "heads" }));
            let check = Check {
                kind: CheckKind::Pipeline,
                id: Some(pl.id),
                name: pl.name,
                status: Some(pl.status.clone()),
                conclusion: Some(conclusion.into()),
                head_branch: if pl.tag { None } else { pl.git_ref },
                head_sha: Some(pl.sha),
                url: pl.url,
                app: Some("gitlab-ci".into()),
                app_id: None,
                workflow_path: None,
                trigger: None,
            };
            let actor = ev.user.and_then(|u| u.username);
            Ok(completed(
                base(
                    p,
                    delivery_id,
                    event,
                    None,
                    Some(ev.project.into_repository()),
                ),
                actor,
                git_ref,
                DetailType::WorkflowRunCompleted,
                check,
            ))
        }
        _ => generic(p, delivery_id, event, body, forward),
    }
}

/// A Standard Webhooks delivery that is not GitLab's: `{"type": ..., "data": ...}`.
pub fn standard(
    delivery_id: &str,
    body: &str,
    forward: &Forward,
) -> Result<Normalised, PayloadError> {
    #[derive(Deserialize)]
    struct Head {
        #[serde(rename = "type")]
        kind: String,
    }
    let head: Head = parse(Provider::StandardWebhooks, "standard webhook", body)?;
    generic(
        Provider::StandardWebhooks,
        delivery_id,
        &head.kind,
        body,
        forward,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forward_patterns() {
        let f = Forward::parse("github:issues, gitlab:Issue Hook ,standard_webhooks:*").unwrap();
        assert!(f.allows(Provider::Github, "issues"));
        assert!(!f.allows(Provider::Github, "star"));
        assert!(f.allows(Provider::Gitlab, "Issue Hook"));
        assert!(f.allows(Provider::StandardWebhooks, "invoice.paid"));
        assert!(Forward::parse("").unwrap() == Forward::default());
        assert!(
            Forward::parse("bitbucket:push")
                .unwrap_err()
                .contains("bitbucket")
        );
        assert!(Forward::parse("github").is_err());
        assert!(Forward::parse("github:").is_err());
    }

    #[test]
    fn payload_errors_never_quote_the_payload() {
        let err = github(
            "push",
            "d",
            r#"{"ref": "secret-token-in-a-branch-name", "repository": 5}"#,
            &Forward::default(),
        )
        .unwrap_err();
        assert!(!err.to_string().contains("secret-token"), "{err}");
        assert!(err.to_string().contains("line 1 column"), "{err}");
        let err = github("push", "d", "{not json", &Forward::default()).unwrap_err();
        assert!(err.to_string().contains("invalid JSON"), "{err}");
    }

    proptest::proptest! {
        /// Whatever a signed sender puts in the body, normalisation answers; it never panics.
        #[test]
        fn any_body_is_answered_never_a_panic(body in "\\PC{0,200}", event in proptest::sample::select(vec![
            "push", "pull_request", "release", "check_run", "check_suite", "workflow_run", "issues",
            "Push Hook", "Merge Request Hook", "Pipeline Hook", "Release Hook",
        ])) {
            let all = Forward::parse("github:*,gitlab:*,standard_webhooks:*").unwrap();
            let _ = github(event, "d", &body, &all);
            let _ = gitlab(event, "d", &body, &all);
            let _ = standard("d", &body, &all);
        }

        /// Structurally plausible payloads with wrong types and nulls in every field.
        #[test]
        fn shaped_payloads_with_wrong_types_are_answered(value in json_value(3)) {
            let body = serde_json::json!({"ref": value.clone(), "action": value.clone(), "repository": value.clone(),
                "pull_request": value.clone(), "check_run": value.clone(), "object_attributes": value.clone(),
                "project": value.clone(), "release": value.clone(), "workflow_run": value}).to_string();
            let all = Forward::parse("github:*,gitlab:*").unwrap();
            for event in ["push", "pull_request", "release", "check_run", "workflow_run"] {
                let _ = github(event, "d", &body, &all);
            }
            for event in ["Push Hook", "Merge Request Hook", "Pipeline Hook", "Release Hook"] {
                let _ = gitlab(event, "d", &body, &all);
            }
        }
    }

    fn json_value(depth: u32) -> impl proptest::strategy::Strategy<Value = serde_json::Value> {
        use proptest::prelude::*;
        let leaf = prop_oneof![
            Just(serde_json::Value::Null),
            any::<bool>().prop_map(serde_json::Value::from),
            any::<i64>().prop_map(serde_json::Value::from),
            "[a-z/]{0,12}".prop_map(serde_json::Value::from),
        ];
        leaf.prop_recursive(depth, 32, 4, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::from),
                proptest::collection::btree_map("[a-z_]{1,8}", inner, 0..4)
                    .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
            ]
        })
    }
}

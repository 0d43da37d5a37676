//! GitLab's deliveries, by `X-Gitlab-Event`.

use eddo::DetailType;
use eddo::git::{Check, CheckKind, Provider, PullRequest, Push, Release, Repository, truncate};
use serde::Deserialize;

use super::github::completed;
use super::{
    Forward, Normalised, PayloadError, TEXT_LIMIT, ZERO_SHA, base, commit_time, generic, parse,
    real_sha, set_ref,
};

#[derive(Deserialize)]
pub(super) struct GlProject {
    path_with_namespace: String,
    name: String,
    namespace: Option<String>,
    web_url: Option<String>,
    git_http_url: Option<String>,
    default_branch: Option<String>,
    visibility_level: Option<u8>,
}

impl GlProject {
    pub(super) fn into_repository(self) -> Repository {
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
pub(super) struct GlUser {
    pub(super) username: Option<String>,
}

#[derive(Deserialize)]
pub(super) struct GlGeneric {
    pub(super) project: Option<GlProject>,
    pub(super) user: Option<GlUser>,
    pub(super) user_username: Option<String>,
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
    timestamp: Option<String>,
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
            let head_commit = push.commits.iter().find(|c| Some(&c.id) == head.as_ref());
            let head_message = head_commit.and_then(|c| c.message.as_deref());
            let head_time = head_commit.and_then(|c| commit_time(c.timestamp.as_deref()));
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
                head_commit_time: head_time,
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

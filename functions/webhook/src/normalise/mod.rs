//! From a provider's payload to one provider-independent [`GitEvent`], or a reason not to publish.
//!
//! Payloads are parsed into small typed structs holding only what eddo reads; everything else in
//! the body is skipped unparsed. Errors name a position, never the payload's content.

use eddo::DetailType;
use eddo::git::{GitEvent, Provider, Repository};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::value::RawValue;

mod github;
mod gitlab;

pub use github::github;
pub use gitlab::gitlab;

use github::{GhGeneric, GhRepo};
use gitlab::{GlGeneric, GlProject};

/// The most of a title or commit message an event carries.
const TEXT_LIMIT: usize = 1024;
pub(super) const ZERO_SHA: &str = "0000000000000000000000000000000000000000";

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

pub(super) fn parse<T: DeserializeOwned>(
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

pub(super) fn base(
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
        protection_rule: None,
        raw: None,
        raw_omitted: None,
    }
}

/// A commit's time as the provider gave it, if it is one (RFC 3339, with its offset): kept as
/// given, so the event says what the provider said.
pub(super) fn commit_time(t: Option<&str>) -> Option<String> {
    t.filter(|t| eddo::time::parse_timestamp(t).is_some())
        .map(str::to_string)
}

/// Sets `ref` and, by its prefix, `branch` or `tag`.
pub(super) fn set_ref(e: &mut GitEvent, git_ref: &str) {
    e.git_ref = Some(git_ref.to_string());
    if let Some(b) = git_ref.strip_prefix("refs/heads/") {
        e.branch = Some(b.to_string());
    } else if let Some(t) = git_ref.strip_prefix("refs/tags/") {
        e.tag = Some(t.to_string());
    }
}

/// A commit the payload names, if it is one: a full commit id (checked, so what the push rule
/// hands CodeBuild as source version is a commit), not the zero id of a created or deleted ref.
pub(super) fn real_sha(sha: Option<&str>) -> Option<String> {
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

//! Signals and their senders: what a gate can require, and who may report each, proven how.

use super::*;

/// A signal a gate can require before a deployment. Four are eddo's own; any other name
/// (`contract`, `e2e`, `load-test`) is a signal the policy's senders report.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum SignalKind {
    /// The service's build project finished.
    Build,
    /// ECR basic or Inspector enhanced scan of the built image.
    ImageScan,
    /// Static analysis: a SAST project, a GitHub check, or a reported signal.
    Sast,
    /// An explicit approval (or rejection) of one commit.
    Approval,
    /// Any other signal: 1 to 32 lower-case letters, digits and '-', starting with a letter.
    Named(String),
}

impl SignalKind {
    pub fn parse(s: &str) -> Result<SignalKind, String> {
        Ok(match s {
            "build" => SignalKind::Build,
            "image-scan" => SignalKind::ImageScan,
            "sast" => SignalKind::Sast,
            "approval" => SignalKind::Approval,
            _ => {
                let ok = (1..=32).contains(&s.len())
                    && s.as_bytes()[0].is_ascii_lowercase()
                    && s.bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                    && !s.ends_with('-');
                if !ok {
                    return Err(format!(
                        "{s:?} is not a signal name: 1 to 32 lower-case letters, digits and '-', starting with a letter"
                    ));
                }
                SignalKind::Named(s.to_string())
            }
        })
    }

    pub fn as_str(&self) -> &str {
        match self {
            SignalKind::Build => "build",
            SignalKind::ImageScan => "image-scan",
            SignalKind::Sast => "sast",
            SignalKind::Approval => "approval",
            SignalKind::Named(n) => n,
        }
    }
}

impl TryFrom<String> for SignalKind {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        SignalKind::parse(&s)
    }
}

impl From<SignalKind> for String {
    fn from(k: SignalKind) -> String {
        k.as_str().to_string()
    }
}

impl std::fmt::Display for SignalKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who may report a signal, and how eddo knows it was them.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Sender {
    /// A build of this CodeBuild project: `aws.codebuild`, which only AWS can put.
    Project(ProjectName),
    /// An ECR basic or Inspector enhanced scan of the service's image repository: `aws.ecr`,
    /// `aws.inspector2`, which only AWS can put.
    ImageScanner,
    /// A GitHub check run or workflow run of this name, run by this GitHub App, on a commit of
    /// one of the service's repositories and branches: a verified delivery through the webhook.
    Check(CheckRule),
    /// A tool that signs a Standard Webhooks delivery to the webhook's `/signals/<name>` route
    /// with its own key; the webhook republishes it naming the verified sender.
    Signed(SenderName),
    /// An event source that the bus lets only a role tagged `eddo:signal-source` with it put.
    Source(String),
    /// A CDEvent of this type (`subject.predicate`, any version eddo takes) that a tool
    /// delivered to the webhook's `/cdevents/<sender>` route with its own key or token.
    CdEvent {
        predicate: &'static str,
        sender: SenderName,
    },
}

impl std::fmt::Display for Sender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Sender::Project(p) => write!(f, "CodeBuild project {p}"),
            Sender::ImageScanner => f.write_str("ECR or Inspector scan of the image repository"),
            Sender::Check(rule) => rule.fmt(f),
            Sender::Signed(n) => write!(f, "signed sender {n}"),
            Sender::Source(s) => write!(f, "source {s}"),
            Sender::CdEvent { predicate, sender } => {
                write!(
                    f,
                    "CDEvent {}{predicate} from {sender}",
                    crate::cdevents::PREFIX
                )
            }
        }
    }
}

/// A GitHub check the policy counts: its name and the app that runs it (its slug), and, where
/// the policy pins them, the app's numeric id (a slug is a name another app can take once its
/// owner renames it; the id is GitHub's), the workflow file a workflow run must come from, and
/// the event that triggered it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct CheckRule {
    pub name: String,
    pub app: String,
    pub app_id: Option<u64>,
    /// `.github/workflows/codeql.yml`: only workflow runs of this file count (a check run does
    /// not say which workflow created it).
    pub workflow: Option<String>,
    /// `push`: only workflow runs this event triggered count.
    pub event: Option<String>,
    /// The policy's explicit word that a `github-actions` check of a security kind may come
    /// from any workflow (which anyone who can push a workflow file can write).
    pub any_workflow: bool,
}

/// A completed check as its verified delivery describes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckSeen<'a> {
    pub name: &'a str,
    pub app: &'a str,
    pub app_id: Option<u64>,
    /// The workflow file, for a workflow run.
    pub workflow: Option<&'a str>,
    /// The triggering event, for a workflow run.
    pub event: Option<&'a str>,
}

impl CheckRule {
    /// Whether the completed check `seen` is one this rule counts.
    pub fn matches(&self, seen: &CheckSeen<'_>) -> bool {
        let pinned = |want: &Option<String>, got: Option<&str>| {
            want.as_deref().is_none_or(|w| got == Some(w))
        };
        self.name == seen.name
            && self.app == seen.app
            && self.app_id.is_none_or(|id| seen.app_id == Some(id))
            && pinned(&self.workflow, seen.workflow)
            && pinned(&self.event, seen.event)
    }
}

impl std::fmt::Display for CheckRule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "check {} by {}", self.name, self.app)?;
        if let Some(id) = self.app_id {
            write!(f, " (app {id})")?;
        }
        if let Some(w) = &self.workflow {
            write!(f, " from {w}")?;
        }
        if let Some(e) = &self.event {
            write!(f, " on {e}")?;
        }
        Ok(())
    }
}

/// The kinds whose failure stops a vulnerable release: a check counted for one must be one
/// only its app can create.
fn is_security(kind: &SignalKind) -> bool {
    matches!(kind, SignalKind::Sast | SignalKind::ImageScan)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SenderDoc {
    #[serde(default)]
    check: Option<String>,
    #[serde(default)]
    app: Option<String>,
    #[serde(default)]
    app_id: Option<u64>,
    #[serde(default)]
    workflow: Option<String>,
    #[serde(default)]
    event: Option<String>,
    #[serde(default)]
    any_workflow: Option<bool>,
    #[serde(default)]
    sender: Option<SenderName>,
    #[serde(default)]
    source: Option<String>,
    /// A CDEvents type, `dev.cdevents.testsuiterun.finished`, with `sender`.
    #[serde(default)]
    cdevents: Option<String>,
}

/// An event source another tool may be let to put: not AWS's, not eddo's own.
fn signal_source(s: &str) -> Result<(), String> {
    let ok = (1..=256).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    if !ok {
        return Err(format!(
            "source {s:?} is not an event source (1 to 256 letters, digits, '.', '_', '-')"
        ));
    }
    if s.starts_with("aws.") || s.starts_with("eddo.") {
        return Err(format!(
            "source {s:?} is reserved: only AWS puts aws.* and only eddo's functions eddo.*"
        ));
    }
    Ok(())
}

pub(super) fn sender(kind: &SignalKind, d: SenderDoc) -> Result<Sender, String> {
    let pins =
        d.app_id.is_some() || d.workflow.is_some() || d.event.is_some() || d.any_workflow.is_some();
    if pins && d.check.is_none() {
        return Err(
            "app_id, workflow, event and any_workflow pin a check: name it (check: CodeQL)".into(),
        );
    }
    if let Some(ty) = d.cdevents {
        if d.check.is_some() || d.app.is_some() || d.source.is_some() {
            return Err(
                "a CDEvents sender is {cdevents, sender}: the type and the tool that delivers it"
                    .into(),
            );
        }
        let predicate = crate::cdevents::policy_type(&ty)?;
        let Some(sender) = d.sender else {
            return Err(format!(
                "cdevents: {ty} names its sender (sender: tekton), the tool whose key or token /cdevents/<sender> checks"
            ));
        };
        if matches!(kind, SignalKind::Build | SignalKind::ImageScan) {
            return Err(format!(
                "{kind} comes from AWS's own record (the build project, ECR or Inspector), not a CDEvent"
            ));
        }
        return Ok(Sender::CdEvent { predicate, sender });
    }
    let sender = match (d.check, d.app, d.sender, d.source) {
        (Some(name), Some(app), None, None)
            if !name.trim().is_empty() && !app.trim().is_empty() =>
        {
            if *kind != SignalKind::Sast && !matches!(kind, SignalKind::Named(_)) {
                return Err(format!("a GitHub check cannot report {kind}"));
            }
            let rule = CheckRule {
                name,
                app,
                app_id: d.app_id,
                workflow: d.workflow.filter(|w| !w.trim().is_empty()),
                event: d.event.filter(|e| !e.trim().is_empty()),
                any_workflow: d.any_workflow.unwrap_or(false),
            };
            if is_security(kind)
                && rule.app == "github-actions"
                && rule.workflow.is_none()
                && !rule.any_workflow
            {
                return Err(format!(
                    "{kind} from {rule}: any workflow can create a check of that name (anyone who can push a workflow file to a branch of the repository, with checks: write), so a fast fake pass could deploy before the real result; pin the workflow file (workflow: .github/workflows/codeql.yml, which counts its workflow runs only) or say any_workflow: true"
                ));
            }
            Sender::Check(rule)
        }
        (Some(_), None, None, None) => {
            return Err(
                "a check names the GitHub App that runs it (app: github-actions), or anyone could report it".into(),
            );
        }
        (None, None, Some(name), None) => Sender::Signed(name),
        (None, None, None, Some(source)) => {
            signal_source(&source)?;
            Sender::Source(source)
        }
        _ => {
            return Err(
                "a sender is one of {check, app}, {sender}, {source} or {cdevents, sender}".into(),
            );
        }
    };
    if *kind == SignalKind::Build {
        return Err(
            "build is reported by the service's build project only (projects.build), so the image deployed is the one it built".into(),
        );
    }
    Ok(sender)
}

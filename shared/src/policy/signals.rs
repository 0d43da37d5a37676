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
    /// A GitHub check run or workflow run of this name, run by this GitHub App (its slug), on a
    /// commit of one of the service's repositories: a verified delivery through the webhook.
    Check { name: String, app: String },
    /// A tool that signs a Standard Webhooks delivery to the webhook's `/signals/<name>` route
    /// with its own key; the webhook republishes it naming the verified sender.
    Signed(SenderName),
    /// An event source that the bus lets only the roles of `SignalSenderRoleArns` put.
    Source(String),
}

impl std::fmt::Display for Sender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Sender::Project(p) => write!(f, "CodeBuild project {p}"),
            Sender::ImageScanner => f.write_str("ECR or Inspector scan of the image repository"),
            Sender::Check { name, app } => write!(f, "check {name} by {app}"),
            Sender::Signed(n) => write!(f, "signed sender {n}"),
            Sender::Source(s) => write!(f, "source {s}"),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SenderDoc {
    #[serde(default)]
    check: Option<String>,
    #[serde(default)]
    app: Option<String>,
    #[serde(default)]
    sender: Option<SenderName>,
    #[serde(default)]
    source: Option<String>,
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
    let sender = match (d.check, d.app, d.sender, d.source) {
        (Some(name), Some(app), None, None)
            if !name.trim().is_empty() && !app.trim().is_empty() =>
        {
            if *kind != SignalKind::Sast && !matches!(kind, SignalKind::Named(_)) {
                return Err(format!("a GitHub check cannot report {kind}"));
            }
            Sender::Check { name, app }
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
            return Err("a sender is one of {check, app}, {sender} or {source}".into());
        }
    };
    if *kind == SignalKind::Build {
        return Err(
            "build is reported by the service's build project only (projects.build), so the image deployed is the one it built".into(),
        );
    }
    Ok(sender)
}

//! The policy: one YAML document, versioned in git, that says which repositories and branches map
//! to which service, the service's CodeBuild projects, what its deployment gate requires, when it
//! rolls back, and how each tenant tier is provisioned.
//! Parsed once at init into types that cannot hold a bad value; a mistake stops the function with
//! one message naming where it is. `infra/policy/example.yaml` is a worked example and
//! `infra/policy/policy.schema.json` its schema, for editors and CI.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::names::{ProjectName, RepoName, SenderName, ServiceName, TierName};
use crate::time::Date;

mod index;
#[cfg(feature = "policy-store")]
#[cfg(feature = "aws")]
pub mod live;
mod mistakes;
mod read;
mod rollback;
mod signals;
mod store;
mod tenants;
#[cfg(test)]
mod tests;

pub use rollback::{AlertMatch, Rollback, RollbackMode};
use rollback::{RollbackDoc, rollback};
pub use signals::{CheckRule, CheckSeen, Sender, SignalKind};
use signals::{SenderDoc, sender};
pub use tenants::{InputKind, RESERVED_INPUTS, TenantInput, TenantJob, Tier};
use tenants::{TenantsDoc, tier};

#[cfg(feature = "policy-store")]
#[cfg(feature = "aws")]
pub use live::load;
pub use mistakes::Mistake;
pub use store::{MAX_OBJECT_BYTES, PolicyStore, PolicyVersion};

/// Finding severities, as ECR and Inspector name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Severity {
    Critical,
    High,
    Medium,
    Low,
    Informational,
    Undefined,
}

impl Severity {
    pub const ALL: [Severity; 6] = [
        Severity::Critical,
        Severity::High,
        Severity::Medium,
        Severity::Low,
        Severity::Informational,
        Severity::Undefined,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            Severity::Critical => "CRITICAL",
            Severity::High => "HIGH",
            Severity::Medium => "MEDIUM",
            Severity::Low => "LOW",
            Severity::Informational => "INFORMATIONAL",
            Severity::Undefined => "UNDEFINED",
        }
    }

    pub fn parse(s: &str) -> Option<Severity> {
        Severity::ALL
            .into_iter()
            .find(|v| v.as_str().eq_ignore_ascii_case(s))
    }
}

/// Whether the gate deploys, or only decides and reports (how a team adopts it safely).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    #[default]
    Enforce,
    Observe,
}

/// A known vulnerability a service accepts until a date, with the reason written down.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exception {
    /// `CVE-2024-1234`, `GHSA-xxxx-xxxx-xxxx` or another scanner's id.
    pub id: String,
    pub reason: String,
    /// The last day the exception applies.
    pub expires: Date,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gate {
    pub require: BTreeSet<SignalKind>,
    /// Who counts for each signal: the AWS-proven ones the projects and image repository imply,
    /// then those the policy names. A signal from anyone else is rejected.
    pub senders: BTreeMap<SignalKind, Vec<Sender>>,
    /// The most findings allowed per severity; a severity not listed is not limited.
    pub max_findings: BTreeMap<Severity, u64>,
    pub exceptions: Vec<Exception>,
    /// How long after a candidate's first signal the rest may arrive.
    pub deadline_minutes: u32,
    pub mode: Mode,
    /// The signals for which a sender's own later result replaces its own earlier one (a
    /// re-run CodeQL job, a re-scan): for any other, every result counts, and one failure
    /// blocks. Another sender's result never replaces one.
    pub reruns: BTreeSet<SignalKind>,
}

impl Gate {
    /// Who counts for `kind` (none: nobody may report it).
    pub fn senders(&self, kind: &SignalKind) -> &[Sender] {
        self.senders.get(kind).map_or(&[], Vec::as_slice)
    }

    /// Whether a signal of `kind` from `from` counts for this service.
    pub fn counts(&self, kind: &SignalKind, from: &Sender) -> bool {
        self.senders(kind).contains(from)
    }

    /// The check sender of `kind` the completed check `seen` is, if the policy counts it.
    pub fn check_sender(&self, kind: &SignalKind, seen: &CheckSeen<'_>) -> Option<&Sender> {
        self.senders(kind)
            .iter()
            .find(|s| matches!(s, Sender::Check(rule) if rule.matches(seen)))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Projects {
    pub build: Option<ProjectName>,
    pub sast: Option<ProjectName>,
    /// Started by the gate to deploy: none for a service that deploys by GitHub environment only.
    pub deploy: Option<ProjectName>,
    pub rollback: Option<ProjectName>,
}

impl Projects {
    /// Each project the service names, with its role there.
    pub fn each(&self) -> impl Iterator<Item = (&ProjectName, ProjectRole)> {
        [
            (self.build.as_ref(), ProjectRole::Build),
            (self.sast.as_ref(), ProjectRole::Sast),
            (self.deploy.as_ref(), ProjectRole::Deploy),
            (self.rollback.as_ref(), ProjectRole::Rollback),
        ]
        .into_iter()
        .filter_map(|(p, role)| p.map(|p| (p, role)))
    }
}

/// What a CodeBuild project is to its service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ProjectRole {
    Build,
    Sast,
    Deploy,
    Rollback,
}

impl ProjectRole {
    /// The role as the project's `eddo:role` tag says it (and `eddo policy params` prints it).
    pub fn as_str(self) -> &'static str {
        match self {
            ProjectRole::Build => "build",
            ProjectRole::Sast => "sast",
            ProjectRole::Deploy => "deploy",
            ProjectRole::Rollback => "rollback",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    pub name: ServiceName,
    pub repositories: Vec<RepoName>,
    /// Branches it deploys from.
    pub branches: Vec<String>,
    pub projects: Projects,
    /// The ECR repository its images are pushed to (name, not ARN).
    pub image_repository: Option<String>,
    pub gate: Gate,
    pub rollback: Option<Rollback>,
    /// Where the gate shows itself to the people who pushed the commit.
    pub checks: Checks,
    /// How a decision to deploy reaches the service: the deploy project, a GitHub environment's
    /// waiting jobs, or both.
    pub deploys_by: DeploysBy,
    /// The version of the policy's store (SSM parameter or S3 object) this definition was read
    /// from, for the decisions made by it to name (`policy_version`); none for a policy given
    /// directly.
    pub policy_version: Option<PolicyVersion>,
}

/// Where a service's gate shows each candidate: a check run `eddo gate` on its commit in a GitHub
/// repository (by the App the template's `GitHubAppSecret` holds the key of), a commit status
/// `eddo/gate` in a GitLab project (by the token `GitLabTokenSecret` holds).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Checks {
    /// One of the service's repositories, on GitHub.
    pub github: Option<RepoName>,
    /// One of the service's repositories, on GitLab (its path: `group/subgroup/project`).
    pub gitlab: Option<RepoName>,
}

/// How the gate deploys a service it decided to deploy.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum DeploysBy {
    /// It starts the service's deploy project (`projects.deploy`).
    #[default]
    CodeBuild,
    /// It approves the GitHub Actions jobs waiting on `environment` in the repository
    /// `checks.github` names (a custom deployment protection rule that is eddo's App); it
    /// starts no project.
    GitHubEnvironment { environment: String },
    /// Both: the deploy project, and the environment's waiting jobs.
    Both { environment: String },
}

impl DeploysBy {
    /// Whether a decision to deploy starts the deploy project.
    pub fn codebuild(&self) -> bool {
        !matches!(self, DeploysBy::GitHubEnvironment { .. })
    }

    /// The GitHub environment whose waiting jobs a decision answers, if any.
    pub fn environment(&self) -> Option<&str> {
        match self {
            DeploysBy::CodeBuild => None,
            DeploysBy::GitHubEnvironment { environment } | DeploysBy::Both { environment } => {
                Some(environment)
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub services: BTreeMap<ServiceName, Service>,
    pub tiers: BTreeMap<TierName, Tier>,
    /// The version of its store it was read from (none for a policy given directly).
    pub version: Option<PolicyVersion>,
    /// Its services by project, repository, image repository and alarm: built once, when it is
    /// read, so each event's lookups touch only the service at hand.
    index: index::Index,
}

/// The policy `text` with its service `service` written `n` times over, as `svc-0000`,
/// `svc-0001`, ...: each copy with its own repository (`eddo-example/svc-NNNN`), projects and
/// image repository (every `eddo-` name prefixed with its own), and alarms; the rest (tiers,
/// comments) as it is. A platform's policy of any size shaped like a real one, for scale tests
/// and benchmarks. `None` when `text` has no top-level-indented `service`.
pub fn with_copies_of(text: &str, service: &str, n: usize) -> Option<String> {
    let start = text.find(&format!("\n  {service}:\n"))? + 1;
    // The service's block ends at the next top-level key.
    let end = text[start..]
        .match_indices('\n')
        .map(|(i, _)| start + i + 1)
        .find(|&i| text[i..].starts_with(|c: char| c.is_ascii_alphabetic()))?;
    let block = &text[start..end];
    let mut out = String::from(&text[..start]);
    for i in 0..n {
        let name = format!("svc-{i:04}");
        out.push_str(
            &block
                .replace("eddo-", &format!("{name}-"))
                .replace("Codertocat/Hello-World", &format!("eddo-example/{name}"))
                .replace(service, &name),
        );
    }
    out.push_str(&text[end..]);
    Some(out)
}

/// Why a policy document was refused: every mistake in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyError(pub Vec<Mistake>);

impl std::error::Error for PolicyError {}

impl std::fmt::Display for PolicyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("policy: ")?;
        for (i, m) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            // The place is for a person reading the file; the message alone reads in a log.
            if m.path.is_empty() {
                f.write_str(&m.message)?;
            } else {
                write!(f, "{}: {}", m.path, m.message)?;
            }
        }
        Ok(())
    }
}

// The document as written; `deny_unknown_fields` so a misspelt key is an error, not a default.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Doc {
    version: u32,
    // Each service and the tenants section are read apart, so a mistake in one does not hide
    // the mistakes in the others.
    #[serde(default)]
    services: BTreeMap<String, serde_norway::Value>,
    #[serde(default)]
    tenants: Option<serde_norway::Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ServiceDoc {
    repositories: Vec<RepoName>,
    branches: Vec<String>,
    projects: ProjectsDoc,
    #[serde(default)]
    image_repository: Option<String>,
    gate: GateDoc,
    #[serde(default)]
    rollback: Option<RollbackDoc>,
    #[serde(default)]
    checks: Option<ChecksDoc>,
    #[serde(default)]
    deploys_by: DeploysByDoc,
    #[serde(default)]
    github_environment: Option<String>,
}

#[derive(Deserialize, Default, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
enum DeploysByDoc {
    #[default]
    Codebuild,
    GithubEnvironment,
    Both,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ChecksDoc {
    #[serde(default)]
    github: Option<RepoName>,
    #[serde(default)]
    gitlab: Option<RepoName>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProjectsDoc {
    #[serde(default)]
    build: Option<ProjectName>,
    #[serde(default)]
    sast: Option<ProjectName>,
    #[serde(default)]
    deploy: Option<ProjectName>,
    #[serde(default)]
    rollback: Option<ProjectName>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GateDoc {
    require: BTreeSet<SignalKind>,
    #[serde(default)]
    senders: BTreeMap<SignalKind, Vec<SenderDoc>>,
    /// Replaced by `senders.sast`, where a check names the app that runs it.
    #[serde(default)]
    sast_checks: Option<serde::de::IgnoredAny>,
    #[serde(default = "default_max_findings")]
    max_findings: BTreeMap<Severity, u64>,
    #[serde(default)]
    exceptions: Vec<ExceptionDoc>,
    deadline_minutes: u32,
    #[serde(default)]
    mode: Mode,
    #[serde(default)]
    reruns: BTreeSet<SignalKind>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExceptionDoc {
    id: String,
    reason: String,
    expires: String,
}

fn default_max_findings() -> BTreeMap<Severity, u64> {
    [(Severity::Critical, 0), (Severity::High, 0)].into()
}

/// Whether `text` matches `pattern`, where `*` matches any run of characters (none included).
pub fn glob(pattern: &str, text: &str) -> bool {
    let (p, t) = (pattern.as_bytes(), text.as_bytes());
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, ti));
            pi += 1;
        } else if pi < p.len() && p[pi] == t[ti] {
            pi += 1;
            ti += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&b| b == b'*')
}

impl Policy {
    /// Parses and checks a policy document (YAML, or JSON, which is YAML); refused with every
    /// mistake in it.
    pub fn parse(text: &str) -> Result<Policy, PolicyError> {
        Policy::check(text).map_err(PolicyError)
    }

    /// [`Policy::parse`], with each mistake apart and where it is written.
    pub fn check(text: &str) -> Result<Policy, Vec<Mistake>> {
        read::read(text)
    }

    /// The policy as read from `version` of its store: every service and tier says so.
    pub fn at_version(mut self, version: Option<PolicyVersion>) -> Policy {
        for s in self.services.values_mut() {
            s.policy_version.clone_from(&version);
        }
        for t in self.tiers.values_mut() {
            t.policy_version.clone_from(&version);
        }
        self.version = version;
        self
    }

    /// A policy of these services and tiers, indexed (what the reader builds once per version).
    pub(crate) fn indexed(
        services: BTreeMap<ServiceName, Service>,
        tiers: BTreeMap<TierName, Tier>,
    ) -> Policy {
        let index = index::Index::of(&services, &tiers);
        Policy {
            services,
            tiers,
            version: None,
            index,
        }
    }

    pub fn tier(&self, name: &str) -> Option<&Tier> {
        self.tiers.get(name)
    }

    /// Whether a CodeBuild project provisions or deprovisions tenants.
    pub fn tenant_project(&self, project: &str) -> bool {
        self.index.tenant_project(project)
    }

    pub fn service(&self, name: &str) -> Option<&Service> {
        self.services.get(name)
    }

    /// The service a finished build belongs to, and its role there: its project's, as this
    /// policy names it; or, for a build eddo started to carry out a decision under an earlier
    /// version whose project this one no longer names, the service its `EDDO_SERVICE` names in
    /// the role its decision gave it. Whether it is the decision's own build is for its record
    /// to say (the build id or decision id recorded), not for this.
    #[cfg(feature = "codebuild")]
    pub fn build_owner(&self, b: &crate::codebuild::BuildState) -> Option<(&Service, ProjectRole)> {
        if let Some(found) = self.project(&b.project) {
            return Some(found);
        }
        let role = match b.decided_kind()? {
            "deploy" => ProjectRole::Deploy,
            "rollback" => ProjectRole::Rollback,
            _ => return None,
        };
        Some((self.service(b.env("EDDO_SERVICE")?)?, role))
    }

    /// Whether a finished build is a tenant build: of a tier's project as this policy names it,
    /// or started by eddo for a tenant's decision under an earlier version.
    #[cfg(feature = "codebuild")]
    pub fn tenant_build(&self, b: &crate::codebuild::BuildState) -> bool {
        self.tenant_project(&b.project) || b.decided_kind() == Some("tenant")
    }

    /// The service a CodeBuild project belongs to, and its role there.
    pub fn project(&self, project: &str) -> Option<(&Service, ProjectRole)> {
        let (name, role) = self.index.project(project)?;
        Some((self.services.get(name)?, *role))
    }

    /// The services whose rollback policy names the alarm (by name or by ARN), in name order.
    pub fn alarm<'a>(&'a self, name: &str, arn: Option<&str>) -> impl Iterator<Item = &'a Service> {
        self.index
            .alarm(name, arn)
            .into_iter()
            .filter_map(|s| self.services.get(s))
    }

    /// The services whose `rollback.alerts` take an alert of `sender` with `labels`, in name
    /// order: only the services naming that sender are tried.
    pub fn alert(&self, sender: &str, labels: &BTreeMap<String, String>) -> Vec<&Service> {
        self.index
            .alert_sender(sender)
            .iter()
            .filter_map(|s| self.services.get(s))
            .filter(|s| {
                s.rollback
                    .iter()
                    .flat_map(|r| &r.alerts)
                    .any(|a| a.matches(sender, labels))
            })
            .collect()
    }

    /// The service whose images go to the ECR repository `name`.
    pub fn image_repository(&self, name: &str) -> Option<&Service> {
        self.services.get(self.index.image(name)?)
    }

    /// Every event source the policy lets another tool report a signal from: the bus must let
    /// only the listed roles put them (template parameter `SignalSources`).
    pub fn signal_sources(&self) -> BTreeSet<&str> {
        self.services
            .values()
            .flat_map(|s| s.gate.senders.values().flatten())
            .filter_map(|s| match s {
                Sender::Source(source) => Some(source.as_str()),
                _ => None,
            })
            .collect()
    }

    /// The services deployed from `repo` (a monorepo may hold several), in name order.
    pub fn repository(&self, repo: &str) -> impl Iterator<Item = &Service> {
        self.index
            .repository(repo)
            .iter()
            .filter_map(|s| self.services.get(s))
    }
}

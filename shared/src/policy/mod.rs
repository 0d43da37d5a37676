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

mod rollback;
mod signals;
mod tenants;
#[cfg(test)]
mod tests;

pub use rollback::{Rollback, RollbackMode};
use rollback::{RollbackDoc, rollback};
pub use signals::{Sender, SignalKind};
use signals::{SenderDoc, sender};
pub use tenants::{InputKind, RESERVED_INPUTS, TenantInput, TenantJob, Tier};
use tenants::{TenantsDoc, tier};

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
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Projects {
    pub build: Option<ProjectName>,
    pub sast: Option<ProjectName>,
    pub deploy: ProjectName,
    pub rollback: Option<ProjectName>,
}

/// What a CodeBuild project is to its service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProjectRole {
    Build,
    Sast,
    Deploy,
    Rollback,
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
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub services: BTreeMap<ServiceName, Service>,
    pub tiers: BTreeMap<TierName, Tier>,
}

/// Why a policy document was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("policy: {0}")]
pub struct PolicyError(pub String);

// The document as written; `deny_unknown_fields` so a misspelt key is an error, not a default.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Doc {
    version: u32,
    #[serde(default)]
    services: BTreeMap<ServiceName, ServiceDoc>,
    #[serde(default)]
    tenants: Option<TenantsDoc>,
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
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProjectsDoc {
    #[serde(default)]
    build: Option<ProjectName>,
    #[serde(default)]
    sast: Option<ProjectName>,
    deploy: ProjectName,
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

/// Reads the policy from its SSM parameter (feature `policy-store`); a missing parameter or a bad
/// document is a configuration error naming it, for the function to stop at init with.
#[cfg(feature = "policy-store")]
pub async fn load(sdk: &aws_config::SdkConfig, parameter: &str) -> Result<Policy, String> {
    let out = aws_sdk_ssm::Client::new(sdk)
        .get_parameter()
        .name(parameter)
        .with_decryption(true)
        .send()
        .await
        .map_err(|e| {
            format!(
                "EDDO_POLICY_PARAMETER: could not read SSM parameter {parameter}: {}",
                aws_sdk_ssm::error::DisplayErrorContext(&e)
            )
        })?;
    let text = out
        .parameter()
        .and_then(|p| p.value())
        .ok_or_else(|| format!("EDDO_POLICY_PARAMETER: SSM parameter {parameter} has no value"))?;
    Policy::parse(text).map_err(|e| format!("SSM parameter {parameter}: {e}"))
}

/// [`load`] at init: a missing parameter or a bad document stops the function with the line
/// that names the mistake, which Lambda reports as the init failure.
#[cfg(feature = "policy-store")]
pub async fn load_at_init(sdk: &aws_config::SdkConfig, parameter: &str) -> Policy {
    match load(sdk, parameter).await {
        Ok(p) => p,
        Err(why) => {
            eprintln!("eddo: configuration error: {why}");
            std::process::exit(1)
        }
    }
}

impl Policy {
    /// Parses and checks a policy document (YAML, or JSON, which is YAML).
    pub fn parse(text: &str) -> Result<Policy, PolicyError> {
        let doc: Doc = serde_norway::from_str(text).map_err(|e| PolicyError(e.to_string()))?;
        if doc.version != 1 {
            return Err(PolicyError(format!(
                "version {} is not supported (this eddo reads version 1)",
                doc.version
            )));
        }
        if doc.services.is_empty() && doc.tenants.is_none() {
            return Err(PolicyError(
                "services: no service is declared (and no tenant tier)".into(),
            ));
        }
        let mut services = BTreeMap::new();
        let mut projects: BTreeMap<ProjectName, ServiceName> = BTreeMap::new();
        let mut images: BTreeMap<String, ServiceName> = BTreeMap::new();
        for (name, s) in doc.services {
            let at = |field: &str| format!("services.{name}.{field}");
            let bad = |field: &str, why: String| PolicyError(format!("{}: {why}", at(field)));
            if s.repositories.is_empty() {
                return Err(bad("repositories", "name at least one repository".into()));
            }
            if s.branches.is_empty() || s.branches.iter().any(|b| b.trim().is_empty()) {
                return Err(bad(
                    "branches",
                    "name at least one branch, none empty".into(),
                ));
            }
            let g = s.gate;
            if g.sast_checks.is_some() {
                return Err(bad(
                    "gate.sast_checks",
                    "replaced by gate.senders.sast, where each check names the GitHub App that runs it: {check: CodeQL, app: github-actions}".into(),
                ));
            }
            if g.require.is_empty() {
                return Err(bad("gate.require", "require at least one signal".into()));
            }
            if !(1..=1440).contains(&g.deadline_minutes) {
                return Err(bad(
                    "gate.deadline_minutes",
                    format!("{} is not between 1 and 1440", g.deadline_minutes),
                ));
            }
            if g.require.contains(&SignalKind::Build) && s.projects.build.is_none() {
                return Err(bad(
                    "projects.build",
                    "the gate requires build, so name the build project".into(),
                ));
            }
            if g.require.contains(&SignalKind::ImageScan) && s.image_repository.is_none() {
                return Err(bad(
                    "image_repository",
                    "the gate requires image-scan, so name the ECR repository".into(),
                ));
            }
            if g.require.contains(&SignalKind::ImageScan) && !g.require.contains(&SignalKind::Build)
            {
                return Err(bad(
                    "gate.require",
                    "a scan counts only for the image the service's build reported, so image-scan needs build".into(),
                ));
            }
            let mut senders: BTreeMap<SignalKind, Vec<Sender>> = BTreeMap::new();
            if let Some(p) = &s.projects.build {
                senders.insert(SignalKind::Build, vec![Sender::Project(p.clone())]);
            }
            if let Some(p) = &s.projects.sast {
                senders.insert(SignalKind::Sast, vec![Sender::Project(p.clone())]);
            }
            if s.image_repository.is_some() {
                senders.insert(SignalKind::ImageScan, vec![Sender::ImageScanner]);
            }
            for (kind, list) in g.senders {
                for (i, d) in list.into_iter().enumerate() {
                    let sender = sender(&kind, d)
                        .map_err(|why| bad(&format!("gate.senders.{kind}[{i}]"), why))?;
                    let known = senders.entry(kind.clone()).or_default();
                    if !known.contains(&sender) {
                        known.push(sender);
                    }
                }
            }
            for kind in &g.require {
                if senders.get(kind).is_none_or(Vec::is_empty) {
                    return Err(bad(
                        "gate.require",
                        format!("nobody can report {kind}: name who may under gate.senders.{kind}"),
                    ));
                }
            }
            let mut exceptions = Vec::new();
            for (i, e) in g.exceptions.into_iter().enumerate() {
                let field = format!("gate.exceptions[{i}]");
                if e.id.trim().is_empty() || e.id.contains(char::is_whitespace) {
                    return Err(bad(
                        &field,
                        format!("id {:?} is not a vulnerability id", e.id),
                    ));
                }
                if e.reason.trim().is_empty() {
                    return Err(bad(&field, format!("{}: write down the reason", e.id)));
                }
                let expires = Date::parse(&e.expires).map_err(|why| bad(&field, why))?;
                exceptions.push(Exception {
                    id: e.id,
                    reason: e.reason,
                    expires,
                });
            }
            let p = s.projects;
            for (role, project) in [
                ("build", &p.build),
                ("sast", &p.sast),
                ("deploy", &Some(p.deploy.clone())),
                ("rollback", &p.rollback),
            ] {
                if let Some(project) = project
                    && let Some(other) = projects.insert(project.clone(), name.clone())
                {
                    {
                        return Err(bad(
                            &format!("projects.{role}"),
                            format!(
                                "project {project} is already used by {}; each project belongs to one service and one role",
                                if other == name {
                                    "this service".to_string()
                                } else {
                                    format!("service {other}")
                                }
                            ),
                        ));
                    }
                }
            }
            let rollback = match (s.rollback, &p.rollback) {
                (None, None) => None,
                (None, Some(project)) => {
                    return Err(bad(
                        "rollback",
                        format!(
                            "projects.rollback names {project}, so say when to use it (alarms, bake_minutes)"
                        ),
                    ));
                }
                (Some(_), None) => {
                    return Err(bad(
                        "projects.rollback",
                        "a rollback section needs the rollback project it starts".into(),
                    ));
                }
                (Some(r), Some(_)) => Some(rollback(r).map_err(|(f, why)| bad(&f, why))?),
            };
            if let Some(repo) = &s.image_repository
                && let Some(other) = images.insert(repo.clone(), name.clone())
            {
                {
                    return Err(bad(
                        "image_repository",
                        format!("{repo} is already the image repository of service {other}"),
                    ));
                }
            }
            services.insert(
                name.clone(),
                Service {
                    name,
                    repositories: s.repositories,
                    branches: s.branches,
                    projects: Projects {
                        build: p.build,
                        sast: p.sast,
                        deploy: p.deploy,
                        rollback: p.rollback,
                    },
                    image_repository: s.image_repository,
                    gate: Gate {
                        require: g.require,
                        senders,
                        max_findings: g.max_findings,
                        exceptions,
                        deadline_minutes: g.deadline_minutes,
                        mode: g.mode,
                    },
                    rollback,
                },
            );
        }
        let mut tiers = BTreeMap::new();
        if let Some(tenants) = doc.tenants {
            if tenants.tiers.is_empty() {
                return Err(PolicyError(
                    "tenants.tiers: declare at least one tier".into(),
                ));
            }
            for (name, t) in tenants.tiers {
                let tier = tier(&name, t)?;
                for (field, job) in [
                    ("provision", &tier.provision),
                    ("deprovision", &tier.deprovision),
                ] {
                    if let Some(other) = projects.get(&job.project) {
                        return Err(PolicyError(format!(
                            "tenants.tiers.{name}.{field}.project: project {} is already used by service {other}; a tenant project serves tenants only",
                            job.project
                        )));
                    }
                }
                tiers.insert(name, tier);
            }
        }
        Ok(Policy { services, tiers })
    }

    pub fn tier(&self, name: &str) -> Option<&Tier> {
        self.tiers.values().find(|t| t.name.as_str() == name)
    }

    /// Whether a CodeBuild project provisions or deprovisions tenants.
    pub fn tenant_project(&self, project: &str) -> bool {
        self.tiers.values().any(|t| {
            t.provision.project.as_str() == project || t.deprovision.project.as_str() == project
        })
    }

    pub fn service(&self, name: &str) -> Option<&Service> {
        self.services.values().find(|s| s.name.as_str() == name)
    }

    /// The service a CodeBuild project belongs to, and its role there.
    pub fn project(&self, project: &str) -> Option<(&Service, ProjectRole)> {
        self.services.values().find_map(|s| {
            let p = &s.projects;
            let is = |n: &Option<ProjectName>| n.as_ref().is_some_and(|n| n.as_str() == project);
            if is(&p.build) {
                Some((s, ProjectRole::Build))
            } else if is(&p.sast) {
                Some((s, ProjectRole::Sast))
            } else if p.deploy.as_str() == project {
                Some((s, ProjectRole::Deploy))
            } else if is(&p.rollback) {
                Some((s, ProjectRole::Rollback))
            } else {
                None
            }
        })
    }

    /// The services whose rollback policy names the alarm (by name or by ARN).
    pub fn alarm<'a, 'b>(
        &'a self,
        name: &'b str,
        arn: Option<&'b str>,
    ) -> impl Iterator<Item = &'a Service> + use<'a, 'b> {
        self.services.values().filter(move |s| {
            s.rollback.as_ref().is_some_and(|r| {
                r.alarms.iter().any(|p| match p.strip_prefix("arn:") {
                    Some(_) => arn.is_some_and(|arn| glob(p, arn)),
                    None => glob(p, name),
                })
            })
        })
    }

    /// The service whose images go to the ECR repository `name`.
    pub fn image_repository(&self, name: &str) -> Option<&Service> {
        self.services
            .values()
            .find(|s| s.image_repository.as_deref() == Some(name))
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

    /// The services deployed from `repo` (a monorepo may hold several).
    pub fn repository(&self, repo: &str) -> impl Iterator<Item = &Service> {
        self.services.values().filter(move |s| {
            s.repositories
                .iter()
                .any(|r| r.as_str().eq_ignore_ascii_case(repo))
        })
    }
}

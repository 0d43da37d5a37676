//! Reading a policy document: its structure (serde, one service at a time), then its meaning
//! (the rules no type can hold), gathering every mistake rather than stopping at the first.

use super::mistakes::{Found, Mistake};
use super::*;

/// Deserializes `value` as `T`, or adds the mistake at its path under `prefix`.
fn structure<T: serde::de::DeserializeOwned>(
    value: serde_norway::Value,
    prefix: &str,
    found: &mut Found,
) -> Option<T> {
    match serde_path_to_error::deserialize::<_, T>(value) {
        Ok(t) => Some(t),
        Err(e) => {
            let inner = e.path().to_string();
            let path = match (prefix.is_empty(), inner.as_str()) {
                (_, ".") => prefix.to_string(),
                (true, _) => inner,
                (false, _) => format!("{prefix}.{inner}"),
            };
            found.add(path, e.into_inner().to_string());
            None
        }
    }
}

pub(super) fn read(text: &str) -> Result<Policy, Vec<Mistake>> {
    let value: serde_norway::Value = match serde_norway::from_str(text) {
        Ok(v) => v,
        Err(e) => {
            let at = e.location();
            return Err(vec![Mistake {
                path: String::new(),
                message: e.to_string(),
                line: at.as_ref().map(|l| l.line()),
                column: at.as_ref().map(|l| l.column()),
            }]);
        }
    };
    let mut found = Found::default();
    let policy = document(value, &mut found);
    match policy {
        Some(p) if found.is_empty() => Ok(p),
        _ => Err(found.located(text)),
    }
}

/// Projects and image repositories already claimed, and by which service.
#[derive(Default)]
struct Claimed {
    projects: BTreeMap<ProjectName, ServiceName>,
    images: BTreeMap<String, ServiceName>,
    environments: BTreeMap<(RepoName, String), ServiceName>,
}

fn document(value: serde_norway::Value, found: &mut Found) -> Option<Policy> {
    let doc: Doc = structure(value, "", found)?;
    if doc.version != 1 {
        found.add(
            "version",
            format!(
                "version {} is not supported (this eddo reads version 1)",
                doc.version
            ),
        );
        return None;
    }
    if doc.services.is_empty() && doc.tenants.is_none() {
        found.add("services", "no service is declared (and no tenant tier)");
        return None;
    }
    let mut claimed = Claimed::default();
    let mut services = BTreeMap::new();
    for (name, value) in doc.services {
        let at = format!("services.{name}");
        let name = match ServiceName::parse(name) {
            Ok(n) => n,
            Err(why) => {
                found.add(at, why);
                continue;
            }
        };
        let Some(s) = structure::<ServiceDoc>(value, &at, found) else {
            continue;
        };
        if let Some(service) = service(name.clone(), s, &mut claimed, found) {
            services.insert(name, service);
        }
    }
    let mut tiers = BTreeMap::new();
    if let Some(value) = doc.tenants
        && let Some(tenants) = structure::<TenantsDoc>(value, "tenants", found)
    {
        if tenants.tiers.is_empty() {
            found.add("tenants.tiers", "declare at least one tier");
        }
        for (name, t) in tenants.tiers {
            let Some(tier) = tier(&name, t, found) else {
                continue;
            };
            for (field, job) in [
                ("provision", &tier.provision),
                ("deprovision", &tier.deprovision),
            ] {
                if let Some(other) = claimed.projects.get(&job.project) {
                    found.add(
                        format!("tenants.tiers.{name}.{field}.project"),
                        format!(
                            "project {} is already used by service {other}; a tenant project serves tenants only",
                            job.project
                        ),
                    );
                }
            }
            tiers.insert(name, tier);
        }
    }
    Some(Policy::indexed(services, tiers))
}

/// One service, checked; `None` when it has a mistake (added to `found`).
fn service(
    name: ServiceName,
    s: ServiceDoc,
    claimed: &mut Claimed,
    found: &mut Found,
) -> Option<Service> {
    let before = found.len();
    let mut bad = |field: &str, why: String| found.add(format!("services.{name}.{field}"), why);
    if s.repositories.is_empty() {
        bad("repositories", "name at least one repository".into());
    }
    if s.branches.is_empty() || s.branches.iter().any(|b| b.trim().is_empty()) {
        bad("branches", "name at least one branch, none empty".into());
    }
    let g = s.gate;
    if g.sast_checks.is_some() {
        bad(
            "gate.sast_checks",
            "replaced by gate.senders.sast, where each check names the GitHub App that runs it: {check: CodeQL, app: github-actions}".into(),
        );
    }
    if g.require.is_empty() {
        bad("gate.require", "require at least one signal".into());
    }
    if !(1..=1440).contains(&g.deadline_minutes) {
        bad(
            "gate.deadline_minutes",
            format!("{} is not between 1 and 1440", g.deadline_minutes),
        );
    }
    if g.require.contains(&SignalKind::Build) && s.projects.build.is_none() {
        bad(
            "projects.build",
            "the gate requires build, so name the build project".into(),
        );
    }
    if g.require.contains(&SignalKind::ImageScan) && s.image_repository.is_none() {
        bad(
            "image_repository",
            "the gate requires image-scan, so name the ECR repository".into(),
        );
    }
    if g.require.contains(&SignalKind::ImageScan) && !g.require.contains(&SignalKind::Build) {
        bad(
            "gate.require",
            "a scan counts only for the image the service's build reported, so image-scan needs build".into(),
        );
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
            match sender(&kind, d) {
                Ok(sender) => {
                    let known = senders.entry(kind.clone()).or_default();
                    if !known.contains(&sender) {
                        known.push(sender);
                    }
                }
                Err(why) => bad(&format!("gate.senders.{kind}[{i}]"), why),
            }
        }
    }
    for kind in &g.reruns {
        if senders.get(kind).is_none_or(Vec::is_empty) {
            bad(
                "gate.reruns",
                format!("nobody can report {kind}, so no rerun of it can count"),
            );
        }
    }
    for kind in &g.require {
        if senders.get(kind).is_none_or(Vec::is_empty) {
            bad(
                "gate.require",
                format!("nobody can report {kind}: name who may under gate.senders.{kind}"),
            );
        }
    }
    let mut exceptions = Vec::new();
    for (i, e) in g.exceptions.into_iter().enumerate() {
        let field = format!("gate.exceptions[{i}]");
        if e.id.trim().is_empty() || e.id.contains(char::is_whitespace) {
            bad(
                &format!("{field}.id"),
                format!("id {:?} is not a vulnerability id", e.id),
            );
        }
        if e.reason.trim().is_empty() {
            bad(
                &format!("{field}.reason"),
                format!("{}: write down the reason", e.id),
            );
        }
        match Date::parse(&e.expires) {
            Ok(expires) => exceptions.push(Exception {
                id: e.id,
                reason: e.reason,
                expires,
            }),
            Err(why) => bad(&format!("{field}.expires"), why),
        }
    }
    let p = s.projects;
    for (role, project) in [
        ("build", &p.build),
        ("sast", &p.sast),
        ("deploy", &p.deploy),
        ("rollback", &p.rollback),
    ] {
        if let Some(project) = project
            && let Some(other) = claimed.projects.insert(project.clone(), name.clone())
        {
            bad(
                &format!("projects.{role}"),
                format!(
                    "project {project} is already used by {}; each project belongs to one service and one role",
                    if other == name {
                        "this service".to_string()
                    } else {
                        format!("service {other}")
                    }
                ),
            );
        }
    }
    let rollback = match (s.rollback, &p.rollback) {
        (None, None) => None,
        (None, Some(project)) => {
            bad(
                "rollback",
                format!(
                    "projects.rollback names {project}, so say when to use it (alarms, bake_minutes)"
                ),
            );
            None
        }
        (Some(_), None) => {
            bad(
                "projects.rollback",
                "a rollback section needs the rollback project it starts".into(),
            );
            None
        }
        (Some(r), Some(_)) => rollback(r, &mut |f, why| bad(&f, why)),
    };
    if let Some(repo) = &s.image_repository
        && let Some(other) = claimed.images.insert(repo.clone(), name.clone())
    {
        bad(
            "image_repository",
            format!("{repo} is already the image repository of service {other}"),
        );
    }
    let checks = s
        .checks
        .map(|c| Checks {
            github: c.github,
            gitlab: c.gitlab,
        })
        .unwrap_or_default();
    for (field, repo) in [("github", &checks.github), ("gitlab", &checks.gitlab)] {
        if let Some(repo) = repo
            && !s.repositories.contains(repo)
        {
            bad(
                &format!("checks.{field}"),
                format!(
                    "{repo} is not one of the service's repositories; the gate shows itself on its commits"
                ),
            );
        }
    }
    let deploys_by = deploys_by(
        s.deploys_by,
        s.github_environment,
        p.deploy.as_ref(),
        checks.github.as_ref(),
        &mut |f, why| bad(f, why),
    );
    if let (
        Some(DeploysBy::GitHubEnvironment { environment } | DeploysBy::Both { environment }),
        Some(repo),
    ) = (&deploys_by, &checks.github)
        && let Some(other) = claimed
            .environments
            .insert((repo.clone(), environment.clone()), name.clone())
    {
        bad(
            "github_environment",
            format!(
                "environment {environment} of {repo} is already deployed by service {other}: GitHub takes one answer from eddo's App"
            ),
        );
    }
    if found.len() > before {
        return None;
    }
    Some(Service {
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
            reruns: g.reruns,
        },
        rollback,
        checks,
        deploys_by: deploys_by?,
        policy_version: None,
    })
}

/// How the service deploys, with what each way needs: the deploy project for CodeBuild, an
/// environment in the repository `checks.github` names for a GitHub environment.
fn deploys_by(
    by: DeploysByDoc,
    environment: Option<String>,
    deploy: Option<&ProjectName>,
    github: Option<&RepoName>,
    bad: &mut dyn FnMut(&str, String),
) -> Option<DeploysBy> {
    let codebuild = by != DeploysByDoc::GithubEnvironment;
    match (codebuild, deploy) {
        (true, None) => bad(
            "projects.deploy",
            "the gate deploys by starting this project: name it (or say deploys_by: github-environment)".into(),
        ),
        (false, Some(p)) => bad(
            "projects.deploy",
            format!("{p} would never be started: deploys_by github-environment starts no project (say both to start it too)"),
        ),
        _ => {}
    }
    if by == DeploysByDoc::Codebuild {
        if environment.is_some() {
            bad(
                "github_environment",
                "only a service that deploys_by github-environment (or both) answers an environment's protection rule".into(),
            );
        }
        return Some(DeploysBy::CodeBuild);
    }
    if github.is_none() {
        bad(
            "checks.github",
            "a service deployed by GitHub environment names the repository whose environment it is here".into(),
        );
    }
    let Some(environment) =
        environment.filter(|e| !e.trim().is_empty() && e.chars().count() <= 255)
    else {
        bad(
            "github_environment",
            "name the GitHub environment (at most 255 characters) whose jobs the gate approves"
                .into(),
        );
        return None;
    };
    Some(match by {
        DeploysByDoc::Both => DeploysBy::Both { environment },
        _ => DeploysBy::GitHubEnvironment { environment },
    })
}

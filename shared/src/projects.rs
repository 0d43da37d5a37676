//! The CodeBuild projects a policy names, by what eddo does with them: one source for the
//! template parameters that must list them (`eddo policy params`), and the check each function
//! makes at init that its role may start every project its policy can ask it to start. A project
//! missing from a parameter is a StartBuild refused with AccessDenied in AWS, which the functions
//! treat as a permanent refusal; this says so before the first event does.

use std::collections::BTreeSet;

use crate::policy::Policy;

/// The projects a policy names, per template parameter.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PolicyProjects {
    /// Every build, SAST and deploy project: the gate listens to their state changes.
    pub gate: BTreeSet<String>,
    /// The deploy projects, which the gate starts.
    pub deploy: BTreeSet<String>,
    /// The rollback projects, which alarm-rollback starts and listens to.
    pub rollback: BTreeSet<String>,
    /// Each tier's provisioning and deprovisioning projects, which tenant-onboarding starts.
    pub tenant: BTreeSet<String>,
    /// Every service's repositories: only their pushes start the build and SAST projects.
    pub repositories: BTreeSet<String>,
    /// The event sources the policy lets other tools report signals from: the bus lets only the
    /// listed roles put them.
    pub signal_sources: BTreeSet<String>,
    /// The services' build projects: what a push rule may start as the build.
    pub build: BTreeSet<String>,
    /// The services' SAST projects: what a push rule may start as the static analysis.
    pub sast: BTreeSet<String>,
    /// Every service's branches: the pushes the policy deploys from.
    pub branches: BTreeSet<String>,
}

impl PolicyProjects {
    pub fn of(policy: &Policy) -> PolicyProjects {
        let mut out = PolicyProjects::default();
        for s in policy.services.values() {
            let p = &s.projects;
            for project in [&p.build, &p.sast].into_iter().flatten() {
                out.gate.insert(project.as_str().to_string());
            }
            out.build
                .extend(p.build.iter().map(|b| b.as_str().to_string()));
            out.sast
                .extend(p.sast.iter().map(|b| b.as_str().to_string()));
            out.branches.extend(s.branches.iter().cloned());
            out.gate.insert(p.deploy.as_str().to_string());
            out.deploy.insert(p.deploy.as_str().to_string());
            if let Some(r) = &p.rollback {
                out.rollback.insert(r.as_str().to_string());
            }
            out.repositories
                .extend(s.repositories.iter().map(|r| r.as_str().to_string()));
        }
        out.signal_sources = policy
            .signal_sources()
            .into_iter()
            .map(str::to_string)
            .collect();
        for tier in policy.tiers.values() {
            out.tenant
                .insert(tier.provision.project.as_str().to_string());
            out.tenant
                .insert(tier.deprovision.project.as_str().to_string());
        }
        out
    }

    /// The template parameters that list them, as `sam deploy --parameter-overrides` takes them.
    pub fn template_parameters(&self) -> Vec<(&'static str, String)> {
        let join = |set: &BTreeSet<String>| set.iter().cloned().collect::<Vec<_>>().join(",");
        vec![
            ("GateProjectNames", join(&self.gate)),
            ("DeployProjectNames", join(&self.deploy)),
            ("RollbackProjectNames", join(&self.rollback)),
            ("TenantProjectNames", join(&self.tenant)),
            ("TrackedRepositories", join(&self.repositories)),
            ("SignalSources", join(&self.signal_sources)),
        ]
    }
}

impl PolicyProjects {
    /// Every list as JSON, for tools that build infrastructure from the policy (the CDK
    /// construct reads it at synth): the template parameters by name, then `BuildProjects`,
    /// `SastProjects` and `Branches`.
    pub fn to_json(&self) -> serde_json::Value {
        let list = |set: &BTreeSet<String>| serde_json::json!(set.iter().collect::<Vec<_>>());
        let mut out = serde_json::Map::new();
        for (name, set) in [
            ("GateProjectNames", &self.gate),
            ("DeployProjectNames", &self.deploy),
            ("RollbackProjectNames", &self.rollback),
            ("TenantProjectNames", &self.tenant),
            ("TrackedRepositories", &self.repositories),
            ("SignalSources", &self.signal_sources),
            ("BuildProjects", &self.build),
            ("SastProjects", &self.sast),
            ("Branches", &self.branches),
        ] {
            out.insert(name.into(), list(set));
        }
        serde_json::Value::Object(out)
    }
}

/// The environment variable the template gives each function that starts builds: the projects
/// its role may start (the parameter its StartBuild grants come from).
pub const STARTABLE_VARIABLE: &str = "EDDO_STARTABLE_PROJECTS";

/// Each project of `wanted` that `startable` (the value of [`STARTABLE_VARIABLE`]) does not list.
pub fn not_startable<'a>(wanted: &'a BTreeSet<String>, startable: &str) -> Vec<&'a str> {
    let granted: BTreeSet<&str> = startable.split(',').map(str::trim).collect();
    wanted
        .iter()
        .map(String::as_str)
        .filter(|p| !granted.contains(p))
        .collect()
}

/// Logs, once (at init), each project the policy can ask this function to start that its role
/// may not start. `parameter` names the template parameter that must list it. Nothing is logged
/// where the template gives no [`STARTABLE_VARIABLE`].
pub fn report_not_startable(
    wanted: &BTreeSet<String>,
    startable: Option<&str>,
    parameter: &str,
) -> Vec<String> {
    report_unlisted(
        wanted,
        startable,
        parameter,
        "the policy names a project this function's role may not start: add it to the template parameter, or StartBuild is refused (AccessDenied)",
    )
}

/// The environment variable the template gives the gate: the sources its rule routes to it and
/// the bus lets the listed roles put (`SignalSources`).
pub const SIGNAL_SOURCES_VARIABLE: &str = "EDDO_SIGNAL_SOURCES";

/// Logs, once (at init), each signal source the gate's policy names that the template does not
/// route to it (`listed`, the value of [`SIGNAL_SOURCES_VARIABLE`]): its signals would never
/// arrive. Nothing is logged where the template gives no such variable.
pub fn report_unrouted_sources(policy: &Policy, listed: Option<&str>) -> Vec<String> {
    let wanted: BTreeSet<String> = policy
        .signal_sources()
        .into_iter()
        .map(str::to_string)
        .collect();
    report_unlisted(
        &wanted,
        listed,
        "SignalSources",
        "the policy names a signal source the template does not route to the gate: add it to the template parameter (and its sender's role to SignalSenderRoleArns), or its signals never arrive",
    )
}

/// One mechanism for "the policy names what the template parameter does not list": each missing
/// name logged once at ERROR with the parameter and what follows; the missing names returned.
fn report_unlisted(
    wanted: &BTreeSet<String>,
    listed: Option<&str>,
    parameter: &str,
    consequence: &str,
) -> Vec<String> {
    let Some(listed) = listed else {
        return Vec::new();
    };
    let missing: Vec<String> = not_startable(wanted, listed)
        .into_iter()
        .map(str::to_string)
        .collect();
    for name in &missing {
        tracing::error!(name = name.as_str(), parameter, "{consequence}");
    }
    missing
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example() -> Policy {
        let text = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../infra/policy/example.yaml"),
        )
        .unwrap();
        Policy::parse(&text).unwrap()
    }

    #[test]
    fn the_example_policy_names_its_projects_per_parameter() {
        let p = PolicyProjects::of(&example());
        assert_eq!(
            p.template_parameters(),
            [
                (
                    "GateProjectNames",
                    "eddo-build,eddo-deploy,eddo-sast".to_string()
                ),
                ("DeployProjectNames", "eddo-deploy".to_string()),
                ("RollbackProjectNames", "eddo-rollback".to_string()),
                (
                    "TenantProjectNames",
                    "eddo-tenant-deprovision,eddo-tenant-provision,eddo-tenant-provision-premium"
                        .to_string()
                ),
                ("TrackedRepositories", "Codertocat/Hello-World".to_string()),
                (
                    "SignalSources",
                    "com.example.chatops,com.example.semgrep,com.example.trivy".to_string()
                ),
            ]
        );
    }

    #[test]
    fn a_project_the_role_may_not_start_is_reported() {
        let p = PolicyProjects::of(&example());
        assert!(
            not_startable(
                &p.tenant,
                "eddo-tenant-provision,eddo-tenant-deprovision,eddo-tenant-provision-premium"
            )
            .is_empty()
        );
        assert_eq!(
            not_startable(&p.tenant, "eddo-tenant-provision"),
            ["eddo-tenant-deprovision", "eddo-tenant-provision-premium"]
        );
        assert_eq!(not_startable(&p.deploy, ""), ["eddo-deploy"]);
        assert_eq!(
            report_not_startable(&p.deploy, Some(""), "DeployProjectNames"),
            ["eddo-deploy"]
        );
        assert!(report_not_startable(&p.deploy, None, "DeployProjectNames").is_empty());
    }

    #[test]
    fn a_signal_source_the_template_does_not_route_is_reported() {
        let p = example();
        assert_eq!(
            report_unrouted_sources(&p, Some("com.example.semgrep")),
            ["com.example.chatops", "com.example.trivy"]
        );
        assert!(
            report_unrouted_sources(
                &p,
                Some("com.example.chatops,com.example.semgrep,com.example.trivy")
            )
            .is_empty()
        );
        assert!(report_unrouted_sources(&p, None).is_empty());
    }
}

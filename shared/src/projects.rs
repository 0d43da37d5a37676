//! What a policy asks of the account it runs in, by what eddo does with each thing it names: one
//! source for the template parameters (`eddo policy params`), the tags its grants are written
//! against, and what the CDK construct reads at synth.
//!
//! Nothing the template grants grows with the policy: a function may start or read a CodeBuild
//! project by the project's `eddo:role` tag ([`ROLE_TAG`]), a tool may put a signal source by its
//! role's `eddo:signal-source` tag. The tag is the second fence: each function still refuses, in
//! code, a project or source its policy does not give the service at hand. The one list left in
//! the template parameters, the push rule's repositories, gives way to their owners before it
//! outgrows the rule's pattern.

use std::collections::{BTreeMap, BTreeSet};

use crate::policy::Policy;

/// The tag a CodeBuild project carries for eddo's grants to reach it: its [`ProjectRole`].
pub const ROLE_TAG: &str = "eddo:role";

/// The tag a sender's IAM role carries: the one signal source it may put on the bus.
pub const SIGNAL_SOURCE_TAG: &str = "eddo:signal-source";

/// How long the `TrackedRepositories` list may be (its characters, joined with commas) before
/// `eddo policy params` gives their owners instead: the push rule's whole pattern must fit in
/// EventBridge's 2,048 characters, branches and the rest of the pattern included.
pub const TRACKED_REPOSITORIES_MAX: usize = 1024;

/// What eddo does with a project, as its `eddo:role` tag says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ProjectRole {
    /// A service's build: the gate reads its builds (BatchGetBuilds).
    Build,
    /// A service's static analysis: the gate reads its builds.
    Sast,
    /// A service's deploy: the gate starts it.
    Deploy,
    /// A service's rollback: alarm-rollback starts it.
    Rollback,
    /// A tier's provisioning or deprovisioning: tenant-onboarding starts it.
    Tenant,
}

impl ProjectRole {
    pub fn as_str(self) -> &'static str {
        match self {
            ProjectRole::Build => "build",
            ProjectRole::Sast => "sast",
            ProjectRole::Deploy => "deploy",
            ProjectRole::Rollback => "rollback",
            ProjectRole::Tenant => "tenant",
        }
    }
}

impl std::fmt::Display for ProjectRole {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a policy names, by what eddo does with it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PolicyProjects {
    /// Each project the policy names, with the roles it plays (one, in a policy that checks).
    pub roles: BTreeMap<String, BTreeSet<ProjectRole>>,
    /// Every service's repositories: their pushes start the build and SAST projects.
    pub repositories: BTreeSet<String>,
    /// The event sources the policy lets other tools report signals from: each sender's role is
    /// tagged `eddo:signal-source` with its one source.
    pub signal_sources: BTreeSet<String>,
    /// Every service's branches: the pushes the policy deploys from.
    pub branches: BTreeSet<String>,
}

impl PolicyProjects {
    pub fn of(policy: &Policy) -> PolicyProjects {
        let mut out = PolicyProjects::default();
        let mut add = |project: &str, role: ProjectRole| {
            out.roles
                .entry(project.to_string())
                .or_default()
                .insert(role);
        };
        for s in policy.services.values() {
            let p = &s.projects;
            if let Some(b) = &p.build {
                add(b.as_str(), ProjectRole::Build);
            }
            if let Some(b) = &p.sast {
                add(b.as_str(), ProjectRole::Sast);
            }
            add(p.deploy.as_str(), ProjectRole::Deploy);
            if let Some(r) = &p.rollback {
                add(r.as_str(), ProjectRole::Rollback);
            }
        }
        for tier in policy.tiers.values() {
            add(tier.provision.project.as_str(), ProjectRole::Tenant);
            add(tier.deprovision.project.as_str(), ProjectRole::Tenant);
        }
        for s in policy.services.values() {
            out.branches.extend(s.branches.iter().cloned());
            out.repositories
                .extend(s.repositories.iter().map(|r| r.as_str().to_string()));
        }
        out.signal_sources = policy
            .signal_sources()
            .into_iter()
            .map(str::to_string)
            .collect();
        out
    }

    /// The projects playing `role`.
    pub fn with_role(&self, role: ProjectRole) -> BTreeSet<&str> {
        self.roles
            .iter()
            .filter(|(_, roles)| roles.contains(&role))
            .map(|(p, _)| p.as_str())
            .collect()
    }

    /// The projects a policy names in more than one role: one `eddo:role` tag cannot say both.
    pub fn ambiguous(&self) -> Vec<(&str, Vec<ProjectRole>)> {
        self.roles
            .iter()
            .filter(|(_, roles)| roles.len() > 1)
            .map(|(p, roles)| (p.as_str(), roles.iter().copied().collect()))
            .collect()
    }

    /// The owners of the repositories (everything before the last `/`: a GitHub owner, a GitLab
    /// group path).
    pub fn owners(&self) -> BTreeSet<String> {
        self.repositories
            .iter()
            .filter_map(|r| r.rsplit_once('/').map(|(owner, _)| owner.to_string()))
            .collect()
    }

    /// Whether the repositories go to the push rule by name, or (past
    /// [`TRACKED_REPOSITORIES_MAX`]) by owner.
    pub fn tracks_by_name(&self) -> bool {
        join(&self.repositories).len() <= TRACKED_REPOSITORIES_MAX
    }

    /// The template parameters the policy implies, as `sam deploy --parameter-overrides` takes
    /// them: the repositories whose pushes start builds, by name while they fit, else by owner.
    /// Neither grows past a quota: the owners of a platform are few.
    pub fn template_parameters(&self) -> Vec<(&'static str, String)> {
        if self.tracks_by_name() {
            vec![
                ("TrackedRepositories", join(&self.repositories)),
                ("TrackedOwners", String::new()),
            ]
        } else {
            vec![
                ("TrackedRepositories", String::new()),
                ("TrackedOwners", join(&self.owners())),
            ]
        }
    }

    /// What the account must carry for the grants to reach what the policy names, as commands:
    /// each project's `eddo:role` tag. (The senders' and image repositories' tags are the
    /// caller's to say: they name roles and ARNs the policy does not hold.)
    pub fn project_tags(&self) -> Vec<(&str, ProjectRole)> {
        self.roles
            .iter()
            .filter_map(|(p, roles)| roles.iter().next().map(|r| (p.as_str(), *r)))
            .collect()
    }

    /// Every list as JSON, for tools that build infrastructure from the policy (the CDK
    /// construct reads it at synth): the template parameters by name, then `BuildProjects`,
    /// `SastProjects`, `Branches`, `SignalSources`, and `ProjectRoles` (project to role).
    pub fn to_json(&self) -> serde_json::Value {
        let list = |set: &BTreeSet<String>| serde_json::json!(set.iter().collect::<Vec<_>>());
        let mut out = serde_json::Map::new();
        for (name, value) in self.template_parameters() {
            let items: Vec<&str> = value.split(',').filter(|s| !s.is_empty()).collect();
            out.insert(name.into(), serde_json::json!(items));
        }
        let names = |role| serde_json::json!(self.with_role(role));
        out.insert("BuildProjects".into(), names(ProjectRole::Build));
        out.insert("SastProjects".into(), names(ProjectRole::Sast));
        out.insert("Branches".into(), list(&self.branches));
        out.insert("SignalSources".into(), list(&self.signal_sources));
        let roles: serde_json::Map<String, serde_json::Value> = self
            .project_tags()
            .into_iter()
            .map(|(p, r)| (p.to_string(), serde_json::json!(r.as_str())))
            .collect();
        out.insert("ProjectRoles".into(), serde_json::Value::Object(roles));
        serde_json::Value::Object(out)
    }
}

fn join(set: &BTreeSet<String>) -> String {
    set.iter().cloned().collect::<Vec<_>>().join(",")
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
    fn the_example_policy_tags_each_project_with_its_role() {
        let p = PolicyProjects::of(&example());
        let tags: Vec<(&str, &str)> = p
            .project_tags()
            .into_iter()
            .map(|(p, r)| (p, r.as_str()))
            .collect();
        assert_eq!(
            tags,
            [
                ("eddo-build", "build"),
                ("eddo-deploy", "deploy"),
                ("eddo-rollback", "rollback"),
                ("eddo-sast", "sast"),
                ("eddo-tenant-deprovision", "tenant"),
                ("eddo-tenant-provision", "tenant"),
                ("eddo-tenant-provision-premium", "tenant"),
            ]
        );
        assert!(p.ambiguous().is_empty());
        assert_eq!(
            p.template_parameters(),
            [
                ("TrackedRepositories", "Codertocat/Hello-World".to_string()),
                ("TrackedOwners", String::new()),
            ]
        );
    }

    #[test]
    fn past_the_pattern_s_room_the_repositories_go_by_owner() {
        let mut p = PolicyProjects::default();
        for n in 0..100 {
            p.repositories.insert(format!("acme/service-{n:04}"));
        }
        p.repositories.insert("acme/platform/tools".into());
        p.repositories.insert("globex/billing".into());
        assert!(!p.tracks_by_name());
        assert_eq!(
            p.template_parameters(),
            [
                ("TrackedRepositories", String::new()),
                ("TrackedOwners", "acme,acme/platform,globex".to_string()),
            ]
        );
    }

    #[test]
    fn a_project_in_two_roles_is_ambiguous() {
        let mut p = PolicyProjects::default();
        p.roles
            .entry("shared".into())
            .or_default()
            .extend([ProjectRole::Build, ProjectRole::Deploy]);
        assert_eq!(
            p.ambiguous(),
            [("shared", vec![ProjectRole::Build, ProjectRole::Deploy])]
        );
    }
}

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

use crate::policy::{Policy, ProjectRole};

/// The tag a CodeBuild project carries for eddo's grants to reach it: its [`ProjectRole`].
pub const ROLE_TAG: &str = "eddo:role";

/// The tag a sender's IAM role carries: the one signal source it may put on the bus.
pub const SIGNAL_SOURCE_TAG: &str = "eddo:signal-source";

/// How long the `TrackedRepositories` list may be (its characters, joined with commas) before
/// `eddo policy params` gives their owners instead: the push rule's whole pattern must fit in
/// EventBridge's 2,048 characters, branches and the rest of the pattern included.
pub const TRACKED_REPOSITORIES_MAX: usize = 1024;

/// The `eddo:role` of a tier's provisioning and deprovisioning projects, which tenant-onboarding
/// starts (a service's projects carry their [`ProjectRole`]'s).
pub const TENANT_ROLE: &str = "tenant";

/// What a policy names, by what eddo does with it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PolicyProjects {
    /// Each project the policy names, and the role its `eddo:role` tag must say (one per
    /// project: the policy check refuses a project named twice).
    pub roles: BTreeMap<String, &'static str>,
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
        for s in policy.services.values() {
            for (project, role) in s.projects.each() {
                out.roles
                    .insert(project.as_str().to_string(), role.as_str());
            }
            out.branches.extend(s.branches.iter().cloned());
            out.repositories
                .extend(s.repositories.iter().map(|r| r.as_str().to_string()));
        }
        for tier in policy.tiers.values() {
            for job in [&tier.provision, &tier.deprovision] {
                out.roles
                    .insert(job.project.as_str().to_string(), TENANT_ROLE);
            }
        }
        out.signal_sources = policy
            .signal_sources()
            .into_iter()
            .map(str::to_string)
            .collect();
        out
    }

    /// The projects whose `eddo:role` is `role`.
    pub fn with_role(&self, role: &str) -> Vec<&str> {
        self.roles
            .iter()
            .filter(|(_, r)| **r == role)
            .map(|(p, _)| p.as_str())
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
        let names = |role: ProjectRole| serde_json::json!(self.with_role(role.as_str()));
        out.insert("BuildProjects".into(), names(ProjectRole::Build));
        out.insert("SastProjects".into(), names(ProjectRole::Sast));
        out.insert("Branches".into(), list(&self.branches));
        out.insert("SignalSources".into(), list(&self.signal_sources));
        out.insert("ProjectRoles".into(), serde_json::json!(self.roles));
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
        let tags: Vec<(&str, &str)> = p.roles.iter().map(|(p, r)| (p.as_str(), *r)).collect();
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
}

//! The policy indexed once per version: what each event asks of it (which service a project,
//! repository, image repository or alarm belongs to) answered from a map, not by reading every
//! service. A policy of a thousand services is read and indexed once per version and TTL; each
//! decision then touches only the service at hand.

use std::collections::{BTreeMap, HashMap, HashSet};

use super::{ProjectRole, Service, ServiceName, Tier, glob};

/// Lookups over one version's services and tiers. Built by [`Index::of`]; the `Policy` it
/// belongs to builds it when read and keeps it beside its services.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Index {
    /// Each project a service names, with its role there.
    projects: HashMap<String, (ServiceName, ProjectRole)>,
    /// Each repository (lower case: providers compare names so) and the services deployed
    /// from it, in name order (a monorepo may hold several).
    repositories: HashMap<String, Vec<ServiceName>>,
    /// Each ECR repository and the service whose images go to it.
    images: HashMap<String, ServiceName>,
    /// Alarms named exactly (by name, or by ARN), and the services they roll back.
    alarms: HashMap<String, Vec<ServiceName>>,
    /// Alarm name patterns with a `*`, by their literal start (before the first `*`): only those
    /// whose start the alarm's name begins with are tried.
    name_patterns: HashMap<String, Vec<(String, ServiceName)>>,
    /// ARN patterns with a `*`, by the literal start of the alarm name in them (after
    /// `:alarm:`): only those whose start the ARN's alarm name begins with are tried.
    arn_patterns: HashMap<String, Vec<(String, ServiceName)>>,
    /// Each alert sender, and the services whose `rollback.alerts` name it (in name order).
    alert_senders: HashMap<String, Vec<ServiceName>>,
    /// Every tier's provisioning and deprovisioning project.
    tenant_projects: HashSet<String>,
}

impl Index {
    pub fn of(
        services: &BTreeMap<ServiceName, Service>,
        tiers: &BTreeMap<super::TierName, Tier>,
    ) -> Index {
        let mut index = Index::default();
        for s in services.values() {
            for (project, role) in s.projects.each() {
                // A checked policy gives each project one service and one role; the first (in
                // name order) wins, as the scan it replaces found it.
                index
                    .projects
                    .entry(project.as_str().to_string())
                    .or_insert_with(|| (s.name.clone(), role));
            }
            for r in &s.repositories {
                let names = index
                    .repositories
                    .entry(r.as_str().to_ascii_lowercase())
                    .or_default();
                if !names.contains(&s.name) {
                    names.push(s.name.clone());
                }
            }
            if let Some(image) = &s.image_repository {
                index
                    .images
                    .entry(image.clone())
                    .or_insert_with(|| s.name.clone());
            }
            for a in s.rollback.iter().flat_map(|r| &r.alerts) {
                let names = index
                    .alert_senders
                    .entry(a.sender.as_str().to_string())
                    .or_default();
                if !names.contains(&s.name) {
                    names.push(s.name.clone());
                }
            }
            for alarm in s.rollback.iter().flat_map(|r| &r.alarms) {
                if alarm.contains('*') {
                    let (patterns, start) = match alarm.strip_prefix("arn:") {
                        Some(_) => (&mut index.arn_patterns, alarm_name(alarm).unwrap_or("")),
                        None => (&mut index.name_patterns, alarm.as_str()),
                    };
                    let start = start.split('*').next().unwrap_or_default();
                    patterns
                        .entry(start.to_string())
                        .or_default()
                        .push((alarm.clone(), s.name.clone()));
                } else {
                    let names = index.alarms.entry(alarm.clone()).or_default();
                    if !names.contains(&s.name) {
                        names.push(s.name.clone());
                    }
                }
            }
        }
        for t in tiers.values() {
            index
                .tenant_projects
                .insert(t.provision.project.as_str().to_string());
            index
                .tenant_projects
                .insert(t.deprovision.project.as_str().to_string());
        }
        index
    }

    pub fn project(&self, project: &str) -> Option<&(ServiceName, ProjectRole)> {
        self.projects.get(project)
    }

    pub fn repository(&self, repo: &str) -> &[ServiceName] {
        self.repositories
            .get(&repo.to_ascii_lowercase())
            .map_or(&[], Vec::as_slice)
    }

    pub fn image(&self, repository: &str) -> Option<&ServiceName> {
        self.images.get(repository)
    }

    /// The services whose `rollback.alerts` name `sender`, in name order.
    pub fn alert_sender(&self, sender: &str) -> &[ServiceName] {
        self.alert_senders.get(sender).map_or(&[], Vec::as_slice)
    }

    pub fn tenant_project(&self, project: &str) -> bool {
        self.tenant_projects.contains(project)
    }

    /// The services an alarm rolls back, by its name or its ARN (an `arn:` pattern matches the
    /// ARN, any other the name), each once, in name order.
    pub fn alarm(&self, name: &str, arn: Option<&str>) -> Vec<&ServiceName> {
        let mut out: Vec<&ServiceName> = Vec::new();
        let exact = [Some(name), arn]
            .into_iter()
            .flatten()
            .flat_map(|key| self.alarms.get(key).into_iter().flatten());
        let by_name = tried(&self.name_patterns, Some(name))
            .into_iter()
            .filter(|(p, _)| glob(p, name));
        let by_arn = arn.into_iter().flat_map(|arn| {
            tried(&self.arn_patterns, alarm_name(arn))
                .into_iter()
                .filter(move |(p, _)| glob(p, arn))
        });
        let patterns = by_name.chain(by_arn).map(|(_, s)| s);
        for s in exact.chain(patterns) {
            if !out.contains(&s) {
                out.push(s);
            }
        }
        out.sort();
        out
    }
}

/// The alarm name in an alarm ARN (or ARN pattern): what follows its one `:alarm:`. `None` when
/// it has none or several (a name holding `:alarm:`), where a `*` could reach across it.
fn alarm_name(arn: &str) -> Option<&str> {
    let (_, name) = arn.split_once(":alarm:")?;
    (!name.contains(":alarm:")).then_some(name)
}

/// The patterns of `patterns` to try for an alarm name: those keyed by a start of `name`; every
/// one when the name is unknown (no name, or an ARN whose name cannot be told).
fn tried<'a>(
    patterns: &'a HashMap<String, Vec<(String, ServiceName)>>,
    name: Option<&str>,
) -> Vec<&'a (String, ServiceName)> {
    match name {
        Some(name) => (0..=name.len())
            .filter(|&i| name.is_char_boundary(i))
            .filter_map(|i| patterns.get(&name[..i]))
            .flatten()
            .collect(),
        None => patterns.values().flatten().collect(),
    }
}

#[cfg(test)]
mod tests {
    use crate::policy::Policy;

    fn services(n: usize) -> Policy {
        let example = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../infra/policy/example.yaml"),
        )
        .unwrap();
        Policy::parse(&crate::policy::with_copies_of(&example, "hello-world", n).unwrap()).unwrap()
    }

    /// Each lookup answers what reading every service answers, at 1,000 services.
    #[test]
    fn the_index_answers_as_a_scan_of_every_service() {
        let p = services(1000);
        for i in [0, 1, 499, 999] {
            let name = format!("svc-{i:04}");
            let (s, role) = p.project(&format!("{name}-deploy")).unwrap();
            assert_eq!(
                (s.name.as_str(), role),
                (name.as_str(), super::ProjectRole::Deploy)
            );
            // Repositories compare without case, as providers do.
            let by_repo: Vec<&str> = p
                .repository(&format!("EDDO-Example/{name}"))
                .map(|s| s.name.as_str())
                .collect();
            assert_eq!(by_repo, [name.as_str()]);
            assert_eq!(
                p.image_repository(&name).map(|s| s.name.as_str()),
                Some(name.as_str())
            );
            // By name, and by an ARN pattern.
            let by_name: Vec<&str> = p
                .alarm(&format!("{name}-5xx"), None)
                .map(|s| s.name.as_str())
                .collect();
            assert_eq!(by_name, [name.as_str()]);
            let arn = format!("arn:aws:cloudwatch:us-east-1:123456789012:alarm:{name}-latency");
            let by_arn: Vec<&str> = p
                .alarm(&format!("{name}-latency"), Some(&arn))
                .map(|s| s.name.as_str())
                .collect();
            assert_eq!(by_arn, [name.as_str()]);
        }
        // Alarms, tricky ones included, answered as trying every service's every pattern does.
        let scan = |name: &str, arn: Option<&str>| -> Vec<String> {
            p.services
                .values()
                .filter(|s| {
                    s.rollback.as_ref().is_some_and(|r| {
                        r.alarms.iter().any(|a| match a.strip_prefix("arn:") {
                            Some(_) => arn.is_some_and(|arn| crate::policy::glob(a, arn)),
                            None => crate::policy::glob(a, name),
                        })
                    })
                })
                .map(|s| s.name.to_string())
                .collect()
        };
        for (name, arn) in [
            ("svc-0042-5xx", None),
            (
                "svc-0042-latency",
                Some("arn:aws:cloudwatch:eu-west-1:1:alarm:svc-0042-latency"),
            ),
            (
                "other",
                Some("arn:aws:cloudwatch:eu-west-1:1:alarm:svc-0042-x"),
            ),
            (
                "svc-0042-x:alarm:svc-0007-y",
                Some("arn:aws:cloudwatch:r:1:alarm:svc-0042-x:alarm:svc-0007-y"),
            ),
            ("", Some("arn:aws:cloudwatch:r:1:alarm:")),
            ("svc-00", None),
        ] {
            let indexed: Vec<String> = p.alarm(name, arn).map(|s| s.name.to_string()).collect();
            assert_eq!(indexed, scan(name, arn), "{name} {arn:?}");
        }
        assert!(p.project("nobody's").is_none());
        assert_eq!(p.repository("acme/nobody").count(), 0);
        assert!(p.tenant_project("eddo-tenant-provision"));
        assert!(!p.tenant_project("svc-0000-deploy"));
    }
}

//! `eddo policy diff OLD NEW`: what a policy change changes, in words a reviewer reads
//! ("hello-world: CRITICAL threshold 0 -> 1", "hello-world: exception CVE-2024-1234 removed").

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Display;
use std::process::ExitCode;

use eddo::policy::{Gate, Policy, Rollback, Service, Tier};

pub fn run(old: &str, new: &str) -> ExitCode {
    let (before, after) = match (crate::policy(old), crate::policy(new)) {
        (Ok(a), Ok(b)) => (a, b),
        // A file with mistakes has nothing to compare: its mistakes are said.
        _ => return ExitCode::from(2),
    };
    let changes = changes(&before, &after);
    if changes.is_empty() {
        println!("no change");
        return ExitCode::SUCCESS;
    }
    for c in &changes {
        println!("{c}");
    }
    ExitCode::FAILURE
}

/// Every change from `a` to `b`, one line each.
pub fn changes(a: &Policy, b: &Policy) -> Vec<String> {
    let mut out = Vec::new();
    keyed(&mut out, "service", &a.services, &b.services, service);
    keyed(&mut out, "tenant tier", &a.tiers, &b.tiers, |out, x, y| {
        tier(out, x, y)
    });
    out
}

/// Entries added and removed, and each kept one compared by `each`.
fn keyed<K: Ord + Display, V>(
    out: &mut Vec<String>,
    what: &str,
    a: &BTreeMap<K, V>,
    b: &BTreeMap<K, V>,
    each: impl Fn(&mut Vec<String>, &V, &V),
) {
    for (k, v) in a {
        match b.get(k) {
            None => out.push(format!("{what} {k} removed")),
            Some(w) => each(out, v, w),
        }
    }
    for k in b.keys().filter(|k| !a.contains_key(k)) {
        out.push(format!("{what} {k} added"));
    }
}

/// `name: field a -> b` when they differ.
fn field<T: PartialEq + Display>(out: &mut Vec<String>, name: &str, field: &str, a: T, b: T) {
    if a != b {
        out.push(format!("{name}: {field} {a} -> {b}"));
    }
}

/// `name: field x added` / `removed`, for each member of one set and not the other.
fn members<T: Ord + Display>(
    out: &mut Vec<String>,
    name: &str,
    field: &str,
    a: impl IntoIterator<Item = T>,
    b: impl IntoIterator<Item = T>,
) {
    let (a, b): (BTreeSet<T>, BTreeSet<T>) = (a.into_iter().collect(), b.into_iter().collect());
    for x in a.difference(&b) {
        out.push(format!("{name}: {field} {x} removed"));
    }
    for x in b.difference(&a) {
        out.push(format!("{name}: {field} {x} added"));
    }
}

fn or_none<T: Display>(v: Option<T>) -> String {
    v.map_or_else(|| "none".to_string(), |v| v.to_string())
}

fn service(out: &mut Vec<String>, a: &Service, b: &Service) {
    let n = a.name.as_str();
    members(out, n, "repository", &a.repositories, &b.repositories);
    members(out, n, "branch", &a.branches, &b.branches);
    let (p, q) = (&a.projects, &b.projects);
    field(
        out,
        n,
        "build project",
        or_none(p.build.as_ref()),
        or_none(q.build.as_ref()),
    );
    field(
        out,
        n,
        "SAST project",
        or_none(p.sast.as_ref()),
        or_none(q.sast.as_ref()),
    );
    field(
        out,
        n,
        "deploy project",
        or_none(p.deploy.as_ref()),
        or_none(q.deploy.as_ref()),
    );
    field(
        out,
        n,
        "GitHub environment",
        or_none(a.deploys_by.environment()),
        or_none(b.deploys_by.environment()),
    );
    field(
        out,
        n,
        "rollback project",
        or_none(p.rollback.as_ref()),
        or_none(q.rollback.as_ref()),
    );
    field(
        out,
        n,
        "image repository",
        or_none(a.image_repository.as_ref()),
        or_none(b.image_repository.as_ref()),
    );
    gate(out, n, &a.gate, &b.gate);
    match (&a.rollback, &b.rollback) {
        (Some(x), Some(y)) => rollback(out, n, x, y),
        (None, Some(_)) => out.push(format!("{n}: automatic rollback added")),
        (Some(_), None) => out.push(format!("{n}: automatic rollback removed")),
        (None, None) => {}
    }
}

fn gate(out: &mut Vec<String>, n: &str, a: &Gate, b: &Gate) {
    field(out, n, "gate mode", mode(a), mode(b));
    members(out, n, "required signal", &a.require, &b.require);
    members(out, n, "rerun-counting signal", &a.reruns, &b.reruns);
    let kinds: BTreeSet<_> = a.senders.keys().chain(b.senders.keys()).collect();
    for kind in kinds {
        members(
            out,
            n,
            &format!("{kind} sender"),
            a.senders(kind).iter().map(ToString::to_string),
            b.senders(kind).iter().map(ToString::to_string),
        );
    }
    let severities: BTreeSet<_> = a.max_findings.keys().chain(b.max_findings.keys()).collect();
    for sev in severities {
        let limit = |g: &Gate| {
            g.max_findings
                .get(sev)
                .map_or_else(|| "unlimited".to_string(), u64::to_string)
        };
        field(
            out,
            n,
            &format!("{} threshold", sev.as_str()),
            limit(a),
            limit(b),
        );
    }
    field(
        out,
        n,
        "deadline (minutes)",
        a.deadline_minutes,
        b.deadline_minutes,
    );
    for e in &a.exceptions {
        match b.exceptions.iter().find(|f| f.id == e.id) {
            None => out.push(format!("{n}: exception {} removed", e.id)),
            Some(f) => {
                field(
                    out,
                    n,
                    &format!("exception {} expiry", e.id),
                    e.expires,
                    f.expires,
                );
                if e.reason != f.reason {
                    out.push(format!(
                        "{n}: exception {} reason {:?} -> {:?}",
                        e.id, e.reason, f.reason
                    ));
                }
            }
        }
    }
    for f in b
        .exceptions
        .iter()
        .filter(|f| !a.exceptions.iter().any(|e| e.id == f.id))
    {
        out.push(format!(
            "{n}: exception {} added, until {}: {}",
            f.id, f.expires, f.reason
        ));
    }
}

fn mode(g: &Gate) -> &'static str {
    match g.mode {
        eddo::policy::Mode::Enforce => "enforce",
        eddo::policy::Mode::Observe => "observe",
    }
}

fn rollback(out: &mut Vec<String>, n: &str, a: &Rollback, b: &Rollback) {
    let mode = |r: &Rollback| match r.mode {
        eddo::policy::RollbackMode::Enforce => "enforce",
        eddo::policy::RollbackMode::DryRun => "dry-run",
    };
    field(out, n, "rollback mode", mode(a), mode(b));
    members(out, n, "rollback alarm", &a.alarms, &b.alarms);
    members(out, n, "rollback alert match", &a.alerts, &b.alerts);
    field(
        out,
        n,
        "bake window (minutes)",
        a.bake_minutes,
        b.bake_minutes,
    );
    field(
        out,
        n,
        "rollback cooldown (minutes)",
        a.cooldown_minutes,
        b.cooldown_minutes,
    );
    field(
        out,
        n,
        "rollbacks allowed per window",
        a.max_rollbacks,
        b.max_rollbacks,
    );
    field(
        out,
        n,
        "rollback window (hours)",
        a.window_hours,
        b.window_hours,
    );
    field(
        out,
        n,
        "rollback on INSUFFICIENT_DATA",
        a.on_insufficient_data,
        b.on_insufficient_data,
    );
    field(
        out,
        n,
        "rollback hold (minutes)",
        a.hold_minutes,
        b.hold_minutes,
    );
}

fn tier(out: &mut Vec<String>, a: &Tier, b: &Tier) {
    let n = format!("tier {}", a.name);
    let n = n.as_str();
    for (job, x, y) in [
        ("provisioning", &a.provision, &b.provision),
        ("deprovisioning", &a.deprovision, &b.deprovision),
    ] {
        field(out, n, &format!("{job} project"), &x.project, &y.project);
        field(
            out,
            n,
            &format!("{job} timeout (minutes)"),
            x.timeout_minutes,
            y.timeout_minutes,
        );
    }
    field(out, n, "retries", a.retries, b.retries);
    let input = |i: &eddo::policy::TenantInput| {
        format!(
            "{} ({}, {:?}, {}, at most {} characters)",
            i.name,
            i.env,
            i.kind,
            if i.required { "required" } else { "optional" },
            i.max_length
        )
    };
    members(
        out,
        n,
        "input",
        a.inputs.iter().map(input),
        b.inputs.iter().map(input),
    );
    members(out, n, "output", &a.outputs, &b.outputs);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example() -> String {
        std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../infra/policy/example.yaml"
        ))
        .unwrap()
    }

    #[test]
    fn a_change_reads_in_words() {
        let a = Policy::parse(&example()).unwrap();
        let b = Policy::parse(
            &example()
                .replace("max_findings: {CRITICAL: 0, HIGH: 2}", "max_findings: {CRITICAL: 1}")
                .replace("        - id: CVE-2024-1234\n          reason: The vulnerable TIFF decoder is never called; fixed upstream in the next release.\n          expires: \"2027-03-31\"\n", "")
                .replace("mode: enforce\n    # When", "mode: observe\n    # When")
                .replace("      retries: 2\n", "      retries: 3\n"),
        )
        .unwrap();
        assert_eq!(
            changes(&a, &b),
            [
                "hello-world: gate mode enforce -> observe",
                "hello-world: CRITICAL threshold 0 -> 1",
                "hello-world: HIGH threshold 2 -> unlimited",
                "hello-world: exception CVE-2024-1234 removed",
                "tier premium: retries 2 -> 3",
            ]
        );
        assert!(changes(&a, &a).is_empty());
    }
}

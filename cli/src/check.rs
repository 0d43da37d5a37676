//! `eddo policy check FILE`: the functions' own parser over a policy file, before it is live.
//! A mistake is printed as compilers print them (`FILE:LINE:COLUMN: path: message`), so editors
//! and CI jump to it; under GitHub Actions each is also an annotation on the file. A good policy
//! is described: its services, projects, alarms and tiers, and the template parameters it implies.

use std::fmt::Write as _;
use std::process::ExitCode;

use eddo::policy::{Mistake, Policy, Service, Tier};
use eddo::projects::PolicyProjects;

/// A mistake where it is, as compilers print them.
pub fn at(file: &str, m: &Mistake) -> String {
    match (m.line, m.column) {
        (Some(line), Some(column)) => format!("{file}:{line}:{column}: {}", what(m)),
        _ => format!("{file}: {}", what(m)),
    }
}

fn what(m: &Mistake) -> String {
    if m.path.is_empty() {
        m.message.clone()
    } else {
        format!("{}: {}", m.path, m.message)
    }
}

/// A GitHub Actions workflow command annotating the file at the mistake.
fn annotation(file: &str, m: &Mistake) -> String {
    // Workflow commands end at a newline and take % escapes in their message.
    let message = what(m)
        .replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A");
    match (m.line, m.column) {
        (Some(line), Some(col)) => format!("::error file={file},line={line},col={col}::{message}"),
        _ => format!("::error file={file}::{message}"),
    }
}

pub fn run(file: &str) -> ExitCode {
    let text = match crate::read(file) {
        Ok(t) => t,
        Err(code) => return code,
    };
    match Policy::check(&text) {
        Err(mistakes) => {
            let github = std::env::var("GITHUB_ACTIONS").is_ok_and(|v| v == "true");
            for m in &mistakes {
                eprintln!("{}", at(file, m));
                if github {
                    println!("{}", annotation(file, m));
                }
            }
            eprintln!(
                "{file}: {} mistake(s): the functions would refuse this version (Policy Rejected) and keep the last good one",
                mistakes.len()
            );
            ExitCode::FAILURE
        }
        Ok(policy) => {
            print!("{}", describe(file, &policy));
            ExitCode::SUCCESS
        }
    }
}

/// What a good policy defines, in lines a person reads.
pub fn describe(file: &str, policy: &Policy) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{file}: no mistakes: {} service(s), {} tenant tier(s)",
        policy.services.len(),
        policy.tiers.len()
    );
    for s in policy.services.values() {
        service(&mut out, s);
    }
    for t in policy.tiers.values() {
        tier(&mut out, t);
    }
    let projects = PolicyProjects::of(policy);
    let _ = writeln!(out, "template parameters:");
    for (k, v) in projects.template_parameters() {
        let _ = writeln!(out, "  {k}={v}");
    }
    // What the template's grants reach a project by.
    let _ = writeln!(out, "project tags:");
    for (project, role) in &projects.roles {
        let _ = writeln!(out, "  {project} {}={role}", eddo::projects::ROLE_TAG);
    }
    out
}

fn join<T: ToString>(items: impl IntoIterator<Item = T>) -> String {
    let v: Vec<String> = items.into_iter().map(|i| i.to_string()).collect();
    if v.is_empty() {
        "none".into()
    } else {
        v.join(", ")
    }
}

fn service(out: &mut String, s: &Service) {
    let p = &s.projects;
    let g = &s.gate;
    let _ = writeln!(out, "service {}", s.name);
    let _ = writeln!(
        out,
        "  from {} on {}",
        join(s.repositories.iter().map(|r| r.as_str())),
        join(&s.branches)
    );
    let _ = writeln!(
        out,
        "  projects: build {}, sast {}, deploy {}, rollback {}",
        p.build.as_ref().map_or("none", |x| x.as_str()),
        p.sast.as_ref().map_or("none", |x| x.as_str()),
        p.deploy.as_ref().map_or("none", |x| x.as_str()),
        p.rollback.as_ref().map_or("none", |x| x.as_str())
    );
    if let Some(environment) = s.deploys_by.environment() {
        let _ = writeln!(
            out,
            "  deploys {}by GitHub environment {environment} of {}",
            if s.deploys_by.codebuild() {
                "by its deploy project and "
            } else {
                ""
            },
            s.checks.github.as_ref().map_or("?", |r| r.as_str())
        );
    }
    if let Some(image) = &s.image_repository {
        let _ = writeln!(out, "  images: ECR repository {image}");
    }
    let _ = writeln!(
        out,
        "  gate ({}): requires {} within {} minutes",
        match g.mode {
            eddo::policy::Mode::Enforce => "enforce",
            eddo::policy::Mode::Observe => "observe",
        },
        join(g.require.iter().map(|k| k.as_str())),
        g.deadline_minutes
    );
    for (kind, senders) in &g.senders {
        let _ = writeln!(out, "    {kind} from {}", join(senders));
    }
    if !g.reruns.is_empty() {
        let _ = writeln!(
            out,
            "    a sender's own rerun replaces its earlier result for {}",
            join(g.reruns.iter().map(|k| k.as_str()))
        );
    }
    let _ = writeln!(
        out,
        "    at most {}",
        join(
            g.max_findings
                .iter()
                .map(|(s, n)| format!("{n} {}", s.as_str()))
        )
    );
    for e in &g.exceptions {
        let _ = writeln!(
            out,
            "    exception {} until {}: {}",
            e.id, e.expires, e.reason
        );
    }
    if let Some(r) = &s.rollback {
        let _ = writeln!(
            out,
            "  rollback ({}): on {}; within {} minutes of a release, {} minutes apart, at most {} in {} hours{}",
            match r.mode {
                eddo::policy::RollbackMode::Enforce => "enforce",
                eddo::policy::RollbackMode::DryRun => "dry-run",
            },
            join(
                r.alarms
                    .iter()
                    .cloned()
                    .chain(r.alerts.iter().map(ToString::to_string))
                    .chain(["alarms tagged eddo:service".to_string()])
            ),
            r.bake_minutes,
            r.cooldown_minutes,
            r.max_rollbacks,
            r.window_hours,
            if r.on_insufficient_data {
                "; INSUFFICIENT_DATA counts"
            } else {
                ""
            }
        );
    }
}

fn tier(out: &mut String, t: &Tier) {
    let _ = writeln!(
        out,
        "tier {}: provision {} ({} min), deprovision {} ({} min), {} retries",
        t.name,
        t.provision.project,
        t.provision.timeout_minutes,
        t.deprovision.project,
        t.deprovision.timeout_minutes,
        t.retries
    );
    let _ = writeln!(
        out,
        "  inputs {}; outputs {}",
        join(t.inputs.iter().map(|i| format!(
            "{} -> {}{}",
            i.name,
            i.env,
            if i.required { " (required)" } else { "" }
        ))),
        join(&t.outputs)
    );
}

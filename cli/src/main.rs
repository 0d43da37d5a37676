//! `eddo`: eddo's own command line, for the steps around a policy change. It reads the policy with
//! the functions' own parser and decides with their own pure decisions, offline: no AWS call.
//!
//! - `eddo policy check FILE`: every mistake with its line and column (exit 1), or what the policy
//!   defines and the template parameters it implies.
//! - `eddo policy params [--json] FILE`: the template parameters a policy implies, as
//!   `sam deploy --parameter-overrides` takes them (the CDK construct reads `--json` at synth).
//! - `eddo policy diff OLD NEW`: what changes, in words (exit 1 when something does).
//! - `eddo policy replay --policy NEW [--current OLD] EVENTS`: the gate's and alarm-rollback's
//!   decisions over recorded events under the current and the proposed policy, and every one that
//!   would differ, with both reasons (exit 1 when one does).

use std::process::ExitCode;

use eddo::policy::Policy;
use eddo::projects::PolicyProjects;

mod check;
mod diff;
#[cfg(feature = "replay")]
mod replay;

const USAGE: &str = "usage:
  eddo policy check FILE
      every mistake with its line and column (exit 1), or what the policy defines and the
      template parameters it implies (exit 0); under GitHub Actions, each mistake is also an
      annotation on the file
  eddo policy params [--json] FILE
      the template parameters the policy implies (TrackedRepositories, or TrackedOwners once
      the repositories would not fit the push rule's pattern), for sam deploy
      --parameter-overrides, and on stderr the tags its projects and senders need; with
      --json, every list as a JSON object (with BuildProjects, SastProjects, Branches,
      SignalSources and ProjectRoles), as the CDK construct reads it at synth
  eddo policy diff OLD NEW
      what changes from OLD to NEW, in words; exit 0 when nothing does, 1 when something does
  eddo policy replay --policy NEW [--current OLD] EVENTS
      the gate's and alarm-rollback's decisions over EVENTS (JSON lines of EventBridge events,
      as the demo writes them or an archive replay delivers them to a queue) under the current
      policy (OLD, or without it the decisions recorded in EVENTS) and under NEW, and every
      decision that would differ, with both reasons; exit 0 when none does, 1 when one does
exit status 2: the command could not run (usage, a file that cannot be read)";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    match args.as_slice() {
        ["policy", "check", file] => check::run(file),
        ["policy", "params", file] => params(file, false),
        ["policy", "params", "--json", file] => params(file, true),
        ["policy", "diff", old, new] => diff::run(old, new),
        #[cfg(feature = "replay")]
        ["policy", "replay", rest @ ..] => match replay::Args::parse(rest) {
            Some(args) => replay::run(&args),
            None => usage(),
        },
        #[cfg(not(feature = "replay"))]
        ["policy", "replay", ..] => {
            eprintln!("this eddo is the policy's checker alone: replay needs the full eddo CLI");
            ExitCode::from(2)
        }
        ["--help" | "-h" | "help"] => {
            println!("{USAGE}");
            ExitCode::SUCCESS
        }
        _ => usage(),
    }
}

fn usage() -> ExitCode {
    eprintln!("{USAGE}");
    ExitCode::from(2)
}

/// The file's text, or the exit status for a file that cannot be read (said on stderr).
fn read(file: &str) -> Result<String, ExitCode> {
    std::fs::read_to_string(file).map_err(|e| {
        eprintln!("{file}: {e}");
        ExitCode::from(2)
    })
}

/// The policy in `file`, or the exit status with every mistake said, each at its place.
fn policy(file: &str) -> Result<Policy, ExitCode> {
    let text = read(file)?;
    Policy::check(&text).map_err(|mistakes| {
        for m in &mistakes {
            eprintln!("{}", check::at(file, m));
        }
        eprintln!("{file}: {} mistake(s)", mistakes.len());
        ExitCode::FAILURE
    })
}

fn params(file: &str, json: bool) -> ExitCode {
    let policy = match policy(file) {
        Ok(p) => p,
        Err(code) => return code,
    };
    let projects = PolicyProjects::of(&policy);
    if json {
        println!("{}", projects.to_json());
        return ExitCode::SUCCESS;
    }
    let line: Vec<String> = projects
        .template_parameters()
        .into_iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    println!("{}", line.join(" "));
    // What the grants ask of the account, on stderr so `$(eddo policy params)` stays the
    // overrides alone: each project tagged with its role, each sender's role with its source.
    if !projects.tracks_by_name() {
        eprintln!(
            "the policy's repositories would not fit the push rule's pattern: pushes to any repository of {} start the build and SAST projects (the gate counts only the policy's)",
            projects.owners().into_iter().collect::<Vec<_>>().join(", ")
        );
    }
    for (project, role) in &projects.roles {
        eprintln!(
            "tag project {project} (adding to its tags): aws resourcegroupstaggingapi tag-resources --resource-arn-list arn:aws:codebuild:REGION:ACCOUNT:project/{project} --tags {}={role}",
            eddo::projects::ROLE_TAG
        );
    }
    for source in &projects.signal_sources {
        eprintln!(
            "tag the role that puts {source}: aws iam tag-role --role-name ROLE --tags Key={},Value={source}",
            eddo::projects::SIGNAL_SOURCE_TAG
        );
    }
    // The gate reads the scans of repositories tagged eddo:service only.
    for service in policy.services.values() {
        if let Some(repository) = &service.image_repository {
            eprintln!(
                "tag the image repository of {}: aws ecr tag-resource --resource-arn arn:aws:ecr:REGION:ACCOUNT:repository/{repository} --tags Key=eddo:service,Value={}",
                service.name, service.name
            );
        }
    }
    ExitCode::SUCCESS
}

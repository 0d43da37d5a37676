//! `eddo`: eddo's own command line, for the steps around a deploy.
//!
//! `eddo policy params FILE` prints the template parameters a policy file implies, as
//! `sam deploy --parameter-overrides` takes them: every CodeBuild project the policy names, in
//! the parameter that lets each function start or hear it. The policy is the one source; the
//! template's lists are derived from it, never typed twice.

use std::process::ExitCode;

use eddo::policy::Policy;
use eddo::projects::PolicyProjects;

const USAGE: &str = "usage: eddo policy params [--json] FILE
  prints the template parameters the policy FILE implies (GateProjectNames, DeployProjectNames,
  RollbackProjectNames, TenantProjectNames, TrackedRepositories, SignalSources), for
  sam deploy --parameter-overrides; with --json, every list as a JSON object (with
  BuildProjects, SastProjects and Branches), as the CDK construct reads it at synth";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["policy", "params", file] => params(file, false),
        ["policy", "params", "--json", file] => params(file, true),
        _ => {
            eprintln!("{USAGE}");
            ExitCode::from(2)
        }
    }
}

fn params(file: &str, json: bool) -> ExitCode {
    let policy = match std::fs::read_to_string(file)
        .map_err(|e| e.to_string())
        .and_then(|text| Policy::parse(&text).map_err(|e| e.to_string()))
    {
        Ok(p) => p,
        Err(e) => {
            eprintln!("{file}: {e}");
            return ExitCode::FAILURE;
        }
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
    ExitCode::SUCCESS
}

//! `eddo policy check|params|diff`: the policy checked before it is live (every mistake at its
//! line and column, or what it defines), the template parameters it implies, and what a change
//! to it changes, in words. (`eddo policy replay` is tested over the demo's events, in
//! `tests/demo.rs`.)

use std::process::Command;

fn eddo(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_eddo"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn the_example_policy_implies_its_repositories_and_the_tags_its_grants_ask() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/../infra/policy/example.yaml");
    let out = eddo(&["policy", "params", example]);
    assert!(out.status.success(), "{out:?}");
    // Nothing else: the grants reach projects and senders by their tags.
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "TrackedRepositories=Codertocat/Hello-World TrackedOwners="
    );
    let said = String::from_utf8_lossy(&out.stderr);
    // Each project and the role its eddo:role tag must say, added to its tags.
    for (project, role) in [
        ("eddo-build", "build"),
        ("eddo-sast", "sast"),
        ("eddo-deploy", "deploy"),
        ("eddo-rollback", "rollback"),
        ("eddo-tenant-provision", "tenant"),
    ] {
        assert!(
            said.contains(&format!("project/{project} --tags eddo:role={role}\n")),
            "{said}"
        );
    }
    // Each source's sender role and the tag the bus policy compares with the source.
    for source in [
        "com.example.chatops",
        "com.example.semgrep",
        "com.example.trivy",
    ] {
        assert!(
            said.contains(&format!("--tags Key=eddo:signal-source,Value={source}")),
            "{said}"
        );
    }
    // The image repository the gate reads scans of.
    assert!(
        said.contains("repository/hello-world --tags Key=eddo:service,Value=hello-world"),
        "{said}"
    );
}

/// A policy of many services: the push rule's repositories go by owner, so the parameters stay
/// the same size however many services there are.
#[test]
fn a_large_policy_tracks_its_repositories_by_owner() {
    let text = eddo::policy::with_copies_of(&example(), "hello-world", 200).unwrap();
    let file = Temp::new("large.yaml", &text);
    let out = eddo(&["policy", "params", file.path()]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "TrackedRepositories= TrackedOwners=eddo-example"
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("pushes to any repository of eddo-example"),
        "{out:?}"
    );
}

#[test]
fn a_missing_or_bad_policy_is_an_error_naming_it() {
    let out = eddo(&["policy", "params", "/nonexistent/policy.yaml"]);
    assert_eq!(out.status.code(), Some(2), "a file that cannot be read");
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/policy.yaml"));
    let bad = std::env::temp_dir().join(format!("eddo-bad-policy-{}.yaml", std::process::id()));
    std::fs::write(&bad, "services: {payments: {deploy_from: nowhere}}\n").unwrap();
    let out = eddo(&["policy", "params", bad.to_str().unwrap()]);
    std::fs::remove_file(&bad).unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("missing field `version`"),
        "{out:?}"
    );
    assert_eq!(eddo(&["policy"]).status.code(), Some(2), "usage");
}

/// What the CDK construct reads at synth: every list, as JSON.
#[test]
fn the_example_policy_as_json_gives_each_project_its_role() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/../infra/policy/example.yaml");
    let out = eddo(&["policy", "params", "--json", example]);
    assert!(out.status.success(), "{out:?}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        v["TrackedRepositories"],
        serde_json::json!(["Codertocat/Hello-World"])
    );
    assert_eq!(v["TrackedOwners"], serde_json::json!([]));
    assert_eq!(v["ProjectRoles"]["eddo-deploy"], "deploy");
    assert_eq!(v["ProjectRoles"]["eddo-tenant-provision"], "tenant");
    assert_eq!(v["BuildProjects"], serde_json::json!(["eddo-build"]));
    assert_eq!(v["SastProjects"], serde_json::json!(["eddo-sast"]));
    assert_eq!(v["Branches"], serde_json::json!(["main", "master"]));
    assert_eq!(
        v["SignalSources"],
        serde_json::json!([
            "com.example.chatops",
            "com.example.semgrep",
            "com.example.trivy"
        ])
    );
}

fn example() -> String {
    std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../infra/policy/example.yaml"
    ))
    .unwrap()
}

/// A file in a fresh temporary folder, removed with it.
struct Temp(std::path::PathBuf);

impl Temp {
    fn new(name: &str, text: &str) -> Temp {
        let dir = std::env::temp_dir().join(format!("eddo-cli-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join(name);
        std::fs::write(&file, text).unwrap();
        Temp(file)
    }

    fn path(&self) -> &str {
        self.0.to_str().unwrap()
    }
}

impl Drop for Temp {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(self.0.parent().unwrap());
    }
}

#[test]
fn check_describes_a_good_policy_and_the_parameters_it_implies() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/../infra/policy/example.yaml");
    let out = eddo(&["policy", "check", example]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let said = String::from_utf8_lossy(&out.stdout);
    for line in [
        "no mistakes: 1 service(s), 2 tenant tier(s)",
        "service hello-world",
        "  projects: build eddo-build, sast eddo-sast, deploy eddo-deploy, rollback eddo-rollback",
        "  gate (enforce): requires build, image-scan, sast within 30 minutes",
        "    sast from CodeBuild project eddo-sast, check CodeQL by github-actions from .github/workflows/codeql.yml, source com.example.semgrep",
        "    at most 0 CRITICAL, 2 HIGH",
        "tier premium: provision eddo-tenant-provision-premium (60 min), deprovision eddo-tenant-deprovision (30 min), 2 retries",
        "  TrackedRepositories=Codertocat/Hello-World",
        "  eddo-deploy eddo:role=deploy",
    ] {
        assert!(said.contains(line), "no line {line:?} in\n{said}");
    }
}

#[test]
fn check_names_every_mistake_at_its_line_and_column() {
    let text = example()
        .replacen("deadline_minutes: 30", "deadline_minutes: 0", 1)
        .replacen("bake_minutes: 60", "bake_minutes: 0", 1)
        .replacen("retries: 2", "retries: 9", 1);
    let file = Temp::new("mistaken.yaml", &text);
    let line_of = |needle: &str| text.lines().position(|l| l.contains(needle)).unwrap() + 1;
    let out = eddo(&["policy", "check", file.path()]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let f = file.path();
    let expected = format!(
        "{f}:{}:7: services.hello-world.gate.deadline_minutes: 0 is not between 1 and 1440\n\
         {f}:{}:7: services.hello-world.rollback.bake_minutes: 0 is not between 1 and 10080 minutes\n\
         {f}:{}:7: tenants.tiers.premium.retries: 9 is not between 0 and 5\n\
         {f}: 3 mistake(s): the functions would refuse this version (Policy Rejected) and keep the last good one\n",
        line_of("deadline_minutes: 0"),
        line_of("bake_minutes: 0"),
        line_of("retries: 9"),
    );
    assert_eq!(String::from_utf8_lossy(&out.stderr), expected);
    assert!(
        out.stdout.is_empty(),
        "no annotations outside GitHub Actions"
    );

    // Under GitHub Actions, each is also an annotation on the file.
    let out = Command::new(env!("CARGO_BIN_EXE_eddo"))
        .args(["policy", "check", file.path()])
        .env("GITHUB_ACTIONS", "true")
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert_eq!(said.lines().count(), 3, "{said}");
    assert!(
        said.starts_with(&format!(
            "::error file={f},line={},col=7::services.hello-world.gate.deadline_minutes: 0 is not between 1 and 1440",
            line_of("deadline_minutes: 0")
        )),
        "{said}"
    );
}

#[test]
fn check_of_a_file_that_is_not_yaml_points_at_the_error() {
    let file = Temp::new("broken.yaml", "version: 1\nservices:\n  a: [\n");
    let out = eddo(&["policy", "check", file.path()]);
    assert_eq!(out.status.code(), Some(1));
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.starts_with(&format!("{}:4:1: ", file.path())),
        "{said}"
    );
}

#[test]
fn diff_says_what_changes_in_words() {
    let text = example()
        .replacen("max_findings: {CRITICAL: 0, HIGH: 2}", "max_findings: {CRITICAL: 1, HIGH: 2}", 1)
        .replacen("        - id: CVE-2023-0001\n          reason: Accepted for the Q3 release only.\n          expires: \"2026-09-30\"\n", "", 1)
        .replacen("bake_minutes: 60", "bake_minutes: 30", 1)
        .replacen("severity: page}", "severity: critical}", 1);
    let new = Temp::new("new.yaml", &text);
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/../infra/policy/example.yaml");
    let out = eddo(&["policy", "diff", example, new.path()]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "hello-world: CRITICAL threshold 0 -> 1\n\
         hello-world: exception CVE-2023-0001 removed\n\
         hello-world: rollback alert match prometheus alerts with job=hello-world, severity=page removed\n\
         hello-world: rollback alert match prometheus alerts with job=hello-world, severity=critical added\n\
         hello-world: bake window (minutes) 60 -> 30\n"
    );
    let out = eddo(&["policy", "diff", example, example]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "no change\n");
    let bad = Temp::new("bad.yaml", "version: 2\n");
    assert_eq!(
        eddo(&["policy", "diff", example, bad.path()]).status.code(),
        Some(2)
    );
}

#[test]
fn replay_takes_its_arguments_in_any_order_and_needs_the_proposed_policy() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/../infra/policy/example.yaml");
    let events = Temp::new("events.jsonl", "\n{\"not\": \"an event\"}\nnot json\n");
    let out = eddo(&["policy", "replay", events.path(), "--policy", example]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(":2: skipped: not an EventBridge event"),
        "{err}"
    );
    assert!(err.contains(":3: skipped: not JSON"), "{err}");
    assert_eq!(
        eddo(&["policy", "replay", events.path()]).status.code(),
        Some(2)
    );
}

/// The CodeBuild buildspec and the GitHub Actions workflow the README documents run the check as
/// they are written: their commands, with this `eddo` on the PATH, pass the example policy and
/// fail a mistaken copy.
#[test]
fn the_documented_ci_steps_fail_a_mistaken_policy() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let yaml = |path: &str| -> serde_norway::Value {
        serde_norway::from_str(&std::fs::read_to_string(root.join(path)).unwrap()).unwrap()
    };
    let spec = yaml("infra/buildspecs/policy-check.yml");
    let build: Vec<&str> = spec["phases"]["build"]["commands"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    let workflow = yaml("infra/examples/github/policy-check.yml");
    let check = workflow["jobs"]["check"]["steps"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|s| s["name"].as_str() == Some("Check the policy"))
        .expect("a step that checks the policy");
    assert_eq!(
        workflow["on"]["pull_request"]["paths"][0].as_str(),
        workflow["jobs"]["check"]["env"]["POLICY_FILE"].as_str(),
        "the workflow runs on changes to the file it checks"
    );
    let bin = std::path::Path::new(env!("CARGO_BIN_EXE_eddo"))
        .parent()
        .unwrap();
    let mistaken = Temp::new(
        "ci.yaml",
        &example().replacen("deadline_minutes: 30", "deadline_minutes: 0", 1),
    );
    let example = root.join("infra/policy/example.yaml");
    for (ci, script, github) in [
        ("buildspec", build.join("\n"), "false"),
        (
            "workflow",
            check["run"].as_str().unwrap().to_string(),
            "true",
        ),
    ] {
        for (policy, code) in [(example.to_str().unwrap(), 0), (mistaken.path(), 1)] {
            let out = Command::new("bash")
                .args(["-c", &script])
                .env("PATH", format!("{}:/usr/bin:/bin", bin.display()))
                .env("POLICY_FILE", policy)
                .env("POLICY_PARAMETER", "/eddo/policy")
                .env("GITHUB_ACTIONS", github)
                .output()
                .unwrap();
            assert_eq!(out.status.code(), Some(code), "{ci} on {policy}: {out:?}");
            if code == 1 {
                let err = String::from_utf8_lossy(&out.stderr);
                assert!(
                    err.contains("gate.deadline_minutes: 0 is not between 1 and 1440"),
                    "{ci}: {err}"
                );
                assert_eq!(
                    String::from_utf8_lossy(&out.stdout).starts_with("::error file="),
                    github == "true",
                    "{ci}: annotations under GitHub Actions only"
                );
            }
        }
    }
}

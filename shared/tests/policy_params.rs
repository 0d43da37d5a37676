//! `eddo policy params`: the template parameters a policy file implies, printed as
//! `sam deploy --parameter-overrides` takes them; a file that is not a policy is an error that
//! names it.

use std::process::Command;

fn eddo(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_eddo"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn the_example_policy_implies_its_project_lists() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/../infra/policy/example.yaml");
    let out = eddo(&["policy", "params", example]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "GateProjectNames=eddo-build,eddo-deploy,eddo-sast DeployProjectNames=eddo-deploy \
         RollbackProjectNames=eddo-rollback \
         TenantProjectNames=eddo-tenant-deprovision,eddo-tenant-provision,eddo-tenant-provision-premium \
         TrackedRepositories=Codertocat/Hello-World \
         SignalSources=com.example.chatops,com.example.semgrep,com.example.trivy"
    );
}

#[test]
fn a_missing_or_bad_policy_is_an_error_naming_it() {
    let out = eddo(&["policy", "params", "/nonexistent/policy.yaml"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/policy.yaml"));
    let bad = std::env::temp_dir().join(format!("eddo-bad-policy-{}.yaml", std::process::id()));
    std::fs::write(&bad, "services: {payments: {deploy_from: nowhere}}\n").unwrap();
    let out = eddo(&["policy", "params", bad.to_str().unwrap()]);
    std::fs::remove_file(&bad).unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("policy:"),
        "{out:?}"
    );
    assert_eq!(eddo(&["policy"]).status.code(), Some(2), "usage");
}

/// What the CDK construct reads at synth: every list, as JSON.
#[test]
fn the_example_policy_as_json_lists_every_project_by_role() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/../infra/policy/example.yaml");
    let out = eddo(&["policy", "params", "--json", example]);
    assert!(out.status.success(), "{out:?}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["DeployProjectNames"], serde_json::json!(["eddo-deploy"]));
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

//! The README's run command: the scripted scenario plays on the local stack and every expected
//! step happens (the timeline's FAIL lines are what this catches), under IAM as AWS enforces it;
//! every permission of the functions' roles is one the scenario used, or one a path it does not
//! take needs (listed here, each with why); and a template without one of them fails the scenario
//! with the function, the call and the action named.

use eddo_local::demo::{Played, play};
use eddo_local::iam::{unused_grants, wildcard_grants};

fn template() -> String {
    std::fs::read_to_string(eddo_local::moto::project_root().join("template.yaml")).unwrap()
}

/// Grants the scenario does not exercise, and the path that needs each.
const NOT_EXERCISED: &[(&str, &str)] = &[
    (
        "WebhookFunctionRole WebhookFunctionRolePolicy0.IdempotencyRecords: dynamodb:GetItem",
        "the read a claim falls back to when a failed condition returns no record",
    ),
    (
        "ScanGateFunctionRole ScanGateFunctionRolePolicy0.ConfirmInspectorScans: inspector2:ListFindings",
        "an Inspector enhanced scan (the scenario's image is scanned by ECR's basic scanning)",
    ),
    (
        "AlarmRollbackFunctionRole AlarmRollbackFunctionRolePolicy0.ConfirmTheAlarms: cloudwatch:ListTagsForResource",
        "an alarm state change whose event carries the alarm's eddo:service tag (confirmed on the alarm)",
    ),
    (
        "AlarmRollbackFunctionRole AlarmRollbackFunctionRolePolicy0.HistoryRollbacksAndAlarmChanges: dynamodb:GetItem",
        "an alarm change seen again (EventBridge and the alarm's own action deliver one change twice)",
    ),
    (
        "ScanGateFunctionRole ScanGateFunctionRolePolicy0.StartDeployProjects: codebuild:ListBuildsForProject",
        "finding the build an invocation started before its record was lost",
    ),
    (
        "AlarmRollbackFunctionRole AlarmRollbackFunctionRolePolicy0.StartRollbackProjects: codebuild:ListBuildsForProject",
        "finding the build an invocation started before its record was lost",
    ),
    (
        "AlarmRollbackFunctionRole AlarmRollbackFunctionRolePolicy0.StartRollbackProjects: codebuild:BatchGetBuilds",
        "finding the build an invocation started before its record was lost",
    ),
    (
        "TenantOnboardingFunctionRole TenantOnboardingFunctionRolePolicy0.StartTenantProjects: codebuild:ListBuildsForProject",
        "finding the build an invocation started before its record was lost",
    ),
    (
        "TenantOnboardingFunctionRole TenantOnboardingFunctionRolePolicy0.StartTenantProjects: codebuild:BatchGetBuilds",
        "finding the build an invocation started before its record was lost",
    ),
    (
        "ScanGateFunctionRole ScanGateFunctionRolePolicy0.PolicyRejections",
        "a version of the policy that does not check (Policy Rejected, said once per version)",
    ),
    (
        "AlarmRollbackFunctionRole AlarmRollbackFunctionRolePolicy0.PolicyRejections",
        "a version of the policy that does not check (Policy Rejected, said once per version)",
    ),
    (
        "TenantOnboardingFunctionRole TenantOnboardingFunctionRolePolicy0.PolicyRejections",
        "a version of the policy that does not check (Policy Rejected, said once per version)",
    ),
    (
        "ScanGateFunctionRole DeadLetterQueuePolicy: sqs:SendMessage",
        "Lambda dead-letters a failed asynchronous event with the function's role",
    ),
    (
        "AlarmRollbackFunctionRole DeadLetterQueuePolicy: sqs:SendMessage",
        "Lambda dead-letters a failed asynchronous event with the function's role",
    ),
    (
        "TenantOnboardingFunctionRole DeadLetterQueuePolicy: sqs:SendMessage",
        "Lambda dead-letters a failed asynchronous event with the function's role",
    ),
];

/// Grants on `Resource: "*"`: only where the API has no resource-level permission.
const ON_EVERY_RESOURCE: &[&str] = &[
    "ScanGateFunctionRole ScanGateFunctionRolePolicy0.ConfirmInspectorScans: inspector2:ListFindings",
];

fn least_privilege(played: &Played) -> (Vec<String>, Vec<String>) {
    let mut unused = Vec::new();
    let mut everywhere = Vec::new();
    for (function, role_arn) in &played.function_roles {
        let role = played
            .roles
            .iter()
            .find(|r| role_arn.ends_with(&format!("/{}", r.name)))
            .unwrap_or_else(|| panic!("{function}'s role {role_arn} was not created"));
        unused.extend(unused_grants(role, &played.asked));
        everywhere.extend(wildcard_grants(role));
    }
    (unused, everywhere)
}

#[tokio::test(flavor = "multi_thread")]
async fn the_demo_scenario_passes_with_least_privilege() {
    let played = play(&template(), true, false).await.expect("the demo runs");
    assert!(
        played.passed(),
        "the demo reported failed steps; its timeline is in this test's output"
    );
    let (unused, everywhere) = least_privilege(&played);
    let unexplained: Vec<&String> = unused
        .iter()
        .filter(|g| !NOT_EXERCISED.iter().any(|(grant, _)| g.starts_with(grant)))
        .collect();
    assert!(
        unexplained.is_empty(),
        "roles grant what no function used and no listed path needs: {unexplained:#?}"
    );
    // The list must not rot: a grant listed as unexercised that the demo now uses is a stale
    // excuse, and one that names no grant at all explains nothing.
    let stale: Vec<&str> = NOT_EXERCISED
        .iter()
        .map(|(grant, _)| *grant)
        .filter(|grant| !unused.iter().any(|g| g.starts_with(grant)))
        .collect();
    assert!(
        stale.is_empty(),
        "listed as unexercised but used, or no such grant: {stale:#?}"
    );
    assert_eq!(everywhere, ON_EVERY_RESOURCE, "grants on every resource");
    replay_reproduces_the_decisions(&played);
}

/// `eddo policy replay` over the play's events: under the policy in force it reproduces every
/// decision the functions recorded; under a stricter one it names the deployment it would block.
fn replay_reproduces_the_decisions(played: &Played) {
    let dir = std::env::temp_dir().join(format!("eddo-replay-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let events = dir.join("events.jsonl");
    let lines: Vec<String> = played.events.iter().map(|e| e.to_string()).collect();
    std::fs::write(&events, lines.join("\n")).unwrap();
    // The policy the demo ran: the example's, with Tekton's tests required.
    let example = dir.join("demo.yaml");
    let text = eddo_local::demo::demo_policy().unwrap();
    std::fs::write(&example, &text).unwrap();
    let stricter = dir.join("stricter.yaml");
    let strict = text.replacen("HIGH: 2}", "HIGH: 0}", 1);
    assert_ne!(strict, text);
    std::fs::write(&stricter, strict).unwrap();
    let replay = |policy: &std::path::Path| {
        std::process::Command::new(crate::harness::binary("eddo"))
            .args(["policy", "replay", "--policy"])
            .arg(policy)
            .arg(&events)
            .output()
            .unwrap()
    };
    let same = replay(&example);
    let said = String::from_utf8_lossy(&same.stdout).to_string();
    assert_eq!(
        same.status.code(),
        Some(0),
        "{said}{}",
        String::from_utf8_lossy(&same.stderr)
    );
    assert!(
        said.contains("5 decision(s) under the decisions recorded, 5 under"),
        "{said}"
    );
    assert!(said.contains("no decision would differ"), "{said}");
    let strict = replay(&stricter);
    let said = String::from_utf8_lossy(&strict.stdout).to_string();
    assert_eq!(strict.status.code(), Some(1), "{said}");
    assert!(said.contains("1 decision(s) would differ"), "{said}");
    assert!(said.contains(": deploy -> block"), "{said}");
    assert!(
        said.contains("proposed: block: image-scan: HIGH 1 > 0 allowed"),
        "{said}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Take the gate's `dynamodb:ConditionCheckItem` (its deploy transaction checks the rollback
/// hold) out of a copy of the template: the demo fails where the gate decides, and says which
/// function, which call and which action.
#[tokio::test(flavor = "multi_thread")]
async fn a_missing_permission_fails_the_demo_by_name() {
    let text = template();
    let without = text.replacen("                - dynamodb:ConditionCheckItem\n", "", 1);
    assert_ne!(
        without, text,
        "the gate's statement lists ConditionCheckItem"
    );
    let played = play(&without, false, true).await.expect("the demo runs");
    assert!(!played.passed());
    let first = played
        .timeline
        .lines
        .iter()
        .find(|l| !l.ok)
        .expect("a failed step");
    let line = first.to_string();
    assert_eq!(first.who, "ScanGateFunction", "{line}");
    assert!(line.contains("DynamoDB.TransactWriteItems"), "{line}");
    assert!(
        line.contains("is not authorized to perform: dynamodb:ConditionCheckItem on resource: arn:aws:dynamodb:us-east-1:123456789012:table/eddo-StateTable"),
        "{line}"
    );
}

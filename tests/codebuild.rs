//! The CodeBuild stand-in, through the real AWS SDK as eddo's functions call it: StartBuild and
//! BatchGetBuilds, the idempotency token, environment overrides, the planned outcome, and the
//! `CodeBuild Build State Change` events on the default bus in the shape consumers parse.

use crate::harness::Local;
use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::event::codebuild::CodeBuildEvent;
use aws_sdk_codebuild::types::{EnvironmentVariable, EnvironmentVariableType, StatusType};
use eddo_local::codebuild::Plan;
use eddo_local::moto::Moto;
use eddo_local::stack::Stack;
use serde_json::Value;

const STATE_CHANGES: &str =
    r#"{"source": ["aws.codebuild"], "detail-type": ["CodeBuild Build State Change"]}"#;

async fn setup(prefix: &str) -> (Arc<Moto>, Stack, aws_sdk_codebuild::Client, String) {
    let Local { moto, stack } = Local::start(prefix).await;
    let conf = aws_sdk_codebuild::config::Builder::from(&stack.sdk)
        .endpoint_url(stack.codebuild.endpoint())
        .build();
    let queue = stack
        .route_to_queue_on("default", &format!("{prefix}-builds"), STATE_CHANGES)
        .await
        .unwrap();
    (
        moto,
        stack,
        aws_sdk_codebuild::Client::from_conf(conf),
        queue,
    )
}

fn var(name: &str, value: &str) -> EnvironmentVariable {
    EnvironmentVariable::builder()
        .name(name)
        .value(value)
        .r#type(EnvironmentVariableType::Plaintext)
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_build_runs_with_its_overrides_and_ends_as_planned() {
    let (_moto, stack, codebuild, queue) = setup("cb-plan").await;
    stack.codebuild.add_project("deploy");
    stack.codebuild.plan(
        "deploy",
        Plan::succeed().exporting("IMAGE_DIGEST", "sha256:abc"),
    );
    stack.codebuild.plan("deploy", Plan::fail("POST_BUILD"));

    let first = codebuild
        .start_build()
        .project_name("deploy")
        .source_version("6113728f27ae82c7b1a177c8d03f9e96e0adf246")
        .environment_variables_override(var("EDDO_SERVICE", "payments"))
        .environment_variables_override(var("EDDO_VERSION", "6113728"))
        .idempotency_token("deploy-1")
        .send()
        .await
        .unwrap()
        .build_value
        .unwrap();
    assert_eq!(first.build_status, Some(StatusType::InProgress));
    assert_eq!(first.project_name.as_deref(), Some("deploy"));
    assert_eq!(first.build_number, Some(1));
    let recorded = &stack.codebuild.builds()[0];
    assert_eq!(recorded.env("EDDO_SERVICE"), Some("payments"));
    assert_eq!(recorded.env("EDDO_VERSION"), Some("6113728"));
    assert_eq!(recorded.idempotency_token.as_deref(), Some("deploy-1"));

    let second = codebuild
        .start_build()
        .project_name("deploy")
        .idempotency_token("deploy-2")
        .send()
        .await
        .unwrap()
        .build_value
        .unwrap();
    assert_eq!(second.build_number, Some(2));
    assert!(stack.codebuild.settle(Duration::from_secs(10)).await);

    let got = codebuild
        .batch_get_builds()
        .ids(first.id.clone().unwrap())
        .ids(second.id.clone().unwrap())
        .ids("deploy:no-such-build")
        .send()
        .await
        .unwrap();
    let statuses: Vec<_> = got
        .builds()
        .iter()
        .map(|b| b.build_status.clone())
        .collect();
    assert_eq!(
        statuses,
        vec![Some(StatusType::Succeeded), Some(StatusType::Failed)]
    );
    assert_eq!(got.builds_not_found(), ["deploy:no-such-build"]);
    let exported = got.builds()[0].exported_environment_variables();
    assert_eq!(exported[0].name(), Some("IMAGE_DIGEST"));
    assert_eq!(exported[0].value(), Some("sha256:abc"));

    // Each build sent IN_PROGRESS, then its final state, to the default bus.
    let events = stack.drain(&queue, Duration::from_secs(5)).await.unwrap();
    let seen: Vec<(String, String)> = events
        .iter()
        .map(|e| {
            (
                e["detail"]["build-id"].as_str().unwrap().to_string(),
                e["detail"]["build-status"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let arn = |b: &aws_sdk_codebuild::types::Build| b.arn.clone().unwrap();
    for (build, statuses) in [
        (&first, ["IN_PROGRESS", "SUCCEEDED"]),
        (&second, ["IN_PROGRESS", "FAILED"]),
    ] {
        let mine: Vec<_> = seen
            .iter()
            .filter(|(id, _)| *id == arn(build))
            .map(|(_, s)| s.as_str())
            .collect();
        assert_eq!(mine, statuses);
    }
    let detail = |status: &str| -> Value {
        events
            .iter()
            .find(|e| e["detail"]["build-status"] == status)
            .unwrap()["detail"]
            .clone()
    };
    let ok = detail("SUCCEEDED");
    assert_eq!(
        ok["additional-information"]["exported-environment-variables"][0]["value"],
        "sha256:abc"
    );
    assert_eq!(
        ok["additional-information"]["source-version"],
        "6113728f27ae82c7b1a177c8d03f9e96e0adf246"
    );
    assert!(
        ok["additional-information"]["environment"]["environment-variables"]
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v["name"] == "EDDO_SERVICE" && v["value"] == "payments")
    );
    let failed = detail("FAILED");
    let phases = failed["additional-information"]["phases"]
        .as_array()
        .unwrap();
    let bad: Vec<_> = phases
        .iter()
        .filter(|p| p["phase-status"] == "FAILED")
        .collect();
    assert_eq!(bad.len(), 1);
    assert_eq!(bad[0]["phase-type"], "POST_BUILD");
    assert!(
        failed["additional-information"]["logs"]["deep-link"]
            .as_str()
            .unwrap()
            .contains("/aws/codebuild/deploy")
    );

    // The same shape as the real sample, as far as aws_lambda_events reads it.
    for e in &events {
        let parsed: CodeBuildEvent =
            serde_json::from_value(e.clone()).unwrap_or_else(|err| panic!("{err}: {e}"));
        assert_eq!(parsed.detail.project_name.as_deref(), Some("deploy"));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_idempotency_token_returns_the_same_build_and_refuses_other_parameters() {
    let (_moto, stack, codebuild, _queue) = setup("cb-token").await;
    stack.codebuild.add_project("rollback");
    let start = |version: &'static str| {
        codebuild
            .start_build()
            .project_name("rollback")
            .environment_variables_override(var("EDDO_TARGET_VERSION", version))
            .idempotency_token("alarm-1:ALARM")
            .send()
    };
    let a = start("v1").await.unwrap().build_value.unwrap();
    let b = start("v1").await.unwrap().build_value.unwrap();
    assert_eq!(a.id, b.id, "the same token and parameters: the same build");
    assert_eq!(stack.codebuild.builds().len(), 1);

    let err = start("v2").await.unwrap_err();
    let err = aws_sdk_codebuild::error::DisplayErrorContext(&err).to_string();
    assert!(err.contains("InvalidInputException"), "{err}");
    assert!(err.contains("different parameters"), "{err}");
    assert_eq!(stack.codebuild.builds().len(), 1);

    let err = codebuild
        .start_build()
        .project_name("no-such-project")
        .send()
        .await
        .unwrap_err();
    assert!(
        err.as_service_error()
            .is_some_and(|e| e.is_resource_not_found_exception()),
        "{}",
        aws_sdk_codebuild::error::DisplayErrorContext(&err)
    );
    assert!(stack.codebuild.settle(Duration::from_secs(10)).await);
}

#[test]
fn the_corpus_sample_reads_as_the_stand_in_writes() {
    // The stand-in's events are checked against aws_lambda_events above; the real sample must
    // read through the same type, or that check would prove nothing.
    let text = std::fs::read_to_string(
        eddo_local::demo::corpus().join("aws/codebuild-build-state-change.json"),
    )
    .unwrap();
    let parsed: CodeBuildEvent = serde_json::from_str(&text).unwrap();
    assert_eq!(
        parsed.detail.project_name.as_deref(),
        Some("my-sample-project")
    );
}

/// StartBuild is authorized as CodeBuild authorizes it: a function's execution role may start
/// exactly the projects its template grants, and a rule's CodeBuild target starts builds as its
/// role, which must trust EventBridge and name the project.
#[tokio::test(flavor = "multi_thread")]
async fn start_build_is_allowed_only_by_the_callers_policies() {
    let (_moto, stack, _, _) = setup("iam-builds").await;
    let as_gate = aws_sdk_codebuild::Client::from_conf(
        aws_sdk_codebuild::config::Builder::from(&stack.function_sdk("scan-gate").await.unwrap())
            .endpoint_url(stack.codebuild.endpoint())
            .build(),
    );
    let start = |project: &'static str| as_gate.start_build().project_name(project).send();
    start("eddo-deploy")
        .await
        .expect("the gate's role grants its deploy project");
    let err = start("eddo-rollback").await.unwrap_err();
    let text = format!("{}", aws_sdk_codebuild::error::DisplayErrorContext(&err));
    assert!(text.contains("AccessDeniedException"), "{text}");
    assert!(
        text.contains("assumed-role/iam-builds-ScanGateFunctionRole/ScanGateFunction is not authorized to perform: codebuild:StartBuild on resource: arn:aws:codebuild:us-east-1:123456789012:project/eddo-rollback"),
        "{text}"
    );

    let push = stack.routes.iter().find(|r| r.rule == "PushRule").unwrap();
    let role = push.role.as_deref().unwrap();
    let input = serde_json::json!({"sourceVersion": "main"});
    let build = stack
        .codebuild
        .start_from_rule("PushRule", &push.arn(), "eddo-sast", role, &input);
    assert!(build.is_ok(), "{build:?}");
    // The push rule's role, named by a rule of another bus: EventBridge may assume it only for
    // a rule on eddo's bus (aws:SourceArn).
    let untrusted = |rule: &str, arn: &str, project: &str, role: &str| {
        let refused = stack
            .codebuild
            .start_from_rule(rule, arn, project, role, &input)
            .unwrap_err();
        assert!(
            refused
                .message
                .contains("does not let events.amazonaws.com assume it"),
            "{refused}"
        );
    };
    let elsewhere = "arn:aws:events:us-east-1:123456789012:rule/someone-elses-rule";
    untrusted("SomeoneElsesRule", elsewhere, "eddo-sast", role);
    let refused = stack
        .codebuild
        .start_from_rule("PushRule", &push.arn(), "eddo-deploy", role, &input)
        .unwrap_err();
    assert_eq!(refused.code, "AccessDeniedException", "{refused}");
    // A role EventBridge cannot assume: the function's, which trusts only Lambda.
    let lambda_role = &stack.function("scan-gate").unwrap().role;
    untrusted("PushRule", &push.arn(), "eddo-deploy", lambda_role);
}

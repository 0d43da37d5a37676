//! IAM as the deployed stack has it, through each function's own role session: every function
//! reaches only the state-table items it owns (`dynamodb:LeadingKeys`), and a call its role does
//! not grant is AWS's AccessDeniedException naming the role, the action and the resource.

use crate::harness::Local;
use aws_sdk_dynamodb::types::AttributeValue;

#[tokio::test(flavor = "multi_thread")]
async fn each_function_reaches_only_the_items_it_owns() {
    let Local { moto: _moto, stack } = Local::start("iam-keys").await;
    let cases = [
        ("webhook", "idem#webhook#github#d-1", "tenant#acme"),
        (
            "scan-gate",
            "candidate#hello-world",
            "idem#webhook#github#d-1",
        ),
        (
            "alarm-rollback",
            "alarm#hello-world-5xx",
            "candidate#hello-world",
        ),
        ("tenant-onboarding", "tenant#acme", "service#hello-world"),
    ];
    for (binary, own, foreign) in cases {
        let ddb = aws_sdk_dynamodb::Client::new(&stack.function_sdk(binary).await.unwrap());
        let touch = |pk: &str| {
            ddb.update_item()
                .table_name(&stack.table)
                .key("pk", AttributeValue::S(pk.into()))
                .key("sk", AttributeValue::S("iam-test".into()))
                .update_expression("SET touched = :t")
                .expression_attribute_values(":t", AttributeValue::Bool(true))
                .send()
        };
        touch(own)
            .await
            .unwrap_or_else(|e| panic!("{binary} may update {own}: {e:?}"));
        let err = touch(foreign).await.expect_err("another function's item");
        let text = format!("{}", aws_sdk_dynamodb::error::DisplayErrorContext(&err));
        let role = &stack.function(binary).unwrap().logical_id;
        assert!(text.contains("AccessDeniedException"), "{binary}: {text}");
        assert!(
            text.contains(&format!("assumed-role/iam-keys-{role}Role/{role} is not authorized to perform: dynamodb:UpdateItem on resource: arn:aws:dynamodb:us-east-1:123456789012:table/{}", stack.table)),
            "{binary}: {text}"
        );
    }
}

/// A function's role allows its own calls and nothing else: the webhook may not start builds,
/// read the policy or write to another bus.
#[tokio::test(flavor = "multi_thread")]
async fn a_call_the_role_does_not_grant_is_refused_by_name() {
    let Local { moto: _moto, stack } = Local::start("iam-calls").await;
    let sdk = stack.function_sdk("webhook").await.unwrap();
    let err = aws_sdk_ssm::Client::new(&sdk)
        .get_parameter()
        .name(stack.policy_parameter.as_deref().unwrap())
        .send()
        .await
        .expect_err("the webhook does not read the policy");
    let text = format!("{}", aws_sdk_ssm::error::DisplayErrorContext(&err));
    assert!(
        text.contains("is not authorized to perform: ssm:GetParameter on resource: arn:aws:ssm:us-east-1:123456789012:parameter/iam-calls/policy"),
        "{text}"
    );
    let push = |bus: &str| push_as(&sdk, bus, "eddo.webhook");
    let err = push("default")
        .send()
        .await
        .expect_err("the webhook publishes to the eddo bus only");
    let text = format!("{}", aws_sdk_eventbridge::error::DisplayErrorContext(&err));
    assert!(
        text.contains(
            "events:PutEvents on resource: arn:aws:events:us-east-1:123456789012:event-bus/default"
        ),
        "{text}"
    );
    // Its own bus, yes.
    let out = push(&stack.bus).send().await.unwrap();
    assert_eq!(out.failed_entry_count(), 0);
    // On its own bus, as its own source only: it cannot speak as the gate.
    let err = push_as(&sdk, &stack.bus, "eddo.gate")
        .send()
        .await
        .expect_err("the webhook may not put the gate's source");
    let text = format!("{}", aws_sdk_eventbridge::error::DisplayErrorContext(&err));
    assert!(
        text.contains(&format!(
            "events:PutEvents on resource: arn:aws:events:us-east-1:123456789012:event-bus/{}",
            stack.bus
        )),
        "{text}"
    );
}

/// The gate confirms ECR scans in repositories tagged `eddo:service` only: a repository of the
/// account that is not eddo's keeps its scans from the gate's role.
#[tokio::test(flavor = "multi_thread")]
async fn the_gate_reads_the_scans_of_tagged_repositories_only() {
    let Local { moto: _moto, stack } = Local::start("iam-ecr").await;
    let image = format!("sha256:{}", "ab".repeat(32));
    eddo_local::ecr::scanned(
        &stack.sdk,
        "hello-world",
        &image,
        &serde_json::json!({"HIGH": 1}),
        None,
    )
    .await
    .unwrap();
    eddo_local::ecr::repository(&stack.sdk, "not-eddos", None)
        .await
        .unwrap();
    let ecr = aws_sdk_ecr::Client::new(&stack.function_sdk("scan-gate").await.unwrap());
    let describe = |repository: &str| {
        ecr.describe_image_scan_findings()
            .repository_name(repository)
            .image_id(
                aws_sdk_ecr::types::ImageIdentifier::builder()
                    .image_digest(&image)
                    .build(),
            )
            .send()
    };
    let scan = describe("hello-world").await.unwrap();
    assert_eq!(
        scan.image_scan_findings()
            .and_then(|f| f.finding_severity_counts())
            .and_then(|c| c.get(&aws_sdk_ecr::types::FindingSeverity::High)),
        Some(&1)
    );
    let err = describe("not-eddos")
        .await
        .expect_err("an untagged repository is not eddo's");
    let text = format!("{}", aws_sdk_ecr::error::DisplayErrorContext(&err));
    assert!(
        text.contains("is not authorized to perform: ecr:DescribeImageScanFindings on resource: arn:aws:ecr:us-east-1:123456789012:repository/not-eddos"),
        "{text}"
    );
}

/// A PutEvents call of one entry, as `sdk`'s identity.
fn push_as(
    sdk: &aws_config::SdkConfig,
    bus: &str,
    source: &str,
) -> aws_sdk_eventbridge::operation::put_events::builders::PutEventsFluentBuilder {
    aws_sdk_eventbridge::Client::new(sdk).put_events().entries(
        aws_sdk_eventbridge::types::PutEventsRequestEntry::builder()
            .event_bus_name(bus)
            .source(source)
            .detail_type("Git Push")
            .detail("{}")
            .build(),
    )
}

/// The gate's role starts a project by its `eddo:role` tag, not by a list in the template: a
/// deploy project the policy names but nobody tagged is refused by IAM (CodeBuild's own
/// question), and the gate says so once, naming the tag (Deployment Failed, no build); tagged,
/// the next candidate deploys, with no change to the stack.
#[tokio::test(flavor = "multi_thread")]
async fn a_deploy_project_reaches_the_gate_by_its_tag() {
    use crate::harness::gate::{CLEAN, digest, setup, sha};
    let s = setup("iam-tag", None).await;
    s.stack.codebuild.untag_project("eddo-deploy", "eddo:role");
    let deploy = |n: u32| {
        let s = &s;
        async move {
            let (commit, image) = (sha(n), digest(n));
            s.handle(&s.build("eddo-build", &commit, "SUCCEEDED", Some(&image)))
                .await;
            s.handle(&s.build("eddo-sast", &commit, "SUCCEEDED", None))
                .await;
            let scan = s
                .scanned(&commit, &image, serde_json::from_str(CLEAN).unwrap())
                .await;
            s.handle(&scan).await
        }
    };
    let r = deploy(3101).await;
    assert_eq!(r.published, ["Deployment Failed"], "{r:?}");
    let said = s.published().await;
    let reason = said[0]["detail"]["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("AccessDenied") && reason.contains("tagged eddo:role=deploy"),
        "{reason}"
    );
    assert!(s.deploys().is_empty(), "CodeBuild started nothing");

    // The operator tags the project: the grant reaches it.
    s.stack
        .codebuild
        .tag_project("eddo-deploy", "eddo:role", "deploy");
    let r = deploy(3102).await;
    assert_eq!(r.published, ["Deployment Started"], "{r:?}");
    assert_eq!(s.deploys().len(), 1);
}

//! Every rule of `template.yaml` receives exactly the corpus events it should and none it should
//! not, routed by moto from the real corpus (GitHub payloads as the webhook publishes them, AWS
//! samples on the default bus). A rule without an expectation here fails the test by name, so a
//! new rule cannot arrive unproven; a rule that matches nothing, or a malformed pattern, fails
//! with a message that names it.

use crate::harness::Local;
use std::collections::BTreeSet;

use eddo_local::demo::corpus;
use eddo_local::moto::Moto;
use eddo_local::moto::project_root;
use eddo_local::routing::{corpus_events, example_events, route};
use eddo_local::stack::Stack;
use eddo_local::template::Template;

/// The corpus events each rule must receive, by name.
fn expected(rule: &str) -> BTreeSet<String> {
    let names: &[&str] = match rule {
        // Pushes to main or master (the local TrackedBranches); the corpus has two, both to
        // master. Ref deletions, tags, pull requests and everything else stay out.
        "PushRule" => &[
            "github/push/with-new-branch.payload.json",
            "github/push/with-no-username-committer.payload.json",
        ],
        // Every finished build: no project list in the pattern (the gate keeps its policy's
        // projects' in code, so the pattern does not grow with the policy).
        "ScanGateFunctionBuilds" => &["aws/codebuild-build-state-change.json"],
        // Completed ECR and Inspector scans, not Inspector findings or image pushes.
        "ScanGateFunctionScans" => &[
            "aws/ecr-image-scan-missing-severities.json",
            "aws/ecr-image-scan.json",
            "aws/inspector2-scan.json",
        ],
        // Pushes (for when each commit was made: every one, the gate keeps those of its
        // services' branches), completed checks and workflow runs.
        "ScanGateFunctionChecks" => &[
            "github/push/with-new-branch.payload.json",
            "github/push/with-no-username-committer.payload.json",
            "github/check_run/completed.1.payload.json",
            "github/check_run/completed.payload.json",
            "github/check_run/completed.with-organization.payload.json",
            "github/workflow_run/completed.payload.json",
            "github/workflow_run/completed.with-pull-requests.payload.json",
        ],
        "ScanGateFunctionReported" => &[
            "examples/deployment-approval.json",
            "examples/scan-completed.json",
            "examples/signal-reported.json",
        ],
        // Alarms going into ALARM (INSUFFICIENT_DATA too, none in the corpus); the corpus
        // sample without a `detail` (an alarm action's payload in an envelope) does not match.
        "AlarmRollbackFunctionAlarms" => &[
            "aws/cloudwatch-alarm-state-change-2.json",
            "aws/cloudwatch-alarm-state-change.json",
        ],
        // An alarm back to OK from ALARM (the example is the corpus sample's alarm recovering);
        // the corpus's changes into ALARM do not match.
        "AlarmRollbackFunctionRecoveries" => &["examples/cloudwatch-alarm-recovered.json"],
        // Alerts the webhook authenticated, firing (may roll back) and resolved (may end the
        // incident).
        "AlarmRollbackFunctionAlerts" => &[
            "examples/alert-received-resolved.json",
            "examples/alert-received.json",
        ],
        // Every finished build, as for the gate.
        "AlarmRollbackFunctionRollbackBuilds" => &["aws/codebuild-build-state-change.json"],
        // eddo's tenant contract, from any source; sbt-aws's shapes go to their own rule.
        "TenantOnboardingFunctionRequests" => &[
            "examples/tenant-offboarding-requested.json",
            "examples/tenant-onboarding-requested.json",
        ],
        // Every finished build, as for the gate.
        "TenantOnboardingFunctionTenantBuilds" => &["aws/codebuild-build-state-change.json"],
        // sbt-aws's control plane of the current generation (the local stack sets its default
        // source); the legacy generation's rule is not created with the local settings.
        "TenantOnboardingSbtRule" => &[
            "examples/sbt-offboarding-request.json",
            "examples/sbt-onboarding-request.json",
        ],
        other => panic!(
            "rule {other} of template.yaml has no expectation in tests/routing.rs: list the corpus events it must receive"
        ),
    };
    names.iter().map(|s| s.to_string()).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn every_template_rule_receives_exactly_its_corpus_events() {
    let Local { moto: _moto, stack } = Local::start_with(
        "routing",
        &[("TrackedRepositories", "Codertocat/Hello-World")],
    )
    .await;
    let mut events = corpus_events(&corpus()).unwrap();
    events.extend(example_events(&project_root().join("infra/examples/events")).unwrap());
    // 35 GitHub payloads publish, 10 AWS samples are EventBridge events: the corpus is really read.
    assert!(events.len() >= 45, "{} corpus events", events.len());
    assert!(
        events
            .iter()
            .any(|e| e.on_default_bus && e.source == "aws.codebuild"),
        "the AWS samples are on the default bus"
    );
    let routed = route(&stack, &events).await.unwrap();
    assert!(!routed.is_empty(), "the template declares rules");
    // Schedules have no pattern: moto does not fire them, the local dispatcher ticks them.
    let rules: BTreeSet<_> = stack
        .routes
        .iter()
        .filter(|r| r.schedule.is_none())
        .map(|r| r.rule.clone())
        .collect();
    assert_eq!(routed.keys().cloned().collect::<BTreeSet<_>>(), rules);
    for (rule, received) in &routed {
        assert_eq!(received, &expected(rule), "rule {rule}");
    }
}

const SMALL: &str = r#"
Parameters:
  EventBusName: {Type: String, Default: small}
Resources:
  Bus:
    Type: AWS::Events::EventBus
    Properties: {Name: !Ref EventBusName}
  Table:
    Type: AWS::DynamoDB::Table
    Properties:
      AttributeDefinitions: [{AttributeName: pk, AttributeType: S}]
      KeySchema: [{AttributeName: pk, KeyType: HASH}]
  Secret:
    Type: AWS::SecretsManager::Secret
  Role:
    Type: AWS::IAM::Role
    Properties:
      AssumeRolePolicyDocument:
        Version: "2012-10-17"
        Statement: [{Effect: Allow, Principal: {Service: events.amazonaws.com}, Action: sts:AssumeRole}]
  Rule:
    Type: AWS::Events::Rule
    Properties:
      EventBusName: !Ref Bus
      EventPattern: PATTERN
      Targets:
        - Id: build
          Arn: !Sub arn:${AWS::Partition}:codebuild:${AWS::Region}:${AWS::AccountId}:project/p
          RoleArn: !GetAtt Role.Arn
"#;

#[tokio::test(flavor = "multi_thread")]
async fn a_rule_that_matches_nothing_or_is_malformed_fails_by_name() {
    let moto = Moto::start().expect("moto server (run `make setup`)");
    let sdk = moto.sdk_config().await;
    let template = |bus: &str, pattern: &str| {
        Template::translate(&SMALL.replace("PATTERN", pattern), &[("EventBusName", bus)]).unwrap()
    };

    let stack = Stack::from_template(
        &sdk,
        &template(
            "silent",
            r#"{"source": [eddo.webhook], "detail-type": [Git Pushed]}"#,
        ),
        "silent",
    )
    .await
    .unwrap();
    let err = route(&stack, &corpus_events(&corpus()).unwrap())
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("rules match none of the"), "{err}");
    assert!(err.contains("Rule (pattern"), "{err}");
    assert!(err.contains("Git Pushed"), "{err}");

    let err = Stack::from_template(
        &sdk,
        &template("malformed", r#"{"source": [{"prefix": ""}]}"#),
        "malformed",
    )
    .await
    .err()
    .expect("an empty prefix is refused")
    .to_string();
    assert!(err.contains("rule Rule"), "{err}");
    assert!(
        err.contains("source: prefix needs a non-empty string"),
        "{err}"
    );
}

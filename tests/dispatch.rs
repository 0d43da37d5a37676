//! Rules of a template whose targets are functions: moto routes the matching events, the local
//! runtime invokes the real binary as Lambda's asynchronous invocation does, and a failing
//! event lands in the dead-letter queue after three attempts.

use std::sync::Arc;
use std::time::Duration;

use crate::harness::binary;
use eddo_local::dispatch::{ATTEMPTS, Dispatcher, Route, Target};
use eddo_local::moto::Moto;
use eddo_local::runtime::{FunctionSpec, LocalFunction, Outcome};
use eddo_local::stack::Stack;
use eddo_local::template::Template;

const TEMPLATE: &str = r#"
Transform: AWS::Serverless-2016-10-31
Parameters:
  EventBusName: {Type: String, Default: test}
Resources:
  Bus:
    Type: AWS::Events::EventBus
    Properties: {Name: !Ref EventBusName}
  Table:
    Type: AWS::DynamoDB::Table
    Properties:
      BillingMode: PAY_PER_REQUEST
      AttributeDefinitions: [{AttributeName: pk, AttributeType: S}]
      KeySchema: [{AttributeName: pk, KeyType: HASH}]
  Secret:
    Type: AWS::SecretsManager::Secret
  DeadLetterQueue:
    Type: AWS::SQS::Queue
  Fixture:
    Type: AWS::Serverless::Function
    Metadata: {BuildProperties: {Binary: fixture-function}}
    Properties:
      Runtime: provided.al2023
      Handler: bootstrap
      Timeout: 5
      Environment: {Variables: {BUS: !Ref Bus}}
      Events:
        Work:
          Type: EventBridgeRule
          Properties:
            EventBusName: !Ref Bus
            Pattern: {source: [eddo.test], detail-type: [Work Requested]}
"#;

#[tokio::test(flavor = "multi_thread")]
async fn rule_targets_are_invoked_and_failures_dead_lettered_after_three_attempts() {
    let moto = Moto::start().expect("moto server (run `make setup`)");
    let sdk = moto.sdk_config().await;
    let stack = Stack::from_template(
        &sdk,
        &Template::translate(TEMPLATE, &[]).unwrap(),
        "dispatch",
    )
    .await
    .unwrap();
    assert_eq!(stack.routes.len(), 1);
    assert_eq!(stack.routes[0].rule, "FixtureWork");
    let def = stack.function("fixture-function").unwrap();
    assert_eq!(def.env, vec![("BUS".to_string(), "test".to_string())]);
    let function = Arc::new(
        LocalFunction::new(FunctionSpec {
            name: def.logical_id.clone(),
            binary: binary("fixture-function"),
            env: def.env.clone(),
            timeout: Duration::from_secs(def.timeout_secs),
            memory_mb: def.memory_mb,
        })
        .await
        .unwrap(),
    );
    let dispatcher = Dispatcher::new(
        &sdk,
        vec![Route {
            rule: stack.routes[0].rule.clone(),
            queue_url: stack.routes[0].queue_url.clone(),
            schedule: None,
            input_path: None,
            dead_letter: stack.dead_letter_queue.clone(),
            target: Target::Function {
                function,
                attempts: ATTEMPTS,
            },
        }],
    );

    let eb = aws_sdk_eventbridge::Client::new(&sdk);
    let put = |detail_type: &'static str, detail: &'static str| {
        aws_sdk_eventbridge::types::PutEventsRequestEntry::builder()
            .event_bus_name(&stack.bus)
            .source("eddo.test")
            .detail_type(detail_type)
            .detail(detail)
            .build()
    };
    eb.put_events()
        .entries(put("Work Requested", r#"{"do":"echo"}"#))
        .entries(put("Work Requested", r#"{"do":"error"}"#))
        .entries(put("Something Else", r#"{"do":"echo"}"#))
        .send()
        .await
        .unwrap();

    let mut deliveries = dispatcher.pump(Duration::from_secs(5)).await.unwrap();
    if deliveries.len() < 2 {
        deliveries.extend(dispatcher.pump(Duration::from_secs(5)).await.unwrap());
    }
    assert_eq!(
        deliveries.len(),
        2,
        "only the rule's events are delivered: {deliveries:?}"
    );
    let ok = deliveries
        .iter()
        .find(|d| matches!(d.outcome(), Some(Outcome::Response(_))))
        .expect("the echo");
    assert_eq!(ok.attempts, 1);
    assert!(!ok.dead_lettered);
    let failed = deliveries
        .iter()
        .find(|d| matches!(d.outcome(), Some(Outcome::Error { .. })))
        .expect("the error");
    assert_eq!(failed.attempts, ATTEMPTS);
    assert!(failed.dead_lettered);

    let dead = stack
        .drain(
            stack.dead_letter_queue.as_deref().unwrap(),
            Duration::from_secs(5),
        )
        .await
        .unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0]["attempts"], 3);
    assert_eq!(dead[0]["event"]["detail"]["do"], "error");
    assert!(
        dead[0]["error"]
            .as_str()
            .unwrap()
            .contains("fixture asked to fail"),
        "{}",
        dead[0]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_malformed_rule_pattern_fails_provisioning_with_the_rules_name() {
    let moto = Moto::start().expect("moto server (run `make setup`)");
    let bad = TEMPLATE.replace(
        "Pattern: {source: [eddo.test], detail-type: [Work Requested]}",
        "Pattern: {source: eddo.test}",
    );
    let err = match Stack::from_template(
        &moto.sdk_config().await,
        &Template::translate(&bad, &[]).unwrap(),
        "bad",
    )
    .await
    {
        Ok(_) => panic!("a pattern whose values are not arrays was accepted"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("rule FixtureWork"), "{err}");
}

/// The timeline `demo` and `up` print, for a function that panics, one that exits mid-invocation
/// and one that cannot start: each is a FAIL line in Lambda's words, after Lambda's three
/// attempts, and the event is in the dead-letter queue.
#[tokio::test(flavor = "multi_thread")]
async fn the_timeline_reports_panics_crashes_and_init_failures_as_lambda_does() {
    use eddo_local::timeline::{Timeline, Watch};
    let moto = Moto::start().expect("moto server (run `make setup`)");
    let sdk = moto.sdk_config().await;
    let stack = Stack::from_template(
        &sdk,
        &Template::translate(TEMPLATE, &[]).unwrap(),
        "timeline",
    )
    .await
    .unwrap();
    let start = |fail_init: bool| {
        let def = stack.function("fixture-function").unwrap().clone();
        async move {
            let mut env = def.env.clone();
            if fail_init {
                env.push(("FIXTURE_FAIL_INIT".into(), "1".into()));
            }
            Arc::new(
                LocalFunction::new(FunctionSpec {
                    name: def.logical_id.clone(),
                    binary: binary("fixture-function"),
                    env,
                    timeout: Duration::from_secs(def.timeout_secs),
                    memory_mb: def.memory_mb,
                })
                .await
                .unwrap(),
            )
        }
    };
    let eb = aws_sdk_eventbridge::Client::new(&sdk);
    let put = |what: &'static str| {
        eb.put_events()
            .entries(
                aws_sdk_eventbridge::types::PutEventsRequestEntry::builder()
                    .event_bus_name(&stack.bus)
                    .source("eddo.test")
                    .detail_type("Work Requested")
                    .detail(format!(r#"{{"do":"{what}"}}"#))
                    .build(),
            )
            .send()
    };

    let mut t = Timeline::new(false);
    let healthy = start(false).await;
    let mut watch = Watch::new(&stack, std::slice::from_ref(&healthy))
        .await
        .unwrap();
    for what in ["panic", "exit"] {
        put(what).await.unwrap();
        watch
            .until(&stack, &mut t, Duration::from_secs(20), |w, _| {
                w.deliveries.len() == if what == "panic" { 1 } else { 2 }
            })
            .await
            .unwrap();
    }
    healthy.stop().await;

    let broken = start(true).await;
    let mut watch = Watch::new(&stack, std::slice::from_ref(&broken))
        .await
        .unwrap();
    put("echo").await.unwrap();
    watch
        .until(&stack, &mut t, Duration::from_secs(20), |w, _| {
            w.deliveries.len() == 1
        })
        .await
        .unwrap();
    broken.stop().await;

    let failed: Vec<String> = t
        .lines
        .iter()
        .filter(|l| !l.ok)
        .map(|l| l.to_string())
        .collect();
    assert_eq!(failed.len(), 3, "{failed:#?}");
    for (line, says) in failed.iter().zip([
        "fixture asked to panic",
        "Runtime.ExitError",
        "Runtime.ExitError",
    ]) {
        assert!(line.contains("rule FixtureWork: Work Requested"), "{line}");
        assert!(line.contains(says), "{line}");
        assert!(
            line.contains("after 3 attempts, sent to the dead-letter queue"),
            "{line}"
        );
    }
    assert!(failed[2].contains("init error"), "{}", failed[2]);
    let dead = stack
        .drain(
            stack.dead_letter_queue.as_deref().unwrap(),
            Duration::from_secs(5),
        )
        .await
        .unwrap();
    assert_eq!(dead.len(), 3);
}

/// A rule whose target function's resource policy does not let EventBridge invoke it from that
/// rule: in AWS the events never arrive, so the local stack refuses to provision it.
#[tokio::test(flavor = "multi_thread")]
async fn a_rule_cannot_reach_a_function_without_its_invoke_permission() {
    const PLAIN: &str = r#"
Resources:
  Bus: {Type: AWS::Events::EventBus, Properties: {Name: !Sub "${AWS::StackName}-bus"}}
  Table:
    Type: AWS::DynamoDB::Table
    Properties:
      BillingMode: PAY_PER_REQUEST
      AttributeDefinitions: [{AttributeName: pk, AttributeType: S}]
      KeySchema: [{AttributeName: pk, KeyType: HASH}]
  Secret: {Type: AWS::SecretsManager::Secret}
  Role:
    Type: AWS::IAM::Role
    Properties:
      AssumeRolePolicyDocument:
        Statement: [{Effect: Allow, Principal: {Service: lambda.amazonaws.com}, Action: sts:AssumeRole}]
  Fixture:
    Type: AWS::Lambda::Function
    Metadata: {BuildProperties: {Binary: fixture-function}}
    Properties:
      Role: !GetAtt Role.Arn
      Runtime: provided.al2023
      Handler: bootstrap
      Code: {S3Bucket: artifacts, S3Key: fixture.zip}
  Work:
    Type: AWS::Events::Rule
    Properties:
      EventBusName: !Ref Bus
      EventPattern: {source: [eddo.test]}
      Targets: [{Id: fixture, Arn: !GetAtt Fixture.Arn}]
  Other:
    Type: AWS::Events::Rule
    Properties:
      EventBusName: !Ref Bus
      EventPattern: {source: [eddo.other]}
PERMISSION
"#;
    let moto = Moto::start().expect("moto server (run `make setup`)");
    let sdk = moto.sdk_config().await;
    let provision = |permission: &str, prefix: &'static str| {
        let template = Template::translate(&PLAIN.replace("PERMISSION", permission), &[]).unwrap();
        let sdk = sdk.clone();
        async move {
            Stack::from_template(&sdk, &template, prefix)
                .await
                .err()
                .map(|e| e.to_string())
        }
    };
    let refusal = "rule Work targets Fixture, but no AWS::Lambda::Permission lets events.amazonaws.com invoke it from this rule";
    let err = provision("", "none").await.expect("refused");
    assert!(err.contains(refusal), "{err}");
    let grant = |source: &str| {
        format!(
            "  Invoke:\n    Type: AWS::Lambda::Permission\n    Properties: {{Action: lambda:InvokeFunction, FunctionName: !Ref Fixture, Principal: events.amazonaws.com, SourceArn: !GetAtt {source}.Arn}}"
        )
    };
    let err = provision(&grant("Other"), "other").await.expect("refused");
    assert!(
        err.contains(refusal),
        "a permission for another rule: {err}"
    );
    assert_eq!(provision(&grant("Work"), "granted").await, None);
}

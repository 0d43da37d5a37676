//! The first hop of the pipeline, end to end on the local stack: a signed GitHub push delivered
//! to the real webhook binary through its function URL lands on the bus, the template's push rule
//! starts the build and SAST projects on its commit (through the rule's own input transformer),
//! and each build reports its state on the default bus. A redelivery starts nothing, nor does the
//! push published twice; a refused StartBuild is dead-lettered, not retried forever.

use crate::harness::Local;
use std::sync::Arc;
use std::time::Duration;

use eddo_local::demo::corpus;
use eddo_local::dispatch::{Dispatcher, Handled, Route, Target};
use eddo_local::runtime::LocalFunction;
use eddo_local::send::post_github;
use eddo_local::stack::LOCAL_GITHUB_SECRET;
use eddo_local::url::FunctionUrl;

const SHA: &str = "6113728f27ae82c7b1a177c8d03f9e96e0adf246";

#[tokio::test(flavor = "multi_thread")]
async fn a_push_to_a_tracked_branch_starts_the_build_and_the_scan_once() {
    let Local { moto, stack } = Local::start("onpush").await;
    let webhook = Arc::new(
        LocalFunction::new(stack.spec("webhook", &moto.endpoint()).unwrap())
            .await
            .unwrap(),
    );
    let url = FunctionUrl::serve(webhook.clone(), 0).await.unwrap();
    let dispatcher = stack.dispatcher(std::slice::from_ref(&webhook)).unwrap();
    let states = stack
        .route_to_queue_on(
            "default",
            "onpush-builds",
            r#"{"source": ["aws.codebuild"], "detail-type": ["CodeBuild Build State Change"]}"#,
        )
        .await
        .unwrap();
    let body =
        std::fs::read_to_string(corpus().join("github/push/with-new-branch.payload.json")).unwrap();

    let (status, answer) =
        post_github(url.addr(), LOCAL_GITHUB_SECRET, "push", "d-1", body.clone())
            .await
            .unwrap();
    assert_eq!(status, 202, "{answer}\n{}", webhook.logs().join("\n"));
    let deliveries = dispatcher.pump(Duration::from_secs(5)).await.unwrap();
    let mut targets: Vec<_> = deliveries.iter().map(|d| d.target.clone()).collect();
    targets.sort();
    assert_eq!(targets, ["CodeBuild eddo-build", "CodeBuild eddo-sast"]);
    assert!(
        deliveries.iter().all(|d| d.handled.succeeded()),
        "{deliveries:?}"
    );

    let builds = stack.codebuild.builds();
    assert_eq!(builds.len(), 2);
    let published_push = {
        let tap = stack
            .drain(&stack.tap_queue, Duration::from_secs(2))
            .await
            .unwrap();
        assert_eq!(tap.len(), 1);
        eddo::publish::OutgoingEvent::foreign(
            tap[0]["source"].as_str().unwrap(),
            tap[0]["detail-type"].as_str().unwrap(),
            &tap[0]["detail"],
        )
        .unwrap()
    };
    for b in &builds {
        assert_eq!(b.source_version.as_deref(), Some(SHA), "{}", b.project);
        assert_eq!(b.env("EDDO_COMMIT_SHA"), Some(SHA));
        assert_eq!(b.env("EDDO_REPOSITORY"), Some("Codertocat/Hello-World"));
        assert_eq!(b.env("EDDO_BRANCH"), Some("master"));
        assert_eq!(b.env("EDDO_CORRELATION_ID"), Some("d-1"));
        // The delivery that caused it: the same however many times the push was published.
        assert_eq!(b.env("EDDO_CAUSATION_ID"), Some("d-1"));
        assert_eq!(b.initiator, "rule/PushRule");
    }
    let push = stack
        .drain(&stack.tap_queue, Duration::from_millis(300))
        .await
        .unwrap();
    assert!(push.is_empty());

    // The webhook published it, and the answer was lost: the push is published again. The rule
    // starts each project again with the delivery's token, and CodeBuild answers with the same
    // builds.
    let again = eddo::publish::Publisher::new(
        aws_sdk_eventbridge::Client::new(&stack.function_sdk("webhook").await.unwrap()),
        &stack.bus,
        256 * 1024,
    );
    again
        .publish(std::slice::from_ref(&published_push))
        .await
        .unwrap();
    let deliveries = dispatcher.pump(Duration::from_secs(5)).await.unwrap();
    assert_eq!(deliveries.len(), 2, "{deliveries:?}");
    assert!(
        deliveries.iter().all(|d| d.handled.succeeded()),
        "{deliveries:?}"
    );
    assert_eq!(stack.codebuild.builds().len(), 2, "no second build");
    assert_eq!(stack.codebuild.calls("eddo-build"), 2);

    // GitHub redelivers: the webhook publishes nothing, so no build starts.
    let (status, answer) = post_github(url.addr(), LOCAL_GITHUB_SECRET, "push", "d-1", body)
        .await
        .unwrap();
    assert_eq!(status, 202);
    assert!(answer.contains("duplicate"), "{answer}");
    assert!(
        dispatcher
            .pump(Duration::from_millis(500))
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(stack.codebuild.builds().len(), 2);

    assert!(stack.codebuild.settle(Duration::from_secs(10)).await);
    let events = stack.drain(&states, Duration::from_secs(5)).await.unwrap();
    let mut finals: Vec<_> = events
        .iter()
        .filter(|e| e["detail"]["build-status"] == "SUCCEEDED")
        .map(|e| e["detail"]["project-name"].as_str().unwrap().to_string())
        .collect();
    finals.sort();
    assert_eq!(finals, ["eddo-build", "eddo-sast"]);
    webhook.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refused_start_build_is_dead_lettered_at_once() {
    let Local { moto, stack } = Local::start("refused").await;
    let push = stack
        .routes
        .iter()
        .find(|r| r.rule == "PushRule")
        .expect("the push rule");
    // The same rule, its project deleted after the deploy: its role still allows it.
    stack.codebuild.remove_project("eddo-build");
    let dispatcher = Dispatcher::new(
        &stack.sdk,
        vec![Route {
            rule: push.rule.clone(),
            queue_url: push.queue_url.clone(),
            schedule: None,
            input_path: None,
            dead_letter: stack.dead_letter_queue.clone(),
            target: Target::CodeBuild {
                project: "eddo-build".into(),
                role: push.role.clone().expect("the push rule's role"),
                rule_arn: push.arn(),
                stand_in: stack.codebuild.clone(),
            },
        }],
    );
    let body =
        std::fs::read_to_string(corpus().join("github/push/with-new-branch.payload.json")).unwrap();
    let webhook = Arc::new(
        LocalFunction::new(stack.spec("webhook", &moto.endpoint()).unwrap())
            .await
            .unwrap(),
    );
    let url = FunctionUrl::serve(webhook.clone(), 0).await.unwrap();
    let (status, _) = post_github(url.addr(), LOCAL_GITHUB_SECRET, "push", "d-2", body)
        .await
        .unwrap();
    assert_eq!(status, 202);

    let deliveries = dispatcher.pump(Duration::from_secs(5)).await.unwrap();
    assert_eq!(deliveries.len(), 1);
    let d = &deliveries[0];
    assert_eq!(d.attempts, 1, "a client error is not retried");
    assert!(d.dead_lettered);
    assert!(
        matches!(&d.handled, Handled::Build(Err(r)) if r.code == "ResourceNotFoundException"),
        "{d:?}"
    );
    let dead = stack
        .drain(
            stack.dead_letter_queue.as_deref().unwrap(),
            Duration::from_secs(5),
        )
        .await
        .unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0]["rule"], "PushRule");
    assert_eq!(dead[0]["target"], "CodeBuild eddo-build");
    assert!(
        dead[0]["error"]
            .as_str()
            .unwrap()
            .contains("Project cannot be found")
    );
    assert_eq!(dead[0]["event"]["sourceVersion"], SHA);
    assert!(stack.codebuild.builds().is_empty());
    webhook.stop().await;
}

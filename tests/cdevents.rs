//! CDEvents as gate signals, end to end on the local stack: a Tekton-shaped
//! `testsuiterun.finished`, signed with tekton's key, goes through the webhook (as its role) to
//! the bus; the gate (as its role) reads what the bus holds and counts it as the `test` signal
//! the policy requires of tekton. Read back: the bus's events, CodeBuild's deploys.

use crate::harness::gate::*;
use crate::harness::{example_policy, function_env, function_sdk};
use eddo_local::fixtures::delivery;
use eddo_local::stack::{LOCAL_JENKINS_TOKEN, LOCAL_TEKTON_KEY};
use eddo_webhook::signature::standard_signature;
use eddo_webhook::{Config, Webhook};
use serde_json::{Value, json};

/// The example policy, its gate requiring a `test` signal that only tekton's
/// `testsuiterun.finished` CDEvents give.
fn policy() -> String {
    eddo_local::fixtures::requiring_tekton_tests(&example_policy(), "build, test")
}

use eddo_local::fixtures::{cloud_event, tekton_test_run as test_run};

async fn webhook(s: &Setup) -> Webhook {
    let config = Config::from_env(&function_env(&s.stack, "webhook")).unwrap();
    Webhook::new(config, &function_sdk(&s.stack, "webhook").await)
}

/// Posts `body` to `/cdevents/<sender>` with `headers`: the status and answer.
async fn post(w: &Webhook, sender: &str, headers: &[(&str, &str)], body: &str) -> (u16, Value) {
    let resp = w
        .handle(delivery(&format!("/cdevents/{sender}"), headers, body))
        .await;
    (
        resp.status_code as u16,
        serde_json::from_str(resp.body.as_deref().unwrap_or("null")).unwrap(),
    )
}

/// One CloudEvent, signed with tekton's key (a Standard Webhooks delivery `delivery_id`).
async fn from_tekton(w: &Webhook, delivery_id: &str, cloud_event: &Value) -> (u16, Value) {
    let (body, now) = (cloud_event.to_string(), eddo::idempotency::now_epoch());
    let sig = standard_signature(LOCAL_TEKTON_KEY, delivery_id, now, body.as_bytes()).unwrap();
    let now = now.to_string();
    let headers = [
        ("content-type", "application/cloudevents+json"),
        ("webhook-id", delivery_id),
        ("webhook-timestamp", &now),
        ("webhook-signature", &sig),
    ];
    post(w, "tekton", &headers, &body).await
}

/// `body` of `content_type` from jenkins, with its bearer token.
async fn from_jenkins(w: &Webhook, content_type: &str, body: &Value) -> (u16, Value) {
    let bearer = format!("Bearer {LOCAL_JENKINS_TOKEN}");
    let headers = [("content-type", content_type), ("authorization", &bearer)];
    post(w, "jenkins", &headers, &body.to_string()).await
}

/// Everything on the eddo bus since the last look, each event checked against its schema.
async fn on_bus(s: &Setup) -> Vec<Value> {
    let events = s
        .stack
        .drain(&s.stack.tap_queue, std::time::Duration::from_millis(300))
        .await
        .unwrap();
    events
        .iter()
        .for_each(crate::harness::assert_matches_schema);
    events
}

/// The events of `detail_type` among `events`.
fn of<'a>(events: &'a [Value], detail_type: &str) -> Vec<&'a Value> {
    events
        .iter()
        .filter(|e| e["detail-type"] == detail_type)
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tekton_test_run_is_the_test_signal_its_policy_requires_once_and_from_tekton_only() {
    let s = setup("cdevents", Some(&policy())).await;
    let w = webhook(&s).await;
    let (commit, image) = (sha(700), digest(700));
    s.handle(&s.build("eddo-build", &commit, "SUCCEEDED", Some(&image)))
        .await;
    assert!(on_bus(&s).await.is_empty(), "waiting for test");

    // The test run passes: signed by tekton, it reaches the bus once, however often it is sent.
    let run = cloud_event(&test_run("tr-1", &image, "success"));
    let (status, answer) = from_tekton(&w, "msg-1", &run).await;
    assert_eq!(
        (status, &answer["events"][0]["status"]),
        (202, &json!("published")),
        "{answer}"
    );
    let (status, answer) = from_tekton(&w, "msg-2", &run).await;
    assert_eq!(
        (status, &answer["events"][0]["status"]),
        (202, &json!("duplicate")),
        "{answer}"
    );
    let events = on_bus(&s).await;
    let received = of(&events, "CDEvent Received");
    assert_eq!(received.len(), 1, "{events:#?}");
    assert_eq!(received[0]["detail"]["sender"], "tekton");

    // The gate, reading what the bus holds, counts it as tekton's test of the image's commit:
    // the deploy starts, once, and the ledger holds tekton's test.
    s.handle(received[0]).await;
    let deploys = s.deploys();
    assert_eq!(deploys.len(), 1);
    assert_eq!(deploys[0].env("EDDO_COMMIT_SHA"), Some(commit.as_str()));
    assert_eq!(of(&on_bus(&s).await, "Deployment Started").len(), 1);
    let ledger = ledger(&s.stack, "hello-world", &commit).await;
    assert!(
        ledger.iter().any(|(kind, sender, passed)| kind == "test"
            && sender == "CDEvent dev.cdevents.testsuiterun.finished from tekton"
            && *passed),
        "{ledger:?}"
    );

    // Another commit's test run fails: the candidate is blocked, nothing deployed.
    let (other, other_image) = (sha(701), digest(701));
    s.handle(&s.build("eddo-build", &other, "SUCCEEDED", Some(&other_image)))
        .await;
    let run = cloud_event(&test_run("tr-2", &other_image, "failure"));
    assert_eq!(from_tekton(&w, "msg-3", &run).await.0, 202);
    let events = on_bus(&s).await;
    s.handle(of(&events, "CDEvent Received")[0]).await;
    let blocked = on_bus(&s).await;
    assert_eq!(of(&blocked, "Deployment Blocked").len(), 1, "{blocked:#?}");
    assert_eq!(s.deploys().len(), 1);

    // The same test run from jenkins (its own token, so the webhook takes it) counts for no
    // service: the policy names tekton for test.
    let (third, third_image) = (sha(702), digest(702));
    s.handle(&s.build("eddo-build", &third, "SUCCEEDED", Some(&third_image)))
        .await;
    let run = cloud_event(&test_run("tr-3", &third_image, "success"));
    let (status, answer) = from_jenkins(&w, "application/cloudevents+json", &run).await;
    assert_eq!(status, 202, "{answer}");
    let events = on_bus(&s).await;
    s.handle(of(&events, "CDEvent Received")[0]).await;
    let rejected = on_bus(&s).await;
    let rejected = of(&rejected, "Signal Rejected");
    assert!(
        rejected[0]["detail"]["reason"]
            .as_str()
            .unwrap()
            .contains("counts for no service"),
        "{rejected:#?}"
    );
    assert_eq!(s.deploys().len(), 1, "nothing deployed but the first");
    // And a delivery with neither key nor token puts nothing on the bus.
    let unproven = [("content-type", "application/cloudevents+json")];
    assert_eq!(post(&w, "tekton", &unproven, &run.to_string()).await.0, 401);
    assert!(on_bus(&s).await.is_empty());

    // A batch whose second event is past the bus's entry limit is refused whole (413): its
    // first is not published either, so the sender's retry is never of half a batch.
    let fits = cloud_event(&test_run("tr-4", &third_image, "success"));
    let mut too_big = test_run("tr-5", &third_image, "success");
    too_big["customData"]["notes"] = json!("x".repeat(300 * 1024));
    let batch = json!([fits, cloud_event(&too_big)]);
    let (status, answer) = from_jenkins(&w, "application/cloudevents-batch+json", &batch).await;
    assert_eq!(status, 413, "{answer}");
    assert!(
        on_bus(&s).await.is_empty(),
        "nothing of the batch published"
    );
}

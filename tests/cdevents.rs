//! CDEvents as gate signals, end to end on the local stack: a Tekton-shaped
//! `testsuiterun.finished`, signed with tekton's key, goes through the webhook (as its role) to
//! the bus; the gate (as its role) reads what the bus holds and counts it as the `test` signal
//! the policy requires of tekton. Read back: the bus's events, CodeBuild's deploys.

use crate::harness::function_sdk;
use crate::harness::gate::*;
use eddo::config::Env;
use eddo_local::fixtures::delivery;
use eddo_local::stack::{LOCAL_JENKINS_TOKEN, LOCAL_TEKTON_KEY};
use eddo_webhook::signature::standard_signature;
use eddo_webhook::{Config, Webhook};
use serde_json::{Value, json};

/// The example policy, its gate requiring a `test` signal that only tekton's
/// `testsuiterun.finished` CDEvents give.
fn policy() -> String {
    let example =
        std::fs::read_to_string(eddo_local::moto::project_root().join("infra/policy/example.yaml"))
            .unwrap();
    let example = example.replacen(
        "require: [build, image-scan, sast]",
        "require: [build, test]",
        1,
    );
    example.replacen(
        "      senders:\n",
        "      senders:\n        test:\n          - {cdevents: dev.cdevents.testsuiterun.finished, sender: tekton}\n",
        1,
    )
}

/// A test run as Tekton reports it (spec 0.5.1), about the image it tested.
fn test_run(id: &str, image: &str, outcome: &str) -> Value {
    json!({
        "context": {"specversion": "0.5.1", "id": id, "source": "/tekton/pipelines/hello-world",
            "type": "dev.cdevents.testsuiterun.finished.0.3.0", "timestamp": "2026-12-07T10:00:00Z",
            "chainId": format!("chain-{id}")},
        "subject": {"id": format!("run-{id}"), "source": "/tekton/pipelines/hello-world",
            "content": {"outcome": outcome, "environment": {"id": "ci"},
                "testSuite": {"id": "contract", "name": "contract tests"}}},
        "customData": {"artifactId": format!("pkg:oci/hello-world@{image}")},
    })
}

/// A structured-mode CloudEvent of `cdevent`.
fn cloud_event(cdevent: &Value) -> String {
    let ctx = &cdevent["context"];
    json!({"specversion": "1.0", "id": ctx["id"], "source": ctx["source"], "type": ctx["type"],
        "datacontenttype": "application/json", "data": cdevent})
    .to_string()
}

async fn webhook(s: &Setup) -> Webhook {
    let env = s.stack.webhook_env();
    let config = Config::from_env(&Env::from_pairs(
        env.iter().map(|(k, v)| (k.as_str(), v.as_str())),
    ))
    .unwrap();
    Webhook::new(config, &function_sdk(&s.stack, "webhook").await)
}

/// Sends `body` to `/cdevents/<sender>` signed with `key` (a Standard Webhooks delivery): the
/// status and answer.
async fn signed(
    w: &Webhook,
    sender: &str,
    key: &str,
    delivery_id: &str,
    body: &str,
) -> (u16, Value) {
    let now = eddo::idempotency::now_epoch();
    let sig = standard_signature(key, delivery_id, now, body.as_bytes()).unwrap();
    let headers = [
        ("content-type", "application/cloudevents+json"),
        ("webhook-id", delivery_id),
        ("webhook-timestamp", &now.to_string()),
        ("webhook-signature", &sig),
    ];
    answered(
        w.handle(delivery(&format!("/cdevents/{sender}"), &headers, body))
            .await,
    )
}

fn answered(
    resp: aws_lambda_events::event::lambda_function_urls::LambdaFunctionUrlResponse,
) -> (u16, Value) {
    (
        resp.status_code as u16,
        serde_json::from_str(resp.body.as_deref().unwrap_or("null")).unwrap(),
    )
}

/// What the webhook put on the bus since the last look: its `CDEvent Received` events.
async fn received(s: &Setup) -> Vec<Value> {
    s.local
        .published("eddo.webhook")
        .await
        .into_iter()
        .filter(|e| e["detail-type"] == "CDEvent Received")
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tekton_test_run_is_the_test_signal_its_policy_requires_once_and_from_tekton_only() {
    let s = setup("cdevents", Some(&policy())).await;
    let w = webhook(&s).await;
    let (commit, image) = (sha(700), digest(700));
    let r = s
        .handle(&s.build("eddo-build", &commit, "SUCCEEDED", Some(&image)))
        .await;
    assert!(r.published.is_empty(), "waiting for test: {r:?}");

    // The test run passes: signed by tekton, it reaches the bus once, however often it is sent.
    let body = cloud_event(&test_run("tr-1", &image, "success"));
    let (status, answer) = signed(&w, "tekton", LOCAL_TEKTON_KEY, "msg-1", &body).await;
    assert_eq!(status, 202, "{answer}");
    assert_eq!(answer["events"][0]["status"], "published", "{answer}");
    let (status, answer) = signed(&w, "tekton", LOCAL_TEKTON_KEY, "msg-2", &body).await;
    assert_eq!(
        (status, &answer["events"][0]["status"]),
        (202, &json!("duplicate")),
        "{answer}"
    );
    let on_bus = received(&s).await;
    assert_eq!(on_bus.len(), 1, "{on_bus:#?}");
    assert_eq!(on_bus[0]["detail"]["sender"], "tekton");

    // The gate, reading what the bus holds, counts it as tekton's test of the image's commit.
    let r = s.handle(&on_bus[0]).await;
    assert_eq!(r.published, ["Deployment Started"], "{r:?}");
    let deploys = s.deploys();
    assert_eq!(deploys.len(), 1);
    assert_eq!(deploys[0].env("EDDO_COMMIT_SHA"), Some(commit.as_str()));
    let ledger = ledger(&s.stack, "hello-world", &commit).await;
    assert!(
        ledger.iter().any(|(kind, sender, passed)| kind == "test"
            && sender == "CDEvent dev.cdevents.testsuiterun.finished from tekton"
            && *passed),
        "{ledger:?}"
    );

    // Another commit's test run fails: the candidate is blocked, saying so.
    let (other, other_image) = (sha(701), digest(701));
    s.handle(&s.build("eddo-build", &other, "SUCCEEDED", Some(&other_image)))
        .await;
    let body = cloud_event(&test_run("tr-2", &other_image, "failure"));
    assert_eq!(
        signed(&w, "tekton", LOCAL_TEKTON_KEY, "msg-3", &body)
            .await
            .0,
        202
    );
    let on_bus = received(&s).await;
    let r = s.handle(&on_bus[0]).await;
    assert_eq!(r.published, ["Deployment Blocked"], "{r:?}");

    // The same test run from jenkins (its own token, so the webhook takes it) counts for no
    // service: the policy names tekton for test.
    let (third, third_image) = (sha(702), digest(702));
    s.handle(&s.build("eddo-build", &third, "SUCCEEDED", Some(&third_image)))
        .await;
    let body = cloud_event(&test_run("tr-3", &third_image, "success"));
    let headers = [
        ("content-type", "application/cloudevents+json"),
        ("authorization", &format!("Bearer {LOCAL_JENKINS_TOKEN}")),
    ];
    let (status, answer) = answered(
        w.handle(delivery("/cdevents/jenkins", &headers, &body))
            .await,
    );
    assert_eq!(status, 202, "{answer}");
    let on_bus = received(&s).await;
    let r = s.handle(&on_bus[0]).await;
    assert_eq!(r.published, ["Signal Rejected"], "{r:?}");
    assert_eq!(s.deploys().len(), 1, "nothing deployed but the first");
    // And a delivery with neither key nor token puts nothing on the bus.
    let (status, _) = answered(
        w.handle(delivery(
            "/cdevents/tekton",
            &[("content-type", "application/cloudevents+json")],
            &body,
        ))
        .await,
    );
    assert_eq!(status, 401);
    assert!(received(&s).await.is_empty());

    // A batch whose second event is past the bus's entry limit is refused whole (413): its
    // first is not published either, so the sender's retry is never of half a batch.
    let fits = test_run("tr-4", &third_image, "success");
    let mut too_big = test_run("tr-5", &third_image, "success");
    too_big["customData"]["notes"] = json!("x".repeat(300 * 1024));
    let ce = |e: &Value| serde_json::from_str::<Value>(&cloud_event(e)).unwrap();
    let batch = Value::Array(vec![ce(&fits), ce(&too_big)]).to_string();
    let headers = [
        ("content-type", "application/cloudevents-batch+json"),
        ("authorization", &format!("Bearer {LOCAL_JENKINS_TOKEN}")),
    ];
    let (status, answer) = answered(
        w.handle(delivery("/cdevents/jenkins", &headers, &batch))
            .await,
    );
    assert_eq!(status, 413, "{answer}");
    assert!(
        received(&s).await.is_empty(),
        "nothing of the batch published"
    );
}

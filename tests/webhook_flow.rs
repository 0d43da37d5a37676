//! The webhook flow against moto: a signed delivery lands on the bus once, is routed by a rule,
//! survives redelivery, concurrency and secret rotation, and a failing bus answers 5xx without
//! losing the delivery.

use crate::harness::Local;
use std::sync::Arc;
use std::time::Duration;

use crate::harness::function_sdk;
use aws_lambda_events::event::lambda_function_urls::LambdaFunctionUrlResponse;
use aws_sdk_eventbridge::operation::put_events::PutEventsOutput;
use aws_sdk_eventbridge::types::PutEventsResultEntry;
use aws_smithy_mocks::{RuleMode, mock, mock_client};
use eddo::config::Env;
use eddo::publish::{Backoff, Publisher};
use eddo_local::demo::corpus;
use eddo_local::fixtures::{delivery, github_delivery};
use eddo_local::moto::Moto;
use eddo_local::stack::{LOCAL_GITHUB_SECRET, LOCAL_GITLAB_TOKEN, LOCAL_STANDARD_SECRET, Stack};
use eddo_webhook::{Config, Webhook};
use serde_json::{Value, json};

async fn setup(prefix: &str, extra: &[(&str, &str)]) -> (Arc<Moto>, Stack, Config) {
    let Local { moto, stack } = Local::start(prefix).await;
    let mut env = stack.webhook_env();
    env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    let config = Config::from_env(&Env::from_pairs(
        env.iter().map(|(k, v)| (k.as_str(), v.as_str())),
    ))
    .unwrap();
    (moto, stack, config)
}

/// Delivers the corpus push, signed with `secret`, as delivery `delivery`.
async fn push(webhook: &Webhook, secret: &str, delivery: &str) -> LambdaFunctionUrlResponse {
    webhook
        .handle(github_delivery(secret, "push", delivery, &push_body()))
        .await
}

/// How many events reached `queue` (waiting up to `wait` for the first).
async fn arrived(stack: &Stack, queue: &str, wait: Duration) -> usize {
    stack.drain(queue, wait).await.unwrap().len()
}

fn push_body() -> String {
    std::fs::read_to_string(corpus().join("github/push/with-new-branch.payload.json")).unwrap()
}

fn answer(resp: &LambdaFunctionUrlResponse) -> Value {
    serde_json::from_str(resp.body.as_deref().unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_push_lands_on_the_bus_once_and_is_routed_by_its_rule() {
    let (_moto, stack, config) = setup("flow", &[]).await;
    let webhook = Webhook::new(config, &function_sdk(&stack, "webhook").await);

    let resp = push(&webhook, LOCAL_GITHUB_SECRET, "delivery-1").await;
    assert_eq!(resp.status_code, 202);
    let a = answer(&resp);
    assert_eq!(a["status"], "published");

    let routed = stack
        .drain(&stack.matched["PushRule"], Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(routed.len(), 1, "{routed:?}");
    let e = &routed[0];
    assert_eq!(
        e["id"], a["event_id"],
        "the answer names the event EventBridge assigned"
    );
    assert_eq!(e["source"], "eddo.webhook");
    assert_eq!(e["detail-type"], "Git Push");
    assert_eq!(e["detail"]["branch"], "master");
    assert_eq!(
        e["detail"]["commit_sha"],
        "6113728f27ae82c7b1a177c8d03f9e96e0adf246"
    );
    assert_eq!(e["detail"]["metadata"]["correlation_id"], "delivery-1");

    // A redelivery (GitHub's "Redeliver" button keeps the delivery id) publishes nothing.
    let again = push(&webhook, LOCAL_GITHUB_SECRET, "delivery-1").await;
    assert_eq!(again.status_code, 202);
    assert_eq!(answer(&again)["status"], "duplicate");
    assert_eq!(answer(&again)["event_id"], a["event_id"]);
    assert!(arrived(&stack, &stack.tap_queue, Duration::from_millis(300)).await == 1);
    assert!(
        arrived(
            &stack,
            &stack.matched["PushRule"],
            Duration::from_millis(300)
        )
        .await
            == 0
    );

    // The same signed body under a new delivery id (GitHub signs the body, not the id) is a
    // replay of the same delivery: nothing published.
    let replayed = push(&webhook, LOCAL_GITHUB_SECRET, "delivery-2").await;
    assert_eq!(answer(&replayed)["status"], "duplicate");
    assert_eq!(answer(&replayed)["event_id"], a["event_id"]);
    assert_eq!(
        arrived(
            &stack,
            &stack.matched["PushRule"],
            Duration::from_millis(300)
        )
        .await,
        0
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_push_to_an_untracked_branch_is_published_but_not_routed_to_the_build() {
    let (_moto, stack, config) = setup("untracked", &[]).await;
    let webhook = Webhook::new(config, &function_sdk(&stack, "webhook").await);
    let mut body: Value = serde_json::from_str(&push_body()).unwrap();
    body["ref"] = json!("refs/heads/feature/x");
    let resp = webhook
        .handle(github_delivery(
            LOCAL_GITHUB_SECRET,
            "push",
            "d-feature",
            &body.to_string(),
        ))
        .await;
    assert_eq!(resp.status_code, 202);
    let all = stack
        .drain(&stack.tap_queue, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(all.len(), 1);
    assert_eq!(all[0]["detail"]["branch"], "feature/x");
    assert!(
        arrived(
            &stack,
            &stack.matched["PushRule"],
            Duration::from_millis(300)
        )
        .await
            == 0
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_deliveries_of_one_id_publish_once() {
    let (_moto, stack, config) = setup("concurrent", &[]).await;
    let webhook = Arc::new(Webhook::new(config, &function_sdk(&stack, "webhook").await));
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let w = webhook.clone();
        tasks.push(tokio::spawn(async move {
            push(&w, LOCAL_GITHUB_SECRET, "same-delivery").await
        }));
    }
    let mut statuses = Vec::new();
    for t in tasks {
        let r = t.await.unwrap();
        statuses.push((
            r.status_code,
            answer(&r)["status"].as_str().map(str::to_string),
        ));
    }
    let published = statuses
        .iter()
        .filter(|(_, s)| s.as_deref() == Some("published"))
        .count();
    assert_eq!(published, 1, "{statuses:?}");
    // The others saw either the completed record or the live claim.
    assert!(
        statuses
            .iter()
            .all(|(code, _)| *code == 202 || *code == 409),
        "{statuses:?}"
    );
    assert_eq!(
        arrived(&stack, &stack.tap_queue, Duration::from_secs(5)).await,
        1
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn deliveries_signed_with_the_previous_secret_are_accepted_during_rotation() {
    let (_moto, stack, config) = setup("rotation", &[("EDDO_SECRET_CACHE_SECONDS", "0")]).await;
    let sm = aws_sdk_secretsmanager::Client::new(&stack.sdk);
    sm.put_secret_value()
        .secret_id(&stack.secret_arn)
        .secret_string(json!({"github": "the rotated secret"}).to_string())
        .send()
        .await
        .unwrap();
    let webhook = Webhook::new(config, &function_sdk(&stack, "webhook").await);
    let old = push(&webhook, LOCAL_GITHUB_SECRET, "d-old").await;
    assert_eq!(old.status_code, 202, "{:?}", old.body);
    let other_push = std::fs::read_to_string(corpus().join("github/push/payload.json")).unwrap();
    let new = webhook
        .handle(github_delivery(
            "the rotated secret",
            "push",
            "d-new",
            &other_push,
        ))
        .await;
    assert_eq!(new.status_code, 202, "{:?}", new.body);
    let wrong = push(&webhook, "neither", "d-x").await;
    assert_eq!(wrong.status_code, 401);
    assert_eq!(
        arrived(&stack, &stack.tap_queue, Duration::from_secs(5)).await,
        2
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_secret_without_a_github_value_fails_closed() {
    let (_moto, stack, config) = setup("closed", &[]).await;
    aws_sdk_secretsmanager::Client::new(&stack.sdk)
        .put_secret_value()
        .secret_id(&stack.secret_arn)
        .secret_string(json!({"gitlab": "only gitlab"}).to_string())
        .send()
        .await
        .unwrap();
    // The previous version still holds a GitHub secret: rotate once more to drop it.
    aws_sdk_secretsmanager::Client::new(&stack.sdk)
        .put_secret_value()
        .secret_id(&stack.secret_arn)
        .secret_string(json!({"gitlab": "only gitlab", "github": ""}).to_string())
        .send()
        .await
        .unwrap();
    let webhook = Webhook::new(config, &function_sdk(&stack, "webhook").await);
    let resp = push(&webhook, LOCAL_GITHUB_SECRET, "d-1").await;
    assert_eq!(resp.status_code, 401);
    assert!(arrived(&stack, &stack.tap_queue, Duration::from_millis(300)).await == 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_secret_is_refused_not_crashed() {
    let (_moto, stack, mut config) = setup("nosecret", &[]).await;
    config.secret_id = "arn:aws:secretsmanager:us-east-1:123456789012:secret:does-not-exist".into();
    let webhook = Webhook::new(config, &function_sdk(&stack, "webhook").await);
    let resp = push(&webhook, LOCAL_GITHUB_SECRET, "d-1").await;
    assert_eq!(resp.status_code, 401);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_bus_answers_503_and_the_redelivery_publishes() {
    let (_moto, stack, config) = setup("busfail", &[]).await;
    // EventBridge throttles every entry: the publisher retries, gives up, the sender sees 503.
    let throttled = mock!(aws_sdk_eventbridge::Client::put_events).then_output(|| {
        PutEventsOutput::builder()
            .failed_entry_count(1)
            .entries(
                PutEventsResultEntry::builder()
                    .error_code("ThrottlingException")
                    .error_message("Rate exceeded")
                    .build(),
            )
            .build()
    });
    let client = mock_client!(aws_sdk_eventbridge, RuleMode::MatchAny, [&throttled]);
    let fast = Backoff {
        attempts: 3,
        base: Duration::from_millis(1),
        cap: Duration::from_millis(2),
    };
    let failing = Webhook::with_publisher(
        config.clone(),
        &function_sdk(&stack, "webhook").await,
        Publisher::new(client, &stack.bus, 256 * 1024).with_backoff(fast),
    );
    let resp = push(&failing, LOCAL_GITHUB_SECRET, "d-retry").await;
    assert_eq!(resp.status_code, 503);
    assert_eq!(throttled.num_calls(), 3);

    // The claim was released: GitHub's redelivery, once the bus recovers, publishes the event.
    let healthy = Webhook::new(config, &function_sdk(&stack, "webhook").await);
    let resp = push(&healthy, LOCAL_GITHUB_SECRET, "d-retry").await;
    assert_eq!(resp.status_code, 202);
    assert_eq!(answer(&resp)["status"], "published");
    assert_eq!(
        arrived(&stack, &stack.tap_queue, Duration::from_secs(5)).await,
        1
    );
}

/// EventBridge does not answer at all (a black hole on loopback): the webhook still answers
/// before the invocation's deadline, with a 503 the sender retries, not the 502 of a timed-out
/// function; the redelivery publishes what the first delivery wrote, once.
#[tokio::test(flavor = "multi_thread")]
async fn a_bus_that_never_answers_gets_a_503_before_the_deadline() {
    let (_moto, stack, config) = setup("slowbus", &[]).await;
    let hole = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = hole.local_addr().unwrap();
    let held = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((socket, _)) = hole.accept().await {
            open.push(socket);
        }
    });
    let sdk = function_sdk(&stack, "webhook").await;
    let silent = aws_sdk_eventbridge::Client::from_conf(
        aws_sdk_eventbridge::config::Builder::from(&sdk)
            .endpoint_url(format!("http://{addr}"))
            .build(),
    );
    let failing = Webhook::with_publisher(
        config.clone(),
        &sdk,
        Publisher::new(silent, &stack.bus, 256 * 1024),
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    let req = github_delivery(LOCAL_GITHUB_SECRET, "push", "d-slow", &push_body());
    let resp = tokio::time::timeout_at(deadline, failing.handle_until(req, Some(deadline)))
        .await
        .expect("answered before the deadline");
    assert_eq!(resp.status_code, 503, "{:?}", resp.body);
    held.abort();

    let healthy = Webhook::new(config, &sdk);
    let resp = push(&healthy, LOCAL_GITHUB_SECRET, "d-slow").await;
    assert_eq!(resp.status_code, 202, "{:?}", resp.body);
    assert_eq!(answer(&resp)["status"], "published");
    let resp = push(&healthy, LOCAL_GITHUB_SECRET, "d-slow").await;
    assert_eq!(answer(&resp)["status"], "duplicate");
    assert_eq!(
        arrived(&stack, &stack.tap_queue, Duration::from_secs(5)).await,
        1
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn ignored_and_ping_deliveries_publish_nothing() {
    let (_moto, stack, config) = setup("quiet", &[]).await;
    let webhook = Webhook::new(config, &function_sdk(&stack, "webhook").await);
    let star = std::fs::read_to_string(corpus().join("github/star/created.payload.json")).unwrap();
    let resp = webhook
        .handle(github_delivery(
            LOCAL_GITHUB_SECRET,
            "star",
            "d-star",
            &star,
        ))
        .await;
    assert_eq!(resp.status_code, 202);
    assert_eq!(answer(&resp)["status"], "ignored");
    let ping = std::fs::read_to_string(corpus().join("github/ping/payload.json")).unwrap();
    let resp = webhook
        .handle(github_delivery(
            LOCAL_GITHUB_SECRET,
            "ping",
            "d-ping",
            &ping,
        ))
        .await;
    assert_eq!(resp.status_code, 200);
    assert!(arrived(&stack, &stack.tap_queue, Duration::from_millis(500)).await == 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_gitlab_push_is_published_once_whatever_its_idempotency_key() {
    let (_moto, stack, config) = setup("gitlab", &[]).await;
    let webhook = Webhook::new(config, &function_sdk(&stack, "webhook").await);
    let body = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../functions/webhook/tests/fixtures/gitlab/push.json"),
    )
    .unwrap();
    let send_as = |token: &'static str, key: &'static str| {
        delivery(
            "/gitlab",
            &[
                ("x-gitlab-event", "Push Hook"),
                ("x-gitlab-token", token),
                ("idempotency-key", key),
            ],
            &body,
        )
    };
    let send = |token: &'static str| send_as(token, "gl-key-1");
    assert_eq!(
        answer(&webhook.handle(send(LOCAL_GITLAB_TOKEN)).await)["status"],
        "published"
    );
    assert_eq!(
        answer(&webhook.handle(send(LOCAL_GITLAB_TOKEN)).await)["status"],
        "duplicate"
    );
    // The secret token signs nothing, so the Idempotency-Key is the sender's word: the same
    // delivery sent again under a new key is still a duplicate (its body is what counts).
    assert_eq!(
        answer(
            &webhook
                .handle(send_as(LOCAL_GITLAB_TOKEN, "gl-key-2"))
                .await
        )["status"],
        "duplicate"
    );
    assert_eq!(webhook.handle(send("wrong")).await.status_code, 401);
    let published: Vec<Value> = stack
        .drain(&stack.tap_queue, Duration::from_secs(5))
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e["detail-type"] == "Git Push")
        .collect();
    assert_eq!(published.len(), 1);
    assert_eq!(published[0]["detail"]["provider"], "gitlab");
    assert_eq!(published[0]["detail"]["branch"], "master");
    // mike/diaspora is no service's repository: its push starts no build.
    let routed = stack
        .drain(&stack.matched["PushRule"], Duration::from_secs(1))
        .await
        .unwrap();
    assert!(routed.is_empty(), "{routed:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_standard_webhook_is_forwarded_raw_once_per_webhook_id() {
    let (_moto, stack, config) = setup("standard", &[]).await;
    let webhook = Webhook::new(config, &function_sdk(&stack, "webhook").await);
    let body = r#"{"type":"invoice.paid","timestamp":"2026-11-22T10:00:00Z","data":{"id":"in_1","amount":4200}}"#;
    let now = eddo::idempotency::now_epoch();
    let sig = eddo_webhook::signature::standard_signature(
        LOCAL_STANDARD_SECRET,
        "msg_1",
        now,
        body.as_bytes(),
    )
    .unwrap();
    let ts = now.to_string();
    let req = || {
        delivery(
            "/standard",
            &[
                ("webhook-id", "msg_1"),
                ("webhook-timestamp", &ts),
                ("webhook-signature", &sig),
                ("content-type", "application/json"),
            ],
            body,
        )
    };
    let first = webhook.handle(req()).await;
    assert_eq!(first.status_code, 202, "{:?}", first.body);
    assert_eq!(answer(&first)["detail_type"], "Git Provider Event");
    assert_eq!(answer(&webhook.handle(req()).await)["status"], "duplicate");
    let all = stack
        .drain(&stack.tap_queue, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(all.len(), 1);
    assert_eq!(all[0]["detail"]["provider"], "standard_webhooks");
    assert_eq!(all[0]["detail"]["event"], "invoice.paid");
    assert_eq!(all[0]["detail"]["raw"]["data"]["amount"], 4200);
}

/// Collects what the JSON subscriber writes.
#[derive(Clone, Default)]
struct Capture(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "current_thread")]
async fn logs_carry_the_correlation_id_and_never_a_secret_or_payload() {
    let (_moto, stack, config) = setup("logs", &[]).await;
    let webhook = Webhook::new(config, &function_sdk(&stack, "webhook").await);
    let out = Capture::default();
    let writer = out.clone();
    let _guard =
        tracing::subscriber::set_default(eddo::telemetry::subscriber(move || writer.clone()));

    let mut body: Value = serde_json::from_str(&push_body()).unwrap();
    body["head_commit"]["message"] = json!("do not log me: AKIAIOSFODNN7EXAMPLE");
    let body = body.to_string();
    let ok = webhook
        .handle(github_delivery(
            LOCAL_GITHUB_SECRET,
            "push",
            "d-logs",
            &body,
        ))
        .await;
    assert_eq!(ok.status_code, 202);
    let forged = webhook
        .handle(github_delivery("wrong secret", "push", "d-forged", &body))
        .await;
    assert_eq!(forged.status_code, 401);
    drop(_guard);

    let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("every line is one JSON object"))
        .collect();
    let published = lines
        .iter()
        .find(|l| l["message"] == "published")
        .expect("a 'published' line");
    let spans = published["spans"].as_array().unwrap();
    assert!(
        spans.iter().any(|s| s["correlationId"] == "d-logs"),
        "{published}"
    );
    assert_eq!(published["detail_type"], "Git Push");
    assert!(
        lines.iter().any(|l| l["message"] == "signature rejected"),
        "{text}"
    );
    for needle in [
        LOCAL_GITHUB_SECRET,
        "wrong secret",
        "AKIAIOSFODNN7EXAMPLE",
        "sha256=",
        "\"head_commit\"",
    ] {
        assert!(
            !text.contains(needle),
            "the logs contain {needle:?}:\n{text}"
        );
    }
}

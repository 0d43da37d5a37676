//! Prometheus Alertmanager alerts as alarms, end to end on the local stack: Alertmanager's
//! notification (as its code writes it) goes through `/alertmanager/prometheus` (the webhook as
//! its role) to the bus; the template's rule hands what fires to alarm-rollback (as its role),
//! which rolls the release back once and says so. Read back: what the webhook answered, the
//! bus's events, what the rule delivered and the builds CodeBuild started.

use base64::Engine;
use eddo::idempotency::now_epoch;
use eddo::time::rfc3339;
use eddo_local::fixtures::{commit as sha, delivery, detail_types as types};
use eddo_local::moto::project_root;
use eddo_local::stack::LOCAL_PROMETHEUS_TOKEN;
use eddo_webhook::{Config, Webhook};
use serde_json::{Value, json};

use crate::harness::rollback::*;
use crate::harness::{example_policy, function_env, function_sdk};
use eddo_local::stack::LOCAL_JENKINS_TOKEN;

/// The rule that hands alerts to alarm-rollback.
const RULE: &str = "AlarmRollbackFunctionAlerts";

/// Alertmanager's notification `name`, its alerts starting at `starts` (and the resolved ones
/// ending at `ends`) epoch seconds.
fn notification(name: &str, starts: &[u64], ends: u64) -> Value {
    let path = project_root()
        .join("functions/webhook/tests/fixtures/alertmanager")
        .join(name);
    let mut n: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    for (alert, at) in n["alerts"].as_array_mut().unwrap().iter_mut().zip(starts) {
        alert["startsAt"] = json!(rfc3339(*at));
        if alert["status"] == "resolved" {
            alert["endsAt"] = json!(rfc3339(ends));
        }
    }
    n
}

async fn webhook(s: &Setup) -> Webhook {
    let config = Config::from_env(&function_env(&s.stack, "webhook")).unwrap();
    Webhook::new(config, &function_sdk(&s.stack, "webhook").await)
}

/// Posts `body` to `/alertmanager/prometheus` with `authorization`: the status and answer.
async fn notify(w: &Webhook, authorization: &str, body: &Value) -> (u16, Value) {
    let headers = [
        ("content-type", "application/json"),
        ("authorization", authorization),
    ];
    let resp = w
        .handle(delivery(
            "/alertmanager/prometheus",
            &headers,
            &body.to_string(),
        ))
        .await;
    (
        resp.status_code as u16,
        serde_json::from_str(resp.body.as_deref().unwrap_or("null")).unwrap(),
    )
}

/// Alertmanager's `basic_auth`: the sender's name and its token.
fn basic() -> String {
    let pair = format!("prometheus:{LOCAL_PROMETHEUS_TOKEN}");
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(pair)
    )
}

fn statuses(answer: &Value) -> Vec<&str> {
    answer["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["status"].as_str().unwrap())
        .collect()
}

/// What the template's rule delivered to alarm-rollback since the last look.
async fn delivered(s: &Setup) -> Vec<Value> {
    s.stack
        .drain(&s.stack.matched[RULE], std::time::Duration::from_secs(2))
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_firing_alertmanager_group_rolls_the_release_back_once_and_its_resolution_ends_the_incident()
 {
    let s = setup("alerts", None).await;
    let w = webhook(&s).await;
    let now = now_epoch();
    let (good, bad) = (sha(31), sha(32));
    s.deployed(&good, &bad, now - 600).await;

    // Without the sender's token: refused, nothing on the bus.
    let firing = notification("alertmanager-v4-firing.json", &[now - 60, now - 45], 0);
    let (status, _) = notify(
        &w,
        "Bearer not-prometheus-s-token-0123456789abcdef",
        &firing,
    )
    .await;
    assert_eq!(status, 401);
    assert!(s.local.published("eddo.webhook").await.is_empty());

    // The group fires (basic auth, as Alertmanager's basic_auth sends it), then Alertmanager
    // repeats it (a bearer token this time): each alert is published once.
    let (status, answer) = notify(&w, &basic(), &firing).await;
    assert_eq!(
        (status, statuses(&answer)),
        (202, vec!["published"; 2]),
        "{answer}"
    );
    let bearer = format!("Bearer {LOCAL_PROMETHEUS_TOKEN}");
    let (status, answer) = notify(&w, &bearer, &firing).await;
    assert_eq!(
        (status, statuses(&answer)),
        (202, vec!["duplicate"; 2]),
        "{answer}"
    );
    let received = s.local.published("eddo.webhook").await;
    assert_eq!(types(&received), ["Alert Received"; 2]);
    assert!(
        received
            .iter()
            .all(|e| e["detail"]["sender"] == "prometheus")
    );

    // The template's rule delivers both to alarm-rollback (each twice: at least once). The
    // first rolls back to the last known-good version; the second finds it in progress.
    let alerts = delivered(&s).await;
    assert_eq!(alerts.len(), 2);
    for e in &alerts {
        s.handle(e).await;
        s.handle(e).await;
    }
    let builds = s.rollback_builds();
    assert_eq!(builds.len(), 1, "one rollback");
    assert_eq!(builds[0].env("EDDO_COMMIT_SHA"), Some(good.as_str()));
    assert_eq!(
        builds[0].env("EDDO_REPLACED_COMMIT_SHA"),
        Some(bad.as_str())
    );
    assert_eq!(
        builds[0].env("EDDO_ALARM_NAME"),
        Some("HighErrorRate (prometheus)")
    );
    let said = s.published().await;
    assert_eq!(types(&said), ["Rollback Started", "Rollback Skipped"]);
    let started = &said[0]["detail"]["alarm"];
    assert_eq!(started["state"], "ALARM");
    assert_eq!(
        started["alert"],
        json!({"sender": "prometheus", "fingerprint": "4d1a4b2f0c3e9a71"})
    );
    assert_eq!(said[1]["detail"]["reason"], "in-progress");

    // The second alert resolves first: it rolled nothing back, so it ends nothing.
    let mut other = notification("alertmanager-v4-resolved.json", &[now - 45], now - 10);
    other["alerts"][0]["fingerprint"] = firing["alerts"][1]["fingerprint"].clone();
    other["alerts"][0]["labels"] = firing["alerts"][1]["labels"].clone();
    let (status, _) = notify(&w, &basic(), &other).await;
    assert_eq!(status, 202);
    let first = delivered(&s).await;
    assert_eq!(first.len(), 1);
    assert_eq!(first[0]["detail"]["status"], "resolved");
    assert!(s.handle(&first[0]).await.published.is_empty());

    // The alert that rolled the release back resolves: the rule delivers it, and alarm-rollback
    // says the incident is over (with the rollback's correlation), and starts nothing.
    let resolved = notification("alertmanager-v4-resolved.json", &[now - 60], now - 5);
    let (status, answer) = notify(&w, &basic(), &resolved).await;
    assert_eq!(
        (status, statuses(&answer)),
        (202, vec!["published"]),
        "{answer}"
    );
    let resolution = delivered(&s).await;
    assert_eq!(resolution.len(), 1, "{resolution:#?}");
    assert_eq!(resolution[0]["detail"]["status"], "resolved");
    s.handle(&resolution[0]).await;
    let said = s.published().await;
    assert_eq!(types(&said), ["Alarm Recovered"]);
    let recovered = &said[0]["detail"];
    assert_eq!(recovered["alarm"]["state"], "OK");
    assert_eq!(recovered["restored"]["commit"], good.as_str());
    assert_eq!(recovered["replaced"]["commit"], bad.as_str());
    assert_eq!(
        recovered["rollback_build_id"],
        s.rollback_builds()[0].id.as_str()
    );
    assert_eq!(s.rollback_builds().len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_alert_no_service_claims_or_not_from_the_webhook_is_reported_and_starts_nothing() {
    let s = setup("alerts-no", None).await;
    let w = webhook(&s).await;
    let now = now_epoch();
    s.deployed(&sha(41), &sha(42), now - 600).await;

    // Another job's alert: the policy's rollback.alerts take job hello-world with severity page.
    let mut other = notification("alertmanager-v4-firing.json", &[now - 60, now - 45], 0);
    other["alerts"][0]["labels"]["job"] = json!("payments");
    other["alerts"][1]["labels"]["severity"] = json!("ticket");
    let (status, _) = notify(&w, &basic(), &other).await;
    assert_eq!(status, 202);
    let alerts = delivered(&s).await;
    assert_eq!(alerts.len(), 2);
    for e in &alerts {
        s.handle(e).await;
    }
    let said = s.published().await;
    assert_eq!(types(&said), ["Rollback Skipped"; 2]);
    for e in &said {
        assert_eq!(e["detail"]["reason"], "unknown-alarm");
        let why = e["detail"]["reasons"][0].as_str().unwrap();
        assert!(
            why.contains("matches no service's rollback.alerts for sender prometheus"),
            "{why}"
        );
    }

    // The same alert put by anyone but the webhook is no alert: reported, never acted on.
    let mut forged = alerts[0].clone();
    forged["source"] = json!("com.example.alerts");
    forged["id"] = json!("forged-1");
    forged["detail"]["labels"]["job"] = json!("hello-world");
    s.handle(&forged).await;
    let said = s.published().await;
    assert_eq!(types(&said), ["Rollback Skipped"]);
    assert_eq!(said[0]["detail"]["reason"], "unreadable");
    assert!(s.rollback_builds().is_empty());
}

/// The example policy, hello-world's rollback also taking jenkins's incidents about it in prod.
fn with_incidents() -> String {
    let example = example_policy();
    let policy = example.replacen(
        "        - {sender: prometheus, labels: {job: hello-world, severity: page}}\n",
        "        - {sender: prometheus, labels: {job: hello-world, severity: page}}\n        - {sender: jenkins, labels: {service: hello-world, environment: prod}}\n",
        1,
    );
    assert_ne!(policy, example);
    policy
}

/// A CDEvents incident about hello-world in prod (spec 0.5.1), as a monitoring tool reports it.
fn incident(id: &str, predicate: &str, at: u64) -> Value {
    let (ty, description) = match predicate {
        "detected" => ("dev.cdevents.incident.detected.0.3.0", "p99 over 2 s"),
        _ => ("dev.cdevents.incident.resolved.0.3.0", "p99 back under 2 s"),
    };
    json!({
        "context": {"specversion": "0.5.1", "id": id, "source": "/monitoring/prod",
            "type": ty, "timestamp": rfc3339(at)},
        "subject": {"id": "incident-7", "source": "/monitoring/prod",
            "content": {"description": description, "environment": {"id": "prod"},
                "service": {"id": "hello-world"}}},
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cdevents_incident_rolls_the_release_back_and_its_resolution_ends_it() {
    let s = setup("incidents", Some(&with_incidents())).await;
    let w = webhook(&s).await;
    let now = now_epoch();
    let (good, bad) = (sha(51), sha(52));
    s.deployed(&good, &bad, now - 600).await;

    // jenkins reports the incident with its bearer token, in binary content mode, twice.
    let post = |event: Value| {
        let w = &w;
        async move {
            let bearer = format!("Bearer {LOCAL_JENKINS_TOKEN}");
            let ctx = &event["context"];
            let headers = [
                ("content-type", "application/json"),
                ("authorization", bearer.as_str()),
                ("ce-specversion", "1.0"),
                ("ce-id", ctx["id"].as_str().unwrap()),
                ("ce-source", ctx["source"].as_str().unwrap()),
                ("ce-type", ctx["type"].as_str().unwrap()),
            ];
            let resp = w
                .handle(delivery("/cdevents/jenkins", &headers, &event.to_string()))
                .await;
            let answer: Value =
                serde_json::from_str(resp.body.as_deref().unwrap_or("null")).unwrap();
            (
                resp.status_code as u16,
                answer["events"][0]["status"].clone(),
            )
        }
    };
    let detected = incident("inc-7-detected", "detected", now - 30);
    assert_eq!(post(detected.clone()).await, (202, json!("published")));
    assert_eq!(post(detected).await, (202, json!("duplicate")));
    let received = s.local.published("eddo.webhook").await;
    assert_eq!(types(&received), ["Alert Received"]);
    assert_eq!(received[0]["detail"]["kind"], "cdevents");

    let alerts = delivered(&s).await;
    assert_eq!(alerts.len(), 1);
    s.handle(&alerts[0]).await;
    s.handle(&alerts[0]).await;
    let builds = s.rollback_builds();
    assert_eq!(builds.len(), 1, "one rollback");
    assert_eq!(builds[0].env("EDDO_COMMIT_SHA"), Some(good.as_str()));
    assert_eq!(types(&s.published().await), ["Rollback Started"]);

    // Resolved: published as the incident's new state, delivered to alarm-rollback, which says
    // the incident that rolled the release back is over, and starts nothing.
    let resolved = incident("inc-7-resolved", "resolved", now - 5);
    assert_eq!(post(resolved).await, (202, json!("published")));
    let received = s.local.published("eddo.webhook").await;
    assert_eq!(
        (
            &received[0]["detail"]["status"],
            &received[0]["detail"]["fingerprint"]
        ),
        (&json!("resolved"), &alerts[0]["detail"]["fingerprint"])
    );
    let resolution = delivered(&s).await;
    assert_eq!(resolution.len(), 1);
    s.handle(&resolution[0]).await;
    let said = s.published().await;
    assert_eq!(types(&said), ["Alarm Recovered"]);
    assert_eq!(said[0]["detail"]["restored"]["commit"], good.as_str());
    assert_eq!(s.rollback_builds().len(), 1);
}

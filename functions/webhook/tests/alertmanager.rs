//! Alerts in: Alertmanager's and Grafana's notifications, as their code writes them
//! (`tests/fixtures/alertmanager/`), through `/alertmanager/<sender>`: the sender proven by basic
//! auth or a bearer token, or refused 401; one `Alert Received` per alert, in the contract's
//! shape; a group's repeat has the keys it had, a resolution and a new firing new ones; a payload
//! version eddo does not read is a 422 naming those it does.

mod common;

use base64::Engine;
use common::*;
use eddo_webhook::Reply;
use eddo_webhook::alertmanager::{self, Notification, ROUTE};
use serde_json::{Value, json};

fn fixture(name: &str) -> Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/alertmanager")
        .join(name);
    serde_json::from_str(&read(&path)).unwrap()
}

enum Auth<'a> {
    Basic(&'a str, &'a str),
    Bearer(&'a str),
    None,
}

fn notify(sender: &str, auth: Auth<'_>, body: &Value) -> Result<Notification, Reply> {
    let authorization = match auth {
        Auth::Basic(user, password) => Some(format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
        )),
        Auth::Bearer(token) => Some(format!("Bearer {token}")),
        Auth::None => None,
    };
    let mut headers = vec![("content-type", "application/json")];
    if let Some(a) = &authorization {
        headers.push(("authorization", a));
    }
    let body = body.to_string();
    let path = format!("{ROUTE}{sender}");
    let req = request("POST", &path, &headers, &body);
    let sender = alertmanager::route(&path).expect("an alert route")?;
    alertmanager::accept(sender, &req.headers, body.as_bytes(), &secrets())
}

/// The `Alert Received` details of a notification, each checked against the contract.
fn published(n: &Notification) -> Vec<Value> {
    let schema = schema("alert-received");
    n.alerts
        .iter()
        .map(|a| {
            let entry = alertmanager::outgoing(&n.group, a, 256 * 1024).unwrap();
            assert_eq!(entry.detail_type, "Alert Received");
            let detail: Value = serde_json::from_str(&entry.detail).unwrap();
            assert!(schema.is_valid(&detail), "{detail}");
            detail
        })
        .collect()
}

fn keys(n: &Notification) -> Vec<String> {
    n.alerts
        .iter()
        .map(|a| alertmanager::dedupe(&n.group.sender, a))
        .collect()
}

#[test]
fn an_alertmanager_group_is_one_event_per_alert_and_its_repeat_the_same_keys() {
    let firing = fixture("alertmanager-v4-firing.json");
    let n = notify(
        "prometheus",
        Auth::Basic("prometheus", PROMETHEUS_TOKEN),
        &firing,
    )
    .unwrap();
    assert_eq!(n.group.kind, alertmanager::Kind::Alertmanager);
    let details = published(&n);
    assert_eq!(details.len(), 2, "one event per alert of the group");
    let d = &details[0];
    assert_eq!(
        (&d["sender"], &d["kind"], &d["status"]),
        (
            &json!("prometheus"),
            &json!("alertmanager"),
            &json!("firing")
        )
    );
    assert_eq!(d["fingerprint"], "4d1a4b2f0c3e9a71");
    assert_eq!(d["starts_at"], "2026-12-07T12:03:21Z");
    assert_eq!(d["ends_at"], Value::Null, "a firing alert has not ended");
    assert_eq!(d["labels"]["job"], "hello-world");
    assert_eq!(d["summary"], "hello-world answers 5xx");
    assert_eq!(d["group_key"], firing["groupKey"]);
    assert_eq!(
        d["metadata"]["correlation_id"],
        "alert:prometheus:4d1a4b2f0c3e9a71"
    );
    assert_eq!(details[1]["fingerprint"], "9b0c77e15a2d4f38");

    // Alertmanager sends the group again every repeat_interval: the same keys, nothing new.
    let again = notify("prometheus", Auth::Bearer(PROMETHEUS_TOKEN), &firing).unwrap();
    assert_eq!(keys(&again), keys(&n));

    // The next notification resolves the first alert: a new state, a new key, its end said.
    let resolved = fixture("alertmanager-v4-resolved.json");
    let r = notify(
        "prometheus",
        Auth::Basic("prometheus", PROMETHEUS_TOKEN),
        &resolved,
    )
    .unwrap();
    let rd = &published(&r)[0];
    assert_eq!(
        (&rd["status"], &rd["ends_at"]),
        (&json!("resolved"), &json!("2026-12-07T12:21:06Z"))
    );
    assert!(!keys(&n).contains(&keys(&r)[0]));

    // The same alert firing again later starts anew: another key.
    let mut refired = firing.clone();
    refired["alerts"][0]["startsAt"] = json!("2026-12-07T14:00:00Z");
    let f = notify("prometheus", Auth::Bearer(PROMETHEUS_TOKEN), &refired).unwrap();
    assert_ne!(keys(&f)[0], keys(&n)[0]);
    assert_eq!(keys(&f)[1], keys(&n)[1]);
}

#[test]
fn a_grafana_notification_reads_with_its_bearer_token() {
    let n = notify(
        "grafana",
        Auth::Bearer(GRAFANA_TOKEN),
        &fixture("grafana-v1-firing.json"),
    )
    .unwrap();
    assert_eq!(n.group.kind, alertmanager::Kind::Grafana);
    let d = &published(&n)[0];
    assert_eq!(
        (&d["sender"], &d["kind"]),
        (&json!("grafana"), &json!("grafana"))
    );
    assert_eq!(d["fingerprint"], "fac0861a85de433a");
    assert_eq!(d["labels"], json!({"alertname": "alert1", "lbl1": "val1"}));
    assert_eq!(
        d["ends_at"],
        Value::Null,
        "a firing alert's endsAt is when it would resolve unless repeated, not an end"
    );
}

#[test]
fn a_notification_without_the_senders_own_token_is_a_401() {
    let firing = fixture("alertmanager-v4-firing.json");
    for (sender, auth) in [
        ("prometheus", Auth::None),
        ("prometheus", Auth::Bearer(GRAFANA_TOKEN)),
        ("prometheus", Auth::Basic("prometheus", JENKINS_TOKEN)),
        // The right password under another username: the username names the sender.
        ("prometheus", Auth::Basic("grafana", PROMETHEUS_TOKEN)),
        ("grafana", Auth::Bearer(PROMETHEUS_TOKEN)),
        ("nobody", Auth::Bearer(PROMETHEUS_TOKEN)),
        // A CDEvents sender's key is no token.
        ("tekton", Auth::Bearer(TEKTON_KEY)),
    ] {
        let err = notify(sender, auth, &firing).unwrap_err();
        assert_eq!(err.status, 401, "{sender}");
        assert_eq!(err.body["error"], "the sender could not be authenticated");
    }
    assert_eq!(
        alertmanager::route("/alertmanager/Not_A_Name")
            .unwrap()
            .unwrap_err()
            .status,
        404
    );
}

#[test]
fn what_eddo_cannot_read_is_answered_with_why() {
    let firing = fixture("alertmanager-v4-firing.json");
    let send =
        |body: &Value| notify("prometheus", Auth::Bearer(PROMETHEUS_TOKEN), body).unwrap_err();
    // Another payload version (a Grafana version without Grafana's orgId too): 422, naming both.
    for version in [json!({"version": "3"}), json!({"version": "1"})] {
        let mut body = firing.clone();
        body["version"] = version["version"].clone();
        let err = send(&body);
        assert_eq!(err.status, 422);
        let why = err.body["error"].as_str().unwrap();
        assert!(
            why.contains("version 4") && why.contains("version 1"),
            "{why}"
        );
    }
    for (field, value, says) in [
        ("status", json!("pending"), "neither firing nor resolved"),
        ("startsAt", json!("yesterday"), "startsAt"),
        ("fingerprint", json!(""), "fingerprint"),
    ] {
        let mut body = firing.clone();
        body["alerts"][1][field] = value;
        let err = send(&body);
        assert_eq!(err.status, 400, "{field}");
        let why = err.body["error"].as_str().unwrap();
        assert!(why.starts_with("alert 1: ") && why.contains(says), "{why}");
    }
    let mut body = fixture("alertmanager-v4-resolved.json");
    body["alerts"][0]["endsAt"] = json!("0001-01-01T00:00:00Z");
    assert!(
        send(&body).body["error"]
            .as_str()
            .unwrap()
            .contains("endsAt")
    );
    // More alerts than one notification may hold: 413, saying how to keep under it.
    let mut body = firing.clone();
    body["alerts"] = Value::Array(vec![firing["alerts"][0].clone(); 51]);
    let err = send(&body);
    assert_eq!(err.status, 413);
    assert!(err.body["error"].as_str().unwrap().contains("max_alerts"));
    body["alerts"] = json!([]);
    assert_eq!(send(&body).status, 400);
    assert_eq!(send(&json!({"text": "hi"})).status, 400);
}

#[test]
fn the_example_events_are_what_the_webhook_publishes() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../infra/examples/events");
    for (fixture_name, example) in [
        ("alertmanager-v4-firing.json", "alert-received.json"),
        (
            "alertmanager-v4-resolved.json",
            "alert-received-resolved.json",
        ),
    ] {
        let n = notify(
            "prometheus",
            Auth::Bearer(PROMETHEUS_TOKEN),
            &fixture(fixture_name),
        )
        .unwrap();
        let example: Value = serde_json::from_str(&read(&root.join(example))).unwrap();
        assert_eq!(example["detail-type"], "Alert Received");
        assert_eq!(published(&n)[0], example["detail"], "{fixture_name}");
    }
}

//! Signed signals: a tool reports a gate signal to `/signals/<sender>`, signed with that sender's
//! own key; the webhook publishes it naming the verified sender, and refuses anything else with
//! the right 4xx.

mod common;

use common::*;
use eddo_webhook::signals::{self, ROUTE};
use eddo_webhook::signature::standard_signature;
use serde_json::{Value, json};

const NOW: u64 = 1_800_000_000;
const COMMIT: &str = "6113728f27ae82c7b1a177c8d03f9e96e0adf246";

fn data() -> Value {
    json!({"service": "hello-world", "commit_sha": COMMIT, "kind": "approval", "passed": true, "by": "alice"})
}

fn headers(key: &str, id: &str, body: &str) -> http::HeaderMap {
    let sig = standard_signature(key, id, NOW, body.as_bytes()).unwrap();
    let req = request(
        "POST",
        "/signals/chatops",
        &[
            ("webhook-id", id),
            ("webhook-timestamp", &NOW.to_string()),
            ("webhook-signature", &sig),
        ],
        body,
    );
    req.headers
}

fn deliver(sender: &str, key: &str, payload: &Value) -> Result<signals::Signal, u16> {
    let body = payload.to_string();
    let sender = signals::route(&format!("{ROUTE}{sender}"))
        .expect("a signals route")
        .map_err(|r| r.status)?;
    signals::accept(
        sender,
        &headers(key, "msg_1", &body),
        body.as_bytes(),
        &secrets(),
        &config(&[]),
        NOW,
    )
    .map_err(|r| r.status)
}

#[test]
fn a_signed_signal_is_published_naming_its_verified_sender() {
    let signal = deliver(
        "chatops",
        CHATOPS_KEY,
        &json!({"type": "signal.reported", "timestamp": "2027-01-15T08:00:00Z", "data": data()}),
    )
    .unwrap();
    assert_eq!(signal.delivery_id, "msg_1", "the signed webhook-id");
    let entry = signals::outgoing(signal, 256 * 1024).unwrap();
    let detail: Value = serde_json::from_str(&entry.detail).unwrap();
    assert_eq!(detail["sender"], "chatops");
    assert_eq!(detail["kind"], "approval");
    assert_eq!(detail["metadata"]["causation_id"], "msg_1");
    assert_eq!(entry.detail_type, "Signal Reported");
    // It is the schema's shape.
    let schema: Value = serde_json::from_str(&read(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../infra/schemas/signal-reported.schema.json"),
    ))
    .unwrap();
    assert!(
        jsonschema::validator_for(&schema)
            .unwrap()
            .is_valid(&detail)
    );
}

#[test]
fn only_the_senders_own_key_opens_its_route() {
    let ok = json!({"type": "signal.reported", "data": data()});
    // Another sender's key, the generic Standard Webhooks key, a sender without a key: 401.
    assert_eq!(deliver("chatops", STANDARD_SECRET, &ok).unwrap_err(), 401);
    assert_eq!(deliver("semgrep", CHATOPS_KEY, &ok).unwrap_err(), 401);
    // Not a sender name: no such route.
    assert_eq!(deliver("Chat Ops", CHATOPS_KEY, &ok).unwrap_err(), 404);
}

#[test]
fn a_malformed_signal_is_a_400_naming_what_is_wrong() {
    let mut claims_sender = data();
    claims_sender["sender"] = json!("contract-check");
    let mut no_verdict = data();
    no_verdict.as_object_mut().unwrap().remove("passed");
    let mut no_service = data();
    no_service.as_object_mut().unwrap().remove("service");
    for payload in [
        json!({"type": "invoice.paid", "data": data()}),
        json!({"type": "signal.reported", "data": "approve"}),
        json!({"type": "signal.reported", "data": claims_sender}),
        json!({"type": "signal.reported", "data": no_verdict}),
        json!({"type": "signal.reported", "data": no_service}),
    ] {
        assert_eq!(
            deliver("chatops", CHATOPS_KEY, &payload).unwrap_err(),
            400,
            "{payload}"
        );
    }
}

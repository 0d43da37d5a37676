//! CDEvents in: the spec's own examples of the types eddo takes, in every spec version eddo
//! supports, through `/cdevents/<sender>` in binary and structured content mode and as a batch;
//! the sender proven by its key or its token, or refused 401; a type eddo does not take refused
//! 422 naming what it takes; what is published is the contract's shape.

mod common;

use common::*;
use eddo_webhook::Reply;
use eddo_webhook::cdevents::{self, Delivery, ROUTE};
use eddo_webhook::signature::standard_signature;
use serde_json::{Value, json};

const NOW: u64 = 1_800_000_000;
const DIGEST: &str = "0b31b1c02ff458ad9b7b81cbdf8f028bd54699fa151f221d1e8de6817db93427";
const COMMIT: &str = "6113728f27ae82c7b1a177c8d03f9e96e0adf246";
const TYPES: [&str; 5] = [
    "testsuiterun_finished",
    "testcaserun_finished",
    "build_finished",
    "artifact_signed",
    "artifact_published",
];
const SPECS: [&str; 3] = ["0.3.0", "0.4.1", "0.5.1"];

fn example(spec: &str, ty: &str) -> Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/cdevents")
        .join(format!("{spec}-{ty}.json"));
    serde_json::from_str(&read(&path)).unwrap()
}

/// An example as a tool of the user's sends it: naming an OCI image (by its digest) or, for a
/// test run, what it tested in `customData` (the commit; the image for a 0.3.0 one, so both are
/// read).
fn as_sent(spec: &str, ty: &str) -> Value {
    let mut e = example(spec, ty);
    let image = format!("pkg:oci/hello-world@sha256%3A{DIGEST}");
    match ty {
        "artifact_signed" | "artifact_published" => e["subject"]["id"] = json!(image),
        "build_finished" => e["subject"]["content"]["artifactId"] = json!(image),
        _ if spec == "0.3.0" => e["customData"] = json!({"artifactId": image}),
        _ => e["customData"] = json!({"commit": COMMIT}),
    }
    e
}

/// Binary content mode: the CloudEvent's attributes in `ce-` headers, the CDEvent the body.
fn binary(cdevent: &Value) -> (Vec<(String, String)>, String) {
    let ctx = &cdevent["context"];
    let headers = vec![
        ("content-type".into(), "application/json".into()),
        ("ce-specversion".into(), "1.0".into()),
        ("ce-id".into(), ctx["id"].as_str().unwrap().into()),
        ("ce-source".into(), ctx["source"].as_str().unwrap().into()),
        ("ce-type".into(), ctx["type"].as_str().unwrap().into()),
    ];
    (headers, cdevent.to_string())
}

fn cloud_event(cdevent: &Value) -> Value {
    let ctx = &cdevent["context"];
    json!({"specversion": "1.0", "id": ctx["id"], "source": ctx["source"], "type": ctx["type"],
        "datacontenttype": "application/json", "data": cdevent})
}

/// Structured content mode: the whole CloudEvent the body, the CDEvent its data.
fn structured(cdevent: &Value) -> (Vec<(String, String)>, String) {
    let headers = vec![("content-type".into(), "application/cloudevents+json".into())];
    (headers, cloud_event(cdevent).to_string())
}

enum Proof<'a> {
    Key(&'a str),
    Token(&'a str),
    None,
}

fn deliver(
    sender: &str,
    proof: Proof<'_>,
    (mut headers, body): (Vec<(String, String)>, String),
) -> Result<Delivery, Reply> {
    match proof {
        Proof::Key(key) => {
            let sig = standard_signature(key, "msg_1", NOW, body.as_bytes()).unwrap();
            headers.push(("webhook-id".into(), "msg_1".into()));
            headers.push(("webhook-timestamp".into(), NOW.to_string()));
            headers.push(("webhook-signature".into(), sig));
        }
        Proof::Token(token) => headers.push(("authorization".into(), format!("Bearer {token}"))),
        Proof::None => {}
    }
    let pairs: Vec<(&str, &str)> = headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let req = request("POST", &format!("{ROUTE}{sender}"), &pairs, &body);
    let sender = cdevents::route(&format!("{ROUTE}{sender}")).expect("a CDEvents route")?;
    cdevents::accept(
        sender,
        &req.headers,
        body.as_bytes(),
        &secrets(),
        &config(&[]),
        NOW,
    )
}

#[test]
fn every_type_in_every_spec_version_in_both_modes_is_published_naming_its_sender() {
    let schema = schema("cdevent-received");
    for spec in SPECS {
        for ty in TYPES {
            let sent = as_sent(spec, ty);
            for (mode, http) in [("binary", binary(&sent)), ("structured", structured(&sent))] {
                let at = format!("{spec} {ty} {mode}");
                let delivery = deliver("tekton", Proof::Key(TEKTON_KEY), http)
                    .unwrap_or_else(|r| panic!("{at}: {} {}", r.status, r.body));
                assert_eq!(delivery.events.len(), 1, "{at}");
                let received = &delivery.events[0];
                assert_eq!(received.ty, sent["context"]["type"], "{at}");
                let entry = cdevents::outgoing(&delivery.sender, received, 256 * 1024).unwrap();
                assert_eq!(entry.detail_type, "CDEvent Received");
                let detail: Value = serde_json::from_str(&entry.detail).unwrap();
                assert_eq!(detail["sender"], "tekton", "{at}");
                assert!(schema.is_valid(&detail), "{at}: {detail}");
                // The chain the sender gives is the change's correlation id.
                let chain = sent["context"]["chainId"].as_str();
                let id = sent["context"]["id"].as_str();
                assert_eq!(
                    detail["metadata"]["correlation_id"].as_str(),
                    chain.or(id),
                    "{at}"
                );
                // The CDEvent published is the one sent: its identity, its subject (the image or
                // commit the gate matches it on) and the customData naming what a run tested.
                let published = &detail["cdevent"];
                for field in ["id", "source", "type"] {
                    assert_eq!(published["context"][field], sent["context"][field], "{at}");
                }
                assert_eq!(published["subject"]["id"], sent["subject"]["id"], "{at}");
                assert_eq!(
                    published["subject"]["content"], sent["subject"]["content"],
                    "{at}"
                );
                assert_eq!(published["customData"], sent["customData"], "{at}");
            }
        }
    }
}

#[test]
fn a_batch_is_each_of_its_events_and_a_bearer_token_proves_a_sender_that_cannot_sign() {
    // Each its own id, as CloudEvents asks of a producer (the spec's examples share one).
    let events: Vec<Value> = TYPES
        .iter()
        .enumerate()
        .map(|(i, ty)| {
            let mut e = as_sent("0.5.1", ty);
            e["context"]["id"] = json!(format!("jenkins-{i}"));
            cloud_event(&e)
        })
        .collect();
    let batch = (
        vec![(
            "content-type".to_string(),
            "application/cloudevents-batch+json".to_string(),
        )],
        Value::Array(events).to_string(),
    );
    let delivery = deliver("jenkins", Proof::Token(JENKINS_TOKEN), batch.clone()).unwrap();
    let types: Vec<&str> = delivery.events.iter().map(|e| e.ty.as_str()).collect();
    assert_eq!(
        types,
        [
            "dev.cdevents.testsuiterun.finished.0.3.0",
            "dev.cdevents.testcaserun.finished.0.3.0",
            "dev.cdevents.build.finished.0.3.0",
            "dev.cdevents.artifact.signed.0.3.0",
            "dev.cdevents.artifact.published.0.3.0",
        ]
    );
    // Each is deduplicated on its own (sender, source, id); the same source and id from another
    // sender is another event (no sender can pre-empt another's).
    let keys: std::collections::BTreeSet<String> = delivery
        .events
        .iter()
        .map(|e| cdevents::dedupe(&delivery.sender, e))
        .collect();
    assert_eq!(keys.len(), 5);
    let tekton = eddo::names::SenderName::parse("tekton").unwrap();
    assert!(!keys.contains(&cdevents::dedupe(&tekton, &delivery.events[0])));
    // Eleven events are more than a delivery may hold.
    let eleven: Vec<Value> = (0..11)
        .map(|_| cloud_event(&as_sent("0.5.1", "build_finished")))
        .collect();
    let over = (batch.0.clone(), Value::Array(eleven).to_string());
    assert_eq!(
        deliver("jenkins", Proof::Token(JENKINS_TOKEN), over)
            .unwrap_err()
            .status,
        400
    );
}

#[test]
fn a_delivery_without_the_senders_own_proof_is_a_401() {
    let sent = structured(&as_sent("0.5.1", "testsuiterun_finished"));
    for (sender, proof) in [
        ("tekton", Proof::None),
        ("tekton", Proof::Key(CHATOPS_KEY)),
        ("tekton", Proof::Token(JENKINS_TOKEN)),
        (
            "jenkins",
            Proof::Token("jenkins-cdevents-token-0123456789abcdeX"),
        ),
        ("jenkins", Proof::Key(TEKTON_KEY)),
        ("nobody", Proof::Token(JENKINS_TOKEN)),
    ] {
        let err = deliver(sender, proof, sent.clone()).unwrap_err();
        assert_eq!(err.status, 401, "{sender}");
        assert_eq!(err.body["error"], "the sender could not be authenticated");
    }
    assert_eq!(
        cdevents::route("/cdevents/Not_A_Name")
            .unwrap()
            .unwrap_err()
            .status,
        404
    );
}

#[test]
fn a_type_eddo_does_not_take_is_a_422_naming_those_it_does() {
    let mut sent = as_sent("0.5.1", "testsuiterun_finished");
    sent["context"]["type"] = json!("dev.cdevents.pipelinerun.finished.0.2.0");
    let err = deliver("tekton", Proof::Key(TEKTON_KEY), structured(&sent)).unwrap_err();
    assert_eq!(err.status, 422);
    let why = err.body["error"].as_str().unwrap();
    assert!(
        why.contains("pipelinerun.finished")
            && why.contains("testsuiterun.finished (0.1.0, 0.2.0, 0.3.0)"),
        "{why}"
    );
    // A version of a type eddo takes, from no spec it supports.
    sent["context"]["type"] = json!("dev.cdevents.testsuiterun.finished.0.9.0");
    let err = deliver("tekton", Proof::Key(TEKTON_KEY), structured(&sent)).unwrap_err();
    assert_eq!(err.status, 422);
    // The spec's own examples name no image eddo can match (a Go module, no test subject):
    // read by the SDK, then refused with what to send.
    for (http, says) in [
        (
            structured(&example("0.5.1", "artifact_signed")),
            "OCI image purl",
        ),
        (
            binary(&example("0.4.1", "testsuiterun_finished")),
            "customData.commit",
        ),
    ] {
        let err = deliver("tekton", Proof::Key(TEKTON_KEY), http).unwrap_err();
        assert_eq!(err.status, 422);
        let why = err.body["error"].as_str().unwrap();
        assert!(why.contains(says), "{why}");
    }
}

#[test]
fn a_malformed_event_is_a_400_and_binary_headers_must_be_its_context() {
    let sent = as_sent("0.5.1", "build_finished");
    // ce- headers that say another id than the signed body's context.
    let (mut headers, body) = binary(&sent);
    headers.retain(|(k, _)| k != "ce-id");
    headers.push(("ce-id".into(), "another-id".into()));
    let err = deliver("tekton", Proof::Key(TEKTON_KEY), (headers, body)).unwrap_err();
    assert_eq!(err.status, 400);
    assert!(
        err.body["error"].as_str().unwrap().contains("id"),
        "{}",
        err.body
    );
    // Not a CloudEvent at all.
    let plain = (
        vec![("content-type".into(), "application/json".into())],
        sent.to_string(),
    );
    assert_eq!(
        deliver("tekton", Proof::Key(TEKTON_KEY), plain)
            .unwrap_err()
            .status,
        400
    );
    // A CDEvent whose content breaks its type's schema (an outcome the spec does not have).
    let mut bad = as_sent("0.5.1", "testsuiterun_finished");
    bad["subject"]["content"]["outcome"] = json!("maybe");
    assert_eq!(
        deliver("tekton", Proof::Key(TEKTON_KEY), structured(&bad))
            .unwrap_err()
            .status,
        400
    );
}

#[test]
fn an_incident_in_every_spec_version_and_mode_is_an_alert_of_its_service_and_environment() {
    let schema = schema("alert-received");
    for spec in SPECS {
        let mut fingerprints = std::collections::BTreeSet::new();
        for (ty, status) in [
            ("incident_detected", "firing"),
            ("incident_resolved", "resolved"),
        ] {
            let mut sent = example(spec, ty);
            // Each event its own id, as a sender gives it (the spec's examples share one).
            sent["context"]["id"] = json!(format!("{ty}-1"));
            for (mode, http) in [("binary", binary(&sent)), ("structured", structured(&sent))] {
                let at = format!("{spec} {ty} {mode}");
                let delivery = deliver("jenkins", Proof::Token(JENKINS_TOKEN), http)
                    .unwrap_or_else(|r| panic!("{at}: {} {}", r.status, r.body));
                let received = &delivery.events[0];
                let alert = received.incident.as_ref().expect("an incident is an alert");
                let entry = eddo_webhook::alertmanager::outgoing(
                    &eddo_webhook::alertmanager::incident(&delivery.sender),
                    alert,
                    256 * 1024,
                )
                .unwrap();
                assert_eq!(entry.detail_type, "Alert Received", "{at}");
                let d: Value = serde_json::from_str(&entry.detail).unwrap();
                assert!(schema.is_valid(&d), "{at}: {d}");
                assert_eq!(
                    (&d["sender"], &d["kind"], &d["status"]),
                    (&json!("jenkins"), &json!("cdevents"), &json!(status)),
                    "{at}"
                );
                assert_eq!(
                    d["labels"],
                    json!({"service": "myApp", "environment": "prod1"}),
                    "{at}"
                );
                assert_eq!(d["starts_at"], "2022-11-11T13:52:20Z", "{at}");
                assert!(d["summary"].as_str().unwrap().starts_with("Response time"));
                fingerprints.insert(d["fingerprint"].as_str().unwrap().to_string());
            }
        }
        // Detected and resolved are one incident (its source and subject id): one alarm.
        assert_eq!(fingerprints.len(), 1, "{spec}: {fingerprints:?}");
    }
}

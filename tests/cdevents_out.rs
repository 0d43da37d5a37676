//! eddo's decisions as CDEvents, out: what the gate and alarm-rollback put on the bus beside a
//! decision, valid under the CDEvents spec's own schemas (0.4.1, vendored with their commit in
//! `infra/schemas/contracts/cdevents/`) and readable by the CD Foundation's SDK; and what the
//! template's API destination delivers to a CloudEvents sink on loopback: the structured-mode
//! CloudEvent with the connection's token, retried as EventBridge retries, dead-lettered when
//! the sink refuses it. Read back: the sink's requests, the dead-letter queue, the bus.

use std::time::Duration;

use eddo::DetailType;
use eddo::cdevents::emit::{Producer, cdevent_of};
use eddo::event::{Envelope, Metadata};
use eddo::publish::OutgoingEvent;
use eddo_local::moto::project_root;
use eddo_local::sink::{LOCAL_SINK_TOKEN, Sink};
use eddo_local::stack::Stack;
use serde_json::{Value, json};

use crate::harness::gate::*;

/// The rule that delivers CDEvents to the sink.
const RULE: &str = "CDEventsRule";

/// Resolves the spec's `$ref`s (`links/...`) to the vendored copies: nothing is fetched.
struct Vendored;

impl jsonschema::Retrieve for Vendored {
    fn retrieve(
        &self,
        uri: &jsonschema::Uri<String>,
    ) -> Result<Value, Box<dyn std::error::Error + Send + Sync>> {
        let name = uri
            .as_str()
            .strip_prefix("https://cdevents.dev/0.4.1/schema/links/")
            .ok_or_else(|| format!("not a vendored schema: {uri}"))?;
        Ok(read(&format!("contracts/cdevents/0.4.1/links/{name}.json")))
    }
}

/// A schema file under `infra/schemas/`.
fn read(path: &str) -> Value {
    let path = project_root().join("infra/schemas").join(path);
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn assert_valid(schema: &Value, instance: &Value, what: &str) {
    let v = jsonschema::options()
        .with_retriever(Vendored)
        .should_validate_formats(true)
        .build(schema)
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    let errors: Vec<String> = v
        .iter_errors(instance)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "{what}: {errors:#?}\n{instance:#}");
}

/// Asserts that a structured-mode CloudEvent eddo emitted is what the spec and the binding ask:
/// its CDEvent valid under the spec's schema for its type (and eddo's own, for a custom type),
/// the CloudEvent's attributes the CDEvent's, and the SDK reads a standard type.
fn assert_conforms(cloudevent: &Value) {
    let data = &cloudevent["data"];
    let context = &data["context"];
    let ty = context["type"].as_str().unwrap();
    assert_eq!(cloudevent["type"], ty);
    assert_eq!(cloudevent["id"], context["id"]);
    assert_eq!(cloudevent["source"], context["source"]);
    assert_eq!(cloudevent["time"], context["timestamp"]);
    assert_eq!(cloudevent["subject"], data["subject"]["id"]);
    assert_eq!(cloudevent["specversion"], "1.0");
    if let Some(custom) = ty.strip_prefix("dev.cdeventsx.") {
        assert_valid(&read("contracts/cdevents/0.4.1/custom.json"), data, ty);
        let name = eddo::cdevents::emit::custom_schema_name(ty);
        assert!(custom.starts_with("eddo-"), "{ty}");
        assert_valid(&read(&format!("cdevents/{name}.schema.json")), data, ty);
    } else {
        let file = ty
            .trim_start_matches("dev.cdevents.")
            .splitn(3, '.')
            .take(2)
            .collect::<String>();
        assert_valid(
            &read(&format!("contracts/cdevents/0.4.1/{file}.json")),
            data,
            ty,
        );
        let read: cdevents_sdk::CDEvent = serde_json::from_value(data.clone())
            .unwrap_or_else(|e| panic!("the CDEvents SDK cannot read {ty}: {e}\n{data:#}"));
        assert_eq!(read.ty(), ty);
        assert_eq!(read.id().to_string(), context["id"].as_str().unwrap());
    }
}

fn decision(dt: DetailType, detail: Value) -> OutgoingEvent {
    OutgoingEvent::new(
        dt,
        &Envelope {
            metadata: Metadata::new("push:d-1", "9f1c3d6a-0000-4000-8000-000000000001"),
            detail,
        },
    )
    .unwrap()
}

/// Every type eddo emits, as it emits it, against the spec's schemas and the SDK.
#[test]
fn every_cdevent_eddo_emits_is_valid_under_the_spec() {
    let (commit, image) = (sha(1), digest(1));
    let version = json!({"commit": sha(0), "digest": digest(0), "build_id": "eddo-rollback:1",
                         "at": "2026-12-07T10:00:00Z"});
    let alarm = json!({"name": "hello-world-5xx", "arn": null, "state": "ALARM",
                       "previous_state": "OK", "changed_at": "2026-12-07T10:05:00Z"});
    let decisions = [
        (
            DetailType::DeploymentSucceeded,
            json!({"service": "hello-world", "commit_sha": commit, "image_digest": image,
                   "build_id": "eddo-deploy:1", "live": {}, "last_known_good": null}),
            "dev.cdevents.service.deployed.0.2.0",
        ),
        (
            DetailType::DeploymentSucceeded,
            json!({"service": "hello-world", "commit_sha": commit, "image_digest": null,
                   "build_id": "eddo-deploy:2", "live": {}, "last_known_good": {"commit": sha(0)}}),
            "dev.cdevents.service.upgraded.0.2.0",
        ),
        (
            DetailType::RollbackStarted,
            json!({"service": "hello-world", "alarm": alarm, "project": "eddo-rollback",
                   "target": version, "replacing": {"commit": commit, "digest": image},
                   "build_id": "eddo-rollback:1"}),
            "dev.cdevents.incident.detected.0.2.0",
        ),
        (
            DetailType::RollbackSucceeded,
            json!({"service": "hello-world", "build_id": "eddo-rollback:1", "alarm": "hello-world-5xx",
                   "restored": version, "replaced": {"commit": commit}, "live": {}}),
            "dev.cdevents.service.rolledback.0.2.0",
        ),
        (
            DetailType::AlarmRecovered,
            json!({"service": "hello-world", "alarm": {"name": "hello-world-5xx", "arn": null,
                   "state": "OK", "previous_state": "ALARM", "changed_at": "2026-12-07T10:20:00Z"},
                   "rollback_build_id": "eddo-rollback:1", "rolled_back_at": "2026-12-07T10:05:00Z",
                   "restored": version, "replaced": {"commit": commit, "digest": image,
                   "build_id": "eddo-deploy:1", "at": "2026-12-07T09:00:00Z"}}),
            "dev.cdevents.incident.resolved.0.2.0",
        ),
        (
            DetailType::DeploymentBlocked,
            json!({"service": "hello-world", "commit_sha": commit, "image_digest": image,
                   "mode": "enforce", "reasons": ["sast: 3 findings"],
                   "evidence": [{"signal": "sast", "passed": false, "event_id": "ev-1"},
                                {"signal": "build", "passed": true, "event_id": "ev-2"}]}),
            eddo::cdevents::emit::DEPLOYMENT_BLOCKED,
        ),
        (
            DetailType::DeploymentTimedOut,
            json!({"service": "hello-world", "commit_sha": commit, "image_digest": null,
                   "mode": "enforce", "reasons": ["image-scan never arrived"],
                   "missing": ["image-scan"], "deadline": "2026-12-07T10:30:00Z", "evidence": []}),
            eddo::cdevents::emit::DEPLOYMENT_TIMED_OUT,
        ),
    ];
    let producer = Producer {
        deployment: "eddo-prod",
        image_repository: Some("hello-world"),
    };
    let cloudevent = read("cdevent.schema.json");
    for (dt, detail, ty) in decisions {
        let said = cdevent_of(&decision(dt, detail), &producer, 1_765_100_000)
            .unwrap()
            .unwrap_or_else(|| panic!("{dt} says no CDEvent"));
        let ce: Value = serde_json::from_str(&said.detail).unwrap();
        assert_eq!(ce["type"], ty, "{dt}");
        assert_valid(&cloudevent, &ce, "infra/schemas/cdevent.schema.json");
        assert_conforms(&ce);
        assert_eq!(ce["data"]["context"]["chainId"], "push:d-1");
    }
}

/// A CloudEvents sink on loopback answering `answers` in turn (then 202), and the template
/// parameters that send eddo's CDEvents to it.
async fn start_sink(answers: &[u16]) -> (Sink, Vec<(String, String)>) {
    let sink = Sink::start(answers).await.unwrap();
    let parameters = sink.parameters();
    (sink, parameters)
}

/// Parameters as the harness takes them.
fn pairs(parameters: &[(String, String)]) -> Vec<(&str, &str)> {
    parameters
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect()
}

/// What the CDEvents rule's target did with each event waiting for it: there are `n`.
async fn delivered_to_sink(stack: &Stack, n: usize) -> Vec<eddo_local::dispatch::Delivery> {
    let delivered = stack
        .dispatcher(&[])
        .unwrap()
        .pump(Duration::from_secs(5))
        .await
        .unwrap();
    let to_sink: Vec<_> = delivered.into_iter().filter(|d| d.rule == RULE).collect();
    assert_eq!(to_sink.len(), n, "{to_sink:#?}");
    to_sink
}

/// The example policy's hello-world, built, scanned and deployed: the gate's two decisions.
async fn deploy(s: &Setup, n: u32) -> String {
    let commit = sha(n);
    s.passes(&commit, &digest(n)).await;
    let done = s.deploy_finished(&commit, "SUCCEEDED");
    s.handle(&done).await;
    s.handle(&done).await; // redelivered: said once
    commit
}

/// A deploy reaches the sink as `service.deployed`, in structured mode with the connection's
/// token, after the sink's two 503s (EventBridge retries them), once however often it was said.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deploy_reaches_the_sink_as_a_cloudevent_retried_through_its_errors() {
    let (sink, parameters) = start_sink(&[503, 503]).await;
    let s = setup_with("cdeo", None, &pairs(&parameters)).await;
    let commit = deploy(&s, 4101).await;

    let said = s.published().await;
    let cdevents: Vec<&Value> = said
        .iter()
        .filter(|e| e["detail-type"] == "CDEvent")
        .collect();
    let types: Vec<&str> = said
        .iter()
        .map(|e| e["detail-type"].as_str().unwrap())
        .collect();
    assert_eq!(cdevents.len(), 1, "one deploy, one CDEvent: {types:?}");

    let to_sink = delivered_to_sink(&s.stack, 1).await;
    assert_eq!(to_sink[0].attempts, 3, "{:?}", to_sink[0]);
    assert!(to_sink[0].handled.succeeded() && !to_sink[0].dead_lettered);

    let received = sink.received();
    let statuses: Vec<u16> = received.iter().map(|r| r.status).collect();
    assert_eq!(statuses, [503, 503, 202]);
    let last = received.last().unwrap();
    assert_eq!(last.method, "POST");
    assert_eq!(last.path, "/cdevents");
    assert_eq!(
        last.header("content-type"),
        Some("application/cloudevents+json; charset=utf-8")
    );
    let bearer = format!("Bearer {LOCAL_SINK_TOKEN}");
    assert_eq!(last.header("authorization"), Some(bearer.as_str()));
    // Each attempt is the same event.
    assert!(received.iter().all(|r| r.body == last.body));

    let ce = last.json();
    assert_conforms(&ce);
    assert_eq!(ce["type"], "dev.cdevents.service.deployed.0.2.0");
    assert_eq!(ce["subject"], "hello-world");
    assert_eq!(ce["data"]["customData"]["commit_sha"], commit);
    assert_eq!(
        ce["data"]["subject"]["content"]["artifactId"],
        format!(
            "pkg:oci/hello-world@sha256%3A{}",
            digest(4101).trim_start_matches("sha256:")
        )
    );
    // The chain is the change's, as the gate's own event says it; the id is that event's key.
    let succeeded = said
        .iter()
        .find(|e| e["detail-type"] == "Deployment Succeeded")
        .unwrap();
    assert_eq!(
        ce["data"]["context"]["chainId"],
        succeeded["detail"]["metadata"]["correlation_id"]
    );
    assert_eq!(ce["id"], succeeded["detail"]["metadata"]["event_key"]);
}

/// A sink that refuses the event (a 400 EventBridge does not retry) gets one attempt, and the
/// event waits in the dead-letter queue; a blocked candidate is said in eddo's custom type.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_cdevent_is_dead_lettered_at_once() {
    let (sink, parameters) = start_sink(&[400]).await;
    let s = setup_with("cdedl", None, &pairs(&parameters)).await;
    let (commit, image) = (sha(4102), digest(4102));
    s.handle(&s.build("eddo-build", &commit, "SUCCEEDED", Some(&image)))
        .await;
    s.handle(&s.build("eddo-sast", &commit, "FAILED", None))
        .await;
    let said = s.published().await;
    assert!(
        said.iter()
            .any(|e| e["detail-type"] == "Deployment Blocked"),
        "{said:#?}"
    );

    let to_sink = delivered_to_sink(&s.stack, 1).await;
    assert_eq!(to_sink[0].attempts, 1);
    assert!(to_sink[0].dead_lettered);
    assert_eq!(sink.received().len(), 1);

    let dlq = s.stack.dead_letter_queue.clone().unwrap();
    let dead = s.stack.drain(&dlq, Duration::from_secs(2)).await.unwrap();
    assert_eq!(dead.len(), 1, "{dead:#?}");
    assert_eq!(dead[0]["rule"], RULE);
    assert!(
        dead[0]["error"].as_str().unwrap().contains("400"),
        "{dead:#?}"
    );
    let ce = &dead[0]["event"];
    assert_eq!(ce["type"], eddo::cdevents::emit::DEPLOYMENT_BLOCKED);
    assert_conforms(ce);
    assert_eq!(ce["data"]["subject"]["content"]["commit_sha"], commit);
}

/// Without a sink (and `CDEventsOnBus` left as it is), nothing extra is said: the decisions'
/// own events only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_sink_no_cdevent_is_said() {
    let s = setup("cdeoff", None).await;
    deploy(&s, 4103).await;
    let said = s.published().await;
    assert!(
        said.iter().all(|e| e["detail-type"] != "CDEvent"),
        "{said:#?}"
    );
    assert!(
        said.iter()
            .any(|e| e["detail-type"] == "Deployment Succeeded")
    );
    assert!(!s.stack.routes.iter().any(|r| r.rule == RULE));
}

/// alarm-rollback's decisions reach the sink too, as an incident's life: detected when the alarm
/// rolls the release back, the service rolled back to the last known-good image, the incident
/// resolved when the alarm recovers; one chain, the detection and resolution one incident.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollback_reaches_the_sink_as_an_incident_and_its_resolution() {
    use eddo_local::fixtures::alarm;
    let (sink, parameters) = start_sink(&[]).await;
    let s = crate::harness::rollback::setup_with("cderb", &pairs(&parameters)).await;
    let now = eddo::idempotency::now_epoch();
    let (good, bad) = (sha(4104), sha(4105));
    s.deployed(&good, &bad, now - 600).await;
    s.handle(&alarm("hello-world-5xx", "OK", "ALARM", now - 60))
        .await;
    s.complete_builds().await;
    s.handle(&alarm("hello-world-5xx", "ALARM", "OK", now - 5))
        .await;
    let said = s.published().await;
    let types: Vec<&str> = said
        .iter()
        .map(|e| e["detail-type"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        [
            "Rollback Started",
            "CDEvent",
            "Rollback Succeeded",
            "CDEvent",
            "Alarm Recovered",
            "CDEvent"
        ]
    );

    let to_sink = delivered_to_sink(&s.stack, 3).await;
    assert!(to_sink.iter().all(|d| d.handled.succeeded()));
    let received: Vec<Value> = sink.received().iter().map(|r| r.json()).collect();
    received.iter().for_each(assert_conforms);
    let ty = |ce: &Value| ce["type"].as_str().unwrap().to_string();
    let mut types: Vec<String> = received.iter().map(ty).collect();
    types.sort();
    assert_eq!(
        types,
        [
            "dev.cdevents.incident.detected.0.2.0",
            "dev.cdevents.incident.resolved.0.2.0",
            "dev.cdevents.service.rolledback.0.2.0",
        ]
    );
    let of = |t: &str| received.iter().find(|ce| ce["type"] == t).unwrap();
    let (detected, rolled, resolved) = (
        of("dev.cdevents.incident.detected.0.2.0"),
        of("dev.cdevents.service.rolledback.0.2.0"),
        of("dev.cdevents.incident.resolved.0.2.0"),
    );
    assert_eq!(detected["subject"], "hello-world-5xx");
    assert_eq!(resolved["subject"], detected["subject"], "one incident");
    let chain = &detected["data"]["context"]["chainId"];
    assert_eq!(&rolled["data"]["context"]["chainId"], chain);
    assert_eq!(&resolved["data"]["context"]["chainId"], chain);
    assert_eq!(rolled["data"]["customData"]["commit_sha"], good.as_str());
    assert_eq!(
        detected["data"]["customData"]["eddo"]["detail_type"],
        "Rollback Started"
    );
}

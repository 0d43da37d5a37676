//! Handler CPU time without network: verify the signature, normalise the payload and build the
//! PutEvents request entry, for real corpus deliveries. `make bench` runs it; BENCHMARKS.md
//! records the figures.

use std::hint::black_box;

use aws_lambda_events::event::lambda_function_urls::LambdaFunctionUrlRequest;
use criterion::{Criterion, criterion_group, criterion_main};
use eddo::config::Env;
use eddo_local::fixtures::github_delivery;
use eddo_webhook::normalise::Normalised;
use eddo_webhook::secrets::{SecretSet, WebhookSecrets};
use eddo_webhook::{Config, accept, outgoing, precheck};

const SECRET: &str = "It's a Secret to Everybody";

fn corpus(path: &str) -> String {
    eddo::corpus::text(path)
}

fn request(event: &str, body: &str) -> LambdaFunctionUrlRequest {
    github_delivery(SECRET, event, "72d3162e-cc78-11e3-81ab-4c9367dc0958", body)
}

/// Everything the handler does for one delivery between receiving it and calling AWS.
fn handle_offline(req: &LambdaFunctionUrlRequest, secrets: &SecretSet, cfg: &Config) -> usize {
    let (provider, body) = precheck(req, cfg.max_body_bytes).unwrap();
    let accepted = accept(provider, &req.headers, &body, secrets, cfg, 0).unwrap();
    let Normalised::Publish(dt, ev) = accepted.outcome else {
        panic!("not published")
    };
    let entry = outgoing(dt, *ev, cfg.common.max_entry_bytes).unwrap();
    let put = entry.to_entry(&cfg.common.event_bus_name);
    put.detail().map(str::len).unwrap_or(0)
}

const TEKTON_KEY: &str = "whsec_dGVrdG9uLWNkZXZlbnRzLXNlbmRlci1rZXk=";

/// The spec's 0.5.1 test run (cdevents/spec conformance), naming the image it tested.
fn cdevent() -> serde_json::Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/cdevents/0.5.1-testsuiterun_finished.json");
    let mut e: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    e["customData"] =
        serde_json::json!({"artifactId": format!("pkg:oci/app@sha256:{}", "a".repeat(64))});
    e
}

/// A delivery to `/cdevents/tekton` signed with tekton's key.
fn signed_cdevent(headers: &[(&str, String)], body: &str) -> LambdaFunctionUrlRequest {
    let sig = eddo_webhook::signature::standard_signature(TEKTON_KEY, "msg_1", 0, body.as_bytes())
        .unwrap();
    let mut all: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
    all.extend([
        ("webhook-id", "msg_1"),
        ("webhook-timestamp", "0"),
        ("webhook-signature", sig.as_str()),
    ]);
    eddo_local::fixtures::delivery("/cdevents/tekton", &all, body)
}

/// The size of an event's PutEvents entry detail, as the handler builds it.
fn detail_len(entry: &eddo::publish::OutgoingEvent, cfg: &Config) -> usize {
    entry
        .to_entry(&cfg.common.event_bus_name)
        .detail()
        .map(str::len)
        .unwrap_or(0)
}

/// Everything the handler does for a CDEvents delivery between receiving it and calling AWS.
fn cdevents_offline(req: &LambdaFunctionUrlRequest, secrets: &SecretSet, cfg: &Config) -> usize {
    let sender = eddo_webhook::cdevents::route("/cdevents/tekton")
        .unwrap()
        .unwrap();
    let body = eddo_webhook::body(req, cfg.max_body_bytes).unwrap();
    let delivery =
        eddo_webhook::cdevents::accept(sender, &req.headers, &body, secrets, cfg, 0).unwrap();
    delivery
        .events
        .iter()
        .map(|e| {
            detail_len(
                &eddo_webhook::cdevents::outgoing(&delivery.sender, e, cfg.common.max_entry_bytes)
                    .unwrap(),
                cfg,
            )
        })
        .sum()
}

const PROMETHEUS_TOKEN: &str = "prometheus-alertmanager-token-0123456789";

/// Everything the handler does for an alert notification between receiving it and calling AWS:
/// authenticate, read, and one entry per alert.
fn alerts_offline(req: &LambdaFunctionUrlRequest, secrets: &SecretSet, cfg: &Config) -> usize {
    use eddo_webhook::alertmanager;
    let sender = alertmanager::route("/alertmanager/prometheus")
        .unwrap()
        .unwrap();
    let body = eddo_webhook::body(req, cfg.max_body_bytes).unwrap();
    let n = alertmanager::accept(sender, &req.headers, &body, secrets).unwrap();
    n.alerts
        .iter()
        .map(|a| {
            detail_len(
                &alertmanager::outgoing(&n.group, a, cfg.common.max_entry_bytes).unwrap(),
                cfg,
            )
        })
        .sum()
}

fn benches(c: &mut Criterion) {
    let cfg = Config::from_env(&Env::from_pairs([
        ("EDDO_EVENT_BUS_NAME", "eddo"),
        ("EDDO_TABLE_NAME", "eddo-state"),
        (
            "EDDO_WEBHOOK_SECRET_ARN",
            "arn:aws:secretsmanager:us-east-1:123456789012:secret:eddo",
        ),
        ("EDDO_WEBHOOK_FORWARD", "github:*"),
    ]))
    .unwrap();
    let secrets = SecretSet {
        versions: vec![WebhookSecrets {
            github: Some(SECRET.into()),
            ..Default::default()
        }],
    };

    // The largest push payload in the corpus.
    let push = corpus("github/push/with-new-branch.payload.json");
    let push_req = request("push", &push);
    c.bench_function(
        "webhook/push 8.8 KB: verify + normalise + PutEvents entry",
        |b| b.iter(|| handle_offline(black_box(&push_req), &secrets, &cfg)),
    );

    let pr = corpus("github/pull_request/synchronize.payload.json");
    let pr_req = request("pull_request", &pr);
    c.bench_function(
        "webhook/pull_request synchronize: verify + normalise + entry",
        |b| b.iter(|| handle_offline(black_box(&pr_req), &secrets, &cfg)),
    );

    // The largest payload in the corpus, forwarded raw.
    let big = corpus("github/pull_request_review_comment/created.with-organization.payload.json");
    let big_req = request("pull_request_review_comment", &big);
    c.bench_function(
        "webhook/generic 31 KB raw forward: verify + normalise + entry",
        |b| b.iter(|| handle_offline(black_box(&big_req), &secrets, &cfg)),
    );

    // A CDEvent (the spec's 0.5.1 test run, naming its image), signed by its sender, in each
    // content mode, and a batch of ten: authenticate + read with the SDKs + entry, per event.
    let tekton = SecretSet {
        versions: vec![WebhookSecrets {
            senders: [("tekton".to_string(), TEKTON_KEY.to_string())].into(),
            ..Default::default()
        }],
    };
    let run = cdevent();
    let ctx = &run["context"];
    let structured = serde_json::json!({"specversion": "1.0", "id": ctx["id"], "source": ctx["source"],
        "type": ctx["type"], "datacontenttype": "application/json", "data": run});
    let binary_headers = [
        ("content-type", "application/json".to_string()),
        ("ce-specversion", "1.0".to_string()),
        ("ce-id", ctx["id"].as_str().unwrap().to_string()),
        ("ce-source", ctx["source"].as_str().unwrap().to_string()),
        ("ce-type", ctx["type"].as_str().unwrap().to_string()),
    ];
    let batch: Vec<serde_json::Value> = (0..10)
        .map(|i| {
            let mut e = structured.clone();
            e["id"] = serde_json::json!(format!("run-{i}"));
            e["data"]["context"]["id"] = serde_json::json!(format!("run-{i}"));
            e
        })
        .collect();
    for (name, headers, body) in [
        (
            "webhook/cdevent structured: authenticate + read + entry",
            vec![("content-type", "application/cloudevents+json".to_string())],
            structured.to_string(),
        ),
        (
            "webhook/cdevent binary: authenticate + read + entry",
            binary_headers.to_vec(),
            run.to_string(),
        ),
        (
            "webhook/cdevents batch of 10: authenticate + read + entries",
            vec![(
                "content-type",
                "application/cloudevents-batch+json".to_string(),
            )],
            serde_json::Value::Array(batch).to_string(),
        ),
    ] {
        let req = signed_cdevent(&headers, &body);
        c.bench_function(name, |b| {
            b.iter(|| cdevents_offline(black_box(&req), &tekton, &cfg))
        });
    }

    // Alertmanager's notification of a group of two firing alerts (as its code writes it), with
    // basic auth; Grafana's of one, with a bearer token.
    let prometheus = SecretSet {
        versions: vec![WebhookSecrets {
            tokens: [("prometheus".to_string(), PROMETHEUS_TOKEN.to_string())].into(),
            ..Default::default()
        }],
    };
    let fixture = |name: &str| {
        std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/fixtures/alertmanager")
                .join(name),
        )
        .unwrap()
    };
    use base64::Engine;
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("prometheus:{PROMETHEUS_TOKEN}"))
    );
    let bearer = format!("Bearer {PROMETHEUS_TOKEN}");
    for (name, auth, body) in [
        (
            "webhook/alertmanager group of 2: authenticate + read + entries",
            &basic,
            fixture("alertmanager-v4-firing.json"),
        ),
        (
            "webhook/grafana alert: authenticate + read + entry",
            &bearer,
            fixture("grafana-v1-firing.json"),
        ),
    ] {
        let req = eddo_local::fixtures::delivery(
            "/alertmanager/prometheus",
            &[
                ("content-type", "application/json"),
                ("authorization", auth),
            ],
            &body,
        );
        c.bench_function(name, |b| {
            b.iter(|| alerts_offline(black_box(&req), &prometheus, &cfg))
        });
    }

    let sig = eddo_webhook::signature::github_signature(SECRET.as_bytes(), push.as_bytes());
    c.bench_function("signature/github hmac-sha256 8.8 KB", |b| {
        b.iter(|| {
            eddo_webhook::signature::verify_github(
                &[SECRET.as_bytes()],
                black_box(push.as_bytes()),
                Some(&sig),
                false,
            )
        })
    });
    let forward = eddo_webhook::normalise::Forward::default();
    c.bench_function("normalise/github push 8.8 KB", |b| {
        b.iter(|| eddo_webhook::normalise::github("push", "d", black_box(&push), &forward).unwrap())
    });
}

criterion_group!(name = handler; config = Criterion::default().sample_size(50); targets = benches);
criterion_main!(handler);

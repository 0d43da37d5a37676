//! The gate's metrics, as the functions write them (CloudWatch embedded metric format lines):
//! each document valid under the format's specification and CloudWatch's limits, and the values
//! of a known scenario, worked out by hand below, from a clock the test sets.

use std::sync::Arc;
use std::sync::atomic::Ordering::SeqCst;

use eddo_scan_gate::Gate;
use serde_json::Value;

use crate::harness::gate::*;
use crate::harness::{Local, stand_in};

/// Every captured document about `commit`, each checked against the format.
fn documents(commit: &str) -> Vec<Value> {
    eddo::metrics::captured()
        .iter()
        .map(|line| valid(line))
        .filter(|d| d["commit"] == commit)
        .collect()
}

/// `line` as a document, checked: the vendored schema (the specification's structure and
/// CloudWatch's limits), then what no schema states: at most 256 KB, each dimension key a
/// string member of 1 to 1024 characters, each metric a number (or at most 100 numbers).
fn valid(line: &str) -> Value {
    static SCHEMA: std::sync::LazyLock<jsonschema::Validator> = std::sync::LazyLock::new(|| {
        let text = include_str!("../infra/schemas/contracts/cloudwatch/emf.schema.json");
        jsonschema::validator_for(&serde_json::from_str(text).unwrap()).unwrap()
    });
    assert!(line.len() <= 256 * 1024, "over CloudWatch Logs' event size");
    assert!(!line.contains('\n'));
    let doc: Value = serde_json::from_str(line).unwrap();
    let errors: Vec<String> = SCHEMA.iter_errors(&doc).map(|e| e.to_string()).collect();
    assert!(errors.is_empty(), "{errors:?}: {line}");
    for directive in doc["_aws"]["CloudWatchMetrics"].as_array().unwrap() {
        for set in directive["Dimensions"].as_array().unwrap() {
            for key in set.as_array().unwrap() {
                let value = doc[key.as_str().unwrap()]
                    .as_str()
                    .unwrap_or_else(|| panic!("dimension {key} is no string member: {line}"));
                assert!((1..=1024).contains(&value.chars().count()), "{line}");
            }
        }
        for m in directive["Metrics"].as_array().unwrap() {
            let v = &doc[m["Name"].as_str().unwrap()];
            assert!(
                v.is_number()
                    || v.as_array()
                        .is_some_and(|a| a.len() <= 100 && a.iter().all(Value::is_number)),
                "metric {m} is no number member: {line}"
            );
        }
    }
    doc
}

/// The value of `metric` in `docs` whose dimension `key` is `value`.
fn value(docs: &[Value], metric: &str, key: &str, value: &str) -> Vec<f64> {
    docs.iter()
        .filter(|d| d[key] == value && d[metric].is_number())
        .map(|d| d[metric].as_f64().unwrap())
        .collect()
}

test_clock!(METRICS_CLOCK, metrics_clock);

#[tokio::test(flavor = "multi_thread")]
async fn each_decision_and_deployment_is_measured_once_with_known_values() {
    eddo::metrics::capture();
    let start = eddo::idempotency::now_epoch();
    METRICS_CLOCK.store(start, SeqCst);
    let local = Local::start("metrics").await;
    let (sdk, config, policy) = local.as_function("scan-gate").await;
    let gate = Gate::new(&config, policy, &sdk)
        .with_codebuild(stand_in(&sdk, &local.stack))
        .with_clock(metrics_clock);
    let s = Setup {
        local,
        gate: Arc::new(gate),
    };

    // Deployed: committed an hour before the start and pushed; the build at 0 s, SAST at 60 s,
    // the image scan at 150 s decides (deploy); the deploy build succeeds at 400 s. So: one
    // decision "deploy"; time to decision 150 s; waits build 0, sast 60, image-scan 150; one
    // deployment, whose lead time is 3,600 + 400 = 4,000 s.
    let (good, image) = (sha(1), digest(1));
    let push = pushed(&good, start - 3600, start);
    s.handle(&push).await;
    // A push delivered again keeps the first time.
    s.handle(&pushed(&good, start - 60, start)).await;
    s.handle(&s.build("eddo-build", &good, "SUCCEEDED", Some(&image)))
        .await;
    METRICS_CLOCK.store(start + 60, SeqCst);
    s.handle(&s.build("eddo-sast", &good, "SUCCEEDED", None))
        .await;
    METRICS_CLOCK.store(start + 150, SeqCst);
    let scan = s
        .scanned(&good, &image, serde_json::from_str(CLEAN).unwrap())
        .await;
    s.handle(&scan).await;
    // A redelivery decides nothing again, and is not measured again.
    s.handle(&scan).await;
    METRICS_CLOCK.store(start + 400, SeqCst);
    s.handle(&s.deploy_finished(&good, "SUCCEEDED")).await;
    let docs = documents(&good);
    assert_eq!(value(&docs, "Decisions", "Outcome", "deploy"), [1.0]);
    assert_eq!(
        value(&docs, "TimeToDecision", "Service", "hello-world"),
        [150.0]
    );
    assert_eq!(value(&docs, "SignalWait", "Kind", "build"), [0.0]);
    assert_eq!(value(&docs, "SignalWait", "Kind", "sast"), [60.0]);
    assert_eq!(value(&docs, "SignalWait", "Kind", "image-scan"), [150.0]);
    assert_eq!(value(&docs, "Deployments", "Service", "hello-world"), [1.0]);
    assert_eq!(value(&docs, "LeadTime", "Service", "hello-world"), [4000.0]);
    assert_eq!(docs.len(), 7, "{docs:#?}");
    // A scan of its image finds a critical vulnerability at 500 s, within the bake window of
    // the decision: the deployed change failed (a late signal).
    METRICS_CLOCK.store(start + 500, SeqCst);
    let late = s
        .scanned(&good, &image, serde_json::json!({"CRITICAL": 1}))
        .await;
    s.handle(&late).await;
    let docs = documents(&good);
    assert_eq!(
        value(&docs, "ChangeFailures", "Cause", "late_signal"),
        [1.0]
    );
    assert_eq!(docs.len(), 8, "{docs:#?}");

    // Blocked: the build at 500 s, its SAST fails at 530 s. One decision "block" after 30 s;
    // only build and sast arrived; no deployment.
    let bad = sha(2);
    s.handle(&s.build("eddo-build", &bad, "SUCCEEDED", Some(&digest(2))))
        .await;
    METRICS_CLOCK.store(start + 530, SeqCst);
    s.handle(&s.build("eddo-sast", &bad, "FAILED", None)).await;
    let docs = documents(&bad);
    assert_eq!(value(&docs, "Decisions", "Outcome", "block"), [1.0]);
    assert_eq!(
        value(&docs, "TimeToDecision", "Service", "hello-world"),
        [30.0]
    );
    assert_eq!(value(&docs, "SignalWait", "Kind", "sast"), [30.0]);
    assert!(value(&docs, "SignalWait", "Kind", "image-scan").is_empty());
    assert!(value(&docs, "Deployments", "Service", "hello-world").is_empty());
    assert!(value(&docs, "LeadTime", "Service", "hello-world").is_empty());

    // Every metric the gate emitted is one the catalog names, with its unit and dimensions.
    for line in eddo::metrics::captured() {
        let doc = valid(&line);
        let directive = &doc["_aws"]["CloudWatchMetrics"][0];
        let name = directive["Metrics"][0]["Name"].as_str().unwrap();
        let metric = eddo::metrics::Metric::ALL
            .iter()
            .find(|m| m.name() == name)
            .unwrap_or_else(|| panic!("{name} is not in the catalog"));
        assert_eq!(directive["Metrics"][0]["Unit"], metric.unit().as_str());
        assert_eq!(
            directive["Dimensions"][0],
            serde_json::json!(metric.dimensions())
        );
        assert_eq!(directive["Namespace"], "eddo");
    }
}

/// A rollback: an alarm at −60 s rolls back the release deployed at −600 s (a rollback by that
/// alarm, and the release a failed change); the alarm recovers at −20 s (time to restore: 40 s).
#[tokio::test(flavor = "multi_thread")]
async fn a_rollback_and_its_recovery_are_measured() {
    use crate::harness::rollback::setup;
    use eddo_local::fixtures::alarm;
    eddo::metrics::capture();
    let s = setup("metrics-rollback", None).await;
    let now = eddo::idempotency::now_epoch();
    let (good, bad) = (sha(71), sha(72));
    s.deployed(&good, &bad, now - 600).await;
    let fired = alarm("hello-world-5xx", "OK", "ALARM", now - 60);
    s.handle(&fired).await;
    // Redelivered: one rollback, measured once.
    s.handle(&fired).await;
    s.handle(&alarm("hello-world-5xx", "ALARM", "OK", now - 20))
        .await;
    let docs = documents(&bad);
    assert_eq!(value(&docs, "Rollbacks", "Alarm", "hello-world-5xx"), [1.0]);
    assert_eq!(value(&docs, "ChangeFailures", "Cause", "rollback"), [1.0]);
    assert_eq!(
        value(&docs, "TimeToRestore", "Service", "hello-world"),
        [40.0]
    );
    assert_eq!(docs.len(), 3, "{docs:#?}");
}

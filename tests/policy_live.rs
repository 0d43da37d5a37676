//! The policy in force, as the real binaries read it on the local stack through the template's
//! wiring (`PolicyCacheSeconds`): a change is used by a warm function once its TTL has passed, a
//! version that does not check keeps the last good one and is said once, and a cold start with
//! no good policy fails its events as retryable and recovers by itself once the policy is fixed.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use eddo::idempotency::now_epoch;
use eddo::policy::live::{DEFAULT_TTL_SECS, Live, Policies};
use eddo::policy::{PolicyStore, PolicyVersion};
use eddo_local::fixtures::alarm;
use eddo_local::moto::project_root;
use eddo_local::runtime::{LocalFunction, Outcome};
use serde_json::Value;

use crate::harness::Local;

/// The TTL the stack is provisioned with, in seconds.
const TTL: u64 = 2;

fn example() -> String {
    std::fs::read_to_string(project_root().join("infra/policy/example.yaml")).unwrap()
}

/// The example with two settings out of range: a service's and a tenant tier's.
fn mistaken() -> String {
    let text = example()
        .replacen("bake_minutes: 60", "bake_minutes: 0", 1)
        .replacen("retries: 2", "retries: 9", 1);
    assert_ne!(text, example());
    text
}

/// The version of the policy parameter now.
async fn version(local: &Local) -> i64 {
    aws_sdk_ssm::Client::new(&local.moto.sdk_config().await)
        .get_parameter()
        .name(local.stack.policy_parameter.as_deref().unwrap())
        .send()
        .await
        .unwrap()
        .parameter()
        .unwrap()
        .version()
}

/// An alarm change of `hello-world-5xx` (a new one each call): with nothing released it is
/// skipped, and the skip names the policy version that decided it.
async fn alarm_change(function: &LocalFunction, local: &Local, n: u64) -> Option<Value> {
    let event = alarm("hello-world-5xx", "OK", "ALARM", now_epoch() + n);
    eddo_local::cloudwatch::ran(&local.stack.sdk, &event)
        .await
        .unwrap();
    let out = function.invoke(&event).await.unwrap();
    assert!(
        out.outcome.json().is_some(),
        "{:?}\n{}",
        out.outcome,
        function.logs().join("\n")
    );
    let events = local.published("eddo.rollback").await;
    let types: Vec<&str> = events
        .iter()
        .map(|e| e["detail-type"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["Rollback Skipped"], "{events:#?}");
    events.into_iter().next()
}

/// An alarm change after a bad version was put: the function says the version is refused and
/// decides by the last good one; both events.
async fn refused_then_skipped(function: &LocalFunction, local: &Local) -> Vec<Value> {
    let event = alarm("hello-world-5xx", "OK", "ALARM", now_epoch() + 3);
    eddo_local::cloudwatch::ran(&local.stack.sdk, &event)
        .await
        .unwrap();
    function.invoke(&event).await.unwrap();
    let events = local.published("eddo.rollback").await;
    let types: Vec<&str> = events
        .iter()
        .map(|e| e["detail-type"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        ["Policy Rejected", "Rollback Skipped"],
        "{events:#?}"
    );
    events
}

fn policy_version(skipped: &Option<Value>) -> i64 {
    skipped.as_ref().expect("a Rollback Skipped event")["detail"]["policy_version"]
        .as_i64()
        .expect("the decision names its policy version")
}

/// A new environment of the real alarm-rollback binary, as the template defines it.
async fn alarm_rollback(local: &Local) -> LocalFunction {
    let spec = local
        .stack
        .spec("alarm-rollback", &local.moto.endpoint())
        .unwrap();
    LocalFunction::new(spec).await.unwrap()
}

/// The invocation failed as retryable for want of a policy; its message.
fn no_policy(outcome: &Outcome) -> &str {
    match outcome {
        Outcome::Error {
            error_type,
            message,
        } => {
            assert_eq!(error_type, "eddo.Retryable.NoPolicy", "{message}");
            message
        }
        other => panic!("expected a retryable invocation error, got {other:?}"),
    }
}

fn in_force_lines(function: &LocalFunction) -> usize {
    function
        .logs()
        .iter()
        .filter(|l| l.contains("\"policy in force\""))
        .count()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_warm_function_takes_a_new_policy_within_its_ttl_and_keeps_the_last_good_one() {
    let local = Local::start_with("policy-ttl", &[("PolicyCacheSeconds", &TTL.to_string())]).await;
    let spec = local
        .stack
        .spec("alarm-rollback", &local.moto.endpoint())
        .unwrap();
    assert!(
        spec.env
            .iter()
            .any(|(k, v)| k == "EDDO_POLICY_TTL_SECS" && v == &TTL.to_string()),
        "the template passes PolicyCacheSeconds to the function"
    );
    let function = LocalFunction::new(spec).await.unwrap();
    let first = version(&local).await;

    let skipped = alarm_change(&function, &local, 1).await;
    assert_eq!(policy_version(&skipped), first);

    // A new version, used once the TTL has passed, by the same warm process.
    let pid = function.pid().await;
    let changed = example().replacen("bake_minutes: 60", "bake_minutes: 90", 1);
    local.stack.put_policy(&changed).await.unwrap();
    tokio::time::sleep(Duration::from_secs(TTL + 1)).await;
    let skipped = alarm_change(&function, &local, 2).await;
    assert_eq!(function.pid().await, pid, "the same environment");
    assert_eq!(policy_version(&skipped), first + 1);
    assert_eq!(
        in_force_lines(&function),
        2,
        "read at the first event, then once changed"
    );

    // A version with mistakes: refused, the last good one decides, and it is said once.
    local.stack.put_policy(&mistaken()).await.unwrap();
    let bad = first + 2;
    tokio::time::sleep(Duration::from_secs(TTL + 1)).await;
    let events = refused_then_skipped(&function, &local).await;
    assert_eq!(events[1]["detail"]["policy_version"], first + 1);
    let rejected = &events[0]["detail"];
    assert_eq!(rejected["version"], bad);
    assert_eq!(rejected["in_force"], first + 1);
    assert_eq!(rejected["function"], "alarm-rollback");
    let mistakes = rejected["mistakes"].as_array().unwrap();
    assert_eq!(mistakes.len(), 2, "{mistakes:#?}");
    let at = |m: &Value| {
        (
            m["path"].as_str().unwrap().to_string(),
            m["line"].as_u64().unwrap() as usize,
        )
    };
    let line_of = |text: &str| mistaken().lines().position(|l| l.contains(text)).unwrap() + 1;
    assert_eq!(
        mistakes.iter().map(at).collect::<Vec<_>>(),
        [
            (
                "services.hello-world.rollback.bake_minutes".to_string(),
                line_of("bake_minutes: 0")
            ),
            (
                "tenants.tiers.premium.retries".to_string(),
                line_of("retries: 9")
            ),
        ]
    );

    // Read again after the TTL, still bad: decided by the last good one, and not said again
    // (`alarm_change` sees the skip alone).
    tokio::time::sleep(Duration::from_secs(TTL + 1)).await;
    let skipped = alarm_change(&function, &local, 4).await;
    assert_eq!(policy_version(&skipped), first + 1);
    function.stop().await;

    // A cold start while the only readable version is bad: no crash loop, no exit at init; the
    // event fails as retryable, and the rejection is not said again by this environment either.
    let cold = alarm_rollback(&local).await;
    let event = alarm("hello-world-5xx", "OK", "ALARM", now_epoch() + 5);
    eddo_local::cloudwatch::ran(&local.stack.sdk, &event)
        .await
        .unwrap();
    let out = cold.invoke(&event).await.unwrap();
    let message = no_policy(&out.outcome);
    assert!(
        message.contains(&format!("version {bad}")) && message.contains("is refused"),
        "{message}"
    );
    assert!(
        local.published("eddo.rollback").await.is_empty(),
        "nothing decided, and the refused version already said"
    );
    // Fixed: the same environment recovers at its next event (Lambda's retry), with no wait.
    local.stack.put_policy(&example()).await.unwrap();
    let out = cold.invoke(&event).await.unwrap();
    assert!(!out.cold, "the environment never exited");
    assert!(out.outcome.json().is_some(), "{:?}", out.outcome);
    let events = local.published("eddo.rollback").await;
    assert_eq!(events.len(), 1, "{events:#?}");
    assert_eq!(events[0]["detail"]["policy_version"], bad + 1);
    cold.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cold_start_with_no_policy_parameter_recovers_once_it_is_put() {
    let local = Local::start("policy-missing").await;
    let name = local.stack.policy_parameter.clone().unwrap();
    aws_sdk_ssm::Client::new(&local.moto.sdk_config().await)
        .delete_parameter()
        .name(&name)
        .send()
        .await
        .unwrap();
    let function = alarm_rollback(&local).await;
    let event = alarm("hello-world-5xx", "OK", "ALARM", now_epoch());
    eddo_local::cloudwatch::ran(&local.stack.sdk, &event)
        .await
        .unwrap();
    for _ in 0..2 {
        let out = function.invoke(&event).await.unwrap();
        assert_eq!(
            no_policy(&out.outcome),
            format!(
                "no policy in force: could not read SSM parameter {name}: ParameterNotFound: Parameter {name} not found."
            )
        );
    }
    let errors = function
        .logged(
            |l| l.contains("no policy in force"),
            2,
            Duration::from_secs(5),
        )
        .await;
    assert_eq!(
        errors.len(),
        2,
        "one clear line per failed event: {errors:#?}"
    );
    local.stack.put_policy(&example()).await.unwrap();
    let out = function.invoke(&event).await.unwrap();
    assert!(!out.cold);
    assert!(out.outcome.json().is_some(), "{:?}", out.outcome);
    let events = local.published("eddo.rollback").await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["detail"]["policy_version"], 1);
    function.stop().await;
}

static CLOCK: AtomicU64 = AtomicU64::new(1_000_000);

fn clock() -> u64 {
    CLOCK.load(Ordering::SeqCst)
}

/// The cache itself, against SSM with the function's role: a thousand events over 100 seconds
/// at the default TTL read the parameter twice, and none of the events in between reads it.
#[tokio::test(flavor = "multi_thread")]
async fn at_the_default_ttl_a_thousand_events_read_the_parameter_once_a_minute() {
    let local = Local::start("policy-reads").await;
    let sdk = crate::harness::function_sdk(&local.stack, "scan-gate").await;
    let name = local.stack.policy_parameter.clone().unwrap();
    let live = Live::new(
        &sdk,
        &PolicyStore::Parameter(name),
        Duration::from_secs(DEFAULT_TTL_SECS),
    )
    .with_clock(clock);
    let policies = Policies::live(live);
    assert!(
        policies.in_force().is_none(),
        "nothing read before the first event"
    );
    let mut versions = Vec::new();
    for event in 0..1000u64 {
        // Ten events a second.
        if event % 10 == 0 && event > 0 {
            CLOCK.fetch_add(1, Ordering::SeqCst);
        }
        if event == 500 {
            local
                .stack
                .put_policy(&example().replacen("bake_minutes: 60", "bake_minutes: 61", 1))
                .await
                .unwrap();
        }
        versions.push(policies.current().await.unwrap().version.clone().unwrap());
    }
    assert_eq!(policies.reads(), 2, "at 0 s and at 60 s");
    // The change at 50 s is in force from the read at 60 s, not before.
    assert_eq!(versions[599], PolicyVersion::Parameter(1));
    assert_eq!(versions[600], PolicyVersion::Parameter(2));
    assert_eq!(versions[999], PolicyVersion::Parameter(2));
}

/// The policy's object in the tests that keep it in S3: in a bucket of each test's own.
fn object_in(bucket: &str) -> String {
    format!("s3://{bucket}/eddo/policy.yaml")
}

/// The policy object's latest version id, as S3 gives it.
async fn object_version(local: &Local, bucket: &str) -> String {
    local.object_version(bucket, "eddo/policy.yaml").await
}

/// The real alarm-rollback binary reading its policy from an S3 object (`PolicyObject`), as
/// its role: each decision names the object version that made it (S3's version id, a string),
/// a new version is in force within the TTL, and a bad one is refused, said once with where it
/// is, while the last good one decides.
#[tokio::test(flavor = "multi_thread")]
async fn a_policy_in_s3_decides_and_each_decision_names_the_object_version() {
    let bucket = "policy-s3-flow";
    let local = Local::start_with(
        "policy-s3",
        &[
            ("PolicyObject", &object_in(bucket)),
            ("PolicyCacheSeconds", &TTL.to_string()),
        ],
    )
    .await;
    let spec = local
        .stack
        .spec("alarm-rollback", &local.moto.endpoint())
        .unwrap();
    let env = |name: &str| spec.env.iter().find(|(k, _)| k == name).map(|(_, v)| v);
    assert_eq!(env("EDDO_POLICY_OBJECT"), Some(&object_in(bucket)));
    assert_eq!(env("EDDO_POLICY_PARAMETER"), None, "one store, not two");
    let function = LocalFunction::new(spec).await.unwrap();

    let first = object_version(&local, bucket).await;
    let skipped = alarm_change(&function, &local, 1).await.unwrap();
    assert_eq!(skipped["detail"]["policy_version"], first.as_str());

    let changed = example().replacen("bake_minutes: 60", "bake_minutes: 90", 1);
    local.stack.put_policy(&changed).await.unwrap();
    let second = object_version(&local, bucket).await;
    assert_ne!(second, first);
    tokio::time::sleep(Duration::from_secs(TTL + 1)).await;
    let skipped = alarm_change(&function, &local, 2).await.unwrap();
    assert_eq!(skipped["detail"]["policy_version"], second.as_str());

    local.stack.put_policy(&mistaken()).await.unwrap();
    let bad = object_version(&local, bucket).await;
    tokio::time::sleep(Duration::from_secs(TTL + 1)).await;
    let events = refused_then_skipped(&function, &local).await;
    let rejected = &events[0]["detail"];
    assert_eq!(rejected["parameter"], object_in(bucket));
    assert_eq!(rejected["version"], bad.as_str());
    assert_eq!(rejected["in_force"], second.as_str());
    assert_eq!(rejected["mistakes"].as_array().unwrap().len(), 2);
    assert_eq!(events[1]["detail"]["policy_version"], second.as_str());

    // Still bad after the TTL: the last good one decides, and the refusal is not said again.
    tokio::time::sleep(Duration::from_secs(TTL + 1)).await;
    let skipped = alarm_change(&function, &local, 4).await.unwrap();
    assert_eq!(skipped["detail"]["policy_version"], second.as_str());
    function.stop().await;
}

/// Each S3 answer's HTTP status, as the SDK received it.
#[derive(Debug, Clone, Default)]
struct Statuses(std::sync::Arc<std::sync::Mutex<Vec<u16>>>);

impl aws_smithy_runtime_api::client::interceptors::Intercept for Statuses {
    fn name(&self) -> &'static str {
        "Statuses"
    }

    fn read_after_transmit(
        &self,
        ctx: &aws_smithy_runtime_api::client::interceptors::context::BeforeDeserializationInterceptorContextRef<'_>,
        _: &aws_smithy_runtime_api::client::runtime_components::RuntimeComponents,
        _: &mut aws_smithy_types::config_bag::ConfigBag,
    ) -> Result<(), aws_smithy_runtime_api::box_error::BoxError> {
        self.0
            .lock()
            .unwrap()
            .push(ctx.response().status().as_u16());
        Ok(())
    }
}

/// The cache over S3 with the gate's role: the first read gets the object, each read after the
/// TTL with nothing changed is a 304 (no body, no parse) and keeps the same policy, a new
/// version is read whole. An object in a bucket without versioning is refused: no decision could
/// name the document that made it.
#[tokio::test(flavor = "multi_thread")]
async fn an_unchanged_object_costs_a_304_and_an_unversioned_one_is_refused() {
    let bucket = "policy-s3-reads";
    let local = Local::start_with("policy-s3-reads", &[("PolicyObject", &object_in(bucket))]).await;
    let sdk = crate::harness::function_sdk(&local.stack, "scan-gate").await;
    let statuses = Statuses::default();
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&sdk)
            .interceptor(statuses.clone())
            .build(),
    );
    let store = PolicyStore::parse(&object_in(bucket)).unwrap();
    let policies = Policies::live(
        Live::new(&sdk, &store, Duration::from_secs(DEFAULT_TTL_SECS))
            .with_s3(s3)
            .with_clock(clock),
    );
    let mut read = Vec::new();
    for _ in 0..3 {
        read.push(policies.current().await.unwrap());
        CLOCK.fetch_add(DEFAULT_TTL_SECS, Ordering::SeqCst);
    }
    assert_eq!(*statuses.0.lock().unwrap(), [200, 304, 304]);
    assert!(
        read.iter().all(|p| std::sync::Arc::ptr_eq(p, &read[0])),
        "the policy read first, not parsed again"
    );
    let first = PolicyVersion::Object(object_version(&local, bucket).await);
    assert_eq!(read[0].version, Some(first.clone()));

    let changed = example().replacen("bake_minutes: 60", "bake_minutes: 75", 1);
    local.stack.put_policy(&changed).await.unwrap();
    let now = policies.current().await.unwrap();
    assert_eq!(statuses.0.lock().unwrap().last(), Some(&200));
    let second = PolicyVersion::Object(object_version(&local, bucket).await);
    assert_ne!(second, first);
    assert_eq!(now.version, Some(second));

    // The webhook's role has no grant on the object: S3 refuses it, as IAM would.
    let webhook = crate::harness::function_sdk(&local.stack, "webhook").await;
    let refused = eddo::policy::load(&webhook, &store).await.unwrap_err();
    assert!(refused.contains("AccessDenied"), "{refused}");

    // A bucket without versioning (read as the emulator's administrator: the gate's role reads
    // only its own object).
    let admin = local.moto.sdk_config().await;
    let plain = aws_sdk_s3::Client::new(&admin);
    plain
        .create_bucket()
        .bucket("policy-s3-plain")
        .send()
        .await
        .unwrap();
    plain
        .put_object()
        .bucket("policy-s3-plain")
        .key("eddo/policy.yaml")
        .body(example().into_bytes().into())
        .send()
        .await
        .unwrap();
    let unversioned = PolicyStore::parse(&object_in("policy-s3-plain")).unwrap();
    let err = eddo::policy::load(&admin, &unversioned).await.unwrap_err();
    assert_eq!(
        err,
        "no policy in force: s3://policy-s3-plain/eddo/policy.yaml has no version id: turn on versioning for bucket policy-s3-plain, so each decision names the policy version that made it"
    );
}

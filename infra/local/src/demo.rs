//! The scripted scenario the README's run command plays: a signed GitHub push delivered over
//! HTTP to the webhook function's local URL (the real binary, through the Runtime API), put on the
//! bus, routed by the template's push rule to the build and SAST projects (the CodeBuild
//! stand-in), whose builds finish as the scenario planned and report on the default bus; then the
//! same delivery redelivered and published no second time, and a forged one refused; then the
//! gate's releases, an alarm's rollback, and a SaaS control plane onboarding three tenants (one
//! at once, one after a retry, one invalid). Each step prints one timeline line; the run succeeds
//! only if every expected step happened.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::event::lambda_function_urls::LambdaFunctionUrlRequest;
use http::{HeaderName, HeaderValue};
use serde_json::Value;

use crate::LocalError;
use crate::codebuild::Plan;
use crate::moto::Moto;
use crate::runtime::LocalFunction;
use crate::send::{github_headers, post_github};
use crate::stack::{LOCAL_GITHUB_SECRET, LOCAL_PARAMETERS, Stack};
use crate::timeline::{Timeline, Watch};
use crate::url::FunctionUrl;

/// `../shared/corpus` beside the project, or `EDDO_CORPUS`.
pub fn corpus() -> PathBuf {
    eddo::corpus::dir()
}

/// A function URL request as Lambda builds it: a POST to `path` with lower-case headers.
pub fn delivery(path: &str, headers: &[(&str, &str)], body: &str) -> LambdaFunctionUrlRequest {
    let mut req = LambdaFunctionUrlRequest::default();
    req.raw_path = Some(path.into());
    req.request_context.http.method = Some("POST".into());
    req.request_context.http.path = Some(path.into());
    for (k, v) in headers {
        req.headers.insert(
            HeaderName::from_bytes(k.to_ascii_lowercase().as_bytes()).expect("header name"),
            HeaderValue::from_str(v).expect("header value"),
        );
    }
    req.body = Some(body.to_string());
    req
}

/// A GitHub delivery of `body` as `event`, signed with `secret`.
pub fn github_delivery(
    secret: &str,
    event: &str,
    delivery_id: &str,
    body: &str,
) -> LambdaFunctionUrlRequest {
    let headers = github_headers(secret, event, delivery_id, body.as_bytes());
    let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
    delivery("/github", &headers, body)
}

/// A signed GitHub delivery to the local function URL, as GitHub sends it: `(status, answer)`.
async fn deliver(
    url: std::net::SocketAddr,
    secret: &str,
    event: &str,
    delivery_id: &str,
    body: &str,
) -> (u16, Value) {
    match post_github(url, secret, event, delivery_id, body.to_string()).await {
        Ok((status, text)) => (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        ),
        Err(e) => (0, Value::String(e.to_string())),
    }
}

/// The commit of the corpus push the scenario delivers.
const PUSHED: &str = "6113728f27ae82c7b1a177c8d03f9e96e0adf246";
/// The commits of the scenario's second and third releases (the corpus push, commit replaced).
const SECOND: &str = "b10c4ed0b10c4ed0b10c4ed0b10c4ed0b10c4ed0";
const THIRD: &str = "5105e1a75105e1a75105e1a75105e1a75105e1a7";
/// What was live before the scenario.
const RELEASE_0: &str = "0a11ce000a11ce000a11ce000a11ce000a11ce00";

/// The image a build of `commit` pushes (its digest, in the scenario).
fn image_of(commit: &str) -> String {
    format!("sha256:{commit}{}", &commit[..24])
}

/// The corpus push, as a push of `commit`.
fn push_of(body: &str, commit: &str) -> Result<String, LocalError> {
    let mut v: Value =
        serde_json::from_str(body).map_err(|e| LocalError::Setup(format!("push payload: {e}")))?;
    v["after"] = Value::String(commit.into());
    v["head_commit"]["id"] = Value::String(commit.into());
    Ok(v.to_string())
}

/// The ECR scan of the image built from `commit`, as ECR sends it after the push (the corpus
/// sample, naming this image): within the example policy's thresholds.
async fn ecr_scan(stack: &Stack, commit: &str) -> Result<String, LocalError> {
    let text = std::fs::read_to_string(corpus().join("aws/ecr-image-scan.json"))
        .map_err(|e| LocalError::Setup(format!("corpus: {e}")))?;
    let mut v: Value =
        serde_json::from_str(&text).map_err(|e| LocalError::Setup(format!("corpus: {e}")))?;
    let d = &mut v["detail"];
    d["repository-name"] = "hello-world".into();
    d["image-digest"] = image_of(commit).into();
    d["image-tags"] = serde_json::json!([commit]);
    d["finding-severity-counts"] = serde_json::json!({"HIGH": 1, "MEDIUM": 4, "LOW": 3});
    put_aws_event(
        stack,
        "aws.ecr",
        "ECR Image Scan",
        "arn:aws:ecr:us-east-1:123456789012:repository/hello-world",
        &v["detail"],
    )
    .await
}

/// Puts an AWS service's event on the default bus, as the service would; its event id.
async fn put_aws_event(
    stack: &Stack,
    source: &str,
    detail_type: &str,
    resource: &str,
    detail: &Value,
) -> Result<String, LocalError> {
    put_event(
        stack,
        "default",
        source,
        detail_type,
        Some(resource),
        detail,
    )
    .await
}

/// Puts an event on `bus`; its event id.
async fn put_event(
    stack: &Stack,
    bus: &str,
    source: &str,
    detail_type: &str,
    resource: Option<&str>,
    detail: &Value,
) -> Result<String, LocalError> {
    let out = aws_sdk_eventbridge::Client::new(&stack.sdk)
        .put_events()
        .entries(
            aws_sdk_eventbridge::types::PutEventsRequestEntry::builder()
                .event_bus_name(bus)
                .source(source)
                .detail_type(detail_type)
                .set_resources(resource.map(|r| vec![r.to_string()]))
                .detail(detail.to_string())
                .build(),
        )
        .send()
        .await
        .map_err(|e| crate::aws("PutEvents", e))?;
    Ok(out
        .entries()
        .first()
        .and_then(|e| e.event_id())
        .unwrap_or_default()
        .to_string())
}

/// CloudWatch's `hello-world-5xx` alarm going from OK into ALARM now (the corpus sample, named
/// for the example policy).
async fn alarm_fires(stack: &Stack) -> Result<String, LocalError> {
    let text = std::fs::read_to_string(corpus().join("aws/cloudwatch-alarm-state-change.json"))
        .map_err(|e| LocalError::Setup(format!("corpus: {e}")))?;
    let mut v: Value =
        serde_json::from_str(&text).map_err(|e| LocalError::Setup(format!("corpus: {e}")))?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let stamp = format!(
        "{}.{:03}+0000",
        eddo::time::rfc3339(now.as_secs()).trim_end_matches('Z'),
        now.subsec_millis()
    );
    let d = &mut v["detail"];
    d["alarmName"] = "hello-world-5xx".into();
    d["state"]["timestamp"] = stamp.into();
    d["state"]["reason"] = "Threshold Crossed: 1 out of the last 1 datapoints [12.0] was greater than the threshold (5.0)".into();
    put_aws_event(
        stack,
        "aws.cloudwatch",
        "CloudWatch Alarm State Change",
        "arn:aws:cloudwatch:us-east-1:123456789012:alarm:hello-world-5xx",
        &v["detail"],
    )
    .await
}

/// The version that was live before the scenario (release 0), as the gate would have recorded
/// it yesterday: what a rollback of release 1 restores.
async fn release_0_was_live(stack: &Stack) -> Result<(), LocalError> {
    let service = eddo::names::ServiceName::parse("hello-world").map_err(LocalError::Setup)?;
    let yesterday = eddo::idempotency::now_epoch() - 86_400;
    let v = eddo::history::Version {
        commit: RELEASE_0.into(),
        digest: Some(image_of(RELEASE_0)),
        build_id: format!("eddo-deploy:{}", &RELEASE_0[..8]),
        at: yesterday,
        kind: eddo::history::VersionKind::Deploy,
        correlation_id: None,
        replaced: None,
        started_at: Some(yesterday - 120),
    };
    let update = eddo::history::go_live(&stack.table, &service, &v)
        .map_err(|e| LocalError::Setup(e.to_string()))?;
    aws_sdk_dynamodb::Client::new(&stack.sdk)
        .transact_write_items()
        .transact_items(
            aws_sdk_dynamodb::types::TransactWriteItem::builder()
                .update(update)
                .build(),
        )
        .send()
        .await
        .map_err(|e| crate::aws("TransactWriteItems", e))?;
    Ok(())
}

/// alarm-rollback's events of one detail type seen so far.
fn rollback_events<'a>(watch: &'a Watch, detail_type: &str) -> Vec<&'a Value> {
    watch
        .seen(detail_type)
        .into_iter()
        .filter(|e| e["source"] == "eddo.rollback")
        .collect()
}

/// A SaaS control plane asks, on the eddo bus, for `tenant` in `tier` with `values` (eddo's
/// contract, as in `infra/examples/events/tenant-onboarding-requested.json`).
async fn tenant_requested(
    stack: &Stack,
    tenant: &str,
    tier: &str,
    values: Value,
) -> Result<String, LocalError> {
    let detail = serde_json::json!({"tenant_id": tenant, "tier": tier, "values": values});
    put_event(
        stack,
        &stack.bus,
        "com.example.control-plane",
        "Tenant Onboarding Requested",
        None,
        &detail,
    )
    .await
}

/// tenant-onboarding's events about `tenant` seen so far, by detail type.
fn tenant_events<'a>(watch: &'a Watch, detail_type: &str, tenant: &str) -> Vec<&'a Value> {
    watch
        .seen(detail_type)
        .into_iter()
        .filter(|e| e["source"] == "eddo.tenants" && e["detail"]["tenant_id"] == tenant)
        .collect()
}

/// The gate's events about `commit` seen so far, by detail type.
fn gate_events<'a>(watch: &'a Watch, detail_type: &str, commit: &str) -> Vec<&'a Value> {
    watch
        .seen(detail_type)
        .into_iter()
        .filter(|e| e["detail"]["commit_sha"] == commit)
        .collect()
}

/// Plays the scenario; `Ok(true)` when every expected step happened.
pub async fn run() -> Result<bool, LocalError> {
    let mut t = Timeline::new(true);
    let moto = Moto::start()?;
    t.step(true, "moto server started", "", moto.endpoint());
    let sdk = moto.sdk_config().await;
    let stack = Stack::provision(&sdk, "eddo").await?;
    t.step(
        true,
        "provisioned from template.yaml",
        "",
        format!(
            "bus {}, table {}, {} function(s), policy in SSM {} ({}); parameters: {}",
            stack.bus,
            stack.table,
            stack.functions.len(),
            stack.policy_parameter.as_deref().unwrap_or("-"),
            crate::stack::LOCAL_POLICY,
            LOCAL_PARAMETERS
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(" "),
        ),
    );
    t.step(
        true,
        "rules",
        "",
        stack
            .routes
            .iter()
            .map(|r| format!("{} -> {}", r.rule, r.target.name()))
            .collect::<Vec<_>>()
            .join(", "),
    );
    t.step(true, "not emulated", "", stack.skipped.join(", "));

    let webhook = Arc::new(LocalFunction::new(stack.spec("webhook", &moto.endpoint())?).await?);
    let gate = Arc::new(LocalFunction::new(stack.spec("scan-gate", &moto.endpoint())?).await?);
    let rollback =
        Arc::new(LocalFunction::new(stack.spec("alarm-rollback", &moto.endpoint())?).await?);
    let tenants =
        Arc::new(LocalFunction::new(stack.spec("tenant-onboarding", &moto.endpoint())?).await?);
    let functions = [
        webhook.clone(),
        gate.clone(),
        rollback.clone(),
        tenants.clone(),
    ];
    let url = FunctionUrl::serve(webhook.clone(), 0).await?;
    let mut watch = Watch::new(&stack, &functions).await?;
    t.step(
        true,
        "webhook function URL",
        "",
        format!("{}github", url.url()),
    );

    let path = corpus().join("github/push/with-new-branch.payload.json");
    let body = std::fs::read_to_string(&path)
        .map_err(|e| LocalError::Setup(format!("{}: {e}", path.display())))?;
    let delivery = "0b9c2a4e-7f3d-11ef-8a5d-eddo00000001";
    let who = webhook.name().to_string();

    let (status, _) = deliver(
        url.addr(),
        LOCAL_GITHUB_SECRET,
        "ping",
        "ping-1",
        r#"{"zen":"Approachable is better than simple.","hook_id":1}"#,
    )
    .await;
    t.step(status == 200, "GitHub ping", &who, format!("HTTP {status}"));

    release_0_was_live(&stack).await?;
    t.step(
        true,
        "hello-world had release 0 live since yesterday",
        "history",
        format!(
            "{} (what a rollback of release 1 restores)",
            &RELEASE_0[..7]
        ),
    );

    // Release 1: the corpus push. Build and scan pass, the image scan is clean: deployed.
    println!("\n-- release 1: {} passes every signal --", &PUSHED[..7]);
    let cb = &stack.codebuild;
    cb.plan(
        "eddo-build",
        Plan::succeed().exporting("IMAGE_DIGEST", &image_of(PUSHED)),
    );
    cb.plan("eddo-sast", Plan::succeed());
    cb.plan("eddo-deploy", Plan::succeed());
    let (status, answer) = deliver(url.addr(), LOCAL_GITHUB_SECRET, "push", delivery, &body).await;
    t.step(
        status == 202 && answer["status"] == "published",
        "signed push to master delivered",
        &who,
        format!(
            "HTTP {status} {} {}",
            answer["status"], answer["detail_type"]
        ),
    );
    watch
        .until(&stack, &mut t, Duration::from_secs(10), |_, s| {
            s.codebuild.builds().len() >= 2
        })
        .await?;
    let builds = stack.codebuild.builds();
    let started = |project: &str| {
        builds.iter().any(|b| {
            b.project == project
                && b.source_version.as_deref() == Some(PUSHED)
                && b.env("EDDO_CORRELATION_ID") == Some(delivery)
        })
    };
    t.step(
        builds.len() == 2 && started("eddo-build") && started("eddo-sast"),
        "push rule started the build and the scan",
        "EventBridge",
        format!(
            "{} build(s) of {}, correlation id {delivery}",
            builds.len(),
            &PUSHED[..7]
        ),
    );
    let (status, answer) = deliver(url.addr(), LOCAL_GITHUB_SECRET, "push", delivery, &body).await;
    t.step(
        status == 202 && answer["status"] == "duplicate",
        "the same delivery redelivered",
        &who,
        format!("HTTP {status} {}", answer["status"]),
    );
    let (status, _) = deliver(url.addr(), "not the secret", "push", "forged-1", &body).await;
    t.step(
        status == 401,
        "a delivery signed with another secret",
        &who,
        format!("HTTP {status}"),
    );
    // Both builds report to the gate; then ECR scans the pushed image.
    watch
        .until(&stack, &mut t, Duration::from_secs(30), |w, _| {
            w.count("aws.codebuild", Some("SUCCEEDED")) >= 2
                && w.deliveries
                    .iter()
                    .filter(|d| d.target == "ScanGateFunction")
                    .count()
                    >= 2
        })
        .await?;
    let scan = ecr_scan(&stack, PUSHED).await?;
    t.step(
        true,
        "ECR scanned the pushed image",
        "aws.ecr",
        format!("event {scan}"),
    );
    let deployed = watch
        .until(&stack, &mut t, Duration::from_secs(30), |w, _| {
            !gate_events(w, "Deployment Succeeded", PUSHED).is_empty()
        })
        .await?;
    let deploys: Vec<_> = stack
        .codebuild
        .builds()
        .into_iter()
        .filter(|b| b.project == "eddo-deploy")
        .collect();
    t.step(
        deployed
            && gate_events(&watch, "Deployment Started", PUSHED).len() == 1
            && deploys.len() == 1
            && deploys[0].env("EDDO_IMAGE_DIGEST") == Some(image_of(PUSHED).as_str()),
        "release 1 deployed once, history updated",
        "scan-gate",
        format!(
            "{} deploy build(s), {} StartBuild call(s)",
            deploys.len(),
            stack.codebuild.calls("eddo-deploy")
        ),
    );

    // Release 2: the SAST project fails: blocked, with the reason.
    println!(
        "\n-- release 2: {} fails its static analysis --",
        &SECOND[..7]
    );
    cb.plan(
        "eddo-build",
        Plan::succeed().exporting("IMAGE_DIGEST", &image_of(SECOND)),
    );
    cb.plan("eddo-sast", Plan::fail("BUILD"));
    let (status, _) = deliver(
        url.addr(),
        LOCAL_GITHUB_SECRET,
        "push",
        "0b9c2a4e-7f3d-11ef-8a5d-eddo00000002",
        &push_of(&body, SECOND)?,
    )
    .await;
    t.step(
        status == 202,
        "push of a second commit",
        &who,
        format!("HTTP {status}"),
    );
    watch
        .until(&stack, &mut t, Duration::from_secs(30), |w, _| {
            !gate_events(w, "Deployment Blocked", SECOND).is_empty()
        })
        .await?;
    let blocked = gate_events(&watch, "Deployment Blocked", SECOND);
    let reason = blocked
        .first()
        .and_then(|e| e["detail"]["reasons"][0].as_str())
        .unwrap_or_default()
        .to_string();
    t.step(
        reason.starts_with("sast: eddo-sast build FAILED in phase BUILD"),
        "release 2 blocked",
        "scan-gate",
        reason.clone(),
    );

    // Release 3: the scan never comes: timed out when the deadline passes.
    println!("\n-- release 3: {}'s scans never finish --", &THIRD[..7]);
    cb.plan(
        "eddo-build",
        Plan::succeed().exporting("IMAGE_DIGEST", &image_of(THIRD)),
    );
    cb.plan(
        "eddo-sast",
        Plan::succeed().lasting(Duration::from_secs(3600)),
    );
    let to_gate = |w: &Watch| {
        w.deliveries
            .iter()
            .filter(|d| d.target == "ScanGateFunction")
            .count()
    };
    let before = to_gate(&watch);
    let (status, _) = deliver(
        url.addr(),
        LOCAL_GITHUB_SECRET,
        "push",
        "0b9c2a4e-7f3d-11ef-8a5d-eddo00000003",
        &push_of(&body, THIRD)?,
    )
    .await;
    t.step(
        status == 202,
        "push of a third commit",
        &who,
        format!("HTTP {status}"),
    );
    watch
        .until(&stack, &mut t, Duration::from_secs(30), |w, _| {
            to_gate(w) > before
        })
        .await?;
    let later = eddo::idempotency::now_epoch() + 31 * 60;
    t.step(
        true,
        "the clock moves 31 minutes on",
        "local scheduler",
        format!(
            "the deadline schedule fires with time {} (the policy's deadline is 30 minutes)",
            eddo::time::rfc3339(later)
        ),
    );
    watch.tick(&mut t, later).await?;
    let timed_out = watch
        .until(&stack, &mut t, Duration::from_secs(10), |w, _| {
            !gate_events(w, "Deployment Timed Out", THIRD).is_empty()
        })
        .await?;
    let missing = gate_events(&watch, "Deployment Timed Out", THIRD)
        .first()
        .map(|e| e["detail"]["missing"].clone())
        .unwrap_or_default();
    t.step(
        timed_out && missing == serde_json::json!(["image-scan", "sast"]),
        "release 3 timed out",
        "scan-gate",
        format!("missing {missing}"),
    );

    // Release 1 hurts production: its 5xx alarm fires while it bakes. Rolled back to release 0,
    // once; a second alarm inside the cooldown is skipped, with its reasons.
    println!("\n-- release 1 hurts production: hello-world-5xx goes into ALARM while it bakes --");
    cb.plan("eddo-rollback", Plan::succeed());
    let fired = alarm_fires(&stack).await?;
    t.step(
        true,
        "hello-world-5xx went into ALARM",
        "aws.cloudwatch",
        format!("event {fired}"),
    );
    let restored = watch
        .until(&stack, &mut t, Duration::from_secs(30), |w, _| {
            !rollback_events(w, "Rollback Succeeded").is_empty()
        })
        .await?;
    let rollbacks: Vec<_> = stack
        .codebuild
        .builds()
        .into_iter()
        .filter(|b| b.project == "eddo-rollback")
        .collect();
    let started = rollback_events(&watch, "Rollback Started");
    t.step(
        started.len() == 1
            && rollbacks.len() == 1
            && rollbacks[0].env("EDDO_COMMIT_SHA") == Some(RELEASE_0)
            && rollbacks[0].env("EDDO_REPLACED_COMMIT_SHA") == Some(PUSHED),
        "rolled back to release 0, once",
        "alarm-rollback",
        format!(
            "{} rollback build(s), {} -> {}",
            rollbacks.len(),
            &PUSHED[..7],
            &RELEASE_0[..7]
        ),
    );
    let live = rollback_events(&watch, "Rollback Succeeded")
        .first()
        .map(|e| e["detail"]["live"].clone())
        .unwrap_or_default();
    t.step(
        restored && live["commit"] == RELEASE_0 && live["kind"] == "rollback",
        "rollback succeeded: release 0 live again",
        "alarm-rollback",
        format!("live {} ({})", live["commit"], live["kind"]),
    );
    // CloudWatch evaluates an alarm at most every 10 seconds and knows a state change by its
    // second: the next change is at least in the next second.
    let into_second = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .subsec_millis();
    tokio::time::sleep(Duration::from_millis(u64::from(1_010 - into_second.min(1_000)))).await;
    let again = alarm_fires(&stack).await?;
    t.step(
        true,
        "hello-world-5xx went into ALARM again",
        "aws.cloudwatch",
        format!("event {again}"),
    );
    watch
        .until(&stack, &mut t, Duration::from_secs(30), |w, _| {
            !rollback_events(w, "Rollback Skipped").is_empty()
        })
        .await?;
    let skipped = rollback_events(&watch, "Rollback Skipped");
    let codes = skipped
        .first()
        .map(|e| e["detail"]["codes"].clone())
        .unwrap_or_default();
    t.step(
        skipped.len() == 1
            && codes
                .as_array()
                .is_some_and(|c| c.iter().any(|c| c == "cooldown"))
            && stack.codebuild.calls("eddo-rollback") == 1,
        "second alarm inside the cooldown skipped",
        "alarm-rollback",
        format!("reasons {codes}"),
    );

    // A SaaS control plane onboards three tenants: one provisions at once, one fails and
    // succeeds on the tier's retry, one is invalid and answered with every reason.
    println!("\n-- a SaaS control plane onboards three tenants --");
    cb.plan(
        "eddo-tenant-provision",
        Plan::succeed()
            .exporting("TENANT_URL", "https://acme.app.example.com")
            .exporting("TENANT_STACK", "tenant-acme")
            .exporting("TENANT_DB_PASSWORD", "not-for-the-bus"),
    );
    let asked = tenant_requested(
        &stack,
        "acme",
        "basic",
        serde_json::json!({"tenantName": "Acme Corp", "email": "ops@acme.example"}),
    )
    .await?;
    t.step(
        true,
        "onboarding of acme (tier basic) requested",
        "control plane",
        format!("event {asked}"),
    );
    let provisioned = watch
        .until(&stack, &mut t, Duration::from_secs(30), |w, _| {
            !tenant_events(w, "Tenant Provisioned", "acme").is_empty()
        })
        .await?;
    let outputs = tenant_events(&watch, "Tenant Provisioned", "acme")
        .first()
        .map(|e| e["detail"]["outputs"].clone())
        .unwrap_or_default();
    t.step(
        provisioned
            && tenant_events(&watch, "Tenant Provisioning Started", "acme").len() == 1
            && outputs
                == serde_json::json!({"TENANT_URL": "https://acme.app.example.com", "TENANT_STACK": "tenant-acme"}),
        "acme provisioned, once, with the outputs the tier allows",
        "tenant-onboarding",
        format!("outputs {outputs} (TENANT_DB_PASSWORD was exported, not published)"),
    );

    cb.plan("eddo-tenant-provision", Plan::fail("BUILD"));
    cb.plan(
        "eddo-tenant-provision",
        Plan::succeed().exporting("TENANT_URL", "https://globex.app.example.com"),
    );
    let asked = tenant_requested(
        &stack,
        "globex",
        "basic",
        serde_json::json!({"tenantName": "Globex"}),
    )
    .await?;
    t.step(
        true,
        "onboarding of globex (tier basic, one retry) requested",
        "control plane",
        format!("event {asked}"),
    );
    let provisioned = watch
        .until(&stack, &mut t, Duration::from_secs(30), |w, _| {
            !tenant_events(w, "Tenant Provisioned", "globex").is_empty()
        })
        .await?;
    let attempts = tenant_events(&watch, "Tenant Provisioning Started", "globex");
    let previous = attempts
        .get(1)
        .map(|e| e["detail"]["previous_attempt"].clone())
        .unwrap_or_default();
    t.step(
        attempts.len() == 2 && previous["failed_phase"] == "BUILD",
        "globex's first build failed in BUILD: retried",
        "tenant-onboarding",
        format!("attempt 2 after {}", previous["reason"]),
    );
    t.step(
        provisioned && tenant_events(&watch, "Tenant Provisioning Failed", "globex").is_empty(),
        "globex provisioned on attempt 2",
        "tenant-onboarding",
        format!(
            "{} provisioning build(s) in all",
            stack.codebuild.calls("eddo-tenant-provision")
        ),
    );

    let asked = tenant_requested(
        &stack,
        "Initech Corp",
        "gold",
        serde_json::json!({"tenantName": "Initech"}),
    )
    .await?;
    t.step(
        true,
        "onboarding of \"Initech Corp\" (tier gold) requested",
        "control plane",
        format!("event {asked}"),
    );
    let rejected = watch
        .until(&stack, &mut t, Duration::from_secs(30), |w, _| {
            !tenant_events(w, "Tenant Onboarding Rejected", "Initech Corp").is_empty()
        })
        .await?;
    let reasons = tenant_events(&watch, "Tenant Onboarding Rejected", "Initech Corp")
        .first()
        .map(|e| e["detail"]["reasons"].clone())
        .unwrap_or_default();
    t.step(
        rejected
            && reasons.as_array().is_some_and(|r| r.len() == 2)
            && stack.codebuild.calls("eddo-tenant-provision") == 3,
        "the invalid request rejected with every reason, nothing started",
        "tenant-onboarding",
        format!("reasons {reasons}"),
    );

    watch
        .poll(&stack, &mut t, Duration::from_millis(300))
        .await?;
    let dead = watch.deliveries.iter().filter(|d| d.dead_lettered).count();
    t.step(
        dead == 0
            && watch.count("eddo.webhook", None) == 3
            && stack.codebuild.calls("eddo-deploy") == 1,
        "in all",
        "",
        format!(
            "{} eddo.webhook event(s), {} eddo.gate event(s), {} eddo.rollback event(s), {} eddo.tenants event(s), {} build(s), 1 deployment, 1 rollback, 2 tenants, {dead} delivery(ies) dead-lettered",
            watch.count("eddo.webhook", None),
            watch.count("eddo.gate", None),
            watch.count("eddo.rollback", None),
            watch.count("eddo.tenants", None),
            stack.codebuild.builds().len(),
        ),
    );
    for f in &functions {
        let cold = f.cold_start();
        t.step(
            true,
            "cold start and memory",
            f.name(),
            format!(
                "init {} ms, first response {} ms, resident {} KiB",
                cold.map(|c| c.to_first_next.as_millis())
                    .unwrap_or_default(),
                cold.and_then(|c| c.to_first_response)
                    .map(|d| d.as_millis())
                    .unwrap_or_default(),
                f.rss_kib().await.unwrap_or_default()
            ),
        );
    }
    for f in &functions {
        f.stop().await;
    }
    drop(url);
    drop(moto);
    t.step(true, "stopped the functions and moto", "", "");
    println!();
    if t.failures() == 0 {
        println!("demo passed: every expected step happened");
    } else {
        println!(
            "demo FAILED: {} step(s) did not happen as expected",
            t.failures()
        );
        for f in &functions {
            println!("\n{} log:\n{}", f.name(), f.logs().join("\n"));
        }
    }
    Ok(t.failures() == 0)
}

//! The scripted scenario the README's run command plays: a signed GitHub push delivered over
//! HTTP to the webhook function's local URL (the real binary, through the Runtime API), put on the
//! bus, routed by the template's push rule to the build and SAST projects (the CodeBuild
//! stand-in), whose builds finish as the scenario planned and report on the default bus; then the
//! same delivery redelivered and published no second time, and a forged one refused; then the
//! gate's releases, a Prometheus alert's rollback (and a CloudWatch alarm's skipped), and a SaaS control plane onboarding three tenants (one
//! at once, one after a retry, one invalid) and a current sbt-aws control plane registering a
//! fourth. Each step prints one timeline line; the run succeeds only if every expected step
//! happened. The play's events are written to `target/demo/events.jsonl` for `eddo policy replay`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

mod acts;
mod github;

use crate::LocalError;
use crate::codebuild::Plan;
use crate::moto::Moto;
use crate::runtime::LocalFunction;
use crate::send::post_github;
use crate::stack::{LOCAL_GITHUB_SECRET, Stack};
use crate::timeline::{Timeline, Watch};
use crate::url::FunctionUrl;

/// `../shared/corpus` beside the project, or `EDDO_CORPUS`.
pub fn corpus() -> PathBuf {
    eddo::corpus::dir()
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
    // ECR ran the scan it reports: the gate counts it only as ECR confirms it.
    crate::ecr::scanned(
        &stack.sdk,
        "hello-world",
        &image_of(commit),
        &d["finding-severity-counts"],
        None,
    )
    .await?;
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

/// Puts an event on `bus` as whom the bus lets put its source (AWS's samples on the default bus
/// as the administrator); its event id.
async fn put_event(
    stack: &Stack,
    bus: &str,
    source: &str,
    detail_type: &str,
    resource: Option<&str>,
    detail: &Value,
) -> Result<String, LocalError> {
    let sdk = if bus == "default" {
        stack.sdk.clone()
    } else {
        stack.sdk_for_source(source).await?
    };
    let out = aws_sdk_eventbridge::Client::new(&sdk)
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
    // The alarm really breached: alarm-rollback acts only as CloudWatch confirms it.
    crate::cloudwatch::ran(&stack.sdk, &v).await?;
    put_aws_event(
        stack,
        "aws.cloudwatch",
        "CloudWatch Alarm State Change",
        "arn:aws:cloudwatch:us-east-1:123456789012:alarm:hello-world-5xx",
        &v["detail"],
    )
    .await
}

/// Prometheus's `HighErrorRate` alert for hello-world firing now, sent by its Alertmanager to
/// `/alertmanager/prometheus` with its token (Alertmanager's notification as its code writes it,
/// the test fixture's first alert): `(status, answer)`.
async fn alert_fires(url: std::net::SocketAddr) -> Result<(u16, Value), LocalError> {
    let path = crate::moto::project_root()
        .join("functions/webhook/tests/fixtures/alertmanager/alertmanager-v4-firing.json");
    let text = std::fs::read_to_string(&path)
        .map_err(|e| LocalError::Setup(format!("{}: {e}", path.display())))?;
    let mut n: Value =
        serde_json::from_str(&text).map_err(|e| LocalError::Setup(format!("alert: {e}")))?;
    let first = n["alerts"][0].clone();
    n["alerts"] = Value::Array(vec![first]);
    n["alerts"][0]["startsAt"] = eddo::time::rfc3339(eddo::idempotency::now_epoch()).into();
    let (status, text) =
        crate::send::post_alerts(url, "prometheus", crate::stack::LOCAL_PROMETHEUS_TOKEN, &n)
            .await?;
    Ok((
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    ))
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

/// What a play of the scenario came to.
pub struct Played {
    pub timeline: Timeline,
    /// The roles of the template as the stack created them.
    pub roles: Vec<crate::iam::RoleDoc>,
    /// Every authorization the functions' roles were asked for, in order.
    pub asked: Vec<crate::iam::Asked>,
    /// Each function's execution role, by logical id.
    pub function_roles: Vec<(String, String)>,
    /// Every event of the play, in the order seen: eddo's on its bus and AWS's on the default
    /// bus, as `eddo policy replay` reads them.
    pub events: Vec<Value>,
}

/// Where `make demo` writes the play's events (JSON lines), for `eddo policy replay`.
pub const EVENTS_FILE: &str = "target/demo/events.jsonl";

/// Where `make demo` writes the policy it ran, beside its events.
pub const POLICY_FILE: &str = "target/demo/policy.yaml";

/// The policy the demo runs: the example's, hello-world's gate also requiring a `test` signal
/// from Tekton's `testsuiterun.finished` CDEvents.
pub fn demo_policy() -> Result<String, LocalError> {
    let text =
        std::fs::read_to_string(crate::moto::project_root().join(crate::stack::LOCAL_POLICY))
            .map_err(|e| LocalError::Setup(format!("{}: {e}", crate::stack::LOCAL_POLICY)))?;
    let text = crate::fixtures::requiring_tekton_tests(&text, "build, image-scan, sast, test");
    // Its deploy job on GitHub Actions waits on the environment production for eddo's answer,
    // as the deploy project waits for eddo to start it.
    let codebuild = "    deploys_by: codebuild\n";
    if !text.contains(codebuild) {
        return Err(LocalError::Setup(
            "the example policy no longer says how hello-world deploys".into(),
        ));
    }
    Ok(text.replacen(
        codebuild,
        &format!(
            "    deploys_by: both\n    github_environment: {}\n",
            github::ENVIRONMENT
        ),
        1,
    ))
}

impl Played {
    pub fn passed(&self) -> bool {
        self.timeline.failures() == 0
    }
}

/// What one play shares across its acts.
pub(crate) struct Scene<'a> {
    stack: &'a Stack,
    watch: Watch,
    t: Timeline,
    /// The webhook function URL's address.
    url: std::net::SocketAddr,
    /// The webhook function's logical id.
    who: String,
    /// The CloudEvents sink eddo's CDEvents go to, if the template takes one.
    sink: &'a crate::sink::Sink,
    /// The GitHub stand-in the gate's check runs go to, if the template has the App mode.
    github: Option<&'a crate::github::GitHub>,
}

/// Plays the scenario on the template `from` names (template.yaml, the CDK app's, a file), printing the
/// timeline; `Ok(true)` when every expected step happened.
pub async fn run(from: From) -> Result<bool, LocalError> {
    let read = |path: &std::path::Path| {
        std::fs::read_to_string(path)
            .map_err(|e| LocalError::Setup(format!("{}: {e}", path.display())))
    };
    let template = match from {
        From::Cdk => crate::cdk::synth(&crate::cdk::local_context())?,
        From::Sam => read(&crate::moto::project_root().join("template.yaml"))?,
        From::Template(path) => read(&path)?,
    };
    let played = play(&template, true, false).await?;
    let path = crate::moto::project_root().join(EVENTS_FILE);
    let lines: Vec<String> = played.events.iter().map(Value::to_string).collect();
    let policy = demo_policy()?;
    std::fs::create_dir_all(path.parent().expect("a file in a folder"))
        .and_then(|()| std::fs::write(&path, lines.join("\n") + "\n"))
        .and_then(|()| std::fs::write(crate::moto::project_root().join(POLICY_FILE), policy))
        .map_err(|e| LocalError::Setup(format!("{}: {e}", path.display())))?;
    println!(
        "\nthe play's {} events are in {EVENTS_FILE}, its policy in {POLICY_FILE}; what would a policy change have decided?\n  eddo policy replay --policy NEW.yaml --current {POLICY_FILE} {EVENTS_FILE}",
        played.events.len()
    );
    Ok(played.passed())
}

/// The template the demo plays on.
#[derive(Debug, Clone)]
pub enum From {
    /// template.yaml (SAM).
    Sam,
    /// What the CDK app of infra/cdk synthesizes, with the local settings.
    Cdk,
    /// A template synthesized elsewhere (a consumer's app of the packaged construct).
    Template(PathBuf),
}

/// Plays the scenario on the stack `template` declares (with the local stack's parameters),
/// printing the timeline if `print`. With `stop_at_first_failure`, steps after the first
/// failure wait for nothing (they fail at once): for a template that is expected to fail.
pub async fn play(
    template: &str,
    print: bool,
    stop_at_first_failure: bool,
) -> Result<Played, LocalError> {
    let mut t = Timeline::new(print);
    t.stop_at_first_failure = stop_at_first_failure;
    let moto = Moto::start()?;
    t.step(true, "moto server started", "", moto.endpoint());
    let sdk = moto.sdk_config().await;
    // Where eddo's CDEvents go, when the template takes a sink (template.yaml does).
    let sink = crate::sink::Sink::start(&[]).await?;
    // Where the gate's check runs go, when the template has the GitHub App mode.
    let github = crate::github::GitHub::start(eddo::idempotency::now_epoch).await?;
    let sink_parameters: Vec<(String, String)> = sink
        .parameters()
        .into_iter()
        .chain(github.parameters())
        .collect();
    let optional: Vec<(String, &str)> = sink_parameters
        .iter()
        .map(|(k, v)| (format!("{k}?"), v.as_str()))
        .collect();
    let optional: Vec<(&str, &str)> = optional.iter().map(|(k, v)| (k.as_str(), *v)).collect();
    let stack = Stack::provision_template(&sdk, "eddo", template, &optional).await?;
    t.step(
        true,
        "provisioned from the template",
        "",
        format!(
            "bus {}, table {}, {} function(s), policy in SSM {} ({}); parameters: {}",
            stack.bus,
            stack.table,
            stack.functions.len(),
            stack.policy_parameter.as_deref().unwrap_or("-"),
            crate::stack::LOCAL_POLICY,
            stack
                .parameters
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
    // The operator puts the App's key into the secret the stack made for it.
    let app = stack
        .function("scan-gate")
        .is_ok_and(|f| f.env.iter().any(|(k, _)| k == "EDDO_GITHUB_APP_SECRET"));
    if app {
        github.install(&stack).await?;
        t.step(
            true,
            "the GitHub App's key put in its secret",
            "",
            github.url(),
        );
    }

    let mut functions = Vec::new();
    for binary in [
        "webhook",
        "scan-gate",
        "alarm-rollback",
        "tenant-onboarding",
    ] {
        functions.push(Arc::new(
            LocalFunction::new(stack.spec(binary, &moto.endpoint())?).await?,
        ));
    }
    let webhook = functions[0].clone();
    let url = FunctionUrl::serve(webhook.clone(), 0).await?;
    let watch = Watch::new(&stack, &functions).await?;
    t.step(
        true,
        "webhook function URL",
        "",
        format!("{}github", url.url()),
    );
    let mut scene = Scene {
        stack: &stack,
        watch,
        t,
        url: url.addr(),
        who: webhook.name().to_string(),
        sink: &sink,
        github: app.then_some(&github),
    };
    acts::releases(&mut scene).await?;
    acts::rollback(&mut scene).await?;
    acts::tenants(&mut scene).await?;
    // The protection rule's delivery, when the template has the App mode.
    let webhook_events = 5 + usize::from(scene.github.is_some());
    let Scene {
        mut watch, mut t, ..
    } = scene;
    watch
        .poll(&stack, &mut t, Duration::from_millis(300))
        .await?;
    let dead = watch.deliveries.iter().filter(|d| d.dead_lettered).count();
    t.step(
        dead == 0
            && watch.count("eddo.webhook", None) == webhook_events
            && stack.codebuild.calls("eddo-deploy") == 1,
        "in all",
        "",
        format!(
            "{} eddo.webhook event(s), {} eddo.gate event(s), {} eddo.rollback event(s), {} eddo.tenants event(s), {} build(s), 1 deployment, 1 rollback, 3 tenants (one through sbt-aws), {dead} delivery(ies) dead-lettered",
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
    let asked = stack.authority.decisions()?;
    let function_roles = stack
        .functions
        .iter()
        .map(|f| (f.logical_id.clone(), f.role.clone()))
        .collect();
    let roles = stack.roles.clone();
    drop(url);
    drop(stack);
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
    Ok(Played {
        timeline: t,
        roles,
        asked,
        function_roles,
        events: watch.events,
    })
}

//! The scripted scenario the README's run command plays: a signed GitHub push delivered over
//! HTTP to the webhook function's local URL (the real binary, through the Runtime API), put on the
//! bus, routed by the template's push rule to the build and SAST projects (the CodeBuild
//! stand-in), whose builds finish as the scenario planned and report on the default bus; then the
//! same delivery redelivered and published no second time, and a forged one refused. Each step
//! prints one timeline line; the run succeeds only if every expected step happened.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::event::lambda_function_urls::LambdaFunctionUrlRequest;
use http::{HeaderName, HeaderValue};
use serde_json::Value;

use crate::LocalError;
use crate::codebuild::Plan;
use crate::moto::{Moto, project_root};
use crate::runtime::LocalFunction;
use crate::send::{github_headers, post_github};
use crate::stack::{LOCAL_GITHUB_SECRET, LOCAL_PARAMETERS, Stack};
use crate::timeline::{Timeline, Watch};
use crate::url::FunctionUrl;

/// `../shared/corpus` beside the project, or `EDDO_CORPUS`.
pub fn corpus() -> PathBuf {
    std::env::var_os("EDDO_CORPUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| project_root().join("../shared/corpus"))
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
            "bus {}, table {}, {} function(s), rules: {}; parameters: {}",
            stack.bus,
            stack.table,
            stack.functions.len(),
            stack
                .routes
                .iter()
                .map(|r| format!("{} -> {}", r.rule, r.target.name()))
                .collect::<Vec<_>>()
                .join(", "),
            LOCAL_PARAMETERS
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(" "),
        ),
    );
    t.step(true, "not emulated", "", stack.skipped.join(", "));
    // The scenario's builds: the build exports the image it pushed, the scan passes.
    stack.codebuild.plan(
        "eddo-build",
        Plan::succeed().exporting(
            "IMAGE_DIGEST",
            "sha256:4c0fd9c1f5d3e8a76e0fb0ab6b1d5c8e2f3a4b5c6d7e8f9a0b1c2d3e4f5a6b7c",
        ),
    );
    stack.codebuild.plan("eddo-sast", Plan::succeed());

    let webhook = Arc::new(LocalFunction::new(stack.spec("webhook", &moto.endpoint())?).await?);
    let url = FunctionUrl::serve(webhook.clone(), 0).await?;
    let mut watch = Watch::new(&stack, std::slice::from_ref(&webhook)).await?;
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
    let cold = webhook.cold_start();
    t.step(
        status == 200,
        "GitHub ping",
        &who,
        format!(
            "HTTP {status}, cold start: init {} ms, first response {} ms",
            cold.map(|c| c.to_first_next.as_millis())
                .unwrap_or_default(),
            cold.and_then(|c| c.to_first_response)
                .map(|d| d.as_millis())
                .unwrap_or_default()
        ),
    );

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
            "{} build(s) of commit {}, correlation id {delivery}",
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

    let settled = watch
        .until(&stack, &mut t, Duration::from_secs(30), |w, _| {
            w.count("aws.codebuild", Some("SUCCEEDED")) >= 2
        })
        .await?;
    // Anything still in flight (a second build, a second event) would show here.
    watch
        .poll(&stack, &mut t, Duration::from_millis(300))
        .await?;
    let count = |source: &str, status: Option<&str>| watch.count(source, status);
    t.step(
        settled && count("aws.codebuild", Some("SUCCEEDED")) == 2,
        "both builds finished and reported",
        "CodeBuild",
        format!(
            "{} SUCCEEDED state change(s) on the default bus",
            count("aws.codebuild", Some("SUCCEEDED"))
        ),
    );
    t.step(
        count("eddo.webhook", None) == 1 && stack.codebuild.builds().len() == 2,
        "in all",
        "",
        format!(
            "{} eddo event(s) (one push, published once), {} build(s), {} delivery(ies) dead-lettered",
            count("eddo.webhook", None),
            stack.codebuild.builds().len(),
            watch.deliveries.iter().filter(|d| d.dead_lettered).count()
        ),
    );
    let rss = webhook.rss_kib().await.unwrap_or_default();
    webhook.stop().await;
    drop(url);
    drop(moto);
    t.step(
        true,
        "stopped the function and moto",
        "",
        format!("webhook resident memory was {} KiB", rss),
    );
    println!();
    if t.failures() == 0 {
        println!("demo passed: every expected step happened");
    } else {
        println!(
            "demo FAILED: {} step(s) did not happen as expected",
            t.failures()
        );
        println!("\nwebhook function log:\n{}", webhook.logs().join("\n"));
    }
    Ok(t.failures() == 0)
}

//! The scripted scenario the README's run command plays: a signed GitHub push delivered over
//! HTTP to the webhook function's local URL (the real binary, through the Runtime API), routed by
//! a rule on the bus, then redelivered and published no second time. Each step prints one
//! timeline line; the run succeeds only if every expected step happened.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_lambda_events::event::lambda_function_urls::LambdaFunctionUrlRequest;
use http::{HeaderName, HeaderValue};
use serde_json::Value;

use crate::LocalError;
use crate::moto::{Moto, project_root};
use crate::runtime::LocalFunction;
use crate::send::{github_headers, post_github};
use crate::stack::{LOCAL_GITHUB_SECRET, Stack};
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

struct Timeline {
    start: Instant,
    failures: usize,
}

impl Timeline {
    fn step(&mut self, ok: bool, what: &str, who: &str, detail: impl AsRef<str>) {
        if !ok {
            self.failures += 1;
        }
        println!(
            "{:>7.3}s  {}  {:<42} {:<16} {}",
            self.start.elapsed().as_secs_f64(),
            if ok { "ok  " } else { "FAIL" },
            what,
            who,
            detail.as_ref()
        );
    }
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

/// Plays the scenario; `Ok(true)` when every expected step happened.
pub async fn run() -> Result<bool, LocalError> {
    let mut t = Timeline {
        start: Instant::now(),
        failures: 0,
    };
    let moto = Moto::start()?;
    t.step(true, "moto server started", "", moto.endpoint());
    let sdk = moto.sdk_config().await;
    let stack = Stack::provision(&sdk, "eddo").await?;
    t.step(
        true,
        "provisioned from template.yaml",
        "",
        format!(
            "bus {}, table {}, {} function(s); not emulated: {}",
            stack.bus,
            stack.table,
            stack.functions.len(),
            stack.skipped.join(", ")
        ),
    );

    let webhook = Arc::new(LocalFunction::new(stack.spec("webhook", &moto.endpoint())?).await?);
    let url = FunctionUrl::serve(webhook.clone(), 0).await?;
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

    let routed = stack
        .drain(&stack.push_queue, Duration::from_secs(5))
        .await?;
    let first = routed.first().cloned().unwrap_or_default();
    t.step(
        routed.len() == 1
            && first["detail-type"] == "Git Push"
            && first["detail"]["branch"] == "master",
        "rule 'push to tracked branch' matched",
        "EventBridge",
        format!(
            "{} event(s): {} {} {}@{}",
            routed.len(),
            first["source"].as_str().unwrap_or("-"),
            first["detail-type"].as_str().unwrap_or("-"),
            first["detail"]["repository"]["full_name"]
                .as_str()
                .unwrap_or("-"),
            first["detail"]["commit_sha"]
                .as_str()
                .map(|s| &s[..s.len().min(7)])
                .unwrap_or("-"),
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

    let everything = stack
        .drain(&stack.tap_queue, Duration::from_millis(500))
        .await?;
    t.step(
        everything.len() == 1,
        "events on the bus in all",
        "",
        format!("{} (one push, published once)", everything.len()),
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
    if t.failures == 0 {
        println!("demo passed: every expected step happened");
    } else {
        println!(
            "demo FAILED: {} step(s) did not happen as expected",
            t.failures
        );
        println!("\nwebhook function log:\n{}", webhook.logs().join("\n"));
    }
    Ok(t.failures == 0)
}

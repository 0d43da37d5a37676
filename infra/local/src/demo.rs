//! The scripted scenario the README's run command plays: a signed GitHub push delivered to the
//! webhook handler, routed by a rule on the bus, then redelivered and published no second time.
//! Each step prints one timeline line; the run succeeds only if every expected step happened.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use aws_lambda_events::event::lambda_function_urls::LambdaFunctionUrlRequest;
use eddo::config::Env;
use eddo_webhook::{Config, Webhook};
use http::{HeaderName, HeaderValue};
use serde_json::Value;

use crate::LocalError;
use crate::moto::{Moto, project_root};
use crate::stack::{LOCAL_GITHUB_SECRET, Stack};

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
    let sig = eddo_webhook::signature::github_signature(secret.as_bytes(), body.as_bytes());
    delivery(
        "/github",
        &[
            ("content-type", "application/json"),
            ("user-agent", "GitHub-Hookshot/eddo-local"),
            ("x-github-event", event),
            ("x-github-delivery", delivery_id),
            ("x-hub-signature-256", &sig),
        ],
        body,
    )
}

struct Timeline {
    start: Instant,
    failures: usize,
}

impl Timeline {
    fn step(&mut self, ok: bool, what: &str, detail: impl AsRef<str>) {
        if !ok {
            self.failures += 1;
        }
        println!(
            "{:>7.3}s  {}  {:<44} {}",
            self.start.elapsed().as_secs_f64(),
            if ok { "ok  " } else { "FAIL" },
            what,
            detail.as_ref()
        );
    }
}

/// Plays the scenario; `Ok(true)` when every expected step happened.
pub async fn run() -> Result<bool, LocalError> {
    let mut t = Timeline {
        start: Instant::now(),
        failures: 0,
    };
    let moto = Moto::start()?;
    t.step(true, "moto server started", moto.endpoint());
    let sdk = moto.sdk_config().await;
    let stack = Stack::provision(&sdk, "eddo").await?;
    t.step(
        true,
        "provisioned bus, table, secret, rules",
        format!("bus {}", stack.bus),
    );

    let env = stack.webhook_env();
    let config = Config::from_env(&Env::from_pairs(
        env.iter().map(|(k, v)| (k.as_str(), v.as_str())),
    ))
    .map_err(|e| LocalError::Setup(e.to_string()))?;
    let webhook = Webhook::new(config, &sdk);

    let path = corpus().join("github/push/with-new-branch.payload.json");
    let body = std::fs::read_to_string(&path)
        .map_err(|e| LocalError::Setup(format!("{}: {e}", path.display())))?;
    let delivery = "0b9c2a4e-7f3d-11ef-8a5d-eddo00000001";

    let resp = webhook
        .handle(github_delivery(
            LOCAL_GITHUB_SECRET,
            "ping",
            "ping-1",
            r#"{"zen":"Approachable is better than simple.","hook_id":1}"#,
        ))
        .await;
    t.step(
        resp.status_code == 200,
        "GitHub ping",
        format!("HTTP {}", resp.status_code),
    );

    let resp = webhook
        .handle(github_delivery(
            LOCAL_GITHUB_SECRET,
            "push",
            delivery,
            &body,
        ))
        .await;
    let answer: Value =
        serde_json::from_str(resp.body.as_deref().unwrap_or("{}")).unwrap_or_default();
    t.step(
        resp.status_code == 202 && answer["status"] == "published",
        "signed push to master delivered",
        format!("HTTP {} {}", resp.status_code, answer["status"]),
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

    let resp = webhook
        .handle(github_delivery(
            LOCAL_GITHUB_SECRET,
            "push",
            delivery,
            &body,
        ))
        .await;
    let answer: Value =
        serde_json::from_str(resp.body.as_deref().unwrap_or("{}")).unwrap_or_default();
    t.step(
        resp.status_code == 202 && answer["status"] == "duplicate",
        "the same delivery redelivered",
        format!("HTTP {} {}", resp.status_code, answer["status"]),
    );

    let resp = webhook
        .handle(github_delivery("not the secret", "push", "forged-1", &body))
        .await;
    t.step(
        resp.status_code == 401,
        "a delivery signed with another secret",
        format!("HTTP {}", resp.status_code),
    );

    let everything = stack
        .drain(&stack.tap_queue, Duration::from_millis(500))
        .await?;
    t.step(
        everything.len() == 1,
        "events on the bus in all",
        format!("{} (one push, published once)", everything.len()),
    );
    drop(moto);
    t.step(true, "moto server stopped", "");
    println!();
    if t.failures == 0 {
        println!("demo passed: every expected step happened");
    } else {
        println!(
            "demo FAILED: {} step(s) did not happen as expected",
            t.failures
        );
    }
    Ok(t.failures == 0)
}

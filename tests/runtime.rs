//! The local Lambda runtime with real binaries: the webhook's `bootstrap` answers a function URL
//! event through the Runtime API, stays warm, and each way a function can fail is reported as
//! Lambda reports it.

use crate::harness::Local;
use std::time::Duration;

use crate::harness::binary;
use eddo_local::fixtures::github_delivery;
use eddo_local::runtime::{FunctionSpec, LocalFunction, Outcome};
use eddo_local::stack::LOCAL_GITHUB_SECRET;
use serde_json::{Value, json};

fn fixture(extra_env: &[(&str, &str)], timeout: Duration) -> FunctionSpec {
    FunctionSpec {
        name: "fixture".into(),
        binary: binary("fixture-function"),
        env: extra_env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        timeout,
        memory_mb: 128,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_webhook_binary_publishes_through_the_runtime_api_and_stays_warm() {
    let Local { moto, stack } = Local::start("runtime").await;
    let function = LocalFunction::new(stack.spec("webhook", &moto.endpoint()).unwrap())
        .await
        .unwrap();

    let body = std::fs::read_to_string(
        eddo_local::demo::corpus().join("github/push/with-new-branch.payload.json"),
    )
    .unwrap();
    let event =
        serde_json::to_value(github_delivery(LOCAL_GITHUB_SECRET, "push", "rt-1", &body)).unwrap();
    let first = function.invoke(&event).await.unwrap();
    assert!(first.cold);
    let response = first
        .outcome
        .json()
        .unwrap_or_else(|| panic!("{:?}\n{}", first.outcome, function.logs().join("\n")));
    assert_eq!(response["statusCode"], 202, "{response}");
    let answer: Value = serde_json::from_str(response["body"].as_str().unwrap()).unwrap();
    assert_eq!(answer["status"], "published");
    let cold = function.cold_start().expect("cold-start timings");
    assert!(cold.to_first_response.unwrap() >= cold.to_first_next);
    let pid = function.pid().await;

    // Warm: the same process answers the redelivery, and it is a duplicate.
    let second = function.invoke(&event).await.unwrap();
    assert!(!second.cold);
    assert_eq!(function.pid().await, pid);
    let answer: Value =
        serde_json::from_str(second.outcome.json().unwrap()["body"].as_str().unwrap()).unwrap();
    assert_eq!(answer["status"], "duplicate");
    assert!(function.rss_kib().await.unwrap() > 0);

    let routed = stack
        .drain(&stack.matched["PushRule"], Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(routed.len(), 1);
    // The binary's logs are JSON lines that carry the Lambda request id.
    let logs = function.logs();
    let published: Value = logs
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|l| l["message"] == "published")
        .unwrap_or_else(|| panic!("no 'published' log line in {logs:?}"));
    assert_eq!(
        published["spans"][0]["requestId"],
        first.request_id.as_str()
    );
    function.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_setting_is_an_init_error_naming_it() {
    let function = LocalFunction::new(FunctionSpec {
        name: "eddo-webhook".into(),
        binary: binary("webhook"),
        env: vec![],
        timeout: Duration::from_secs(5),
        memory_mb: 128,
    })
    .await
    .unwrap();
    let out = function.invoke(&json!({})).await.unwrap();
    match out.outcome {
        Outcome::InitError {
            error_type,
            message,
        } => {
            assert_eq!(error_type, "Runtime.ExitError");
            assert!(
                message.contains("EDDO_EVENT_BUS_NAME: is not set"),
                "{message}"
            );
        }
        other => panic!("expected an init error, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_panic_is_an_invocation_error_and_the_environment_stays_warm() {
    let function = LocalFunction::new(fixture(&[], Duration::from_secs(5)))
        .await
        .unwrap();
    let echo = function.invoke(&json!({"do": "echo"})).await.unwrap();
    assert_eq!(
        echo.outcome.json().unwrap()["request_id"],
        echo.request_id.as_str()
    );
    let panicked = function.invoke(&json!({"do": "panic"})).await.unwrap();
    match &panicked.outcome {
        Outcome::Error { message, .. } => {
            assert!(message.contains("fixture asked to panic"), "{message}")
        }
        other => panic!("expected an invocation error, got {other:?}"),
    }
    let after = function.invoke(&json!({"do": "echo"})).await.unwrap();
    assert!(!after.cold, "a caught panic does not kill the environment");
    let failed = function.invoke(&json!({"do": "error"})).await.unwrap();
    assert!(
        matches!(failed.outcome, Outcome::Error { ref message, .. } if message.contains("fixture asked to fail"))
    );
}

/// The test above runs the fixture as the tests build it. What ships is the release profile: with
/// `panic = "abort"` there, a panic would kill the process (a `Runtime.ExitError` and a cold
/// start) instead of becoming the invocation error above. BENCHMARKS.md gives the measured cost.
#[test]
fn the_release_profile_unwinds_so_a_panic_stays_an_invocation_error() {
    let manifest = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.toml"),
    )
    .unwrap();
    let release = manifest
        .split("[profile.release]")
        .nth(1)
        .expect("a [profile.release] section");
    let release = release.split("\n[").next().unwrap_or_default();
    let panic = release
        .lines()
        .find_map(|l| l.trim().strip_prefix("panic"))
        .map(|v| v.trim_start_matches([' ', '=']).trim().trim_matches('"'));
    assert!(
        matches!(panic, None | Some("unwind")),
        "profile.release.panic is {panic:?}: a handler panic must stay an invocation error"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_crash_mid_invocation_is_reported_and_the_next_invocation_is_cold() {
    let function = LocalFunction::new(fixture(&[], Duration::from_secs(5)))
        .await
        .unwrap();
    assert!(function.invoke(&json!({"do": "echo"})).await.unwrap().cold);
    let crashed = function.invoke(&json!({"do": "exit"})).await.unwrap();
    assert!(
        matches!(crashed.outcome, Outcome::Crashed { ref status } if status.contains('3')),
        "{:?}",
        crashed.outcome
    );
    let next = function.invoke(&json!({"do": "echo"})).await.unwrap();
    assert!(next.cold);
    assert!(next.outcome.json().is_some());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_timeout_stops_the_environment() {
    let function = LocalFunction::new(fixture(&[], Duration::from_millis(500)))
        .await
        .unwrap();
    let slow = function.invoke(&json!({"do": "sleep"})).await.unwrap();
    assert_eq!(slow.outcome, Outcome::TimedOut);
    assert!(function.pid().await.is_none());
    assert!(function.invoke(&json!({"do": "echo"})).await.unwrap().cold);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_init_failure_of_the_fixture_is_reported_every_time() {
    let function = LocalFunction::new(fixture(
        &[("FIXTURE_FAIL_INIT", "1")],
        Duration::from_secs(5),
    ))
    .await
    .unwrap();
    for _ in 0..2 {
        let out = function.invoke(&json!({"do": "echo"})).await.unwrap();
        assert!(
            matches!(out.outcome, Outcome::InitError { ref message, .. } if message.contains("FIXTURE_FAIL_INIT is set")),
            "{:?}",
            out.outcome
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_function_url_turns_http_into_events_and_answers_back() {
    use eddo_local::url::{FunctionUrl, post};
    let fixture = std::sync::Arc::new(
        LocalFunction::new(fixture(&[], Duration::from_secs(5)))
            .await
            .unwrap(),
    );
    let url = FunctionUrl::serve(fixture.clone(), 0).await.unwrap();
    let addr = url.addr();
    // The fixture's answer has no statusCode: not a function URL response, so the URL answers
    // 502 as AWS does.
    let (status, _) = tokio::task::spawn_blocking(move || {
        post(
            addr,
            "/github?x=1",
            &[
                ("Content-Type", "application/json"),
                ("X-GitHub-Event", "ping"),
            ],
            b"{\"zen\":\"hi\"}",
        )
    })
    .await
    .unwrap()
    .unwrap();
    assert_eq!(status, 502);

    let parts = http::Request::post("/github?x=1")
        .header("content-type", "application/octet-stream")
        .header("x-github-event", "ping")
        .body(())
        .unwrap()
        .into_parts()
        .0;
    let event = eddo_local::url::event_for(
        &parts,
        &[0xff, 0x00, 0x01],
        "127.0.0.1:5555".parse().unwrap(),
    );
    assert!(
        event.is_base64_encoded,
        "a binary body arrives base64-encoded"
    );
    assert_eq!(event.body.as_deref(), Some("/wAB"));
    assert_eq!(event.raw_query_string.as_deref(), Some("x=1"));
    assert_eq!(event.request_context.http.method.as_deref(), Some("POST"));
    assert_eq!(event.headers.get("x-github-event").unwrap(), "ping");
    let json_parts = http::Request::post("/gitlab")
        .header("content-type", "application/json")
        .body(())
        .unwrap()
        .into_parts()
        .0;
    let event = eddo_local::url::event_for(&json_parts, b"{}", "127.0.0.1:5555".parse().unwrap());
    assert!(!event.is_base64_encoded);
    assert_eq!(event.body.as_deref(), Some("{}"));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_webhook_over_http_answers_401_and_404_as_deployed() {
    use eddo_local::url::{FunctionUrl, post};
    let Local { moto, stack } = Local::start("http").await;
    let function = std::sync::Arc::new(
        LocalFunction::new(stack.spec("webhook", &moto.endpoint()).unwrap())
            .await
            .unwrap(),
    );
    let url = FunctionUrl::serve(function.clone(), 0).await.unwrap();
    let addr = url.addr();
    let (unsigned, body) = tokio::task::spawn_blocking(move || {
        post(
            addr,
            "/github",
            &[
                ("Content-Type", "application/json"),
                ("X-GitHub-Event", "ping"),
                ("X-GitHub-Delivery", "d"),
            ],
            b"{}",
        )
    })
    .await
    .unwrap()
    .unwrap();
    assert_eq!(unsigned, 401, "{body}");
    let (wrong_route, _) =
        tokio::task::spawn_blocking(move || post(addr, "/bitbucket", &[], b"{}"))
            .await
            .unwrap()
            .unwrap();
    assert_eq!(wrong_route, 404);
    function.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn send_delivers_a_corpus_webhook_or_puts_an_aws_event_on_the_bus() {
    use eddo_local::send::{Endpoints, Sent, send};
    use eddo_local::url::FunctionUrl;
    let Local { moto, stack } = Local::start("send").await;
    let function = std::sync::Arc::new(
        LocalFunction::new(stack.spec("webhook", &moto.endpoint()).unwrap())
            .await
            .unwrap(),
    );
    let url = FunctionUrl::serve(function.clone(), 0).await.unwrap();
    let to = Endpoints {
        moto: moto.endpoint(),
        admin: moto.admin().clone(),
        bus: stack.bus.clone(),
        webhook: url.addr(),
        senders: stack.senders.clone(),
    };
    let corpus = eddo_local::demo::corpus();

    // A corpus GitHub payload: the event name is its folder.
    match send(
        &corpus.join("github/push/with-new-branch.payload.json"),
        None,
        &to,
    )
    .await
    .unwrap()
    {
        Sent::Webhook { status, body } => assert_eq!(status, 202, "{body}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        stack
            .drain(&stack.matched["PushRule"], Duration::from_secs(5))
            .await
            .unwrap()
            .len(),
        1
    );

    // A corpus AWS event goes on the default bus as it is, as AWS puts it, and rules see it.
    let builds = stack
        .route_to_queue_on("default", "send-builds", r#"{"source":["aws.codebuild"]}"#)
        .await
        .unwrap();
    match send(
        &corpus.join("aws/codebuild-build-state-change.json"),
        None,
        &to,
    )
    .await
    .unwrap()
    {
        Sent::Event { event_id, bus } => {
            assert!(!event_id.is_empty());
            assert_eq!(bus, "default");
        }
        other => panic!("{other:?}"),
    }
    let got = stack.drain(&builds, Duration::from_secs(5)).await.unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0]["detail-type"], "CodeBuild Build State Change");

    // Another tool's signal goes on the eddo bus as the listed signal sender, as the bus policy
    // requires; without that role, the bus refuses it.
    let signal =
        eddo_local::moto::project_root().join("infra/examples/events/signal-reported.json");
    match send(&signal, None, &to).await.unwrap() {
        Sent::Event { bus, .. } => assert_eq!(bus, stack.bus),
        other => panic!("{other:?}"),
    }
    let as_admin = Endpoints {
        senders: Default::default(),
        ..to.clone()
    };
    let refused = send(&signal, None, &as_admin)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        refused.contains("explicit deny in a resource-based policy"),
        "{refused}"
    );
    function.stop().await;
}

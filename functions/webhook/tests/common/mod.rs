//! Helpers shared by the webhook's tests: the corpus, signing, and request building.
#![allow(dead_code)]

use std::path::PathBuf;

use aws_lambda_events::event::lambda_function_urls::LambdaFunctionUrlRequest;
use eddo::config::Env;
use eddo_webhook::Config;
use eddo_webhook::secrets::{SecretSet, WebhookSecrets};
use http::{HeaderName, HeaderValue};

pub const GITHUB_SECRET: &str = "It's a Secret to Everybody";
pub const GITLAB_TOKEN: &str = "glpat-local-token";
pub const STANDARD_SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";

/// `../shared/corpus` beside the project, or `EDDO_CORPUS`.
pub fn corpus() -> PathBuf {
    eddo::corpus::dir()
}

pub fn read(path: &std::path::Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every GitHub payload in the corpus: (event, file name, body).
pub fn github_payloads() -> Vec<(String, String, String)> {
    let root = corpus().join("github");
    let mut out = Vec::new();
    let mut dirs: Vec<_> = std::fs::read_dir(&root)
        .unwrap_or_else(|e| panic!("corpus not found at {}: {e}", root.display()))
        .map(|d| d.unwrap().path())
        .collect();
    dirs.sort();
    for dir in dirs {
        let event = dir.file_name().unwrap().to_string_lossy().into_owned();
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|f| f.unwrap().path())
            .collect();
        files.sort();
        for f in files {
            let name = f.file_name().unwrap().to_string_lossy().into_owned();
            out.push((event.clone(), name, read(&f)));
        }
    }
    assert!(
        out.len() >= 250,
        "expected the whole GitHub corpus, found {} payloads",
        out.len()
    );
    out
}

pub fn config(extra: &[(&str, &str)]) -> Config {
    let mut pairs = vec![
        ("EDDO_EVENT_BUS_NAME", "eddo"),
        ("EDDO_TABLE_NAME", "eddo-state"),
        (
            "EDDO_WEBHOOK_SECRET_ARN",
            "arn:aws:secretsmanager:us-east-1:123456789012:secret:eddo-webhook",
        ),
    ];
    pairs.extend_from_slice(extra);
    Config::from_env(&Env::from_pairs(pairs)).expect("valid test config")
}

/// The `chatops` signal sender's key (a Standard Webhooks secret).
pub const CHATOPS_KEY: &str = "whsec_Y2hhdG9wcy1zZW5kZXIta2V5LWZvci10ZXN0cw==";

/// The `tekton` CDEvents sender's key (a Standard Webhooks secret).
pub const TEKTON_KEY: &str = "whsec_dGVrdG9uLWNkZXZlbnRzLXNlbmRlci1rZXk=";

/// The `jenkins` CDEvents sender's bearer token (it cannot sign).
pub const JENKINS_TOKEN: &str = "jenkins-cdevents-token-0123456789abcdef";

/// The `prometheus` alert sender's token (its Alertmanager's basic-auth password).
pub const PROMETHEUS_TOKEN: &str = "prometheus-alertmanager-token-0123456789";

/// The `grafana` alert sender's token (its contact point's bearer token).
pub const GRAFANA_TOKEN: &str = "grafana-alerting-contact-point-token-012";

pub fn secrets() -> SecretSet {
    SecretSet {
        versions: vec![WebhookSecrets {
            github: Some(GITHUB_SECRET.into()),
            gitlab: Some(GITLAB_TOKEN.into()),
            gitlab_signing: None,
            standard_webhooks: Some(STANDARD_SECRET.into()),
            senders: [
                ("chatops".to_string(), CHATOPS_KEY.to_string()),
                ("tekton".to_string(), TEKTON_KEY.to_string()),
            ]
            .into(),
            tokens: [
                ("jenkins".to_string(), JENKINS_TOKEN.to_string()),
                ("prometheus".to_string(), PROMETHEUS_TOKEN.to_string()),
                ("grafana".to_string(), GRAFANA_TOKEN.to_string()),
            ]
            .into(),
        }],
    }
}

/// A function URL request as Lambda delivers it: lower-case headers, a text body.
pub fn request(
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> LambdaFunctionUrlRequest {
    let mut req: LambdaFunctionUrlRequest =
        serde_json::from_str(&read(&corpus().join("aws/function-url-request.json"))).unwrap();
    req.raw_path = Some(path.to_string());
    req.request_context.http.method = Some(method.to_string());
    req.request_context.http.path = Some(path.to_string());
    req.headers.clear();
    for (k, v) in headers {
        req.headers.insert(
            HeaderName::from_bytes(k.to_ascii_lowercase().as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    req.body = Some(body.to_string());
    req.is_base64_encoded = false;
    req
}

/// A GitHub delivery of `body` as event `event`, signed with the test secret.
pub fn github_request(event: &str, delivery: &str, body: &str) -> LambdaFunctionUrlRequest {
    let sig = eddo_webhook::signature::github_signature(GITHUB_SECRET.as_bytes(), body.as_bytes());
    request(
        "POST",
        "/github",
        &[
            ("content-type", "application/json"),
            ("x-github-event", event),
            ("x-github-delivery", delivery),
            ("x-hub-signature-256", &sig),
            ("user-agent", "GitHub-Hookshot/abc123"),
        ],
        body,
    )
}

/// The JSON Schema `infra/schemas/<name>.schema.json`, compiled.
pub fn schema(name: &str) -> jsonschema::Validator {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../infra/schemas")
        .join(format!("{name}.schema.json"));
    let schema: serde_json::Value = serde_json::from_str(&read(&path)).unwrap();
    jsonschema::validator_for(&schema).unwrap()
}

//! The published signature vectors in `../shared/corpus/vectors/signatures.json`, accepted and
//! rejected as they say, and each way a delivery's authentication can fail, through the handler's
//! own checks.

mod common;

use common::*;
use eddo_webhook::signature::{SignatureError, StandardHeaders, verify_github, verify_standard};
use eddo_webhook::{accept, precheck};
use serde_json::Value;

fn vectors() -> Value {
    serde_json::from_str(&read(&corpus().join("vectors/signatures.json"))).unwrap()
}

fn s(v: &Value) -> &str {
    v.as_str().unwrap()
}

#[test]
fn github_docs_vector() {
    let v = &vectors()["github_docs"];
    let secret = s(&v["secret"]).as_bytes();
    let body = s(&v["payload"]).as_bytes();
    assert_eq!(
        verify_github(&[secret], body, Some(s(&v["x_hub_signature_256"])), false),
        Ok(())
    );
    let rejects = v["must_reject"].as_object().unwrap();
    assert_eq!(
        verify_github(
            &[secret],
            body,
            Some(s(&rejects["same payload with a trailing newline"])),
            false
        ),
        Err(SignatureError::Mismatch)
    );
    // The SHA-1 header alone is refused, never used as a fallback.
    let sha1 = s(&rejects["sha1 header only (X-Hub-Signature)"]);
    assert!(sha1.starts_with("sha1="));
    assert_eq!(
        verify_github(&[secret], body, None, true),
        Err(SignatureError::Sha1Only)
    );
    assert_eq!(
        verify_github(&[secret], body, Some(sha1), false),
        Err(SignatureError::Malformed("X-Hub-Signature-256"))
    );
}

#[test]
fn octokit_vectors_hash_the_raw_bytes() {
    for name in ["github_octokit", "github_octokit_special_chars"] {
        let v = &vectors()[name];
        let secret = s(&v["secret"]).as_bytes();
        let body = s(&v["payload"]).as_bytes();
        assert_eq!(
            verify_github(&[secret], body, Some(s(&v["sig"])), false),
            Ok(()),
            "{name}"
        );
        for (key, bad) in v
            .as_object()
            .unwrap()
            .iter()
            .filter(|(k, _)| k.starts_with("must_reject"))
        {
            assert_eq!(
                verify_github(&[secret], body, Some(s(bad)), false),
                Err(SignatureError::Mismatch),
                "{name}.{key}"
            );
        }
    }
}

#[test]
fn standard_webhooks_vector() {
    let v = &vectors()["standard_webhooks"];
    let secret = s(&v["secret"]).as_bytes();
    let body = s(&v["payload"]).as_bytes();
    let ts = v["webhook-timestamp"].as_u64().unwrap();
    let ts_text = ts.to_string();
    let headers = StandardHeaders {
        id: Some(s(&v["webhook-id"])),
        timestamp: Some(&ts_text),
        signature: Some(s(&v["webhook-signature"])),
    };
    assert_eq!(verify_standard(&[secret], body, headers, ts, 300), Ok(()));
    // Several signatures, space-separated, one of them valid; unknown versions ignored.
    let multi = format!(
        "v1a,abc v1,{} {}",
        "A".repeat(43) + "=",
        s(&v["webhook-signature"])
    );
    assert_eq!(
        verify_standard(
            &[secret],
            body,
            StandardHeaders {
                signature: Some(&multi),
                ..headers
            },
            ts,
            300
        ),
        Ok(())
    );
    // ±300 s tolerance on both sides.
    assert_eq!(
        verify_standard(&[secret], body, headers, ts + 300, 300),
        Ok(())
    );
    assert_eq!(
        verify_standard(&[secret], body, headers, ts - 300, 300),
        Ok(())
    );
    assert_eq!(
        verify_standard(&[secret], body, headers, ts + 301, 300),
        Err(SignatureError::Stale {
            skew: 301,
            tolerance: 300
        })
    );
    assert_eq!(
        verify_standard(&[secret], body, headers, ts - 301, 300),
        Err(SignatureError::Stale {
            skew: 301,
            tolerance: 300
        })
    );
    // Another id, another body or another secret: mismatch.
    assert_eq!(
        verify_standard(
            &[secret],
            body,
            StandardHeaders {
                id: Some("msg_other"),
                ..headers
            },
            ts,
            300
        ),
        Err(SignatureError::Mismatch)
    );
    assert_eq!(
        verify_standard(&[secret], b"{}", headers, ts, 300),
        Err(SignatureError::Mismatch)
    );
    assert_eq!(
        verify_standard(
            &[b"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"],
            body,
            headers,
            ts,
            300
        ),
        Err(SignatureError::Mismatch)
    );
    assert_eq!(
        verify_standard(
            &[secret],
            body,
            StandardHeaders {
                signature: Some("v2,abc"),
                ..headers
            },
            ts,
            300
        ),
        Err(SignatureError::Malformed("webhook-signature"))
    );
    assert_eq!(
        verify_standard(
            &[secret],
            body,
            StandardHeaders {
                timestamp: Some("soon"),
                ..headers
            },
            ts,
            300
        ),
        Err(SignatureError::Malformed("webhook-timestamp"))
    );
    assert_eq!(
        verify_standard(
            &[secret],
            body,
            StandardHeaders {
                id: None,
                ..headers
            },
            ts,
            300
        ),
        Err(SignatureError::Missing("webhook-id"))
    );
}

fn status(
    req: &aws_lambda_events::event::lambda_function_urls::LambdaFunctionUrlRequest,
    now: u64,
) -> u16 {
    let cfg = config(&[]);
    match precheck(req, cfg.max_body_bytes) {
        Err(r) => r.status,
        Ok((provider, body)) => {
            match accept(provider, &req.headers, &body, &secrets(), &cfg, now) {
                Ok(_) => 202,
                Err(r) => r.status,
            }
        }
    }
}

const PING: &str = r#"{"zen":"Design for failure.","hook_id":1,"hook":{"type":"Repository"}}"#;

#[test]
fn a_valid_github_delivery_is_accepted() {
    assert_eq!(status(&github_request("ping", "d-1", PING), 0), 202);
}

#[test]
fn a_missing_signature_is_401() {
    let mut req = github_request("ping", "d-1", PING);
    req.headers.remove("x-hub-signature-256");
    assert_eq!(status(&req, 0), 401);
}

#[test]
fn a_sha1_only_delivery_is_401() {
    let mut req = github_request("ping", "d-1", PING);
    req.headers.remove("x-hub-signature-256");
    req.headers.insert(
        "x-hub-signature",
        "sha1=01dc10d0c83e72ed246219cdd91669667fe2ca59"
            .parse()
            .unwrap(),
    );
    assert_eq!(status(&req, 0), 401);
}

#[test]
fn a_wrong_signature_is_401() {
    let mut req = github_request("ping", "d-1", PING);
    req.headers.insert(
        "x-hub-signature-256",
        format!("sha256={}", "0".repeat(64)).parse().unwrap(),
    );
    assert_eq!(status(&req, 0), 401);
}

#[test]
fn a_body_changed_after_signing_is_401() {
    let mut req = github_request("ping", "d-1", PING);
    req.body = Some(format!("{PING}\n"));
    assert_eq!(status(&req, 0), 401);
}

#[test]
fn a_signature_with_another_secret_is_401() {
    let sig = eddo_webhook::signature::github_signature(b"someone else's", PING.as_bytes());
    let mut req = github_request("ping", "d-1", PING);
    req.headers
        .insert("x-hub-signature-256", sig.parse().unwrap());
    assert_eq!(status(&req, 0), 401);
}

#[test]
fn no_configured_secret_fails_closed() {
    let req = github_request("ping", "d-1", PING);
    let cfg = config(&[]);
    let (provider, body) = precheck(&req, cfg.max_body_bytes).unwrap();
    let empty = eddo_webhook::secrets::SecretSet::default();
    assert_eq!(
        accept(provider, &req.headers, &body, &empty, &cfg, 0)
            .unwrap_err()
            .status,
        401
    );
    let blank = eddo_webhook::secrets::SecretSet {
        versions: vec![eddo_webhook::secrets::WebhookSecrets {
            github: Some(String::new()),
            ..Default::default()
        }],
    };
    assert_eq!(
        accept(provider, &req.headers, &body, &blank, &cfg, 0)
            .unwrap_err()
            .status,
        401
    );
}

#[test]
fn the_previous_secret_is_accepted_during_rotation() {
    let req = github_request("ping", "d-1", PING);
    let cfg = config(&[]);
    let (provider, body) = precheck(&req, cfg.max_body_bytes).unwrap();
    let rotated = eddo_webhook::secrets::SecretSet {
        versions: vec![
            eddo_webhook::secrets::WebhookSecrets {
                github: Some("the new one".into()),
                ..Default::default()
            },
            eddo_webhook::secrets::WebhookSecrets {
                github: Some(GITHUB_SECRET.into()),
                ..Default::default()
            },
        ],
    };
    assert!(accept(provider, &req.headers, &body, &rotated, &cfg, 0).is_ok());
}

#[test]
fn gitlab_token_is_checked() {
    let headers = |token: &str| {
        vec![
            ("x-gitlab-event", "System Hook".to_string()),
            ("x-gitlab-token", token.to_string()),
            ("idempotency-key", "k-1".into()),
        ]
    };
    let body = r#"{"event_name":"project_create"}"#;
    let req = |h: Vec<(&str, String)>| {
        request(
            "POST",
            "/gitlab",
            &h.iter().map(|(k, v)| (*k, v.as_str())).collect::<Vec<_>>(),
            body,
        )
    };
    assert_eq!(status(&req(headers(GITLAB_TOKEN)), 0), 202);
    assert_eq!(status(&req(headers("glpat-wrong")), 0), 401);
    let mut no_token = headers(GITLAB_TOKEN);
    no_token.remove(1);
    assert_eq!(status(&req(no_token), 0), 401);
}

#[test]
fn standard_webhooks_outside_the_tolerance_are_401() {
    let body = r#"{"type":"invoice.paid","timestamp":"2022-04-07T21:39:13Z","data":{"id":"in_1"}}"#;
    let ts = 1_700_000_000u64;
    let sig =
        eddo_webhook::signature::standard_signature(STANDARD_SECRET, "msg_1", ts, body.as_bytes())
            .unwrap();
    let req = request(
        "POST",
        "/standard",
        &[
            ("webhook-id", "msg_1"),
            ("webhook-timestamp", &ts.to_string()),
            ("webhook-signature", &sig),
            ("content-type", "application/json"),
        ],
        body,
    );
    assert_eq!(status(&req, ts), 202);
    assert_eq!(status(&req, ts + 299), 202);
    assert_eq!(status(&req, ts + 301), 401);
    assert_eq!(status(&req, ts - 301), 401);
}

#[test]
fn wrong_method_route_and_size() {
    assert_eq!(status(&request("GET", "/github", &[], ""), 0), 405);
    assert_eq!(status(&request("PUT", "/gitlab", &[], ""), 0), 405);
    assert_eq!(status(&request("POST", "/bitbucket", &[], ""), 0), 404);
    let cfg = config(&[("EDDO_MAX_BODY_BYTES", "2048")]);
    let big = format!("{{\"pad\":\"{}\"}}", "x".repeat(4096));
    let req = github_request("ping", "d-1", &big);
    assert_eq!(precheck(&req, cfg.max_body_bytes).unwrap_err().status, 413);
    // The limit applies to the decoded body of a base64-encoded request too.
    let mut b64 = github_request("ping", "d-1", &big);
    b64.body = Some(base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        big.as_bytes(),
    ));
    b64.is_base64_encoded = true;
    assert_eq!(precheck(&b64, cfg.max_body_bytes).unwrap_err().status, 413);
}

#[test]
fn a_base64_encoded_body_is_verified_after_decoding() {
    // Lambda base64-encodes bodies whose content type it does not treat as text.
    let mut req = github_request("ping", "d-1", PING);
    req.body = Some(base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        PING.as_bytes(),
    ));
    req.is_base64_encoded = true;
    assert_eq!(status(&req, 0), 202);
    // Signing the encoded text instead of the bytes does not verify.
    let encoded = req.body.clone().unwrap();
    let sig =
        eddo_webhook::signature::github_signature(GITHUB_SECRET.as_bytes(), encoded.as_bytes());
    req.headers
        .insert("x-hub-signature-256", sig.parse().unwrap());
    assert_eq!(status(&req, 0), 401);
    req.body = Some("not base64!".into());
    assert_eq!(status(&req, 0), 400);
}

#[test]
fn the_corpus_base64_request_decodes() {
    let req: aws_lambda_events::event::lambda_function_urls::LambdaFunctionUrlRequest =
        serde_json::from_str(&read(
            &corpus().join("aws/function-url-request-base64-body.json"),
        ))
        .unwrap();
    // It is POST / with no provider route: refused by route before anything else.
    assert_eq!(precheck(&req, 1024 * 1024).unwrap_err().status, 404);
    let mut routed = req.clone();
    routed.raw_path = Some("/github".into());
    let (_, body) = precheck(&routed, 1024 * 1024).unwrap();
    assert_eq!(body, b"<idk/>");
    // Unsigned: 401.
    assert_eq!(status(&routed, 0), 401);
}

#[test]
fn missing_event_or_delivery_headers_are_400() {
    let mut req = github_request("ping", "d-1", PING);
    req.headers.remove("x-github-event");
    assert_eq!(status(&req, 0), 400);
    let mut req = github_request("ping", "d-1", PING);
    req.headers.remove("x-github-delivery");
    assert_eq!(status(&req, 0), 400);
}

#[test]
fn malformed_json_is_400() {
    assert_eq!(status(&github_request("push", "d-1", "{\"ref\":"), 0), 400);
    assert_eq!(
        status(&github_request("push", "d-1", "{\"ref\": 1}"), 0),
        400
    );
}

#[test]
fn a_github_delivery_is_deduplicated_on_its_signed_body_not_its_delivery_id() {
    let cfg = config(&[]);
    let body = r#"{"zen": "Keep it logically awesome.", "hook_id": 1}"#;
    let dedupe = |delivery: &str, body: &str| {
        let req = github_request("ping", delivery, body);
        let (p, bytes) = precheck(&req, cfg.max_body_bytes).unwrap();
        accept(p, &req.headers, &bytes, &secrets(), &cfg, 0)
            .unwrap()
            .dedupe
    };
    // X-GitHub-Delivery is not signed: a captured delivery replayed under a new id is the same.
    assert_eq!(dedupe("d-1", body), dedupe("d-2", body));
    assert!(dedupe("d-1", body).starts_with("sha256:"));
    // Another body is another delivery.
    assert_ne!(dedupe("d-1", body), dedupe("d-1", &body.replace('1', "2")));
}

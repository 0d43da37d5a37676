//! Handler CPU time without network: verify the signature, normalise the payload and build the
//! PutEvents request entry, for real corpus deliveries. `make bench` runs it; BENCHMARKS.md
//! records the figures.

use std::hint::black_box;

use aws_lambda_events::event::lambda_function_urls::LambdaFunctionUrlRequest;
use criterion::{Criterion, criterion_group, criterion_main};
use eddo::config::Env;
use eddo_local::fixtures::github_delivery;
use eddo_webhook::normalise::Normalised;
use eddo_webhook::secrets::{SecretSet, WebhookSecrets};
use eddo_webhook::{Config, accept, outgoing, precheck};

const SECRET: &str = "It's a Secret to Everybody";

fn corpus(path: &str) -> String {
    eddo::corpus::text(path)
}

fn request(event: &str, body: &str) -> LambdaFunctionUrlRequest {
    github_delivery(SECRET, event, "72d3162e-cc78-11e3-81ab-4c9367dc0958", body)
}

/// Everything the handler does for one delivery between receiving it and calling AWS.
fn handle_offline(req: &LambdaFunctionUrlRequest, secrets: &SecretSet, cfg: &Config) -> usize {
    let (provider, body) = precheck(req, cfg.max_body_bytes).unwrap();
    let accepted = accept(provider, &req.headers, &body, secrets, cfg, 0).unwrap();
    let Normalised::Publish(dt, ev) = accepted.outcome else {
        panic!("not published")
    };
    let entry = outgoing(dt, *ev, cfg.common.max_entry_bytes).unwrap();
    let put = entry.to_entry(&cfg.common.event_bus_name);
    put.detail().map(str::len).unwrap_or(0)
}

fn benches(c: &mut Criterion) {
    let cfg = Config::from_env(&Env::from_pairs([
        ("EDDO_EVENT_BUS_NAME", "eddo"),
        ("EDDO_TABLE_NAME", "eddo-state"),
        (
            "EDDO_WEBHOOK_SECRET_ARN",
            "arn:aws:secretsmanager:us-east-1:123456789012:secret:eddo",
        ),
        ("EDDO_WEBHOOK_FORWARD", "github:*"),
    ]))
    .unwrap();
    let secrets = SecretSet {
        versions: vec![WebhookSecrets {
            github: Some(SECRET.into()),
            ..Default::default()
        }],
    };

    // The largest push payload in the corpus.
    let push = corpus("github/push/with-new-branch.payload.json");
    let push_req = request("push", &push);
    c.bench_function(
        "webhook/push 8.8 KB: verify + normalise + PutEvents entry",
        |b| b.iter(|| handle_offline(black_box(&push_req), &secrets, &cfg)),
    );

    let pr = corpus("github/pull_request/synchronize.payload.json");
    let pr_req = request("pull_request", &pr);
    c.bench_function(
        "webhook/pull_request synchronize: verify + normalise + entry",
        |b| b.iter(|| handle_offline(black_box(&pr_req), &secrets, &cfg)),
    );

    // The largest payload in the corpus, forwarded raw.
    let big = corpus("github/pull_request_review_comment/created.with-organization.payload.json");
    let big_req = request("pull_request_review_comment", &big);
    c.bench_function(
        "webhook/generic 31 KB raw forward: verify + normalise + entry",
        |b| b.iter(|| handle_offline(black_box(&big_req), &secrets, &cfg)),
    );

    let sig = eddo_webhook::signature::github_signature(SECRET.as_bytes(), push.as_bytes());
    c.bench_function("signature/github hmac-sha256 8.8 KB", |b| {
        b.iter(|| {
            eddo_webhook::signature::verify_github(
                &[SECRET.as_bytes()],
                black_box(push.as_bytes()),
                Some(&sig),
                false,
            )
        })
    });
    let forward = eddo_webhook::normalise::Forward::default();
    c.bench_function("normalise/github push 8.8 KB", |b| {
        b.iter(|| eddo_webhook::normalise::github("push", "d", black_box(&push), &forward).unwrap())
    });
}

criterion_group!(name = handler; config = Criterion::default().sample_size(50); targets = benches);
criterion_main!(handler);

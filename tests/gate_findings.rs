//! The gate applies a policy's exceptions from the scan's findings list, fetched from ECR's or
//! Inspector's own API (moto's, with findings set through its API) only when a count is over its
//! threshold; a failed deploy is reported.

use serde_json::{Value, json};

use crate::harness::gate::*;

/// moto's ECR answers DescribeImageScanFindings with results set through its own API.
async fn ecr_findings(s: &Setup, findings: Value) -> String {
    let ecr = aws_sdk_ecr::Client::new(&s.stack.sdk);
    ecr.create_repository()
        .repository_name("hello-world")
        .send()
        .await
        .unwrap();
    let manifest = json!({"schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.v2+json", "config": {"digest": "sha256:0000", "size": 1, "mediaType": "application/vnd.docker.container.image.v1+json"}, "layers": []});
    let image = ecr
        .put_image()
        .repository_name("hello-world")
        .image_manifest(manifest.to_string())
        .image_tag("candidate")
        .send()
        .await
        .unwrap();
    let digest = image
        .image()
        .unwrap()
        .image_id()
        .unwrap()
        .image_digest()
        .unwrap()
        .to_string();
    ecr.start_image_scan()
        .repository_name("hello-world")
        .image_id(
            aws_sdk_ecr::types::ImageIdentifier::builder()
                .image_digest(&digest)
                .build(),
        )
        .send()
        .await
        .unwrap();
    let results = json!({"results": [{
        "registryId": "123456789012",
        "repositoryName": "hello-world",
        "imageId": {"imageDigest": digest},
        "imageScanStatus": {"status": "COMPLETE", "description": "done"},
        "imageScanFindings": {"findings": findings, "findingSeverityCounts": {"CRITICAL": 2}},
    }], "region": "us-east-1"});
    let endpoint = s.moto.endpoint();
    let addr: std::net::SocketAddr = endpoint.trim_start_matches("http://").parse().unwrap();
    let body = results.to_string();
    let (status, text) = tokio::task::spawn_blocking(move || {
        eddo_local::url::post(
            addr,
            "/moto-api/static/ecr/scan-finding-results",
            &[("content-type", "application/json")],
            body.as_bytes(),
        )
    })
    .await
    .unwrap()
    .unwrap();
    assert_eq!(status, 201, "{text}");
    digest
}

#[tokio::test(flavor = "multi_thread")]
async fn exceptions_are_applied_from_the_ecr_findings_list_when_over_a_threshold() {
    let s = setup("gate-exceptions", None).await;
    let image = ecr_findings(
        &s,
        json!([
            {"name": "CVE-2024-1234", "severity": "CRITICAL"},
            {"name": "CVE-2023-0001", "severity": "CRITICAL"},
        ]),
    )
    .await;
    let commit = sha(600);
    s.handle(&s.build("eddo-build", &commit, "SUCCEEDED", Some(&image)))
        .await;
    s.handle(&scan(&commit, &image, json!({"CRITICAL": 2})))
        .await;
    let events = s.published().await;
    assert_eq!(
        events[0]["detail-type"], "Deployment Blocked",
        "{events:#?}"
    );
    assert_eq!(
        events[0]["detail"]["reasons"],
        json!([
            "image-scan: CRITICAL 1 > 0 allowed (after exceptions CVE-2024-1234)",
            "image-scan: CVE-2023-0001 exception expired on 2026-09-30"
        ])
    );
}

/// POSTs `body` to one of moto's own configuration endpoints.
async fn moto_api(s: &Setup, path: &'static str, body: Value) {
    let addr: std::net::SocketAddr = s
        .moto
        .endpoint()
        .trim_start_matches("http://")
        .parse()
        .unwrap();
    let (status, text) = tokio::task::spawn_blocking(move || {
        eddo_local::url::post(
            addr,
            path,
            &[("content-type", "application/json")],
            body.to_string().as_bytes(),
        )
    })
    .await
    .unwrap()
    .unwrap();
    assert!((200..300).contains(&status), "{path}: {status} {text}");
}

/// Enhanced scanning: the counts come from `Inspector2 Scan`, the findings from Inspector's
/// ListFindings (moto answers with results set through its API); here every critical is excepted.
#[tokio::test(flavor = "multi_thread")]
async fn inspector_findings_apply_exceptions_and_a_failed_deploy_is_reported() {
    let s = setup("gate-inspector", None).await;
    let finding = |id: &str| {
        json!({
            "awsAccountId": "123456789012",
            "description": "a vulnerable package",
            "findingArn": format!("arn:aws:inspector2:us-east-1:123456789012:finding/{id}"),
            "firstObservedAt": 1_700_000_000,
            "lastObservedAt": 1_700_000_000,
            "remediation": {},
            "resources": [{"id": "r", "type": "AWS_ECR_CONTAINER_IMAGE"}],
            "severity": "CRITICAL",
            "status": "ACTIVE",
            "type": "PACKAGE_VULNERABILITY",
            "title": id,
            "packageVulnerabilityDetails": {"vulnerabilityId": id, "source": "NVD"},
        })
    };
    moto_api(
        &s,
        "/moto-api/static/inspector2/findings-results",
        json!({"results": [[finding("CVE-2024-1234"), finding("CVE-2024-1234")]]}),
    )
    .await;
    let commit = sha(900);
    let image = digest(900);
    s.handle(&s.build("eddo-build", &commit, "SUCCEEDED", Some(&image)))
        .await;
    s.handle(&s.build("eddo-sast", &commit, "SUCCEEDED", None))
        .await;
    let mut e = sample("inspector2-scan.json");
    e["id"] = json!(id());
    e["detail"]["repository-name"] =
        json!("arn:aws:ecr:us-east-1:123456789012:repository/hello-world");
    e["detail"]["image-digest"] = json!(image);
    e["detail"]["image-tags"] = json!([&commit[..12]]);
    e["detail"]["finding-severity-counts"] = json!({"CRITICAL": 2, "HIGH": 1, "TOTAL": 3});
    s.handle(&e).await;
    let events = s.published().await;
    assert_eq!(
        events[0]["detail-type"], "Deployment Started",
        "{events:#?}"
    );
    let scan = &events[0]["detail"]["evidence"][1];
    assert_eq!(scan["signal"], "image-scan");
    assert!(
        scan["summary"]
            .as_str()
            .unwrap()
            .contains("Inspector enhanced scan: CRITICAL 2, HIGH 1 within policy after exceptions CVE-2024-1234"),
        "{scan}"
    );

    // The deploy build fails: reported with its phase and logs; nothing becomes live.
    let failed = s.deploy_finished(&commit, "FAILED");
    s.handle(&failed).await;
    let events = s.published().await;
    assert_eq!(events[0]["detail-type"], "Deployment Failed");
    let d = &events[0]["detail"];
    assert_eq!(d["failed_phase"], "BUILD");
    assert!(
        d["logs_url"]
            .as_str()
            .unwrap()
            .starts_with("https://console.aws.amazon.com/cloudwatch/")
    );
    assert!(
        d["reason"]
            .as_str()
            .unwrap()
            .contains("ended FAILED in phase BUILD")
    );
}

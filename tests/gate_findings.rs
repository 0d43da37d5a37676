//! The gate applies a policy's exceptions from the scan's findings list, fetched from ECR's or
//! Inspector's own API (moto's, with findings set through its API) only when a count is over its
//! threshold; a failed deploy is reported.

use serde_json::json;

use crate::harness::gate::*;

#[tokio::test(flavor = "multi_thread")]
async fn exceptions_are_applied_from_the_ecr_findings_list_when_over_a_threshold() {
    let s = setup("gate-exceptions", None).await;
    let (commit, image) = (sha(600), digest(600));
    // ECR's scan, as ECR answers DescribeImageScanFindings for it (moto's, with findings set
    // through its API): two criticals, one of them excepted.
    let counts = json!({"CRITICAL": 2});
    let findings = json!([
        {"name": "CVE-2024-1234", "severity": "CRITICAL"},
        {"name": "CVE-2023-0001", "severity": "CRITICAL"},
    ]);
    eddo_local::ecr::scanned(&s.stack.sdk, "hello-world", &image, &counts, Some(findings))
        .await
        .unwrap();
    s.handle(&s.build("eddo-build", &commit, "SUCCEEDED", Some(&image)))
        .await;
    s.handle(&scan(&commit, &image, counts)).await;
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

/// Enhanced scanning: an `Inspector2 Scan` counts as Inspector's active findings of the image
/// confirm it (ListFindings; moto answers with results set through its API), which also serve
/// the exceptions; here every critical is excepted.
#[tokio::test(flavor = "multi_thread")]
async fn inspector_findings_apply_exceptions_and_a_failed_deploy_is_reported() {
    let s = setup("gate-inspector", None).await;
    let finding = |id: &str, severity: &str| {
        json!({
            "awsAccountId": "123456789012",
            "description": "a vulnerable package",
            "findingArn": format!("arn:aws:inspector2:us-east-1:123456789012:finding/{id}"),
            "firstObservedAt": 1_700_000_000,
            "lastObservedAt": 1_700_000_000,
            "remediation": {},
            "resources": [{"id": "r", "type": "AWS_ECR_CONTAINER_IMAGE"}],
            "severity": severity,
            "status": "ACTIVE",
            "type": "PACKAGE_VULNERABILITY",
            "title": id,
            "packageVulnerabilityDetails": {"vulnerabilityId": id, "source": "NVD"},
        })
    };
    eddo_local::moto::api_post(
        &s.stack.sdk,
        "/moto-api/static/inspector2/findings-results",
        &json!({"results": [[
            finding("CVE-2024-1234", "CRITICAL"),
            finding("CVE-2024-1234", "CRITICAL"),
            finding("CVE-2025-0042", "HIGH"),
        ]]}),
    )
    .await
    .unwrap();
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
    // A scan event Inspector's findings contradict (a clean one) is rejected, and counts for
    // nothing.
    let mut forged = e.clone();
    forged["detail"]["finding-severity-counts"] = json!({"CRITICAL": 0, "HIGH": 0, "TOTAL": 0});
    s.handle(&forged).await;
    let events = s.published().await;
    assert_eq!(events.len(), 1, "{events:#?}");
    assert_eq!(
        events[0]["detail"]["reason"],
        format!(
            "image-scan: not confirmed by Inspector: it counts CRITICAL 2, HIGH 1 for {image}, the event no findings"
        )
    );
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

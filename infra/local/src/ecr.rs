//! ECR as the gate reads it: an image pushed to a repository and its basic scan, in moto, whose
//! `DescribeImageScanFindings` then answers with the severity counts (and findings) set here. The
//! gate believes an `ECR Image Scan` event only as far as ECR itself confirms it, so a test or
//! the demo that sends a scan first makes ECR know it, as a real push and scan would.

use aws_config::SdkConfig;
use aws_sdk_ecr::types::{ImageIdentifier, Tag};
use serde_json::{Value, json};

use crate::{LocalError, aws};

/// The tag that makes a repository eddo's: the gate's role may read the scans of tagged
/// repositories only (`aws:ResourceTag/eddo:service`).
pub const SERVICE_TAG: &str = "eddo:service";

/// Creates `repository` (tagged `eddo:service` = `service` when given) unless it exists.
pub async fn repository(
    sdk: &SdkConfig,
    repository: &str,
    service: Option<&str>,
) -> Result<(), LocalError> {
    let ecr = aws_sdk_ecr::Client::new(sdk);
    let tags = service.map(|s| vec![Tag::builder().key(SERVICE_TAG).value(s).build().unwrap()]);
    match ecr
        .create_repository()
        .repository_name(repository)
        .set_tags(tags)
        .send()
        .await
    {
        Ok(_) => Ok(()),
        Err(e)
            if e.as_service_error()
                .is_some_and(|e| e.is_repository_already_exists_exception()) =>
        {
            Ok(())
        }
        Err(e) => Err(aws("CreateRepository", e)),
    }
}

/// The image `digest` pushed to `repository` (created tagged for the service of the same name
/// if absent) and scanned by ECR's basic scanning with `counts` (`{"HIGH": 1}`) and `findings`
/// (ECR's `findings` list; none when `None`): what `DescribeImageScanFindings` then answers for
/// the digest. Scanned again, the image's last scan is the one ECR answers with (moto scans an
/// image once a day, as ECR's basic scanning does, so the image is pushed again first).
pub async fn scanned(
    sdk: &SdkConfig,
    repository: &str,
    digest: &str,
    counts: &Value,
    findings: Option<Value>,
) -> Result<(), LocalError> {
    self::repository(sdk, repository, Some(repository)).await?;
    let ecr = aws_sdk_ecr::Client::new(sdk);
    // A manifest per digest, so moto keeps each image apart; tagged by its digest, since a tag
    // moves to the last image pushed with it.
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {"digest": digest, "size": 1, "mediaType": "application/vnd.docker.container.image.v1+json"},
        "layers": [],
    });
    let id = ImageIdentifier::builder().image_digest(digest).build();
    // Gone already, or never pushed: either way pushed afresh below.
    let _ = ecr
        .batch_delete_image()
        .repository_name(repository)
        .image_ids(id.clone())
        .send()
        .await;
    let tag = digest.trim_start_matches("sha256:");
    ecr.put_image()
        .repository_name(repository)
        .image_manifest(manifest.to_string())
        .image_tag(tag)
        .image_digest(digest)
        .send()
        .await
        .map_err(|e| aws("PutImage", e))?;
    ecr.start_image_scan()
        .repository_name(repository)
        .image_id(id.clone())
        .send()
        .await
        .map_err(|e| aws("StartImageScan", e))?;
    let result = json!({"results": [{
        "registryId": crate::fixtures::ACCOUNT,
        "repositoryName": repository,
        "imageId": {"imageDigest": digest},
        "imageScanStatus": {"status": "COMPLETE", "description": "The scan was completed successfully."},
        "imageScanFindings": {
            "findings": findings.unwrap_or_else(|| json!([])),
            "findingSeverityCounts": counts,
        },
    }], "region": sdk.region().map_or("us-east-1", |r| r.as_ref())});
    crate::moto::api_post(sdk, "/moto-api/static/ecr/scan-finding-results", &result).await?;
    // moto binds a result to the image at its first read: read it now, so this scan's is bound.
    ecr.describe_image_scan_findings()
        .repository_name(repository)
        .image_id(id)
        .send()
        .await
        .map_err(|e| aws("DescribeImageScanFindings", e))?;
    Ok(())
}

/// ECR ran the scan the `ECR Image Scan` event `e` reports (its repository, digest and counts):
/// what a test, the soak or the bench does before sending a scan event that is no forgery.
/// Nothing for any other event.
pub async fn ran(sdk: &SdkConfig, e: &Value) -> Result<(), LocalError> {
    if e["source"] != "aws.ecr" {
        return Ok(());
    }
    let d = &e["detail"];
    let field = |k: &str| {
        d[k].as_str()
            .ok_or_else(|| LocalError::Setup(format!("an ECR scan event without {k}")))
    };
    scanned(
        sdk,
        field("repository-name")?,
        field("image-digest")?,
        &d["finding-severity-counts"],
        None,
    )
    .await
}

//! The findings list of a scan, fetched only when a count is over its threshold and the policy
//! has exceptions to apply: ECR's DescribeImageScanFindings for basic scanning, Inspector's
//! ListFindings (active findings of the image) for enhanced scanning.

use std::collections::BTreeMap;

use eddo::Error;
use eddo::aws::LazyClient;
use eddo::names::ImageDigest;
use eddo::policy::Severity;

use crate::decide::Finding;
use crate::signal::Scanner;

/// Enough for any real image; a scan with more is judged on the first this many.
pub const MAX_FINDINGS: usize = 5_000;

/// A scanner's own account of its scan of an image: what the gate believes of a scan event.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OwnAccount {
    /// `COMPLETE`, `FAILED`, `IN_PROGRESS`, ...
    pub status: Option<String>,
    /// Its severity counts, the severities it found only.
    pub counts: BTreeMap<Severity, u64>,
    /// Its findings, as far as they were read.
    pub findings: Vec<Finding>,
}

/// The ECR and Inspector clients serve only scans, so each is built at the first scan that
/// needs it, not at init.
#[derive(Clone)]
pub struct Findings {
    ecr: LazyClient<aws_sdk_ecr::Client>,
    inspector: LazyClient<aws_sdk_inspector2::Client>,
}

impl Findings {
    pub fn new(sdk: &aws_config::SdkConfig) -> Findings {
        Findings {
            ecr: LazyClient::new(sdk, aws_sdk_ecr::Client::new),
            inspector: LazyClient::new(sdk, aws_sdk_inspector2::Client::new),
        }
    }

    /// Another ECR client (one that counts its calls, in tests).
    pub fn with_ecr(&self, client: aws_sdk_ecr::Client) -> Findings {
        Findings {
            ecr: self.ecr.with(client),
            inspector: self.inspector.clone(),
        }
    }

    /// What `scanner` itself says of its scan of the image `digest`: ECR's
    /// `DescribeImageScanFindings` (the findings' every page only when `list`, the counts are on
    /// each), or Inspector's active findings of the image (`ListFindings`, counted by severity).
    /// `None` for a scanner that reported counts in a `Scan Completed` event, with nothing to
    /// ask. An error the owner answers with a 4xx (no such repository, image or scan; refused)
    /// is not retryable.
    pub async fn account(
        &self,
        scanner: &Scanner,
        digest: &ImageDigest,
        list: bool,
    ) -> Result<Option<OwnAccount>, Error> {
        match scanner {
            Scanner::Ecr { repository } => self.ecr(repository, digest, list).await.map(Some),
            Scanner::Inspector { repository_arn } => {
                let findings = self.inspector(repository_arn, digest).await?;
                let mut counts = BTreeMap::new();
                for f in &findings {
                    *counts.entry(f.severity).or_insert(0) += 1;
                }
                Ok(Some(OwnAccount {
                    // Enhanced scanning is continuous: its active findings are the scan's state.
                    status: Some("COMPLETE".into()),
                    counts,
                    findings,
                }))
            }
            Scanner::Reported { .. } => Ok(None),
        }
    }

    async fn ecr(
        &self,
        repository: &str,
        digest: &ImageDigest,
        list: bool,
    ) -> Result<OwnAccount, Error> {
        let mut scan = OwnAccount::default();
        let mut token = None;
        loop {
            let page = self
                .ecr
                .get()
                .describe_image_scan_findings()
                .repository_name(repository)
                .image_id(
                    aws_sdk_ecr::types::ImageIdentifier::builder()
                        .image_digest(digest.as_str())
                        .build(),
                )
                .set_next_token(token)
                .max_results(1000)
                .send()
                .await
                .map_err(|e| Error::aws("ECR", "DescribeImageScanFindings", e))?;
            if let Some(s) = page.image_scan_status() {
                scan.status = s.status().map(|s| s.as_str().to_string());
            }
            if let Some(f) = page.image_scan_findings() {
                if let Some(counts) = f.finding_severity_counts() {
                    scan.counts = counts
                        .iter()
                        .filter(|(_, n)| **n > 0)
                        .map(|(s, n)| {
                            (
                                Severity::parse(s.as_str()).unwrap_or(Severity::Undefined),
                                *n as u64,
                            )
                        })
                        .collect();
                }
                for finding in f.findings() {
                    let severity = finding
                        .severity()
                        .and_then(|s| Severity::parse(s.as_str()))
                        .unwrap_or(Severity::Undefined);
                    scan.findings.push(Finding {
                        id: finding.name().unwrap_or_default().to_string(),
                        severity,
                    });
                }
                for finding in f.enhanced_findings() {
                    scan.findings.push(Finding {
                        id: finding
                            .package_vulnerability_details()
                            .and_then(|d| d.vulnerability_id())
                            .unwrap_or_default()
                            .to_string(),
                        severity: finding
                            .severity()
                            .and_then(Severity::parse)
                            .unwrap_or(Severity::Undefined),
                    });
                }
            }
            token = page.next_token().map(str::to_string);
            if !list || token.is_none() || scan.findings.len() >= MAX_FINDINGS {
                return Ok(scan);
            }
        }
    }

    async fn inspector(
        &self,
        repository_arn: &str,
        digest: &ImageDigest,
    ) -> Result<Vec<Finding>, Error> {
        use aws_sdk_inspector2::types::{FilterCriteria, StringComparison, StringFilter};
        let filter = |v: &str| {
            StringFilter::builder()
                .comparison(StringComparison::Equals)
                .value(v)
                .build()
                .map_err(|e| Error::InvalidEvent(e.to_string()))
        };
        let name = repository_arn
            .rsplit_once(":repository/")
            .map_or(repository_arn, |(_, n)| n);
        let criteria = FilterCriteria::builder()
            .ecr_image_hash(filter(digest.as_str())?)
            .ecr_image_repository_name(filter(name)?)
            .finding_status(filter("ACTIVE")?)
            .build();
        let mut out = Vec::new();
        let mut token = None;
        loop {
            let page = self
                .inspector
                .get()
                .list_findings()
                .filter_criteria(criteria.clone())
                .set_next_token(token)
                .max_results(100)
                .send()
                .await
                .map_err(|e| Error::aws("Inspector2", "ListFindings", e))?;
            for f in page.findings() {
                out.push(Finding {
                    id: f
                        .package_vulnerability_details()
                        .map(|d| d.vulnerability_id().to_string())
                        .unwrap_or_else(|| f.title().unwrap_or_default().to_string()),
                    severity: Severity::parse(f.severity().as_str()).unwrap_or(Severity::Undefined),
                });
            }
            token = page.next_token().map(str::to_string);
            if token.is_none() || out.len() >= MAX_FINDINGS {
                return Ok(out);
            }
        }
    }
}

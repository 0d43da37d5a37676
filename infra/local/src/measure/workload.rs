//! What each function is invoked with: corpus events, each made a new one.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;

use super::FUNCTIONS;
use crate::LocalError;
use crate::codebuild::Plan;
use crate::demo::corpus;
use crate::fixtures::github_delivery;
use crate::stack::{LOCAL_GITHUB_SECRET, Stack};

/// What one function is invoked with: a description for the report, a setup step and the n-th
/// event.
pub(super) struct Workload {
    pub events: &'static str,
    /// Prepares the stack for `n` invocations.
    pub setup: fn(&Stack, usize),
    pub event: Box<dyn Fn(usize) -> Value + Send + Sync>,
}

/// A file's text, or a setup error naming it.
fn read(file: &std::path::Path) -> Result<String, LocalError> {
    std::fs::read_to_string(file).map_err(|e| LocalError::Setup(format!("{}: {e}", file.display())))
}

/// A JSON file, or a setup error naming it.
fn read_json(file: &std::path::Path) -> Result<Value, LocalError> {
    serde_json::from_str(&read(file)?)
        .map_err(|e| LocalError::Setup(format!("{}: {e}", file.display())))
}

pub(super) fn workload(name: &str) -> Result<Workload, LocalError> {
    Ok(match name {
        "webhook" => {
            let mut payloads = Vec::new();
            for (event, file) in [
                ("push", "github/push/with-new-branch.payload.json"),
                ("pull_request", "github/pull_request/opened.payload.json"),
                ("check_run", "github/check_run/completed.payload.json"),
            ] {
                payloads.push((event, read(&corpus().join(file))?));
            }
            Workload {
                events: "GitHub deliveries from the corpus, signed, each a new delivery (its own id \
                         and a body made distinct by a leading field: GitHub signs the body, so a \
                         body seen before is a replay), in turn: a push (8.8 KB), a pull request \
                         opened, a check run completed. Each is recorded once (DynamoDB), \
                         published (EventBridge) and marked published.",
                setup: |_, _| {},
                event: Box::new(move |n| {
                    let (event, body) = &payloads[n % payloads.len()];
                    let body = body.replacen('{', &format!("{{\"eddo_bench\": {n}, "), 1);
                    serde_json::to_value(github_delivery(
                        LOCAL_GITHUB_SECRET,
                        event,
                        &format!("bench-{n}"),
                        &body,
                    ))
                    .unwrap_or_default()
                }),
            }
        }
        "scan-gate" => {
            let build = read_json(&corpus().join("aws/codebuild-build-state-change.json"))?;
            let scan = read_json(&corpus().join("aws/ecr-image-scan.json"))?;
            Workload {
                events: "In turn, the corpus `CodeBuild Build State Change` of the example policy's \
                         build project (reporting its image; a build that ran in the CodeBuild \
                         stand-in, which the gate confirms with BatchGetBuilds) and the corpus `ECR Image Scan` of its \
                         repository (within the thresholds), each for a new commit or image: the \
                         common path, one signal that does not yet complete a release (the build \
                         records its image; the scan looks up which commit built its image, and is \
                         kept on the image until a build reports it).",
                // The builds ran: CodeBuild describes each as its event does.
                setup: |stack, count| {
                    for n in (0..count).step_by(2) {
                        stack.codebuild.ran(
                            "eddo-build",
                            &format!("bench-{n}"),
                            &format!("{n:040x}"),
                            &[
                                ("EDDO_REPOSITORY", "Codertocat/Hello-World"),
                                ("EDDO_BRANCH", "main"),
                            ],
                            Plan::succeed().exporting("IMAGE_DIGEST", &format!("sha256:{n:064x}")),
                        );
                    }
                },
                event: Box::new(move |n| {
                    if n % 2 == 0 {
                        let mut e = build.clone();
                        e["detail"]["project-name"] = "eddo-build".into();
                        e["detail"]["build-id"] = format!(
                            "arn:aws:codebuild:us-east-1:123456789012:build/eddo-build:bench-{n}"
                        )
                        .into();
                        e["detail"]["additional-information"]["environment"]["environment-variables"] = serde_json::json!([
                            {"name": "EDDO_REPOSITORY", "value": "Codertocat/Hello-World", "type": "PLAINTEXT"},
                            {"name": "EDDO_BRANCH", "value": "main", "type": "PLAINTEXT"}
                        ]);
                        e["detail"]["additional-information"]["source-version"] =
                            format!("{n:040x}").into();
                        e["detail"]["additional-information"]["exported-environment-variables"] = serde_json::json!([{"name": "IMAGE_DIGEST", "value": format!("sha256:{n:064x}")}]);
                        e
                    } else {
                        let mut e = scan.clone();
                        e["detail"]["repository-name"] = "hello-world".into();
                        e["detail"]["image-digest"] = format!("sha256:{n:064x}").into();
                        e["detail"]["image-tags"] = serde_json::json!([format!("{n:040x}")]);
                        e["detail"]["finding-severity-counts"] =
                            serde_json::json!({"HIGH": 1, "MEDIUM": 4, "LOW": 3});
                        e
                    }
                }),
            }
        }
        "alarm-rollback" => {
            let alarm = read_json(&corpus().join("aws/cloudwatch-alarm-state-change.json"))?;
            // Each state change a new one, a second after the last (a state change is known by
            // its second and state), starting early enough that none is in the future.
            let start = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default()
                .saturating_sub(Duration::from_secs(6 * 3600));
            Workload {
                events: "The corpus `CloudWatch Alarm State Change` into ALARM, for the example \
                         policy's `hello-world-5xx`, each a new state change; with nothing live to \
                         roll back to, each is judged, recorded and reported as `Rollback Skipped`.",
                setup: |_, _| {},
                event: Box::new(move |n| {
                    let at = start + Duration::from_secs(n as u64);
                    let stamp = format!(
                        "{}.{:03}+0000",
                        eddo::time::rfc3339(at.as_secs()).trim_end_matches('Z'),
                        at.subsec_millis()
                    );
                    let mut e = alarm.clone();
                    e["detail"]["alarmName"] = "hello-world-5xx".into();
                    e["detail"]["state"]["timestamp"] = stamp.into();
                    e["resources"] = serde_json::json!([
                        "arn:aws:cloudwatch:us-east-1:123456789012:alarm:hello-world-5xx"
                    ]);
                    e
                }),
            }
        }
        "tenant-onboarding" => {
            let request = read_json(
                &crate::moto::project_root()
                    .join("infra/examples/events/tenant-onboarding-requested.json"),
            )?;
            Workload {
                events: "eddo's `Tenant Onboarding Requested` example, each for a new tenant of \
                         the `basic` tier: registered, its provisioning build started (the \
                         CodeBuild stand-in), recorded and announced. The builds do not finish \
                         during the run.",
                // Builds outlast the run: no completions arrive to compete with the requests.
                setup: |stack, n| {
                    for _ in 0..n {
                        stack.codebuild.plan(
                            "eddo-tenant-provision",
                            Plan::succeed().lasting(Duration::from_secs(6 * 3600)),
                        );
                    }
                },
                event: Box::new(move |n| {
                    let mut e = request.clone();
                    e["id"] = format!("bench-{n}").into();
                    e["detail"]["tenant_id"] = format!("tenant-{n}").into();
                    e["detail"]["metadata"]["correlation_id"] = format!("bench-{n}").into();
                    e
                }),
            }
        }
        other => {
            return Err(LocalError::Setup(format!(
                "no workload for {other}; the functions are {}",
                FUNCTIONS.join(", ")
            )));
        }
    })
}

//! A build as CodeBuild describes it: the `CodeBuild Build State Change` event's detail and the
//! `Build` of StartBuild and BatchGetBuilds, with its phases, logs link and times.

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use super::Build;
use crate::template::REGION;

fn epoch(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// `Sep 1, 2017 4:12:29 PM`: how CodeBuild's events write times.
pub fn event_time(t: SystemTime) -> String {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let rem = secs % 86_400;
    let date = eddo::time::Date::from_epoch(secs);
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let (h, m, s) = (rem / 3_600, rem % 3_600 / 60, rem % 60);
    let (h12, half) = match h {
        0 => (12, "AM"),
        1..=11 => (h, "AM"),
        12 => (12, "PM"),
        _ => (h - 12, "PM"),
    };
    format!(
        "{} {}, {} {h12}:{m:02}:{s:02} {half}",
        MONTHS[usize::from(date.month - 1)],
        date.day,
        date.year
    )
}

/// The phases of a build as far as it got: every phase up to the failed one, which fails.
fn phases(build: &Build) -> Vec<(&'static str, Option<&'static str>)> {
    const ORDER: [&str; 9] = [
        "SUBMITTED",
        "QUEUED",
        "PROVISIONING",
        "DOWNLOAD_SOURCE",
        "INSTALL",
        "PRE_BUILD",
        "BUILD",
        "POST_BUILD",
        "UPLOAD_ARTIFACTS",
    ];
    let mut out = Vec::new();
    if build.status == "IN_PROGRESS" {
        out.push(("SUBMITTED", None));
        return out;
    }
    let failed = (build.status != "SUCCEEDED").then_some(build.plan.failed_phase.as_str());
    for phase in ORDER {
        if Some(phase) == failed {
            let status = match build.status.as_str() {
                "TIMED_OUT" => "TIMED_OUT",
                "STOPPED" => "STOPPED",
                "FAULT" => "FAULT",
                _ => "FAILED",
            };
            out.push((phase, Some(status)));
            break;
        }
        out.push((phase, Some("SUCCEEDED")));
    }
    out.push(("FINALIZING", Some("SUCCEEDED")));
    out.push(("COMPLETED", None));
    out
}

fn logs(build: &Build) -> (String, String, String) {
    let group = format!("/aws/codebuild/{}", build.project);
    let stream = build.id.rsplit(':').next().unwrap_or_default().to_string();
    let link = format!(
        "https://console.aws.amazon.com/cloudwatch/home?region={REGION}#logEvent:group={group};stream={stream}"
    );
    (group, stream, link)
}

/// The `detail` of a `CodeBuild Build State Change` event, shaped as CodeBuild sends it.
pub fn state_change(build: &Build) -> Value {
    let (group, stream, link) = logs(build);
    let done = build.status != "IN_PROGRESS";
    let start = event_time(build.start);
    let end = build.end.map(event_time).unwrap_or_else(|| start.clone());
    let phases: Vec<Value> = phases(build)
        .into_iter()
        .map(|(phase, status)| match status {
            None => json!({ "start-time": end, "phase-type": phase }),
            Some(status) => {
                let context: Vec<String> = if status == "SUCCEEDED" {
                    Vec::new()
                } else {
                    vec![format!(
                        "COMMAND_EXECUTION_ERROR: Error while executing command. Reason: exit status 1 (planned by the local scenario: {})",
                        build.plan.status
                    )]
                };
                json!({
                    "phase-context": context,
                    "start-time": start,
                    "end-time": end,
                    "duration-in-seconds": 0,
                    "phase-type": phase,
                    "phase-status": status,
                })
            }
        })
        .collect();
    let mut info = json!({
        // A project without artifacts reports an empty location.
        "artifact": { "location": "" },
        "environment": {
            "image": "aws/codebuild/amazonlinux-aarch64-standard:3.0",
            "privileged-mode": false,
            "compute-type": "BUILD_GENERAL1_SMALL",
            "type": "ARM_CONTAINER",
            "environment-variables": build.env.iter().map(|v| json!({
                "name": v.name, "type": v.kind, "value": v.value,
            })).collect::<Vec<_>>(),
        },
        "timeout-in-minutes": build.timeout_minutes,
        "build-complete": done,
        "build-number": build.number,
        "initiator": build.initiator,
        "build-start-time": start,
        "source": { "type": "GITHUB" },
        "logs": { "group-name": group, "stream-name": stream, "deep-link": link },
        "phases": phases,
    });
    if let Some(v) = &build.source_version {
        info["source-version"] = json!(v);
    }
    if done && !build.plan.exported.is_empty() {
        info["exported-environment-variables"] = build
            .plan
            .exported
            .iter()
            .map(|(k, v)| json!({ "name": k, "value": v }))
            .collect();
    }
    json!({
        "build-status": build.status,
        "project-name": build.project,
        "build-id": build.arn,
        "additional-information": info,
        "current-phase": if done { "COMPLETED" } else { "SUBMITTED" },
        "current-phase-context": "[]",
        "version": "1",
    })
}

/// A build as BatchGetBuilds and StartBuild answer it.
pub(super) fn describe(build: &Build) -> Value {
    let (group, stream, link) = logs(build);
    let done = build.status != "IN_PROGRESS";
    let mut out = json!({
        "id": build.id,
        "arn": build.arn,
        "buildNumber": build.number,
        "startTime": epoch(build.start),
        "currentPhase": if done { "COMPLETED" } else { "SUBMITTED" },
        "buildStatus": build.status,
        "projectName": build.project,
        "buildComplete": done,
        "initiator": build.initiator,
        "timeoutInMinutes": build.timeout_minutes,
        "environment": {
            "type": "ARM_CONTAINER",
            "image": "aws/codebuild/amazonlinux-aarch64-standard:3.0",
            "computeType": "BUILD_GENERAL1_SMALL",
            "environmentVariables": build.env.iter().map(|v| json!({
                "name": v.name, "value": v.value, "type": v.kind,
            })).collect::<Vec<_>>(),
        },
        "logs": { "groupName": group, "streamName": stream, "deepLink": link },
        "phases": phases(build).into_iter().map(|(p, s)| {
            let mut v = json!({ "phaseType": p, "startTime": epoch(build.start) });
            if let Some(s) = s { v["phaseStatus"] = json!(s); }
            v
        }).collect::<Vec<_>>(),
    });
    if let Some(v) = &build.source_version {
        out["sourceVersion"] = json!(v);
        // The commit CodeBuild checked out: a branch or tag would resolve to its head, which
        // the stand-in has no repository to know, so only a full commit id resolves here.
        if v.len() == 40 && v.bytes().all(|b| b.is_ascii_hexdigit()) {
            out["resolvedSourceVersion"] = json!(v.to_ascii_lowercase());
        }
    }
    if let Some(end) = build.end {
        out["endTime"] = json!(epoch(end));
    }
    if done {
        out["exportedEnvironmentVariables"] = build
            .plan
            .exported
            .iter()
            .map(|(k, v)| json!({ "name": k, "value": v }))
            .collect();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn event_times_read_as_codebuild_writes_them() {
        // 2017-09-01T16:12:29Z, the corpus sample's build start.
        let t = UNIX_EPOCH + Duration::from_secs(1_504_282_349);
        assert_eq!(event_time(t), "Sep 1, 2017 4:12:29 PM");
        assert_eq!(
            event_time(UNIX_EPOCH + Duration::from_secs(951_782_400)),
            "Feb 29, 2000 12:00:00 AM"
        );
        assert_eq!(
            event_time(UNIX_EPOCH + Duration::from_secs(1_798_761_599)),
            "Dec 31, 2026 11:59:59 PM"
        );
    }
}

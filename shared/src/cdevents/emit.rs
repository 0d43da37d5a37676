//! eddo's decisions as CDEvents (spec 0.4.1), for tools outside AWS to follow.
//!
//! Each decision event that has a CDEvents word gets one CDEvent, put on the bus beside it (in
//! the same outbox, so it is said exactly when the decision is) as a `CDEvent` event whose
//! detail is the structured-mode CloudEvent (the CDEvents CloudEvents binding: `id`, `source`,
//! `type`, `subject` and `time` from the CDEvent, the CDEvent as `data`). A rule delivers it to
//! the sink the user names through an API destination, the body being `$.detail`.
//!
//! | eddo event | CDEvent |
//! |---|---|
//! | Deployment Succeeded, the service's first | `dev.cdevents.service.deployed.0.2.0` |
//! | Deployment Succeeded, replacing a version | `dev.cdevents.service.upgraded.0.2.0` |
//! | Rollback Succeeded | `dev.cdevents.service.rolledback.0.2.0` |
//! | Rollback Started (an alarm rolled the service back) | `dev.cdevents.incident.detected.0.2.0` |
//! | Alarm Recovered (that alarm is OK again) | `dev.cdevents.incident.resolved.0.2.0` |
//! | Deployment Blocked | `dev.cdeventsx.eddo-deployment.blocked.0.1.0` |
//! | Deployment Timed Out | `dev.cdeventsx.eddo-deployment.timedout.0.1.0` |
//!
//! Every one carries the change's correlation id as `chainId`, a `PATH` link from the event that
//! caused it (eddo's `causation_id`) and, for a blocked or timed-out candidate (the decisions
//! that list their evidence), a `RELATION` link to each piece of evidence. Its id is the eddo event's `event_key`: every publication of one decision
//! carries the same id, for the sink to deduplicate on.
//!
//! Spec 0.4.1 is the version the CD Foundation's SDKs read most widely (Go, Java, Python and
//! Rust read 0.4; 0.5 is newer than most consumers). The shapes are checked in tests against the
//! spec's own schemas (`infra/schemas/contracts/cdevents/0.4.1/`).

use std::borrow::Cow;

use serde_json::{Value, json};

use crate::Error;
use crate::event::DetailType;
use crate::publish::OutgoingEvent;

/// The CDEvents spec version eddo emits.
pub const SPEC_VERSION: &str = "0.4.1";

/// eddo's custom types, for decisions CDEvents has no word for.
pub const DEPLOYMENT_BLOCKED: &str = "dev.cdeventsx.eddo-deployment.blocked.0.1.0";
pub const DEPLOYMENT_TIMED_OUT: &str = "dev.cdeventsx.eddo-deployment.timedout.0.1.0";

/// Where the schemas of eddo's custom types are published (`context.schemaUri`).
pub const CUSTOM_SCHEMAS: &str =
    "https://raw.githubusercontent.com/eddo-dev/eddo/main/infra/schemas/cdevents/";

/// Who says it: the eddo deployment (its bus name, one per environment: `environment.id`) and,
/// for an artifact's purl, the ECR repository the service's images go to.
#[derive(Debug, Clone, Copy)]
pub struct Producer<'a> {
    pub deployment: &'a str,
    pub image_repository: Option<&'a str>,
}

impl<'a> Producer<'a> {
    /// What a function publishing with `publisher` says, of a service whose images go to
    /// `images`: none if its deployment does not say CDEvents (`EDDO_CDEVENTS`).
    pub fn of(publisher: &'a crate::publish::Publisher, images: Option<&'a str>) -> Option<Self> {
        publisher.says_cdevents().then(|| Producer {
            deployment: publisher.bus(),
            image_repository: images,
        })
    }

    /// `/eddo/<deployment>`: the CDEvents `source` of what this deployment says and of its
    /// environment.
    fn source(&self) -> String {
        format!("/eddo/{}", self.deployment)
    }

    fn environment(&self) -> Value {
        json!({"id": self.deployment, "source": self.source()})
    }

    /// The artifact a version of `service` is: its image (`pkg:oci/<repository>@sha256%3A...`)
    /// where its digest is known, else the service at its commit (`pkg:generic/...@<commit>`).
    pub fn artifact(&self, service: &str, commit: &str, digest: Option<&str>) -> String {
        match digest.and_then(|d| d.strip_prefix("sha256:")) {
            Some(hex) => format!(
                "pkg:oci/{}@sha256%3A{hex}",
                self.image_repository.unwrap_or(service)
            ),
            None => format!("pkg:generic/{service}@{commit}"),
        }
    }
}

/// The events `events` says, each followed by the CDEvent that announces it, if it has one and
/// there is a `producer` (the deployment says CDEvents): what a decision owes, said together.
pub fn with_cdevents(
    events: impl IntoIterator<Item = OutgoingEvent>,
    producer: Option<&Producer<'_>>,
    at: u64,
) -> Result<Vec<OutgoingEvent>, Error> {
    let mut out = Vec::new();
    for event in events {
        let cdevent = match producer {
            Some(p) => cdevent_of(&event, p, at)?,
            None => None,
        };
        out.push(event);
        out.extend(cdevent);
    }
    Ok(out)
}

/// The `CDEvent` bus event announcing `event` (an eddo decision), if CDEvents has a word for it.
pub fn cdevent_of(
    event: &OutgoingEvent,
    producer: &Producer<'_>,
    at: u64,
) -> Result<Option<OutgoingEvent>, Error> {
    let Some(detail_type) = DetailType::parse(&event.detail_type) else {
        return Ok(None);
    };
    let detail: Value = serde_json::from_str(&event.detail)?;
    let Some((ty, subject, custom)) = subject_of(detail_type, &detail, producer) else {
        return Ok(None);
    };
    let metadata = &detail["metadata"];
    let text = |v: &Value| v.as_str().filter(|s| !s.is_empty()).map(str::to_string);
    let id = text(&metadata["event_key"])
        .unwrap_or_else(|| crate::publish::event_key(&event.source, &event.detail_type, &detail));
    let mut links = Vec::new();
    if let Some(cause) = text(&metadata["causation_id"]) {
        links.push(json!({"linkType": "PATH", "from": {"contextId": cause}}));
    }
    for item in detail["evidence"].as_array().into_iter().flatten() {
        if let Some(evidence) = text(&item["event_id"]) {
            links.push(json!({
                "linkType": "RELATION",
                "linkKind": "evidence",
                "target": {"contextId": evidence},
                "tags": {"signal": item["signal"], "passed": item["passed"]},
            }));
        }
    }
    let source = producer.source();
    let time = crate::time::rfc3339(at);
    let mut context = json!({
        "version": SPEC_VERSION,
        "id": id,
        "source": source,
        "type": ty,
        "timestamp": time,
    });
    if let Some(chain) = text(&metadata["correlation_id"]) {
        context["chainId"] = json!(chain);
    }
    if !links.is_empty() {
        context["links"] = json!(links);
    }
    let custom_type = ty.starts_with("dev.cdeventsx.");
    let schema = if custom_type {
        format!("{CUSTOM_SCHEMAS}{}.schema.json", custom_schema_name(ty))
    } else {
        format!(
            "https://cdevents.dev/{SPEC_VERSION}/schema/{}-event",
            ty.trim_start_matches(super::PREFIX)
                .rsplitn(4, '.')
                .last()
                .unwrap_or_default()
                .replace('.', "-")
        )
    };
    if custom_type {
        context["schemaUri"] = json!(schema);
    }
    let subject_id = subject["id"].clone();
    let data = json!({"context": context, "subject": subject, "customData": custom});
    let cloudevent = json!({
        "specversion": "1.0",
        "id": id,
        "source": source,
        "type": ty,
        "subject": subject_id,
        "time": time,
        "datacontenttype": "application/json",
        "dataschema": schema,
        "data": data,
    });
    Ok(Some(
        OutgoingEvent {
            source: event.source.clone(),
            detail_type: Cow::Borrowed(DetailType::CdEvent.as_str()),
            detail: serde_json::to_string(&cloudevent)?,
            resources: Vec::new(),
        }
        .fitted(crate::publish::MAX_ENTRY_BYTES),
    ))
}

/// `eddo-deployment-blocked` for `dev.cdeventsx.eddo-deployment.blocked.0.1.0`: the file name
/// of a custom type's schema under `infra/schemas/cdevents/`.
pub fn custom_schema_name(ty: &str) -> String {
    let rest = ty.trim_start_matches("dev.cdeventsx.");
    let mut parts = rest.splitn(3, '.');
    let subject = parts.next().unwrap_or_default();
    let predicate = parts.next().unwrap_or_default();
    format!("{subject}-{predicate}")
}

/// `<before><commit, 12 characters>`, or nothing without a commit.
fn short(commit: &Value, before: &str) -> String {
    commit
        .as_str()
        .map(|c| format!("{before}{}", &c[..c.len().min(12)]))
        .unwrap_or_default()
}

/// The subject of an incident CDEvent: the alarm `name` (a detection and its resolution share
/// it), in the deployment's environment, about `service` and the version (`{commit, digest}`)
/// it is about, if any.
fn incident(
    producer: &Producer<'_>,
    service: &str,
    name: &str,
    description: String,
    version: &Value,
) -> Value {
    let mut content = json!({
        "description": description,
        "environment": producer.environment(),
        "service": {"id": service, "source": producer.source()},
    });
    if let Some(commit) = version["commit"].as_str() {
        content["artifactId"] =
            json!(producer.artifact(service, commit, version["digest"].as_str()));
    }
    json!({"id": name, "source": producer.source(), "type": "incident", "content": content})
}

/// The type, subject and custom data of the CDEvent announcing an eddo event of `detail_type`.
fn subject_of(
    detail_type: DetailType,
    d: &Value,
    producer: &Producer<'_>,
) -> Option<(&'static str, Value, Value)> {
    let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
    let service = text(&d["service"]);
    let service_subject = |artifact: String| {
        json!({
            "id": service,
            "source": producer.source(),
            "type": "service",
            "content": {"environment": producer.environment(), "artifactId": artifact},
        })
    };
    let custom_data = |fields: Value| {
        let mut custom = json!({"eddo": {
            "detail_type": detail_type.as_str(),
            "event_key": d["metadata"]["event_key"],
        }});
        if let (Some(c), Some(f)) = (custom.as_object_mut(), fields.as_object()) {
            c.extend(
                f.iter()
                    .filter(|(_, v)| !v.is_null())
                    .map(|(k, v)| (k.clone(), v.clone())),
            );
        }
        custom
    };
    match detail_type {
        DetailType::DeploymentSucceeded => {
            let commit = text(&d["commit_sha"]);
            let artifact = producer.artifact(&service, &commit, d["image_digest"].as_str());
            let ty = if d["last_known_good"].is_null() {
                "dev.cdevents.service.deployed.0.2.0"
            } else {
                "dev.cdevents.service.upgraded.0.2.0"
            };
            let custom = custom_data(json!({
                "commit_sha": commit,
                "image_digest": d["image_digest"],
                "build_id": d["build_id"],
                "replaced": d["last_known_good"]["commit"],
            }));
            Some((ty, service_subject(artifact), custom))
        }
        DetailType::RollbackSucceeded => {
            let restored = &d["restored"];
            let artifact = producer.artifact(
                &service,
                restored["commit"].as_str().unwrap_or_default(),
                restored["digest"].as_str(),
            );
            let custom = custom_data(json!({
                "commit_sha": restored["commit"],
                "image_digest": restored["digest"],
                "replaced": d["replaced"]["commit"],
                "build_id": d["build_id"],
                "alarm": d["alarm"],
            }));
            Some((
                "dev.cdevents.service.rolledback.0.2.0",
                service_subject(artifact),
                custom,
            ))
        }
        DetailType::RollbackStarted => {
            let alarm = &d["alarm"];
            let name = alarm["name"].as_str().filter(|n| !n.is_empty())?;
            let description = format!(
                "{name} is {}: eddo rolls {service} back{}",
                alarm["state"].as_str().unwrap_or("ALARM"),
                short(&d["replacing"]["commit"], " from ")
            );
            let custom = custom_data(json!({
                "alarm": alarm,
                "rollback_build_id": d["build_id"],
                "restoring": d["target"]["commit"],
            }));
            Some((
                "dev.cdevents.incident.detected.0.2.0",
                incident(producer, &service, name, description, &d["replacing"]),
                custom,
            ))
        }
        DetailType::AlarmRecovered => {
            let alarm = &d["alarm"];
            let name = alarm["name"].as_str().filter(|n| !n.is_empty())?;
            let description = format!(
                "{name} is OK: {service} recovered after its rollback{}",
                short(&d["restored"]["commit"], " to ")
            );
            let custom = custom_data(json!({
                "alarm": alarm,
                "rollback_build_id": d["rollback_build_id"],
                "rolled_back_at": d["rolled_back_at"],
            }));
            Some((
                "dev.cdevents.incident.resolved.0.2.0",
                incident(producer, &service, name, description, &d["restored"]),
                custom,
            ))
        }
        DetailType::DeploymentBlocked | DetailType::DeploymentTimedOut => {
            let ty = if detail_type == DetailType::DeploymentBlocked {
                DEPLOYMENT_BLOCKED
            } else {
                DEPLOYMENT_TIMED_OUT
            };
            let mut content = json!({
                "service": service,
                "commit_sha": d["commit_sha"],
                "image_digest": d["image_digest"],
                "environment": producer.environment(),
                "mode": d["mode"],
                "reasons": d["reasons"],
            });
            for field in ["missing", "deadline"] {
                if !d[field].is_null() {
                    content[field] = d[field].clone();
                }
            }
            let subject = json!({
                "id": format!("{service}@{}", text(&d["commit_sha"])),
                "source": producer.source(),
                "type": "eddo-deployment",
                "content": content,
            });
            Some((ty, subject, custom_data(json!({}))))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Metadata;

    const SHA: &str = "6113728f27ae82c7b1a177c8d03f9e96e0adf246";
    const DIGEST: &str = "sha256:0b31b1c02ff458ad9b7b81cbdf8f028bd54699fa151f221d1e8de6817db93427";

    fn producer() -> Producer<'static> {
        Producer {
            deployment: "eddo-prod",
            image_repository: Some("hello-world"),
        }
    }

    fn event(dt: DetailType, detail: Value) -> OutgoingEvent {
        OutgoingEvent::new(
            dt,
            &crate::event::Envelope {
                metadata: Metadata::new("corr-1", "cause-1"),
                detail,
            },
        )
        .unwrap()
    }

    fn announced(e: &OutgoingEvent) -> Value {
        let out = cdevent_of(e, &producer(), 1_765_000_000).unwrap().unwrap();
        assert_eq!(out.detail_type, "CDEvent");
        assert_eq!(out.source, e.source);
        serde_json::from_str(&out.detail).unwrap()
    }

    #[test]
    fn a_first_deploy_is_deployed_a_later_one_upgraded_with_the_image_as_artifact() {
        let first = event(
            DetailType::DeploymentSucceeded,
            json!({"service": "hello-world", "commit_sha": SHA, "image_digest": DIGEST,
                   "build_id": "eddo-deploy:1", "live": {}, "last_known_good": null}),
        );
        let ce = announced(&first);
        assert_eq!(ce["type"], "dev.cdevents.service.deployed.0.2.0");
        assert_eq!(ce["specversion"], "1.0");
        assert_eq!(ce["source"], "/eddo/eddo-prod");
        assert_eq!(ce["subject"], "hello-world");
        assert_eq!(ce["time"], "2025-12-06T05:46:40Z");
        let context = &ce["data"]["context"];
        assert_eq!(context["chainId"], "corr-1");
        assert_eq!(context["links"][0]["from"]["contextId"], "cause-1");
        assert_eq!(ce["id"], context["id"]);
        let first_key: Value = serde_json::from_str(&first.detail).unwrap();
        assert_eq!(ce["id"], first_key["metadata"]["event_key"]);
        assert_eq!(
            ce["data"]["subject"]["content"]["artifactId"],
            "pkg:oci/hello-world@sha256%3A0b31b1c02ff458ad9b7b81cbdf8f028bd54699fa151f221d1e8de6817db93427"
        );
        assert_eq!(
            super::super::purl_digest(
                ce["data"]["subject"]["content"]["artifactId"]
                    .as_str()
                    .unwrap()
            )
            .unwrap()
            .as_str(),
            DIGEST
        );
        let later = event(
            DetailType::DeploymentSucceeded,
            json!({"service": "hello-world", "commit_sha": SHA, "image_digest": null,
                   "build_id": "eddo-deploy:2", "live": {}, "last_known_good": {"commit": "a"}}),
        );
        let ce = announced(&later);
        assert_eq!(ce["type"], "dev.cdevents.service.upgraded.0.2.0");
        assert_eq!(
            ce["data"]["subject"]["content"]["artifactId"],
            format!("pkg:generic/hello-world@{SHA}")
        );
        assert_eq!(ce["data"]["customData"]["replaced"], "a");
    }

    #[test]
    fn decisions_without_a_cdevents_word_get_none_and_the_rest_follow_their_event() {
        let started = event(
            DetailType::DeploymentStarted,
            json!({"service": "s", "commit_sha": SHA}),
        );
        assert!(cdevent_of(&started, &producer(), 0).unwrap().is_none());
        let blocked = event(
            DetailType::DeploymentBlocked,
            json!({"service": "s", "commit_sha": SHA, "image_digest": null, "mode": "enforce",
                   "reasons": ["sast failed"],
                   "evidence": [{"signal": "sast", "passed": false, "event_id": "ev-1"}]}),
        );
        let unsaid = with_cdevents([started.clone()], None, 0).unwrap();
        assert_eq!(unsaid, std::slice::from_ref(&started));
        let all = with_cdevents([started, blocked], Some(&producer()), 0).unwrap();
        let types: Vec<&str> = all.iter().map(|e| e.detail_type.as_ref()).collect();
        assert_eq!(
            types,
            ["Deployment Started", "Deployment Blocked", "CDEvent"]
        );
        let ce: Value = serde_json::from_str(&all[2].detail).unwrap();
        assert_eq!(ce["type"], DEPLOYMENT_BLOCKED);
        assert_eq!(
            ce["data"]["context"]["schemaUri"],
            format!("{CUSTOM_SCHEMAS}eddo-deployment-blocked.schema.json")
        );
        let links = &ce["data"]["context"]["links"];
        assert_eq!(links[1]["linkType"], "RELATION");
        assert_eq!(links[1]["target"]["contextId"], "ev-1");
        assert_eq!(
            ce["data"]["subject"]["content"]["reasons"][0],
            "sast failed"
        );
    }

    #[test]
    fn standard_types_name_the_spec_schema() {
        let rolled = event(
            DetailType::RollbackSucceeded,
            json!({"service": "s", "build_id": "b", "alarm": "a",
                   "restored": {"commit": SHA, "digest": null},
                   "replaced": {"commit": "f00"}, "live": {}}),
        );
        let ce = announced(&rolled);
        assert_eq!(ce["type"], "dev.cdevents.service.rolledback.0.2.0");
        assert_eq!(
            ce["dataschema"],
            "https://cdevents.dev/0.4.1/schema/service-rolledback-event"
        );
    }
}

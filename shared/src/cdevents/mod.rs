//! CDEvents (cdevents.dev) eddo takes as gate signals: which types, in which spec versions, and
//! what one says to the gate: its subject (the image an artifact event is about, or the commit
//! or image a test run names) and its outcome.
//!
//! The types and their versions are the CD Foundation's, as its Rust SDK (`cdevents-sdk`)
//! generates them from the spec's schemas for spec 0.3.0, 0.4.1 and 0.5.1: an event is read with
//! the SDK, so a malformed one, or a type or version it does not know, is refused there.

// What the functions publish; the policy checker (no `aws` feature) has no use for it.
#[cfg(feature = "aws")]
pub mod emit;

use crate::names::{CommitSha, ImageDigest};

/// The CDEvents eddo takes as gate signals (`subject.predicate`), each with its type versions in
/// spec 0.3.0, 0.4.1 and 0.5.1.
pub const CONSUMED: [(&str, [&str; 3]); 5] = [
    ("testsuiterun.finished", ["0.1.0", "0.2.0", "0.3.0"]),
    ("testcaserun.finished", ["0.1.0", "0.2.0", "0.3.0"]),
    ("build.finished", ["0.1.1", "0.2.0", "0.3.0"]),
    ("artifact.signed", ["0.1.0", "0.2.0", "0.3.0"]),
    ("artifact.published", ["0.1.1", "0.2.0", "0.3.0"]),
];

/// The CDEvents eddo takes as alarms (an incident a monitoring tool detected or resolved), each
/// with its type versions in spec 0.3.0, 0.4.1 and 0.5.1: published as `Alert Received`, for
/// alarm-rollback, not as gate signals.
pub const INCIDENTS: [(&str, [&str; 3]); 2] = [
    ("incident.detected", ["0.1.0", "0.2.0", "0.3.0"]),
    ("incident.resolved", ["0.1.0", "0.2.0", "0.3.0"]),
];

/// The prefix of every CDEvents type.
pub const PREFIX: &str = "dev.cdevents.";

/// What eddo takes, for error messages: `testsuiterun.finished (0.1.0, 0.2.0, 0.3.0), ...`.
pub fn supported() -> String {
    CONSUMED
        .iter()
        .chain(&INCIDENTS)
        .map(|(t, v)| format!("{t} ({})", v.join(", ")))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A type as a policy names it, `dev.cdevents.testsuiterun.finished` (any of its versions):
/// its `subject.predicate`, if eddo takes it.
pub fn policy_type(s: &str) -> Result<&'static str, String> {
    let name = s.strip_prefix(PREFIX).unwrap_or_default();
    CONSUMED
        .iter()
        .map(|(t, _)| *t)
        .find(|t| *t == name)
        .ok_or_else(|| {
            format!(
                "{s:?} is not a CDEvents type eddo takes as a signal: {PREFIX}<one of {}>, without its version",
                CONSUMED.map(|(t, _)| t).join(", ")
            )
        })
}

/// A full type, `dev.cdevents.incident.detected.0.3.0`: its `subject.predicate`, if it is an
/// incident type eddo takes in that version.
pub fn incident_type(ty: &str) -> Option<&'static str> {
    of_type(&INCIDENTS, ty)
}

/// The `subject.predicate` of a full type among `types`, in one of its versions.
fn of_type(types: &[(&'static str, [&str; 3])], ty: &str) -> Option<&'static str> {
    let rest = ty.strip_prefix(PREFIX)?;
    types
        .iter()
        .find(|(t, versions)| {
            rest.strip_prefix(t)
                .and_then(|v| v.strip_prefix('.'))
                .is_some_and(|v| versions.contains(&v))
        })
        .map(|(t, _)| *t)
}

/// A full type, `dev.cdevents.testsuiterun.finished.0.3.0`: its `subject.predicate`, if eddo
/// takes that type in that version as a gate signal.
pub fn consumed_type(ty: &str) -> Result<&'static str, String> {
    of_type(&CONSUMED, ty).ok_or_else(|| {
        format!(
            "CDEvents type {:?} is not one eddo takes: {}",
            ty.chars().take(100).collect::<String>(),
            supported()
        )
    })
}

/// What a consumed CDEvent says to the gate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reading {
    /// `subject.predicate`, one of [`CONSUMED`].
    pub predicate: &'static str,
    /// `context.id` and `context.source`: the event's identity.
    pub id: String,
    pub source: String,
    /// `context.chainId`, where the sender gives one (spec 0.4 on).
    pub chain_id: Option<String>,
    /// The image it is about: an artifact's purl digest (`pkg:oci/name@sha256:...`).
    pub image: Option<ImageDigest>,
    /// The commit it names (a test run's `customData.commit`).
    pub commit: Option<CommitSha>,
    /// Passed or not; an artifact signed or published, and a build finished, pass.
    pub passed: bool,
    /// One line for people: the test suite and outcome, the reason.
    pub summary: String,
}

/// The image digest of a purl's version, `pkg:oci/myapp@sha256:...` (the `:` percent-encoded
/// or not): none for a purl of another kind or without a digest.
pub fn purl_digest(purl: &str) -> Option<ImageDigest> {
    let version = purl.strip_prefix("pkg:")?.split(['?', '#']).next()?;
    let (_, version) = version.rsplit_once('@')?;
    let version = version.replacen("%3A", ":", 1).replacen("%3a", ":", 1);
    ImageDigest::parse(&version).ok()
}

/// Reads a CDEvent (the JSON of its context and subject, as the SDK writes it) that eddo
/// consumes. `Err` says why it is not a signal: a type eddo does not take, a test run that names
/// neither image nor commit, an artifact that is not an image.
pub fn read(event: &serde_json::Value) -> Result<Reading, String> {
    let ty = event["context"]["type"].as_str().unwrap_or_default();
    let predicate = consumed_type(ty)?;
    let text = |v: &serde_json::Value| v.as_str().map(str::to_string);
    let content = &event["subject"]["content"];
    let custom = &event["customData"];
    let custom_image = custom["artifactId"].as_str().map(|p| {
        purl_digest(p).ok_or_else(|| {
            format!("customData.artifactId {p:?} is not an OCI image purl with its sha256 digest")
        })
    });
    let commit = match custom["commit"].as_str() {
        Some(c) => Some(CommitSha::parse(c).map_err(|why| format!("customData.commit: {why}"))?),
        None => None,
    };
    let (image, passed, summary) = match predicate {
        "testsuiterun.finished" | "testcaserun.finished" => {
            let outcome = content["outcome"].as_str().unwrap_or_default();
            let name = text(&content["testSuite"]["name"])
                .or_else(|| text(&content["testCase"]["name"]))
                .or_else(|| text(&event["subject"]["id"]))
                .unwrap_or_default();
            let reason = text(&content["reason"])
                .map(|r| format!(": {r}"))
                .unwrap_or_default();
            let image = custom_image.transpose()?;
            if image.is_none() && commit.is_none() {
                return Err(format!(
                    "a {predicate} names the image (customData.artifactId, an OCI purl with its digest) or the commit (customData.commit) it tested"
                ));
            }
            let summary = format!("{predicate} {name}: {outcome}{reason}");
            (image, outcome == "success", summary)
        }
        _ => {
            let purl = if predicate == "build.finished" {
                content["artifactId"].as_str()
            } else {
                event["subject"]["id"].as_str()
            };
            let image = match (purl, custom_image) {
                (Some(p), _) => purl_digest(p).ok_or_else(|| {
                    format!("{predicate}: {p:?} is not an OCI image purl with its sha256 digest")
                })?,
                (None, Some(custom)) => custom?,
                (None, None) => {
                    return Err(format!(
                        "{predicate} names no artifact: eddo matches it to a build by its image digest"
                    ));
                }
            };
            (Some(image), true, predicate.to_string())
        }
    };
    Ok(Reading {
        predicate,
        id: text(&event["context"]["id"]).unwrap_or_default(),
        source: text(&event["context"]["source"]).unwrap_or_default(),
        chain_id: text(&event["context"]["chainId"]),
        image,
        commit,
        passed,
        summary,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const DIGEST: &str = "0b31b1c02ff458ad9b7b81cbdf8f028bd54699fa151f221d1e8de6817db93427";

    #[test]
    fn types_are_named_with_their_versions_or_refused_saying_what_is_taken() {
        assert_eq!(
            consumed_type("dev.cdevents.testsuiterun.finished.0.3.0"),
            Ok("testsuiterun.finished")
        );
        assert_eq!(
            consumed_type("dev.cdevents.build.finished.0.1.1"),
            Ok("build.finished")
        );
        let err = consumed_type("dev.cdevents.testsuiterun.finished.0.4.0").unwrap_err();
        assert!(
            err.contains("testsuiterun.finished (0.1.0, 0.2.0, 0.3.0)"),
            "{err}"
        );
        assert!(consumed_type("dev.cdevents.pipelinerun.finished.0.2.0").is_err());
        assert_eq!(
            policy_type("dev.cdevents.artifact.signed"),
            Ok("artifact.signed")
        );
        assert!(policy_type("dev.cdevents.artifact.signed.0.3.0").is_err());
        assert!(policy_type("testsuiterun.finished").is_err());
    }

    #[test]
    fn purls_give_their_image_digest_encoded_or_not() {
        let want = ImageDigest::parse(format!("sha256:{DIGEST}")).unwrap();
        for purl in [
            format!("pkg:oci/myapp@sha256%3A{DIGEST}"),
            format!("pkg:oci/myapp@sha256:{DIGEST}?repository_url=ghcr.io/acme"),
        ] {
            assert_eq!(purl_digest(&purl), Some(want.clone()), "{purl}");
        }
        assert_eq!(
            purl_digest("pkg:golang/mygit.com/myorg/myapp@234fd47e07d1004f0aed9c"),
            None
        );
        assert_eq!(purl_digest("myapp@sha256:abc"), None);
    }

    #[test]
    fn a_test_run_names_what_it_tested() {
        let run = |custom: serde_json::Value| {
            read(&json!({
                "context": {"type": "dev.cdevents.testsuiterun.finished.0.3.0", "id": "1", "source": "/tekton"},
                "subject": {"id": "run-1", "content": {"outcome": "failure", "reason": "3 failed",
                    "environment": {"id": "ci"}, "testSuite": {"id": "s", "name": "contract"}}},
                "customData": custom,
            }))
        };
        let r = run(json!({"commit": "6113728f27ae82c7b1a177c8d03f9e96e0adf246"})).unwrap();
        assert!(!r.passed);
        assert_eq!(
            r.summary,
            "testsuiterun.finished contract: failure: 3 failed"
        );
        assert!(r.image.is_none() && r.commit.is_some());
        let err = run(json!(null)).unwrap_err();
        assert!(err.contains("customData.artifactId"), "{err}");
        assert!(run(json!({"commit": "abc"})).is_err());
    }
}

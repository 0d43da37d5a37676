//! The short soak: the gate's flows under injected faults (throttling, server errors, answers
//! lost after the request applied, invocations killed mid-flight, duplicate and reordered
//! deliveries), with a fixed seed so a failure replays with `eddo-local soak --seed 7`. Every
//! invariant a user relies on holds for every candidate. The long soak is part of `make bench`.

use eddo_local::soak::{SoakOptions, run};

#[tokio::test(flavor = "multi_thread")]
async fn the_gate_keeps_its_promises_under_injected_faults() {
    let report = run(SoakOptions {
        seed: 7,
        flows: 24,
        fault_rate: 0.1,
        kill_rate: 0.1,
    })
    .await
    .expect("the soak runs");
    println!("{}", report.table());
    assert!(report.violations.is_empty(), "{}", report.table());
    let injected: usize = report.faults.values().sum();
    assert!(injected > 20, "faults were injected: {:?}", report.faults);
    for kind in [
        "throttled",
        "answer lost after the request was applied",
        "invocation killed mid-flight",
        "duplicate delivery",
    ] {
        assert!(
            report.faults.contains_key(kind),
            "{kind}: {:?}",
            report.faults
        );
    }
}

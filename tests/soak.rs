//! The short soak: the gate's, alarm-rollback's and tenant-onboarding's flows under injected
//! faults (throttling, server errors, answers lost after the request applied, PutEvents' applied
//! entries answered failed, invocations killed mid-flight and right after each protocol boundary,
//! duplicate, concurrent and reordered deliveries, CodeBuild's token window closing on the soak's
//! clock, policy edits mid-flow, tenant requests redelivered after their terminal state), with a
//! fixed seed so a failure replays with
//! `eddo-local soak --seed 7 --flows 16`. Every invariant a user relies on holds for every
//! candidate, alarm and tenant. The long soak is part of `make bench`.

use eddo_local::soak::{SoakOptions, run};

/// The soak's invocations run on the thread that drives it, two at once at times: in a debug
/// build their futures are deep, so it gets a stack of its own, twice a main thread's.
const SOAK_STACK: usize = 16 << 20;

#[test]
fn every_function_keeps_its_promises_under_injected_faults() {
    let soak = || {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .expect("a runtime")
            .block_on(run(SoakOptions {
                seed: 7,
                flows: 16,
                fault_rate: 0.1,
                kill_rate: 0.1,
            }))
    };
    let report = std::thread::Builder::new()
        .stack_size(SOAK_STACK)
        .spawn(soak)
        .expect("the soak's thread")
        .join()
        .expect("the soak's thread ends")
        .expect("the soak runs");
    println!("{}", report.table());
    assert!(report.violations().is_empty(), "{}", report.table());
    assert!(
        report.faults.keys().any(|k| k.starts_with("killed after")),
        "an invocation killed right after a protocol boundary: {:?}",
        report.faults
    );
    let played: Vec<&str> = report.played.iter().map(|p| p.function).collect();
    assert_eq!(played, ["scan-gate", "alarm-rollback", "tenant-onboarding"]);
    let injected: usize = report.faults.values().sum();
    assert!(injected > 20, "faults were injected: {:?}", report.faults);
    for kind in [
        "throttled",
        "answer lost after the request was applied",
        "invocation killed mid-flight",
        "duplicate delivery",
        "concurrent duplicate delivery",
        "policy edited mid-flow",
        "request redelivered after a terminal state",
    ] {
        assert!(
            report.faults.contains_key(kind),
            "{kind}: {:?}",
            report.faults
        );
    }
}

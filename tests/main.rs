//! eddo's end-to-end tests: whole flows against the local stack (moto on loopback and the
//! CodeBuild stand-in), one test binary. `harness` starts a stack under a prefix and reads back
//! what reached the bus and CodeBuild; what the tests send comes from `eddo_local::fixtures`.

/// A clock a test moves, for a function's `with_clock`: `test_clock!(FAST, fast)` makes the
/// static `FAST` (epoch seconds) and `fn fast() -> u64` reading it.
macro_rules! test_clock {
    ($time:ident, $read:ident) => {
        static $time: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

        fn $read() -> u64 {
            $time.load(std::sync::atomic::Ordering::SeqCst)
        }
    };
}

mod harness;

mod alerts;
mod bench_runner;
mod build_on_push;
mod bus_policy;
mod cdevents;
mod cdevents_out;
mod cdk;
mod checks;
mod codebuild;
mod demo;
mod dispatch;
mod evidence;
mod gate;
mod gate_findings;
mod gate_recovery;
mod iam;
mod instances;
mod known_bad;
mod metrics;
mod once;
mod policy_live;
mod quotas;
mod recovery;
mod rollback;
mod routing;
mod rules;
mod runtime;
mod sbt;
mod soak;
mod state_and_bus;
mod statuses;
mod tenants;
mod trust;
mod webhook_flow;

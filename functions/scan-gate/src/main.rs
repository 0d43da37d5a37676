//! Wiring only: tracing, config, SDK clients and the policy's cache once, then the runtime loop.

// The runtime loop around the handler carries its future's type: every SDK call in it nests,
// past rustc's default depth of 128.
#![recursion_limit = "256"]

use eddo::config::{Env, exit_on_error};
use eddo::event::Source;
use eddo::policy::live::{Live, Policies};
use eddo_scan_gate::{Config, Gate};
use lambda_runtime::{Diagnostic, LambdaEvent, service_fn};
use serde_json::Value;

fn main() -> Result<(), lambda_runtime::Error> {
    eddo::aws::start(run())
}

async fn run() -> Result<(), lambda_runtime::Error> {
    eddo::telemetry::init();
    let env = Env::from_process();
    let config = exit_on_error(Config::from_env(&env));
    let sdk = eddo::aws::load().await;
    // Their key and token are read at the first check run or status, not here.
    let clock = eddo::idempotency::now_epoch;
    let github = exit_on_error(eddo::github::App::from_env(&env, &sdk, clock));
    let gitlab = exit_on_error(eddo::gitlab::GitLab::from_env(&env, &sdk, clock));
    // The policy is read at the first event and again once per TTL.
    let policy = Live::from_config(&config, &sdk, Source::Gate, "scan-gate");
    let gate = Gate::new(&config, Policies::live(policy), &sdk)
        .with_github(github)
        .with_gitlab(gitlab);
    let gate = &gate;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        // Every lease taken lasts as long as this invocation can still act.
        eddo::outbox::within(event.context.deadline, gate.handle(&event.payload))
            .await
            .map_err(Diagnostic::from)
    }))
    .await
}

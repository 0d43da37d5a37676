//! Wiring only: tracing, config and policy, SDK clients once, then the runtime loop.

use eddo::config::{Env, exit_on_error};
use eddo_scan_gate::{Config, Gate};
use lambda_runtime::{Diagnostic, LambdaEvent, service_fn};
use serde_json::Value;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    eddo::telemetry::init();
    let config = exit_on_error(Config::from_env(&Env::from_process()));
    let sdk = eddo::aws::load().await;
    // A bad policy stops the function at init with the message that names the mistake.
    let policy = eddo::policy::load_at_init(&sdk, &config.policy_parameter).await;
    eddo::projects::report_not_startable(
        &eddo::projects::PolicyProjects::of(&policy).deploy,
        config.startable_projects.as_deref(),
        "DeployProjectNames",
    );
    eddo::projects::report_unrouted_sources(&policy, config.signal_sources.as_deref());
    let gate = Gate::new(&config, policy, &sdk);
    let gate = &gate;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        gate.handle(&event.payload).await.map_err(Diagnostic::from)
    }))
    .await
}

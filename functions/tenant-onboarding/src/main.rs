//! Wiring only: tracing, config and policy, SDK clients once, then the runtime loop.

use eddo::config::{Env, exit_on_error};
use eddo_tenant_onboarding::{Config, Sbt, Tenants};
use lambda_runtime::{Diagnostic, LambdaEvent, service_fn};
use serde_json::Value;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    eddo::telemetry::init();
    let env = Env::from_process();
    let config = exit_on_error(Config::from_env(&env));
    let sbt = exit_on_error(Sbt::from_env(&env));
    let sdk = eddo::aws::load().await;
    // A bad policy stops the function at init with the message that names the mistake.
    let policy = eddo::policy::load_at_init(&sdk, &config.policy_parameter).await;
    eddo::projects::report_not_startable(
        &eddo::projects::PolicyProjects::of(&policy).tenant,
        config.startable_projects.as_deref(),
        "TenantProjectNames",
    );
    let tenants = Tenants::new(&config, policy, &sdk).with_sbt(sbt);
    let tenants = &tenants;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        tenants
            .handle(&event.payload)
            .await
            .map_err(Diagnostic::from)
    }))
    .await
}

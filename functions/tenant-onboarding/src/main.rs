//! Wiring only: tracing, config, SDK clients and the policy's cache once, then the runtime loop.

// The runtime loop around the handler carries its future's type: every SDK call in it (CodeBuild,
// DynamoDB, EventBridge, SSM, S3, Secrets Manager) nests, past rustc's default depth of 128.
#![recursion_limit = "256"]

use eddo::config::{Env, exit_on_error};
use eddo::event::Source;
use eddo::policy::live::{Live, Policies};
use eddo_tenant_onboarding::{Config, RequestSources, Sbt, Tenants};
use lambda_runtime::{Diagnostic, LambdaEvent, service_fn};
use serde_json::Value;

fn main() -> Result<(), lambda_runtime::Error> {
    eddo::aws::start(run())
}

async fn run() -> Result<(), lambda_runtime::Error> {
    eddo::telemetry::init();
    let env = Env::from_process();
    let config = exit_on_error(Config::from_env(&env));
    let sbt = exit_on_error(Sbt::from_env(&env));
    let sdk = eddo::aws::load().await;
    // The policy is read at the first event and again once per TTL.
    let policy = Live::from_config(&config, &sdk, Source::Tenants, "tenant-onboarding");
    let tenants = Tenants::new(&config, Policies::live(policy), &sdk)
        .with_sbt(sbt)
        .with_request_sources(RequestSources::from_env(&env));
    let tenants = &tenants;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        // Every lease taken lasts as long as this invocation can still act.
        eddo::outbox::within(event.context.deadline, tenants.handle(&event.payload))
            .await
            .map_err(Diagnostic::from)
    }))
    .await
}

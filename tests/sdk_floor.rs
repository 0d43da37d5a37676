//! The SDK's floor: what every eddo function does at init before anything of its own (the
//! runtime and CA bundle of `eddo::aws::start`, the JSON log subscriber, the SDK configuration of
//! `eddo::aws::load` and one client), then each event answered with what it was, no AWS call.
//! The bench runner's cold starts set each function beside it and beside the bare
//! `fixture-function`: what init costs over the bare function is the SDK's up to this floor, and
//! eddo's own above it.

use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::Value;

fn main() -> Result<(), Error> {
    eddo::aws::start(run())
}

async fn run() -> Result<(), Error> {
    eddo::telemetry::init();
    let sdk = eddo::aws::load().await;
    // Built, as each function builds its clients at init, and kept for the process's life.
    let _dynamodb = aws_sdk_dynamodb::Client::new(&sdk);
    lambda_runtime::run(service_fn(|event: LambdaEvent<Value>| async move {
        Ok::<_, Error>(event.payload)
    }))
    .await
}

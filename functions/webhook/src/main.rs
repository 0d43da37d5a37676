//! Wiring only: tracing, config, SDK clients once, then the runtime loop.

use aws_lambda_events::event::lambda_function_urls::LambdaFunctionUrlRequest;
use eddo::config::{Env, exit_on_error};
use eddo_webhook::{Config, Webhook};
use lambda_runtime::{LambdaEvent, service_fn};

fn main() -> Result<(), lambda_runtime::Error> {
    eddo::aws::start(run())
}

async fn run() -> Result<(), lambda_runtime::Error> {
    eddo::telemetry::init();
    let config = exit_on_error(Config::from_env(&Env::from_process()));
    let sdk = eddo::aws::load().await;
    let webhook = Webhook::new(config, &sdk);
    let webhook = &webhook;
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<LambdaFunctionUrlRequest>| async move {
            let deadline = eddo::config::deadline(event.context.deadline());
            let handled = eddo::outbox::within(
                event.context.deadline,
                webhook.handle_until(event.payload, deadline),
            );
            Ok::<_, std::convert::Infallible>(handled.await)
        },
    ))
    .await
}

//! A Lambda function that misbehaves on request, so the tests can see how the local runtime
//! reports what Lambda would: `{"do": "echo" | "panic" | "error" | "exit" | "sleep"}`, at the top
//! or in an EventBridge event's `detail`. With
//! `FIXTURE_FAIL_INIT` set it fails at init, as a function with a bad setting does.

use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::{Value, json};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    if std::env::var_os("FIXTURE_FAIL_INIT").is_some() {
        eprintln!("fixture: FIXTURE_FAIL_INIT is set");
        std::process::exit(1);
    }
    lambda_runtime::run(service_fn(|event: LambdaEvent<Value>| async move {
        let ask = event.payload["do"]
            .as_str()
            .or(event.payload["detail"]["do"].as_str());
        match ask {
            Some("panic") => panic!("fixture asked to panic"),
            Some("error") => Err(Error::from("fixture asked to fail")),
            Some("exit") => std::process::exit(3),
            Some("sleep") => {
                tokio::time::sleep(std::time::Duration::from_secs(30)).await;
                Ok(json!({}))
            }
            _ => Ok(json!({"echo": event.payload, "request_id": event.context.request_id})),
        }
    }))
    .await
}

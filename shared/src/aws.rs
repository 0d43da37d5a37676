//! The SDK configuration every function builds once at init.

use std::time::Duration;

use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, SdkConfig};

/// Loads region and credentials from the Lambda environment. Timeouts are bounded so a slow AWS
/// call fails (and is retried) well inside a webhook sender's 10 s window and the function's own
/// timeout. `AWS_ENDPOINT_URL` (set by the local stack) points every client at an emulator.
pub async fn load() -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(1))
                .operation_attempt_timeout(Duration::from_secs(2))
                .operation_timeout(Duration::from_secs(5))
                .build(),
        )
        .load()
        .await
}

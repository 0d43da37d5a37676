//! eddo on one machine, without an AWS account: moto server on loopback, the resources eddo
//! needs, and the scripted demo the README's run command plays.

pub mod cdk;
pub mod cloudwatch;
pub mod codebuild;
pub mod demo;
pub mod dispatch;
pub mod ecr;
pub mod faults;
pub mod fixtures;
pub mod github;
pub mod gitlab;
pub mod iam;
pub mod loopback;
pub mod measure;
pub mod meter;
pub mod moto;
pub mod pattern;
pub mod quotas;
pub mod routing;
pub mod runtime;
pub mod scale;
pub mod send;
pub mod sink;
pub mod soak;
pub mod stack;
pub mod template;
pub mod timeline;
pub mod url;

#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    #[error("setup: {0}")]
    Setup(String),
    #[error("AWS emulator: {0}")]
    Aws(String),
    /// An AWS quota the deployment breaks ([`quotas`]): AWS would refuse it.
    #[error("over an AWS quota: {0}")]
    Quota(String),
}

/// An AWS SDK failure against the emulator, with the whole error chain.
pub(crate) fn aws<E: std::error::Error + 'static>(operation: &str, e: E) -> LocalError {
    LocalError::Aws(format!(
        "{operation}: {}",
        aws_sdk_sqs::error::DisplayErrorContext(&e)
    ))
}

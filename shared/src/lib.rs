//! `eddo`: what every eddo function needs and nothing more.
//!
//! - [`event`]: the envelope on every eddo event and the catalog of detail types;
//! - [`git`]: the provider-independent detail of Git events;
//! - [`publish`]: PutEvents that loses no entry;
//! - [`history`]: what is live for a service, what was last known good, and the rollback hold;
//! - [`outbox`]: decide once, act once, say it once: the lease and the events a record owes;
//! - [`idempotency`]: exactly-once side effects over at-least-once delivery;
//! - [`names`], [`policy`], [`time`]: parsed names, the policy document, calendar days;
//! - [`projects`]: the CodeBuild projects a policy names, per template parameter;
//! - `codebuild` (feature): starting builds and reading their state changes;
//! - `forges` (feature): where developers look: a GitHub App's check runs (its JWT,
//!   installation tokens) and GitLab's commit statuses, over one HTTPS client ([`forge`]);
//! - [`config`], [`telemetry`], [`error`], [`aws`], [`report`]: init, logs, failures, SDK
//!   clients, what an invocation did.
//!
//! Without the `aws` feature (on by default) the crate is the policy alone: its parser, every
//! mistake located, and what it implies ([`projects`]), for the checker that runs where no AWS
//! SDK does (the CDK construct's, compiled to WebAssembly).

#[cfg(feature = "aws")]
pub mod aws;
pub mod cdevents;
#[cfg(feature = "codebuild")]
pub mod codebuild;
#[cfg(feature = "aws")]
pub mod config;
#[cfg(any(test, feature = "corpus"))]
pub mod corpus;
#[cfg(feature = "aws")]
pub mod dynamo;
#[cfg(feature = "aws")]
pub mod error;
pub mod event;
#[cfg(feature = "forges")]
pub mod forge;
pub mod git;
#[cfg(feature = "forges")]
pub mod github;
#[cfg(feature = "forges")]
pub mod gitlab;
#[cfg(feature = "aws")]
pub mod history;
#[cfg(feature = "aws")]
pub mod idempotency;
#[cfg(feature = "aws")]
pub mod metrics;
pub mod names;
#[cfg(feature = "aws")]
pub mod outbox;
pub mod policy;
pub mod projects;
#[cfg(feature = "aws")]
pub mod publish;
#[cfg(feature = "aws")]
pub mod report;
#[cfg(feature = "aws")]
pub mod telemetry;
pub mod time;

#[cfg(feature = "aws")]
pub use error::{Error, Retry};
pub use event::{DetailType, Envelope, Metadata, Source};
#[cfg(feature = "aws")]
pub use report::Report;

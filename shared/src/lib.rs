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
//! - [`config`], [`telemetry`], [`error`], [`aws`], [`report`]: init, logs, failures, SDK
//!   clients, what an invocation did.

pub mod aws;
#[cfg(feature = "codebuild")]
pub mod codebuild;
pub mod config;
#[cfg(any(test, feature = "corpus"))]
pub mod corpus;
pub mod dynamo;
pub mod error;
pub mod event;
pub mod git;
pub mod history;
pub mod idempotency;
pub mod names;
pub mod outbox;
pub mod policy;
pub mod projects;
pub mod publish;
pub mod report;
pub mod telemetry;
pub mod time;

pub use error::{Error, Retry};
pub use event::{DetailType, Envelope, Metadata, Source};
pub use report::Report;

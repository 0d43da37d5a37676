//! What one invocation of an event-driven function did: returned to the runtime (and so in the
//! function's log and in a synchronous caller's answer) and asserted on by tests.

use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    /// What was done or why nothing was, in a line.
    pub outcome: String,
    /// The detail-types published, in order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub published: Vec<String>,
}

impl Report {
    /// Nothing published.
    pub fn quiet(outcome: impl Into<String>) -> Report {
        Report {
            outcome: outcome.into(),
            published: vec![],
        }
    }
}

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
    /// This report, after `earlier`: what the same invocation said on the way to it (a start it
    /// found owed or unrecorded) comes first in `published`.
    pub fn after(mut self, mut earlier: Vec<String>) -> Report {
        earlier.append(&mut self.published);
        self.published = earlier;
        self
    }

    /// Nothing published.
    pub fn quiet(outcome: impl Into<String>) -> Report {
        Report {
            outcome: outcome.into(),
            published: vec![],
        }
    }
}

/// Ends an invocation. A failure the event causes ([`crate::Error::is_event_fault`]) is logged
/// once and reported by `report` (a rejection event with the reason), and the invocation
/// succeeds: Lambda retrying it would fail the same way for a day, then dead-letter it. Anything
/// else passes through: `Err` for what a retry can fix or an operator must.
pub async fn settle<F, Fut>(
    result: Result<Report, crate::Error>,
    report: F,
) -> Result<Report, crate::Error>
where
    F: FnOnce(String) -> Fut,
    Fut: Future<Output = Result<Report, crate::Error>>,
{
    match result {
        Err(e) if e.is_event_fault() => {
            let why = clip(&e.to_string(), MAX_REASON_BYTES).into_owned();
            tracing::error!(kind = e.kind(), reason = %why, "the event cannot be handled: reported, not retried");
            report(why).await
        }
        other => other,
    }
}

/// The longest reason a report or a rejection quotes: enough for every mistake eddo names, short
/// of what an event could make it carry.
pub const MAX_REASON_BYTES: usize = 2048;

/// `text` cut to `max` bytes (on a character boundary), saying how much was cut.
pub fn clip(text: &str, max: usize) -> std::borrow::Cow<'_, str> {
    if text.len() <= max {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut at = max;
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    std::borrow::Cow::Owned(format!("{}… (cut: {} bytes)", &text[..at], text.len() - at))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_reason_is_clipped_and_says_so() {
        assert_eq!(clip("short", 10), "short");
        let long = "é".repeat(100);
        let c = clip(&long, 11);
        assert!(c.starts_with("ééééé…"), "{c}");
        assert!(c.ends_with("(cut: 190 bytes)"), "{c}");
    }
}

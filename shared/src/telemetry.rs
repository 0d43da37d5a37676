//! Logs as one JSON object per line, carrying the Lambda request id (from the runtime's span) and
//! eddo's correlation id (from [`correlation_span`]).
//!
//! Values are JSON-escaped, so a branch name or commit message full of newlines and ANSI escapes
//! stays inside its own line and cannot forge another. Secrets and raw payloads are never logged:
//! handlers log ids, names and decisions only.

use std::io;

use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::fmt::MakeWriter;

/// Installs the JSON subscriber for the process. The level comes from `AWS_LAMBDA_LOG_LEVEL`
/// (set by Lambda's advanced logging controls) or `RUST_LOG` (a plain level: no per-module
/// directives, which would link a regex engine into every function), INFO by default.
pub fn init() {
    let _ = tracing::subscriber::set_global_default(subscriber(io::stdout));
}

/// The subscriber `init` installs, writing to `writer` (tests capture it).
pub fn subscriber<W>(writer: W) -> impl tracing::Subscriber + Send + Sync
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    let level = std::env::var("AWS_LAMBDA_LOG_LEVEL")
        .or_else(|_| std::env::var("RUST_LOG"))
        .ok()
        // Lambda's levels include FATAL, which tracing calls ERROR.
        .map(|l| {
            if l.eq_ignore_ascii_case("fatal") {
                "error".to_string()
            } else {
                l
            }
        })
        .and_then(|l| l.parse::<LevelFilter>().ok())
        .unwrap_or(LevelFilter::INFO);
    tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_current_span(false)
        .with_span_list(true)
        .with_target(false)
        .without_time()
        .with_max_level(level)
        .with_writer(writer)
        .finish()
}

/// The span every handler runs its work in, so each line names the change it belongs to.
pub fn correlation_span(correlation_id: &str) -> tracing::Span {
    tracing::info_span!("eddo", correlationId = %correlation_id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Capture(Arc<Mutex<Vec<u8>>>);

    impl io::Write for Capture {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Capture {
        type Writer = Capture;
        fn make_writer(&'a self) -> Capture {
            self.clone()
        }
    }

    #[test]
    fn hostile_values_stay_on_one_line_with_request_and_correlation_ids() {
        let out = Capture::default();
        let branch =
            "main\n{\"level\":\"ERROR\",\"message\":\"forged\"}\r\n\u{1b}[31mred\u{1b}[0m\u{7}";
        tracing::subscriber::with_default(subscriber(out.clone()), || {
            let lambda = tracing::info_span!("Lambda runtime invoke", requestId = "req-123");
            let _l = lambda.enter();
            let _c = correlation_span("delivery-9").entered();
            tracing::info!(branch, "accepted push");
        });
        let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 1, "{text}");
        assert!(
            !text.contains('\u{1b}') && !text.contains('\r'),
            "raw control characters leaked: {text:?}"
        );
        let v: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
        assert_eq!(v["branch"], branch);
        assert_eq!(v["message"], "accepted push");
        assert_eq!(v["level"], "INFO");
        assert_eq!(v["spans"][0]["requestId"], "req-123");
        assert_eq!(v["spans"][1]["correlationId"], "delivery-9");
    }
}

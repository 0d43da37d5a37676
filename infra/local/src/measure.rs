//! Cold start and memory of a function's real binary on the local runtime endpoint: process
//! start to the first `next` request (Lambda's init) and to the first response, over several
//! fresh environments, then resident memory after warm invocations.

use std::sync::Arc;

use crate::LocalError;
use crate::demo::{corpus, github_delivery};
use crate::moto::Moto;
use crate::runtime::LocalFunction;
use crate::stack::{LOCAL_GITHUB_SECRET, Stack};

pub struct Figures {
    pub name: String,
    pub binary: String,
    pub init_ms: Vec<f64>,
    pub first_response_ms: Vec<f64>,
    pub warm_invocations: usize,
    pub rss_after_first_kib: u64,
    pub rss_after_warm_kib: u64,
}

fn stats(v: &[f64]) -> String {
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    format!(
        "min {:.1} / median {:.1} / max {:.1} ms",
        s[0],
        s[s.len() / 2],
        s[s.len() - 1]
    )
}

impl std::fmt::Display for Figures {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "{} ({}), {} cold starts:",
            self.name,
            self.binary,
            self.init_ms.len()
        )?;
        writeln!(
            f,
            "  process start -> first next:     {}",
            stats(&self.init_ms)
        )?;
        writeln!(
            f,
            "  process start -> first response: {}",
            stats(&self.first_response_ms)
        )?;
        writeln!(
            f,
            "  resident memory after the first invocation: {} KiB",
            self.rss_after_first_kib
        )?;
        write!(
            f,
            "  resident memory after {} warm invocations: {} KiB",
            self.warm_invocations, self.rss_after_warm_kib
        )
    }
}

/// Measures the webhook: `cold` fresh environments, each answering a signed push, then `warm`
/// more deliveries to one environment.
pub async fn webhook(cold: usize, warm: usize) -> Result<Figures, LocalError> {
    let body = std::fs::read_to_string(corpus().join("github/push/with-new-branch.payload.json"))
        .map_err(|e| LocalError::Setup(e.to_string()))?;
    function("webhook", cold, warm, |n| {
        serde_json::to_value(github_delivery(
            LOCAL_GITHUB_SECRET,
            "push",
            &format!("measure-{n}"),
            &body,
        ))
        .unwrap_or_default()
    })
    .await
}

/// Measures the scan gate: each invocation a build signal of a new commit (the corpus sample,
/// naming the example policy's build project): one DynamoDB write, the common path.
pub async fn scan_gate(cold: usize, warm: usize) -> Result<Figures, LocalError> {
    let text = std::fs::read_to_string(corpus().join("aws/codebuild-build-state-change.json"))
        .map_err(|e| LocalError::Setup(e.to_string()))?;
    let sample: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| LocalError::Setup(e.to_string()))?;
    function("scan-gate", cold, warm, move |n| {
        let mut e = sample.clone();
        e["detail"]["project-name"] = "eddo-sast".into();
        e["detail"]["additional-information"]["source-version"] = format!("{n:040x}").into();
        e
    })
    .await
}

/// Measures the template's function built from `binary`, invoked with `event(n)`.
pub async fn function(
    binary: &str,
    cold: usize,
    warm: usize,
    event: impl Fn(usize) -> serde_json::Value,
) -> Result<Figures, LocalError> {
    let moto = Moto::start()?;
    let stack = Stack::provision(&moto.sdk_config().await, "measure").await?;
    let spec = stack.spec(binary, &moto.endpoint())?;
    let path = spec.binary.clone();
    let function = Arc::new(LocalFunction::new(spec).await?);
    let (mut init_ms, mut first_response_ms) = (Vec::new(), Vec::new());
    let mut rss_after_first_kib = 0;
    for n in 0..cold.max(1) {
        function.stop().await;
        let out = function.invoke(&event(n)).await?;
        if out.outcome.json().is_none() {
            return Err(LocalError::Setup(format!(
                "{binary} did not answer: {}",
                out.outcome.summary()
            )));
        }
        let c = function
            .cold_start()
            .ok_or_else(|| LocalError::Setup("no cold-start timings".into()))?;
        init_ms.push(c.to_first_next.as_secs_f64() * 1000.0);
        first_response_ms.push(c.to_first_response.unwrap_or_default().as_secs_f64() * 1000.0);
        rss_after_first_kib = function.rss_kib().await.unwrap_or_default();
    }
    for n in 0..warm {
        function.invoke(&event(cold + n)).await?;
    }
    let rss_after_warm_kib = function.rss_kib().await.unwrap_or_default();
    function.stop().await;
    Ok(Figures {
        name: binary.to_string(),
        binary: path.display().to_string(),
        init_ms,
        first_response_ms,
        warm_invocations: warm,
        rss_after_first_kib,
        rss_after_warm_kib,
    })
}

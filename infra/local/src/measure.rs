//! The bench runner: each function's real binary on the local runtime endpoint, against moto on
//! loopback through a timing relay, invoked with corpus events.
//!
//! Per function:
//! - cold start, over `cold` fresh environments: process start to the first `GET next`
//!   (Lambda's init) and to the first response;
//! - warm invocations, `rounds` rounds of `per_round` events to one environment: each
//!   invocation's duration (event handed over to answer), split into the time waiting on AWS
//!   calls (measured at the relay, overlapping calls counted once) and the rest: eddo's own
//!   time (the handler, the SDK's signing and parsing, the runtime client);
//! - resident memory after the first round (warm) and after the last;
//! - what that costs at 128 MB arm64, as Lambda bills it (each duration rounded up to 1 ms).

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;

use crate::LocalError;
use crate::codebuild::Plan;
use crate::demo::corpus;
use crate::fixtures::github_delivery;
use crate::meter::{Calls, Relay};
use crate::moto::Moto;
use crate::runtime::LocalFunction;
use crate::stack::{LOCAL_GITHUB_SECRET, Stack};

/// Lambda's arm64 price per GB-second and per request (us-east-1, first pricing tier), as
/// published on aws.amazon.com/lambda/pricing.
pub const PRICE_PER_GB_SECOND: f64 = 0.000_013_333_4;
pub const PRICE_PER_MILLION_REQUESTS: f64 = 0.20;
/// The memory the template gives each function.
pub const MEMORY_MB: f64 = 128.0;

/// How much to measure.
#[derive(Debug, Clone, Copy)]
pub struct Effort {
    /// Fresh environments, each answering one event.
    pub cold: usize,
    /// Rounds of warm invocations to one environment.
    pub rounds: usize,
    /// Invocations per round.
    pub per_round: usize,
    /// The same X-Ray trace header for every invocation (see
    /// [`LocalFunction::fixed_trace_id`]): memory without the runtime's per-trace growth.
    pub fixed_trace_id: bool,
}

impl Default for Effort {
    /// What `make bench` measures: 20 cold starts; 10 rounds of 1,000 warm invocations.
    fn default() -> Effort {
        Effort {
            cold: 20,
            rounds: 10,
            per_round: 1000,
            fixed_trace_id: false,
        }
    }
}

/// The functions the runner knows, in the template's order.
pub const FUNCTIONS: [&str; 4] = [
    "webhook",
    "scan-gate",
    "alarm-rollback",
    "tenant-onboarding",
];

/// One warm invocation.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    /// Event handed over to answer.
    pub total: Duration,
    /// Waiting on AWS calls.
    pub aws: Duration,
    pub calls: usize,
}

impl Sample {
    /// Everything but the AWS wait: eddo's own time.
    pub fn own(&self) -> Duration {
        self.total.saturating_sub(self.aws)
    }
}

pub struct Figures {
    pub name: String,
    /// The events it was invoked with.
    pub events: String,
    pub init_ms: Vec<f64>,
    /// The part of each init spent waiting on AWS calls, and how many it made.
    pub init_aws_ms: Vec<f64>,
    pub init_calls: usize,
    /// The AWS operations of the last warm invocation, in order.
    pub operations: Vec<String>,
    pub first_response_ms: Vec<f64>,
    /// Warm invocations, round by round.
    pub rounds: Vec<Vec<Sample>>,
    /// CPU time the environment used in each round (all threads, user and system).
    pub cpu_per_round: Vec<Duration>,
    /// Resident memory after each round (the first: warm; the last: after every invocation);
    /// growth shows as a rise that does not level off.
    pub rss_per_round_kib: Vec<u64>,
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// The `p`-th percentile (nearest rank) of `v`, sorted.
fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = (p / 100.0 * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn sorted(v: impl IntoIterator<Item = f64>) -> Vec<f64> {
    let mut v: Vec<f64> = v.into_iter().collect();
    v.sort_by(f64::total_cmp);
    v
}

/// `min / median / max` of `v`.
fn spread(v: &[f64], digits: usize) -> String {
    let s = sorted(v.iter().copied());
    format!(
        "{:.digits$} / {:.digits$} / {:.digits$}",
        s[0],
        percentile(&s, 50.0),
        s[s.len() - 1]
    )
}

impl Figures {
    fn warm(&self) -> impl Iterator<Item = &Sample> {
        self.rounds.iter().flatten()
    }

    pub fn invocations(&self) -> usize {
        self.warm().count()
    }

    /// The `p`-th percentile of `f` over every warm invocation, and its min / median / max
    /// over the rounds.
    pub fn percentile(&self, p: f64, f: impl Fn(&Sample) -> Duration) -> (f64, Vec<f64>) {
        let all = percentile(&sorted(self.warm().map(|s| ms(f(s)))), p);
        let per_round = self
            .rounds
            .iter()
            .map(|r| percentile(&sorted(r.iter().map(|s| ms(f(s)))), p))
            .collect();
        (all, per_round)
    }

    /// AWS calls per warm invocation, on average.
    pub fn calls_per_invocation(&self) -> f64 {
        self.warm().map(|s| s.calls).sum::<usize>() as f64 / self.invocations().max(1) as f64
    }

    /// GB-seconds per million invocations at 128 MB, billed as Lambda bills: each duration
    /// rounded up to the millisecond.
    pub fn gb_seconds_per_million(&self, f: impl Fn(&Sample) -> Duration) -> f64 {
        let billed_ms: f64 = self.warm().map(|s| ms(f(s)).ceil().max(1.0)).sum::<f64>()
            / self.invocations().max(1) as f64;
        billed_ms / 1000.0 * MEMORY_MB / 1024.0 * 1e6
    }

    /// A Markdown section with every figure.
    pub fn markdown(&self) -> String {
        let mut out = String::new();
        let init = sorted(self.init_ms.iter().copied());
        let _ = writeln!(
            out,
            "### {}\n\n{}\n\nAWS calls of a warm invocation: {}.\n",
            self.name,
            self.events,
            if self.operations.is_empty() {
                "none".to_string()
            } else {
                self.operations
                    .iter()
                    .map(|o| format!("`{}`", o.rsplit('.').next().unwrap_or(o)))
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        );
        let _ = writeln!(
            out,
            "| cold start ({} fresh environments) | min / median / max |\n|---|---|",
            self.init_ms.len()
        );
        let _ = writeln!(
            out,
            "| process start → first `GET next` (init) | {} ms |",
            spread(&self.init_ms, 1)
        );
        let _ = writeln!(
            out,
            "| of which waiting on AWS ({} calls at init) | {} ms |",
            self.init_calls,
            spread(&self.init_aws_ms, 1)
        );
        let _ = writeln!(
            out,
            "| process start → first response (init + first event) | {} ms |\n",
            spread(&self.first_response_ms, 1)
        );
        let _ = writeln!(
            out,
            "| warm, {} invocations in {} rounds ({:.1} AWS calls each) | p50 | p99 | p99 per round, min / median / max |\n|---|---|---|---|",
            self.invocations(),
            self.rounds.len(),
            self.calls_per_invocation()
        );
        for (what, f) in [
            (
                "eddo's own time (handler, SDK, runtime client)",
                Sample::own as fn(&Sample) -> Duration,
            ),
            ("waiting on AWS (moto through the relay)", |s: &Sample| {
                s.aws
            }),
            ("invocation duration", |s: &Sample| s.total),
        ] {
            let (p50, _) = self.percentile(50.0, f);
            let (p99, rounds) = self.percentile(99.0, f);
            let _ = writeln!(
                out,
                "| {what} | {p50:.3} ms | {p99:.3} ms | {} ms |",
                spread(&rounds, 3)
            );
        }
        let cpu: Vec<f64> = self
            .rounds
            .iter()
            .zip(&self.cpu_per_round)
            .map(|(r, cpu)| ms(*cpu) / r.len().max(1) as f64)
            .collect();
        let _ = writeln!(
            out,
            "| CPU time per invocation (the process's, each round's mean) | | | {} ms |",
            spread(&cpu, 3)
        );
        let _ = writeln!(
            out,
            "\n| resident memory (VmRSS) | after the first round | after {} invocations | after each round |\n|---|---|---|---|\n| | {:.1} MiB | {:.1} MiB | {} MiB |\n",
            self.invocations(),
            self.rss_per_round_kib.first().copied().unwrap_or_default() as f64 / 1024.0,
            self.rss_per_round_kib.last().copied().unwrap_or_default() as f64 / 1024.0,
            self.rss_per_round_kib
                .iter()
                .map(|k| format!("{:.1}", *k as f64 / 1024.0))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let measured = self.gb_seconds_per_million(|s| s.total);
        let own = self.gb_seconds_per_million(Sample::own);
        let init_gbs = percentile(&init, 50.0) / 1000.0 * MEMORY_MB / 1024.0;
        let _ = writeln!(
            out,
            "| per million events, 128 MB arm64 | GB-s | cost |\n|---|---|---|\n\
             | billed durations as measured here | {measured:.0} | ${:.4} + ${PRICE_PER_MILLION_REQUESTS:.2} requests |\n\
             | eddo's own time only (AWS answering instantly) | {own:.0} | ${:.4} + ${PRICE_PER_MILLION_REQUESTS:.2} requests |\n\
             | each cold start's init (billed for custom runtimes) | {init_gbs:.5} per cold start | |",
            measured * PRICE_PER_GB_SECOND,
            own * PRICE_PER_GB_SECOND,
        );
        out
    }
}

/// What one function is invoked with: a description for the report, a setup step and the n-th
/// event.
struct Workload {
    events: &'static str,
    /// Prepares the stack for `n` invocations.
    setup: fn(&Stack, usize),
    event: Box<dyn Fn(usize) -> Value + Send + Sync>,
}

/// A file's text, or a setup error naming it.
fn read(file: &std::path::Path) -> Result<String, LocalError> {
    std::fs::read_to_string(file).map_err(|e| LocalError::Setup(format!("{}: {e}", file.display())))
}

/// A JSON file, or a setup error naming it.
fn read_json(file: &std::path::Path) -> Result<Value, LocalError> {
    serde_json::from_str(&read(file)?)
        .map_err(|e| LocalError::Setup(format!("{}: {e}", file.display())))
}

fn workload(name: &str) -> Result<Workload, LocalError> {
    Ok(match name {
        "webhook" => {
            let mut payloads = Vec::new();
            for (event, file) in [
                ("push", "github/push/with-new-branch.payload.json"),
                ("pull_request", "github/pull_request/opened.payload.json"),
                ("check_run", "github/check_run/completed.payload.json"),
            ] {
                payloads.push((event, read(&corpus().join(file))?));
            }
            Workload {
                events: "GitHub deliveries from the corpus, signed, each a new delivery (its own id \
                         and a body made distinct by a leading field: GitHub signs the body, so a \
                         body seen before is a replay), in turn: a push (8.8 KB), a pull request \
                         opened, a check run completed. Each is recorded once (DynamoDB), \
                         published (EventBridge) and marked published.",
                setup: |_, _| {},
                event: Box::new(move |n| {
                    let (event, body) = &payloads[n % payloads.len()];
                    let body = body.replacen('{', &format!("{{\"eddo_bench\": {n}, "), 1);
                    serde_json::to_value(github_delivery(
                        LOCAL_GITHUB_SECRET,
                        event,
                        &format!("bench-{n}"),
                        &body,
                    ))
                    .unwrap_or_default()
                }),
            }
        }
        "scan-gate" => {
            let build = read_json(&corpus().join("aws/codebuild-build-state-change.json"))?;
            let scan = read_json(&corpus().join("aws/ecr-image-scan.json"))?;
            Workload {
                events: "In turn, the corpus `CodeBuild Build State Change` of the example policy's \
                         build project (reporting its image) and the corpus `ECR Image Scan` of its \
                         repository (within the thresholds), each for a new commit or image: the \
                         common path, one signal that does not yet complete a release (the build \
                         records its image; the scan looks up which commit built its image, and is \
                         kept on the image until a build reports it).",
                setup: |_, _| {},
                event: Box::new(move |n| {
                    if n % 2 == 0 {
                        let mut e = build.clone();
                        e["detail"]["project-name"] = "eddo-build".into();
                        e["detail"]["additional-information"]["source-version"] =
                            format!("{n:040x}").into();
                        e["detail"]["additional-information"]["exported-environment-variables"] = serde_json::json!([{"name": "IMAGE_DIGEST", "value": format!("sha256:{n:064x}")}]);
                        e
                    } else {
                        let mut e = scan.clone();
                        e["detail"]["repository-name"] = "hello-world".into();
                        e["detail"]["image-digest"] = format!("sha256:{n:064x}").into();
                        e["detail"]["image-tags"] = serde_json::json!([format!("{n:040x}")]);
                        e["detail"]["finding-severity-counts"] =
                            serde_json::json!({"HIGH": 1, "MEDIUM": 4, "LOW": 3});
                        e
                    }
                }),
            }
        }
        "alarm-rollback" => {
            let alarm = read_json(&corpus().join("aws/cloudwatch-alarm-state-change.json"))?;
            // Each state change a new one, a second after the last (a state change is known by
            // its second and state), starting early enough that none is in the future.
            let start = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default()
                .saturating_sub(Duration::from_secs(6 * 3600));
            Workload {
                events: "The corpus `CloudWatch Alarm State Change` into ALARM, for the example \
                         policy's `hello-world-5xx`, each a new state change; with nothing live to \
                         roll back to, each is judged, recorded and reported as `Rollback Skipped`.",
                setup: |_, _| {},
                event: Box::new(move |n| {
                    let at = start + Duration::from_secs(n as u64);
                    let stamp = format!(
                        "{}.{:03}+0000",
                        eddo::time::rfc3339(at.as_secs()).trim_end_matches('Z'),
                        at.subsec_millis()
                    );
                    let mut e = alarm.clone();
                    e["detail"]["alarmName"] = "hello-world-5xx".into();
                    e["detail"]["state"]["timestamp"] = stamp.into();
                    e["resources"] = serde_json::json!([
                        "arn:aws:cloudwatch:us-east-1:123456789012:alarm:hello-world-5xx"
                    ]);
                    e
                }),
            }
        }
        "tenant-onboarding" => {
            let request = read_json(
                &crate::moto::project_root()
                    .join("infra/examples/events/tenant-onboarding-requested.json"),
            )?;
            Workload {
                events: "eddo's `Tenant Onboarding Requested` example, each for a new tenant of \
                         the `basic` tier: registered, its provisioning build started (the \
                         CodeBuild stand-in), recorded and announced. The builds do not finish \
                         during the run.",
                // Builds outlast the run: no completions arrive to compete with the requests.
                setup: |stack, n| {
                    for _ in 0..n {
                        stack.codebuild.plan(
                            "eddo-tenant-provision",
                            Plan::succeed().lasting(Duration::from_secs(6 * 3600)),
                        );
                    }
                },
                event: Box::new(move |n| {
                    let mut e = request.clone();
                    e["id"] = format!("bench-{n}").into();
                    e["detail"]["tenant_id"] = format!("tenant-{n}").into();
                    e["detail"]["metadata"]["correlation_id"] = format!("bench-{n}").into();
                    e
                }),
            }
        }
        other => {
            return Err(LocalError::Setup(format!(
                "no workload for {other}; the functions are {}",
                FUNCTIONS.join(", ")
            )));
        }
    })
}

fn socket(endpoint: &str) -> Result<SocketAddr, LocalError> {
    endpoint
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .parse()
        .map_err(|e| LocalError::Setup(format!("endpoint {endpoint}: {e}")))
}

/// Measures the template's function built from `binary`.
pub async fn function(binary: &str, effort: Effort) -> Result<Figures, LocalError> {
    let workload = workload(binary)?;
    let moto = Moto::start()?;
    let stack = Stack::provision(&moto.sdk_config().await, "bench").await?;
    (workload.setup)(
        &stack,
        effort.cold.max(1) + effort.rounds * effort.per_round,
    );
    let calls = Calls::default();
    let aws = Relay::start(socket(&moto.endpoint())?, calls.clone()).await?;
    let codebuild = Relay::start(socket(&stack.codebuild.endpoint())?, calls.clone()).await?;
    let mut spec = stack.spec(binary, &aws.endpoint())?;
    for (k, v) in &mut spec.env {
        if k == "AWS_ENDPOINT_URL_CODEBUILD" {
            *v = codebuild.endpoint();
        }
    }
    let function = Arc::new(LocalFunction::new(spec).await?);
    function.fixed_trace_id(effort.fixed_trace_id);
    let answered = |out: &crate::runtime::Invocation| -> Result<(), LocalError> {
        match out.outcome {
            crate::runtime::Outcome::Response(_) => Ok(()),
            ref other => Err(LocalError::Setup(format!(
                "{binary} did not answer: {}",
                other.summary()
            ))),
        }
    };
    let mut n = 0;
    let (mut init_ms, mut first_response_ms) = (Vec::new(), Vec::new());
    let (mut init_aws_ms, mut init_calls) = (Vec::new(), 0);
    for _ in 0..effort.cold.max(1) {
        function.stop().await;
        let out = function.invoke(&(workload.event)(n)).await?;
        n += 1;
        answered(&out)?;
        let c = function
            .cold_start()
            .ok_or_else(|| LocalError::Setup("no cold-start timings".into()))?;
        init_ms.push(ms(c.to_first_next));
        first_response_ms.push(ms(c.to_first_response.unwrap_or_default()));
        let (init, _) = calls.take_split(c.first_next_at);
        init_aws_ms.push(ms(init.busy));
        init_calls = init.operations.len();
    }
    let mut rounds = Vec::new();
    let mut rss_per_round_kib = Vec::new();
    let mut cpu_per_round = Vec::new();
    let mut operations = Vec::new();
    for _ in 0..effort.rounds {
        let mut samples = Vec::with_capacity(effort.per_round);
        let cpu_before = function.cpu_time().await.unwrap_or_default();
        for _ in 0..effort.per_round {
            let out = function.invoke(&(workload.event)(n)).await?;
            n += 1;
            answered(&out)?;
            let waited = calls.take();
            samples.push(Sample {
                total: out.duration,
                aws: waited.busy,
                calls: waited.operations.len(),
            });
            operations = waited.operations;
        }
        rounds.push(samples);
        cpu_per_round.push(
            function
                .cpu_time()
                .await
                .unwrap_or_default()
                .saturating_sub(cpu_before),
        );
        rss_per_round_kib.push(function.rss_kib().await.unwrap_or_default());
    }
    function.stop().await;
    Ok(Figures {
        name: binary.to_string(),
        events: workload.events.to_string(),
        init_ms,
        init_aws_ms,
        init_calls,
        operations,
        first_response_ms,
        rounds,
        cpu_per_round,
        rss_per_round_kib,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let v = sorted((1..=100).map(f64::from));
        assert_eq!(percentile(&v, 50.0), 50.0);
        assert_eq!(percentile(&v, 99.0), 99.0);
        assert_eq!(percentile(&v, 100.0), 100.0);
        assert_eq!(percentile(&[7.0], 99.0), 7.0);
    }

    #[test]
    fn billed_as_lambda_bills_rounding_each_invocation_up() {
        let sample = |total_us: u64| Sample {
            total: Duration::from_micros(total_us),
            aws: Duration::ZERO,
            calls: 0,
        };
        let f = Figures {
            name: "f".into(),
            events: String::new(),
            init_ms: vec![10.0],
            init_aws_ms: vec![0.0],
            init_calls: 0,
            operations: vec![],
            first_response_ms: vec![20.0],
            rounds: vec![vec![sample(300), sample(1_200)]],
            cpu_per_round: vec![Duration::from_millis(10)],
            rss_per_round_kib: vec![0],
        };
        // 1 ms and 2 ms billed: 1.5 ms on average, at 0.125 GB, a million times.
        assert_eq!(f.gb_seconds_per_million(|s| s.total), 187.5);
    }
}

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
    /// After each of the function's cold starts, one of the bare `lambda_runtime` function (the
    /// echo fixture) and one of the SDK floor, under the same runtime endpoint: what its init
    /// and first response are compared with.
    pub baseline: bool,
}

impl Default for Effort {
    /// What `make bench` measures: 20 cold starts; 10 rounds of 1,000 warm invocations.
    fn default() -> Effort {
        Effort {
            cold: 20,
            rounds: 10,
            per_round: 1000,
            fixed_trace_id: false,
            baseline: true,
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

/// The bare function the others are compared with: `lambda_runtime` answering with what it was
/// given, nothing else (`tests/fixture_function.rs`).
pub const BASELINE: &str = "fixture-function";

/// What every function's init does before anything of eddo's own (`tests/sdk_floor.rs`): the
/// runtime, the log subscriber, the SDK configuration and one client.
pub const SDK_FLOOR: &str = "sdk-floor";

/// Cold starts, one sample each.
#[derive(Debug, Clone, Default)]
pub struct ColdStarts {
    /// Process start to the first `GET next`.
    pub init_ms: Vec<f64>,
    /// The part of each init spent waiting on AWS calls.
    pub init_aws_ms: Vec<f64>,
    /// Process start to the first response.
    pub first_response_ms: Vec<f64>,
    /// The part of each of those spent waiting on AWS calls (init's and the first event's).
    pub first_response_aws_ms: Vec<f64>,
}

impl ColdStarts {
    fn push(&mut self, c: &crate::runtime::ColdStart, init_aws: Duration, first_aws: Duration) {
        self.init_ms.push(ms(c.to_first_next));
        self.init_aws_ms.push(ms(init_aws));
        self.first_response_ms
            .push(ms(c.to_first_response.unwrap_or_default()));
        self.first_response_aws_ms.push(ms(first_aws));
    }

    /// Process start to the first response, less the AWS wait: what the function itself took.
    pub fn first_response_own_ms(&self) -> Vec<f64> {
        self.first_response_ms
            .iter()
            .zip(&self.first_response_aws_ms)
            .map(|(r, a)| r - a)
            .collect()
    }
}

/// The median of `v`.
pub fn median(v: &[f64]) -> f64 {
    percentile(&sorted(v.iter().copied()), 50.0)
}

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

    /// eddo's own time divided among the AWS calls it made (all of it when it made none): what
    /// one call costs the function besides AWS's answer.
    pub fn own_per_call(&self) -> Duration {
        self.own() / self.calls.max(1) as u32
    }
}

pub struct Figures {
    pub name: String,
    /// The events it was invoked with.
    pub events: String,
    pub cold: ColdStarts,
    /// The AWS calls made at init.
    pub init_calls: usize,
    /// The AWS operations from process start to the first response, in order.
    pub cold_operations: Vec<String>,
    /// The bare function's cold starts, each right after one of this function's.
    pub baseline: Option<ColdStarts>,
    /// The SDK floor's cold starts, each right after the bare function's.
    pub floor: Option<ColdStarts>,
    /// The AWS operations of the last warm invocation, in order.
    pub operations: Vec<String>,
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

    /// The cold-start table: this function beside the bare one, when it was measured.
    fn cold_table(&self) -> String {
        let mut out = String::new();
        let c = &self.cold;
        let bare = self.baseline.as_ref();
        let _ = writeln!(
            out,
            "| cold start ({} fresh environments{}) | min / median / max | bare `lambda_runtime` function | ratio of medians | SDK floor | ratio of medians |\n|---|---|---|---|---|---|",
            c.init_ms.len(),
            if bare.is_some() {
                ", each followed by one of the bare function's and one of the SDK floor's"
            } else {
                ""
            }
        );
        let floor = self.floor.as_ref();
        let row =
            |out: &mut String, what: &str, mine: &[f64], f: Option<fn(&ColdStarts) -> Vec<f64>>| {
                let _ = write!(out, "| {what} | {} ms |", spread(mine, 1));
                for other in [bare, floor] {
                    match (other, f) {
                        (Some(other), Some(f)) => {
                            let theirs = f(other);
                            let _ = write!(
                                out,
                                " {} ms | {:.2}x |",
                                spread(&theirs, 1),
                                median(mine) / median(&theirs)
                            );
                        }
                        _ => out.push_str(" | |"),
                    }
                }
                out.push('\n');
            };
        row(
            &mut out,
            "process start → first `GET next` (init)",
            &c.init_ms,
            Some(|c| c.init_ms.clone()),
        );
        row(
            &mut out,
            &format!(
                "of which waiting on AWS ({} calls at init)",
                self.init_calls
            ),
            &c.init_aws_ms,
            None,
        );
        row(
            &mut out,
            "process start → first response (init + first event)",
            &c.first_response_ms,
            Some(|c| c.first_response_ms.clone()),
        );
        row(
            &mut out,
            "of which waiting on AWS (init's calls and the first event's)",
            &c.first_response_aws_ms,
            None,
        );
        row(
            &mut out,
            "first response less the AWS wait",
            &c.first_response_own_ms(),
            Some(ColdStarts::first_response_own_ms),
        );
        out.push('\n');
        out
    }

    /// Median init and first response (less the AWS wait) over the bare function's, when it
    /// was measured.
    pub fn ratios(&self) -> Option<(f64, f64)> {
        let bare = self.baseline.as_ref()?;
        Some((
            median(&self.cold.init_ms) / median(&bare.init_ms),
            median(&self.cold.first_response_own_ms()) / median(&bare.first_response_own_ms()),
        ))
    }

    /// A Markdown section with every figure.
    pub fn markdown(&self) -> String {
        let mut out = String::new();
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
        out.push_str(&self.cold_table());
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
            (
                "eddo's own time per AWS call (own time ÷ calls)",
                Sample::own_per_call,
            ),
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
        let init_gbs = median(&self.cold.init_ms) / 1000.0 * MEMORY_MB / 1024.0;
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

/// Goals of the cold-start summary: init, and first response less the AWS wait, over the bare
/// function's (medians).
pub const INIT_RATIO_GOAL: f64 = 1.5;
pub const FIRST_RESPONSE_RATIO_GOAL: f64 = 2.0;

/// One table of every measured function's cold start beside the bare function's, measured in
/// the same run (each function's cold starts alternating with the bare one's).
pub fn cold_start_summary(all: &[Figures]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "| cold start, median | init | bare function's init | init ratio (goal ≤ {INIT_RATIO_GOAL}x) | SDK floor's init | init over the floor | first response less the AWS wait | bare function's | first-response ratio (goal ≤ {FIRST_RESPONSE_RATIO_GOAL}x) | SDK floor's | first response over the floor | AWS wait before the first response |\n|---|---|---|---|---|---|---|---|---|---|---|---|"
    );
    for f in all {
        let (Some(bare), Some(floor)) = (&f.baseline, &f.floor) else {
            continue;
        };
        let Some((init, first)) = f.ratios() else {
            continue;
        };
        let mark = |ratio: f64, goal: f64| if ratio <= goal { "met" } else { "over" };
        let (init_ms, first_ms) = (
            median(&f.cold.init_ms),
            median(&f.cold.first_response_own_ms()),
        );
        let (floor_init, floor_first) = (
            median(&floor.init_ms),
            median(&floor.first_response_own_ms()),
        );
        let _ = writeln!(
            out,
            "| {} | {init_ms:.1} ms | {:.1} ms | {init:.2}x ({}) | {floor_init:.1} ms | {:.2}x | {first_ms:.1} ms | {:.1} ms | {first:.2}x ({}) | {floor_first:.1} ms | {:.2}x | {:.1} ms ({} calls) |",
            f.name,
            median(&bare.init_ms),
            mark(init, INIT_RATIO_GOAL),
            init_ms / floor_init,
            median(&bare.first_response_own_ms()),
            mark(first, FIRST_RESPONSE_RATIO_GOAL),
            first_ms / floor_first,
            median(&f.cold.first_response_aws_ms),
            f.cold_operations.len(),
        );
    }
    out
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

/// A function to compare with, given `env` besides what Lambda gives every function.
fn baseline_spec(
    binary: &str,
    env: Vec<(String, String)>,
) -> Result<crate::runtime::FunctionSpec, LocalError> {
    Ok(crate::runtime::FunctionSpec {
        name: binary.into(),
        binary: crate::runtime::binary(binary)?,
        env,
        timeout: Duration::from_secs(10),
        memory_mb: MEMORY_MB as u32,
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
    // The SDK floor gets the function's environment: its region, keys and endpoints.
    let floor_env = spec.env.clone();
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
    let (bare, floor) = match effort.baseline {
        true => (
            Some(LocalFunction::new(baseline_spec(BASELINE, Vec::new())?).await?),
            Some(LocalFunction::new(baseline_spec(SDK_FLOOR, floor_env)?).await?),
        ),
        false => (None, None),
    };
    let mut n = 0;
    let mut cold = ColdStarts::default();
    let mut baseline = bare.as_ref().map(|_| ColdStarts::default());
    let mut floor_cold = floor.as_ref().map(|_| ColdStarts::default());
    let (mut init_calls, mut cold_operations) = (0, Vec::new());
    for _ in 0..effort.cold.max(1) {
        function.stop().await;
        let event = (workload.event)(n);
        let out = function.invoke(&event).await?;
        n += 1;
        answered(&out)?;
        let c = function
            .cold_start()
            .ok_or_else(|| LocalError::Setup("no cold-start timings".into()))?;
        let (init, first) = calls.take_split(c.first_next_at);
        cold.push(&c, init.busy, init.busy + first.busy);
        init_calls = init.operations.len();
        cold_operations = [&init.operations[..], &first.operations[..]].concat();
        // The bare function and the SDK floor right after, with the same event, under the
        // same endpoint; neither makes an AWS call.
        for (other, into) in [(&bare, &mut baseline), (&floor, &mut floor_cold)] {
            if let (Some(other), Some(into)) = (other, into) {
                other.stop().await;
                answered(&other.invoke(&event).await?)?;
                let c = other
                    .cold_start()
                    .ok_or_else(|| LocalError::Setup("no cold-start timings".into()))?;
                into.push(&c, Duration::ZERO, Duration::ZERO);
            }
        }
    }
    for other in [&bare, &floor].into_iter().flatten() {
        other.stop().await;
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
        cold,
        init_calls,
        cold_operations,
        baseline,
        floor: floor_cold,
        operations,
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
            cold: ColdStarts {
                init_ms: vec![10.0],
                init_aws_ms: vec![0.0],
                first_response_ms: vec![20.0],
                first_response_aws_ms: vec![0.0],
            },
            init_calls: 0,
            cold_operations: vec![],
            baseline: None,
            floor: None,
            operations: vec![],
            rounds: vec![vec![sample(300), sample(1_200)]],
            cpu_per_round: vec![Duration::from_millis(10)],
            rss_per_round_kib: vec![0],
        };
        // 1 ms and 2 ms billed: 1.5 ms on average, at 0.125 GB, a million times.
        assert_eq!(f.gb_seconds_per_million(|s| s.total), 187.5);
    }
}

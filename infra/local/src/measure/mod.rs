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

use std::sync::Arc;
use std::time::Duration;

use crate::LocalError;
use crate::meter::{Calls, Relay};
use crate::moto::Moto;
use crate::runtime::LocalFunction;
use crate::stack::Stack;

mod report;
mod workload;

pub use report::{FIRST_RESPONSE_RATIO_GOAL, INIT_RATIO_GOAL, cold_start_summary};
use workload::workload;

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

/// An error unless the function answered.
fn answered(binary: &str, out: &crate::runtime::Invocation) -> Result<(), LocalError> {
    match out.outcome {
        crate::runtime::Outcome::Response(_) => Ok(()),
        ref other => Err(LocalError::Setup(format!(
            "{binary} did not answer: {}",
            other.summary()
        ))),
    }
}

/// The cold starts of a function, and of the bare function and the SDK floor alternating with
/// them.
struct ColdRun {
    function: ColdStarts,
    init_calls: usize,
    operations: Vec<String>,
    bare: Option<ColdStarts>,
    floor: Option<ColdStarts>,
}

/// `effort.cold` fresh environments of `function`, each answering the workload's next event;
/// after each, one of the bare function and one of the SDK floor (given `floor_env`) with the
/// same event, under the same kind of endpoint; neither makes an AWS call.
async fn cold_starts(
    function: &LocalFunction,
    calls: &Calls,
    workload: &workload::Workload,
    effort: Effort,
    floor_env: Vec<(String, String)>,
) -> Result<ColdRun, LocalError> {
    let (bare, floor) = match effort.baseline {
        true => (
            Some(LocalFunction::new(baseline_spec(BASELINE, Vec::new())?).await?),
            Some(LocalFunction::new(baseline_spec(SDK_FLOOR, floor_env)?).await?),
        ),
        false => (None, None),
    };
    let mut run = ColdRun {
        function: ColdStarts::default(),
        init_calls: 0,
        operations: Vec::new(),
        bare: bare.as_ref().map(|_| ColdStarts::default()),
        floor: floor.as_ref().map(|_| ColdStarts::default()),
    };
    let timings = |f: &LocalFunction| {
        f.cold_start()
            .ok_or_else(|| LocalError::Setup("no cold-start timings".into()))
    };
    for n in 0..effort.cold.max(1) {
        function.stop().await;
        let event = (workload.event)(n);
        answered(function.name(), &function.invoke(&event).await?)?;
        let c = timings(function)?;
        let (init, first) = calls.take_split(c.first_next_at);
        run.function.push(&c, init.busy, init.busy + first.busy);
        run.init_calls = init.operations.len();
        run.operations = [&init.operations[..], &first.operations[..]].concat();
        for (other, into) in [(&bare, &mut run.bare), (&floor, &mut run.floor)] {
            if let (Some(other), Some(into)) = (other, into) {
                other.stop().await;
                answered(other.name(), &other.invoke(&event).await?)?;
                into.push(&timings(other)?, Duration::ZERO, Duration::ZERO);
            }
        }
    }
    for other in [&bare, &floor].into_iter().flatten() {
        other.stop().await;
    }
    Ok(run)
}

/// Measures the template's function built from `binary`.
pub async fn function(binary: &str, effort: Effort) -> Result<Figures, LocalError> {
    let workload = workload(binary)?;
    let moto = Moto::start()?;
    let stack = Stack::provision(&moto.sdk_config().await, "bench").await?;
    let count = effort.cold.max(1) + effort.rounds * effort.per_round;
    (workload.setup)(&stack, count);
    // ECR ran every scan, and CloudWatch shows every alarm state change, the workload's events
    // report (the functions count them only as ECR and CloudWatch confirm them).
    for e in (0..count).map(&workload.event) {
        crate::ecr::ran(&stack.sdk, &e).await?;
        crate::cloudwatch::ran(&stack.sdk, &e).await?;
    }
    let calls = Calls::default();
    let aws = Relay::start(
        crate::loopback::endpoint_addr(&moto.endpoint())?,
        calls.clone(),
    )
    .await?;
    let codebuild = Relay::start(
        crate::loopback::endpoint_addr(&stack.codebuild.endpoint())?,
        calls.clone(),
    )
    .await?;
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
    let cold = cold_starts(&function, &calls, &workload, effort, floor_env).await?;
    let mut n = effort.cold.max(1);
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
            answered(binary, &out)?;
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
        cold: cold.function,
        init_calls: cold.init_calls,
        cold_operations: cold.operations,
        baseline: cold.bare,
        floor: cold.floor,
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

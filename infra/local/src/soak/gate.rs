//! The soak: the gate's flows played many times on the local stack while [`crate::faults`]
//! injects faults into every AWS call it makes (DynamoDB, EventBridge, the CodeBuild stand-in),
//! with invocations killed mid-flight and events delivered twice and out of order. Lambda's
//! retries are played as Lambda plays them (two, a minute apart), then the dead-letter queue;
//! at the end the dead-letter queue is redriven, as an operator would once the alarm fires. Then
//! the invariants a user relies on are checked for every candidate.
//!
//! The gate runs in-process (the library the binary runs), as its execution role, with a clock
//! the soak moves, so leases lapse without waiting for them.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use eddo::idempotency::now_epoch;
use eddo::names::{CommitSha, ServiceName};
use eddo_scan_gate::Gate;
use eddo_scan_gate::candidate::State;
use serde_json::{Value, json};

use crate::LocalError;
use crate::codebuild::Build;
use crate::faults::{FaultRelay, Faults};
use crate::fixtures::{build_state, finished, image_scan};
use crate::moto::Moto;
use crate::stack::Stack;

/// What a soak plays.
#[derive(Debug, Clone, Copy)]
pub struct SoakOptions {
    pub seed: u64,
    /// Candidates, each a flow from its first signal to its deploy's completion.
    pub flows: usize,
    /// The share of AWS calls given a fault.
    pub fault_rate: f64,
    /// The share of invocations killed mid-flight.
    pub kill_rate: f64,
}

impl Default for SoakOptions {
    fn default() -> Self {
        SoakOptions {
            seed: 1,
            flows: 20,
            fault_rate: 0.05,
            kill_rate: 0.05,
        }
    }
}

/// What a soak did and found.
#[derive(Debug, Clone, Default)]
pub struct SoakReport {
    pub seed: u64,
    pub flows: usize,
    pub deliveries: usize,
    pub invocations: usize,
    /// Faults injected, by kind.
    pub faults: BTreeMap<String, usize>,
    /// Events Lambda would have dead-lettered (before the redrive), with the last error.
    pub dead_lettered: Vec<(String, String)>,
    /// Identical copies of a decision's event (an answer lost after PutEvents applied).
    pub republished: usize,
    pub violations: Vec<String>,
}

impl SoakReport {
    /// The report as a Markdown table.
    pub fn table(&self) -> String {
        let mut out = format!(
            "| seed | flows | deliveries | invocations | violations | dead-lettered | republished identical |\n|---|---|---|---|---|---|---|\n| {} | {} | {} | {} | {} | {} | {} |\n\n",
            self.seed,
            self.flows,
            self.deliveries,
            self.invocations,
            self.violations.len(),
            self.dead_lettered.len(),
            self.republished
        );
        out.push_str("| fault | injected |\n|---|---|\n");
        for (kind, n) in &self.faults {
            out.push_str(&format!("| {kind} | {n} |\n"));
        }
        let mut reasons: BTreeMap<String, usize> = BTreeMap::new();
        for (_, why) in &self.dead_lettered {
            *reasons.entry(why.chars().take(120).collect()).or_default() += 1;
        }
        if !reasons.is_empty() {
            out.push_str("\n| dead-lettered because | events |\n|---|---|\n");
            for (why, n) in reasons {
                out.push_str(&format!("| {} | {n} |\n", why.replace('|', "/")));
            }
        }
        for v in &self.violations {
            out.push_str(&format!("\nVIOLATION: {v}"));
        }
        out
    }
}

static CLOCK: AtomicU64 = AtomicU64::new(0);

fn clock() -> u64 {
    CLOCK.load(Ordering::SeqCst)
}

fn advance(secs: u64) {
    CLOCK.fetch_add(secs, Ordering::SeqCst);
}

/// What one candidate is meant to meet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fate {
    /// Every signal passes: it deploys.
    Deploys,
    /// SAST fails: it is blocked.
    Blocked,
    /// The scan never comes: it times out.
    TimesOut,
}

struct Flow {
    commit: String,
    image: String,
    fate: Fate,
}

/// Plays `opts` and checks the invariants.
pub async fn run(opts: SoakOptions) -> Result<SoakReport, LocalError> {
    let moto = Moto::start()?;
    let stack = Stack::provision(&moto.sdk_config().await, &format!("soak{}", opts.seed)).await?;
    let faults = Faults::new(opts.seed, opts.fault_rate);
    let aws = FaultRelay::start(addr(&moto.endpoint())?, faults.clone()).await?;
    let builds = FaultRelay::start(addr(&stack.codebuild.endpoint())?, faults.clone()).await?;
    let gate = gate(&stack, &aws.endpoint(), &builds.endpoint()).await?;
    CLOCK.store(now_epoch(), Ordering::SeqCst);
    let mut soak = Soak {
        gate,
        faults: faults.clone(),
        kill_rate: opts.kill_rate,
        report: SoakReport {
            seed: opts.seed,
            flows: opts.flows,
            ..SoakReport::default()
        },
        dlq: Vec::new(),
    };

    let flows: Vec<Flow> = (0..opts.flows)
        .map(|n| Flow {
            commit: format!("{:08x}{:032x}", opts.seed as u32, n),
            image: format!("sha256:{:08x}{:056x}", opts.seed as u32, n),
            fate: match faults.below(10) {
                0 | 1 => Fate::Blocked,
                2 => Fate::TimesOut,
                _ => Fate::Deploys,
            },
        })
        .collect();
    // Every signal of every flow, shuffled, some delivered twice.
    let mut signals: Vec<Value> = flows.iter().flat_map(signals_of).collect();
    for i in (1..signals.len()).rev() {
        signals.swap(i, faults.below(i as u64 + 1) as usize);
    }
    soak.deliver_all(signals).await;

    // The deadline passes: the schedule's ticks time out what still waits.
    advance(31 * 60);
    let tick = json!({"id": format!("tick-{}", clock()), "source": "aws.events", "detail-type": "Scheduled Event", "time": eddo::time::rfc3339(clock()), "detail": {}});
    soak.deliver_all(vec![tick.clone(), tick]).await;

    // The deploy builds finish; their completions arrive, some twice.
    stack.codebuild.settle(Duration::from_secs(30)).await;
    let finished: Vec<Value> = deploys(&stack)
        .iter()
        .map(|b| finished(b, "SUCCEEDED", &format!("done-{}", b.id)))
        .collect();
    soak.deliver_all(finished).await;

    // The alarm on the dead-letter queue fires; an operator redrives it once AWS is healthy.
    faults.enable(false);
    advance(3600);
    let redrive: Vec<Value> = soak.dlq.drain(..).map(|(e, _)| e).collect();
    for e in &redrive {
        if let Err(err) = soak.gate.handle(e).await {
            soak.report
                .violations
                .push(format!("the redrive of {} failed: {err}", e["id"]));
        }
    }
    // The schedule's next tick finishes what dead invocations left with no event to come.
    advance(60);
    let last = json!({"id": format!("tick-{}", clock()), "source": "aws.events", "detail-type": "Scheduled Event", "time": eddo::time::rfc3339(clock()), "detail": {}});
    if let Err(err) = soak.gate.handle(&last).await {
        soak.report
            .violations
            .push(format!("the last tick failed: {err}"));
    }
    stack.codebuild.settle(Duration::from_secs(30)).await;

    soak.report.faults = faults.counts();
    let events = drain_all(&stack).await?;
    check(&stack, &flows, &events, &mut soak.report).await?;
    Ok(soak.report)
}

struct Soak {
    gate: Gate,
    faults: Faults,
    kill_rate: f64,
    report: SoakReport,
    /// What Lambda dead-lettered: the event and the last error.
    dlq: Vec<(Value, String)>,
}

impl Soak {
    async fn deliver_all(&mut self, events: Vec<Value>) {
        for e in events {
            self.deliver(&e).await;
            if self.faults.chance(0.15) {
                self.faults.count("duplicate delivery");
                self.deliver(&e).await;
            }
        }
    }

    /// One asynchronous delivery as Lambda makes it: the invocation, two retries a minute apart,
    /// then the dead-letter queue.
    async fn deliver(&mut self, e: &Value) {
        self.report.deliveries += 1;
        let mut last = String::new();
        for _ in 0..3 {
            advance(1);
            self.report.invocations += 1;
            let outcome = if self.faults.chance(self.kill_rate) {
                self.faults.count("invocation killed mid-flight");
                let cut = Duration::from_millis(self.faults.below(40));
                tokio::time::timeout(cut, self.gate.handle(e)).await.ok()
            } else {
                Some(self.gate.handle(e).await)
            };
            match outcome {
                Some(Ok(_)) => return,
                Some(Err(err)) => last = err.to_string(),
                None => last = "the invocation was killed".into(),
            }
            advance(60);
        }
        self.report.dead_lettered.push((
            e["id"].as_str().unwrap_or_default().to_string(),
            last.clone(),
        ));
        self.dlq.push((e.clone(), last));
    }
}

/// The invariants, for every candidate.
async fn check(
    stack: &Stack,
    flows: &[Flow],
    events: &[Value],
    report: &mut SoakReport,
) -> Result<(), LocalError> {
    let store = eddo_scan_gate::store::Store::new(
        aws_sdk_dynamodb::Client::new(&stack.sdk),
        &stack.table,
        eddo::publish::Publisher::new(
            aws_sdk_eventbridge::Client::new(&stack.sdk),
            &stack.bus,
            256 * 1024,
        ),
    );
    let service = ServiceName::parse("hello-world").expect("a service name");
    let builds = deploys(stack);
    let decisions = [
        "Deployment Started",
        "Deployment Blocked",
        "Deployment Timed Out",
        "Deployment Would Start",
    ];
    for f in flows {
        let v = &mut report.violations;
        let started: Vec<&Build> = builds
            .iter()
            .filter(|b| b.env("EDDO_COMMIT_SHA") == Some(f.commit.as_str()))
            .collect();
        if started.len() > 1 {
            v.push(format!(
                "{}: {} deploy builds started",
                f.commit,
                started.len()
            ));
        }
        let said: Vec<&Value> = events
            .iter()
            .filter(|e| e["detail"]["commit_sha"] == f.commit.as_str())
            .filter(|e| decisions.contains(&e["detail-type"].as_str().unwrap_or_default()))
            .collect();
        let distinct: BTreeSet<String> = said.iter().map(|e| e["detail"].to_string()).collect();
        report.republished += said.len().saturating_sub(distinct.len());
        if distinct.len() != 1 {
            v.push(format!(
                "{}: {} distinct decision events ({:?})",
                f.commit,
                distinct.len(),
                said.iter().map(|e| &e["detail-type"]).collect::<Vec<_>>()
            ));
        }
        let commit = CommitSha::parse(&f.commit).expect("a commit");
        let Some(c) = store
            .get(&service, &commit)
            .await
            .map_err(|e| LocalError::Setup(e.to_string()))?
        else {
            v.push(format!("{}: no candidate recorded", f.commit));
            continue;
        };
        if c.owes {
            v.push(format!("{}: events still owed at the end", f.commit));
        }
        let expected = match f.fate {
            Fate::Deploys => State::Deployed,
            Fate::Blocked => State::Blocked,
            Fate::TimesOut => State::TimedOut,
        };
        if c.state != expected {
            v.push(format!(
                "{}: ended {} where {:?} was due",
                f.commit,
                c.state.as_str(),
                f.fate
            ));
        }
        let kinds: BTreeSet<&str> = c.signals.keys().map(|k| k.as_str()).collect();
        let due: &[&str] = match f.fate {
            Fate::TimesOut => &["build", "sast"],
            _ => &["build", "sast", "image-scan"],
        };
        for k in due {
            if !kinds.contains(k) {
                v.push(format!("{}: its {k} signal was lost", f.commit));
            }
        }
        for e in &said {
            if e["detail-type"] == "Deployment Started"
                && !started
                    .iter()
                    .any(|b| e["detail"]["build_id"] == b.id.as_str())
            {
                v.push(format!(
                    "{}: Deployment Started names build {} that was not started",
                    f.commit, e["detail"]["build_id"]
                ));
            }
        }
        let succeeded = events
            .iter()
            .filter(|e| e["detail-type"] == "Deployment Succeeded")
            .filter(|e| e["detail"]["commit_sha"] == f.commit.as_str())
            .map(|e| e["detail"].to_string())
            .collect::<BTreeSet<_>>()
            .len();
        let due = usize::from(f.fate == Fate::Deploys);
        if succeeded != due {
            v.push(format!(
                "{}: {succeeded} distinct Deployment Succeeded where {due} was due",
                f.commit
            ));
        }
    }
    Ok(())
}

/// The gate as the template deploys it, as its execution role, calling AWS through `aws` and
/// CodeBuild through `builds` (the fault relays), deciding by the soak's clock.
async fn gate(stack: &Stack, aws: &str, builds: &str) -> Result<Gate, LocalError> {
    let def = stack.function("scan-gate")?;
    let env = eddo::config::Env::from_pairs(def.env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    let config =
        eddo::config::PolicyConfig::from_env(&env).map_err(|e| LocalError::Setup(e.to_string()))?;
    let role = stack.function_sdk("scan-gate").await?;
    let policy = eddo::policy::load(&role, &config.policy_parameter)
        .await
        .map_err(|e| LocalError::Setup(e.to_string()))?;
    let sdk = role.to_builder().endpoint_url(aws).build();
    let codebuild = aws_sdk_codebuild::Client::from_conf(
        aws_sdk_codebuild::config::Builder::from(&sdk)
            .endpoint_url(builds)
            .build(),
    );
    Ok(Gate::new(&config, policy, &sdk)
        .with_codebuild(codebuild)
        .with_clock(clock))
}

fn addr(endpoint: &str) -> Result<SocketAddr, LocalError> {
    endpoint
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .parse()
        .map_err(|e| LocalError::Setup(format!("{endpoint}: {e}")))
}

fn deploys(stack: &Stack) -> Vec<Build> {
    stack.codebuild.builds_of("eddo-deploy")
}

/// Every event on the eddo bus, from the tap queue.
async fn drain_all(stack: &Stack) -> Result<Vec<Value>, LocalError> {
    let mut all = Vec::new();
    loop {
        let got = stack
            .drain(&stack.tap_queue, Duration::from_millis(500))
            .await?;
        if got.is_empty() {
            return Ok(all);
        }
        all.extend(got);
    }
}

/// A flow's signals: the build (with its image), SAST, and the scan unless it never comes.
fn signals_of(f: &Flow) -> Vec<Value> {
    let sast = if f.fate == Fate::Blocked {
        "FAILED"
    } else {
        "SUCCEEDED"
    };
    let mut out = vec![
        build_state(
            "eddo-build",
            &f.commit,
            "SUCCEEDED",
            Some(&f.image),
            &format!("eddo-build-{}", f.commit),
        ),
        build_state(
            "eddo-sast",
            &f.commit,
            sast,
            None,
            &format!("eddo-sast-{}", f.commit),
        ),
    ];
    if f.fate != Fate::TimesOut {
        out.push(image_scan(
            &f.commit,
            &f.image,
            json!({"HIGH": 1, "MEDIUM": 4}),
            &format!("scan-{}", f.commit),
        ));
    }
    out
}

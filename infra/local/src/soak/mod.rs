//! The soak: eddo's flows played many times on the local stack while [`crate::faults`] injects
//! faults into every AWS call the functions make (DynamoDB, EventBridge, the CodeBuild
//! stand-in), with invocations killed mid-flight and events delivered twice and out of order.
//! Lambda's retries are played as Lambda plays them (two, a minute apart), then the dead-letter
//! queue, which an operator redrives once AWS is healthy. Then the invariants a user relies on
//! are checked for every candidate ([`gate`]), alarm ([`rollback`]) and tenant ([`tenants`]).
//!
//! Each function runs in-process (the library its binary runs), as its execution role, with a
//! clock the soak moves, so leases lapse and deadlines pass without waiting for them; the
//! CodeBuild stand-in runs on the same clock, so its token window closes as they do.

mod gate;
mod rollback;
mod tenants;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use eddo::idempotency::now_epoch;
use serde_json::Value;

use crate::LocalError;
use crate::faults::{FaultRelay, Faults};
use crate::moto::Moto;
use crate::stack::Stack;

/// What a soak plays.
#[derive(Debug, Clone, Copy)]
pub struct SoakOptions {
    pub seed: u64,
    /// Flows of each function: gate candidates, alarm episodes and tenants.
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

/// What one function's flows did.
#[derive(Debug, Clone, Default)]
pub struct Played {
    pub function: &'static str,
    pub flows: usize,
    pub deliveries: usize,
    pub invocations: usize,
    /// Events Lambda would have dead-lettered (before the redrive), with the last error.
    pub dead_lettered: Vec<(String, String)>,
    /// Identical copies of a decision's event (an answer lost after PutEvents applied).
    pub republished: usize,
    pub violations: Vec<String>,
    /// What else the run shows (the deploy builds in each project the policy named).
    pub notes: Vec<String>,
}

/// What a soak did and found.
#[derive(Debug, Clone, Default)]
pub struct SoakReport {
    pub seed: u64,
    pub played: Vec<Played>,
    /// Faults injected, by kind.
    pub faults: BTreeMap<String, usize>,
}

impl SoakReport {
    /// Every invariant broken, named by function and flow.
    pub fn violations(&self) -> Vec<String> {
        self.played
            .iter()
            .flat_map(|p| p.violations.iter().map(|v| format!("{}: {v}", p.function)))
            .collect()
    }

    /// The report as Markdown tables.
    pub fn table(&self) -> String {
        let mut out = String::from(
            "| seed | function | flows | deliveries | invocations | violations | dead-lettered | republished identical |\n|---|---|---|---|---|---|---|---|\n",
        );
        for p in &self.played {
            out.push_str(&format!(
                "| {} | {} | {} | {} | {} | {} | {} | {} |\n",
                self.seed,
                p.function,
                p.flows,
                p.deliveries,
                p.invocations,
                p.violations.len(),
                p.dead_lettered.len(),
                p.republished
            ));
        }
        out.push_str("\n| fault | injected |\n|---|---|\n");
        for (kind, n) in &self.faults {
            out.push_str(&format!("| {kind} | {n} |\n"));
        }
        let mut reasons: BTreeMap<String, usize> = BTreeMap::new();
        for p in &self.played {
            for (_, why) in &p.dead_lettered {
                let why: String = why.chars().take(120).collect();
                *reasons.entry(format!("{}: {why}", p.function)).or_default() += 1;
            }
        }
        if !reasons.is_empty() {
            out.push_str("\n| dead-lettered because | events |\n|---|---|\n");
            for (why, n) in reasons {
                out.push_str(&format!("| {} | {n} |\n", why.replace('|', "/")));
            }
        }
        for p in &self.played {
            for n in &p.notes {
                out.push_str(&format!("\n{}: {n}", p.function));
            }
        }
        for v in self.violations() {
            out.push_str(&format!("\nVIOLATION: {v}"));
        }
        out
    }
}

static CLOCK: AtomicU64 = AtomicU64::new(0);

/// The soak's clock, which every function under soak decides by.
fn clock() -> u64 {
    CLOCK.load(Ordering::SeqCst)
}

fn advance(secs: u64) {
    CLOCK.fetch_add(secs, Ordering::SeqCst);
}

/// Plays every function's flows for `opts` and checks the invariants.
pub async fn run(opts: SoakOptions) -> Result<SoakReport, LocalError> {
    let moto = Moto::start()?;
    let stack = Stack::provision(&moto.sdk_config().await, &format!("soak{}", opts.seed)).await?;
    // The project the policy edits move the deploy to, tagged as the operator tags it before the
    // edit: the gate's grant reaches it by its tag, with no change to the stack.
    stack
        .codebuild
        .tag_project(gate::NEXT_DEPLOY, eddo::projects::ROLE_TAG, "deploy");
    let faults = Faults::new(opts.seed, opts.fault_rate);
    faults.kill_at_boundaries(true);
    let aws = FaultRelay::start(
        crate::loopback::endpoint_addr(&moto.endpoint())?,
        faults.clone(),
    )
    .await?;
    let builds = FaultRelay::start(
        crate::loopback::endpoint_addr(&stack.codebuild.endpoint())?,
        faults.clone(),
    )
    .await?;
    let world = World {
        stack: &stack,
        faults: faults.clone(),
        aws: aws.endpoint(),
        builds: builds.endpoint(),
        opts,
    };
    CLOCK.store(now_epoch(), Ordering::SeqCst);
    // One clock for everything: CodeBuild's five-minute token window and its builds' start
    // times pass as the functions' leases and Lambda's retries do.
    stack.codebuild.with_clock(clock);
    let played = vec![
        gate::play(&world).await?,
        rollback::play(&world).await?,
        tenants::play(&world).await?,
    ];
    Ok(SoakReport {
        seed: opts.seed,
        played,
        faults: faults.counts(),
    })
}

/// The stack under soak and the fault relays in front of it.
struct World<'a> {
    stack: &'a Stack,
    faults: Faults,
    /// The relay in front of moto.
    aws: String,
    /// The relay in front of the CodeBuild stand-in.
    builds: String,
    opts: SoakOptions,
}

/// The template's function built from `binary`, as it runs in AWS.
struct Function {
    config: eddo::config::PolicyConfig,
    policy: eddo::policy::Policy,
    /// Its execution role, calling AWS through the fault relay.
    sdk: aws_config::SdkConfig,
    /// A CodeBuild client calling the stand-in through the fault relay.
    codebuild: aws_sdk_codebuild::Client,
    env: eddo::config::Env,
}

impl World<'_> {
    async fn function(&self, binary: &str) -> Result<Function, LocalError> {
        let def = self.stack.function(binary)?;
        let env =
            eddo::config::Env::from_pairs(def.env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        let config = eddo::config::PolicyConfig::from_env(&env)
            .map_err(|e| LocalError::Setup(e.to_string()))?;
        let role = self.stack.function_sdk(binary).await?;
        let policy = eddo::policy::load(&role, &config.policy)
            .await
            .map_err(|e| LocalError::Setup(e.to_string()))?;
        let sdk = role.to_builder().endpoint_url(&self.aws).build();
        let codebuild = aws_sdk_codebuild::Client::from_conf(
            aws_sdk_codebuild::config::Builder::from(&sdk)
                .endpoint_url(&self.builds)
                .build(),
        );
        Ok(Function {
            config,
            policy,
            sdk,
            codebuild,
            env,
        })
    }

    /// Every event of `source` on the eddo bus since the last read, from the tap queue.
    async fn published(&self, source: &str) -> Result<Vec<Value>, LocalError> {
        let mut all: Vec<Value> = Vec::new();
        loop {
            let got = self
                .stack
                .drain(&self.stack.tap_queue, Duration::from_millis(500))
                .await?;
            if got.is_empty() {
                return Ok(all.into_iter().filter(|e| e["source"] == source).collect());
            }
            all.extend(got);
        }
    }

    /// A DynamoDB client with the stack's own identity, past the faults: what the soak reads
    /// and seeds state with.
    fn dynamodb(&self) -> aws_sdk_dynamodb::Client {
        aws_sdk_dynamodb::Client::new(&self.stack.sdk)
    }
}

/// A function under soak, as Lambda invokes it.
enum Handler {
    Gate(Box<eddo_scan_gate::Gate>),
    Rollbacks(Box<eddo_alarm_rollback::Rollbacks>),
    Tenants(Box<eddo_tenant_onboarding::Tenants>),
}

impl Handler {
    /// One invocation: what it did, or the error Lambda sees.
    async fn handle(&self, e: &Value) -> Result<String, String> {
        let out = match self {
            Handler::Gate(g) => g.handle(e).await,
            Handler::Rollbacks(r) => r.handle(e).await,
            Handler::Tenants(t) => t.handle(e).await,
        };
        out.map(|r| r.outcome).map_err(|e| e.to_string())
    }
}

/// `EDDO_SOAK_TRACE` set: every invocation is printed (clock, event id, outcome) to stderr,
/// to follow a violation back to the faults that led to it.
fn trace(e: &Value, outcome: &str) {
    if std::env::var_os("EDDO_SOAK_TRACE").is_some() {
        eprintln!("{} {} {outcome}", clock(), e["id"]);
    }
}

/// Lambda's asynchronous invocation of one function: the invocation, two retries a minute
/// apart, then the dead-letter queue; and the faults it meets.
struct Lambda {
    handler: Handler,
    faults: Faults,
    kill_rate: f64,
    played: Played,
    /// What Lambda dead-lettered: the event and the last error.
    dlq: Vec<(Value, String)>,
}

impl Lambda {
    fn new(function: &'static str, handler: Handler, world: &World<'_>) -> Lambda {
        Lambda {
            handler,
            faults: world.faults.clone(),
            kill_rate: world.opts.kill_rate,
            played: Played {
                function,
                flows: world.opts.flows,
                ..Played::default()
            },
            dlq: Vec::new(),
        }
    }

    /// Delivers `events` in order, some twice (EventBridge delivers at least once), and some
    /// twice at once: two invocations of one event in flight together, in the same second.
    async fn deliver_all(&mut self, events: Vec<Value>) {
        for e in events {
            if self.faults.chance(0.10) {
                self.faults.count("concurrent duplicate delivery");
                self.deliver_concurrently(&e).await;
                continue;
            }
            self.deliver(&e).await;
            if self.faults.chance(0.15) {
                self.faults.count("duplicate delivery");
                self.deliver(&e).await;
            }
        }
    }

    /// Two deliveries of `e` whose first invocations run at once; each failed one is retried
    /// as Lambda retries it.
    async fn deliver_concurrently(&mut self, e: &Value) {
        advance(1);
        self.played.deliveries += 2;
        self.played.invocations += 2;
        // Boxed: two whole invocations side by side are too deep for one task's stack.
        let (a, b) = tokio::join!(
            Box::pin(tokio::time::timeout(
                INVOCATION_TIMEOUT,
                self.handler.handle(e)
            )),
            Box::pin(tokio::time::timeout(
                INVOCATION_TIMEOUT,
                self.handler.handle(e)
            ))
        );
        for outcome in [a, b] {
            let outcome = outcome.unwrap_or_else(|_| Err("the invocation timed out".into()));
            match outcome {
                Ok(done) => trace(e, &done),
                Err(err) => {
                    trace(e, &format!("FAILED: {err}"));
                    advance(60);
                    self.attempts(e, 2, err).await;
                }
            }
        }
    }

    /// One asynchronous delivery as Lambda makes it.
    async fn deliver(&mut self, e: &Value) {
        self.played.deliveries += 1;
        self.attempts(e, 3, String::new()).await;
    }

    /// Up to `n` invocations of `e`, a minute apart, then the dead-letter queue.
    async fn attempts(&mut self, e: &Value, n: usize, mut last: String) {
        for _ in 0..n {
            advance(1);
            self.played.invocations += 1;
            let outcome = if self.faults.chance(self.kill_rate) {
                self.faults.count("invocation killed mid-flight");
                let cut = Duration::from_millis(self.faults.below(40));
                tokio::time::timeout(cut, self.handler.handle(e)).await.ok()
            } else {
                // Lambda's timeout: an invocation killed right after a protocol boundary (its
                // request applied and never answered) ends here.
                tokio::time::timeout(INVOCATION_TIMEOUT, self.handler.handle(e))
                    .await
                    .ok()
            };
            match outcome {
                Some(Ok(done)) => {
                    trace(e, &done);
                    return;
                }
                Some(Err(err)) => last = err,
                None => last = "the invocation was killed".into(),
            }
            trace(e, &format!("FAILED: {last}"));
            advance(60);
        }
        self.played.dead_lettered.push((
            e["id"].as_str().unwrap_or_default().to_string(),
            last.clone(),
        ));
        self.dlq.push((e.clone(), last));
    }

    /// What an operator does when the dead-letter queue's alarm fires: once AWS is healthy
    /// again, every dead-lettered event is played once more. It must succeed.
    async fn redrive(&mut self) {
        let enabled = self.faults.enabled();
        self.faults.enable(false);
        let events: Vec<Value> = self.dlq.drain(..).map(|(e, _)| e).collect();
        for e in &events {
            self.invoke_healthy(e, "the redrive of").await;
        }
        self.faults.enable(enabled);
    }

    /// One invocation that meets no fault (the caller turned them off): it must succeed.
    async fn invoke_healthy(&mut self, e: &Value, what: &str) {
        self.played.invocations += 1;
        let outcome = tokio::time::timeout(HEALTHY_TIMEOUT, self.handler.handle(e))
            .await
            .unwrap_or_else(|_| Err("the invocation timed out".into()));
        trace(e, &format!("{outcome:?}"));
        if let Err(err) = outcome {
            self.played
                .violations
                .push(format!("{what} {} failed at {}: {err}", e["id"], clock()));
        }
    }

    /// Shuffles `events` by the run's seed.
    fn shuffle(&self, events: &mut [Value]) {
        for i in (1..events.len()).rev() {
            events.swap(i, self.faults.below(i as u64 + 1) as usize);
        }
    }
}

/// How long an invocation may run (real time) before the soak ends it as Lambda's timeout would:
/// longer than any healthy one takes against the local stack.
const INVOCATION_TIMEOUT: Duration = Duration::from_secs(2);

/// How long an invocation that meets no fault may run (real time): the functions' timeout in
/// the template. With faults off nothing hangs by design, so only a starved machine makes one
/// slow, and that breaks no promise of eddo's (run 3's gate redrive ran past the 2 s above while
/// cargo builds held both cores).
const HEALTHY_TIMEOUT: Duration = Duration::from_secs(30);

/// The schedule's tick at the soak's clock.
fn tick() -> Value {
    serde_json::json!({
        "id": format!("tick-{}", clock()),
        "source": "aws.events",
        "detail-type": "Scheduled Event",
        "time": eddo::time::rfc3339(clock()),
        "detail": {}
    })
}

/// The distinct details among `events`, and how many were identical copies.
fn distinct(events: &[&Value]) -> (std::collections::BTreeSet<String>, usize) {
    let set: std::collections::BTreeSet<String> =
        events.iter().map(|e| e["detail"].to_string()).collect();
    let copies = events.len().saturating_sub(set.len());
    (set, copies)
}

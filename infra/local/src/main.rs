//! `eddo-local`: eddo on one machine, without an AWS account.

use std::process::ExitCode;
use std::sync::Arc;

const USAGE: &str = "usage: eddo-local <command>

  demo [--cdk | --template FILE]
                       start moto and the webhook function, play the scripted scenario, print the
                       timeline; --cdk: on the stack the CDK app (infra/cdk) synthesizes;
                       --template: on FILE (a template synthesized elsewhere: your own app's)
  cdk-context          the CDK context (JSON) the local stack synthesizes a CDK app with: for your
                       own app of the construct, to play `demo --template` on its template
  up [--port N]        start moto, the CodeBuild stand-in and the webhook function URL (default
                       port 9000), deliver what the rules route, print each step; until Ctrl-C
  send FILE [--event NAME]
                       with `up` running: put FILE on the bus if it is an EventBridge event (aws.*
                       sources on the default bus), else
                       deliver it to the webhook URL as a GitHub event (default: its folder name),
                       signed with the local secret
  measure [--cold N] [--rounds N] [--per-round N] [--fixed-trace-id] [--no-baseline] [--out FILE] [FUNCTION...]
                       the bench runner: cold starts, warm latency (eddo's own time and AWS wait),
                       memory and cost of each function's binary (default: all four, 20 cold
                       starts, 10 rounds of 1000 warm invocations); a Markdown report to FILE;
                       each cold start is followed by one of a bare lambda_runtime function
                       (fixture-function, built beside the functions), the ratios summed up
                       first; --no-baseline leaves it out;
                       --fixed-trace-id gives every invocation the same X-Ray trace header;
                       EDDO_BINARY_DIR=target/release measures the release build
  soak [--seed N] [--seeds N] [--flows N] [--faults RATE] [--kills RATE]
                       the gate's, alarm-rollback's and tenant-onboarding's flows, FLOWS of each
                       per seed (default 20, seed 1, one seed)
                       with faults injected into its AWS calls (default 5%) and invocations killed
                       (default 5%), events duplicated and reordered; prints what was injected and
                       any broken invariant, and fails if one broke
  scale [N...]         for policies of N services (default 1 10 35 110 230 1000): the policy's
                       size, the largest template parameter, and whether the template provisions
                       inside AWS's quotas or the quota it breaks first; then, with each policy in
                       S3, the gate's and alarm-rollback's init and first response (7 cold starts
                       each; run it with --release for figures that mean something)";

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("demo") => {
            let from = match &args[1..] {
                [] => eddo_local::demo::From::Sam,
                [cdk] if cdk == "--cdk" => eddo_local::demo::From::Cdk,
                [flag, file] if flag == "--template" => {
                    eddo_local::demo::From::Template(file.into())
                }
                _ => return usage(),
            };
            eddo_local::demo::run(from).await.map(|ok| {
                if ok {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::FAILURE
                }
            })
        }
        Some("cdk-context") if args.len() == 1 => {
            let context: serde_json::Map<String, serde_json::Value> =
                eddo_local::cdk::local_context()
                    .into_iter()
                    .map(|(k, v)| (k.to_string(), serde_json::Value::String(v)))
                    .collect();
            println!("{}", serde_json::Value::Object(context));
            Ok(ExitCode::SUCCESS)
        }
        Some("up") => {
            let port = match args.get(1).map(String::as_str) {
                Some("--port") => args.get(2).and_then(|p| p.parse().ok()),
                None => Some(9000),
                Some(_) => None,
            };
            match port {
                Some(port) => up(port).await.map(|_| ExitCode::SUCCESS),
                None => return usage(),
            }
        }
        Some("send") => {
            let Some(file) = args.get(1) else {
                return usage();
            };
            let event = match args.get(2).map(String::as_str) {
                Some("--event") => match args.get(3) {
                    Some(e) => Some(e.as_str()),
                    None => return usage(),
                },
                None => None,
                Some(_) => return usage(),
            };
            send(std::path::Path::new(file), event).await
        }
        Some("scale") => match args[1..]
            .iter()
            .map(|n| n.parse::<usize>().ok())
            .collect::<Option<Vec<_>>>()
        {
            Some(sizes) => scale(sizes).await,
            None => return usage(),
        },
        Some("soak") => match soak_args(&args[1..]) {
            Some((options, seeds)) => soak(options, seeds).await,
            None => return usage(),
        },
        Some("measure") => match measure_args(&args[1..]) {
            Some((effort, out, functions)) => measure(effort, out, functions).await,
            None => return usage(),
        },
        _ => return usage(),
    };
    result.unwrap_or_else(|e| {
        eprintln!("eddo-local: {e}");
        ExitCode::FAILURE
    })
}

fn soak_args(args: &[String]) -> Option<(eddo_local::soak::SoakOptions, u64)> {
    let mut options = eddo_local::soak::SoakOptions::default();
    let mut seeds = 1;
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let value = args.next()?;
        match arg.as_str() {
            "--seed" => options.seed = value.parse().ok()?,
            "--seeds" => seeds = value.parse().ok()?,
            "--flows" => options.flows = value.parse().ok()?,
            "--faults" => options.fault_rate = value.parse().ok()?,
            "--kills" => options.kill_rate = value.parse().ok()?,
            _ => return None,
        }
    }
    Some((options, seeds))
}

/// Cold starts per function and policy size in `eddo-local scale`'s first-response table.
const FIRST_RESPONSE_COLD_STARTS: usize = 7;

/// Measures how far the deployment scales with the policy, and prints the tables.
async fn scale(sizes: Vec<usize>) -> Result<ExitCode, eddo_local::LocalError> {
    let sizes = if sizes.is_empty() {
        vec![1, 10, 35, 110, 230, 1000]
    } else {
        sizes
    };
    let mut rows = Vec::new();
    for &n in &sizes {
        rows.push(eddo_local::scale::measure(n).await?);
    }
    println!("{}", eddo_local::scale::table(&rows));
    // The first responses, all sizes in one run, each with its policy in S3.
    let mut first = Vec::new();
    for &n in &sizes {
        first.push(eddo_local::scale::first_response(n, FIRST_RESPONSE_COLD_STARTS).await?);
    }
    println!("{}", eddo_local::scale::first_response_table(&first));
    Ok(ExitCode::SUCCESS)
}

/// Soaks `seeds` seeds from `options.seed`, printing each one's table.
async fn soak(
    options: eddo_local::soak::SoakOptions,
    seeds: u64,
) -> Result<ExitCode, eddo_local::LocalError> {
    let mut broken = 0;
    for n in 0..seeds {
        let opts = eddo_local::soak::SoakOptions {
            seed: options.seed + n,
            ..options
        };
        let report = eddo_local::soak::run(opts).await?;
        println!("{}\n", report.table());
        broken += report.violations().len();
    }
    Ok(if broken == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

type MeasureArgs = (
    eddo_local::measure::Effort,
    Option<std::path::PathBuf>,
    Vec<String>,
);

fn measure_args(args: &[String]) -> Option<MeasureArgs> {
    let mut effort = eddo_local::measure::Effort::default();
    let (mut out, mut functions) = (None, Vec::new());
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--cold" => effort.cold = args.next()?.parse().ok()?,
            "--rounds" => effort.rounds = args.next()?.parse().ok()?,
            "--per-round" => effort.per_round = args.next()?.parse().ok()?,
            "--out" => out = Some(std::path::PathBuf::from(args.next()?)),
            "--fixed-trace-id" => effort.fixed_trace_id = true,
            "--no-baseline" => effort.baseline = false,
            f if eddo_local::measure::FUNCTIONS.contains(&f) => functions.push(f.to_string()),
            _ => return None,
        }
    }
    if functions.is_empty() {
        functions = eddo_local::measure::FUNCTIONS.map(String::from).to_vec();
    }
    Some((effort, out, functions))
}

/// Measures each function in turn, printing each report as it is done, and writes them all to
/// `out`.
async fn measure(
    effort: eddo_local::measure::Effort,
    out: Option<std::path::PathBuf>,
    functions: Vec<String>,
) -> Result<ExitCode, eddo_local::LocalError> {
    let (mut report, mut all) = (String::new(), Vec::new());
    for f in &functions {
        eprintln!(
            "measuring {f}: {} cold starts, {} x {} warm invocations",
            effort.cold, effort.rounds, effort.per_round
        );
        let figures = eddo_local::measure::function(f, effort).await?;
        let section = figures.markdown();
        println!("{section}");
        report.push_str(&section);
        report.push('\n');
        all.push(figures);
    }
    let summary = eddo_local::measure::cold_start_summary(&all);
    println!("{summary}");
    report = format!("{summary}\n{report}");
    if let Some(path) = out {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| eddo_local::LocalError::Setup(e.to_string()))?;
        }
        std::fs::write(&path, report.trim_end())
            .map_err(|e| eddo_local::LocalError::Setup(format!("{}: {e}", path.display())))?;
    }
    Ok(ExitCode::SUCCESS)
}

fn usage() -> ExitCode {
    eprintln!("{USAGE}");
    ExitCode::from(2)
}

async fn up(port: u16) -> Result<(), eddo_local::LocalError> {
    use eddo_local::runtime::LocalFunction;
    use eddo_local::stack::{
        LOCAL_GITHUB_SECRET, LOCAL_GITLAB_TOKEN, LOCAL_JENKINS_TOKEN, LOCAL_PROMETHEUS_TOKEN,
        LOCAL_STANDARD_SECRET, LOCAL_TEKTON_KEY, Stack, local_parameters,
    };
    use eddo_local::timeline::{Timeline, Watch};
    let moto = eddo_local::moto::Moto::start()?;
    let stack = Stack::provision(&moto.sdk_config().await, "eddo").await?;
    let mut functions = Vec::new();
    for f in &stack.functions {
        functions.push(Arc::new(
            LocalFunction::new(stack.spec(&f.binary, &moto.endpoint())?).await?,
        ));
    }
    let webhook = stack
        .function("webhook")
        .ok()
        .and_then(|def| functions.iter().find(|f| f.name() == def.logical_id))
        .cloned()
        .ok_or_else(|| eddo_local::LocalError::Setup("no webhook function".into()))?;
    let url = eddo_local::url::FunctionUrl::serve(webhook.clone(), port).await?;
    let mut watch = Watch::new(&stack, &functions).await?;
    println!("moto (AWS emulator)  {}", moto.endpoint());
    println!("CodeBuild stand-in   {}", stack.codebuild.endpoint());
    println!("event bus            {} (AWS events: default)", stack.bus);
    if let Some(store) = &stack.policy {
        let kind = match store {
            eddo::policy::PolicyStore::Parameter(_) => "SSM",
            eddo::policy::PolicyStore::Object { .. } => "S3",
        };
        println!(
            "policy               {kind} {store} ({})",
            eddo_local::stack::LOCAL_POLICY
        );
    }
    println!(
        "webhook URLs         {0}github  {0}gitlab  {0}standard",
        url.url()
    );
    println!(
        "local secrets        github={LOCAL_GITHUB_SECRET} gitlab={LOCAL_GITLAB_TOKEN} standard_webhooks={LOCAL_STANDARD_SECRET}"
    );
    println!(
        "CDEvents senders     {0}cdevents/tekton (key {LOCAL_TEKTON_KEY})  {0}cdevents/jenkins (Bearer {LOCAL_JENKINS_TOKEN})",
        url.url()
    );
    println!(
        "alert senders        {0}alertmanager/prometheus (basic auth prometheus:{LOCAL_PROMETHEUS_TOKEN}, or Bearer)",
        url.url()
    );
    println!(
        "parameters           {}",
        local_parameters()?
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(" ")
    );
    for r in &stack.routes {
        println!("rule                 {} -> {}", r.rule, r.target.name());
    }
    let endpoints = eddo_local::send::Endpoints {
        moto: moto.endpoint(),
        admin: moto.admin().clone(),
        bus: stack.bus.clone(),
        webhook: url.addr(),
        senders: stack.senders.clone(),
    };
    endpoints.save()?;
    println!("serving; `eddo-local send FILE` delivers to it; Ctrl-C stops everything\n");
    let mut timeline = Timeline::new(true);
    let stop = tokio::signal::ctrl_c();
    tokio::pin!(stop);
    // Schedule rules fire every minute, on the minute, as `rate(1 minute)` does.
    let mut next_tick = eddo::idempotency::now_epoch() / 60 * 60 + 60;
    let result = loop {
        tokio::select! {
            _ = &mut stop => break Ok(()),
            polled = watch.poll(&stack, &mut timeline, std::time::Duration::from_millis(500)) => {
                if let Err(e) = polled {
                    break Err(e);
                }
                let now = eddo::idempotency::now_epoch();
                if now >= next_tick {
                    next_tick = now / 60 * 60 + 60;
                    if let Err(e) = watch.tick(&mut timeline, now).await {
                        break Err(e);
                    }
                }
            }
        }
    };
    let _ = std::fs::remove_file(eddo_local::send::Endpoints::file());
    for f in &functions {
        f.stop().await;
    }
    result
}

async fn send(
    file: &std::path::Path,
    event: Option<&str>,
) -> Result<ExitCode, eddo_local::LocalError> {
    use eddo_local::send::{Endpoints, Sent};
    match eddo_local::send::send(file, event, &Endpoints::load()?).await? {
        Sent::Event { event_id, bus } => println!("put on bus {bus}: event {event_id}"),
        Sent::Webhook { status, body } => {
            println!("HTTP {status} {body}");
            if status >= 300 {
                return Ok(ExitCode::FAILURE);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

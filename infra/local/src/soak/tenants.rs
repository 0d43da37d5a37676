//! tenant-onboarding's flows: tenants onboarded at once (requests shuffled and twice), whose
//! provisioning builds succeed, fail once and are retried, or fail every attempt the tier
//! allows; some offboarded once active, and some of those onboarded again. Then every request
//! is delivered once more, after its tenant's terminal state (EventBridge's retries and a DLQ's
//! redrive come that late), and must change nothing. Then the invariants, for every tenant, read
//! from the stand-in's builds, the bus and the registry's own items.

use std::collections::BTreeSet;
use std::time::Duration;

use eddo_tenant_onboarding::{RequestSources, Sbt, Tenants};
use serde_json::{Value, json};

use super::{Handler, Lambda, Played, World, advance, clock, distinct};
use crate::LocalError;
use crate::codebuild::Build;
use crate::fixtures::{finished, offboarding, onboarding};
use crate::stack::table::text;

const PROVISION: &str = "eddo-tenant-provision";
const DEPROVISION: &str = "eddo-tenant-deprovision";
/// The example policy's basic tier: one retry.
const ATTEMPTS: usize = 2;

/// What one tenant is meant to meet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fate {
    /// Its first build succeeds.
    Active,
    /// Its first build fails; the retry succeeds.
    ActiveAfterRetry,
    /// Every attempt fails.
    Failed,
    /// Provisioned, then offboarded.
    Offboarded,
    /// Provisioned, offboarded, then onboarded again (another request).
    Returns,
}

impl Fate {
    /// How the build of `job`'s `attempt` ends.
    fn status(self, project: &str, attempt: u32) -> &'static str {
        match (self, project, attempt) {
            (_, DEPROVISION, _) => "SUCCEEDED",
            (Fate::Failed, _, _) | (Fate::ActiveAfterRetry, _, 1) => "FAILED",
            _ => "SUCCEEDED",
        }
    }

    /// Its provisioning builds: each decision's attempts.
    fn provisioning_builds(self) -> usize {
        match self {
            Fate::Active | Fate::Offboarded => 1,
            Fate::ActiveAfterRetry | Fate::Failed => ATTEMPTS,
            // One for each onboarding.
            Fate::Returns => 2,
        }
    }

    /// Its provisioning decisions: one per onboarding request.
    fn provisioned(self) -> usize {
        match self {
            Fate::Failed => 0,
            Fate::Returns => 2,
            _ => 1,
        }
    }

    fn offboarded(self) -> bool {
        matches!(self, Fate::Offboarded | Fate::Returns)
    }

    /// The state the registry's item ends in.
    fn end(self) -> &'static str {
        match self {
            Fate::Active | Fate::ActiveAfterRetry | Fate::Returns => "active",
            Fate::Failed => "failed",
            Fate::Offboarded => "deprovisioned",
        }
    }
}

struct Flow {
    tenant: String,
    fate: Fate,
}

/// Plays every tenant's flow and checks the invariants.
pub(super) async fn play(world: &World<'_>) -> Result<Played, LocalError> {
    let f = world.function("tenant-onboarding").await?;
    let sbt = Sbt::from_env(&f.env).map_err(|e| LocalError::Setup(e.to_string()))?;
    let tenants = Tenants::new(&f.config, f.policy, &f.sdk)
        .with_sbt(sbt)
        .with_request_sources(RequestSources::from_env(&f.env))
        .with_codebuild(f.codebuild)
        .with_clock(clock);
    let mut lambda = Lambda::new(
        "tenant-onboarding",
        Handler::Tenants(Box::new(tenants)),
        world,
    );
    let flows: Vec<Flow> = (0..world.opts.flows)
        .map(|n| Flow {
            tenant: format!("soak-{}-{n}", world.opts.seed),
            fate: match world.faults.below(10) {
                0 | 1 => Fate::ActiveAfterRetry,
                2 => Fate::Failed,
                3 => Fate::Offboarded,
                4 => Fate::Returns,
                _ => Fate::Active,
            },
        })
        .collect();
    let fate = |tenant: &str| flows.iter().find(|f| f.tenant == tenant).map(|f| f.fate);

    // Every tenant's request at once, shuffled, some twice.
    let onboard = |f: &Flow, id: &str| {
        let values =
            json!({"tenantName": format!("Tenant {}", f.tenant), "email": "ops@example.com"});
        onboarding(&f.tenant, "basic", values, &format!("{id}-{}", f.tenant))
    };
    let requests: Vec<Value> = flows.iter().map(|f| onboard(f, "on")).collect();
    let mut done = BTreeSet::new();
    round(world, &mut lambda, &mut done, &fate, requests.clone()).await;
    // The tenants due to leave ask to, once active.
    let leaving: Vec<Value> = flows
        .iter()
        .filter(|f| f.fate.offboarded())
        .map(|f| offboarding(&f.tenant, &format!("off-{}", f.tenant)))
        .collect();
    round(world, &mut lambda, &mut done, &fate, leaving.clone()).await;
    // Some come back: another onboarding request, once they are gone.
    let returning: Vec<Value> = flows
        .iter()
        .filter(|f| f.fate == Fate::Returns)
        .map(|f| onboard(f, "again"))
        .collect();
    round(world, &mut lambda, &mut done, &fate, returning).await;
    // Every first request once more, after its tenant's terminal state: an old onboarding
    // must not provision a failed or offboarded tenant again, nor an old offboarding
    // deprovision one that came back.
    advance(6 * 3600);
    world
        .faults
        .count("request redelivered after a terminal state");
    round(
        world,
        &mut lambda,
        &mut done,
        &fate,
        [requests, leaving].concat(),
    )
    .await;

    let events = world.published("eddo.tenants").await?;
    check(world, &flows, &events, &mut lambda.played).await?;
    Ok(lambda.played)
}

/// `requests` delivered (shuffled, some twice), the dead-lettered ones redriven, then every
/// build they start completed.
async fn round(
    world: &World<'_>,
    lambda: &mut Lambda,
    done: &mut BTreeSet<String>,
    fate: &impl Fn(&str) -> Option<Fate>,
    mut requests: Vec<Value>,
) {
    lambda.shuffle(&mut requests);
    lambda.deliver_all(requests).await;
    lambda.redrive().await;
    complete(world, lambda, done, fate).await;
}

/// Round after round, the tenant builds started since the last one finish as their tenant's
/// fate says, and their completions arrive (shuffled, some twice), until no build is left.
async fn complete(
    world: &World<'_>,
    lambda: &mut Lambda,
    done: &mut BTreeSet<String>,
    fate: &impl Fn(&str) -> Option<Fate>,
) {
    for _ in 0..=ATTEMPTS {
        world.stack.codebuild.settle(Duration::from_secs(30)).await;
        let mut ended: Vec<Value> = tenant_builds(world)
            .into_iter()
            .filter(|b| done.insert(b.id.clone()))
            .map(|b| {
                let tenant = b.env("EDDO_TENANT_ID").unwrap_or_default();
                let attempt = b.env("EDDO_ATTEMPT").and_then(|a| a.parse().ok());
                let status = fate(tenant)
                    .map_or("SUCCEEDED", |f| f.status(&b.project, attempt.unwrap_or(1)));
                finished(&b, status, &format!("done-{}", b.id))
            })
            .collect();
        if ended.is_empty() {
            return;
        }
        advance(300);
        lambda.shuffle(&mut ended);
        lambda.deliver_all(ended).await;
        lambda.redrive().await;
    }
}

fn tenant_builds(world: &World<'_>) -> Vec<Build> {
    let mut all = world.stack.codebuild.builds_of(PROVISION);
    all.extend(world.stack.codebuild.builds_of(DEPROVISION));
    all
}

/// The invariants, for every tenant.
async fn check(
    world: &World<'_>,
    flows: &[Flow],
    events: &[Value],
    report: &mut Played,
) -> Result<(), LocalError> {
    let builds = tenant_builds(world);
    for f in flows {
        let v = &mut report.violations;
        let mine: Vec<&Build> = builds
            .iter()
            .filter(|b| b.env("EDDO_TENANT_ID") == Some(f.tenant.as_str()))
            .collect();
        // At most one build per decision and attempt, and the attempts the fate calls for.
        for (project, due) in [
            (PROVISION, f.fate.provisioning_builds()),
            (DEPROVISION, usize::from(f.fate.offboarded())),
        ] {
            let started: Vec<&&Build> = mine.iter().filter(|b| b.project == project).collect();
            let attempts: BTreeSet<(&str, &str)> = started
                .iter()
                .filter_map(|b| Some((b.env("EDDO_DECISION_ID")?, b.env("EDDO_ATTEMPT")?)))
                .collect();
            if started.len() != due || attempts.len() != started.len() {
                v.push(format!(
                    "{}: {} {project} builds for attempts {attempts:?} where {due} was due ({:?})",
                    f.tenant,
                    started.len(),
                    f.fate
                ));
            }
        }
        let said = |detail_type: &str| -> Vec<&Value> {
            events
                .iter()
                .filter(|e| e["detail-type"] == detail_type)
                .filter(|e| e["detail"]["tenant_id"] == f.tenant.as_str())
                .filter(|e| e["detail"]["repeated"] != true)
                .collect()
        };
        let provisioned = f.fate.provisioned();
        let offboarded = usize::from(f.fate.offboarded());
        for (detail_type, due) in [
            ("Tenant Provisioning Started", f.fate.provisioning_builds()),
            ("Tenant Provisioned", provisioned),
            (
                "Tenant Provisioning Failed",
                usize::from(f.fate == Fate::Failed),
            ),
            ("Tenant Deprovisioning Started", offboarded),
            ("Tenant Deprovisioned", offboarded),
        ] {
            let got = said(detail_type);
            let (distinct, copies) = distinct(&got);
            report.republished += copies;
            if distinct.len() != due {
                v.push(format!(
                    "{}: {} distinct {detail_type} where {due} was due ({:?})",
                    f.tenant,
                    distinct.len(),
                    f.fate
                ));
            }
            for e in &got {
                let named = e["detail"]["build_id"].as_str();
                if named.is_some_and(|id| !mine.iter().any(|b| b.id == id)) {
                    v.push(format!(
                        "{}: {detail_type} names build {} that was not started",
                        f.tenant, e["detail"]["build_id"]
                    ));
                }
            }
        }
        // The registry's item, as the table holds it.
        let Some(item) = world
            .stack
            .item(&format!("tenant#{}", f.tenant), "tenant")
            .await?
        else {
            v.push(format!("{}: no tenant recorded", f.tenant));
            continue;
        };
        let state = text(&item, "state").unwrap_or_default();
        if state != f.fate.end() {
            v.push(format!(
                "{}: ended {state} where {} was due ({:?})",
                f.tenant,
                f.fate.end(),
                f.fate
            ));
        }
        if item.contains_key("outbox") {
            v.push(format!("{}: events still owed at the end", f.tenant));
        }
    }
    Ok(())
}

//! tenant-onboarding's flows: tenants onboarded at once (requests shuffled and twice), whose
//! provisioning builds succeed, fail once and are retried, or fail every attempt the tier
//! allows; some offboarded once active. Then the invariants, for every tenant.

use std::collections::BTreeSet;
use std::time::Duration;

use eddo::names::TenantId;
use eddo_tenant_onboarding::decide::State;
use eddo_tenant_onboarding::{RequestSources, Sbt, Tenants};
use serde_json::{Value, json};

use super::{Handler, Lambda, Played, World, advance, clock, distinct};
use crate::LocalError;
use crate::codebuild::Build;
use crate::fixtures::{finished, offboarding, onboarding};

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

    fn provisioning_builds(self) -> usize {
        match self {
            Fate::Active | Fate::Offboarded => 1,
            Fate::ActiveAfterRetry | Fate::Failed => ATTEMPTS,
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
                3 | 4 => Fate::Offboarded,
                _ => Fate::Active,
            },
        })
        .collect();
    let fate = |tenant: &str| flows.iter().find(|f| f.tenant == tenant).map(|f| f.fate);

    // Every tenant's request at once, shuffled, some twice.
    let mut requests: Vec<Value> = flows
        .iter()
        .map(|f| {
            let values =
                json!({"tenantName": format!("Tenant {}", f.tenant), "email": "ops@example.com"});
            onboarding(&f.tenant, "basic", values, &format!("on-{}", f.tenant))
        })
        .collect();
    lambda.shuffle(&mut requests);
    lambda.deliver_all(requests).await;
    lambda.redrive().await;
    let mut done = BTreeSet::new();
    complete(world, &mut lambda, &mut done, &fate).await;

    // The tenants due to leave ask to, once active.
    let mut leaving: Vec<Value> = flows
        .iter()
        .filter(|f| f.fate == Fate::Offboarded)
        .map(|f| offboarding(&f.tenant, &format!("off-{}", f.tenant)))
        .collect();
    lambda.shuffle(&mut leaving);
    lambda.deliver_all(leaving).await;
    lambda.redrive().await;
    complete(world, &mut lambda, &mut done, &fate).await;

    let events = world.published("eddo.tenants").await?;
    check(world, &flows, &events, &mut lambda.played).await?;
    Ok(lambda.played)
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
    let store = eddo_tenant_onboarding::store::Store::new(
        world.dynamodb(),
        &world.stack.table,
        eddo::publish::Publisher::new(
            aws_sdk_eventbridge::Client::new(&world.stack.sdk),
            &world.stack.bus,
            256 * 1024,
        ),
    );
    let builds = tenant_builds(world);
    for f in flows {
        let v = &mut report.violations;
        let mine: Vec<&Build> = builds
            .iter()
            .filter(|b| b.env("EDDO_TENANT_ID") == Some(f.tenant.as_str()))
            .collect();
        // At most one build per attempt, and the attempts the fate calls for.
        for (project, due) in [
            (PROVISION, f.fate.provisioning_builds()),
            (DEPROVISION, usize::from(f.fate == Fate::Offboarded)),
        ] {
            let started: Vec<&&Build> = mine.iter().filter(|b| b.project == project).collect();
            let attempts: BTreeSet<&str> = started
                .iter()
                .filter_map(|b| b.env("EDDO_ATTEMPT"))
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
        let provisioned = usize::from(matches!(
            f.fate,
            Fate::Active | Fate::ActiveAfterRetry | Fate::Offboarded
        ));
        let offboarded = usize::from(f.fate == Fate::Offboarded);
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
        let id = TenantId::parse(&f.tenant).map_err(|e| LocalError::Setup(e.to_string()))?;
        let Some(t) = store
            .get(&id)
            .await
            .map_err(|e| LocalError::Setup(e.to_string()))?
        else {
            v.push(format!("{}: no tenant recorded", f.tenant));
            continue;
        };
        let expected = match f.fate {
            Fate::Active | Fate::ActiveAfterRetry => State::Active,
            Fate::Failed => State::Failed,
            Fate::Offboarded => State::Deprovisioned,
        };
        if t.state != expected {
            v.push(format!(
                "{}: ended {:?} where {expected:?} was due ({:?})",
                f.tenant, t.state, f.fate
            ));
        }
        if !t.pending.is_empty() {
            v.push(format!("{}: events still owed at the end", f.tenant));
        }
    }
    Ok(())
}

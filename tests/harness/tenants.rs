//! The tenant-onboarding tests' stack: tenant-onboarding as its execution role against moto and
//! the CodeBuild stand-in, under the example policy, with sbt-aws's answers routed to a queue.

use std::sync::Arc;
use std::time::Duration;

use eddo::names::TenantId;
use eddo_local::fixtures;
use eddo_tenant_onboarding::store::{Store, Tenant};
use eddo_tenant_onboarding::{Report, RequestSources, Sbt, Tenants};
use serde_json::{Value, json};

use super::Local;
use eddo_local::fixtures::event_id;

pub const PROVISION: &str = "eddo-tenant-provision";
pub const PREMIUM: &str = "eddo-tenant-provision-premium";
pub const DEPROVISION: &str = "eddo-tenant-deprovision";

pub struct Setup {
    pub local: Local,
    pub tenants: Arc<Tenants>,
    /// Receives the answers to sbt-aws (not eddo's events, so not on the tap).
    pub sbt_answers: String,
}

impl std::ops::Deref for Setup {
    type Target = Local;
    fn deref(&self) -> &Local {
        &self.local
    }
}

pub async fn setup(prefix: &str) -> Setup {
    let local = Local::start(prefix).await;
    // tenant-onboarding runs as its execution role.
    let (sdk, config, policy) = local.as_function("tenant-onboarding").await;
    let sbt = Sbt::from_env(&crate::harness::function_env(
        &local.stack,
        "tenant-onboarding",
    ))
    .unwrap();
    assert!(sbt.is_some(), "the local stack speaks sbt-aws");
    let env = crate::harness::function_env(&local.stack, "tenant-onboarding");
    let tenants = Tenants::new(&config, policy, &sdk)
        .with_sbt(sbt)
        .with_request_sources(RequestSources::from_env(&env))
        .with_codebuild(crate::harness::stand_in(&sdk, &local.stack));
    let sbt_answers = local
        .stack
        .route_to_queue(
            &format!("{prefix}-sbt-answers"),
            r#"{"source":["sbt.application.plane"]}"#,
        )
        .await
        .unwrap();
    Setup {
        local,
        tenants: Arc::new(tenants),
        sbt_answers,
    }
}

/// eddo's onboarding request for `tenant` in `tier`, with `values`.
pub fn onboard(tenant: &str, tier: &str, values: Value) -> Value {
    fixtures::onboarding(
        tenant,
        tier,
        values,
        &format!("req-{tenant}-{}", event_id()),
    )
}

pub fn offboard(tenant: &str) -> Value {
    fixtures::offboarding(tenant, &format!("off-{tenant}-{}", event_id()))
}

pub fn basic_values() -> Value {
    json!({"tenantName": "Acme Corp", "email": "ops@acme.example"})
}

impl Setup {
    pub async fn handle(&self, e: &Value) -> Report {
        self.tenants.handle(e).await.unwrap()
    }

    /// Lets the tenant builds finish and hands their completion events, as the template's rule
    /// delivers them, to the function (each twice: EventBridge delivers at least once).
    pub async fn complete_builds(&self) -> usize {
        let events = self
            .finished_builds("TenantOnboardingFunctionTenantBuilds")
            .await;
        for e in &events {
            self.handle(e).await;
            self.handle(e).await;
        }
        events.len()
    }

    pub async fn published(&self) -> Vec<Value> {
        self.local.published("eddo.tenants").await
    }

    /// The answers to sbt-aws on the bus since the last call.
    pub async fn answers(&self) -> Vec<Value> {
        self.stack
            .drain(&self.sbt_answers, Duration::from_millis(300))
            .await
            .unwrap()
    }

    pub fn store(&self) -> Store {
        Store::new(
            aws_sdk_dynamodb::Client::new(&self.stack.sdk),
            &self.stack.table,
            eddo::publish::Publisher::new(
                aws_sdk_eventbridge::Client::new(&self.stack.sdk),
                &self.stack.bus,
                256 * 1024,
            ),
        )
    }

    pub async fn tenant(&self, id: &str) -> Option<Tenant> {
        self.store()
            .get(&TenantId::parse(id).unwrap())
            .await
            .unwrap()
    }
}

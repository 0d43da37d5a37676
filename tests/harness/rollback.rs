//! The alarm-rollback tests' stack: alarm-rollback as its execution role against moto and the
//! CodeBuild stand-in, with CloudWatch showing each alarm before its event arrives.

use std::sync::Arc;

use aws_sdk_dynamodb::types::TransactWriteItem;
use eddo::history::{self, History, VersionKind};
use eddo::idempotency::now_epoch;
use eddo::names::ServiceName;
use eddo::policy::Policy;
use eddo_alarm_rollback::{Report, Rollbacks};
use eddo_local::fixtures::{SERVICE, version};
use serde_json::Value;

use super::Local;

pub struct Setup {
    pub local: Local,
    pub rollbacks: Arc<Rollbacks>,
}

impl std::ops::Deref for Setup {
    type Target = Local;
    fn deref(&self) -> &Local {
        &self.local
    }
}

pub async fn setup(prefix: &str, policy: Option<&str>) -> Setup {
    setup_on(Local::start(prefix).await, policy).await
}

/// As [`setup`] with the example policy, with these template parameters overriding the local
/// ones.
pub async fn setup_with(prefix: &str, parameters: &[(&str, &str)]) -> Setup {
    setup_on(Local::start_with(prefix, parameters).await, None).await
}

async fn setup_on(local: Local, policy: Option<&str>) -> Setup {
    // alarm-rollback runs as its execution role; a policy given here is not put in SSM (its
    // projects stay unknown to the stand-in).
    let (sdk, config, loaded) = local.as_function("alarm-rollback").await;
    let policy = policy.map_or(loaded, |text| Policy::parse(text).unwrap());
    let rollbacks = Rollbacks::new(&config, policy, &sdk)
        .with_codebuild(crate::harness::stand_in(&sdk, &local.stack));
    Setup {
        local,
        rollbacks: Arc::new(rollbacks),
    }
}

impl Setup {
    /// `e` arrives after what it reports happened: an alarm state change's alarm is in that
    /// state in CloudWatch (which alarm-rollback asks before it acts).
    pub async fn handle(&self, e: &Value) -> Report {
        eddo_local::cloudwatch::ran(&self.stack.sdk, e)
            .await
            .unwrap();
        self.rollbacks.handle(e).await.unwrap()
    }

    /// `commit` went live at `at`, replacing `previous` (the last known good), as the gate
    /// records a deploy.
    pub async fn deployed(&self, previous: &str, commit: &str, at: u64) {
        let service = ServiceName::parse(SERVICE).unwrap();
        for v in [
            version(previous, at - 86_400, VersionKind::Deploy),
            version(commit, at, VersionKind::Deploy),
        ] {
            self.ddb()
                .transact_write_items()
                .transact_items(
                    TransactWriteItem::builder()
                        .update(history::go_live(&self.stack.table, &service, &v).unwrap())
                        .build(),
                )
                .send()
                .await
                .unwrap();
        }
    }

    pub async fn history(&self) -> History {
        History::read(
            &self.ddb(),
            &self.stack.table,
            &ServiceName::parse(SERVICE).unwrap(),
        )
        .await
        .unwrap()
    }

    pub async fn held_by(&self) -> Option<String> {
        history::held_by(
            &self.ddb(),
            &self.stack.table,
            &ServiceName::parse(SERVICE).unwrap(),
            now_epoch(),
        )
        .await
        .unwrap()
    }

    /// alarm-rollback's events on the bus since the last call, each checked against its schema.
    pub async fn published(&self) -> Vec<Value> {
        self.local.published("eddo.rollback").await
    }

    pub fn rollback_builds(&self) -> Vec<eddo_local::codebuild::Build> {
        self.builds("eddo-rollback")
    }

    /// Lets the rollback builds finish and hands their completion events, as the template's
    /// rule delivers them, to the function (each twice: EventBridge delivers at least once).
    pub async fn complete_builds(&self) {
        let events = self
            .finished_builds("AlarmRollbackFunctionRollbackBuilds")
            .await;
        assert!(!events.is_empty(), "no rollback build finished");
        for e in &events {
            self.handle(e).await;
            self.handle(e).await;
        }
    }
}

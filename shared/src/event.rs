//! The envelope every eddo event carries in its `detail`, and the catalog of eddo's events.
//!
//! Each detail is `{"metadata": {...}, ...fields}`: the metadata says which version of the
//! schema the detail follows, which change it belongs to (`correlation_id`, the same across every
//! function that change passes through) and what caused it (`causation_id`: a webhook delivery id
//! or the id of the EventBridge event that was consumed). The bus archive plus that chain is the
//! audit trail.

use serde::{Deserialize, Serialize};

/// The version of the detail schemas under `infra/schemas/`. A compatible change bumps the minor
/// number; consumers match on the major (`"1."` prefix).
pub const SCHEMA_VERSION: &str = "1.3";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Metadata {
    pub schema_version: String,
    pub correlation_id: String,
    pub causation_id: String,
}

impl Metadata {
    /// Metadata for an event that `causation_id` caused, in the change `correlation_id`.
    pub fn new(correlation_id: impl Into<String>, causation_id: impl Into<String>) -> Self {
        Metadata {
            schema_version: SCHEMA_VERSION.to_string(),
            correlation_id: correlation_id.into(),
            causation_id: causation_id.into(),
        }
    }
}

/// What names an alert (`Alert Received`) across its notifications and states: its sender and
/// fingerprint. The webhook's correlation id for it, and alarm-rollback's alarm identity.
pub fn alert_identity(sender: &str, fingerprint: &str) -> String {
    format!("alert:{sender}:{fingerprint}")
}

/// An eddo event's detail: the shared metadata beside the event's own fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope<D> {
    pub metadata: Metadata,
    #[serde(flatten)]
    pub detail: D,
}

/// The `source` of eddo's events: one per component.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Source {
    Webhook,
    Gate,
    Rollback,
    Tenants,
}

impl Source {
    pub const fn as_str(self) -> &'static str {
        match self {
            Source::Webhook => "eddo.webhook",
            Source::Gate => "eddo.gate",
            Source::Rollback => "eddo.rollback",
            Source::Tenants => "eddo.tenants",
        }
    }
}

/// Every event eddo emits. Each has a JSON Schema under `infra/schemas/` and a row in the
/// book's event catalog (docs/src/event-catalog.md); a test keeps the three in step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DetailType {
    GitPush,
    GitRefDeleted,
    PullRequest,
    Release,
    CheckRunCompleted,
    CheckSuiteCompleted,
    WorkflowRunCompleted,
    DeploymentProtectionRule,
    GitProviderEvent,
    SignalReported,
    CdEventReceived,
    AlertReceived,
    DeploymentStarted,
    DeploymentApproved,
    DeploymentWouldStart,
    DeploymentBlocked,
    DeploymentTimedOut,
    DeploymentSucceeded,
    DeploymentFailed,
    LateSignalFailed,
    SignalRejected,
    RollbackStarted,
    RollbackWouldStart,
    RollbackSkipped,
    RollbackSucceeded,
    RollbackFailed,
    AlarmRecovered,
    TenantOnboardingRejected,
    TenantProvisioningStarted,
    TenantProvisioned,
    TenantProvisioningFailed,
    TenantOffboardingRejected,
    TenantDeprovisioningStarted,
    TenantDeprovisioned,
    TenantDeprovisioningFailed,
    PolicyRejected,
    CdEvent,
}

impl DetailType {
    pub const ALL: &'static [DetailType] = &[
        DetailType::GitPush,
        DetailType::GitRefDeleted,
        DetailType::PullRequest,
        DetailType::Release,
        DetailType::CheckRunCompleted,
        DetailType::CheckSuiteCompleted,
        DetailType::WorkflowRunCompleted,
        DetailType::DeploymentProtectionRule,
        DetailType::GitProviderEvent,
        DetailType::SignalReported,
        DetailType::CdEventReceived,
        DetailType::AlertReceived,
        DetailType::DeploymentStarted,
        DetailType::DeploymentApproved,
        DetailType::DeploymentWouldStart,
        DetailType::DeploymentBlocked,
        DetailType::DeploymentTimedOut,
        DetailType::DeploymentSucceeded,
        DetailType::DeploymentFailed,
        DetailType::LateSignalFailed,
        DetailType::SignalRejected,
        DetailType::RollbackStarted,
        DetailType::RollbackWouldStart,
        DetailType::RollbackSkipped,
        DetailType::RollbackSucceeded,
        DetailType::RollbackFailed,
        DetailType::AlarmRecovered,
        DetailType::TenantOnboardingRejected,
        DetailType::TenantProvisioningStarted,
        DetailType::TenantProvisioned,
        DetailType::TenantProvisioningFailed,
        DetailType::TenantOffboardingRejected,
        DetailType::TenantDeprovisioningStarted,
        DetailType::TenantDeprovisioned,
        DetailType::TenantDeprovisioningFailed,
        DetailType::PolicyRejected,
        DetailType::CdEvent,
    ];

    /// The `detail-type`, in AWS's Title Case style.
    pub const fn as_str(self) -> &'static str {
        match self {
            DetailType::GitPush => "Git Push",
            DetailType::GitRefDeleted => "Git Ref Deleted",
            DetailType::PullRequest => "Pull Request",
            DetailType::Release => "Release",
            DetailType::CheckRunCompleted => "Check Run Completed",
            DetailType::CheckSuiteCompleted => "Check Suite Completed",
            DetailType::WorkflowRunCompleted => "Workflow Run Completed",
            DetailType::DeploymentProtectionRule => "Deployment Protection Rule",
            DetailType::GitProviderEvent => "Git Provider Event",
            DetailType::SignalReported => "Signal Reported",
            DetailType::CdEventReceived => "CDEvent Received",
            DetailType::AlertReceived => "Alert Received",
            DetailType::DeploymentStarted => "Deployment Started",
            DetailType::DeploymentApproved => "Deployment Approved",
            DetailType::DeploymentWouldStart => "Deployment Would Start",
            DetailType::DeploymentBlocked => "Deployment Blocked",
            DetailType::DeploymentTimedOut => "Deployment Timed Out",
            DetailType::DeploymentSucceeded => "Deployment Succeeded",
            DetailType::DeploymentFailed => "Deployment Failed",
            DetailType::LateSignalFailed => "Late Signal Failed",
            DetailType::SignalRejected => "Signal Rejected",
            DetailType::RollbackStarted => "Rollback Started",
            DetailType::RollbackWouldStart => "Rollback Would Start",
            DetailType::RollbackSkipped => "Rollback Skipped",
            DetailType::RollbackSucceeded => "Rollback Succeeded",
            DetailType::RollbackFailed => "Rollback Failed",
            DetailType::AlarmRecovered => "Alarm Recovered",
            DetailType::TenantOnboardingRejected => "Tenant Onboarding Rejected",
            DetailType::TenantProvisioningStarted => "Tenant Provisioning Started",
            DetailType::TenantProvisioned => "Tenant Provisioned",
            DetailType::TenantProvisioningFailed => "Tenant Provisioning Failed",
            DetailType::TenantOffboardingRejected => "Tenant Offboarding Rejected",
            DetailType::TenantDeprovisioningStarted => "Tenant Deprovisioning Started",
            DetailType::TenantDeprovisioned => "Tenant Deprovisioned",
            DetailType::TenantDeprovisioningFailed => "Tenant Deprovisioning Failed",
            DetailType::PolicyRejected => "Policy Rejected",
            DetailType::CdEvent => "CDEvent",
        }
    }

    /// The source it is published under: its component's. `Policy Rejected` is said by each
    /// function that reads the policy, under its own source (the bus lets each role put only
    /// its own): this is the first of [`DetailType::sources`].
    pub const fn source(self) -> Source {
        self.sources()[0]
    }

    /// Every source it may be published under.
    pub const fn sources(self) -> &'static [Source] {
        match self {
            DetailType::GitPush
            | DetailType::GitRefDeleted
            | DetailType::PullRequest
            | DetailType::Release
            | DetailType::CheckRunCompleted
            | DetailType::CheckSuiteCompleted
            | DetailType::WorkflowRunCompleted
            | DetailType::DeploymentProtectionRule
            | DetailType::GitProviderEvent
            | DetailType::SignalReported
            | DetailType::CdEventReceived
            | DetailType::AlertReceived => &[Source::Webhook],
            DetailType::DeploymentStarted
            | DetailType::DeploymentApproved
            | DetailType::DeploymentWouldStart
            | DetailType::DeploymentBlocked
            | DetailType::DeploymentTimedOut
            | DetailType::DeploymentSucceeded
            | DetailType::DeploymentFailed
            | DetailType::LateSignalFailed
            | DetailType::SignalRejected => &[Source::Gate],
            DetailType::RollbackStarted
            | DetailType::RollbackWouldStart
            | DetailType::RollbackSkipped
            | DetailType::RollbackSucceeded
            | DetailType::RollbackFailed
            | DetailType::AlarmRecovered => &[Source::Rollback],
            DetailType::TenantOnboardingRejected
            | DetailType::TenantProvisioningStarted
            | DetailType::TenantProvisioned
            | DetailType::TenantProvisioningFailed
            | DetailType::TenantOffboardingRejected
            | DetailType::TenantDeprovisioningStarted
            | DetailType::TenantDeprovisioned
            | DetailType::TenantDeprovisioningFailed => &[Source::Tenants],
            DetailType::PolicyRejected => &[Source::Gate, Source::Rollback, Source::Tenants],
            // A decision's CDEvent (`cdevents::emit`), said by the component that decided.
            DetailType::CdEvent => &[Source::Gate, Source::Rollback],
        }
    }

    /// The schema's file name under `infra/schemas/`: the detail-type in kebab case.
    pub fn schema_file(self) -> String {
        format!(
            "{}.schema.json",
            self.as_str().to_ascii_lowercase().replace(' ', "-")
        )
    }

    pub fn parse(s: &str) -> Option<DetailType> {
        DetailType::ALL.iter().copied().find(|d| d.as_str() == s)
    }
}

impl std::fmt::Display for DetailType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn envelope_puts_metadata_beside_the_fields() {
        #[derive(Serialize, Deserialize, Debug, PartialEq)]
        struct Push {
            branch: String,
        }
        let e = Envelope {
            metadata: Metadata::new("c-1", "d-1"),
            detail: Push {
                branch: "main".into(),
            },
        };
        let v = serde_json::to_value(&e).unwrap();
        assert_eq!(
            v,
            json!({"metadata": {"schema_version": SCHEMA_VERSION, "correlation_id": "c-1", "causation_id": "d-1"}, "branch": "main"})
        );
        let back: Envelope<Push> = serde_json::from_value(v).unwrap();
        assert_eq!(back, e);
    }

    #[test]
    fn detail_types_round_trip_and_name_their_schema() {
        for d in DetailType::ALL {
            assert_eq!(DetailType::parse(d.as_str()), Some(*d));
            assert!(d.sources().iter().all(|s| s.as_str().starts_with("eddo.")));
        }
        assert_eq!(DetailType::GitPush.schema_file(), "git-push.schema.json");
        assert_eq!(DetailType::parse("git push"), None);
    }
}

//! What the local stack deploys with: its local secrets and keys, the template parameters (its
//! own settings and those the policy implies, as `eddo policy params` prints them), the policy
//! it runs, and the projects that policy names, which exist in the CodeBuild stand-in.

use aws_config::SdkConfig;

use crate::codebuild::CodeBuild;
use crate::moto::project_root;
use crate::{LocalError, aws};

/// The local development secrets. They exist only on the emulator; never use them in AWS.
pub const LOCAL_GITHUB_SECRET: &str = "eddo-local-github-secret";
pub const LOCAL_GITLAB_TOKEN: &str = "eddo-local-gitlab-token";
pub const LOCAL_STANDARD_SECRET: &str = "whsec_ZWRkby1sb2NhbC1zdGFuZGFyZC1zZWNyZXQ=";
/// The local `chatops` signal sender's key (`senders.chatops`): it signs approvals to
/// `/signals/chatops`, as the example policy names it.
pub const LOCAL_CHATOPS_KEY: &str = "whsec_ZWRkby1sb2NhbC1jaGF0b3BzLWtleQ==";

/// The settings of the local stack (as `sam deploy --parameter-overrides` would set them): every
/// optional part of the template switched on, so the local stack runs all of it. The corpus's
/// pushes are to `master`; a current sbt-aws's default control-plane source, so it speaks both
/// eddo's contract and sbt-aws's (tests of the legacy generation override `SbtGeneration`).
/// The example control plane's requests in eddo's tenant contract come from
/// `com.example.control-plane`, put by the same local sender role as the tools' signals.
pub const LOCAL_SETTINGS: [(&str, &str); 7] = [
    ("BuildProjectName", "eddo-build"),
    ("SastProjectName", "eddo-sast"),
    ("TrackedBranches", "main,master"),
    ("SbtControlPlaneEventSource", "sbt.control.plane"),
    ("SignalSenderRoleArns", SIGNAL_SENDER_ROLE),
    ("TenantRequestSources", "com.example.control-plane"),
    ("TenantRequestSenderRoleArns", SIGNAL_SENDER_ROLE),
];

/// The role the local stack lets put the policy's signal sources (a scanner's or CI's role in
/// AWS); tests create it to report signals the IAM way.
pub const SIGNAL_SENDER_ROLE: &str = "arn:aws:iam::123456789012:role/eddo-local-signal-sender";

/// The parameter overrides the local stack deploys with: its settings, and the project lists the
/// policy it runs implies, as `eddo policy params` prints them for a deploy.
pub fn local_parameters() -> Result<Vec<(String, String)>, LocalError> {
    let text = std::fs::read_to_string(project_root().join(LOCAL_POLICY))
        .map_err(|e| LocalError::Setup(format!("{LOCAL_POLICY}: {e}")))?;
    let policy = eddo::policy::Policy::parse(&text)
        .map_err(|e| LocalError::Setup(format!("{LOCAL_POLICY}: {e}")))?;
    let mut out: Vec<(String, String)> = LOCAL_SETTINGS
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    out.extend(
        eddo::projects::PolicyProjects::of(&policy)
            .template_parameters()
            .into_iter()
            .map(|(k, v)| (k.to_string(), v)),
    );
    Ok(out)
}

/// The policy the local stack runs with: the worked example.
pub const LOCAL_POLICY: &str = "infra/policy/example.yaml";

/// Writes a policy document to its SSM parameter (functions read it at init).
pub async fn put_policy(sdk: &SdkConfig, name: &str, text: &str) -> Result<(), LocalError> {
    aws_sdk_ssm::Client::new(sdk)
        .put_parameter()
        .name(name)
        .value(text)
        .r#type(aws_sdk_ssm::types::ParameterType::String)
        .tier(aws_sdk_ssm::types::ParameterTier::Advanced)
        .overwrite(true)
        .send()
        .await
        .map_err(|e| aws("PutParameter", e))?;
    Ok(())
}

/// The CodeBuild projects a policy names exist in the stand-in, as they would in the account.
pub(super) fn add_policy_projects(codebuild: &CodeBuild, text: &str) -> Result<(), LocalError> {
    let policy = eddo::policy::Policy::parse(text).map_err(|e| LocalError::Setup(e.to_string()))?;
    for s in policy.services.values() {
        let p = &s.projects;
        for project in [&p.build, &p.sast, &Some(p.deploy.clone()), &p.rollback]
            .into_iter()
            .flatten()
        {
            codebuild.add_project(project.as_str());
        }
    }
    for tier in policy.tiers.values() {
        codebuild.add_project(tier.provision.project.as_str());
        codebuild.add_project(tier.deprovision.project.as_str());
    }
    Ok(())
}

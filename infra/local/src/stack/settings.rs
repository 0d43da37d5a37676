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
/// The local `tekton` CDEvents sender's key (`senders.tekton`): it signs CDEvents to
/// `/cdevents/tekton`.
pub const LOCAL_TEKTON_KEY: &str = "whsec_ZWRkby1sb2NhbC10ZWt0b24ta2V5";
/// The local `jenkins` CDEvents sender's bearer token (`tokens.jenkins`): a tool that cannot sign
/// sends it to `/cdevents/jenkins`.
pub const LOCAL_JENKINS_TOKEN: &str = "eddo-local-jenkins-cdevents-token-0123456789";

/// The local `prometheus` alert sender's token (its Alertmanager's basic-auth password, or a
/// bearer token).
pub const LOCAL_PROMETHEUS_TOKEN: &str = "eddo-local-prometheus-alertmanager-token-0123";

/// The settings of the local stack (as `sam deploy --parameter-overrides` would set them): every
/// optional part of the template switched on, so the local stack runs all of it. The corpus's
/// pushes are to `master`; a current sbt-aws's default control-plane source, so it speaks both
/// eddo's contract and sbt-aws's (tests of the legacy generation override `SbtGeneration`).
/// The example control plane's requests in eddo's tenant contract come from
/// `com.example.control-plane`. Each source has its own sender role ([`sender_role`]).
pub const LOCAL_SETTINGS: [(&str, &str); 5] = [
    ("BuildProjectName", "eddo-build"),
    ("SastProjectName", "eddo-sast"),
    ("TrackedBranches", "main,master"),
    ("SbtControlPlaneEventSource", "sbt.control.plane"),
    ("TenantRequestSources", "com.example.control-plane"),
];

/// The control planes' sources the local stack has senders for: eddo's tenant contract's, and
/// sbt-aws's in both generations.
pub const CONTROL_PLANE_SOURCES: [&str; 3] = [
    "com.example.control-plane",
    "sbt.control.plane",
    "controlPlaneEventSource",
];

/// The role that puts `source` in the local stack (a scanner's, CI's or control plane's role in
/// AWS): one per source, tagged `eddo:signal-source` with it, as the bus policy asks of the
/// signal sources' senders.
pub fn sender_role(source: &str) -> String {
    format!(
        "arn:aws:iam::{}:role/eddo-local-sender-{}",
        crate::template::ACCOUNT,
        source.replace('.', "-")
    )
}

/// Every source the local stack has a sender role for: the policy's signal sources and the
/// control planes'.
pub fn sender_sources() -> Result<Vec<String>, LocalError> {
    let mut out = signal_sources()?;
    out.extend(CONTROL_PLANE_SOURCES.iter().map(|s| s.to_string()));
    Ok(out)
}

/// The signal sources of the policy the local stack runs: each has a sender role tagged with it.
pub fn signal_sources() -> Result<Vec<String>, LocalError> {
    let policy = local_policy()?;
    Ok(eddo::projects::PolicyProjects::of(&policy)
        .signal_sources
        .into_iter()
        .collect())
}

fn local_policy() -> Result<eddo::policy::Policy, LocalError> {
    let text = std::fs::read_to_string(project_root().join(LOCAL_POLICY))
        .map_err(|e| LocalError::Setup(format!("{LOCAL_POLICY}: {e}")))?;
    eddo::policy::Policy::parse(&text)
        .map_err(|e| LocalError::Setup(format!("{LOCAL_POLICY}: {e}")))
}

/// The comma-separated sender roles of `sources`.
pub fn sender_roles<S: AsRef<str>>(sources: impl IntoIterator<Item = S>) -> String {
    sources
        .into_iter()
        .map(|s| sender_role(s.as_ref()))
        .collect::<Vec<_>>()
        .join(",")
}

/// The parameter overrides the local stack deploys with: its settings, and the project lists the
/// policy it runs implies, as `eddo policy params` prints them for a deploy.
pub fn local_parameters() -> Result<Vec<(String, String)>, LocalError> {
    let policy = local_policy()?;
    let mut out: Vec<(String, String)> = LOCAL_SETTINGS
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    out.push((
        "TenantRequestSenderRoleArns".into(),
        sender_roles(CONTROL_PLANE_SOURCES),
    ));
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

/// The deploy project of the local policy's service.
pub const LOCAL_DEPLOY: &str = "eddo-deploy";

/// The local policy's text with its service's deploy moved to `project`.
pub fn local_policy_deploying_to(project: &str) -> Result<String, LocalError> {
    let text = std::fs::read_to_string(project_root().join(LOCAL_POLICY))
        .map_err(|e| LocalError::Setup(format!("{LOCAL_POLICY}: {e}")))?;
    let from = format!("deploy: {LOCAL_DEPLOY} ");
    if !text.contains(&from) {
        return Err(LocalError::Setup(format!(
            "{LOCAL_POLICY}: no `{from}` to move"
        )));
    }
    Ok(text.replace(&from, &format!("deploy: {project} ")))
}

/// Writes a policy document where the functions read it: its SSM parameter, or its S3 object
/// (a new version of it).
pub async fn put_policy_in(
    sdk: &SdkConfig,
    store: &eddo::policy::PolicyStore,
    text: &str,
) -> Result<(), LocalError> {
    match store {
        eddo::policy::PolicyStore::Parameter(name) => put_policy(sdk, name, text).await,
        eddo::policy::PolicyStore::Object { bucket, key } => {
            if text.len() as i64 > eddo::policy::MAX_OBJECT_BYTES {
                return Err(LocalError::Setup(format!(
                    "the policy in s3://{bucket}/{key} is {} bytes, past the {} eddo reads",
                    text.len(),
                    eddo::policy::MAX_OBJECT_BYTES
                )));
            }
            aws_sdk_s3::Client::new(sdk)
                .put_object()
                .bucket(bucket)
                .key(key)
                .body(text.as_bytes().to_vec().into())
                .content_type("application/yaml")
                .send()
                .await
                .map_err(|e| aws("PutObject", e))?;
            Ok(())
        }
    }
}

/// The text of an S3 object, if it is there.
pub async fn object_text(sdk: &SdkConfig, bucket: &str, key: &str) -> Option<String> {
    let out = aws_sdk_s3::Client::new(sdk)
        .get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .ok()?;
    let bytes = out.body.collect().await.ok()?.into_bytes();
    String::from_utf8(bytes.to_vec()).ok()
}

/// A bucket with versioning on, as the template asks of the policy's (created if missing).
pub async fn versioned_bucket(sdk: &SdkConfig, bucket: &str) -> Result<(), LocalError> {
    let s3 = aws_sdk_s3::Client::new(sdk);
    if let Err(e) = s3.create_bucket().bucket(bucket).send().await {
        let code = e.as_service_error().and_then(|se| se.meta().code());
        if code != Some("BucketAlreadyOwnedByYou") {
            return Err(aws("CreateBucket", e));
        }
    }
    s3.put_bucket_versioning()
        .bucket(bucket)
        .versioning_configuration(
            aws_sdk_s3::types::VersioningConfiguration::builder()
                .status(aws_sdk_s3::types::BucketVersioningStatus::Enabled)
                .build(),
        )
        .send()
        .await
        .map_err(|e| aws("PutBucketVersioning", e))?;
    Ok(())
}

/// Writes a policy document to its SSM parameter (functions read it at init).
pub async fn put_policy(sdk: &SdkConfig, name: &str, text: &str) -> Result<(), LocalError> {
    crate::quotas::ADVANCED_PARAMETER_VALUE.check(format!("the policy in {name}"), text.len())?;
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

/// The CodeBuild projects a policy names exist in the stand-in, as they would in the account,
/// each tagged `eddo:role` with its role (what the template's grants ask of them).
pub(super) fn add_policy_projects(codebuild: &CodeBuild, text: &str) -> Result<(), LocalError> {
    let policy = eddo::policy::Policy::parse(text).map_err(|e| LocalError::Setup(e.to_string()))?;
    for (project, role) in eddo::projects::PolicyProjects::of(&policy).roles {
        codebuild.tag_project(&project, eddo::projects::ROLE_TAG, role);
    }
    Ok(())
}

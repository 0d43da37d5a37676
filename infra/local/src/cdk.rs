//! The CDK app's template, as `cdk synth` writes it: the example app of `infra/cdk` (compiled by
//! `make setup`) run with node, its functions' bundling skipped (the local stack runs the host
//! build of each binary, so no arm64 build is needed to run the CDK stack locally), its policy
//! checked by the workspace's `eddo` binary.

use std::process::Command;

use crate::LocalError;
use crate::moto::project_root;

/// The example app's stack, as `bin/eddo.ts` names it.
pub const STACK: &str = "Eddo";

/// The CDK context the local stack synthesizes with: the settings `template.yaml` gets from
/// `LOCAL_SETTINGS` that the example app does not default to.
pub fn local_context() -> Vec<(&'static str, String)> {
    let parameters = crate::stack::local_parameters().unwrap_or_default();
    let param = |name: &str| {
        parameters
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    vec![(
        "eddo:tenantRequestSenderRoleArns",
        param("TenantRequestSenderRoleArns"),
    )]
}

/// A file asset of the synthesized app (the policy, when the construct keeps it in S3), as
/// `cdk deploy` publishes it: its bytes, to this bucket and key of the bootstrap's.
#[derive(Debug, Clone)]
pub struct FileAsset {
    pub bucket: String,
    pub key: String,
    pub bytes: Vec<u8>,
}

/// What `cdk synth` wrote: the stack's template (JSON text) and its file assets.
#[derive(Debug, Clone)]
pub struct Synthesized {
    pub template: String,
    pub files: Vec<FileAsset>,
}

/// Synthesizes the example app with `context` (CDK context keys and values) and returns its
/// stack's template (JSON text). A mistake in the policy fails here with eddo's message.
pub fn synth(context: &[(&str, String)]) -> Result<String, LocalError> {
    synth_with_assets(context).map(|s| s.template)
}

/// Publishes `files` as `cdk deploy` does, into the bootstrap's asset bucket (created here,
/// versioned as `cdk bootstrap` creates it).
pub async fn publish(sdk: &aws_config::SdkConfig, files: &[FileAsset]) -> Result<(), LocalError> {
    for f in files {
        crate::stack::versioned_bucket(sdk, &f.bucket).await?;
        aws_sdk_s3::Client::new(sdk)
            .put_object()
            .bucket(&f.bucket)
            .key(&f.key)
            .body(f.bytes.clone().into())
            .send()
            .await
            .map_err(|e| crate::aws("PutObject", e))?;
    }
    Ok(())
}

/// The file assets `cdk synth` listed in `out` (`{STACK}.assets.json`), their bucket names
/// resolved for the local account and region; the functions' bundles are not among them
/// (bundling is skipped).
fn file_assets(out: &std::path::Path) -> Result<Vec<FileAsset>, LocalError> {
    let manifest = out.join(format!("{STACK}.assets.json"));
    let Ok(text) = std::fs::read_to_string(&manifest) else {
        return Ok(Vec::new());
    };
    let json: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| LocalError::Setup(format!("{}: {e}", manifest.display())))?;
    let mut files = Vec::new();
    for asset in json["files"]
        .as_object()
        .into_iter()
        .flat_map(|m| m.values())
    {
        let (Some(path), Some("file")) = (
            asset["source"]["path"].as_str(),
            asset["source"]["packaging"].as_str(),
        ) else {
            continue;
        };
        let source = out.join(path);
        if !source.is_file() {
            continue;
        }
        let bytes = std::fs::read(&source)
            .map_err(|e| LocalError::Setup(format!("{}: {e}", source.display())))?;
        for d in asset["destinations"]
            .as_object()
            .into_iter()
            .flat_map(|m| m.values())
        {
            let (Some(bucket), Some(key)) = (d["bucketName"].as_str(), d["objectKey"].as_str())
            else {
                continue;
            };
            files.push(FileAsset {
                bucket: bucket
                    .replace("${AWS::AccountId}", crate::template::ACCOUNT)
                    .replace("${AWS::Region}", crate::template::REGION)
                    .replace("${AWS::Partition}", "aws"),
                key: key.to_string(),
                bytes: bytes.clone(),
            });
        }
    }
    Ok(files)
}

/// [`synth`], with the file assets to publish before the stack is provisioned.
pub fn synth_with_assets(context: &[(&str, String)]) -> Result<Synthesized, LocalError> {
    let app = project_root().join("infra/cdk/dist/bin/eddo.js");
    if !app.is_file() {
        return Err(LocalError::Setup(format!(
            "{} is not built: run `make setup` (npm ci and tsc in infra/cdk)",
            app.display()
        )));
    }
    let out = tempdir()?;
    // As the CDK CLI runs the app: cdk.json's context (its feature flags) first.
    let cdk_json = project_root().join("infra/cdk/cdk.json");
    let mut ctx = std::fs::read_to_string(&cdk_json)
        .ok()
        .and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok())
        .and_then(|v| v.get("context").and_then(|c| c.as_object()).cloned())
        .unwrap_or_default();
    // No stack is bundled: no cargo-lambda build at synth.
    ctx.insert("aws:cdk:bundling-stacks".into(), serde_json::json!([]));
    for (k, v) in context {
        ctx.insert(k.to_string(), serde_json::Value::String(v.clone()));
    }
    let mut cmd = Command::new("node");
    cmd.arg(&app).env("CDK_OUTDIR", &out).env(
        "CDK_CONTEXT_JSON",
        serde_json::Value::Object(ctx).to_string(),
    );
    // The policy is checked by the eddo binary built beside this one, if there is one.
    if let Ok(eddo) = crate::runtime::binary("eddo") {
        cmd.env("EDDO_CLI", eddo);
    }
    let run = cmd
        .output()
        .map_err(|e| LocalError::Setup(format!("could not run node (Node.js 20 or later): {e}")))?;
    // The stack the app names, as `eddo:stackName` says (bin/eddo.ts).
    let stack = context
        .iter()
        .find(|(k, _)| *k == "eddo:stackName")
        .map_or(STACK, |(_, v)| v.as_str());
    let result = if run.status.success() {
        std::fs::read_to_string(out.join(format!("{stack}.template.json")))
            .map_err(|e| LocalError::Setup(format!("cdk synth wrote no {stack} template: {e}")))
            .and_then(|template| {
                Ok(Synthesized {
                    template,
                    files: file_assets(&out)?,
                })
            })
    } else {
        Err(LocalError::Setup(format!(
            "cdk synth failed: {}",
            String::from_utf8_lossy(&run.stderr).trim()
        )))
    };
    let _ = std::fs::remove_dir_all(&out);
    result
}

fn tempdir() -> Result<std::path::PathBuf, LocalError> {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "eddo-cdk-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir)
        .map_err(|e| LocalError::Setup(format!("{}: {e}", dir.display())))?;
    Ok(dir)
}

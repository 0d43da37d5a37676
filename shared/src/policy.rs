//! The policy: one YAML document, versioned in git, that says which repositories and branches map
//! to which service, the service's CodeBuild projects, what its deployment gate requires, when it
//! rolls back, and how each tenant tier is provisioned.
//! Parsed once at init into types that cannot hold a bad value; a mistake stops the function with
//! one message naming where it is. `infra/policy/example.yaml` is a worked example and
//! `infra/policy/policy.schema.json` its schema, for editors and CI.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::names::{ProjectName, RepoName, SenderName, ServiceName, TierName};
use crate::time::Date;

/// A signal a gate can require before a deployment. Four are eddo's own; any other name
/// (`contract`, `e2e`, `load-test`) is a signal the policy's senders report.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum SignalKind {
    /// The service's build project finished.
    Build,
    /// ECR basic or Inspector enhanced scan of the built image.
    ImageScan,
    /// Static analysis: a SAST project, a GitHub check, or a reported signal.
    Sast,
    /// An explicit approval (or rejection) of one commit.
    Approval,
    /// Any other signal: 1 to 32 lower-case letters, digits and '-', starting with a letter.
    Named(String),
}

impl SignalKind {
    pub fn parse(s: &str) -> Result<SignalKind, String> {
        Ok(match s {
            "build" => SignalKind::Build,
            "image-scan" => SignalKind::ImageScan,
            "sast" => SignalKind::Sast,
            "approval" => SignalKind::Approval,
            _ => {
                let ok = (1..=32).contains(&s.len())
                    && s.as_bytes()[0].is_ascii_lowercase()
                    && s.bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                    && !s.ends_with('-');
                if !ok {
                    return Err(format!(
                        "{s:?} is not a signal name: 1 to 32 lower-case letters, digits and '-', starting with a letter"
                    ));
                }
                SignalKind::Named(s.to_string())
            }
        })
    }

    pub fn as_str(&self) -> &str {
        match self {
            SignalKind::Build => "build",
            SignalKind::ImageScan => "image-scan",
            SignalKind::Sast => "sast",
            SignalKind::Approval => "approval",
            SignalKind::Named(n) => n,
        }
    }
}

impl TryFrom<String> for SignalKind {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        SignalKind::parse(&s)
    }
}

impl From<SignalKind> for String {
    fn from(k: SignalKind) -> String {
        k.as_str().to_string()
    }
}

impl std::fmt::Display for SignalKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who may report a signal, and how eddo knows it was them.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Sender {
    /// A build of this CodeBuild project: `aws.codebuild`, which only AWS can put.
    Project(ProjectName),
    /// An ECR basic or Inspector enhanced scan of the service's image repository: `aws.ecr`,
    /// `aws.inspector2`, which only AWS can put.
    ImageScanner,
    /// A GitHub check run or workflow run of this name, run by this GitHub App (its slug), on a
    /// commit of one of the service's repositories: a verified delivery through the webhook.
    Check { name: String, app: String },
    /// A tool that signs a Standard Webhooks delivery to the webhook's `/signals/<name>` route
    /// with its own key; the webhook republishes it naming the verified sender.
    Signed(SenderName),
    /// An event source that the bus lets only the roles of `SignalSenderRoleArns` put.
    Source(String),
}

impl std::fmt::Display for Sender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Sender::Project(p) => write!(f, "CodeBuild project {p}"),
            Sender::ImageScanner => f.write_str("ECR or Inspector scan of the image repository"),
            Sender::Check { name, app } => write!(f, "check {name} by {app}"),
            Sender::Signed(n) => write!(f, "signed sender {n}"),
            Sender::Source(s) => write!(f, "source {s}"),
        }
    }
}

/// Finding severities, as ECR and Inspector name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Severity {
    Critical,
    High,
    Medium,
    Low,
    Informational,
    Undefined,
}

impl Severity {
    pub const ALL: [Severity; 6] = [
        Severity::Critical,
        Severity::High,
        Severity::Medium,
        Severity::Low,
        Severity::Informational,
        Severity::Undefined,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            Severity::Critical => "CRITICAL",
            Severity::High => "HIGH",
            Severity::Medium => "MEDIUM",
            Severity::Low => "LOW",
            Severity::Informational => "INFORMATIONAL",
            Severity::Undefined => "UNDEFINED",
        }
    }

    pub fn parse(s: &str) -> Option<Severity> {
        Severity::ALL
            .into_iter()
            .find(|v| v.as_str().eq_ignore_ascii_case(s))
    }
}

/// Whether the gate deploys, or only decides and reports (how a team adopts it safely).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    #[default]
    Enforce,
    Observe,
}

/// A known vulnerability a service accepts until a date, with the reason written down.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exception {
    /// `CVE-2024-1234`, `GHSA-xxxx-xxxx-xxxx` or another scanner's id.
    pub id: String,
    pub reason: String,
    /// The last day the exception applies.
    pub expires: Date,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gate {
    pub require: BTreeSet<SignalKind>,
    /// Who counts for each signal: the AWS-proven ones the projects and image repository imply,
    /// then those the policy names. A signal from anyone else is rejected.
    pub senders: BTreeMap<SignalKind, Vec<Sender>>,
    /// The most findings allowed per severity; a severity not listed is not limited.
    pub max_findings: BTreeMap<Severity, u64>,
    pub exceptions: Vec<Exception>,
    /// How long after a candidate's first signal the rest may arrive.
    pub deadline_minutes: u32,
    pub mode: Mode,
}

impl Gate {
    /// Who counts for `kind` (none: nobody may report it).
    pub fn senders(&self, kind: &SignalKind) -> &[Sender] {
        self.senders.get(kind).map_or(&[], Vec::as_slice)
    }

    /// Whether a signal of `kind` from `from` counts for this service.
    pub fn counts(&self, kind: &SignalKind, from: &Sender) -> bool {
        self.senders(kind).contains(from)
    }
}

/// Whether alarm-rollback rolls back, or only decides and reports (`Rollback Would Start`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum RollbackMode {
    #[default]
    Enforce,
    DryRun,
}

/// When and how often a service is rolled back automatically.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rollback {
    /// Alarms that roll it back, besides those tagged `eddo:service`: names, or ARNs (starting
    /// `arn:`), `*` matching any run of characters.
    pub alarms: Vec<String>,
    /// How long after a deployment goes live an alarm still rolls it back.
    pub bake_minutes: u32,
    /// The least time between two automatic rollbacks of the service.
    pub cooldown_minutes: u32,
    /// At most this many automatic rollbacks in `window_hours`; then a person decides.
    pub max_rollbacks: u32,
    pub window_hours: u32,
    /// Whether an alarm going to INSUFFICIENT_DATA counts (missing data from a dead service).
    pub on_insufficient_data: bool,
    /// How long a rollback holds the service's deployments if its build never reports.
    pub hold_minutes: u32,
    pub mode: RollbackMode,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Projects {
    pub build: Option<ProjectName>,
    pub sast: Option<ProjectName>,
    pub deploy: ProjectName,
    pub rollback: Option<ProjectName>,
}

/// What a CodeBuild project is to its service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProjectRole {
    Build,
    Sast,
    Deploy,
    Rollback,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    pub name: ServiceName,
    pub repositories: Vec<RepoName>,
    /// Branches it deploys from.
    pub branches: Vec<String>,
    pub projects: Projects,
    /// The ECR repository its images are pushed to (name, not ARN).
    pub image_repository: Option<String>,
    pub gate: Gate,
    pub rollback: Option<Rollback>,
}

/// What a tenant input's value must look like. Every kind refuses control characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum InputKind {
    /// Free text, without the characters bash still expands inside double quotes (`$`, a
    /// backtick, `\`): a buildspec that quotes it ("$TENANT_NAME") runs it as data.
    Text,
    /// An e-mail address: one `@`, no spaces or quotes.
    Email,
    /// A DNS label, safe unquoted: lower-case letters, digits and '-'.
    DnsLabel,
}

/// A value a tenant request may carry, and the build variable it becomes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantInput {
    /// Its key in the request (`tenantName`).
    pub name: String,
    /// The environment variable the build gets it in (`TENANT_NAME`).
    pub env: String,
    pub kind: InputKind,
    pub required: bool,
    pub max_length: usize,
}

/// A CodeBuild project a tier runs, and its timeout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantJob {
    pub project: ProjectName,
    pub timeout_minutes: u32,
}

/// How the tenants of one tier are provisioned and deprovisioned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tier {
    pub name: TierName,
    pub provision: TenantJob,
    pub deprovision: TenantJob,
    /// How many times a failed provisioning build is started again before the tenant is failed.
    pub retries: u32,
    /// The values a request may carry, in the order the build gets them.
    pub inputs: Vec<TenantInput>,
    /// The exported build variables `Tenant Provisioned` may carry; nothing else leaves the build.
    pub outputs: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub services: BTreeMap<ServiceName, Service>,
    pub tiers: BTreeMap<TierName, Tier>,
}

/// Why a policy document was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("policy: {0}")]
pub struct PolicyError(pub String);

// The document as written; `deny_unknown_fields` so a misspelt key is an error, not a default.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Doc {
    version: u32,
    #[serde(default)]
    services: BTreeMap<ServiceName, ServiceDoc>,
    #[serde(default)]
    tenants: Option<TenantsDoc>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TenantsDoc {
    tiers: BTreeMap<TierName, TierDoc>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TierDoc {
    provision: JobDoc,
    deprovision: JobDoc,
    #[serde(default)]
    retries: u32,
    #[serde(default)]
    inputs: BTreeMap<String, InputDoc>,
    #[serde(default)]
    outputs: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct JobDoc {
    project: ProjectName,
    #[serde(default = "default_tenant_timeout")]
    timeout_minutes: u32,
}

fn default_tenant_timeout() -> u32 {
    60
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct InputDoc {
    env: String,
    kind: InputKind,
    #[serde(default)]
    required: bool,
    #[serde(default = "default_max_length")]
    max_length: usize,
}

fn default_max_length() -> usize {
    128
}

/// Request keys eddo reads itself; a tier's input cannot take one of these names.
pub const RESERVED_INPUTS: [&str; 5] = [
    "tenantId",
    "tenant_id",
    "tier",
    "tenantRegistrationId",
    "metadata",
];

/// Words that mark a variable as a secret: such a variable is never a tier's output, because
/// outputs are published on the bus. A secret goes to Secrets Manager; its ARN is the output.
const SECRET_WORDS: [&str; 6] = [
    "SECRET",
    "PASSWORD",
    "TOKEN",
    "PRIVATE",
    "CREDENTIAL",
    "API_KEY",
];

fn env_name(s: &str) -> bool {
    (1..=128).contains(&s.len())
        && s.as_bytes()[0].is_ascii_alphabetic()
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

fn tier(name: &TierName, t: TierDoc) -> Result<Tier, PolicyError> {
    let bad =
        |field: &str, why: String| PolicyError(format!("tenants.tiers.{name}.{field}: {why}"));
    for (field, job) in [("provision", &t.provision), ("deprovision", &t.deprovision)] {
        if !(5..=480).contains(&job.timeout_minutes) {
            return Err(bad(
                &format!("{field}.timeout_minutes"),
                format!("{} is not between 5 and 480 minutes", job.timeout_minutes),
            ));
        }
    }
    if t.retries > 5 {
        return Err(bad(
            "retries",
            format!("{} is not between 0 and 5", t.retries),
        ));
    }
    let mut inputs = Vec::new();
    let mut envs = BTreeSet::new();
    for (key, i) in t.inputs {
        let field = format!("inputs.{key}");
        let key_ok = (1..=64).contains(&key.len())
            && key.as_bytes()[0].is_ascii_alphabetic()
            && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if !key_ok || RESERVED_INPUTS.contains(&key.as_str()) {
            return Err(bad(
                &field,
                format!(
                    "{key:?} cannot name an input: 1 to 64 letters, digits and '_', not one of {}",
                    RESERVED_INPUTS.join(", ")
                ),
            ));
        }
        let reserved = ["EDDO_", "CODEBUILD_", "AWS_"];
        if !env_name(&i.env) || reserved.iter().any(|p| i.env.starts_with(p)) {
            return Err(bad(
                &format!("{field}.env"),
                format!(
                    "{:?} is not a variable a request may set: letters, digits and '_', not starting EDDO_, CODEBUILD_ or AWS_",
                    i.env
                ),
            ));
        }
        if !envs.insert(i.env.clone()) {
            return Err(bad(
                &format!("{field}.env"),
                format!("{} is already another input's variable", i.env),
            ));
        }
        if !(1..=1024).contains(&i.max_length) {
            return Err(bad(
                &format!("{field}.max_length"),
                format!("{} is not between 1 and 1024", i.max_length),
            ));
        }
        inputs.push(TenantInput {
            name: key,
            env: i.env,
            kind: i.kind,
            required: i.required,
            max_length: i.max_length,
        });
    }
    for (n, o) in t.outputs.iter().enumerate() {
        if !env_name(o) {
            return Err(bad(
                &format!("outputs[{n}]"),
                format!("{o:?} is not an exported variable's name"),
            ));
        }
        let upper = o.to_ascii_uppercase();
        if let Some(word) = SECRET_WORDS.iter().find(|w| upper.contains(*w)) {
            return Err(bad(
                &format!("outputs[{n}]"),
                format!(
                    "{o} looks like a secret ({word}) and outputs are published on the bus; put the secret in Secrets Manager and export its ARN"
                ),
            ));
        }
    }
    Ok(Tier {
        name: name.clone(),
        provision: TenantJob {
            project: t.provision.project,
            timeout_minutes: t.provision.timeout_minutes,
        },
        deprovision: TenantJob {
            project: t.deprovision.project,
            timeout_minutes: t.deprovision.timeout_minutes,
        },
        retries: t.retries,
        inputs,
        outputs: t.outputs,
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ServiceDoc {
    repositories: Vec<RepoName>,
    branches: Vec<String>,
    projects: ProjectsDoc,
    #[serde(default)]
    image_repository: Option<String>,
    gate: GateDoc,
    #[serde(default)]
    rollback: Option<RollbackDoc>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RollbackDoc {
    #[serde(default)]
    alarms: Vec<String>,
    bake_minutes: u32,
    #[serde(default = "default_cooldown")]
    cooldown_minutes: u32,
    #[serde(default = "default_max_rollbacks")]
    max_rollbacks: u32,
    #[serde(default = "default_window")]
    window_hours: u32,
    #[serde(default)]
    on_insufficient_data: bool,
    #[serde(default = "default_hold")]
    hold_minutes: u32,
    #[serde(default)]
    mode: RollbackMode,
}

fn default_cooldown() -> u32 {
    30
}

fn default_max_rollbacks() -> u32 {
    3
}

fn default_window() -> u32 {
    24
}

fn default_hold() -> u32 {
    60
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProjectsDoc {
    #[serde(default)]
    build: Option<ProjectName>,
    #[serde(default)]
    sast: Option<ProjectName>,
    deploy: ProjectName,
    #[serde(default)]
    rollback: Option<ProjectName>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GateDoc {
    require: BTreeSet<SignalKind>,
    #[serde(default)]
    senders: BTreeMap<SignalKind, Vec<SenderDoc>>,
    /// Replaced by `senders.sast`, where a check names the app that runs it.
    #[serde(default)]
    sast_checks: Option<serde::de::IgnoredAny>,
    #[serde(default = "default_max_findings")]
    max_findings: BTreeMap<Severity, u64>,
    #[serde(default)]
    exceptions: Vec<ExceptionDoc>,
    deadline_minutes: u32,
    #[serde(default)]
    mode: Mode,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SenderDoc {
    #[serde(default)]
    check: Option<String>,
    #[serde(default)]
    app: Option<String>,
    #[serde(default)]
    sender: Option<SenderName>,
    #[serde(default)]
    source: Option<String>,
}

/// An event source another tool may be let to put: not AWS's, not eddo's own.
fn signal_source(s: &str) -> Result<(), String> {
    let ok = (1..=256).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    if !ok {
        return Err(format!(
            "source {s:?} is not an event source (1 to 256 letters, digits, '.', '_', '-')"
        ));
    }
    if s.starts_with("aws.") || s.starts_with("eddo.") {
        return Err(format!(
            "source {s:?} is reserved: only AWS puts aws.* and only eddo's functions eddo.*"
        ));
    }
    Ok(())
}

fn sender(kind: &SignalKind, d: SenderDoc) -> Result<Sender, String> {
    let sender = match (d.check, d.app, d.sender, d.source) {
        (Some(name), Some(app), None, None)
            if !name.trim().is_empty() && !app.trim().is_empty() =>
        {
            if *kind != SignalKind::Sast && !matches!(kind, SignalKind::Named(_)) {
                return Err(format!("a GitHub check cannot report {kind}"));
            }
            Sender::Check { name, app }
        }
        (Some(_), None, None, None) => {
            return Err(
                "a check names the GitHub App that runs it (app: github-actions), or anyone could report it".into(),
            );
        }
        (None, None, Some(name), None) => Sender::Signed(name),
        (None, None, None, Some(source)) => {
            signal_source(&source)?;
            Sender::Source(source)
        }
        _ => {
            return Err("a sender is one of {check, app}, {sender} or {source}".into());
        }
    };
    if *kind == SignalKind::Build {
        return Err(
            "build is reported by the service's build project only (projects.build), so the image deployed is the one it built".into(),
        );
    }
    Ok(sender)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExceptionDoc {
    id: String,
    reason: String,
    expires: String,
}

fn default_max_findings() -> BTreeMap<Severity, u64> {
    [(Severity::Critical, 0), (Severity::High, 0)].into()
}

fn rollback(r: RollbackDoc) -> Result<Rollback, (String, String)> {
    let range = |field: &str, v: u32, lo: u32, hi: u32, unit: &str| {
        if (lo..=hi).contains(&v) {
            Ok(v)
        } else {
            Err((
                format!("rollback.{field}"),
                format!("{v} is not between {lo} and {hi} {unit}"),
            ))
        }
    };
    for (i, a) in r.alarms.iter().enumerate() {
        if a.trim().is_empty() || a.len() > 1600 {
            return Err((
                format!("rollback.alarms[{i}]"),
                "an alarm name or ARN pattern, 1 to 1600 characters".into(),
            ));
        }
    }
    Ok(Rollback {
        alarms: r.alarms,
        // A week at most: past that an alarm is about something else than the release.
        bake_minutes: range("bake_minutes", r.bake_minutes, 1, 10_080, "minutes")?,
        cooldown_minutes: range("cooldown_minutes", r.cooldown_minutes, 0, 1_440, "minutes")?,
        max_rollbacks: range("max_rollbacks", r.max_rollbacks, 1, 100, "rollbacks")?,
        window_hours: range("window_hours", r.window_hours, 1, 720, "hours")?,
        on_insufficient_data: r.on_insufficient_data,
        // CodeBuild's longest build is 8 hours.
        hold_minutes: range("hold_minutes", r.hold_minutes, 5, 480, "minutes")?,
        mode: r.mode,
    })
}

/// Whether `text` matches `pattern`, where `*` matches any run of characters (none included).
pub fn glob(pattern: &str, text: &str) -> bool {
    let (p, t) = (pattern.as_bytes(), text.as_bytes());
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, ti));
            pi += 1;
        } else if pi < p.len() && p[pi] == t[ti] {
            pi += 1;
            ti += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&b| b == b'*')
}

/// Reads the policy from its SSM parameter (feature `policy-store`); a missing parameter or a bad
/// document is a configuration error naming it, for the function to stop at init with.
#[cfg(feature = "policy-store")]
pub async fn load(sdk: &aws_config::SdkConfig, parameter: &str) -> Result<Policy, String> {
    let out = aws_sdk_ssm::Client::new(sdk)
        .get_parameter()
        .name(parameter)
        .with_decryption(true)
        .send()
        .await
        .map_err(|e| {
            format!(
                "EDDO_POLICY_PARAMETER: could not read SSM parameter {parameter}: {}",
                aws_sdk_ssm::error::DisplayErrorContext(&e)
            )
        })?;
    let text = out
        .parameter()
        .and_then(|p| p.value())
        .ok_or_else(|| format!("EDDO_POLICY_PARAMETER: SSM parameter {parameter} has no value"))?;
    Policy::parse(text).map_err(|e| format!("SSM parameter {parameter}: {e}"))
}

/// [`load`] at init: a missing parameter or a bad document stops the function with the line
/// that names the mistake, which Lambda reports as the init failure.
#[cfg(feature = "policy-store")]
pub async fn load_at_init(sdk: &aws_config::SdkConfig, parameter: &str) -> Policy {
    match load(sdk, parameter).await {
        Ok(p) => p,
        Err(why) => {
            eprintln!("eddo: configuration error: {why}");
            std::process::exit(1)
        }
    }
}

impl Policy {
    /// Parses and checks a policy document (YAML, or JSON, which is YAML).
    pub fn parse(text: &str) -> Result<Policy, PolicyError> {
        let doc: Doc = serde_norway::from_str(text).map_err(|e| PolicyError(e.to_string()))?;
        if doc.version != 1 {
            return Err(PolicyError(format!(
                "version {} is not supported (this eddo reads version 1)",
                doc.version
            )));
        }
        if doc.services.is_empty() && doc.tenants.is_none() {
            return Err(PolicyError(
                "services: no service is declared (and no tenant tier)".into(),
            ));
        }
        let mut services = BTreeMap::new();
        let mut projects: BTreeMap<ProjectName, ServiceName> = BTreeMap::new();
        let mut images: BTreeMap<String, ServiceName> = BTreeMap::new();
        for (name, s) in doc.services {
            let at = |field: &str| format!("services.{name}.{field}");
            let bad = |field: &str, why: String| PolicyError(format!("{}: {why}", at(field)));
            if s.repositories.is_empty() {
                return Err(bad("repositories", "name at least one repository".into()));
            }
            if s.branches.is_empty() || s.branches.iter().any(|b| b.trim().is_empty()) {
                return Err(bad(
                    "branches",
                    "name at least one branch, none empty".into(),
                ));
            }
            let g = s.gate;
            if g.sast_checks.is_some() {
                return Err(bad(
                    "gate.sast_checks",
                    "replaced by gate.senders.sast, where each check names the GitHub App that runs it: {check: CodeQL, app: github-actions}".into(),
                ));
            }
            if g.require.is_empty() {
                return Err(bad("gate.require", "require at least one signal".into()));
            }
            if !(1..=1440).contains(&g.deadline_minutes) {
                return Err(bad(
                    "gate.deadline_minutes",
                    format!("{} is not between 1 and 1440", g.deadline_minutes),
                ));
            }
            if g.require.contains(&SignalKind::Build) && s.projects.build.is_none() {
                return Err(bad(
                    "projects.build",
                    "the gate requires build, so name the build project".into(),
                ));
            }
            if g.require.contains(&SignalKind::ImageScan) && s.image_repository.is_none() {
                return Err(bad(
                    "image_repository",
                    "the gate requires image-scan, so name the ECR repository".into(),
                ));
            }
            if g.require.contains(&SignalKind::ImageScan) && !g.require.contains(&SignalKind::Build)
            {
                return Err(bad(
                    "gate.require",
                    "a scan counts only for the image the service's build reported, so image-scan needs build".into(),
                ));
            }
            let mut senders: BTreeMap<SignalKind, Vec<Sender>> = BTreeMap::new();
            if let Some(p) = &s.projects.build {
                senders.insert(SignalKind::Build, vec![Sender::Project(p.clone())]);
            }
            if let Some(p) = &s.projects.sast {
                senders.insert(SignalKind::Sast, vec![Sender::Project(p.clone())]);
            }
            if s.image_repository.is_some() {
                senders.insert(SignalKind::ImageScan, vec![Sender::ImageScanner]);
            }
            for (kind, list) in g.senders {
                for (i, d) in list.into_iter().enumerate() {
                    let sender = sender(&kind, d)
                        .map_err(|why| bad(&format!("gate.senders.{kind}[{i}]"), why))?;
                    let known = senders.entry(kind.clone()).or_default();
                    if !known.contains(&sender) {
                        known.push(sender);
                    }
                }
            }
            for kind in &g.require {
                if senders.get(kind).is_none_or(Vec::is_empty) {
                    return Err(bad(
                        "gate.require",
                        format!("nobody can report {kind}: name who may under gate.senders.{kind}"),
                    ));
                }
            }
            let mut exceptions = Vec::new();
            for (i, e) in g.exceptions.into_iter().enumerate() {
                let field = format!("gate.exceptions[{i}]");
                if e.id.trim().is_empty() || e.id.contains(char::is_whitespace) {
                    return Err(bad(
                        &field,
                        format!("id {:?} is not a vulnerability id", e.id),
                    ));
                }
                if e.reason.trim().is_empty() {
                    return Err(bad(&field, format!("{}: write down the reason", e.id)));
                }
                let expires = Date::parse(&e.expires).map_err(|why| bad(&field, why))?;
                exceptions.push(Exception {
                    id: e.id,
                    reason: e.reason,
                    expires,
                });
            }
            let p = s.projects;
            for (role, project) in [
                ("build", &p.build),
                ("sast", &p.sast),
                ("deploy", &Some(p.deploy.clone())),
                ("rollback", &p.rollback),
            ] {
                if let Some(project) = project
                    && let Some(other) = projects.insert(project.clone(), name.clone())
                {
                    {
                        return Err(bad(
                            &format!("projects.{role}"),
                            format!(
                                "project {project} is already used by {}; each project belongs to one service and one role",
                                if other == name {
                                    "this service".to_string()
                                } else {
                                    format!("service {other}")
                                }
                            ),
                        ));
                    }
                }
            }
            let rollback = match (s.rollback, &p.rollback) {
                (None, None) => None,
                (None, Some(project)) => {
                    return Err(bad(
                        "rollback",
                        format!(
                            "projects.rollback names {project}, so say when to use it (alarms, bake_minutes)"
                        ),
                    ));
                }
                (Some(_), None) => {
                    return Err(bad(
                        "projects.rollback",
                        "a rollback section needs the rollback project it starts".into(),
                    ));
                }
                (Some(r), Some(_)) => Some(rollback(r).map_err(|(f, why)| bad(&f, why))?),
            };
            if let Some(repo) = &s.image_repository
                && let Some(other) = images.insert(repo.clone(), name.clone())
            {
                {
                    return Err(bad(
                        "image_repository",
                        format!("{repo} is already the image repository of service {other}"),
                    ));
                }
            }
            services.insert(
                name.clone(),
                Service {
                    name,
                    repositories: s.repositories,
                    branches: s.branches,
                    projects: Projects {
                        build: p.build,
                        sast: p.sast,
                        deploy: p.deploy,
                        rollback: p.rollback,
                    },
                    image_repository: s.image_repository,
                    gate: Gate {
                        require: g.require,
                        senders,
                        max_findings: g.max_findings,
                        exceptions,
                        deadline_minutes: g.deadline_minutes,
                        mode: g.mode,
                    },
                    rollback,
                },
            );
        }
        let mut tiers = BTreeMap::new();
        if let Some(tenants) = doc.tenants {
            if tenants.tiers.is_empty() {
                return Err(PolicyError(
                    "tenants.tiers: declare at least one tier".into(),
                ));
            }
            for (name, t) in tenants.tiers {
                let tier = tier(&name, t)?;
                for (field, job) in [
                    ("provision", &tier.provision),
                    ("deprovision", &tier.deprovision),
                ] {
                    if let Some(other) = projects.get(&job.project) {
                        return Err(PolicyError(format!(
                            "tenants.tiers.{name}.{field}.project: project {} is already used by service {other}; a tenant project serves tenants only",
                            job.project
                        )));
                    }
                }
                tiers.insert(name, tier);
            }
        }
        Ok(Policy { services, tiers })
    }

    pub fn tier(&self, name: &str) -> Option<&Tier> {
        self.tiers.values().find(|t| t.name.as_str() == name)
    }

    /// Whether a CodeBuild project provisions or deprovisions tenants.
    pub fn tenant_project(&self, project: &str) -> bool {
        self.tiers.values().any(|t| {
            t.provision.project.as_str() == project || t.deprovision.project.as_str() == project
        })
    }

    pub fn service(&self, name: &str) -> Option<&Service> {
        self.services.values().find(|s| s.name.as_str() == name)
    }

    /// The service a CodeBuild project belongs to, and its role there.
    pub fn project(&self, project: &str) -> Option<(&Service, ProjectRole)> {
        self.services.values().find_map(|s| {
            let p = &s.projects;
            let is = |n: &Option<ProjectName>| n.as_ref().is_some_and(|n| n.as_str() == project);
            if is(&p.build) {
                Some((s, ProjectRole::Build))
            } else if is(&p.sast) {
                Some((s, ProjectRole::Sast))
            } else if p.deploy.as_str() == project {
                Some((s, ProjectRole::Deploy))
            } else if is(&p.rollback) {
                Some((s, ProjectRole::Rollback))
            } else {
                None
            }
        })
    }

    /// The services whose rollback policy names the alarm (by name or by ARN).
    pub fn alarm<'a, 'b>(
        &'a self,
        name: &'b str,
        arn: Option<&'b str>,
    ) -> impl Iterator<Item = &'a Service> + use<'a, 'b> {
        self.services.values().filter(move |s| {
            s.rollback.as_ref().is_some_and(|r| {
                r.alarms.iter().any(|p| match p.strip_prefix("arn:") {
                    Some(_) => arn.is_some_and(|arn| glob(p, arn)),
                    None => glob(p, name),
                })
            })
        })
    }

    /// The service whose images go to the ECR repository `name`.
    pub fn image_repository(&self, name: &str) -> Option<&Service> {
        self.services
            .values()
            .find(|s| s.image_repository.as_deref() == Some(name))
    }

    /// Every event source the policy lets another tool report a signal from: the bus must let
    /// only the listed roles put them (template parameter `SignalSources`).
    pub fn signal_sources(&self) -> BTreeSet<&str> {
        self.services
            .values()
            .flat_map(|s| s.gate.senders.values().flatten())
            .filter_map(|s| match s {
                Sender::Source(source) => Some(source.as_str()),
                _ => None,
            })
            .collect()
    }

    /// The services deployed from `repo` (a monorepo may hold several).
    pub fn repository(&self, repo: &str) -> impl Iterator<Item = &Service> {
        self.services.values().filter(move |s| {
            s.repositories
                .iter()
                .any(|r| r.as_str().eq_ignore_ascii_case(repo))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
version: 1
services:
  payments:
    repositories: [acme/payments]
    branches: [main]
    projects: {build: payments-build, sast: payments-sast, deploy: payments-deploy}
    image_repository: payments
    gate:
      require: [build, image-scan, sast]
      max_findings: {CRITICAL: 0, HIGH: 2}
      exceptions:
        - {id: CVE-2024-1234, reason: not reachable, expires: "2027-01-31"}
      deadline_minutes: 30
"#;

    #[test]
    fn a_good_policy_parses_into_lookups() {
        let p = Policy::parse(GOOD).unwrap();
        let s = p.service("payments").unwrap();
        assert_eq!(s.gate.mode, Mode::Enforce);
        assert_eq!(s.gate.max_findings[&Severity::High], 2);
        assert_eq!(s.gate.exceptions[0].expires.to_string(), "2027-01-31");
        assert_eq!(p.project("payments-sast").unwrap().1, ProjectRole::Sast);
        assert_eq!(p.project("payments-deploy").unwrap().1, ProjectRole::Deploy);
        assert!(p.project("other").is_none());
        assert_eq!(
            p.image_repository("payments").unwrap().name.as_str(),
            "payments"
        );
        assert_eq!(p.repository("ACME/Payments").count(), 1);
    }

    #[test]
    fn each_mistake_is_named_where_it_is() {
        for (change, says) in [
            (("version: 1", "version: 2"), "version 2 is not supported"),
            (
                ("require: [build", "requir: [build"),
                "unknown field `requir`",
            ),
            (
                ("payments:\n    repo", "Payments:\n    repo"),
                "not a service name",
            ),
            (
                ("acme/payments", "payments"),
                "not a repository like owner/name",
            ),
            (
                ("build: payments-build, ", ""),
                "services.payments.projects.build: the gate requires build",
            ),
            (
                ("    image_repository: payments\n", ""),
                "services.payments.image_repository",
            ),
            (
                ("deadline_minutes: 30", "deadline_minutes: 0"),
                "0 is not between 1 and 1440",
            ),
            (
                ("2027-01-31", "2027-02-30"),
                "gate.exceptions[0]: \"2027-02-30\" is not a date",
            ),
            (
                ("reason: not reachable", "reason: ' '"),
                "write down the reason",
            ),
            (
                ("sast: payments-sast", "sast: payments-build"),
                "project payments-build is already used by this service",
            ),
            (("HIGH: 2", "SEVERE: 2"), "SEVERE"),
            (
                ("[build, image-scan, sast]", "[build, image-scan, dast]"),
                "dast",
            ),
        ] {
            let text = GOOD.replacen(change.0, change.1, 1);
            assert_ne!(text, GOOD, "{change:?} changed nothing");
            let err = Policy::parse(&text).unwrap_err().to_string();
            assert!(err.contains(says), "{change:?}: {err}");
        }
    }

    #[test]
    fn senders_are_named_per_signal_and_the_proven_ones_come_with_the_projects() {
        let text = GOOD.replace(
            "      deadline_minutes: 30",
            "      deadline_minutes: 30\n      senders:\n        sast: [{check: CodeQL, app: github-actions}]\n        contract: [{sender: contract-check}, {source: com.acme.ci}]",
        );
        let p = Policy::parse(&text).unwrap();
        let g = &p.service("payments").unwrap().gate;
        let sast = g.senders(&SignalKind::Sast);
        assert_eq!(
            sast,
            &[
                Sender::Project(ProjectName::parse("payments-sast").unwrap()),
                Sender::Check {
                    name: "CodeQL".into(),
                    app: "github-actions".into()
                }
            ]
        );
        assert!(g.counts(&SignalKind::ImageScan, &Sender::ImageScanner));
        assert!(g.counts(
            &SignalKind::Build,
            &Sender::Project(ProjectName::parse("payments-build").unwrap())
        ));
        let contract = SignalKind::parse("contract").unwrap();
        assert!(g.counts(&contract, &Sender::Source("com.acme.ci".into())));
        assert!(!g.counts(&SignalKind::Sast, &Sender::Source("com.acme.ci".into())));
        assert_eq!(
            p.signal_sources().into_iter().collect::<Vec<_>>(),
            ["com.acme.ci"]
        );

        for (senders, says) in [
            ("sast: [{check: CodeQL}]", "names the GitHub App"),
            ("sast: [{source: eddo.webhook}]", "reserved"),
            ("sast: [{source: aws.codebuild}]", "reserved"),
            (
                "build: [{source: com.acme.ci}]",
                "build is reported by the service's build project only",
            ),
            ("sast: [{sender: Chat Ops}]", "not a sender name"),
            ("sast: [{sender: a, source: b}]", "one of"),
            (
                "approval: [{check: x, app: y}]",
                "a GitHub check cannot report approval",
            ),
        ] {
            let text = GOOD.replace(
                "      deadline_minutes: 30",
                &format!("      deadline_minutes: 30\n      senders: {{{senders}}}"),
            );
            let err = Policy::parse(&text).unwrap_err().to_string();
            assert!(err.contains(says), "{senders}: {err}");
        }
        // A required signal nobody may report, a scan without a build, the old key.
        for (change, says) in [
            ("[build, image-scan, sast]", "nobody can report dast"),
            ("[build, image-scan, sast]", "image-scan needs build"),
        ] {
            let to = if says.contains("dast") {
                "[build, image-scan, dast]"
            } else {
                "[image-scan, sast]"
            };
            let err = Policy::parse(&GOOD.replace(change, to))
                .unwrap_err()
                .to_string();
            assert!(err.contains(says), "{err}");
        }
        let err = Policy::parse(&GOOD.replace(
            "      deadline_minutes: 30",
            "      deadline_minutes: 30\n      sast_checks: [CodeQL]",
        ))
        .unwrap_err()
        .to_string();
        assert!(err.contains("replaced by gate.senders.sast"), "{err}");
    }

    const WITH_ROLLBACK: &str = r#"
version: 1
services:
  payments:
    repositories: [acme/payments]
    branches: [main]
    projects: {deploy: payments-deploy, rollback: payments-rollback}
    gate: {require: [approval], senders: {approval: [{sender: chatops}]}, deadline_minutes: 30}
    rollback:
      alarms: [payments-5xx, "arn:aws:cloudwatch:*:*:alarm:payments-*"]
      bake_minutes: 60
"#;

    #[test]
    fn a_rollback_section_has_defaults_and_maps_alarms() {
        let p = Policy::parse(WITH_ROLLBACK).unwrap();
        let r = p.service("payments").unwrap().rollback.clone().unwrap();
        assert_eq!(
            (
                r.cooldown_minutes,
                r.max_rollbacks,
                r.window_hours,
                r.hold_minutes
            ),
            (30, 3, 24, 60)
        );
        assert_eq!(r.mode, RollbackMode::Enforce);
        assert!(!r.on_insufficient_data);
        assert_eq!(p.alarm("payments-5xx", None).count(), 1);
        assert_eq!(
            p.alarm(
                "payments-latency",
                Some("arn:aws:cloudwatch:eu-west-1:1:alarm:payments-latency")
            )
            .count(),
            1
        );
        // A name pattern never matches an ARN pattern's text, and the reverse.
        assert_eq!(p.alarm("payments-latency", None).count(), 0);
        assert_eq!(
            p.alarm("other", Some("arn:aws:cloudwatch:x:1:alarm:other"))
                .count(),
            0
        );
    }

    #[test]
    fn rollback_mistakes_are_named() {
        for (change, says) in [
            (
                (
                    "deploy: payments-deploy, rollback: payments-rollback",
                    "deploy: payments-deploy",
                ),
                "services.payments.projects.rollback: a rollback section needs the rollback project",
            ),
            (
                ("bake_minutes: 60", "bake_minutes: 0"),
                "services.payments.rollback.bake_minutes: 0 is not between 1 and 10080 minutes",
            ),
            (
                ("bake_minutes: 60", "bake_minutes: 60\n      cooldown: 5"),
                "unknown field `cooldown`",
            ),
            (
                ("bake_minutes: 60", "bake_minutes: 60\n      mode: yolo"),
                "unknown variant `yolo`",
            ),
            (("payments-5xx,", "' ',"), "rollback.alarms[0]"),
        ] {
            let text = WITH_ROLLBACK.replacen(change.0, change.1, 1);
            assert_ne!(text, WITH_ROLLBACK, "{change:?} changed nothing");
            let err = Policy::parse(&text).unwrap_err().to_string();
            assert!(err.contains(says), "{change:?}: {err}");
        }
        let no_section = WITH_ROLLBACK.split("    rollback:\n").next().unwrap();
        let err = Policy::parse(no_section).unwrap_err().to_string();
        assert!(
            err.contains("projects.rollback names payments-rollback"),
            "{err}"
        );
    }

    const TENANTS: &str = r#"
version: 1
tenants:
  tiers:
    basic:
      provision: {project: tenant-provision, timeout_minutes: 30}
      deprovision: {project: tenant-deprovision}
      retries: 1
      inputs:
        tenantName: {env: TENANT_NAME, kind: text, required: true, max_length: 64}
        email: {env: TENANT_EMAIL, kind: email}
      outputs: [TENANT_URL]
"#;

    #[test]
    fn tenant_tiers_parse_without_services() {
        let p = Policy::parse(TENANTS).unwrap();
        assert!(p.services.is_empty());
        let t = p.tier("basic").unwrap();
        assert_eq!(t.provision.timeout_minutes, 30);
        assert_eq!(t.deprovision.timeout_minutes, 60);
        assert_eq!(t.retries, 1);
        assert_eq!(t.inputs.len(), 2);
        assert_eq!(t.inputs[1].name, "tenantName");
        assert!(t.inputs[1].required && !t.inputs[0].required);
        assert_eq!(t.inputs[0].max_length, 128);
        assert!(p.tenant_project("tenant-deprovision"));
        assert!(!p.tenant_project("other"));
        assert!(p.tier("premium").is_none());
    }

    #[test]
    fn tenant_mistakes_are_named() {
        for (change, says) in [
            (
                ("timeout_minutes: 30", "timeout_minutes: 1"),
                "tenants.tiers.basic.provision.timeout_minutes: 1 is not between 5 and 480",
            ),
            (("retries: 1", "retries: 9"), "tenants.tiers.basic.retries"),
            (
                ("env: TENANT_NAME", "env: EDDO_TENANT_NAME"),
                "tenants.tiers.basic.inputs.tenantName.env",
            ),
            (
                ("env: TENANT_EMAIL", "env: TENANT_NAME"),
                "TENANT_NAME is already another input's variable",
            ),
            (("tenantName:", "tier:"), "\"tier\" cannot name an input"),
            (("kind: email", "kind: url"), "unknown variant `url`"),
            (
                ("[TENANT_URL]", "[TENANT_URL, DB_PASSWORD]"),
                "tenants.tiers.basic.outputs[1]: DB_PASSWORD looks like a secret",
            ),
            (("basic:", "Basic:"), "not a tier name"),
            (("retries: 1", "retry: 1"), "unknown field `retry`"),
        ] {
            let text = TENANTS.replacen(change.0, change.1, 1);
            assert_ne!(text, TENANTS, "{change:?} changed nothing");
            let err = Policy::parse(&text).unwrap_err().to_string();
            assert!(err.contains(says), "{change:?}: {err}");
        }
        let shared = format!(
            "{}{}",
            GOOD,
            TENANTS
                .replace("version: 1\n", "")
                .replace("project: tenant-provision", "project: payments-deploy")
        );
        let err = Policy::parse(&shared).unwrap_err().to_string();
        assert!(
            err.contains("project payments-deploy is already used by service payments"),
            "{err}"
        );
    }

    #[test]
    fn glob_matches_like_a_shell_star() {
        for (p, t, m) in [
            ("a*c", "abc", true),
            ("a*c", "ac", true),
            ("a*c", "abd", false),
            ("*", "", true),
            ("a**b", "ab", true),
            ("*-5xx", "payments-5xx", true),
            ("payments", "payments-5xx", false),
            ("a*b*c", "aXbYbZc", true),
        ] {
            assert_eq!(glob(p, t), m, "{p} vs {t}");
        }
    }
}

//! How each tenant tier is provisioned: its projects, the inputs a request may carry, the
//! outputs a build may return.

use super::mistakes::Found;
use super::*;

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
    /// The version of the SSM parameter this tier was read from ([`super::Service::policy_version`]).
    pub policy_version: Option<PolicyVersion>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct TenantsDoc {
    pub(super) tiers: BTreeMap<TierName, TierDoc>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct TierDoc {
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

/// One tier, checked; `None` when it has a mistake (added to `found`).
pub(super) fn tier(name: &TierName, t: TierDoc, found: &mut Found) -> Option<Tier> {
    let before = found.len();
    let mut bad =
        |field: &str, why: String| found.add(format!("tenants.tiers.{name}.{field}"), why);
    for (field, job) in [("provision", &t.provision), ("deprovision", &t.deprovision)] {
        if !(5..=480).contains(&job.timeout_minutes) {
            bad(
                &format!("{field}.timeout_minutes"),
                format!("{} is not between 5 and 480 minutes", job.timeout_minutes),
            );
        }
    }
    if t.retries > 5 {
        bad("retries", format!("{} is not between 0 and 5", t.retries));
    }
    let mut inputs = Vec::new();
    let mut envs = BTreeSet::new();
    for (key, i) in t.inputs {
        let field = format!("inputs.{key}");
        let key_ok = (1..=64).contains(&key.len())
            && key.as_bytes()[0].is_ascii_alphabetic()
            && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if !key_ok || RESERVED_INPUTS.contains(&key.as_str()) {
            bad(
                &field,
                format!(
                    "{key:?} cannot name an input: 1 to 64 letters, digits and '_', not one of {}",
                    RESERVED_INPUTS.join(", ")
                ),
            );
        }
        let reserved = ["EDDO_", "CODEBUILD_", "AWS_"];
        if !env_name(&i.env) || reserved.iter().any(|p| i.env.starts_with(p)) {
            bad(
                &format!("{field}.env"),
                format!(
                    "{:?} is not a variable a request may set: letters, digits and '_', not starting EDDO_, CODEBUILD_ or AWS_",
                    i.env
                ),
            );
        }
        if !envs.insert(i.env.clone()) {
            bad(
                &format!("{field}.env"),
                format!("{} is already another input's variable", i.env),
            );
        }
        if !(1..=1024).contains(&i.max_length) {
            bad(
                &format!("{field}.max_length"),
                format!("{} is not between 1 and 1024", i.max_length),
            );
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
            bad(
                &format!("outputs[{n}]"),
                format!("{o:?} is not an exported variable's name"),
            );
        }
        let upper = o.to_ascii_uppercase();
        if let Some(word) = SECRET_WORDS.iter().find(|w| upper.contains(*w)) {
            bad(
                &format!("outputs[{n}]"),
                format!(
                    "{o} looks like a secret ({word}) and outputs are published on the bus; put the secret in Secrets Manager and export its ARN"
                ),
            );
        }
    }
    if found.len() > before {
        return None;
    }
    Some(Tier {
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
        policy_version: None,
    })
}

//! How far one deployment scales with its policy: for policies of N services shaped like the
//! example's one ([`crate::fixtures::policy_of_services`], comments stripped), the policy's size
//! against the SSM parameter that holds it, the largest template parameter `eddo policy params`
//! prints for it, and whether the template provisions with those parameters through the local
//! stack's quota checks ([`crate::quotas`]), or the quota it breaks first.

use crate::LocalError;
use crate::moto::Moto;
use crate::stack::Stack;

/// One policy size, measured.
#[derive(Debug, Clone)]
pub struct Scale {
    pub services: usize,
    /// The policy's bytes, comments stripped.
    pub policy_bytes: usize,
    /// The largest template parameter the policy implies: its name and bytes.
    pub largest_parameter: (String, usize),
    /// The template's resources once provisioned, or the quota it broke first.
    pub provisioned: Result<usize, String>,
}

/// `text` without its comment lines and trailing comments (the example policy's are all
/// ` # ...` after a value, or whole lines).
pub fn without_comments(text: &str) -> String {
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .map(|l| {
            l.split_once("  #")
                .map_or(l, |(before, _)| before)
                .trim_end()
        })
        .filter(|l| !l.is_empty())
        .map(|l| format!("{l}\n"))
        .collect()
}

/// Measures a policy of `services` services on an emulator of its own.
pub async fn measure(services: usize) -> Result<Scale, LocalError> {
    let text = without_comments(&crate::fixtures::policy_of_services(services)?);
    let policy =
        eddo::policy::Policy::parse(&text).map_err(|e| LocalError::Setup(e.to_string()))?;
    let parameters = eddo::projects::PolicyProjects::of(&policy).template_parameters();
    let largest = parameters
        .iter()
        .map(|(k, v)| (k.to_string(), v.len()))
        .max_by_key(|(_, n)| *n)
        .unwrap_or_default();
    let moto = Moto::start()?;
    let overrides: Vec<(&str, &str)> = parameters.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let provisioned =
        match Stack::provision_with(&moto.sdk_config().await, "scale", &overrides).await {
            Ok(stack) => Ok(stack.resources),
            Err(LocalError::Quota(why)) => Err(why),
            Err(other) => return Err(other),
        };
    Ok(Scale {
        services,
        policy_bytes: text.len(),
        largest_parameter: largest,
        provisioned,
    })
}

/// How fast a cold function answers its first event with a policy of `services` services.
#[derive(Debug, Clone)]
pub struct FirstResponse {
    pub services: usize,
    /// The policy's bytes, comments kept (as its S3 object holds it).
    pub policy_bytes: usize,
    /// By function: medians of init (process start to its first `GET next`) and of the first
    /// response (process start to its answer), in milliseconds.
    pub functions: Vec<(&'static str, f64, f64)>,
}

/// The policy's object in the first-response runs.
const FIRST_RESPONSE_OBJECT: &str = "s3://scale-first-response/eddo/policy.yaml";

/// Starts the gate and alarm-rollback `cold` times each, with a policy of `services` services in
/// S3 (`PolicyObject`, the store that holds any of these sizes), on an emulator of its own; each
/// start answers one event about the policy's last service (its build's completion for the gate,
/// its alarm's change for alarm-rollback). The functions are the binaries built beside this one
/// (release binaries when this one is).
pub async fn first_response(services: usize, cold: usize) -> Result<FirstResponse, LocalError> {
    use crate::runtime::LocalFunction;
    let text = crate::fixtures::policy_of_services(services)?;
    let policy =
        eddo::policy::Policy::parse(&text).map_err(|e| LocalError::Setup(e.to_string()))?;
    let mut parameters = eddo::projects::PolicyProjects::of(&policy).template_parameters();
    parameters.push(("PolicyObject", FIRST_RESPONSE_OBJECT.to_string()));
    let moto = Moto::start()?;
    let overrides: Vec<(&str, &str)> = parameters.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let stack = Stack::provision_with(&moto.sdk_config().await, "first", &overrides).await?;
    stack.put_policy(&text).await?;
    let service = crate::fixtures::service_name(services - 1);
    let mut functions = Vec::new();
    for binary in ["scan-gate", "alarm-rollback"] {
        let function = LocalFunction::new(stack.spec(binary, &moto.endpoint())?).await?;
        let (mut init, mut first) = (Vec::new(), Vec::new());
        for n in 0..cold.max(1) {
            function.stop().await;
            let event = match binary {
                "scan-gate" => {
                    let id = crate::fixtures::event_id();
                    let repository = format!("eddo-example/{service}");
                    let b = stack.codebuild.ran(
                        &format!("{service}-build"),
                        &id,
                        &crate::fixtures::commit(n as u32),
                        &[("EDDO_REPOSITORY", &repository), ("EDDO_BRANCH", "main")],
                        crate::codebuild::Plan::succeed()
                            .exporting("IMAGE_DIGEST", &crate::fixtures::digest(n as u32)),
                    );
                    crate::fixtures::state_of(&b, &id)
                }
                _ => {
                    let at = eddo::idempotency::now_epoch() + n as u64;
                    let e = crate::fixtures::alarm(&format!("{service}-5xx"), "OK", "ALARM", at);
                    crate::cloudwatch::ran(&stack.sdk, &e).await?;
                    e
                }
            };
            let out = function.invoke(&event).await?;
            if out.outcome.json().is_none() {
                return Err(LocalError::Setup(format!(
                    "{binary} with {services} services: {:?}",
                    out.outcome
                )));
            }
            let c = function
                .cold_start()
                .ok_or_else(|| LocalError::Setup("no cold-start timings".into()))?;
            init.push(c.to_first_next.as_secs_f64() * 1000.0);
            first.push(c.to_first_response.unwrap_or_default().as_secs_f64() * 1000.0);
        }
        function.stop().await;
        functions.push((
            binary,
            crate::measure::median(&init),
            crate::measure::median(&first),
        ));
    }
    Ok(FirstResponse {
        services,
        policy_bytes: text.len(),
        functions,
    })
}

/// The first responses as a Markdown table.
pub fn first_response_table(rows: &[FirstResponse]) -> String {
    let mut out = String::from(
        "| services | policy in S3 (bytes) | function | init (median) | first response (median) |\n|---|---|---|---|---|\n",
    );
    for r in rows {
        for (function, init, first) in &r.functions {
            out.push_str(&format!(
                "| {} | {} | {function} | {init:.1} ms | {first:.1} ms |\n",
                r.services, r.policy_bytes
            ));
        }
    }
    out
}

/// The measures as a Markdown table.
pub fn table(rows: &[Scale]) -> String {
    let mut out = String::from(
        "| services | policy (bytes, no comments) | largest parameter | template |\n|---|---|---|---|\n",
    );
    for r in rows {
        let policy = if crate::quotas::ADVANCED_PARAMETER_VALUE.allows(r.policy_bytes) {
            r.policy_bytes.to_string()
        } else {
            format!("{} (over SSM's 8,192)", r.policy_bytes)
        };
        let (name, bytes) = &r.largest_parameter;
        let parameter = if crate::quotas::PARAMETER_VALUE.allows(*bytes) {
            format!("{name}: {bytes}")
        } else {
            format!("{name}: {bytes} (over 4,096)")
        };
        let template = match &r.provisioned {
            Ok(n) => format!("provisions ({n} resources)"),
            Err(why) => format!("refused: {why}"),
        };
        out.push_str(&format!(
            "| {} | {policy} | {parameter} | {} |\n",
            r.services,
            template.replace('|', "/")
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comments_are_stripped_and_the_policy_still_reads() {
        let text = crate::fixtures::policy_of_services(2).unwrap();
        let bare = without_comments(&text);
        assert!(!bare.contains('#') || bare.lines().all(|l| !l.trim_start().starts_with('#')));
        assert!(bare.len() < text.len() / 2);
        let a = eddo::policy::Policy::parse(&text).unwrap();
        let b = eddo::policy::Policy::parse(&bare).unwrap();
        assert_eq!(a.services.len(), b.services.len());
        assert_eq!(
            eddo::projects::PolicyProjects::of(&a).template_parameters(),
            eddo::projects::PolicyProjects::of(&b).template_parameters()
        );
    }
}

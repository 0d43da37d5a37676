//! A template as CloudFormation runs it, the single source of truth of the local stack:
//! `template.yaml` (or any template) with its transforms applied by `translate.py` (Fn::ForEach
//! of AWS::LanguageExtensions, then AWS's own SAM translator), read as plain CloudFormation: its
//! parameters' values, its conditions, and its resources (`AWS::Lambda::Function`,
//! `AWS::Events::Rule` with its targets, `AWS::Lambda::Permission`,
//! `AWS::Lambda::EventInvokeConfig`, `AWS::IAM::Role`, ...), whose properties resolve through
//! [`Names`] as strictly as CloudFormation resolves them.

mod conditions;
mod functions;
mod intrinsics;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::Value as Json;

use crate::LocalError;
pub use intrinsics::{ACCOUNT, Names, REGION};

#[derive(Debug, Clone)]
pub struct Resource {
    pub kind: String,
    /// The template condition that decides whether the resource exists.
    pub condition: Option<String>,
    pub properties: Json,
    pub metadata: Json,
}

#[derive(Debug, Clone)]
pub struct Template {
    /// Each parameter's value, as CloudFormation passes it (checked by the translation).
    pub parameters: BTreeMap<String, String>,
    /// Parameters of type `CommaDelimitedList` (`Ref` answers a list).
    pub list_parameters: Vec<String>,
    /// The `Conditions` section, unevaluated.
    pub conditions: BTreeMap<String, Json>,
    /// The resources that exist: all declared ones until `deployed` drops those whose condition
    /// is false.
    pub resources: BTreeMap<String, Resource>,
    /// Every resource the template declares, by logical id: its type.
    declared: BTreeMap<String, String>,
    /// Declared resources not created because their condition is false.
    absent: HashSet<String>,
}

fn bad(what: impl Into<String>) -> LocalError {
    LocalError::Setup(format!("template: {}", what.into()))
}

/// The property `key` of a resource, resolved; `Null` when absent (or `!Ref AWS::NoValue`).
pub fn property(names: &Names, id: &str, r: &Resource, key: &str) -> Result<Json, LocalError> {
    match r.properties.get(key) {
        Some(v) => {
            let v = names.resolve(v, &format!("resource {id}, Properties.{key}"))?;
            Ok(if intrinsics::is_no_value(&v) {
                Json::Null
            } else {
                v
            })
        }
        None => Ok(Json::Null),
    }
}

impl Template {
    /// The template at `path` after its transforms, with `overrides` as its parameter values.
    pub fn load(path: &Path, overrides: &[(&str, &str)]) -> Result<Template, LocalError> {
        let text =
            std::fs::read_to_string(path).map_err(|e| bad(format!("{}: {e}", path.display())))?;
        Template::translate(&text, overrides)
    }

    /// A template's text (YAML or JSON) after its transforms, as CloudFormation applies them:
    /// `translate.py` in the project's virtualenv. A template or a parameter value CloudFormation
    /// would refuse is an error saying why.
    pub fn translate(text: &str, overrides: &[(&str, &str)]) -> Result<Template, LocalError> {
        let python = crate::moto::python_path();
        let script = crate::moto::project_root().join("infra/local/translate.py");
        let mut child = Command::new(&python)
            .arg(&script)
            .arg("-")
            .args(LOCAL_SSM.iter().map(|(k, v)| format!("--ssm={k}={v}")))
            .args(overrides.iter().map(|(k, v)| format!("{k}={v}")))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| {
                bad(format!(
                    "could not run {} (run `make setup`): {e}",
                    python.display()
                ))
            })?;
        child
            .stdin
            .take()
            .expect("piped")
            .write_all(text.as_bytes())
            .map_err(|e| bad(format!("translate.py: {e}")))?;
        let out = child
            .wait_with_output()
            .map_err(|e| bad(format!("translate.py: {e}")))?;
        if !out.status.success() {
            return Err(bad(String::from_utf8_lossy(&out.stderr).trim().to_string()));
        }
        let translated: Json = serde_json::from_slice(&out.stdout)
            .map_err(|e| bad(format!("translate.py printed no JSON: {e}")))?;
        Template::from_translated(&translated)
    }

    /// `{"template": <plain CloudFormation>, "parameters": {name: value}}`, as `translate.py`
    /// prints it.
    pub fn from_translated(translated: &Json) -> Result<Template, LocalError> {
        let doc = &translated["template"];
        if doc.get("Transform").is_some() {
            return Err(bad("a translated template has no Transform left"));
        }
        let parameters: BTreeMap<String, String> = translated["parameters"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
            .collect();
        let list_parameters = doc["Parameters"]
            .as_object()
            .into_iter()
            .flatten()
            .filter(|(_, p)| p["Type"] == "CommaDelimitedList")
            .map(|(k, _)| k.clone())
            .collect();
        let conditions = doc["Conditions"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let Some(res) = doc["Resources"].as_object() else {
            return Err(bad("no Resources section"));
        };
        let mut resources = BTreeMap::new();
        for (id, r) in res {
            if !id.chars().all(|c| c.is_ascii_alphanumeric()) || id.len() > 255 {
                return Err(bad(format!(
                    "resource {id}: a logical id is 1 to 255 letters and digits"
                )));
            }
            let kind = r["Type"]
                .as_str()
                .ok_or_else(|| bad(format!("resource {id} has no Type")))?;
            let condition = match &r["Condition"] {
                Json::Null => None,
                Json::String(c) => Some(c.clone()),
                other => {
                    return Err(bad(format!(
                        "resource {id}: Condition must name a condition, not {other}"
                    )));
                }
            };
            resources.insert(
                id.clone(),
                Resource {
                    kind: kind.to_string(),
                    condition,
                    properties: r["Properties"].clone(),
                    metadata: r["Metadata"].clone(),
                },
            );
        }
        let declared = resources
            .iter()
            .map(|(id, r)| (id.clone(), r.kind.clone()))
            .collect();
        Ok(Template {
            parameters,
            list_parameters,
            conditions,
            resources,
            declared,
            absent: HashSet::new(),
        })
    }

    /// The template as CloudFormation would deploy it: every condition evaluated (a malformed
    /// one is refused even where nothing uses it), every resource whose condition is false
    /// removed.
    pub fn deployed(&self) -> Result<Template, LocalError> {
        let names = Names::new(self, "eddo");
        for name in self.conditions.keys() {
            names.condition(name)?;
        }
        let mut out = self.clone();
        for (id, r) in &self.resources {
            if let Some(c) = &r.condition
                && !names
                    .condition(c)
                    .map_err(|e| LocalError::Setup(format!("resource {id}, Condition {c}: {e}")))?
            {
                out.resources.remove(id);
                out.absent.insert(id.clone());
            }
        }
        Ok(out)
    }

    /// How many resources the template declares once transformed, whatever their conditions:
    /// what CloudFormation's resource quota counts.
    pub fn declared_resources(&self) -> usize {
        self.declared.len()
    }

    /// The resources of one type, by logical id.
    pub fn of_type<'a>(
        &'a self,
        kind: &'a str,
    ) -> impl Iterator<Item = (&'a str, &'a Resource)> + 'a {
        self.resources
            .iter()
            .filter(move |(_, r)| r.kind == kind)
            .map(|(id, r)| (id.as_str(), r))
    }
}

/// The SSM parameters the local account holds before any stack: the CDK's bootstrap version, as
/// `cdk bootstrap` leaves it (a CDK app's template checks it in its Rules).
pub const LOCAL_SSM: [(&str, &str); 1] = [("/cdk-bootstrap/hnb659fds/version", "30")];

/// The metadata key the CDK construct names each function's binary with (SAM's is
/// `BuildProperties.Binary`).
pub const BINARY_METADATA: &str = "eddo:binary";

/// A function of the template, as the local runtime runs it.
#[derive(Debug, Clone, PartialEq)]
pub struct FunctionDef {
    pub logical_id: String,
    /// The workspace binary it runs: `Metadata.BuildProperties.Binary` (what `sam build`
    /// packages) or `Metadata.eddo:binary` (what the CDK construct bundles).
    pub binary: String,
    pub env: Vec<(String, String)>,
    pub timeout_secs: u64,
    pub memory_mb: u32,
    /// Its execution role's ARN (`Role`).
    pub role: String,
    /// Lambda's attempts of an asynchronous invocation: one plus the function's
    /// `AWS::Lambda::EventInvokeConfig` MaximumRetryAttempts (2 without one, as in Lambda).
    pub attempts: u32,
}

/// Every `AWS::Lambda::Function`, with its environment resolved.
pub fn functions(template: &Template, names: &Names) -> Result<Vec<FunctionDef>, LocalError> {
    let mut retries = HashMap::new();
    for (id, r) in template.of_type("AWS::Lambda::EventInvokeConfig") {
        let function = property(names, id, r, "FunctionName")?;
        let n = property(names, id, r, "MaximumRetryAttempts")?;
        let n = match n {
            Json::Null => 2,
            n => n
                .as_u64()
                .or_else(|| n.as_str().and_then(|s| s.parse().ok()))
                .filter(|n| *n <= 2)
                .ok_or_else(|| {
                    bad(format!(
                        "resource {id}, Properties.MaximumRetryAttempts: 0 to 2, not {n}"
                    ))
                })?,
        };
        retries.insert(function.as_str().unwrap_or_default().to_string(), n as u32);
    }
    let mut out = Vec::new();
    for (id, r) in template.of_type("AWS::Lambda::Function") {
        let binary = r.metadata["BuildProperties"]["Binary"]
            .as_str()
            .or_else(|| r.metadata[BINARY_METADATA].as_str())
            .ok_or_else(|| {
                bad(format!(
                    "{id}: Metadata.BuildProperties.Binary (SAM) or Metadata.{BINARY_METADATA} (the CDK construct) names no binary"
                ))
            })?
            .to_string();
        let mut env = BTreeMap::new();
        let vars = property(names, id, r, "Environment")?;
        for (k, v) in vars["Variables"].as_object().into_iter().flatten() {
            let v = match v {
                Json::String(s) => s.clone(),
                other => other.to_string(),
            };
            env.insert(k.clone(), v);
        }
        let number = |key: &str, default: u64| -> Result<u64, LocalError> {
            Ok(match property(names, id, r, key)? {
                Json::Null => default,
                v => v
                    .as_u64()
                    .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
                    .ok_or_else(|| bad(format!("resource {id}, Properties.{key}: not a number")))?,
            })
        };
        let role = property(names, id, r, "Role")?
            .as_str()
            .ok_or_else(|| bad(format!("resource {id}, Properties.Role: required")))?
            .to_string();
        let name = names.resolve(&serde_json::json!({"Ref": id}), &format!("resource {id}"))?;
        let arn = names.resolve(
            &serde_json::json!({"Fn::GetAtt": [id, "Arn"]}),
            &format!("resource {id}"),
        )?;
        let retries = [name, arn]
            .iter()
            .find_map(|k| retries.get(k.as_str().unwrap_or_default()))
            .copied()
            .unwrap_or(2);
        out.push(FunctionDef {
            logical_id: id.to_string(),
            binary,
            env: env.into_iter().collect(),
            timeout_secs: number("Timeout", 3)?,
            memory_mb: number("MemorySize", 128)? as u32,
            role,
            attempts: 1 + retries,
        });
    }
    Ok(out)
}

/// What a rule target is, as the local stack serves it.
#[derive(Debug, Clone, PartialEq)]
pub enum TargetKind {
    /// A function of the template, by logical id: invoked asynchronously.
    Function(String),
    /// A CodeBuild project, by name: the stand-in starts a build with the target's input as the
    /// StartBuild parameters, as EventBridge does.
    CodeBuild(String),
    /// An API destination, by ARN: the local stack POSTs the target's input to its endpoint
    /// (on loopback) with its connection's authorization, as EventBridge does.
    ApiDestination(String),
    /// Anything else (a queue, another bus, ...), by ARN: not served locally.
    Other(String),
}

impl TargetKind {
    /// The function's logical id, `CodeBuild <project>`, or the ARN.
    pub fn name(&self) -> String {
        match self {
            TargetKind::Function(f) => f.clone(),
            TargetKind::CodeBuild(p) => format!("CodeBuild {p}"),
            TargetKind::ApiDestination(arn) => {
                format!("API destination {}", arn.rsplit(':').next().unwrap_or(arn))
            }
            TargetKind::Other(arn) => arn.clone(),
        }
    }
}

/// One target of a rule, with what EventBridge sends it (`Input`, `InputPath` or
/// `InputTransformer`, kept as the template wrote them so moto applies them).
#[derive(Debug, Clone, PartialEq)]
pub struct TargetDef {
    pub id: String,
    pub kind: TargetKind,
    /// The target's `Input`, `InputPath` and `InputTransformer` properties, if any.
    pub input: serde_json::Map<String, Json>,
    /// The role EventBridge assumes to reach the target (`RoleArn`), if any.
    pub role: Option<String>,
    /// What EventBridge does with the target's events beyond routing them: the part it sends
    /// (`InputPath`), how often it retries, where it puts what it gave up on, and, for an API
    /// destination, the headers it adds.
    pub options: TargetOptions,
}

/// A target's `InputPath`, `RetryPolicy`, `DeadLetterConfig` and
/// `HttpParameters.HeaderParameters`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TargetOptions {
    /// `MaximumRetryAttempts` (EventBridge's default: 185).
    pub retries: u32,
    /// The dead-letter queue's ARN, if the target has one.
    pub dead_letter: Option<String>,
    pub headers: Vec<(String, String)>,
    /// `InputPath` (`$.detail`, say): the part of the event the target gets. moto routes the
    /// whole event and leaves it to the dispatcher.
    pub input_path: Option<String>,
}

/// EventBridge's retries when a target sets no `RetryPolicy`.
pub const DEFAULT_RETRIES: u32 = 185;

impl TargetOptions {
    fn of(target: &Json) -> TargetOptions {
        TargetOptions {
            retries: target["RetryPolicy"]["MaximumRetryAttempts"]
                .as_u64()
                .map_or(DEFAULT_RETRIES, |n| n as u32),
            dead_letter: target["DeadLetterConfig"]["Arn"]
                .as_str()
                .map(str::to_string),
            headers: target["HttpParameters"]["HeaderParameters"]
                .as_object()
                .into_iter()
                .flatten()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                .collect(),
            input_path: target["InputPath"].as_str().map(str::to_string),
        }
    }
}

/// An EventBridge rule of the template and its targets.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleDef {
    /// The rule's logical id (a SAM function event: `<Function><Event>`).
    pub name: String,
    pub bus: String,
    /// The event pattern, as JSON text (empty for a schedule).
    pub pattern: String,
    /// A schedule rule's expression (`rate(1 minute)`); such a rule has no pattern.
    pub schedule: Option<String>,
    pub targets: Vec<TargetDef>,
}

impl RuleDef {
    /// Logical ids of the functions it targets.
    pub fn functions(&self) -> impl Iterator<Item = &str> {
        self.targets.iter().filter_map(|t| match &t.kind {
            TargetKind::Function(f) => Some(f.as_str()),
            _ => None,
        })
    }
}

fn target_kind(arn: &str, function_arns: &HashMap<String, String>) -> TargetKind {
    if let Some(f) = function_arns.get(arn) {
        return TargetKind::Function(f.clone());
    }
    match arn.split(':').collect::<Vec<_>>()[..] {
        ["arn", _, "codebuild", _, _, resource] if resource.starts_with("project/") => {
            TargetKind::CodeBuild(resource.trim_start_matches("project/").to_string())
        }
        ["arn", _, "events", _, _, resource] if resource.starts_with("api-destination/") => {
            TargetKind::ApiDestination(arn.to_string())
        }
        _ => TargetKind::Other(arn.to_string()),
    }
}

/// Every `AWS::Events::Rule`. `function_arns` maps each function's local ARN to its logical id.
pub fn rules(
    template: &Template,
    names: &Names,
    function_arns: &HashMap<String, String>,
    default_bus: &str,
) -> Result<Vec<RuleDef>, LocalError> {
    let mut out = Vec::new();
    for (id, r) in template.of_type("AWS::Events::Rule") {
        let props = names.resolve(&r.properties, &format!("resource {id}, Properties"))?;
        let schedule = props["ScheduleExpression"].as_str().map(str::to_string);
        let pattern = match (props.get("EventPattern"), &schedule) {
            // CloudFormation takes the pattern as an object or as JSON text.
            (Some(Json::String(text)), _) => text.clone(),
            (Some(p), _) => p.to_string(),
            (None, Some(_)) => String::new(),
            (None, None) => {
                return Err(bad(format!(
                    "rule {id} has neither EventPattern nor ScheduleExpression"
                )));
            }
        };
        let mut targets = Vec::new();
        for t in props["Targets"].as_array().into_iter().flatten() {
            let arn = t["Arn"]
                .as_str()
                .ok_or_else(|| bad(format!("a target of rule {id} has no Arn")))?;
            let target_id = t["Id"]
                .as_str()
                .ok_or_else(|| bad(format!("a target of rule {id} has no Id")))?;
            let input = ["Input", "InputPath", "InputTransformer"]
                .into_iter()
                .filter_map(|k| t.get(k).map(|v| (k.to_string(), v.clone())))
                .collect();
            targets.push(TargetDef {
                id: target_id.to_string(),
                kind: target_kind(arn, function_arns),
                input,
                role: t["RoleArn"].as_str().map(str::to_string),
                options: TargetOptions::of(t),
            });
        }
        out.push(RuleDef {
            name: id.to_string(),
            bus: props["EventBusName"]
                .as_str()
                .unwrap_or(default_bus)
                .to_string(),
            pattern,
            schedule,
            targets,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests;

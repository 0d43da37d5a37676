//! `template.yaml`, read as the single source of truth of the local stack: its parameters, its
//! resources and their properties, with the intrinsic functions the template uses (`Ref`,
//! `Fn::GetAtt`, `Fn::Sub`, short and long forms) resolved to the names the local stack gave.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use serde_json::Value as Json;
use serde_norway::Value as Yaml;

use crate::LocalError;

pub const REGION: &str = "us-east-1";
pub const ACCOUNT: &str = "123456789012";

#[derive(Debug, Clone)]
pub struct Resource {
    pub kind: String,
    /// The template condition that decides whether the resource exists.
    pub condition: Option<String>,
    pub properties: Yaml,
    pub metadata: Yaml,
}

#[derive(Debug, Clone)]
pub struct Template {
    /// Each parameter's default (or override), as a string, as CloudFormation passes them.
    pub parameters: BTreeMap<String, String>,
    /// Parameters of type `CommaDelimitedList` (`Ref` answers a list).
    pub list_parameters: Vec<String>,
    /// The `Conditions` section, unevaluated.
    pub conditions: BTreeMap<String, Yaml>,
    pub resources: BTreeMap<String, Resource>,
    /// `Globals.Function` of a SAM template.
    pub function_globals: Yaml,
}

fn bad(what: impl Into<String>) -> LocalError {
    LocalError::Setup(format!("template: {}", what.into()))
}

fn scalar(v: &Yaml) -> Option<String> {
    match v {
        Yaml::String(s) => Some(s.clone()),
        Yaml::Number(n) => Some(n.to_string()),
        Yaml::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

impl Template {
    pub fn load(path: &Path) -> Result<Template, LocalError> {
        let text =
            std::fs::read_to_string(path).map_err(|e| bad(format!("{}: {e}", path.display())))?;
        Template::parse(&text)
    }

    pub fn parse(text: &str) -> Result<Template, LocalError> {
        let doc: Yaml =
            serde_norway::from_str(text).map_err(|e| bad(format!("not valid YAML: {e}")))?;
        let mut parameters = BTreeMap::new();
        let mut list_parameters = Vec::new();
        if let Some(Yaml::Mapping(params)) = doc.get("Parameters") {
            for (name, p) in params {
                let name = scalar(name).ok_or_else(|| bad("a parameter name is not a string"))?;
                if p.get("Type").and_then(scalar).as_deref() == Some("CommaDelimitedList") {
                    list_parameters.push(name.clone());
                }
                if let Some(default) = p.get("Default").and_then(scalar) {
                    parameters.insert(name, default);
                }
            }
        }
        let mut conditions = BTreeMap::new();
        if let Some(Yaml::Mapping(conds)) = doc.get("Conditions") {
            for (name, c) in conds {
                let name = scalar(name).ok_or_else(|| bad("a condition name is not a string"))?;
                conditions.insert(name, c.clone());
            }
        }
        let Some(Yaml::Mapping(res)) = doc.get("Resources") else {
            return Err(bad("no Resources section"));
        };
        let mut resources = BTreeMap::new();
        for (id, r) in res {
            let id = scalar(id).ok_or_else(|| bad("a resource's logical id is not a string"))?;
            let kind = r
                .get("Type")
                .and_then(scalar)
                .ok_or_else(|| bad(format!("resource {id} has no Type")))?;
            resources.insert(
                id,
                Resource {
                    kind,
                    condition: r.get("Condition").and_then(scalar),
                    properties: r.get("Properties").cloned().unwrap_or(Yaml::Null),
                    metadata: r.get("Metadata").cloned().unwrap_or(Yaml::Null),
                },
            );
        }
        let function_globals = doc
            .get("Globals")
            .and_then(|g| g.get("Function"))
            .cloned()
            .unwrap_or(Yaml::Null);
        Ok(Template {
            parameters,
            list_parameters,
            conditions,
            resources,
            function_globals,
        })
    }

    /// The template as CloudFormation would deploy it with the current parameters: every resource
    /// whose condition is false removed.
    pub fn deployed(&self) -> Result<Template, LocalError> {
        let names = Names::new(self, "eddo");
        let mut out = self.clone();
        for (id, r) in &self.resources {
            if let Some(c) = &r.condition
                && !names.condition(c, 0)?
            {
                out.resources.remove(id);
            }
        }
        Ok(out)
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

/// What `Ref` and `Fn::GetAtt` answer for the resources the local stack created.
#[derive(Debug, Clone, Default)]
pub struct Names {
    refs: HashMap<String, Json>,
    attrs: HashMap<String, String>,
    conditions: BTreeMap<String, Yaml>,
}

/// What `!Ref AWS::NoValue` leaves behind until its enclosing list or mapping drops it.
const NO_VALUE: &str = "\u{0}AWS::NoValue";

fn is_no_value(v: &Json) -> bool {
    v.as_str() == Some(NO_VALUE)
}

impl Names {
    pub fn new(template: &Template, stack_name: &str) -> Self {
        let mut refs: HashMap<String, Json> = template
            .parameters
            .iter()
            .map(|(k, v)| {
                let v = if template.list_parameters.contains(k) {
                    Json::Array(
                        v.split(',')
                            .filter(|s| !s.trim().is_empty())
                            .map(|s| Json::String(s.trim().to_string()))
                            .collect(),
                    )
                } else {
                    Json::String(v.clone())
                };
                (k.clone(), v)
            })
            .collect();
        for (k, v) in [
            ("AWS::Region", REGION),
            ("AWS::AccountId", ACCOUNT),
            ("AWS::Partition", "aws"),
            ("AWS::StackName", stack_name),
            ("AWS::URLSuffix", "amazonaws.com"),
            ("AWS::NoValue", NO_VALUE),
        ] {
            refs.insert(k.into(), Json::String(v.into()));
        }
        Names {
            refs,
            attrs: HashMap::new(),
            conditions: template.conditions.clone(),
        }
    }

    pub fn set_ref(&mut self, id: &str, value: impl Into<String>) {
        self.refs.insert(id.to_string(), Json::String(value.into()));
    }

    /// Evaluates the template condition `name`.
    pub fn condition(&self, name: &str, depth: usize) -> Result<bool, LocalError> {
        if depth > 32 {
            return Err(bad(format!("condition {name} refers to itself")));
        }
        let c = self
            .conditions
            .get(name)
            .ok_or_else(|| bad(format!("no condition named {name}")))?;
        self.truth(c, depth + 1)
    }

    /// A condition function (`Fn::Equals`, `Fn::Not`, `Fn::And`, `Fn::Or`, `Condition`).
    fn truth(&self, v: &Yaml, depth: usize) -> Result<bool, LocalError> {
        let (name, arg) =
            intrinsic_call(v).ok_or_else(|| bad(format!("not a condition function: {v:?}")))?;
        self.truth_call(&name, arg, depth)
    }

    fn truth_call(&self, name: &str, arg: &Yaml, depth: usize) -> Result<bool, LocalError> {
        let args = || match arg {
            Yaml::Sequence(items) => Ok(items.as_slice()),
            other => Err(bad(format!("{name} expects a list, got {other:?}"))),
        };
        match name {
            "Equals" => match args()? {
                [a, b] => Ok(self.resolve(a)? == self.resolve(b)?),
                _ => Err(bad("Fn::Equals expects two values")),
            },
            "Not" => match args()? {
                [a] => Ok(!self.truth(a, depth + 1)?),
                _ => Err(bad("Fn::Not expects one condition")),
            },
            "And" => args()?
                .iter()
                .try_fold(true, |acc, c| Ok(acc && self.truth(c, depth + 1)?)),
            "Or" => args()?
                .iter()
                .try_fold(false, |acc, c| Ok(acc || self.truth(c, depth + 1)?)),
            "Condition" => {
                let c = scalar(arg).ok_or_else(|| bad("Condition expects a name"))?;
                self.condition(&c, depth + 1)
            }
            other => Err(bad(format!("{other} is not a condition function"))),
        }
    }

    pub fn set_attr(&mut self, id: &str, attr: &str, value: impl Into<String>) {
        self.attrs.insert(format!("{id}.{attr}"), value.into());
    }

    fn reference(&self, name: &str) -> Result<Json, LocalError> {
        self.refs.get(name).cloned().ok_or_else(|| {
            bad(format!(
                "!Ref {name}: no such parameter or provisioned resource"
            ))
        })
    }

    fn attribute(&self, path: &str) -> Result<String, LocalError> {
        self.attrs
            .get(path)
            .cloned()
            .ok_or_else(|| bad(format!("!GetAtt {path}: not provided by the local stack")))
    }

    fn sub(&self, text: &str) -> Result<String, LocalError> {
        let mut out = String::new();
        let mut rest = text;
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let end = rest[start..]
                .find('}')
                .ok_or_else(|| bad(format!("!Sub {text:?}: unclosed ${{")))?
                + start;
            let name = &rest[start + 2..end];
            if name.contains('.') && !name.starts_with("AWS::") {
                out.push_str(&self.attribute(name)?);
            } else {
                match self.reference(name)? {
                    Json::String(s) => out.push_str(&s),
                    other => {
                        return Err(bad(format!("!Sub ${{{name}}} is a list: {other}")));
                    }
                }
            }
            rest = &rest[end + 1..];
        }
        out.push_str(rest);
        Ok(out)
    }

    /// `v` as JSON, with every intrinsic function resolved.
    pub fn resolve(&self, v: &Yaml) -> Result<Json, LocalError> {
        if let Some((name, arg)) = intrinsic_call(v) {
            return self.intrinsic(&name, arg);
        }
        Ok(match v {
            Yaml::Null => Json::Null,
            Yaml::Bool(b) => Json::Bool(*b),
            Yaml::Number(n) => serde_json::to_value(n).map_err(|e| bad(e.to_string()))?,
            Yaml::String(s) => Json::String(s.clone()),
            Yaml::Sequence(items) => {
                let mut out = Vec::new();
                for i in items {
                    let i = self.resolve(i)?;
                    if !is_no_value(&i) {
                        out.push(i);
                    }
                }
                Json::Array(out)
            }
            Yaml::Tagged(t) => {
                return Err(bad(format!(
                    "intrinsic function {} is not supported by the local stack",
                    t.tag
                )));
            }
            Yaml::Mapping(m) => {
                let mut out = serde_json::Map::new();
                for (k, v) in m {
                    let k = scalar(k).ok_or_else(|| bad("a mapping key is not a string"))?;
                    let v = self.resolve(v)?;
                    if !is_no_value(&v) {
                        out.insert(k, v);
                    }
                }
                Json::Object(out)
            }
        })
    }

    fn intrinsic(&self, name: &str, raw: &Yaml) -> Result<Json, LocalError> {
        let text = |a: &Json| {
            a.as_str()
                .map(str::to_string)
                .ok_or_else(|| bad(format!("{name} expects a string, got {a}")))
        };
        Ok(match name {
            "Ref" => self.reference(&text(&self.resolve(raw)?)?)?,
            "GetAtt" => Json::String(match self.resolve(raw)? {
                Json::Array(parts) => self.attribute(
                    &parts
                        .iter()
                        .filter_map(Json::as_str)
                        .collect::<Vec<_>>()
                        .join("."),
                )?,
                other => self.attribute(&text(&other)?)?,
            }),
            "Sub" => Json::String(self.sub(&text(&self.resolve(raw)?)?)?),
            // Lazy, as CloudFormation is: the branch not taken may name a resource that does not
            // exist.
            "If" => match raw {
                Yaml::Sequence(items) if items.len() == 3 => {
                    let c =
                        scalar(&items[0]).ok_or_else(|| bad("Fn::If expects a condition name"))?;
                    self.resolve(&items[if self.condition(&c, 0)? { 1 } else { 2 }])?
                }
                _ => return Err(bad("Fn::If expects [condition, then, else]")),
            },
            "Join" => match self.resolve(raw)? {
                Json::Array(parts) if parts.len() == 2 => {
                    let sep = text(&parts[0])?;
                    let items = parts[1]
                        .as_array()
                        .ok_or_else(|| bad("Fn::Join expects a list to join"))?
                        .iter()
                        .map(text)
                        .collect::<Result<Vec<_>, _>>()?;
                    Json::String(items.join(&sep))
                }
                _ => return Err(bad("Fn::Join expects [separator, list]")),
            },
            "Equals" | "Not" | "And" | "Or" | "Condition" => {
                Json::Bool(self.truth_call(name, raw, 0)?)
            }
            other => {
                return Err(bad(format!(
                    "intrinsic function {other} is not supported by the local stack"
                )));
            }
        })
    }
}

/// `v` as an intrinsic function call, short (`!Ref x`) or long (`{"Fn::If": [...]}`) form:
/// the function's name without `Fn::`, and its raw argument.
fn intrinsic_call(v: &Yaml) -> Option<(String, &Yaml)> {
    match v {
        Yaml::Tagged(t) => Some((
            t.tag.to_string().trim_start_matches('!').to_string(),
            &t.value,
        )),
        Yaml::Mapping(m) if m.len() == 1 => {
            let (k, arg) = m.iter().next()?;
            let k = k.as_str()?;
            (k == "Ref" || k == "Condition" || k.starts_with("Fn::"))
                .then(|| (k.trim_start_matches("Fn::").to_string(), arg))
        }
        _ => None,
    }
}

/// A function of the template, as the local runtime runs it.
#[derive(Debug, Clone, PartialEq)]
pub struct FunctionDef {
    pub logical_id: String,
    /// `Metadata.BuildProperties.Binary`: the workspace binary `sam build` packages.
    pub binary: String,
    pub env: Vec<(String, String)>,
    pub timeout_secs: u64,
    pub memory_mb: u32,
}

/// Every `AWS::Serverless::Function`, with its environment resolved (Globals merged first).
pub fn functions(template: &Template, names: &Names) -> Result<Vec<FunctionDef>, LocalError> {
    let globals = names.resolve(&template.function_globals)?;
    let mut out = Vec::new();
    for (id, r) in template.of_type("AWS::Serverless::Function") {
        // Only what the local runtime uses is resolved.
        let mut props = serde_json::Map::new();
        for key in ["Environment", "Timeout", "MemorySize"] {
            if let Some(v) = r.properties.get(key) {
                props.insert(key.to_string(), names.resolve(v)?);
            }
        }
        let props = Json::Object(props);
        let binary = r
            .metadata
            .get("BuildProperties")
            .and_then(|b| b.get("Binary"))
            .and_then(scalar)
            .ok_or_else(|| {
                bad(format!(
                    "{id}: Metadata.BuildProperties.Binary names no binary"
                ))
            })?;
        let mut env = BTreeMap::new();
        for source in [&globals, &props] {
            if let Some(vars) = source["Environment"]["Variables"].as_object() {
                for (k, v) in vars {
                    let v = match v {
                        Json::String(s) => s.clone(),
                        other => other.to_string(),
                    };
                    env.insert(k.clone(), v);
                }
            }
        }
        let number = |key: &str, default: u64| -> u64 {
            props[key]
                .as_u64()
                .or_else(|| globals[key].as_u64())
                .unwrap_or(default)
        };
        out.push(FunctionDef {
            logical_id: id.to_string(),
            binary,
            env: env.into_iter().collect(),
            timeout_secs: number("Timeout", 3),
            memory_mb: number("MemorySize", 128) as u32,
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
    /// Anything else (a queue, another bus, ...), by ARN: not served locally.
    Other(String),
}

impl TargetKind {
    /// The function's logical id, `CodeBuild <project>`, or the ARN.
    pub fn name(&self) -> String {
        match self {
            TargetKind::Function(f) => f.clone(),
            TargetKind::CodeBuild(p) => format!("CodeBuild {p}"),
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
        _ => TargetKind::Other(arn.to_string()),
    }
}

/// Every `AWS::Events::Rule` and every SAM function event of type `EventBridgeRule`,
/// `CloudWatchEvent` or `Schedule`. `function_arns` maps each function's local ARN to its logical id.
pub fn rules(
    template: &Template,
    names: &Names,
    function_arns: &HashMap<String, String>,
    default_bus: &str,
) -> Result<Vec<RuleDef>, LocalError> {
    let mut out = Vec::new();
    for (id, r) in template.of_type("AWS::Events::Rule") {
        let props = names.resolve(&r.properties)?;
        let schedule = props["ScheduleExpression"].as_str().map(str::to_string);
        let pattern = match (props.get("EventPattern"), &schedule) {
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
            let input = ["Input", "InputPath", "InputTransformer"]
                .into_iter()
                .filter_map(|k| t.get(k).map(|v| (k.to_string(), v.clone())))
                .collect();
            targets.push(TargetDef {
                id: t["Id"].as_str().unwrap_or(arn).to_string(),
                kind: target_kind(arn, function_arns),
                input,
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
    for (id, r) in template.of_type("AWS::Serverless::Function") {
        let Some(Yaml::Mapping(events)) = r.properties.get("Events") else {
            continue;
        };
        for (event_id, event) in events {
            let kind = event.get("Type").and_then(scalar).unwrap_or_default();
            if !["EventBridgeRule", "CloudWatchEvent", "Schedule"].contains(&kind.as_str()) {
                continue;
            }
            let event_id = scalar(event_id).unwrap_or_default();
            let props = names.resolve(event.get("Properties").unwrap_or(&Yaml::Null))?;
            let schedule = props["Schedule"].as_str().map(str::to_string);
            let pattern = match (props.get("Pattern"), &schedule) {
                (Some(p), _) => p.to_string(),
                (None, Some(_)) if kind == "Schedule" => String::new(),
                _ => return Err(bad(format!("{id}.Events.{event_id} has no Pattern"))),
            };
            let mut input = serde_json::Map::new();
            for (sam, eb) in [("Input", "Input"), ("InputPath", "InputPath")] {
                if let Some(v) = props.get(sam) {
                    input.insert(eb.to_string(), v.clone());
                }
            }
            if let Some(t) = props.get("InputTransformer") {
                input.insert("InputTransformer".into(), t.clone());
            }
            out.push(RuleDef {
                name: format!("{id}{event_id}"),
                bus: props["EventBusName"]
                    .as_str()
                    .unwrap_or(default_bus)
                    .to_string(),
                pattern,
                schedule,
                targets: vec![TargetDef {
                    id: id.to_string(),
                    kind: TargetKind::Function(id.to_string()),
                    input,
                }],
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMALL: &str = r#"
Parameters:
  BusName: {Type: String, Default: eddo}
  Size: {Type: Number, Default: 128}
Globals:
  Function:
    Timeout: 5
    Environment:
      Variables:
        BUS: !Ref Bus
Resources:
  Bus:
    Type: AWS::Events::EventBus
    Properties: {Name: !Ref BusName}
  Fn:
    Type: AWS::Serverless::Function
    Metadata: {BuildProperties: {Binary: webhook}}
    Properties:
      MemorySize: !Ref Size
      Environment:
        Variables:
          ARN: !GetAtt Bus.Arn
          LONG: {"Fn::GetAtt": [Bus, Arn]}
          URL: !Sub "https://${AWS::Region}.example/${BusName}/${Bus.Arn}"
"#;

    #[test]
    fn intrinsics_resolve_to_local_names() {
        let t = Template::parse(SMALL).unwrap();
        let mut names = Names::new(&t, "test");
        assert_eq!(
            names.resolve(&t.resources["Bus"].properties).unwrap(),
            serde_json::json!({"Name": "eddo"})
        );
        names.set_ref("Bus", "eddo");
        names.set_attr(
            "Bus",
            "Arn",
            "arn:aws:events:us-east-1:123456789012:event-bus/eddo",
        );
        let f = &functions(&t, &names).unwrap()[0];
        assert_eq!(f.binary, "webhook");
        assert_eq!(f.timeout_secs, 5);
        let env: HashMap<_, _> = f.env.iter().cloned().collect();
        assert_eq!(env["BUS"], "eddo");
        assert_eq!(
            env["ARN"],
            "arn:aws:events:us-east-1:123456789012:event-bus/eddo"
        );
        assert_eq!(env["LONG"], env["ARN"]);
        assert_eq!(
            env["URL"],
            "https://us-east-1.example/eddo/arn:aws:events:us-east-1:123456789012:event-bus/eddo"
        );
    }

    #[test]
    fn an_unknown_reference_is_named() {
        let t = Template::parse(SMALL).unwrap();
        let names = Names::new(&t, "test");
        let err = functions(&t, &names).unwrap_err().to_string();
        assert!(err.contains("!Ref Bus"), "{err}");
        assert!(
            Template::parse("Resources: [")
                .unwrap_err()
                .to_string()
                .contains("not valid YAML")
        );
        assert!(
            Template::parse("Parameters: {}")
                .unwrap_err()
                .to_string()
                .contains("no Resources")
        );
    }

    #[test]
    fn the_project_template_declares_the_webhook() {
        let t = Template::load(&crate::moto::project_root().join("template.yaml")).unwrap();
        let mut names = Names::new(&t, "eddo");
        for id in t.resources.keys() {
            names.set_ref(id, format!("local-{id}"));
            for attr in ["Arn", "QueueName", "Name"] {
                names.set_attr(id, attr, format!("local-{id}-{attr}"));
            }
        }
        let fns = functions(&t, &names).unwrap();
        let webhook = fns
            .iter()
            .find(|f| f.binary == "webhook")
            .expect("the webhook function");
        assert_eq!(webhook.timeout_secs, 9);
        assert_eq!(webhook.memory_mb, 128);
        let env: HashMap<_, _> = webhook.env.iter().cloned().collect();
        assert_eq!(env["EDDO_EVENT_BUS_NAME"], "local-EventBus");
        assert_eq!(env["EDDO_WEBHOOK_SECRET_ARN"], "local-WebhookSecret");
        assert_eq!(env["EDDO_MAX_ENTRY_BYTES"], "262144");
        assert_eq!(env["EDDO_IDEMPOTENCY_HOURS"], "72");
    }

    fn project_rules(overrides: &[(&str, &str)]) -> Vec<RuleDef> {
        let mut t = Template::load(&crate::moto::project_root().join("template.yaml")).unwrap();
        for (k, v) in overrides {
            t.parameters.insert(k.to_string(), v.to_string());
        }
        let t = t.deployed().unwrap();
        let mut names = Names::new(&t, "eddo");
        for id in t.resources.keys() {
            names.set_ref(id, format!("local-{id}"));
            names.set_attr(id, "Arn", format!("local-{id}-Arn"));
        }
        rules(&t, &names, &HashMap::new(), "default").unwrap()
    }

    #[test]
    fn conditions_decide_which_rules_and_targets_exist() {
        // Deployed with the defaults, no project is named: no push rule, no role.
        assert!(project_rules(&[]).iter().all(|r| r.name != "PushRule"));

        let only_build = project_rules(&[("BuildProjectName", "app-build")]);
        let push = only_build.iter().find(|r| r.name == "PushRule").unwrap();
        assert_eq!(
            push.targets
                .iter()
                .map(|t| t.kind.clone())
                .collect::<Vec<_>>(),
            vec![TargetKind::CodeBuild("app-build".into())],
            "the SAST target is left out with !Ref AWS::NoValue"
        );
        let pattern: Json = serde_json::from_str(&push.pattern).unwrap();
        assert_eq!(pattern["detail"]["branch"], serde_json::json!(["main"]));
        assert!(
            push.targets[0].input["InputTransformer"]["InputTemplate"]
                .as_str()
                .unwrap()
                .contains(r#""sourceVersion": "<sha>""#)
        );

        let both = project_rules(&[
            ("BuildProjectName", "app-build"),
            ("SastProjectName", "app-sast"),
            ("TrackedBranches", "main, release"),
        ]);
        let push = both.iter().find(|r| r.name == "PushRule").unwrap();
        assert_eq!(push.targets.len(), 2);
        let pattern: Json = serde_json::from_str(&push.pattern).unwrap();
        assert_eq!(
            pattern["detail"]["branch"],
            serde_json::json!(["main", "release"])
        );
    }

    #[test]
    fn condition_functions_evaluate_as_cloudformation_does() {
        let t = Template::parse(
            r#"
Parameters:
  A: {Type: String, Default: ""}
  B: {Type: String, Default: x}
Conditions:
  HasA: !Not [!Equals [!Ref A, ""]]
  HasB: {"Fn::Not": [{"Fn::Equals": [{"Ref": B}, ""]}]}
  Either: !Or [!Condition HasA, !Condition HasB]
  Both: !And [!Condition HasA, !Condition HasB]
  Loop: !Condition Loop
Resources:
  OnlyWithA: {Type: AWS::SQS::Queue, Condition: HasA}
  Always: {Type: AWS::SQS::Queue, Properties: {Name: !If [Both, both, !If [Either, either, none]], Drop: !If [HasA, a, !Ref AWS::NoValue]}}
"#,
        )
        .unwrap();
        let d = t.deployed().unwrap();
        assert!(!d.resources.contains_key("OnlyWithA"));
        let names = Names::new(&d, "t");
        assert_eq!(
            names.resolve(&d.resources["Always"].properties).unwrap(),
            serde_json::json!({"Name": "either"})
        );
        let err = names.condition("Loop", 0).unwrap_err().to_string();
        assert!(err.contains("refers to itself"), "{err}");
    }
}

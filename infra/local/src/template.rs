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
    pub properties: Yaml,
    pub metadata: Yaml,
}

#[derive(Debug, Clone)]
pub struct Template {
    /// Each parameter's default (or override), as a string, as CloudFormation passes them.
    pub parameters: BTreeMap<String, String>,
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
        if let Some(Yaml::Mapping(params)) = doc.get("Parameters") {
            for (name, p) in params {
                let name = scalar(name).ok_or_else(|| bad("a parameter name is not a string"))?;
                if let Some(default) = p.get("Default").and_then(scalar) {
                    parameters.insert(name, default);
                }
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
            resources,
            function_globals,
        })
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
    refs: HashMap<String, String>,
    attrs: HashMap<String, String>,
}

impl Names {
    pub fn new(template: &Template, stack_name: &str) -> Self {
        let mut refs: HashMap<String, String> = template.parameters.clone().into_iter().collect();
        refs.insert("AWS::Region".into(), REGION.into());
        refs.insert("AWS::AccountId".into(), ACCOUNT.into());
        refs.insert("AWS::Partition".into(), "aws".into());
        refs.insert("AWS::StackName".into(), stack_name.into());
        refs.insert("AWS::URLSuffix".into(), "amazonaws.com".into());
        Names {
            refs,
            attrs: HashMap::new(),
        }
    }

    pub fn set_ref(&mut self, id: &str, value: impl Into<String>) {
        self.refs.insert(id.to_string(), value.into());
    }

    pub fn set_attr(&mut self, id: &str, attr: &str, value: impl Into<String>) {
        self.attrs.insert(format!("{id}.{attr}"), value.into());
    }

    fn reference(&self, name: &str) -> Result<String, LocalError> {
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
            out.push_str(&if name.contains('.') && !name.starts_with("AWS::") {
                self.attribute(name)?
            } else {
                self.reference(name)?
            });
            rest = &rest[end + 1..];
        }
        out.push_str(rest);
        Ok(out)
    }

    /// `v` as JSON, with every intrinsic function resolved.
    pub fn resolve(&self, v: &Yaml) -> Result<Json, LocalError> {
        Ok(match v {
            Yaml::Null => Json::Null,
            Yaml::Bool(b) => Json::Bool(*b),
            Yaml::Number(n) => serde_json::to_value(n).map_err(|e| bad(e.to_string()))?,
            Yaml::String(s) => Json::String(s.clone()),
            Yaml::Sequence(items) => Json::Array(
                items
                    .iter()
                    .map(|i| self.resolve(i))
                    .collect::<Result<_, _>>()?,
            ),
            Yaml::Tagged(t) => {
                let arg = self.resolve(&t.value)?;
                let tag = t.tag.to_string();
                self.intrinsic(tag.trim_start_matches('!'), &arg)?
            }
            Yaml::Mapping(m) => {
                if m.len() == 1 {
                    let (k, v) = m.iter().next().expect("one entry");
                    if let Some(k) = k.as_str().filter(|k| *k == "Ref" || k.starts_with("Fn::")) {
                        let arg = self.resolve(v)?;
                        return self.intrinsic(k.trim_start_matches("Fn::"), &arg);
                    }
                }
                let mut out = serde_json::Map::new();
                for (k, v) in m {
                    let k = scalar(k).ok_or_else(|| bad("a mapping key is not a string"))?;
                    out.insert(k, self.resolve(v)?);
                }
                Json::Object(out)
            }
        })
    }

    fn intrinsic(&self, name: &str, arg: &Json) -> Result<Json, LocalError> {
        let text = |a: &Json| {
            a.as_str()
                .map(str::to_string)
                .ok_or_else(|| bad(format!("{name} expects a string, got {a}")))
        };
        Ok(Json::String(match name {
            "Ref" => self.reference(&text(arg)?)?,
            "GetAtt" => match arg {
                Json::Array(parts) => self.attribute(
                    &parts
                        .iter()
                        .filter_map(Json::as_str)
                        .collect::<Vec<_>>()
                        .join("."),
                )?,
                other => self.attribute(&text(other)?)?,
            },
            "Sub" => self.sub(&text(arg)?)?,
            other => {
                return Err(bad(format!(
                    "intrinsic function {other} is not supported by the local stack"
                )));
            }
        }))
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

/// An EventBridge rule of the template and the functions it targets.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleDef {
    /// The rule's logical id (a SAM function event: `<Function><Event>`).
    pub name: String,
    pub bus: String,
    /// The event pattern, as JSON text.
    pub pattern: String,
    /// Logical ids of the functions it targets.
    pub functions: Vec<String>,
}

/// Every `AWS::Events::Rule` and every SAM function event of type `EventBridgeRule` or
/// `CloudWatchEvent`. `function_arns` maps each function's local ARN to its logical id.
pub fn rules(
    template: &Template,
    names: &Names,
    function_arns: &HashMap<String, String>,
    default_bus: &str,
) -> Result<Vec<RuleDef>, LocalError> {
    let mut out = Vec::new();
    for (id, r) in template.of_type("AWS::Events::Rule") {
        let props = names.resolve(&r.properties)?;
        let pattern = props
            .get("EventPattern")
            .ok_or_else(|| bad(format!("rule {id} has no EventPattern")))?;
        let functions = props["Targets"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|t| {
                t["Arn"]
                    .as_str()
                    .and_then(|arn| function_arns.get(arn))
                    .cloned()
            })
            .collect();
        out.push(RuleDef {
            name: id.to_string(),
            bus: props["EventBusName"]
                .as_str()
                .unwrap_or(default_bus)
                .to_string(),
            pattern: pattern.to_string(),
            functions,
        });
    }
    for (id, r) in template.of_type("AWS::Serverless::Function") {
        let Some(Yaml::Mapping(events)) = r.properties.get("Events") else {
            continue;
        };
        for (event_id, event) in events {
            let kind = event.get("Type").and_then(scalar).unwrap_or_default();
            if kind != "EventBridgeRule" && kind != "CloudWatchEvent" {
                continue;
            }
            let event_id = scalar(event_id).unwrap_or_default();
            let props = names.resolve(event.get("Properties").unwrap_or(&Yaml::Null))?;
            let pattern = props
                .get("Pattern")
                .ok_or_else(|| bad(format!("{id}.Events.{event_id} has no Pattern")))?;
            out.push(RuleDef {
                name: format!("{id}{event_id}"),
                bus: props["EventBusName"]
                    .as_str()
                    .unwrap_or(default_bus)
                    .to_string(),
                pattern: pattern.to_string(),
                functions: vec![id.to_string()],
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
}

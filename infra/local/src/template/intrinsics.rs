//! CloudFormation's intrinsic functions, resolved as strictly as CloudFormation resolves them: each
//! function's documented arguments (a plain string where CloudFormation takes no function, only
//! the functions its "Supported functions" list names inside it), `Ref` and `Fn::GetAtt` only to
//! what exists (a resource whose condition is false does not; an attribute its type does not
//! have is refused), `Fn::Sub` variables that are declared, conditions that exist. What
//! CloudFormation would refuse stops the stack with the resource, the property path and the
//! rule, never a guess.

use std::collections::{BTreeMap, HashMap, HashSet};

use base64::Engine;
use serde_json::Value as Json;

use crate::LocalError;

pub const REGION: &str = "us-east-1";
pub const ACCOUNT: &str = "123456789012";

/// What `!Ref AWS::NoValue` leaves behind until its enclosing list or mapping drops it.
const NO_VALUE: &str = "\u{0}AWS::NoValue";

pub(crate) fn is_no_value(v: &Json) -> bool {
    v.as_str() == Some(NO_VALUE)
}

use super::functions::*;

pub(super) fn refuse(at: &str, rule: impl std::fmt::Display) -> LocalError {
    LocalError::Setup(format!("template: {at}: {rule}"))
}

/// `v` as a call of a CloudFormation function: a one-key mapping whose key is a function's name.
pub(super) fn call(v: &Json) -> Option<(Function, &Json)> {
    let m = v.as_object()?;
    if m.len() != 1 {
        return None;
    }
    let (k, arg) = m.iter().next()?;
    Function::parse(k).map(|f| (f, arg))
}

/// How a value is being resolved.
#[derive(Clone, Copy)]
struct Mode {
    /// False in the branch of an `Fn::If` that is not taken: checked, its value unused, and it
    /// may name resources whose condition is false.
    live: bool,
}

/// What `Ref` and `Fn::GetAtt` answer, the template's conditions, and which resources exist.
#[derive(Debug, Clone, Default)]
pub struct Names {
    pub(super) refs: HashMap<String, Json>,
    pub(super) attrs: HashMap<String, String>,
    pub(super) conditions: BTreeMap<String, Json>,
    /// Every resource the template declares, by logical id: its type.
    pub(super) types: HashMap<String, String>,
    /// Resources not created because their condition is false.
    pub(super) absent: HashSet<String>,
}

impl Names {
    /// The names of a translated template: its parameters' values (a list parameter's value
    /// split on commas, as CloudFormation does), the pseudo parameters, its conditions and its
    /// resources' types. Resources get their names as the stack creates them.
    pub fn new(template: &super::Template, stack_name: &str) -> Self {
        let mut refs: HashMap<String, Json> = template
            .parameters
            .iter()
            .map(|(k, v)| {
                let v = if template.list_parameters.contains(k) {
                    Json::Array(v.split(',').map(|s| Json::String(s.into())).collect())
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
        refs.insert(
            "AWS::StackId".into(),
            Json::String(format!(
                "arn:aws:cloudformation:{REGION}:{ACCOUNT}:stack/{stack_name}/local"
            )),
        );
        Names {
            refs,
            attrs: HashMap::new(),
            conditions: template.conditions.clone(),
            types: template
                .declared
                .iter()
                .map(|(id, kind)| (id.clone(), kind.clone()))
                .collect(),
            absent: template.absent.clone(),
        }
    }

    pub fn set_ref(&mut self, id: &str, value: impl Into<String>) {
        self.refs.insert(id.to_string(), Json::String(value.into()));
    }

    pub fn set_attr(&mut self, id: &str, attr: &str, value: impl Into<String>) {
        self.attrs.insert(format!("{id}.{attr}"), value.into());
    }

    /// Every attribute of `id`'s type, as a placeholder: for resources the local stack does not
    /// create but others may name.
    pub fn set_placeholders(&mut self, id: &str, value: &str) {
        let kind = self.types.get(id).cloned().unwrap_or_default();
        for attr in attributes(&kind).unwrap_or(&[]) {
            self.set_attr(id, attr, format!("{value}-{attr}"));
        }
    }

    /// A resource's property (or any value of a resource or an output) with every function
    /// resolved; `at` names it in errors (`resource X, Properties.Foo[2]`).
    pub fn resolve(&self, v: &Json, at: &str) -> Result<Json, LocalError> {
        self.value(v, at, IN_PROPERTY, Mode { live: true })
    }

    fn value(
        &self,
        v: &Json,
        at: &str,
        allowed: &[Function],
        mode: Mode,
    ) -> Result<Json, LocalError> {
        if let Some((f, arg)) = call(v) {
            if !allowed.contains(&f) {
                return Err(refuse(at, not_here(f, allowed)));
            }
            return self.function(f, arg, &format!("{at} ({})", f.name()), mode);
        }
        Ok(match v {
            Json::Array(items) => {
                let mut out = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    let item = self.value(item, &format!("{at}[{i}]"), allowed, mode)?;
                    if !is_no_value(&item) {
                        out.push(item);
                    }
                }
                Json::Array(out)
            }
            // A mapping is a property structure again: any property function may appear in it.
            Json::Object(m) => {
                let mut out = serde_json::Map::new();
                for (k, item) in m {
                    let item = self.value(item, &format!("{at}.{k}"), IN_PROPERTY, mode)?;
                    if !is_no_value(&item) {
                        out.insert(k.clone(), item);
                    }
                }
                Json::Object(out)
            }
            other => other.clone(),
        })
    }

    /// A string argument: what `value` gives, which must be a string.
    fn string(
        &self,
        v: &Json,
        at: &str,
        allowed: &[Function],
        mode: Mode,
    ) -> Result<String, LocalError> {
        match self.value(v, at, allowed, mode)? {
            Json::String(s) => Ok(s),
            Json::Number(n) => Ok(n.to_string()),
            Json::Bool(b) => Ok(b.to_string()),
            other => Err(refuse(at, format!("expects a string, got {other}"))),
        }
    }

    fn function(&self, f: Function, arg: &Json, at: &str, mode: Mode) -> Result<Json, LocalError> {
        let list = |n: usize, shape: &str| match arg.as_array() {
            Some(items) if items.len() == n => Ok(items.as_slice()),
            _ => Err(refuse(at, format!("{} takes {shape}, not {arg}", f.name()))),
        };
        let literal = |v: &Json, what: &str| {
            v.as_str().map(str::to_string).ok_or_else(|| {
                refuse(
                    at,
                    format!(
                        "{what} must be a plain string; CloudFormation allows no function there ({v})"
                    ),
                )
            })
        };
        Ok(match f {
            Ref => {
                let name = literal(arg, "Ref's name")?;
                self.reference(&name, at, mode)?
            }
            GetAtt => {
                let (id, attr) = match arg {
                    Json::String(path) => match path.split_once('.') {
                        Some((id, attr)) => (id.to_string(), attr.to_string()),
                        None => return Err(refuse(at, "Fn::GetAtt takes Resource.Attribute")),
                    },
                    Json::Array(parts) if parts.len() == 2 => (
                        literal(&parts[0], "Fn::GetAtt's logical name")?,
                        self.string(&parts[1], at, GETATT_NAME, mode)?,
                    ),
                    _ => {
                        return Err(refuse(
                            at,
                            "Fn::GetAtt takes [logical name, attribute name]",
                        ));
                    }
                };
                Json::String(self.attribute(&id, &attr, at, mode)?)
            }
            Sub => {
                let (text, vars) = match arg {
                    Json::String(s) => (s.clone(), serde_json::Map::new()),
                    Json::Array(parts) if parts.len() == 2 => {
                        let text = literal(&parts[0], "Fn::Sub's string")?;
                        let Some(vars) = parts[1].as_object() else {
                            return Err(refuse(at, "Fn::Sub's variables must be a mapping"));
                        };
                        let mut resolved = serde_json::Map::new();
                        for (k, v) in vars {
                            let v = self.string(v, &format!("{at}.{k}"), STRING_ARGS, mode)?;
                            resolved.insert(k.clone(), Json::String(v));
                        }
                        (text, resolved)
                    }
                    other => {
                        return Err(refuse(
                            at,
                            format!("Fn::Sub takes a string or [string, variables], not {other}"),
                        ));
                    }
                };
                Json::String(self.sub(&text, &vars, at, mode)?)
            }
            Join => {
                let [sep, items] = list(2, "[delimiter, list]")? else {
                    unreachable!("two items")
                };
                let sep = literal(sep, "Fn::Join's delimiter")?;
                let items = self.value(items, at, JOIN_LIST, mode)?;
                let Json::Array(items) = items else {
                    return Err(refuse(
                        at,
                        format!("Fn::Join's list is not a list: {items}"),
                    ));
                };
                let mut parts = Vec::new();
                for (i, item) in items.iter().enumerate() {
                    match item {
                        Json::String(s) => parts.push(s.clone()),
                        other => {
                            return Err(refuse(
                                at,
                                format!("Fn::Join joins strings; item {i} is {other}"),
                            ));
                        }
                    }
                }
                Json::String(parts.join(&sep))
            }
            Split => {
                let [sep, source] = list(2, "[delimiter, string]")? else {
                    unreachable!("two items")
                };
                let sep = literal(sep, "Fn::Split's delimiter")?;
                let source = self.string(source, at, STRING_ARGS, mode)?;
                Json::Array(
                    source
                        .split(sep.as_str())
                        .map(|s| Json::String(s.into()))
                        .collect(),
                )
            }
            Select => {
                let [index, items] = list(2, "[index, list]")? else {
                    unreachable!("two items")
                };
                let index = match index {
                    Json::Number(n) => n.to_string(),
                    other => self.string(other, at, SELECT_INDEX, mode)?,
                };
                let index: usize = index.parse().map_err(|_| {
                    refuse(at, format!("Fn::Select's index {index} is not a number"))
                })?;
                let Json::Array(items) = self.value(items, at, SELECT_LIST, mode)? else {
                    return Err(refuse(at, "Fn::Select's list is not a list"));
                };
                match items.get(index) {
                    Some(item) => item.clone(),
                    None if !mode.live => Json::String(String::new()),
                    None => {
                        return Err(refuse(
                            at,
                            format!(
                                "Fn::Select's index {index} is out of range of a list of {}",
                                items.len()
                            ),
                        ));
                    }
                }
            }
            If => {
                let [name, then, otherwise] =
                    list(3, "[condition name, value if true, value if false]")?
                else {
                    unreachable!("three items")
                };
                let name = literal(name, "Fn::If's condition")?;
                let holds = self.condition_at(&name, at, 0)?;
                let (taken, other) = if holds {
                    (then, otherwise)
                } else {
                    (otherwise, then)
                };
                // Both branches must be valid; only the taken one is the value. A mapping in a
                // branch is a property structure again, where any property function may appear.
                self.value(other, at, STRING_ARGS, Mode { live: false })?;
                self.value(taken, at, STRING_ARGS, mode)?
            }
            Base64 => {
                let s = self.string(arg, at, STRING_ARGS, mode)?;
                Json::String(base64::engine::general_purpose::STANDARD.encode(s))
            }
            FindInMap | GetAZs | ImportValue | Cidr => {
                return Err(refuse(
                    at,
                    format!(
                        "{} is not resolved by the local stack: eddo's templates do not use it",
                        f.name()
                    ),
                ));
            }
            Length | ToJsonString => {
                return Err(refuse(
                    at,
                    format!("{} needs the AWS::LanguageExtensions transform", f.name()),
                ));
            }
            Equals | Not | And | Or | Condition => {
                return Err(refuse(
                    at,
                    format!(
                        "{} can be used only in the Conditions section (Fn::If names a condition)",
                        f.name()
                    ),
                ));
            }
        })
    }

    fn reference(&self, name: &str, at: &str, mode: Mode) -> Result<Json, LocalError> {
        if self.absent.contains(name) {
            return if mode.live {
                Err(refuse(
                    at,
                    format!(
                        "Ref {name}: the resource is not created (its condition is false); CloudFormation refuses the reference"
                    ),
                ))
            } else {
                Ok(Json::String(String::new()))
            };
        }
        if let Some(v) = self.refs.get(name) {
            return Ok(v.clone());
        }
        if self.types.contains_key(name) {
            return Err(refuse(
                at,
                format!("Ref {name}: the local stack has not created it yet"),
            ));
        }
        Err(refuse(
            at,
            format!("Ref {name}: no parameter, resource or pseudo parameter has this name"),
        ))
    }

    fn attribute(&self, id: &str, attr: &str, at: &str, mode: Mode) -> Result<String, LocalError> {
        let Some(kind) = self.types.get(id) else {
            return Err(refuse(
                at,
                format!("Fn::GetAtt {id}.{attr}: no resource {id} in the template"),
            ));
        };
        let Some(known) = attributes(kind) else {
            return Err(refuse(
                at,
                format!(
                    "Fn::GetAtt {id}.{attr}: the local stack does not know {kind}'s attributes"
                ),
            ));
        };
        if !known.contains(&attr) {
            return Err(refuse(
                at,
                format!(
                    "Fn::GetAtt {id}.{attr}: {kind} has no attribute {attr} (it has {known:?})"
                ),
            ));
        }
        if self.absent.contains(id) {
            return if mode.live {
                Err(refuse(
                    at,
                    format!(
                        "Fn::GetAtt {id}.{attr}: the resource is not created (its condition is false)"
                    ),
                ))
            } else {
                Ok(String::new())
            };
        }
        self.attrs
            .get(&format!("{id}.{attr}"))
            .cloned()
            .ok_or_else(|| {
                refuse(
                    at,
                    format!("Fn::GetAtt {id}.{attr}: the local stack has not created {id} yet"),
                )
            })
    }

    /// `Fn::Sub`'s string with each `${Name}` replaced: a variable of its map, a parameter, a
    /// resource or a pseudo parameter, `${Resource.Attribute}`; `${!Text}` is the text `${Text}`.
    fn sub(
        &self,
        text: &str,
        vars: &serde_json::Map<String, Json>,
        at: &str,
        mode: Mode,
    ) -> Result<String, LocalError> {
        let mut out = String::new();
        let mut rest = text;
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let end = rest[start..]
                .find('}')
                .ok_or_else(|| refuse(at, format!("Fn::Sub {text:?}: an unclosed ${{")))?
                + start;
            let name = &rest[start + 2..end];
            if let Some(literal) = name.strip_prefix('!') {
                out.push_str("${");
                out.push_str(literal);
                out.push('}');
            } else if let Some(v) = vars.get(name) {
                out.push_str(v.as_str().unwrap_or_default());
            } else if let Some((id, attr)) = name.split_once('.')
                && !name.starts_with("AWS::")
            {
                out.push_str(&self.attribute(id, attr, at, mode)?);
            } else {
                match self.reference(name, at, mode)? {
                    Json::String(s) => out.push_str(&s),
                    other => {
                        return Err(refuse(
                            at,
                            format!(
                                "Fn::Sub ${{{name}}} is a list ({other}); Fn::Sub substitutes strings"
                            ),
                        ));
                    }
                }
            }
            rest = &rest[end + 1..];
        }
        out.push_str(rest);
        Ok(out)
    }
}

fn not_here(f: Function, allowed: &[Function]) -> String {
    if CONDITIONS.contains(&f) {
        return format!(
            "{} can be used only in the Conditions section (Fn::If names a condition)",
            f.name()
        );
    }
    if matches!(f, Length | ToJsonString) {
        return format!("{} needs the AWS::LanguageExtensions transform", f.name());
    }
    let names: Vec<&str> = allowed.iter().map(|f| f.name()).collect();
    format!(
        "{} is not allowed here; CloudFormation allows only {}",
        f.name(),
        names.join(", ")
    )
}

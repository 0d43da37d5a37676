//! The Conditions section, evaluated as CloudFormation evaluates it: only condition functions
//! (`Fn::Equals`, `Fn::Not`, `Fn::And`, `Fn::Or`, `Condition`), `Fn::And` and `Fn::Or` with 2 to
//! 10 conditions, inside them only `Ref` to a parameter and `Fn::FindInMap`, no condition that
//! refers to itself.

use serde_json::Value as Json;

use super::functions::{CONDITIONS, Function::*, IN_CONDITION};
use super::intrinsics::{Names, call, refuse};
use crate::LocalError;

impl Names {
    /// Evaluates the condition `name`, checked as CloudFormation checks the Conditions section.
    pub fn condition(&self, name: &str) -> Result<bool, LocalError> {
        self.condition_at(name, &format!("condition {name}"), 0)
    }

    pub(super) fn condition_at(
        &self,
        name: &str,
        at: &str,
        depth: usize,
    ) -> Result<bool, LocalError> {
        if depth > 64 {
            return Err(refuse(at, format!("condition {name} refers to itself")));
        }
        let c = self.conditions.get(name).ok_or_else(|| {
            refuse(
                at,
                format!("no condition named {name} in the Conditions section"),
            )
        })?;
        self.truth(c, &format!("condition {name}"), depth + 1)
    }

    /// A condition function's value.
    fn truth(&self, v: &Json, at: &str, depth: usize) -> Result<bool, LocalError> {
        let Some((f, arg)) = call(v) else {
            return Err(refuse(
                at,
                format!("a condition must be a condition function ({CONDITIONS:?}), not {v}"),
            ));
        };
        if !CONDITIONS.contains(&f) {
            return Err(refuse(
                at,
                format!("{} is not a condition function", f.name()),
            ));
        }
        let args = |min: usize, max: usize| match arg.as_array() {
            Some(items) if (min..=max).contains(&items.len()) => Ok(items.as_slice()),
            _ => Err(refuse(
                at,
                format!(
                    "{} takes a list of {min}{} conditions, not {arg}",
                    f.name(),
                    if min == max {
                        String::new()
                    } else {
                        format!(" to {max}")
                    }
                ),
            )),
        };
        match f {
            Equals => match arg.as_array().map(Vec::as_slice) {
                Some([a, b]) => Ok(
                    self.condition_value(a, at, depth)? == self.condition_value(b, at, depth)?
                ),
                _ => Err(refuse(at, "Fn::Equals takes a list of two values")),
            },
            Not => Ok(!self.truth(&args(1, 1)?[0], at, depth + 1)?),
            And => {
                let mut all = true;
                for c in args(2, 10)? {
                    all &= self.truth(c, at, depth + 1)?;
                }
                Ok(all)
            }
            Or => {
                let mut any = false;
                for c in args(2, 10)? {
                    any |= self.truth(c, at, depth + 1)?;
                }
                Ok(any)
            }
            Condition => match arg.as_str() {
                Some(name) => self.condition_at(name, at, depth + 1),
                None => Err(refuse(at, "Condition takes a condition's name")),
            },
            _ => unreachable!("checked above"),
        }
    }

    /// A value compared by Fn::Equals: a literal, a Ref to a parameter, or a condition function.
    fn condition_value(&self, v: &Json, at: &str, depth: usize) -> Result<Json, LocalError> {
        let Some((f, arg)) = call(v) else {
            return Ok(v.clone());
        };
        if !IN_CONDITION.contains(&f) {
            return Err(refuse(
                at,
                format!(
                    "{} cannot be used inside a condition function (CloudFormation allows Ref, Fn::FindInMap and condition functions there)",
                    f.name()
                ),
            ));
        }
        match f {
            Ref => {
                let name = arg
                    .as_str()
                    .ok_or_else(|| refuse(at, "Ref takes a plain name"))?;
                if self.types.contains_key(name) {
                    return Err(refuse(
                        at,
                        format!(
                            "Ref {name}: a condition can refer to parameters only, not to resources"
                        ),
                    ));
                }
                self.refs
                    .get(name)
                    .cloned()
                    .ok_or_else(|| refuse(at, format!("Ref {name}: no such parameter")))
            }
            FindInMap => Err(refuse(
                at,
                "Fn::FindInMap is not resolved by the local stack",
            )),
            _ => Ok(Json::Bool(self.truth(v, at, depth + 1)?)),
        }
    }
}

//! A rule's target as the local stack serves it: a queue moto routes the rule's matches to (with
//! the target's input transformer), and the check that EventBridge could reach a function at all.

use aws_config::SdkConfig;
use serde_json::{Value, Value as Json, json};

use crate::template::{ACCOUNT, FunctionDef, Names, REGION, RuleDef, Template};
use crate::{LocalError, aws};

/// Creates the queue `queue` and the rule `rule` on `bus` that delivers `pattern`'s matches to
/// it, transformed by `input` (a target's `Input`, `InputPath`, `InputTransformer`); returns the
/// queue URL. moto checks the pattern's syntax here.
pub(super) async fn route_to_queue(
    sdk: &SdkConfig,
    bus: &str,
    rule: &str,
    queue: &str,
    pattern: &str,
    input: &serde_json::Map<String, Value>,
) -> Result<String, LocalError> {
    let sqs = aws_sdk_sqs::Client::new(sdk);
    let created = sqs
        .create_queue()
        .queue_name(queue)
        .send()
        .await
        .map_err(|e| aws("CreateQueue", e))?;
    let url = created.queue_url().unwrap_or_default().to_string();
    let arn = format!("arn:aws:sqs:{REGION}:{ACCOUNT}:{queue}");
    let eb = aws_sdk_eventbridge::Client::new(sdk);
    eb.put_rule()
        .name(rule)
        .event_bus_name(bus)
        .event_pattern(pattern)
        .send()
        .await
        .map_err(|e| aws("PutRule", e))?;
    let mut target = aws_sdk_eventbridge::types::Target::builder()
        .id(queue)
        .arn(arn);
    if let Some(v) = input.get("Input") {
        target = target.input(
            v.as_str()
                .map(str::to_string)
                .unwrap_or_else(|| v.to_string()),
        );
    }
    if let Some(v) = input.get("InputPath").and_then(Value::as_str) {
        target = target.input_path(v);
    }
    if let Some(t) = input.get("InputTransformer") {
        let mut transformer = aws_sdk_eventbridge::types::InputTransformer::builder()
            .input_template(t["InputTemplate"].as_str().unwrap_or_default());
        for (k, v) in t["InputPathsMap"].as_object().into_iter().flatten() {
            transformer = transformer.input_paths_map(k, v.as_str().unwrap_or_default());
        }
        target = target.input_transformer(
            transformer
                .build()
                .map_err(|e| LocalError::Aws(e.to_string()))?,
        );
    }
    eb.put_targets()
        .rule(rule)
        .event_bus_name(bus)
        .targets(target.build().map_err(|e| LocalError::Aws(e.to_string()))?)
        .send()
        .await
        .map_err(|e| aws("PutTargets", e))?;
    Ok(url)
}

/// EventBridge invokes a function only where the function's resource policy lets it: an
/// `AWS::Lambda::Permission` for `lambda:InvokeFunction` by `events.amazonaws.com`, from the rule
/// (or any source). A rule without one never reaches its function in AWS, so the local stack
/// refuses it rather than deliver what AWS would not.
pub(super) fn check_invoke_permissions(
    template: &Template,
    names: &Names,
    rules: &[RuleDef],
    functions: &[FunctionDef],
) -> Result<(), LocalError> {
    let mut grants = Vec::new();
    for (id, r) in template.of_type("AWS::Lambda::Permission") {
        let p = names.resolve(&r.properties, &format!("resource {id}, Properties"))?;
        if p["Action"] == "lambda:InvokeFunction" && p["Principal"] == "events.amazonaws.com" {
            grants.push((
                p["FunctionName"].as_str().unwrap_or_default().to_string(),
                p["SourceArn"].as_str().map(str::to_string),
            ));
        }
    }
    for rule in rules {
        let rule_arn = names.resolve(
            &json!({"Fn::GetAtt": [rule.name, "Arn"]}),
            &format!("rule {}", rule.name),
        )?;
        for f in rule.functions() {
            // A permission names the function by name or ARN.
            let known: Vec<Json> = [json!({"Ref": f}), json!({"Fn::GetAtt": [f, "Arn"]})]
                .iter()
                .filter_map(|v| names.resolve(v, &format!("rule {}", rule.name)).ok())
                .collect();
            let allowed = grants.iter().any(|(name, source)| {
                known.contains(&json!(name)) && source.as_ref().is_none_or(|s| rule_arn == json!(s))
            });
            if !allowed && functions.iter().any(|d| d.logical_id == f) {
                return Err(LocalError::Setup(format!(
                    "template: rule {} targets {f}, but no AWS::Lambda::Permission lets events.amazonaws.com invoke it from this rule: EventBridge could not deliver",
                    rule.name
                )));
            }
        }
    }
    Ok(())
}

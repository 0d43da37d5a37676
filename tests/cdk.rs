//! The CDK app (infra/cdk) against template.yaml: the demo plays on the CDK-synthesized template
//! under IAM as on the SAM one, and the two templates declare the same stack: the same rules with
//! the same patterns and targets, the same environment per function, the same IAM actions and
//! resources per role, the same alarms, bus policy and permissions. Each intended difference is
//! listed below with why; a difference not listed fails, and so does a listed one that is gone.

use std::collections::{BTreeMap, BTreeSet};

use eddo_local::cdk::{local_context, synth};
use eddo_local::demo::play;
use eddo_local::iam::wildcard_grants;
use eddo_local::stack::local_template_parameters;
use eddo_local::template::{BINARY_METADATA, Names, Template};
use serde_json::{Value, json};

/// Where the CDK stack differs from the SAM stack on purpose, and why. Each entry is a line
/// `parity` reports.
const INTENDED: &[(&str, &str)] = &[
    (
        "resource types: cdk has AWS::IAM::Policy",
        "the CDK's grants live in one AWS::IAM::Policy per role (see above)",
    ),
    (
        "resource types: cdk has AWS::SSM::Parameter",
        "the construct reads the policy at synth and deploys it in the parameter it creates; with SAM the operator puts it (PolicyParameterName)",
    ),
    (
        "role role:alarm-rollback: managed sam only arn:aws:iam::aws:policy/AWSXrayWriteOnlyAccess",
        "SAM attaches AWS's X-Ray managed policy for Tracing: Active; the CDK grants xray:PutTraceSegments and xray:PutTelemetryRecords inline (below), all a function sending traces needs",
    ),
    (
        "role role:scan-gate: managed sam only arn:aws:iam::aws:policy/AWSXrayWriteOnlyAccess",
        "as for alarm-rollback",
    ),
    (
        "role role:tenant-onboarding: managed sam only arn:aws:iam::aws:policy/AWSXrayWriteOnlyAccess",
        "as for alarm-rollback",
    ),
    (
        "role role:webhook: managed sam only arn:aws:iam::aws:policy/AWSXrayWriteOnlyAccess",
        "as for alarm-rollback",
    ),
    (
        "role role:alarm-rollback: grants cdk only Allow xray:PutTelemetryRecords on *",
        "the CDK's inline X-Ray grant, in place of SAM's managed policy",
    ),
    (
        "role role:alarm-rollback: grants cdk only Allow xray:PutTraceSegments on *",
        "the CDK's inline X-Ray grant",
    ),
    (
        "role role:scan-gate: grants cdk only Allow xray:PutTelemetryRecords on *",
        "the CDK's inline X-Ray grant",
    ),
    (
        "role role:scan-gate: grants cdk only Allow xray:PutTraceSegments on *",
        "the CDK's inline X-Ray grant",
    ),
    (
        "role role:tenant-onboarding: grants cdk only Allow xray:PutTelemetryRecords on *",
        "the CDK's inline X-Ray grant",
    ),
    (
        "role role:tenant-onboarding: grants cdk only Allow xray:PutTraceSegments on *",
        "the CDK's inline X-Ray grant",
    ),
    (
        "role role:webhook: grants cdk only Allow xray:PutTelemetryRecords on *",
        "the CDK's inline X-Ray grant",
    ),
    (
        "role role:webhook: grants cdk only Allow xray:PutTraceSegments on *",
        "the CDK's inline X-Ray grant",
    ),
    (
        "dead-letter queue policy: sam only {\"Action\":\"sqs:SendMessage\",\"Condition\":{\"ArnLike\":{\"aws:SourceArn\":\"arn:aws:events:us-east-1:123456789012:rule/bus/*\"}},\"Effect\":\"Allow\",\"Principal\":{\"Service\":\"events.amazonaws.com\"},\"Resource\":\"dlq-Arn\"}",
        "SAM's queue policy lets any rule of the eddo bus dead-letter (its push and sbt-aws rules, whose names SAM does not expose, among them); the CDK lets exactly the rules with a dead-letter queue (below), which is tighter",
    ),
    (
        "dead-letter queue policy: cdk only {\"Action\":\"sqs:SendMessage\",\"Condition\":{\"ArnEquals\":{\"aws:SourceArn\":\"rule:codebuild:Git Push-Arn\"}},\"Effect\":\"Allow\",\"Principal\":{\"Service\":\"events.amazonaws.com\"},\"Resource\":\"dlq-Arn\"}",
        "the push rule's targets dead-letter here",
    ),
    (
        "dead-letter queue policy: cdk only {\"Action\":\"sqs:SendMessage\",\"Condition\":{\"ArnEquals\":{\"aws:SourceArn\":\"rule:tenant-onboarding:sbt_aws_onboardingRequest,sbt_aws_offboardingRequest-Arn\"}},\"Effect\":\"Allow\",\"Principal\":{\"Service\":\"events.amazonaws.com\"},\"Resource\":\"dlq-Arn\"}",
        "the sbt-aws rule's target dead-letters here",
    ),
    (
        "role role:alarm-rollback: managed sam only arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole",
        "SAM attaches AWSLambdaBasicExecutionRole to each role it makes, whose logs grant is on every log group of the account; the CDK grants each function its own log group alone (below), as cdk-nag asks (AwsSolutions-IAM4)",
    ),
    (
        "role role:alarm-rollback: grants cdk only Allow logs:CreateLogStream on logs:alarm-rollback-Arn",
        "the CDK's grant of the function's own log group, in place of SAM's managed policy",
    ),
    (
        "role role:alarm-rollback: grants cdk only Allow logs:PutLogEvents on logs:alarm-rollback-Arn",
        "the CDK's grant of the function's own log group",
    ),
    (
        "role role:scan-gate: managed sam only arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole",
        "as for alarm-rollback",
    ),
    (
        "role role:scan-gate: grants cdk only Allow logs:CreateLogStream on logs:scan-gate-Arn",
        "the CDK's grant of the function's own log group, in place of SAM's managed policy",
    ),
    (
        "role role:scan-gate: grants cdk only Allow logs:PutLogEvents on logs:scan-gate-Arn",
        "the CDK's grant of the function's own log group",
    ),
    (
        "role role:tenant-onboarding: managed sam only arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole",
        "as for alarm-rollback",
    ),
    (
        "role role:tenant-onboarding: grants cdk only Allow logs:CreateLogStream on logs:tenant-onboarding-Arn",
        "the CDK's grant of the function's own log group, in place of SAM's managed policy",
    ),
    (
        "role role:tenant-onboarding: grants cdk only Allow logs:PutLogEvents on logs:tenant-onboarding-Arn",
        "the CDK's grant of the function's own log group",
    ),
    (
        "role role:webhook: managed sam only arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole",
        "as for alarm-rollback",
    ),
    (
        "role role:webhook: grants cdk only Allow logs:CreateLogStream on logs:webhook-Arn",
        "the CDK's grant of the function's own log group, in place of SAM's managed policy",
    ),
    (
        "role role:webhook: grants cdk only Allow logs:PutLogEvents on logs:webhook-Arn",
        "the CDK's grant of the function's own log group",
    ),
];

/// A template as CloudFormation would deploy it with the local stack's settings.
fn deployed(text: &str) -> Template {
    let parameters = local_template_parameters("eddo").unwrap();
    let parameters: Vec<(&str, &str)> = parameters
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    Template::translate(text, &parameters)
        .unwrap()
        .deployed()
        .unwrap()
}

fn sam() -> Template {
    let path = eddo_local::moto::project_root().join("template.yaml");
    deployed(&std::fs::read_to_string(path).unwrap())
}

/// The CDK app with the local stack's settings, and the parameter named as the SAM stack's is
/// (each derives its own otherwise).
fn cdk() -> Template {
    let parameters = local_template_parameters("eddo").unwrap();
    let (_, name) = parameters
        .iter()
        .find(|(k, _)| k == "PolicyParameterName?")
        .unwrap();
    let mut context = local_context();
    context.push(("eddo:policyParameterName", name.clone()));
    deployed(&synth(&context).expect("cdk synth"))
}

/// The function built from each binary, by logical id.
fn binaries(t: &Template) -> BTreeMap<String, String> {
    t.of_type("AWS::Lambda::Function")
        .map(|(id, r)| {
            let m = &r.metadata;
            let binary = m["BuildProperties"]["Binary"]
                .as_str()
                .or_else(|| m[BINARY_METADATA].as_str())
                .unwrap();
            (id.to_string(), binary.to_string())
        })
        .collect()
}

/// What names a resource whatever the template calls it: a function by its binary, its role
/// and log group by the function, a rule by its targets, detail types and bus, anything of
/// which a stack has one by its type.
fn canonical_names(t: &Template) -> BTreeMap<String, String> {
    let fns = binaries(t);
    let owner = |r: &Value| -> Option<String> {
        let id = r["Fn::GetAtt"][0].as_str().or(r["Ref"].as_str())?;
        fns.get(id).cloned()
    };
    let mut names = BTreeMap::new();
    for (id, r) in &t.resources {
        let name = match r.kind.as_str() {
            "AWS::Lambda::Function" => format!("fn:{}", fns[id]),
            "AWS::IAM::Role" => t
                .of_type("AWS::Lambda::Function")
                .find(|(_, f)| f.properties["Role"]["Fn::GetAtt"][0] == json!(id))
                .map(|(f, _)| format!("role:{}", fns[f]))
                .unwrap_or_else(|| "role:rule-targets".into()),
            "AWS::Logs::LogGroup" => t
                .of_type("AWS::Lambda::Function")
                .find(|(_, f)| f.properties["LoggingConfig"]["LogGroup"]["Ref"] == json!(id))
                .map(|(f, _)| format!("logs:{}", fns[f]))
                .unwrap_or_else(|| format!("logs:{id}")),
            "AWS::Events::Rule" => {
                let p = &r.properties;
                let targets: Vec<String> = p["Targets"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|t| owner(&t["Arn"]).unwrap_or_else(|| "codebuild".into()))
                    .collect::<BTreeSet<_>>()
                    .into_iter()
                    .collect();
                let what = p["EventPattern"]["detail-type"]
                    .as_array()
                    .map(|d| {
                        d.iter()
                            .filter_map(Value::as_str)
                            .collect::<Vec<_>>()
                            .join(",")
                    })
                    .or_else(|| p["ScheduleExpression"].as_str().map(str::to_string))
                    .unwrap_or_default();
                format!("rule:{}:{what}", targets.join("+"))
            }
            "AWS::Events::EventBus" => "bus".into(),
            "AWS::DynamoDB::Table" => "table".into(),
            "AWS::SecretsManager::Secret" => "secret".into(),
            "AWS::SQS::Queue" => "dlq".into(),
            "AWS::Events::Archive" => "archive".into(),
            _ => format!("{}:{id}", r.kind),
        };
        names.insert(id.clone(), name);
    }
    names
}

/// Every reference resolved to the canonical name of what it names (an SSM parameter to its
/// name, which the functions are given).
fn resolver(t: &Template) -> Names {
    let mut names = Names::new(t, "eddo");
    for (id, canon) in canonical_names(t) {
        let r = &t.resources[&id];
        let reference = match r.kind.as_str() {
            "AWS::SSM::Parameter" => r.properties["Name"].as_str().unwrap().to_string(),
            _ => canon.clone(),
        };
        names.set_ref(&id, reference);
        names.set_placeholders(&id, &canon);
    }
    names
}

/// A function's ARN and its name name the same function: both become its canonical name.
fn same_function(v: Value) -> Value {
    match v {
        Value::String(s) if s.starts_with("fn:") && s.ends_with("-Arn") => {
            Value::String(s.trim_end_matches("-Arn").to_string())
        }
        Value::Array(a) => Value::Array(a.into_iter().map(same_function).collect()),
        Value::Object(m) => {
            Value::Object(m.into_iter().map(|(k, v)| (k, same_function(v))).collect())
        }
        v => v,
    }
}

/// A JSON value as CloudFormation reads it: every list of scalars sorted and deduplicated
/// (order means nothing in an event pattern or a policy), keys in order, numbers as the strings
/// CloudFormation passes, empty objects as absent.
fn sorted(v: Value) -> Value {
    match v {
        Value::Number(n) => Value::String(n.to_string()),
        Value::Object(m) => {
            let m: BTreeMap<String, Value> = m
                .into_iter()
                .map(|(k, v)| (k, sorted(v)))
                .filter(|(_, v)| v != &json!({}))
                .collect();
            Value::Object(m.into_iter().collect())
        }
        Value::Array(items) => {
            let mut items: Vec<Value> = items.into_iter().map(sorted).collect();
            if items.iter().all(|i| !i.is_object() && !i.is_array()) {
                items.sort_by_key(|i| i.to_string());
                items.dedup();
            }
            Value::Array(items)
        }
        v => v,
    }
}

fn strings(v: &Value) -> Vec<String> {
    match v {
        Value::Array(a) => a.iter().flat_map(strings).collect(),
        Value::String(s) => vec![s.clone()],
        Value::Null => vec![],
        other => vec![other.to_string()],
    }
}

/// Each grant of a policy document, one action on one resource: `Effect action on resource
/// [if condition]` (a function's ARN and its name mean the same function).
fn grants(doc: &Value) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let statements = match &doc["Statement"] {
        Value::Array(a) => a.clone(),
        other => vec![other.clone()],
    };
    for st in statements {
        for action in strings(&st["Action"]) {
            for resource in strings(&st["Resource"]) {
                let condition = match &st["Condition"] {
                    Value::Null => String::new(),
                    c => format!(" if {}", sorted(c.clone())),
                };
                out.insert(format!(
                    "{} {action} on {resource}{condition}",
                    st["Effect"].as_str().unwrap()
                ));
            }
        }
    }
    out
}

/// An input transformer's output for `event`, as EventBridge makes it: a placeholder outside
/// quotes takes the value as JSON, inside quotes its text.
fn render(transformer: &Value, event: &Value) -> Value {
    let template = transformer["InputTemplate"].as_str().unwrap();
    let paths = transformer["InputPathsMap"].as_object().unwrap();
    let value = |name: &str| -> Option<Value> {
        let path = paths.get(name)?.as_str()?;
        let pointer = path.trim_start_matches('$').replace('.', "/");
        Some(event.pointer(&pointer).cloned().unwrap_or(Value::Null))
    };
    let (mut out, mut quoted, mut rest) = (String::new(), false, template);
    while let Some(c) = rest.chars().next() {
        if c == '\\' && quoted {
            out.push_str(&rest[..2]);
            rest = &rest[2..];
            continue;
        }
        if c == '"' {
            quoted = !quoted;
        }
        if c == '<'
            && let Some(end) = rest.find('>')
            && let Some(v) = value(&rest[1..end])
        {
            if quoted {
                let text = v
                    .as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| v.to_string());
                let escaped = Value::String(text).to_string();
                out.push_str(&escaped[1..escaped.len() - 1]);
            } else {
                out.push_str(&v.to_string());
            }
            rest = &rest[end + 1..];
            continue;
        }
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    serde_json::from_str(&out).unwrap_or(Value::String(out))
}

/// The stack a template declares, as comparable facts: each a key and its value.
fn facts(t: &Template) -> BTreeMap<String, Value> {
    let names = resolver(t);
    let canon = canonical_names(t);
    let resolve = |id: &str, v: &Value| same_function(names.resolve(v, id).unwrap());
    let mut out = BTreeMap::new();
    let types: BTreeSet<&str> = t.resources.values().map(|r| r.kind.as_str()).collect();
    out.insert("resource types".into(), json!(types));
    let push = json!({"id": "event-1", "detail": {
        "commit_sha": "6113728f27ae82c7b1a177c8d03f9e96e0adf246",
        "repository": {"full_name": "Codertocat/Hello-World"},
        "branch": "main",
        "metadata": {"correlation_id": "c-1", "causation_id": "d-1"},
    }});
    for (id, r) in &t.resources {
        let c = &canon[id];
        let mut p = resolve(id, &r.properties);
        match r.kind.as_str() {
            "AWS::Lambda::Function" => {
                let o = p.as_object_mut().unwrap();
                // The code is where each tool stages it; SAM tags its functions.
                o.remove("Code");
                o.remove("Tags");
                out.insert(format!("function {c}"), sorted(p));
            }
            "AWS::Lambda::EventInvokeConfig" | "AWS::Lambda::Url" => {
                let f = p["FunctionName"]
                    .as_str()
                    .or(p["TargetFunctionArn"].as_str());
                out.insert(
                    format!("{} of {}", r.kind, f.unwrap_or_default()),
                    sorted(p),
                );
            }
            "AWS::Events::Rule" => {
                let o = p.as_object_mut().unwrap();
                o.remove("Description");
                o.entry("State").or_insert(json!("ENABLED"));
                for target in o
                    .get_mut("Targets")
                    .and_then(Value::as_array_mut)
                    .into_iter()
                    .flatten()
                {
                    let target = target.as_object_mut().unwrap();
                    target.remove("Id");
                    if let Some(tr) = target.remove("InputTransformer") {
                        target.insert("Input for a push".into(), render(&tr, &push));
                    }
                }
                if let Some(targets) = o.get_mut("Targets").and_then(Value::as_array_mut) {
                    targets.sort_by_key(|t| t.to_string());
                }
                out.insert(format!("rule {c}"), sorted(p));
            }
            "AWS::CloudWatch::Alarm" => {
                out.insert(format!("alarm on {}", p["Dimensions"]), sorted(p));
            }
            "AWS::Events::EventBusPolicy" => {
                let sid = p["StatementId"].as_str().unwrap_or_default().to_string();
                out.insert(format!("bus policy {sid}"), sorted(p));
            }
            "AWS::Lambda::Permission" => {
                out.insert(format!("permission {}", sorted(p.clone())), json!(true));
            }
            "AWS::SQS::QueuePolicy" => {
                for g in p["PolicyDocument"]["Statement"]
                    .as_array()
                    .into_iter()
                    .flatten()
                {
                    let mut g = g.clone();
                    g.as_object_mut().unwrap().remove("Sid");
                    // One statement listing rules says what one statement per rule says.
                    let sources = &mut g["Condition"]["ArnEquals"]["aws:SourceArn"];
                    let each: Vec<Value> = match sources.take() {
                        Value::Array(arns) => arns,
                        one => vec![one],
                    };
                    for arn in each {
                        if !arn.is_null() {
                            g["Condition"]["ArnEquals"]["aws:SourceArn"] = arn;
                        } else if let Some(c) = g["Condition"].as_object_mut() {
                            c.remove("ArnEquals");
                        }
                        out.insert(
                            format!("dead-letter queue policy: {}", sorted(g.clone())),
                            json!(true),
                        );
                    }
                }
            }
            "AWS::IAM::Role" => {
                let managed: BTreeSet<String> =
                    strings(&p["ManagedPolicyArns"]).into_iter().collect();
                for m in managed {
                    out.insert(format!("role {c}: managed {m}"), json!(true));
                }
                for g in grants(&p["AssumeRolePolicyDocument"]) {
                    out.insert(format!("role {c}: trust {g}"), json!(true));
                }
                for policy in p["Policies"].as_array().into_iter().flatten() {
                    for g in grants(&policy["PolicyDocument"]) {
                        out.insert(format!("role {c}: grants {g}"), json!(true));
                    }
                }
            }
            "AWS::IAM::Policy" | "AWS::IAM::RolePolicy" => {
                let roles = strings(&p["Roles"])
                    .into_iter()
                    .chain(strings(&p["RoleName"]));
                for role in roles {
                    for g in grants(&p["PolicyDocument"]) {
                        out.insert(format!("role {role}: grants {g}"), json!(true));
                    }
                }
            }
            "AWS::Logs::LogGroup"
            | "AWS::DynamoDB::Table"
            | "AWS::SQS::Queue"
            | "AWS::SecretsManager::Secret"
            | "AWS::Events::Archive"
            | "AWS::Events::EventBus" => {
                if r.kind == "AWS::Events::EventBus" {
                    // Named by the deployment (eddo-bus locally, eddo by default).
                    p.as_object_mut().unwrap().remove("Name");
                }
                out.insert(format!("{} {c}", r.kind), sorted(p));
            }
            _ => {}
        }
    }
    out
}

/// Every difference between the two stacks, one line each.
fn parity(sam: &BTreeMap<String, Value>, cdk: &BTreeMap<String, Value>) -> Vec<String> {
    let mut out = Vec::new();
    let types = |f: &BTreeMap<String, Value>| -> BTreeSet<String> {
        strings(&f["resource types"]).into_iter().collect()
    };
    for t in types(sam).difference(&types(cdk)) {
        out.push(format!("resource types: sam has {t}"));
    }
    for t in types(cdk).difference(&types(sam)) {
        out.push(format!("resource types: cdk has {t}"));
    }
    for (k, v) in sam.iter().filter(|(k, _)| *k != "resource types") {
        match cdk.get(k) {
            None if v == &json!(true) => out.push(only(k, "sam")),
            None => out.push(format!("{k}: sam only")),
            Some(w) if w != v => out.push(format!("{k}: sam {v} cdk {w}")),
            _ => {}
        }
    }
    for (k, v) in cdk.iter().filter(|(k, _)| *k != "resource types") {
        if !sam.contains_key(k) {
            if v == &json!(true) {
                out.push(only(k, "cdk"));
            } else {
                out.push(format!("{k}: cdk only"));
            }
        }
    }
    out
}

/// `role X: managed Y` -> `role X: managed sam only Y`.
fn only(fact: &str, side: &str) -> String {
    match fact.split_once(": ") {
        Some((area, rest)) => {
            let (kind, what) = rest.split_once(' ').unwrap_or((rest, ""));
            if area.starts_with("role ") {
                format!("{area}: {kind} {side} only {what}")
            } else {
                format!("{area}: {side} only {rest}")
            }
        }
        None => format!("{fact}: {side} only"),
    }
}

#[test]
fn the_cdk_stack_is_the_sam_stack_but_for_what_is_listed() {
    let (sam, cdk) = (facts(&sam()), facts(&cdk()));
    let found = parity(&sam, &cdk);
    let intended: BTreeSet<&str> = INTENDED.iter().map(|(d, _)| *d).collect();
    let unexplained: Vec<&String> = found
        .iter()
        .filter(|d| !intended.contains(d.as_str()))
        .collect();
    assert!(
        unexplained.is_empty(),
        "differences nobody explained:\n{}",
        unexplained
            .iter()
            .map(|d| d.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    );
    let stale: Vec<&&str> = intended
        .iter()
        .filter(|d| !found.iter().any(|f| f == **d))
        .collect();
    assert!(
        stale.is_empty(),
        "listed as intended but not a difference: {stale:#?}"
    );
    // The comparison compares: the same functions, rules and roles are there on both sides.
    for key in [
        "function fn:scan-gate",
        "rule rule:codebuild:Git Push",
        "AWS::DynamoDB::Table table",
        "bus policy EachSignalSourceOnlyFromItsTaggedRoles",
        "alarm on [{\"Name\":\"FunctionName\",\"Value\":\"fn:webhook\"}]",
    ] {
        assert!(
            sam.contains_key(key) && cdk.contains_key(key),
            "{key} on both sides"
        );
    }
}

/// The README's run command on the CDK app's stack: every step of the scenario happens, under
/// IAM, and the only grants on every resource are Inspector's (no resource-level permissions)
/// and the CDK's X-Ray grant (X-Ray has none either).
#[tokio::test(flavor = "multi_thread")]
async fn the_demo_plays_on_the_cdk_stack() {
    let template = synth(&local_context()).expect("cdk synth");
    let played = play(&template, true, false).await.expect("the demo runs");
    assert!(
        played.passed(),
        "the demo reported failed steps; its timeline is in this test's output"
    );
    let mut everywhere: Vec<String> = played
        .roles
        .iter()
        .flat_map(wildcard_grants)
        .map(|g| g.split_once(": ").map(|(_, a)| a.to_string()).unwrap_or(g))
        .collect();
    everywhere.sort();
    everywhere.dedup();
    assert_eq!(
        everywhere,
        [
            "inspector2:ListFindings",
            "xray:PutTelemetryRecords",
            "xray:PutTraceSegments"
        ]
    );
}

/// The CDK stack with a platform's policy: 1,000 generated services (4.3 MB, past any SSM
/// parameter) are kept as a file asset in the bootstrap's versioned bucket, published as `cdk
/// deploy` publishes it; the stack provisions through every quota check of the local stack, the
/// gate reads the object as its role, service 999's signals start its own deploy project once,
/// and the decision names the object's version id.
#[tokio::test(flavor = "multi_thread")]
async fn a_thousand_service_policy_deploys_with_the_cdk_stack_from_s3() {
    use crate::harness::{Local, gate::Setup};
    let text = eddo_local::fixtures::policy_of_services(1000).unwrap();
    let dir = std::env::temp_dir().join(format!("eddo-cdk-scale-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("policy.yaml");
    std::fs::write(&file, &text).unwrap();
    let mut context = local_context();
    context.extend([
        ("eddo:policyFile", file.display().to_string()),
        // The example app's push projects are the example policy's; this one names none of them.
        ("eddo:buildProject", String::new()),
        ("eddo:sastProject", String::new()),
    ]);
    let synthesized = eddo_local::cdk::synth_with_assets(&context).expect("cdk synth");
    let _ = std::fs::remove_dir_all(&dir);
    // The policy, and the template itself (`cdk deploy` uploads it too); no function bundle.
    let policies: Vec<_> = synthesized
        .files
        .iter()
        .filter(|f| f.key.ends_with(".yaml"))
        .collect();
    assert_eq!(
        policies.len(),
        1,
        "{:?}",
        synthesized.files.iter().map(|f| &f.key).collect::<Vec<_>>()
    );
    assert!(
        synthesized
            .files
            .iter()
            .all(|f| f.key.ends_with(".yaml") || f.key.ends_with(".json"))
    );
    let policy = policies[0].clone();
    assert_eq!(policy.bytes, text.as_bytes());
    let local = Local::start_template("cdk-scale", &synthesized.template, &synthesized.files).await;
    assert_eq!(
        local.stack.policy,
        Some(eddo::policy::PolicyStore::Object {
            bucket: policy.bucket.clone(),
            key: policy.key.clone()
        })
    );
    let s = Setup::on(local).await;
    let service = eddo_local::fixtures::service_name(999);
    s.generated_service_flow(&service, 999).await;
    let started = s.deployed_once(&service).await;
    let version = s.object_version(&policy.bucket, &policy.key).await;
    assert_eq!(started["policy_version"], version.as_str());
}

/// The dashboard's body on `t`, with its Fn::Sub placeholders as written.
fn dashboard(t: &Template) -> Value {
    let boards: Vec<_> = t.of_type("AWS::CloudWatch::Dashboard").collect();
    assert_eq!(boards.len(), 1, "one dashboard");
    let body = &boards[0].1.properties["DashboardBody"]["Fn::Sub"][0];
    serde_json::from_str(body.as_str().expect("a body for Fn::Sub")).expect("a JSON body")
}

/// Both stacks hold the same dashboard, and it graphs every metric the functions emit, by the
/// metric's own dimensions (a metric with no widget fails here).
#[test]
fn both_stacks_have_one_dashboard_with_a_widget_for_every_metric() {
    let (sam, cdk) = (dashboard(&sam()), dashboard(&cdk()));
    assert_eq!(
        sam, cdk,
        "template.yaml and infra/cdk/lib/dashboard.ts differ"
    );
    let expressions: Vec<String> = sam["widgets"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|w| {
            w["properties"]["metrics"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .flat_map(|row| row.as_array().cloned().unwrap_or_default())
        .filter_map(|m| m["expression"].as_str().map(str::to_string))
        .collect();
    for metric in eddo::metrics::Metric::ALL {
        let search = format!(
            "SEARCH('{{{},{}}} MetricName=\"{}\"'",
            eddo::metrics::NAMESPACE,
            metric.dimensions().join(","),
            metric.name()
        );
        assert!(
            expressions.iter().any(|e| e.starts_with(&search)),
            "{} has no widget ({search}...): {expressions:#?}",
            metric.name()
        );
    }
}

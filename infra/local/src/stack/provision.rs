//! What the local stack creates on the emulator for each kind of resource of the template, and
//! the names it gives what it does not create.

use std::collections::{BTreeMap, HashMap};

use aws_config::SdkConfig;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType, TimeToLiveSpecification,
};
use serde_json::{Value, json};

use super::*;
use crate::iam::Authority;
use crate::moto::AccessKey;
use crate::template::{
    ACCOUNT, FunctionDef, Names, REGION, RuleDef, TargetKind, Template, property,
};

/// Every `AWS::Events::EventBus`: created, named for `Ref` and `Fn::GetAtt`.
pub(super) async fn buses(
    sdk: &SdkConfig,
    template: &Template,
    names: &mut Names,
    prefix: &str,
) -> Result<Vec<String>, LocalError> {
    let eb = aws_sdk_eventbridge::Client::new(sdk);
    let mut buses = Vec::new();
    for (id, r) in template.of_type("AWS::Events::EventBus") {
        let props = names.resolve(&r.properties, &format!("resource {id}, Properties"))?;
        let name = props["Name"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| format!("{prefix}-{id}"));
        let out = eb
            .create_event_bus()
            .name(&name)
            .send()
            .await
            .map_err(|e| aws("CreateEventBus", e))?;
        names.set_ref(id, &name);
        names.set_attr(id, "Name", &name);
        names.set_attr(id, "Arn", out.event_bus_arn().unwrap_or_default());
        buses.push(name);
    }
    Ok(buses)
}

/// Every `AWS::Events::EventBusPolicy`, gathered per bus into the bus's resource policy, which
/// the emulator enforces on PutEvents as EventBridge does. After the roles: its statements name
/// them.
pub(super) fn bus_policies(
    authority: &Authority,
    template: &Template,
    names: &Names,
) -> Result<(), LocalError> {
    let mut policies: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for (id, r) in template.of_type("AWS::Events::EventBusPolicy") {
        let props = names.resolve(&r.properties, &format!("resource {id}, Properties"))?;
        let bus = props["EventBusName"].as_str().unwrap_or("default");
        let arn = if bus.starts_with("arn:") {
            bus.to_string()
        } else {
            format!("arn:aws:events:{REGION}:{ACCOUNT}:event-bus/{bus}")
        };
        let mut statement = props["Statement"].clone();
        if !statement.is_object() {
            return Err(LocalError::Setup(format!(
                "resource {id}: the local stack provisions an EventBusPolicy from its Statement"
            )));
        }
        statement["Sid"] = props["StatementId"].clone();
        policies.entry(arn).or_default().push(statement);
    }
    for (arn, statements) in policies {
        let policy = json!({"Version": "2012-10-17", "Statement": statements});
        crate::quotas::BUS_POLICY.check(
            format!("the policy of {arn}"),
            crate::quotas::policy_size(&policy),
        )?;
        authority.set_resource_policy(&arn, &policy)?;
    }
    Ok(())
}

/// Every `AWS::SSM::Parameter`, with its value: name -> value.
pub(super) async fn parameters(
    sdk: &SdkConfig,
    template: &Template,
    names: &mut Names,
    prefix: &str,
) -> Result<BTreeMap<String, String>, LocalError> {
    let ssm = aws_sdk_ssm::Client::new(sdk);
    let mut out = BTreeMap::new();
    for (id, r) in template.of_type("AWS::SSM::Parameter") {
        let props = names.resolve(&r.properties, &format!("resource {id}, Properties"))?;
        let name = props["Name"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| format!("{prefix}-{id}"));
        let value = props["Value"].as_str().ok_or_else(|| {
            LocalError::Setup(format!(
                "template: resource {id}, Properties.Value: a string is required"
            ))
        })?;
        let kind = props["Type"].as_str().unwrap_or_default();
        if !["String", "StringList"].contains(&kind) {
            return Err(LocalError::Setup(format!(
                "template: resource {id}, Properties.Type: String or StringList (CloudFormation cannot create a SecureString), not {kind:?}"
            )));
        }
        crate::quotas::ssm_value(props["Tier"].as_str())
            .check(format!("parameter {id}'s value"), value.len())?;
        ssm.put_parameter()
            .name(&name)
            .value(value)
            .r#type(kind.into())
            .tier(props["Tier"].as_str().unwrap_or("Standard").into())
            .send()
            .await
            .map_err(|e| aws(&format!("PutParameter {id}"), e))?;
        names.set_ref(id, &name);
        names.set_attr(id, "Type", kind);
        names.set_attr(id, "Value", value);
        out.insert(name, value.to_string());
    }
    Ok(out)
}

/// Every `AWS::DynamoDB::Table`, with its keys, indexes and TTL.
pub(super) async fn tables(
    sdk: &SdkConfig,
    template: &Template,
    names: &mut Names,
    prefix: &str,
) -> Result<Vec<String>, LocalError> {
    let ddb = aws_sdk_dynamodb::Client::new(sdk);
    let mut tables = Vec::new();
    for (id, r) in template.of_type("AWS::DynamoDB::Table") {
        let props = names.resolve(&r.properties, &format!("resource {id}, Properties"))?;
        let name = props["TableName"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| format!("{prefix}-{id}"));
        let mut create = ddb
            .create_table()
            .table_name(&name)
            .billing_mode(BillingMode::PayPerRequest);
        for k in props["KeySchema"].as_array().into_iter().flatten() {
            let kind = if k["KeyType"] == "RANGE" {
                KeyType::Range
            } else {
                KeyType::Hash
            };
            create = create.key_schema(
                KeySchemaElement::builder()
                    .attribute_name(k["AttributeName"].as_str().unwrap_or_default())
                    .key_type(kind)
                    .build()
                    .map_err(|e| LocalError::Aws(e.to_string()))?,
            );
        }
        for a in props["AttributeDefinitions"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let kind = match a["AttributeType"].as_str() {
                Some("N") => ScalarAttributeType::N,
                Some("B") => ScalarAttributeType::B,
                _ => ScalarAttributeType::S,
            };
            create = create.attribute_definitions(
                AttributeDefinition::builder()
                    .attribute_name(a["AttributeName"].as_str().unwrap_or_default())
                    .attribute_type(kind)
                    .build()
                    .map_err(|e| LocalError::Aws(e.to_string()))?,
            );
        }
        for g in props["GlobalSecondaryIndexes"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let projection = match g["Projection"]["ProjectionType"].as_str() {
                Some("KEYS_ONLY") => ProjectionType::KeysOnly,
                Some("INCLUDE") => ProjectionType::Include,
                _ => ProjectionType::All,
            };
            let mut index = GlobalSecondaryIndex::builder()
                .index_name(g["IndexName"].as_str().unwrap_or_default())
                .projection(Projection::builder().projection_type(projection).build());
            for k in g["KeySchema"].as_array().into_iter().flatten() {
                index = index.key_schema(
                    KeySchemaElement::builder()
                        .attribute_name(k["AttributeName"].as_str().unwrap_or_default())
                        .key_type(if k["KeyType"] == "RANGE" {
                            KeyType::Range
                        } else {
                            KeyType::Hash
                        })
                        .build()
                        .map_err(|e| LocalError::Aws(e.to_string()))?,
                );
            }
            create = create.global_secondary_indexes(
                index.build().map_err(|e| LocalError::Aws(e.to_string()))?,
            );
        }
        let out = create
            .send()
            .await
            .map_err(|e| aws(&format!("CreateTable {id}"), e))?;
        if let Some(ttl) = props["TimeToLiveSpecification"]["AttributeName"].as_str() {
            ddb.update_time_to_live()
                .table_name(&name)
                .time_to_live_specification(
                    TimeToLiveSpecification::builder()
                        .enabled(true)
                        .attribute_name(ttl)
                        .build()
                        .map_err(|e| LocalError::Aws(e.to_string()))?,
                )
                .send()
                .await
                .map_err(|e| aws("UpdateTimeToLive", e))?;
        }
        names.set_ref(id, &name);
        names.set_attr(
            id,
            "Arn",
            out.table_description()
                .and_then(|d| d.table_arn())
                .unwrap_or_default(),
        );
        tables.push(name);
    }
    Ok(tables)
}

/// Every `AWS::SecretsManager::Secret`, holding the local development secrets.
pub(super) async fn secrets(
    sdk: &SdkConfig,
    template: &Template,
    names: &mut Names,
    prefix: &str,
) -> Result<Vec<String>, LocalError> {
    let sm = aws_sdk_secretsmanager::Client::new(sdk);
    let mut secrets = Vec::new();
    for (id, r) in template.of_type("AWS::SecretsManager::Secret") {
        // A secret the template gives a value (the GitHub App's, "{}" until its key is put)
        // starts with it; a generated one holds the local development secrets.
        let given = r.properties["SecretString"].as_str().map(str::to_string);
        let generated = given.is_none();
        let local = json!({
            "github": LOCAL_GITHUB_SECRET,
            "gitlab": LOCAL_GITLAB_TOKEN,
            "standard_webhooks": LOCAL_STANDARD_SECRET,
            "senders": {"chatops": LOCAL_CHATOPS_KEY, "tekton": LOCAL_TEKTON_KEY},
            "tokens": {"jenkins": LOCAL_JENKINS_TOKEN, "prometheus": LOCAL_PROMETHEUS_TOKEN},
        });
        let out = sm
            .create_secret()
            .name(format!("{prefix}-{id}"))
            .secret_string(given.unwrap_or_else(|| local.to_string()))
            .send()
            .await
            .map_err(|e| aws("CreateSecret", e))?;
        let arn = out.arn().unwrap_or_default().to_string();
        names.set_ref(id, &arn);
        secrets.push((!generated, arn));
    }
    // The generated one (the webhook secret) first.
    secrets.sort_by_key(|(given, _)| *given);
    Ok(secrets.into_iter().map(|(_, arn)| arn).collect())
}

/// Every `AWS::SQS::Queue`.
pub(super) async fn queues(
    sdk: &SdkConfig,
    template: &Template,
    names: &mut Names,
    prefix: &str,
) -> Result<Vec<String>, LocalError> {
    let sqs = aws_sdk_sqs::Client::new(sdk);
    let mut queues = Vec::new();
    for (id, _) in template.of_type("AWS::SQS::Queue") {
        let name = format!("{prefix}-{id}");
        let url = sqs
            .create_queue()
            .queue_name(&name)
            .send()
            .await
            .map_err(|e| aws("CreateQueue", e))?;
        let url = url.queue_url().unwrap_or_default().to_string();
        names.set_ref(id, &url);
        queues.push(url.clone());
        names.set_attr(id, "QueueName", &name);
        names.set_attr(id, "Arn", format!("arn:aws:sqs:{REGION}:{ACCOUNT}:{name}"));
    }
    Ok(queues)
}

/// The names of the functions and rules (what the runtime and the routes use), and placeholders
/// for what the local stack does not create; returns the functions' ARNs and what was skipped.
pub(super) fn names(
    template: &Template,
    names: &mut Names,
    prefix: &str,
) -> Result<(HashMap<String, String>, Vec<String>), LocalError> {
    let mut function_arns: HashMap<String, String> = HashMap::new();
    for (id, _) in template.of_type("AWS::Lambda::Function") {
        let name = format!("{prefix}-{id}");
        let arn = format!("arn:aws:lambda:{REGION}:{ACCOUNT}:function:{name}");
        names.set_attr(id, "Arn", &arn);
        names.set_ref(id, name);
        function_arns.insert(arn, id.to_string());
    }
    let created = [
        "AWS::Events::EventBus",
        "AWS::DynamoDB::Table",
        "AWS::SecretsManager::Secret",
        "AWS::SQS::Queue",
        "AWS::Lambda::Function",
        "AWS::Events::Rule",
        "AWS::Events::Connection",
        "AWS::Events::ApiDestination",
        "AWS::IAM::Role",
        "AWS::IAM::RolePolicy",
        "AWS::IAM::Policy",
        "AWS::SSM::Parameter",
    ];
    // Each rule's name and ARN, for what names it (a permission's SourceArn).
    for (id, r) in template.of_type("AWS::Events::Rule") {
        let bus = property(names, id, r, "EventBusName")?;
        let name = format!("{prefix}-{id}");
        let arn = match bus.as_str().map(|b| b.rsplit('/').next().unwrap_or(b)) {
            None | Some("default") => format!("arn:aws:events:{REGION}:{ACCOUNT}:rule/{name}"),
            Some(bus) => format!("arn:aws:events:{REGION}:{ACCOUNT}:rule/{bus}/{name}"),
        };
        names.set_ref(id, &name);
        names.set_attr(id, "Arn", arn);
    }
    let mut skipped = Vec::new();
    for (id, r) in template
        .resources
        .iter()
        .filter(|(_, r)| !created.contains(&r.kind.as_str()))
    {
        // Not created here, but a function may name it (its log group, say).
        names.set_ref(id, format!("{prefix}-{id}"));
        names.set_placeholders(
            id,
            &format!("arn:aws:local:{REGION}:{ACCOUNT}:{prefix}-{id}"),
        );
        skipped.push(format!("{id} ({})", r.kind));
    }
    Ok((function_arns, skipped))
}

/// Each function's session of its execution role, as Lambda gets it.
pub(super) fn sessions(
    sdk: &SdkConfig,
    functions: &[FunctionDef],
) -> Result<(Authority, BTreeMap<String, AccessKey>), LocalError> {
    let authority = Authority::of(sdk)?;
    let mut credentials = BTreeMap::new();
    for f in functions {
        let key = authority
            .assume(&f.role, "lambda.amazonaws.com", &f.logical_id)
            .map_err(|e| LocalError::Setup(format!("{}: {e}", f.logical_id)))?;
        credentials.insert(f.logical_id.clone(), key);
    }
    Ok((authority, credentials))
}

/// A queue per rule target, fed by moto with the rule's pattern and the target's input; the
/// CodeBuild projects the rules target.
pub(super) async fn routes(
    sdk: &SdkConfig,
    rules: Vec<RuleDef>,
    prefix: &str,
    skipped: &mut Vec<String>,
) -> Result<(Vec<RouteDef>, Vec<String>), LocalError> {
    let mut routes = Vec::new();
    let mut projects = Vec::new();
    for rule in rules {
        if rule.schedule.is_some() {
            for target in &rule.targets {
                routes.push(RouteDef {
                    rule: rule.name.clone(),
                    bus: rule.bus.clone(),
                    pattern: String::new(),
                    schedule: rule.schedule.clone(),
                    target: target.kind.clone(),
                    queue_url: String::new(),
                    role: target.role.clone(),
                    options: target.options.clone(),
                    dead_letter_url: None,
                });
            }
            continue;
        }
        check_pattern(&rule.pattern)
            .map_err(|e| LocalError::Setup(format!("rule {}: {e}", rule.name)))?;
        for target in &rule.targets {
            match &target.kind {
                TargetKind::Other(arn) => {
                    skipped.push(format!("{} target {arn}", rule.name));
                    continue;
                }
                TargetKind::CodeBuild(project) if target.role.is_none() => {
                    return Err(LocalError::Setup(format!(
                        "template: rule {} target {}: EventBridge starts CodeBuild builds only as a role (RoleArn)",
                        rule.name, target.id
                    )));
                }
                TargetKind::ApiDestination(_) if target.role.is_none() => {
                    return Err(LocalError::Setup(format!(
                        "template: rule {} target {}: EventBridge invokes an API destination only as a role (RoleArn)",
                        rule.name, target.id
                    )));
                }
                TargetKind::CodeBuild(project) => projects.push(project.clone()),
                TargetKind::Function(_) | TargetKind::ApiDestination(_) => {}
            }
            let queue = format!("{prefix}-{}-{}", rule.name, target.id);
            let queue: String = queue
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                        c
                    } else {
                        '-'
                    }
                })
                // Also the target's id, which may be 64 characters long.
                .take(64)
                .collect();
            let queue_url = route_to_queue(
                sdk,
                &rule.bus,
                &format!("{prefix}-{}", rule.name),
                &queue,
                &rule.pattern,
                &target.input,
            )
            .await
            .map_err(|e| LocalError::Setup(format!("rule {}: {e}", rule.name)))?;
            routes.push(RouteDef {
                rule: rule.name.clone(),
                bus: rule.bus.clone(),
                pattern: rule.pattern.clone(),
                schedule: None,
                target: target.kind.clone(),
                queue_url,
                role: target.role.clone(),
                options: target.options.clone(),
                dead_letter_url: dead_letter_url(sdk, target.options.dead_letter.as_deref())
                    .await?,
            });
        }
    }
    Ok((routes, projects))
}

/// The URL of the queue a target's `DeadLetterConfig` names by ARN, if it names one.
async fn dead_letter_url(sdk: &SdkConfig, arn: Option<&str>) -> Result<Option<String>, LocalError> {
    let Some(name) = arn.and_then(|a| a.rsplit(':').next()) else {
        return Ok(None);
    };
    let out = aws_sdk_sqs::Client::new(sdk)
        .get_queue_url()
        .queue_name(name)
        .send()
        .await
        .map_err(|e| aws("GetQueueUrl", e))?;
    Ok(out.queue_url().map(str::to_string))
}

//! The AWS resources eddo needs, created on the emulator from `template.yaml` (the bus, the state
//! table with its keys and TTL, the webhook secret, the queues, each function's environment, every
//! rule with its real pattern and each target's input), plus queues to watch with: one receiving
//! every eddo event, one per rule receiving what the rule matched.

use std::time::Duration;

use aws_config::SdkConfig;
use serde_json::Value;

use crate::dispatch::{Dispatcher, Route, Target};
use crate::iam::Authority;
use crate::moto::AccessKey;
use crate::moto::project_root;
use crate::runtime::{FunctionSpec, LocalFunction};
use crate::{LocalError, aws};
use std::collections::BTreeMap;

use crate::codebuild::CodeBuild;
use crate::pattern::check_pattern;
mod destinations;
mod provision;
mod routes;
pub use destinations::ApiDestinationDef;
use routes::{check_invoke_permissions, route_to_queue};

use crate::template::{
    ACCOUNT, FunctionDef, Names, REGION, TargetKind, Template, functions, rules,
};
use std::sync::Arc;

mod settings;
pub mod table;
use settings::add_policy_projects;
pub use settings::*;

/// Everything eddo publishes, for watching the bus.
pub const TAP_PATTERN: &str = r#"{"source":[{"prefix":"eddo."}]}"#;

/// How long a build in the CodeBuild stand-in runs unless the scenario says otherwise.
pub const BUILD_DURATION: Duration = Duration::from_millis(500);

/// A rule's target, as provisioned: the queue moto routes the rule's events to, after applying
/// the target's input transformer.
#[derive(Debug, Clone, PartialEq)]
pub struct RouteDef {
    pub rule: String,
    /// The bus the rule is on.
    pub bus: String,
    /// The rule's event pattern, as JSON text (empty for a schedule).
    pub pattern: String,
    /// A schedule rule's expression: moto does not fire schedules, the dispatcher's `tick` does.
    pub schedule: Option<String>,
    pub target: TargetKind,
    pub queue_url: String,
    /// The role EventBridge assumes to reach the target (`RoleArn`; a CodeBuild target needs one).
    pub role: Option<String>,
    /// Its retries, dead-letter queue and headers, as the template sets them.
    pub options: crate::template::TargetOptions,
    /// The URL of its dead-letter queue, if it has one.
    pub dead_letter_url: Option<String>,
}

impl RouteDef {
    /// The rule's ARN, as EventBridge names it (`rule/<bus>/<name>` on a custom bus).
    pub fn arn(&self) -> String {
        let on = if self.bus == "default" || self.bus.is_empty() {
            String::new()
        } else {
            format!("{}/", self.bus)
        };
        format!(
            "arn:aws:events:us-east-1:{}:rule/{on}{}",
            crate::fixtures::ACCOUNT,
            self.rule
        )
    }

    /// The logical id of the function this route invokes, if it invokes one.
    pub fn function(&self) -> Option<&str> {
        match &self.target {
            TargetKind::Function(f) => Some(f),
            _ => None,
        }
    }
}

pub struct Stack {
    pub sdk: SdkConfig,
    /// The template's event bus.
    pub bus: String,
    /// The template's state table.
    pub table: String,
    /// The template's webhook secret, holding the local development secrets.
    pub secret_arn: String,
    /// The template's functions, their environment resolved to the local resources.
    pub functions: Vec<FunctionDef>,
    /// Resource types the local stack does not create (log groups, alarms, ...).
    pub skipped: Vec<String>,
    /// The template's rule targets that run locally (functions, CodeBuild projects), each fed by
    /// its own SQS queue.
    pub routes: Vec<RouteDef>,
    /// The SSM parameter holding the policy (`PolicyParameterName`), which the local stack
    /// fills with `infra/policy/example.yaml`; none when the policy is in S3.
    pub policy_parameter: Option<String>,
    /// Where the functions read the policy: the SSM parameter, or the S3 object
    /// (`PolicyObject`) in a versioned bucket the local stack creates.
    pub policy: Option<eddo::policy::PolicyStore>,
    /// The CodeBuild stand-in, which knows every project the template's rules target.
    pub codebuild: Arc<CodeBuild>,
    /// The template's first queue: where failed asynchronous deliveries land.
    pub dead_letter_queue: Option<String>,
    /// The template's API destinations, by ARN: what EventBridge delivers to outside AWS.
    pub api_destinations: BTreeMap<String, ApiDestinationDef>,
    /// Receives every eddo event (local rule `TAP_PATTERN`).
    pub tap_queue: String,
    /// For each rule of the template, a queue that receives every event the rule matches, as
    /// it matched it (no input transformer): what the rule saw, for tests and the timeline.
    pub matched: BTreeMap<String, String>,
    /// The emulator's IAM, which the CodeBuild stand-in and rule targets ask.
    pub authority: Authority,
    /// Each function's session of its execution role (by logical id): what Lambda gives it.
    pub credentials: BTreeMap<String, AccessKey>,
    /// By source, the session of the role that puts it ([`sender_role`]): the tools' signal
    /// sources and the control planes' (only those whose role the template names).
    pub senders: BTreeMap<String, AccessKey>,
    /// The template's roles as created, with their policy documents.
    pub roles: Vec<crate::iam::RoleDoc>,
    /// The template's parameters as deployed (the local settings it declares, its defaults).
    pub parameters: BTreeMap<String, String>,
    /// The resources the template declares, as CloudFormation's quota counts them.
    pub resources: usize,
}

impl Stack {
    /// Creates what `template.yaml` declares, with the bus named `<prefix>-bus` and every other
    /// resource prefixed with `prefix`, so tests can share an emulator; then the two local rules
    /// the demo and tests watch the bus with.
    pub async fn provision(sdk: &SdkConfig, prefix: &str) -> Result<Stack, LocalError> {
        Stack::provision_with(sdk, prefix, &[]).await
    }

    /// As `provision`, with more parameter overrides after the local ones.
    pub async fn provision_with(
        sdk: &SdkConfig,
        prefix: &str,
        overrides: &[(&str, &str)],
    ) -> Result<Stack, LocalError> {
        let path = project_root().join("template.yaml");
        let text = std::fs::read_to_string(&path)
            .map_err(|e| LocalError::Setup(format!("{}: {e}", path.display())))?;
        Stack::provision_template(sdk, prefix, &text, overrides).await
    }

    /// As `provision_with`, from the text of another template (a changed copy of
    /// `template.yaml`, say) with the same parameters.
    pub async fn provision_template(
        sdk: &SdkConfig,
        prefix: &str,
        text: &str,
        overrides: &[(&str, &str)],
    ) -> Result<Stack, LocalError> {
        let mut parameters = local_template_parameters(prefix)?;
        parameters.extend(
            overrides
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string())),
        );
        for (k, v) in &parameters {
            let name = k.trim_end_matches('?');
            crate::quotas::PARAMETER_VALUE.check(format!("parameter {name}"), v.len())?;
        }
        let parameters: Vec<(&str, &str)> = parameters
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        Stack::from_template(sdk, &Template::translate(text, &parameters)?, prefix).await
    }

    pub async fn from_template(
        sdk: &SdkConfig,
        template: &Template,
        prefix: &str,
    ) -> Result<Stack, LocalError> {
        let resources =
            crate::quotas::RESOURCES.check("the stack", template.declared_resources())?;
        let template = &template.deployed()?;
        let mut names = Names::new(template, prefix);
        let buses = provision::buses(sdk, template, &mut names, prefix).await?;
        let tables = provision::tables(sdk, template, &mut names, prefix).await?;
        let secrets = provision::secrets(sdk, template, &mut names, prefix).await?;
        let queues = provision::queues(sdk, template, &mut names, prefix).await?;
        let declared_parameters = provision::parameters(sdk, template, &mut names, prefix).await?;
        // Names before roles: a role's policy names what it grants on (its function's log group).
        let (function_arns, mut skipped) = provision::names(template, &mut names, prefix)?;
        let api_destinations =
            destinations::api_destinations(sdk, template, &mut names, prefix).await?;
        let roles = crate::iam::create_roles(sdk, template, &mut names, prefix).await?;
        let functions = functions(template, &names)?;
        // Lambda runs each function with a session of its execution role, and only where the
        // role trusts lambda.amazonaws.com.
        let (authority, credentials) = provision::sessions(sdk, &functions)?;
        provision::bus_policies(&authority, template, &names)?;
        // The local sender roles: one per signal source of the policy, tagged with it (the bus
        // policy asks no more of a signal's sender); and the control planes' roles the template
        // lets put tenant requests, named by its parameters, or (a synthesized CDK template has
        // none) by its bus policies.
        let signals = signal_sources()?;
        let named = |role: &str| {
            template
                .parameters
                .values()
                .any(|v| v.split(',').any(|r| r == role))
                || template
                    .of_type("AWS::Events::EventBusPolicy")
                    .any(|(_, r)| r.properties.to_string().contains(role))
        };
        let mut senders = BTreeMap::new();
        let bus = buses.first().cloned().unwrap_or_default();
        let bus_arn = format!("arn:aws:events:{REGION}:{ACCOUNT}:event-bus/{bus}");
        for source in sender_sources()? {
            let role = sender_role(&source);
            if signals.contains(&source) || named(&role) {
                let key =
                    crate::iam::signal_sender(sdk, &authority, &role, &source, &bus_arn).await?;
                senders.insert(source, key);
            }
        }
        // Where the functions read the policy.
        let env_of = |name: &str| {
            functions.iter().find_map(|f| {
                f.env
                    .iter()
                    .find(|(k, _)| k == name)
                    .map(|(_, v)| v.clone())
            })
        };
        let policy_parameter = env_of("EDDO_POLICY_PARAMETER");
        let policy = match (&policy_parameter, env_of("EDDO_POLICY_OBJECT")) {
            (_, Some(object)) => Some(
                eddo::policy::PolicyStore::parse(&object)
                    .map_err(|e| LocalError::Setup(format!("EDDO_POLICY_OBJECT {e}")))?,
            ),
            (Some(name), None) => Some(eddo::policy::PolicyStore::Parameter(name.clone())),
            (None, None) => None,
        };
        // A rule without EventBusName is on the account's default bus, as in AWS.
        let rules = rules(template, &names, &function_arns, "default")?;
        for r in &rules {
            crate::quotas::EVENT_PATTERN.check(
                format!("rule {}'s pattern", r.name),
                r.pattern.chars().count(),
            )?;
        }
        check_invoke_permissions(template, &names, &rules, &functions)?;
        let (routes, projects) = provision::routes(sdk, rules, prefix, &mut skipped).await?;
        let codebuild = Arc::new(CodeBuild::start(sdk, projects, BUILD_DURATION).await?);
        if let Some(store) = &policy {
            // A template that creates the parameter deploys its own policy (the CDK construct's,
            // read at synth); otherwise the operator puts it, and the local stack puts its own
            // (into a versioned bucket it creates, for an object).
            let declared = match store {
                eddo::policy::PolicyStore::Parameter(name) => declared_parameters.get(name),
                eddo::policy::PolicyStore::Object { .. } => None,
            };
            // An object already there is the template's own (the CDK construct's asset,
            // published before the stack as `cdk deploy` does).
            let published = match store {
                eddo::policy::PolicyStore::Object { bucket, key } => {
                    object_text(sdk, bucket, key).await
                }
                eddo::policy::PolicyStore::Parameter(_) => None,
            };
            let text = match declared.cloned().or(published) {
                Some(text) => text,
                None => {
                    let text = std::fs::read_to_string(project_root().join(LOCAL_POLICY))
                        .map_err(|e| LocalError::Setup(format!("{LOCAL_POLICY}: {e}")))?;
                    if let eddo::policy::PolicyStore::Object { bucket, .. } = store {
                        versioned_bucket(sdk, bucket).await?;
                    }
                    put_policy_in(sdk, store, &text).await?;
                    text
                }
            };
            add_policy_projects(&codebuild, &text)?;
        }
        let first = |v: Vec<String>, what: &str| {
            v.into_iter()
                .next()
                .ok_or_else(|| LocalError::Setup(format!("template.yaml declares no {what}")))
        };
        let mut stack = Stack {
            sdk: sdk.clone(),
            bus: first(buses, "event bus")?,
            table: first(tables, "state table")?,
            secret_arn: first(secrets, "webhook secret")?,
            functions,
            skipped,
            routes,
            policy_parameter,
            policy,
            codebuild,
            dead_letter_queue: queues.into_iter().next(),
            api_destinations,
            authority,
            credentials,
            senders,
            roles,
            parameters: template.parameters.clone(),
            resources,
            tap_queue: String::new(),
            matched: BTreeMap::new(),
        };
        stack.tap_queue = stack
            .route_to_queue(&format!("{prefix}-tap"), TAP_PATTERN)
            .await?;
        for r in stack.routes.clone() {
            if r.schedule.is_none() && !stack.matched.contains_key(&r.rule) {
                let name: String = format!("{prefix}-{}-matched", r.rule)
                    .chars()
                    .take(64)
                    .collect();
                let queue = stack.route_to_queue_on(&r.bus, &name, &r.pattern).await?;
                stack.matched.insert(r.rule.clone(), queue);
            }
        }
        Ok(stack)
    }

    /// Creates a queue and a rule on the stack's bus that delivers `pattern`'s matches to it;
    /// returns the queue URL.
    pub async fn route_to_queue(&self, name: &str, pattern: &str) -> Result<String, LocalError> {
        self.route_to_queue_on(&self.bus, name, pattern).await
    }

    /// Creates a queue and a rule on `bus` that delivers `pattern`'s matches to it, untransformed;
    /// returns the queue URL.
    pub async fn route_to_queue_on(
        &self,
        bus: &str,
        name: &str,
        pattern: &str,
    ) -> Result<String, LocalError> {
        route_to_queue(&self.sdk, bus, name, name, pattern, &serde_json::Map::new()).await
    }

    /// The rules whose target function is not among `running`.
    pub fn idle_routes(&self, running: &[Arc<LocalFunction>]) -> Vec<String> {
        self.routes
            .iter()
            .filter_map(|r| match &r.target {
                TargetKind::Function(id) if !running.iter().any(|f| f.name() == id) => {
                    Some(format!("{} -> {id}", r.rule))
                }
                _ => None,
            })
            .collect()
    }

    /// Replaces the policy (functions read it when they start), and makes its projects exist.
    pub async fn put_policy(&self, text: &str) -> Result<(), LocalError> {
        let store = self
            .policy
            .as_ref()
            .ok_or_else(|| LocalError::Setup("the template says no place for the policy".into()))?;
        // A bad policy is stored as it is: the functions must refuse it themselves.
        let _ = add_policy_projects(&self.codebuild, text);
        put_policy_in(&self.sdk, store, text).await
    }

    /// A dispatcher for every route: functions from `running` (by logical id), CodeBuild
    /// projects through the stand-in. Routes to functions not in `running` are left out (their
    /// events wait in their queues), and named by `idle_routes`.
    pub fn dispatcher(&self, running: &[Arc<LocalFunction>]) -> Result<Dispatcher, LocalError> {
        let mut routes = Vec::new();
        for r in &self.routes {
            let target = match &r.target {
                TargetKind::Function(id) => match running.iter().find(|f| f.name() == id) {
                    Some(f) => Target::Function {
                        function: f.clone(),
                        attempts: self
                            .functions
                            .iter()
                            .find(|d| &d.logical_id == id)
                            .map_or(crate::dispatch::ATTEMPTS, |d| d.attempts),
                    },
                    None => continue,
                },
                TargetKind::CodeBuild(project) => Target::CodeBuild {
                    project: project.clone(),
                    role: r.role.clone().unwrap_or_default(),
                    rule_arn: r.arn(),
                    stand_in: self.codebuild.clone(),
                },
                TargetKind::ApiDestination(arn) => Target::ApiDestination {
                    destination: self.api_destinations.get(arn).cloned().ok_or_else(|| {
                        LocalError::Setup(format!(
                            "rule {} targets {arn}, which the template does not declare",
                            r.rule
                        ))
                    })?,
                    headers: r.options.headers.clone(),
                    role: r.role.clone().unwrap_or_default(),
                    rule_arn: r.arn(),
                    authority: self.authority.clone(),
                    attempts: r.options.retries + 1,
                },
                TargetKind::Other(_) => continue,
            };
            routes.push(Route {
                rule: r.rule.clone(),
                queue_url: r.queue_url.clone(),
                schedule: r.schedule.clone(),
                target,
                input_path: r.options.input_path.clone(),
                // A function's failures go to its own asynchronous dead-letter queue (the
                // template's queue), a rule target's to the one the target names.
                dead_letter: match &r.target {
                    TargetKind::ApiDestination(_) => r.dead_letter_url.clone(),
                    _ => self.dead_letter_queue.clone(),
                },
            });
        }
        Ok(Dispatcher::new(&self.sdk, routes))
    }

    /// The function of the template built from `binary`.
    pub fn function(&self, binary: &str) -> Result<&FunctionDef, LocalError> {
        self.functions
            .iter()
            .find(|f| f.binary == binary)
            .ok_or_else(|| {
                LocalError::Setup(format!(
                    "template.yaml has no function built from the {binary} binary"
                ))
            })
    }

    /// The session of the execution role of the function built from `binary`.
    pub fn function_key(&self, binary: &str) -> Result<&AccessKey, LocalError> {
        let def = self.function(binary)?;
        self.credentials.get(&def.logical_id).ok_or_else(|| {
            LocalError::Setup(format!("{} has no session of its role", def.logical_id))
        })
    }

    /// SDK configuration as the function built from `binary` has it in Lambda: signing with its
    /// execution role's session, so IAM allows exactly what its role does. For running a
    /// function's handler in a test.
    pub async fn function_sdk(&self, binary: &str) -> Result<SdkConfig, LocalError> {
        let endpoint = self
            .sdk
            .endpoint_url()
            .ok_or_else(|| LocalError::Setup("the stack's SDK names no emulator".into()))?;
        Ok(crate::moto::sdk_config_for(endpoint, self.function_key(binary)?).await)
    }

    /// SDK configuration of who may put events of `source` on the eddo bus, as the bus policy
    /// lets them: the function that owns an eddo source, the signal sender for anything else.
    pub async fn sdk_for_source(&self, source: &str) -> Result<SdkConfig, LocalError> {
        let endpoint = self
            .sdk
            .endpoint_url()
            .ok_or_else(|| LocalError::Setup("the stack's SDK names no emulator".into()))?;
        let owner = match source {
            "eddo.webhook" => Some("webhook"),
            "eddo.gate" => Some("scan-gate"),
            "eddo.rollback" => Some("alarm-rollback"),
            "eddo.tenants" => Some("tenant-onboarding"),
            _ => None,
        };
        let key = match owner.map(|binary| self.function_key(binary)) {
            Some(Ok(key)) => key,
            // A template without that function: nobody's source, the administrator puts it.
            Some(Err(_)) => return Ok(self.sdk.clone()),
            None => match self.senders.get(source) {
                Some(key) => key,
                None => return Ok(self.sdk.clone()),
            },
        };
        Ok(crate::moto::sdk_config_for(endpoint, key).await)
    }

    /// How the local runtime runs the template's function built from `binary`: its environment,
    /// timeout and memory from the template, its execution role's session as Lambda gives it,
    /// its AWS calls sent to the emulator at `endpoint`.
    pub fn spec(&self, binary: &str, endpoint: &str) -> Result<FunctionSpec, LocalError> {
        let def = self.function(binary)?;
        let key = self.function_key(binary)?;
        let mut env = def.env.clone();
        env.push(("AWS_ACCESS_KEY_ID".into(), key.access_key_id.clone()));
        env.push((
            "AWS_SECRET_ACCESS_KEY".into(),
            key.secret_access_key.clone(),
        ));
        env.push((
            "AWS_SESSION_TOKEN".into(),
            key.session_token.clone().unwrap_or_default(),
        ));
        env.push(("AWS_ENDPOINT_URL".into(), endpoint.to_string()));
        env.push((
            "AWS_ENDPOINT_URL_CODEBUILD".into(),
            self.codebuild.endpoint(),
        ));
        Ok(FunctionSpec {
            name: def.logical_id.clone(),
            binary: crate::runtime::binary(binary)?,
            env,
            timeout: Duration::from_secs(def.timeout_secs),
            memory_mb: def.memory_mb,
        })
    }

    /// The environment the template gives the webhook function.
    pub fn webhook_env(&self) -> Vec<(String, String)> {
        self.function("webhook")
            .map(|f| f.env.clone())
            .unwrap_or_default()
    }

    /// Every event waiting on `queue`, as the rule's target received it (the whole EventBridge
    /// event: `id`, `source`, `detail-type`, `detail`, ...). Waits up to `wait` for the first.
    pub async fn drain(&self, queue: &str, wait: Duration) -> Result<Vec<Value>, LocalError> {
        let sqs = aws_sdk_sqs::Client::new(&self.sdk);
        let mut events = Vec::new();
        let deadline = std::time::Instant::now() + wait;
        loop {
            let out = sqs
                .receive_message()
                .queue_url(queue)
                .max_number_of_messages(10)
                .send()
                .await
                .map_err(|e| aws("ReceiveMessage", e))?;
            let messages = out.messages();
            for m in messages {
                let body = m.body().unwrap_or_default();
                events.push(
                    serde_json::from_str(body)
                        .map_err(|e| LocalError::Aws(format!("not an event: {e}")))?,
                );
                if let Some(handle) = m.receipt_handle() {
                    sqs.delete_message()
                        .queue_url(queue)
                        .receipt_handle(handle)
                        .send()
                        .await
                        .map_err(|e| aws("DeleteMessage", e))?;
                }
            }
            if messages.is_empty() && (!events.is_empty() || std::time::Instant::now() >= deadline)
            {
                return Ok(events);
            }
            if messages.is_empty() {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// The parameters the local stack deploys a template with, as `Name?=Value`: each applies where
/// the template declares the parameter: template.yaml takes them all, a CDK-synthesized template
/// (whose settings are its construct's props) none. The bus is `<prefix>-bus`.
pub fn local_template_parameters(prefix: &str) -> Result<Vec<(String, String)>, LocalError> {
    let mut parameters = vec![
        ("EventBusName?".to_string(), format!("{prefix}-bus")),
        (
            "PolicyParameterName?".to_string(),
            format!("/{prefix}/policy"),
        ),
    ];
    parameters.extend(
        local_parameters()?
            .into_iter()
            .map(|(k, v)| (format!("{k}?"), v)),
    );
    Ok(parameters)
}

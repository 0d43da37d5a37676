//! The one harness of the end-to-end tests: a local stack started under a prefix (its own moto
//! server on loopback, installed by `make setup`, and the template provisioned in it), the
//! functions' identities and clients, and reading back what reached the bus and CodeBuild.
//! What the tests send comes from `eddo_local::fixtures`, which the demo, the soak and the
//! benches use too.

pub mod gate;
pub mod rollback;
pub mod tenants;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use eddo_local::codebuild::Build;
use eddo_local::moto::Moto;
use eddo_local::stack::Stack;
use serde_json::Value;

/// A local stack of its own: moto on loopback, the template provisioned under a prefix. Tests
/// destructure it (`let Local { moto, stack } = Local::start("x").await;`) or keep it in their
/// function's setup.
pub struct Local {
    /// Shared by the stacks of one account ([`Local::beside`]).
    pub moto: Arc<Moto>,
    pub stack: Stack,
}

/// An account (its emulator) before or beside a stack: where stacks are provisioned.
struct Empty(Arc<Moto>);

impl Empty {
    async fn beside(self, prefix: &str, parameters: &[(&str, &str)]) -> Local {
        let stack = Stack::provision_with(&self.0.sdk_config().await, prefix, parameters)
            .await
            .unwrap_or_else(|e| panic!("provisioning {prefix}: {e}"));
        Local {
            moto: self.0,
            stack,
        }
    }

    async fn beside_template(
        self,
        prefix: &str,
        template: &str,
        files: &[eddo_local::cdk::FileAsset],
    ) -> Local {
        let sdk = self.0.sdk_config().await;
        eddo_local::cdk::publish(&sdk, files)
            .await
            .unwrap_or_else(|e| panic!("publishing {prefix}'s assets: {e}"));
        let stack = Stack::provision_template(&sdk, prefix, template, &[])
            .await
            .unwrap_or_else(|e| panic!("provisioning {prefix}: {e}"));
        Local {
            moto: self.0,
            stack,
        }
    }
}

impl Local {
    /// Starts moto and provisions the template under `prefix`, as `make demo` does.
    pub async fn start(prefix: &str) -> Local {
        Local::start_with(prefix, &[]).await
    }

    /// As [`Local::start`], with these template parameters overriding the local ones.
    pub async fn start_with(prefix: &str, parameters: &[(&str, &str)]) -> Local {
        Local::account().beside(prefix, parameters).await
    }

    /// Starts moto and provisions `template` (the CDK app's, say) under `prefix`, its file
    /// assets published first as `cdk deploy` publishes them.
    pub async fn start_template(
        prefix: &str,
        template: &str,
        files: &[eddo_local::cdk::FileAsset],
    ) -> Local {
        Local::account()
            .beside_template(prefix, template, files)
            .await
    }

    /// A fresh account: moto on loopback, nothing provisioned yet.
    fn account() -> Empty {
        Empty(Arc::new(
            Moto::start().expect("moto server (run `make setup`)"),
        ))
    }

    /// Another stack of template.yaml in the same account and Region (the same emulator), under
    /// `prefix` (its stack name), with these parameters overriding the local ones.
    pub async fn beside(&self, prefix: &str, parameters: &[(&str, &str)]) -> Local {
        Empty(self.moto.clone()).beside(prefix, parameters).await
    }

    /// Another stack of `template` (the CDK app's, say) in the same account and Region, its
    /// file assets published first.
    pub async fn beside_template(
        &self,
        prefix: &str,
        template: &str,
        files: &[eddo_local::cdk::FileAsset],
    ) -> Local {
        Empty(self.moto.clone())
            .beside_template(prefix, template, files)
            .await
    }

    /// The latest version id of an S3 object, as S3 gives it (a versioned bucket's).
    pub async fn object_version(&self, bucket: &str, key: &str) -> String {
        aws_sdk_s3::Client::new(&self.moto.sdk_config().await)
            .head_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
            .unwrap_or_else(|e| panic!("s3://{bucket}/{key}: {e}"))
            .version_id()
            .expect("a versioned bucket")
            .to_string()
    }

    /// The template's function built from `binary`, as it runs in AWS: its execution role's
    /// SDK configuration, its settings and the policy it loads from SSM.
    pub async fn as_function(
        &self,
        binary: &str,
    ) -> (
        aws_config::SdkConfig,
        eddo::config::PolicyConfig,
        eddo::policy::Policy,
    ) {
        let sdk = function_sdk(&self.stack, binary).await;
        let config = policy_config(&self.stack, binary);
        let policy = eddo::policy::load(&sdk, &config.policy)
            .await
            .unwrap_or_else(|e| panic!("{binary}'s policy: {e}"));
        (sdk, config, policy)
    }

    /// The events of `source` on the eddo bus since the last call, each checked against its
    /// schema.
    pub async fn published(&self, source: &str) -> Vec<Value> {
        published(&self.stack, source).await
    }

    /// The builds the CodeBuild stand-in started for `project`, in order.
    pub fn builds(&self, project: &str) -> Vec<Build> {
        self.stack.codebuild.builds_of(project)
    }

    /// Lets the stand-in's builds finish and returns their completion events as the template's
    /// rule `rule` delivers them.
    pub async fn finished_builds(&self, rule: &str) -> Vec<Value> {
        assert!(self.stack.codebuild.settle(Duration::from_secs(20)).await);
        self.stack
            .drain(&self.stack.matched[rule], Duration::from_secs(2))
            .await
            .unwrap()
    }

    /// A DynamoDB client with the stack's (administrator's) identity.
    pub fn ddb(&self) -> aws_sdk_dynamodb::Client {
        aws_sdk_dynamodb::Client::new(&self.stack.sdk)
    }
}

/// A workspace binary built in the same profile as the running test (`cargo test --workspace`
/// and `cargo nextest run --workspace` build every binary first).
pub fn binary(name: &str) -> PathBuf {
    eddo_local::runtime::binary(name).unwrap_or_else(|e| panic!("{e}"))
}

/// Asserts that an eddo event's `detail` matches the JSON Schema of its detail-type under
/// `infra/schemas/`: what consumers outside eddo rely on.
pub fn assert_matches_schema(event: &Value) {
    let dt = eddo::DetailType::parse(event["detail-type"].as_str().unwrap_or_default())
        .unwrap_or_else(|| panic!("not an eddo detail-type: {event}"));
    let path = eddo_local::moto::project_root()
        .join("infra/schemas")
        .join(dt.schema_file());
    let schema: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let v =
        jsonschema::validator_for(&schema).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let errors: Vec<String> = v
        .iter_errors(&event["detail"])
        .map(|err| format!("{err} at {}", err.instance_path()))
        .collect();
    assert!(errors.is_empty(), "{dt}: {errors:?}\n{event:#}");
}

/// Counts the AWS calls a client makes, by `Service.Operation`.
/// (An SDK interceptor: `config::Builder::from(sdk).interceptor(calls.clone())`.)
#[derive(Debug, Clone, Default)]
pub struct Calls(Arc<std::sync::Mutex<Vec<String>>>);

impl aws_smithy_runtime_api::client::interceptors::Intercept for Calls {
    fn name(&self) -> &'static str {
        "Calls"
    }

    fn read_before_transmit(
        &self,
        _: &aws_smithy_runtime_api::client::interceptors::context::BeforeTransmitInterceptorContextRef<'_>,
        _: &aws_smithy_runtime_api::client::runtime_components::RuntimeComponents,
        cfg: &mut aws_smithy_types::config_bag::ConfigBag,
    ) -> Result<(), aws_smithy_runtime_api::box_error::BoxError> {
        if let Some(m) = cfg.load::<aws_smithy_runtime_api::client::orchestrator::Metadata>() {
            self.0
                .lock()
                .unwrap()
                .push(format!("{}.{}", m.service(), m.name()));
        }
        Ok(())
    }
}

impl Calls {
    /// The calls since the last take, in order.
    pub fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

/// The example policy's text (the local stack's), for a test to vary.
pub fn example_policy() -> String {
    std::fs::read_to_string(eddo_local::moto::project_root().join(eddo_local::stack::LOCAL_POLICY))
        .unwrap()
}

/// The environment a function of the template gets in the local stack.
pub fn function_env(stack: &Stack, binary: &str) -> eddo::config::Env {
    let env = &stack.function(binary).unwrap_or_else(|e| panic!("{e}")).env;
    eddo::config::Env::from_pairs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
}

/// The settings a policy-driven function of the template gets in the local stack.
pub fn policy_config(stack: &Stack, binary: &str) -> eddo::config::PolicyConfig {
    eddo::config::PolicyConfig::from_env(&function_env(stack, binary)).unwrap()
}

/// The SDK configuration of the template's function built from `binary`: signing as its
/// execution role, so IAM allows a handler under test exactly what the role allows in AWS.
pub async fn function_sdk(stack: &Stack, binary: &str) -> aws_config::SdkConfig {
    stack
        .function_sdk(binary)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

fn stand_in_config(
    sdk: &aws_config::SdkConfig,
    stack: &Stack,
) -> aws_sdk_codebuild::config::Builder {
    aws_sdk_codebuild::config::Builder::from(sdk).endpoint_url(stack.codebuild.endpoint())
}

/// A CodeBuild client that talks to the local stack's stand-in as `sdk`'s identity, as a
/// function's does there.
pub fn stand_in(sdk: &aws_config::SdkConfig, stack: &Stack) -> aws_sdk_codebuild::Client {
    aws_sdk_codebuild::Client::from_conf(stand_in_config(sdk, stack).build())
}

/// The stand-in's client, its calls counted.
pub fn counted_stand_in(
    sdk: &aws_config::SdkConfig,
    stack: &Stack,
    calls: &Calls,
) -> aws_sdk_codebuild::Client {
    aws_sdk_codebuild::Client::from_conf(
        stand_in_config(sdk, stack)
            .interceptor(calls.clone())
            .build(),
    )
}

/// A DynamoDB client as `sdk`'s identity, its calls counted.
pub fn counted_dynamodb(sdk: &aws_config::SdkConfig, calls: &Calls) -> aws_sdk_dynamodb::Client {
    aws_sdk_dynamodb::Client::from_conf(
        aws_sdk_dynamodb::config::Builder::from(sdk)
            .interceptor(calls.clone())
            .build(),
    )
}

/// The state table's item at (`pk`, `sk`) as the table holds it, read as the administrator (not
/// through eddo's parsers): ground truth for what a function wrote.
pub async fn table_item(
    stack: &Stack,
    pk: &str,
    sk: &str,
) -> Option<std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue>> {
    stack.item(pk, sk).await.unwrap()
}

/// The events of `source` on the eddo bus since the last call, each checked against its schema.
pub async fn published(stack: &Stack, source: &str) -> Vec<Value> {
    let events: Vec<Value> = stack
        .drain(&stack.tap_queue, Duration::from_millis(300))
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e["source"] == source)
        .collect();
    events.iter().for_each(assert_matches_schema);
    events
}

/// A CodeBuild StartBuild that is always throttled (a fault moto cannot produce): the SDK's
/// standard retries, then a retryable error. Give it to `mock_client!`; it counts its calls.
pub fn throttled_start_build() -> aws_smithy_mocks::Rule {
    use aws_sdk_codebuild::operation::start_build::StartBuildError;
    use aws_smithy_types::error::ErrorMetadata;
    aws_smithy_mocks::mock!(aws_sdk_codebuild::Client::start_build).then_error(|| {
        StartBuildError::generic(
            ErrorMetadata::builder()
                .code("ThrottlingException")
                .message("Rate exceeded")
                .build(),
        )
    })
}

/// Fails chosen AWS calls before they are sent: the faults moto cannot produce on demand (a
/// DynamoDB write lost after a StartBuild succeeded, a process killed before it let go of a
/// lease). Each rule names an operation and a fragment of the request body, and fails the
/// next `times` calls that match. (An SDK interceptor, like [`Calls`].)
#[derive(Debug, Clone, Default)]
pub struct Faults(Arc<std::sync::Mutex<Vec<Fault>>>);

#[derive(Debug)]
struct Fault {
    operation: String,
    fragment: String,
    left: usize,
    hits: usize,
}

impl Faults {
    /// Fails the next `times` calls of `operation` whose body contains `fragment` (each attempt
    /// counts: the SDK retries what these faults fail, so `usize::MAX` fails every attempt).
    pub fn fail(&self, operation: &str, fragment: &str, times: usize) -> &Self {
        self.0.lock().unwrap().push(Fault {
            operation: operation.into(),
            fragment: fragment.into(),
            left: times,
            hits: 0,
        });
        self
    }

    /// How many calls the rules failed so far.
    pub fn hits(&self) -> usize {
        self.0.lock().unwrap().iter().map(|f| f.hits).sum()
    }

    /// A DynamoDB client as `sdk`'s identity, failing as the rules say.
    pub fn dynamodb(&self, sdk: &aws_config::SdkConfig) -> aws_sdk_dynamodb::Client {
        aws_sdk_dynamodb::Client::from_conf(
            aws_sdk_dynamodb::config::Builder::from(sdk)
                .interceptor(self.clone())
                .build(),
        )
    }
}

impl aws_smithy_runtime_api::client::interceptors::Intercept for Faults {
    fn name(&self) -> &'static str {
        "Faults"
    }

    fn read_before_transmit(
        &self,
        ctx: &aws_smithy_runtime_api::client::interceptors::context::BeforeTransmitInterceptorContextRef<'_>,
        _: &aws_smithy_runtime_api::client::runtime_components::RuntimeComponents,
        cfg: &mut aws_smithy_types::config_bag::ConfigBag,
    ) -> Result<(), aws_smithy_runtime_api::box_error::BoxError> {
        let Some(m) = cfg.load::<aws_smithy_runtime_api::client::orchestrator::Metadata>() else {
            return Ok(());
        };
        let body = ctx
            .request()
            .body()
            .bytes()
            .map(|b| String::from_utf8_lossy(b).into_owned())
            .unwrap_or_default();
        let mut faults = self.0.lock().unwrap();
        for f in faults.iter_mut() {
            if f.left > 0 && f.operation == m.name() && body.contains(&f.fragment) {
                f.left -= 1;
                f.hits += 1;
                return Err(format!("injected fault: {} {}", m.name(), f.fragment).into());
            }
        }
        Ok(())
    }
}

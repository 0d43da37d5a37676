//! Two instances of eddo in one account and Region, staging and prod, with no name given: each
//! is named after its own stack, and neither sees the other's events, state or policy. Read as
//! the account holds it: the emulator's buses, parameters and tables, its IAM deciding what each
//! function's role may reach, and the CodeBuild stand-in's builds. For template.yaml and for the
//! CDK app.

use aws_config::SdkConfig;
use eddo::policy::PolicyStore;
use eddo_local::cdk::{local_context, synth_with_assets};
use eddo_local::fixtures::{policy_of_services, service_name};
use serde_json::json;
use std::time::Duration;

use crate::harness::{Local, function_sdk, gate};

/// template.yaml's own defaults: no bus name, no parameter name.
const UNNAMED: &[(&str, &str)] = &[("EventBusName", ""), ("PolicyParameterName", "")];

#[tokio::test(flavor = "multi_thread")]
async fn staging_and_prod_of_template_yaml_share_nothing_in_one_account() {
    let staging = Local::start_with("staging", UNNAMED).await;
    let prod = staging.beside("prod", UNNAMED).await;
    // Each named after its stack.
    assert_eq!(staging.stack.bus, "staging");
    assert_eq!(prod.stack.bus, "prod");
    assert_eq!(
        staging.stack.policy,
        Some(PolicyStore::Parameter("/staging/policy".into()))
    );
    assert_eq!(
        prod.stack.policy,
        Some(PolicyStore::Parameter("/prod/policy".into()))
    );
    // The operator puts each its own policy: prod's services are not staging's.
    prod.stack
        .put_policy(&policy_of_services(1).unwrap())
        .await
        .unwrap();
    apart(staging, prod).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn staging_and_prod_of_the_cdk_app_share_nothing_in_one_account() {
    let dir = std::env::temp_dir().join(format!("eddo-instances-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let prod_policy = dir.join("prod.yaml");
    std::fs::write(&prod_policy, policy_of_services(1).unwrap()).unwrap();
    let synth = |stack: &str, settings: &[(&'static str, String)]| {
        let mut context = local_context();
        context.push(("eddo:stackName", stack.to_string()));
        context.extend_from_slice(settings);
        synth_with_assets(&context).expect("cdk synth")
    };
    let s = synth("Staging", &[]);
    let service = service_name(0);
    let p = synth(
        "Prod",
        &[
            ("eddo:policyFile", prod_policy.display().to_string()),
            ("eddo:buildProject", format!("{service}-build")),
            ("eddo:sastProject", format!("{service}-sast")),
        ],
    );
    let _ = std::fs::remove_dir_all(&dir);
    let staging = Local::start_template("staging", &s.template, &s.files).await;
    let prod = staging.beside_template("prod", &p.template, &p.files).await;
    // Each named after its stack and construct (Staging/Eddo, Prod/Eddo).
    assert!(
        staging.stack.bus.starts_with("Staging-Eddo-"),
        "{}",
        staging.stack.bus
    );
    assert!(
        prod.stack.bus.starts_with("Prod-Eddo-"),
        "{}",
        prod.stack.bus
    );
    apart(staging, prod).await;
}

/// Staging and prod, provisioned side by side, each with its own policy (prod's of generated
/// services): neither's functions may reach the other's policy, table or bus; a service of
/// prod's deploys once through prod alone, and staging, which hears the build's state change on
/// the account's default bus as every instance does, does nothing with it.
async fn apart(staging: Local, prod: Local) {
    assert_ne!(staging.stack.bus, prod.stack.bus);
    assert_ne!(staging.stack.table, prod.stack.table);
    assert_ne!(staging.stack.policy, prod.stack.policy);
    assert_ne!(
        policy_text(&staging).await,
        policy_text(&prod).await,
        "each reads its own policy"
    );
    // Each function reaches its own instance's policy, table and bus (what the emulator's IAM
    // allows at all), and none of the other's.
    for (me, other) in [(&staging, &prod), (&prod, &staging)] {
        for binary in ["scan-gate", "alarm-rollback", "tenant-onboarding"] {
            let sdk = function_sdk(&me.stack, binary).await;
            assert_eq!(
                reaches(&sdk, binary, me).await,
                ["policy", "table", "bus"].map(|what| format!("{what}: allowed")),
                "{}'s {binary} reaching its own",
                me.stack.bus
            );
            assert_eq!(
                reaches(&sdk, binary, other).await,
                ["policy", "table", "bus"].map(|what| format!("{what}: denied")),
                "{}'s {binary} reaching {}'s",
                me.stack.bus,
                other.stack.bus
            );
        }
    }
    // Each bus carried its own three checks, and only those.
    for local in [&staging, &prod] {
        let checks = local
            .stack
            .drain(&local.stack.tap_queue, Duration::from_secs(2))
            .await
            .unwrap();
        let mut sources: Vec<&str> = checks.iter().filter_map(|e| e["source"].as_str()).collect();
        sources.sort_unstable();
        assert_eq!(
            sources,
            ["eddo.gate", "eddo.rollback", "eddo.tenants"],
            "{checks:#?}"
        );
    }

    let service = service_name(0);
    let prod = gate::Setup::on(prod).await;
    let commit = prod.generated_service_flow(&service, 1).await;
    prod.deployed_once(&service).await;
    assert!(staging.stack.codebuild.builds().is_empty());
    // The deploy's state change reaches staging's gate too (the default bus is the account's):
    // not its policy's project, so it writes nothing and says nothing.
    let finished = prod.deploy_finished_in(&format!("{service}-deploy"), &commit, "SUCCEEDED");
    let staging_gate = gate::Setup::on(staging).await;
    staging_gate.handle(&finished).await;
    let staging = &staging_gate.local;
    let items = staging
        .ddb()
        .scan()
        .table_name(&staging.stack.table)
        .send()
        .await
        .unwrap();
    assert_eq!(items.count(), 0, "{:?}", items.items());
    let heard = staging
        .stack
        .drain(&staging.stack.tap_queue, Duration::from_secs(2))
        .await
        .unwrap();
    assert_eq!(heard, Vec::<serde_json::Value>::new());
}

/// The policy as the account stores it for `local` (its parameter or its object).
async fn policy_text(local: &Local) -> String {
    let admin = local.moto.sdk_config().await;
    match local.stack.policy.as_ref().expect("a policy store") {
        PolicyStore::Parameter(name) => aws_sdk_ssm::Client::new(&admin)
            .get_parameter()
            .name(name)
            .send()
            .await
            .unwrap()
            .parameter()
            .and_then(|p| p.value())
            .unwrap()
            .to_string(),
        PolicyStore::Object { bucket, key } => eddo_local::stack::object_text(&admin, bucket, key)
            .await
            .expect("the policy object"),
    }
}

/// What `sdk` (the role of the function built from `binary`) may do to `other`'s policy, table
/// and bus, as the emulator's IAM answers: "<what>: denied" or "<what>: allowed". Each call is one
/// the function makes on its own stack (an item under its own keys, an event of its own source),
/// so only the stack it names can make the answer a denial.
async fn reaches(sdk: &SdkConfig, binary: &str, other: &Local) -> Vec<String> {
    let (source, pk, sk) = match binary {
        "scan-gate" => ("eddo.gate", "service#svc-0000", "history"),
        "alarm-rollback" => ("eddo.rollback", "service#svc-0000", "history"),
        _ => ("eddo.tenants", "tenant#t-0000", "tenant"),
    };
    let policy = match other.stack.policy.as_ref().unwrap() {
        PolicyStore::Parameter(name) => aws_sdk_ssm::Client::new(sdk)
            .get_parameter()
            .name(name)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| format!("{:?}", e.into_service_error())),
        PolicyStore::Object { bucket, key } => aws_sdk_s3::Client::new(sdk)
            .get_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| format!("{:?}", e.into_service_error())),
    };
    let table = aws_sdk_dynamodb::Client::new(sdk)
        .get_item()
        .table_name(&other.stack.table)
        .key("pk", aws_sdk_dynamodb::types::AttributeValue::S(pk.into()))
        .key("sk", aws_sdk_dynamodb::types::AttributeValue::S(sk.into()))
        .send()
        .await
        .map(|_| ())
        .map_err(|e| format!("{:?}", e.into_service_error()));
    let entry = aws_sdk_eventbridge::types::PutEventsRequestEntry::builder()
        .event_bus_name(&other.stack.bus)
        .source(source)
        .detail_type("Instance Check")
        .detail(json!({"check": binary}).to_string())
        .build();
    let bus = match aws_sdk_eventbridge::Client::new(sdk)
        .put_events()
        .entries(entry)
        .send()
        .await
    {
        Ok(out) if out.failed_entry_count() == 0 => Ok(()),
        Ok(out) => Err(format!("{:?}", out.entries())),
        Err(e) => Err(format!("{:?}", e.into_service_error())),
    };
    [("policy", policy), ("table", table), ("bus", bus)]
        .into_iter()
        .map(|(what, r)| match r {
            Ok(()) => format!("{what}: allowed"),
            Err(e) if e.contains("AccessDenied") => format!("{what}: denied"),
            Err(e) => format!("{what}: {e}"),
        })
        .collect()
}

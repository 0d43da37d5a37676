//! The local stack refuses what AWS's quotas refuse (`eddo_local::quotas`): a deployment that
//! would fail in an account fails here, naming the quota, what broke it and by how much. The
//! template as shipped, with the example policy, is inside every one.

use eddo_local::LocalError;
use eddo_local::moto::Moto;
use eddo_local::stack::Stack;

/// `n` repositories of generated services, comma-separated, as an operator might list them by
/// hand in `TrackedRepositories`.
fn repositories(n: usize) -> String {
    (0..n)
        .map(|i| format!("eddo-example/{}", eddo_local::fixtures::service_name(i)))
        .collect::<Vec<_>>()
        .join(",")
}

/// The template provisioned with `overrides` on an emulator of its own (kept running with it).
async fn provisioned(
    prefix: &str,
    overrides: &[(&str, &str)],
) -> (Moto, Result<Stack, LocalError>) {
    let moto = Moto::start().expect("moto server (run `make setup`)");
    let sdk = moto.sdk_config().await;
    let stack = Stack::provision_with(&sdk, prefix, overrides).await;
    (moto, stack)
}

fn quota_error((_moto, r): (Moto, Result<Stack, LocalError>)) -> String {
    match r {
        Err(LocalError::Quota(why)) => why,
        Err(other) => panic!("another error than a quota's: {other}"),
        Ok(_) => panic!("provisioned over a quota"),
    }
}

/// A parameter value over CloudFormation's 4,096 bytes, and an event pattern over EventBridge's
/// 2,048 characters (the push rule with a hundred repositories named), are each refused before
/// anything runs; the template as shipped provisions.
#[tokio::test(flavor = "multi_thread")]
async fn a_deployment_over_an_aws_quota_is_refused_as_aws_refuses_it() {
    let long = repositories(300);
    assert!(long.len() > 4096);
    let why = quota_error(provisioned("quota-param", &[("TrackedRepositories", &long)]).await);
    assert!(
        why.starts_with(&format!(
            "parameter TrackedRepositories is {} bytes where a CloudFormation parameter value allows 4096",
            long.len()
        )),
        "{why}"
    );

    let hundred = repositories(100);
    let why = quota_error(provisioned("quota-pattern", &[("TrackedRepositories", &hundred)]).await);
    assert!(
        why.contains("'s pattern is ")
            && why.contains("characters where an EventBridge event pattern allows 2048"),
        "{why}"
    );

    let (_moto, ok) = provisioned("quota-ok", &[]).await;
    ok.expect("the shipped template provisions");
}

/// Nothing in the deployment grows with the policy: with the parameters `eddo policy params`
/// prints for 1,000 services, the stack provisions through every quota check with as many
/// resources as for one, and every role's inline policies the same, as the emulator's IAM holds
/// them.
#[tokio::test(flavor = "multi_thread")]
async fn a_thousand_services_deploy_the_same_stack_as_one() {
    let params = |n: usize| {
        let text = eddo_local::fixtures::policy_of_services(n).unwrap();
        let policy = eddo::policy::Policy::parse(&text).unwrap();
        eddo::projects::PolicyProjects::of(&policy).template_parameters()
    };
    let (one, thousand) = (params(1), params(1000));
    assert_eq!(
        thousand,
        [
            ("TrackedRepositories", String::new()),
            ("TrackedOwners", "eddo-example".to_string()),
        ]
    );
    let provision = |prefix: &'static str, p: Vec<(&'static str, String)>| async move {
        let overrides: Vec<(&str, &str)> = p.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let (moto, stack) = provisioned(prefix, &overrides).await;
        (moto, stack.expect("provisions inside every quota"))
    };
    // The same prefix on two emulators: the names (and the ARNs in the grants) are the same.
    let (_a, small) = provision("scale", one).await;
    let (_b, large) = provision("scale", thousand).await;
    assert_eq!(small.resources, large.resources);
    let (small, large) = (grants(&small).await, grants(&large).await);
    assert!(small.len() >= 4, "{small:?}");
    assert_eq!(small, large);
}

/// A platform's policy end to end: 1,000 services in a versioned S3 object (4.3 MB, past any SSM
/// parameter), the stack deployed with the parameters `eddo policy params` prints for it, and
/// the gate, as its role, reading it from S3. Service 999's build, SAST and image scan start its
/// own deploy project once, and its decision names the object's version id.
#[tokio::test(flavor = "multi_thread")]
async fn a_thousand_service_policy_in_s3_deploys_service_999_once() {
    use crate::harness::gate::setup_with;
    let text = eddo_local::fixtures::policy_of_services(1000).unwrap();
    assert!(text.len() > 4_000_000, "{}", text.len());
    let policy = eddo::policy::Policy::parse(&text).unwrap();
    let mut overrides = eddo::projects::PolicyProjects::of(&policy).template_parameters();
    overrides.push(("PolicyObject", "s3://scale-policy/eddo/policy.yaml".into()));
    let overrides: Vec<(&str, &str)> = overrides.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let s = setup_with("scale-s3", Some(&text), &overrides).await;

    let service = eddo_local::fixtures::service_name(999);
    s.generated_service_flow(&service, 999).await;
    let started = s.deployed_once(&service).await;
    let version = s.object_version("scale-policy", "eddo/policy.yaml").await;
    assert_eq!(started["policy_version"], version.as_str());
}

/// The policy parameter holds at most 8 KB (the Advanced tier): a larger policy is refused where
/// SSM would refuse it.
#[tokio::test(flavor = "multi_thread")]
async fn a_policy_over_the_parameter_s_size_is_refused() {
    let (_moto, stack) = provisioned("quota-policy", &[]).await;
    let stack = stack.unwrap();
    let text = eddo_local::fixtures::policy_of_services(3).unwrap();
    assert!(text.len() > 8192);
    let Err(LocalError::Quota(why)) = stack.put_policy(&text).await else {
        panic!("a policy of {} bytes was put", text.len());
    };
    assert!(
        why.contains(&format!(
            "is {} bytes where an SSM Advanced parameter's value allows 8192",
            text.len()
        )),
        "{why}"
    );
}

/// Every inline policy of every role of `stack`, as the emulator's IAM holds it (GetRolePolicy),
/// by role and policy name; the webhook secret's random ARN suffix masked.
async fn grants(stack: &Stack) -> Vec<(String, String, String)> {
    let iam = aws_sdk_iam::Client::new(&stack.sdk);
    let mut out = Vec::new();
    for role in &stack.roles {
        let names = iam
            .list_role_policies()
            .role_name(&role.name)
            .send()
            .await
            .unwrap();
        for policy in names.policy_names() {
            let doc = iam
                .get_role_policy()
                .role_name(&role.name)
                .policy_name(policy)
                .send()
                .await
                .unwrap();
            // Secrets Manager gives each secret's ARN a random suffix, in AWS as here.
            let doc = doc.policy_document();
            let doc = match doc.split_once("WebhookSecret-") {
                Some((before, after)) => format!("{before}WebhookSecret-??????{}", &after[6..]),
                None => doc.to_string(),
            };
            out.push((role.name.clone(), policy.clone(), doc));
        }
    }
    out.sort();
    out
}

//! The local stack refuses what AWS's quotas refuse (`eddo_local::quotas`): a deployment that
//! would fail in an account fails here, naming the quota, what broke it and by how much. The
//! template as shipped, with the example policy, is inside every one.

use eddo_local::LocalError;
use eddo_local::moto::Moto;
use eddo_local::stack::Stack;

/// `n` deploy projects of generated services, comma-separated, as `eddo policy params` lists them.
fn deploy_projects(n: usize) -> String {
    (0..n)
        .map(|i| format!("{}-deploy", eddo_local::fixtures::service_name(i)))
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

/// A parameter value over CloudFormation's 4,096 bytes, and the scan-gate role's inline policies
/// over IAM's 10,240 characters (one StartBuild grant per deploy project: 60 of them), are each
/// refused before anything runs; the template as shipped provisions.
#[tokio::test(flavor = "multi_thread")]
async fn a_deployment_over_an_aws_quota_is_refused_as_aws_refuses_it() {
    let long = deploy_projects(300);
    assert!(long.len() > 4096);
    let why = quota_error(provisioned("quota-param", &[("DeployProjectNames", &long)]).await);
    assert!(
        why.starts_with(&format!(
            "parameter DeployProjectNames is {} bytes where a CloudFormation parameter value allows 4096",
            long.len()
        )),
        "{why}"
    );

    let sixty = deploy_projects(60);
    let why = quota_error(provisioned("quota-role", &[("DeployProjectNames", &sixty)]).await);
    assert!(
        why.contains("'s inline policies is ")
            && why.contains("characters where an IAM role's inline policies together allows 10240"),
        "{why}"
    );

    let (_moto, ok) = provisioned("quota-ok", &[]).await;
    ok.expect("the shipped template provisions");
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

//! The eddo bus's policy, from the translated template as the local stack provisions it,
//! evaluated statement by statement (moto stores bus policies but does not evaluate them; the
//! local stack's IAM does, as EventBridge would).

use crate::harness::Local;
use eddo_local::stack::sender_role;
use serde_json::json;

/// The bus policy of the translated template, statement by statement as EventBridge evaluates
/// it: each eddo source only from its function's role, no other eddo.* source from anyone, any
/// other source (a tool's signal) only from a role tagged with it, tenant requests only from the
/// control plane's, sbt-aws's answers left to identity policies.
#[tokio::test(flavor = "multi_thread")]
async fn the_bus_policy_lets_each_source_come_only_from_its_sender() {
    let Local { moto: _moto, stack } = Local::start("buspolicy").await;
    let role = |logical: &str| {
        let r = stack
            .roles
            .iter()
            .find(|r| r.logical_id == logical)
            .unwrap_or_else(|| panic!("no role {logical}"));
        format!("arn:aws:iam::123456789012:role/{}", r.name)
    };
    let principals = [
        ("webhook", role("WebhookFunctionRole")),
        ("gate", role("ScanGateFunctionRole")),
        ("rollback", role("AlarmRollbackFunctionRole")),
        ("tenants", role("TenantOnboardingFunctionRole")),
        ("semgrep", sender_role("com.example.semgrep")),
        ("chatops", sender_role("com.example.chatops")),
        ("control plane", sender_role("com.example.control-plane")),
        (
            "a CI job",
            "arn:aws:iam::123456789012:role/ci-job".to_string(),
        ),
        (
            "an administrator",
            "arn:aws:iam::123456789012:user/admin".to_string(),
        ),
    ];
    // Which principal may put each source (None: nobody; "*": the bus leaves it to IAM).
    let expected: [(&str, Option<&str>); 12] = [
        ("eddo.webhook", Some("webhook")),
        ("eddo.gate", Some("gate")),
        ("eddo.rollback", Some("rollback")),
        ("eddo.tenants", Some("tenants")),
        ("eddo.signals", None),
        ("eddo.", None),
        // Each signal source only from its own tagged sender: the roles are not one pool.
        ("com.example.semgrep", Some("semgrep")),
        ("com.example.chatops", Some("chatops")),
        ("com.example.trivy", None),
        // A tenant request (which can deprovision a tenant) only from the control plane.
        ("com.example.control-plane", Some("control plane")),
        // Any other source is a tool's signal source, whether or not a policy names it: only a
        // role tagged with it may put it, and none of these is.
        ("acme.unlisted", None),
        // sbt-aws's answers (tenant-onboarding's identity policy decides) are not signals.
        ("sbt.application.plane", Some("*")),
    ];
    let bus = format!(
        "arn:aws:events:us-east-1:123456789012:event-bus/{}",
        stack.bus
    );
    for (source, allowed) in expected {
        for (who, arn) in &principals {
            let denied = stack
                .authority
                .resource_denies(
                    arn,
                    "events:PutEvents",
                    &bus,
                    json!({"events:source": [source], "events:detail-type": ["Signal Reported"]}),
                )
                .unwrap();
            let may = allowed.is_some_and(|a| a == "*" || a == *who);
            assert_eq!(
                denied.is_none(),
                may,
                "{who} putting {source}: denied by {denied:?}"
            );
        }
    }
}

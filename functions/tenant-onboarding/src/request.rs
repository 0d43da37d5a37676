//! Reading a tenant request, in eddo's contract or sbt-aws's, into values that cannot be wrong:
//! a [`TenantId`], a tier the policy has, and each input the tier declares checked against its
//! kind. A request that is not all of that is refused with every reason at once.

use eddo::names::TenantId;
use eddo::policy::{InputKind, Policy, TenantInput, Tier};
use serde_json::{Map, Value};

use crate::sbt::Sbt;

/// eddo's contract: `detail-type` of a request to provision a tenant.
pub const ONBOARDING_REQUESTED: &str = "Tenant Onboarding Requested";
/// eddo's contract: `detail-type` of a request to deprovision a tenant.
pub const OFFBOARDING_REQUESTED: &str = "Tenant Offboarding Requested";

/// The event sources eddo's own tenant contract is taken from (`EDDO_TENANT_REQUEST_SOURCES`,
/// the template's `TenantRequestSources`, whose senders the bus policy restricts): a request from
/// any other source is no request, whoever put it on the bus or invoked the function.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestSources(Vec<String>);

impl RequestSources {
    /// The comma-separated sources of `EDDO_TENANT_REQUEST_SOURCES` (none when it is unset).
    pub fn from_env(env: &eddo::config::Env) -> RequestSources {
        RequestSources::of(
            env.optional("EDDO_TENANT_REQUEST_SOURCES")
                .unwrap_or_default()
                .split(','),
        )
    }

    pub fn of<S: AsRef<str>>(sources: impl IntoIterator<Item = S>) -> RequestSources {
        RequestSources(
            sources
                .into_iter()
                .map(|s| s.as_ref().trim().to_string())
                .filter(|s| !s.is_empty())
                .collect(),
        )
    }

    pub fn admits(&self, source: &str) -> bool {
        self.0.iter().any(|s| s == source)
    }
}

/// Longest piece of a rejected value quoted back in a reason.
const QUOTE_CHARS: usize = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Onboard,
    Offboard,
}

/// Which contract the request came in, and so which one the answer goes out in too.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Shape {
    Eddo,
    /// sbt-aws: answered with `provisionSuccess` / `provisionFailure` (and the deprovision pair),
    /// carrying the control plane's `tenantRegistrationId` back.
    Sbt {
        registration_id: Option<String>,
    },
}

impl Shape {
    pub fn registration_id(&self) -> Option<&str> {
        match self {
            Shape::Eddo => None,
            Shape::Sbt { registration_id } => registration_id.as_deref(),
        }
    }
}

/// A request that parsed. For an offboarding the tier is the registry's, not the request's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request<'p> {
    pub action: Action,
    pub tenant: TenantId,
    /// The tier asked for (onboarding only).
    pub tier: Option<&'p Tier>,
    /// `(variable, value)` for each input given, in the tier's order.
    pub values: Vec<(String, String)>,
    pub shape: Shape,
    pub correlation_id: String,
    pub causation_id: String,
}

/// A request refused, with every reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub action: Action,
    /// The tenant id as written, quoted safely, when there was one.
    pub tenant_id: Option<String>,
    pub tier: Option<String>,
    pub reasons: Vec<String>,
    pub shape: Shape,
    pub correlation_id: String,
    pub causation_id: String,
}

/// What an event is to this function.
#[derive(Debug)]
pub enum Read<'p> {
    Request(Request<'p>),
    Rejected(Rejection),
    /// Neither contract's request (a rule sent something else): nothing to answer.
    NotARequest(String),
}

/// Reads an EventBridge event. `sbt` is sbt-aws's control plane, when the setting turns that
/// contract on: its requests, in its generation's names and from its source.
pub fn read<'p>(
    event: &Value,
    policy: &'p Policy,
    sources: &RequestSources,
    sbt: Option<&Sbt>,
) -> Read<'p> {
    let detail_type = event["detail-type"].as_str().unwrap_or_default();
    let source = event["source"].as_str().unwrap_or_default();
    let (action, is_sbt) = match detail_type {
        ONBOARDING_REQUESTED | OFFBOARDING_REQUESTED if !sources.admits(source) => {
            return Read::NotARequest(format!(
                "{} from {}: not a source TenantRequestSources lists, so no request",
                quote(detail_type),
                quote(source)
            ));
        }
        ONBOARDING_REQUESTED => (Action::Onboard, false),
        OFFBOARDING_REQUESTED => (Action::Offboard, false),
        _ => match sbt.and_then(|s| s.request(source, detail_type)) {
            Some(action) => (action, true),
            None => {
                return Read::NotARequest(format!(
                    "{} from {} is not a tenant request",
                    quote(detail_type),
                    quote(source)
                ));
            }
        },
    };
    let causation_id = event["id"].as_str().unwrap_or("unknown").to_string();
    let empty = Map::new();
    let detail = event["detail"].as_object().unwrap_or(&empty);
    let mut reasons = Vec::new();
    if !event["detail"].is_object() {
        reasons.push("detail is not a JSON object".to_string());
    }
    let (id_key, shape) = if is_sbt {
        let registration_id = match detail.get("tenantRegistrationId") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if registration_id_ok(s) => Some(s.clone()),
            Some(v) => {
                reasons.push(format!(
                    "tenantRegistrationId {} is not 1 to 128 letters, digits, '-' and '_'",
                    shown(v)
                ));
                None
            }
        };
        ("tenantId", Shape::Sbt { registration_id })
    } else {
        ("tenant_id", Shape::Eddo)
    };
    let raw_id = detail.get(id_key);
    let tenant = match raw_id {
        None | Some(Value::Null) => {
            reasons.push(format!("{id_key} is missing"));
            None
        }
        Some(Value::String(s)) => match TenantId::parse(s.as_str()) {
            Ok(t) => Some(t),
            Err(_) => {
                reasons.push(format!(
                    "{id_key} {} is not a tenant id: 1 to 63 lower-case letters, digits and '-', not starting or ending with '-'",
                    quote(s)
                ));
                None
            }
        },
        Some(v) => {
            reasons.push(format!("{id_key} must be a string, not {}", kind_of(v)));
            None
        }
    };
    let correlation_id = detail
        .get("metadata")
        .and_then(|m| m["correlation_id"].as_str())
        .filter(|c| !c.is_empty() && c.len() <= 256)
        .map(str::to_string)
        .unwrap_or_else(|| match &tenant {
            Some(t) => format!("tenant:{t}"),
            None => format!("tenant-request:{causation_id}"),
        });
    let raw_tier = detail.get("tier");
    let mut tier = None;
    let mut values = Vec::new();
    if action == Action::Onboard {
        tier = match raw_tier {
            None | Some(Value::Null) => {
                reasons.push("tier is missing".into());
                None
            }
            Some(Value::String(s)) => match policy.tier(s) {
                Some(t) => Some(t),
                None => {
                    let known: Vec<&str> = policy.tiers.keys().map(|t| t.as_str()).collect();
                    reasons.push(format!(
                        "tier {} is not in the policy (tiers: {})",
                        quote(s),
                        if known.is_empty() {
                            "none".to_string()
                        } else {
                            known.join(", ")
                        }
                    ));
                    None
                }
            },
            Some(v) => {
                reasons.push(format!("tier must be a string, not {}", kind_of(v)));
                None
            }
        };
        // eddo's contract keeps the tenant's values apart; sbt-aws puts them beside its own keys
        // and adds others of its own (prices, say), which are not the tier's business.
        let given: Option<&Map<String, Value>> = if is_sbt {
            Some(detail)
        } else {
            match detail.get("values") {
                None | Some(Value::Null) => None,
                Some(Value::Object(m)) => Some(m),
                Some(v) => {
                    reasons.push(format!("values must be an object, not {}", kind_of(v)));
                    None
                }
            }
        };
        if let Some(tier) = tier {
            if !is_sbt && let Some(given) = given {
                for key in given.keys() {
                    if !tier.inputs.iter().any(|i| &i.name == key) {
                        let declared: Vec<&str> =
                            tier.inputs.iter().map(|i| i.name.as_str()).collect();
                        reasons.push(format!(
                            "values.{} is not an input of tier {} (inputs: {})",
                            quote_key(key),
                            tier.name,
                            if declared.is_empty() {
                                "none".to_string()
                            } else {
                                declared.join(", ")
                            }
                        ));
                    }
                }
            }
            for input in &tier.inputs {
                let at = if is_sbt {
                    input.name.clone()
                } else {
                    format!("values.{}", input.name)
                };
                match given.and_then(|g| g.get(&input.name)) {
                    None | Some(Value::Null) => {
                        if input.required {
                            reasons.push(format!("{at} is required by tier {}", tier.name));
                        }
                    }
                    Some(Value::String(s)) if s.is_empty() && !input.required => {}
                    Some(Value::String(s)) => match check(input, s) {
                        Ok(()) => values.push((input.env.clone(), s.clone())),
                        Err(why) => reasons.push(format!("{at} {why}")),
                    },
                    Some(v) => reasons.push(format!("{at} must be a string, not {}", kind_of(v))),
                }
            }
        }
    }
    match (tenant, reasons.is_empty()) {
        (Some(tenant), true) => Read::Request(Request {
            action,
            tenant,
            tier,
            values,
            shape,
            correlation_id,
            causation_id,
        }),
        _ => Read::Rejected(Rejection {
            action,
            tenant_id: raw_id.and_then(Value::as_str).map(clip),
            tier: raw_tier.and_then(Value::as_str).map(clip),
            reasons,
            shape,
            correlation_id,
            causation_id,
        }),
    }
}

/// Whether `value` is what `input` accepts; `Err` completes "<input> ...".
pub fn check(input: &TenantInput, value: &str) -> Result<(), String> {
    let chars = value.chars().count();
    if chars > input.max_length {
        return Err(format!(
            "is {chars} characters, over its {} limit",
            input.max_length
        ));
    }
    if value.chars().any(char::is_control) {
        return Err("holds a control character (a line break, say)".into());
    }
    match input.kind {
        InputKind::Text => {
            if let Some(c) = value.chars().find(|c| matches!(c, '$' | '`' | '\\')) {
                return Err(format!(
                    "holds {c:?}, which a shell expands even inside double quotes"
                ));
            }
            if value.trim().is_empty() {
                return Err("is blank".into());
            }
            Ok(())
        }
        InputKind::Email => {
            let ok = value.split_once('@').is_some_and(|(local, domain)| {
                let local_ok = (1..=64).contains(&local.len())
                    && local
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"._%+-".contains(&b));
                let labels: Vec<&str> = domain.split('.').collect();
                let domain_ok = labels.len() >= 2
                    && labels.iter().all(|l| {
                        !l.is_empty()
                            && !l.starts_with('-')
                            && !l.ends_with('-')
                            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                    });
                local_ok && domain_ok
            });
            if ok {
                Ok(())
            } else {
                Err(format!("{} is not an e-mail address", quote(value)))
            }
        }
        InputKind::DnsLabel => eddo::names::dns_label(value, "a DNS label")
            .map_err(|_| format!("{} is not a DNS label", quote(value))),
    }
}

fn registration_id_ok(s: &str) -> bool {
    (1..=128).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// A value as a reason quotes it: at most [`QUOTE_CHARS`] characters, escaped.
fn quote(s: &str) -> String {
    format!("{:?}", clip(s))
}

fn quote_key(s: &str) -> String {
    let ok = s
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if ok && s.len() <= QUOTE_CHARS {
        s.to_string()
    } else {
        quote(s)
    }
}

fn clip(s: &str) -> String {
    if s.chars().count() <= QUOTE_CHARS {
        s.to_string()
    } else {
        let mut c: String = s.chars().take(QUOTE_CHARS).collect();
        c.push('…');
        c
    }
}

fn shown(v: &Value) -> String {
    match v {
        Value::String(s) => quote(s),
        other => kind_of(other).to_string(),
    }
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    fn test_sources() -> RequestSources {
        RequestSources::of(["acme.control-plane", "s"])
    }

    use super::*;
    use serde_json::json;

    const POLICY: &str = r#"
version: 1
tenants:
  tiers:
    basic:
      provision: {project: tenant-provision}
      deprovision: {project: tenant-deprovision}
      inputs:
        tenantName: {env: TENANT_NAME, kind: text, required: true, max_length: 20}
        email: {env: TENANT_EMAIL, kind: email}
        region: {env: TENANT_REGION, kind: dns-label}
"#;

    fn policy() -> Policy {
        Policy::parse(POLICY).unwrap()
    }

    fn eddo(detail: Value) -> Value {
        json!({"id": "ev-1", "source": "acme.control-plane", "detail-type": ONBOARDING_REQUESTED, "detail": detail})
    }

    fn rejected(event: &Value, sbt: Option<&Sbt>) -> Rejection {
        let p = policy();
        match read(event, &p, &test_sources(), sbt) {
            Read::Rejected(r) => r,
            other => panic!("not rejected: {other:?}"),
        }
    }

    #[test]
    fn a_good_request_parses_into_build_variables() {
        let p = policy();
        let e = eddo(json!({
            "metadata": {"schema_version": "1.0", "correlation_id": "signup-42", "causation_id": "x"},
            "tenant_id": "acme",
            "tier": "basic",
            "values": {"tenantName": "Ben & Jerry's", "email": "ops@acme.example", "region": ""}
        }));
        let Read::Request(r) = read(&e, &p, &test_sources(), None) else {
            panic!()
        };
        assert_eq!(r.tenant.as_str(), "acme");
        assert_eq!(r.tier.unwrap().name.as_str(), "basic");
        assert_eq!(r.correlation_id, "signup-42");
        assert_eq!(r.causation_id, "ev-1");
        assert_eq!(
            r.values,
            vec![
                ("TENANT_EMAIL".to_string(), "ops@acme.example".to_string()),
                ("TENANT_NAME".to_string(), "Ben & Jerry's".to_string()),
            ]
        );
        assert_eq!(r.shape, Shape::Eddo);
    }

    #[test]
    fn every_reason_is_given_at_once() {
        let r = rejected(
            &eddo(json!({
                "tenant_id": "Acme Corp",
                "tier": "gold",
                "values": {"tenantName": "x"}
            })),
            None,
        );
        assert_eq!(r.tenant_id.as_deref(), Some("Acme Corp"));
        assert_eq!(r.reasons.len(), 2, "{:?}", r.reasons);
        assert!(r.reasons[0].contains("tenant_id \"Acme Corp\" is not a tenant id"));
        assert!(r.reasons[1].contains("tier \"gold\" is not in the policy (tiers: basic)"));
        assert_eq!(r.correlation_id, "tenant-request:ev-1");
    }

    #[test]
    fn each_input_is_checked_against_its_kind() {
        for (values, says) in [
            (json!({}), "values.tenantName is required by tier basic"),
            (
                json!({"tenantName": 7}),
                "values.tenantName must be a string, not a number",
            ),
            (
                json!({"tenantName": "a".repeat(21)}),
                "is 21 characters, over its 20 limit",
            ),
            (json!({"tenantName": "a\nb"}), "holds a control character"),
            (
                json!({"tenantName": "$(reboot)"}),
                "holds '$', which a shell expands",
            ),
            (json!({"tenantName": "a`id`"}), "holds '`'"),
            (json!({"tenantName": "  "}), "values.tenantName is blank"),
            (
                json!({"tenantName": "a", "email": "ops at acme"}),
                "values.email \"ops at acme\" is not an e-mail address",
            ),
            (
                json!({"tenantName": "a", "email": "ops@localhost"}),
                "is not an e-mail address",
            ),
            (
                json!({"tenantName": "a", "region": "EU West"}),
                "values.region \"EU West\" is not a DNS label",
            ),
            (
                json!({"tenantName": "a", "plan": "gold"}),
                "values.plan is not an input of tier basic (inputs: email, region, tenantName)",
            ),
        ] {
            let r = rejected(
                &eddo(json!({"tenant_id": "acme", "tier": "basic", "values": values})),
                None,
            );
            assert_eq!(r.reasons.len(), 1, "{values}: {:?}", r.reasons);
            assert!(r.reasons[0].contains(says), "{values}: {:?}", r.reasons);
        }
        for (detail, says) in [
            (
                json!({"tier": "basic", "values": {"tenantName": "a"}}),
                "tenant_id is missing",
            ),
            (
                json!({"tenant_id": 5, "tier": "basic", "values": {"tenantName": "a"}}),
                "tenant_id must be a string, not a number",
            ),
            (
                json!({"tenant_id": "acme", "values": {"tenantName": "a"}}),
                "tier is missing",
            ),
            (
                json!({"tenant_id": "acme", "tier": "basic", "values": [1]}),
                "values must be an object, not an array",
            ),
        ] {
            let r = rejected(&eddo(detail.clone()), None);
            assert!(
                r.reasons.iter().any(|x| x.contains(says)),
                "{detail}: {:?}",
                r.reasons
            );
        }
        let r = rejected(
            &json!({"id": "e", "source": "s", "detail-type": ONBOARDING_REQUESTED, "detail": "text"}),
            None,
        );
        assert_eq!(r.reasons[0], "detail is not a JSON object");
    }

    #[test]
    fn a_long_value_is_quoted_clipped() {
        let r = rejected(
            &eddo(
                json!({"tenant_id": "x".repeat(500), "tier": "basic", "values": {"tenantName": "a"}}),
            ),
            None,
        );
        assert!(r.reasons[0].len() < 250, "{}", r.reasons[0]);
        assert!(r.tenant_id.unwrap().ends_with('…'));
    }

    fn sbt(detail_type: &str, detail: Value) -> Value {
        json!({"id": "sbt-1", "source": "controlPlaneEventSource", "detail-type": detail_type, "detail": detail})
    }

    fn legacy() -> Sbt {
        Sbt::with_defaults(crate::sbt::Generation::Legacy)
    }

    #[test]
    fn sbt_requests_read_their_own_shape() {
        let p = policy();
        // As sbt-aws's tenant registration sends it: its data and the tenant's side by side.
        let e = sbt(
            "onboardingRequest",
            json!({
                "tenantId": "e6878e03-ae2c-43ed-a863-08314487318b",
                "tenantRegistrationId": "0b9c3f4c-71a2-4b8e-9a51-1f0d2f8b6c11",
                "tenantName": "acme",
                "email": "admin@acme.example",
                "tier": "basic",
                "prices": [{"id": "price_123", "metricName": "productsSold"}],
                "sbtaws_active": true
            }),
        );
        let Read::Request(r) = read(&e, &p, &test_sources(), Some(&legacy())) else {
            panic!()
        };
        assert_eq!(r.tenant.as_str(), "e6878e03-ae2c-43ed-a863-08314487318b");
        assert_eq!(
            r.shape.registration_id(),
            Some("0b9c3f4c-71a2-4b8e-9a51-1f0d2f8b6c11")
        );
        assert_eq!(r.values.len(), 2);
        // Not configured, or from another source: not a request at all.
        assert!(matches!(
            read(&e, &p, &test_sources(), None),
            Read::NotARequest(_)
        ));
        let elsewhere = Sbt {
            control_plane_source: "otherSource".into(),
            ..legacy()
        };
        assert!(matches!(
            read(&e, &p, &test_sources(), Some(&elsewhere)),
            Read::NotARequest(_)
        ));
        // The current generation's control plane names it otherwise: not its request either.
        let current = Sbt {
            control_plane_source: "controlPlaneEventSource".into(),
            ..Sbt::with_defaults(crate::sbt::Generation::Current)
        };
        assert!(matches!(
            read(&e, &p, &test_sources(), Some(&current)),
            Read::NotARequest(_)
        ));
        let mut renamed = e.clone();
        renamed["detail-type"] = json!("sbt_aws_onboardingRequest");
        assert!(matches!(
            read(&renamed, &p, &test_sources(), Some(&current)),
            Read::Request(_)
        ));
        let off = sbt(
            "offboardingRequest",
            json!({"tenantId": "acme", "tenantRegistrationId": "r-1"}),
        );
        let Read::Request(r) = read(&off, &p, &test_sources(), Some(&legacy())) else {
            panic!()
        };
        assert_eq!(r.action, Action::Offboard);
        assert!(r.tier.is_none());
        let bad = sbt(
            "onboardingRequest",
            json!({"tenantId": "acme", "tier": "basic", "tenantRegistrationId": "a b"}),
        );
        let r = rejected(&bad, Some(&legacy()));
        assert!(
            r.reasons
                .iter()
                .any(|x| x.contains("tenantRegistrationId \"a b\"")),
            "{:?}",
            r.reasons
        );
        assert!(
            r.reasons
                .iter()
                .any(|x| x == "tenantName is required by tier basic"),
            "{:?}",
            r.reasons
        );
    }

    proptest::proptest! {
        /// Whatever a requester writes, a text value that passes holds nothing a shell expands
        /// inside double quotes and no control character.
        #[test]
        fn accepted_text_is_inert_in_double_quotes(s in "\\PC{0,30}|.{0,30}") {
            let p = policy();
            let input = &p.tier("basic").unwrap().inputs[2];
            if check(input, &s).is_ok() {
                proptest::prop_assert!(!s.contains(['$', '`', '\\']));
                proptest::prop_assert!(!s.chars().any(char::is_control));
            }
        }
    }
}

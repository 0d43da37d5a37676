//! IAM in the local stack, as in AWS: the template's roles and their policies created in the
//! emulator's IAM (inline policies, `AWS::IAM::RolePolicy`, and AWS managed policies by ARN, with
//! their published documents), the session Lambda gets from a function's execution role (only
//! where the role trusts `lambda.amazonaws.com`), and the authorization question the CodeBuild
//! stand-in and EventBridge's CodeBuild targets ask. moto evaluates every question
//! (`infra/local/moto_server.py`): one evaluation of IAM's logic for every call.

use std::net::SocketAddr;

use aws_config::SdkConfig;
use serde_json::{Value as Json, json};

use crate::moto::AccessKey;
use crate::template::{Names, Template, property};
use crate::{LocalError, aws};

/// Who asks: a caller's access key, or a role an AWS service acts as (which the role's trust
/// policy must let that service assume).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// A signed request's access key, and its session token (`X-Amz-Security-Token`) if any.
    AccessKey {
        id: String,
        session_token: Option<String>,
    },
    ServiceRole {
        role: String,
        service: String,
        /// What the service acts for (`aws:SourceArn`: the rule, for EventBridge's targets).
        source_arn: Option<String>,
    },
}

/// IAM's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    /// AWS's message when it is not: the identity, the action, the resource, why.
    pub message: String,
}

/// The emulator's IAM endpoints.
#[derive(Debug, Clone)]
pub struct Authority {
    moto: SocketAddr,
}

impl Authority {
    /// The IAM of the emulator `sdk` points at.
    pub fn of(sdk: &SdkConfig) -> Result<Authority, LocalError> {
        let endpoint = sdk
            .endpoint_url()
            .ok_or_else(|| LocalError::Setup("the SDK configuration names no emulator".into()))?;
        let moto = endpoint
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .parse()
            .map_err(|e| LocalError::Setup(format!("emulator endpoint {endpoint}: {e}")))?;
        Ok(Authority { moto })
    }

    fn post(&self, path: &str, body: &Json) -> Result<(u16, Json), LocalError> {
        let (status, text) = crate::url::post(
            self.moto,
            path,
            &[("content-type", "application/json")],
            body.to_string().as_bytes(),
        )
        .map_err(|e| LocalError::Aws(format!("{path}: {e}")))?;
        let answer = serde_json::from_str(&text)
            .map_err(|e| LocalError::Aws(format!("{path} answered {status} {text:?}: {e}")))?;
        Ok((status, answer))
    }

    /// The session `service` gets from `role` (Lambda running a function), refused where the
    /// role's trust policy does not let that service assume it.
    pub fn assume(
        &self,
        role_arn: &str,
        service: &str,
        session: &str,
    ) -> Result<AccessKey, LocalError> {
        let (status, answer) = self.post(
            "/_eddo/assume-role",
            &json!({"role_arn": role_arn, "service": service, "session_name": session}),
        )?;
        if status != 200 {
            return Err(LocalError::Setup(format!(
                "{service} cannot assume {role_arn}: {}",
                answer["error"].as_str().unwrap_or_default()
            )));
        }
        serde_json::from_value(answer)
            .map_err(|e| LocalError::Aws(format!("/_eddo/assume-role: {e}")))
    }

    /// Sets a resource's policy (the event bus's, from its `AWS::Events::EventBusPolicy`
    /// statements): the emulator refuses what an explicit Deny there covers.
    pub fn set_resource_policy(&self, resource: &str, policy: &Json) -> Result<(), LocalError> {
        let (status, answer) = self.post(
            "/_eddo/resource-policy",
            &json!({"resource": resource, "policy": policy}),
        )?;
        if status != 200 {
            return Err(LocalError::Setup(format!(
                "the policy of {resource} was refused: {answer}"
            )));
        }
        Ok(())
    }

    /// The Sid of the resource policy statement that denies `principal_arn` (a role's ARN) the
    /// request, if one does: what the resource policy alone says.
    pub fn resource_denies(
        &self,
        principal_arn: &str,
        action: &str,
        resource: &str,
        context: Json,
    ) -> Result<Option<String>, LocalError> {
        let (_, answer) = self.post(
            "/_eddo/resource-decision",
            &json!({"principal_arn": principal_arn, "action": action, "resource": resource, "context": context}),
        )?;
        Ok((answer["denied"] == true)
            .then(|| answer["by"].as_str().unwrap_or_default().to_string()))
    }

    /// Whether `caller` may perform `action` on `resource`, with the request's condition keys.
    pub fn authorize(
        &self,
        caller: &Caller,
        action: &str,
        resource: &str,
        context: Json,
    ) -> Result<Decision, LocalError> {
        let mut ask = json!({"action": action, "resource": resource, "context": context});
        match caller {
            Caller::AccessKey { id, session_token } => {
                ask["access_key_id"] = json!(id);
                ask["session_token"] = json!(session_token);
            }
            Caller::ServiceRole {
                role,
                service,
                source_arn,
            } => {
                ask["role_arn"] = json!(role);
                ask["service"] = json!(service);
                ask["source_arn"] = json!(source_arn);
            }
        }
        let (_, answer) = self.post("/_eddo/authorize", &ask)?;
        Ok(Decision {
            allowed: answer["allowed"] == true,
            message: answer["message"].as_str().unwrap_or_default().to_string(),
        })
    }
}

/// One authorization a role (or a session of it) was asked for.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
pub struct Asked {
    pub principal: String,
    pub action: String,
    pub resource: String,
    /// The DynamoDB partition keys the request touched (`dynamodb:LeadingKeys`), if any.
    #[serde(default)]
    pub leading_keys: Option<Vec<String>>,
}

impl Asked {
    /// The role's name: `.../assumed-role/<name>/<session>` or `.../role/<name>`.
    pub fn role_name(&self) -> Option<&str> {
        let rest = self
            .principal
            .split_once(":assumed-role/")
            .or_else(|| self.principal.split_once(":role/"))?
            .1;
        rest.split('/').next()
    }
}

impl Authority {
    /// Every authorization asked of a role so far, in order.
    pub fn decisions(&self) -> Result<Vec<Asked>, LocalError> {
        let (_, answer) = self.post("/_eddo/decisions", &json!({}))?;
        serde_json::from_value(answer)
            .map_err(|e| LocalError::Aws(format!("/_eddo/decisions: {e}")))
    }
}

/// A role of the template as the stack created it: its policy documents, resolved.
#[derive(Debug, Clone)]
pub struct RoleDoc {
    pub logical_id: String,
    pub name: String,
    /// (policy name, document) of its inline policies and `AWS::IAM::RolePolicy` grants.
    pub policies: Vec<(String, Json)>,
    /// The managed policies attached (AWS's, by ARN).
    pub managed: Vec<String>,
}

/// IAM's wildcard match: `*` any run of characters, `?` any one.
pub fn wildcard(pattern: &str, value: &str) -> bool {
    fn go(p: &[char], v: &[char]) -> bool {
        match (p.first(), v.first()) {
            (None, None) => true,
            (Some('*'), _) => go(&p[1..], v) || (!v.is_empty() && go(p, &v[1..])),
            (Some('?'), Some(_)) => go(&p[1..], &v[1..]),
            (Some(a), Some(b)) if a == b => go(&p[1..], &v[1..]),
            _ => false,
        }
    }
    let (p, v): (Vec<char>, Vec<char>) = (pattern.chars().collect(), value.chars().collect());
    go(&p, &v)
}

fn strings(v: &Json) -> Vec<String> {
    match v {
        Json::String(s) => vec![s.clone()],
        Json::Array(items) => items
            .iter()
            .filter_map(|i| i.as_str().map(str::to_string))
            .collect(),
        _ => Vec::new(),
    }
}

/// Each Allow statement of `role`, with where it is written: `<role> <policy>[.<Sid>]`.
fn allows(role: &RoleDoc) -> Vec<(String, Json)> {
    let mut out = Vec::new();
    for (policy, doc) in &role.policies {
        let statements = match &doc["Statement"] {
            Json::Array(items) => items.clone(),
            other => vec![other.clone()],
        };
        for st in statements.into_iter().filter(|st| st["Effect"] == "Allow") {
            let sid = st["Sid"]
                .as_str()
                .map(|s| format!(".{s}"))
                .unwrap_or_default();
            out.push((format!("{} {policy}{sid}", role.logical_id), st));
        }
    }
    out
}

/// Each Allow of `role` (action, resource pattern) that no authorization in `asked` used:
/// `<role> <policy>[.<Sid>]: <action> on <resource>`. What a role grants and its function never
/// asks for is privilege nobody needs, unless a path the run did not take needs it.
pub fn unused_grants(role: &RoleDoc, asked: &[Asked]) -> Vec<String> {
    let mine: Vec<&Asked> = asked
        .iter()
        .filter(|a| a.role_name() == Some(role.name.as_str()))
        .collect();
    let mut out = Vec::new();
    for (at, st) in allows(role) {
        for action in strings(&st["Action"]) {
            for resource in strings(&st["Resource"]) {
                let used = mine.iter().any(|a| {
                    wildcard(&action.to_lowercase(), &a.action.to_lowercase())
                        && (resource == "*" || wildcard(&resource, &a.resource))
                        && leading_keys_allow(&st, a)
                });
                if !used {
                    out.push(format!("{at}: {action} on {resource}"));
                }
            }
        }
    }
    out
}

/// Whether a statement's `dynamodb:LeadingKeys` condition (the one condition that scopes eddo's
/// table grants to their items) lets the request `a` through: a grant is used only by requests
/// it allows, not by one another statement of the role allowed on other items.
fn leading_keys_allow(st: &Json, a: &Asked) -> bool {
    let patterns = strings(&st["Condition"]["ForAllValues:StringLike"]["dynamodb:LeadingKeys"]);
    if patterns.is_empty() {
        return true;
    }
    a.leading_keys
        .as_ref()
        .is_some_and(|keys| keys.iter().all(|k| patterns.iter().any(|p| wildcard(p, k))))
}

/// Every Allow of `role` on `Resource: "*"`: `<role> <policy>[.<Sid>]: <action>`.
pub fn wildcard_grants(role: &RoleDoc) -> Vec<String> {
    allows(role)
        .into_iter()
        .filter(|(_, st)| strings(&st["Resource"]).iter().any(|r| r == "*"))
        .flat_map(|(at, st)| {
            strings(&st["Action"])
                .into_iter()
                .map(move |action| format!("{at}: {action}"))
        })
        .collect()
}

/// The access key id a SigV4 `Authorization` header signs with.
pub fn signing_key(authorization: &str) -> Option<&str> {
    authorization
        .split("Credential=")
        .nth(1)?
        .split('/')
        .next()
        .filter(|k| !k.is_empty())
}

fn document(v: &Json, at: &str) -> Result<String, LocalError> {
    match v {
        Json::Object(_) => Ok(v.to_string()),
        Json::String(s) => Ok(s.clone()),
        _ => Err(LocalError::Setup(format!(
            "template: {at}: a policy document is required"
        ))),
    }
}

/// A role of the account that CodeBuild may assume, with one inline `policy`, and a session of
/// it: a CI job's or a scanner's identity (created once per emulator; the policy is replaced).
pub async fn codebuild_role(
    sdk: &SdkConfig,
    authority: &Authority,
    name: &str,
    policy: &Json,
) -> Result<(String, AccessKey), LocalError> {
    let iam = aws_sdk_iam::Client::new(sdk);
    let trust = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
        "Principal": {"Service": "codebuild.amazonaws.com"}, "Action": "sts:AssumeRole"}]});
    let created = iam
        .create_role()
        .role_name(name)
        .assume_role_policy_document(trust.to_string())
        .send()
        .await;
    if let Err(e) = created {
        let exists = e
            .as_service_error()
            .is_some_and(|e| e.is_entity_already_exists_exception());
        if !exists {
            return Err(aws(&format!("CreateRole {name}"), e));
        }
    }
    iam.put_role_policy()
        .role_name(name)
        .policy_name("local")
        .policy_document(policy.to_string())
        .send()
        .await
        .map_err(|e| aws(&format!("PutRolePolicy {name}"), e))?;
    let arn = format!("arn:aws:iam::{}:role/{name}", crate::template::ACCOUNT);
    let key = authority.assume(&arn, "codebuild.amazonaws.com", name)?;
    Ok((arn, key))
}

/// The role a tool reporting gate signals the IAM way has in the local stack (a scanner's or CI's
/// CodeBuild role in AWS): it may put any event on `bus`, and the bus policy lets it put the one
/// signal source its `eddo:signal-source` tag names.
pub async fn signal_sender(
    sdk: &SdkConfig,
    authority: &Authority,
    role_arn: &str,
    source: &str,
    bus_arn: &str,
) -> Result<AccessKey, LocalError> {
    let name = role_arn.rsplit('/').next().unwrap_or_default();
    let allow = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
        "Action": "events:PutEvents", "Resource": bus_arn}]});
    let (_, key) = codebuild_role(sdk, authority, name, &allow).await?;
    // The one source it puts, which the bus policy compares with the event's.
    aws_sdk_iam::Client::new(sdk)
        .tag_role()
        .role_name(name)
        .tags(
            aws_sdk_iam::types::Tag::builder()
                .key(eddo::projects::SIGNAL_SOURCE_TAG)
                .value(source)
                .build()
                .map_err(|e| LocalError::Setup(e.to_string()))?,
        )
        .send()
        .await
        .map_err(|e| aws(&format!("TagRole {name}"), e))?;
    Ok(key)
}

/// Creates every `AWS::IAM::Role` of the template (named `<prefix>-<logical id>`) with its inline
/// policies and managed policy ARNs, then every `AWS::IAM::RolePolicy` and `AWS::IAM::Policy`; names them for `Ref` and
/// `Fn::GetAtt`. The emulator's IAM refuses a malformed policy document, as IAM does.
pub async fn create_roles(
    sdk: &SdkConfig,
    template: &Template,
    names: &mut Names,
    prefix: &str,
) -> Result<Vec<RoleDoc>, LocalError> {
    let iam = aws_sdk_iam::Client::new(sdk);
    let mut roles: Vec<RoleDoc> = Vec::new();
    for (id, r) in template.of_type("AWS::IAM::Role") {
        let at = |key: &str| format!("resource {id}, Properties.{key}");
        let name = match property(names, id, r, "RoleName")? {
            Json::String(n) => n,
            _ => format!("{prefix}-{id}"),
        };
        let trust = property(names, id, r, "AssumeRolePolicyDocument")?;
        let mut create = iam
            .create_role()
            .role_name(&name)
            .assume_role_policy_document(document(&trust, &at("AssumeRolePolicyDocument"))?);
        if let Json::String(path) = property(names, id, r, "Path")? {
            create = create.path(path);
        }
        let created = create
            .send()
            .await
            .map_err(|e| aws(&format!("CreateRole {id}"), e))?;
        let role = created
            .role()
            .ok_or_else(|| LocalError::Aws(format!("CreateRole {id}: no role")))?;
        names.set_ref(id, &name);
        names.set_attr(id, "Arn", role.arn());
        names.set_attr(id, "RoleId", role.role_id());
        let mut role_doc = RoleDoc {
            logical_id: id.to_string(),
            name: name.clone(),
            policies: Vec::new(),
            managed: Vec::new(),
        };
        let policies = property(names, id, r, "Policies")?;
        for (i, p) in policies.as_array().into_iter().flatten().enumerate() {
            let policy_name = p["PolicyName"].as_str().ok_or_else(|| {
                LocalError::Setup(format!("template: {}[{i}]: no PolicyName", at("Policies")))
            })?;
            iam.put_role_policy()
                .role_name(&name)
                .policy_name(policy_name)
                .policy_document(document(&p["PolicyDocument"], &at("Policies"))?)
                .send()
                .await
                .map_err(|e| aws(&format!("PutRolePolicy {id} {policy_name}"), e))?;
            role_doc
                .policies
                .push((policy_name.to_string(), p["PolicyDocument"].clone()));
        }
        let managed = property(names, id, r, "ManagedPolicyArns")?;
        for arn in managed.as_array().into_iter().flatten() {
            let arn = arn.as_str().unwrap_or_default();
            iam.attach_role_policy()
                .role_name(&name)
                .policy_arn(arn)
                .send()
                .await
                .map_err(|e| aws(&format!("AttachRolePolicy {id} {arn}"), e))?;
            role_doc.managed.push(arn.to_string());
        }
        roles.push(role_doc);
    }
    // An inline policy embedded in one role (`AWS::IAM::RolePolicy`), or in each role it lists
    // (`AWS::IAM::Policy`, what the CDK grants with).
    for (id, r) in template
        .of_type("AWS::IAM::RolePolicy")
        .chain(template.of_type("AWS::IAM::Policy"))
    {
        let policy_name = property(names, id, r, "PolicyName")?;
        let doc = property(names, id, r, "PolicyDocument")?;
        let Some(policy_name) = policy_name.as_str() else {
            return Err(LocalError::Setup(format!(
                "template: resource {id}: PolicyName is required"
            )));
        };
        let listed: Vec<String> = if r.kind == "AWS::IAM::RolePolicy" {
            let role = property(names, id, r, "RoleName")?;
            let Some(role) = role.as_str() else {
                return Err(LocalError::Setup(format!(
                    "template: resource {id}: RoleName is required"
                )));
            };
            vec![role.to_string()]
        } else {
            for kind in ["Users", "Groups"] {
                if !property(names, id, r, kind)?.is_null() {
                    return Err(LocalError::Setup(format!(
                        "template: resource {id}: the local stack attaches policies to roles, not {kind}"
                    )));
                }
            }
            let roles = property(names, id, r, "Roles")?;
            roles
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        };
        for role in &listed {
            iam.put_role_policy()
                .role_name(role)
                .policy_name(policy_name)
                .policy_document(document(
                    &doc,
                    &format!("resource {id}, Properties.PolicyDocument"),
                )?)
                .send()
                .await
                .map_err(|e| aws(&format!("PutRolePolicy {id} {role}"), e))?;
            if let Some(r) = roles.iter_mut().find(|r| &r.name == role) {
                r.policies.push((policy_name.to_string(), doc.clone()));
            }
        }
        names.set_ref(id, policy_name);
    }
    for r in &roles {
        let size: usize = r
            .policies
            .iter()
            .map(|(_, doc)| crate::quotas::policy_size(doc))
            .sum();
        crate::quotas::ROLE_INLINE_POLICIES
            .check(format!("role {}'s inline policies", r.logical_id), size)?;
    }
    Ok(roles)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_match_as_iam_matches_them() {
        assert!(wildcard(
            "arn:aws:ssm:*:*:parameter/eddo/*",
            "arn:aws:ssm:us-east-1:1:parameter/eddo/policy"
        ));
        assert!(wildcard("dynamodb:*Item", "dynamodb:PutItem"));
        assert!(wildcard("a?c", "abc"));
        assert!(!wildcard("a?c", "ac"));
        assert!(!wildcard(
            "arn:aws:dynamodb:r:a:table/t",
            "arn:aws:dynamodb:r:a:table/t/index/i"
        ));
    }

    #[test]
    fn a_grant_nobody_asked_for_is_unused() {
        let role = RoleDoc {
            logical_id: "FnRole".into(),
            name: "p-FnRole".into(),
            policies: vec![(
                "P".into(),
                json!({"Statement": [
                    {"Sid": "Items", "Effect": "Allow", "Action": ["dynamodb:GetItem", "dynamodb:Scan"], "Resource": "arn:t"},
                    {"Effect": "Allow", "Action": "inspector2:ListFindings", "Resource": "*"},
                ]}),
            )],
            managed: vec![],
        };
        let asked = |principal: &str, action: &str| Asked {
            principal: principal.into(),
            action: action.into(),
            resource: "arn:t".into(),
            leading_keys: None,
        };
        let used = [
            asked(
                "arn:aws:sts::1:assumed-role/p-FnRole/Fn",
                "dynamodb:GetItem",
            ),
            // Another role's call uses nothing of this one.
            asked("arn:aws:sts::1:assumed-role/p-Other/Fn", "dynamodb:Scan"),
        ];
        assert_eq!(
            unused_grants(&role, &used),
            [
                "FnRole P.Items: dynamodb:Scan on arn:t",
                "FnRole P: inspector2:ListFindings on *"
            ]
        );
        assert_eq!(
            wildcard_grants(&role),
            ["FnRole P: inspector2:ListFindings"]
        );
    }

    #[test]
    fn the_signing_key_is_read_from_the_authorization_header() {
        let h = "AWS4-HMAC-SHA256 Credential=ASIAEXAMPLE/20261201/us-east-1/codebuild/aws4_request, SignedHeaders=host, Signature=abc";
        assert_eq!(signing_key(h), Some("ASIAEXAMPLE"));
        assert_eq!(signing_key("Bearer x"), None);
    }
}

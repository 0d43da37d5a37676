//! AWS's quotas on what a deployment is made of, refused here as AWS refuses them, so a quota
//! broken is a failing test on this machine, not a failed deploy in an account. Each quota names
//! the page that documents it. The local stack checks every one as it provisions a template
//! ([`crate::stack::Stack`]): its parameter values and resource count, each role's inline
//! policies, each rule's pattern, each bus's policy, and the policy parameter's value.

use serde_json::Value;

/// One quota: what it limits, its default, and how AWS counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    pub what: &'static str,
    pub limit: usize,
    pub unit: &'static str,
    pub documented: &'static str,
}

const CLOUDFORMATION: &str =
    "https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/cloudformation-limits.html";
const IAM: &str = "https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_iam-quotas.html";
const EVENTBRIDGE: &str = "https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-quota.html";
const SSM: &str = "https://docs.aws.amazon.com/systems-manager/latest/userguide/parameter-store-advanced-parameters.html";

/// A template parameter's value, in bytes.
pub const PARAMETER_VALUE: Quota = Quota {
    what: "a CloudFormation parameter value",
    limit: 4096,
    unit: "bytes",
    documented: CLOUDFORMATION,
};

/// The resources of one stack, as the template declares them once transformed (`Fn::ForEach`
/// expanded, SAM's resources generated), whatever their conditions.
pub const RESOURCES: Quota = Quota {
    what: "a CloudFormation stack's resources",
    limit: 500,
    unit: "resources",
    documented: CLOUDFORMATION,
};

/// All inline policies of one role together, in characters, white space not counted.
pub const ROLE_INLINE_POLICIES: Quota = Quota {
    what: "an IAM role's inline policies together",
    limit: 10_240,
    unit: "characters",
    documented: IAM,
};

/// One rule's event pattern, in characters (adjustable to 4,096 on request).
pub const EVENT_PATTERN: Quota = Quota {
    what: "an EventBridge event pattern",
    limit: 2048,
    unit: "characters",
    documented: EVENTBRIDGE,
};

/// One event bus's resource policy, in characters.
pub const BUS_POLICY: Quota = Quota {
    what: "an event bus policy",
    limit: 10_240,
    unit: "characters",
    documented: EVENTBRIDGE,
};

/// An SSM parameter's value in the Advanced tier (the Standard tier's is 4 KB).
pub const ADVANCED_PARAMETER_VALUE: Quota = Quota {
    what: "an SSM Advanced parameter's value",
    limit: 8192,
    unit: "bytes",
    documented: SSM,
};

/// An SSM parameter's value in the Standard tier, the default.
pub const STANDARD_PARAMETER_VALUE: Quota = Quota {
    what: "an SSM Standard parameter's value",
    limit: 4096,
    unit: "bytes",
    documented: SSM,
};

/// The value quota of an SSM parameter of `tier` (`Standard` unless given).
pub fn ssm_value(tier: Option<&str>) -> Quota {
    match tier {
        Some("Advanced") => ADVANCED_PARAMETER_VALUE,
        _ => STANDARD_PARAMETER_VALUE,
    }
}

/// A quota something broke.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{by} is {size} {} where {} allows {} ({})", quota.unit, quota.what, quota.limit, quota.documented)]
pub struct Exceeded {
    pub quota: Quota,
    /// What broke it (`parameter TrackedRepositories`, `role ScanGateRole`).
    pub by: String,
    pub size: usize,
}

impl Quota {
    /// Whether `size` is within the quota.
    pub fn allows(self, size: usize) -> bool {
        size <= self.limit
    }

    /// `Err` when `size` is over the quota.
    pub fn check(self, by: impl Into<String>, size: usize) -> Result<usize, Exceeded> {
        if !self.allows(size) {
            Err(Exceeded {
                quota: self,
                by: by.into(),
                size,
            })
        } else {
            Ok(size)
        }
    }
}

/// A policy document's size as IAM and EventBridge count it: its characters, white space not
/// counted.
pub fn policy_size(doc: &Value) -> usize {
    doc.to_string()
        .chars()
        .filter(|c| !c.is_whitespace())
        .count()
}

impl From<Exceeded> for crate::LocalError {
    fn from(e: Exceeded) -> crate::LocalError {
        crate::LocalError::Quota(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_quota_is_met_to_its_limit_and_broken_past_it() {
        assert_eq!(PARAMETER_VALUE.check("parameter A", 4096), Ok(4096));
        let e = PARAMETER_VALUE.check("parameter A", 4097).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "parameter A is 4097 bytes where a CloudFormation parameter value allows 4096 ({CLOUDFORMATION})"
            )
        );
    }

    #[test]
    fn white_space_is_not_counted_in_a_policy() {
        let doc = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:Get Object"}]});
        let compact =
            r#"{"Statement":[{"Action":"s3:GetObject","Effect":"Allow"}],"Version":"2012-10-17"}"#;
        assert_eq!(policy_size(&doc), compact.len());
    }
}

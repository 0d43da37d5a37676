//! Where the policy is kept, and which version of it a policy was read from, as the store
//! itself numbers it.
//!
//! Two stores. An SSM parameter (a String, Standard tier up to 4 KB, Advanced up to 8 KB) holds
//! a handful of services and costs nothing to run. An object in a versioned S3 bucket holds a
//! platform's policy at any size eddo reads ([`MAX_OBJECT_BYTES`]: a thousand services are about
//! 4.3 MB with comments); it is read with a conditional GET (the last ETag: an unchanged object
//! costs a 304 and no parse). The version a decision names (`policy_version`) is the store's
//! own: the parameter's version (an integer SSM increments on every write) or the object's
//! version id (an opaque string S3 gives every write to a versioned bucket), so an auditor can
//! fetch exactly the document that decided.

use std::fmt;

#[cfg(feature = "aws")]
use aws_sdk_dynamodb::types::AttributeValue;
use serde::{Deserialize, Serialize};

/// A policy's version in its store. In events: a JSON integer (SSM) or string (S3).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(untagged)]
pub enum PolicyVersion {
    /// An SSM parameter's version.
    Parameter(i64),
    /// An S3 object's version id.
    Object(String),
}

#[cfg(feature = "aws")]
impl PolicyVersion {
    /// As a DynamoDB attribute: a number for SSM's, a string for S3's.
    pub fn attribute(&self) -> AttributeValue {
        match self {
            PolicyVersion::Parameter(v) => AttributeValue::N(v.to_string()),
            PolicyVersion::Object(id) => AttributeValue::S(id.clone()),
        }
    }

    /// From a DynamoDB attribute written by [`PolicyVersion::attribute`].
    pub fn from_attribute(value: &AttributeValue) -> Option<PolicyVersion> {
        match value {
            AttributeValue::N(n) => n.parse().ok().map(PolicyVersion::Parameter),
            AttributeValue::S(id) => Some(PolicyVersion::Object(id.clone())),
            _ => None,
        }
    }
}

/// The largest policy object eddo reads: far past a thousand services (about 4.3 MB), short of
/// what one Lambda environment should hold in memory twice (the text and the policy read).
pub const MAX_OBJECT_BYTES: i64 = 32 << 20;

/// Where the policy is kept.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PolicyStore {
    /// An SSM parameter, by name or ARN (`EDDO_POLICY_PARAMETER`).
    Parameter(String),
    /// An object in a versioned S3 bucket (`EDDO_POLICY_OBJECT`, `s3://bucket/key`).
    Object { bucket: String, key: String },
}

impl PolicyStore {
    /// `s3://bucket/key` is an object; anything else names a parameter.
    pub fn parse(location: &str) -> Result<PolicyStore, String> {
        let Some(rest) = location.strip_prefix("s3://") else {
            if location.is_empty() {
                return Err("names no parameter".into());
            }
            return Ok(PolicyStore::Parameter(location.to_string()));
        };
        match rest.split_once('/') {
            Some((bucket, key)) if !bucket.is_empty() && !key.is_empty() => {
                Ok(PolicyStore::Object {
                    bucket: bucket.to_string(),
                    key: key.to_string(),
                })
            }
            _ => Err(format!("{location} is not s3://bucket/key")),
        }
    }
}

impl fmt::Display for PolicyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PolicyStore::Parameter(name) => f.write_str(name),
            PolicyStore::Object { bucket, key } => write!(f, "s3://{bucket}/{key}"),
        }
    }
}

impl From<i64> for PolicyVersion {
    fn from(v: i64) -> PolicyVersion {
        PolicyVersion::Parameter(v)
    }
}

impl fmt::Display for PolicyVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PolicyVersion::Parameter(v) => write!(f, "{v}"),
            PolicyVersion::Object(id) => f.write_str(id),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_location_names_a_parameter_or_an_object() {
        assert_eq!(
            PolicyStore::parse("/eddo/policy"),
            Ok(PolicyStore::Parameter("/eddo/policy".into()))
        );
        let object = PolicyStore::parse("s3://platform-eddo/policy/eddo.yaml").unwrap();
        assert_eq!(
            object,
            PolicyStore::Object {
                bucket: "platform-eddo".into(),
                key: "policy/eddo.yaml".into()
            }
        );
        assert_eq!(object.to_string(), "s3://platform-eddo/policy/eddo.yaml");
        for bad in ["", "s3://", "s3://bucket", "s3://bucket/", "s3:///key"] {
            assert!(PolicyStore::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    #[cfg(feature = "aws")]
    fn each_store_s_version_keeps_its_own_json_and_attribute_type() {
        let ssm = PolicyVersion::Parameter(7);
        let s3 = PolicyVersion::Object("3HL4kqtJlcpXroDTDmJ.rmSpXd3dIbrHY".into());
        assert_eq!(serde_json::to_value(&ssm).unwrap(), serde_json::json!(7));
        assert_eq!(
            serde_json::to_value(&s3).unwrap(),
            serde_json::json!("3HL4kqtJlcpXroDTDmJ.rmSpXd3dIbrHY")
        );
        for v in [ssm, s3] {
            assert_eq!(
                PolicyVersion::from_attribute(&v.attribute()),
                Some(v.clone())
            );
            let back: PolicyVersion =
                serde_json::from_value(serde_json::to_value(&v).unwrap()).unwrap();
            assert_eq!(back, v);
        }
    }
}

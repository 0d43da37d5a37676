//! Names that can only be built by parsing, so code that holds one never checks it again: a
//! service, a CodeBuild project, a repository, a commit, an image digest, a tenant and its tier.

use std::fmt;

use serde::{Deserialize, Serialize};

macro_rules! parsed_name {
    ($(#[$doc:meta])* $name:ident, $check:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            pub fn parse(s: impl Into<String>) -> Result<Self, String> {
                let s = s.into();
                let check: fn(&str) -> Result<(), String> = $check;
                check(&s)?;
                Ok($name(s))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = String;
            fn try_from(s: String) -> Result<Self, String> {
                $name::parse(s)
            }
        }

        impl From<$name> for String {
            fn from(n: $name) -> String {
                n.0
            }
        }

        /// Looked up by its text in maps keyed by it (its order and hash are the text's).
        impl std::borrow::Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

/// A DNS label: 1 to 63 lower-case letters, digits and '-', not starting or ending with '-'.
/// Safe in a host name, a stack name, a bucket name and a shell word.
pub fn dns_label(s: &str, what: &str) -> Result<(), String> {
    let ok = !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-');
    ok.then_some(()).ok_or_else(|| {
        format!("{s:?} is not {what}: 1 to 63 lower-case letters, digits and '-', not starting or ending with '-'")
    })
}

parsed_name!(
    /// A service eddo deploys: a DNS label (`payments`, `checkout-api`).
    ServiceName,
    |s| dns_label(s, "a service name")
);

parsed_name!(
    /// A SaaS tenant's id: a DNS label (`acme`, or sbt-aws's lower-case UUIDs), so it can name
    /// the tenant's stacks, buckets and host names as it is.
    TenantId,
    |s| dns_label(s, "a tenant id")
);

parsed_name!(
    /// A tenant tier of the policy (`basic`, `premium`): a DNS label.
    TierName,
    |s| dns_label(s, "a tier name")
);

parsed_name!(
    /// A tool that signs its signals with its own key (`chatops`, `contract-check`): a DNS label,
    /// so it can name the webhook route `/signals/<name>` and a key of the webhook secret.
    SenderName,
    |s| dns_label(s, "a sender name")
);

parsed_name!(
    /// A CodeBuild project name.
    ProjectName,
    |s| {
        let ok = (2..=255).contains(&s.len())
            && s.as_bytes()[0].is_ascii_alphanumeric()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        ok.then_some(()).ok_or_else(|| {
            format!("{s:?} is not a CodeBuild project name: 2 to 255 letters, digits, '-' and '_', starting with a letter or digit")
        })
    }
);

parsed_name!(
    /// A Git repository as `owner/name` (GitLab: `group/subgroup/name`).
    RepoName,
    |s| {
        let parts: Vec<&str> = s.split('/').collect();
        let ok = parts.len() >= 2
            && parts.iter().all(|p| {
                !p.is_empty()
                    && p.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
            });
        ok.then_some(())
            .ok_or_else(|| format!("{s:?} is not a repository like owner/name"))
    }
);

parsed_name!(
    /// A full Git commit id: 40 lower-case hex digits (SHA-1) or 64 (SHA-256).
    CommitSha,
    |s| {
        let ok = (s.len() == 40 || s.len() == 64)
            && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        ok.then_some(())
            .ok_or_else(|| format!("{s:?} is not a full commit id (40 or 64 lower-case hex digits)"))
    }
);

parsed_name!(
    /// A container image digest, `sha256:` and 64 hex digits.
    ImageDigest,
    |s| {
        let ok = s.strip_prefix("sha256:").is_some_and(|h| {
            h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit())
        });
        ok.then_some(())
            .ok_or_else(|| format!("{s:?} is not an image digest (sha256: and 64 hex digits)"))
    }
);

impl CommitSha {
    /// The first 7 digits, as people write commits.
    pub fn short(&self) -> &str {
        &self.0[..7]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_or_say_why_not() {
        assert!(ServiceName::parse("checkout-api").is_ok());
        for bad in ["", "Payments", "-x", "x-", "a_b", &"a".repeat(64)] {
            assert!(ServiceName::parse(bad).is_err(), "{bad}");
        }
        assert!(TenantId::parse("e6878e03-ae2c-43ed-a863-08314487318b").is_ok());
        let err = TenantId::parse("Acme Corp").unwrap_err();
        assert!(err.contains("not a tenant id"), "{err}");
        assert!(ProjectName::parse("payments-build_2").is_ok());
        assert!(ProjectName::parse("-x").is_err());
        assert!(ProjectName::parse("a b").is_err());
        assert!(RepoName::parse("Codertocat/Hello-World").is_ok());
        assert!(RepoName::parse("group/sub/name").is_ok());
        assert!(RepoName::parse("no-owner").is_err());
        assert!(RepoName::parse("a//b").is_err());
        let sha = CommitSha::parse("6113728f27ae82c7b1a177c8d03f9e96e0adf246").unwrap();
        assert_eq!(sha.short(), "6113728");
        assert!(CommitSha::parse("6113728").is_err());
        assert!(CommitSha::parse("6113728F27AE82C7B1A177C8D03F9E96E0ADF246").is_err());
        assert!(ImageDigest::parse(format!("sha256:{}", "a".repeat(64))).is_ok());
        assert!(ImageDigest::parse("sha256:abc").is_err());
        let err = serde_json::from_str::<ServiceName>("\"Bad\"").unwrap_err();
        assert!(err.to_string().contains("not a service name"), "{err}");
    }
}

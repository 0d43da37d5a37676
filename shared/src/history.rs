//! A service's deployment history and its rollback record, in the eddo table. The gate writes the
//! history when a deploy finishes; alarm-rollback reads it to choose what to restore, writes it
//! when a rollback finishes, and holds the service's deployments while a rollback runs. Both
//! read and write these items only through this module, so they agree on every attribute.
//!
//! - history `pk = service#<service>`, `sk = history`: `live` and `last_known_good` (each a
//!   [`Version`] as JSON) and `live_build`, the build that made `live` live;
//! - rollback `pk = service#<service>`, `sk = rollback`: the rollback in progress or the last
//!   one, its hold on deployments (`held_until`, 0 once released) and the recent starts that the
//!   cooldown and the maximum per window are judged by. It has no TTL: it is one small item per
//!   service, and losing it would forget the rollbacks the limits count.

use aws_sdk_dynamodb::types::{AttributeValue, ConditionCheck, Update};
use serde::{Deserialize, Serialize};

use crate::Error;
use crate::dynamo::{Item, attr, get, key, n, num, s};
use crate::names::ServiceName;

pub const HISTORY_SK: &str = "history";
/// The partition of a service's known-bad marks (`service#<name>#known-bad`, one item per commit),
/// apart from its history and rollback record, which alarm-rollback reads with one query.
pub fn known_bad_pk(service: &ServiceName) -> AttributeValue {
    s(&format!("service#{service}#known-bad"))
}
pub const ROLLBACK_SK: &str = "rollback";

pub fn service_pk(service: &ServiceName) -> AttributeValue {
    s(&format!("service#{service}"))
}

/// How a version went live.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum VersionKind {
    /// The gate's deploy project.
    Deploy,
    /// alarm-rollback's rollback project, restoring an earlier version.
    Rollback,
}

/// One version of a service that went live.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Version {
    pub commit: String,
    pub digest: Option<String>,
    /// The build that made it live.
    pub build_id: String,
    /// When it went live (epoch seconds): the bake window starts here.
    pub at: u64,
    pub kind: VersionKind,
    /// The change it belongs to, so a rollback continues its audit trail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<String>,
    /// For a rollback: the commit it replaced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replaced: Option<String>,
    /// When the build that made it live started: a deploy build may switch traffic before it
    /// reports success, so an alarm from then on is about this version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<u64>,
}

/// What is live for a service and what was last known good.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct History {
    pub live: Option<Version>,
    pub last_known_good: Option<Version>,
    /// Every known-bad commit: one a rollback replaced, or one a required signal failed after
    /// its deployment started (`Late Signal Failed`). Deployed again only on an approval of it.
    /// Kept as long as the history (no TTL): one short string per commit.
    pub rolled_back: std::collections::BTreeSet<String>,
}

impl History {
    /// The history once `version` has gone live, as [`go_live`] moves it.
    pub fn after(&self, version: &Version) -> History {
        let mut next = self.clone();
        match version.kind {
            VersionKind::Deploy => next.last_known_good = next.live.take(),
            VersionKind::Rollback => {
                if let Some(bad) = &version.replaced {
                    next.rolled_back.insert(bad.clone());
                }
            }
        }
        next.live = Some(version.clone());
        next
    }

    pub fn from_item(item: &Item) -> History {
        let version = |k: &str| attr(item, k).and_then(|j| serde_json::from_str(j).ok());
        History {
            live: version("live"),
            last_known_good: version("last_known_good"),
            rolled_back: item
                .get("rolled_back")
                .and_then(|v| v.as_ss().ok())
                .map(|ss| ss.iter().cloned().collect())
                .unwrap_or_default(),
        }
    }

    /// Reads the history (strongly consistent).
    pub async fn read(
        client: &aws_sdk_dynamodb::Client,
        table: &str,
        service: &ServiceName,
    ) -> Result<History, Error> {
        let item = get(client, table, key(service_pk(service), s(HISTORY_SK))).await?;
        Ok(History::from_item(&item.unwrap_or_default()))
    }
}

/// The update that makes `version` live, for a transaction. A deploy moves what was live to last
/// known good; a rollback leaves last known good as it is (the version it restored), so the
/// version rolled back from never becomes "good". Conditional on that build not being live
/// already: a redelivered completion moves nothing twice (the transaction is cancelled).
pub fn go_live(table: &str, service: &ServiceName, version: &Version) -> Result<Update, Error> {
    go_live_builder(table, service, version)?
        .build()
        .map_err(|e| Error::InvalidEvent(e.to_string()))
}

/// [`go_live`], on the condition that the history is still `read` (the same live build): the
/// events that describe the move were written from it ([`History::after`]).
pub fn go_live_from(
    table: &str,
    service: &ServiceName,
    version: &Version,
    read: &History,
) -> Result<Update, Error> {
    let update = go_live_builder(table, service, version)?;
    let update = match read.live.as_ref() {
        Some(live) => update
            .condition_expression("live_build = :was AND live_build <> :build")
            .expression_attribute_values(":was", s(&live.build_id)),
        None => update.condition_expression("attribute_not_exists(live_build)"),
    };
    update
        .build()
        .map_err(|e| Error::InvalidEvent(e.to_string()))
}

fn go_live_builder(
    table: &str,
    service: &ServiceName,
    version: &Version,
) -> Result<aws_sdk_dynamodb::types::builders::UpdateBuilder, Error> {
    let expression = match version.kind {
        VersionKind::Deploy => {
            "SET last_known_good = if_not_exists(live, :none), live = :live, live_build = :build"
        }
        // The version a rollback replaced is known bad from now on.
        VersionKind::Rollback if version.replaced.is_some() => {
            "SET live = :live, live_build = :build ADD rolled_back :bad"
        }
        VersionKind::Rollback => "SET live = :live, live_build = :build",
    };
    let mut update = Update::builder()
        .table_name(table)
        .key("pk", service_pk(service))
        .key("sk", s(HISTORY_SK))
        .update_expression(expression)
        .condition_expression("attribute_not_exists(live_build) OR live_build <> :build")
        .expression_attribute_values(
            ":live",
            s(&serde_json::to_string(version).map_err(Error::Encode)?),
        )
        .expression_attribute_values(":build", s(&version.build_id));
    if version.kind == VersionKind::Deploy {
        update = update.expression_attribute_values(":none", s("null"));
    }
    if let (VersionKind::Rollback, Some(bad)) = (version.kind, &version.replaced) {
        update = update.expression_attribute_values(":bad", AttributeValue::Ss(vec![bad.clone()]));
    }
    Ok(update)
}

/// The check a deploy transaction carries: no rollback of `service` holds its deployments.
pub fn not_held(table: &str, service: &ServiceName, now: u64) -> Result<ConditionCheck, Error> {
    ConditionCheck::builder()
        .table_name(table)
        .key("pk", service_pk(service))
        .key("sk", s(ROLLBACK_SK))
        .condition_expression("attribute_not_exists(held_until) OR held_until < :now")
        .expression_attribute_values(":now", n(now))
        .build()
        .map_err(|e| Error::InvalidEvent(e.to_string()))
}

/// Since when (`since`, epoch seconds) and by what (`by`: the rollback build that replaced it,
/// or the event whose failure came after its deploy started) `commit` is known bad: the record
/// an approval must be newer than. Written again each time the commit becomes known bad, so an
/// approval given before a later rollback no longer clears it.
pub fn known_bad_mark(
    table: &str,
    service: &ServiceName,
    commit: &str,
    since: u64,
    by: &str,
) -> Result<Update, Error> {
    Update::builder()
        .table_name(table)
        .key("pk", known_bad_pk(service))
        .key("sk", s(commit))
        .update_expression("SET since = :since, marked_by = :by")
        .expression_attribute_values(":since", n(since))
        .expression_attribute_values(":by", s(by))
        .build()
        .map_err(|e| Error::InvalidEvent(e.to_string()))
}

/// Since when, and by what, `commit` of `service` is known bad, if it is marked (strongly
/// consistent).
pub async fn known_bad_since(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    service: &ServiceName,
    commit: &str,
) -> Result<Option<(u64, String)>, Error> {
    let item = get(client, table, key(known_bad_pk(service), s(commit))).await?;
    Ok(item.and_then(|item| {
        Some((
            num(&item, "since")?,
            attr(&item, "marked_by").unwrap_or_default().to_string(),
        ))
    }))
}

/// Marks `commit` of `service` known bad at `since` because of `by` (a required signal failed
/// after its deployment started): its deploy is refused from now on unless an approval newer
/// than the mark clears it, as a commit a rollback replaced. One transaction: the history's set
/// and the mark.
pub async fn mark_known_bad(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    service: &ServiceName,
    commit: &str,
    since: u64,
    by: &str,
) -> Result<(), Error> {
    let set = Update::builder()
        .table_name(table)
        .key("pk", service_pk(service))
        .key("sk", s(HISTORY_SK))
        .update_expression("ADD rolled_back :bad")
        .expression_attribute_values(":bad", AttributeValue::Ss(vec![commit.to_string()]))
        .build()
        .map_err(|e| Error::InvalidEvent(e.to_string()))?;
    let item = |u| {
        aws_sdk_dynamodb::types::TransactWriteItem::builder()
            .update(u)
            .build()
    };
    client
        .transact_write_items()
        .transact_items(item(set))
        .transact_items(item(known_bad_mark(table, service, commit, since, by)?))
        .send()
        .await
        .map_err(|e| Error::aws("DynamoDB", "TransactWriteItems", e))?;
    Ok(())
}

/// The check a deploy transaction carries for a commit no approval has cleared: no rollback
/// replaced it, and no late failure marked it (it is not known bad).
pub fn not_rolled_back(
    table: &str,
    service: &ServiceName,
    commit: &str,
) -> Result<ConditionCheck, Error> {
    ConditionCheck::builder()
        .table_name(table)
        .key("pk", service_pk(service))
        .key("sk", s(HISTORY_SK))
        .condition_expression("attribute_not_exists(rolled_back) OR NOT contains(rolled_back, :c)")
        .expression_attribute_values(":c", s(commit))
        .build()
        .map_err(|e| Error::InvalidEvent(e.to_string()))
}

/// The build of the rollback holding the service's deployments at `now`, if one does.
pub fn holder(item: &Item, now: u64) -> Option<String> {
    num(item, "held_until")
        .filter(|until| *until >= now)
        .map(|_| {
            attr(item, "build_id")
                .unwrap_or("a rollback being started")
                .to_string()
        })
}

/// Reads the rollback record and returns the build holding `service`'s deployments, if any.
pub async fn held_by(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    service: &ServiceName,
    now: u64,
) -> Result<Option<String>, Error> {
    let item = get(client, table, key(service_pk(service), s(ROLLBACK_SK))).await?;
    Ok(item.and_then(|i| holder(&i, now)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(kind: VersionKind) -> Version {
        Version {
            commit: "6113728f27ae82c7b1a177c8d03f9e96e0adf246".into(),
            digest: None,
            build_id: "eddo-deploy:1".into(),
            at: 1_800_000_000,
            kind,
            correlation_id: None,
            replaced: None,
            started_at: None,
        }
    }

    #[test]
    fn a_version_reads_back_and_old_records_still_read() {
        let json = serde_json::to_string(&v(VersionKind::Rollback)).unwrap();
        assert!(json.contains(r#""kind":"rollback""#), "{json}");
        assert!(!json.contains("replaced"), "{json}");
        let old = r#"{"commit":"abc","digest":null,"build_id":"b","at":1,"kind":"deploy"}"#;
        assert_eq!(
            serde_json::from_str::<Version>(old).unwrap().kind,
            VersionKind::Deploy
        );
    }

    #[test]
    fn a_rollback_leaves_last_known_good_alone() {
        let service = ServiceName::parse("hello-world").unwrap();
        let deploy = go_live("t", &service, &v(VersionKind::Deploy)).unwrap();
        assert!(deploy.update_expression().contains("last_known_good"));
        let rollback = go_live("t", &service, &v(VersionKind::Rollback)).unwrap();
        assert!(!rollback.update_expression().contains("last_known_good"));
        // The commit it replaced is recorded as known bad.
        let mut replacing = v(VersionKind::Rollback);
        replacing.replaced = Some("bad".into());
        let rollback = go_live("t", &service, &replacing).unwrap();
        assert!(
            rollback
                .update_expression()
                .contains("ADD rolled_back :bad")
        );
        assert_eq!(
            rollback.expression_attribute_values().unwrap()[":bad"],
            AttributeValue::Ss(vec!["bad".into()])
        );
    }

    #[test]
    fn a_released_or_expired_hold_holds_nothing() {
        let mut item = Item::new();
        item.insert("build_id".into(), s("eddo-rollback:7"));
        item.insert("held_until".into(), n(100));
        assert_eq!(holder(&item, 99).as_deref(), Some("eddo-rollback:7"));
        assert_eq!(holder(&item, 101), None);
        item.insert("held_until".into(), n(0));
        assert_eq!(holder(&item, 1), None);
    }
}

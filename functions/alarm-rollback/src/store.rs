//! alarm-rollback's state in the eddo table. Every write that guards a side effect is conditional.
//!
//! - alarm change `pk = alarm#<alarm ARN or name>`, `sk = <epoch>#<STATE>`: what eddo did about
//!   one state change (rolled back, skipped, would roll back), with [`eddo::outbox`]'s lease and
//!   the events it owes until they are said; `settled` once its effect is done. The same change
//!   delivered twice, by EventBridge and by the alarm action, or an hour later, finds it. Kept a
//!   week (TTL), past Lambda's and EventBridge's day of retries.
//! - the service's history and rollback record ([`eddo::history`]): the rollback record is
//!   versioned (`rev`); a rollback starts only by a transaction that creates the alarm change and
//!   moves the record from the revision it was decided on, so two alarms at once start one. A
//!   rollback build's completion is written on it with the events that say it.

use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem, Update};
use eddo::Error;
use eddo::codebuild::BuildRequest;
use eddo::dynamo::{Item, attr, get, key, n, num, s, transacted, written};
use eddo::history::{self, History, ROLLBACK_SK, Version, service_pk};
use eddo::names::ServiceName;
use eddo::outbox::{self, Lease, Outbox};
use eddo::publish::{OutgoingEvent, Publisher};
use serde::{Deserialize, Serialize};

use crate::decide::Record;

/// How long an alarm change's record is kept.
pub const CHANGE_DAYS: u64 = 7;

/// What eddo did about an alarm change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    RolledBack,
    WouldRollBack,
    Skipped,
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Outcome::RolledBack => "rolled-back",
            Outcome::WouldRollBack => "would-roll-back",
            Outcome::Skipped => "skipped",
        }
    }

    fn parse(s: &str) -> Option<Outcome> {
        [
            Outcome::RolledBack,
            Outcome::WouldRollBack,
            Outcome::Skipped,
        ]
        .into_iter()
        .find(|o| o.as_str() == s)
    }
}

/// The record of one alarm change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub outcome: Outcome,
    pub service: Option<String>,
    /// The rollback record's revision this change started (rolled back only).
    pub rev: Option<u64>,
    /// The decision's detail, for the event that says the rollback started.
    pub detail: String,
    /// It owes events not yet said (its outbox).
    pub owes: bool,
    /// Its effect is done (the build started or refused, or nothing to do): only what it owes
    /// is left.
    pub settled: bool,
    pub correlation_id: String,
}

/// The service's rollback record: the rollback in progress or the last one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RollbackRecord {
    pub rev: u64,
    pub held_until: u64,
    pub build_id: Option<String>,
    pub target: Option<Version>,
    pub replacing: Option<Version>,
    pub correlation_id: Option<String>,
    /// The event that decided it (the alarm change as first delivered): its build's causation.
    pub causation_id: Option<String>,
    /// When recent rollbacks started, oldest first: the last is this one.
    pub starts: Vec<u64>,
    pub alarm: Option<String>,
    /// The last build whose completion was recorded.
    pub finished: Option<String>,
    /// It owes events not yet said (a completion's).
    pub owes: bool,
    /// The decision this revision carries out (`EDDO_DECISION_ID`), the build it froze, and when.
    pub decision: Option<String>,
    pub intent: Option<BuildRequest>,
    pub decided_at: u64,
    /// The key of the alarm change that decided it, whose lease guards its start.
    pub change: Option<(String, String)>,
}

impl RollbackRecord {
    fn from_item(item: &Item) -> RollbackRecord {
        let version = |k: &str| attr(item, k).and_then(|j| serde_json::from_str(j).ok());
        let text = |k: &str| attr(item, k).map(str::to_string);
        RollbackRecord {
            rev: num(item, "rev").unwrap_or(0),
            held_until: num(item, "held_until").unwrap_or(0),
            build_id: text("build_id"),
            target: version("target"),
            replacing: version("replacing"),
            correlation_id: text("correlation_id"),
            causation_id: text("causation_id"),
            starts: attr(item, "starts")
                .and_then(|j| serde_json::from_str(j).ok())
                .unwrap_or_default(),
            alarm: text("alarm"),
            finished: text("finished"),
            owes: item.contains_key(outbox::OUTBOX),
            decision: text("decision"),
            intent: attr(item, "intent").and_then(|j| serde_json::from_str(j).ok()),
            decided_at: num(item, "decided_at").unwrap_or(0),
            change: text("change_pk").zip(text("change_sk")),
        }
    }

    /// What the decision needs.
    pub fn facts(&self, now: u64) -> Record {
        Record {
            holder: (self.held_until >= now && self.held_until > 0).then(|| {
                self.build_id
                    .clone()
                    .unwrap_or_else(|| "a rollback being started".into())
            }),
            starts: self.starts.clone(),
        }
    }
}

/// How the start of a rollback went.
#[derive(Debug)]
pub enum Claim {
    /// The rollback is this service's now: its record, as written.
    Started(Box<RollbackRecord>),
    /// This alarm change was already handled (or is being handled): its record.
    Duplicate(Box<Change>),
    /// Another rollback moved the service's record first: decide again.
    Raced,
}

/// A new alarm change's record.
pub struct NewChange<'a> {
    pub pk: &'a str,
    pub sk: &'a str,
    pub outcome: Outcome,
    pub service: Option<&'a ServiceName>,
    pub detail: &'a str,
    pub correlation_id: &'a str,
    /// The events it owes already (a change with nothing to do: its one event).
    pub owes: &'a [OutgoingEvent],
    pub now: u64,
    /// The lease its write takes.
    pub lease: &'a Lease,
}

/// The key of an alarm change's record.
pub fn change_key(pk: &str, sk: &str) -> Item {
    key(s(pk), s(sk))
}

/// The key of a service's rollback record.
pub fn record_key(service: &ServiceName) -> Item {
    key(service_pk(service), s(ROLLBACK_SK))
}

/// A rollback being started.
pub struct Start<'a> {
    pub service: &'a ServiceName,
    pub decided_on: u64,
    pub hold_until: u64,
    pub target: &'a Version,
    pub replacing: &'a Version,
    pub correlation_id: &'a str,
    pub causation_id: &'a str,
    pub alarm: &'a str,
    /// The key of the alarm change deciding it.
    pub change: (&'a str, &'a str),
    pub starts: &'a [u64],
    pub now: u64,
    /// The decision's id and the build it freezes ([`Start::planned`] makes the request).
    pub decision: &'a str,
    pub intent: Option<&'a BuildRequest>,
}

impl Start<'_> {
    /// The rollback record this decision writes.
    pub fn planned(&self) -> RollbackRecord {
        RollbackRecord {
            rev: self.decided_on + 1,
            held_until: self.hold_until,
            build_id: None,
            target: Some(self.target.clone()),
            replacing: Some(self.replacing.clone()),
            correlation_id: Some(self.correlation_id.to_string()),
            causation_id: Some(self.causation_id.to_string()),
            starts: self.starts.to_vec(),
            alarm: Some(self.alarm.to_string()),
            decision: Some(self.decision.to_string()),
            intent: self.intent.cloned(),
            decided_at: self.now,
            change: Some((self.change.0.to_string(), self.change.1.to_string())),
            ..RollbackRecord::default()
        }
    }
}

#[derive(Clone)]
pub struct Store {
    client: aws_sdk_dynamodb::Client,
    table: String,
    outbox: Outbox,
}

fn invalid(e: impl std::fmt::Display) -> Error {
    Error::InvalidEvent(e.to_string())
}

impl Store {
    pub fn new(
        client: aws_sdk_dynamodb::Client,
        table: impl Into<String>,
        publisher: Publisher,
    ) -> Store {
        let table = table.into();
        Store {
            outbox: Outbox::new(client.clone(), &table, publisher),
            client,
            table,
        }
    }

    pub fn outbox(&self) -> &Outbox {
        &self.outbox
    }

    /// The same table through another publisher.
    pub fn publishing(&self, publisher: Publisher) -> Store {
        Store::new(self.client.clone(), &self.table, publisher)
    }

    /// The service's history and rollback record: one query, both items.
    pub async fn service(&self, service: &ServiceName) -> Result<(History, RollbackRecord), Error> {
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk")
            .expression_attribute_values(":pk", service_pk(service))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| Error::aws("DynamoDB", "Query", e))?;
        let mut history = History::default();
        let mut record = RollbackRecord::default();
        for item in out.items() {
            match attr(item, "sk") {
                Some(history::HISTORY_SK) => history = History::from_item(item),
                Some(ROLLBACK_SK) => record = RollbackRecord::from_item(item),
                _ => {}
            }
        }
        Ok((history, record))
    }

    /// The record of an alarm change, if eddo has seen it.
    pub async fn change(&self, pk: &str, sk: &str) -> Result<Option<Change>, Error> {
        let item = get(&self.client, &self.table, key(s(pk), s(sk))).await?;
        Ok(item.as_ref().map(|i| Change {
            outcome: attr(i, "outcome")
                .and_then(Outcome::parse)
                .unwrap_or(Outcome::Skipped),
            service: attr(i, "service").map(str::to_string),
            rev: num(i, "rev"),
            detail: attr(i, "detail").unwrap_or("{}").to_string(),
            owes: i.contains_key(outbox::OUTBOX),
            settled: i.contains_key("settled"),
            correlation_id: attr(i, "correlation_id").unwrap_or_default().to_string(),
        }))
    }

    fn put_change(&self, c: &NewChange<'_>, rev: Option<u64>) -> Result<Put, Error> {
        let mut put = Put::builder()
            .table_name(&self.table)
            .item("pk", s(c.pk))
            .item("sk", s(c.sk))
            .item("outcome", s(c.outcome.as_str()))
            .item("detail", s(c.detail))
            .item("correlation_id", s(c.correlation_id))
            .item("at", n(c.now))
            .item(outbox::LEASE_UNTIL, n(c.lease.until))
            .item(outbox::LEASE_ID, s(&c.lease.id))
            .item("expires_at", n(c.now + CHANGE_DAYS * 86_400))
            .condition_expression("attribute_not_exists(pk)");
        if !c.owes.is_empty() {
            put = put
                .item(outbox::OUTBOX, outbox::outbox_value(c.owes)?)
                .item("settled", AttributeValue::Bool(true));
        }
        if let Some(svc) = c.service {
            put = put.item("service", s(svc.as_str()));
        }
        if let Some(rev) = rev {
            put = put.item("rev", n(rev));
        }
        put.build().map_err(invalid)
    }

    /// Records a change that starts no rollback (skipped, or would roll back in dry-run).
    /// `Some`: the change was recorded before, by this record.
    pub async fn note(&self, c: &NewChange<'_>) -> Result<Option<Change>, Error> {
        let put = self.put_change(c, None)?;
        let result = self
            .client
            .put_item()
            .table_name(put.table_name())
            .set_item(Some(put.item().clone()))
            .set_condition_expression(put.condition_expression().map(str::to_string))
            .send()
            .await;
        if written(result, "PutItem")? {
            return Ok(None);
        }
        match self.change(c.pk, c.sk).await? {
            Some(change) => Ok(Some(change)),
            None => Err(Error::InvalidEvent(
                "the alarm change's record vanished".into(),
            )),
        }
    }

    /// Starts a rollback: the alarm change's record and the service's rollback record move
    /// together, from the revision the decision read, or not at all.
    pub async fn claim(&self, c: &NewChange<'_>, start: &Start<'_>) -> Result<Claim, Error> {
        let rev = start.decided_on + 1;
        let change = self.put_change(c, Some(rev))?;
        let json = |v: &Version| serde_json::to_string(v).map_err(Error::Encode);
        let record = Update::builder()
            .table_name(&self.table)
            .key("pk", service_pk(start.service))
            .key("sk", s(ROLLBACK_SK))
            .update_expression(
                "SET rev = :rev, held_until = :hold, target = :target, replacing = :replacing, \
                 correlation_id = :corr, causation_id = :cause, starts = :starts, alarm = :alarm, \
                 decision = :decision, intent = :intent, decided_at = :now, \
                 change_pk = :change_pk, change_sk = :change_sk \
                 REMOVE build_id",
            )
            // A completion still owed is said before another rollback takes the record.
            .condition_expression(
                "(attribute_not_exists(rev) OR rev = :decided) AND attribute_not_exists(outbox)",
            )
            .expression_attribute_values(":rev", n(rev))
            .expression_attribute_values(":decided", n(start.decided_on))
            .expression_attribute_values(":hold", n(start.hold_until))
            .expression_attribute_values(":target", s(&json(start.target)?))
            .expression_attribute_values(":replacing", s(&json(start.replacing)?))
            .expression_attribute_values(":corr", s(start.correlation_id))
            .expression_attribute_values(":cause", s(start.causation_id))
            .expression_attribute_values(
                ":starts",
                s(&serde_json::to_string(start.starts).map_err(Error::Encode)?),
            )
            .expression_attribute_values(":alarm", s(start.alarm))
            .expression_attribute_values(":decision", s(start.decision))
            .expression_attribute_values(
                ":intent",
                s(&serde_json::to_string(&start.intent).map_err(Error::Encode)?),
            )
            .expression_attribute_values(":now", n(start.now))
            .expression_attribute_values(":change_pk", s(start.change.0))
            .expression_attribute_values(":change_sk", s(start.change.1))
            .build()
            .map_err(invalid)?;
        let result = self
            .client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().put(change).build())
            .transact_items(TransactWriteItem::builder().update(record).build())
            .send()
            .await;
        if transacted(result)? {
            return Ok(Claim::Started(Box::new(start.planned())));
        }
        // Which condition failed: the alarm change's record says.
        match self.change(c.pk, c.sk).await? {
            Some(change) => Ok(Claim::Duplicate(Box::new(change))),
            None => Ok(Claim::Raced),
        }
    }

    /// Records the rollback build of revision `rev` and the events that say it started, on the
    /// alarm change whose lease this invocation holds: one transaction. `false`: another
    /// invocation recorded it (and says it), or a later rollback took the record.
    pub async fn set_build(
        &self,
        service: &ServiceName,
        rev: u64,
        build_id: &str,
        lease: &Lease,
        owes: &[OutgoingEvent],
    ) -> Result<bool, Error> {
        let record = Update::builder()
            .table_name(&self.table)
            .set_key(Some(record_key(service)))
            .update_expression("SET build_id = :b")
            .condition_expression(
                "rev = :rev AND (attribute_not_exists(build_id) OR build_id = :b)",
            )
            .expression_attribute_values(":b", s(build_id))
            .expression_attribute_values(":rev", n(rev))
            .build()
            .map_err(invalid)?;
        self.settle(Some(record), lease, owes).await
    }

    /// Releases the hold of a rollback that could not start (its project refused), with the
    /// events that say so: one transaction.
    pub async fn refused(
        &self,
        service: &ServiceName,
        rev: u64,
        lease: &Lease,
        owes: &[OutgoingEvent],
    ) -> Result<bool, Error> {
        let record = Update::builder()
            .table_name(&self.table)
            .set_key(Some(record_key(service)))
            .update_expression("SET held_until = :zero")
            .condition_expression("rev = :rev")
            .expression_attribute_values(":zero", n(0))
            .expression_attribute_values(":rev", n(rev))
            .build()
            .map_err(invalid)?;
        self.settle(Some(record), lease, owes).await
    }

    /// Settles an alarm change this invocation holds: what it owes, and `with` (the rollback
    /// record's move), in one transaction.
    async fn settle(
        &self,
        with: Option<Update>,
        lease: &Lease,
        owes: &[OutgoingEvent],
    ) -> Result<bool, Error> {
        let change = Update::builder()
            .table_name(&self.table)
            .set_key(Some(lease.key.clone()))
            .update_expression("SET outbox = :outbox, settled = :t")
            .condition_expression(format!(
                "{} AND attribute_not_exists(settled)",
                outbox::MINE
            ))
            .expression_attribute_values(":outbox", outbox::outbox_value(owes)?)
            .expression_attribute_values(":t", AttributeValue::Bool(true))
            .expression_attribute_values(":lease_id", s(&lease.id))
            .build()
            .map_err(invalid)?;
        let mut tx = self
            .client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().update(change).build());
        if let Some(u) = with {
            tx = tx.transact_items(TransactWriteItem::builder().update(u).build());
        }
        if transacted(tx.send().await)? {
            return Ok(true);
        }
        // Only the holder of the lease settles the change: settled under this lease, it was
        // this transaction, applied and its answer lost. Settled by another and still owing its
        // events, this delivery is not done until they are said: retried, never answered done
        // (alarm-rollback has no sweep; the long soak's run 3 found a change never said).
        match self
            .outbox
            .written_under(lease, |item| item.contains_key("settled"))
            .await?
        {
            outbox::Written::Mine => Ok(true),
            outbox::Written::Owed => Err(Error::InProgress(
                "the alarm change's events are being said by another invocation".into(),
            )),
            outbox::Written::Theirs => Ok(false),
        }
    }

    /// Takes over an alarm change whose effect is not done and whose lease has lapsed (or was
    /// let go): `None` when another invocation has it, or it is settled.
    pub async fn take(&self, pk: &str, sk: &str, now: u64) -> Result<Option<Lease>, Error> {
        let taken = self
            .outbox
            .take(
                &change_key(pk, sk),
                now,
                "attribute_not_exists(settled)",
                &[],
            )
            .await?;
        Ok(taken.map(|(lease, _)| lease))
    }

    /// A rollback build finished: the hold is released, on success the restored version goes
    /// live (from the history as `read`), and the events that say so are owed, in one
    /// transaction. `false` when that build's completion was already recorded, or the history
    /// moved since it was read.
    pub async fn finish(&self, f: &Finish<'_>) -> Result<bool, Error> {
        let record = Update::builder()
            .table_name(&self.table)
            .set_key(Some(record_key(f.service)))
            .update_expression(
                "SET held_until = :zero, finished = :b, finished_at = :now, succeeded = :ok, outbox = :outbox, lease_until = :lease, lease_id = :lease_id",
            )
            .condition_expression(
                "build_id = :b AND (attribute_not_exists(finished) OR finished <> :b)",
            )
            .expression_attribute_values(":zero", n(0))
            .expression_attribute_values(":b", s(f.build_id))
            .expression_attribute_values(":now", n(f.now))
            .expression_attribute_values(":ok", AttributeValue::Bool(f.live.is_some()))
            .expression_attribute_values(":outbox", outbox::outbox_value(f.owes)?)
            .expression_attribute_values(":lease", n(f.lease.until))
            .expression_attribute_values(":lease_id", s(&f.lease.id))
            .build()
            .map_err(invalid)?;
        let mut tx = self
            .client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().update(record).build());
        if let Some(v) = f.live {
            tx = tx.transact_items(
                TransactWriteItem::builder()
                    .update(history::go_live_from(&self.table, f.service, v, f.read)?)
                    .build(),
            );
            // The commit it replaced is known bad from now on, an approval of it to be newer.
            if let Some(bad) = &v.replaced {
                tx = tx.transact_items(
                    TransactWriteItem::builder()
                        .update(history::known_bad_mark(
                            &self.table,
                            f.service,
                            bad,
                            v.at,
                            &v.build_id,
                        )?)
                        .build(),
                );
            }
        }
        transacted(tx.send().await)
    }
}

/// A rollback build's completion, as written.
pub struct Finish<'a> {
    pub service: &'a ServiceName,
    pub build_id: &'a str,
    /// The restored version, when the build succeeded.
    pub live: Option<&'a Version>,
    pub read: &'a History,
    pub owes: &'a [OutgoingEvent],
    pub lease: &'a Lease,
    pub now: u64,
}

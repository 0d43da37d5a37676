//! The evidence ledger: each admitted signal its own item beside its candidate (or, for a scan
//! of an image no build has reported yet, beside the image), put once on its key and never
//! updated; the candidate counts its entries (`seq`) in the same transaction, and one query
//! reads the candidate and its whole ledger back.

use aws_sdk_dynamodb::types::{
    AttributeValue, ConditionCheck, Put, ReturnValue, TransactWriteItem, Update,
};
use eddo::Error;
use eddo::dynamo::{Item, attr, cancelled, get, key, n, s, transacted};
use eddo::names::{CommitSha, ImageDigest, ServiceName};
use eddo::policy::SignalKind;

use super::{CANDIDATE_DAYS, Store, candidate, candidate_key};
use crate::candidate::{Candidate, Recorded, State};

/// What separates a candidate's or an image's key from its evidence entries' keys.
const EVIDENCE: &str = "#evidence#";

/// The sort key of one evidence entry under `parent` (a commit, or a digest): one per event and
/// kind (a check run can report two kinds of one service).
fn evidence_sk(parent: &str, r: &Recorded) -> String {
    format!("{parent}{EVIDENCE}{}#{}", r.kind, r.evidence.event_id)
}

/// An evidence entry as an item: its JSON, and the fields a person or a test reads plainly.
fn evidence_item(pk: AttributeValue, sk: String, r: &Recorded) -> Result<Item, Error> {
    let mut item = key(pk, s(&sk));
    item.insert(
        "entry".into(),
        s(&serde_json::to_string(r).map_err(Error::Encode)?),
    );
    item.insert("kind".into(), s(r.kind.as_str()));
    item.insert("event_id".into(), s(&r.evidence.event_id));
    item.insert("source".into(), s(&r.evidence.source));
    item.insert("sender".into(), s(&r.evidence.sender));
    item.insert("passed".into(), AttributeValue::Bool(r.verdict.passed()));
    item.insert("recorded_at".into(), n(r.at));
    Ok(item)
}

fn entry(item: &Item) -> Result<Recorded, Error> {
    let bad = || {
        Error::InvalidEvent(format!(
            "evidence entry {} is not readable",
            attr(item, "sk").unwrap_or_default()
        ))
    };
    serde_json::from_str(attr(item, "entry").ok_or_else(bad)?).map_err(|_| bad())
}

/// The key of an image's record: which commit built it, or a scan waiting for that.
fn image_key(service: &ServiceName, digest: &ImageDigest) -> Item {
    key(s(&format!("digest#{service}")), s(digest.as_str()))
}

/// A candidate from its record and its ledger's items (in any order).
fn candidate_with(item: &Item, entries: &[Item]) -> Result<Candidate, Error> {
    let mut c = candidate(item)?;
    c.ledger = entries.iter().map(entry).collect::<Result<_, _>>()?;
    c.ledger.sort_by_key(|r| (r.at, r.evidence.time));
    Ok(c)
}

/// How recording a signal went.
#[derive(Debug)]
pub enum Record {
    /// In the ledger now, and the candidate as it then is.
    Recorded(Box<Candidate>),
    /// Its event was recorded already (a redelivery, or an archive replay): nothing changed.
    Again(Box<Candidate>),
    /// The signal is about another image than the one the candidate's build reported.
    OtherImage { built: Option<ImageDigest> },
}

/// How parking a scan of an image no build has reported went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parked {
    /// Kept with the image, for when a build reports it (or kept already: a redelivery).
    Kept,
    /// A build reported the image meanwhile: record it on that build's candidate instead.
    Linked,
}

impl Store {
    /// The put of an evidence entry: once, on its key (a redelivery finds it there).
    fn put_once(&self, item: Item) -> Result<Put, Error> {
        Put::builder()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk)")
            .build()
            .map_err(|e| Error::InvalidEvent(e.to_string()))
    }

    /// Appends a signal to its candidate's ledger, creating the candidate with its deadline on
    /// the first signal, and returns the candidate and its ledger as they then are. The entry is
    /// put once, keyed by its event and kind; the candidate's `seq` counts the entries in the
    /// same transaction, so a decision fenced on it sees every entry written before it. The
    /// candidate's image is the first digest its build reported; a signal about another image is
    /// refused and changes nothing.
    pub async fn record(
        &self,
        service: &ServiceName,
        commit: &CommitSha,
        recorded: &Recorded,
        digest: Option<&ImageDigest>,
        correlation_id: &str,
        deadline_minutes: u32,
    ) -> Result<Record, Error> {
        let now = recorded.at;
        let deadline = now + u64::from(deadline_minutes) * 60;
        let (pk, sk) = candidate_key(service, commit);
        let put = self.put_once(evidence_item(
            pk.clone(),
            evidence_sk(commit.as_str(), recorded),
            recorded,
        )?)?;
        let mut expr = String::from(
            "SET service = :service, \
             first_at = if_not_exists(first_at, :now), \
             deadline = if_not_exists(deadline, :deadline), \
             correlation_id = if_not_exists(correlation_id, :corr), \
             #state = if_not_exists(#state, :waiting), \
             open_pk = if_not_exists(closed, :open), \
             open_sk = if_not_exists(open_sk, :open_sk), \
             expires_at = if_not_exists(expires_at, :expires)",
        );
        let mut update = Update::builder()
            .table_name(&self.table)
            .key("pk", pk)
            .key("sk", sk)
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":service", s(service.as_str()))
            .expression_attribute_values(":now", n(now))
            .expression_attribute_values(":deadline", n(deadline))
            .expression_attribute_values(":corr", s(correlation_id))
            .expression_attribute_values(":waiting", s(State::Waiting.as_str()))
            .expression_attribute_values(":open", s(&super::open_pk(commit)))
            .expression_attribute_values(
                ":open_sk",
                s(&format!("{deadline:012}#{service}#{commit}")),
            )
            .expression_attribute_values(":expires", n(now + CANDIDATE_DAYS * 86_400))
            .expression_attribute_values(":one", n(1));
        if let Some(d) = digest {
            if recorded.kind == SignalKind::Build {
                expr.push_str(", digest = if_not_exists(digest, :digest)");
            }
            update = update
                .condition_expression("attribute_not_exists(digest) OR digest = :digest")
                .expression_attribute_values(":digest", s(d.as_str()));
        }
        expr.push_str(" ADD seq :one");
        let update = update
            .update_expression(expr)
            .build()
            .map_err(|e| Error::InvalidEvent(e.to_string()))?;
        let result = self
            .client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().put(put).build())
            .transact_items(TransactWriteItem::builder().update(update).build())
            .send()
            .await;
        let again = match result {
            Ok(_) => false,
            Err(e) => match cancelled(&e).as_deref() {
                Some([true, ..]) => true,
                Some([false, true]) => {
                    let built = self.get(service, commit).await?.and_then(|c| c.digest);
                    return Ok(Record::OtherImage { built });
                }
                _ => return transacted::<()>(Err(e)).map(|_| Record::OtherImage { built: None }),
            },
        };
        let c = self
            .get(service, commit)
            .await?
            .ok_or_else(|| Error::InvalidEvent(format!("candidate {service} {commit} vanished")))?;
        Ok(if again {
            Record::Again(Box::new(c))
        } else {
            Record::Recorded(Box::new(c))
        })
    }

    /// A candidate and its whole ledger: one strongly consistent query.
    pub async fn get(
        &self,
        service: &ServiceName,
        commit: &CommitSha,
    ) -> Result<Option<Candidate>, Error> {
        let (pk, _) = candidate_key(service, commit);
        let items = self.query_under(pk, commit.as_str()).await?;
        let (record, entries): (Vec<Item>, Vec<Item>) = items
            .into_iter()
            .partition(|i| attr(i, "sk") == Some(commit.as_str()));
        record
            .first()
            .map(|r| candidate_with(r, &entries))
            .transpose()
    }

    /// Every item of partition `pk` whose sort key starts with `prefix`, strongly consistent.
    async fn query_under(&self, pk: AttributeValue, prefix: &str) -> Result<Vec<Item>, Error> {
        let mut items = Vec::new();
        let mut start = None;
        loop {
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
                .expression_attribute_values(":pk", pk.clone())
                .expression_attribute_values(":prefix", s(prefix))
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| Error::aws("DynamoDB", "Query", e))?;
            items.extend(out.items.unwrap_or_default());
            match out.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => return Ok(items),
            }
        }
    }

    /// The commit `digest` was built from, if a build reported it.
    pub async fn commit_of(
        &self,
        service: &ServiceName,
        digest: &ImageDigest,
    ) -> Result<Option<CommitSha>, Error> {
        let item = get(&self.client, &self.table, image_key(service, digest)).await?;
        Ok(item
            .as_ref()
            .and_then(|i| attr(i, "commit_sha"))
            .and_then(|c| CommitSha::parse(c).ok()))
    }

    /// Notes that `digest` was built from `commit`, and returns every scan of it that arrived
    /// first, each sender's, in full. They stay parked (until their TTL): recording them on the
    /// candidate is keyed by their events, so a retry after a crash records nothing twice. A
    /// scan parks only while no build has reported the image ([`Store::park`]), and this reads
    /// after it is noted, so none is missed.
    pub async fn link_digest(
        &self,
        service: &ServiceName,
        digest: &ImageDigest,
        commit: &CommitSha,
        now: u64,
    ) -> Result<Vec<Recorded>, Error> {
        self.client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(image_key(service, digest)))
            .update_expression("SET commit_sha = :c, expires_at = :e")
            .expression_attribute_values(":c", s(commit.as_str()))
            .expression_attribute_values(":e", n(now + CANDIDATE_DAYS * 86_400))
            .return_values(ReturnValue::None)
            .send()
            .await
            .map_err(|e| Error::aws("DynamoDB", "UpdateItem", e))?;
        let prefix = format!("{digest}{EVIDENCE}");
        self.query_under(s(&format!("digest#{service}")), &prefix)
            .await?
            .iter()
            .map(entry)
            .collect()
    }

    /// Keeps a scan of an image no build has reported yet, beside every other scan of it, for
    /// when one does: written only while no build has (else [`Parked::Linked`]).
    pub async fn park(
        &self,
        service: &ServiceName,
        digest: &ImageDigest,
        recorded: &Recorded,
    ) -> Result<Parked, Error> {
        let mut item = evidence_item(
            s(&format!("digest#{service}")),
            evidence_sk(digest.as_str(), recorded),
            recorded,
        )?;
        item.insert(
            "expires_at".into(),
            n(recorded.at + CANDIDATE_DAYS * 86_400),
        );
        let put = self.put_once(item)?;
        let unbuilt = ConditionCheck::builder()
            .table_name(&self.table)
            .set_key(Some(image_key(service, digest)))
            .condition_expression("attribute_not_exists(commit_sha)")
            .build()
            .map_err(|e| Error::InvalidEvent(e.to_string()))?;
        let result = self
            .client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().put(put).build())
            .transact_items(
                TransactWriteItem::builder()
                    .condition_check(unbuilt)
                    .build(),
            )
            .send()
            .await;
        match result {
            Ok(_) => Ok(Parked::Kept),
            Err(e) => match cancelled(&e).as_deref() {
                Some([_, true]) => Ok(Parked::Linked),
                Some([true, false]) => Ok(Parked::Kept),
                _ => transacted::<()>(Err(e)).map(|_| Parked::Kept),
            },
        }
    }
}

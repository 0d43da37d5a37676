//! The tenant registry in the eddo table: one item per tenant, `pk = tenant#<id>`, `sk = tenant`.
//!
//! Every change of a tenant is a whole new item written on the condition that the registry still
//! holds the revision (`rev`) it was decided from, so two requests, or a request and a build's
//! completion, never both act. Each change carries the lease of the invocation that made it and
//! the events that say what happened, in [`eddo::outbox`]'s attributes: an invocation that dies
//! before sending them leaves them for the next event about the tenant, once its lease lapses.

use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem};
use eddo::Error;
use eddo::codebuild::BuildRequest;
use eddo::dynamo::{Item, attr, cancelled, get, key, n, num, s, transacted, written};
use eddo::names::TenantId;
use eddo::outbox::{self, Lease, Outbox};
use eddo::publish::{OutgoingEvent, Publisher};
use serde::{Deserialize, Serialize};

use crate::decide::{Facts, Job, State};

pub const TENANT_SK: &str = "tenant";

/// How a build ended that did not succeed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    pub build_id: Option<String>,
    pub status: String,
    pub failed_phase: Option<String>,
    pub logs_url: Option<String>,
    pub reason: String,
}

/// A tenant as the registry holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tenant {
    pub id: TenantId,
    pub state: State,
    pub tier: String,
    pub rev: u64,
    pub job: Job,
    /// 1 for the first build of the job, 2 for its first retry, ...
    pub attempt: u32,
    pub build_id: Option<String>,
    /// The build variables from the request that registered the tenant.
    pub values: Vec<(String, String)>,
    /// The outputs `Tenant Provisioned` carried (the policy's allowed ones only).
    pub outputs: Vec<(String, String)>,
    /// sbt-aws's `tenantRegistrationId`, and whether the requester speaks sbt-aws.
    pub registration_id: Option<String>,
    pub sbt: bool,
    pub correlation_id: String,
    /// The event that asked for the current job.
    pub causation_id: String,
    pub last_failure: Option<Failure>,
    /// The events this revision has still to publish: eddo's, and the sbt-aws answer beside it
    /// (its outbox; empty once published).
    pub pending: Vec<OutgoingEvent>,
    pub lease_until: u64,
    /// The lease's id: what says the revision is still this invocation's.
    pub lease_id: String,
    pub updated_at: u64,
    /// The decision the current job's build carries out (`EDDO_DECISION_ID`), and the build it
    /// froze when it was written: every attempt to start it sends that request.
    pub decision: String,
    pub intent: Option<BuildRequest>,
    /// When the current job was decided: how far back a resumed start looks for its build.
    pub decided_at: u64,
}

impl Tenant {
    pub fn facts(&self, now: u64) -> Facts<'_> {
        Facts {
            state: self.state,
            tier: &self.tier,
            announced: self.pending.is_empty(),
            leased: outbox::leased(self.lease_until, now),
            job: self.job,
            build_id: self.build_id.as_deref(),
        }
    }

    /// The next revision of this tenant, leased to the invocation making it.
    pub fn next(&self, now: u64) -> Tenant {
        let lease = Lease::new(tenant_key(&self.id), now);
        Tenant {
            rev: self.rev + 1,
            lease_until: lease.until,
            lease_id: lease.id,
            updated_at: now,
            pending: vec![],
            ..self.clone()
        }
    }

    fn from_item(item: &Item) -> Option<Tenant> {
        fn json<T: serde::de::DeserializeOwned>(item: &Item, k: &str) -> Option<T> {
            attr(item, k).and_then(|j| serde_json::from_str(j).ok())
        }
        let text = |k: &str| attr(item, k).map(str::to_string);
        let flag = |k: &str| {
            item.get(k)
                .and_then(|v| v.as_bool().ok())
                .copied()
                .unwrap_or(false)
        };
        Some(Tenant {
            id: TenantId::parse(attr(item, "tenant_id")?).ok()?,
            state: State::parse(attr(item, "state")?)?,
            tier: text("tier")?,
            rev: num(item, "rev")?,
            job: Job::parse(attr(item, "job")?)?,
            attempt: num(item, "attempt")
                .and_then(|a| u32::try_from(a).ok())
                .unwrap_or(1),
            build_id: text("build_id"),
            values: json(item, "values").unwrap_or_default(),
            outputs: json(item, "outputs").unwrap_or_default(),
            registration_id: text("registration_id"),
            sbt: flag("sbt"),
            correlation_id: text("correlation_id").unwrap_or_default(),
            causation_id: text("causation_id").unwrap_or_default(),
            last_failure: json(item, "last_failure"),
            pending: outbox::owed(item).ok()?,
            lease_until: outbox::lease_of(item),
            lease_id: outbox::lease_id_of(item).to_string(),
            updated_at: num(item, "updated_at").unwrap_or(0),
            decision: text("decision").unwrap_or_default(),
            intent: json(item, "intent"),
            decided_at: num(item, "decided_at").unwrap_or(0),
        })
    }
}

fn json<T: Serialize>(v: &T) -> Result<String, Error> {
    serde_json::to_string(v).map_err(Error::Encode)
}

pub fn tenant_pk(id: &TenantId) -> AttributeValue {
    s(&format!("tenant#{id}"))
}

/// How long a request's claim is kept: past EventBridge's 24 hours of retries and the
/// dead-letter queue's 14 days, so a redrive of a request already acted on changes nothing.
pub const REQUEST_CLAIM_DAYS: u64 = 30;

/// How a request's revision and claim were written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claimed {
    Written,
    /// The tenant moved since it was read: decide again.
    Moved,
    /// The request was acted on before.
    Before,
}

/// The key of a request's claim.
fn claim_key(request_id: &str) -> Item {
    key(s(&format!("tenant#request#{request_id}")), s("claim"))
}

/// The condition that the registry still holds revision `from`, with its values.
fn revision(from: Option<u64>) -> (&'static str, Vec<(&'static str, AttributeValue)>) {
    match from {
        None => ("attribute_not_exists(pk)", vec![]),
        Some(rev) => ("rev = :from", vec![(":from", n(rev))]),
    }
}

/// A tenant's record as the registry keeps it.
fn item(tenant: &Tenant) -> Result<Item, Error> {
    let mut put = Item::new();
    put.insert("pk".into(), tenant_pk(&tenant.id));
    put.insert("sk".into(), s(TENANT_SK));
    put.insert("tenant_id".into(), s(tenant.id.as_str()));
    put.insert("state".into(), s(tenant.state.as_str()));
    put.insert("tier".into(), s(&tenant.tier));
    put.insert("rev".into(), n(tenant.rev));
    put.insert("job".into(), s(tenant.job.as_str()));
    put.insert("attempt".into(), n(u64::from(tenant.attempt)));
    put.insert("values".into(), s(&json(&tenant.values)?));
    put.insert("outputs".into(), s(&json(&tenant.outputs)?));
    put.insert("sbt".into(), AttributeValue::Bool(tenant.sbt));
    put.insert("correlation_id".into(), s(&tenant.correlation_id));
    put.insert("causation_id".into(), s(&tenant.causation_id));
    put.insert(outbox::LEASE_UNTIL.into(), n(tenant.lease_until));
    put.insert(outbox::LEASE_ID.into(), s(&tenant.lease_id));
    put.insert("updated_at".into(), n(tenant.updated_at));
    put.insert("decided_at".into(), n(tenant.decided_at));
    if !tenant.decision.is_empty() {
        put.insert("decision".into(), s(&tenant.decision));
    }
    if let Some(i) = &tenant.intent {
        put.insert("intent".into(), s(&json(i)?));
    }
    if !tenant.pending.is_empty() {
        put.insert(
            outbox::OUTBOX.into(),
            outbox::outbox_value(&tenant.pending)?,
        );
    }
    if let Some(b) = &tenant.build_id {
        put.insert("build_id".into(), s(b));
    }
    if let Some(r) = &tenant.registration_id {
        put.insert("registration_id".into(), s(r));
    }
    if let Some(f) = &tenant.last_failure {
        put.insert("last_failure".into(), s(&json(f)?));
    }
    Ok(put)
}

#[derive(Clone)]
pub struct Store {
    client: aws_sdk_dynamodb::Client,
    table: String,
    outbox: Outbox,
}

/// The key of a tenant's record.
pub fn tenant_key(id: &TenantId) -> Item {
    key(tenant_pk(id), s(TENANT_SK))
}

impl Tenant {
    /// The lease this revision was written with.
    pub fn lease(&self) -> Lease {
        Lease {
            key: tenant_key(&self.id),
            until: self.lease_until,
            id: self.lease_id.clone(),
        }
    }
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

    /// The tenant's record, if the registry has it. An item this version cannot read is an
    /// error, not "unknown": treating it as new could provision the tenant twice.
    pub async fn get(&self, id: &TenantId) -> Result<Option<Tenant>, Error> {
        match get(&self.client, &self.table, key(tenant_pk(id), s(TENANT_SK))).await? {
            None => Ok(None),
            Some(item) => Tenant::from_item(&item).map(Some).ok_or_else(|| {
                Error::InvalidEvent(format!(
                    "the registry's record of tenant {id} is unreadable"
                ))
            }),
        }
    }

    /// Writes `tenant` if the registry still holds revision `from` (`None`: no record yet).
    /// `false`: someone else changed the tenant first.
    pub async fn put(&self, tenant: &Tenant, from: Option<u64>) -> Result<bool, Error> {
        let (condition, values) = revision(from);
        let mut put = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item(tenant)?))
            .condition_expression(condition);
        for (k, v) in values {
            put = put.expression_attribute_values(k, v);
        }
        written(put.send().await, "PutItem")
    }

    /// [`Store::put`] of the revision a request starts, with the request's claim (its event id),
    /// in one transaction: a request is acted on once, however often EventBridge, Lambda or a
    /// redrive from the dead-letter queue delivers it.
    pub async fn put_claimed(
        &self,
        tenant: &Tenant,
        from: Option<u64>,
        request_id: &str,
        now: u64,
    ) -> Result<Claimed, Error> {
        let (condition, values) = revision(from);
        let record = Put::builder()
            .table_name(&self.table)
            .set_item(Some(item(tenant)?))
            .condition_expression(condition)
            .set_expression_attribute_values((!values.is_empty()).then(|| {
                values
                    .into_iter()
                    .map(|(k, v)| (k.to_string(), v))
                    .collect()
            }))
            .build()
            .map_err(|e| Error::InvalidEvent(e.to_string()))?;
        let claim = Put::builder()
            .table_name(&self.table)
            .set_item(Some(claim_key(request_id)))
            .item("tenant_id", s(tenant.id.as_str()))
            .item("job", s(tenant.job.as_str()))
            .item("decision", s(&tenant.decision))
            .item("expires_at", n(now + REQUEST_CLAIM_DAYS * 86_400))
            .condition_expression("attribute_not_exists(pk)")
            .build()
            .map_err(|e| Error::InvalidEvent(e.to_string()))?;
        let result = self
            .client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().put(record).build())
            .transact_items(TransactWriteItem::builder().put(claim).build())
            .send()
            .await;
        if result.is_ok() {
            return Ok(Claimed::Written);
        }
        let reasons = result.as_ref().err().and_then(cancelled);
        match reasons.as_deref() {
            // The claim is there: this request was acted on before, unless it was this
            // invocation's own write, whose answer was lost.
            Some([_, true]) => {
                let mine = self
                    .claimed(request_id)
                    .await?
                    .is_some_and(|d| d == tenant.decision);
                Ok(if mine {
                    Claimed::Written
                } else {
                    Claimed::Before
                })
            }
            Some([true, false]) => Ok(Claimed::Moved),
            _ => transacted(result).map(|_| Claimed::Moved),
        }
    }

    /// The decision a request's claim names, if the request was claimed.
    pub async fn claimed(&self, request_id: &str) -> Result<Option<String>, Error> {
        Ok(get(&self.client, &self.table, claim_key(request_id))
            .await?
            .map(|i| attr(&i, "decision").unwrap_or_default().to_string()))
    }

    /// Takes over a tenant whose lease has lapsed at revision `rev`: the tenant as it now is,
    /// leased to this invocation. `None`: another invocation has it, or it moved on.
    pub async fn take(&self, id: &TenantId, rev: u64, now: u64) -> Result<Option<Tenant>, Error> {
        let taken = self
            .outbox
            .take(&tenant_key(id), now, "rev = :rev", &[(":rev", n(rev))])
            .await?;
        Ok(taken.and_then(|(_, item)| Tenant::from_item(&item)))
    }

    /// Publishes a revision's events and frees the tenant (unless a later revision replaced it:
    /// its own events are its business).
    pub async fn announce(&self, tenant: &Tenant) -> Result<Vec<String>, Error> {
        self.outbox.send(&tenant.lease(), &tenant.pending).await
    }

    /// Passes `result` through, giving the tenant back when it is an error.
    pub async fn guard<T>(&self, tenant: &Tenant, result: Result<T, Error>) -> Result<T, Error> {
        self.outbox.guard(&tenant.lease(), result).await
    }
}

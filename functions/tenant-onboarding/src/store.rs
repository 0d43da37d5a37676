//! The tenant registry in the eddo table: one item per tenant, `pk = tenant#<id>`, `sk = tenant`.
//!
//! Every change of a tenant is a whole new item written on the condition that the registry still
//! holds the revision (`rev`) it was decided from, so two requests, or a request and a build's
//! completion, never both act. Each change carries the lease of the invocation that made it and
//! the events that say what happened, in [`eddo::outbox`]'s attributes: an invocation that dies
//! before sending them leaves them for the next event about the tenant, once its lease lapses.

use aws_sdk_dynamodb::types::AttributeValue;
use eddo::Error;
use eddo::dynamo::{Item, attr, get, key, n, num, s, written};
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
    pub updated_at: u64,
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
        Tenant {
            rev: self.rev + 1,
            lease_until: outbox::lease_from(now),
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
            updated_at: num(item, "updated_at").unwrap_or(0),
        })
    }
}

fn json<T: Serialize>(v: &T) -> Result<String, Error> {
    serde_json::to_string(v).map_err(Error::Encode)
}

pub fn tenant_pk(id: &TenantId) -> AttributeValue {
    s(&format!("tenant#{id}"))
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
        let mut put = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", tenant_pk(&tenant.id))
            .item("sk", s(TENANT_SK))
            .item("tenant_id", s(tenant.id.as_str()))
            .item("state", s(tenant.state.as_str()))
            .item("tier", s(&tenant.tier))
            .item("rev", n(tenant.rev))
            .item("job", s(tenant.job.as_str()))
            .item("attempt", n(u64::from(tenant.attempt)))
            .item("values", s(&json(&tenant.values)?))
            .item("outputs", s(&json(&tenant.outputs)?))
            .item("sbt", AttributeValue::Bool(tenant.sbt))
            .item("correlation_id", s(&tenant.correlation_id))
            .item("causation_id", s(&tenant.causation_id))
            .item(outbox::LEASE_UNTIL, n(tenant.lease_until))
            .item("updated_at", n(tenant.updated_at));
        if !tenant.pending.is_empty() {
            put = put.item(outbox::OUTBOX, outbox::outbox_value(&tenant.pending)?);
        }
        if let Some(b) = &tenant.build_id {
            put = put.item("build_id", s(b));
        }
        if let Some(r) = &tenant.registration_id {
            put = put.item("registration_id", s(r));
        }
        if let Some(f) = &tenant.last_failure {
            put = put.item("last_failure", s(&json(f)?));
        }
        put = match from {
            None => put.condition_expression("attribute_not_exists(pk)"),
            Some(rev) => put
                .condition_expression("rev = :from")
                .expression_attribute_values(":from", n(rev)),
        };
        written(put.send().await, "PutItem")
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

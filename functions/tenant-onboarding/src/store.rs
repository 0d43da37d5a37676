//! The tenant registry in the eddo table: one item per tenant, `pk = tenant#<id>`, `sk = tenant`.
//!
//! Every change of a tenant is a whole new item written on the condition that the registry still
//! holds the revision (`rev`) it was decided from, so two requests, or a request and a build's
//! completion, never both act. Each change carries the events that say what happened
//! (`pending`) until they are published (`announced`): an invocation that dies between the two
//! leaves them for the next event about the tenant to publish, once its lease lapses.

use aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder;
use aws_sdk_dynamodb::types::AttributeValue;
use eddo::Error;
use eddo::dynamo::{Item, attr, get, key, n, num, s, written};
use eddo::names::TenantId;
use eddo::publish::OutgoingEvent;
use serde::{Deserialize, Serialize};

use crate::decide::{Facts, Job, State};

pub const TENANT_SK: &str = "tenant";

/// How long the invocation that changed a tenant has it to itself (the function times out at
/// 30 s): a redelivery meanwhile leaves it alone; one after finishes what was left undone.
pub const LEASE_SECS: u64 = 45;

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
    /// The events this revision has still to publish: eddo's, and the sbt-aws answer beside it.
    pub pending: Vec<OutgoingEvent>,
    pub announced: bool,
    pub lease_until: u64,
    pub updated_at: u64,
}

impl Tenant {
    pub fn facts(&self, now: u64) -> Facts<'_> {
        Facts {
            state: self.state,
            tier: &self.tier,
            announced: self.announced,
            leased: self.lease_until > now,
            build_id: self.build_id.as_deref(),
        }
    }

    /// The next revision of this tenant, leased to the invocation making it.
    pub fn next(&self, now: u64) -> Tenant {
        Tenant {
            rev: self.rev + 1,
            lease_until: now + LEASE_SECS,
            updated_at: now,
            announced: false,
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
            pending: json(item, "pending").unwrap_or_default(),
            announced: flag("announced"),
            lease_until: num(item, "lease_until").unwrap_or(0),
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
}

impl Store {
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Store {
        Store {
            client,
            table: table.into(),
        }
    }

    /// An update of the tenant's record.
    fn update(&self, id: &TenantId) -> UpdateItemFluentBuilder {
        self.client
            .update_item()
            .table_name(&self.table)
            .key("pk", tenant_pk(id))
            .key("sk", s(TENANT_SK))
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
            .item("pending", s(&json(&tenant.pending)?))
            .item("announced", AttributeValue::Bool(tenant.announced))
            .item("lease_until", n(tenant.lease_until))
            .item("updated_at", n(tenant.updated_at));
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

    /// Takes over a tenant whose lease has lapsed at revision `rev`. `false`: another invocation
    /// has it, or it moved on.
    pub async fn take(&self, id: &TenantId, rev: u64, now: u64) -> Result<bool, Error> {
        let result = self
            .update(id)
            .update_expression("SET lease_until = :until")
            .condition_expression("rev = :rev AND lease_until <= :now")
            .expression_attribute_values(":until", n(now + LEASE_SECS))
            .expression_attribute_values(":rev", n(rev))
            .expression_attribute_values(":now", n(now))
            .send()
            .await;
        written(result, "UpdateItem")
    }

    /// Gives a tenant back after a failure, so the retry need not wait for the lease.
    pub async fn let_go(&self, id: &TenantId, rev: u64) -> Result<(), Error> {
        let result = self
            .update(id)
            .update_expression("SET lease_until = :zero")
            .condition_expression("rev = :rev")
            .expression_attribute_values(":zero", n(0))
            .expression_attribute_values(":rev", n(rev))
            .send()
            .await;
        written(result, "UpdateItem").map(|_| ())
    }

    /// Notes that revision `rev`'s events were published, and frees the tenant.
    pub async fn announced(&self, id: &TenantId, rev: u64) -> Result<(), Error> {
        let result = self
            .update(id)
            .update_expression("SET announced = :t, lease_until = :zero, pending = :none")
            .condition_expression("rev = :rev")
            .expression_attribute_values(":t", AttributeValue::Bool(true))
            .expression_attribute_values(":zero", n(0))
            .expression_attribute_values(":none", s("[]"))
            .expression_attribute_values(":rev", n(rev))
            .send()
            .await;
        // A later revision replaced this one: its own events are its business.
        written(result, "UpdateItem").map(|_| ())
    }
}

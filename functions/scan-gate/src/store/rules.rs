//! What a deployment protection rule is owed, beside the candidate: `pk = rule#<service>`,
//! `sk = <commit>#<run id>`, one per workflow run waiting on the service's environment. The
//! record is written when the rule arrives (a redelivery finds it and adds nothing); its answer
//! is frozen in it once, from the candidate's decision (or the deadline), before it is sent, so
//! every attempt sends the same; it is sent under the outbox's lease until GitHub takes it. While
//! unanswered it is in the sweep's list of forge updates owed (`open_pk = checks#<shard>`,
//! `open_sk` = not before when), waiting for the decision or the deadline, or for GitHub.

use eddo::Error;
use eddo::dynamo::{Item, attr, key, n, num, s, written};
use eddo::github::Review;
use eddo::names::{CommitSha, ServiceName};
use eddo::outbox::Lease;

use super::checks::checks_pk;
use super::{DECIDED_DAYS, Store};

/// The partition of `service`'s rules.
pub const PREFIX: &str = "rule#";

/// The key of the rule of `service`'s `commit` for workflow run `run_id`.
pub fn rule_key(service: &ServiceName, commit: &CommitSha, run_id: u64) -> Item {
    key(
        s(&format!("{PREFIX}{service}")),
        s(&format!("{commit}#{run_id}")),
    )
}

fn rules_sk(not_before: u64, service: &ServiceName, commit: &CommitSha, run_id: u64) -> String {
    format!("{not_before:012}#{service}#{commit}#{run_id}")
}

/// A rule as it arrived.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Asked {
    pub service: ServiceName,
    pub commit: CommitSha,
    pub run_id: u64,
    /// `owner/name`.
    pub repo: String,
    pub environment: String,
    /// When it is rejected if no decision came first.
    pub deadline: u64,
}

/// A rule's record, as read under its lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owed {
    pub repo: String,
    pub environment: String,
    pub deadline: u64,
    /// Frozen once, then sent until GitHub takes it.
    pub answer: Option<Review>,
}

impl Owed {
    fn of(item: &Item) -> Owed {
        Owed {
            repo: attr(item, "repo").unwrap_or_default().to_string(),
            environment: attr(item, "environment").unwrap_or_default().to_string(),
            deadline: num(item, "deadline").unwrap_or_default(),
            answer: attr(item, "answer").and_then(|j| serde_json::from_str(j).ok()),
        }
    }
}

impl Store {
    /// Records a rule that arrived: `false` when it was recorded before (a redelivery).
    pub async fn ask_rule(&self, a: &Asked, now: u64) -> Result<bool, Error> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(rule_key(&a.service, &a.commit, a.run_id)))
            .update_expression(
                "SET repo = :repo, environment = :env, run_id = :run, deadline = :deadline, asked_at = :now, open_pk = :pk, open_sk = :sk, expires_at = :kept",
            )
            .condition_expression("attribute_not_exists(pk)")
            .expression_attribute_values(":repo", s(&a.repo))
            .expression_attribute_values(":env", s(&a.environment))
            .expression_attribute_values(":run", n(a.run_id))
            .expression_attribute_values(":deadline", n(a.deadline))
            .expression_attribute_values(":now", n(now))
            .expression_attribute_values(":pk", s(&checks_pk(&a.commit)))
            .expression_attribute_values(
                ":sk",
                s(&rules_sk(now, &a.service, &a.commit, a.run_id)),
            )
            .expression_attribute_values(":kept", n(now + DECIDED_DAYS * 86_400))
            .send()
            .await;
        written(result, "UpdateItem")
    }

    /// The workflow runs still owed an answer for `service`'s `commit`.
    pub async fn rules_owed(
        &self,
        service: &ServiceName,
        commit: &CommitSha,
    ) -> Result<Vec<u64>, Error> {
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk AND begins_with(sk, :commit)")
            .filter_expression("attribute_exists(open_pk)")
            .expression_attribute_values(":pk", s(&format!("{PREFIX}{service}")))
            .expression_attribute_values(":commit", s(&format!("{commit}#")))
            .send()
            .await
            .map_err(|e| Error::aws("DynamoDB", "Query", e))?;
        Ok(out
            .items()
            .iter()
            .filter_map(|i| num(i, "run_id"))
            .collect())
    }

    /// Takes the rule of `key` if it is owed an answer now and no invocation holds it.
    pub async fn take_rule(&self, key: &Item, now: u64) -> Result<Option<(Lease, Owed)>, Error> {
        Ok(self
            .outbox
            .take(
                key,
                now,
                "attribute_exists(open_pk) AND (attribute_not_exists(not_before) OR not_before <= :now)",
                &[],
            )
            .await?
            .map(|(lease, item)| (lease, Owed::of(&item))))
    }

    /// Freezes `review` as the rule's answer unless one was frozen before: the answer it has.
    pub async fn freeze_rule(&self, lease: &Lease, review: &Review) -> Result<Review, Error> {
        let item = self
            .under(
                lease,
                "SET answer = if_not_exists(answer, :a)",
                &[(
                    ":a",
                    s(&serde_json::to_string(review).map_err(Error::Encode)?),
                )],
            )
            .await?;
        Ok(Owed::of(&item).answer.unwrap_or_else(|| review.clone()))
    }

    /// GitHub took the answer (or no longer waits, `settled` says why): out of the list, the
    /// lease ended.
    pub async fn answered_rule(&self, lease: &Lease, now: u64, settled: &str) -> Result<(), Error> {
        self.under(
            lease,
            "SET answered_at = :now, settled = :why, lease_until = :zero REMOVE lease_id, not_before, open_pk, open_sk, last_error",
            &[(":now", n(now)), (":why", s(settled)), (":zero", n(0))],
        )
        .await
        .map(|_| ())
    }

    /// No decision yet: listed for the sweep at `due` (the deadline), and answered sooner by
    /// the decision, which is not held back; the lease given back.
    pub async fn wait_rule(
        &self,
        lease: &Lease,
        service: &ServiceName,
        commit: &CommitSha,
        run_id: u64,
        due: u64,
    ) -> Result<(), Error> {
        self.under(
            lease,
            "SET open_sk = :sk, lease_until = :zero REMOVE lease_id, not_before",
            &[
                (":sk", s(&rules_sk(due, service, commit, run_id))),
                (":zero", n(0)),
            ],
        )
        .await
        .map(|_| ())
    }

    /// GitHub did not take the answer: tried again from `not_before`, the lease given back.
    pub async fn later_rule(
        &self,
        lease: &Lease,
        service: &ServiceName,
        commit: &CommitSha,
        run_id: u64,
        not_before: u64,
        why: &str,
    ) -> Result<(), Error> {
        let sk = rules_sk(not_before, service, commit, run_id);
        self.later(lease, &sk, not_before, why).await
    }

    /// The service, commit and run an index entry of a rule names.
    pub fn listed_rule(pk: &str, sk: &str) -> Result<(ServiceName, CommitSha, u64), Error> {
        let bad = || Error::InvalidEvent(format!("index entry {pk}/{sk}: not a protection rule"));
        let service = pk
            .strip_prefix(PREFIX)
            .and_then(|s| ServiceName::parse(s).ok())
            .ok_or_else(bad)?;
        let (commit, run) = sk.split_once('#').ok_or_else(bad)?;
        let commit = CommitSha::parse(commit).map_err(|_| bad())?;
        let run = run.parse().map_err(|_| bad())?;
        Ok((service, commit, run))
    }
}

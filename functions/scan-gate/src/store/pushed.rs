//! When each commit a service may deploy was made, as its push said it: `pk = pushed#<service>`,
//! `sk = <commit>`, the first time kept. Read at the commit's deployment, for its lead time;
//! kept as long as a candidate is.

use eddo::Error;
use eddo::dynamo::{get, key, n, num, s};
use eddo::names::{CommitSha, ServiceName};

use super::{CANDIDATE_DAYS, Store};

fn pushed_key(service: &ServiceName, commit: &CommitSha) -> eddo::dynamo::Item {
    key(s(&format!("pushed#{service}")), s(commit.as_str()))
}

impl Store {
    /// Records when `service`'s `commit` was made, unless a push said it before.
    pub async fn pushed(
        &self,
        service: &ServiceName,
        commit: &CommitSha,
        committed_at: u64,
        now: u64,
    ) -> Result<(), Error> {
        self.client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(pushed_key(service, commit)))
            .update_expression(
                "SET committed_at = if_not_exists(committed_at, :at), expires_at = :kept",
            )
            .expression_attribute_values(":at", n(committed_at))
            .expression_attribute_values(":kept", n(now + CANDIDATE_DAYS * 86_400))
            .send()
            .await
            .map_err(|e| Error::aws("DynamoDB", "UpdateItem", e))?;
        Ok(())
    }

    /// When `service`'s `commit` was made, if a push said it.
    pub async fn committed_at(
        &self,
        service: &ServiceName,
        commit: &CommitSha,
    ) -> Result<Option<u64>, Error> {
        let item = get(&self.client, &self.table, pushed_key(service, commit)).await?;
        Ok(item.and_then(|i| num(&i, "committed_at")))
    }
}

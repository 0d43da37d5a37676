//! Deliveries that hold several events (a CDEvents batch, an alert group): each event is
//! published once under its own key, in order, every entry built before any is published.

use eddo::DetailType;
use eddo::idempotency::IdempotencyKey;
use eddo::publish::OutgoingEvent;
use serde_json::json;
use tracing::Instrument;

use crate::{Reply, Webhook, alertmanager, cdevents};

/// One event of a delivery that holds several, ready to publish once.
pub(crate) struct Each {
    key: IdempotencyKey,
    /// What the answer and the logs name it by.
    id: String,
    correlation: String,
    detail_type: DetailType,
    entry: OutgoingEvent,
    /// What the answer says of it, besides its status and event id.
    answer: serde_json::Value,
}

impl Webhook {
    /// Publishes each CDEvent of a delivery once (per sender, source and id).
    pub(crate) async fn publish_cdevents(
        &self,
        delivery: cdevents::Delivery,
        deadline: tokio::time::Instant,
    ) -> Result<Reply, Reply> {
        let sender = delivery.sender;
        let max = self.publisher.max_entry_bytes();
        let each = delivery
            .events
            .iter()
            .map(|received| {
                let (detail_type, entry, correlation) = match &received.incident {
                    // An incident is an alert: the alarm alarm-rollback reads.
                    Some(alert) => (
                        DetailType::AlertReceived,
                        alertmanager::outgoing(&alertmanager::incident(&sender), alert, max)?,
                        alertmanager::identity(&sender, alert),
                    ),
                    None => (
                        DetailType::CdEventReceived,
                        cdevents::outgoing(&sender, received, max)?,
                        received.correlation().to_string(),
                    ),
                };
                Ok(Each {
                    key: IdempotencyKey::new(
                        "webhook#cdevents",
                        &cdevents::dedupe(&sender, received),
                    ),
                    id: received.id.clone(),
                    correlation,
                    detail_type,
                    entry,
                    answer: json!({"id": received.id, "type": received.ty}),
                })
            })
            .collect::<Result<Vec<_>, Reply>>()?;
        let answers = self.publish_each(each, deadline).await?;
        Ok(Reply::new(
            202,
            json!({"status": "accepted", "sender": sender.as_str(), "events": answers}),
        ))
    }

    /// Publishes each alert of a notification once (per sender, fingerprint, status and start).
    pub(crate) async fn publish_alerts(
        &self,
        notification: alertmanager::Notification,
        deadline: tokio::time::Instant,
    ) -> Result<Reply, Reply> {
        let max = self.publisher.max_entry_bytes();
        let group = &notification.group;
        let sender = &group.sender;
        if group.truncated_alerts > 0 {
            tracing::warn!(%sender, truncated = group.truncated_alerts, "the sender left alerts of this group out (max_alerts)");
        }
        let each = notification
            .alerts
            .iter()
            .map(|alert| {
                Ok(Each {
                    key: IdempotencyKey::new(
                        "webhook#alertmanager",
                        &alertmanager::dedupe(sender, alert),
                    ),
                    id: alert.fingerprint.clone(),
                    correlation: alertmanager::identity(sender, alert),
                    detail_type: DetailType::AlertReceived,
                    entry: alertmanager::outgoing(group, alert, max)?,
                    answer: json!({"fingerprint": alert.fingerprint, "alert_status": alert.status.as_str()}),
                })
            })
            .collect::<Result<Vec<_>, Reply>>()?;
        let answers = self.publish_each(each, deadline).await?;
        Ok(Reply::new(
            202,
            json!({"status": "accepted", "sender": sender.as_str(), "alerts": answers}),
        ))
    }

    /// Publishes each event of a delivery that holds several (a CDEvents batch, an alert group)
    /// once under its own key, in order. Every entry was built before this is called: one the
    /// bus would refuse refused the delivery before any of it was published, so the sender's
    /// retry is not a retry of half a delivery. A failure answers the whole delivery with it, and
    /// the retry finds what was published already a duplicate. The answers, one per event.
    async fn publish_each(
        &self,
        each: Vec<Each>,
        deadline: tokio::time::Instant,
    ) -> Result<Vec<serde_json::Value>, Reply> {
        let mut answers = Vec::with_capacity(each.len());
        for one in each {
            let span = eddo::telemetry::correlation_span(&one.correlation);
            let (reply, event_id) = self
                .publish_once(&one.key, &one.id, &one.entry, one.detail_type, deadline)
                .instrument(span)
                .await?;
            if let Some(event_id) = &event_id {
                tracing::info!(detail_type = one.detail_type.as_str(), %event_id, "published");
            }
            let mut answer = one.answer;
            answer["status"] = reply.body["status"].clone();
            answer["event_id"] = reply.body["event_id"].clone();
            answers.push(answer);
        }
        Ok(answers)
    }
}

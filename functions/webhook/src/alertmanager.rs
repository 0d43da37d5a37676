//! Alerts in: Prometheus Alertmanager's webhook receiver (payload version 4) and Grafana
//! alerting's webhook contact point (version 1, the same payload with Grafana's fields added) send
//! a group's notification to `/alertmanager/<sender>`. Neither can sign a body; both can send
//! what their HTTP client is configured with: basic auth (the username the sender's name, the
//! password its token) or an `Authorization: Bearer` token, the token being `tokens.<sender>` of
//! the webhook secret. Each alert of the group is published once per sender, fingerprint, status
//! and start as eddo's `Alert Received`: a group's repeat (`repeat_interval`) publishes nothing,
//! an alert resolving or firing again publishes its new state.
//!
//! The payload is read as Alertmanager writes it (`notify/webhook/webhook.go`, `Message`, and
//! `template/template.go`, `Data` and `Alert`) and as Grafana does
//! (`receivers/webhook/v1/webhook.go`, `webhookMessage`); the fixtures' README cites both.

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use eddo::names::SenderName;
use eddo::publish::OutgoingEvent;
use eddo::time::{parse_timestamp, rfc3339};
use eddo::{DetailType, Envelope, Metadata};
use http::HeaderMap;
use serde::Deserialize;
use serde_json::{Map, json};

use crate::secrets::SecretSet;
use crate::{Reply, header, senders};

/// The route prefix; the rest of the path is the sender's name.
pub const ROUTE: &str = "/alertmanager/";

/// At most this many alerts in one notification: each is published and recorded on its own,
/// within the sender's window. Alertmanager's `max_alerts` keeps a group under it.
pub const MAX_ALERTS: usize = 50;

/// A summary longer than this is cut: it is for people, and the event has a size limit.
const MAX_SUMMARY_CHARS: usize = 1024;

/// The sender a path names, if it is an Alertmanager route: `Err` for a malformed name.
pub fn route(path: &str) -> Option<Result<SenderName, Reply>> {
    senders::route(path, ROUTE)
}

/// Who wrote the notification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Prometheus Alertmanager, webhook version 4.
    Alertmanager,
    /// Grafana alerting's webhook contact point, version 1.
    Grafana,
    /// A CDEvents `incident.detected` or `incident.resolved` (`/cdevents/<sender>`).
    CdEvents,
}

impl Kind {
    pub const fn as_str(self) -> &'static str {
        match self {
            Kind::Alertmanager => "alertmanager",
            Kind::Grafana => "grafana",
            Kind::CdEvents => "cdevents",
        }
    }
}

/// An alert's state in the notification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Firing,
    Resolved,
}

impl Status {
    pub const fn as_str(self) -> &'static str {
        match self {
            Status::Firing => "firing",
            Status::Resolved => "resolved",
        }
    }
}

/// One alert, read and checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alert {
    pub fingerprint: String,
    pub status: Status,
    /// When it began firing, in epoch seconds.
    pub starts_at: u64,
    /// When it resolved, for a resolved alert.
    pub ends_at: Option<u64>,
    pub labels: BTreeMap<String, String>,
    pub summary: Option<String>,
    pub generator_url: Option<String>,
}

/// Where a verified notification's alerts come from: the sender, and what the notification says
/// of the group they were sent in.
#[derive(Debug)]
pub struct Group {
    pub sender: SenderName,
    pub kind: Kind,
    pub receiver: Option<String>,
    pub group_key: Option<String>,
    pub external_url: Option<String>,
    pub truncated_alerts: u64,
}

/// A verified notification: its group and its alerts, in the order sent.
#[derive(Debug)]
pub struct Notification {
    pub group: Group,
    pub alerts: Vec<Alert>,
}

// The payload, as Alertmanager's `Message` (with `template.Data`) and Grafana's
// `webhookMessage` write it; what eddo does not use is not read.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Message {
    version: String,
    #[serde(default)]
    group_key: Option<String>,
    #[serde(default)]
    truncated_alerts: u64,
    #[serde(default)]
    receiver: Option<String>,
    #[serde(default, rename = "externalURL")]
    external_url: Option<String>,
    /// Grafana's: its organisation.
    #[serde(default)]
    org_id: Option<i64>,
    alerts: Vec<AlertDoc>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AlertDoc {
    status: String,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
    starts_at: String,
    #[serde(default)]
    ends_at: Option<String>,
    #[serde(default, rename = "generatorURL")]
    generator_url: Option<String>,
    fingerprint: String,
}

/// Authenticates a notification as `sender` and reads its alerts. Pure.
pub fn accept(
    sender: SenderName,
    headers: &HeaderMap,
    body: &[u8],
    secrets: &SecretSet,
) -> Result<Notification, Reply> {
    authenticate(&sender, headers, secrets)?;
    let message: Message = serde_json::from_slice(body).map_err(|e| {
        Reply::error(
            400,
            format!("not an Alertmanager or Grafana webhook notification: {e}"),
        )
    })?;
    let kind = match (message.version.as_str(), message.org_id) {
        ("4", _) => Kind::Alertmanager,
        ("1", Some(_)) => Kind::Grafana,
        (v, _) => {
            return Err(Reply::error(
                422,
                format!(
                    "webhook payload version {v:?}: eddo reads Prometheus Alertmanager's version 4 and Grafana alerting's version 1"
                ),
            ));
        }
    };
    if message.alerts.is_empty() {
        return Err(Reply::error(400, "the notification holds no alerts"));
    }
    if message.alerts.len() > MAX_ALERTS {
        return Err(Reply::error(
            413,
            format!(
                "the notification holds {} alerts, over the {MAX_ALERTS} eddo takes in one: set max_alerts: {MAX_ALERTS} on the receiver and group_by the label that names the service",
                message.alerts.len()
            ),
        ));
    }
    let alerts = message
        .alerts
        .into_iter()
        .enumerate()
        .map(|(i, a)| read(a).map_err(|why| Reply::error(400, format!("alert {i}: {why}"))))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Notification {
        group: Group {
            sender,
            kind,
            receiver: message.receiver,
            group_key: message.group_key,
            external_url: message.external_url,
            truncated_alerts: message.truncated_alerts,
        },
        alerts,
    })
}

/// Basic auth with the sender's name and token, or its token as a bearer token: nothing else,
/// and the same answer whether the sender is unknown or the token wrong.
fn authenticate(
    sender: &SenderName,
    headers: &HeaderMap,
    secrets: &SecretSet,
) -> Result<(), Reply> {
    let token = match (senders::bearer(headers), basic(headers)) {
        (Some(token), _) => token.to_string(),
        (None, Some((user, password))) if user == sender.as_str() => password,
        (None, Some(_)) => {
            tracing::warn!(%sender, "basic auth with another username than the sender's name");
            return Err(senders::unauthenticated());
        }
        (None, None) => {
            tracing::warn!(%sender, "alert notification with neither basic auth nor bearer token");
            return Err(senders::unauthenticated());
        }
    };
    senders::token(sender, secrets, &token, ROUTE)
}

/// The username and password of an `Authorization: Basic` header.
fn basic(headers: &HeaderMap) -> Option<(String, String)> {
    let (scheme, credentials) = header(headers, "authorization")?.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = String::from_utf8(BASE64.decode(credentials.trim()).ok()?).ok()?;
    let (user, password) = decoded.split_once(':')?;
    Some((user.to_string(), password.to_string()))
}

/// One alert as eddo takes it, or why not.
fn read(a: AlertDoc) -> Result<Alert, String> {
    let fingerprint = a.fingerprint.trim().to_string();
    if fingerprint.is_empty() || fingerprint.len() > 128 {
        return Err("a fingerprint is 1 to 128 characters".into());
    }
    let status = match a.status.as_str() {
        "firing" => Status::Firing,
        "resolved" => Status::Resolved,
        other => return Err(format!("status {other:?} is neither firing nor resolved")),
    };
    let starts_at = parse_timestamp(&a.starts_at)
        .ok_or_else(|| format!("startsAt {:?} is not a time", a.starts_at))?;
    // A firing alert's endsAt is Go's zero time or when it would resolve unless repeated: only
    // a resolved alert's says when it ended.
    let ends_at = match status {
        Status::Firing => None,
        Status::Resolved => Some(
            a.ends_at
                .as_deref()
                .and_then(parse_timestamp)
                .ok_or("a resolved alert's endsAt is not a time")?,
        ),
    };
    let summary = a
        .annotations
        .get("summary")
        .or_else(|| a.annotations.get("description"))
        .map(|s| s.chars().take(MAX_SUMMARY_CHARS).collect());
    Ok(Alert {
        fingerprint,
        status,
        starts_at,
        ends_at,
        labels: a.labels,
        summary,
        generator_url: a.generator_url.filter(|u| !u.is_empty()),
    })
}

/// Where a CDEvents incident published as an alert comes from: its sender, in no group.
pub fn incident(sender: &SenderName) -> Group {
    Group {
        sender: sender.clone(),
        kind: Kind::CdEvents,
        receiver: None,
        group_key: None,
        external_url: None,
        truncated_alerts: 0,
    }
}

/// The key an alert's state is published once under: its sender, fingerprint, status and start
/// (a group's repeat has all four; the same alert firing again starts anew).
pub fn dedupe(sender: &SenderName, alert: &Alert) -> String {
    senders::once_key(
        sender,
        &[
            alert.fingerprint.as_bytes(),
            alert.status.as_str().as_bytes(),
            &alert.starts_at.to_be_bytes(),
        ],
    )
}

/// What names the alert across its notifications (alarm-rollback's alarm identity).
pub fn identity(sender: &SenderName, alert: &Alert) -> String {
    eddo::event::alert_identity(sender.as_str(), &alert.fingerprint)
}

/// The `Alert Received` event for one alert of a verified notification's `n` group.
pub fn outgoing(n: &Group, alert: &Alert, max_entry_bytes: usize) -> Result<OutgoingEvent, Reply> {
    let mut detail = Map::new();
    detail.insert("sender".into(), json!(n.sender.as_str()));
    detail.insert("kind".into(), json!(n.kind.as_str()));
    detail.insert("fingerprint".into(), json!(alert.fingerprint));
    detail.insert("status".into(), json!(alert.status.as_str()));
    detail.insert("starts_at".into(), json!(rfc3339(alert.starts_at)));
    detail.insert("ends_at".into(), json!(alert.ends_at.map(rfc3339)));
    detail.insert("labels".into(), json!(alert.labels));
    detail.insert("summary".into(), json!(alert.summary));
    detail.insert("generator_url".into(), json!(alert.generator_url));
    detail.insert("receiver".into(), json!(n.receiver));
    detail.insert("group_key".into(), json!(n.group_key));
    detail.insert("external_url".into(), json!(n.external_url));
    detail.insert("truncated_alerts".into(), json!(n.truncated_alerts));
    let causation = format!(
        "{}@{}#{}",
        alert.fingerprint,
        alert.starts_at,
        alert.status.as_str()
    );
    let envelope = Envelope {
        metadata: Metadata::new(identity(&n.sender, alert), causation),
        detail,
    };
    crate::entry(
        DetailType::AlertReceived,
        &envelope,
        "alert",
        max_entry_bytes,
    )
}

//! CDEvents in: a delivery tool (Tekton, Jenkins, Testkube, Keptn...) sends CloudEvents over
//! HTTP to `/cdevents/<sender>`, in binary or structured content mode or as a batch, and proves
//! it is that sender with a Standard Webhooks signature (its key: `senders.<sender>` of the
//! webhook secret) or a bearer token (`tokens.<sender>`), whichever the tool can be configured to
//! send. Each event is read with the CD Foundation's SDK; one eddo takes as a gate signal
//! (`eddo::cdevents::CONSUMED`) is published once per sender, CloudEvent `source` and `id`, as
//! eddo's `CDEvent Received`, naming the verified sender; the gate maps it to the signals its
//! policy gives that sender and type.

use cdevents_sdk::CDEvent;
use cloudevents::AttributesReader;
use eddo::names::SenderName;
use eddo::publish::OutgoingEvent;
use eddo::{DetailType, Envelope, Metadata};
use http::HeaderMap;
use serde_json::{Map, Value, json};

use crate::secrets::SecretSet;
use crate::signature::{self, SignatureError};
use crate::{Config, Reply, header, senders, standard_headers};

/// The route prefix; the rest of the path is the sender's name.
pub const ROUTE: &str = "/cdevents/";

/// At most this many events in one batch: each is published and recorded on its own, within the
/// sender's window.
pub const MAX_BATCH: usize = 10;

/// The sender a path names, if it is a CDEvents route: `Err` for a malformed name.
pub fn route(path: &str) -> Option<Result<SenderName, Reply>> {
    senders::route(path, ROUTE)
}

/// A CDEvent eddo takes, read and checked, ready to publish.
#[derive(Debug, Clone)]
pub struct Received {
    /// `context.type`, with its version.
    pub ty: String,
    /// The CloudEvent's identity under this sender: `source` and `id`.
    pub source: String,
    pub id: String,
    /// `context.chainId`, where the sender gives one: the change it belongs to.
    pub chain_id: Option<String>,
    /// The CDEvent as the SDK reads and writes it.
    pub cdevent: Value,
    /// An incident (`incident.detected`, `incident.resolved`), as the alert it is: published as
    /// `Alert Received` for alarm-rollback, not as a gate signal.
    pub incident: Option<crate::alertmanager::Alert>,
}

impl Received {
    /// The change it belongs to: the sender's chain, else the event itself.
    pub fn correlation(&self) -> &str {
        self.chain_id.as_deref().unwrap_or(&self.id)
    }
}

/// A verified delivery: its sender and its events, in the order sent.
#[derive(Debug)]
pub struct Delivery {
    pub sender: SenderName,
    pub events: Vec<Received>,
}

/// Authenticates a delivery as `sender` and reads its events. Pure: `now` in epoch seconds.
pub fn accept(
    sender: SenderName,
    headers: &HeaderMap,
    body: &[u8],
    secrets: &SecretSet,
    config: &Config,
    now: u64,
) -> Result<Delivery, Reply> {
    authenticate(&sender, headers, body, secrets, config, now)?;
    let events = cloud_events(headers, body).map_err(|why| Reply::error(400, why))?;
    let events = events
        .into_iter()
        .enumerate()
        .map(|(i, e)| {
            read(e).map_err(|(status, why)| {
                let at = if i == 0 {
                    String::new()
                } else {
                    format!("event {i}: ")
                };
                Reply::error(status, format!("{at}{why}"))
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Delivery { sender, events })
}

/// A Standard Webhooks signature with the sender's key, or its bearer token: nothing else, and
/// the same answer whether the sender is unknown or the proof wrong.
fn authenticate(
    sender: &SenderName,
    headers: &HeaderMap,
    body: &[u8],
    secrets: &SecretSet,
    config: &Config,
    now: u64,
) -> Result<(), Reply> {
    let standard = standard_headers(headers);
    if standard.signature.is_some() {
        let keys = secrets.sender(sender.as_str());
        return signature::verify_standard(&keys, body, standard, now, config.tolerance_secs)
            .map_err(|e| {
                if e == SignatureError::NoSecret {
                    tracing::warn!(%sender, "no key for this CDEvents sender: delivery refused");
                } else {
                    tracing::warn!(%sender, reason = %e, "CDEvents signature rejected");
                }
                senders::unauthenticated()
            });
    }
    let Some(given) = senders::bearer(headers) else {
        tracing::warn!(%sender, "CDEvents delivery with neither signature nor bearer token");
        return Err(senders::unauthenticated());
    };
    senders::token(sender, secrets, given, ROUTE)
}

/// The CloudEvents of a delivery: a batch (`application/cloudevents-batch+json`), or one event in
/// structured (`application/cloudevents+json`) or binary (`ce-*` headers) content mode.
fn cloud_events(headers: &HeaderMap, body: &[u8]) -> Result<Vec<cloudevents::Event>, String> {
    let content_type = header(headers, "content-type")
        .unwrap_or_default()
        .to_ascii_lowercase();
    if content_type.starts_with("application/cloudevents-batch+json") {
        let events: Vec<cloudevents::Event> =
            serde_json::from_slice(body).map_err(|e| format!("not a batch of CloudEvents: {e}"))?;
        if events.is_empty() || events.len() > MAX_BATCH {
            return Err(format!(
                "a batch holds 1 to {MAX_BATCH} events, not {}",
                events.len()
            ));
        }
        return Ok(events);
    }
    let structured = content_type.starts_with("application/cloudevents+json");
    if !structured && header(headers, "ce-specversion").is_none() {
        return Err("not a CloudEvent: neither structured (application/cloudevents+json) nor binary (ce-specversion and the other ce- headers)".into());
    }
    cloudevents::binding::http::to_event(headers, body.to_vec())
        .map(|e| vec![e])
        .map_err(|e| format!("not a CloudEvent: {e}"))
}

/// One CloudEvent as a CDEvent eddo takes: its status and reason when not.
fn read(event: cloudevents::Event) -> Result<Received, (u16, String)> {
    let (ce_type, ce_id, ce_source) = (
        event.ty().to_string(),
        event.id().to_string(),
        event.source().to_string(),
    );
    let unprocessable = |why: String| (422, why);
    let incident = eddo::cdevents::incident_type(&ce_type);
    if incident.is_none() {
        eddo::cdevents::consumed_type(&ce_type).map_err(unprocessable)?;
    }
    let cdevent = CDEvent::try_from(event)
        .map_err(|e| (400, format!("not a CDEvent of type {ce_type}: {e}")))?;
    // The CloudEvent's attributes are the CDEvent's context (a binary event's ce- headers are
    // outside a signature over the body): they must agree.
    let (ty, id, source) = (
        cdevent.ty().to_string(),
        cdevent.id().to_string(),
        cdevent.source().to_string(),
    );
    for (what, attribute, context) in [
        ("type", &ce_type, &ty),
        ("id", &ce_id, &id),
        ("source", &ce_source, &source),
    ] {
        if attribute != context {
            return Err((
                400,
                format!("the CloudEvent's {what} is not its CDEvent context's {what}"),
            ));
        }
    }
    let cdevent = serde_json::to_value(&cdevent)
        .map_err(|e| (400, format!("the CDEvent does not serialise: {e}")))?;
    if id.len() > 200 || source.len() > 1024 {
        return Err((
            400,
            "a CDEvent's id is at most 200 characters, its source 1024".into(),
        ));
    }
    let incident = match incident {
        Some(predicate) => Some(incident_alert(predicate, &cdevent).map_err(unprocessable)?),
        None => {
            // What the gate will read, read now: a test run that names nothing it tested is
            // answered here, to the sender, not found later on the bus.
            eddo::cdevents::read(&cdevent).map_err(unprocessable)?;
            None
        }
    };
    let chain_id = cdevent["context"]["chainId"].as_str().map(str::to_string);
    Ok(Received {
        ty,
        source,
        id,
        chain_id,
        cdevent,
        incident,
    })
}

/// An incident as an alert: its identity the CloudEvent source and the incident's subject id
/// (the same incident detected and resolved), its labels the service and environment it names,
/// firing when detected and resolved when resolved, at the event's time.
fn incident_alert(predicate: &str, cdevent: &Value) -> Result<crate::alertmanager::Alert, String> {
    use crate::alertmanager::{Alert, Status};
    let subject = &cdevent["subject"];
    let content = &subject["content"];
    let at = cdevent["context"]["timestamp"]
        .as_str()
        .and_then(eddo::time::parse_timestamp)
        .ok_or("the incident's context.timestamp is not a time")?;
    let incident = senders::digest(&[
        cdevent["context"]["source"]
            .as_str()
            .unwrap_or_default()
            .as_bytes(),
        subject["id"].as_str().unwrap_or_default().as_bytes(),
    ]);
    let mut labels = std::collections::BTreeMap::new();
    for (label, field) in [("environment", "environment"), ("service", "service")] {
        if let Some(id) = content[field]["id"].as_str() {
            labels.insert(label.to_string(), id.to_string());
        }
    }
    let resolved = predicate == "incident.resolved";
    Ok(Alert {
        fingerprint: hex::encode(&incident[..16]),
        status: if resolved {
            Status::Resolved
        } else {
            Status::Firing
        },
        starts_at: at,
        ends_at: resolved.then_some(at),
        labels,
        summary: content["description"]
            .as_str()
            .map(|d| d.chars().take(1024).collect()),
        generator_url: None,
    })
}

/// The key a CDEvent is published once under: its sender, source and id (a digest: a source is
/// a URI of any length).
pub fn dedupe(sender: &SenderName, received: &Received) -> String {
    senders::once_key(
        sender,
        &[received.source.as_bytes(), received.id.as_bytes()],
    )
}

/// The `CDEvent Received` event for a verified CDEvent.
pub fn outgoing(
    sender: &SenderName,
    received: &Received,
    max_entry_bytes: usize,
) -> Result<OutgoingEvent, Reply> {
    let mut detail = Map::new();
    detail.insert("sender".into(), json!(sender.as_str()));
    detail.insert("type".into(), json!(received.ty));
    detail.insert("cdevent".into(), received.cdevent.clone());
    let envelope = Envelope {
        metadata: Metadata::new(received.correlation(), received.id.clone()),
        detail,
    };
    crate::entry(
        DetailType::CdEventReceived,
        &envelope,
        "CDEvent",
        max_entry_bytes,
    )
}

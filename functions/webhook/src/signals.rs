//! Signed signals: another tool (a scanner, a contract check, a chat tool's approval) reports a
//! gate signal as a Standard Webhooks delivery to `/signals/<sender>`, signed with that sender's
//! own key (`senders.<sender>` in the webhook secret). Verified, it is published as eddo's
//! `Signal Reported` naming the sender; only the webhook's role may put `eddo.webhook`, so the
//! gate can trust the name. The delivery is deduplicated on its signed `webhook-id`.

use eddo::names::SenderName;
use eddo::publish::OutgoingEvent;
use eddo::{DetailType, Envelope, Metadata};
use http::HeaderMap;
use serde_json::{Map, Value};

use crate::secrets::SecretSet;
use crate::signature::{self, SignatureError};
use crate::{Config, Reply, standard_headers};

/// The route prefix; the rest of the path is the sender's name.
pub const ROUTE: &str = "/signals/";

/// The Standard Webhooks `type` of a signal.
pub const TYPE: &str = "signal.reported";

/// The keys a signal's `data` may carry (the `Signal Reported` contract); `sender` and
/// `metadata` are the webhook's to set.
const FIELDS: [&str; 9] = [
    "service",
    "commit_sha",
    "kind",
    "passed",
    "findings",
    "image_digest",
    "by",
    "summary",
    "report_url",
];

/// The sender a path names, if it is a signals route: `Err` for a malformed name.
pub fn route(path: &str) -> Option<Result<SenderName, Reply>> {
    crate::senders::route(path, ROUTE)
}

/// A verified signal, ready to publish.
#[derive(Debug)]
pub struct Signal {
    pub sender: SenderName,
    /// The signed `webhook-id`: the delivery's identity, under the sender's signature.
    pub delivery_id: String,
    pub detail: Map<String, Value>,
}

/// Verifies a signal delivery with its sender's key and reads it. Pure: `now` in epoch seconds.
pub fn accept(
    sender: SenderName,
    headers: &HeaderMap,
    body: &[u8],
    secrets: &SecretSet,
    config: &Config,
    now: u64,
) -> Result<Signal, Reply> {
    let standard = standard_headers(headers);
    let keys = secrets.sender(sender.as_str());
    signature::verify_standard(&keys, body, standard, now, config.tolerance_secs).map_err(|e| {
        if e == SignatureError::NoSecret {
            // Not configured is the same answer as a bad signature: the route says nothing
            // about which senders exist.
            tracing::warn!(sender = %sender, "no key for this sender: delivery refused");
        } else {
            tracing::warn!(sender = %sender, reason = %e, "signal signature rejected");
        }
        Reply::error(401, "the signature could not be verified")
    })?;
    let delivery_id = standard
        .id
        .filter(|id| id.len() <= 200)
        .ok_or_else(|| Reply::error(400, "the webhook-id is missing or over 200 characters"))?
        .to_string();
    let detail = read(body).map_err(|why| Reply::error(400, why))?;
    Ok(Signal {
        sender,
        delivery_id,
        detail,
    })
}

/// The delivery's `data`, checked against the contract's shape; the gate judges the rest.
fn read(body: &[u8]) -> Result<Map<String, Value>, String> {
    let payload: Value = serde_json::from_slice(body)
        .map_err(|e| format!("the body is not a Standard Webhooks payload: {e}"))?;
    let kind = payload["type"].as_str().unwrap_or_default();
    if kind != TYPE {
        return Err(format!(
            "a signal's type is {TYPE:?}, not {:?}",
            kind.chars().take(64).collect::<String>()
        ));
    }
    let Some(data) = payload["data"].as_object() else {
        return Err("a signal's data is an object".into());
    };
    if let Some(key) = data.keys().find(|k| !FIELDS.contains(&k.as_str())) {
        return Err(format!(
            "a signal's data has no field {:?} (the webhook names the sender)",
            key.chars().take(64).collect::<String>()
        ));
    }
    for key in ["service", "commit_sha", "kind"] {
        if !data.get(key).is_some_and(Value::is_string) {
            return Err(format!("a signal's data names its {key}"));
        }
    }
    if !data.contains_key("passed") && !data.contains_key("findings") {
        return Err("a signal's data gives passed (true/false) or findings".into());
    }
    Ok(data.clone())
}

/// The `Signal Reported` event for a verified signal.
pub fn outgoing(signal: Signal, max_entry_bytes: usize) -> Result<OutgoingEvent, Reply> {
    let mut detail = signal.detail;
    detail.insert("sender".into(), Value::String(signal.sender.to_string()));
    let envelope = Envelope {
        metadata: Metadata::new(signal.delivery_id.clone(), signal.delivery_id),
        detail,
    };
    crate::entry(
        DetailType::SignalReported,
        &envelope,
        "signal",
        max_entry_bytes,
    )
}

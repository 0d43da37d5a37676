//! `eddo-local send <file>`: put an event on the running stack's bus, or deliver a webhook body
//! signed with the local secret to its function URL, as GitHub would.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::LocalError;
use crate::moto::{project_root, sdk_config_for};
use crate::stack::LOCAL_GITHUB_SECRET;
use crate::url::post;

/// The headers GitHub sends with a delivery of `body`, signed with `secret`.
pub fn github_headers(
    secret: &str,
    event: &str,
    delivery_id: &str,
    body: &[u8],
) -> Vec<(&'static str, String)> {
    vec![
        ("content-type", "application/json".into()),
        ("user-agent", "GitHub-Hookshot/eddo-local".into()),
        ("x-github-event", event.into()),
        ("x-github-delivery", delivery_id.into()),
        (
            "x-hub-signature-256",
            eddo_webhook::signature::github_signature(secret.as_bytes(), body),
        ),
    ]
}

/// POSTs a signed GitHub delivery to the webhook URL at `addr`, as GitHub does: `(status, body)`.
pub async fn post_github(
    addr: SocketAddr,
    secret: &str,
    event: &str,
    delivery_id: &str,
    body: String,
) -> Result<(u16, String), LocalError> {
    let headers = github_headers(secret, event, delivery_id, body.as_bytes());
    post_off_thread(addr, "/github".into(), headers, body).await
}

/// POSTs `body` with `headers` to `path` at `addr` on a blocking thread: `(status, body)`.
async fn post_off_thread(
    addr: SocketAddr,
    path: String,
    headers: Vec<(&'static str, String)>,
    body: String,
) -> Result<(u16, String), LocalError> {
    tokio::task::spawn_blocking(move || {
        let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        post(addr, &path, &headers, body.as_bytes())
    })
    .await
    .map_err(|e| LocalError::Setup(e.to_string()))?
    .map_err(|e| LocalError::Setup(format!("the webhook URL {addr} did not answer: {e}")))
}

/// POSTs a signal to the webhook URL at `addr` as signal sender `sender` does: a Standard
/// Webhooks delivery of `data` (type `signal.reported`), signed with its `key`, as delivery `id`.
pub async fn post_signal(
    addr: SocketAddr,
    sender: &str,
    key: &str,
    id: &str,
    data: &Value,
) -> Result<(u16, String), LocalError> {
    let now = eddo::idempotency::now_epoch();
    let body = serde_json::json!({"type": "signal.reported", "timestamp": eddo::time::rfc3339(now), "data": data})
        .to_string();
    let signed = Signed { sender, key, id };
    signed
        .post(addr, "/signals", "application/json", now, body)
        .await
}

/// POSTs a structured-mode CloudEvent to the webhook URL at `addr` as CDEvents sender `sender`
/// signing with its Standard Webhooks `key` does (delivery `id`): `(status, body)`.
pub async fn post_cdevent(
    addr: SocketAddr,
    sender: &str,
    key: &str,
    id: &str,
    cloud_event: &Value,
) -> Result<(u16, String), LocalError> {
    let now = eddo::idempotency::now_epoch();
    let signed = Signed { sender, key, id };
    let body = cloud_event.to_string();
    signed
        .post(addr, "/cdevents", "application/cloudevents+json", now, body)
        .await
}

/// A Standard Webhooks sender: its name, its key and the delivery's id.
struct Signed<'a> {
    sender: &'a str,
    key: &'a str,
    id: &'a str,
}

impl Signed<'_> {
    /// POSTs `body` to `<route>/<sender>`, signed at `now`.
    async fn post(
        &self,
        addr: SocketAddr,
        route: &str,
        content_type: &str,
        now: u64,
        body: String,
    ) -> Result<(u16, String), LocalError> {
        let signature =
            eddo_webhook::signature::standard_signature(self.key, self.id, now, body.as_bytes())
                .ok_or_else(|| {
                    LocalError::Setup(format!("{}: not a Standard Webhooks key", self.sender))
                })?;
        let headers = [
            ("content-type", content_type.to_string()),
            ("webhook-id", self.id.to_string()),
            ("webhook-timestamp", now.to_string()),
            ("webhook-signature", signature),
        ];
        let path = format!("{route}/{}", self.sender);
        post_off_thread(addr, path, headers.to_vec(), body).await
    }
}

/// POSTs an alert notification to the webhook URL at `addr` as an Alertmanager configured with
/// `basic_auth` (username `sender`, password its `token`) does: `(status, body)`.
pub async fn post_alerts(
    addr: SocketAddr,
    sender: &str,
    token: &str,
    notification: &Value,
) -> Result<(u16, String), LocalError> {
    use base64::Engine;
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{sender}:{token}"));
    let headers = [
        ("content-type", "application/json".to_string()),
        ("authorization", format!("Basic {basic}")),
    ];
    let (path, body) = (format!("/alertmanager/{sender}"), notification.to_string());
    post_off_thread(addr, path, headers.to_vec(), body).await
}

/// Where a running `eddo-local up` serves: written by `up`, read by `send`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoints {
    pub moto: String,
    /// The emulator's administrator (IAM is enforced there): a local key, never an AWS one.
    pub admin: crate::moto::AccessKey,
    pub bus: String,
    pub webhook: SocketAddr,
    /// By source, the role that puts it (a local key): other tools' events on the eddo bus are
    /// put as their source's sender, as the bus policy requires.
    #[serde(default)]
    pub senders: std::collections::BTreeMap<String, crate::moto::AccessKey>,
}

impl Endpoints {
    pub fn file() -> PathBuf {
        project_root().join("target/eddo-local/up.json")
    }

    pub fn save(&self) -> Result<(), LocalError> {
        let path = Endpoints::file();
        let write = || -> std::io::Result<()> {
            std::fs::create_dir_all(path.parent().expect("a parent"))?;
            std::fs::write(
                &path,
                serde_json::to_vec_pretty(self).expect("serialisable"),
            )
        };
        write().map_err(|e| LocalError::Setup(format!("{}: {e}", path.display())))
    }

    pub fn load() -> Result<Endpoints, LocalError> {
        let path = Endpoints::file();
        let text = std::fs::read_to_string(&path).map_err(|_| {
            LocalError::Setup(
                "no running stack: start it with `make up` (eddo-local up) first".into(),
            )
        })?;
        serde_json::from_str(&text)
            .map_err(|e| LocalError::Setup(format!("{}: {e}", path.display())))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sent {
    /// The file was an EventBridge event: put on `bus` with this id.
    Event { event_id: String, bus: String },
    /// The file was a webhook body: the function URL's answer.
    Webhook { status: u16, body: String },
}

/// Sends `file`: an EventBridge event (it has `source` and `detail-type`) goes on the eddo bus,
/// or on the default bus when it is an AWS service's (`aws.*`), where AWS puts those; any
/// other JSON is a GitHub delivery of `event`, by default the file's folder name, as in
/// `../shared/corpus/github/<event>/`.
pub async fn send(file: &Path, event: Option<&str>, to: &Endpoints) -> Result<Sent, LocalError> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| LocalError::Setup(format!("{}: {e}", file.display())))?;
    let json: Value = serde_json::from_str(&text)
        .map_err(|e| LocalError::Setup(format!("{}: not JSON: {e}", file.display())))?;
    if let (Some(source), Some(detail_type)) =
        (json["source"].as_str(), json["detail-type"].as_str())
    {
        // AWS's samples as the administrator (on the default bus); another tool's event as the
        // listed signal sender. eddo's own sources only its functions may put: refused here.
        let key = match to.senders.get(source) {
            Some(sender) if !source.starts_with("aws.") => sender,
            _ => &to.admin,
        };
        let eb = aws_sdk_eventbridge::Client::new(&sdk_config_for(&to.moto, key).await);
        let resources: Vec<String> = json["resources"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|r| r.as_str().map(str::to_string))
            .collect();
        let bus = if source.starts_with("aws.") {
            "default"
        } else {
            &to.bus
        };
        let entry = aws_sdk_eventbridge::types::PutEventsRequestEntry::builder()
            .event_bus_name(bus)
            .source(source)
            .detail_type(detail_type)
            .detail(json["detail"].to_string())
            .set_resources((!resources.is_empty()).then_some(resources))
            .build();
        let out = eb.put_events().entries(entry).send().await.map_err(|e| {
            LocalError::Aws(format!(
                "PutEvents: {}",
                aws_sdk_eventbridge::error::DisplayErrorContext(&e)
            ))
        })?;
        let result = out.entries().first();
        return match result.and_then(|r| r.event_id()) {
            Some(id) => Ok(Sent::Event {
                event_id: id.to_string(),
                bus: bus.to_string(),
            }),
            None => Err(LocalError::Aws(format!(
                "PutEvents rejected the event: {}",
                result
                    .and_then(|r| r.error_message())
                    .unwrap_or("no reason given")
            ))),
        };
    }
    let event = match event {
        Some(e) => e.to_string(),
        None => file
            .parent()
            .and_then(Path::file_name)
            .map(|n| n.to_string_lossy().into_owned())
            .ok_or_else(|| LocalError::Setup("name the GitHub event with --event".into()))?,
    };
    let delivery = format!("local-{:016x}", fastrand::u64(..));
    let (status, body) =
        post_github(to.webhook, LOCAL_GITHUB_SECRET, &event, &delivery, text).await?;
    Ok(Sent::Webhook { status, body })
}

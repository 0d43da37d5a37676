//! The webhook receiver: a Lambda function URL that accepts signed deliveries from GitHub, GitLab
//! and any Standard Webhooks sender, and publishes each, normalised, to the eddo bus exactly once.
//!
//! Routes: `POST /github`, `POST /gitlab`, `POST /standard`, `POST /signals/<sender>`,
//! `POST /cdevents/<sender>` (CloudEvents: [`cdevents`]), `POST /alertmanager/<sender>`
//! (Prometheus Alertmanager and Grafana alerts: [`alertmanager`]). Answers: 202 published, duplicate or
//! ignored; 200 ping; 400 malformed; 401 bad or missing signature; 404 unknown route; 405 not a
//! POST; 409 the same delivery is being processed now; 413 too large; 422 a CDEvent eddo does not
//! take, or an alert payload version it does not read; 5xx when the bus or AWS
//! fails, so the sender records a failed delivery and can redeliver.

pub mod alertmanager;
pub mod cdevents;
mod config;
mod each;
pub mod normalise;
mod providers;
pub mod secrets;
mod senders;
pub mod signals;
pub mod signature;

use std::time::Duration;

use aws_config::SdkConfig;
use aws_lambda_events::event::lambda_function_urls::{
    LambdaFunctionUrlRequest, LambdaFunctionUrlResponse,
};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use eddo::DetailType;
use eddo::idempotency::{Claim, IdempotencyKey, Once, now_epoch};
use eddo::outbox::{Lease, Outbox};
use eddo::publish::{OutgoingEvent, Publisher};
use http::HeaderMap;
use serde_json::json;
use tracing::Instrument;

use normalise::Normalised;
use secrets::{SecretCache, SecretError, SecretSet};
use signature::StandardHeaders;

pub use config::Config;
pub use providers::{Accepted, accept, outgoing, precheck, route};

/// An HTTP answer: status and a small JSON body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub status: u16,
    pub body: serde_json::Value,
}

impl Reply {
    fn new(status: u16, body: serde_json::Value) -> Self {
        Reply { status, body }
    }

    fn error(status: u16, message: impl Into<String>) -> Self {
        Reply::new(status, json!({ "error": message.into() }))
    }

    pub fn into_response(self) -> LambdaFunctionUrlResponse {
        let mut r = LambdaFunctionUrlResponse::default();
        r.status_code = i64::from(self.status);
        r.headers.insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/json"),
        );
        if self.status == 405 {
            r.headers
                .insert(http::header::ALLOW, http::HeaderValue::from_static("POST"));
        }
        r.body = Some(self.body.to_string());
        r
    }
}

pub(crate) fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

/// The Standard Webhooks headers of a request (GitLab's signing token uses them too).
pub(crate) fn standard_headers(headers: &HeaderMap) -> StandardHeaders<'_> {
    StandardHeaders {
        id: header(headers, "webhook-id"),
        timestamp: header(headers, "webhook-timestamp"),
        signature: header(headers, "webhook-signature"),
    }
}

/// The request's body, after the method and size checks every route makes.
pub fn body(req: &LambdaFunctionUrlRequest, max_body_bytes: usize) -> Result<Vec<u8>, Reply> {
    let method = req.request_context.http.method.as_deref().unwrap_or("");
    if !method.eq_ignore_ascii_case("POST") {
        return Err(Reply::error(405, "webhooks are delivered with POST"));
    }
    let body = req.body.as_deref().unwrap_or("");
    // Base64 is 4 characters per 3 bytes: reject by the encoded length before decoding.
    let decoded_len = if req.is_base64_encoded {
        body.len() / 4 * 3
    } else {
        body.len()
    };
    if decoded_len > max_body_bytes {
        return Err(Reply::error(
            413,
            format!("the body is over the {max_body_bytes}-byte limit"),
        ));
    }
    let bytes = if req.is_base64_encoded {
        BASE64
            .decode(body)
            .map_err(|_| Reply::error(400, "the body is not valid base64"))?
    } else {
        body.as_bytes().to_vec()
    };
    if bytes.len() > max_body_bytes {
        return Err(Reply::error(
            413,
            format!("the body is over the {max_body_bytes}-byte limit"),
        ));
    }
    Ok(bytes)
}

/// A sender's event as its PutEvents entry (`what` names it in the 413), within the entry limit.
pub(crate) fn entry<D: serde::Serialize>(
    detail_type: DetailType,
    envelope: &eddo::Envelope<D>,
    what: &str,
    max_entry_bytes: usize,
) -> Result<OutgoingEvent, Reply> {
    let entry =
        OutgoingEvent::new(detail_type, envelope).map_err(|e| Reply::error(400, e.to_string()))?;
    if entry.size() > max_entry_bytes {
        return Err(Reply::error(
            413,
            format!(
                "the {what} is {} bytes, over the {max_entry_bytes}-byte limit",
                entry.size()
            ),
        ));
    }
    Ok(entry)
}

/// The request's path, as the function URL gives it.
pub(crate) fn path(req: &LambdaFunctionUrlRequest) -> &str {
    req.raw_path
        .as_deref()
        .or(req.request_context.http.path.as_deref())
        .unwrap_or("/")
}

/// A sender's own route.
#[derive(Clone, Copy)]
enum Route {
    Signals,
    CdEvents,
    Alerts,
}

/// How long a sender waits for the answer: GitHub gives up after 10 s.
pub const SENDER_WINDOW: Duration = Duration::from_secs(10);

/// What is kept back from the sender's window and the invocation's deadline to answer in.
pub const ANSWER_MARGIN: Duration = Duration::from_millis(700);

/// What is kept back from the answer's deadline to give a lease back after a failure.
const LET_GO_MARGIN: Duration = Duration::from_millis(300);

/// The function: built once at init, serving every invocation of the execution environment.
pub struct Webhook {
    config: Config,
    secrets: SecretCache,
    publisher: Publisher,
    once: Once,
}

impl Webhook {
    pub fn new(config: Config, sdk: &SdkConfig) -> Self {
        let publisher = Publisher::from_config(&config.common, sdk);
        Self::with_publisher(config, sdk, publisher)
    }

    /// As `new`, with a publisher of the caller's (tests use a mocked EventBridge client).
    pub fn with_publisher(config: Config, sdk: &SdkConfig, publisher: Publisher) -> Self {
        let secrets = SecretCache::new(
            aws_sdk_secretsmanager::Client::new(sdk),
            &config.secret_id,
            config.secret_ttl,
        )
        .with_previous_grace(config.previous_secret_grace);
        let once = Once::new(
            Outbox::new(
                aws_sdk_dynamodb::Client::new(sdk),
                &config.common.table_name,
                publisher.clone(),
            ),
            config.idempotency_retention,
        );
        Webhook {
            config,
            secrets,
            publisher,
            once,
        }
    }

    /// Answers a delivery within the sender's window.
    pub async fn handle(&self, req: LambdaFunctionUrlRequest) -> LambdaFunctionUrlResponse {
        self.handle_until(req, None).await
    }

    /// Answers a delivery before `deadline` (the invocation's) and within the sender's window,
    /// whatever AWS does: work that cannot finish in time is answered 503, for the sender to
    /// redeliver.
    pub async fn handle_until(
        &self,
        req: LambdaFunctionUrlRequest,
        deadline: Option<tokio::time::Instant>,
    ) -> LambdaFunctionUrlResponse {
        let window = tokio::time::Instant::now() + SENDER_WINDOW;
        let answer_by = deadline.map_or(window, |d| d.min(window)) - ANSWER_MARGIN;
        // Boxed: one allocation per delivery keeps the runtime's future within the compiler's
        // layout depth.
        let work = Box::pin(self.reply(req, answer_by - LET_GO_MARGIN));
        match tokio::time::timeout_at(answer_by, work).await {
            Ok(reply) => reply.unwrap_or_else(|r| r).into_response(),
            Err(_) => {
                tracing::error!("out of time: answered 503 before the sender's window closes");
                Reply::error(503, "eddo could not finish in time; redeliver later").into_response()
            }
        }
    }

    async fn reply(
        &self,
        req: LambdaFunctionUrlRequest,
        deadline: tokio::time::Instant,
    ) -> Result<Reply, Reply> {
        let refused = |r: &Reply| {
            tracing::warn!(status = r.status, reason = %r.body["error"], "delivery refused");
        };
        // A sender's own route: signed signals, CDEvents, or alerts.
        let p = path(&req);
        let senders = signals::route(p)
            .map(|s| (Route::Signals, s))
            .or_else(|| cdevents::route(p).map(|s| (Route::CdEvents, s)))
            .or_else(|| alertmanager::route(p).map(|s| (Route::Alerts, s)));
        if let Some((route, sender)) = senders {
            let sender = sender.inspect_err(refused)?;
            let body = body(&req, self.config.max_body_bytes).inspect_err(refused)?;
            let secrets = self.secrets().await?;
            let (headers, now) = (&req.headers, now_epoch());
            return match route {
                Route::CdEvents => {
                    let delivery =
                        cdevents::accept(sender, headers, &body, &secrets, &self.config, now)
                            .inspect_err(refused)?;
                    self.publish_cdevents(delivery, deadline).await
                }
                Route::Alerts => {
                    let notification = alertmanager::accept(sender, headers, &body, &secrets)
                        .inspect_err(refused)?;
                    self.publish_alerts(notification, deadline).await
                }
                Route::Signals => {
                    let signal =
                        signals::accept(sender, headers, &body, &secrets, &self.config, now)
                            .inspect_err(refused)?;
                    let span = eddo::telemetry::correlation_span(&signal.delivery_id);
                    self.publish_signal(signal, deadline).instrument(span).await
                }
            };
        }
        let (provider, body) = precheck(&req, self.config.max_body_bytes).inspect_err(refused)?;
        let secrets = self.secrets().await?;
        let accepted = accept(
            provider,
            &req.headers,
            &body,
            &secrets,
            &self.config,
            now_epoch(),
        )?;
        let span = eddo::telemetry::correlation_span(&accepted.delivery_id);
        self.publish(accepted, deadline).instrument(span).await
    }

    async fn publish_signal(
        &self,
        signal: signals::Signal,
        deadline: tokio::time::Instant,
    ) -> Result<Reply, Reply> {
        let (sender, delivery) = (signal.sender.clone(), signal.delivery_id.clone());
        let entry = signals::outgoing(signal, self.publisher.max_entry_bytes())?;
        let key = IdempotencyKey::new(&format!("webhook#signal#{sender}"), &delivery);
        let (reply, event_id) = self
            .publish_once(
                &key,
                &delivery,
                &entry,
                DetailType::SignalReported,
                deadline,
            )
            .await?;
        if let Some(event_id) = event_id {
            tracing::info!(%sender, %event_id, "signal published");
        }
        Ok(reply)
    }

    async fn secrets(&self) -> Result<std::sync::Arc<SecretSet>, Reply> {
        self.secrets.get().await.map_err(|e| match e {
            SecretError::Unavailable(err) => {
                tracing::error!(error = %err, "webhook secret unavailable");
                Reply::error(503, "the webhook secret is unavailable; redeliver later")
            }
            SecretError::Unusable(why) => {
                tracing::error!(reason = %why, "webhook secret unusable: every delivery is refused");
                Reply::error(401, "the signature could not be verified")
            }
        })
    }

    async fn publish(
        &self,
        accepted: Accepted,
        deadline: tokio::time::Instant,
    ) -> Result<Reply, Reply> {
        let delivery = accepted.delivery_id;
        let (detail_type, event) = match accepted.outcome {
            Normalised::Ping => {
                tracing::info!(provider = accepted.provider.as_str(), "ping answered");
                return Ok(Reply::new(
                    200,
                    json!({"status": "pong", "delivery_id": delivery}),
                ));
            }
            Normalised::Ignored(reason) => {
                tracing::info!(provider = accepted.provider.as_str(), %reason, "delivery ignored");
                return Ok(Reply::new(
                    202,
                    json!({"status": "ignored", "delivery_id": delivery, "reason": reason}),
                ));
            }
            Normalised::Publish(detail_type, event) => (detail_type, event),
        };
        let repository = event.repository.as_ref().map(|r| r.full_name.clone());
        let (event_name, action, branch) = (
            event.event.clone(),
            event.action.clone(),
            event.branch.clone(),
        );
        let entry = outgoing(detail_type, *event, self.publisher.max_entry_bytes())?;
        let key = IdempotencyKey::new(
            &format!("webhook#{}", accepted.provider.as_str()),
            &accepted.dedupe,
        );
        let (reply, event_id) = self
            .publish_once(&key, &delivery, &entry, detail_type, deadline)
            .await?;
        if let Some(event_id) = event_id {
            tracing::info!(
                detail_type = detail_type.as_str(),
                event = %event_name,
                action = action.as_deref(),
                repository = repository.as_deref(),
                branch = branch.as_deref(),
                %event_id,
                "published"
            );
        }
        Ok(reply)
    }

    /// Publishes `entry` once per delivery `key`: a redelivery of a published delivery answers
    /// `duplicate`, one being published answers 409, one a dead invocation left is published by
    /// this one (what that invocation wrote), a failed publish is given back for the sender's
    /// retry. The event id, when this call published it.
    async fn publish_once(
        &self,
        key: &IdempotencyKey,
        delivery: &str,
        entry: &OutgoingEvent,
        detail_type: DetailType,
        deadline: tokio::time::Instant,
    ) -> Result<(Reply, Option<String>), Reply> {
        let (lease, owed) = match self
            .once
            .claim(key, std::slice::from_ref(entry), now_epoch())
            .await
        {
            Ok(Claim::Acquired(lease)) => (lease, vec![entry.clone()]),
            Ok(Claim::Abandoned(lease, owed)) => {
                tracing::warn!("publishing what a previous invocation left unpublished");
                (lease, owed)
            }
            Ok(Claim::Sent { event_ids }) => {
                tracing::info!("redelivery of a published delivery: nothing published");
                return Ok((
                    Reply::new(
                        202,
                        json!({"status": "duplicate", "delivery_id": delivery, "event_id": event_ids.first()}),
                    ),
                    None,
                ));
            }
            Ok(Claim::InProgress) => {
                tracing::warn!("the same delivery is being processed by another invocation");
                return Err(Reply::error(
                    409,
                    "this delivery is being processed; redeliver later if it does not appear",
                ));
            }
            Err(err) => {
                tracing::error!(error = %err, "idempotency store unavailable");
                return Err(Reply::error(503, "state unavailable; redeliver later"));
            }
        };
        match self.send(&lease, &owed, deadline).await {
            Ok(ids) => {
                let event_id = ids.into_iter().next().unwrap_or_default();
                Ok((
                    Reply::new(
                        202,
                        json!({"status": "published", "delivery_id": delivery, "event_id": event_id, "detail_type": detail_type.as_str()}),
                    ),
                    Some(event_id),
                ))
            }
            Err(err) => {
                tracing::error!(error = %err, retryable = err.is_retryable(), "publish failed");
                let status = if err.is_retryable() { 503 } else { 500 };
                Err(Reply::error(
                    status,
                    "the event bus did not accept the event; redeliver later",
                ))
            }
        }
    }

    /// Sends what the delivery owes before `deadline`, giving the lease back on failure.
    async fn send(
        &self,
        lease: &Lease,
        owed: &[OutgoingEvent],
        deadline: tokio::time::Instant,
    ) -> Result<Vec<String>, eddo::Error> {
        let outbox = self.once.outbox();
        let sent = outbox.send_until(lease, owed, Some(deadline)).await;
        outbox.guard(lease, sent).await
    }
}

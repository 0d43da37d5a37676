//! The Git providers' deliveries: GitHub (`/github`), GitLab (`/gitlab`) and any Standard
//! Webhooks sender (`/standard`), each verified as its provider signs it, normalised, and made
//! into the PutEvents entry the webhook publishes once.

use std::borrow::Cow;

use aws_lambda_events::event::lambda_function_urls::LambdaFunctionUrlRequest;
use eddo::git::{GitEvent, Provider, RawOmitted};
use eddo::publish::OutgoingEvent;
use eddo::{DetailType, Envelope, Metadata};
use http::HeaderMap;

use crate::normalise::{self, Normalised};
use crate::secrets::{SecretSet, WebhookSecrets};
use crate::signature::{self, SignatureError, StandardHeaders};
use crate::{Config, Reply, body, header, path, standard_headers};

/// A verified, normalised delivery, ready to publish.
#[derive(Debug)]
pub struct Accepted {
    pub provider: Provider,
    pub delivery_id: String,
    /// What a redelivery is recognised by: signed material only, so a captured delivery
    /// replayed under a new id is still the same delivery (GitHub: the signed body; a Standard
    /// Webhooks signature: its signed `webhook-id`). A GitLab secret token signs nothing: the
    /// body, as GitHub's, so a delivery sent again under a new `Idempotency-Key` is still one.
    pub dedupe: String,
    pub outcome: Normalised,
}

/// The routes, one per provider.
pub fn route(path: &str) -> Option<Provider> {
    match path.trim_end_matches('/') {
        "/github" => Some(Provider::Github),
        "/gitlab" => Some(Provider::Gitlab),
        "/standard" => Some(Provider::StandardWebhooks),
        _ => None,
    }
}

/// The first checks, before any secret is fetched: method, route, body encoding and size.
pub fn precheck(
    req: &LambdaFunctionUrlRequest,
    max_body_bytes: usize,
) -> Result<(Provider, Vec<u8>), Reply> {
    let provider = route(path(req)).ok_or_else(|| {
        Reply::error(
            404,
            "no such route: use /github, /gitlab, /standard, /signals/<sender> or /cdevents/<sender>",
        )
    })?;
    Ok((provider, body(req, max_body_bytes)?))
}

/// Verifies a delivery's signature and normalises it. Pure: no I/O, `now` in epoch seconds.
pub fn accept(
    provider: Provider,
    headers: &HeaderMap,
    body: &[u8],
    secrets: &SecretSet,
    config: &Config,
    now: u64,
) -> Result<Accepted, Reply> {
    let standard_headers = standard_headers(headers);
    let verified = match provider {
        Provider::Github => signature::verify_github(
            &secrets.values(|s: &WebhookSecrets| &s.github),
            body,
            header(headers, "x-hub-signature-256"),
            header(headers, "x-hub-signature").is_some(),
        ),
        Provider::Gitlab => verify_gitlab(
            secrets,
            headers,
            body,
            standard_headers,
            now,
            config.tolerance_secs,
        ),
        Provider::StandardWebhooks => signature::verify_standard(
            &secrets.values(|s: &WebhookSecrets| &s.standard_webhooks),
            body,
            standard_headers,
            now,
            config.tolerance_secs,
        ),
    };
    verified.map_err(|e| {
        if e == SignatureError::NoSecret {
            tracing::error!(
                provider = provider.as_str(),
                "no {} secret is configured: every delivery is refused",
                provider.as_str()
            );
        } else {
            tracing::warn!(provider = provider.as_str(), reason = %e, "signature rejected");
        }
        Reply::error(401, "the signature could not be verified")
    })?;

    let (delivery_id, event) = match provider {
        Provider::Github => (
            header(headers, "x-github-delivery"),
            header(headers, "x-github-event"),
        ),
        // Signed with a signing token, the signed webhook-id names the delivery; GitLab's
        // Idempotency-Key is not signed.
        Provider::Gitlab
            if !secrets
                .values(|s: &WebhookSecrets| &s.gitlab_signing)
                .is_empty() =>
        {
            (standard_headers.id, header(headers, "x-gitlab-event"))
        }
        Provider::Gitlab => (
            header(headers, "idempotency-key")
                .or(header(headers, "x-gitlab-event-uuid"))
                .or(standard_headers.id),
            header(headers, "x-gitlab-event"),
        ),
        Provider::StandardWebhooks => (standard_headers.id, Some("standard webhook")),
    };
    let delivery_id =
        delivery_id.ok_or_else(|| Reply::error(400, "the delivery id header is missing"))?;
    let event = event.ok_or_else(|| Reply::error(400, "the event header is missing"))?;
    if delivery_id.len() > 200 {
        return Err(Reply::error(400, "the delivery id is over 200 characters"));
    }

    let payload = payload_text(headers, body)?;
    let outcome = match provider {
        Provider::Github => normalise::github(event, delivery_id, &payload, &config.forward),
        Provider::Gitlab => normalise::gitlab(event, delivery_id, &payload, &config.forward),
        Provider::StandardWebhooks => normalise::standard(delivery_id, &payload, &config.forward),
    }
    .map_err(|e| Reply::error(400, e.to_string()))?;
    let token_only = provider == Provider::Gitlab
        && secrets
            .values(|s: &WebhookSecrets| &s.gitlab_signing)
            .is_empty();
    let dedupe = match provider {
        // GitHub signs the body only: X-GitHub-Delivery can be changed by whoever replays it.
        // GitLab's secret token signs nothing: its Idempotency-Key is the sender's word, the
        // body is what was delivered.
        Provider::Github => body_digest(body),
        Provider::Gitlab if token_only => body_digest(body),
        _ => delivery_id.to_string(),
    };
    Ok(Accepted {
        provider,
        delivery_id: delivery_id.to_string(),
        dedupe,
        outcome,
    })
}

/// `sha256:<hex>` of a delivery's body.
fn body_digest(body: &[u8]) -> String {
    use sha2::Digest;
    let hash = sha2::Sha256::digest(body);
    format!(
        "sha256:{}",
        hash.iter().map(|b| format!("{b:02x}")).collect::<String>()
    )
}

/// GitLab: every mechanism the secret configures must pass (the `X-Gitlab-Token` secret token,
/// the `gitlab_signing` Standard Webhooks signing token); with neither configured, nothing does.
fn verify_gitlab(
    secrets: &SecretSet,
    headers: &HeaderMap,
    body: &[u8],
    standard: StandardHeaders<'_>,
    now: u64,
    tolerance: u64,
) -> Result<(), SignatureError> {
    let tokens = secrets.values(|s: &WebhookSecrets| &s.gitlab);
    let signing = secrets.values(|s: &WebhookSecrets| &s.gitlab_signing);
    if tokens.is_empty() && signing.is_empty() {
        return Err(SignatureError::NoSecret);
    }
    if !tokens.is_empty() {
        signature::verify_gitlab_token(&tokens, header(headers, "x-gitlab-token"))?;
    }
    if !signing.is_empty() {
        signature::verify_standard(&signing, body, standard, now, tolerance)?;
    }
    Ok(())
}

/// The JSON payload: the body itself, or its `payload` field when GitHub sends
/// `application/x-www-form-urlencoded`.
fn payload_text<'a>(headers: &HeaderMap, body: &'a [u8]) -> Result<Cow<'a, str>, Reply> {
    let form = header(headers, "content-type").is_some_and(|ct| {
        ct.to_ascii_lowercase()
            .starts_with("application/x-www-form-urlencoded")
    });
    if form {
        return form_urlencoded::parse(body)
            .find(|(k, _)| k == "payload")
            .map(|(_, v)| Cow::Owned(v.into_owned()))
            .ok_or_else(|| Reply::error(400, "the form body has no payload field"));
    }
    // A JSON body is used in place: no copy on the hot path.
    std::str::from_utf8(body)
        .map(Cow::Borrowed)
        .map_err(|_| Reply::error(400, "the body is not UTF-8"))
}

/// The PutEvents entry for a normalised event. When the raw payload would push it over the size
/// limit, the raw payload is left out and the event says so; the delivery still succeeds.
pub fn outgoing(
    detail_type: DetailType,
    event: GitEvent,
    max_entry_bytes: usize,
) -> Result<OutgoingEvent, Reply> {
    let metadata = Metadata::new(event.delivery_id.clone(), event.delivery_id.clone());
    let too_large = |size: usize| {
        Reply::error(
            413,
            format!("the normalised event is {size} bytes, over the {max_entry_bytes}-byte limit"),
        )
    };
    let encode = |e: &Envelope<GitEvent>| {
        OutgoingEvent::new(detail_type, e).map_err(|err| Reply::error(400, err.to_string()))
    };
    let mut envelope = Envelope {
        metadata,
        detail: event,
    };
    let entry = encode(&envelope)?;
    if entry.size() <= max_entry_bytes {
        return Ok(entry);
    }
    let Some(raw) = envelope.detail.raw.take() else {
        return Err(too_large(entry.size()));
    };
    envelope.detail.raw_omitted = Some(RawOmitted {
        reason: "size".into(),
        raw_bytes: raw.get().len(),
        limit_bytes: max_entry_bytes,
    });
    let entry = encode(&envelope)?;
    if entry.size() <= max_entry_bytes {
        Ok(entry)
    } else {
        Err(too_large(entry.size()))
    }
}

//! Publishing eddo's events to EventBridge, losing none.
//!
//! PutEvents takes at most 10 entries and a bounded request size; it can accept a call and still
//! fail some entries (`FailedEntryCount`). Entries failed for a transient reason are resent with
//! bounded, jittered backoff; any other failure is returned, naming each entry. Nothing is
//! dropped silently.

use std::borrow::Cow;
use std::time::Duration;

use aws_sdk_eventbridge::types::PutEventsRequestEntry;
use serde::{Deserialize, Serialize};

use crate::error::{EntryFailure, Error};
use crate::event::{DetailType, Envelope, Metadata, Source};

/// EventBridge's limit on one PutEvents entry.
pub const MAX_ENTRY_BYTES: usize = 256 * 1024;

/// Room for the "… (cut: N bytes)" a cut string ends with.
const CUT_MARKER_BYTES: usize = 32;

/// The longest string in a JSON value, to cut.
fn longest_string(v: &mut serde_json::Value) -> Option<&mut String> {
    use serde_json::Value;
    fn walk<'a>(v: &'a mut Value, best: &mut Option<&'a mut String>) {
        match v {
            Value::String(s) if best.as_ref().is_none_or(|b| s.len() > b.len()) => {
                *best = Some(s);
            }
            Value::Array(items) => items.iter_mut().for_each(|i| walk(i, best)),
            Value::Object(map) => map.values_mut().for_each(|i| walk(i, best)),
            _ => {}
        }
    }
    let mut best = None;
    walk(v, &mut best);
    best.filter(|s| s.len() > 64)
}

/// The least time left worth another PutEvents attempt against a deadline.
pub const MIN_ATTEMPT_TIME: Duration = Duration::from_millis(500);

/// PutEvents' limit on entries per call.
pub const MAX_ENTRIES_PER_CALL: usize = 10;

/// One entry ready for PutEvents; serialisable, for a function that keeps what it has still to
/// say in its state until it is said.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutgoingEvent {
    pub source: Cow<'static, str>,
    pub detail_type: Cow<'static, str>,
    pub detail: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resources: Vec<String>,
}

impl OutgoingEvent {
    /// The event, its metadata carrying its [`event_key`]: a pure function of what it says, so
    /// every publication of it (a republication from a record's outbox, an invocation retried
    /// after its answer was lost) carries the same key, for consumers to deduplicate on.
    pub fn new<D: Serialize>(detail_type: DetailType, detail: &Envelope<D>) -> Result<Self, Error> {
        let mut value = serde_json::to_value(detail)?;
        let key = event_key(detail_type.source().as_str(), detail_type.as_str(), &value);
        if let Some(metadata) = value
            .get_mut("metadata")
            .and_then(serde_json::Value::as_object_mut)
        {
            metadata.insert("event_key".into(), key.into());
        }
        Ok(OutgoingEvent {
            source: Cow::Borrowed(detail_type.source().as_str()),
            detail_type: Cow::Borrowed(detail_type.as_str()),
            detail: serde_json::to_string(&value)?,
            resources: Vec::new(),
        })
    }

    /// The event under another of its detail-type's sources ([`DetailType::sources`]).
    pub fn from_source(mut self, source: Source) -> OutgoingEvent {
        debug_assert!(
            DetailType::parse(&self.detail_type).is_some_and(|d| d.sources().contains(&source)),
            "{} is not published by {}",
            self.detail_type,
            source.as_str()
        );
        self.source = Cow::Borrowed(source.as_str());
        self
    }

    /// An eddo event: `detail` in the envelope with its correlation and causation, cut to fit
    /// EventBridge's entry limit ([`OutgoingEvent::fitted`]).
    pub fn enveloped<D: Serialize>(
        detail_type: DetailType,
        detail: &D,
        correlation_id: &str,
        causation_id: &str,
    ) -> Result<Self, Error> {
        OutgoingEvent::new(
            detail_type,
            &Envelope {
                metadata: Metadata::new(correlation_id, causation_id),
                detail,
            },
        )
        .map(|e| e.fitted(MAX_ENTRY_BYTES))
    }

    /// The event cut to fit `limit` bytes: its longest strings (a reason quoting what an event
    /// carried, say) are shortened, longest first, each ending with how much was cut, until the
    /// entry fits. The shape is unchanged, so the event still matches its schema. An event that
    /// fits, or whose detail is not JSON, is returned as it is.
    pub fn fitted(mut self, limit: usize) -> OutgoingEvent {
        let over = self.size().saturating_sub(limit);
        if over == 0 {
            return self;
        }
        let Ok(mut detail) = serde_json::from_str::<serde_json::Value>(&self.detail) else {
            return self;
        };
        let mut excess = over;
        // Each pass cuts the longest string to what the rest needs, plus the marker it adds.
        for _ in 0..64 {
            let Some(longest) = longest_string(&mut detail) else {
                break;
            };
            let len = longest.len();
            let keep = len
                .saturating_sub(excess + CUT_MARKER_BYTES)
                .max(16)
                .min(len);
            let mut at = keep;
            while !longest.is_char_boundary(at) {
                at -= 1;
            }
            let cut = len - at;
            longest.truncate(at);
            longest.push_str(&format!("… (cut: {cut} bytes)"));
            let Ok(text) = serde_json::to_string(&detail) else {
                return self;
            };
            self.detail = text;
            excess = self.size().saturating_sub(limit);
            if excess == 0 {
                break;
            }
        }
        self
    }

    /// An event in another system's contract (sbt-aws's `provisionSuccess`, say): its source,
    /// detail-type and detail as that system defines them, without eddo's envelope.
    pub fn foreign<D: Serialize>(
        source: &str,
        detail_type: &str,
        detail: &D,
    ) -> Result<Self, Error> {
        Ok(OutgoingEvent {
            source: Cow::Owned(source.to_string()),
            detail_type: Cow::Owned(detail_type.to_string()),
            detail: serde_json::to_string(detail)?,
            resources: Vec::new(),
        })
    }

    /// The entry's size as EventBridge counts it against the limit.
    pub fn size(&self) -> usize {
        entry_size(
            &self.source,
            &self.detail_type,
            &self.detail,
            &self.resources,
            false,
        )
    }

    /// The PutEvents request entry for `bus`.
    pub fn to_entry(&self, bus: &str) -> PutEventsRequestEntry {
        PutEventsRequestEntry::builder()
            .event_bus_name(bus)
            .source(self.source.as_ref())
            .detail_type(self.detail_type.as_ref())
            .detail(&self.detail)
            .set_resources((!self.resources.is_empty()).then(|| self.resources.clone()))
            .build()
    }
}

/// The stable key of an eddo event: 32 hex digits of a SHA-256 of its source, detail-type and
/// detail (keys sorted, `metadata.event_key` left out). Two publications of one event carry the
/// same key; events that differ in anything (another build, another cause) carry different ones.
pub fn event_key(source: &str, detail_type: &str, detail: &serde_json::Value) -> String {
    use serde_json::Value;
    use sha2::Digest as _;
    /// The canonical text goes straight into the hash: no copy of a large detail is built.
    struct Hashing(sha2::Sha256);
    impl std::io::Write for Hashing {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.update(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    /// Where a value sits: the detail, its `metadata` (whose `event_key` is left out), or below.
    #[derive(PartialEq)]
    enum At {
        Top,
        Metadata,
        Inner,
    }
    // Keys sorted, each entry followed by ',' (the form the first keys were made with); keys and
    // scalars as serde_json writes them.
    fn json<T: Serialize + ?Sized>(out: &mut Hashing, v: &T) {
        serde_json::to_writer(out, v).expect("hashing does not fail");
    }
    fn canonical(v: &Value, at: At, out: &mut Hashing) {
        match v {
            Value::Object(map) => {
                let mut keys: Vec<&String> = map
                    .keys()
                    .filter(|k| !(at == At::Metadata && *k == "event_key"))
                    .collect();
                keys.sort();
                out.0.update(b"{");
                for k in keys {
                    json(out, k);
                    out.0.update(b":");
                    let below = if at == At::Top && k == "metadata" {
                        At::Metadata
                    } else {
                        At::Inner
                    };
                    canonical(&map[k], below, out);
                    out.0.update(b",");
                }
                out.0.update(b"}");
            }
            Value::Array(items) => {
                out.0.update(b"[");
                for i in items {
                    canonical(i, At::Inner, out);
                    out.0.update(b",");
                }
                out.0.update(b"]");
            }
            other => json(out, other),
        }
    }
    let mut hash = Hashing(sha2::Sha256::new());
    hash.0
        .update(format!("{source}\n{detail_type}\n").as_bytes());
    canonical(detail, At::Top, &mut hash);
    let hash = hash.0.finalize();
    hash[..16].iter().map(|b| format!("{b:02x}")).collect()
}

/// A PutEvents entry's size as AWS documents it ("Calculating PutEvents event entry size"): 14
/// bytes for `Time` when set, plus the UTF-8 bytes of `Source`, `DetailType`, `Detail` and each
/// of `Resources`. The bus name and trace header do not count.
pub fn entry_size(
    source: &str,
    detail_type: &str,
    detail: &str,
    resources: &[String],
    has_time: bool,
) -> usize {
    let time = if has_time { 14 } else { 0 };
    time + source.len()
        + detail_type.len()
        + detail.len()
        + resources.iter().map(String::len).sum::<usize>()
}

/// How transient entry failures are retried: full-jitter exponential backoff, bounded in count
/// and in each delay, so a webhook still answers well inside the sender's timeout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub attempts: u32,
    pub base: Duration,
    pub cap: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            attempts: 4,
            base: Duration::from_millis(50),
            cap: Duration::from_millis(800),
        }
    }
}

impl Backoff {
    /// The delay before retry `n` (1-based): uniform in `0..=min(cap, base * 2^(n-1))`.
    pub fn delay(&self, n: u32) -> Duration {
        let ceiling = self
            .base
            .saturating_mul(1u32 << (n.saturating_sub(1)).min(16))
            .min(self.cap);
        let ms = ceiling.as_millis() as u64;
        Duration::from_millis(fastrand::u64(0..=ms))
    }
}

/// Entry error codes worth resending: the ones AWS documents as transient.
pub fn is_retryable_entry_code(code: &str) -> bool {
    matches!(
        code,
        "InternalFailure" | "ThrottlingException" | "InternalException"
    )
}

/// What a publish achieved: one EventBridge event id per entry, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    pub event_ids: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct Publisher {
    client: aws_sdk_eventbridge::Client,
    bus: String,
    max_entry_bytes: usize,
    backoff: Backoff,
    cdevents: bool,
}

impl Publisher {
    pub fn new(
        client: aws_sdk_eventbridge::Client,
        bus: impl Into<String>,
        max_entry_bytes: usize,
    ) -> Self {
        Publisher {
            client,
            bus: bus.into(),
            max_entry_bytes,
            backoff: Backoff::default(),
            cdevents: false,
        }
    }

    /// The publisher to the bus the deployment's settings name, with their entry limit.
    pub fn from_config(common: &crate::config::CommonConfig, sdk: &aws_config::SdkConfig) -> Self {
        Publisher::new(
            aws_sdk_eventbridge::Client::new(sdk),
            &common.event_bus_name,
            common.max_entry_bytes,
        )
        .saying_cdevents(common.cdevents)
    }

    /// A publisher whose functions say their decisions as CDEvents too (`cdevents::emit`), or
    /// not.
    pub fn saying_cdevents(mut self, on: bool) -> Self {
        self.cdevents = on;
        self
    }

    /// Whether decisions are said as CDEvents too.
    pub fn says_cdevents(&self) -> bool {
        self.cdevents
    }

    pub fn with_backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    pub fn max_entry_bytes(&self) -> usize {
        self.max_entry_bytes
    }

    /// The bus it publishes to.
    pub fn bus(&self) -> &str {
        &self.bus
    }

    /// Publishes every event or says which were not published and why.
    ///
    /// Every entry is checked against the size limit before any call, so an oversized entry
    /// publishes nothing. Calls carry at most 10 entries and at most the size limit in all.
    pub async fn publish(&self, events: &[OutgoingEvent]) -> Result<Published, Error> {
        self.publish_until(events, None).await
    }

    /// [`Publisher::publish`] within `deadline`: each call is cut off at it, and no attempt is
    /// made that could not finish before it; out of time is a retryable failure
    /// ([`Error::PublishExhausted`]), like any transient one.
    pub async fn publish_until(
        &self,
        events: &[OutgoingEvent],
        deadline: Option<tokio::time::Instant>,
    ) -> Result<Published, Error> {
        let (event_ids, result) = self.publish_each(events, deadline).await;
        result.map(|()| Published { event_ids })
    }

    /// [`Publisher::publish_until`], saying which entries EventBridge accepted even when others
    /// failed: their event ids, in order (empty: not accepted), beside the outcome.
    pub async fn publish_each(
        &self,
        events: &[OutgoingEvent],
        deadline: Option<tokio::time::Instant>,
    ) -> (Vec<String>, Result<(), Error>) {
        let mut event_ids = vec![String::new(); events.len()];
        let result = self.publish_filling(events, deadline, &mut event_ids).await;
        (event_ids, result)
    }

    async fn publish_filling(
        &self,
        events: &[OutgoingEvent],
        deadline: Option<tokio::time::Instant>,
        event_ids: &mut [String],
    ) -> Result<(), Error> {
        let fitted: Vec<OutgoingEvent>;
        let events = if events.iter().any(|e| e.size() > self.max_entry_bytes) {
            fitted = events
                .iter()
                .map(|e| e.clone().fitted(self.max_entry_bytes))
                .collect();
            &fitted[..]
        } else {
            events
        };
        for e in events {
            let size = e.size();
            if size > self.max_entry_bytes {
                return Err(Error::EntryTooLarge {
                    detail_type: e.detail_type.to_string(),
                    size,
                    limit: self.max_entry_bytes,
                });
            }
        }
        for batch in batches(events, self.max_entry_bytes) {
            self.publish_batch(events, &batch, event_ids, deadline)
                .await?;
        }
        Ok(())
    }

    /// Sends the entries at `indices`, resending the transient failures, and fills `event_ids`.
    /// Publishes one eddo event: `detail` in the envelope with its correlation and causation.
    /// Returns the detail-type published, for the invocation's report.
    pub async fn publish_one<D: Serialize>(
        &self,
        detail_type: DetailType,
        detail: &D,
        correlation_id: &str,
        causation_id: &str,
    ) -> Result<String, Error> {
        let event = OutgoingEvent::enveloped(detail_type, detail, correlation_id, causation_id)?;
        self.publish(std::slice::from_ref(&event)).await?;
        Ok(detail_type.as_str().to_string())
    }

    async fn publish_batch(
        &self,
        events: &[OutgoingEvent],
        indices: &[usize],
        event_ids: &mut [String],
        deadline: Option<tokio::time::Instant>,
    ) -> Result<(), Error> {
        let total = events.len();
        let mut pending: Vec<usize> = indices.to_vec();
        let mut rejected: Vec<EntryFailure> = Vec::new();
        let mut attempt = 0;
        loop {
            attempt += 1;
            let entries = pending
                .iter()
                .map(|&i| events[i].to_entry(&self.bus))
                .collect();
            let mut transient: Vec<(usize, EntryFailure)> = Vec::new();
            let call = self.client.put_events().set_entries(Some(entries)).send();
            let answer = match deadline {
                None => Some(call.await),
                Some(d) => tokio::time::timeout_at(d, call).await.ok(),
            };
            let Some(answer) = answer else {
                // Out of time mid-call: the entries may or may not have landed; said as a
                // transient failure, with no attempt left.
                let published = event_ids.iter().filter(|id| !id.is_empty()).count();
                return Err(Error::PublishExhausted {
                    failures: pending
                        .iter()
                        .map(|&i| {
                            failure(
                                &events[i],
                                "OutOfTime",
                                "PutEvents did not answer in the time left",
                            )
                        })
                        .collect(),
                    attempts: attempt,
                    published,
                    total,
                });
            };
            match answer {
                Ok(out) => {
                    let results = out.entries();
                    if results.len() != pending.len() {
                        // The API promises one result per entry, in order; without it nothing can
                        // be attributed, so treat the whole call as failed and transient.
                        for &i in &pending {
                            transient.push((
                                i,
                                failure(
                                    &events[i],
                                    "MissingResult",
                                    "PutEvents returned no result for this entry",
                                ),
                            ));
                        }
                    }
                    for (&i, result) in pending.iter().zip(results) {
                        match (result.error_code(), result.event_id()) {
                            (None, Some(id)) => event_ids[i] = id.to_string(),
                            (None, None) => transient.push((
                                i,
                                failure(&events[i], "MissingEventId", "no event id and no error"),
                            )),
                            (Some(code), _) => {
                                let f =
                                    failure(&events[i], code, result.error_message().unwrap_or(""));
                                if is_retryable_entry_code(code) {
                                    transient.push((i, f));
                                } else {
                                    rejected.push(f);
                                }
                            }
                        }
                    }
                }
                Err(err) => {
                    let err = Error::aws("EventBridge", "PutEvents", err);
                    if !err.is_retryable() {
                        return Err(err);
                    }
                    let msg = err.to_string();
                    for &i in &pending {
                        transient.push((i, failure(&events[i], "CallFailed", &msg)));
                    }
                }
            }
            let published = event_ids.iter().filter(|id| !id.is_empty()).count();
            if transient.is_empty() {
                if rejected.is_empty() {
                    return Ok(());
                }
                return Err(Error::PublishRejected {
                    failures: rejected,
                    published,
                    total,
                });
            }
            let delay = self.backoff.delay(attempt);
            let out_of_time = deadline
                .is_some_and(|d| tokio::time::Instant::now() + delay + MIN_ATTEMPT_TIME >= d);
            if attempt >= self.backoff.attempts || out_of_time {
                let mut failures: Vec<EntryFailure> =
                    transient.into_iter().map(|(_, f)| f).collect();
                failures.extend(rejected);
                return Err(Error::PublishExhausted {
                    failures,
                    attempts: attempt,
                    published,
                    total,
                });
            }
            tracing::warn!(
                attempt,
                retrying = transient.len(),
                code = %transient[0].1.code,
                "PutEvents entries failed transiently; resending"
            );
            pending = transient.into_iter().map(|(i, _)| i).collect();
            tokio::time::sleep(delay).await;
        }
    }
}

fn failure(event: &OutgoingEvent, code: &str, message: &str) -> EntryFailure {
    EntryFailure {
        detail_type: event.detail_type.to_string(),
        code: code.to_string(),
        message: message.to_string(),
    }
}

/// Groups entry indices into calls of at most 10 entries and at most `max_bytes` in all.
pub fn batches(events: &[OutgoingEvent], max_bytes: usize) -> Vec<Vec<usize>> {
    let mut out: Vec<Vec<usize>> = Vec::new();
    let mut current: Vec<usize> = Vec::new();
    let mut bytes = 0;
    for (i, e) in events.iter().enumerate() {
        let size = e.size();
        if !current.is_empty()
            && (current.len() == MAX_ENTRIES_PER_CALL || bytes + size > max_bytes)
        {
            out.push(std::mem::take(&mut current));
            bytes = 0;
        }
        current.push(i);
        bytes += size;
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_event_key_is_the_event_s_and_only_its() {
        use crate::event::DetailType::DeploymentStarted;
        let started = |build: &str, cause: &str| {
            OutgoingEvent::enveloped(
                DeploymentStarted,
                &serde_json::json!({"service": "api", "build_id": build}),
                "c-1",
                cause,
            )
            .unwrap()
        };
        let key = |e: &OutgoingEvent| {
            let d: serde_json::Value = serde_json::from_str(&e.detail).unwrap();
            d["metadata"]["event_key"].as_str().unwrap().to_string()
        };
        let a = started("b:1", "e-1");
        assert_eq!(a, started("b:1", "e-1"), "the same event, byte for byte");
        assert_eq!(key(&a).len(), 32);
        assert_ne!(key(&a), key(&started("b:2", "e-1")));
        assert_ne!(key(&a), key(&started("b:1", "e-2")));
        // Field order does not change it.
        let d: serde_json::Value = serde_json::from_str(&a.detail).unwrap();
        let mut reordered = serde_json::Map::new();
        for (k, v) in d.as_object().unwrap().iter().rev() {
            reordered.insert(k.clone(), v.clone());
        }
        assert_eq!(
            event_key(&a.source, &a.detail_type, &reordered.into()),
            key(&a)
        );
    }

    use super::*;
    use crate::event::Metadata;
    use aws_sdk_eventbridge::operation::put_events::PutEventsOutput;
    use aws_sdk_eventbridge::types::PutEventsResultEntry;
    use aws_smithy_mocks::{RuleMode, mock, mock_client};
    use proptest::prelude::*;
    use serde_json::json;

    fn event(n: usize, pad: usize) -> OutgoingEvent {
        let env = Envelope {
            metadata: Metadata::new("c", "d"),
            detail: json!({"n": n, "pad": "x".repeat(pad)}),
        };
        OutgoingEvent::new(DetailType::GitPush, &env).unwrap()
    }

    fn ok(id: &str) -> PutEventsResultEntry {
        PutEventsResultEntry::builder().event_id(id).build()
    }

    fn failed(code: &str) -> PutEventsResultEntry {
        PutEventsResultEntry::builder()
            .error_code(code)
            .error_message("nope")
            .build()
    }

    fn fast() -> Backoff {
        Backoff {
            attempts: 4,
            base: Duration::from_millis(1),
            cap: Duration::from_millis(2),
        }
    }

    #[test]
    fn size_counts_what_aws_counts() {
        // Source + DetailType + Detail + Resources, in UTF-8 bytes; 14 more for Time.
        assert_eq!(
            entry_size("eddo.webhook", "Git Push", "{\"a\":\"é\"}", &[], false),
            12 + 8 + 10
        );
        assert_eq!(
            entry_size("s", "d", "{}", &["arn:aws:x".to_string()], true),
            14 + 1 + 1 + 2 + 9
        );
        let e = event(1, 0);
        assert_eq!(
            e.size(),
            "eddo.webhook".len() + "Git Push".len() + e.detail.len()
        );
    }

    #[test]
    fn batches_respect_count_and_bytes() {
        let events: Vec<_> = (0..23).map(|n| event(n, 10)).collect();
        let b = batches(&events, 256 * 1024);
        assert_eq!(b.iter().map(Vec::len).collect::<Vec<_>>(), vec![10, 10, 3]);
        let big: Vec<_> = (0..3).map(|n| event(n, 100_000)).collect();
        let b = batches(&big, 256 * 1024);
        assert_eq!(b, vec![vec![0, 1], vec![2]]);
    }

    proptest! {
        #[test]
        fn batches_keep_every_entry_once_in_order(sizes in proptest::collection::vec(0usize..5000, 0..40), limit in 6000usize..20000) {
            let events: Vec<_> = sizes.iter().enumerate().map(|(n, s)| event(n, *s)).collect();
            let b = batches(&events, limit);
            let flat: Vec<usize> = b.iter().flatten().copied().collect();
            prop_assert_eq!(flat, (0..events.len()).collect::<Vec<_>>());
            for batch in &b {
                prop_assert!(batch.len() <= MAX_ENTRIES_PER_CALL);
                let bytes: usize = batch.iter().map(|&i| events[i].size()).sum();
                prop_assert!(batch.len() == 1 || bytes <= limit);
            }
        }
    }

    #[test]
    fn backoff_is_bounded() {
        let b = Backoff {
            attempts: 10,
            base: Duration::from_millis(50),
            cap: Duration::from_millis(800),
        };
        for n in 1..40 {
            assert!(b.delay(n) <= Duration::from_millis(800));
        }
        assert!(b.delay(1) <= Duration::from_millis(50));
    }

    #[test]
    fn an_oversized_event_is_cut_to_fit_and_says_so() {
        let big = event(1, 4000);
        let cut = big.clone().fitted(2048);
        assert!(cut.size() <= 2048, "{}", cut.size());
        let detail: serde_json::Value = serde_json::from_str(&cut.detail).unwrap();
        let pad = detail["pad"].as_str().unwrap();
        assert!(pad.starts_with("xxxx") && pad.contains("(cut: "), "{pad}");
        assert_eq!(detail["n"], 1, "the rest is untouched");
        assert_eq!(event(0, 10).fitted(2048), event(0, 10));
        // Multi-byte text is cut on a character boundary.
        let wide = OutgoingEvent::foreign("x", "y", &json!({"r": "é".repeat(3000)})).unwrap();
        let cut = wide.fitted(2048);
        assert!(cut.size() <= 2048);
        // Enveloped eddo events always fit EventBridge's own limit.
        let huge = OutgoingEvent::enveloped(
            DetailType::SignalRejected,
            &json!({"reason": "k".repeat(300 * 1024)}),
            "c",
            "d",
        )
        .unwrap();
        assert!(huge.size() <= MAX_ENTRY_BYTES);
    }

    #[tokio::test]
    async fn an_entry_that_cannot_be_cut_publishes_nothing() {
        let rule = mock!(aws_sdk_eventbridge::Client::put_events)
            .then_output(|| PutEventsOutput::builder().build());
        let client = mock_client!(aws_sdk_eventbridge, [&rule]);
        let p = Publisher::new(client, "eddo", 2048).with_backoff(fast());
        let numbers = OutgoingEvent::foreign("x", "y", &json!({"n": vec![123456; 1000]})).unwrap();
        let err = p.publish(&[event(0, 10), numbers]).await.unwrap_err();
        assert!(
            matches!(err, Error::EntryTooLarge { size, limit: 2048, .. } if size > 4000),
            "{err}"
        );
        assert!(!err.is_retryable());
        assert_eq!(rule.num_calls(), 0);
    }

    #[tokio::test]
    async fn partial_failure_resends_only_the_failed_entries() {
        let rule = mock!(aws_sdk_eventbridge::Client::put_events)
            .sequence()
            .output(|| {
                PutEventsOutput::builder()
                    .failed_entry_count(2)
                    .entries(ok("id-0"))
                    .entries(failed("ThrottlingException"))
                    .entries(failed("InternalFailure"))
                    .build()
            })
            .output(|| {
                PutEventsOutput::builder()
                    .entries(ok("id-1"))
                    .entries(ok("id-2"))
                    .build()
            })
            .build();
        let resent = mock!(aws_sdk_eventbridge::Client::put_events)
            .then_output(|| PutEventsOutput::builder().build());
        let client = mock_client!(aws_sdk_eventbridge, RuleMode::Sequential, [&rule, &resent]);
        let p = Publisher::new(client, "eddo", 256 * 1024).with_backoff(fast());
        let out = p
            .publish(&[event(0, 1), event(1, 1), event(2, 1)])
            .await
            .unwrap();
        assert_eq!(out.event_ids, vec!["id-0", "id-1", "id-2"]);
        assert_eq!(rule.num_calls(), 2);
        assert_eq!(resent.num_calls(), 0);
    }

    #[tokio::test]
    async fn the_resend_carries_only_the_failed_entries() {
        let first = mock!(aws_sdk_eventbridge::Client::put_events)
            .match_requests(|r| r.entries().len() == 3)
            .then_output(|| {
                PutEventsOutput::builder()
                    .failed_entry_count(1)
                    .entries(ok("id-0"))
                    .entries(ok("id-1"))
                    .entries(failed("ThrottlingException"))
                    .build()
            });
        let second = mock!(aws_sdk_eventbridge::Client::put_events)
            .match_requests(|r| {
                r.entries().len() == 1 && r.entries()[0].detail().unwrap().contains("\"n\":2")
            })
            .then_output(|| PutEventsOutput::builder().entries(ok("id-2")).build());
        let client = mock_client!(aws_sdk_eventbridge, RuleMode::Sequential, [&first, &second]);
        let p = Publisher::new(client, "eddo", 256 * 1024).with_backoff(fast());
        let out = p
            .publish(&[event(0, 1), event(1, 1), event(2, 1)])
            .await
            .unwrap();
        assert_eq!(out.event_ids, vec!["id-0", "id-1", "id-2"]);
        assert_eq!((first.num_calls(), second.num_calls()), (1, 1));
    }

    #[tokio::test]
    async fn persistent_throttling_is_a_retryable_error_after_bounded_attempts() {
        let rule = mock!(aws_sdk_eventbridge::Client::put_events).then_output(|| {
            PutEventsOutput::builder()
                .failed_entry_count(1)
                .entries(failed("ThrottlingException"))
                .build()
        });
        let client = mock_client!(aws_sdk_eventbridge, RuleMode::MatchAny, [&rule]);
        let p = Publisher::new(client, "eddo", 256 * 1024).with_backoff(fast());
        let err = p.publish(&[event(0, 1)]).await.unwrap_err();
        assert!(
            matches!(
                err,
                Error::PublishExhausted {
                    attempts: 4,
                    published: 0,
                    total: 1,
                    ..
                }
            ),
            "{err}"
        );
        assert!(err.is_retryable());
        assert_eq!(rule.num_calls(), 4);
    }

    #[tokio::test]
    async fn a_permanent_entry_failure_is_surfaced_not_dropped() {
        let rule = mock!(aws_sdk_eventbridge::Client::put_events).then_output(|| {
            PutEventsOutput::builder()
                .failed_entry_count(1)
                .entries(ok("id-0"))
                .entries(
                    PutEventsResultEntry::builder()
                        .error_code("MalformedDetail")
                        .error_message("Detail is malformed.")
                        .build(),
                )
                .build()
        });
        let client = mock_client!(aws_sdk_eventbridge, [&rule]);
        let p = Publisher::new(client, "eddo", 256 * 1024).with_backoff(fast());
        let err = p.publish(&[event(0, 1), event(1, 1)]).await.unwrap_err();
        assert!(!err.is_retryable());
        assert_eq!(
            err.to_string(),
            "EventBridge rejected 1 of 2 entries (1 published): Git Push (MalformedDetail: Detail is malformed.)"
        );
        assert_eq!(rule.num_calls(), 1);
    }

    #[tokio::test]
    async fn a_throttled_call_is_retried_then_succeeds() {
        // EventBridge's real throttling answer: HTTP 400 with the code in the JSON body.
        let throttled =
            Some(r#"{"__type":"ThrottlingException","message":"Rate exceeded"}"#.to_string());
        let rule = mock!(aws_sdk_eventbridge::Client::put_events)
            .sequence()
            .http_status(400, throttled)
            .times(5)
            .output(|| PutEventsOutput::builder().entries(ok("id-0")).build())
            .build();
        let client = mock_client!(aws_sdk_eventbridge, RuleMode::Sequential, [&rule]);
        let p = Publisher::new(client, "eddo", 256 * 1024).with_backoff(fast());
        let out = p.publish(&[event(0, 1)]).await.unwrap();
        assert_eq!(out.event_ids, vec!["id-0"]);
        assert_eq!(rule.num_calls(), 6);
    }

    #[tokio::test]
    async fn a_rejected_call_is_permanent_and_not_retried() {
        let denied = Some(r#"{"__type":"AccessDeniedException","message":"not authorized to perform events:PutEvents"}"#.to_string());
        let rule = mock!(aws_sdk_eventbridge::Client::put_events)
            .sequence()
            .http_status(400, denied)
            .build();
        let client = mock_client!(aws_sdk_eventbridge, RuleMode::Sequential, [&rule]);
        let p = Publisher::new(client, "eddo", 256 * 1024).with_backoff(fast());
        let err = p.publish(&[event(0, 1)]).await.unwrap_err();
        assert!(!err.is_retryable(), "{err}");
        assert!(err.to_string().contains("AccessDeniedException"), "{err}");
        assert_eq!(rule.num_calls(), 1);
    }

    #[tokio::test]
    async fn twenty_three_events_take_three_calls() {
        let rule = mock!(aws_sdk_eventbridge::Client::put_events).then_compute_output(|req| {
            let mut out = PutEventsOutput::builder();
            for e in req.entries() {
                assert_eq!(e.event_bus_name(), Some("eddo"));
                out = out.entries(ok(&format!("id-{}", e.detail().unwrap().len())));
            }
            out.build()
        });
        let client = mock_client!(aws_sdk_eventbridge, RuleMode::MatchAny, [&rule]);
        let p = Publisher::new(client, "eddo", 256 * 1024);
        let events: Vec<_> = (0..23).map(|n| event(n, 1)).collect();
        let out = p.publish(&events).await.unwrap();
        assert_eq!(out.event_ids.len(), 23);
        assert!(out.event_ids.iter().all(|id| id.starts_with("id-")));
        assert_eq!(rule.num_calls(), 3);
    }

    /// Keys already published stay what they were: a consumer deduplicating on them sees one
    /// event across a deployment that changed how the key is computed.
    #[test]
    fn the_key_of_a_known_event_is_the_one_it_always_had() {
        let detail = json!({
            "metadata": {"schema_version": "1.0", "correlation_id": "c-1", "causation_id": "d-1", "event_key": "ignored"},
            "service": "hello-world", "commit_sha": "6113728f27ae82c7b1a177c8d03f9e96e0adf246",
            "evidence": [{"signal": "build", "passed": true, "summary": "quote \" and \u{e9} and \n"}],
            "nested": {"z": 1, "a": [null, 2.5, false, {"y": "x", "b": {}}]},
        });
        let key = event_key("eddo.gate", "Deployment Started", &detail);
        assert_eq!(key, "60824d0b472f17e5af0c92ed45d22636");
    }
}

//! The policy in force, read through a cache with a time to live.
//!
//! Operators change the policy under pressure (an exception to unblock a fix, `mode: observe` to
//! stop a misbehaving gate), so a function never keeps one for the life of its environment: it
//! reads the SSM parameter at most once per TTL (`EDDO_POLICY_TTL_SECS`, 60 s by default) and
//! makes no call for the events in between. The store is an SSM parameter or an object in a
//! versioned S3 bucket ([`PolicyStore`]); an object unchanged since the last read is a 304 to a
//! conditional GET, with nothing to parse.
//!
//! A version that does not parse or check is refused: the last good policy stays in force, and
//! one `Policy Rejected` event per function and bad version (a conditional write decides which
//! environment says it) names the version and every mistake. With no good policy yet (a cold
//! start while SSM throttles, or while the only version is bad) the function does not exit: each
//! event fails as retryable ([`Error::NoPolicy`]) with one log line, Lambda retries it, and the
//! function recovers by itself once the policy can be read.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use tracing::{error, info, warn};

use super::{Mistake, Policy, PolicyStore, PolicyVersion};
use crate::DetailType;
use crate::error::Error;
use crate::event::{Envelope, Metadata, Source};
use crate::idempotency::{Claim, IdempotencyKey, Once};
use crate::outbox::Outbox;
use crate::publish::OutgoingEvent;

/// The default time to live (template parameter `PolicyCacheSeconds`).
pub const DEFAULT_TTL_SECS: u64 = 60;

/// How long a bad version's `Policy Rejected` record is kept: the version is said once in that
/// time, however long it stays the parameter's latest.
const REJECTION_RETENTION: Duration = Duration::from_secs(90 * 24 * 3600);

/// Where a function's policy comes from: fixed (tests, benchmarks, the soak), or the SSM
/// parameter through the cache.
pub struct Policies(Inner);

enum Inner {
    Fixed(Arc<Policy>),
    Live(Box<Live>),
}

impl Policies {
    /// The policy as given, at the version it says it was read from.
    pub fn fixed(policy: Policy) -> Policies {
        let version = policy.version.clone();
        Policies::fixed_at(policy, version)
    }

    pub fn fixed_at(policy: Policy, version: Option<PolicyVersion>) -> Policies {
        Policies(Inner::Fixed(Arc::new(policy.at_version(version))))
    }

    pub fn live(live: Live) -> Policies {
        Policies(Inner::Live(Box::new(live)))
    }

    /// The policy in force for the event at hand: one snapshot, used for the whole event.
    pub async fn current(&self) -> Result<Arc<Policy>, Error> {
        match &self.0 {
            Inner::Fixed(p) => Ok(p.clone()),
            Inner::Live(live) => live.current().await,
        }
    }

    /// The policy in force now, without reading SSM (`None` before the first good read).
    pub fn in_force(&self) -> Option<Arc<Policy>> {
        match &self.0 {
            Inner::Fixed(p) => Some(p.clone()),
            Inner::Live(live) => live.lock().current.clone(),
        }
    }

    /// Reads of the store (GetParameter or GetObject calls) made so far (0 for a fixed policy).
    pub fn reads(&self) -> u64 {
        match &self.0 {
            Inner::Fixed(_) => 0,
            Inner::Live(live) => live.reads.load(Ordering::Relaxed),
        }
    }
}

impl From<Policy> for Policies {
    fn from(policy: Policy) -> Policies {
        Policies::fixed(policy)
    }
}

/// Who says a refused version, once: the function's own event source and its state table.
pub struct Rejections {
    once: Once,
    source: Source,
    /// The function, as the event names it (`scan-gate`).
    function: &'static str,
}

impl Rejections {
    pub fn new(outbox: Outbox, source: Source, function: &'static str) -> Rejections {
        Rejections {
            once: Once::new(outbox, REJECTION_RETENTION),
            source,
            function,
        }
    }
}

/// The policy's store behind a cache.
pub struct Live {
    reader: Reader,
    store: PolicyStore,
    ttl: u64,
    clock: fn() -> u64,
    rejections: Option<Rejections>,
    state: Mutex<State>,
    reads: AtomicU64,
}

/// The client that reads the store.
enum Reader {
    Ssm(aws_sdk_ssm::Client),
    S3(aws_sdk_s3::Client),
}

#[derive(Default)]
struct State {
    current: Option<Arc<Policy>>,
    /// When the store was last read (the clock's seconds), successfully or not.
    checked: Option<u64>,
    /// Versions refused and said (or, with no one to say them to, logged).
    refused: BTreeSet<PolicyVersion>,
    /// The object's ETag and version id as last read (S3): the next read is conditional on it.
    seen: Option<(String, PolicyVersion)>,
}

/// A read of the store under way.
type Reading<'a> = std::pin::Pin<Box<dyn Future<Output = Result<Read, String>> + Send + 'a>>;

/// What a read of the store found.
enum Read {
    /// The document and its version (and the object's ETag, from S3).
    Text(String, PolicyVersion, Option<String>),
    /// The object is the one read last (304 to the conditional GET): this version, unparsed.
    Unchanged(PolicyVersion),
}

/// The `Policy Rejected` detail.
#[derive(Serialize)]
struct RejectedDetail<'a> {
    /// Where the refused version is: the SSM parameter or the `s3://` object.
    parameter: &'a str,
    version: &'a PolicyVersion,
    function: &'a str,
    /// The version still in force, if any.
    in_force: Option<&'a PolicyVersion>,
    mistakes: &'a [Mistake],
}

impl Live {
    pub fn new(sdk: &aws_config::SdkConfig, store: &PolicyStore, ttl: Duration) -> Live {
        Live {
            reader: match store {
                PolicyStore::Parameter(_) => Reader::Ssm(aws_sdk_ssm::Client::new(sdk)),
                PolicyStore::Object { .. } => Reader::S3(aws_sdk_s3::Client::new(sdk)),
            },
            store: store.clone(),
            ttl: ttl.as_secs(),
            clock: crate::idempotency::now_epoch,
            rejections: None,
            state: Mutex::new(State::default()),
            reads: AtomicU64::new(0),
        }
    }

    /// The function's policy as its settings say: the store, its TTL, and each refused
    /// version said under `source`, once, through the function's table and bus.
    pub fn from_config(
        config: &crate::config::PolicyConfig,
        sdk: &aws_config::SdkConfig,
        source: Source,
        function: &'static str,
    ) -> Live {
        let outbox = Outbox::new(
            aws_sdk_dynamodb::Client::new(sdk),
            &config.common.table_name,
            crate::publish::Publisher::from_config(&config.common, sdk),
        );
        Live::new(sdk, &config.policy, config.policy_ttl)
            .reporting(Rejections::new(outbox, source, function))
    }

    /// Says each refused version with a `Policy Rejected` event, once per function.
    pub fn reporting(mut self, rejections: Rejections) -> Live {
        self.rejections = Some(rejections);
        self
    }

    /// The clock the TTL is measured by (tests move it).
    pub fn with_clock(mut self, clock: fn() -> u64) -> Live {
        self.clock = clock;
        self
    }

    /// Another SSM client (one that counts or fails its calls, in tests), for a parameter.
    pub fn with_ssm(mut self, ssm: aws_sdk_ssm::Client) -> Live {
        if let Reader::Ssm(_) = self.reader {
            self.reader = Reader::Ssm(ssm);
        }
        self
    }

    /// Another S3 client (one that counts or fails its calls, in tests), for an object.
    pub fn with_s3(mut self, s3: aws_sdk_s3::Client) -> Live {
        if let Reader::S3(_) = self.reader {
            self.reader = Reader::S3(s3);
        }
        self
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    async fn current(&self) -> Result<Arc<Policy>, Error> {
        let now = (self.clock)();
        let in_force = {
            let state = self.lock();
            if let (Some(current), Some(checked)) = (&state.current, state.checked)
                && now < checked.saturating_add(self.ttl)
            {
                return Ok(current.clone());
            }
            state.current.clone()
        };
        let read = self.read().await;
        self.lock().checked = Some(now);
        let (text, version, etag) = match read {
            Ok(Read::Text(text, version, etag)) => (text, version, etag),
            Ok(Read::Unchanged(version)) => {
                // Nothing new to parse: the version in force, or one already refused and said.
                return match in_force {
                    Some(current) => Ok(current),
                    None => Err(no_policy(format!(
                        "version {version} of {} is refused",
                        self.store
                    ))),
                };
            }
            Err(why) => {
                return match in_force {
                    Some(current) => {
                        warn!(error = %why, version = ?current.version, "could not read the policy; the one in force stays");
                        Ok(current)
                    }
                    None => Err(no_policy(why)),
                };
            }
        };
        let (result, settled) = self.settle(&text, &version, in_force).await;
        // An object read again is conditional on this version once it is settled: in force, or
        // refused and said (one whose refusal could not be said is read whole again, and said).
        if let Some(etag) = etag
            && settled
        {
            self.lock().seen = Some((etag, version));
        }
        result
    }

    /// Puts `text` (version `version`) in force, or refuses it and keeps `in_force`; with
    /// whether the version is settled (in force, or refused and said).
    async fn settle(
        &self,
        text: &str,
        version: &PolicyVersion,
        in_force: Option<Arc<Policy>>,
    ) -> (Result<Arc<Policy>, Error>, bool) {
        if let Some(current) = &in_force
            && current.version.as_ref() == Some(version)
        {
            return (Ok(current.clone()), true);
        }
        match Policy::check(text) {
            Ok(policy) => {
                let loaded = Arc::new(policy.at_version(Some(version.clone())));
                info!(
                    store = %self.store,
                    %version,
                    was = ?in_force.as_ref().and_then(|p| p.version.as_ref()),
                    "policy in force"
                );
                self.lock().current = Some(loaded.clone());
                (Ok(loaded), true)
            }
            Err(mistakes) => {
                let held = in_force.as_ref().and_then(|p| p.version.as_ref());
                self.refuse(version, held, &mistakes).await;
                let said = self.lock().refused.contains(version);
                let result = match in_force {
                    Some(current) => Ok(current),
                    None => Err(no_policy(format!(
                        "version {version} of {} is refused: {}",
                        self.store,
                        super::PolicyError(mistakes)
                    ))),
                };
                (result, said)
            }
        }
    }

    /// The store's document and version, or that the object is the one read last.
    async fn read(&self) -> Result<Read, String> {
        self.reads.fetch_add(1, Ordering::Relaxed);
        // Type-erased: an SDK call's future is deep, and every handler awaits this one (its
        // layout and its `Send` would otherwise pass the compiler's query depth).
        let reading: Reading<'_> = match (&self.reader, &self.store) {
            (Reader::Ssm(ssm), PolicyStore::Parameter(name)) => Box::pin(read_parameter(ssm, name)),
            (Reader::S3(s3), PolicyStore::Object { bucket, key }) => {
                let seen = self.lock().seen.clone();
                Box::pin(async move { read_object(s3, bucket, key, seen.as_ref()).await })
            }
            _ => return Err(format!("no client for {}", self.store)),
        };
        reading.await
    }

    /// Says once that `version` is refused; a failure to say it is retried at the next read.
    async fn refuse(
        &self,
        version: &PolicyVersion,
        held: Option<&PolicyVersion>,
        mistakes: &[Mistake],
    ) {
        if self.lock().refused.contains(version) {
            return;
        }
        error!(
            store = %self.store,
            %version,
            in_force = ?held,
            mistakes = mistakes.len(),
            first = %mistakes.first().map(ToString::to_string).unwrap_or_default(),
            "policy version refused"
        );
        let said = match &self.rejections {
            None => Ok(()),
            Some(r) => self.say(r, version, held, mistakes).await,
        };
        match said {
            Ok(()) => {
                self.lock().refused.insert(version.clone());
            }
            Err(e) => {
                warn!(error = %e, %version, "could not say the policy version is refused; the next read tries again")
            }
        }
    }

    async fn say(
        &self,
        r: &Rejections,
        version: &PolicyVersion,
        held: Option<&PolicyVersion>,
        mistakes: &[Mistake],
    ) -> Result<(), Error> {
        let location = self.store.to_string();
        let id = format!("{}#{location}#{version}", r.function);
        let correlation = format!("policy:{location}:{version}");
        let detail = Envelope {
            metadata: Metadata::new(&correlation, &correlation),
            detail: RejectedDetail {
                parameter: &location,
                version,
                function: r.function,
                in_force: held,
                mistakes,
            },
        };
        let event = OutgoingEvent::new(DetailType::PolicyRejected, &detail)?
            .from_source(r.source)
            .fitted(r.once.outbox().publisher().max_entry_bytes());
        let key = IdempotencyKey::new("policy-rejected", &id);
        let outbox: &Outbox = r.once.outbox();
        let (lease, owed) = match r
            .once
            .claim(&key, std::slice::from_ref(&event), (self.clock)())
            .await?
        {
            Claim::Acquired(lease) => (lease, vec![event]),
            Claim::Abandoned(lease, owed) => (lease, owed),
            // Said by another environment, or being said.
            Claim::Sent { .. } | Claim::InProgress => return Ok(()),
        };
        let sent = outbox.send(&lease, &owed).await;
        outbox.guard(&lease, sent).await.map(|_| ())
    }
}

/// The event fails, retryably; the runtime logs it once, as the invocation's error.
fn no_policy(why: String) -> Error {
    Error::NoPolicy(why)
}

/// An SSM parameter's text and version.
async fn read_parameter(ssm: &aws_sdk_ssm::Client, name: &str) -> Result<Read, String> {
    let out = ssm
        .get_parameter()
        .name(name)
        .with_decryption(true)
        .send()
        .await
        .map_err(|e| format!("could not read SSM parameter {name}: {}", in_its_words(&e)))?;
    let p = out
        .parameter()
        .ok_or_else(|| format!("SSM parameter {name} has no value"))?;
    let text = p
        .value()
        .ok_or_else(|| format!("SSM parameter {name} has no value"))?;
    Ok(Read::Text(
        text.to_string(),
        PolicyVersion::Parameter(p.version()),
        None,
    ))
}

/// An S3 object's text, version id and ETag; conditional on `seen` (the ETag and version
/// settled last), a 304 is that version again with nothing to read. An object with no
/// version id (its bucket is not versioned) is refused: a decision could not name the document
/// that made it.
async fn read_object(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
    seen: Option<&(String, PolicyVersion)>,
) -> Result<Read, String> {
    let location = format!("s3://{bucket}/{key}");
    let sent = s3
        .get_object()
        .bucket(bucket)
        .key(key)
        .set_if_none_match(seen.map(|(etag, _)| etag.clone()))
        .send()
        .await;
    let out = match sent {
        Ok(out) => out,
        Err(e) => {
            if let (Some(raw), Some((_, version))) = (e.raw_response(), seen)
                && raw.status().as_u16() == 304
            {
                return Ok(Read::Unchanged(version.clone()));
            }
            return Err(format!("could not read {location}: {}", in_its_words(&e)));
        }
    };
    let version = match out.version_id() {
        Some(id) if id != "null" => PolicyVersion::Object(id.to_string()),
        _ => {
            return Err(format!(
                "{location} has no version id: turn on versioning for bucket {bucket}, so each decision names the policy version that made it"
            ));
        }
    };
    let size = out.content_length().unwrap_or(0);
    if size > super::MAX_OBJECT_BYTES {
        return Err(format!(
            "{location} is {size} bytes, past the {} eddo reads",
            super::MAX_OBJECT_BYTES
        ));
    }
    let etag = out.e_tag().map(str::to_string);
    let bytes = out
        .body
        .collect()
        .await
        .map_err(|e| format!("could not read {location}: {e}"))?
        .into_bytes();
    let text = String::from_utf8(bytes.to_vec())
        .map_err(|_| format!("{location} (version {version}) is not UTF-8 text"))?;
    Ok(Read::Text(text, version, etag))
}

/// A service's answer in its words (`ParameterNotFound`, `NoSuchKey`, `AccessDenied`,
/// `ThrottlingException`); a timeout or a failed connection as the SDK tells it.
fn in_its_words<E, R>(e: &aws_smithy_runtime_api::client::result::SdkError<E, R>) -> String
where
    E: aws_smithy_types::error::metadata::ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    match e.as_service_error() {
        Some(se) => format!(
            "{}: {}",
            se.meta().code().unwrap_or("error"),
            se.meta().message().unwrap_or_default()
        ),
        None => aws_smithy_types::error::display::DisplayErrorContext(e).to_string(),
    }
}

/// Reads the policy once from its store, stamped with the version read (tests and the local
/// stack's tools); a missing document or a refused version is the error.
pub async fn load(sdk: &aws_config::SdkConfig, store: &PolicyStore) -> Result<Policy, String> {
    Live::new(sdk, store, Duration::ZERO)
        .current()
        .await
        .map(Arc::unwrap_or_clone)
        .map_err(|e| e.to_string())
}

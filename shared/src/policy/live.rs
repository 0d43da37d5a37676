//! The policy in force, read through a cache with a time to live.
//!
//! Operators change the policy under pressure (an exception to unblock a fix, `mode: observe` to
//! stop a misbehaving gate), so a function never keeps one for the life of its environment: it
//! reads the SSM parameter at most once per TTL (`EDDO_POLICY_TTL_SECS`, 60 s by default) and
//! makes no call for the events in between.
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

use super::{Mistake, Policy};
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
        let version = policy.version;
        Policies::fixed_at(policy, version)
    }

    pub fn fixed_at(policy: Policy, version: Option<i64>) -> Policies {
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

    /// GetParameter calls made so far (0 for a fixed policy).
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

/// The SSM parameter behind a cache.
pub struct Live {
    ssm: aws_sdk_ssm::Client,
    parameter: String,
    ttl: u64,
    clock: fn() -> u64,
    rejections: Option<Rejections>,
    state: Mutex<State>,
    reads: AtomicU64,
}

#[derive(Default)]
struct State {
    current: Option<Arc<Policy>>,
    /// When the parameter was last read (the clock's seconds), successfully or not.
    checked: Option<u64>,
    /// Versions refused and said (or, with no one to say them to, logged).
    refused: BTreeSet<i64>,
}

/// The `Policy Rejected` detail.
#[derive(Serialize)]
struct RejectedDetail<'a> {
    parameter: &'a str,
    version: i64,
    function: &'a str,
    /// The version still in force, if any.
    in_force: Option<i64>,
    mistakes: &'a [Mistake],
}

impl Live {
    pub fn new(sdk: &aws_config::SdkConfig, parameter: &str, ttl: Duration) -> Live {
        Live {
            ssm: aws_sdk_ssm::Client::new(sdk),
            parameter: parameter.to_string(),
            ttl: ttl.as_secs(),
            clock: crate::idempotency::now_epoch,
            rejections: None,
            state: Mutex::new(State::default()),
            reads: AtomicU64::new(0),
        }
    }

    /// The function's policy as its settings say: the parameter, its TTL, and each refused
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
        Live::new(sdk, &config.policy_parameter, config.policy_ttl)
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

    /// Another SSM client (one that counts or fails its calls, in tests).
    pub fn with_ssm(mut self, ssm: aws_sdk_ssm::Client) -> Live {
        self.ssm = ssm;
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
        let (text, version) = match read {
            Ok(read) => read,
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
        if let Some(current) = &in_force
            && current.version == Some(version)
        {
            return Ok(current.clone());
        }
        match Policy::check(&text) {
            Ok(policy) => {
                let loaded = Arc::new(policy.at_version(Some(version)));
                info!(
                    parameter = %self.parameter,
                    version,
                    was = ?in_force.as_ref().and_then(|p| p.version),
                    "policy in force"
                );
                self.lock().current = Some(loaded.clone());
                Ok(loaded)
            }
            Err(mistakes) => {
                let held = in_force.as_ref().and_then(|p| p.version);
                self.refuse(version, held, &mistakes).await;
                match in_force {
                    Some(current) => Ok(current),
                    None => Err(no_policy(format!(
                        "version {version} of SSM parameter {} is refused: {}",
                        self.parameter,
                        super::PolicyError(mistakes)
                    ))),
                }
            }
        }
    }

    /// The parameter's text and version.
    async fn read(&self) -> Result<(String, i64), String> {
        self.reads.fetch_add(1, Ordering::Relaxed);
        let out = self
            .ssm
            .get_parameter()
            .name(&self.parameter)
            .with_decryption(true)
            .send()
            .await
            .map_err(|e| {
                // The service's answer in its words (ParameterNotFound, AccessDeniedException,
                // ThrottlingException); a timeout or a failed connection as the SDK tells it.
                let why = match e.as_service_error() {
                    Some(se) => format!(
                        "{}: {}",
                        se.meta().code().unwrap_or("error"),
                        se.meta().message().unwrap_or_default()
                    ),
                    None => aws_sdk_ssm::error::DisplayErrorContext(&e).to_string(),
                };
                format!("could not read SSM parameter {}: {why}", self.parameter)
            })?;
        let p = out
            .parameter()
            .ok_or_else(|| format!("SSM parameter {} has no value", self.parameter))?;
        let text = p
            .value()
            .ok_or_else(|| format!("SSM parameter {} has no value", self.parameter))?;
        Ok((text.to_string(), p.version()))
    }

    /// Says once that `version` is refused; a failure to say it is retried at the next read.
    async fn refuse(&self, version: i64, held: Option<i64>, mistakes: &[Mistake]) {
        if self.lock().refused.contains(&version) {
            return;
        }
        error!(
            parameter = %self.parameter,
            version,
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
                self.lock().refused.insert(version);
            }
            Err(e) => {
                warn!(error = %e, version, "could not say the policy version is refused; the next read tries again")
            }
        }
    }

    async fn say(
        &self,
        r: &Rejections,
        version: i64,
        held: Option<i64>,
        mistakes: &[Mistake],
    ) -> Result<(), Error> {
        let id = format!("{}#{}#{version}", r.function, self.parameter);
        let correlation = format!("policy:{}:{version}", self.parameter);
        let detail = Envelope {
            metadata: Metadata::new(&correlation, &correlation),
            detail: RejectedDetail {
                parameter: &self.parameter,
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

/// Reads the policy once from its SSM parameter, stamped with the version read (tests and the
/// local stack's tools); a missing parameter or a refused version is the error.
pub async fn load(sdk: &aws_config::SdkConfig, parameter: &str) -> Result<Policy, String> {
    Live::new(sdk, parameter, Duration::ZERO)
        .current()
        .await
        .map(Arc::unwrap_or_clone)
        .map_err(|e| e.to_string())
}

//! A relay that injects faults between a function and the AWS endpoints it calls (moto, the
//! CodeBuild stand-in), chosen by a seeded generator so a run can be replayed: throttling, a
//! server error, and an answer lost after the request was applied upstream. The soak adds the
//! faults a relay cannot make (a process killed mid-invocation, duplicate and reordered
//! deliveries) and counts them here too.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::Full;
use hyper::client::conn::http1::SendRequest;

use crate::LocalError;
use crate::loopback::Server;
use crate::meter::forward;

/// The relay's kept-alive connections upstream.
type Idle = Arc<Mutex<Vec<SendRequest<Full<Bytes>>>>>;

/// A fault the relay injects into one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Fault {
    /// Answered `ThrottlingException`, not forwarded.
    Throttled,
    /// Answered 500 `InternalFailure`, not forwarded.
    ServerError,
    /// Forwarded and applied upstream, then answered 500: the caller cannot tell it happened.
    LostAnswer,
    /// PutEvents only: forwarded and every entry applied, then answered 200 with its first
    /// entry failed (`InternalFailure`): the caller resends an entry the bus already has.
    EntryAnswerLost,
    /// Forwarded and applied, then never answered: the invocation is killed right after this
    /// boundary of the protocol (its timeout), holding whatever lease it held.
    KilledAfter(Boundary),
}

/// A boundary of the once protocol an invocation can be killed right after.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Boundary {
    /// The decision's conditional write (a gate candidate's, a rollback's claim, a tenant's
    /// registration with its request's claim).
    Decision,
    StartBuild,
    PutEvents,
    /// The write that removes a record's sent outbox.
    MarkedSent,
}

impl Boundary {
    pub fn as_str(self) -> &'static str {
        match self {
            Boundary::Decision => "killed after the decision write",
            Boundary::StartBuild => "killed after StartBuild",
            Boundary::PutEvents => "killed after PutEvents",
            Boundary::MarkedSent => "killed after marking sent",
        }
    }

    /// The boundary a request is, read from its operation and body.
    fn of(target: &str, body: &[u8]) -> Option<Boundary> {
        let has = |s: &str| body.windows(s.len()).any(|w| w == s.as_bytes());
        if target.ends_with(".StartBuild") {
            Some(Boundary::StartBuild)
        } else if target.ends_with(".PutEvents") {
            Some(Boundary::PutEvents)
        } else if has("decision = :") || has("tenant#request#") {
            Some(Boundary::Decision)
        } else if has("REMOVE outbox") {
            Some(Boundary::MarkedSent)
        } else {
            None
        }
    }
}

impl Fault {
    pub fn as_str(self) -> &'static str {
        match self {
            Fault::Throttled => "throttled",
            Fault::ServerError => "server error (5xx)",
            Fault::LostAnswer => "answer lost after the request was applied",
            Fault::EntryAnswerLost => "PutEvents 200 with an applied entry answered failed",
            Fault::KilledAfter(b) => b.as_str(),
        }
    }
}

struct State {
    rng: fastrand::Rng,
    rate: f64,
    enabled: bool,
    /// Whether a request at a protocol boundary may be the last its invocation makes.
    boundaries: bool,
    /// Faults for the next request whose body holds a fragment, one each, whatever the rate.
    scripted: Vec<(Vec<u8>, Fault)>,
    counts: BTreeMap<String, usize>,
}

/// The faults of one run: which request gets which, and how many of each were injected.
#[derive(Clone)]
pub struct Faults(Arc<Mutex<State>>);

impl Faults {
    /// Faults in `rate` of the requests (0.0 to 1.0), chosen by `seed`.
    pub fn new(seed: u64, rate: f64) -> Faults {
        Faults(Arc::new(Mutex::new(State {
            rng: fastrand::Rng::with_seed(seed),
            rate,
            enabled: true,
            boundaries: false,
            scripted: Vec::new(),
            counts: BTreeMap::new(),
        })))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Turns injection on or off (off: the relay forwards everything).
    pub fn enable(&self, on: bool) {
        self.lock().enabled = on;
    }

    /// Kills invocations right after a boundary of the protocol too ([`Boundary`]): the
    /// request is applied and never answered, so the caller must bound each invocation's time.
    pub fn kill_at_boundaries(&self, on: bool) {
        self.lock().boundaries = on;
    }

    fn kills_at_boundaries(&self) -> bool {
        self.lock().boundaries
    }

    /// Gives `fault` to the next request whose body holds `fragment` (once), whatever the rate
    /// and even with injection off: a test's one fault at one step of the protocol.
    pub fn script(&self, fragment: &str, fault: Fault) {
        self.lock()
            .scripted
            .push((fragment.as_bytes().to_vec(), fault));
    }

    /// Whether faults are being injected.
    pub fn enabled(&self) -> bool {
        self.lock().enabled
    }

    /// Counts a fault injected elsewhere (a killed invocation, a duplicate delivery).
    pub fn count(&self, kind: &str) {
        *self.lock().counts.entry(kind.to_string()).or_default() += 1;
    }

    /// How many faults of each kind were injected.
    pub fn counts(&self) -> BTreeMap<String, usize> {
        self.lock().counts.clone()
    }

    /// A number from the run's generator, for the soak's own choices.
    pub fn below(&self, n: u64) -> u64 {
        self.lock().rng.u64(..n.max(1))
    }

    /// Whether an event of probability `p` happens, from the run's generator.
    pub fn chance(&self, p: f64) -> bool {
        self.lock().rng.f64() < p
    }

    fn pick(&self, put_events: bool, boundary: Option<Boundary>, body: &[u8]) -> Option<Fault> {
        let mut s = self.lock();
        let holds = |f: &[u8]| body.windows(f.len().max(1)).any(|w| w == f);
        if let Some(i) = s.scripted.iter().position(|(f, _)| holds(f)) {
            let (_, fault) = s.scripted.remove(i);
            *s.counts.entry(fault.as_str().to_string()).or_default() += 1;
            return Some(fault);
        }
        if !s.enabled || s.rng.f64() >= s.rate {
            return None;
        }
        let kinds = match (put_events, boundary) {
            (_, Some(_)) => 5,
            (true, None) => 4,
            (false, None) => 3,
        };
        let fault = match (s.rng.u8(..kinds), boundary) {
            (0, _) => Fault::Throttled,
            (1, _) => Fault::ServerError,
            (2, _) => Fault::LostAnswer,
            (3, _) if put_events => Fault::EntryAnswerLost,
            (_, Some(b)) => Fault::KilledAfter(b),
            _ => Fault::LostAnswer,
        };
        *s.counts.entry(fault.as_str().to_string()).or_default() += 1;
        Some(fault)
    }
}

/// Forwards requests to `upstream`, injecting the faults `faults` picks.
pub struct FaultRelay {
    server: Server,
}

impl FaultRelay {
    pub async fn start(upstream: SocketAddr, faults: Faults) -> Result<FaultRelay, LocalError> {
        let idle: Idle = Arc::default();
        let server = Server::serve("fault relay", 0, move |parts, body, _| {
            let (faults, idle) = (faults.clone(), idle.clone());
            async move {
                // An error in the protocol the call speaks, as the service would answer it.
                let cbor = parts.uri.path().starts_with("/service/");
                let error = |status, code: &str, message: &str| error(cbor, status, code, message);
                let target = parts
                    .headers
                    .get("x-amz-target")
                    .and_then(|t| t.to_str().ok())
                    .unwrap_or_default()
                    .to_string();
                let put_events = target.ends_with(".PutEvents");
                let boundary = if faults.kills_at_boundaries() {
                    Boundary::of(&target, &body)
                } else {
                    None
                };
                match faults.pick(put_events, boundary, &body) {
                    Some(Fault::Throttled) => error(
                        StatusCode::BAD_REQUEST,
                        "ThrottlingException",
                        "Rate exceeded",
                    ),
                    Some(Fault::ServerError) => error(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "InternalFailure",
                        "injected",
                    ),
                    Some(Fault::LostAnswer) => {
                        let _applied = forward(upstream, &idle, parts, body).await;
                        error(
                            StatusCode::INTERNAL_SERVER_ERROR,
                            "InternalFailure",
                            "injected after the request was applied",
                        )
                    }
                    Some(Fault::KilledAfter(_)) => {
                        let _applied = forward(upstream, &idle, parts, body).await;
                        // Never answered: the caller's timeout kills the invocation.
                        tokio::time::sleep(std::time::Duration::from_secs(3600)).await;
                        error(StatusCode::GATEWAY_TIMEOUT, "InternalFailure", "killed")
                    }
                    Some(Fault::EntryAnswerLost) => {
                        match forward(upstream, &idle, parts, body).await {
                            Ok(answer) => first_entry_failed(answer).await,
                            Err(e) => error(StatusCode::BAD_GATEWAY, "InternalFailure", &e),
                        }
                    }
                    None => forward(upstream, &idle, parts, body)
                        .await
                        .unwrap_or_else(|e| error(StatusCode::BAD_GATEWAY, "InternalFailure", &e)),
                }
            }
        })
        .await?;
        Ok(FaultRelay { server })
    }

    /// The URL to give a client instead of the upstream's.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.server.addr())
    }
}

/// PutEvents' answer with its first entry's result replaced by a transient failure, as if
/// EventBridge had not accepted it (it had).
async fn first_entry_failed(answer: Response<Full<Bytes>>) -> Response<Full<Bytes>> {
    use http_body_util::BodyExt as _;
    let (mut parts, body) = answer.into_parts();
    let Ok(collected) = body.collect().await;
    let Ok(mut json) = serde_json::from_slice::<serde_json::Value>(&collected.to_bytes()) else {
        return error(false, StatusCode::BAD_GATEWAY, "InternalFailure", "relay");
    };
    if let Some(first) = json["Entries"].get_mut(0)
        && first.get("EventId").is_some()
    {
        *first = serde_json::json!({"ErrorCode": "InternalFailure", "ErrorMessage": "injected: the entry was applied"});
        let failed = json["FailedEntryCount"].as_u64().unwrap_or(0) + 1;
        json["FailedEntryCount"] = failed.into();
    }
    parts.headers.remove("content-length");
    parts.headers.remove("x-amz-crc32");
    Response::from_parts(parts, Full::new(Bytes::from(json.to_string())))
}

/// An AWS error answer: JSON (`__type`, `message`), or for a Smithy RPC v2 CBOR call (CloudWatch)
/// the same map in CBOR.
fn error(cbor: bool, status: StatusCode, code: &str, message: &str) -> Response<Full<Bytes>> {
    let builder = Response::builder()
        .status(status)
        .header("x-amzn-errortype", code);
    let response = if cbor {
        builder
            .header("content-type", "application/cbor")
            .header("smithy-protocol", "rpc-v2-cbor")
            .body(Full::new(Bytes::from(cbor_map(&[
                ("__type", code),
                ("message", message),
            ]))))
    } else {
        builder
            .header("content-type", "application/x-amz-json-1.1")
            .body(Full::new(Bytes::from(
                serde_json::json!({"__type": code, "message": message}).to_string(),
            )))
    };
    response.expect("valid response")
}

/// A CBOR map of text strings, encoded as the SDKs' own Smithy RPC v2 CBOR does.
fn cbor_map(pairs: &[(&str, &str)]) -> Vec<u8> {
    let mut out = aws_smithy_cbor::Encoder::new(Vec::new());
    out.map(pairs.len());
    for (k, v) in pairs {
        out.str(k).str(v);
    }
    out.into_writer()
}

#[cfg(test)]
mod tests {
    #[test]
    fn an_error_map_is_cbor_as_rfc_8949_writes_it() {
        // {"a": "b"} from RFC 8949's examples: a1 61 61 61 62.
        assert_eq!(
            super::cbor_map(&[("a", "b")]),
            [0xa1, 0x61, 0x61, 0x61, 0x62]
        );
        let long = "x".repeat(300);
        let out = super::cbor_map(&[("m", &long)]);
        assert_eq!(&out[..6], [0xa1, 0x61, b'm', 0x79, 0x01, 0x2c]);
    }
}

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
}

impl Fault {
    pub fn as_str(self) -> &'static str {
        match self {
            Fault::Throttled => "throttled",
            Fault::ServerError => "server error (5xx)",
            Fault::LostAnswer => "answer lost after the request was applied",
        }
    }
}

struct State {
    rng: fastrand::Rng,
    rate: f64,
    enabled: bool,
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

    fn pick(&self) -> Option<Fault> {
        let mut s = self.lock();
        if !s.enabled || s.rng.f64() >= s.rate {
            return None;
        }
        let fault = match s.rng.u8(..3) {
            0 => Fault::Throttled,
            1 => Fault::ServerError,
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
                match faults.pick() {
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

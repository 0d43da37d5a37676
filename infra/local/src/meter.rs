//! A timing relay between a function and the AWS endpoints it calls, for the bench runner: every
//! request the function makes is forwarded to the emulator unchanged, and the time from its
//! arrival to the end of the emulator's answer is recorded. An invocation's duration less the
//! time spent in these calls is the time in eddo's own code.
//!
//! EventBridge `PutEvents` is answered by the relay itself, every entry accepted: its answer
//! carries nothing a function decides on, and moto's PutEvents slows as its bus's archive and
//! rule targets fill (14 ms a call at first, 20 ms after 300 events), which would stretch a
//! 10,000-invocation run for nothing.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;

use crate::LocalError;
use crate::loopback::Server;

/// What a relay (or several) recorded: one interval per AWS call, in arrival order.
#[derive(Default, Clone)]
pub struct Calls(Arc<Mutex<Vec<Call>>>);

/// One AWS call: when it arrived, when its answer ended, and its operation
/// (`DynamoDB_20120810.PutItem`, `AWSEvents.PutEvents`, `CodeBuild_20161006.StartBuild`...).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Call {
    from: Instant,
    to: Instant,
    operation: String,
}

/// The calls made since the last `take`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Waited {
    /// The calls' operations, in the order they were made.
    pub operations: Vec<String>,
    /// The time at least one call was outstanding: overlapping calls count once.
    pub busy: Duration,
}

impl Calls {
    fn record(&self, from: Instant, to: Instant, operation: &str) {
        self.0.lock().unwrap().push(Call {
            from,
            to,
            operation: operation.to_string(),
        });
    }

    /// The calls recorded since the last `take`, and how long they kept the caller waiting.
    pub fn take(&self) -> Waited {
        waited(std::mem::take(&mut *self.0.lock().unwrap()))
    }

    /// [`take`](Calls::take), split into the calls that started before `at` and the rest.
    pub fn take_split(&self, at: Instant) -> (Waited, Waited) {
        let (before, after) = std::mem::take(&mut *self.0.lock().unwrap())
            .into_iter()
            .partition(|c| c.from < at);
        (waited(before), waited(after))
    }
}

/// How long `spans` kept their caller waiting: overlapping spans count once.
fn waited(mut spans: Vec<Call>) -> Waited {
    spans.sort();
    let mut busy = Duration::ZERO;
    let mut current: Option<(Instant, Instant)> = None;
    for Call { from, to, .. } in spans.iter() {
        let (from, to) = (*from, *to);
        current = match current {
            Some((f, t)) if from <= t => Some((f, t.max(to))),
            Some((f, t)) => {
                busy += t - f;
                Some((from, to))
            }
            None => Some((from, to)),
        };
    }
    if let Some((f, t)) = current {
        busy += t - f;
    }
    Waited {
        operations: spans.into_iter().map(|c| c.operation).collect(),
        busy,
    }
}

/// Forwards every request it receives to `upstream`, recording each call in `calls`.
pub struct Relay {
    server: Server,
}

impl Relay {
    pub async fn start(upstream: SocketAddr, calls: Calls) -> Result<Relay, LocalError> {
        let idle: Arc<Mutex<Vec<SendRequest<Full<Bytes>>>>> = Arc::default();
        let server = Server::serve("AWS relay", 0, move |parts, body, _| {
            let (idle, calls) = (idle.clone(), calls.clone());
            async move {
                let from = Instant::now();
                let operation = operation(&parts);
                let answer = if operation == "AWSEvents.PutEvents" {
                    Ok(put_events_accepted(&body))
                } else {
                    forward(upstream, &idle, parts, body).await
                };
                calls.record(from, Instant::now(), &operation);
                answer.unwrap_or_else(|e| {
                    Response::builder()
                        .status(StatusCode::BAD_GATEWAY)
                        .body(Full::new(Bytes::from(e)))
                        .expect("valid response")
                })
            }
        })
        .await?;
        Ok(Relay { server })
    }

    /// The URL to give the function instead of the emulator's.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.server.addr())
    }
}

/// The operation a JSON-protocol call names in `X-Amz-Target` (SSM, Secrets Manager, DynamoDB,
/// EventBridge and CodeBuild all name it), or a Smithy RPC v2 CBOR call in its path
/// (`/service/<service>/operation/<op>`: CloudWatch), else its method and path.
fn operation(parts: &http::request::Parts) -> String {
    if let Some(target) = parts
        .headers
        .get("x-amz-target")
        .and_then(|t| t.to_str().ok())
    {
        return target.to_string();
    }
    let path = parts.uri.path();
    match path
        .strip_prefix("/service/")
        .and_then(|rest| rest.split_once("/operation/"))
    {
        Some((service, op)) => format!("{service}.{op}"),
        None => format!("{} {path}", parts.method),
    }
}

/// EventBridge's answer to a `PutEvents` whose every entry was accepted.
fn put_events_accepted(body: &[u8]) -> Response<Full<Bytes>> {
    let request: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    let entries: Vec<serde_json::Value> = (0..request["Entries"].as_array().map_or(0, Vec::len))
        .map(|_| {
            serde_json::json!({"EventId": format!(
                "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
                fastrand::u32(..),
                fastrand::u16(..),
                fastrand::u16(..),
                fastrand::u16(..),
                fastrand::u64(..1 << 48)
            )})
        })
        .collect();
    let answer = serde_json::json!({"FailedEntryCount": 0, "Entries": entries});
    Response::builder()
        .status(StatusCode::OK)
        .header("content-type", "application/x-amz-json-1.1")
        .header("x-amzn-requestid", "relay")
        .body(Full::new(Bytes::from(answer.to_string())))
        .expect("valid response")
}

/// One request upstream, on a kept-alive connection when one is idle (shared with the fault
/// relay).
pub(crate) async fn forward(
    upstream: SocketAddr,
    idle: &Mutex<Vec<SendRequest<Full<Bytes>>>>,
    parts: http::request::Parts,
    body: Bytes,
) -> Result<Response<Full<Bytes>>, String> {
    let reused = idle.lock().unwrap().pop();
    let mut sender = match reused {
        Some(s) if !s.is_closed() => s,
        _ => {
            let stream = tokio::net::TcpStream::connect(upstream)
                .await
                .map_err(|e| format!("relay: {e}"))?;
            let _ = stream.set_nodelay(true);
            let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
                .await
                .map_err(|e| format!("relay: {e}"))?;
            tokio::spawn(connection);
            sender
        }
    };
    let response = sender
        .send_request(http::Request::from_parts(parts, Full::new(body)))
        .await
        .map_err(|e| format!("relay: {e}"))?;
    let (mut parts, body) = response.into_parts();
    // Hop-by-hop headers are the relay's own business (RFC 9110, 7.6.1): moto's server answers
    // `Connection: close`, which would have the function reconnect for every call, as it never
    // does with AWS.
    for h in [
        "connection",
        "keep-alive",
        "proxy-connection",
        "transfer-encoding",
        "upgrade",
    ] {
        parts.headers.remove(h);
    }
    let body = body
        .collect()
        .await
        .map_err(|e| format!("relay: {e}"))?
        .to_bytes();
    idle.lock().unwrap().push(sender);
    Ok(Response::from_parts(parts, Full::new(body)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlapping_calls_are_waited_for_once() {
        let calls = Calls::default();
        let t = Instant::now();
        let ms = Duration::from_millis;
        calls.record(t, t + ms(10), "a");
        calls.record(t + ms(5), t + ms(12), "b");
        calls.record(t + ms(20), t + ms(23), "c");
        assert_eq!(
            calls.take(),
            Waited {
                operations: vec!["a".into(), "b".into(), "c".into()],
                busy: ms(15)
            }
        );
        assert_eq!(calls.take(), Waited::default());
    }

    #[test]
    fn put_events_answered_with_one_accepted_entry_per_entry() {
        let answer = put_events_accepted(br#"{"Entries":[{"Source":"a"},{"Source":"b"}]}"#);
        assert_eq!(answer.status(), StatusCode::OK);
        let body = futures_body(answer);
        assert_eq!(body["FailedEntryCount"], 0);
        assert_eq!(body["Entries"].as_array().map(Vec::len), Some(2));
        assert!(body["Entries"][0]["EventId"].as_str().is_some());
    }

    fn futures_body(r: Response<Full<Bytes>>) -> serde_json::Value {
        let bytes = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(r.into_body().collect())
            .unwrap()
            .to_bytes();
        serde_json::from_slice(&bytes).unwrap()
    }
}

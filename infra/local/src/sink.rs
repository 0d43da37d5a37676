//! A CloudEvents sink on loopback: what a CDEvents consumer (a broker, a Tekton or Keptn event
//! listener) is to eddo's API destination. It keeps every request as it arrived and answers as
//! told (a status per request in turn, then 202), so a test or the demo can read what EventBridge
//! would have delivered, and make it retry.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::Response;
use http_body_util::Full;

use crate::LocalError;
use crate::loopback::Server;

/// The bearer token the local stack's connection sends the sink (`CDEventsSinkToken`).
pub const LOCAL_SINK_TOKEN: &str = "local-cdevents-sink-token-0123456789abcdef";

/// One request the sink received.
#[derive(Debug, Clone)]
pub struct Received {
    pub method: String,
    pub path: String,
    /// Its headers, names lower-cased.
    pub headers: Vec<(String, String)>,
    pub body: String,
    /// What the sink answered.
    pub status: u16,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON (`Null` if it is not).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_default()
    }
}

#[derive(Default)]
struct State {
    received: Vec<Received>,
    answers: VecDeque<u16>,
}

/// The sink, serving until dropped.
pub struct Sink {
    server: Server,
    state: Arc<Mutex<State>>,
}

impl Sink {
    /// Starts a sink on a free loopback port, answering the first requests with `answers` in
    /// turn and every later one 202.
    pub async fn start(answers: &[u16]) -> Result<Sink, LocalError> {
        let state = Arc::new(Mutex::new(State {
            received: Vec::new(),
            answers: answers.iter().copied().collect(),
        }));
        let shared = state.clone();
        let server = Server::serve("the CloudEvents sink", 0, move |parts, body, _| {
            let state = shared.clone();
            async move {
                let mut s = state.lock().unwrap_or_else(|p| p.into_inner());
                let status = s.answers.pop_front().unwrap_or(202);
                s.received.push(Received {
                    method: parts.method.to_string(),
                    path: parts.uri.path().to_string(),
                    headers: parts
                        .headers
                        .iter()
                        .map(|(k, v)| {
                            (
                                k.as_str().to_string(),
                                v.to_str().unwrap_or_default().to_string(),
                            )
                        })
                        .collect(),
                    body: String::from_utf8_lossy(&body).into_owned(),
                    status,
                });
                Response::builder()
                    .status(status)
                    .body(Full::new(Bytes::new()))
                    .unwrap_or_default()
            }
        })
        .await?;
        Ok(Sink { server, state })
    }

    /// The endpoint to name as `CDEventsSinkUrl`: HTTPS as EventBridge requires; the local stack
    /// delivers it over plain HTTP on loopback.
    pub fn url(&self) -> String {
        format!("https://{}/cdevents", self.server.addr())
    }

    /// The template parameters that send eddo's CDEvents here.
    pub fn parameters(&self) -> Vec<(String, String)> {
        vec![
            ("CDEventsSinkUrl".into(), self.url()),
            ("CDEventsSinkToken".into(), LOCAL_SINK_TOKEN.into()),
        ]
    }

    /// Every request so far, in order.
    pub fn received(&self) -> Vec<Received> {
        self.state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .received
            .clone()
    }
}

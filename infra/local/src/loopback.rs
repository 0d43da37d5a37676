//! One HTTP/1.1 server on a loopback port, shared by the function URL and the CodeBuild stand-in.

use std::convert::Infallible;
use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crate::LocalError;

/// Serves requests on 127.0.0.1 until dropped.
pub struct Server {
    addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Server {
    /// Binds `port` (0 for any free port) and answers each request, its body read whole, with
    /// `handler(parts, body, peer)`.
    pub async fn serve<H, F>(what: &str, port: u16, handler: H) -> Result<Server, LocalError>
    where
        H: Fn(http::request::Parts, Bytes, SocketAddr) -> F + Send + Sync + 'static,
        F: Future<Output = Response<Full<Bytes>>> + Send + 'static,
    {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, port))
            .await
            .map_err(|e| LocalError::Setup(format!("{what} on port {port}: {e}")))?;
        let addr = listener
            .local_addr()
            .map_err(|e| LocalError::Setup(e.to_string()))?;
        let handler = Arc::new(handler);
        let task = tokio::spawn(async move {
            while let Ok((stream, peer)) = listener.accept().await {
                let handler = handler.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req: Request<Incoming>| {
                        let handler = handler.clone();
                        async move {
                            let (parts, body) = req.into_parts();
                            let body = body
                                .collect()
                                .await
                                .map(|b| b.to_bytes())
                                .unwrap_or_default();
                            Ok::<_, Infallible>(handler(parts, body, peer).await)
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Ok(Server { addr, task })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// A stand-in of a JSON API (GitHub's, GitLab's): each request answered by `answer` over
    /// the stand-in's `state`, as a status, a JSON body and headers.
    pub async fn serve_json<S: Send + 'static>(
        what: &str,
        state: Arc<std::sync::Mutex<S>>,
        answer: fn(&mut S, &http::request::Parts, &[u8]) -> Answer,
    ) -> Result<Server, LocalError> {
        Server::serve(what, 0, move |parts, body, _| {
            let state = state.clone();
            async move {
                let mut s = state.lock().unwrap_or_else(|p| p.into_inner());
                let (status, json, headers) = answer(&mut s, &parts, &body);
                let mut response = Response::builder().status(status);
                // 204 No Content has no body, and says no type.
                let body = if status == 204 {
                    Bytes::new()
                } else {
                    response = response.header("content-type", "application/json");
                    Bytes::from(json.to_string())
                };
                for (k, v) in headers {
                    response = response.header(k, v);
                }
                response.body(Full::new(body)).unwrap_or_default()
            }
        })
        .await
    }
}

/// A JSON API stand-in's answer: its status, its body, its headers.
pub type Answer = (u16, serde_json::Value, Vec<(&'static str, String)>);

/// A JSON API stand-in's refusal: `status` with GitLab's and GitHub's `{"message": ...}`.
pub fn refused(status: u16, message: &str) -> Answer {
    (status, serde_json::json!({"message": message}), vec![])
}

/// Puts `value` into the secret the stack's gate names in its variable `variable`, as the
/// operator does after deploying (the GitHub App's key, the GitLab token).
pub async fn put_gate_secret(
    stack: &crate::stack::Stack,
    variable: &str,
    value: &str,
) -> Result<(), LocalError> {
    let gate = stack.function("scan-gate")?;
    let secret = gate
        .env
        .iter()
        .find(|(k, _)| k == variable)
        .map(|(_, v)| v.clone())
        .ok_or_else(|| LocalError::Setup(format!("the stack's gate has no {variable}")))?;
    aws_sdk_secretsmanager::Client::new(&stack.sdk)
        .put_secret_value()
        .secret_id(secret)
        .secret_string(value)
        .send()
        .await
        .map_err(|e| crate::aws("PutSecretValue", e))?;
    Ok(())
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The address of an `http://host:port` endpoint on loopback (moto's, a stand-in's), for a relay
/// to forward to.
pub fn endpoint_addr(endpoint: &str) -> Result<SocketAddr, LocalError> {
    endpoint
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .parse()
        .map_err(|e| LocalError::Setup(format!("endpoint {endpoint}: {e}")))
}

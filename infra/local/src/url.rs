//! A function URL on loopback: HTTP requests become Lambda function URL events (payload format
//! 2.0), the function's answer becomes the HTTP response, so `curl` or a webhook forwarder can
//! deliver to the webhook function as GitHub would.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lambda_events::event::lambda_function_urls::{
    LambdaFunctionUrlRequest, LambdaFunctionUrlResponse,
};
use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::Full;

use crate::LocalError;
use crate::loopback::Server;
use crate::runtime::{LocalFunction, Outcome};

/// Content types a function URL passes as text; any other body arrives base64-encoded.
fn is_text(content_type: &str) -> bool {
    let ct = content_type.to_ascii_lowercase();
    ct.starts_with("text/")
        || ["json", "xml", "javascript", "x-www-form-urlencoded", "yaml"]
            .iter()
            .any(|t| ct.contains(t))
}

/// The function URL event for an HTTP request, as Lambda builds it.
pub fn event_for(
    parts: &http::request::Parts,
    body: &[u8],
    source: SocketAddr,
) -> LambdaFunctionUrlRequest {
    use base64::Engine;
    let mut req = LambdaFunctionUrlRequest::default();
    req.version = Some("2.0".into());
    req.raw_path = Some(parts.uri.path().to_string());
    req.raw_query_string = Some(parts.uri.query().unwrap_or_default().to_string());
    for (name, value) in &parts.headers {
        req.headers.append(name.clone(), value.clone());
    }
    let content_type = parts
        .headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !body.is_empty() {
        match std::str::from_utf8(body) {
            Ok(text) if is_text(content_type) => req.body = Some(text.to_string()),
            _ => {
                req.body = Some(base64::engine::general_purpose::STANDARD.encode(body));
                req.is_base64_encoded = true;
            }
        }
    }
    let ctx = &mut req.request_context;
    ctx.account_id = Some("123456789012".into());
    ctx.request_id = Some(format!("{:032x}", fastrand::u128(..)));
    ctx.domain_name = Some(format!("{source}"));
    ctx.time_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    ctx.http.method = Some(parts.method.to_string());
    ctx.http.path = Some(parts.uri.path().to_string());
    ctx.http.protocol = Some("HTTP/1.1".into());
    ctx.http.source_ip = Some(source.ip().to_string());
    ctx.http.user_agent = parts
        .headers
        .get(http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    req
}

/// The HTTP response for what the function did; a failed invocation is a 502, as on AWS.
pub fn response_for(outcome: &Outcome) -> Response<Full<Bytes>> {
    use base64::Engine;
    let reply: Option<LambdaFunctionUrlResponse> = match outcome {
        Outcome::Response(body) => serde_json::from_slice(body).ok(),
        _ => None,
    };
    let Some(reply) = reply else {
        return Response::builder()
            .status(StatusCode::BAD_GATEWAY)
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from_static(
                b"{\"Message\":\"Internal Server Error\"}",
            )))
            .expect("valid response");
    };
    let body = reply.body.unwrap_or_default();
    let body = if reply.is_base64_encoded {
        base64::engine::general_purpose::STANDARD
            .decode(body)
            .unwrap_or_default()
    } else {
        body.into_bytes()
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() =
        StatusCode::from_u16(reply.status_code as u16).unwrap_or(StatusCode::BAD_GATEWAY);
    *response.headers_mut() = reply.headers;
    response
}

/// Serves `function` at a loopback URL until dropped.
pub struct FunctionUrl {
    server: Server,
}

impl FunctionUrl {
    /// Binds `port` on 127.0.0.1 (0 for any free port).
    pub async fn serve(function: Arc<LocalFunction>, port: u16) -> Result<FunctionUrl, LocalError> {
        let server = Server::serve("function URL", port, move |parts, body, peer| {
            let function = function.clone();
            async move {
                let event =
                    serde_json::to_value(event_for(&parts, &body, peer)).unwrap_or_default();
                match function.invoke(&event).await {
                    Ok(invocation) => response_for(&invocation.outcome),
                    Err(_) => response_for(&Outcome::TimedOut),
                }
            }
        })
        .await?;
        Ok(FunctionUrl { server })
    }

    /// `http://127.0.0.1:<port>/`, like a function URL's trailing slash.
    pub fn url(&self) -> String {
        format!("http://{}/", self.server.addr())
    }

    pub fn addr(&self) -> SocketAddr {
        self.server.addr()
    }
}

/// A plain HTTP/1.1 POST, as a webhook sender makes it: `(status, body)`. Blocking; call it
/// from `spawn_blocking`.
pub fn post(
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<(u16, String)> {
    request(addr, "POST", path, headers, body, Duration::from_secs(30))
}

/// A `method` request to `addr`, answered within `timeout` or an error (`TimedOut`).
pub fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    timeout: Duration,
) -> std::io::Result<(u16, String)> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    stream.set_read_timeout(Some(timeout))?;
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes())?;
    stream.write_all(body)?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw);
    let status = text.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Ok((status, body))
}

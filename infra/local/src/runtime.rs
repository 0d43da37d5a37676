//! A local Lambda: a function's real `bootstrap` binary as a child process, speaking the Lambda
//! Runtime API to an endpoint on loopback, as it does in AWS.
//!
//! One execution environment per function, serving one invocation at a time and staying warm
//! between them, as Lambda does. What Lambda reports, this reports too: the function's response,
//! the error it posted (a panic included), an init failure (posted to `/runtime/init/error`, or
//! the process exiting before it asked for its first event), a crash mid-invocation, a timeout.
//! A crashed or timed-out environment is replaced, cold, on the next invocation.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::net::TcpListener;
use tokio::process::{Child, Command};
use tokio::sync::{Notify, oneshot};

use crate::LocalError;

/// The most log lines kept per function.
const LOG_LINES: usize = 2000;

/// A workspace binary built in the same profile as the running program: beside it, or one
/// level up when the program is a test in `target/<profile>/deps/`; or in `EDDO_BINARY_DIR`.
pub fn binary(name: &str) -> Result<PathBuf, LocalError> {
    // `EDDO_BINARY_DIR` picks another build, such as target/release for measurements.
    if let Some(dir) = std::env::var_os("EDDO_BINARY_DIR") {
        let path = PathBuf::from(dir).join(name);
        return if path.is_file() {
            Ok(path)
        } else {
            Err(LocalError::Setup(format!(
                "EDDO_BINARY_DIR has no {name} binary ({})",
                path.display()
            )))
        };
    }
    let exe = std::env::current_exe().map_err(|e| LocalError::Setup(e.to_string()))?;
    let dirs = exe.ancestors().skip(1).take(2);
    for dir in dirs {
        let candidate = dir.join(name);
        if candidate.is_file() {
            return Ok(candidate);
        }
    }
    Err(LocalError::Setup(format!(
        "the {name} binary is not built beside {}: run `cargo build --workspace` (make demo does)",
        exe.display()
    )))
}

/// How to run one function: its binary and the environment the template gives it.
#[derive(Debug, Clone)]
pub struct FunctionSpec {
    pub name: String,
    pub binary: PathBuf,
    pub env: Vec<(String, String)>,
    pub timeout: Duration,
    pub memory_mb: u32,
}

/// What one invocation came to, in Lambda's terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The function answered; the body is its JSON.
    Response(Vec<u8>),
    /// The function posted an error (a returned error, or a panic the runtime caught).
    Error { error_type: String, message: String },
    /// The environment failed to start: `Runtime.ExitError` when the process exited before its
    /// first `next`, or what it posted to `/runtime/init/error`.
    InitError { error_type: String, message: String },
    /// The process exited mid-invocation (`Runtime.ExitError` in Lambda's words).
    Crashed { status: String },
    /// No answer within the function's timeout; the process was stopped.
    TimedOut,
}

impl Outcome {
    /// The JSON response, if the function answered.
    pub fn json(&self) -> Option<serde_json::Value> {
        match self {
            Outcome::Response(body) => serde_json::from_slice(body).ok(),
            _ => None,
        }
    }

    /// One line for a timeline.
    pub fn summary(&self) -> String {
        match self {
            // eddo's asynchronous functions answer what they did: show it.
            Outcome::Response(body) => match self.json() {
                Some(v) if v["outcome"].is_string() => {
                    let published: Vec<&str> = v["published"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|p| p.as_str())
                        .collect();
                    if published.is_empty() {
                        v["outcome"].as_str().unwrap_or_default().to_string()
                    } else {
                        format!(
                            "{}; published {}",
                            v["outcome"].as_str().unwrap_or_default(),
                            published.join(", ")
                        )
                    }
                }
                _ => format!("response ({} bytes)", body.len()),
            },
            Outcome::Error {
                error_type,
                message,
            } => format!("error {error_type}: {message}"),
            Outcome::InitError {
                error_type,
                message,
            } => format!("init error {error_type}: {message}"),
            Outcome::Crashed { status } => {
                format!("Runtime.ExitError: process {status} mid-invocation")
            }
            Outcome::TimedOut => "Task timed out".to_string(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Invocation {
    pub request_id: String,
    pub outcome: Outcome,
    /// Whether this invocation started a new execution environment.
    pub cold: bool,
    /// From handing the event over to the function's answer.
    pub duration: Duration,
}

/// Cold-start timings of the current execution environment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ColdStart {
    /// When the process asked for its first event: the end of init.
    pub first_next_at: Instant,
    /// Process start to its first `GET next`: Lambda's init duration.
    pub to_first_next: Duration,
    /// Process start to its first response or error.
    pub to_first_response: Option<Duration>,
}

/// An event waiting for the function's `GET next`.
struct Pending {
    request_id: String,
    body: Bytes,
    deadline_ms: u128,
    reply: oneshot::Sender<Outcome>,
}

/// What the Runtime API endpoint shares with `invoke`.
#[derive(Default)]
struct Api {
    function_arn: String,
    /// Hand every invocation the same X-Ray trace header (see `LocalFunction::fixed_trace_id`).
    fixed_trace: std::sync::atomic::AtomicBool,
    pending: Mutex<Option<Pending>>,
    pending_ready: Notify,
    /// The invocation the function is working on.
    inflight: Mutex<Option<(String, oneshot::Sender<Outcome>)>>,
    init_error: Mutex<Option<(String, String)>>,
    init_failed: Notify,
    started: Mutex<Option<Instant>>,
    first_next: Mutex<Option<Instant>>,
    first_response: Mutex<Option<Instant>>,
}

impl Api {
    async fn next(&self) -> Response<Full<Bytes>> {
        {
            let mut first = self.first_next.lock().unwrap();
            if first.is_none() {
                *first = Some(Instant::now());
            }
        }
        let pending = loop {
            let notified = self.pending_ready.notified();
            if let Some(p) = self.pending.lock().unwrap().take() {
                break p;
            }
            notified.await;
        };
        let response = Response::builder()
            .status(StatusCode::OK)
            .header("lambda-runtime-aws-request-id", &pending.request_id)
            .header(
                "lambda-runtime-deadline-ms",
                pending.deadline_ms.to_string(),
            )
            .header("lambda-runtime-invoked-function-arn", &self.function_arn)
            .header("lambda-runtime-trace-id", self.trace_id())
            .header("content-type", "application/json")
            .body(Full::new(pending.body))
            .expect("valid response");
        *self.inflight.lock().unwrap() = Some((pending.request_id, pending.reply));
        response
    }

    /// A new X-Ray trace header per invocation, as Lambda sends, unless fixed.
    fn trace_id(&self) -> String {
        if self.fixed_trace.load(std::sync::atomic::Ordering::Relaxed) {
            return "Root=1-00000000-000000000000000000000000;Sampled=0".to_string();
        }
        format!(
            "Root=1-{:08x}-{:024x};Sampled=0",
            epoch_secs(),
            fastrand::u128(..) >> 32
        )
    }

    fn finish(&self, request_id: &str, outcome: Outcome) -> StatusCode {
        let mut inflight = self.inflight.lock().unwrap();
        match inflight.take() {
            Some((id, reply)) if id == request_id => {
                self.first_response
                    .lock()
                    .unwrap()
                    .get_or_insert_with(Instant::now);
                let _ = reply.send(outcome);
                StatusCode::ACCEPTED
            }
            other => {
                *inflight = other;
                StatusCode::BAD_REQUEST
            }
        }
    }

    async fn serve(
        self: Arc<Self>,
        req: Request<Incoming>,
    ) -> Result<Response<Full<Bytes>>, Infallible> {
        let (method, path) = (req.method().clone(), req.uri().path().to_string());
        let error_type = req
            .headers()
            .get("lambda-runtime-function-error-type")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let body = req
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        let status = match (method, segments.as_slice()) {
            (Method::GET, ["2018-06-01", "runtime", "invocation", "next"]) => {
                return Ok(self.next().await);
            }
            (Method::POST, ["2018-06-01", "runtime", "invocation", id, "response"]) => {
                self.finish(id, Outcome::Response(body.to_vec()))
            }
            (Method::POST, ["2018-06-01", "runtime", "invocation", id, "error"]) => {
                let (t, m) = diagnostic(&body, error_type);
                self.finish(
                    id,
                    Outcome::Error {
                        error_type: t,
                        message: m,
                    },
                )
            }
            (Method::POST, ["2018-06-01", "runtime", "init", "error"]) => {
                *self.init_error.lock().unwrap() = Some(diagnostic(&body, error_type));
                self.init_failed.notify_waiters();
                StatusCode::ACCEPTED
            }
            _ => StatusCode::NOT_FOUND,
        };
        Ok(Response::builder()
            .status(status)
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from_static(b"{\"status\":\"OK\"}")))
            .expect("valid response"))
    }

    fn reset(&self) {
        *self.pending.lock().unwrap() = None;
        *self.inflight.lock().unwrap() = None;
        *self.init_error.lock().unwrap() = None;
        *self.started.lock().unwrap() = Some(Instant::now());
        *self.first_next.lock().unwrap() = None;
        *self.first_response.lock().unwrap() = None;
    }
}

/// `{"errorType": ..., "errorMessage": ...}` as the runtime posts it.
fn diagnostic(body: &[u8], header_type: Option<String>) -> (String, String) {
    let v: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    let error_type = v["errorType"]
        .as_str()
        .map(str::to_string)
        .or(header_type)
        .unwrap_or_else(|| "Unhandled".into());
    let message = v["errorMessage"].as_str().unwrap_or_default().to_string();
    (error_type, message)
}

fn epoch_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn epoch_ms() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0)
}

/// A function with its Runtime API endpoint and, once invoked, its execution environment.
pub struct LocalFunction {
    spec: FunctionSpec,
    api: Arc<Api>,
    addr: SocketAddr,
    environment: tokio::sync::Mutex<Option<Child>>,
    logs: Arc<Mutex<VecDeque<String>>>,
    server: tokio::task::JoinHandle<()>,
}

impl LocalFunction {
    /// Starts the function's Runtime API endpoint on a free loopback port. The process itself
    /// starts on the first invocation, as in Lambda.
    pub async fn new(spec: FunctionSpec) -> Result<LocalFunction, LocalError> {
        if !spec.binary.exists() {
            return Err(LocalError::Setup(format!(
                "{}: no binary at {}",
                spec.name,
                spec.binary.display()
            )));
        }
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .map_err(|e| LocalError::Setup(format!("runtime endpoint: {e}")))?;
        let addr = listener
            .local_addr()
            .map_err(|e| LocalError::Setup(e.to_string()))?;
        let api = Arc::new(Api {
            function_arn: format!(
                "arn:aws:lambda:us-east-1:123456789012:function:{}",
                spec.name
            ),
            ..Api::default()
        });
        let served = api.clone();
        let server = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let api = served.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req| api.clone().serve(req));
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Ok(LocalFunction {
            spec,
            api,
            addr,
            environment: tokio::sync::Mutex::new(None),
            logs: Arc::default(),
            server,
        })
    }

    pub fn name(&self) -> &str {
        &self.spec.name
    }

    /// Hands every invocation the same trace header instead of a new one. For measurements
    /// only: `lambda_runtime` sets `_X_AMZN_TRACE_ID` with `setenv` on each invocation, and glibc
    /// keeps every distinct value it was ever given, so a process's memory grows by one trace
    /// header per invocation; a fixed header separates that from the function's own memory.
    pub fn fixed_trace_id(&self, fixed: bool) {
        self.api
            .fixed_trace
            .store(fixed, std::sync::atomic::Ordering::Relaxed);
    }

    /// The `AWS_LAMBDA_RUNTIME_API` value the function is given.
    pub fn runtime_api(&self) -> String {
        self.addr.to_string()
    }

    /// What the function wrote to stdout and stderr (its logs), oldest first.
    pub fn logs(&self) -> Vec<String> {
        self.logs.lock().unwrap().iter().cloned().collect()
    }

    /// The lines of its logs that `matches`, once there are `n` of them or `within` has passed:
    /// a line the function writes as it answers can reach the pipe after the answer.
    pub async fn logged(
        &self,
        matches: impl Fn(&str) -> bool,
        n: usize,
        within: Duration,
    ) -> Vec<String> {
        let until = Instant::now() + within;
        loop {
            let lines: Vec<String> = self.logs().into_iter().filter(|l| matches(l)).collect();
            if lines.len() >= n || Instant::now() >= until {
                return lines;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The current environment's cold-start timings, once it has asked for an event.
    pub fn cold_start(&self) -> Option<ColdStart> {
        let started = (*self.api.started.lock().unwrap())?;
        let first_next = (*self.api.first_next.lock().unwrap())?;
        Some(ColdStart {
            first_next_at: first_next,
            to_first_next: first_next - started,
            to_first_response: self.api.first_response.lock().unwrap().map(|r| r - started),
        })
    }

    /// The process id of the warm environment, if there is one.
    pub async fn pid(&self) -> Option<u32> {
        self.environment.lock().await.as_ref().and_then(Child::id)
    }

    /// CPU time the warm environment has used so far, user and system, all its threads
    /// (`/proc/<pid>/stat`, in clock ticks of 10 ms: meaningful over many invocations).
    pub async fn cpu_time(&self) -> Option<Duration> {
        let pid = self.pid().await?;
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // Fields after the command name (which may hold spaces), from field 3 on.
        let rest = &stat[stat.rfind(')')? + 2..];
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let ticks: u64 =
            fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
        // USER_HZ is 100 on every Linux Lambda and CI runs on.
        Some(Duration::from_millis(ticks * 10))
    }

    /// Resident memory of the warm environment, in KiB (`VmRSS`).
    pub async fn rss_kib(&self) -> Option<u64> {
        let pid = self.pid().await?;
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
    }

    fn spawn(&self) -> Result<Child, LocalError> {
        self.api.reset();
        let mut cmd = Command::new(&self.spec.binary);
        cmd.env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .env("TZ", ":UTC")
            .env("LANG", "en_US.UTF-8")
            .env("_HANDLER", "bootstrap")
            .env("AWS_LAMBDA_RUNTIME_API", self.runtime_api())
            .env("AWS_LAMBDA_FUNCTION_NAME", &self.spec.name)
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env(
                "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
                self.spec.memory_mb.to_string(),
            )
            .env(
                "AWS_LAMBDA_LOG_GROUP_NAME",
                format!("/aws/lambda/{}", self.spec.name),
            )
            .env("AWS_LAMBDA_LOG_STREAM_NAME", "local")
            .env("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand")
            .env("AWS_REGION", "us-east-1")
            .env("AWS_DEFAULT_REGION", "us-east-1")
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("AWS_SESSION_TOKEN", "testing")
            .envs(self.spec.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = cmd.spawn().map_err(|e| {
            LocalError::Setup(format!(
                "{}: cannot start {}: {e}",
                self.spec.name,
                self.spec.binary.display()
            ))
        })?;
        if let Some(out) = child.stdout.take() {
            tokio::spawn(collect_lines(out, self.logs.clone()));
        }
        if let Some(err) = child.stderr.take() {
            tokio::spawn(collect_lines(err, self.logs.clone()));
        }
        Ok(child)
    }

    /// Invokes the function with `event` and waits for what Lambda would report.
    pub async fn invoke(&self, event: &serde_json::Value) -> Result<Invocation, LocalError> {
        let mut environment = self.environment.lock().await;
        let alive = match environment.as_mut() {
            Some(child) => child.try_wait().map(|s| s.is_none()).unwrap_or(false),
            None => false,
        };
        let cold = !alive;
        if cold {
            *environment = Some(self.spawn()?);
        }
        let child = environment.as_mut().expect("an environment");
        let request_id = format!(
            "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
            fastrand::u32(..),
            fastrand::u16(..),
            fastrand::u16(..0x1000),
            fastrand::u16(..0x1000),
            fastrand::u64(..1 << 48)
        );
        let (reply, answer) = oneshot::channel();
        let body =
            Bytes::from(serde_json::to_vec(event).map_err(|e| LocalError::Setup(e.to_string()))?);
        let timeout = self.spec.timeout;
        *self.api.pending.lock().unwrap() = Some(Pending {
            request_id: request_id.clone(),
            body,
            deadline_ms: epoch_ms() + timeout.as_millis(),
            reply,
        });
        self.api.pending_ready.notify_one();
        let start = Instant::now();
        let outcome = tokio::select! {
            answered = answer => answered.unwrap_or(Outcome::Crashed { status: "dropped the invocation".into() }),
            status = child.wait() => {
                let status = status.map(|s| s.to_string()).unwrap_or_else(|e| e.to_string());
                // Let the output readers collect the last lines the process wrote.
                tokio::time::sleep(Duration::from_millis(20)).await;
                self.exited(status)
            }
            _ = self.api.init_failed.notified() => {
                let (error_type, message) = self.api.init_error.lock().unwrap().clone().unwrap_or_default();
                let _ = child.kill().await;
                Outcome::InitError { error_type, message }
            }
            _ = tokio::time::sleep(timeout) => {
                let _ = child.kill().await;
                Outcome::TimedOut
            }
        };
        if !matches!(outcome, Outcome::Response(_) | Outcome::Error { .. }) {
            // The environment is gone: drop what it left behind, start cold next time.
            *self.api.pending.lock().unwrap() = None;
            *self.api.inflight.lock().unwrap() = None;
            *environment = None;
        }
        Ok(Invocation {
            request_id,
            outcome,
            cold,
            duration: start.elapsed(),
        })
    }

    /// What the process's exit means: an init failure before its first `next`, else a crash.
    fn exited(&self, status: String) -> Outcome {
        if let Some((error_type, message)) = self.api.init_error.lock().unwrap().clone() {
            return Outcome::InitError {
                error_type,
                message,
            };
        }
        if self.api.first_next.lock().unwrap().is_none() {
            let last = self
                .logs
                .lock()
                .unwrap()
                .back()
                .cloned()
                .unwrap_or_default();
            return Outcome::InitError {
                error_type: "Runtime.ExitError".into(),
                message: format!("process {status} during init: {last}"),
            };
        }
        Outcome::Crashed { status }
    }

    /// Stops the execution environment, if one is running.
    pub async fn stop(&self) {
        if let Some(mut child) = self.environment.lock().await.take() {
            let _ = child.kill().await;
        }
    }
}

impl Drop for LocalFunction {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// Keeps the last `LOG_LINES` lines a function writes, as CloudWatch Logs would receive them.
async fn collect_lines<R: AsyncRead + Unpin>(stream: R, logs: Arc<Mutex<VecDeque<String>>>) {
    let mut lines = BufReader::new(stream).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        let mut logs = logs.lock().unwrap();
        if logs.len() == LOG_LINES {
            logs.pop_front();
        }
        logs.push_back(line);
    }
}

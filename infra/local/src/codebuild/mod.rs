//! A stand-in for the two CodeBuild calls eddo makes, because moto's CodeBuild ignores
//! environment overrides and idempotency tokens and reports every build SUCCEEDED.
//!
//! It speaks CodeBuild's JSON 1.1 protocol on loopback (`StartBuild`, `BatchGetBuilds`; point an
//! SDK at it with `AWS_ENDPOINT_URL_CODEBUILD`), honours the idempotency token as CodeBuild does
//! (same token and same parameters within 5 minutes: the same build; different parameters: an
//! error), records every build with its environment overrides, and after a delay finishes the
//! build with the outcome the scenario planned for its project, sending the real-shaped
//! `CodeBuild Build State Change` events (IN_PROGRESS at the start, then the final status) to
//! the emulator's default bus, where rules route them as in AWS.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use aws_config::SdkConfig;
use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::Full;
use serde_json::{Value, json};
use tokio::sync::Notify;

mod shape;

use shape::describe;
pub use shape::{event_time, state_change};

use crate::iam::{Authority, Caller, signing_key};
use crate::loopback::Server;
use crate::template::{ACCOUNT, REGION};
use crate::{LocalError, aws};

/// How long CodeBuild remembers an idempotency token.
pub const TOKEN_LIFETIME: Duration = Duration::from_secs(5 * 60);

/// How many build ids one ListBuildsForProject page holds, as CodeBuild's.
const PAGE: usize = 100;

/// The statuses a finished build can have.
pub const FINAL_STATUSES: [&str; 5] = ["SUCCEEDED", "FAILED", "FAULT", "TIMED_OUT", "STOPPED"];

/// How the scenario wants one build of a project to end.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// SUCCEEDED, FAILED, FAULT, TIMED_OUT or STOPPED.
    pub status: String,
    /// The phase that fails (BUILD unless said otherwise), for a build that does not succeed.
    pub failed_phase: String,
    /// `exported-variables` of the buildspec and their values.
    pub exported: Vec<(String, String)>,
    /// How long the build runs; the stand-in's default when `None`.
    pub duration: Option<Duration>,
}

impl Plan {
    pub fn succeed() -> Plan {
        Plan {
            status: "SUCCEEDED".into(),
            failed_phase: "BUILD".into(),
            exported: Vec::new(),
            duration: None,
        }
    }

    pub fn fail(phase: &str) -> Plan {
        Plan {
            status: "FAILED".into(),
            failed_phase: phase.into(),
            ..Plan::succeed()
        }
    }

    pub fn exporting(mut self, name: &str, value: &str) -> Plan {
        self.exported.push((name.into(), value.into()));
        self
    }

    pub fn lasting(mut self, d: Duration) -> Plan {
        self.duration = Some(d);
        self
    }
}

/// One environment variable of a build.
#[derive(Debug, Clone, PartialEq)]
pub struct EnvVar {
    pub name: String,
    pub value: String,
    /// PLAINTEXT, PARAMETER_STORE or SECRETS_MANAGER.
    pub kind: String,
}

/// A build the stand-in started.
#[derive(Debug, Clone)]
pub struct Build {
    /// `<project>:<uuid>`, as CodeBuild names builds.
    pub id: String,
    pub arn: String,
    pub project: String,
    pub number: u64,
    pub source_version: Option<String>,
    /// The environment overrides of the StartBuild call, in order.
    pub env: Vec<EnvVar>,
    pub timeout_minutes: u64,
    pub idempotency_token: Option<String>,
    /// Who started it: `codebuild` when a function called StartBuild, `rule/<name>` when an
    /// EventBridge rule target did.
    pub initiator: String,
    /// IN_PROGRESS until it finishes.
    pub status: String,
    pub plan: Plan,
    pub start: SystemTime,
    pub end: Option<SystemTime>,
    /// What the stand-in did with it, for the timeline: (when, what).
    pub notes: Vec<(Instant, String)>,
}

impl Build {
    pub fn env(&self, name: &str) -> Option<&str> {
        self.env
            .iter()
            .rev()
            .find(|v| v.name == name)
            .map(|v| v.value.as_str())
    }
}

/// A StartBuild call the stand-in refused: CodeBuild's error code and message.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct Refusal {
    pub code: &'static str,
    pub message: String,
}

fn refuse(code: &'static str, message: impl Into<String>) -> Refusal {
    Refusal {
        code,
        message: message.into(),
    }
}

#[derive(Default)]
struct State {
    /// The projects that exist, with their tags; StartBuild on any other is
    /// ResourceNotFoundException. IAM sees the tags as `aws:ResourceTag/<key>`, as CodeBuild
    /// gives them for StartBuild, BatchGetBuilds and ListBuildsForProject.
    projects: BTreeMap<String, BTreeMap<String, String>>,
    plans: HashMap<String, VecDeque<Plan>>,
    builds: Vec<Build>,
    /// token → (when first used, the request without the token, the build).
    tokens: HashMap<String, (SystemTime, Value, String)>,
    numbers: HashMap<String, u64>,
    /// Builds started but not yet finished (their final event not yet sent).
    running: usize,
    /// StartBuild calls per project, including those the idempotency token answered.
    calls: HashMap<String, usize>,
    /// How far a test moved the stand-in's clock past the wall clock; or the clock itself
    /// (epoch seconds), when the soak gives it its own: the token window and build start times
    /// run on it.
    skew: Duration,
    clock: Option<fn() -> u64>,
}

impl State {
    /// Now, on the stand-in's clock.
    fn now(&self) -> SystemTime {
        match self.clock {
            Some(clock) => SystemTime::UNIX_EPOCH + Duration::from_secs(clock()),
            None => SystemTime::now() + self.skew,
        }
    }
}

struct Inner {
    state: Mutex<State>,
    /// Who may start what: IAM's answer for each StartBuild, as CodeBuild asks it.
    authority: Authority,
    events: aws_sdk_eventbridge::Client,
    default_duration: Duration,
    idle: Notify,
}

/// The stand-in, serving on loopback until dropped.
pub struct CodeBuild {
    inner: Arc<Inner>,
    server: Server,
}

impl CodeBuild {
    /// Starts the stand-in for `projects`, sending build state changes through `sdk` (the
    /// emulator); builds last `duration` unless their plan says otherwise.
    pub async fn start(
        sdk: &SdkConfig,
        projects: impl IntoIterator<Item = String>,
        duration: Duration,
    ) -> Result<CodeBuild, LocalError> {
        let authority = Authority::of(sdk)?;
        let inner = Arc::new(Inner {
            authority,
            state: Mutex::new(State {
                projects: projects.into_iter().map(|p| (p, BTreeMap::new())).collect(),
                ..State::default()
            }),
            events: aws_sdk_eventbridge::Client::new(sdk),
            default_duration: duration,
            idle: Notify::new(),
        });
        let handler = inner.clone();
        let server = Server::serve("CodeBuild stand-in", 0, move |parts, body, _| {
            let inner = handler.clone();
            async move {
                let header = |name: &str| {
                    parts
                        .headers
                        .get(name)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_string()
                };
                let token = header("x-amz-security-token");
                let caller = signing_key(&header("authorization")).map(|k| Caller::AccessKey {
                    id: k.to_string(),
                    session_token: (!token.is_empty()).then_some(token.clone()),
                });
                inner.answer(&header("x-amz-target"), caller, &body)
            }
        })
        .await?;
        Ok(CodeBuild { inner, server })
    }

    /// `http://127.0.0.1:<port>`: the value for `AWS_ENDPOINT_URL_CODEBUILD`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.server.addr())
    }

    /// Makes `project` exist (untagged, unless it was already there with tags).
    pub fn add_project(&self, project: &str) {
        self.inner
            .lock()
            .projects
            .entry(project.to_string())
            .or_default();
    }

    /// Makes `project` exist with the tag `key`=`value` (CreateProject's or TagResource's tags).
    pub fn tag_project(&self, project: &str, key: &str, value: &str) {
        self.inner
            .lock()
            .projects
            .entry(project.to_string())
            .or_default()
            .insert(key.to_string(), value.to_string());
    }

    /// Removes the tag `key` from `project` (UntagResource).
    pub fn untag_project(&self, project: &str, key: &str) {
        if let Some(tags) = self.inner.lock().projects.get_mut(project) {
            tags.remove(key);
        }
    }

    /// Makes `project` no longer exist (deleted after a deploy, say).
    pub fn remove_project(&self, project: &str) {
        self.inner.lock().projects.remove(project);
    }

    /// The next build of `project` ends as `plan` (plans queue up; without one a build succeeds).
    pub fn plan(&self, project: &str, plan: Plan) {
        self.inner
            .lock()
            .plans
            .entry(project.to_string())
            .or_default()
            .push_back(plan);
    }

    /// Moves the stand-in's clock on by `by`: tokens used before expire as in CodeBuild, and
    /// builds started after start later.
    pub fn advance(&self, by: Duration) {
        self.inner.lock().skew += by;
    }

    /// Runs the stand-in on `clock` (epoch seconds), the one a soak moves for everything.
    pub fn with_clock(&self, clock: fn() -> u64) {
        self.inner.lock().clock = Some(clock);
    }

    /// How many StartBuild calls `project` received, including the ones its idempotency token
    /// answered with an earlier build: what proves a caller called once, not just that the
    /// token saved it.
    pub fn calls(&self, project: &str) -> usize {
        self.inner.lock().calls.get(project).copied().unwrap_or(0)
    }

    /// Every build started so far, oldest first.
    pub fn builds(&self) -> Vec<Build> {
        self.inner.lock().builds.clone()
    }

    /// The builds started for `project`, oldest first.
    pub fn builds_of(&self, project: &str) -> Vec<Build> {
        let inner = self.inner.lock();
        inner
            .builds
            .iter()
            .filter(|b| b.project == project)
            .cloned()
            .collect()
    }

    /// Records a build of `project` that ran and finished as `plan` says, started by someone the
    /// test stands for (a push rule, a person at the console): its id is `<project>:<uuid>`, its
    /// source `source_version`, its environment `env`. It sends no event and is no StartBuild
    /// call: the test sends the state change it wants, and BatchGetBuilds finds this build (or,
    /// for a build CodeBuild never ran, finds none).
    pub fn ran(
        &self,
        project: &str,
        uuid: &str,
        source_version: &str,
        env: &[(&str, &str)],
        plan: Plan,
    ) -> Build {
        let mut state = self.inner.lock();
        let number = {
            let n = state.numbers.entry(project.to_string()).or_default();
            *n += 1;
            *n
        };
        let id = format!("{project}:{uuid}");
        let now = state.now();
        let build = Build {
            arn: format!("arn:aws:codebuild:{REGION}:{ACCOUNT}:build/{id}"),
            id,
            project: project.to_string(),
            number,
            source_version: Some(source_version.to_string()),
            env: env
                .iter()
                .map(|(name, value)| EnvVar {
                    name: name.to_string(),
                    value: value.to_string(),
                    kind: "PLAINTEXT".into(),
                })
                .collect(),
            timeout_minutes: 60,
            idempotency_token: None,
            initiator: "test".into(),
            status: plan.status.clone(),
            plan,
            start: now,
            end: Some(now),
            notes: vec![(Instant::now(), "ran (recorded by the test)".into())],
        };
        state.builds.push(build.clone());
        build
    }

    /// Makes build `id` (a build the stand-in started) end `status` now, as CodeBuild would
    /// describe it from here on; its own state change, when its time comes, says the same.
    pub fn finish(&self, id: &str, status: &str) {
        let mut state = self.inner.lock();
        if let Some(b) = state.builds.iter_mut().find(|b| b.id == id || b.arn == id) {
            b.plan.status = status.to_string();
            b.status = status.to_string();
            b.end.get_or_insert_with(SystemTime::now);
        }
    }

    /// Starts a build as an EventBridge rule's CodeBuild target does, as the target's role
    /// (`RoleArn`), which must trust `events.amazonaws.com` acting for the rule (`rule_arn`, its
    /// `aws:SourceArn`) and allow StartBuild on the project: `input` (the target's input, after
    /// any input transformer) holds the StartBuild parameters.
    pub fn start_from_rule(
        &self,
        rule: &str,
        rule_arn: &str,
        project: &str,
        role: &str,
        input: &Value,
    ) -> Result<Build, Refusal> {
        let mut request = match input {
            Value::Object(m) => m.clone(),
            _ => serde_json::Map::new(),
        };
        request.insert("projectName".into(), project.into());
        let caller = Caller::ServiceRole {
            role: role.to_string(),
            service: "events.amazonaws.com".into(),
            source_arn: Some(rule_arn.to_string()),
        };
        self.inner.clone().start_build(
            &Value::Object(request),
            &format!("rule/{rule}"),
            Some(caller),
        )
    }

    /// Waits until every started build has finished and its final event was sent, or `wait`
    /// passed; `true` when idle.
    pub async fn settle(&self, wait: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let notified = self.inner.idle.notified();
            if self.inner.lock().running == 0 {
                return true;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return self.inner.lock().running == 0;
            }
        }
    }
}

impl Inner {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn answer(
        self: Arc<Self>,
        target: &str,
        caller: Option<Caller>,
        body: &[u8],
    ) -> Response<Full<Bytes>> {
        let request: Value = match serde_json::from_slice(body) {
            Ok(v) => v,
            Err(e) => {
                return error(refuse(
                    "SerializationException",
                    format!("request body: {e}"),
                ));
            }
        };
        let result = match target.rsplit('.').next().unwrap_or_default() {
            "StartBuild" => self
                .start_build(&request, "codebuild", caller)
                .map(|b| json!({ "build": describe(&b) })),
            "BatchGetBuilds" => self.batch_get(&request, caller),
            "ListBuildsForProject" => self.list_for_project(&request, caller),
            other => Err(refuse(
                "UnknownOperationException",
                format!(
                    "the local CodeBuild stand-in implements StartBuild, BatchGetBuilds and ListBuildsForProject, not {other:?}"
                ),
            )),
        };
        match result {
            Ok(v) => Response::builder()
                .status(StatusCode::OK)
                .header("content-type", "application/x-amz-json-1.1")
                .body(Full::new(Bytes::from(v.to_string())))
                .expect("valid response"),
            Err(r) => error(r),
        }
    }

    /// Whether `caller` may start a build of `project`: CodeBuild's own question to IAM.
    fn authorize(&self, caller: Option<Caller>, project: &str) -> Result<(), Refusal> {
        self.authorize_action(caller, "codebuild:StartBuild", project)
    }

    /// Whether `caller` may do `action` on `project`.
    fn authorize_action(
        &self,
        caller: Option<Caller>,
        action: &str,
        project: &str,
    ) -> Result<(), Refusal> {
        let Some(caller) = caller else {
            return Err(refuse(
                "MissingAuthenticationTokenException",
                "the request is not signed",
            ));
        };
        let resource = format!("arn:aws:codebuild:{REGION}:{ACCOUNT}:project/{project}");
        let context: serde_json::Map<String, Value> = self
            .lock()
            .projects
            .get(project)
            .into_iter()
            .flatten()
            .map(|(k, v)| (format!("aws:ResourceTag/{k}"), json!([v])))
            .collect();
        match self
            .authority
            .authorize(&caller, action, &resource, Value::Object(context))
        {
            Ok(d) if d.allowed => Ok(()),
            Ok(d) => Err(refuse("AccessDeniedException", d.message)),
            Err(e) => Err(refuse("InternalFailure", e.to_string())),
        }
    }

    fn start_build(
        self: Arc<Self>,
        request: &Value,
        initiator: &str,
        caller: Option<Caller>,
    ) -> Result<Build, Refusal> {
        let project = request["projectName"]
            .as_str()
            .filter(|p| !p.is_empty())
            .ok_or_else(|| refuse("InvalidInputException", "projectName is required"))?
            // A project may be named by its ARN.
            .rsplit("project/")
            .next()
            .unwrap_or_default()
            .to_string();
        let mut env = Vec::new();
        for v in request["environmentVariablesOverride"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let (Some(name), Some(value)) = (v["name"].as_str(), v["value"].as_str()) else {
                return Err(refuse(
                    "InvalidInputException",
                    format!("an environment variable override needs a name and a value: {v}"),
                ));
            };
            env.push(EnvVar {
                name: name.into(),
                value: value.into(),
                kind: v["type"].as_str().unwrap_or("PLAINTEXT").into(),
            });
        }
        let token = request["idempotencyToken"].as_str().map(str::to_string);
        let mut fingerprint = request.clone();
        if let Some(m) = fingerprint.as_object_mut() {
            m.remove("idempotencyToken");
        }

        *self.lock().calls.entry(project.clone()).or_default() += 1;
        self.authorize(caller, &project)?;
        let mut state = self.lock();
        if !state.projects.contains_key(&project) {
            return Err(refuse(
                "ResourceNotFoundException",
                format!(
                    "Project cannot be found: arn:aws:codebuild:{REGION}:{ACCOUNT}:project/{project}"
                ),
            ));
        }
        if let Some(token) = &token {
            let now = state.now();
            state.tokens.retain(|_, (at, _, _)| {
                now.duration_since(*at).unwrap_or_default() < TOKEN_LIFETIME
            });
            if let Some((_, earlier, build_id)) = state.tokens.get(token) {
                if *earlier != fingerprint {
                    return Err(refuse(
                        "InvalidInputException",
                        format!(
                            "idempotency token {token} was used with different parameters within 5 minutes"
                        ),
                    ));
                }
                let build_id = build_id.clone();
                return Ok(state
                    .builds
                    .iter()
                    .find(|b| b.id == build_id)
                    .cloned()
                    .expect("a token names a recorded build"));
            }
        }
        let plan = state
            .plans
            .get_mut(&project)
            .and_then(VecDeque::pop_front)
            .unwrap_or_else(Plan::succeed);
        let number = {
            let n = state.numbers.entry(project.clone()).or_default();
            *n += 1;
            *n
        };
        let id = format!("{project}:{}", uuid());
        let build = Build {
            arn: format!("arn:aws:codebuild:{REGION}:{ACCOUNT}:build/{id}"),
            id: id.clone(),
            project,
            number,
            source_version: request["sourceVersion"].as_str().map(str::to_string),
            env,
            timeout_minutes: request["timeoutInMinutesOverride"].as_u64().unwrap_or(60),
            idempotency_token: token.clone(),
            initiator: initiator.to_string(),
            status: "IN_PROGRESS".into(),
            plan,
            start: state.now(),
            end: None,
            notes: vec![(Instant::now(), "started".into())],
        };
        if let Some(token) = token {
            let at = state.now();
            state.tokens.insert(token, (at, fingerprint, id.clone()));
        }
        state.builds.push(build.clone());
        state.running += 1;
        drop(state);

        let duration = build.plan.duration.unwrap_or(self.default_duration);
        let started = build.clone();
        tokio::spawn(async move {
            self.emit(&started).await;
            tokio::time::sleep(duration).await;
            let finished = {
                let mut state = self.lock();
                let b = state
                    .builds
                    .iter_mut()
                    .find(|b| b.id == id)
                    .expect("a started build is recorded");
                b.status = b.plan.status.clone();
                b.end = Some(SystemTime::now());
                b.clone()
            };
            self.emit(&finished).await;
            let mut state = self.lock();
            state.running -= 1;
            drop(state);
            self.idle.notify_waiters();
        });
        Ok(build)
    }

    /// Sends the build's state change to the default bus, and notes it on the build.
    async fn emit(&self, build: &Build) {
        let detail = state_change(build);
        let sent = self
            .events
            .put_events()
            .entries(
                aws_sdk_eventbridge::types::PutEventsRequestEntry::builder()
                    .event_bus_name("default")
                    .source("aws.codebuild")
                    .detail_type("CodeBuild Build State Change")
                    .resources(&build.arn)
                    .detail(detail.to_string())
                    .build(),
            )
            .send()
            .await;
        let note = match sent {
            Ok(out) if out.failed_entry_count() == 0 => format!("sent {}", build.status),
            Ok(out) => format!(
                "could not send {}: {:?}",
                build.status,
                out.entries().first().and_then(|e| e.error_message())
            ),
            Err(e) => format!("could not send {}: {}", build.status, aws("PutEvents", e)),
        };
        let mut state = self.lock();
        if let Some(b) = state.builds.iter_mut().find(|b| b.id == build.id) {
            b.notes.push((Instant::now(), note));
        }
    }

    /// BatchGetBuilds, authorized per project as CodeBuild does (a build of a project the
    /// caller may not read is refused, not left out).
    fn batch_get(&self, request: &Value, caller: Option<Caller>) -> Result<Value, Refusal> {
        let ids: Vec<String> = request["ids"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|id| id.as_str().map(str::to_string))
            .collect();
        if ids.is_empty() || ids.len() > 100 {
            return Err(refuse(
                "InvalidInputException",
                "ids must name 1 to 100 builds",
            ));
        }
        let projects: BTreeSet<String> = ids
            .iter()
            .map(|id| {
                let id = id.rsplit(":build/").next().unwrap_or(id);
                id.split(':').next().unwrap_or_default().to_string()
            })
            .collect();
        for project in &projects {
            self.authorize_action(caller.clone(), "codebuild:BatchGetBuilds", project)?;
        }
        let state = self.lock();
        let mut found = Vec::new();
        let mut missing = Vec::new();
        for id in ids {
            match state.builds.iter().find(|b| b.id == id || b.arn == id) {
                Some(b) => found.push(describe(b)),
                None => missing.push(id),
            }
        }
        Ok(json!({ "builds": found, "buildsNotFound": missing }))
    }

    /// ListBuildsForProject: the project's build ids, newest first unless `sortOrder` says
    /// ASCENDING; pages of at most 100, the next one named by `nextToken`.
    fn list_for_project(&self, request: &Value, caller: Option<Caller>) -> Result<Value, Refusal> {
        let project = request["projectName"]
            .as_str()
            .filter(|p| !p.is_empty())
            .ok_or_else(|| refuse("InvalidInputException", "projectName is required"))?
            .to_string();
        self.authorize_action(caller, "codebuild:ListBuildsForProject", &project)?;
        let state = self.lock();
        if !state.projects.contains_key(&project) {
            return Err(refuse(
                "ResourceNotFoundException",
                format!(
                    "Project cannot be found: arn:aws:codebuild:{REGION}:{ACCOUNT}:project/{project}"
                ),
            ));
        }
        let mut ids: Vec<&str> = state
            .builds
            .iter()
            .filter(|b| b.project == project)
            .map(|b| b.id.as_str())
            .collect();
        if request["sortOrder"].as_str() != Some("ASCENDING") {
            ids.reverse();
        }
        let from: usize = match request["nextToken"].as_str() {
            None => 0,
            Some(t) => t
                .strip_prefix("page-")
                .and_then(|n| n.parse().ok())
                .ok_or_else(|| refuse("InvalidInputException", "invalid nextToken"))?,
        };
        let page: Vec<&str> = ids.iter().skip(from).take(PAGE).copied().collect();
        let mut answer = json!({ "ids": page });
        if from + PAGE < ids.len() {
            answer["nextToken"] = json!(format!("page-{}", from + PAGE));
        }
        Ok(answer)
    }
}

fn error(r: Refusal) -> Response<Full<Bytes>> {
    Response::builder()
        .status(StatusCode::BAD_REQUEST)
        .header("content-type", "application/x-amz-json-1.1")
        .header("x-amzn-errortype", r.code)
        .body(Full::new(Bytes::from(
            json!({ "__type": r.code, "message": r.message }).to_string(),
        )))
        .expect("valid response")
}

fn uuid() -> String {
    let n = fastrand::u128(..);
    let h = format!("{n:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

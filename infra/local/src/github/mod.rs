//! GitHub's REST API on loopback, as strict as GitHub for the calls eddo's App makes: the App's
//! JWT (its RS256 signature by the App's key, its issuer, a lifetime of at most ten minutes, by
//! the stand-in's clock), installation tokens that expire, each request's body as GitHub's
//! description of the operation requires it ([`shape`]), and rate limits and outages when a test
//! asks for them. It records every call and keeps the check runs as GitHub would show them.
//!
//! The App's key is made when the stand-in starts (RSA 2048, aws-lc): nothing secret is kept in
//! the repository.

mod shape;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};

use crate::LocalError;
use crate::loopback::{Answer, Server, refused};

/// The App's client id, as the local stack's App secret names it.
pub const LOCAL_CLIENT_ID: &str = "Iv23liEddoLocalApp01";

/// The installation of the local App on every repository.
pub const LOCAL_INSTALLATION: u64 = 51_000_001;

/// How long an installation token lasts, as on GitHub.
pub const TOKEN_SECS: u64 = 3600;

/// One call the stand-in answered.
#[derive(Debug, Clone)]
pub struct Call {
    pub method: String,
    /// Path and query.
    pub path: String,
    pub status: u16,
    /// `jwt`, `token`, or `none`: how it was authenticated.
    pub auth: &'static str,
    pub body: Value,
}

/// A check run as GitHub keeps it.
#[derive(Debug, Clone)]
pub struct CheckRun {
    pub id: u64,
    pub repo: String,
    pub head_sha: String,
    pub name: String,
    pub external_id: Option<String>,
    pub status: String,
    pub conclusion: Option<String>,
    pub output: Value,
    /// Every state it was brought to, in order (`status` or `completed/<conclusion>`).
    pub states: Vec<String>,
}

impl CheckRun {
    fn json(&self) -> Value {
        json!({
            "id": self.id,
            "name": self.name,
            "head_sha": self.head_sha,
            "external_id": self.external_id,
            "status": self.status,
            "conclusion": self.conclusion,
            "output": self.output,
            "app": {"id": 1, "client_id": LOCAL_CLIENT_ID, "slug": "eddo-local"},
        })
    }

    fn state(&self) -> String {
        match &self.conclusion {
            Some(c) if self.status == "completed" => format!("completed/{c}"),
            _ => self.status.clone(),
        }
    }
}

/// A workflow run whose jobs wait on environments with eddo's protection rule, as GitHub keeps
/// it: `waiting` until every environment it waits on is answered, then `in_progress` (all
/// approved) or `completed` (one rejected).
#[derive(Debug, Clone)]
pub struct Run {
    pub id: u64,
    pub repo: String,
    pub status: String,
    /// The environments still waiting for the App's answer.
    pub pending: Vec<String>,
    /// Every answer GitHub took, in order: (environment, state, comment).
    pub reviews: Vec<(String, String, String)>,
}

/// What the next calls meet instead of an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// GitHub answers this status (a 5xx: down).
    Status(u16),
    /// The secondary rate limit: 403 with `retry-after`.
    RateLimited { retry_after: u64 },
    /// The call is applied and its answer lost (502 after the fact).
    AnswerLost,
}

struct State {
    clock: fn() -> u64,
    public: jsonwebtoken::DecodingKey,
    tokens: HashMap<String, (u64, u64)>,
    check_runs: BTreeMap<u64, CheckRun>,
    runs: BTreeMap<u64, Run>,
    calls: Vec<Call>,
    faults: VecDeque<Fault>,
    review_faults: VecDeque<Fault>,
    next_id: u64,
}

/// The stand-in, serving until dropped.
pub struct GitHub {
    server: Server,
    state: Arc<Mutex<State>>,
    private_pem: String,
}

impl GitHub {
    /// Starts the stand-in on a free loopback port, judging times by `clock` (epoch seconds).
    pub async fn start(clock: fn() -> u64) -> Result<GitHub, LocalError> {
        use aws_lc_rs::encoding::AsDer;
        let key = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048)
            .map_err(|_| LocalError::Setup("could not make the App's RSA key".into()))?;
        let der = key
            .as_der()
            .map_err(|_| LocalError::Setup("could not encode the App's RSA key".into()))?;
        let private_pem = pem("PRIVATE KEY", der.as_ref());
        let public = jsonwebtoken::DecodingKey::from_rsa_der(
            aws_lc_rs::signature::KeyPair::public_key(&key).as_ref(),
        );
        let state = Arc::new(Mutex::new(State {
            clock,
            public,
            tokens: HashMap::new(),
            check_runs: BTreeMap::new(),
            runs: BTreeMap::new(),
            calls: Vec::new(),
            faults: VecDeque::new(),
            review_faults: VecDeque::new(),
            next_id: 4_000_000_001,
        }));
        let server =
            Server::serve_json("the GitHub stand-in", state.clone(), State::answer).await?;
        Ok(GitHub {
            server,
            state,
            private_pem,
        })
    }

    /// Where the API is (`EDDO_GITHUB_API`, the template's `GitHubApiUrl`).
    pub fn url(&self) -> String {
        format!("http://{}", self.server.addr())
    }

    /// The App's secret as an operator stores it in Secrets Manager.
    pub fn app_secret(&self) -> String {
        json!({"client_id": LOCAL_CLIENT_ID, "private_key": self.private_pem}).to_string()
    }

    /// The template parameters that turn the App mode on, against this stand-in.
    pub fn parameters(&self) -> Vec<(String, String)> {
        vec![
            ("GitHubApp".into(), "on".into()),
            ("GitHubApiUrl".into(), self.url()),
        ]
    }

    /// Puts the App's id and key into the secret the stack's gate reads (`GitHubAppSecret`), as
    /// the operator does after deploying.
    pub async fn install(&self, stack: &crate::stack::Stack) -> Result<(), LocalError> {
        crate::loopback::put_gate_secret(stack, "EDDO_GITHUB_APP_SECRET", &self.app_secret()).await
    }

    /// Workflow run `id` of `repo` waits on `environment` for the App's answer, as when GitHub
    /// sends the `deployment_protection_rule` delivery.
    pub fn wait_on(&self, repo: &str, id: u64, environment: &str) {
        let mut state = self.lock();
        let run = state.runs.entry(id).or_insert_with(|| Run {
            id,
            repo: repo.to_string(),
            status: "waiting".into(),
            pending: vec![],
            reviews: vec![],
        });
        run.status = "waiting".into();
        run.pending.push(environment.to_string());
    }

    /// Workflow run `id` as GitHub has it.
    pub fn run(&self, id: u64) -> Option<Run> {
        self.lock().runs.get(&id).cloned()
    }

    /// Workflow run `id` is cancelled (its jobs no longer wait).
    pub fn cancel(&self, id: u64) {
        if let Some(run) = self.lock().runs.get_mut(&id) {
            run.status = "completed".into();
            run.pending.clear();
        }
    }

    /// The next check run calls meet `faults`, one each, in order.
    pub fn fail_next(&self, faults: &[Fault]) {
        self.lock().faults.extend(faults.iter().copied());
    }

    /// The next answers to protection rules meet `faults`, one each, in order.
    pub fn fail_next_reviews(&self, faults: &[Fault]) {
        self.lock().review_faults.extend(faults.iter().copied());
    }

    /// Every call so far, in order.
    pub fn calls(&self) -> Vec<Call> {
        self.lock().calls.clone()
    }

    /// The check runs on `repo`'s commit `sha`, oldest first.
    pub fn check_runs(&self, repo: &str, sha: &str) -> Vec<CheckRun> {
        self.lock()
            .check_runs
            .values()
            .filter(|r| r.repo == repo && r.head_sha == sha)
            .cloned()
            .collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn pem(label: &str, der: &[u8]) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let lines: Vec<&str> = b64
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap_or_default())
        .collect();
    format!(
        "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
        lines.join("\n")
    )
}

impl State {
    fn answer(&mut self, parts: &http::request::Parts, body: &[u8]) -> Answer {
        let path = parts
            .uri
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .to_string();
        let body: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
        let auth = parts
            .headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or_default()
            .to_string();
        // Faults are met by the check run calls and the answers to protection rules, each
        // from its own queue (the App's own token calls go through).
        let fault = if path.contains("/check-runs") {
            self.faults.pop_front()
        } else if path.ends_with("/deployment_protection_rule") {
            self.review_faults.pop_front()
        } else {
            None
        };
        let (kind, answer) = match fault {
            Some(Fault::Status(status)) => ("none", refused(status, "Server Error")),
            Some(Fault::RateLimited { retry_after }) => (
                "none",
                (
                    403,
                    json!({"message": "You have exceeded a secondary rate limit."}),
                    vec![("retry-after", retry_after.to_string())],
                ),
            ),
            _ => self.route(parts.method.as_str(), &path, &auth, &body),
        };
        let answer = if fault == Some(Fault::AnswerLost) {
            refused(502, "Bad Gateway")
        } else {
            answer
        };
        self.calls.push(Call {
            method: parts.method.to_string(),
            path,
            status: answer.0,
            auth: kind,
            body,
        });
        answer
    }

    fn route(
        &mut self,
        method: &str,
        path: &str,
        auth: &str,
        body: &Value,
    ) -> (&'static str, Answer) {
        let (route, query) = path.split_once('?').unwrap_or((path, ""));
        let parts: Vec<&str> = route.trim_start_matches('/').split('/').collect();
        match (method, parts.as_slice()) {
            ("POST", ["app", "installations", id, "access_tokens"]) => {
                ("jwt", self.with_jwt(auth, |s| s.issue(id)))
            }
            ("GET", ["repos", _, _, "installation"]) => (
                "jwt",
                self.with_jwt(auth, |_| {
                    (
                        200,
                        json!({"id": LOCAL_INSTALLATION, "app_id": 1, "client_id": LOCAL_CLIENT_ID}),
                        vec![],
                    )
                }),
            ),
            ("POST", ["repos", owner, repo, "check-runs"]) => {
                let repo = format!("{owner}/{repo}");
                ("token", self.with_token(auth, |s| s.create(&repo, body)))
            }
            ("PATCH", ["repos", owner, repo, "check-runs", id]) => {
                let repo = format!("{owner}/{repo}");
                ("token", self.with_token(auth, |s| s.update(&repo, id, body)))
            }
            ("GET", ["repos", owner, repo, "commits", sha, "check-runs"]) => {
                let repo = format!("{owner}/{repo}");
                (
                    "token",
                    self.with_token(auth, |s| s.list(&repo, sha, query)),
                )
            }
            ("POST", ["repos", owner, repo, "actions", "runs", id, "deployment_protection_rule"]) => {
                let repo = format!("{owner}/{repo}");
                ("token", self.with_token(auth, |s| s.review(&repo, id, body)))
            }
            ("GET", ["repos", owner, repo, "actions", "runs", id]) => {
                let repo = format!("{owner}/{repo}");
                ("token", self.with_token(auth, |s| s.run_of(&repo, id)))
            }
            _ => ("none", refused(404, "Not Found")),
        }
    }

    /// GitHub takes one answer per environment a run waits on; one for an environment that no
    /// longer waits (answered, or the run moved on) is refused. (GitHub does not publish that
    /// refusal's status; the stand-in answers 422, as GitHub does for a state change it will
    /// not make, and eddo relies only on it being a refusal.)
    fn review(&mut self, repo: &str, id: &str, body: &Value) -> Answer {
        if let Err(why) = shape::review_protection_rule(body) {
            return refused(422, &why);
        }
        let Some(run) = id
            .parse::<u64>()
            .ok()
            .and_then(|id| self.runs.get_mut(&id))
            .filter(|r| r.repo == repo)
        else {
            return refused(404, "Not Found");
        };
        let environment = body["environment_name"].as_str().unwrap_or_default();
        let Some(at) = run.pending.iter().position(|e| e == environment) else {
            return refused(
                422,
                "No pending custom deployment protection rule for this environment",
            );
        };
        run.pending.remove(at);
        let state = body["state"].as_str().unwrap_or("approved").to_string();
        let comment = body["comment"].as_str().unwrap_or_default().to_string();
        if state == "rejected" {
            run.status = "completed".into();
            run.pending.clear();
        } else if run.pending.is_empty() {
            run.status = "in_progress".into();
        }
        run.reviews.push((environment.to_string(), state, comment));
        (204, Value::Null, vec![])
    }

    fn run_of(&self, repo: &str, id: &str) -> Answer {
        match id
            .parse::<u64>()
            .ok()
            .and_then(|id| self.runs.get(&id))
            .filter(|r| r.repo == repo)
        {
            Some(run) => (
                200,
                json!({"id": run.id, "status": run.status, "conclusion": if run.status == "completed" { json!("failure") } else { Value::Null }}),
                vec![],
            ),
            None => refused(404, "Not Found"),
        }
    }

    /// GitHub's checks of an App's JWT: RS256 by the App's key, its issuer, issued no later
    /// than now and expiring within ten minutes of it.
    fn with_jwt(&mut self, jwt: &str, then: impl FnOnce(&mut State) -> Answer) -> Answer {
        let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
        validation.set_issuer(&[LOCAL_CLIENT_ID]);
        validation.set_required_spec_claims(&["iat", "exp", "iss"]);
        // Its times are judged below, by the stand-in's clock.
        validation.validate_exp = false;
        let claims = match jsonwebtoken::decode::<Value>(jwt, &self.public, &validation) {
            Ok(t) => t.claims,
            Err(e) => return refused(401, &format!("A JSON web token could not be decoded: {e}")),
        };
        let now = (self.clock)();
        let (iat, exp) = (
            claims["iat"].as_u64().unwrap_or(u64::MAX),
            claims["exp"].as_u64().unwrap_or(0),
        );
        if iat > now + 60 {
            return refused(
                401,
                "'Issued at' claim ('iat') must be an Integer representing a time in the past.",
            );
        }
        if exp <= now {
            return refused(
                401,
                "'Expiration time' claim ('exp') is too far in the past.",
            );
        }
        if exp > now + 600 {
            return refused(
                401,
                "'Expiration time' claim ('exp') is too far in the future.",
            );
        }
        then(self)
    }

    fn with_token(&mut self, token: &str, then: impl FnOnce(&mut State) -> Answer) -> Answer {
        match self.tokens.get(token) {
            Some((_, expires_at)) if (self.clock)() < *expires_at => then(self),
            _ => refused(401, "Bad credentials"),
        }
    }

    fn issue(&mut self, installation: &str) -> Answer {
        if installation != LOCAL_INSTALLATION.to_string() {
            return refused(404, "Not Found");
        }
        let token = format!("ghs_{:036x}", fastrand::u128(..));
        let expires_at = (self.clock)() + TOKEN_SECS;
        self.tokens
            .insert(token.clone(), (LOCAL_INSTALLATION, expires_at));
        (
            201,
            json!({
                "token": token,
                "expires_at": eddo::time::rfc3339(expires_at),
                "permissions": {"checks": "write", "metadata": "read"},
                "repository_selection": "all",
            }),
            vec![],
        )
    }

    fn create(&mut self, repo: &str, body: &Value) -> Answer {
        if let Err(why) = shape::create_check_run(body) {
            return refused(422, &why);
        }
        let id = self.next_id;
        self.next_id += 1;
        let s = |k: &str| body[k].as_str().map(str::to_string);
        let mut run = CheckRun {
            id,
            repo: repo.to_string(),
            head_sha: s("head_sha").unwrap_or_default(),
            name: s("name").unwrap_or_default(),
            external_id: s("external_id"),
            status: s("status").unwrap_or_else(|| "queued".into()),
            conclusion: s("conclusion"),
            output: body["output"].clone(),
            states: vec![],
        };
        if run.conclusion.is_some() {
            run.status = "completed".into();
        }
        run.states.push(run.state());
        let answer = run.json();
        self.check_runs.insert(id, run);
        (201, answer, vec![])
    }

    fn update(&mut self, repo: &str, id: &str, body: &Value) -> Answer {
        if let Err(why) = shape::update_check_run(body) {
            return refused(422, &why);
        }
        let Some(run) = id
            .parse::<u64>()
            .ok()
            .and_then(|id| self.check_runs.get_mut(&id))
            .filter(|r| r.repo == repo)
        else {
            return refused(404, "Not Found");
        };
        if let Some(status) = body["status"].as_str() {
            run.status = status.to_string();
        }
        if let Some(conclusion) = body["conclusion"].as_str() {
            run.conclusion = Some(conclusion.to_string());
            run.status = "completed".into();
        }
        if !body["output"].is_null() {
            run.output = body["output"].clone();
        }
        if let Some(e) = body["external_id"].as_str() {
            run.external_id = Some(e.to_string());
        }
        let state = run.state();
        if run.states.last() != Some(&state) {
            run.states.push(state);
        }
        (200, run.json(), vec![])
    }

    fn list(&self, repo: &str, sha: &str, query: &str) -> Answer {
        let name = form_urlencoded::parse(query.as_bytes())
            .find(|(k, _)| k == "check_name")
            .map(|(_, v)| v.into_owned());
        let runs: Vec<Value> = self
            .check_runs
            .values()
            .filter(|r| r.repo == repo && r.head_sha == sha)
            .filter(|r| name.as_deref().is_none_or(|n| n == r.name))
            .map(CheckRun::json)
            .collect();
        (
            200,
            json!({"total_count": runs.len(), "check_runs": runs}),
            vec![],
        )
    }
}

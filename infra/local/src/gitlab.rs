//! GitLab's commit status API on loopback (`POST /api/v4/projects/:id/statuses/:sha`), as strict
//! as GitLab for the calls eddo makes: the access token (`PRIVATE-TOKEN`), the project by its
//! URL-encoded path, the state among GitLab's, a description within its limit, and GitLab's
//! transitions (a `pending` or `running` status set to the same state again is refused with 400,
//! "Cannot transition status via :run from :running"; a finished one set again is a new status,
//! the old one retried). It records every call and keeps each commit's statuses; fails or
//! rate-limits when a test asks.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};

use crate::LocalError;
use crate::loopback::{Answer, Server, refused};

/// The project access token the local stack's GitLab secret holds.
pub const LOCAL_GITLAB_ACCESS_TOKEN: &str = "glpat-eddo-local-0123456789abcdef";

/// The most characters of a description GitLab keeps.
pub const MAX_DESCRIPTION: usize = 255;

/// One status GitLab keeps on a commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    pub project: String,
    pub sha: String,
    pub name: String,
    pub state: String,
    pub description: String,
    /// A later status of the same name replaced it.
    pub retried: bool,
}

/// One call the stand-in answered.
#[derive(Debug, Clone)]
pub struct Call {
    pub path: String,
    pub status: u16,
}

/// What the next status calls meet instead of an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    Status(u16),
    /// 429 with `retry-after`.
    RateLimited {
        retry_after: u64,
    },
}

#[derive(Default)]
struct State {
    statuses: Vec<Status>,
    calls: Vec<Call>,
    faults: VecDeque<Fault>,
    token: String,
}

/// The stand-in, serving until dropped.
pub struct GitLab {
    server: Server,
    state: Arc<Mutex<State>>,
}

impl GitLab {
    pub async fn start() -> Result<GitLab, LocalError> {
        let state = Arc::new(Mutex::new(State {
            token: LOCAL_GITLAB_ACCESS_TOKEN.into(),
            ..State::default()
        }));
        let server =
            Server::serve_json("the GitLab stand-in", state.clone(), State::answer).await?;
        Ok(GitLab { server, state })
    }

    /// Where the API is (`EDDO_GITLAB_API`, the template's `GitLabApiUrl`).
    pub fn url(&self) -> String {
        format!("http://{}/api/v4", self.server.addr())
    }

    /// The template parameters that turn commit statuses on, against this stand-in.
    pub fn parameters(&self) -> Vec<(String, String)> {
        vec![
            ("GitLabStatuses".into(), "on".into()),
            ("GitLabApiUrl".into(), self.url()),
        ]
    }

    /// The token's secret as an operator stores it.
    pub fn token_secret(&self) -> String {
        json!({"token": self.lock().token}).to_string()
    }

    /// Puts the token into the secret the stack's gate reads (`GitLabTokenSecret`), as the
    /// operator does after deploying.
    pub async fn install(&self, stack: &crate::stack::Stack) -> Result<(), LocalError> {
        crate::loopback::put_gate_secret(stack, "EDDO_GITLAB_TOKEN_SECRET", &self.token_secret())
            .await
    }

    /// GitLab takes `token` from now on (the old one is revoked: a rotation).
    pub fn rotate(&self, token: &str) {
        self.lock().token = token.to_string();
    }

    /// The next status calls meet `faults`, one each, in order.
    pub fn fail_next(&self, faults: &[Fault]) {
        self.lock().faults.extend(faults.iter().copied());
    }

    pub fn calls(&self) -> Vec<Call> {
        self.lock().calls.clone()
    }

    /// The statuses of `project`'s commit `sha`, oldest first.
    pub fn statuses(&self, project: &str, sha: &str) -> Vec<Status> {
        self.lock()
            .statuses
            .iter()
            .filter(|s| s.project == project && s.sha == sha)
            .cloned()
            .collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl State {
    fn answer(&mut self, parts: &http::request::Parts, body: &[u8]) -> Answer {
        let path = parts.uri.path().to_string();
        let answer = self.route(parts, &path, body);
        self.calls.push(Call {
            path,
            status: answer.0,
        });
        answer
    }

    fn route(&mut self, parts: &http::request::Parts, path: &str, body: &[u8]) -> Answer {
        let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        let ["api", "v4", "projects", project, "statuses", sha] = segments.as_slice() else {
            return refused(404, "404 Not Found");
        };
        if parts.method != http::Method::POST {
            return refused(405, "405 Method Not Allowed");
        }
        let token = parts
            .headers
            .get("private-token")
            .and_then(|v| v.to_str().ok());
        if token != Some(self.token.as_str()) {
            return refused(401, "401 Unauthorized");
        }
        match self.faults.pop_front() {
            Some(Fault::Status(status)) => return refused(status, "Internal Server Error"),
            Some(Fault::RateLimited { retry_after }) => {
                return (
                    429,
                    json!({"message": "Retry later"}),
                    vec![("retry-after", retry_after.to_string())],
                );
            }
            None => {}
        }
        // GitLab takes a project's id or its URL-encoded path.
        let project = project.replace("%2F", "/").replace("%2f", "/");
        let body: Value = serde_json::from_slice(body).unwrap_or_default();
        let state = body["state"].as_str().unwrap_or_default().to_string();
        if !["pending", "running", "success", "failed", "canceled"].contains(&state.as_str()) {
            return (
                400,
                json!({"error": "state does not have a valid value"}),
                vec![],
            );
        }
        let name = body["name"].as_str().unwrap_or("default").to_string();
        let description = body["description"].as_str().unwrap_or_default().to_string();
        if description.chars().count() > MAX_DESCRIPTION {
            return refused(400, "description is too long (maximum is 255 characters)");
        }
        let latest = self
            .statuses
            .iter_mut()
            .rev()
            .find(|s| s.project == project && s.sha == *sha && s.name == name && !s.retried);
        if let Some(latest) = latest {
            let unfinished = matches!(latest.state.as_str(), "pending" | "running");
            if unfinished && latest.state == state {
                let via = if state == "running" { "run" } else { "enqueue" };
                return refused(
                    400,
                    &format!(
                        "Cannot transition status via :{via} from :{state} (Reason(s): Status cannot transition via \"{via}\")"
                    ),
                );
            }
            if !unfinished {
                latest.retried = true;
            } else {
                // An unfinished status moves to its new state (it is the same status).
                latest.state = state.clone();
                latest.description = description.clone();
                return (201, json!({"name": name, "status": state}), vec![]);
            }
        }
        self.statuses.push(Status {
            project,
            sha: sha.to_string(),
            name: name.clone(),
            state: state.clone(),
            description,
            retried: false,
        });
        (201, json!({"name": name, "status": state}), vec![])
    }
}

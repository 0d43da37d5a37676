//! A finished build counts only as CodeBuild itself describes it: the gate asks
//! (`BatchGetBuilds`) before a build's state change is a signal, a deploy's completion, or a
//! rollback that replaced a release.

use eddo::Error;
use eddo::policy::{Policy, ProjectRole};
use serde_json::Value;

use crate::Gate;
use crate::signal::{self, BuildState, Incoming};

impl Gate {
    /// A build's state change as CodeBuild itself describes the build (`BatchGetBuilds`): an
    /// event is a notification, and anyone who may put events on the default bus or invoke
    /// the gate can write one. A build CodeBuild does not know, or describes otherwise, is
    /// rejected and changes nothing.
    pub(crate) async fn confirm(
        &self,
        policy: &Policy,
        claimed: &BuildState,
        event: &Value,
    ) -> Result<Incoming, Error> {
        // A rollback build matters only to what shows the release it replaced.
        if !self.shows_anywhere()
            && policy
                .build_owner(claimed)
                .is_some_and(|(_, role)| role == ProjectRole::Rollback)
        {
            return Ok(Incoming::Ignored(format!(
                "{} is a rollback project, and no check run or status shows releases",
                claimed.project
            )));
        }
        let id = claimed.id();
        let confirmed = match eddo::codebuild::described(&self.codebuild, id).await {
            Ok(Some(b)) => b,
            Ok(None) => {
                return Ok(Incoming::Rejected(format!(
                    "not confirmed by CodeBuild: it knows no build {id}"
                )));
            }
            Err(e) if e.is_retryable() => return Err(e),
            // Refused (the role may not read that project's builds): not confirmed.
            Err(e) => {
                return Ok(Incoming::Rejected(format!(
                    "not confirmed by CodeBuild: {e}"
                )));
            }
        };
        Ok(match eddo::codebuild::contradiction(claimed, &confirmed) {
            Some(why) => Incoming::Rejected(format!("not confirmed by CodeBuild: {why}")),
            None => signal::built(policy, &confirmed, event),
        })
    }
}

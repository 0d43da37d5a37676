//! The tenant registry's decisions, pure: what a request does to a tenant in each state, and what
//! a finished provisioning or deprovisioning build does.
//!
//! ```text
//!  (none) ──onboard──▶ requested ──build started──▶ provisioning ──succeeded──▶ active
//!                          ▲                            │ failed, retries left      │ offboard
//!                          └────────────────────────────┘                           ▼
//!  failed ◀──failed, no retries left── provisioning      deprovisioned ◀──── offboarding
//! ```
//!
//! A build that fails when no retry is left makes the tenant `failed`; a new onboarding request
//! provisions it again, an offboarding request cleans it up.

/// Where a tenant is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// A request was accepted; its build is being started.
    Requested,
    Provisioning,
    Active,
    Failed,
    Offboarding,
    Deprovisioned,
}

impl State {
    pub const ALL: [State; 6] = [
        State::Requested,
        State::Provisioning,
        State::Active,
        State::Failed,
        State::Offboarding,
        State::Deprovisioned,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            State::Requested => "requested",
            State::Provisioning => "provisioning",
            State::Active => "active",
            State::Failed => "failed",
            State::Offboarding => "offboarding",
            State::Deprovisioned => "deprovisioned",
        }
    }

    pub fn parse(s: &str) -> Option<State> {
        State::ALL.into_iter().find(|v| v.as_str() == s)
    }
}

impl std::fmt::Display for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which build a tenant's current work runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Job {
    Provision,
    Deprovision,
}

impl Job {
    /// As the registry and the build (`EDDO_TENANT_ACTION`) name it.
    pub fn as_str(self) -> &'static str {
        match self {
            Job::Provision => "provision",
            Job::Deprovision => "deprovision",
        }
    }

    pub fn parse(s: &str) -> Option<Job> {
        [Job::Provision, Job::Deprovision]
            .into_iter()
            .find(|j| j.as_str() == s)
    }
}

/// What the registry knows of a tenant, as far as the decisions need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Facts<'a> {
    pub state: State,
    pub tier: &'a str,
    /// Whether the last transition's event was published.
    pub announced: bool,
    /// Whether another invocation is working on the tenant right now.
    pub leased: bool,
    /// The job of the tenant's current (or last) build.
    pub job: Job,
    pub build_id: Option<&'a str>,
}

/// What a request does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OnRequest {
    /// Start the job: provisioning (a new tenant, or a failed one again) or deprovisioning.
    Start(Job),
    /// Say again how it ended (`Tenant Provisioned` for an active tenant, `Tenant Deprovisioned`
    /// for a deprovisioned one): the requester may have missed it.
    Repeat,
    /// The work is under way; this request starts nothing.
    InProgress(String),
    /// Unfinished work another invocation holds: retry once its lease lapses.
    Busy(String),
    /// Work another invocation left half-done (its lease lapsed): finish it.
    Resume,
    /// Refused, with the reason.
    Refuse(String),
}

/// Decides what an onboarding (`Job::Provision`) or offboarding (`Job::Deprovision`) request
/// does to a tenant the registry has (`None`: never seen).
pub fn on_request(job: Job, tier: Option<&str>, tenant: Option<&Facts<'_>>) -> OnRequest {
    let Some(t) = tenant else {
        return match job {
            Job::Provision => OnRequest::Start(Job::Provision),
            Job::Deprovision => OnRequest::Refuse("the tenant is not registered".into()),
        };
    };
    let unfinished = !t.announced || t.state == State::Requested;
    if unfinished && !t.leased {
        return OnRequest::Resume;
    }
    let building = |what: &str| {
        OnRequest::InProgress(match t.build_id {
            Some(b) => format!("the tenant is being {what} by build {b}"),
            None => format!("the tenant's {what} build is being started"),
        })
    };
    const BEING_PROVISIONED: &str = "the tenant is being provisioned; offboard it after Tenant Provisioned or Tenant Provisioning Failed";
    const BEING_OFFBOARDED: &str =
        "the tenant is being offboarded; onboard it again after Tenant Deprovisioned";
    match (job, t.state) {
        // The other job's build is being started: answered as when it runs, never dropped.
        (Job::Deprovision, State::Requested) if t.job == Job::Provision => {
            OnRequest::Refuse(BEING_PROVISIONED.into())
        }
        (Job::Provision, State::Requested) if t.job == Job::Deprovision => {
            OnRequest::Refuse(BEING_OFFBOARDED.into())
        }
        // Its last step is unfinished and leased: by another invocation, or by this request's
        // own earlier attempt whose answer was lost. Only a retry tells which.
        (_, State::Requested) => OnRequest::Busy("the tenant's next build is being started".into()),
        _ if unfinished => OnRequest::Busy("the tenant's last step is being finished".into()),
        (Job::Provision, State::Provisioning) => building("provisioned"),
        (Job::Deprovision, State::Offboarding) => building("deprovisioned"),
        (Job::Provision, State::Active) => match tier {
            Some(asked) if asked != t.tier => OnRequest::Refuse(format!(
                "the tenant is active in tier {}; onboarding does not move a tenant to tier {asked}",
                t.tier
            )),
            _ => OnRequest::Repeat,
        },
        (Job::Provision, State::Failed | State::Deprovisioned) => OnRequest::Start(Job::Provision),
        (Job::Provision, State::Offboarding) => OnRequest::Refuse(BEING_OFFBOARDED.into()),
        (Job::Deprovision, State::Active | State::Failed) => OnRequest::Start(Job::Deprovision),
        (Job::Deprovision, State::Deprovisioned) => OnRequest::Repeat,
        (Job::Deprovision, State::Provisioning) => OnRequest::Refuse(BEING_PROVISIONED.into()),
    }
}

/// What a finished build does to the tenant whose current build it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnFinish {
    /// Provisioned: the tenant is active.
    Active,
    /// Deprovisioned: the tenant is gone.
    Deprovisioned,
    /// Failed with retries left: start attempt `next`.
    Retry { next: u32 },
    /// Failed with none left.
    Failed,
}

/// Decides what a finished build of `job` does, on attempt `attempt` (1-based) with `retries`
/// retries allowed.
pub fn on_finish(job: Job, succeeded: bool, attempt: u32, retries: u32) -> OnFinish {
    match (job, succeeded) {
        (Job::Provision, true) => OnFinish::Active,
        (Job::Deprovision, true) => OnFinish::Deprovisioned,
        (_, false) if attempt <= retries => OnFinish::Retry { next: attempt + 1 },
        (_, false) => OnFinish::Failed,
    }
}

/// The state a job is in while its build runs, and the one a request leaves.
pub fn running(job: Job) -> State {
    match job {
        Job::Provision => State::Provisioning,
        Job::Deprovision => State::Offboarding,
    }
}

/// Why an offboarding that names the registration `named` does not end the tenant registered as
/// `recorded`, if it does not: a request about an earlier registration of the same tenant id
/// must not end a later one.
pub fn ends_another(named: Option<&str>, recorded: Option<&str>) -> Option<String> {
    match (named, recorded) {
        (Some(n), Some(r)) if n != r => Some(format!(
            "the offboarding names registration {n}, but the tenant is registration {r}"
        )),
        _ => None,
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn an_offboarding_ends_only_the_registration_it_names() {
        assert_eq!(ends_another(Some("r-1"), Some("r-1")), None);
        assert_eq!(ends_another(None, Some("r-1")), None);
        assert_eq!(ends_another(Some("r-1"), None), None);
        assert_eq!(
            ends_another(Some("r-old"), Some("r-2")).as_deref(),
            Some("the offboarding names registration r-old, but the tenant is registration r-2")
        );
    }

    use super::*;

    fn facts(state: State) -> Facts<'static> {
        Facts {
            state,
            tier: "basic",
            announced: true,
            leased: false,
            job: Job::Provision,
            build_id: Some("p:1"),
        }
    }

    #[test]
    fn onboarding_in_each_state() {
        use OnRequest::*;
        assert_eq!(
            on_request(Job::Provision, Some("basic"), None),
            Start(Job::Provision)
        );
        for (state, expect) in [
            (State::Provisioning, "InProgress"),
            (State::Active, "Repeat"),
            (State::Failed, "Start"),
            (State::Offboarding, "Refuse"),
            (State::Deprovisioned, "Start"),
        ] {
            let got = on_request(Job::Provision, Some("basic"), Some(&facts(state)));
            assert!(format!("{got:?}").starts_with(expect), "{state}: {got:?}");
        }
        let other_tier = on_request(Job::Provision, Some("premium"), Some(&facts(State::Active)));
        assert!(
            matches!(&other_tier, Refuse(r) if r.contains("active in tier basic")),
            "{other_tier:?}"
        );
    }

    #[test]
    fn offboarding_in_each_state() {
        use OnRequest::*;
        assert!(
            matches!(on_request(Job::Deprovision, None, None), Refuse(r) if r == "the tenant is not registered")
        );
        for (state, expect) in [
            (State::Provisioning, "Refuse"),
            (State::Active, "Start"),
            (State::Failed, "Start"),
            (State::Offboarding, "InProgress"),
            (State::Deprovisioned, "Repeat"),
        ] {
            let got = on_request(Job::Deprovision, None, Some(&facts(state)));
            assert!(format!("{got:?}").starts_with(expect), "{state}: {got:?}");
        }
    }

    #[test]
    fn half_done_work_is_resumed_only_when_nobody_has_it() {
        for state in State::ALL {
            let mut f = facts(state);
            f.announced = false;
            assert_eq!(
                on_request(Job::Provision, None, Some(&f)),
                OnRequest::Resume
            );
            f.leased = true;
            // Not resumed, and not answered as done either: the invocation is retried, so the
            // work is finished even when the lease's holder died (or was this request's own
            // earlier attempt, whose answer was lost).
            assert!(
                matches!(
                    on_request(Job::Provision, None, Some(&f)),
                    OnRequest::Busy(_)
                ),
                "{state}: another invocation has it"
            );
        }
        // Requested means a build is still to start, announced or not.
        let mut f = facts(State::Requested);
        f.build_id = None;
        assert_eq!(
            on_request(Job::Provision, None, Some(&f)),
            OnRequest::Resume
        );
        f.leased = true;
        assert!(matches!(
            on_request(Job::Provision, None, Some(&f)),
            OnRequest::Busy(_)
        ));
    }

    #[test]
    fn a_request_for_the_other_job_while_a_build_is_being_started_is_answered() {
        let mut f = facts(State::Requested);
        f.build_id = None;
        f.leased = true;
        // Provisioning is being started: offboarding is refused with the reason, not dropped.
        assert_eq!(
            on_request(Job::Deprovision, None, Some(&f)),
            on_request(Job::Deprovision, None, Some(&facts(State::Provisioning)))
        );
        assert!(matches!(
            on_request(Job::Deprovision, None, Some(&f)),
            OnRequest::Refuse(_)
        ));
        // And the reverse.
        f.job = Job::Deprovision;
        assert_eq!(
            on_request(Job::Provision, None, Some(&f)),
            on_request(Job::Provision, None, Some(&facts(State::Offboarding)))
        );
        assert!(matches!(
            on_request(Job::Provision, None, Some(&f)),
            OnRequest::Refuse(_)
        ));
        assert!(matches!(
            on_request(Job::Deprovision, None, Some(&f)),
            OnRequest::Busy(_)
        ));
    }

    #[test]
    fn a_failed_build_is_retried_as_often_as_the_tier_says() {
        assert_eq!(on_finish(Job::Provision, true, 1, 0), OnFinish::Active);
        assert_eq!(
            on_finish(Job::Deprovision, true, 3, 2),
            OnFinish::Deprovisioned
        );
        assert_eq!(on_finish(Job::Provision, false, 1, 0), OnFinish::Failed);
        assert_eq!(
            on_finish(Job::Provision, false, 1, 2),
            OnFinish::Retry { next: 2 }
        );
        assert_eq!(
            on_finish(Job::Provision, false, 2, 2),
            OnFinish::Retry { next: 3 }
        );
        assert_eq!(on_finish(Job::Provision, false, 3, 2), OnFinish::Failed);
        assert_eq!(
            on_finish(Job::Deprovision, false, 1, 1),
            OnFinish::Retry { next: 2 }
        );
    }
}

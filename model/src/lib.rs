//! A model of the gate's once protocol for one candidate, checked exhaustively by
//! [stateright](https://docs.rs/stateright): a decision to deploy, its build, the record of its
//! start, the events that say it, the build's completion, and a required signal that fails late.
//!
//! What is modelled is what the code does, step by step, one AWS call a step: each step names
//! the function it stands for ([`Step::code_path`]), and a test reads the source to check that
//! every named function still exists. Everything the world may do happens in any order the
//! checker can find: several invocations of one event in flight at once, Lambda's retries, the
//! deadline sweep, an answer lost after a write applied (an invocation that fails after the
//! write), an invocation killed at any step (its lease lapses later), CodeBuild's five-minute
//! token window closing, a shared project crowded with other builds, a policy edit, and a
//! build finishing at any point, before its start is recorded included.
//!
//! Two protocols are modelled: [`Protocol::Before`], the code as it was at 475a2a3 (the request
//! and its token recomputed at every attempt from the current policy, one page of builds read
//! on a resume, a withdrawal that never asks CodeBuild, completions answered `Ok` and dropped
//! when the start was unrecorded or still owed under a live lease), and [`Protocol::Now`].
//! The checker finds the holes of the first and none in the second.
//!
//! The one assumption about time: a lease lasts longer than the invocation that holds it can
//! still act (it is derived from the invocation's deadline), so a lease lapses only once its
//! holder is dead; and Lambda's retries (about 1 and 2 minutes later) come after every lease
//! of the failed invocation's time has lapsed or been let go.

use stateright::{Model, Property};

/// Which version of the protocol the model runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// The code at 475a2a3.
    Before,
    /// The code now: intent frozen with the decision, its build found by decision id across
    /// every page, never withdrawn once it may have started, no completion dropped.
    Now,
}

/// The candidate's state (the code's `candidate::State`, as far as a deploy goes).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum St {
    Waiting,
    Deploying,
    Deployed,
    DeployFailed,
    Blocked,
}

/// An event eddo puts on the bus.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Said {
    Started(u8),
    Blocked,
    Succeeded(u8),
    Failed(u8),
}

/// The candidate's record in the table.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Record {
    pub st: St,
    /// The policy version the decision froze its request with.
    pub frozen: u8,
    pub build: Option<u8>,
    pub outbox: Option<Said>,
    /// The invocation holding the lease.
    pub lease: Option<u8>,
    /// A required signal failed on the ledger.
    pub failed: bool,
}

/// A build CodeBuild has.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Build {
    pub token: u8,
    /// The policy version whose deploy project the build runs in (an edit may move it).
    pub project: u8,
    /// `None` while it runs; `Some(succeeded)` once it finished.
    pub finished: Option<bool>,
}

/// What an invocation was delivered.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Event {
    /// The last required signal, passing: the candidate is complete.
    Signal,
    /// A required signal that fails.
    Failing,
    /// The deadline sweep's tick.
    Sweep,
    /// A build's completion.
    Completion(u8),
}

/// Where an invocation is: the step it takes next.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Step {
    /// Appends a failing signal to the ledger.
    Append,
    /// Reads the record and decides what to do (deploy, block, resume, withdraw, finish, late).
    Act,
    /// Starts the frozen (or recomputed) request.
    Start,
    /// Looks for the decision's build before starting one.
    FindThenStart,
    /// Looks for the decision's build before withdrawing.
    FindThenWithdraw,
    /// Records the build and its Deployment Started under the lease.
    Record(u8),
    /// Blocks the candidate under the lease.
    Withdraw,
    /// Publishes the outbox.
    Publish(Said),
    /// Removes the sent outbox and ends the lease.
    Clear(Said),
    /// Records a completion and its event.
    Finish(u8),
}

impl Step {
    /// The function of eddo the step stands for, as `file::fn`.
    pub fn code_path(self) -> &'static str {
        match self {
            Step::Append => "functions/scan-gate/src/store/ledger.rs::record",
            Step::Act => "functions/scan-gate/src/decide.rs::next",
            Step::Start => "shared/src/codebuild/mod.rs::start",
            Step::FindThenStart => "shared/src/codebuild/mod.rs::find_build",
            Step::FindThenWithdraw => "functions/scan-gate/src/deploying.rs::withdraw_leased",
            Step::Record(_) => "functions/scan-gate/src/store/mod.rs::set_build",
            Step::Withdraw => "functions/scan-gate/src/store/mod.rs::withdraw",
            Step::Publish(_) => "shared/src/publish.rs::publish_until",
            Step::Clear(_) => "shared/src/outbox.rs::send_until",
            Step::Finish(_) => "functions/scan-gate/src/store/mod.rs::finish_deploy",
        }
    }

    /// Every step, for the test that reads the code paths.
    pub const ALL: [Step; 10] = [
        Step::Append,
        Step::Act,
        Step::Start,
        Step::FindThenStart,
        Step::FindThenWithdraw,
        Step::Record(0),
        Step::Withdraw,
        Step::Publish(Said::Blocked),
        Step::Clear(Said::Blocked),
        Step::Finish(0),
    ];
}

/// One invocation.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Invocation {
    pub event: Event,
    pub step: Step,
    /// After saying what a record owed, a completion looks again.
    pub then_again: bool,
}

/// The whole world.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct World {
    pub record: Record,
    pub builds: Vec<Build>,
    /// What the bus received, in order.
    pub bus: Vec<Said>,
    /// Invocations running; `None` once ended (its index stays its id).
    pub running: Vec<Option<Invocation>>,
    /// Events to deliver: new, or retried after a failed invocation (`true`).
    pub pending: Vec<(Event, bool)>,
    /// CodeBuild's five-minute token window has closed.
    pub window_closed: bool,
    /// The project ran more than a page of other builds since.
    pub crowded: bool,
    /// The policy version in force.
    pub policy: u8,
    /// Faults left to inject (failures and kills).
    pub faults: u8,
    /// Invocations left to start (the bound of the search).
    pub invocations: u8,
}

impl World {
    /// Nothing runs, nothing is left to deliver, no lease is held.
    pub fn quiet(&self) -> bool {
        self.running.iter().all(Option::is_none)
            && self.pending.is_empty()
            && self.record.lease.is_none()
    }

    fn holder_alive(&self) -> bool {
        self.record
            .lease
            .is_some_and(|i| self.running[usize::from(i)].is_some())
    }
}

/// What happens next.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    /// EventBridge or Lambda delivers the pending event at this index.
    Deliver(usize),
    /// An invocation takes its next step.
    Step(u8),
    /// A call of the invocation fails (throttled, its answer lost after it applied): it lets go
    /// of its lease and fails; Lambda retries the event.
    Fail(u8),
    /// The invocation is killed (timeout, crash): its lease stays until it lapses.
    Kill(u8),
    /// The lease of a dead invocation lapses.
    Lapse,
    /// CodeBuild finishes a build.
    BuildEnds(u8, bool),
    /// Five minutes pass: CodeBuild forgets tokens.
    WindowCloses,
    /// Other builds of the shared project push the decision's off the first page.
    Crowd,
    /// The policy is edited (the deploy project's parameters change, or it moves).
    EditPolicy,
}

/// The model: the protocol, whether a failing signal comes, and the bounds.
#[derive(Clone, Debug)]
pub struct Once {
    pub protocol: Protocol,
    pub failing: bool,
    pub faults: u8,
    pub invocations: u8,
    /// Check only these properties (all when empty): the checker stops once each has a
    /// counterexample.
    pub only: &'static [&'static str],
}

/// Files `event` among the pending ones, which are a multiset too.
fn pend(w: &mut World, event: (Event, bool)) {
    let at = w.pending.partition_point(|p| *p <= event);
    w.pending.insert(at, event);
}

mod steps;

impl Model for Once {
    type State = World;
    type Action = Action;

    fn init_states(&self) -> Vec<World> {
        let mut pending = vec![(Event::Signal, false), (Event::Sweep, false)];
        if self.failing {
            pending.push((Event::Failing, false));
        }
        pending.sort();
        vec![World {
            record: Record {
                st: St::Waiting,
                frozen: 0,
                build: None,
                outbox: None,
                lease: None,
                failed: false,
            },
            builds: vec![],
            bus: vec![],
            running: vec![],
            pending,
            window_closed: false,
            crowded: false,
            policy: 0,
            faults: self.faults,
            invocations: self.invocations,
        }]
    }

    fn actions(&self, w: &World, actions: &mut Vec<Action>) {
        if w.invocations > 0 {
            for (k, (_, retried)) in w.pending.iter().enumerate() {
                // A retry comes a minute or two later: the lease of a dead invocation has
                // lapsed by then (a live one may have taken it since).
                if !retried || w.record.lease.is_none() || w.holder_alive() {
                    actions.push(Action::Deliver(k));
                }
            }
        }
        for (i, inv) in w.running.iter().enumerate() {
            if inv.is_some() {
                actions.push(Action::Step(i as u8));
                if w.faults > 0 {
                    actions.push(Action::Fail(i as u8));
                    actions.push(Action::Kill(i as u8));
                }
            }
        }
        if w.record.lease.is_some() && !w.holder_alive() {
            actions.push(Action::Lapse);
        }
        for (b, build) in w.builds.iter().enumerate() {
            if build.finished.is_none() {
                actions.push(Action::BuildEnds(b as u8, true));
                actions.push(Action::BuildEnds(b as u8, false));
            }
        }
        if !w.window_closed {
            actions.push(Action::WindowCloses);
        }
        if !w.crowded && !w.builds.is_empty() {
            actions.push(Action::Crowd);
        }
        if w.policy == 0 {
            actions.push(Action::EditPolicy);
        }
    }

    fn next_state(&self, last: &World, action: Action) -> Option<World> {
        let mut w = last.clone();
        match action {
            Action::Deliver(k) => {
                let (event, _) = w.pending.remove(k);
                w.invocations -= 1;
                let step = if event == Event::Failing {
                    Step::Append
                } else {
                    Step::Act
                };
                w.running.push(Some(Invocation {
                    event,
                    step,
                    then_again: false,
                }));
            }
            Action::Step(i) => self.step(&mut w, i),
            Action::Fail(i) => {
                w.faults -= 1;
                Self::end(&mut w, i, false, true);
            }
            Action::Kill(i) => {
                w.faults -= 1;
                Self::end(&mut w, i, false, false);
            }
            Action::Lapse => {
                w.record.lease = None;
                // The sweep runs every minute and reads the index of records that owe work.
                let owes = w.record.outbox.is_some()
                    || w.record.st == St::Deploying && w.record.build.is_none();
                if owes && !w.pending.contains(&(Event::Sweep, false)) {
                    pend(&mut w, (Event::Sweep, false));
                }
            }
            Action::BuildEnds(b, ok) => {
                w.builds[usize::from(b)].finished = Some(ok);
                pend(&mut w, (Event::Completion(b), false));
            }
            Action::WindowCloses => w.window_closed = true,
            Action::Crowd => w.crowded = true,
            Action::EditPolicy => w.policy = 1,
        }
        Some(w)
    }

    fn properties(&self) -> Vec<Property<Self>> {
        let all = vec![
            Property::always(AT_MOST_ONE_BUILD, |_, w: &World| w.builds.len() <= 1),
            Property::always(NEVER_WITHDRAWN_ONCE_STARTED, |_, w: &World| {
                w.record.st != St::Blocked || w.builds.is_empty()
            }),
            Property::always(NOTHING_SAID_THAT_DID_NOT_HAPPEN, |_, w: &World| {
                w.bus.iter().all(|said| match *said {
                    Said::Blocked => w.builds.is_empty(),
                    Said::Started(b) => usize::from(b) < w.builds.len(),
                    Said::Succeeded(b) => w.builds[usize::from(b)].finished == Some(true),
                    Said::Failed(b) => w.builds[usize::from(b)].finished == Some(false),
                })
            }),
            Property::always(EVERY_DECISION_SAID, |_, w: &World| {
                !w.quiet()
                    || match w.record.st {
                        St::Waiting => true,
                        St::Blocked => w.bus.contains(&Said::Blocked),
                        St::Deploying | St::Deployed | St::DeployFailed => w
                            .record
                            .build
                            .is_some_and(|b| w.bus.contains(&Said::Started(b))),
                    }
            }),
            Property::always(NO_COMPLETION_LOST, |_, w: &World| {
                !w.quiet()
                    || w.builds.iter().enumerate().all(|(b, build)| {
                        let b = b as u8;
                        match build.finished {
                            None => true,
                            Some(true) => w.bus.contains(&Said::Succeeded(b)),
                            Some(false) => w.bus.contains(&Said::Failed(b)),
                        }
                    })
            }),
            Property::sometimes(DEPLOYS, |_, w: &World| {
                w.quiet() && w.bus.iter().any(|s| matches!(s, Said::Succeeded(_)))
            }),
        ];
        all.into_iter()
            .filter(|p| self.only.is_empty() || self.only.contains(&p.name))
            .collect()
    }
}

pub const AT_MOST_ONE_BUILD: &str = "at most one build per decision";
pub const NEVER_WITHDRAWN_ONCE_STARTED: &str = "none withdrawn once it may have started";
pub const NOTHING_SAID_THAT_DID_NOT_HAPPEN: &str = "no announcement of what did not happen";
pub const EVERY_DECISION_SAID: &str = "every decision announced";
pub const NO_COMPLETION_LOST: &str = "no completion lost";
/// That the model can do what it is for (a deploy started, finished and said).
pub const DEPLOYS: &str = "a deploy is started, finishes and is said";

/// The five properties the protocol must hold.
pub const PROPERTIES: [&str; 5] = [
    AT_MOST_ONE_BUILD,
    NEVER_WITHDRAWN_ONCE_STARTED,
    NOTHING_SAID_THAT_DID_NOT_HAPPEN,
    EVERY_DECISION_SAID,
    NO_COMPLETION_LOST,
];

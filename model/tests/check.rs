//! The once protocol, checked exhaustively: clean now, and the holes of the code before found
//! by the checker, not by a reading of the code.

use eddo_model::{
    AT_MOST_ONE_BUILD, DEPLOYS, NEVER_WITHDRAWN_ONCE_STARTED, NO_COMPLETION_LOST,
    NOTHING_SAID_THAT_DID_NOT_HAPPEN, Once, PROPERTIES, Protocol, Step,
};
use stateright::{Checker, Model};

fn model(protocol: Protocol, failing: bool, only: &'static [&'static str]) -> Once {
    Once {
        protocol,
        failing,
        faults: 2,
        invocations: 5,
        only,
    }
}

/// Runs the checker to the end; the names of the properties it found a counterexample to.
fn check(m: Once) -> (Vec<&'static str>, usize) {
    let checker = m.checker().spawn_bfs().join();
    let found: Vec<&'static str> = PROPERTIES
        .into_iter()
        .filter(|p| checker.discovery(p).is_some())
        .collect();
    let states = checker.unique_state_count();
    if checker.model().only.is_empty() {
        assert!(
            checker.discovery(DEPLOYS).is_some(),
            "the model never deploys"
        );
    }
    eprintln!(
        "{:?} states: {states}, counterexamples: {found:?}",
        checker.model().protocol
    );
    for p in &found {
        eprintln!(
            "{p}: {:#?}",
            checker.discovery(p).map(|path| path.into_actions())
        );
    }
    (found, states)
}

#[test]
fn the_protocol_holds_every_property_in_every_interleaving() {
    for failing in [false, true] {
        let (found, states) = check(model(Protocol::Now, failing, &[]));
        assert!(found.is_empty(), "failing signal: {failing}: {found:?}");
        assert!(states > 10_000, "explored {states}");
    }
}

#[test]
fn the_checker_finds_the_holes_of_the_code_before() {
    const WITHOUT: &[&str] = &[AT_MOST_ONE_BUILD, NO_COMPLETION_LOST];
    let (found, _) = check(model(Protocol::Before, false, WITHOUT));
    assert_eq!(found, WITHOUT);
    const WITH: &[&str] = &[
        NEVER_WITHDRAWN_ONCE_STARTED,
        NOTHING_SAID_THAT_DID_NOT_HAPPEN,
    ];
    let (found, _) = check(model(Protocol::Before, true, WITH));
    assert_eq!(found, WITH);
}

/// Every step names a function of eddo that exists: a step whose function is renamed or gone
/// fails here, and so does a state of the code the model does not map.
#[test]
fn every_step_names_code_that_exists() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    for step in Step::ALL {
        let (file, function) = step.code_path().split_once("::").unwrap();
        let source = std::fs::read_to_string(root.join(file)).unwrap();
        assert!(
            source.contains(&format!("fn {function}("))
                || source.contains(&format!("fn {function}<")),
            "{step:?} names {function} in {file}, which has no such function"
        );
    }
}

#[test]
fn every_candidate_state_and_next_step_of_the_code_is_in_the_model() {
    use eddo_model::St;
    use eddo_scan_gate::candidate::State;
    use eddo_scan_gate::decide::Next;
    // Exhaustive: a state the code gains and the model lacks does not compile.
    fn state(s: State) -> Option<St> {
        match s {
            State::Waiting => Some(St::Waiting),
            State::Deploying => Some(St::Deploying),
            State::Deployed => Some(St::Deployed),
            State::DeployFailed => Some(St::DeployFailed),
            State::Blocked => Some(St::Blocked),
            // Decided with no effect: nothing to start, said like Blocked. (An approved
            // environment's answers are each rule's own effect, under the rule's record.)
            State::TimedOut | State::Observed | State::Approved => None,
        }
    }
    fn step(n: &Next) -> Option<Step> {
        match n {
            Next::Wait { .. } => None,
            Next::Deploy => Some(Step::Start),
            Next::Conclude { .. } => Some(Step::Publish(eddo_model::Said::Blocked)),
            Next::Resume => Some(Step::FindThenStart),
            Next::Withdraw { .. } => Some(Step::FindThenWithdraw),
            Next::After { .. } => Some(Step::Act),
        }
    }
    assert_eq!(state(State::Deploying), Some(St::Deploying));
    assert_eq!(step(&Next::Resume), Some(Step::FindThenStart));
}

//! The invocations' steps: what each one does to the world, as the code it names does it.

use crate::{Build, Event, Once, Protocol, Said, St, Step, World, pend};

impl Once {
    /// The request's token at this attempt.
    fn token(&self, w: &World) -> u8 {
        match self.protocol {
            // The decision's id: one decision, one token.
            Protocol::Now => 0,
            // A hash of the request recomputed from the current policy.
            Protocol::Before => w.policy,
        }
    }

    fn find(&self, w: &World) -> Option<u8> {
        if self.protocol == Protocol::Before && w.crowded {
            return None;
        }
        let token = self.token(w);
        w.builds
            .iter()
            .position(|b| b.token == token)
            .map(|i| i as u8)
    }

    fn start_build(&self, w: &mut World) -> u8 {
        let token = self.token(w);
        if !w.window_closed
            && let Some(i) = w.builds.iter().position(|b| b.token == token)
        {
            return i as u8;
        }
        let project = match self.protocol {
            Protocol::Now => w.record.frozen,
            Protocol::Before => w.policy,
        };
        w.builds.push(Build {
            token,
            project,
            finished: None,
        });
        (w.builds.len() - 1) as u8
    }

    /// The invocation `i` ends: `Ok` (its event is done) or failed (retried), letting go of its
    /// lease when it fails.
    pub(crate) fn end(w: &mut World, i: u8, ok: bool, let_go: bool) {
        let inv = w.running[usize::from(i)].take().expect("running");
        if !ok {
            if let_go && w.record.lease == Some(i) {
                w.record.lease = None;
            }
            // Lambda retries the event; a failed tick is followed by the next one.
            pend(w, (inv.event, true));
        }
    }

    pub(crate) fn goto(w: &mut World, i: u8, step: Step) {
        if let Some(inv) = w.running[usize::from(i)].as_mut() {
            inv.step = step;
        }
    }

    /// The decision of `next` on the record as read, and the first write it makes.
    fn act(&self, w: &mut World, i: u8, event: Event) {
        let r = w.record.clone();
        let lapsed = r.lease.is_none();
        match r.st {
            St::Waiting if event == Event::Signal || event == Event::Failing => {
                if r.failed {
                    w.record.st = St::Blocked;
                    w.record.outbox = Some(Said::Blocked);
                    w.record.lease = Some(i);
                    Self::goto(w, i, Step::Publish(Said::Blocked));
                } else {
                    w.record.st = St::Deploying;
                    w.record.frozen = w.policy;
                    w.record.lease = Some(i);
                    Self::goto(w, i, Step::Start);
                }
            }
            St::Waiting => Self::end(w, i, true, false),
            St::Deploying if r.build.is_none() && lapsed => {
                w.record.lease = Some(i);
                let step = if r.failed {
                    match self.protocol {
                        Protocol::Now => Step::FindThenWithdraw,
                        Protocol::Before => Step::Withdraw,
                    }
                } else {
                    Step::FindThenStart
                };
                Self::goto(w, i, step);
            }
            _ if r.outbox.is_some() && lapsed => {
                w.record.lease = Some(i);
                let owed = r.outbox.expect("owed");
                Self::goto(w, i, Step::Publish(owed));
            }
            _ => Self::end(w, i, true, false),
        }
    }

    /// A completion of build `b`, on the record as read.
    fn completion(&self, w: &mut World, i: u8, b: u8) {
        // Whose build it is: its project as the policy in force names it (before), or the
        // decision it carries, whatever the policy says now (`Policy::build_owner`).
        if self.protocol == Protocol::Before && w.builds[usize::from(b)].project != w.policy {
            return Self::end(w, i, true, false);
        }
        let r = w.record.clone();
        let lapsed = r.lease.is_none();
        if r.build == Some(b) {
            if let Some(owed) = r.outbox {
                if lapsed {
                    w.record.lease = Some(i);
                    Self::goto(w, i, Step::Publish(owed));
                    if let Some(inv) = w.running[usize::from(i)].as_mut() {
                        inv.then_again = r.st == St::Deploying;
                    }
                    return;
                }
                // Owed under a live lease.
                let retried = self.protocol == Protocol::Now && r.st == St::Deploying;
                return Self::end(w, i, !retried, false);
            }
            if r.st == St::Deploying {
                return Self::goto(w, i, Step::Finish(b));
            }
            return Self::end(w, i, true, false);
        }
        // The decision's build (every build of the model carries the decision), start unrecorded.
        if r.build.is_none() && r.st == St::Deploying {
            match self.protocol {
                Protocol::Before => Self::end(w, i, true, false),
                Protocol::Now if lapsed => {
                    w.record.lease = Some(i);
                    Self::goto(w, i, Step::Record(b));
                    if let Some(inv) = w.running[usize::from(i)].as_mut() {
                        inv.then_again = true;
                    }
                }
                Protocol::Now => Self::end(w, i, false, false),
            }
            return;
        }
        Self::end(w, i, true, false)
    }

    pub(crate) fn step(&self, w: &mut World, i: u8) {
        let inv = w.running[usize::from(i)].clone().expect("running");
        let mine = w.record.lease == Some(i);
        match inv.step {
            Step::Append => {
                w.record.failed = true;
                Self::goto(w, i, Step::Act);
            }
            Step::Act => match inv.event {
                Event::Completion(b) => self.completion(w, i, b),
                event => self.act(w, i, event),
            },
            Step::Start => {
                let b = self.start_build(w);
                Self::goto(w, i, Step::Record(b));
            }
            Step::FindThenStart => match self.find(w) {
                Some(b) => Self::goto(w, i, Step::Record(b)),
                None => Self::goto(w, i, Step::Start),
            },
            Step::FindThenWithdraw => match self.find(w) {
                Some(b) => Self::goto(w, i, Step::Record(b)),
                None => Self::goto(w, i, Step::Withdraw),
            },
            Step::Record(b) => {
                if mine && w.record.build.is_none() && w.record.st == St::Deploying {
                    w.record.build = Some(b);
                    w.record.outbox = Some(Said::Started(b));
                    Self::goto(w, i, Step::Publish(Said::Started(b)));
                } else {
                    Self::end(w, i, true, false);
                }
            }
            Step::Withdraw => {
                if mine && w.record.build.is_none() && w.record.st == St::Deploying {
                    w.record.st = St::Blocked;
                    w.record.outbox = Some(Said::Blocked);
                    Self::goto(w, i, Step::Publish(Said::Blocked));
                } else {
                    Self::end(w, i, true, false);
                }
            }
            Step::Publish(e) => {
                // The bus is a multiset: the order of what it received is no property's concern.
                let at = w.bus.partition_point(|s| *s <= e);
                w.bus.insert(at, e);
                Self::goto(w, i, Step::Clear(e));
            }
            Step::Clear(e) => {
                if w.record.outbox == Some(e) {
                    w.record.outbox = None;
                    w.record.lease = None;
                }
                if inv.then_again {
                    if let Some(inv) = w.running[usize::from(i)].as_mut() {
                        inv.then_again = false;
                    }
                    Self::goto(w, i, Step::Act);
                } else {
                    Self::end(w, i, true, false);
                }
            }
            Step::Finish(b) => {
                if w.record.st == St::Deploying
                    && w.record.build == Some(b)
                    && w.record.outbox.is_none()
                {
                    let ok = w.builds[usize::from(b)].finished == Some(true);
                    let said = if ok {
                        Said::Succeeded(b)
                    } else {
                        Said::Failed(b)
                    };
                    w.record.st = if ok { St::Deployed } else { St::DeployFailed };
                    w.record.outbox = Some(said);
                    w.record.lease = Some(i);
                    Self::goto(w, i, Step::Publish(said));
                } else {
                    // Recorded meanwhile: the code looks again.
                    Self::goto(w, i, Step::Act);
                }
            }
        }
    }
}

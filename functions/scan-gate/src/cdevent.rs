//! CDEvents a delivery tool sent to the webhook's `/cdevents/<sender>` route: the webhook
//! authenticated the sender, read the event with the CD Foundation's SDK and published it as
//! `CDEvent Received` (only the webhook's role may put `eddo.webhook`). Each service whose policy
//! names that sender for that type (`{cdevents: dev.cdevents.testsuiterun.finished, sender:
//! tekton}`) gets the signal of the kind it is listed under, about the image the event names (the
//! commit whose build reported that digest) or the commit it names; every trust rule of the gate
//! applies to it as to any signal.

use eddo::names::SenderName;
use eddo::policy::{Policy, Sender};
use serde_json::Value;

use crate::reported::outcome;
use crate::signal::{Incoming, Reading, Signal, Subject, evidence};

/// Reads a `CDEvent Received` into the signals its policy gives it.
pub fn read(policy: &Policy, event: &Value) -> Incoming {
    if event["source"].as_str() != Some("eddo.webhook") {
        return Incoming::Rejected(
            "CDEvent Received comes from the webhook only, after it authenticated the sender"
                .into(),
        );
    }
    let detail = &event["detail"];
    let sender = match SenderName::parse(detail["sender"].as_str().unwrap_or_default()) {
        Ok(s) => s,
        Err(why) => return Incoming::Rejected(format!("the webhook named sender {why}")),
    };
    let cdevent = match eddo::cdevents::read(&detail["cdevent"]) {
        Ok(r) => r,
        Err(why) => return Incoming::Rejected(why),
    };
    let from = Sender::CdEvent {
        predicate: cdevent.predicate,
        sender: sender.clone(),
    };
    let subject = match (&cdevent.image, &cdevent.commit) {
        (Some(digest), claimed) => Subject::Image {
            digest: digest.clone(),
            claimed: claimed.clone(),
        },
        (None, Some(commit)) => Subject::Commit(commit.clone()),
        (None, None) => {
            return Incoming::Rejected(format!("{} names no image or commit", cdevent.predicate));
        }
    };
    let correlation_id = detail["metadata"]["correlation_id"]
        .as_str()
        .map(str::to_string);
    let mut signals = Vec::new();
    for service in policy.services.values() {
        for (kind, senders) in &service.gate.senders {
            if !senders.contains(&from) {
                continue;
            }
            let verdict = outcome(
                kind,
                cdevent.passed,
                sender.as_str(),
                Some(&cdevent.summary),
                "",
            );
            signals.push(Signal {
                kind: kind.clone(),
                service: service.name.clone(),
                subject: subject.clone(),
                digest: cdevent.image.clone(),
                reading: Reading::Verdict(verdict),
                correlation_id: correlation_id.clone(),
                evidence: evidence(event, &from),
            });
        }
    }
    if signals.is_empty() {
        return Incoming::Rejected(format!(
            "{from} counts for no service: no policy names {{cdevents: {}{}, sender: {sender}}}",
            eddo::cdevents::PREFIX,
            cdevent.predicate
        ));
    }
    Incoming::Signals(signals)
}

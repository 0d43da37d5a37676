//! An alarm that rolled a release back, OK again: the incident is over. alarm-rollback says so
//! (`Alarm Recovered`, in the rollback's correlation, naming what it restored) for that alarm
//! alone, only once CloudWatch shows it OK, and acts on nothing. Read back: the bus and the
//! builds CodeBuild started.

use eddo::idempotency::now_epoch;
use eddo_local::fixtures::{alarm, commit as sha, detail_types as types};

use crate::harness::rollback::*;

#[tokio::test(flavor = "multi_thread")]
async fn the_alarm_that_rolled_back_recovering_ends_the_incident_and_starts_nothing() {
    let s = setup("recovery", None).await;
    let now = now_epoch();
    let (good, bad) = (sha(61), sha(62));
    s.deployed(&good, &bad, now - 600).await;
    s.handle(&alarm("hello-world-5xx", "OK", "ALARM", now - 60))
        .await;
    let started = s.published().await;
    assert_eq!(types(&started), ["Rollback Started"]);

    // Another alarm of the service recovering ends nothing: it rolled nothing back.
    let r = s
        .handle(&alarm("hello-world-latency", "ALARM", "OK", now - 50))
        .await;
    assert!(r.published.is_empty(), "{r:?}");

    // A recovery CloudWatch does not show (the alarm is still in ALARM there): not said.
    let forged = alarm("hello-world-5xx", "ALARM", "OK", now - 30);
    let r = s.rollbacks.handle(&forged).await.unwrap();
    assert!(r.published.is_empty(), "{r:?}");
    assert!(r.outcome.contains("does not confirm"), "{r:?}");

    // The alarm recovers, and EventBridge delivers it twice: the same event, said at least once.
    let ok = alarm("hello-world-5xx", "ALARM", "OK", now - 20);
    s.handle(&ok).await;
    s.handle(&ok).await;
    let said = s.published().await;
    assert_eq!(types(&said), ["Alarm Recovered"; 2]);
    assert_eq!(
        said[0]["detail"]["metadata"]["event_key"],
        said[1]["detail"]["metadata"]["event_key"]
    );
    let d = &said[0]["detail"];
    assert_eq!(
        d["metadata"]["correlation_id"],
        started[0]["detail"]["metadata"]["correlation_id"]
    );
    assert_eq!(d["metadata"]["causation_id"], ok["id"]);
    assert_eq!(d["alarm"]["state"], "OK");
    assert_eq!(d["restored"]["commit"], good.as_str());
    assert_eq!(d["replaced"]["commit"], bad.as_str());
    assert_eq!(d["rollback_build_id"], s.rollback_builds()[0].id.as_str());
    assert_eq!(s.rollback_builds().len(), 1, "nothing more started");
}

//! Every corpus alarm shape (`../shared/corpus/aws/cloudwatch-*`), read and classified under the
//! example policy: what each calls for before any state is read. (Also makes `cargo test` build
//! the `alarm-rollback` binary, which the workspace's end-to-end tests run.)

use std::path::PathBuf;

use eddo::policy::Policy;
use eddo_alarm_rollback::alarm::AlarmChange;
use eddo_alarm_rollback::decide::{Trigger, trigger};
use serde_json::{Value, json};

const SERVICE: &str = "hello-world";

fn project_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn sample(name: &str) -> Value {
    eddo::corpus::json(&format!("aws/{name}"))
}

/// What each corpus alarm shape calls for under the example policy, with the alarm's name set
/// to one the policy maps: the decision before any state is read.
#[test]
fn each_corpus_alarm_shape_triggers_as_it_should() {
    let policy = Policy::parse(
        &std::fs::read_to_string(project_root().join("infra/policy/example.yaml")).unwrap(),
    )
    .unwrap();
    for (file, expect) in [
        // OK -> ALARM, through EventBridge.
        ("cloudwatch-alarm-state-change.json", "act"),
        // INSUFFICIENT_DATA -> ALARM.
        ("cloudwatch-alarm-state-change-2.json", "act"),
        // The direct action of a metric alarm, INSUFFICIENT_DATA -> ALARM.
        ("cloudwatch-alarm-action-metric.json", "act"),
        // A composite alarm whose suppressed ALARM now fires its actions: a transition.
        ("cloudwatch-alarm-action-composite.json", "act"),
        // A composite alarm in ALARM with its actions suppressed by its wait period.
        (
            "cloudwatch-alarm-action-composite-suppressed.json",
            "suppressed",
        ),
    ] {
        let mut e = sample(file);
        let data = if e.get("detail").is_some() {
            "detail"
        } else {
            "alarmData"
        };
        e[data]["alarmName"] = json!("hello-world-5xx");
        let a = AlarmChange::read(&e).unwrap_or_else(|why| panic!("{file}: {why}"));
        let got = match trigger(&policy, &a) {
            Trigger::Act(s) => {
                assert_eq!(s.name.as_str(), SERVICE);
                "act".to_string()
            }
            Trigger::Skip(_, skip) => skip.code().to_string(),
            Trigger::Quiet(why) => format!("quiet: {why}"),
        };
        assert_eq!(got, expect, "{file}");
    }
}

//! CloudWatch as alarm-rollback reads it: an alarm in moto's CloudWatch, in the state an alarm
//! state change reports. alarm-rollback acts on a state change only as far as CloudWatch itself
//! confirms it (`DescribeAlarms`), so a test, the soak or the demo that sends one first puts the
//! alarm in that state, as a real breach would. (The AWS SDKs speak CloudWatch in CBOR, which
//! `moto_server.py` translates for moto.)

use aws_config::SdkConfig;
use aws_sdk_cloudwatch::types::{ComparisonOperator, StateValue, Statistic, Tag};
use serde_json::Value;

use crate::{LocalError, aws};

/// The alarm `name` (created if absent, tagged `tags`) in `state` (`ALARM`, `OK`,
/// `INSUFFICIENT_DATA`).
pub async fn alarm(
    sdk: &SdkConfig,
    name: &str,
    state: &str,
    tags: &[(&str, &str)],
) -> Result<(), LocalError> {
    let cw = aws_sdk_cloudwatch::Client::new(sdk);
    let exists = cw
        .describe_alarms()
        .alarm_names(name)
        .send()
        .await
        .map_err(|e| aws("DescribeAlarms", e))?
        .metric_alarms()
        .iter()
        .any(|a| a.alarm_name() == Some(name));
    if !exists {
        let tags: Vec<Tag> = tags
            .iter()
            .map(|(k, v)| Tag::builder().key(*k).value(*v).build())
            .collect();
        cw.put_metric_alarm()
            .alarm_name(name)
            .namespace("AWS/ApplicationELB")
            .metric_name("HTTPCode_Target_5XX_Count")
            .statistic(Statistic::Sum)
            .period(60)
            .evaluation_periods(1)
            .threshold(1.0)
            .comparison_operator(ComparisonOperator::GreaterThanOrEqualToThreshold)
            .set_tags(Some(tags))
            .send()
            .await
            .map_err(|e| aws("PutMetricAlarm", e))?;
    }
    cw.set_alarm_state()
        .alarm_name(name)
        .state_value(StateValue::from(state))
        .state_reason("the local stack breached it")
        .send()
        .await
        .map_err(|e| aws("SetAlarmState", e))?;
    Ok(())
}

/// CloudWatch's alarm is in the state the alarm state change `e` (either shape) reports, with
/// the tags it carries: what a test, the soak or the demo does before sending a state change
/// that is no forgery. Nothing for any other event.
pub async fn ran(sdk: &SdkConfig, e: &Value) -> Result<(), LocalError> {
    let d = if e["detail"]["alarmName"].is_string() {
        &e["detail"]
    } else if e["alarmData"]["alarmName"].is_string() {
        &e["alarmData"]
    } else {
        return Ok(());
    };
    // The tags the event carries, read as alarm-rollback reads them.
    let tags = eddo_alarm_rollback::alarm::tags(&d["tags"]);
    let tags: Vec<(&str, &str)> = tags.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    alarm(
        sdk,
        d["alarmName"].as_str().unwrap_or_default(),
        d["state"]["value"].as_str().unwrap_or("ALARM"),
        &tags,
    )
    .await
}

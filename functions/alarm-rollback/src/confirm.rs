//! An alarm's state change as CloudWatch itself accounts for it. An event is a notification:
//! anyone who may invoke the function (the alarm action lets any alarm of the account) or put an
//! `aws.*`-shaped event in front of it can write one. So before a state change can start a
//! rollback, `DescribeAlarms` must show the alarm, with the event's ARN, in the state the event
//! reports; and where the event's own `eddo:service` tag chose the service, `ListTagsForResource`
//! must show the alarm tagged so.

use aws_sdk_cloudwatch::types::AlarmType;
use eddo::Error;
use eddo::aws::LazyClient;

use crate::alarm::AlarmChange;
use crate::decide::SERVICE_TAG;

/// The CloudWatch client serves only state changes that could start a rollback, so it is built
/// the first time one needs it, not at init.
#[derive(Clone)]
pub struct Alarms {
    client: LazyClient<aws_sdk_cloudwatch::Client>,
}

impl Alarms {
    pub fn new(sdk: &aws_config::SdkConfig) -> Alarms {
        Alarms {
            client: LazyClient::new(sdk, aws_sdk_cloudwatch::Client::new),
        }
    }

    /// Another client (one that counts its calls, in tests).
    pub fn with_client(&self, client: aws_sdk_cloudwatch::Client) -> Alarms {
        Alarms {
            client: self.client.with(client),
        }
    }

    /// Why CloudWatch does not confirm `alarm`, if it does not; `Err` only for what a retry
    /// can fix. `tagged`: the service the event's own `eddo:service` tag named.
    pub async fn contradiction(
        &self,
        alarm: &AlarmChange,
        tagged: Option<&str>,
    ) -> Result<Option<String>, Error> {
        let name = &alarm.name;
        let described = match self
            .client
            .get()
            .describe_alarms()
            .alarm_names(name)
            .alarm_types(AlarmType::MetricAlarm)
            .alarm_types(AlarmType::CompositeAlarm)
            .send()
            .await
        {
            Ok(d) => d,
            Err(e) => return refused(Error::aws("CloudWatch", "DescribeAlarms", e)),
        };
        let found = described
            .metric_alarms()
            .iter()
            .filter(|a| a.alarm_name() == Some(name))
            .map(|a| (a.alarm_arn(), a.state_value().map(|s| s.as_str())))
            .chain(
                described
                    .composite_alarms()
                    .iter()
                    .filter(|a| a.alarm_name() == Some(name))
                    .map(|a| (a.alarm_arn(), a.state_value().map(|s| s.as_str()))),
            )
            .next();
        let Some((arn, state)) = found else {
            return Ok(Some(format!("CloudWatch knows no alarm {name}")));
        };
        if let (Some(claimed), Some(arn)) = (&alarm.arn, arn)
            && claimed != arn
        {
            return Ok(Some(format!(
                "CloudWatch's alarm {name} is {arn}, not {claimed}"
            )));
        }
        let claimed = alarm.state.value.as_str();
        if state != Some(claimed) {
            return Ok(Some(format!(
                "CloudWatch says alarm {name} is {}, not {claimed}",
                state.unwrap_or("in no state")
            )));
        }
        let (Some(service), Some(arn)) = (tagged, arn) else {
            return Ok(None);
        };
        let tags = match self
            .client
            .get()
            .list_tags_for_resource()
            .resource_arn(arn)
            .send()
            .await
        {
            Ok(t) => t,
            Err(e) => return refused(Error::aws("CloudWatch", "ListTagsForResource", e)),
        };
        let actual = tags
            .tags()
            .iter()
            .find(|t| t.key() == Some(SERVICE_TAG))
            .and_then(|t| t.value());
        Ok((actual != Some(service)).then(|| {
            format!(
                "the event tags alarm {name} {SERVICE_TAG}={service}, CloudWatch {}",
                actual.map_or_else(
                    || "with no such tag".to_string(),
                    |v| format!("{SERVICE_TAG}={v}")
                )
            )
        }))
    }
}

/// A call CloudWatch refused (a 4xx: the role may not read that alarm) confirms nothing; one a
/// retry can fix is retried.
fn refused(e: Error) -> Result<Option<String>, Error> {
    if e.is_retryable() {
        Err(e)
    } else {
        Ok(Some(e.to_string()))
    }
}

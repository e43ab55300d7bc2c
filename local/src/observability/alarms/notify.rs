//! What on-call receives: the CloudWatch alarm message, its SNS envelope,
//! and the webhook delivery.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use super::*;
use crate::identity::{ACCOUNT_ID, REGION};

/// Where state changes go besides the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookConfig {
    pub url: String,
    /// Post the alarm message itself instead of the SNS envelope (SNS
    /// `RawMessageDelivery`).
    pub raw: bool,
}

/// The CloudWatch alarm message SNS delivers (its `Message`).
pub fn alarm_message(
    alarm: &Alarm,
    old: AlarmState,
    eval: &Evaluation,
    at: DateTime<Utc>,
) -> Value {
    let period = alarm.period.as_secs();
    let dims = |q: &MetricQuery| {
        q.key
            .dimensions
            .iter()
            .map(|(k, v)| json!({"value": v, "name": k}))
            .collect::<Vec<_>>()
    };
    let mut trigger = match &alarm.source {
        AlarmSource::Metric(q) => json!({
            "MetricName": q.key.name,
            "Namespace": q.key.namespace,
            "StatisticType": "Statistic",
            "Statistic": q.statistic.as_str().to_ascii_uppercase(),
            "Unit": null,
            "Dimensions": dims(q),
        }),
        AlarmSource::Math {
            expression_text,
            label,
            metrics,
            ..
        } => {
            let mut list = vec![json!({
                "Expression": expression_text,
                "Id": "expression",
                "Label": label,
                "ReturnData": true,
            })];
            for (id, q) in metrics {
                list.push(json!({
                    "Id": id,
                    "MetricStat": {
                        "Metric": {"Dimensions": dims(q), "MetricName": q.key.name, "Namespace": q.key.namespace},
                        "Period": period,
                        "Stat": q.statistic.as_str(),
                    },
                    "ReturnData": false,
                }));
            }
            json!({"Metrics": list})
        }
    };
    if let Some(t) = trigger.as_object_mut() {
        t.insert("Period".into(), json!(period));
        t.insert("EvaluationPeriods".into(), json!(alarm.evaluation_periods));
        t.insert("DatapointsToAlarm".into(), json!(alarm.datapoints_to_alarm));
        t.insert(
            "ComparisonOperator".into(),
            json!(alarm.comparison.as_str()),
        );
        t.insert("Threshold".into(), json!(alarm.threshold));
        t.insert(
            "TreatMissingData".into(),
            json!(alarm.treat_missing_data.as_str()),
        );
        t.insert("EvaluateLowSampleCountPercentile".into(), json!(""));
    }
    json!({
        "AlarmName": alarm.name,
        "AlarmDescription": alarm.description,
        "AWSAccountId": ACCOUNT_ID,
        "AlarmConfigurationUpdatedTimestamp": null,
        "NewStateValue": eval.state.as_str(),
        "NewStateReason": eval.reason,
        "StateChangeTime": at.format("%Y-%m-%dT%H:%M:%S%.3f%z").to_string(),
        "Region": REGION,
        "AlarmArn": crate::identity::alarm_arn(&alarm.name),
        "OldStateValue": old.as_str(),
        "OKActions": [],
        "AlarmActions": [crate::identity::on_call_topic_arn()],
        "InsufficientDataActions": [],
        "Trigger": trigger,
    })
}

/// What SNS POSTs to an HTTPS subscriber for `message`.
pub fn sns_envelope(
    message: &Value,
    alarm_name: &str,
    new_state: AlarmState,
    at: DateTime<Utc>,
) -> Value {
    json!({
        "Type": "Notification",
        "MessageId": uuid::Uuid::new_v4().to_string(),
        "TopicArn": crate::identity::on_call_topic_arn(),
        "Subject": format!("{new_state}: \"{alarm_name}\" in {REGION}"),
        "Message": message.to_string(),
        "Timestamp": dofs_core::timestamp::format(&at),
        "SignatureVersion": "1",
        "Signature": "",
        "SigningCertURL": "",
        "UnsubscribeURL": "",
    })
}

/// Delivers to the webhook with a few retries (as SNS retries an HTTPS
/// endpoint); a failure is logged, never fatal.
pub(super) async fn deliver(
    client: reqwest::Client,
    webhook: WebhookConfig,
    body: Value,
    alarm: String,
) {
    let mut delay = Duration::from_millis(200);
    for attempt in 1..=4 {
        let result = client
            .post(&webhook.url)
            .header("content-type", "text/plain; charset=UTF-8")
            .header("x-amz-sns-message-type", "Notification")
            .header("x-amz-sns-topic-arn", crate::identity::on_call_topic_arn())
            .body(body.to_string())
            .send()
            .await;
        match result {
            Ok(response) if response.status().is_success() => return,
            Ok(response) => tracing::warn!(
                alarm = %alarm, attempt, status = response.status().as_u16(),
                "alarm webhook refused the notification"
            ),
            Err(err) => {
                tracing::warn!(alarm = %alarm, attempt, error = %err, "alarm webhook unreachable")
            }
        }
        tokio::time::sleep(delay).await;
        delay *= 3;
    }
    tracing::error!(alarm = %alarm, url = %webhook.url, "alarm notification not delivered after 4 attempts");
}

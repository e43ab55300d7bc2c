//! One alarm as the CloudWatch alarm page shows it: the condition in
//! words and the watched metric (or metric-math expression) over recent
//! periods, with the threshold line.
//!
//! The datapoints are the evaluator's own ([`alarms::datapoints`]), over a
//! longer range than it evaluates, so the chart shows exactly the values
//! the alarm decided on.

use maud::{html, Markup};
use rusqlite::Connection;

use super::dashboard::{self, Drawn, Line};
use super::html::{duration_ms, number};
use crate::observability::alarms::{self, Alarm, AlarmSource, Comparison};
use crate::observability::metrics::SeriesKey;
use crate::store::DbError;

/// How many periods the chart shows.
const CHART_PERIODS: usize = 30;

/// The alarm's condition as a sentence: what is compared, how, for how
/// long, and what missing data counts as.
pub(super) fn condition(alarm: &Alarm) -> String {
    let watched = match &alarm.source {
        AlarmSource::Metric(q) => format!(
            "the {} of {}/{}{}",
            q.statistic.as_str(),
            q.key.namespace,
            q.key.name,
            dimensions(&q.key)
        ),
        AlarmSource::Math {
            expression_text,
            label,
            ..
        } => match label {
            Some(label) => format!("{label} ({expression_text})"),
            None => expression_text.clone(),
        },
    };
    let compare = match alarm.comparison {
        Comparison::GreaterThanThreshold => "is above",
        Comparison::GreaterThanOrEqualToThreshold => "is at or above",
        Comparison::LessThanThreshold => "is below",
        Comparison::LessThanOrEqualToThreshold => "is at or below",
    };
    let local = if alarm.period.as_secs() == alarm.period_seconds {
        String::new()
    } else {
        format!(
            " (locally scaled to {})",
            duration_ms(alarm.period.as_secs_f64() * 1000.0)
        )
    };
    format!(
        "ALARM when {watched} {compare} {} for {} of the last {} periods of {}{local}; \
         missing data is treated as {}.",
        number(alarm.threshold),
        alarm.datapoints_to_alarm,
        alarm.evaluation_periods,
        duration_ms(alarm.period_seconds as f64 * 1000.0),
        alarm.treat_missing_data.as_str()
    )
}

fn dimensions(key: &SeriesKey) -> String {
    if key.dimensions.is_empty() {
        return String::new();
    }
    let dims: Vec<String> = key
        .dimensions
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    format!(" ({})", dims.join(", "))
}

/// The values the alarm was evaluated on over the last [`CHART_PERIODS`]
/// periods: `(from_ms, period_ms, values)`.
pub(super) fn recent(
    conn: &Connection,
    alarm: &Alarm,
    now_ms: i64,
) -> Result<(i64, i64, Vec<Option<f64>>), DbError> {
    let mut wide = alarm.clone();
    wide.evaluation_periods = CHART_PERIODS;
    let points = alarms::datapoints(conn, &wide, now_ms)?;
    let period_ms = i64::try_from(alarm.period.as_millis()).unwrap_or(i64::MAX);
    let from_ms = points.first().map_or(now_ms, |p| p.at_ms);
    Ok((
        from_ms,
        period_ms,
        points.into_iter().map(|p| p.value).collect(),
    ))
}

/// The chart of [`recent`] with the threshold line.
pub(super) fn chart(alarm: &Alarm, from_ms: i64, period_ms: i64, values: &[Option<f64>]) -> Markup {
    let (label, stat) = match &alarm.source {
        AlarmSource::Metric(q) => (q.key.name.clone(), q.statistic.as_str().to_owned()),
        AlarmSource::Math {
            expression_text,
            label,
            ..
        } => (
            label.clone().unwrap_or_else(|| expression_text.clone()),
            String::new(),
        ),
    };
    let line = Line {
        key: SeriesKey::new("", &label, &[]),
        stat,
        label,
    };
    // Alarms take no percentile statistic, so nothing here is an estimate.
    let drawn = [Drawn {
        line: &line,
        points: values.to_vec(),
        estimated: false,
    }];
    html! { (dashboard::chart(&drawn, from_ms, period_ms, Some(alarm.threshold))) }
}

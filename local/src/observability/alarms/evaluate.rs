//! One evaluation as CloudWatch does it: datapoints per aligned period over
//! the evaluation range, M of N breaching, the missing-data rules, and the
//! reason text.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use rusqlite::Connection;
use serde::Serialize;
use serde_json::{json, Value};

use super::*;
use crate::observability::metrics::{self};
use crate::store::DbError;

/// One datapoint of an alarm: the start of its period and its value.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Datapoint {
    pub at_ms: i64,
    pub value: Option<f64>,
}

/// The outcome of one evaluation.
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    pub state: AlarmState,
    pub reason: String,
    /// CloudWatch's `StateReasonData`.
    pub reason_data: Value,
}

fn format_value(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{v:.1}")
    } else {
        format!("{v}")
    }
}

fn stamp(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .map(|t| t.format("%d/%m/%y %H:%M:%S").to_string())
        .unwrap_or_default()
}

/// How many periods CloudWatch retrieves for an alarm of `n` evaluation
/// periods: its *evaluation range*. AWS says only that it is more than `n`
/// and depends on the period; its worked examples use 5 for `n = 3`, which
/// `n + 2` reproduces (unverified for other `n`).
pub fn evaluation_range(evaluation_periods: usize) -> usize {
    evaluation_periods + 2
}

/// Decides the state from the datapoints of the evaluation range (oldest
/// first), as CloudWatch's "Configuring how CloudWatch alarms treat missing
/// data" describes it
/// (<https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/alarms-and-missing-data.html>):
/// - at least `n` real datapoints in the range: the `n` most recent real
///   ones are evaluated, and the missing-data treatment is not consulted;
/// - none: the treatment alone decides;
/// - fewer than `n`: every real one is evaluated, with only as many missing
///   ones filled in by the treatment as make `n`; where that does not
///   reach M, the premature-alarm rule (`premature_alarm`) sends a
///   `missing` alarm to ALARM and keeps an `ignore` alarm's state.
///
/// `now` is the evaluation's time (the reason data's `queryDate`).
pub fn evaluate(
    alarm: &Alarm,
    datapoints: &[Datapoint],
    current: AlarmState,
    now: DateTime<Utc>,
) -> Evaluation {
    let n = alarm.evaluation_periods;
    let range = &datapoints[datapoints.len().saturating_sub(evaluation_range(n))..];
    let real: Vec<(i64, f64)> = range
        .iter()
        .filter_map(|d| d.value.map(|v| (d.at_ms, v)))
        .collect();
    let evaluated = &real[real.len().saturating_sub(n)..];
    let reason_data = reason_data(alarm, range, evaluated, now);
    let filled = n - evaluated.len();
    let (state, reason) = if real.is_empty() {
        all_missing_outcome(alarm, current)
    } else {
        let counted = threshold_outcome(alarm, evaluated, filled);
        let premature = premature_alarm(alarm, range).filter(|_| filled > 0);
        match (counted.0, alarm.treat_missing_data, premature) {
            (AlarmState::Ok, MissingData::Missing, Some(age)) => (
                AlarmState::Alarm,
                format!(
                    "Threshold Crossed: every known datapoint breached, the oldest {age} period(s) ago (minimum {} datapoints for OK -> ALARM transition; {filled} missing datapoint(s) not counted).",
                    alarm.datapoints_to_alarm
                ),
            ),
            (AlarmState::Ok, MissingData::Ignore, Some(_)) => (
                current,
                format!(
                    "Only {} of {n} datapoints are known, all breaching; the state is kept (treat missing data: ignore).",
                    evaluated.len()
                ),
            ),
            _ => counted,
        }
    };
    Evaluation {
        state,
        reason,
        reason_data,
    }
}

/// CloudWatch's premature-alarm rule, for too few datapoints to count M of
/// N: AWS says an alarm goes to ALARM when "the oldest available breaching
/// datapoint" is at least `datapoints_to_alarm` periods old and every more
/// recent one breached or is missing. Read so that both of AWS's tables
/// hold: every real datapoint in the range breaches, and the oldest is at
/// least M periods old. Returns that age in periods (1: the most recent).
fn premature_alarm(alarm: &Alarm, range: &[Datapoint]) -> Option<usize> {
    let oldest = range.iter().position(|d| d.value.is_some())?;
    let all_breach = range.iter().all(|d| {
        d.value
            .is_none_or(|v| alarm.comparison.breaches(v, alarm.threshold))
    });
    let age = range.len() - oldest;
    (all_breach && age >= alarm.datapoints_to_alarm).then_some(age)
}

/// CloudWatch's `StateReasonData` for one evaluation.
fn reason_data(
    alarm: &Alarm,
    range: &[Datapoint],
    evaluated: &[(i64, f64)],
    now: DateTime<Utc>,
) -> Value {
    json!({
        "version": "1.0",
        "queryDate": dofs_core::timestamp::format(&now),
        "statistic": match &alarm.source {
            AlarmSource::Metric(q) => Value::from(q.statistic.as_str()),
            AlarmSource::Math { .. } => Value::Null,
        },
        "period": alarm.period.as_secs(),
        "recentDatapoints": evaluated.iter().map(|(_, v)| *v).collect::<Vec<_>>(),
        "threshold": alarm.threshold,
        "evaluatedDatapoints": range.iter().rev().map(|d| json!({
            "timestamp": dofs_core::timestamp::format_millis(d.at_ms),
            "value": d.value,
        })).collect::<Vec<_>>(),
    })
}

/// Every datapoint of the window is missing: `treat_missing_data` alone
/// decides.
fn all_missing_outcome(alarm: &Alarm, current: AlarmState) -> (AlarmState, String) {
    let n = alarm.evaluation_periods;
    let m = alarm.datapoints_to_alarm;
    match alarm.treat_missing_data {
        MissingData::Missing => (
            AlarmState::InsufficientData,
            format!("Insufficient Data: {n} datapoint(s) were unknown."),
        ),
        MissingData::Ignore => (
            current,
            format!("No datapoints in the last {n} period(s); the state is kept (treat missing data: ignore)."),
        ),
        MissingData::Breaching => (
            if n >= m { AlarmState::Alarm } else { AlarmState::Ok },
            format!("Threshold Crossed: no datapoints were received for {n} period(s) and {n} missing datapoint(s) were treated as [Breaching]."),
        ),
        MissingData::NotBreaching => (
            AlarmState::Ok,
            format!("Threshold Crossed: no datapoints were received for {n} period(s) and {n} missing datapoint(s) were treated as [NonBreaching]."),
        ),
    }
}

/// M of N: ALARM when at least `datapoints_to_alarm` datapoints breach
/// (missing ones counting as `treat_missing_data` says), else OK.
fn threshold_outcome(
    alarm: &Alarm,
    present: &[(i64, f64)],
    missing: usize,
) -> (AlarmState, String) {
    let n = alarm.evaluation_periods;
    let m = alarm.datapoints_to_alarm;
    let breaching_present = present
        .iter()
        .filter(|(_, v)| alarm.comparison.breaches(*v, alarm.threshold))
        .count();
    let breaching = breaching_present
        + match alarm.treat_missing_data {
            MissingData::Breaching => missing,
            _ => 0,
        };
    let threshold = format_value(alarm.threshold);
    let listed: Vec<String> = present
        .iter()
        .rev()
        .map(|(at, v)| format!("{} ({})", format_value(*v), stamp(*at)))
        .collect();
    let phrase = alarm.comparison.phrase();
    let treated = match (alarm.treat_missing_data, missing) {
        (_, 0) => String::new(),
        (MissingData::Breaching, k) => {
            format!(" and {k} missing datapoint(s) were treated as [Breaching]")
        }
        (MissingData::NotBreaching, k) => {
            format!(" and {k} missing datapoint(s) were treated as [NonBreaching]")
        }
        (_, k) => format!(" ({k} missing datapoint(s) were not counted)"),
    };
    if breaching >= m {
        (
            AlarmState::Alarm,
            format!(
                "Threshold Crossed: {breaching} out of the last {n} datapoints [{}] were {phrase} the threshold ({threshold}){treated} (minimum {m} datapoints for OK -> ALARM transition).",
                listed.join(", ")
            ),
        )
    } else {
        let ok = n - breaching;
        (
            AlarmState::Ok,
            format!(
                "Threshold Crossed: {ok} out of the last {n} datapoints [{}] were not {phrase} the threshold ({threshold}){treated} (minimum {} datapoints for ALARM -> OK transition).",
                listed.join(", "),
                n + 1 - m
            ),
        )
    }
}

/// The datapoints of `alarm` for its evaluation range: the last
/// `evaluation_range` complete periods before `now_ms` (oldest first),
/// read from the metric store.
pub fn datapoints(
    conn: &Connection,
    alarm: &Alarm,
    now_ms: i64,
) -> Result<Vec<Datapoint>, DbError> {
    let period_ms = alarm.period.as_millis() as i64;
    let end = now_ms - now_ms.rem_euclid(period_ms);
    let n = evaluation_range(alarm.evaluation_periods);
    let from = end - period_ms * n as i64;
    let starts = (0..n).map(|i| from + period_ms * i as i64);
    let values: Vec<Option<f64>> = match &alarm.source {
        AlarmSource::Metric(q) => metrics::period_stats(conn, &q.key, from, period_ms, n)?
            .into_iter()
            .map(|s| s.map(|s| q.statistic.of(&s)))
            .collect(),
        AlarmSource::Math {
            expression,
            metrics: inputs,
            ..
        } => {
            let mut series: BTreeMap<&str, Vec<Option<f64>>> = BTreeMap::new();
            for (id, q) in inputs {
                let values = metrics::period_stats(conn, &q.key, from, period_ms, n)?
                    .into_iter()
                    .map(|s| s.map(|s| q.statistic.of(&s)))
                    .collect();
                series.insert(id.as_str(), values);
            }
            (0..n)
                .map(|i| {
                    let env: BTreeMap<String, Option<f64>> = series
                        .iter()
                        .map(|(id, values)| ((*id).to_owned(), values[i]))
                        .collect();
                    // A period with no input at all has no datapoint, even
                    // if the expression would yield a constant there.
                    if env.values().all(Option::is_none) {
                        None
                    } else {
                        expression.eval(&env)
                    }
                })
                .collect()
        }
    };
    Ok(starts
        .zip(values)
        .map(|(at_ms, value)| Datapoint { at_ms, value })
        .collect())
}
